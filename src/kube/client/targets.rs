//! Resolving the plugin's target (`POD`, `deploy/NAME`, `sts/NAME`, `ds/NAME`, `rs/NAME`,
//! `svc/NAME`, or `-l SELECTOR`) to pods with their node, IPs and container IDs, and picking
//! the container capture enters.

use super::error::KubeError;
use super::request::{api_error, Asked, MAX_PAGES, PAGE_SIZE};
use crate::policy;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams};
use kube::core::Selector;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// A target pod as the plugin needs it: the one Pod model, and what only capture cares about.
/// A container that is not running has no process whose network namespace the helper can
/// enter, even when its status still names a container ID (a container in CrashLoopBackOff
/// keeps the ID of its last run); a pod being deleted may be gone before the helper runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPod {
    pub pod: policy::Pod,
    /// The state of each container that has a status (`status.containerStatuses` and
    /// `status.initContainerStatuses`, for native sidecars), by name.
    pub states: BTreeMap<String, ContainerState>,
    /// `metadata.deletionTimestamp`: the pod is terminating.
    pub deleting: Option<String>,
}

/// A container's `state`, as far as capture cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Running,
    /// `state.waiting.reason`: `CrashLoopBackOff`, `ContainerCreating`, ...
    Waiting(String),
    /// `state.terminated.reason`: `Error`, `Completed`, `OOMKilled`, ...
    Terminated(String),
}

impl ContainerState {
    fn of(status: &k8s_openapi::api::core::v1::ContainerStatus) -> Option<ContainerState> {
        let state = status.state.as_ref()?;
        if state.running.is_some() {
            return Some(ContainerState::Running);
        }
        if let Some(w) = &state.waiting {
            return Some(ContainerState::Waiting(
                w.reason.clone().unwrap_or_else(|| "waiting".into()),
            ));
        }
        state
            .terminated
            .as_ref()
            .map(|t| ContainerState::Terminated(t.reason.clone().unwrap_or_else(|| "terminated".into())))
    }
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerState::Running => f.write_str("running"),
            ContainerState::Waiting(reason) => write!(f, "waiting ({reason})"),
            ContainerState::Terminated(reason) => write!(f, "terminated ({reason})"),
        }
    }
}

/// Which container of a pod capture enters: the plugin's choice, so it lives with the plugin
/// rather than with the Pod model in [`crate::policy`].
impl policy::Pod {
    /// The container `-c NAME` asks for; without a name, the one kubectl would pick: the
    /// `default-container` annotation, else the first container that is not a sidecar, else the
    /// first. All containers of a pod share its network namespace, so this only decides whose
    /// process the helper enters.
    pub fn container(&self, name: Option<&str>) -> Result<&policy::Container, KubeError> {
        let wanted = name.or(self.default_container.as_deref());
        let found = match wanted {
            Some(n) => self.containers.iter().find(|c| c.name == n),
            None => self
                .containers
                .iter()
                .find(|c| !c.sidecar)
                .or_else(|| self.containers.first()),
        };
        found.ok_or_else(|| KubeError::NoContainer {
            container: wanted.unwrap_or("<default>").to_owned(),
            pod: self.name.clone(),
            namespace: self.namespace.clone(),
            known: self.containers.iter().map(|c| c.name.clone()).collect(),
        })
    }
}

/// What the plugin's positional argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Pod(String),
    Workload { kind: WorkloadKind, name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Service,
}

impl WorkloadKind {
    fn singular(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
            WorkloadKind::ReplicaSet => "replicaset",
            WorkloadKind::Service => "service",
        }
    }

    fn resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployments.apps",
            WorkloadKind::StatefulSet => "statefulsets.apps",
            WorkloadKind::DaemonSet => "daemonsets.apps",
            WorkloadKind::ReplicaSet => "replicasets.apps",
            WorkloadKind::Service => "services",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Pod(name) => write!(f, "pod '{name}'"),
            Target::Workload { kind, name } => write!(f, "{} '{name}'", kind.singular()),
        }
    }
}

