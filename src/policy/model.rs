//! The Kubernetes objects the engine reads, as it keeps them once checked: PeerAuthentications,
//! Pods (the one Pod model of the crate: PeerAuthentication's needs and capture's), their
//! containers and ports, Services. Reading them from JSON is `objects.rs` and `admission.rs`.

use super::timestamp::Timestamp;
use super::types::Mode;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// A PeerAuthentication that passed Istio's validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAuthentication {
    pub namespace: String,
    pub name: String,
    /// `security.istio.io/v1` or `security.istio.io/v1beta1`.
    pub api_version: String,
    /// `None` when absent: Go's zero time, which sorts before every real timestamp.
    pub creation_timestamp: Option<Timestamp>,
    /// The timestamp as written, for messages.
    pub created: Option<String>,
    /// `None` when there is no selector or its `matchLabels` is empty: such a policy is
    /// namespace-wide (mesh-wide in the root namespace).
    pub selector: Option<BTreeMap<String, String>>,
    pub mode: Mode,
    /// `portLevelMtls`; only ever non-empty when `selector` is `Some`.
    pub port_level: BTreeMap<u16, Mode>,
    pub source: Option<PathBuf>,
}

/// A port a container declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerPort {
    pub container: String,
    pub name: Option<String>,
    pub port: u16,
    /// `TCP` unless the pod says otherwise.
    pub protocol: String,
}

/// A container of a pod, as capture needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Container {
    pub name: String,
    /// `status.containerStatuses[].containerID`, e.g. `containerd://3f1c...`; `None` until the
    /// container has been created.
    pub id: Option<String>,
    /// A mesh proxy (`istio-proxy`, `linkerd-proxy`) or a native sidecar.
    pub sidecar: bool,
}

/// The one model of a Pod: what PeerAuthentication needs (labels, ports, sidecar) and what
/// capture needs (node, containers), read by [`Pod::from_object`] from a cluster dump or from
/// the API alike.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `status.podIPs` (and `status.podIP`), deduplicated.
    pub ips: Vec<IpAddr>,
    /// Ports of all containers, init containers included (native sidecars live there).
    pub ports: Vec<ContainerPort>,
    /// A host-network pod's IP is its node's, and Istio injects no sidecar into it.
    pub host_network: bool,
    /// `status.phase`: `Succeeded`/`Failed` pods keep an IP that a new pod may already reuse.
    pub phase: Option<String>,
    /// An `istio-proxy` container or the `sidecar.istio.io/status` annotation. Without a
    /// sidecar (or ztunnel) nothing enforces PeerAuthentication on this pod.
    pub sidecar: bool,
    /// `ambient.istio.io/redirection: enabled`: ztunnel enforces the policy.
    pub ambient: bool,
    pub source: Option<PathBuf>,
    /// `spec.nodeName`; `None` while the pod is not scheduled.
    pub node: Option<String>,
    /// Native sidecars (init containers with `restartPolicy: Always`) first, as they start
    /// first, then `spec.containers`, in spec order. Init containers that run to completion are
    /// left out: there is nothing to capture in them.
    pub containers: Vec<Container>,
    /// The `kubectl.kubernetes.io/default-container` annotation, when it names a container.
    pub default_container: Option<String>,
    /// What runs the pod, as Istio names it in its metrics (`destination_workload`).
    pub workload: Workload,
}

/// The workload a pod belongs to, as Istio's `GetDeployMetaFromPod` (istio/istio
/// `pkg/kube/util.go`) derives it from the controlling owner reference: a ReplicaSet whose name
/// ends in the pod's `pod-template-hash` is its Deployment; a Job named `<cronjob>-<8 to 10
/// digits>` is its CronJob; any other controller (StatefulSet, DaemonSet, Job, ...) is itself;
/// a pod without one is its own workload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Workload {
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `CronJob`, `Job`, `Pod`, ...; empty when the
    /// pod was built by hand rather than read (then [`Pod::workload_name`] is the pod's name).
    pub kind: String,
    pub name: String,
}

impl Pod {
    /// The workload's name (the pod's own when nothing controls it).
    pub fn workload_name(&self) -> &str {
        match self.workload.name.is_empty() {
            true => &self.name,
            false => &self.workload.name,
        }
    }

    /// `Succeeded`/`Failed`: its IP may already belong to a new pod.
    pub(super) fn is_terminated(&self) -> bool {
        matches!(self.phase.as_deref(), Some("Succeeded" | "Failed"))
    }
}

/// `spec.ports[].targetPort` of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    /// A container port name, resolved per pod.
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: Option<String>,
    pub protocol: String,
    pub port: u16,
    /// Defaults to `port` when the Service leaves it out, as Kubernetes does.
    pub target_port: TargetPort,
}

/// The parts of a Service that matter here: which pods it selects and how its ports map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    /// Empty: the Service selects no pods (its endpoints are managed by hand).
    pub selector: BTreeMap<String, String>,
    pub cluster_ips: Vec<IpAddr>,
    pub ports: Vec<ServicePort>,
    pub source: Option<PathBuf>,
}
