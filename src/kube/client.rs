//! Enrich, Kubernetes API: what `--cluster` and the kubectl plugin read from a live cluster.
//!
//! - [`client`] connects the way kubectl does: `--kubeconfig FILE`, else `KUBECONFIG` (a list of
//!   files, merged, missing ones skipped), else `~/.kube/config`, else the pod's service account
//!   when running inside a cluster; `--context` picks a context, else the current one.
//! - [`cluster_objects`] fetches what [`Cluster::from_objects`] needs: pods, Services,
//!   PeerAuthentications (`security.istio.io/v1`, or `v1beta1` when the cluster serves only that,
//!   found through the API group's discovery document) and the `istio` / `istio-<revision>` mesh
//!   ConfigMaps. A cluster without Istio's CRDs is not an error: no policies, and a note says so.
//! - [`resolve_targets`] turns the plugin's target (`POD`, `deploy/NAME`, `sts/NAME`, `ds/NAME`,
//!   `rs/NAME`, `svc/NAME`, or `-l SELECTOR`) into pods with their node, IPs and container IDs.
//!
//! Objects are fetched as raw JSON (not through typed structs) for the engine, so nothing the
//! server sent is dropped or reformatted on the way; lists are read page by page. Every failure
//! becomes a [`KubeError`] that names what was asked, where, and what to do about it.

use crate::policy::{self, Cluster, LoadError, DEFAULT_ROOT_NAMESPACE};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::Selector;
use serde_json::Value;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// Items asked for per list request. The API server's own default is unlimited; pages keep a
/// large cluster's answer (and this process's peak memory) in bounded pieces.
const PAGE_SIZE: u32 = 500;
/// A server that keeps handing out `continue` tokens is broken; stop instead of looping. 1000
/// pages of 500 is well past the 150,000 pods Kubernetes supports in one cluster.
const MAX_PAGES: usize = 1000;
const ISTIO_SECURITY_GROUP: &str = "security.istio.io";

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why talking to the cluster failed. Each message says what was asked, where, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(
        "no Kubernetes configuration: {} does not exist, KUBECONFIG is not set, and this is not running in a \
         pod; pass --kubeconfig FILE or set KUBECONFIG",
        default_path.as_ref().map_or_else(|| "~/.kube/config".to_owned(), |p| p.display().to_string())
    )]
    NoConfig { default_path: Option<PathBuf> },
    /// A kubeconfig file that cannot be read or used. `origin` names the file(s) and how they
    /// were chosen (`--kubeconfig`, `KUBECONFIG`, the default path).
    #[error("{origin}: {message}")]
    Kubeconfig { origin: String, message: String },
    #[error(
        "{origin} has no current-context; pass --context NAME (contexts: {})",
        list_or_none(known)
    )]
    NoContext { origin: String, known: Vec<String> },
    #[error(
        "context '{context}' not found in {origin} (contexts: {}); `kubectl config get-contexts` lists them",
        list_or_none(known)
    )]
    UnknownContext {
        context: String,
        origin: String,
        known: Vec<String>,
    },
    #[error("running in a pod, but its service account cannot be used: {message}; pass --kubeconfig FILE instead")]
    InCluster { message: String },
    #[error("--context {context} needs a kubeconfig, and there is none ({why}); pass --kubeconfig FILE")]
    ContextWithoutKubeconfig { context: String, why: &'static str },
    #[error("cannot set up the connection to the API server ({origin}): {message}")]
    Client { origin: String, message: String },
    #[error(
        "cannot reach the Kubernetes API server: {message} (is the cluster running, and is the server address in \
         the kubeconfig right? `kubectl cluster-info` checks both)"
    )]
    Unreachable { message: String },
    #[error(
        "the API server rejected the credentials (401 Unauthorized) when asked to {verb} {resource}: {message}; \
         log in again or refresh the kubeconfig user's token or certificate"
    )]
    Unauthorized {
        verb: &'static str,
        resource: String,
        message: String,
    },
    #[error(
        "forbidden: cannot {verb} {resource} {} (needs RBAC: {} on {resource}, {}; check with \
         `kubectl auth can-i {verb} {resource} {}`); the API server said: {message}",
        scope_text(namespace.as_deref()),
        rbac_verbs(verb),
        rbac_binding(namespace.as_deref()),
        can_i_scope(namespace.as_deref())
    )]
    Forbidden {
        verb: &'static str,
        resource: String,
        namespace: Option<String>,
        message: String,
    },
    #[error("{kind} '{name}' not found{}{hint}", in_namespace(namespace.as_deref()))]
    NotFound {
        /// `pod`, `deployment`, ...
        kind: &'static str,
        name: String,
        namespace: Option<String>,
        /// Empty, or `" (pods whose name starts with it: ...)"`.
        hint: String,
    },
    #[error("{owner} in namespace '{namespace}' has no pods matching {selector}")]
    NoPodsForWorkload {
        owner: String,
        namespace: String,
        selector: String,
    },
    #[error("no pods in namespace '{namespace}' match {selector}")]
    NoPodsMatch { namespace: String, selector: String },
    #[error("{owner} in namespace '{namespace}' {reason}; name a pod or use -l SELECTOR")]
    UnusableSelector {
        owner: String,
        namespace: String,
        reason: String,
    },
    #[error("cannot use '{target}' as a target: {reason}")]
    BadTarget { target: String, reason: String },
    #[error("{0}")]
    Usage(&'static str),
    #[error(
        "container '{container}' not found in pod '{pod}' in namespace '{namespace}' (containers: {})",
        list_or_none(known)
    )]
    NoContainer {
        container: String,
        pod: String,
        namespace: String,
        known: Vec<String>,
    },
    #[error(
        "cannot {verb} {resource} {}: the API server answered {code} {reason}: {message}",
        scope_text(namespace.as_deref())
    )]
    Api {
        verb: &'static str,
        resource: String,
        namespace: Option<String>,
        code: u16,
        reason: String,
        message: String,
    },
    /// Admission control refused the plugin's helper pod.
    #[error("the helper pod was refused in namespace '{namespace}' by {policy}: {message}; {remedy}")]
    HelperRejected {
        namespace: String,
        /// `Pod Security admission (level "baseline")`, `OpenShift SecurityContextConstraints`, ...
        policy: String,
        message: String,
        /// What to grant, as commands.
        remedy: String,
    },
    #[error("unexpected answer when asked to {what}: {message}")]
    Decode { what: String, message: String },
    #[error("cannot {what}: {message}")]
    Other { what: String, message: String },
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

