//! Following a cluster for `mtlscope monitor --node NAME` (DESIGN.md, "Continuous mode"):
//!
//! - the pods of the node (a watch with `fieldSelector=spec.nodeName=NAME`) become capture
//!   targets ([`TargetEvent`]s, see [`node`]) as they start, stop and get new sandboxes;
//! - every pod, Service and PeerAuthentication of the cluster, and the mesh ConfigMaps of the
//!   root namespace, are kept (slimmed down, [`slim`]) and turned into a new
//!   [`crate::policy::Cluster`] for the [`ClusterView`]: right after the first lists, then at most
//!   once per [`FollowOptions::rebuild_interval`] while things change.
//!
//! Each collection is listed, then watched ([`crate::kube::client::follow_collection`]): a watch
//! that ends is resumed, 410 Gone lists again, other failures are retried with backoff. An RBAC
//! refusal (or a resource not served) ends [`follow`] with the [`KubeError`] that names the verb
//! and the resource.

mod node;
mod slim;

use crate::kube::client::{
    follow_collection, peer_authentications, served_peer_authentication_version, Change, Collection, Discovered,
    KubeError, CONFIG_MAPS, PODS, SERVICES,
};
use crate::monitor::targets::TargetEvent;
use crate::monitor::view::ClusterView;
use crate::policy::{Cluster, DEFAULT_ROOT_NAMESPACE};
use node::{pod_name, NodePods};
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What to follow.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// The node whose pods are captured (`--node`, `NODE_NAME`).
    pub node: String,
    /// Where the node's processes are (`--proc-root`; `/proc` with `hostPID: true`).
    pub proc_root: PathBuf,
    /// The mesh's root namespace, where the mesh ConfigMaps are read and mesh-wide
    /// PeerAuthentications live; `None`: Istio's default, `istio-system` (the mesh config read
    /// there may still name another root namespace for policies).
    pub root_namespace: Option<String>,
    /// Least time between two rebuilds of the cluster snapshot.
    pub rebuild_interval: Duration,
    /// How often pods whose container process was not found yet are looked for again.
    pub retry_interval: Duration,
}

impl FollowOptions {
    pub fn new(node: impl Into<String>, proc_root: impl Into<PathBuf>) -> FollowOptions {
        FollowOptions {
            node: node.into(),
            proc_root: proc_root.into(),
            root_namespace: None,
            rebuild_interval: Duration::from_secs(1),
            retry_interval: Duration::from_secs(1),
        }
    }
}

/// Which collection a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    NodePods,
    Pods,
    Services,
    ConfigMaps,
    PeerAuthentications,
}