const TARGET_FORMS: &str = "expected POD, pod/NAME, deploy/NAME, sts/NAME, ds/NAME, rs/NAME or svc/NAME";

/// `NAME`, `pod/NAME`, `deploy/NAME`, ... with kubectl's aliases; the type is case-insensitive
/// and may carry its group (`deployments.apps/NAME`), as kubectl accepts.
fn parse_target(target: &str) -> Result<Target, KubeError> {
    let bad = |reason: String| KubeError::BadTarget {
        target: target.to_owned(),
        reason,
    };
    let (kind, name) = match target.split_once('/') {
        None => (None, target),
        Some((kind, name)) => (Some(kind), name),
    };
    if name.is_empty() {
        return Err(bad(format!("no name ({TARGET_FORMS})")));
    }
    if name.contains('/') {
        return Err(bad(format!("too many '/' ({TARGET_FORMS})")));
    }
    let Some(kind) = kind else {
        return Ok(Target::Pod(name.to_owned()));
    };
    let lower = kind.to_ascii_lowercase();
    let (base, group) = match lower.split_once('.') {
        Some((b, g)) => (b, Some(g)),
        None => (lower.as_str(), None),
    };
    let (kind, expected_group) = match base {
        "po" | "pod" | "pods" => return check_group(group, "", target).map(|()| Target::Pod(name.to_owned())),
        "deploy" | "deployment" | "deployments" => (WorkloadKind::Deployment, "apps"),
        "sts" | "statefulset" | "statefulsets" => (WorkloadKind::StatefulSet, "apps"),
        "ds" | "daemonset" | "daemonsets" => (WorkloadKind::DaemonSet, "apps"),
        "rs" | "replicaset" | "replicasets" => (WorkloadKind::ReplicaSet, "apps"),
        "svc" | "service" | "services" => (WorkloadKind::Service, ""),
        _ => return Err(bad(format!("unknown type '{kind}' ({TARGET_FORMS})"))),
    };
    check_group(group, expected_group, target)?;
    Ok(Target::Workload {
        kind,
        name: name.to_owned(),
    })
}

fn check_group(group: Option<&str>, expected: &str, target: &str) -> Result<(), KubeError> {
    match group {
        None => Ok(()),
        Some(g) if g == expected => Ok(()),
        Some(g) => Err(KubeError::BadTarget {
            target: target.to_owned(),
            reason: format!("unknown API group '{g}' ({TARGET_FORMS})"),
        }),
    }
}