fn scope_text(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("in namespace '{ns}'"),
        None => "in all namespaces".to_owned(),
    }
}

fn in_namespace(namespace: Option<&str>) -> String {
    namespace.map_or_else(String::new, |ns| format!(" in namespace '{ns}'"))
}

fn rbac_verbs(verb: &str) -> String {
    match verb {
        "get" | "list" => "get/list".to_owned(),
        other => other.to_owned(),
    }
}

fn rbac_binding(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("from a Role or ClusterRole bound in namespace '{ns}'"),
        None => "from a ClusterRole bound with a ClusterRoleBinding".to_owned(),
    }
}

fn can_i_scope(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("-n {ns}"),
        None => "-A".to_owned(),
    }
}

/// An error and all its sources, one after the other, repeated text left out (hyper and tower
/// wrap the same cause several times).
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

/// A kind of object read here, and where the API serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Resource {
    /// `""` for the core group.
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
}

const PODS: Resource = Resource {
    group: "",
    version: "v1",
    plural: "pods",
    kind: "Pod",
};
const SERVICES: Resource = Resource {
    group: "",
    version: "v1",
    plural: "services",
    kind: "Service",
};
const CONFIG_MAPS: Resource = Resource {
    group: "",
    version: "v1",
    plural: "configmaps",
    kind: "ConfigMap",
};

fn peer_authentications(version: &'static str) -> Resource {
    Resource {
        group: ISTIO_SECURITY_GROUP,
        version,
        plural: "peerauthentications",
        kind: "PeerAuthentication",
    }
}

impl Resource {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// As kubectl and RBAC name it: `pods`, `peerauthentications.security.istio.io`.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    fn collection_path(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) => format!("{base}/namespaces/{ns}/{}", self.plural),
            None => format!("{base}/{}", self.plural),
        }
    }
}

/// What a failed request was about, to turn a [`kube::Error`] into a [`KubeError`].
struct Asked<'a> {
    verb: &'static str,
    /// RBAC name (`pods`, `deployments.apps`).
    resource: String,
    /// Singular, for "pod 'x' not found".
    kind: &'static str,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
}

