//! An in-process fake Kubernetes API server: real HTTP/1.1 on 127.0.0.1, real paths, and JSON
//! shaped as kube-apiserver shapes it, so the code under test runs its real client (kube, hyper,
//! serde) without a cluster.
//!
//! What it serves, from the objects it was given:
//! - discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}`, `/apis/{group}/{version}`;
//!   whether `security.istio.io` is served, and in which versions, is chosen with [`IstioApi`];
//! - `GET` of collections (all namespaces or one) with `labelSelector` (`=`, `==`, `!=`, `in`,
//!   `notin`, `key`, `!key`), `fieldSelector` (the fields the real server supports for that kind),
//!   `limit` and `continue`; answers are `<Kind>List` objects whose items, for built-in kinds, carry
//!   no `apiVersion`/`kind` (as the real server sends them), while custom resources' items do;
//! - `watch=true` on collections (tests/support/fake_watch.rs): JSON-lines `ADDED`, `MODIFIED`,
//!   `DELETED`, `BOOKMARK` events from every write to the [`Store`], from a `resourceVersion`,
//!   with the same selectors; [`Store::end_watches`] drops them, [`Store::compact`] makes old
//!   versions `410 Gone`;
//! - `GET` of one object, `POST` to a collection (create, with `generateName`) and `DELETE` of
//!   one object, enough for the plugin's helper pod;
//! - errors as `Status` objects: 404 `NotFound`, 403 `Forbidden` for resources made forbidden with
//!   [`Builder::forbid`], 409 `AlreadyExists`, 400 `BadRequest`, 405 `MethodNotAllowed`.
//!
//! Every request is recorded ([`FakeApiServer::requests`]) so a test can assert what was asked.
//!
//! - a kubelet, when asked ([`Builder::kubelet`]): a created pod with a `nodeName` turns
//!   `Running`, with a running status for each container, after it has been read N times;
//! - exec (`GET .../pods/{name}/exec?command=...`, a WebSocket upgrade speaking the
//!   `v5.channel.k8s.io` or `v4.channel.k8s.io` subprotocol, as kube-apiserver and the kubelet do):
//!   [`Builder::exec`] decides what runs: a real local process whose stdin, stdout and stderr
//!   travel over channels 0, 1 and 2, or a scripted answer; its end is a `Status` on channel 3.
//!   As the kubelet does, the stream starts with a one-byte frame on channels 1 and 2, and a
//!   client that goes away closes the process's stdin (it is not killed: it ends on its own, or
//!   with its pod);
//! - a node, when asked ([`Builder::empty_dirs`]): each pod the kubelet starts gets a directory
//!   of its own for each `emptyDir` volume, and [`node_exec`] runs an exec's command on this
//!   machine with the volumes' mount paths mapped to those directories, so what a test uploads
//!   into a pod really lands there and really runs from there; [`Builder::shell_less_image`]
//!   and [`Builder::stdin_fault`] make it fail as nodes fail.
//!
//! Extension point: [`Builder::handler`], a function that sees each request first and may
//! answer it (a failure injected on the n-th call, an admission refusal).
//!
//! Failing where real clusters fail ([`Failures`], the last section): RBAC from Role YAML
//! ([`rules_from_yaml`], [`Builder::rbac`]) on every resource request and on exec (a WebSocket
//! GET: `get` on pods/exec, and `create` too from 1.35, [`Builder::server_minor`]); validating
//! admission after authorization ([`Builder::admission`], with the real messages of a
//! ValidatingAdmissionPolicy, a ResourceQuota and a webhook); the kubelet's start failures
//! ([`Builder::start_failure`]), an OOMKilled container ([`Builder::oom_kill_on_exec`]) and an
//! exec the runtime cannot start ([`exec_format_error`]).
#![allow(dead_code)] // Each test binary that includes this module uses a different part of it.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[path = "fake_failures.rs"]
mod failures;
#[path = "fake_watch.rs"]
mod watch;
// Each test binary that includes this module uses a different part of it.
#[allow(unused_imports)]
pub use failures::{exec_format_error, rules_from_yaml, Admission, Rule, StartFailure};
use failures::{oom_kill, Failures};

/// An exec request as the API server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub namespace: String,
    pub pod: String,
    pub container: Option<String>,
    pub command: Vec<String>,
    pub stdin: bool,
    /// The container's image.
    pub image: Option<String>,
    /// With [`Builder::empty_dirs`]: the container's `emptyDir` mounts, as (mount path,
    /// directory on this machine).
    pub mounts: Vec<(String, PathBuf)>,
    /// The image has no shell ([`Builder::shell_less_image`]).
    pub shell_less: bool,
}

/// What an exec does.
pub enum ExecAction {
    /// Run this local process; its streams are the exec's streams.
    Run(std::process::Command),
    /// Write this, then end with this exit code (0: `Success`).
    Script {
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        exit_code: i32,
    },
    /// Refuse before the upgrade, as the API server refuses an exec into a pod that is not
    /// running.
    Refuse(Reply),
    /// The runtime could not start the command: a `Failure` status on channel 3 with this
    /// message, and nothing else, as the kubelet reports it.
    StartFailed(String),
}

pub type ExecHandler = Arc<dyn Fn(&ExecRequest) -> ExecAction + Send + Sync>;

/// Which versions of `security.istio.io` the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IstioApi {
    /// Istio 1.22 and later.
    V1AndV1beta1,
    /// Istio before 1.22.
    V1beta1Only,
    /// No Istio CRDs: `/apis/security.istio.io` is a 404.
    Absent,
}

impl IstioApi {
    fn versions(self) -> &'static [&'static str] {
        match self {
            IstioApi::V1AndV1beta1 => &["v1", "v1beta1"],
            IstioApi::V1beta1Only => &["v1beta1"],
            IstioApi::Absent => &[],
        }
    }
}

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

impl std::fmt::Display for RecordedRequest {
    /// `GET /api/v1/pods?limit=500`, query decoded.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        for (i, (k, v)) in self.query.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

/// An answer: an HTTP status and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        Reply { status: 200, body }
    }

    /// A `Status` object as kube-apiserver sends it for a failure.
    pub fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Reply {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        });
        if let Some(d) = details {
            body["details"] = d;
        }
        Reply { status: code, body }
    }

    fn not_found_path() -> Reply {
        Reply::status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        )
    }

    pub(crate) fn bad_request(message: &str) -> Reply {
        Reply::status(400, "BadRequest", message, None)
    }
}

/// A function that sees every request before the built-in routes and may answer it.
pub type Handler = Arc<dyn Fn(&RecordedRequest, &mut Store) -> Option<Reply> + Send + Sync>;

/// A resource the fake knows how to serve.
#[derive(Debug)]
pub struct ResourceType {
    pub group: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// Field selectors the real server accepts besides `metadata.name` and `metadata.namespace`.
    pub fields: &'static [&'static str],
}