/// The pods a target names, sorted by name: one pod, the pods a workload's selector matches, or
/// the pods a label selector (`-l`) matches. Give exactly one of `target` and `selector`.
pub async fn resolve_targets(
    client: &kube::Client,
    namespace: &str,
    target: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<policy::Pod>, KubeError> {
    let pods = resolve_target_pods(client, namespace, target, selector).await?;
    Ok(pods.into_iter().map(|t| t.pod).collect())
}

/// As [`resolve_targets`], with each pod's container states and deletion mark, which decide
/// whether and through which container it can be captured in.
pub async fn resolve_target_pods(
    client: &kube::Client,
    namespace: &str,
    target: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<TargetPod>, KubeError> {
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match (target, selector) {
        (Some(_), Some(_)) => Err(KubeError::Usage(
            "give either a target (POD, deploy/NAME, ...) or -l SELECTOR, not both",
        )),
        (None, None) => Err(KubeError::Usage(
            "nothing to capture: give a pod, a workload (deploy/NAME, sts/NAME, ds/NAME) or -l SELECTOR",
        )),
        (None, Some(selector)) => {
            let pods = list_pods(&pods_api, namespace, selector).await?;
            if pods.is_empty() {
                return Err(KubeError::NoPodsMatch {
                    namespace: namespace.to_owned(),
                    selector: selector.to_owned(),
                });
            }
            Ok(pods)
        }
        (Some(target), None) => match parse_target(target)? {
            Target::Pod(name) => {
                let asked = Asked {
                    verb: "get",
                    resource: "pods".to_owned(),
                    kind: "pod",
                    namespace: Some(namespace),
                    name: Some(&name),
                };
                match pods_api.get(&name).await {
                    Ok(pod) => Ok(vec![target_pod(pod, namespace)?]),
                    Err(e) => Err(with_pod_hint(api_error(e, &asked), &pods_api, &name).await),
                }
            }
            Target::Workload { kind, name } => {
                let owner = format!("{} '{name}'", kind.singular());
                let label_selector = workload_selector(client, namespace, kind, &name).await?;
                let selector = match label_selector {
                    Some(s) if !s.selects_all() => s.to_string(),
                    Some(_) | None => {
                        return Err(KubeError::UnusableSelector {
                            owner,
                            namespace: namespace.to_owned(),
                            reason: "has no pod selector (it would select every pod)".to_owned(),
                        })
                    }
                };
                let pods = list_pods(&pods_api, namespace, &selector).await?;
                if pods.is_empty() {
                    return Err(KubeError::NoPodsForWorkload {
                        owner,
                        namespace: namespace.to_owned(),
                        selector,
                    });
                }
                Ok(pods)
            }
        },
    }
}

/// A missing pod is often a Deployment's name or a pod name cut short: name the pods that start
/// with it. The hint is best-effort; if listing fails, the plain error stands.
async fn with_pod_hint(e: KubeError, pods_api: &Api<Pod>, name: &str) -> KubeError {
    let KubeError::NotFound {
        kind,
        name: missing,
        namespace,
        ..
    } = e
    else {
        return e;
    };
    let mut candidates: Vec<String> = match pods_api.list(&ListParams::default().limit(PAGE_SIZE)).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .filter(|n| n.starts_with(name))
            .collect(),
        Err(_) => Vec::new(),
    };
    candidates.sort();
    let hint = match candidates.len() {
        0 => String::new(),
        1..=5 => format!(
            " (pods whose name starts with it: {}; for all pods of a workload use deploy/NAME, sts/NAME or ds/NAME)",
            candidates.join(", ")
        ),
        n => format!(
            " ({n} pods have a name starting with it, e.g. {}; for all pods of a workload use deploy/NAME, \
             sts/NAME or ds/NAME)",
            candidates[..3].join(", ")
        ),
    };
    KubeError::NotFound {
        kind,
        name: missing,
        namespace,
        hint,
    }
}

async fn workload_selector(
    client: &kube::Client,
    namespace: &str,
    kind: WorkloadKind,
    name: &str,
) -> Result<Option<Selector>, KubeError> {
    let asked = Asked {
        verb: "get",
        resource: kind.resource().to_owned(),
        kind: kind.singular(),
        namespace: Some(namespace),
        name: Some(name),
    };
    let err = |e| api_error(e, &asked);
    let label_selector: Option<LabelSelector> = match kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), namespace)
            .get(name)
            .await
            .map_err(err)?
            .spec
            .map(|s| s.selector),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), namespace)
            .get(name)
            .await
            .map_err(err)?
            .spec
            .map(|s| s.selector),
        WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(client.clone(), namespace)
            .get(name)
            .await
            .map_err(err)?
            .spec
            .map(|s| s.selector),
        WorkloadKind::ReplicaSet => Api::<ReplicaSet>::namespaced(client.clone(), namespace)
            .get(name)
            .await
            .map_err(err)?
            .spec
            .map(|s| s.selector),
        WorkloadKind::Service => {
            let service = Api::<Service>::namespaced(client.clone(), namespace)
                .get(name)
                .await
                .map_err(err)?;
            let labels = service.spec.and_then(|s| s.selector).unwrap_or_default();
            return Ok(Some(labels.into_iter().collect()));
        }
    };
    match label_selector {
        None => Ok(None),
        Some(ls) => Selector::try_from(ls)
            .map(Some)
            .map_err(|e| KubeError::UnusableSelector {
                owner: format!("{} '{name}'", kind.singular()),
                namespace: namespace.to_owned(),
                reason: format!("has a selector that cannot be used: {e}"),
            }),
    }
}

