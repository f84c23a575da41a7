//! Stage 6, enrich: what Kubernetes knows about each connection — the pods behind its
//! addresses and the PeerAuthentication mode Istio applies to the server's port — joined to
//! the verdict as a finding (see `peer_authentication::finding`).

use crate::peer_authentication::{self, Cluster, DecidedBy, Finding, Mode};
use crate::report::FlowReport;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct PolicyReport {
    /// The effective mode for the server pod and port.
    pub expected_mode: Mode,
    pub decided_by: DecidedBy,
    /// Violation, warning or note; null when the verdict is what the mode expects.
    pub finding: Option<Finding>,
    /// Nothing enforces PeerAuthentication on the server pod: it has no sidecar and is not
    /// in ambient mode.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not_enforced: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Kubernetes {
    /// `namespace/name` of the pod with the client address, if the cluster has one.
    pub client_pod: Option<String>,
    pub server_pod: Option<String>,
    /// Present when the server is a known pod.
    pub policy: Option<PolicyReport>,
}

/// Add what the cluster knows to a connection report.
pub fn enrich(cluster: &Cluster, f: &mut FlowReport) {
    let name = |p: &peer_authentication::Pod| format!("{}/{}", p.namespace, p.name);
    let client = cluster.pod_by_ip(f.client.ip);
    let server = cluster.pod_by_ip(f.server.ip);
    let policy = server.filter(|_| !f.loopback).map(|pod| {
        let d = cluster.effective(pod, f.server.port);
        let not_enforced = !pod.sidecar && !pod.ambient;
        PolicyReport {
            expected_mode: d.mode,
            finding: peer_authentication::finding(d.mode, f.verdict.verdict.name()),
            decided_by: d.decided_by,
            not_enforced,
        }
    });
    if client.is_none() && server.is_none() {
        return;
    }
    f.kubernetes = Some(Kubernetes {
        client_pod: client.map(name),
        server_pod: server.map(name),
        policy,
    });
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