pub const RESOURCE_TYPES: &[ResourceType] = &[
    ResourceType {
        group: "",
        plural: "pods",
        kind: "Pod",
        namespaced: true,
        fields: &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
    },
    ResourceType {
        group: "",
        plural: "services",
        kind: "Service",
        namespaced: true,
        fields: &[],
    },
    ResourceType {
        group: "",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
        fields: &[],
    },
    ResourceType {
        group: "",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
        fields: &["status.phase"],
    },
    ResourceType {
        group: "",
        plural: "nodes",
        kind: "Node",
        namespaced: false,
        fields: &["spec.unschedulable"],
    },
    ResourceType {
        group: "",
        plural: "serviceaccounts",
        kind: "ServiceAccount",
        namespaced: true,
        fields: &[],
    },
    ResourceType {
        group: "apps",
        plural: "deployments",
        kind: "Deployment",
        namespaced: true,
        fields: &[],
    },
    ResourceType {
        group: "apps",
        plural: "statefulsets",
        kind: "StatefulSet",
        namespaced: true,
        fields: &[],
    },
    ResourceType {
        group: "apps",
        plural: "daemonsets",
        kind: "DaemonSet",
        namespaced: true,
        fields: &[],
    },
    ResourceType {
        group: "apps",
        plural: "replicasets",
        kind: "ReplicaSet",
        namespaced: true,
        fields: &[],
    },
    ResourceType {
        group: "security.istio.io",
        plural: "peerauthentications",
        kind: "PeerAuthentication",
        namespaced: true,
        fields: &[],
    },
];

const BUILT_IN_GROUPS: &[&str] = &["", "apps"];

/// A resource made forbidden: every verb on it is answered 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    pub group: String,
    pub plural: String,
    /// `None`: in every namespace and at the cluster scope; `Some(ns)`: only in `ns`.
    pub namespace: Option<String>,
}

/// (group, kind, namespace, name): what makes an object unique; the version is not part of it
/// (the real server stores one object and serves it in every version of its group).
type Key = (String, String, Option<String>, String);

/// The objects the server holds, each with its own `apiVersion` and `kind`, in key order, which
/// is also the order lists are served in (by namespace, then name).
#[derive(Debug, Default)]
pub struct Store {
    objects: BTreeMap<Key, Value>,
    resource_version: u64,
    uids: u64,
    /// Every change, for watches (see `fake_watch.rs`).
    history: watch::History,
}

impl Store {
    pub fn objects(&self) -> impl Iterator<Item = &Value> {
        self.objects.values()
    }

    /// Adds an object (a `List` is unpacked), or replaces the one with the same key. Each gets
    /// a new `resourceVersion`, as the real server gives on every write, and watches see an
    /// `ADDED` or `MODIFIED` event.
    pub fn insert(&mut self, object: Value) {
        if object.get("kind").and_then(Value::as_str) == Some("List") {
            if let Some(items) = object.get("items").and_then(Value::as_array) {
                for item in items.clone() {
                    self.insert(item);
                }
            }
            return;
        }
        let mut object = object;
        self.resource_version += 1;
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::from(self.resource_version.to_string()));
        }
        let existed = self.objects.insert(key_of(&object), object.clone()).is_some();
        let kind = if existed { "MODIFIED" } else { "ADDED" };
        self.history.record(self.resource_version, kind, object);
    }

    pub fn get(&self, group: &str, kind: &str, namespace: Option<&str>, name: &str) -> Option<&Value> {
        self.objects.get(&key(group, kind, namespace, name))
    }

    /// Removes an object; watches see a `DELETED` event carrying it at a new `resourceVersion`.
    pub fn remove(&mut self, group: &str, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let mut gone = self.objects.remove(&key(group, kind, namespace, name))?;
        self.resource_version += 1;
        if let Some(meta) = gone.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::from(self.resource_version.to_string()));
        }
        self.history.record(self.resource_version, "DELETED", gone.clone());
        Some(gone)
    }

    /// Ends every open watch, as an API server restart or a load balancer's idle timeout does;
    /// clients must resume from their last `resourceVersion`.
    pub fn end_watches(&mut self) {
        self.history.end_watches();
    }

    /// Forgets the history up to now, as etcd compaction does: a watch from an older
    /// `resourceVersion` is answered `410 Gone` (`Expired`), and the client must list again.
    pub fn compact(&mut self) {
        self.history.compact(self.resource_version);
    }

    /// Objects of one group and kind, in namespace/name order.
    fn of_kind<'a>(&'a self, group: &'a str, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        let from = (group.to_owned(), kind.to_owned(), None, String::new());
        self.objects
            .range(from..)
            .take_while(move |(k, _)| k.0 == group && k.1 == kind)
            .map(|(_, v)| v)
    }

    fn next_uid(&mut self) -> String {
        self.uids += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.uids)
    }
}

fn key(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> Key {
    (
        group.to_owned(),
        kind.to_owned(),
        namespace.map(str::to_owned),
        name.to_owned(),
    )
}

fn key_of(o: &Value) -> Key {
    key(
        group_of(str_at(o, "/apiVersion").unwrap_or_default()),
        str_at(o, "/kind").unwrap_or_default(),
        str_at(o, "/metadata/namespace"),
        str_at(o, "/metadata/name").unwrap_or_default(),
    )
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

struct State {
    store: Store,
    istio: IstioApi,
    forbidden: Vec<Forbidden>,
    handlers: Vec<Handler>,
    requests: Vec<RecordedRequest>,
    addr: SocketAddr,
    exec: Option<ExecHandler>,
    /// Offer only the v4 subprotocol (an API server older than 1.30).
    exec_v4_only: bool,
    /// Reads of a pending pod before the kubelet starts it; `None`: pods stay as created.
    kubelet: Option<u32>,
    pod_reads: BTreeMap<Key, u32>,
    /// Exec streams that ended, and how (exit code).
    exec_exits: Vec<(ExecRequest, Option<i32>)>,
    node: Node,
    /// RBAC, admission, kubelet failures: see [`Failures`].
    failures: Failures,
    /// Set by the route of a `watch=true` request: `handle` then streams instead of answering.
    watch_asked: Option<watch::Asked>,
}

/// Sets up a [`FakeApiServer`].
pub struct Builder {
    objects: Vec<Value>,
    istio: IstioApi,
    forbidden: Vec<Forbidden>,
    handlers: Vec<Handler>,
    exec: Option<ExecHandler>,
    exec_v4_only: bool,
    kubelet: Option<u32>,
    node: Node,
    failures: Failures,
}

impl Builder {
    /// Objects to serve; `List`s are unpacked.
    pub fn objects(mut self, objects: impl IntoIterator<Item = Value>) -> Builder {
        self.objects.extend(objects);
        self
    }

    pub fn istio(mut self, istio: IstioApi) -> Builder {
        self.istio = istio;
        self
    }

    /// Answers 403 to every request for `plural` in `group` (in `namespace`, or everywhere).
    pub fn forbid(mut self, group: &str, plural: &str, namespace: Option<&str>) -> Builder {
        self.forbidden.push(Forbidden {
            group: group.to_owned(),
            plural: plural.to_owned(),
            namespace: namespace.map(str::to_owned),
        });
        self
    }

    /// See the module documentation: consulted, in the order added, before the built-in routes.
    pub fn handler(
        mut self,
        f: impl Fn(&RecordedRequest, &mut Store) -> Option<Reply> + Send + Sync + 'static,
    ) -> Builder {
        self.handlers.push(Arc::new(f));
        self
    }

    /// Pods created through the API start running after they have been read `reads` times.
    pub fn kubelet(mut self, reads: u32) -> Builder {
        self.kubelet = Some(reads);
        self
    }

    /// What an exec into a running pod does.
    pub fn exec(mut self, f: impl Fn(&ExecRequest) -> ExecAction + Send + Sync + 'static) -> Builder {
        self.exec = Some(Arc::new(f));
        self
    }

    /// Speak only `v4.channel.k8s.io` on exec streams (no half-close of stdin).
    pub fn exec_v4_only(mut self) -> Builder {
        self.exec_v4_only = true;
        self
    }

    /// Binds 127.0.0.1 on a free port and serves until the [`FakeApiServer`] is dropped. Must be
    /// called inside a Tokio runtime (`#[tokio::test]`).
    pub async fn start(self) -> FakeApiServer {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let mut store = Store::default();
        for o in self.objects {
            store.insert(o);
        }
        let state = Arc::new(Mutex::new(State {
            store,
            istio: self.istio,
            forbidden: self.forbidden,
            handlers: self.handlers,
            requests: Vec::new(),
            addr,
            exec: self.exec,
            exec_v4_only: self.exec_v4_only,
            kubelet: self.kubelet,
            pod_reads: BTreeMap::new(),
            exec_exits: Vec::new(),
            node: self.node,
            failures: self.failures,
            watch_asked: None,
        }));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let serving = state.clone();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => break,
                    },
                };
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        FakeApiServer {
            addr,
            state,
            _stop: stop,
        }
    }
}