impl<'a> Asked<'a> {
    /// A request on pods (or a pods subresource such as `pods/exec`).
    fn pods(verb: &'static str, resource: &str, namespace: Option<&'a str>, name: Option<&'a str>) -> Asked<'a> {
        Asked {
            verb,
            resource: resource.to_owned(),
            kind: "pod",
            namespace,
            name,
        }
    }

    fn what(&self) -> String {
        let mut s = format!("{} {}", self.verb, self.resource);
        if let Some(name) = self.name {
            s.push_str(&format!(" '{name}'"));
        }
        s.push(' ');
        s.push_str(&scope_text(self.namespace));
        s
    }
}

fn api_error(e: kube::Error, asked: &Asked<'_>) -> KubeError {
    let namespace = asked.namespace.map(str::to_owned);
    match e {
        kube::Error::Api(status) => match status.code {
            401 => KubeError::Unauthorized {
                verb: asked.verb,
                resource: asked.resource.clone(),
                message: status.message,
            },
            403 => KubeError::Forbidden {
                verb: asked.verb,
                resource: asked.resource.clone(),
                namespace,
                message: status.message,
            },
            404 if asked.name.is_some() => KubeError::NotFound {
                kind: asked.kind,
                name: asked.name.unwrap_or_default().to_owned(),
                namespace,
                hint: String::new(),
            },
            code => KubeError::Api {
                verb: asked.verb,
                resource: asked.resource.clone(),
                namespace,
                code,
                reason: status.reason,
                message: status.message,
            },
        },
        // Leave out kube's own "ServiceError:" / "HyperError:" prefix: the causes say it all.
        kube::Error::HyperError(e) => KubeError::Unreachable { message: chain(&e) },
        kube::Error::Service(e) => KubeError::Unreachable { message: chain(&*e) },
        kube::Error::SerdeError(e) => KubeError::Decode {
            what: asked.what(),
            message: e.to_string(),
        },
        e => KubeError::Other {
            what: asked.what(),
            message: chain(&e),
        },
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

// ---------------------------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------------------------

/// Which cluster to talk to, as kubectl's `--kubeconfig` and `--context` say it. `None` for both
/// means what kubectl would use: `KUBECONFIG`, `~/.kube/config`, or the pod's service account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeTarget {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// The parts of the process environment that choose the configuration, read once so the choice
/// can be tested without changing the environment.
#[derive(Debug, Clone, Default)]
struct Env {
    kubeconfig: Option<OsString>,
    home: Option<PathBuf>,
    in_cluster: bool,
}

impl Env {
    fn from_process() -> Env {
        let home = std::env::var_os("HOME")
            .or_else(|| std::env::var_os("USERPROFILE"))
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        Env {
            kubeconfig: std::env::var_os("KUBECONFIG"),
            home,
            in_cluster: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
                && std::env::var_os("KUBERNETES_SERVICE_PORT").is_some(),
        }
    }

    fn default_path(&self) -> Option<PathBuf> {
        self.home.as_ref().map(|h| h.join(".kube").join("config"))
    }
}

/// Where the configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// Kubeconfig files to merge in order, and how to name them in messages.
    Files {
        files: Vec<PathBuf>,
        origin: String,
    },
    InCluster,
}

/// kubectl's order: `--kubeconfig` (must exist), `KUBECONFIG` (files that don't exist are
/// skipped), `~/.kube/config`, then in-cluster.
fn locate(t: &KubeTarget, env: &Env) -> Result<Source, KubeError> {
    if let Some(path) = &t.kubeconfig {
        let origin = format!("kubeconfig {} (--kubeconfig)", path.display());
        if !path.is_file() {
            return Err(KubeError::Kubeconfig {
                origin,
                message: "no such file".to_owned(),
            });
        }
        return Ok(Source::Files {
            files: vec![path.clone()],
            origin,
        });
    }
    if let Some(list) = env.kubeconfig.as_ref().filter(|v| !v.is_empty()) {
        let named: Vec<PathBuf> = std::env::split_paths(list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        let files: Vec<PathBuf> = named.iter().filter(|p| p.is_file()).cloned().collect();
        let shown = named
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        if files.is_empty() {
            return Err(KubeError::Kubeconfig {
                origin: format!("KUBECONFIG ({shown})"),
                message: "none of these files exists".to_owned(),
            });
        }
        let origin = if named.len() == 1 {
            format!("kubeconfig {shown} (KUBECONFIG)")
        } else {
            format!("kubeconfig files {shown} (KUBECONFIG)")
        };
        return Ok(Source::Files { files, origin });
    }
    if let Some(path) = env.default_path().filter(|p| p.is_file()) {
        let origin = format!("kubeconfig {}", path.display());
        return Ok(Source::Files {
            files: vec![path],
            origin,
        });
    }
    if env.in_cluster {
        if let Some(context) = &t.context {
            return Err(KubeError::ContextWithoutKubeconfig {
                context: context.clone(),
                why: "running in a pod with no KUBECONFIG and no ~/.kube/config",
            });
        }
        return Ok(Source::InCluster);
    }
    Err(KubeError::NoConfig {
        default_path: env.default_path(),
    })
}

/// The client configuration for `t`, and how to name where it came from in messages.
async fn config_with_origin(t: &KubeTarget, env: &Env) -> Result<(kube::Config, String), KubeError> {
    let (files, origin) = match locate(t, env)? {
        Source::InCluster => {
            let config = kube::Config::incluster().map_err(|e| KubeError::InCluster { message: chain(&e) })?;
            return Ok((config, "in-cluster service account".to_owned()));
        }
        Source::Files { files, origin } => (files, origin),
    };
    let mut merged: Option<Kubeconfig> = None;
    for file in &files {
        let read = Kubeconfig::read_from(file).map_err(|e| KubeError::Kubeconfig {
            origin: format!("kubeconfig {}", file.display()),
            message: chain(&e),
        })?;
        merged = Some(match merged {
            None => read,
            Some(m) => m.merge(read).map_err(|e| KubeError::Kubeconfig {
                origin: origin.clone(),
                message: chain(&e),
            })?,
        });
    }
    let kubeconfig = merged.unwrap_or_default();
    let known: Vec<String> = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
    let context = match t.context.as_ref().or(kubeconfig.current_context.as_ref()) {
        Some(c) if !c.is_empty() => c.clone(),
        _ => return Err(KubeError::NoContext { origin, known }),
    };
    if !known.contains(&context) {
        return Err(KubeError::UnknownContext { context, origin, known });
    }
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..KubeConfigOptions::default()
    };
    let origin = format!("context '{context}' of {origin}");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| KubeError::Kubeconfig {
            origin: origin.clone(),
            message: chain(&e),
        })?;
    Ok((config, origin))
}

/// The client configuration kubectl would use for `t` (see [`KubeTarget`]). Its
/// `default_namespace` is the context's namespace, what `-n` defaults to.
pub async fn config(t: &KubeTarget) -> Result<kube::Config, KubeError> {
    Ok(config_with_origin(t, &Env::from_process()).await?.0)
}

/// A client for the cluster `t` names. Nothing is sent yet: an unreachable server shows up as
/// [`KubeError::Unreachable`] on the first request.
pub async fn client(t: &KubeTarget) -> Result<kube::Client, KubeError> {
    let (config, origin) = config_with_origin(t, &Env::from_process()).await?;
    client_from_config(config, &origin)
}

/// A client for the cluster `t` names, and the namespace its context defaults to (what `-n`
/// defaults to, as in kubectl).
pub async fn connect(t: &KubeTarget) -> Result<(kube::Client, String), KubeError> {
    let (config, origin) = config_with_origin(t, &Env::from_process()).await?;
    let namespace = config.default_namespace.clone();
    Ok((client_from_config(config, &origin)?, namespace))
}

/// A client for an explicit configuration (a test's fake server, a proxy URL).
pub fn client_from_config(config: kube::Config, origin: &str) -> Result<kube::Client, KubeError> {
    kube::Client::try_from(config).map_err(|e| KubeError::Client {
        origin: origin.to_owned(),
        message: chain(&e),
    })
}

// ---------------------------------------------------------------------------------------------
// Reading what the PeerAuthentication engine needs
// ---------------------------------------------------------------------------------------------

/// Objects for [`Cluster::from_objects`], and what the user should know about how they were read.
#[derive(Debug, Clone, Default)]
pub struct ClusterObjects {
    /// Mesh ConfigMaps, PeerAuthentications, Services and pods, each with its `apiVersion` and
    /// `kind` set (list items from the API server carry neither).
    pub objects: Vec<Value>,
    /// The `security.istio.io` version PeerAuthentications were read through; `None` when the
    /// cluster does not serve them.
    pub peer_authentication_version: Option<&'static str>,
    /// Facts worth a line on stderr: Istio's API missing, the v1beta1 fallback, no mesh config.
    pub notes: Vec<String>,
}

impl ClusterObjects {
    pub fn into_cluster(self) -> Result<Cluster, LoadError> {
        Cluster::from_objects(self.objects)
    }
}

/// Pods and Services (in `namespace`, or all namespaces), PeerAuthentications and the mesh
/// config. With a namespace, PeerAuthentications are read from it and from the mesh's root
/// namespace (from the mesh config), which is all the engine uses for that namespace's pods.
pub async fn cluster_objects(client: &kube::Client, namespace: Option<&str>) -> Result<ClusterObjects, KubeError> {
    let mut out = ClusterObjects::default();

    let config_maps = match mesh_config_maps(client).await {
        Ok(found) => {
            if found.is_empty() {
                out.notes.push(format!(
                    "no `istio` mesh ConfigMap found in any namespace: assuming Istio's default root namespace \
                     {DEFAULT_ROOT_NAMESPACE}"
                ));
            }
            found
        }
        Err(KubeError::Forbidden { .. }) => {
            let (found, note) = istio_system_mesh_config(client).await;
            out.notes.push(note);
            found
        }
        Err(e) => return Err(e),
    };
    // The engine already knows how to read the root namespace out of a mesh config.
    let root = Cluster::from_objects(config_maps.clone())
        .map(|c| c.root_namespace().to_owned())
        .unwrap_or_else(|_| DEFAULT_ROOT_NAMESPACE.to_owned());
    out.objects.extend(config_maps);

    match served_peer_authentication_version(client).await? {
        Discovered::Version(version) => {
            out.peer_authentication_version = Some(version);
            if version != "v1" {
                out.notes.push(format!(
                    "PeerAuthentications read through {ISTIO_SECURITY_GROUP}/{version}: this cluster does not serve \
                     v1 (Istio older than 1.22)"
                ));
            }
            let resource = peer_authentications(version);
            let scopes: Vec<Option<&str>> = match namespace {
                None => vec![None],
                Some(ns) if ns == root => vec![Some(ns)],
                Some(ns) => vec![Some(ns), Some(root.as_str())],
            };
            for scope in scopes {
                match list_all(client, &resource, scope, &ListParams::default()).await {
                    Ok(items) => out.objects.extend(items),
                    Err(ListError::NotServed) => {
                        out.peer_authentication_version = None;
                        out.notes.push(format!(
                            "{ISTIO_SECURITY_GROUP}/{version} is served but has no peerauthentications resource: \
                             no PeerAuthentication policies"
                        ));
                        break;
                    }
                    Err(ListError::Kube(e)) => return Err(e),
                }
            }
        }
        Discovered::Absent => out.notes.push(format!(
            "this cluster does not serve the {ISTIO_SECURITY_GROUP} API (Istio's CRDs are not installed): \
             no PeerAuthentication policies to read"
        )),
        Discovered::NoKnownVersion(served) => out.notes.push(format!(
            "{ISTIO_SECURITY_GROUP} serves versions {} but not v1 or v1beta1: PeerAuthentications not read",
            list_or_none(&served)
        )),
    }

    for resource in [SERVICES, PODS] {
        let items = list_all(client, &resource, namespace, &ListParams::default())
            .await
            .map_err(|e| e.into_kube(&resource, namespace))?;
        if resource == PODS && items.is_empty() {
            if let Some(ns) = namespace {
                out.notes.push(format!(
                    "no pods in namespace '{ns}' (does it exist? `kubectl get namespace {ns}`)"
                ));
            }
        }
        out.objects.extend(items);
    }
    Ok(out)
}

/// The ConfigMaps that may hold the mesh config: `istio` in any namespace, and
/// `istio-<revision>` for revisioned installs (labelled `istio.io/rev: <revision>`). A field
/// selector cannot match a name prefix, hence two queries.
async fn mesh_config_maps(client: &kube::Client) -> Result<Vec<Value>, KubeError> {
    let read = |lp: ListParams| async move {
        list_all(client, &CONFIG_MAPS, None, &lp)
            .await
            .map_err(|e| e.into_kube(&CONFIG_MAPS, None))
    };
    let mut found = read(ListParams::default().fields("metadata.name=istio")).await?;
    let mut seen: BTreeSet<(String, String)> = found.iter().map(namespace_name).collect();
    for cm in read(ListParams::default().labels("istio.io/rev")).await? {
        let rev = cm.pointer("/metadata/labels/istio.io~1rev").and_then(Value::as_str);
        let name = cm.pointer("/metadata/name").and_then(Value::as_str);
        let is_mesh_config = matches!((rev, name), (Some(rev), Some(name)) if name == format!("istio-{rev}"));
        if is_mesh_config && seen.insert(namespace_name(&cm)) {
            found.push(cm);
        }
    }
    Ok(found)
}

/// Someone allowed into a few namespaces only may not list ConfigMaps everywhere. The mesh config
/// only moves the root namespace, so go on with istiod's usual ConfigMap, or none, and say which.
async fn istio_system_mesh_config(client: &kube::Client) -> (Vec<Value>, String) {
    match get_raw(client, &CONFIG_MAPS, DEFAULT_ROOT_NAMESPACE, "istio").await {
        Ok(Some(cm)) => (
            vec![cm],
            format!(
                "listing ConfigMaps in all namespaces is forbidden: read the mesh config from \
                 {DEFAULT_ROOT_NAMESPACE}/istio only"
            ),
        ),
        Ok(None) | Err(_) => (
            Vec::new(),
            format!(
                "cannot read the mesh config (listing ConfigMaps in all namespaces is forbidden, needs RBAC get/list \
                 on configmaps cluster-wide): assuming root namespace {DEFAULT_ROOT_NAMESPACE}; pass \
                 --root-namespace if the mesh uses another"
            ),
        ),
    }
}

/// One object as raw JSON; `None` if it does not exist.
async fn get_raw(
    client: &kube::Client,
    resource: &Resource,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>, KubeError> {
    let asked = Asked {
        verb: "get",
        resource: resource.qualified(),
        kind: resource.kind,
        namespace: Some(namespace),
        name: Some(name),
    };
    let request = kube::core::Request::new(resource.collection_path(Some(namespace)))
        .get(name, &kube::api::GetParams::default())
        .map_err(|e| KubeError::Other {
            what: asked.what(),
            message: e.to_string(),
        })?;
    match client.request::<Value>(request).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_status(&e, 404) => Ok(None),
        Err(e) => Err(api_error(e, &asked)),
    }
}

fn namespace_name(v: &Value) -> (String, String) {
    let get = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
    (get("/metadata/namespace"), get("/metadata/name"))
}

enum Discovered {
    Version(&'static str),
    /// The API group is not served at all: Istio is not installed.
    Absent,
    NoKnownVersion(Vec<String>),
}

/// `GET /apis/security.istio.io`: which versions the cluster serves. v1 is preferred (Istio
/// 1.22+); v1beta1 is what older Istio serves.
async fn served_peer_authentication_version(client: &kube::Client) -> Result<Discovered, KubeError> {
    let path = format!("/apis/{ISTIO_SECURITY_GROUP}");
    let asked = Asked {
        verb: "get",
        resource: format!("API group {ISTIO_SECURITY_GROUP} ({path})"),
        kind: "API group",
        namespace: None,
        name: None,
    };
    let request = http::Request::get(path.as_str())
        .body(Vec::new())
        .map_err(|e| KubeError::Other {
            what: asked.what(),
            message: e.to_string(),
        })?;
    let group: Value = match client.request(request).await {
        Ok(v) => v,
        Err(e) if is_status(&e, 404) => return Ok(Discovered::Absent),
        Err(e) => return Err(api_error(e, &asked)),
    };
    let served: Vec<String> = group
        .get("versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter_map(|v| v.get("version").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(["v1", "v1beta1"]
        .into_iter()
        .find(|want| served.iter().any(|s| s == want))
        .map_or(Discovered::NoKnownVersion(served), Discovered::Version))
}

enum ListError {
    /// 404 on a collection: the API server does not serve this resource.
    NotServed,
    Kube(KubeError),
}

impl ListError {
    fn into_kube(self, resource: &Resource, namespace: Option<&str>) -> KubeError {
        match self {
            ListError::Kube(e) => e,
            ListError::NotServed => KubeError::Api {
                verb: "list",
                resource: resource.qualified(),
                namespace: namespace.map(str::to_owned),
                code: 404,
                reason: "NotFound".to_owned(),
                message: "the server does not serve this resource".to_owned(),
            },
        }
    }
}

/// Every object of a collection as raw JSON, following `continue` tokens page by page.
async fn list_all(
    client: &kube::Client,
    resource: &Resource,
    namespace: Option<&str>,
    params: &ListParams,
) -> Result<Vec<Value>, ListError> {
    let asked = Asked {
        verb: "list",
        resource: resource.qualified(),
        kind: resource.kind,
        namespace,
        name: None,
    };
    let request = kube::core::Request::new(resource.collection_path(namespace));
    let (api_version, kind) = (resource.api_version(), resource.kind);
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut lp = params.clone().limit(PAGE_SIZE);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let http_request = request.list(&lp).map_err(|e| {
            ListError::Kube(KubeError::Other {
                what: asked.what(),
                message: e.to_string(),
            })
        })?;
        let mut page: Value = match client.request(http_request).await {
            Ok(v) => v,
            Err(e) if is_status(&e, 404) => return Err(ListError::NotServed),
            Err(e) => return Err(ListError::Kube(api_error(e, &asked))),
        };
        match page.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => {
                for mut item in items {
                    if let Value::Object(m) = &mut item {
                        m.entry("apiVersion")
                            .or_insert_with(|| Value::from(api_version.clone()));
                        m.entry("kind").or_insert_with(|| Value::from(kind));
                    }
                    out.push(item);
                }
            }
            None | Some(Value::Null) => {}
            Some(other) => {
                return Err(ListError::Kube(KubeError::Decode {
                    what: asked.what(),
                    message: format!("`items` is {}, not a list", json_type(&other)),
                }))
            }
        }
        token = page
            .pointer("/metadata/continue")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if token.is_none() {
            return Ok(out);
        }
    }
    Err(ListError::Kube(KubeError::Decode {
        what: asked.what(),
        message: format!("still more pages after {MAX_PAGES} (a `continue` token that never ends)"),
    }))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------------------------
// Resolving the plugin's target to pods
// ---------------------------------------------------------------------------------------------

/// Which container of a pod capture enters: the plugin's choice, so it lives with the plugin
/// rather than with the Pod model in [`crate::policy`].
impl policy::Pod {
    /// The container `-c NAME` asks for; without a name, the one kubectl would pick: the
    /// `default-container` annotation, else the first container that is not a sidecar, else the
    /// first. All containers of a pod share its network namespace, so this only decides whose
    /// process the helper enters.
    pub fn container(&self, name: Option<&str>) -> Result<&policy::Container, KubeError> {
        let wanted = name.or(self.default_container.as_deref());
        let found = match wanted {
            Some(n) => self.containers.iter().find(|c| c.name == n),
            None => self
                .containers
                .iter()
                .find(|c| !c.sidecar)
                .or_else(|| self.containers.first()),
        };
        found.ok_or_else(|| KubeError::NoContainer {
            container: wanted.unwrap_or("<default>").to_owned(),
            pod: self.name.clone(),
            namespace: self.namespace.clone(),
            known: self.containers.iter().map(|c| c.name.clone()).collect(),
        })
    }
}

/// What the plugin's positional argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Pod(String),
    Workload { kind: WorkloadKind, name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Service,
}

impl WorkloadKind {
    fn singular(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
            WorkloadKind::ReplicaSet => "replicaset",
            WorkloadKind::Service => "service",
        }
    }

