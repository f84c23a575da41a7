//! The kubectl plugin's helper pod: the short-lived pod `kubectl mtlscope sniff` starts on the
//! node of each pod it captures in. The helper itself does nothing but wait; the plugin
//! (`kube::sniff`, which uses this module, never the other way) runs `mtlscope agent` in it
//! through the exec API.
//!
//! Its image, by default, is a stock public image with a shell, [`DEFAULT_HELPER_IMAGE`]
//! (busybox), so that there is nothing to build or publish: the plugin uploads a statically
//! linked agent into an `emptyDir` mounted at [`AGENT_DIR`] (`kube::upload`), and runs that.
//! `--image` instead names a prebuilt image with `mtlscope` inside (air-gapped clusters, a
//! mirror), and no volume is added.
//!
//! What the pod gets, and why (docs/kubernetes.md has the same list for cluster admins):
//! - `nodeName`: pinned to the target's node, bypassing the scheduler (a cordoned node still
//!   runs it), and tolerations for every taint (`operator: Exists`), so tainted nodes are no
//!   obstacle.
//! - `hostPID: true`: the agent finds the target container's process in the node's `/proc`.
//! - Capabilities, everything else dropped: `NET_RAW` (open a packet socket), `SYS_ADMIN`
//!   (`setns` into the target's network namespace), `SYS_PTRACE` (open `/proc/PID/ns/net` of a
//!   process that runs as another user or with capabilities the helper lacks; the kernel checks
//!   ptrace access). No `NET_ADMIN`: the capture is not promiscuous and sets no interface
//!   options. `--privileged` replaces this with a privileged container, for runtimes whose
//!   seccomp or AppArmor profile still refuses `setns`.
//! - No service account token (`automountServiceAccountToken: false`): the helper never talks
//!   to the API server. Read-only root filesystem: it writes nothing but its standard output
//!   and, when the agent is uploaded, the agent into its own `emptyDir` (whose `sizeLimit` is a
//!   little over the agent's size; the kubelet evicts a pod that writes more).
//! - `activeDeadlineSeconds`: the kubelet kills it after the capture's time plus a margin, even
//!   if the plugin was killed before it could delete the pod; `kubectl mtlscope cleanup`
//!   removes what is left.
//! - Small requests, and a memory limit sized by the number of agents the helper runs (one per
//!   target pod on its node, all in this one container): [`memory_limit_mib`]. The agent's
//!   memory does not grow with traffic (issue 7); with the plugin's defaults for its bounds
//!   (`--max-flows 100000`, `--total-buffer 64MiB`) and the 32 MiB kernel buffer it stays
//!   within its share.
//! - Labels [`LABEL_MANAGED_BY`] and [`LABEL_SESSION`] let `cleanup` and the plugin find it.

pub use crate::kube::labels::{ANNOTATION_TARGETS, CONTAINER, LABEL_MANAGED_BY, LABEL_SESSION, MANAGED_BY};
use crate::policy;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, Pod, PodSecurityContext, PodSpec, ResourceRequirements,
    SeccompProfile, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::time::Duration;

/// The capabilities the agent needs (see the module documentation), in the pod spec's order.
pub const CAPABILITIES: &[&str] = &["NET_RAW", "SYS_ADMIN", "SYS_PTRACE"];
/// Added to the capture's time and the wait for the helper to run, for `activeDeadlineSeconds`:
/// the agent's own end (it stops at the capture's time) and the plugin's cleanup come first.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(60);

/// The helper's image when the agent is uploaded: Docker's official busybox image. Why this one:
/// it is public on Docker Hub (which nodes can pull without credentials, and which mirrors and
/// pull-through caches carry), multi-arch (amd64 and arm64 among others), about 2 MB, and it has
/// everything the upload needs (`sh`, `head -c`, `wc`, `sha256sum -c`, `chmod`, `mv`) and the
/// `sleep` the helper waits with. `1.37` is a tag from the image's list of supported tags on
/// Docker Hub (hub.docker.com/_/busybox), not a digest: a mirror retags it, and `--helper-image`
/// names the mirror's copy.
pub const DEFAULT_HELPER_IMAGE: &str = "docker.io/library/busybox:1.37";
/// Where the uploaded agent lives in the helper: an `emptyDir` mounted here.
pub const AGENT_DIR: &str = "/mtlscope";
/// The uploaded agent's path in the helper.
pub const UPLOADED_AGENT: &str = "/mtlscope/agent";
/// The name of the helper's `emptyDir` volume.
pub const AGENT_VOLUME: &str = "agent";