/// See the module documentation.
pub struct FakeApiServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    /// Dropping it stops the accept loop.
    _stop: oneshot::Sender<()>,
}

impl FakeApiServer {
    pub fn builder() -> Builder {
        Builder {
            objects: Vec::new(),
            istio: IstioApi::V1AndV1beta1,
            forbidden: Vec::new(),
            handlers: Vec::new(),
            exec: None,
            exec_v4_only: false,
            kubelet: None,
            node: Node::default(),
            failures: Failures::default(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client for this server, plain HTTP, default namespace `default`.
    /// A kubeconfig in `dir` whose current context is this server, with `namespace` as its
    /// namespace and a bearer token, for running the plugin as a user would.
    pub fn kubeconfig(&self, dir: &std::path::Path, namespace: &str) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        let server = self.url();
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: c\n  cluster:\n    server: {server}\n\
                 contexts:\n- name: fake\n  context:\n    cluster: c\n    user: u\n    namespace: {namespace}\n\
                 users:\n- name: u\n  user:\n    token: t0ken\n"
            ),
        )
        .unwrap();
        path
    }

    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().expect("server URL"));
        kube::Client::try_from(config).expect("kube client")
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// The requests as `METHOD /path?query` lines, for assertions and failure messages.
    pub fn request_lines(&self) -> Vec<String> {
        self.state().requests.iter().map(ToString::to_string).collect()
    }

    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Reads or changes the objects while the server runs.
    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut self.state().store)
    }

    pub fn set_istio(&self, istio: IstioApi) {
        self.state().istio = istio;
    }

    /// Exec streams that have ended, with the exit code of what ran (`None`: killed, or the
    /// client went away first).
    pub fn exec_exits(&self) -> Vec<(ExecRequest, Option<i32>)> {
        self.state().exec_exits.clone()
    }

    /// The pods in the store, as `namespace/name`.
    pub fn pod_names(&self) -> Vec<String> {
        self.state()
            .store
            .of_kind("", "Pod")
            .map(|p| {
                format!(
                    "{}/{}",
                    str_at(p, "/metadata/namespace").unwrap_or_default(),
                    str_at(p, "/metadata/name").unwrap_or_default()
                )
            })
            .collect()
    }
}

async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Result<Response<watch::AnyBody>, Infallible> {
    if req.uri().path().ends_with("/exec") && req.headers().contains_key(hyper::header::UPGRADE) {
        return Ok(exec_upgrade(state, req).map(watch::full));
    }
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    let recorded = RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(parse_query).unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    let (reply, watching) = {
        let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.requests.push(recorded.clone());
        let reply = route(&mut state, &recorded);
        (reply, state.watch_asked.take())
    };
    if let Some(asked) = watching {
        return Ok(watch::serve(state, asked));
    }
    let body = serde_json::to_vec(&reply.body).unwrap_or_default();
    let response = Response::builder()
        .status(reply.status)
        .header("content-type", "application/json")
        .header("audit-id", "00000000-0000-4000-8000-000000000000")
        .body(watch::full(Full::new(Bytes::from(body))))
        .unwrap_or_else(|_| Response::new(watch::full(Full::new(Bytes::new()))));
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

fn route(state: &mut State, req: &RecordedRequest) -> Reply {
    let handlers = state.handlers.clone();
    for h in &handlers {
        if let Some(reply) = h(req, &mut state.store) {
            return reply;
        }
    }
    route_builtin(state, req)
}

fn route_builtin(state: &mut State, req: &RecordedRequest) -> Reply {
    let segments: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let get = req.method == "GET";
    match segments.as_slice() {
        ["version"] if get => Reply::ok(json!({
            "major": "1", "minor": state.failures.minor().to_string(),
            "gitVersion": format!("v1.{}.0-fake", state.failures.minor()), "gitCommit": "0000000",
            "gitTreeState": "clean", "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2",
            "compiler": "gc", "platform": "linux/amd64"
        })),
        ["api"] if get => Reply::ok(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": state.addr.to_string()}],
        })),
        ["apis"] if get => {
            let groups: Vec<Value> = served_groups(state.istio)
                .into_iter()
                .filter(|(g, _)| !g.is_empty())
                .map(|(g, versions)| group_document(g, versions))
                .collect();
            Reply::ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        ["apis", group] if get => match served_versions(state.istio, group) {
            Some(versions) => Reply::ok(group_document(group, versions)),
            None => Reply::not_found_path(),
        },
        ["api", version, rest @ ..] => resource_request(state, req, "", version, rest),
        ["apis", group, version, rest @ ..] => resource_request(state, req, group, version, rest),
        _ => Reply::not_found_path(),
    }
}

