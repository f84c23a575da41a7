//! Stage 6, enrich: what Kubernetes knows about each connection — the pods behind its
//! addresses and the PeerAuthentication mode Istio applies to the server's port — joined to
//! the verdict as a finding (see `policy::finding`).

use crate::policy::{self, Cluster, DecidedBy, Finding, Mode};
use serde::Serialize;
use std::net::IpAddr;

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PolicyReport {
    /// The effective mode for the server pod and port.
    pub expected_mode: Mode,
    pub decided_by: DecidedBy,
    /// Violation, warning or note; null when the verdict is what the mode expects.
    pub finding: Option<Finding>,
    /// Nothing enforces PeerAuthentication on the server pod: it has no sidecar and is not
    /// in ambient mode.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_enforced: bool,
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Kubernetes {
    /// `namespace/name` of the pod with the client address, if the cluster has one.
    pub client_pod: Option<String>,
    pub server_pod: Option<String>,
    /// Present when the server is a known pod.
    pub policy: Option<PolicyReport>,
}

/// What the cluster knows about a connection between these addresses with this verdict (also
/// used by the kubectl plugin on the agent's JSON lines): `None` when neither end is a pod.
pub fn lookup(
    cluster: &Cluster,
    client_ip: IpAddr,
    server_ip: IpAddr,
    server_port: u16,
    loopback: bool,
    verdict: &str,
) -> Option<Kubernetes> {
    let name = |p: &policy::Pod| format!("{}/{}", p.namespace, p.name);
    let client = cluster.pod_by_ip(client_ip);
    let server = cluster.pod_by_ip(server_ip);
    let policy = server.filter(|_| !loopback).map(|pod| {
        let d = cluster.effective(pod, server_port);
        let not_enforced = !pod.sidecar && !pod.ambient;
        PolicyReport {
            expected_mode: d.mode,
            finding: policy::finding(d.mode, verdict),
            decided_by: d.decided_by,
            not_enforced,
        }
    });
    if client.is_none() && server.is_none() {
        return None;
    }
    Some(Kubernetes {
        client_pod: client.map(name),
        server_pod: server.map(name),
        policy,
    })
}

/// Short text for the table: `STRICT: violation`.
pub fn short(k: &Kubernetes) -> String {
    match &k.policy {
        None => "-".into(),
        Some(p) => match &p.finding {
            None => p.expected_mode.as_str().to_string(),
            Some(Finding::Violation(_)) => format!("{}: violation", p.expected_mode.as_str()),
            Some(Finding::Warning(_)) => format!("{}: warning", p.expected_mode.as_str()),
            Some(Finding::Note(_)) => format!("{}: note", p.expected_mode.as_str()),
        },
    }
}