/// The `emptyDir`'s `sizeLimit` for an agent of `bytes`: a quarter more, and 1 MiB, rounded up
/// to whole MiB (the partial upload is renamed, never copied, so one agent is all it holds).
pub fn agent_dir_size(bytes: u64) -> String {
    let mib = (bytes + bytes / 4 + (1 << 20)).div_ceil(1 << 20);
    format!("{mib}Mi")
}

/// The helper's memory limit without agents: its own process, and room for what the exec
/// streams and the runtime add to the container's cgroup.
pub const MEMORY_BASE_MIB: u64 = 256;
/// Each agent's share of the limit with the default bounds: 32 MiB of kernel capture buffer,
/// up to 100,000 open connections (about 1.3 KB each while their handshake is open, ~124 MiB),
/// 64 MiB of out-of-order data, and its code and stacks; about 230 MiB, rounded up.
pub const MEMORY_PER_AGENT_MIB: u64 = 256;

/// The helper's memory limit for `agents` agents: 512 MiB for one, as before this was sized,
/// 256 MiB more for each other one. A helper that outgrows it is OOMKilled, and the plugin says
/// so; the request stays small, so the scheduler (which the helper bypasses) and the node's
/// eviction see only what is used.
pub fn memory_limit_mib(agents: usize) -> u64 {
    MEMORY_BASE_MIB + MEMORY_PER_AGENT_MIB * (agents.max(1) as u64)
}

/// How to build the helper pods of one plugin run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperOptions {
    /// Where the helper pods are created (by default the targets' namespace).
    pub namespace: String,
    /// `--image`, else `--helper-image` (by default [`DEFAULT_HELPER_IMAGE`]).
    pub image: String,
    /// `IfNotPresent` unless the user says otherwise.
    pub pull_policy: String,
    /// A privileged container instead of the three capabilities.
    pub privileged: bool,
    /// `activeDeadlineSeconds`; the helper's `sleep` lasts as long.
    pub deadline: Duration,
    /// The value of [`LABEL_SESSION`].
    pub session: String,
}

impl HelperOptions {
    /// The backstop for a capture that lasts at most `capture` (`--duration`, else
    /// `--max-duration`) in a helper that may take `start` to run.
    pub fn deadline_for(capture: Duration, start: Duration) -> Duration {
        capture + start + DEADLINE_MARGIN
    }
}

/// `mtlscope-<node>-`: the node in the name makes `kubectl get pods` readable; the API server
/// adds five random characters. Node names can be 253 characters, pod names too, but a
/// generated name is cut to 58 before the suffix: keep the node part short.
fn generate_name(node: &str) -> String {
    let node: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    format!("mtlscope-{}-", node.trim_matches('-'))
}