fn served_groups(istio: IstioApi) -> Vec<(&'static str, &'static [&'static str])> {
    let mut out: Vec<(&'static str, &'static [&'static str])> = vec![("", &["v1"]), ("apps", &["v1"])];
    if istio != IstioApi::Absent {
        out.push(("security.istio.io", istio.versions()));
    }
    out
}

fn served_versions(istio: IstioApi, group: &str) -> Option<&'static [&'static str]> {
    served_groups(istio)
        .into_iter()
        .find(|(g, _)| *g == group)
        .map(|(_, v)| v)
}

fn group_document(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// `/api/v1/...` and `/apis/{group}/{version}/...` after the version.
fn resource_request(state: &mut State, req: &RecordedRequest, group: &str, version: &str, rest: &[&str]) -> Reply {
    let served = served_versions(state.istio, group).is_some_and(|vs| vs.contains(&version));
    if !served {
        return Reply::not_found_path();
    }
    let types = || RESOURCE_TYPES.iter().filter(move |t| t.group == group);
    let find = |plural: &str| types().find(|t| t.plural == plural);
    // (type, namespace, name, subresource)
    let parsed = match rest {
        [] if req.method == "GET" => {
            let resources: Vec<Value> = types()
                .map(|t| {
                    json!({"name": t.plural, "singularName": t.kind.to_ascii_lowercase(), "namespaced": t.namespaced,
                           "kind": t.kind, "verbs": ["create", "delete", "get", "list", "watch"]})
                })
                .collect();
            return Reply::ok(json!({
                "kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": api_version(group, version), "resources": resources,
            }));
        }
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|t| t.namespaced) => (
            find(plural),
            Some(*ns),
            tail.first().copied(),
            tail.get(1).copied(),
            tail.len() > 2,
        ),
        [plural, tail @ ..] => (
            find(plural),
            None,
            tail.first().copied(),
            tail.get(1).copied(),
            tail.len() > 2,
        ),
        [] => (None, None, None, None, false),
    };
    let (Some(ty), namespace, name, subresource, too_long) = parsed else {
        return Reply::not_found_path();
    };
    if too_long || (ty.namespaced && namespace.is_none() && name.is_some()) {
        return Reply::not_found_path();
    }
    let verb = match (req.method.as_str(), name) {
        ("GET", None) if req.query("watch").is_some_and(|w| w == "true" || w == "1") => "watch",
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", None) => "create",
        ("DELETE", Some(_)) => "delete",
        ("DELETE", None) => "deletecollection",
        ("PUT", Some(_)) => "update",
        ("PATCH", Some(_)) => "patch",
        _ => "",
    };
    if let Some(reply) = forbidden(state, ty, namespace, verb) {
        return reply;
    }
    if let Some(reply) = state
        .failures
        .authorize(ty.group, ty.plural, subresource, namespace, name, verb)
    {
        return reply;
    }
    if let Some(sub) = subresource {
        return Reply::status(
            404,
            "NotFound",
            &format!("fake apiserver: subresource '{sub}' is not implemented (add a handler)"),
            None,
        );
    }
    let av = api_version(group, version);
    match verb {
        "list" => list(state, req, ty, &av, namespace),
        "watch" => match watch::Asked::parse(req, ty, &av, namespace) {
            Ok(asked) => {
                state.watch_asked = Some(asked);
                Reply::ok(Value::Null)
            }
            Err(reply) => reply,
        },
        "get" => {
            let name = name.unwrap_or_default();
            if ty.kind == "Pod" {
                kubelet(state, namespace, name);
            }
            match state.store.get(group, ty.kind, namespace, name) {
                Some(o) => Reply::ok(served_object(o, &av)),
                None => not_found(ty, name),
            }
        }
        "create" => create(state, req, ty, &av, namespace),
        "delete" => {
            let name = name.unwrap_or_default();
            match state.store.remove(group, ty.kind, namespace, name) {
                Some(o) => {
                    if ty.kind == "Pod" {
                        pod_deleted(state, namespace, name);
                    }
                    Reply::ok(served_object(&o, &av))
                }
                None => not_found(ty, name),
            }
        }
        _ => Reply::status(
            405,
            "MethodNotAllowed",
            &format!("fake apiserver: {} is not implemented (add a handler)", req.method),
            None,
        ),
    }
}

fn qualified(ty: &ResourceType) -> String {
    if ty.group.is_empty() {
        ty.plural.to_owned()
    } else {
        format!("{}.{}", ty.plural, ty.group)
    }
}

fn forbidden(state: &State, ty: &ResourceType, namespace: Option<&str>, verb: &str) -> Option<Reply> {
    let hit = state.forbidden.iter().any(|f| {
        f.group == ty.group && f.plural == ty.plural && (f.namespace.is_none() || f.namespace.as_deref() == namespace)
    });
    if !hit {
        return None;
    }
    let scope = match namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_owned(),
    };
    let message = format!(
        "{} is forbidden: User \"system:serviceaccount:default:mtlscope\" cannot {verb} resource \"{}\" \
         in API group \"{}\" {scope}",
        qualified(ty),
        ty.plural,
        ty.group
    );
    Some(Reply::status(
        403,
        "Forbidden",
        &message,
        Some(json!({"group": ty.group, "kind": ty.plural})),
    ))
}

fn not_found(ty: &ResourceType, name: &str) -> Reply {
    Reply::status(
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", qualified(ty)),
        Some(json!({"name": name, "group": ty.group, "kind": ty.plural})),
    )
}

/// An object as served at `api_version` (the real server converts between versions; for the
/// resources here the schemas are the same).
fn served_object(o: &Value, api_version: &str) -> Value {
    let mut o = o.clone();
    o["apiVersion"] = Value::from(api_version);
    o
}

fn list(state: &State, req: &RecordedRequest, ty: &ResourceType, av: &str, namespace: Option<&str>) -> Reply {
    let labels = match parse_label_selector(req.query("labelSelector").unwrap_or_default()) {
        Ok(l) => l,
        Err(e) => return Reply::bad_request(&format!("unable to parse requirement: {e}")),
    };
    let fields = match parse_field_selector(req.query("fieldSelector").unwrap_or_default(), ty) {
        Ok(f) => f,
        Err(e) => return Reply::bad_request(&e),
    };
    let items: Vec<&Value> = state
        .store
        .of_kind(ty.group, ty.kind)
        .filter(|o| namespace.is_none() || str_at(o, "/metadata/namespace") == namespace)
        .filter(|o| labels.iter().all(|r| r.matches(o)))
        .filter(|o| fields.iter().all(|f| f.matches(o)))
        .collect();

    let start = match req.query("continue") {
        None | Some("") => 0,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if n <= items.len() => n,
            _ => return Reply::bad_request(&format!("continue key is not valid: {t}")),
        },
    };
    let limit = req
        .query("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|&l| l > 0);
    let end = limit.map_or(items.len(), |l| (start + l).min(items.len()));
    let built_in = BUILT_IN_GROUPS.contains(&ty.group);
    let page: Vec<Value> = items[start..end]
        .iter()
        .map(|o| {
            let mut o = served_object(o, av);
            if built_in {
                // Typed lists from the real server leave these to the list.
                if let Some(m) = o.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
            }
            o
        })
        .collect();
    let mut metadata = Map::new();
    metadata.insert(
        "resourceVersion".into(),
        state.store.resource_version.to_string().into(),
    );
    if end < items.len() {
        metadata.insert("continue".into(), end.to_string().into());
        metadata.insert("remainingItemCount".into(), (items.len() - end).into());
    }
    Reply::ok(json!({
        "kind": format!("{}List", ty.kind),
        "apiVersion": av,
        "metadata": metadata,
        "items": page,
    }))
}

fn create(state: &mut State, req: &RecordedRequest, ty: &ResourceType, av: &str, namespace: Option<&str>) -> Reply {
    let Some(Value::Object(mut object)) = req.json() else {
        return Reply::bad_request("the body of the request is not a JSON object");
    };
    let mut meta = match object.remove("metadata") {
        Some(Value::Object(m)) => m,
        None => Map::new(),
        Some(_) => return Reply::bad_request("metadata is not an object"),
    };
    if let (Some(ns), Some(body_ns)) = (namespace, meta.get("namespace").and_then(Value::as_str)) {
        if ns != body_ns {
            return Reply::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            );
        }
    }
    let name = match (
        meta.get("name").and_then(Value::as_str),
        meta.get("generateName").and_then(Value::as_str),
    ) {
        (Some(n), _) if !n.is_empty() => n.to_owned(),
        (_, Some(prefix)) => format!("{prefix}{}", suffix(state.store.uids + 1)),
        _ => {
            return Reply::status(
                422,
                "Invalid",
                &format!(
                    "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                    ty.kind
                ),
                None,
            )
        }
    };
    if state.store.get(ty.group, ty.kind, namespace, &name).is_some() {
        return Reply::status(
            409,
            "AlreadyExists",
            &format!("{} \"{name}\" already exists", qualified(ty)),
            Some(json!({"name": name, "group": ty.group, "kind": ty.plural})),
        );
    }
    let uid = state.store.next_uid();
    meta.insert("name".into(), name.into());
    if let Some(ns) = namespace {
        meta.insert("namespace".into(), ns.into());
    }
    meta.insert("uid".into(), uid.into());
    meta.insert("creationTimestamp".into(), rfc3339_now().into());
    meta.remove("resourceVersion");
    object.insert("apiVersion".into(), av.into());
    object.insert("kind".into(), ty.kind.into());
    object.insert("metadata".into(), Value::Object(meta));
    if let Some(reply) = state
        .failures
        .admit("CREATE", ty.plural, namespace, &Value::Object(object.clone()))
    {
        return reply;
    }
    if ty.kind == "Pod" && !object.contains_key("status") {
        object.insert("status".into(), json!({"phase": "Pending", "qosClass": "BestEffort"}));
    }
    let object = Value::Object(object);
    state.store.insert(object.clone());
    let stored = state
        .store
        .objects
        .get(&key_of(&object))
        .cloned()
        .unwrap_or_else(|| object.clone());
    Reply {
        status: 201,
        body: stored,
    }
}

