//! Planning the captures: which pods can be captured in, in which container and on which
//! node, where their `-w` files go, and the agent command each one runs in its helper.

use super::options::SniffOptions;
use crate::kube::client::{ContainerState, TargetPod};
use crate::pipeline::source::LinkType;
use crate::policy;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// One target pod to capture in, and where.
#[derive(Debug, Clone)]
pub(super) struct Capture {
    pub(super) pod: policy::Pod,
    pub(super) container: String,
    pub(super) container_id: String,
    pub(super) node: String,
    /// The helper pod's name once created.
    pub(super) helper: Option<String>,
    /// `-w` file for this pod.
    pub(super) write: Option<PathBuf>,
}

impl Capture {
    pub(super) fn label(&self) -> String {
        format!("{}/{}", self.pod.namespace, self.pod.name)
    }
}

/// The pods to capture in, with their container and node; pods that cannot be captured in are
/// skipped with a warning when others remain, and are an error when none does. A pod being
/// deleted is skipped (it may be gone before its helper runs). When the chosen container is
/// not running (CrashLoopBackOff keeps the ID of its last run, whose process is gone), another
/// running container of the pod is entered instead: all containers of a pod share its network
/// namespace, so the capture is the same.
pub(super) fn plan(pods: &[TargetPod], container: Option<&str>) -> Result<Vec<Capture>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for t in pods {
        let p = &t.pod;
        let name = format!("{}/{}", p.namespace, p.name);
        if let Some(since) = &t.deleting {
            problems.push(format!(
                "pod {name}: it is terminating (deletionTimestamp {since}) and may be gone before a helper runs"
            ));
            continue;
        }
        let Some(node) = p.node.clone() else {
            problems.push(format!("pod {name} is not scheduled on a node yet"));
            continue;
        };
        if p.phase.as_deref() != Some("Running") {
            problems.push(format!(
                "pod {name} is {} (not Running)",
                p.phase.as_deref().unwrap_or("in an unknown phase")
            ));
            continue;
        }
        let chosen = match p.container(container) {
            Ok(c) => c,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        let running = |c: &policy::Container| {
            c.id.is_some() && t.states.get(&c.name).is_none_or(|s| *s == ContainerState::Running)
        };
        let c = if running(chosen) {
            chosen
        } else if let Some(other) = p.containers.iter().find(|c| running(c)) {
            eprintln!(
                "mtlscope: note: container '{}' of pod {name} is {}: capturing through its container '{}' instead, \
                 which shares the pod's network namespace",
                chosen.name,
                state_text(t, chosen),
                other.name
            );
            other
        } else {
            let states: Vec<String> = p
                .containers
                .iter()
                .map(|c| format!("'{}' {}", c.name, state_text(t, c)))
                .collect();
            problems.push(format!(
                "pod {name}: no container runs, so there is no process to enter its network namespace through \
                 ({})",
                states.join(", ")
            ));
            continue;
        };
        let Some(id) = c.id.clone() else {
            continue;
        };
        if p.host_network {
            eprintln!(
                "mtlscope: warning: pod {name} uses the node's network (hostNetwork): `-i` names an interface of \
                 node {node} itself, and the capture sees all of that node's traffic on it"
            );
        }
        out.push(Capture {
            pod: p.clone(),
            container: c.name.clone(),
            container_id: id,
            node,
            helper: None,
            write: None,
        });
    }
    if out.is_empty() {
        bail!("nothing to capture in: {}", problems.join("; "));
    }
    for p in problems {
        eprintln!("mtlscope: warning: skipping {p}");
    }
    Ok(out)
}

/// `waiting (CrashLoopBackOff)`; without a status, what the ID says.
fn state_text(t: &TargetPod, c: &policy::Container) -> String {
    match (t.states.get(&c.name), &c.id) {
        (Some(s), _) => s.to_string(),
        (None, None) => "not started (no container ID)".to_owned(),
        (None, Some(_)) => "running".to_owned(),
    }
}

/// `out.pcap` -> `out-<namespace>-<pod>.pcap` when several pods are captured.
pub(super) fn per_pod_path(path: &Path, pod: &policy::Pod) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{}-{}.{}", pod.namespace, pod.name, ext.to_string_lossy()),
        None => format!("{stem}-{}-{}", pod.namespace, pod.name),
    };
    path.with_file_name(name)
}

/// Random enough to tell two runs apart: time and process ID.
pub(super) fn session_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:x}{:04x}", nanos & 0xffff_ffff_ffff, std::process::id() & 0xffff)
}

