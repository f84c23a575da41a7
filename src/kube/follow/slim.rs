//! What the pod follower keeps of each object: only what [`crate::policy::Cluster`] and the
//! target logic read. A pod as the API serves it is mostly `managedFields`, environment, volumes
//! and conditions; 10,000 of them whole would be several hundred MB of JSON trees.
//!
//! Pods are copied field by field (a field the policy engine starts to read must be added to
//! [`pod`]); other kinds lose only their bookkeeping (`managedFields`, kubectl's
//! last-applied-configuration annotation), which nothing reads.

use serde_json::{Map, Value};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The parts of a Pod that the policy engine (src/policy/objects.rs), the workload names
/// (owner references) and the follower (phase, node, container IDs) read.
pub fn pod(obj: Value) -> Value {
    let Value::Object(mut obj) = obj else {
        return obj;
    };
    let mut out = Map::new();
    for key in ["apiVersion", "kind"] {
        if let Some(v) = obj.remove(key) {
            out.insert(key.into(), v);
        }
    }
    if let Some(Value::Object(meta)) = obj.remove("metadata") {
        out.insert("metadata".into(), Value::Object(metadata(meta)));
    }
    if let Some(Value::Object(mut spec)) = obj.remove("spec") {
        let mut keep = Map::new();
        for key in ["hostNetwork", "nodeName"] {
            if let Some(v) = spec.remove(key) {
                keep.insert(key.into(), v);
            }
        }
        for key in ["containers", "initContainers"] {
            if let Some(Value::Array(cs)) = spec.remove(key) {
                let cs = cs
                    .into_iter()
                    .map(|c| pick(c, &["name", "ports", "restartPolicy"]))
                    .collect();
                keep.insert(key.into(), Value::Array(cs));
            }
        }
        out.insert("spec".into(), Value::Object(keep));
    }
    if let Some(Value::Object(mut status)) = obj.remove("status") {
        let mut keep = Map::new();
        for key in ["phase", "podIP", "podIPs"] {
            if let Some(v) = status.remove(key) {
                keep.insert(key.into(), v);
            }
        }
        for key in ["containerStatuses", "initContainerStatuses"] {
            if let Some(Value::Array(cs)) = status.remove(key) {
                let cs = cs
                    .into_iter()
                    .map(|c| pick(c, &["name", "containerID", "state"]))
                    .collect();
                keep.insert(key.into(), Value::Array(cs));
            }
        }
        out.insert("status".into(), Value::Object(keep));
    }
    Value::Object(out)
}

/// Any other object: everything but the API server's bookkeeping.
pub fn other(obj: Value) -> Value {
    let Value::Object(mut obj) = obj else {
        return obj;
    };
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.remove("managedFields");
        if let Some(Value::Object(a)) = meta.get_mut("annotations") {
            a.remove(LAST_APPLIED);
        }
    }
    Value::Object(obj)
}

fn metadata(mut meta: Map<String, Value>) -> Map<String, Value> {
    meta.remove("managedFields");
    if let Some(Value::Object(a)) = meta.get_mut("annotations") {
        a.remove(LAST_APPLIED);
    }
    meta
}