/// `generateName` suffixes use five characters from this alphabet (no vowels, no look-alikes).
fn suffix(n: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = n.wrapping_mul(2_654_435_761);
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn rfc3339_now() -> String {
    format!("{:.0}", jiff::Timestamp::now())
}

// ---------------------------------------------------------------------------------------------
// Selectors
// ---------------------------------------------------------------------------------------------

/// One requirement of a label selector, with Kubernetes' semantics (`!=` and `notin` match
/// objects that lack the label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

impl LabelRequirement {
    fn matches(&self, o: &Value) -> bool {
        let label = |k: &str| {
            o.get("metadata")
                .and_then(|m| m.get("labels"))
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
        };
        match self {
            LabelRequirement::Equals(k, v) => label(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => label(k).is_some_and(|l| vs.contains(l)),
            LabelRequirement::NotIn(k, vs) => !label(k).is_some_and(|l| vs.contains(l)),
            LabelRequirement::Exists(k) => label(k).is_some(),
            LabelRequirement::DoesNotExist(k) => label(k).is_none(),
        }
    }
}

/// `app=reviews,version in (v1,v2),!canary`.
pub fn parse_label_selector(s: &str) -> Result<Vec<LabelRequirement>, String> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    let valid_key = |k: &str| !k.is_empty() && !k.contains(char::is_whitespace) && !k.contains(['=', '!', '(', ')']);
    let mut out = Vec::new();
    for term in terms.into_iter().map(str::trim) {
        if term.is_empty() {
            if s.trim().is_empty() {
                continue;
            }
            return Err(format!("empty requirement in {s:?}"));
        }
        let requirement = if let Some(key) = term.strip_prefix('!') {
            LabelRequirement::DoesNotExist(key.trim().to_owned())
        } else if let Some((lhs, set)) = term.split_once('(') {
            let set = set
                .strip_suffix(')')
                .ok_or_else(|| format!("{term:?}: expected ')' at the end"))?;
            let values: BTreeSet<String> = set.split(',').map(|v| v.trim().to_owned()).collect();
            let mut words = lhs.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(k), Some("in"), None) => LabelRequirement::In(k.to_owned(), values),
                (Some(k), Some("notin"), None) => LabelRequirement::NotIn(k.to_owned(), values),
                _ => return Err(format!("{term:?}: expected KEY in (...) or KEY notin (...)")),
            }
        } else if let Some((k, v)) = term.split_once("!=") {
            LabelRequirement::NotEquals(k.trim().to_owned(), v.trim().to_owned())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            LabelRequirement::Equals(k.trim().to_owned(), v.trim().to_owned())
        } else {
            LabelRequirement::Exists(term.to_owned())
        };
        let key = match &requirement {
            LabelRequirement::Equals(k, _)
            | LabelRequirement::NotEquals(k, _)
            | LabelRequirement::In(k, _)
            | LabelRequirement::NotIn(k, _)
            | LabelRequirement::Exists(k)
            | LabelRequirement::DoesNotExist(k) => k,
        };
        if !valid_key(key) {
            return Err(format!("{term:?}: invalid label key {key:?}"));
        }
        out.push(requirement);
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldRequirement {
    /// JSON pointer into the object.
    pointer: String,
    value: String,
    equal: bool,
}

impl FieldRequirement {
    fn matches(&self, o: &Value) -> bool {
        let actual = match o.pointer(&self.pointer) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        (actual == self.value) == self.equal
    }
}

/// `metadata.name=istio,metadata.namespace!=kube-system`; only the fields the real server
/// supports for the kind, so a client relying on an unsupported one fails here as it would there.
fn parse_field_selector(s: &str, ty: &ResourceType) -> Result<Vec<FieldRequirement>, String> {
    let mut out = Vec::new();
    for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (f, v, true)
        } else {
            return Err(format!("invalid selector: '{s}'; can't understand '{term}'"));
        };
        let field = field.trim();
        if !matches!(field, "metadata.name" | "metadata.namespace") && !ty.fields.contains(&field) {
            return Err(format!(
                "field label not supported: {field} (for {} the fake, like the real server, supports \
                 metadata.name, metadata.namespace{})",
                qualified(ty),
                ty.fields.iter().map(|f| format!(", {f}")).collect::<String>()
            ));
        }
        out.push(FieldRequirement {
            pointer: format!("/{}", field.replace('.', "/")),
            value: value.trim().to_owned(),
            equal,
        });
    }
    Ok(out)
}

