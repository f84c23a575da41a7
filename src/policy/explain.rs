//! `policy explain -o json`: the decision for one pod and port in the shape the issue fixed,
//! with its keys in that order. The text form is the CLI's (`cli::explain`).

use super::model::Pod;
use super::types::{DecidedBy, Decision, Ignored, Mode};
use serde::Serialize;
use serde_json::Value;

/// `policy explain -o json`: exactly
/// `{"namespace","pod","port","mode","decided_by":{"kind","namespace","name","level"},"ignored":[{"namespace","name","reason"}]}`
/// with the keys in that order when serialized with `serde_json::to_string`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub namespace: String,
    pub pod: String,
    pub port: u16,
    pub mode: Mode,
    pub decided_by: DecidedBy,
    pub ignored: Vec<Ignored>,
}

impl Explanation {
    pub fn new(pod: &Pod, port: u16, decision: &Decision) -> Explanation {
        Explanation {
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
            port,
            mode: decision.mode,
            decided_by: decision.decided_by.clone(),
            ignored: decision.ignored.clone(),
        }
    }
}

/// [`Explanation`] as a JSON value. `serde_json::Value` sorts keys unless serde_json's
/// `preserve_order` feature is on; print an [`Explanation`] directly to keep the issue's order.
pub fn explain_json(pod: &Pod, port: u16, decision: &Decision) -> Value {
    serde_json::to_value(Explanation::new(pod, port, decision)).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_support::*;
    use serde_json::json;

    #[test]
    fn explain_json_has_the_issue_shape() {
        let c = cluster(vec![
            reviews(),
            pa("istio-system", "default", T0, json!({"mtls": {"mode": "STRICT"}})),
            pa("istio-system", "later", T1, json!({"mtls": {"mode": "DISABLE"}})),
        ]);
        let p = c.pod("bookinfo", "reviews-v1").unwrap();
        let d = c.effective(p, 9080);
        let text = serde_json::to_string(&Explanation::new(p, 9080, &d)).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"namespace":"bookinfo","pod":"reviews-v1","port":9080,"mode":"STRICT","#,
                r#""decided_by":{"kind":"PeerAuthentication","namespace":"istio-system","name":"default","level":"mesh"},"#,
                r#""ignored":[{"namespace":"istio-system","name":"later","reason":"another mesh-level policy applies: "#,
                r#"istio-system/default is older (2024-01-01T00:00:00Z vs 2024-01-02T00:00:00Z); Istio uses only the oldest"}]}"#
            )
        );
        assert_eq!(explain_json(p, 9080, &d), serde_json::from_str::<Value>(&text).unwrap());
    }

    #[test]
    fn explain_json_default_level() {
        let c = cluster(vec![reviews()]);
        let p = c.pod("bookinfo", "reviews-v1").unwrap();
        let j = explain_json(p, 9080, &c.effective(p, 9080));
        assert_eq!(
            j["decided_by"],
            json!({"kind": "default", "namespace": null, "name": null, "level": "default"})
        );
        assert_eq!(j["mode"], "PERMISSIVE");
        assert_eq!(j["ignored"], json!([]));
    }

    #[test]
    fn bookinfo_dump_explain_json() {
        let c = bookinfo();
        let p = c.find_pod("bookinfo", "productpage-v1-d5789fdfb-8l2rw").unwrap();
        let j = explain_json(p, 9080, &c.effective(p, 9080));
        assert_eq!(
            j,
            json!({
                "namespace": "bookinfo",
                "pod": "productpage-v1-d5789fdfb-8l2rw",
                "port": 9080,
                "mode": "STRICT",
                "decided_by": {
                    "kind": "PeerAuthentication",
                    "namespace": "bookinfo",
                    "name": "productpage-ports",
                    "level": "port"
                },
                "ignored": [{
                    "namespace": "istio-system",
                    "name": "mesh-permissive",
                    "reason": "another mesh-level policy applies: same creationTimestamp as \
                               istio-system/default (2024-05-14T09:02:33Z); Istio breaks the tie \
                               by name, then namespace, and uses only that one"
                }]
            })
        );
    }
}
