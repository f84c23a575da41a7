//! `watch=true` on the fake API server's collections, as kube-apiserver serves it: a chunked
//! stream of JSON lines `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":...}`.
//!
//! - `resourceVersion` unset or `"0"`: first an `ADDED` for every object that matches now, then
//!   the changes; any other value: the changes after it, or `410 Gone` (`Expired`, as an `ERROR`
//!   event, as the real server sends it) when the history was compacted past it
//!   ([`Store::compact`]).
//! - `labelSelector` and `fieldSelector` (the fields the kind supports, as lists do), and one
//!   namespace or all of them.
//! - `allowWatchBookmarks=true`: a `BOOKMARK` with the current `resourceVersion` before the
//!   stream ends at `timeoutSeconds` (the real server also sends them about once a minute).
//! - [`Store::end_watches`] closes every open stream, as a restarted API server does.
//!
//! Every write to the [`Store`] (tests' `with_store`, creates, deletes, the kubelet) becomes an
//! event, at the `resourceVersion` the write gave the object.

use super::{
    parse_field_selector, parse_label_selector, served_object, str_at, FieldRequirement, LabelRequirement,
    RecordedRequest, Reply, ResourceType, State, BUILT_IN_GROUPS,
};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Frame};
use hyper::Response;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// What the fake server's responses carry: a whole JSON body, or a watch stream.
pub type AnyBody = BoxBody<Bytes, Infallible>;

pub fn full(body: Full<Bytes>) -> AnyBody {
    body.boxed()
}

/// The store's changes, in `resourceVersion` order.
#[derive(Debug, Default)]
pub struct History {
    events: Vec<(u64, &'static str, Value)>,
    /// Watches from a `resourceVersion` below this are answered 410 Gone.
    compacted_to: u64,
    /// Bumped to end every open watch.
    generation: u64,
    changed: Arc<Notify>,
}

impl History {
    pub fn record(&mut self, rv: u64, kind: &'static str, object: Value) {
        self.events.push((rv, kind, object));
        self.changed.notify_waiters();
    }

    pub fn end_watches(&mut self) {
        self.generation += 1;
        self.changed.notify_waiters();
    }

    pub fn compact(&mut self, to: u64) {
        self.events.retain(|(rv, _, _)| *rv > to);
        self.compacted_to = to;
        self.changed.notify_waiters();
    }
}

/// A watch request, parsed.
pub struct Asked {
    ty: &'static ResourceType,
    api_version: String,
    namespace: Option<String>,
    labels: Vec<LabelRequirement>,
    fields: Vec<FieldRequirement>,
    /// `None`: from now, with the current objects first.
    from: Option<u64>,
    bookmarks: bool,
    timeout: Option<Duration>,
}

impl Asked {
    pub fn parse(
        req: &RecordedRequest,
        ty: &'static ResourceType,
        api_version: &str,
        namespace: Option<&str>,
    ) -> Result<Asked, Reply> {
        let labels = parse_label_selector(req.query("labelSelector").unwrap_or_default())
            .map_err(|e| Reply::bad_request(&format!("unable to parse requirement: {e}")))?;
        let fields = parse_field_selector(req.query("fieldSelector").unwrap_or_default(), ty)
            .map_err(|e| Reply::bad_request(&e))?;
        let from = match req.query("resourceVersion") {
            None | Some("") | Some("0") => None,
            Some(v) => Some(
                v.parse::<u64>()
                    .map_err(|_| Reply::bad_request(&format!("invalid resource version: {v}")))?,
            ),
        };
        let timeout = match req.query("timeoutSeconds") {
            None => None,
            Some(t) => {
                Some(Duration::from_secs(t.parse::<u64>().map_err(|_| {
                    Reply::bad_request(&format!("invalid timeoutSeconds: {t}"))
                })?))
            }
        };
        Ok(Asked {
            ty,
            api_version: api_version.to_owned(),
            namespace: namespace.map(str::to_owned),
            labels,
            fields,
            from,
            bookmarks: req.query("allowWatchBookmarks") == Some("true"),
            timeout,
        })
    }