/// `a=1&b=x%3Dy` -> [("a","1"),("b","x=y")]; `+` is a space, as in form encoding.
fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// The kubelet and exec
// ---------------------------------------------------------------------------------------------

/// Count a read of a pending pod; start it once it has been read often enough.
fn kubelet(state: &mut State, namespace: Option<&str>, name: &str) {
    let Some(reads) = state.kubelet else {
        return;
    };
    let k = key("", "Pod", namespace, name);
    let Some(pod) = state.store.objects.get(&k) else {
        return;
    };
    if str_at(pod, "/status/phase") != Some("Pending") || str_at(pod, "/spec/nodeName").is_none() {
        return;
    }
    let seen = state.pod_reads.entry(k.clone()).or_insert(0);
    *seen += 1;
    if *seen <= reads {
        return;
    }
    let mut pod = pod.clone();
    if let Some(failed) = state.failures.start(&pod) {
        state.store.insert(failed);
        return;
    }
    let now = rfc3339_now();
    let statuses: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "name": c["name"], "image": c["image"], "imageID": "", "ready": true, "restartCount": 0,
                "started": true, "containerID": format!("containerd://{:064x}", state.store.uids * 16 + i as u64),
                "state": {"running": {"startedAt": now}}
            })
        })
        .collect();
    pod["status"] = json!({
        "phase": "Running", "podIP": "10.244.9.9", "podIPs": [{"ip": "10.244.9.9"}],
        "startTime": now, "containerStatuses": statuses, "qosClass": "Burstable"
    });
    make_empty_dirs(state, &k, &pod);
    state.store.insert(pod);
}

/// `GET /api/v1/namespaces/{ns}/pods/{name}/exec?command=..&container=..`, upgraded to a
/// WebSocket as the API server does.
fn exec_upgrade(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(parse_query).unwrap_or_default();
    let recorded = RecordedRequest {
        method: req.method().as_str().to_owned(),
        path: path.clone(),
        query: query.clone(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: Vec::new(),
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let reply = |r: Reply| {
        Response::builder()
            .status(r.status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(&r.body).unwrap_or_default())))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    };
    let ["api", "v1", "namespaces", ns, "pods", pod, "exec"] = segments.as_slice() else {
        return reply(Reply::not_found_path());
    };
    let exec = ExecRequest {
        namespace: (*ns).to_owned(),
        pod: (*pod).to_owned(),
        container: recorded.query("container").map(str::to_owned),
        command: query
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect(),
        stdin: recorded.query("stdin") == Some("true"),
        image: None,
        mounts: Vec::new(),
        shell_less: false,
    };
    let (action, v4_only, gone, fault, exec) = {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        st.requests.push(recorded.clone());
        // A WebSocket upgrade is a GET: authorized as `get` (and `create` too from 1.35).
        if let Some(r) = st.failures.authorize_exec(ns, pod) {
            return reply(r);
        }
        let Some(found) = st.store.get("", "Pod", Some(ns), pod).cloned() else {
            return reply(Reply::status(
                404,
                "NotFound",
                &format!("pods \"{pod}\" not found"),
                Some(json!({"name": pod, "kind": "pods"})),
            ));
        };
        if str_at(&found, "/status/phase") != Some("Running") {
            return reply(Reply::bad_request(&format!(
                "unable to upgrade connection: pod {pod} is not running (phase {})",
                str_at(&found, "/status/phase").unwrap_or("unknown")
            )));
        }
        let Some(handler) = st.exec.clone() else {
            return reply(Reply::status(
                405,
                "MethodNotAllowed",
                "fake apiserver: exec is not set up (Builder::exec)",
                None,
            ));
        };
        let connect = json!({"metadata": {"name": pod, "namespace": ns}});
        if let Some(r) = st.failures.admit("CONNECT", "pods/exec", Some(ns), &connect) {
            return reply(r);
        }
        let exec = node_request(&mut st, exec, &found);
        let gone = pod_watch(&mut st, ns, pod);
        let action = match oom_kill(&mut st, ns, pod) {
            Some(killed) => killed,
            None => handler(&exec),
        };
        (action, st.exec_v4_only, gone, st.node.stdin_fault, exec)
    };
    if let ExecAction::Refuse(r) = action {
        return reply(r);
    }
    let offered = recorded.header("sec-websocket-protocol").unwrap_or_default().to_owned();
    let protocol = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
        .into_iter()
        .filter(|p| !(v4_only && *p == "v5.channel.k8s.io"))
        .find(|p| offered.split(',').any(|o| o.trim() == *p));
    let (Some(protocol), Some(key)) = (protocol, recorded.header("sec-websocket-key")) else {
        return reply(Reply::bad_request(
            "exec needs a WebSocket upgrade with a channel.k8s.io subprotocol",
        ));
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let v5 = protocol.starts_with("v5");
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        let code = serve_exec(ws, action, v5, gone, fault).await;
        state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .exec_exits
            .push((exec, code));
    });
    Response::builder()
        .status(101)
        .header(hyper::header::UPGRADE, "websocket")
        .header(hyper::header::CONNECTION, "Upgrade")
        .header(hyper::header::SEC_WEBSOCKET_ACCEPT, accept)
        .header(hyper::header::SEC_WEBSOCKET_PROTOCOL, protocol)
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// The end of an exec, on channel 3, as the kubelet reports it.
fn exec_status(code: i32) -> Vec<u8> {
    let status = if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure",
               "message": format!("command terminated with non-zero exit code: exit status {code}"),
               "reason": "NonZeroExitCode",
               "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
    };
    let mut v = vec![3u8];
    v.extend(serde_json::to_vec(&status).unwrap_or_default());
    v
}

