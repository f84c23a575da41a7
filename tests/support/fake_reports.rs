//! Lease (`coordination.k8s.io/v1`) and OpenReports Report (`openreports.io/v1alpha1`) routes
//! for the fake API server, through its [`Builder::handler`](super::fake_apiserver::Builder)
//! hook: get, create, replace (with the compare-and-swap on `metadata.resourceVersion` the
//! real server does: a stale one is a 409 Conflict), delete, and the cluster-wide list of
//! Reports by label. Every Report write is logged with the monitor that made it (the
//! `mtlscope.io/written-by` annotation), so a test can say who wrote.
#![allow(dead_code)]

use crate::fake_apiserver::{RecordedRequest, Reply, Store};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// One Report create or replace the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportWrite {
    pub verb: &'static str,
    pub namespace: String,
    pub writer: String,
}

/// The writes log shared with the handler.
#[derive(Clone, Default)]
pub struct Writes(Arc<Mutex<Vec<ReportWrite>>>);

impl Writes {
    pub fn all(&self) -> Vec<ReportWrite> {
        self.0.lock().unwrap().clone()
    }
}

struct Kind {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
}

const LEASE: Kind = Kind {
    group: "coordination.k8s.io",
    version: "v1",
    plural: "leases",
    kind: "Lease",
};
const REPORT: Kind = Kind {
    group: "openreports.io",
    version: "v1alpha1",
    plural: "reports",
    kind: "Report",
};

/// The handler to pass to `Builder::handler`, logging Report writes into `writes`.
pub fn handler(writes: Writes) -> impl Fn(&RecordedRequest, &mut Store) -> Option<Reply> + Send + Sync + 'static {
    move |req, store| {
        let seg: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
        for k in [&LEASE, &REPORT] {
            match seg.as_slice() {
                ["apis", g, v, "namespaces", ns, p, rest @ ..]
                    if *g == k.group && *v == k.version && *p == k.plural =>
                {
                    return Some(route(k, req, store, ns, rest.first().copied(), &writes));
                }
                ["apis", g, v, p] if *g == k.group && *v == k.version && *p == k.plural && req.method == "GET" => {
                    return Some(list_all(k, req, store));
                }
                _ => {}
            }
        }
        None
    }
}

fn conflict(k: &Kind, name: &str) -> Reply {
    Reply::status(
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {}.{} \"{name}\": the object has been modified; please apply your \
             changes to the latest version and try again",
            k.plural, k.group
        ),
        Some(json!({"name": name, "group": k.group, "kind": k.plural})),
    )
}

fn not_found(k: &Kind, name: &str) -> Reply {
    Reply::status(
        404,
        "NotFound",
        &format!("{}.{} \"{name}\" not found", k.plural, k.group),
        Some(json!({"name": name, "group": k.group, "kind": k.plural})),
    )
}

/// Store a new version: the server, not the client, picks the resourceVersion.
fn store_new(store: &mut Store, mut obj: Value, k: &Kind, ns: &str) -> Value {
    obj["apiVersion"] = json!(format!("{}/{}", k.group, k.version));
    obj["kind"] = json!(k.kind);
    obj["metadata"]["namespace"] = json!(ns);
    if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    store.insert(obj);
    store
        .get(k.group, k.kind, Some(ns), &name)
        .cloned()
        .unwrap_or(Value::Null)
}

fn route(k: &Kind, req: &RecordedRequest, store: &mut Store, ns: &str, name: Option<&str>, writes: &Writes) -> Reply {
    let log = |verb, obj: &Value| {
        if k.kind == "Report" {
            writes.0.lock().unwrap().push(ReportWrite {
                verb,
                namespace: ns.to_owned(),
                writer: obj["metadata"]["annotations"]["mtlscope.io/written-by"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
    };
    match (req.method.as_str(), name) {
        ("GET", Some(name)) => match store.get(k.group, k.kind, Some(ns), name) {
            Some(o) => Reply::ok(o.clone()),
            None => not_found(k, name),
        },
        ("POST", None) => {
            let Some(obj) = req.json() else {
                return Reply::status(400, "BadRequest", "the body is not JSON", None);
            };
            let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            if store.get(k.group, k.kind, Some(ns), &name).is_some() {
                return Reply::status(
                    409,
                    "AlreadyExists",
                    &format!("{}.{} \"{name}\" already exists", k.plural, k.group),
                    None,
                );
            }
            log("create", &obj);
            let mut obj = obj;
            obj["metadata"]["uid"] = json!(format!("uid-{}-{ns}-{name}", k.plural));
            obj["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
            Reply {
                status: 201,
                body: store_new(store, obj, k, ns),
            }
        }
        ("PUT", Some(name)) => {
            let Some(mut obj) = req.json() else {
                return Reply::status(400, "BadRequest", "the body is not JSON", None);
            };
            let Some(current) = store.get(k.group, k.kind, Some(ns), name).cloned() else {
                return not_found(k, name);
            };
            let sent = obj["metadata"]["resourceVersion"].as_str().unwrap_or_default();
            if !sent.is_empty() && sent != current["metadata"]["resourceVersion"].as_str().unwrap_or_default() {
                return conflict(k, name);
            }
            log("replace", &obj);
            obj["metadata"]["uid"] = current["metadata"]["uid"].clone();
            obj["metadata"]["creationTimestamp"] = current["metadata"]["creationTimestamp"].clone();
            Reply::ok(store_new(store, obj, k, ns))
        }
        ("DELETE", Some(name)) => match store.remove(k.group, k.kind, Some(ns), name) {
            Some(o) => Reply::ok(o),
            None => not_found(k, name),
        },
        _ => Reply::status(405, "MethodNotAllowed", "fake reports: not implemented", None),
    }
}

/// `GET /apis/{group}/{version}/{plural}?labelSelector=k=v`: every namespace's objects.
fn list_all(k: &Kind, req: &RecordedRequest, store: &Store) -> Reply {
    let selector = req.query("labelSelector").unwrap_or_default();
    let want: Vec<(&str, &str)> = selector.split(',').filter_map(|p| p.split_once('=')).collect();
    let items: Vec<Value> = store
        .objects()
        .filter(|o| o["kind"] == k.kind && o["apiVersion"].as_str().is_some_and(|a| a.starts_with(k.group)))
        .filter(|o| want.iter().all(|(lk, lv)| o["metadata"]["labels"][*lk] == *lv))
        .cloned()
        .collect();
    Reply::ok(json!({
        "apiVersion": format!("{}/{}", k.group, k.version),
        "kind": format!("{}List", k.kind),
        "metadata": {"resourceVersion": "1"},
        "items": items,
    }))
}