    fn resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployments.apps",
            WorkloadKind::StatefulSet => "statefulsets.apps",
            WorkloadKind::DaemonSet => "daemonsets.apps",
            WorkloadKind::ReplicaSet => "replicasets.apps",
            WorkloadKind::Service => "services",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Pod(name) => write!(f, "pod '{name}'"),
            Target::Workload { kind, name } => write!(f, "{} '{name}'", kind.singular()),
        }
    }
}

const TARGET_FORMS: &str = "expected POD, pod/NAME, deploy/NAME, sts/NAME, ds/NAME, rs/NAME or svc/NAME";

/// `NAME`, `pod/NAME`, `deploy/NAME`, ... with kubectl's aliases; the type is case-insensitive
/// and may carry its group (`deployments.apps/NAME`), as kubectl accepts.
fn parse_target(target: &str) -> Result<Target, KubeError> {
    let bad = |reason: String| KubeError::BadTarget {
        target: target.to_owned(),
        reason,
    };
    let (kind, name) = match target.split_once('/') {
        None => (None, target),
        Some((kind, name)) => (Some(kind), name),
    };
    if name.is_empty() {
        return Err(bad(format!("no name ({TARGET_FORMS})")));
    }
    if name.contains('/') {
        return Err(bad(format!("too many '/' ({TARGET_FORMS})")));
    }
    let Some(kind) = kind else {
        return Ok(Target::Pod(name.to_owned()));
    };
    let lower = kind.to_ascii_lowercase();
    let (base, group) = match lower.split_once('.') {
        Some((b, g)) => (b, Some(g)),
        None => (lower.as_str(), None),
    };
    let (kind, expected_group) = match base {
        "po" | "pod" | "pods" => return check_group(group, "", target).map(|()| Target::Pod(name.to_owned())),
        "deploy" | "deployment" | "deployments" => (WorkloadKind::Deployment, "apps"),
        "sts" | "statefulset" | "statefulsets" => (WorkloadKind::StatefulSet, "apps"),
        "ds" | "daemonset" | "daemonsets" => (WorkloadKind::DaemonSet, "apps"),
        "rs" | "replicaset" | "replicasets" => (WorkloadKind::ReplicaSet, "apps"),
        "svc" | "service" | "services" => (WorkloadKind::Service, ""),
        _ => return Err(bad(format!("unknown type '{kind}' ({TARGET_FORMS})"))),
    };
    check_group(group, expected_group, target)?;
    Ok(Target::Workload {
        kind,
        name: name.to_owned(),
    })
}

