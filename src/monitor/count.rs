//! The monitor's [`Output`]: each connection's final verdict, once, into
//! `mtlscope_connections_total`, with labels from the cluster snapshot of the moment.
//!
//! Rules (issue #16's contract):
//! - workloads are the pods' owners as Istio names them ([`crate::policy::Workload`]); an
//!   address that is no known pod is workload and namespace `unknown`;
//! - `destination_port` is the server's port; `expected_mode` is the server pod's effective
//!   PeerAuthentication mode for it (`unknown` when the server is no known pod), `finding` what
//!   the verdict means under it (`policy::finding`);
//! - loopback connections (the app <-> sidecar leg inside a pod) are not counted;
//! - across nodes, each connection is counted by one monitor: the one whose captured pods
//!   include the server, or, when the server is neither a known pod nor a Service ClusterIP
//!   (egress out of the cluster), the one that saw it. A connection to a pod of another node,
//!   or to a ClusterIP (which that node sees translated to a pod), is left to the server's node.

use crate::monitor::metrics::{ConnectionLabels, Metrics};
use crate::monitor::view::ClusterView;
use crate::pipeline::record::{is_loopback, FlowReport, Output};
use crate::policy::{self, Cluster, Finding, Pod};
use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// Which pods this monitor captures in: the server end of a connection counts here only if it
/// is one of them.
#[derive(Debug, Default)]
pub struct LocalPods {
    /// `--node`: every pod scheduled there. `None` outside a cluster, where one monitor sees
    /// everything it will ever count, so every known pod is local.
    pub node: Option<String>,
    /// The names of the targets captured now (`NAMESPACE/POD` for pods).
    pub targets: RwLock<BTreeSet<String>>,
}

impl LocalPods {
    pub fn has(&self, pod: &Pod) -> bool {
        let Some(node) = &self.node else { return true };
        pod.node.as_deref() == Some(node.as_str()) || {
            let targets = self.targets.read().unwrap_or_else(|e| e.into_inner());
            targets.contains(&format!("{}/{}", pod.namespace, pod.name))
        }
    }
}

const UNKNOWN: &str = "unknown";

/// What counting needs of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Decided {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub verdict: &'static str,
    pub confidence: &'static str,
}

impl Decided {
    pub fn of(r: &FlowReport) -> Decided {
        Decided {
            client: SocketAddr::new(r.client.ip, r.client.port),
            server: SocketAddr::new(r.server.ip, r.server.port),
            verdict: r.verdict.verdict.name(),
            confidence: r.verdict.confidence.name(),
        }
    }
}

/// The labels a connection is counted under, or `None` when this monitor does not count it.
pub fn labels(cluster: &Cluster, local: &LocalPods, r: &Decided) -> Option<ConnectionLabels> {
    if is_loopback(r.client.ip(), r.server.ip()) {
        return None;
    }
    let server = cluster.pod_by_ip(r.server.ip());
    match server {
        Some(pod) if !local.has(pod) => return None,
        None if cluster.service_by_ip(r.server.ip()).is_some() => return None,
        _ => {}
    }
    let client = cluster.pod_by_ip(r.client.ip());
    let workload = |p: Option<&Pod>| match p {
        Some(p) => (p.workload_name().to_string(), p.namespace.clone()),
        None => (UNKNOWN.to_string(), UNKNOWN.to_string()),
    };
    let (source_workload, source_workload_namespace) = workload(client);
    let (destination_workload, destination_workload_namespace) = workload(server);
    let verdict = r.verdict;
    let (expected_mode, finding) = match server {
        Some(pod) => {
            let mode = cluster.effective(pod, r.server.port()).mode;
            let finding = match policy::finding(mode, verdict) {
                None => "none",
                Some(Finding::Violation(_)) => "violation",
                Some(Finding::Warning(_)) => "warning",
                Some(Finding::Note(_)) => "note",
            };
            (mode.as_str(), finding)
        }
        None => (UNKNOWN, "none"),
    };
    Some(ConnectionLabels {
        source_workload,
        source_workload_namespace,
        destination_workload,
        destination_workload_namespace,
        destination_port: r.server.port().to_string(),
        verdict: verdict.into(),
        confidence: r.confidence.into(),
        expected_mode: expected_mode.into(),
        finding: finding.into(),
    })
}

/// Counts decided connections; keeps nothing of them.
pub struct Counting {
    pub view: Arc<ClusterView>,
    pub local: Arc<LocalPods>,
    pub metrics: Arc<Metrics>,
}

impl Output for Counting {
    fn wants_closed(&self) -> bool {
        false
    }
    fn decided(&mut self, report: &FlowReport) -> io::Result<()> {
        if let Some(l) = labels(&self.view.get(), &self.local, &Decided::of(report)) {
            self.metrics.connections.get_or_create(&l).inc();
        }
        Ok(())
    }
    fn closed(&mut self, _report: FlowReport) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Cluster;
    use serde_json::json;

