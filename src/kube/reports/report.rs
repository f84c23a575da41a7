//! The OpenReports `openreports.io/v1alpha1` Report (github.com/openreports/reports-api,
//! config/crd/openreports.io_reports.yaml): one per namespace, named `mtlscope`, one result per
//! server workload and port, built from Prometheus's sums ([`crate::promql::queries`]); and
//! writing them: replaced in place with the resourceVersion read, created when missing, deleted
//! when their namespace has no more data.

use super::error::ReportsError;
use crate::promql::Sample;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Every Report this writes is named so: one per namespace, found again on the next round.
pub const REPORT_NAME: &str = "mtlscope";
/// The label that marks them (and that the stale-Report sweep selects on).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "mtlscope");
/// The annotation naming the monitor (POD_NAME) that wrote it last.
pub const WRITTEN_BY: &str = "mtlscope.io/written-by";
/// The policy every result is about.
pub const POLICY: &str = "mtlscope-peer-authentication";

const VERDICTS: [&str; 5] = ["mtls", "tls", "plaintext", "encrypted", "no-data"];

pub fn api_resource() -> ApiResource {
    ApiResource {
        group: "openreports.io".into(),
        version: "v1alpha1".into(),
        api_version: "openreports.io/v1alpha1".into(),
        kind: "Report".into(),
        plural: "reports".into(),
    }
}

#[derive(Default)]
struct Port {
    verdicts: BTreeMap<String, u64>,
    findings: BTreeMap<String, u64>,
    /// Connections per expected mode: a PeerAuthentication may have changed within the window.
    modes: BTreeMap<String, u64>,
}

/// The Reports' bodies per namespace, from the series of [`crate::promql::queries::REPORT_BY`].
/// Namespaces with no connection in the window get none. `now`: Unix seconds.
pub fn build(samples: &[Sample], window: Duration, now: i64, writer: &str) -> BTreeMap<String, Value> {
    let mut by_ns: BTreeMap<String, BTreeMap<(String, String), Port>> = BTreeMap::new();
    for s in samples {
        let n = if s.value.is_finite() {
            s.value.round().max(0.0) as u64
        } else {
            0
        };
        let ns = s.label("destination_workload_namespace");
        // `unknown`: the server was no known pod; there is no namespace to write to.
        if n == 0 || ns.is_empty() || ns == "unknown" {
            continue;
        }
        let port = by_ns
            .entry(ns.to_owned())
            .or_default()
            .entry((
                s.label("destination_workload").to_owned(),
                s.label("destination_port").to_owned(),
            ))
            .or_default();
        *port.verdicts.entry(s.label("verdict").to_owned()).or_default() += n;
        *port.findings.entry(s.label("finding").to_owned()).or_default() += n;
        *port.modes.entry(s.label("expected_mode").to_owned()).or_default() += n;
    }
    let window_text = humantime::format_duration(window).to_string();
    by_ns
        .into_iter()
        .map(|(ns, ports)| {
            let mut summary = BTreeMap::from([("pass", 0u64), ("fail", 0), ("warn", 0), ("error", 0), ("skip", 0)]);
            let results: Vec<Value> = ports
                .iter()
                .map(|((workload, port), p)| {
                    let r = result(&ns, workload, port, p, &window_text, now);
                    if let Some(k) = r["result"].as_str().and_then(|k| summary.get_mut(k)) {
                        *k += 1;
                    }
                    r
                })
                .collect();
            let body = json!({
                "apiVersion": "openreports.io/v1alpha1",
                "kind": "Report",
                "metadata": {
                    "name": REPORT_NAME,
                    "namespace": ns,
                    "labels": {MANAGED_BY.0: MANAGED_BY.1},
                    "annotations": {WRITTEN_BY: writer},
                },
                "source": "mtlscope",
                "scope": {"apiVersion": "v1", "kind": "Namespace", "name": ns},
                "summary": summary,
                "results": results,
            });
            (ns, body)
        })
        .collect()
}

fn get(m: &BTreeMap<String, u64>, k: &str) -> u64 {
    m.get(k).copied().unwrap_or(0)
}

