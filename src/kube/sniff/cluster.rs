//! What the cluster says about the captured connections: pods (for names) and
//! PeerAuthentications (for expected modes), read once per run and joined to each connection.

use super::options::SniffOptions;
use crate::kube::client::{self, KubeError};
use crate::policy::Cluster;
use serde_json::Value;
use std::net::IpAddr;

/// Pods (for names) and PeerAuthentications (for expected modes) from the cluster. Failing to
/// read them is not fatal: the capture goes on without names or policy, and says so.
pub(super) async fn load_cluster(client: &kube::Client, namespace: &str, opts: &SniffOptions) -> Option<Known> {
    let objects = match client::cluster_objects(client, None).await {
        Ok(o) => o,
        Err(KubeError::Forbidden { .. }) => match client::cluster_objects(client, Some(namespace)).await {
            Ok(o) => {
                eprintln!(
                    "mtlscope: note: cannot list pods in all namespaces; only pods in namespace '{namespace}' are \
                     shown by name"
                );
                o
            }
            Err(e) => {
                eprintln!("mtlscope: warning: connections are shown without pod names or policy: {e}");
                return None;
            }
        },
        Err(e) => {
            eprintln!("mtlscope: warning: connections are shown without pod names or policy: {e}");
            return None;
        }
    };
    for n in &objects.notes {
        eprintln!("mtlscope: note: {n}");
    }
    let policy_api = objects.peer_authentication_version.is_some();
    let mut cluster = match objects.into_cluster() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mtlscope: warning: connections are shown without pod names or policy: {e}");
            return None;
        }
    };
    if let Some(root) = &opts.root_namespace {
        cluster.set_root_namespace(root);
    }
    for w in cluster.warnings() {
        eprintln!("mtlscope: warning: {w}");
    }
    if !policy_api && !opts.no_policy {
        eprintln!(
            "mtlscope: note: this cluster does not serve Istio's PeerAuthentication API (security.istio.io): \
             connections are shown without an expected mode"
        );
    }
    Some(Known {
        cluster,
        policy: policy_api && !opts.no_policy,
    })
}

/// What the cluster says about addresses, and whether its PeerAuthentications apply (not
/// without Istio's API, nor with `--no-policy`).
pub(super) struct Known {
    cluster: Cluster,
    policy: bool,
}

/// Pod names for both ends and the expected PeerAuthentication mode, as `enrich` does for
/// `analyze --policy-from`.
pub(super) fn join_cluster(v: &mut Value, known: Option<&Known>) {
    let Some(known) = known else {
        return;
    };
    let ip = |side: &str| {
        v.pointer(&format!("/{side}/ip"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<IpAddr>().ok())
    };
    let (Some(client), Some(server)) = (ip("client"), ip("server")) else {
        return;
    };
    let port = v.pointer("/server/port").and_then(Value::as_u64).unwrap_or(0) as u16;
    let loopback = v.get("loopback").and_then(Value::as_bool).unwrap_or(false);
    let verdict = v.get("verdict").and_then(Value::as_str).unwrap_or("").to_owned();
    if let Some(mut k) = crate::pipeline::enrich::lookup(&known.cluster, client, server, port, loopback, &verdict) {
        if !known.policy {
            k.policy = None;
        }
        if let Ok(k) = serde_json::to_value(k) {
            v["kubernetes"] = k;
        }
    }
}