fn check_group(group: Option<&str>, expected: &str, target: &str) -> Result<(), KubeError> {
    match group {
        None => Ok(()),
        Some(g) if g == expected => Ok(()),
        Some(g) => Err(KubeError::BadTarget {
            target: target.to_owned(),
            reason: format!("unknown API group '{g}' ({TARGET_FORMS})"),
        }),
    }
}

/// The pods a target names, sorted by name: one pod, the pods a workload's selector matches, or
/// the pods a label selector (`-l`) matches. Give exactly one of `target` and `selector`.
pub async fn resolve_targets(
    client: &kube::Client,
    namespace: &str,
    target: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<policy::Pod>, KubeError> {
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match (target, selector) {
        (Some(_), Some(_)) => Err(KubeError::Usage(
            "give either a target (POD, deploy/NAME, ...) or -l SELECTOR, not both",
        )),
        (None, None) => Err(KubeError::Usage(
            "nothing to capture: give a pod, a workload (deploy/NAME, sts/NAME, ds/NAME) or -l SELECTOR",
        )),
        (None, Some(selector)) => {
            let pods = list_pods(&pods_api, namespace, selector).await?;
            if pods.is_empty() {
                return Err(KubeError::NoPodsMatch {
                    namespace: namespace.to_owned(),
                    selector: selector.to_owned(),
                });
            }
            Ok(pods)
        }
        (Some(target), None) => match parse_target(target)? {
            Target::Pod(name) => {
                let asked = Asked {
                    verb: "get",
                    resource: "pods".to_owned(),
                    kind: "pod",
                    namespace: Some(namespace),
                    name: Some(&name),
                };
                match pods_api.get(&name).await {
                    Ok(pod) => Ok(vec![target_pod(pod, namespace)?]),
                    Err(e) => Err(with_pod_hint(api_error(e, &asked), &pods_api, &name).await),
                }
            }
            Target::Workload { kind, name } => {
                let owner = format!("{} '{name}'", kind.singular());
                let label_selector = workload_selector(client, namespace, kind, &name).await?;
                let selector = match label_selector {
                    Some(s) if !s.selects_all() => s.to_string(),
                    Some(_) | None => {
                        return Err(KubeError::UnusableSelector {
                            owner,
                            namespace: namespace.to_owned(),
                            reason: "has no pod selector (it would select every pod)".to_owned(),
                        })
                    }
                };
                let pods = list_pods(&pods_api, namespace, &selector).await?;
                if pods.is_empty() {
                    return Err(KubeError::NoPodsForWorkload {
                        owner,
                        namespace: namespace.to_owned(),
                        selector,
                    });
                }
                Ok(pods)
            }
        },
    }
}

/// A missing pod is often a Deployment's name or a pod name cut short: name the pods that start
/// with it. The hint is best-effort; if listing fails, the plain error stands.
async fn with_pod_hint(e: KubeError, pods_api: &Api<Pod>, name: &str) -> KubeError {
    let KubeError::NotFound {
        kind,
        name: missing,
        namespace,
        ..
    } = e
    else {
        return e;
    };
    let mut candidates: Vec<String> = match pods_api.list(&ListParams::default().limit(PAGE_SIZE)).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .filter(|n| n.starts_with(name))
            .collect(),
        Err(_) => Vec::new(),
    };
    candidates.sort();
    let hint = match candidates.len() {
        0 => String::new(),
        1..=5 => format!(
            " (pods whose name starts with it: {}; for all pods of a workload use deploy/NAME, sts/NAME or ds/NAME)",
            candidates.join(", ")
        ),
        n => format!(
            " ({n} pods have a name starting with it, e.g. {}; for all pods of a workload use deploy/NAME, \
             sts/NAME or ds/NAME)",
            candidates[..3].join(", ")
        ),
    };
    KubeError::NotFound {
        kind,
        name: missing,
        namespace,
        hint,
    }
}