/// One result: fail on a violation (STRICT and still plaintext or TLS without a certificate),
/// warn when a PERMISSIVE (or UNSET, DISABLE) port still has such clients or a warning
/// finding, pass otherwise.
fn result(ns: &str, workload: &str, port: &str, p: &Port, window: &str, now: i64) -> Value {
    let mode = p
        .modes
        .iter()
        .max_by_key(|(_, n)| **n)
        .map_or("UNSET", |(m, _)| m.as_str());
    let insecure = get(&p.verdicts, "plaintext") + get(&p.verdicts, "tls");
    let violations = get(&p.findings, "violation");
    let warnings = get(&p.findings, "warning");
    let (result, message) = if violations > 0 || (mode == "STRICT" && insecure > 0) {
        (
            "fail",
            format!(
                "{workload}:{port} expects STRICT mTLS but saw {insecure} plaintext or TLS-without-certificate \
                 connection(s) ({violations} policy violation(s)) in the last {window}"
            ),
        )
    } else if insecure > 0 || warnings > 0 {
        (
            "warn",
            format!(
                "{workload}:{port} is {mode}: {insecure} plaintext or TLS-without-certificate connection(s) in the \
                 last {window}; `kubectl mtlscope readiness -n {ns}` names the clients to fix before STRICT"
            ),
        )
    } else {
        (
            "pass",
            format!("{workload}:{port} ({mode}): every connection in the last {window} is as its mode allows"),
        )
    };
    let mut properties = Map::new();
    properties.insert("workload".into(), workload.into());
    properties.insert("port".into(), port.into());
    properties.insert("expectedMode".into(), mode.into());
    properties.insert("window".into(), window.into());
    for v in VERDICTS {
        properties.insert(v.into(), get(&p.verdicts, v).to_string().into());
    }
    properties.insert("violations".into(), violations.to_string().into());
    properties.insert("warnings".into(), warnings.to_string().into());
    let mut r = json!({
        "source": "mtlscope",
        "policy": POLICY,
        "rule": format!("{workload}:{port}"),
        "category": "mTLS",
        "result": result,
        // Warn results are not scored (the CRD: "non-scored policies whose requirements were
        // not met").
        "scored": result != "warn",
        "message": message,
        "properties": properties,
        "timestamp": {"seconds": now, "nanos": 0},
    });
    match result {
        "fail" => r["severity"] = "high".into(),
        "warn" => r["severity"] = "medium".into(),
        _ => {}
    }
    r
}

/// Write one round: each Report replaced in place (or created), then the Reports of namespaces
/// that no longer have data deleted. Returns the namespaces written.
pub async fn write(client: &kube::Client, reports: BTreeMap<String, Value>) -> Result<Vec<String>, ReportsError> {
    let ar = api_resource();
    let mut written = Vec::new();
    for (ns, body) in &reports {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        let err = |verb, e| ReportsError::api(verb, "reports.openreports.io", ns, REPORT_NAME, e);
        let mut obj: DynamicObject = serde_json::from_value(body.clone()).map_err(|e| ReportsError::Encode {
            namespace: ns.clone(),
            message: e.to_string(),
        })?;
        let existing = api.get_opt(REPORT_NAME).await.map_err(|e| err("get", e))?;
        let outcome = match existing {
            Some(old) => {
                obj.metadata.resource_version = old.metadata.resource_version;
                api.replace(REPORT_NAME, &PostParams::default(), &obj).await.map(|_| ())
            }
            None => api.create(&PostParams::default(), &obj).await.map(|_| ()),
        };
        match outcome {
            Ok(()) => written.push(ns.clone()),
            // Changed since read (a 409): the next round writes it again. A namespace being
            // deleted (404, 403 "is being terminated") takes its Report with it.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {}
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("being terminated") => {}
            Err(e) => {
                return Err(err(
                    if obj.metadata.resource_version.is_some() {
                        "update"
                    } else {
                        "create"
                    },
                    e,
                ))
            }
        }
    }
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    let list = all
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| ReportsError::api("list", "reports.openreports.io", "", "", e))?;
    for old in list.items {
        let (Some(ns), Some(name)) = (old.metadata.namespace.as_deref(), old.metadata.name.as_deref()) else {
            continue;
        };
        if name != REPORT_NAME || reports.contains_key(ns) {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(ReportsError::api("delete", "reports.openreports.io", ns, name, e)),
        }
    }
    Ok(written)
}