    fn cluster() -> Cluster {
        let pod = |ns: &str, name: &str, ip: &str, node: &str, owner: serde_json::Value| {
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"namespace": ns, "name": name, "ownerReferences": owner,
                                "labels": {"app": name, "pod-template-hash": "abc12"},
                                "annotations": {"sidecar.istio.io/status": "{}"}},
                   "spec": {"nodeName": node, "containers": [{"name": "app"}]},
                   "status": {"phase": "Running", "podIP": ip}})
        };
        let rs = |n: &str| json!([{"kind": "ReplicaSet", "name": n, "controller": true}]);
        let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
            pod("shop", "web-abc12-x", "10.0.0.1", "node-a", rs("web-abc12")),
            pod("shop", "db-0", "10.0.0.2", "node-a", json!([{"kind": "StatefulSet", "name": "db", "controller": true}])),
            pod("shop", "far", "10.0.1.9", "node-b", json!([])),
            {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "shop", "name": "db"},
             "spec": {"clusterIP": "10.96.0.10", "selector": {"app": "db-0"}, "ports": [{"port": 5432}]}},
            {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
             "metadata": {"namespace": "shop", "name": "strict"}, "spec": {"mtls": {"mode": "STRICT"}}},
        ]});
        Cluster::from_objects(vec![objects]).unwrap()
    }

    fn report(client: &str, server: &str, verdict: &'static str) -> Decided {
        Decided {
            client: client.parse().unwrap(),
            server: server.parse().unwrap(),
            verdict,
            confidence: "certain",
        }
    }

    fn node(n: &str) -> LocalPods {
        LocalPods {
            node: Some(n.into()),
            ..LocalPods::default()
        }
    }

    #[test]
    fn labels_name_workloads_ports_modes_and_findings() {
        let c = cluster();
        let l = labels(
            &c,
            &node("node-a"),
            &report("10.0.0.1:40000", "10.0.0.2:5432", "plaintext"),
        )
        .unwrap();
        assert_eq!(
            (l.source_workload.as_str(), l.source_workload_namespace.as_str()),
            ("web", "shop")
        );
        assert_eq!(
            (l.destination_workload.as_str(), l.destination_port.as_str()),
            ("db", "5432")
        );
        assert_eq!((l.verdict.as_str(), l.confidence.as_str()), ("plaintext", "certain"));
        assert_eq!((l.expected_mode.as_str(), l.finding.as_str()), ("STRICT", "violation"));
        let m = labels(&c, &node("node-a"), &report("10.0.0.1:40000", "10.0.0.2:5432", "mtls")).unwrap();
        assert_eq!(m.finding, "none");
    }

    #[test]
    fn unknown_addresses_are_unknown_and_egress_counts_where_seen() {
        let c = cluster();
        let l = labels(
            &c,
            &node("node-a"),
            &report("10.0.0.1:40000", "93.184.216.34:443", "tls"),
        )
        .unwrap();
        assert_eq!(
            (
                l.destination_workload.as_str(),
                l.destination_workload_namespace.as_str()
            ),
            ("unknown", "unknown")
        );
        assert_eq!((l.expected_mode.as_str(), l.finding.as_str()), ("unknown", "none"));
        let l = labels(
            &c,
            &node("node-a"),
            &report("192.168.5.5:40000", "10.0.0.2:5432", "mtls"),
        )
        .unwrap();
        assert_eq!(
            (l.source_workload.as_str(), l.destination_workload.as_str()),
            ("unknown", "db")
        );
    }

    #[test]
    fn loopback_is_not_counted() {
        let c = cluster();
        assert!(labels(
            &c,
            &node("node-a"),
            &report("127.0.0.1:40000", "127.0.0.1:15001", "plaintext")
        )
        .is_none());
        assert!(labels(
            &c,
            &node("node-a"),
            &report("10.0.0.1:40000", "10.0.0.1:8080", "plaintext")
        )
        .is_none());
    }

    #[test]
    fn each_connection_is_counted_by_the_servers_node() {
        let c = cluster();
        // Client here, server on node-b: node-b counts it.
        assert!(labels(&c, &node("node-a"), &report("10.0.0.1:40000", "10.0.1.9:80", "mtls")).is_none());
        assert!(labels(&c, &node("node-b"), &report("10.0.0.1:40000", "10.0.1.9:80", "mtls")).is_some());
        // A ClusterIP: the server's node sees the pod address instead.
        assert!(labels(
            &c,
            &node("node-a"),
            &report("10.0.0.1:40000", "10.96.0.10:5432", "mtls")
        )
        .is_none());
        // A pod captured as a target counts even before its node is known.
        let local = node("node-c");
        local.targets.write().unwrap().insert("shop/far".into());
        assert!(labels(&c, &local, &report("10.0.0.1:40000", "10.0.1.9:80", "mtls")).is_some());
        // Outside a cluster every known pod is local.
        assert!(labels(
            &c,
            &LocalPods::default(),
            &report("10.0.0.1:40000", "10.0.1.9:80", "mtls")
        )
        .is_some());
    }
}
