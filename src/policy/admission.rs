//! The checks Istio's admission makes on a PeerAuthentication (the CRD's schema and enum, its
//! CEL rules, the validating webhook), so that a policy the API server would have refused is not
//! used; a refused one still says which pods it was meant for.

use super::fields::{json_type, string_map, Meta, ObjectError};
use super::model::PeerAuthentication;
use super::timestamp::Timestamp;
use super::types::Mode;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The API versions of `security.istio.io` that carry PeerAuthentication (same schema).
pub(super) const PA_API_VERSIONS: [&str; 2] = ["security.istio.io/v1", "security.istio.io/v1beta1"];

/// A PeerAuthentication Istio would refuse: why, and which pods it was meant for.
#[derive(Debug)]
pub(super) struct PolicyRejection {
    pub(super) error: ObjectError,
    /// The selector's labels once they could be read and are not empty; `None`: every pod of
    /// its namespace (no selector, or one that could not be read).
    pub(super) selector: Option<BTreeMap<String, String>>,
}

impl From<ObjectError> for PolicyRejection {
    fn from(error: ObjectError) -> PolicyRejection {
        PolicyRejection { error, selector: None }
    }
}

/// `metadata.creationTimestamp`: `None` when absent (Go's zero time, older than any other).
fn parse_creation(meta: &Meta) -> Result<Option<Timestamp>, ObjectError> {
    match &meta.creation_timestamp {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(Timestamp::parse_rfc3339(s)?)),
        Some(other) => Err(ObjectError::CreationTimestampType {
            found: json_type(other),
        }),
    }
}

/// Reads `spec.mtls`-shaped values: absent, null, `{}` and `{mode: null}` are UNSET.
fn parse_mtls(v: Option<&Value>, field: &str) -> Result<Mode, ObjectError> {
    match v {
        None | Some(Value::Null) => Ok(Mode::Unset),
        Some(Value::Object(m)) => match m.get("mode") {
            None | Some(Value::Null) => Ok(Mode::Unset),
            Some(Value::String(s)) => Mode::parse(s).ok_or_else(|| ObjectError::UnknownMode {
                field: field.to_owned(),
                mode: s.clone(),
            }),
            Some(other) => Err(ObjectError::ModeNotAString {
                field: field.to_owned(),
                value: other.clone(),
            }),
        },
        Some(other) => Err(ObjectError::NotAnObject {
            field: field.to_owned(),
            found: json_type(other),
        }),
    }
}

/// Go's `ParseUint` as the CEL rule applies it to a `portLevelMtls` key: digits only (no sign,
/// no spaces), 1-65535.
fn port_key(key: &str) -> Option<u16> {
    Some(key)
        .filter(|k| !k.is_empty() && k.len() <= 10 && k.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|k| k.parse::<u64>().ok())
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&n| n != 0)
}

/// A PeerAuthentication (kind and apiVersion already checked) that passes the checks Istio's
/// admission makes.
pub(super) fn parse_peer_authentication(
    obj: &Map<String, Value>,
    meta: &Meta,
    api_version: &str,
    source: Option<&Path>,
) -> Result<PeerAuthentication, PolicyRejection> {
    let id = meta.identity()?;
    let creation_timestamp = parse_creation(meta)?;
    let created = creation_timestamp.and(meta.creation_timestamp.as_ref().and_then(Value::as_str));
    let empty = Map::new();
    let spec = match obj.get("spec") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(ObjectError::NotAnObject {
                field: "spec".into(),
                found: json_type(other),
            }
            .into())
        }
    };

    let selector = match spec.get("selector") {
        None | Some(Value::Null) => None,
        Some(Value::Object(sel)) => {
            let labels = string_map(sel.get("matchLabels"), "spec.selector.matchLabels")?;
            for (k, v) in &labels {
                if k.is_empty() {
                    return Err(ObjectError::EmptySelectorKey.into());
                }
                if k.contains('*') || v.contains('*') {
                    let (key, value) = (k.clone(), v.clone());
                    return Err(ObjectError::SelectorWildcard { key, value }.into());
                }
            }
            (!labels.is_empty()).then_some(labels)
        }
        Some(other) => {
            return Err(ObjectError::NotAnObject {
                field: "spec.selector".into(),
                found: json_type(other),
            }
            .into())
        }
    };
    // From here on, a rejection knows which pods the policy was meant for.
    let fail = |error: ObjectError| PolicyRejection {
        error,
        selector: selector.clone(),
    };

    let mode = parse_mtls(spec.get("mtls"), "spec.mtls").map_err(fail)?;

    let mut port_level = BTreeMap::new();
    match spec.get("portLevelMtls") {
        None | Some(Value::Null) => {}
        Some(Value::Object(ports)) => {
            if selector.is_none() {
                return Err(fail(ObjectError::PortLevelWithoutSelector));
            }
            if ports.is_empty() {
                return Err(fail(ObjectError::PortLevelEmpty));
            }
            for (key, value) in ports {
                let port = port_key(key).ok_or_else(|| fail(ObjectError::PortLevelKey { key: key.clone() }))?;
                if value.is_null() {
                    return Err(fail(ObjectError::PortLevelNull { port }));
                }
                let m = parse_mtls(Some(value), &format!("portLevelMtls[{port}]")).map_err(fail)?;
                port_level.insert(port, m);
            }
        }
        Some(other) => {
            return Err(fail(ObjectError::NotAMap {
                field: "portLevelMtls".into(),
                found: json_type(other),
            }))
        }
    }

    Ok(PeerAuthentication {
        namespace: id.namespace,
        name: id.name,
        api_version: api_version.to_owned(),
        creation_timestamp,
        created: created.map(str::to_owned),
        selector,
        mode,
        port_level,
        source: source.map(Path::to_path_buf),
    })
}