/// The helper pod for `node`, which captures in `targets` (all on that node). `upload`: the size
/// of the agent the plugin uploads into it, which sizes its `emptyDir`; `None` with `--image`.
pub fn helper_pod(opts: &HelperOptions, node: &str, targets: &[&policy::Pod], upload: Option<u64>) -> Pod {
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "mtlscope".to_owned()),
        ("app.kubernetes.io/component".to_owned(), "capture-helper".to_owned()),
        (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
        (
            "app.kubernetes.io/version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
        (LABEL_SESSION.to_owned(), opts.session.clone()),
    ]);
    let target_names: Vec<String> = targets.iter().map(|t| format!("{}/{}", t.namespace, t.name)).collect();
    let annotations = BTreeMap::from([
        (ANNOTATION_TARGETS.to_owned(), target_names.join(",")),
        // Not a mesh workload: never inject a sidecar into the helper.
        ("sidecar.istio.io/inject".to_owned(), "false".to_owned()),
        ("linkerd.io/inject".to_owned(), "disabled".to_owned()),
    ]);
    let deadline = opts.deadline.as_secs().max(1);
    let security_context = if opts.privileged {
        SecurityContext {
            privileged: Some(true),
            run_as_user: Some(0),
            run_as_non_root: Some(false),
            read_only_root_filesystem: Some(true),
            ..Default::default()
        }
    } else {
        SecurityContext {
            privileged: Some(false),
            allow_privilege_escalation: Some(false),
            run_as_user: Some(0),
            run_as_non_root: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: Some(CAPABILITIES.iter().map(|c| (*c).to_owned()).collect()),
            }),
            ..Default::default()
        }
    };
    let quantity = |s: &str| Quantity(s.to_owned());
    let container = Container {
        name: CONTAINER.to_owned(),
        image: Some(opts.image.clone()),
        image_pull_policy: Some(opts.pull_policy.clone()),
        // Wait for the plugin's `exec`; the deadline ends the pod even if nobody deletes it.
        command: Some(vec!["sleep".to_owned(), deadline.to_string()]),
        security_context: Some(security_context),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), quantity("50m")),
                ("memory".to_owned(), quantity("64Mi")),
            ])),
            limits: Some(BTreeMap::from([
                ("cpu".to_owned(), quantity("1")),
                (
                    "memory".to_owned(),
                    quantity(&format!("{}Mi", memory_limit_mib(targets.len()))),
                ),
            ])),
            ..Default::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        volume_mounts: upload.map(|_| {
            vec![VolumeMount {
                name: AGENT_VOLUME.to_owned(),
                mount_path: AGENT_DIR.to_owned(),
                ..Default::default()
            }]
        }),
        ..Default::default()
    };
    let volumes = upload.map(|bytes| {
        vec![Volume {
            name: AGENT_VOLUME.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(quantity(&agent_dir_size(bytes))),
                ..Default::default()
            }),
            ..Default::default()
        }]
    });
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name(node)),
            namespace: Some(opts.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.to_owned()),
            host_pid: Some(true),
            host_network: Some(false),
            restart_policy: Some("Never".to_owned()),
            active_deadline_seconds: Some(deadline as i64),
            termination_grace_period_seconds: Some(0),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            tolerations: Some(vec![Toleration {
                operator: Some("Exists".to_owned()),
                ..Default::default()
            }]),
            security_context: Some(PodSecurityContext {
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            containers: vec![container],
            volumes,
            ..Default::default()
        }),
        status: None,
    }
}

/// Why a helper pod cannot run, read from its status: `None` while it may still start.
pub fn failure(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    match status.phase.as_deref() {
        Some("Failed") | Some("Succeeded") => {
            let why = [status.reason.as_deref(), status.message.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            return Some(format!(
                "it ended ({}){}",
                status.phase.as_deref().unwrap_or_default(),
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            ));
        }
        _ => {}
    }
    // Without --image the agent is uploaded into a stock image, in this volume.
    let uploads = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|v| v.iter().any(|v| v.name == AGENT_VOLUME));
    for cs in status.container_statuses.iter().flatten() {
        let Some(waiting) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let reason = waiting.reason.as_deref().unwrap_or_default();
        let message = waiting.message.as_deref().unwrap_or_default();
        match reason {
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => {
                let remedy = if uploads {
                    "pass --helper-image with a copy of it that the node can pull (a mirror; any image with sh, \
                     head, wc, sha256sum, chmod, mv and sleep), or --image with a prebuilt mtlscope image"
                } else {
                    "pass --image with an image the node can pull (see docs/kubernetes.md for building one)"
                };
                return Some(format!(
                    "its image {} cannot be pulled ({reason}{}); {remedy}",
                    cs.image,
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                ));
            }
            "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError" | "CrashLoopBackOff" => {
                return Some(format!(
                    "its container cannot start ({reason}{})",
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                ))
            }
            _ => {}
        }
    }
    None
}

