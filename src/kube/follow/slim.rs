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
}
