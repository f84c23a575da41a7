//! What [`Cluster::from_objects`] needs, read from the API: pods, Services, PeerAuthentications
//! (`security.istio.io/v1`, or `v1beta1` when the cluster serves only that, found through the
//! API group's discovery document) and the `istio` / `istio-<revision>` mesh ConfigMaps. A
//! cluster without Istio's CRDs is not an error: no policies, and a note says so.
//!
//! Objects are fetched as raw JSON (not through typed structs) for the engine, so nothing the
//! server sent is dropped or reformatted on the way; lists are read page by page.

use super::error::{list_or_none, KubeError};
use super::request::{api_error, is_status, Asked, MAX_PAGES, PAGE_SIZE};
use crate::policy::{Cluster, LoadError, DEFAULT_ROOT_NAMESPACE};
use kube::api::ListParams;
use serde_json::Value;
use std::collections::BTreeSet;

const ISTIO_SECURITY_GROUP: &str = "security.istio.io";

/// A kind of object read here, and where the API serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
}

pub const PODS: Resource = Resource {
    group: "",
    version: "v1",
    plural: "pods",
    kind: "Pod",
};
pub const SERVICES: Resource = Resource {
    group: "",
    version: "v1",
    plural: "services",
    kind: "Service",
};
pub const CONFIG_MAPS: Resource = Resource {
    group: "",
    version: "v1",
    plural: "configmaps",
    kind: "ConfigMap",
};

pub fn peer_authentications(version: &'static str) -> Resource {
    Resource {
        group: ISTIO_SECURITY_GROUP,
        version,
        plural: "peerauthentications",
        kind: "PeerAuthentication",
    }
}

impl Resource {
    /// A list item with its `apiVersion` and `kind` set (list items from the API server carry
    /// neither).
    pub fn typed(&self, mut item: Value) -> Value {
        if let Value::Object(m) = &mut item {
            m.entry("apiVersion").or_insert_with(|| Value::from(self.api_version()));
            m.entry("kind").or_insert_with(|| Value::from(self.kind));
        }
        item
    }

    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// As kubectl and RBAC name it: `pods`, `peerauthentications.security.istio.io`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn collection_path(&self, namespace: Option<&str>) -> String {
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
            // All or nothing: the policies of one namespace without the mesh-wide ones of the
            // root namespace would give wrong expected modes.
            let mut policies = Vec::new();
            for scope in scopes {
                match list_all(client, &resource, scope, &ListParams::default()).await {
                    Ok(items) => policies.extend(items),
                    Err(ListError::NotServed) => {
                        out.peer_authentication_version = None;
                        out.notes.push(format!(
                            "{ISTIO_SECURITY_GROUP}/{version} is served but has no peerauthentications resource: \
                             no PeerAuthentication policies"
                        ));
                        policies.clear();
                        break;
                    }
                    // Someone allowed into their namespace only: the pod names are still worth
                    // having, the expected modes are not knowable.
                    Err(ListError::Kube(KubeError::Forbidden { .. })) if scope.is_some() => {
                        let ns = scope.unwrap_or_default();
                        out.peer_authentication_version = None;
                        out.notes.push(format!(
                            "listing PeerAuthentications in namespace '{ns}' is forbidden (needs RBAC get/list on \
                             {} there{}): connections are shown without an expected mode",
                            resource.qualified(),
                            if ns == root { ", the mesh's root namespace" } else { "" }
                        ));
                        policies.clear();
                        break;
                    }
                    Err(ListError::Kube(e)) => return Err(e),
                }
            }
            out.objects.extend(policies);
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
        let items = match list_all(client, &resource, namespace, &ListParams::default()).await {
            Ok(items) => items,
            // Services only name Service IPs; within one namespace, go on with the pods.
            Err(ListError::Kube(KubeError::Forbidden { .. })) if resource == SERVICES && namespace.is_some() => {
                out.notes.push(format!(
                    "listing Services in namespace '{}' is forbidden: Service IPs are shown as addresses",
                    namespace.unwrap_or_default()
                ));
                continue;
            }
            Err(e) => return Err(e.into_kube(&resource, namespace)),
        };
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

/// Which `security.istio.io` version serves PeerAuthentications.
pub enum Discovered {
    Version(&'static str),
    /// The API group is not served at all: Istio is not installed.
    Absent,
    NoKnownVersion(Vec<String>),
}

/// `GET /apis/security.istio.io`: which versions the cluster serves. v1 is preferred (Istio
/// 1.22+); v1beta1 is what older Istio serves.
pub async fn served_peer_authentication_version(client: &kube::Client) -> Result<Discovered, KubeError> {
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

pub(super) enum ListError {
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
    Ok(list_pages(client, resource, namespace, params).await?.0)
}

/// Every object of a collection (with `apiVersion` and `kind` set), page by page, and the
/// list's `resourceVersion` (where a watch starts). Also the pod follower's list.
pub(super) async fn list_pages(
    client: &kube::Client,
    resource: &Resource,
    namespace: Option<&str>,
    params: &ListParams,
) -> Result<(Vec<Value>, String), ListError> {
    let asked = Asked {
        verb: "list",
        resource: resource.qualified(),
        kind: resource.kind,
        namespace,
        name: None,
    };
    let request = kube::core::Request::new(resource.collection_path(namespace));
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
                out.extend(items.into_iter().map(|i| resource.typed(i)));
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
            let rv = page
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            return Ok((out, rv));
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