    fn matches(&self, o: &Value) -> bool {
        let group = str_at(o, "/apiVersion")
            .and_then(|av| av.rsplit_once('/'))
            .map_or("", |(g, _)| g);
        group == self.ty.group
            && str_at(o, "/kind") == Some(self.ty.kind)
            && (self.namespace.is_none() || str_at(o, "/metadata/namespace") == self.namespace.as_deref())
            && self.labels.iter().all(|r| r.matches(o))
            && self.fields.iter().all(|f| f.matches(o))
    }

    fn line(&self, kind: &str, o: &Value) -> Bytes {
        let mut o = served_object(o, &self.api_version);
        // Watch events of built-in kinds carry apiVersion and kind (unlike list items).
        if BUILT_IN_GROUPS.contains(&self.ty.group) {
            o["kind"] = Value::from(self.ty.kind);
        }
        line(&json!({"type": kind, "object": o}))
    }
}

fn line(v: &Value) -> Bytes {
    let mut text = serde_json::to_vec(v).unwrap_or_default();
    text.push(b'\n');
    Bytes::from(text)
}

/// The streaming answer to a watch: 200 with chunked JSON lines, fed by a task that follows the
/// store's history until the timeout, [`History::end_watches`], or the client going away.
pub fn serve(state: Arc<Mutex<State>>, asked: Asked) -> Response<AnyBody> {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = asked.timeout.map(|t| tokio::time::Instant::now() + t);
        let (mut cursor, generation, changed) = {
            let st = lock();
            let h = &st.store.history;
            (asked.from, h.generation, h.changed.clone())
        };
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (lines, ended, rv_now) = {
                let st = lock();
                let h = &st.store.history;
                let mut lines = Vec::new();
                let mut expired = false;
                match cursor {
                    None => {
                        for o in st.store.objects.values().filter(|o| asked.matches(o)) {
                            lines.push(asked.line("ADDED", o));
                        }
                        cursor = Some(st.store.resource_version);
                    }
                    Some(from) if from < h.compacted_to => {
                        let message = format!("too old resource version: {from} ({})", h.compacted_to);
                        let status = Reply::status(410, "Expired", &message, None).body;
                        lines.push(line(&json!({"type": "ERROR", "object": status})));
                        expired = true;
                    }
                    Some(from) => {
                        for (rv, kind, o) in h.events.iter().filter(|(rv, _, _)| *rv > from) {
                            if asked.matches(o) {
                                lines.push(asked.line(kind, o));
                            }
                            cursor = Some(*rv);
                        }
                    }
                }
                (lines, expired || h.generation != generation, st.store.resource_version)
            };
            for l in lines {
                if tx.send(l).await.is_err() {
                    return; // the client went away
                }
            }
            if ended {
                return;
            }
            let timed_out = match deadline {
                Some(d) => tokio::select! {
                    _ = &mut notified => false,
                    _ = tokio::time::sleep_until(d) => true,
                    _ = tx.closed() => return,
                },
                None => tokio::select! {
                    _ = &mut notified => false,
                    _ = tx.closed() => return,
                },
            };
            if timed_out {
                if asked.bookmarks {
                    let bookmark = json!({"type": "BOOKMARK", "object": {
                        "kind": asked.ty.kind, "apiVersion": asked.api_version,
                        "metadata": {"resourceVersion": rv_now.max(cursor.unwrap_or(0)).to_string()}}});
                    let _ = tx.send(line(&bookmark)).await;
                }
                return;
            }
        }
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("audit-id", "00000000-0000-4000-8000-000000000000")
        .body(ChannelBody(rx).boxed())
        .unwrap_or_else(|_| Response::new(full(Full::new(Bytes::new()))))
}

/// A body whose chunks come from a channel; it ends when the sender is dropped.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}
