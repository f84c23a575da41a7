//! Following a collection as it changes: list it (page by page), then watch from the list's
//! `resourceVersion`, as kube-apiserver's watch cache expects. A watch that ends (its timeout, an
//! API server restart, a dropped connection) is resumed from the last `resourceVersion` seen, so
//! nothing is seen twice; `410 Gone` (the history compacted past it) lists again. Objects are raw
//! JSON, as [`super::cluster_objects`] reads them, for the same reason.
//!
//! Only what retrying cannot fix ends it: credentials refused (401), RBAC (403, naming the verb,
//! `list` or `watch`, and the resource), a resource the server does not serve (404).

use super::error::KubeError;
use super::objects::{list_pages, ListError, Resource};
use super::request::{api_error, is_status, Asked};
use futures_util::StreamExt;
use kube::api::{ListParams, WatchParams};
use kube::core::WatchEvent;
use serde_json::Value;
use std::time::Duration;

/// One collection to follow.
#[derive(Debug, Clone)]
pub struct Collection {
    pub resource: Resource,
    /// `None`: all namespaces.
    pub namespace: Option<String>,
    /// A field selector, such as `spec.nodeName=node-1`.
    pub fields: Option<String>,
}

/// What changed. `Listed` replaces everything known so far (the first list, and each list again
/// after `410 Gone` or a failure): objects absent from it are gone.
#[derive(Debug, Clone)]
pub enum Change {
    Listed(Vec<Value>),
    Applied(Value),
    Deleted(Value),
}

/// Seconds a watch request asks the server to keep the stream open; it is then resumed.
const WATCH_TIMEOUT_SECS: u32 = 290;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Follows `c` until `sink` returns `false` (its reader is gone: returns `Ok`), or a failure
/// retrying cannot fix (returns it). Other failures are retried with backoff, each reported to
/// `retrying` (a message naming the collection and the cause).
pub async fn follow_collection(
    client: &kube::Client,
    c: &Collection,
    sink: &mut (dyn FnMut(Change) -> bool + Send),
    retrying: &(dyn Fn(String) + Send + Sync),
) -> Result<(), KubeError> {
    let mut backoff = FIRST_BACKOFF;
    let mut resume: Option<String> = None;
    loop {
        let from = match resume.take() {
            Some(rv) => rv,
            None => match list(client, c).await {
                Ok((items, rv)) => {
                    if !sink(Change::Listed(items)) {
                        return Ok(());
                    }
                    rv
                }
                Err(e) if fatal(&e) => return Err(e),
                Err(e) => {
                    retrying(format!("listing {}: {e}; retrying in {backoff:?}", describe(c)));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        match watch(client, c, &from, sink).await {
            Watched::Ended(last) => {
                backoff = FIRST_BACKOFF;
                resume = Some(last);
            }
            Watched::SinkGone => return Ok(()),
            Watched::Gone => {} // list again
            Watched::Failed(e, last) => {
                if fatal(&e) {
                    return Err(e);
                }
                retrying(format!("watching {}: {e}; resuming in {backoff:?}", describe(c)));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                resume = Some(last);
            }
        }
    }
}

fn fatal(e: &KubeError) -> bool {
    matches!(
        e,
        KubeError::Forbidden { .. } | KubeError::Unauthorized { .. } | KubeError::Api { code: 404, .. }
    )
}

fn describe(c: &Collection) -> String {
    let mut s = c.resource.qualified();
    match &c.namespace {
        Some(ns) => s.push_str(&format!(" in namespace '{ns}'")),
        None => s.push_str(" in all namespaces"),
    }
    if let Some(f) = &c.fields {
        s.push_str(&format!(" ({f})"));
    }
    s
}

fn asked<'a>(verb: &'static str, c: &'a Collection) -> Asked<'a> {
    Asked {
        verb,
        resource: c.resource.qualified(),
        kind: c.resource.kind,
        namespace: c.namespace.as_deref(),
        name: None,
    }
}

/// Every object (with `apiVersion` and `kind` set) and the list's `resourceVersion`.
async fn list(client: &kube::Client, c: &Collection) -> Result<(Vec<Value>, String), KubeError> {
    let mut lp = ListParams::default();
    if let Some(f) = &c.fields {
        lp = lp.fields(f);
    }
    match list_pages(client, &c.resource, c.namespace.as_deref(), &lp).await {
        Ok(listed) => Ok(listed),
        Err(ListError::NotServed) => Err(not_served(c, "list")),
        Err(ListError::Kube(e)) => Err(e),
    }
}

fn not_served(c: &Collection, verb: &'static str) -> KubeError {
    KubeError::Api {
        verb,
        resource: c.resource.qualified(),
        namespace: c.namespace.clone(),
        code: 404,
        reason: "NotFound".to_owned(),
        message: "the server does not serve this resource".to_owned(),
    }
}

enum Watched {
    /// The stream ended; resume from this `resourceVersion`.
    Ended(String),
    /// 410 Gone: list again.
    Gone,
    SinkGone,
    Failed(KubeError, String),
}

async fn watch(
    client: &kube::Client,
    c: &Collection,
    from: &str,
    sink: &mut (dyn FnMut(Change) -> bool + Send),
) -> Watched {
    let asked = asked("watch", c);
    let mut last = from.to_owned();
    let mut wp = WatchParams::default().timeout(WATCH_TIMEOUT_SECS); // bookmarks are on by default
    if let Some(f) = &c.fields {
        wp = wp.fields(f);
    }
    let request = kube::core::Request::new(c.resource.collection_path(c.namespace.as_deref()));
    let http_request = match request.watch(&wp, from) {
        Ok(r) => r,
        Err(e) => {
            let e = KubeError::Other {
                what: asked.what(),
                message: e.to_string(),
            };
            return Watched::Failed(e, last);
        }
    };
    let stream = match client.request_events::<Value>(http_request).await {
        Ok(s) => s,
        Err(e) if is_status(&e, 410) => return Watched::Gone,
        Err(e) if is_status(&e, 404) => return Watched::Failed(not_served(c, "watch"), last),
        Err(e) => return Watched::Failed(api_error(e, &asked), last),
    };
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let (change, rv) = match event {
            Ok(WatchEvent::Added(o) | WatchEvent::Modified(o)) => {
                let rv = resource_version(&o);
                (Some(Change::Applied(c.resource.typed(o))), rv)
            }
            Ok(WatchEvent::Deleted(o)) => {
                let rv = resource_version(&o);
                (Some(Change::Deleted(c.resource.typed(o))), rv)
            }
            Ok(WatchEvent::Bookmark(b)) => (None, Some(b.metadata.resource_version)),
            Ok(WatchEvent::Error(status)) if status.code == 410 => return Watched::Gone,
            Ok(WatchEvent::Error(status)) => {
                let e = api_error(kube::Error::Api(status), &asked);
                return Watched::Failed(e, last);
            }
            Err(e) if is_status(&e, 410) => return Watched::Gone,
            Err(e) => return Watched::Failed(api_error(e, &asked), last),
        };
        if let Some(rv) = rv.filter(|rv| !rv.is_empty()) {
            last = rv;
        }
        if let Some(change) = change {
            if !sink(change) {
                return Watched::SinkGone;
            }
        }
    }
    Watched::Ended(last)
}

fn resource_version(o: &Value) -> Option<String> {
    o.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_owned)
}