async fn workload_selector(
    client: &kube::Client,
    namespace: &str,
    kind: WorkloadKind,
    name: &str,
) -> Result<Option<Selector>, KubeError> {
    let asked = Asked {
        verb: "get",
        resource: kind.resource().to_owned(),
        kind: kind.singular(),
        namespace: Some(namespace),
        name: Some(name),
    };
    let err = |e| api_error(e, &asked);
    let label_selector: Option<LabelSelector> = match kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), namespace)
            .get(name)
            .await
            .map_err(err)?
            .spec
            .map(|s| s.selector),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), namespace)
            .get(name)
            .await
            .map_err(err)?
            .spec
            .map(|s| s.selector),
        WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(client.clone(), namespace)
            .get(name)
            .await
            .map_err(err)?
            .spec
            .map(|s| s.selector),
        WorkloadKind::ReplicaSet => Api::<ReplicaSet>::namespaced(client.clone(), namespace)
            .get(name)
            .await
            .map_err(err)?
            .spec
            .map(|s| s.selector),
        WorkloadKind::Service => {
            let service = Api::<Service>::namespaced(client.clone(), namespace)
                .get(name)
                .await
                .map_err(err)?;
            let labels = service.spec.and_then(|s| s.selector).unwrap_or_default();
            return Ok(Some(labels.into_iter().collect()));
        }
    };
    match label_selector {
        None => Ok(None),
        Some(ls) => Selector::try_from(ls)
            .map(Some)
            .map_err(|e| KubeError::UnusableSelector {
                owner: format!("{} '{name}'", kind.singular()),
                namespace: namespace.to_owned(),
                reason: format!("has a selector that cannot be used: {e}"),
            }),
    }
}