/// Follows the cluster until `shutdown` completes (then `Ok`), `targets`' receiver is dropped
/// (`Ok`), or a failure retrying cannot fix (RBAC, credentials, a resource not served: `Err`).
pub async fn follow(
    client: kube::Client,
    opts: FollowOptions,
    targets: std::sync::mpsc::Sender<TargetEvent>,
    view: Arc<ClusterView>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), KubeError> {
    let root = opts
        .root_namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_ROOT_NAMESPACE.to_owned());
    let mut collections = vec![
        (
            Source::NodePods,
            Collection {
                resource: PODS,
                namespace: None,
                fields: Some(format!("spec.nodeName={}", opts.node)),
            },
        ),
        (Source::Pods, all(PODS, None)),
        (Source::Services, all(SERVICES, None)),
        (Source::ConfigMaps, all(CONFIG_MAPS, Some(root.clone()))),
    ];
    match served_peer_authentication_version(&client).await? {
        Discovered::Version(v) => collections.push((Source::PeerAuthentications, all(peer_authentications(v), None))),
        Discovered::Absent => eprintln!(
            "mtlscope: this cluster does not serve security.istio.io (Istio's CRDs are not installed): no \
             PeerAuthentication policies"
        ),
        Discovered::NoKnownVersion(served) => eprintln!(
            "mtlscope: warning: security.istio.io serves versions {} but not v1 or v1beta1: PeerAuthentications not read",
            served.join(", ")
        ),
    }

    let (tx, mut rx) = mpsc::unbounded_channel::<(Source, Change)>();
    let mut tasks = tokio::task::JoinSet::new();
    for (source, collection) in collections.iter().cloned() {
        let (client, tx) = (client.clone(), tx.clone());
        tasks.spawn(async move {
            let mut sink = move |c: Change| tx.send((source, c)).is_ok();
            let retrying = |m: String| eprintln!("mtlscope: warning: {m}");
            follow_collection(&client, &collection, &mut sink, &retrying).await
        });
    }
    drop(tx);

    let mut state = State {
        node: NodePods::default(),
        stores: BTreeMap::new(),
        listed: Vec::new(),
        expected: collections
            .iter()
            .map(|(s, _)| *s)
            .filter(|s| *s != Source::NodePods)
            .collect(),
        dirty: false,
        built_at: None,
        root_namespace: opts.root_namespace.clone(),
    };
    let mut shutdown = std::pin::pin!(shutdown);
    let mut retry = tokio::time::interval(opts.retry_interval);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let rebuild_at = state.next_build(opts.rebuild_interval);
        let mut events = Vec::new();
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            received = rx.recv() => match received {
                Some((source, change)) => state.apply(source, change, &opts, &mut events),
                None => return Ok(()),
            },
            Some(ended) = tasks.join_next() => match ended {
                Ok(Err(e)) => return Err(e),
                Ok(Ok(())) => return Ok(()),
                Err(panicked) => return Err(KubeError::Other {
                    what: "follow the cluster".to_owned(),
                    message: panicked.to_string(),
                }),
            },
            _ = retry.tick(), if state.node.has_pending() => state.node.retry(&opts.proc_root, &mut events),
            _ = sleep_until(rebuild_at), if rebuild_at.is_some() => state.rebuild(&view),
        }
        for e in events {
            if targets.send(e).is_err() {
                return Ok(()); // the monitor stopped
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

fn all(resource: crate::kube::client::Resource, namespace: Option<String>) -> Collection {
    Collection {
        resource,
        namespace,
        fields: None,
    }
}

struct State {
    node: NodePods,
    /// The cluster's objects, slimmed and serialized (a JSON tree costs about 13 times its
    /// text: 142 MiB against 10 MiB for 10,000 pods, see slim.rs), by source and
    /// `namespace/name`; parsed again for each rebuild.
    stores: BTreeMap<Source, BTreeMap<String, Box<[u8]>>>,
    /// Sources listed at least once.
    listed: Vec<Source>,
    /// The sources the snapshot is built from; the first build waits for all their lists.
    expected: Vec<Source>,
    dirty: bool,
    built_at: Option<Instant>,
    root_namespace: Option<String>,
}

impl State {
    fn apply(&mut self, source: Source, change: Change, opts: &FollowOptions, out: &mut Vec<TargetEvent>) {
        if source == Source::NodePods {
            match change {
                Change::Listed(pods) => self.node.replace(&pods, &opts.proc_root, out),
                Change::Applied(pod) => self.node.update(&pod, &opts.proc_root, out),
                Change::Deleted(pod) => self.node.forget(&pod_name(&pod), out),
            }
            return;
        }
        let keep = |v: Value| {
            let v = if source == Source::Pods {
                slim::pod(v)
            } else {
                slim::other(v)
            };
            serde_json::to_vec(&v).unwrap_or_default().into_boxed_slice()
        };
        let wanted = |v: &Value| source != Source::ConfigMaps || is_mesh_config(v);
        let store = self.stores.entry(source).or_default();
        match change {
            Change::Listed(items) => {
                *store = items
                    .into_iter()
                    .filter(wanted)
                    .map(|v| (pod_name(&v), keep(v)))
                    .collect();
                if !self.listed.contains(&source) {
                    self.listed.push(source);
                }
            }
            Change::Applied(v) => {
                let name = pod_name(&v);
                if wanted(&v) {
                    store.insert(name, keep(v));
                } else {
                    store.remove(&name); // a ConfigMap relabelled away from the mesh
                }
            }
            Change::Deleted(v) => {
                store.remove(&pod_name(&v));
            }
        }
        self.dirty = true;
    }

    /// When to build the snapshot next, if it needs building.
    fn next_build(&self, interval: Duration) -> Option<Instant> {
        if !self.dirty || !self.expected.iter().all(|s| self.listed.contains(s)) {
            return None;
        }
        Some(self.built_at.map_or_else(Instant::now, |at| at + interval))
    }

    fn rebuild(&mut self, view: &ClusterView) {
        self.dirty = false;
        self.built_at = Some(Instant::now());
        // Mesh config first: the engine reads the root namespace out of it.
        let order = [
            Source::ConfigMaps,
            Source::PeerAuthentications,
            Source::Services,
            Source::Pods,
        ];
        let objects: Vec<Value> = order
            .iter()
            .filter_map(|s| self.stores.get(s))
            .flat_map(|store| store.values())
            .filter_map(|json| serde_json::from_slice(json).ok())
            .collect();
        match Cluster::from_objects(objects) {
            Ok(mut cluster) => {
                if let Some(root) = &self.root_namespace {
                    cluster.set_root_namespace(root);
                }
                view.set(cluster);
            }
            Err(e) => {
                eprintln!("mtlscope: warning: the cluster's objects cannot be used ({e}); keeping the previous view")
            }
        }
    }
}

/// `istio`, or `istio-<revision>` labelled `istio.io/rev: <revision>`, as istiod names them.
fn is_mesh_config(cm: &Value) -> bool {
    let name = cm.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let rev = cm.pointer("/metadata/labels/istio.io~1rev").and_then(Value::as_str);
    name == "istio" || rev.is_some_and(|r| name == format!("istio-{r}"))
}