type Ws = tokio_tungstenite::WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// The close handshake, as a server does it: send Close, then read (and drop) what the client
/// still sends, stdin frames in flight included, until its Close (at most 5 s).
async fn close(ws: &mut Ws) {
    use futures_util::StreamExt;
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

async fn serve_exec(
    mut ws: Ws,
    action: ExecAction,
    v5: bool,
    mut gone: tokio::sync::watch::Receiver<bool>,
    fault: Option<StdinFault>,
) -> Option<i32> {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;
    let frame = |channel: u8, data: &[u8]| {
        let mut v = Vec::with_capacity(data.len() + 1);
        v.push(channel);
        v.extend_from_slice(data);
        Message::binary(v)
    };
    // The kubelet opens each output channel with a frame of just its number.
    for channel in [1u8, 2] {
        ws.send(Message::binary(vec![channel])).await.ok()?;
    }
    match action {
        ExecAction::Refuse(_) => None,
        ExecAction::StartFailed(message) => {
            ws.send(Message::binary(start_failure(&message))).await.ok()?;
            close(&mut ws).await;
            None
        }
        ExecAction::Script {
            stdout,
            stderr,
            exit_code,
        } => {
            if !stdout.is_empty() {
                ws.send(frame(1, &stdout)).await.ok()?;
            }
            if !stderr.is_empty() {
                ws.send(frame(2, &stderr)).await.ok()?;
            }
            ws.send(Message::binary(exec_status(exit_code))).await.ok()?;
            close(&mut ws).await;
            Some(exit_code)
        }
        ExecAction::Run(cmd) => {
            let mut cmd = tokio::process::Command::from(cmd);
            cmd.stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true);
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    let _ = ws.send(frame(2, format!("exec failed: {e}\n").as_bytes())).await;
                    let _ = ws.send(Message::binary(exec_status(126))).await;
                    return Some(126);
                }
            };
            let mut stdin = child.stdin.take();
            let mut stdout = child.stdout.take()?;
            let mut stderr = child.stderr.take()?;
            let (mut out_buf, mut err_buf) = (vec![0u8; 32 << 10], vec![0u8; 8 << 10]);
            let (mut out_open, mut err_open) = (true, true);
            // Once the client is gone, what runs goes on without its stdin, its output nowhere.
            let mut client = true;
            let mut fed = 0u64;
            while out_open || err_open {
                tokio::select! {
                    n = stdout.read(&mut out_buf), if out_open => match n {
                        Ok(0) | Err(_) => out_open = false,
                        Ok(n) => if client && ws.send(frame(1, &out_buf[..n])).await.is_err() { client = false },
                    },
                    n = stderr.read(&mut err_buf), if err_open => match n {
                        Ok(0) | Err(_) => err_open = false,
                        Ok(n) => if client && ws.send(frame(2, &err_buf[..n])).await.is_err() { client = false },
                    },
                    msg = ws.next(), if client => match msg {
                        Some(Ok(Message::Binary(b))) if b.first() == Some(&0) => {
                            let data = apply_fault(fault, &mut fed, &b[1..]);
                            if let Some(w) = stdin.as_mut() {
                                let _ = w.write_all(&data).await;
                                let _ = w.flush().await;
                            }
                            if matches!(fault, Some(StdinFault::CutAfter(n)) if fed >= n) {
                                stdin = None;
                            }
                        }
                        // v5: "stdin is closed" is channel 255 naming channel 0.
                        Some(Ok(Message::Binary(b))) if v5 && b.as_ref() == [255u8, 0] => stdin = None,
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                            // The client went away: the kubelet closes the process's stdin.
                            client = false;
                            stdin = None;
                        }
                        Some(Ok(_)) => {}
                    },
                    _ = deleted(&mut gone) => {
                        // The pod was deleted: its container, and what was exec'd in it, are killed.
                        let _ = child.kill().await;
                        return None;
                    }
                }
            }
            let code = tokio::select! {
                s = child.wait() => s.ok().and_then(|s| s.code()).unwrap_or(137),
                _ = deleted(&mut gone) => {
                    let _ = child.kill().await;
                    return None;
                }
            };
            if !client {
                return None;
            }
            let _ = ws.send(Message::binary(exec_status(code))).await;
            close(&mut ws).await;
            Some(code)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The node: emptyDir volumes on this machine, and what an exec runs there
// ---------------------------------------------------------------------------------------------

/// How the node's side of an exec's stdin fails ([`Builder::stdin_fault`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdinFault {
    /// After this many bytes the process's stdin is closed and the rest is lost, as when the
    /// stream breaks between the API server and the kubelet.
    CutAfter(u64),
    /// The byte at this offset of the stream arrives changed.
    FlipByte(u64),
}

/// A file that was in a pod's `emptyDir` when the pod was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmptyDirFile {
    /// `namespace/name`
    pub pod: String,
    /// Its path inside the pod (under the volume's mount path).
    pub path: String,
    pub len: u64,
    /// Hex.
    pub sha256: String,
    /// Permission bits.
    pub mode: u32,
}

#[derive(Default)]
struct Node {
    /// Give started pods their `emptyDir`s.
    empty_dirs: bool,
    /// Where they are made; removed when the server is dropped.
    root: Option<PathBuf>,
    /// Per pod: (mount path, directory) of each mounted `emptyDir`, per container.
    dirs: BTreeMap<Key, Vec<(String, String, PathBuf)>>,
    shell_less: BTreeSet<String>,
    stdin_fault: Option<StdinFault>,
    /// Per pod: set to `true` when it is deleted, which kills what was exec'd in it.
    gone: BTreeMap<Key, tokio::sync::watch::Sender<bool>>,
    files: Vec<EmptyDirFile>,
}

impl Builder {
    /// Pods the kubelet starts get a directory on this machine for each `emptyDir` volume; exec
    /// requests carry the mounts ([`ExecRequest::mounts`]) for [`node_exec`].
    pub fn empty_dirs(mut self) -> Builder {
        self.node.empty_dirs = true;
        self
    }

    /// Containers of this image have no shell: [`node_exec`] of a command that is not an
    /// uploaded file fails as containerd reports it.
    pub fn shell_less_image(mut self, image: &str) -> Builder {
        self.node.shell_less.insert(image.to_owned());
        self
    }

    /// Every exec's stdin fails this way on the node's side.
    pub fn stdin_fault(mut self, fault: StdinFault) -> Builder {
        self.node.stdin_fault = Some(fault);
        self
    }
}

