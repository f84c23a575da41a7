//! What the cluster says about the captured connections: pods (for names) and
//! PeerAuthentications (for expected modes), read once per run and joined to each connection.

use super::options::SniffOptions;
use crate::kube::client::{self, KubeError};
use crate::pipeline::enrich;
use crate::pipeline::record::FlowReport;
use crate::policy::Cluster;

/// Pods (for names) and PeerAuthentications (for expected modes) from the cluster. Failing to
/// read them is not fatal: the capture goes on without names or policy, and says so.
pub(super) async fn load_cluster(client: &kube::Client, namespace: &str, opts: &SniffOptions) -> Option<Known> {
    let objects = match client::cluster_objects(client, None).await {
        Ok(o) => o,
        // RBAC for one namespace only (a RoleBinding): read that namespace, keep its pod names.
        Err(KubeError::Forbidden { resource, .. }) => match client::cluster_objects(client, Some(namespace)).await {
            Ok(o) => {
                eprintln!(
                    "mtlscope: note: listing {resource} in all namespaces is forbidden: read namespace '{namespace}' \
                     only, so only its pods are shown by name (others by IP)"
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
pub(super) fn join_cluster(report: &mut FlowReport, known: Option<&Known>) {
    let Some(known) = known else {
        return;
    };
    let (client, server) = (report.client, report.server);
    let verdict = report.verdict.verdict.name();
    if let Some(mut k) = enrich::lookup(
        &known.cluster,
        client.ip,
        server.ip,
        server.port,
        report.loopback,
        verdict,
    ) {
        if !known.policy {
            k.policy = None;
        }
        report.kubernetes = Some(k);
    }
}