async fn list_pods(pods_api: &Api<Pod>, namespace: &str, selector: &str) -> Result<Vec<TargetPod>, KubeError> {
    let asked = Asked {
        verb: "list",
        resource: "pods".to_owned(),
        kind: "pod",
        namespace: Some(namespace),
        name: None,
    };
    let mut pods = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut lp = ListParams::default().labels(selector).limit(PAGE_SIZE);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = pods_api.list(&lp).await.map_err(|e| match e {
            // A malformed selector is the user's: say so plainly.
            kube::Error::Api(s) if s.code == 400 => KubeError::BadTarget {
                target: format!("-l {selector}"),
                reason: s.message,
            },
            e => api_error(e, &asked),
        })?;
        for p in page.items {
            pods.push(target_pod(p, namespace)?);
        }
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            pods.sort_by(|a, b| a.pod.name.cmp(&b.pod.name));
            return Ok(pods);
        }
    }
    Err(KubeError::Decode {
        what: asked.what(),
        message: format!("still more pages after {MAX_PAGES} (a `continue` token that never ends)"),
    })
}

/// The API's Pod in the one Pod model, read by the same code as a cluster dump's pods, with
/// its container states and deletion mark.
fn target_pod(pod: Pod, namespace: &str) -> Result<TargetPod, KubeError> {
    let deleting = pod.metadata.deletion_timestamp.as_ref().map(|t| t.0.to_string());
    let states = pod
        .status
        .iter()
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        })
        .filter_map(|cs| ContainerState::of(cs).map(|st| (cs.name.clone(), st)))
        .collect();
    Ok(TargetPod {
        pod: policy_pod(pod, namespace)?,
        states,
        deleting,
    })
}

fn policy_pod(pod: Pod, namespace: &str) -> Result<policy::Pod, KubeError> {
    let decode = |message: String| KubeError::Decode {
        what: format!("pod in namespace '{namespace}'"),
        message,
    };
    let mut v = serde_json::to_value(&pod).map_err(|e| decode(e.to_string()))?;
    let Some(obj) = v.as_object_mut() else {
        return Err(decode("not an object".into()));
    };
    // A listed pod always has its namespace; one that lacks it is in the namespace asked.
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.entry("namespace")
            .or_insert_with(|| Value::String(namespace.to_owned()));
    }
    policy::Pod::from_object(obj).map_err(|e| decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_forms_like_kubectl() {
        let w = |kind, name: &str| Target::Workload {
            kind,
            name: name.to_owned(),
        };
        assert_eq!(
            parse_target("reviews-v1-abc").unwrap(),
            Target::Pod("reviews-v1-abc".into())
        );
        assert_eq!(parse_target("po/x").unwrap(), Target::Pod("x".into()));
        assert_eq!(parse_target("pods/x").unwrap(), Target::Pod("x".into()));
        assert_eq!(
            parse_target("deploy/reviews").unwrap(),
            w(WorkloadKind::Deployment, "reviews")
        );
        assert_eq!(
            parse_target("Deployment/reviews").unwrap(),
            w(WorkloadKind::Deployment, "reviews")
        );
        assert_eq!(
            parse_target("deployments.apps/r").unwrap(),
            w(WorkloadKind::Deployment, "r")
        );
        assert_eq!(parse_target("sts/db").unwrap(), w(WorkloadKind::StatefulSet, "db"));
        assert_eq!(
            parse_target("statefulset/db").unwrap(),
            w(WorkloadKind::StatefulSet, "db")
        );
        assert_eq!(parse_target("ds/agent").unwrap(), w(WorkloadKind::DaemonSet, "agent"));
        assert_eq!(
            parse_target("daemonset/agent").unwrap(),
            w(WorkloadKind::DaemonSet, "agent")
        );
        assert_eq!(parse_target("rs/x").unwrap(), w(WorkloadKind::ReplicaSet, "x"));
        assert_eq!(
            parse_target("svc/reviews").unwrap(),
            w(WorkloadKind::Service, "reviews")
        );
        for bad in ["deploy/", "job/x", "deploy/a/b", "deployments.batch/x", "/x"] {
            let e = parse_target(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("cannot use '{bad}' as a target")), "{e}");
        }
    }
}