async fn list_pods(pods_api: &Api<Pod>, namespace: &str, selector: &str) -> Result<Vec<policy::Pod>, KubeError> {
    let asked = Asked {
        verb: "list",
        resource: "pods".to_owned(),
        kind: "pod",
        namespace: Some(namespace),
        name: None,
    };
    let mut pods = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut lp = ListParams::default().labels(selector).limit(PAGE_SIZE);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = pods_api.list(&lp).await.map_err(|e| match e {
            // A malformed selector is the user's: say so plainly.
            kube::Error::Api(s) if s.code == 400 => KubeError::BadTarget {
                target: format!("-l {selector}"),
                reason: s.message,
            },
            e => api_error(e, &asked),
        })?;
        for p in page.items {
            pods.push(target_pod(p, namespace)?);
        }
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            pods.sort_by(|a, b| a.name.cmp(&b.name));
            return Ok(pods);
        }
    }
    Err(KubeError::Decode {
        what: asked.what(),
        message: format!("still more pages after {MAX_PAGES} (a `continue` token that never ends)"),
    })
}

/// The API's Pod in the one Pod model, read by the same code as a cluster dump's pods.
fn target_pod(pod: Pod, namespace: &str) -> Result<policy::Pod, KubeError> {
    let decode = |message: String| KubeError::Decode {
        what: format!("pod in namespace '{namespace}'"),
        message,
    };
    let mut v = serde_json::to_value(&pod).map_err(|e| decode(e.to_string()))?;
    let Some(obj) = v.as_object_mut() else {
        return Err(decode("not an object".into()));
    };
    // A listed pod always has its namespace; one that lacks it is in the namespace asked.
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.entry("namespace")
            .or_insert_with(|| Value::String(namespace.to_owned()));
    }
    policy::Pod::from_object(obj).map_err(|e| decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mtlscope-kube-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn target_forms_like_kubectl() {
        let w = |kind, name: &str| Target::Workload {
            kind,
            name: name.to_owned(),
        };
        assert_eq!(
            parse_target("reviews-v1-abc").unwrap(),
            Target::Pod("reviews-v1-abc".into())
        );
        assert_eq!(parse_target("po/x").unwrap(), Target::Pod("x".into()));
        assert_eq!(parse_target("pods/x").unwrap(), Target::Pod("x".into()));
        assert_eq!(
            parse_target("deploy/reviews").unwrap(),
            w(WorkloadKind::Deployment, "reviews")
        );
        assert_eq!(
            parse_target("Deployment/reviews").unwrap(),
            w(WorkloadKind::Deployment, "reviews")
        );
        assert_eq!(
            parse_target("deployments.apps/r").unwrap(),
            w(WorkloadKind::Deployment, "r")
        );
        assert_eq!(parse_target("sts/db").unwrap(), w(WorkloadKind::StatefulSet, "db"));
        assert_eq!(
            parse_target("statefulset/db").unwrap(),
            w(WorkloadKind::StatefulSet, "db")
        );
        assert_eq!(parse_target("ds/agent").unwrap(), w(WorkloadKind::DaemonSet, "agent"));
        assert_eq!(
            parse_target("daemonset/agent").unwrap(),
            w(WorkloadKind::DaemonSet, "agent")
        );
        assert_eq!(parse_target("rs/x").unwrap(), w(WorkloadKind::ReplicaSet, "x"));
        assert_eq!(
            parse_target("svc/reviews").unwrap(),
            w(WorkloadKind::Service, "reviews")
        );
        for bad in ["deploy/", "job/x", "deploy/a/b", "deployments.batch/x", "/x"] {
            let e = parse_target(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("cannot use '{bad}' as a target")), "{e}");
        }
    }

    #[test]
    fn kubeconfig_flag_wins_then_env_list_then_home_then_in_cluster() {
        let dir = scratch("locate");
        let a = dir.join("a");
        let b = dir.join("b");
        fs::write(&a, "").unwrap();
        fs::write(&b, "").unwrap();
        let home = dir.join("home");
        fs::create_dir_all(home.join(".kube")).unwrap();
        fs::write(home.join(".kube/config"), "").unwrap();
        let missing = dir.join("missing");
        let list = std::env::join_paths([&missing, &a, &b]).unwrap();
        let env = Env {
            kubeconfig: Some(list),
            home: Some(home.clone()),
            in_cluster: true,
        };
        let flag = KubeTarget {
            kubeconfig: Some(b.clone()),
            context: None,
        };
        assert!(matches!(locate(&flag, &env).unwrap(), Source::Files { files, .. } if files == vec![b.clone()]));
        // KUBECONFIG: listed files merged in order, missing ones skipped (as kubectl does).
        let none = KubeTarget::default();
        assert!(
            matches!(locate(&none, &env).unwrap(), Source::Files { files, .. } if files == vec![a.clone(), b.clone()])
        );
        let env_home = Env {
            kubeconfig: None,
            ..env.clone()
        };
        let default_file = vec![home.join(".kube/config")];
        assert!(matches!(locate(&none, &env_home).unwrap(), Source::Files { files, .. } if files == default_file));
        let env_pod = Env {
            kubeconfig: None,
            home: Some(dir.join("nohome")),
            in_cluster: true,
        };
        assert_eq!(locate(&none, &env_pod).unwrap(), Source::InCluster);
        let ctx = KubeTarget {
            kubeconfig: None,
            context: Some("prod".into()),
        };
        assert!(locate(&ctx, &env_pod)
            .unwrap_err()
            .to_string()
            .contains("--context prod needs a kubeconfig"));
        let nothing = Env {
            in_cluster: false,
            ..env_pod
        };
        let e = locate(&none, &nothing).unwrap_err().to_string();
        assert!(e.starts_with("no Kubernetes configuration: "), "{e}");
        assert!(e.contains("pass --kubeconfig FILE or set KUBECONFIG"), "{e}");
        let only_missing = Env {
            kubeconfig: Some(missing.clone().into_os_string()),
            ..Env::default()
        };
        let e = locate(&none, &only_missing).unwrap_err().to_string();
        assert!(e.contains("none of these files exists"), "{e}");
        let flag_missing = KubeTarget {
            kubeconfig: Some(missing.clone()),
            context: None,
        };
        let e = locate(&flag_missing, &env).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("kubeconfig {} (--kubeconfig): no such file", missing.display())
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn forbidden_message_names_the_rule_to_grant() {
        let e = KubeError::Forbidden {
            verb: "list",
            resource: "peerauthentications.security.istio.io".into(),
            namespace: None,
            message: "denied".into(),
        };
        assert_eq!(
            e.to_string(),
            "forbidden: cannot list peerauthentications.security.istio.io in all namespaces (needs RBAC: get/list on \
             peerauthentications.security.istio.io, from a ClusterRole bound with a ClusterRoleBinding; check with \
             `kubectl auth can-i list peerauthentications.security.istio.io -A`); the API server said: denied"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The plugin's helper pods
// ---------------------------------------------------------------------------------------------

/// What Kubernetes would say to an admin about a refused helper pod, from the API server's
/// message: Pod Security admission, OpenShift's SCCs, or a validating webhook (Kyverno,
/// Gatekeeper...). `None` for a plain RBAC refusal.
fn admission_refusal(namespace: &str, message: &str) -> Option<(String, String)> {
    const NEEDS: &str = "the helper needs hostPID and the capabilities NET_RAW, SYS_ADMIN and SYS_PTRACE \
                         (see docs/kubernetes.md)";
    if let Some(rest) = message.split("violates PodSecurity \"").nth(1) {
        let level = rest.split(['"', ':']).next().unwrap_or("restricted");
        return Some((
            format!("Pod Security admission (the namespace enforces level \"{level}\")"),
            format!(
                "{NEEDS}, which only the \"privileged\" level allows: allow it in this namespace with `kubectl label \
                 namespace {namespace} pod-security.kubernetes.io/enforce=privileged --overwrite`, or create the \
                 helpers in a namespace that allows it with --helper-namespace NS"
            ),
        ));
    }
    if message.contains("security context constraint") {
        return Some((
            "OpenShift SecurityContextConstraints (no SCC the helper may use allows it)".to_owned(),
            format!(
                "{NEEDS}; grant the privileged SCC to the service account the helper runs as: `oc adm policy \
                 add-scc-to-user privileged -z default -n {namespace}`, or use --helper-namespace NS with a \
                 namespace where that is allowed"
            ),
        ));
    }
    if let Some(rest) = message.split("admission webhook \"").nth(1) {
        let webhook = rest.split('"').next().unwrap_or_default();
        return Some((
            format!("the admission webhook \"{webhook}\""),
            format!("{NEEDS}; ask the cluster's admins for an exception for pods labelled app.kubernetes.io/managed-by=kubectl-mtlscope in namespace {namespace}, or use --helper-namespace NS"),
        ));
    }
    None
}

/// Create a helper pod (`generateName`); returns it as stored, with its name.
pub async fn create_pod(client: &kube::Client, namespace: &str, pod: &Pod) -> Result<Pod, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let asked = Asked::pods("create", "pods", Some(namespace), None);
    match api.create(&kube::api::PostParams::default(), pod).await {
        Ok(p) => Ok(p),
        Err(kube::Error::Api(status)) if matches!(status.code, 400 | 403 | 422) => {
            match admission_refusal(namespace, &status.message) {
                Some((policy, remedy)) => Err(KubeError::HelperRejected {
                    namespace: namespace.to_owned(),
                    policy,
                    message: status.message,
                    remedy,
                }),
                None => Err(api_error(kube::Error::Api(status), &asked)),
            }
        }
        Err(e) => Err(api_error(e, &asked)),
    }
}

pub async fn get_pod(client: &kube::Client, namespace: &str, name: &str) -> Result<Pod, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    api.get(name)
        .await
        .map_err(|e| api_error(e, &Asked::pods("get", "pods", Some(namespace), Some(name))))
}

/// Delete a pod at once (grace period 0). A pod that is already gone is not an error.
pub async fn delete_pod(client: &kube::Client, namespace: &str, name: &str) -> Result<(), KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match api
        .delete(name, &kube::api::DeleteParams::default().grace_period(0))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(api_error(
            e,
            &Asked::pods("delete", "pods", Some(namespace), Some(name)),
        )),
    }
}