/// The command the plugin runs in the helper for one target pod.
pub(super) fn agent_command(c: &Capture, opts: &SniffOptions) -> Vec<String> {
    let mut cmd = vec![
        opts.agent.clone(),
        "agent".into(),
        "--container-id".into(),
        c.container_id.clone(),
        "-i".into(),
        opts.interface.clone(),
        "--stop-on-stdin".into(),
    ];
    if let Some(f) = &opts.filter {
        // Compiled here, with libpcap, for the link type of the pod's interface: the static
        // agent has no libpcap. Should it not compile, the agent gets the expression and says why.
        let link = match opts.interface.as_str() {
            "any" => LinkType::LINUX_SLL,
            _ => LinkType::ETHERNET,
        };
        match crate::pipeline::filter::compile(f, link) {
            Ok(p) => cmd.extend([
                "--bpf-program".into(),
                p.text(),
                "--bpf-link-type".into(),
                link.0.to_string(),
            ]),
            Err(_) => cmd.extend(["-f".into(), f.clone()]),
        }
    }
    let d = opts.duration.unwrap_or(opts.max_duration);
    cmd.extend(["--duration".into(), format!("{}ms", d.as_millis())]);
    if let Some(n) = opts.count {
        cmd.extend(["--count".into(), n.to_string()]);
    }
    if c.write.is_some() {
        cmd.push("--pcap".into());
    }
    let l = &opts.limits;
    cmd.extend([
        "--max-flows".into(),
        l.max_flows.to_string(),
        "--stream-buffer".into(),
        l.dir_cap.to_string(),
        "--total-buffer".into(),
        l.total_buffer_cap.to_string(),
        "--idle-timeout".into(),
        // Whole seconds as `600s`; a fraction (`--idle-timeout 1.5`) in milliseconds.
        match l.idle_timeout_ns % 1_000_000_000 {
            0 => format!("{}s", l.idle_timeout_ns / 1_000_000_000),
            _ => format!("{}ms", l.idle_timeout_ns / 1_000_000),
        },
    ]);
    if l.show_payload {
        cmd.push("--show-payload".into());
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy;

    fn pod(name: &str, node: Option<&str>, phase: &str, id: Option<&str>) -> policy::Pod {
        policy::Pod {
            namespace: "ns".into(),
            name: name.into(),
            node: node.map(str::to_owned),
            ips: vec![],
            phase: Some(phase.into()),
            host_network: false,
            containers: vec![
                policy::Container {
                    name: "istio-proxy".into(),
                    id: Some("containerd://1111111111111111".into()),
                    sidecar: true,
                },
                policy::Container {
                    name: "app".into(),
                    id: id.map(str::to_owned),
                    sidecar: false,
                },
            ],
            default_container: None,
            ..Default::default()
        }
    }

    fn target(pod: policy::Pod) -> TargetPod {
        TargetPod {
            pod,
            states: Default::default(),
            deleting: None,
        }
    }

    #[test]
    fn plan_picks_the_app_container_and_skips_pods_that_cannot_be_captured() {
        let mut no_ids = pod("d", Some("n2"), "Running", None);
        no_ids.containers[0].id = None;
        let pods: Vec<TargetPod> = vec![
            pod("a", Some("n1"), "Running", Some("containerd://aaaaaaaaaaaaaaaa")),
            pod("b", None, "Pending", None),
            no_ids,
        ]
        .into_iter()
        .map(target)
        .collect();
        let plan = plan(&pods, None).unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!((plan[0].container.as_str(), plan[0].node.as_str()), ("app", "n1"));
        assert_eq!(plan[0].container_id, "containerd://aaaaaaaaaaaaaaaa");
        let sidecar = super::plan(&pods[..1], Some("istio-proxy")).unwrap();
        assert_eq!(sidecar[0].container_id, "containerd://1111111111111111");
        let err = super::plan(&pods[1..], None).unwrap_err().to_string();
        assert!(
            err.contains("ns/b is not scheduled")
                && err.contains("pod ns/d: no container runs")
                && err.contains("'app' not started (no container ID)"),
            "{err}"
        );
    }

    #[test]
    fn a_crash_looping_container_is_replaced_by_a_running_one_and_terminating_pods_are_skipped() {
        // CrashLoopBackOff keeps the containerID of the last run: it must not be used.
        let mut crashing = target(pod("a", Some("n1"), "Running", Some("containerd://aaaaaaaaaaaaaaaa")));
        crashing
            .states
            .insert("app".into(), ContainerState::Waiting("CrashLoopBackOff".into()));
        crashing.states.insert("istio-proxy".into(), ContainerState::Running);
        let plan = super::plan(std::slice::from_ref(&crashing), None).unwrap();
        assert_eq!(plan[0].container, "istio-proxy");
        assert_eq!(plan[0].container_id, "containerd://1111111111111111");

        crashing
            .states
            .insert("istio-proxy".into(), ContainerState::Terminated("Error".into()));
        let err = super::plan(std::slice::from_ref(&crashing), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'istio-proxy' terminated (Error), 'app' waiting (CrashLoopBackOff)"),
            "{err}"
        );

        let mut leaving = target(pod("b", Some("n1"), "Running", Some("containerd://bbbbbbbbbbbbbbbb")));
        leaving.deleting = Some("2026-11-01T10:00:00Z".into());
        let err = super::plan(&[leaving], None).unwrap_err().to_string();
        assert!(
            err.contains("pod ns/b: it is terminating (deletionTimestamp 2026-11-01T10:00:00Z)"),
            "{err}"
        );
    }

    #[test]
    fn per_pod_file_names() {
        let p = pod("web-1", None, "Running", None);
        assert_eq!(
            per_pod_path(Path::new("/tmp/out.pcap"), &p),
            Path::new("/tmp/out-ns-web-1.pcap")
        );
        assert_eq!(per_pod_path(Path::new("cap"), &p), Path::new("cap-ns-web-1"));
    }
}