fn pick(v: Value, keys: &[&str]) -> Value {
    let Value::Object(mut m) = v else {
        return v;
    };
    let mut out = Map::new();
    for k in keys {
        if let Some(v) = m.remove(*k) {
            out.insert((*k).into(), v);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_what_the_policy_reads_drops_the_rest() {
        let p = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "namespace": "n", "labels": {"app": "a"},
                         "annotations": {LAST_APPLIED: "{}", "sidecar.istio.io/status": "{}"},
                         "ownerReferences": [{"kind": "ReplicaSet", "name": "a-5d8f"}],
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"nodeName": "w1", "containers": [{"name": "app", "image": "x", "env": [{"name": "K"}],
                     "ports": [{"containerPort": 80}]}], "volumes": [{"name": "v"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "conditions": [{"type": "Ready"}],
                       "containerStatuses": [{"name": "app", "containerID": "containerd://ab", "image": "x",
                                              "state": {"running": {}}}]}
        });
        let s = pod(p);
        assert_eq!(s.pointer("/metadata/managedFields"), None);
        assert_eq!(
            s.pointer("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration"),
            None
        );
        assert!(s.pointer("/metadata/annotations/sidecar.istio.io~1status").is_some());
        assert_eq!(
            s.pointer("/metadata/ownerReferences/0/kind"),
            Some(&json!("ReplicaSet"))
        );
        assert_eq!(s.pointer("/spec/containers/0/env"), None);
        assert_eq!(s.pointer("/spec/volumes"), None);
        assert_eq!(s.pointer("/spec/containers/0/ports/0/containerPort"), Some(&json!(80)));
        assert_eq!(s.pointer("/status/conditions"), None);
        assert_eq!(
            s.pointer("/status/containerStatuses/0/containerID"),
            Some(&json!("containerd://ab"))
        );
        assert_eq!(s.pointer("/status/containerStatuses/0/image"), None);
    }

    /// A pod as a real cluster serves it: managedFields, kubectl's annotation, environment,
    /// volumes, conditions, an Istio sidecar.
    fn realistic(i: usize) -> Value {
        let env: Vec<Value> = (0..12)
            .map(|k| json!({"name": format!("VAR_{k}"), "value": "x".repeat(24)}))
            .collect();
        let container = |name: &str| {
            json!({"name": name, "image": format!("registry.example/{name}:1.2.3"),
            "env": env, "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            "volumeMounts": [{"name": "token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
            "securityContext": {"runAsNonRoot": true}})
        };
        let status = |name: &str| {
            json!({"name": name, "containerID": format!("containerd://{:064x}", i),
            "image": "x", "imageID": "sha256:".to_owned() + &"a".repeat(64), "ready": true, "restartCount": 0,
            "state": {"running": {"startedAt": "2026-12-04T10:00:00Z"}}})
        };
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("web-5d8f-{i:05}"), "namespace": format!("ns-{}", i % 50),
                "uid": format!("{:08x}-0000-4000-8000-000000000000", i), "resourceVersion": "123456",
                "labels": {"app": "web", "pod-template-hash": "5d8f", "security.istio.io/tlsMode": "istio"},
                "annotations": {LAST_APPLIED: "{".to_owned() + &"\"k\":1,".repeat(100) + "}",
                                "sidecar.istio.io/status": "{\"initContainers\":[\"istio-init\"]}"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f", "uid": "u"}],
                "managedFields": (0..4).map(|k| json!({"manager": format!("m{k}"), "operation": "Update",
                    "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {}}}}})).collect::<Vec<_>>()},
            "spec": {"nodeName": format!("worker-{}", i % 100), "containers": [container("app"), container("istio-proxy")],
                "volumes": [{"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}],
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]},
            "status": {"phase": "Running", "podIP": format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
                "podIPs": [{"ip": "10.0.0.1"}], "qosClass": "Burstable",
                "conditions": (0..5).map(|k| json!({"type": format!("C{k}"), "status": "True",
                    "lastTransitionTime": "2026-12-04T10:00:00Z"})).collect::<Vec<_>>(),
                "containerStatuses": [status("app"), status("istio-proxy")]}})
    }

    /// Issue #16 asks what 10,000 pods cost: the JSON kept per pod, whole and slimmed. Run with
    /// `--nocapture` for the figures (docs/monitor.md quotes them).
    #[test]
    fn ten_thousand_pods_slimmed() {
        let n = 10_000;
        // Resident memory of the trees themselves (Linux; noisy when other tests run at once).
        let rss = || {
            std::fs::read_to_string("/proc/self/statm")
                .ok()
                .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<usize>().ok()))
                .map_or(0, |pages| pages * 4096)
        };
        let before = rss();
        let kept: Vec<Value> = (0..n).map(|i| pod(realistic(i))).collect();
        let slim_rss = rss().saturating_sub(before);
        let before = rss();
        let whole: Vec<Value> = (0..n).map(realistic).collect();
        let full_rss = rss().saturating_sub(before);
        eprintln!(
            "10k pods resident: {} MiB as whole JSON trees, {} MiB slimmed",
            full_rss >> 20,
            slim_rss >> 20
        );
        drop((kept, whole));
        let full: usize = (0..n).map(|i| serde_json::to_vec(&realistic(i)).unwrap().len()).sum();
        let slimmed: Vec<Value> = (0..n).map(|i| pod(realistic(i))).collect();
        let slim: usize = slimmed.iter().map(|p| serde_json::to_vec(p).unwrap().len()).sum();
        eprintln!(
            "10k pods: {} KiB of JSON whole, {} KiB slimmed ({:.0}%)",
            full / 1024,
            slim / 1024,
            100.0 * slim as f64 / full as f64
        );
        assert!(slim * 3 < full, "slimming keeps {slim} of {full} bytes");
        // What is kept still makes the same policy pods; a rebuild parses the kept text again.
        let texts: Vec<Vec<u8>> = slimmed.iter().map(|p| serde_json::to_vec(p).unwrap()).collect();
        drop(slimmed);
        let started = std::time::Instant::now();
        let parsed: Vec<Value> = texts.iter().map(|t| serde_json::from_slice(t).unwrap()).collect();
        let cluster = crate::policy::Cluster::from_objects(parsed).unwrap();
        eprintln!(
            "10k pods: a rebuild (parse + Cluster::from_objects) takes {:?}",
            started.elapsed()
        );
        assert_eq!(cluster.pods().len(), n);
        assert!(cluster
            .pods()
            .iter()
            .all(|p| p.sidecar && !p.ports.is_empty() && p.node.is_some()));
    }
}