/// Is the helper's container running (ready for `exec`)?
pub fn running(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .container_statuses
            .iter()
            .flatten()
            .any(|c| c.name == CONTAINER && c.state.as_ref().is_some_and(|s| s.running.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy;

    fn target(name: &str) -> policy::Pod {
        policy::Pod {
            namespace: "bookinfo".into(),
            name: name.into(),
            node: Some("worker-1".into()),
            ips: vec![],
            phase: Some("Running".into()),
            host_network: false,
            containers: vec![policy::Container {
                name: "app".into(),
                id: Some("containerd://abc".into()),
                sidecar: false,
            }],
            default_container: None,
            ..Default::default()
        }
    }

    fn opts(privileged: bool) -> HelperOptions {
        HelperOptions {
            namespace: "bookinfo".into(),
            image: "example.org/mtlscope:test".into(),
            pull_policy: "IfNotPresent".into(),
            privileged,
            deadline: HelperOptions::deadline_for(Duration::from_secs(30), Duration::from_secs(120)),
            session: "s1".into(),
        }
    }

    #[test]
    fn least_privilege_spec() {
        let (a, b) = (target("a"), target("b"));
        let pod = helper_pod(&opts(false), "Worker_1.example", &[&a, &b], None);
        let meta = &pod.metadata;
        assert_eq!(meta.generate_name.as_deref(), Some("mtlscope-worker-1-example-"));
        assert_eq!(meta.namespace.as_deref(), Some("bookinfo"));
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_MANAGED_BY], MANAGED_BY);
        assert_eq!(labels[LABEL_SESSION], "s1");
        assert_eq!(
            meta.annotations.as_ref().unwrap()[ANNOTATION_TARGETS],
            "bookinfo/a,bookinfo/b"
        );
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("Worker_1.example"));
        assert_eq!(spec.host_pid, Some(true));
        assert_eq!(spec.host_network, Some(false));
        assert_eq!(spec.active_deadline_seconds, Some(210));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.automount_service_account_token, Some(false));
        let tol = &spec.tolerations.as_ref().unwrap()[0];
        assert_eq!(
            (tol.operator.as_deref(), tol.key.as_deref(), tol.effect.as_deref()),
            (Some("Exists"), None, None)
        );
        let c = &spec.containers[0];
        assert_eq!(c.command.as_ref().unwrap(), &["sleep", "210"]);
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.privileged, Some(false));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        let caps = sc.capabilities.as_ref().unwrap();
        assert_eq!(caps.drop.as_ref().unwrap(), &["ALL"]);
        assert_eq!(caps.add.as_ref().unwrap(), &["NET_RAW", "SYS_ADMIN", "SYS_PTRACE"]);
        let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
        // Two agents: 256 MiB each on top of the base.
        assert_eq!(limits["memory"].0, "768Mi");
        let one = helper_pod(&opts(false), "n", &[&a], None);
        let limits = one.spec.unwrap().containers[0]
            .resources
            .clone()
            .unwrap()
            .limits
            .unwrap();
        assert_eq!(limits["memory"].0, "512Mi");
        assert_eq!(memory_limit_mib(5), 1536);
        assert!(spec.volumes.is_none() && c.volume_mounts.is_none());
    }

    #[test]
    fn an_uploaded_agent_gets_an_empty_dir_and_the_root_stays_read_only() {
        let a = target("a");
        let pod = helper_pod(&opts(false), "n", &[&a], Some(14 << 20));
        let spec = pod.spec.unwrap();
        let v = &spec.volumes.as_ref().unwrap()[0];
        assert_eq!(v.name, AGENT_VOLUME);
        // 14 MiB + 3.5 MiB + 1 MiB
        assert_eq!(v.empty_dir.as_ref().unwrap().size_limit.as_ref().unwrap().0, "19Mi");
        let c = &spec.containers[0];
        let m = &c.volume_mounts.as_ref().unwrap()[0];
        assert_eq!(
            (m.name.as_str(), m.mount_path.as_str(), m.read_only),
            (AGENT_VOLUME, AGENT_DIR, None)
        );
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(sc.capabilities.as_ref().unwrap().add.as_ref().unwrap(), &CAPABILITIES);
        assert_eq!(agent_dir_size(1), "2Mi");
    }

    #[test]
    fn privileged_fallback_has_no_capability_list() {
        let a = target("a");
        let pod = helper_pod(&opts(true), "n", &[&a], None);
        let sc = pod.spec.unwrap().containers[0].security_context.clone().unwrap();
        assert_eq!(sc.privileged, Some(true));
        // Kubernetes rejects privileged with allowPrivilegeEscalation: false.
        assert_eq!(sc.allow_privilege_escalation, None);
        assert!(sc.capabilities.is_none());
    }

    #[test]
    fn deadline_covers_start_capture_and_cleanup() {
        let d = HelperOptions::deadline_for(Duration::from_secs(3600), Duration::from_secs(120));
        assert_eq!(d, Duration::from_secs(3600 + 120 + 60));
    }

    #[test]
    fn image_pull_failure_names_the_image() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "agent", "image": "ghcr.io/x/y:v1", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}
        }))
        .unwrap();
        let why = failure(&pod).unwrap();
        assert!(why.contains("ghcr.io/x/y:v1") && why.contains("--image"), "{why}");
        assert!(!running(&pod));
    }
}