impl FakeApiServer {
    /// The files that were in the `emptyDir`s of deleted pods, as they were at the deletion.
    pub fn empty_dir_files(&self) -> Vec<EmptyDirFile> {
        self.state().node.files.clone()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(root) = self.state().node.root.take() {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

/// `emptyDir` volumes of a pod that starts, one directory each, and which containers mount them.
fn make_empty_dirs(state: &mut State, k: &Key, pod: &Value) {
    if !state.node.empty_dirs {
        return;
    }
    let root = state
        .node
        .root
        .get_or_insert_with(|| {
            let d = std::env::temp_dir().join(format!("fake-node-{}-{}", std::process::id(), state.addr.port()));
            let _ = std::fs::remove_dir_all(&d);
            d
        })
        .clone();
    let uid = str_at(pod, "/metadata/uid").unwrap_or("pod").to_owned();
    let mut mounts = Vec::new();
    for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let (Some(name), true) = (v["name"].as_str(), v.get("emptyDir").is_some()) else {
            continue;
        };
        // As the kubelet lays them out: pods/<uid>/volumes/kubernetes.io~empty-dir/<name>.
        let dir = root.join(&uid).join("volumes/kubernetes.io~empty-dir").join(name);
        std::fs::create_dir_all(&dir).expect("emptyDir directory");
        for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
            for m in c["volumeMounts"].as_array().into_iter().flatten() {
                if m["name"].as_str() == Some(name) {
                    let container = c["name"].as_str().unwrap_or_default().to_owned();
                    let path = m["mountPath"].as_str().unwrap_or_default().to_owned();
                    mounts.push((container, path, dir.clone()));
                }
            }
        }
    }
    state.node.dirs.insert(k.clone(), mounts);
}

/// The exec request as the node sees it: the container's image and mounts.
fn node_request(state: &mut State, mut exec: ExecRequest, pod: &Value) -> ExecRequest {
    let k = key("", "Pod", Some(&exec.namespace), &exec.pod);
    let containers = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
    let container = exec
        .container
        .clone()
        .or_else(|| containers.first().and_then(|c| c["name"].as_str().map(str::to_owned)))
        .unwrap_or_default();
    exec.image = containers
        .iter()
        .find(|c| c["name"].as_str() == Some(&container))
        .and_then(|c| c["image"].as_str().map(str::to_owned));
    exec.shell_less = exec.image.as_ref().is_some_and(|i| state.node.shell_less.contains(i));
    exec.mounts = state
        .node
        .dirs
        .get(&k)
        .into_iter()
        .flatten()
        .filter(|(c, _, _)| *c == container)
        .map(|(_, path, dir)| (path.clone(), dir.clone()))
        .collect();
    exec
}

/// Until the pod is deleted.
async fn deleted(gone: &mut tokio::sync::watch::Receiver<bool>) {
    while !*gone.borrow_and_update() {
        if gone.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn pod_watch(state: &mut State, namespace: &str, name: &str) -> tokio::sync::watch::Receiver<bool> {
    state
        .node
        .gone
        .entry(key("", "Pod", Some(namespace), name))
        .or_insert_with(|| tokio::sync::watch::channel(false).0)
        .subscribe()
}

/// A deleted pod: what was exec'd in it is killed, and its `emptyDir`s are removed (what they
/// held is kept in [`FakeApiServer::empty_dir_files`]).
fn pod_deleted(state: &mut State, namespace: Option<&str>, name: &str) {
    let k = key("", "Pod", namespace, name);
    if let Some(tx) = state.node.gone.get(&k) {
        let _ = tx.send(true);
    }
    let Some(mounts) = state.node.dirs.remove(&k) else {
        return;
    };
    let mut seen = BTreeSet::new();
    for (_, path, dir) in mounts {
        if !seen.insert(dir.clone()) {
            continue;
        }
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            use sha2::Digest;
            use std::os::unix::fs::PermissionsExt;
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            let mode = entry
                .metadata()
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or_default();
            state.node.files.push(EmptyDirFile {
                pod: format!("{}/{name}", namespace.unwrap_or_default()),
                path: format!("{path}/{}", entry.file_name().to_string_lossy()),
                len: bytes.len() as u64,
                sha256: sha2::Sha256::digest(&bytes)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
                mode,
            });
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// What the node runs for an exec: the command on this machine, each argument under a mount
/// path mapped to the volume's directory (so `/mtlscope/agent` runs the file the test put in
/// the pod's `emptyDir`), in the volume's directory; in a busybox image with busybox's
/// applets when this machine has busybox (`busybox-static`), else with this machine's tools.
/// A container of a shell-less image has only what was uploaded into it.
pub fn node_exec(req: &ExecRequest) -> ExecAction {
    let map = |arg: &str| -> String {
        for (path, dir) in &req.mounts {
            if arg == path {
                return dir.display().to_string();
            }
            if let Some(rest) = arg.strip_prefix(&format!("{path}/")) {
                return dir.join(rest).display().to_string();
            }
        }
        arg.to_owned()
    };
    let Some(program) = req.command.first() else {
        return ExecAction::StartFailed(runtime_error("exec: no command"));
    };
    let mapped: Vec<String> = req.command.iter().map(|a| map(a)).collect();
    let uploaded = mapped[0] != *program;
    if (req.shell_less && !uploaded) || (uploaded && !Path::new(&mapped[0]).exists()) {
        return ExecAction::StartFailed(runtime_error(&format!(
            "exec: \"{program}\": executable file not found in $PATH"
        )));
    }
    let mut cmd = std::process::Command::new(&mapped[0]);
    cmd.args(&mapped[1..]);
    if let Some((_, dir)) = req.mounts.first() {
        cmd.current_dir(dir);
    }
    // A busybox image's commands are busybox's applets, when this machine has busybox.
    if let Some(bin) = req
        .image
        .as_deref()
        .filter(|i| i.contains("busybox"))
        .and_then(|_| busybox_bin())
    {
        cmd.env("PATH", bin);
    }
    ExecAction::Run(cmd)
}

/// A directory of busybox applets (`sh`, `head`, ...), made once, if busybox is installed.
fn busybox_bin() -> Option<PathBuf> {
    static BIN: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let busybox = ["/usr/bin/busybox", "/bin/busybox"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists())?;
        let dir = std::env::temp_dir().join(format!("fake-node-busybox-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        for applet in ["sh", "head", "wc", "sha256sum", "chmod", "mv", "sleep", "cat", "echo"] {
            let link = dir.join(applet);
            if !link.exists() {
                std::os::unix::fs::symlink(busybox, &link).ok()?;
            }
        }
        Some(dir)
    })
    .clone()
}

/// The message the kubelet relays when containerd cannot start an exec's process.
fn runtime_error(why: &str) -> String {
    format!(
        "Internal error occurred: error executing command in container: failed to exec in container: failed to start \
         exec \"5f0c3b1e9a7d\": OCI runtime exec failed: exec failed: unable to start container process: {why}: unknown"
    )
}

/// A `Failure` status for a command that did not start, on channel 3.
fn start_failure(message: &str) -> Vec<u8> {
    let status = json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError",
                        "details": {"causes": [{"message": message}]}, "code": 500});
    let mut v = vec![3u8];
    v.extend(serde_json::to_vec(&status).unwrap_or_default());
    v
}

/// The bytes of one stdin frame as they reach the process, after `fed` bytes before them.
fn apply_fault(fault: Option<StdinFault>, fed: &mut u64, data: &[u8]) -> Vec<u8> {
    let start = *fed;
    *fed += data.len() as u64;
    match fault {
        None => data.to_vec(),
        Some(StdinFault::CutAfter(n)) => data[..n.saturating_sub(start).min(data.len() as u64) as usize].to_vec(),
        Some(StdinFault::FlipByte(at)) => {
            let mut v = data.to_vec();
            if (start..*fed).contains(&at) {
                v[(at - start) as usize] ^= 0x5a;
            }
            v
        }
    }
}