#[cfg(test)]
mod tests {
    use crate::policy::test_support::*;
    use crate::policy::{Cluster, Mode};
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn invalid_policies_rejected_and_skipped() {
        let c = cluster(vec![
            reviews(),
            pa("bookinfo", "lower", T0, json!({"mtls": {"mode": "strict"}})),
            pa("bookinfo", "number", T0, json!({"mtls": {"mode": 3}})),
            pa(
                "bookinfo",
                "port0",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}}, "portLevelMtls": {"0": {"mode": "STRICT"}}
                }),
            ),
            pa(
                "bookinfo",
                "port-big",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}}, "portLevelMtls": {"65536": {"mode": "STRICT"}}
                }),
            ),
            pa(
                "bookinfo",
                "port-sign",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}}, "portLevelMtls": {"+80": {"mode": "STRICT"}}
                }),
            ),
            pa(
                "bookinfo",
                "port-null",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}}, "portLevelMtls": {"80": null}
                }),
            ),
            pa(
                "bookinfo",
                "port-empty",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}}, "portLevelMtls": {}
                }),
            ),
            pa(
                "bookinfo",
                "wildcard",
                T0,
                json!({"selector": {"matchLabels": {"app": "*"}}}),
            ),
            pa("bookinfo", "bad-time", "yesterday", json!({})),
            pa(
                "bookinfo",
                "ratings-only",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "ratings"}}, "mtls": {"mode": "bogus"}
                }),
            ),
        ]);
        assert!(c.policies().is_empty());
        let names: Vec<_> = c.rejected().iter().map(|r| r.name.as_deref().unwrap_or("")).collect();
        assert_eq!(names.len(), 10, "{names:?}");
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Permissive);
        // Every rejected policy meant for reviews is explained; the ratings one is not.
        assert_eq!(d.ignored.len(), 9);
        assert!(d
            .ignored
            .iter()
            .all(|i| i.reason.starts_with("invalid, Istio would reject it")));
        assert!(!d.ignored.iter().any(|i| i.name == "ratings-only"));
        let lower = c
            .rejected()
            .iter()
            .find(|r| r.name.as_deref() == Some("lower"))
            .unwrap();
        assert!(lower.reason.contains("\"strict\" is not one of"), "{}", lower.reason);
    }

    #[test]
    fn policy_without_namespace_rejected() {
        let mut p = pa("x", "nons", T0, json!({}));
        p["metadata"].as_object_mut().unwrap().remove("namespace");
        let c = cluster(vec![p]);
        assert_eq!(c.rejected().len(), 1);
        assert!(c.rejected()[0].reason.contains("metadata.namespace is missing"));
    }

    #[test]
    fn loads_invalid_policies_with_reasons() {
        let c = Cluster::load_paths(&[data("invalid")]).unwrap();
        assert_eq!(c.policies().len(), 1);
        let reasons: BTreeMap<_, _> = c
            .rejected()
            .iter()
            .map(|r| (r.name.clone().unwrap_or_default(), r.reason.clone()))
            .collect();
        assert_eq!(reasons.len(), 5);
        assert!(reasons["lowercase-mode"].contains("\"strict\" is not one of"));
        assert_eq!(reasons["ports-without-selector"], "portLevelMtls requires selector");
        assert!(reasons["port-zero"].contains("between 1-65535"));
        assert!(reasons["port-too-large"].contains("\"70000\""));
        assert!(reasons["wrong-version"].contains("security.istio.io/v1alpha1"));
        let r = &c.rejected()[0];
        let text = r.to_string();
        assert!(
            text.contains("invalid-policies.yaml: PeerAuthentication bookinfo/lowercase-mode"),
            "{text}"
        );
    }
}
