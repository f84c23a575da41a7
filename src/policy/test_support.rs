//! Fixtures the engine's tests share: objects as `kubectl get -o json` writes them, the
//! bookinfo dump in tests/data/policy, and short ways to ask for a decision.

use super::{Cluster, Decision, Level};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub(super) fn pa(ns: &str, name: &str, created: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
        "spec": spec,
    })
}

pub(super) fn pod(ns: &str, name: &str, ip: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [
            {"name": "app", "ports": [{"containerPort": 9080, "name": "http"}]},
            {"name": "istio-proxy", "ports": [{"containerPort": 15090, "name": "http-envoy-prom"}]}
        ]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    })
}

pub(super) fn reviews() -> Value {
    pod(
        "bookinfo",
        "reviews-v1",
        "10.0.0.2",
        json!({"app": "reviews", "version": "v1"}),
    )
}

pub(super) const T0: &str = "2024-01-01T00:00:00Z";
pub(super) const T1: &str = "2024-01-02T00:00:00Z";
pub(super) const T2: &str = "2024-01-03T00:00:00Z";

pub(super) fn cluster(objects: Vec<Value>) -> Cluster {
    Cluster::from_objects(objects).expect("objects load")
}

/// Effective decision for bookinfo/reviews-v1 on `port`.
pub(super) fn decide(c: &Cluster, port: u16) -> Decision {
    let p = c.pod("bookinfo", "reviews-v1").expect("pod loaded");
    c.effective(p, port)
}

pub(super) fn by(d: &Decision) -> (Level, Option<&str>, Option<&str>) {
    (
        d.decided_by.level,
        d.decided_by.namespace.as_deref(),
        d.decided_by.name.as_deref(),
    )
}

pub(super) fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/policy")
        .join(rel)
}

pub(super) fn bookinfo() -> Cluster {
    Cluster::load_paths(&[data("bookinfo")]).expect("bookinfo dump loads")
}