/// Pods with these labels, in one namespace or all of them, as (namespace, pod).
pub async fn list_pods_labelled(
    client: &kube::Client,
    namespace: Option<&str>,
    selector: &str,
) -> Result<Vec<Pod>, KubeError> {
    let api: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let asked = Asked::pods("list", "pods", namespace, None);
    let mut out = Vec::new();
    let mut params = ListParams::default().labels(selector).limit(PAGE_SIZE);
    for _ in 0..MAX_PAGES {
        let page = api.list(&params).await.map_err(|e| api_error(e, &asked))?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok(out)
}

/// Run `command` in a container of a pod through the exec API (WebSocket), with stdin, stdout
/// and stderr attached.
pub async fn exec(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    container: &str,
    command: Vec<String>,
) -> Result<kube::api::AttachedProcess, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = kube::api::AttachParams::default()
        .container(container)
        .stdin(true)
        .stdout(true)
        .stderr(true);
    api.exec(pod, command, &params)
        .await
        .map_err(|e| api_error(e, &Asked::pods("create", "pods/exec", Some(namespace), Some(pod))))
}

#[cfg(test)]
mod helper_tests {
    use super::admission_refusal;

    #[test]
    fn pod_security_refusal_names_the_level_and_the_label() {
        let m = "pods \"mtlscope-w1-abcde\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces \
                 (hostPID=true), non-default capabilities (container \"agent\" must not include \"SYS_ADMIN\", \
                 \"SYS_PTRACE\" in securityContext.capabilities.add)";
        let (policy, remedy) = admission_refusal("bookinfo", m).unwrap();
        assert!(policy.contains("\"baseline\""), "{policy}");
        assert!(
            remedy.contains("kubectl label namespace bookinfo pod-security.kubernetes.io/enforce=privileged"),
            "{remedy}"
        );
    }

    #[test]
    fn openshift_scc_refusal_says_what_to_grant() {
        let m = "pods \"mtlscope-w1-x\" is forbidden: unable to validate against any security context constraint: \
                 [provider \"anyuid\": Forbidden: not usable by user or serviceaccount, spec.containers[0].\
                 securityContext.capabilities.add: Invalid value: \"SYS_ADMIN\": capability may not be added]";
        let (policy, remedy) = admission_refusal("shop", m).unwrap();
        assert!(policy.contains("SecurityContextConstraints"));
        assert!(remedy.contains("oc adm policy add-scc-to-user privileged -z default -n shop"));
    }

    #[test]
    fn rbac_refusal_is_not_admission() {
        assert!(admission_refusal(
            "x",
            "pods is forbidden: User \"dev\" cannot create resource \"pods\" in API group \"\" in the namespace \"x\""
        )
        .is_none());
    }
}
