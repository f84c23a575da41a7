//! What the engine knows about a cluster once loaded ([`Cluster`]): the pods, policies and
//! Services that passed, the objects rejected and why, the load summary, and the root namespace
//! in force and where it comes from. Loading is `load.rs`; queries are `query.rs` and
//! `effective.rs`.

use super::model::{PeerAuthentication, Pod, Service};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

/// Root namespace when neither an override nor the mesh config names one (Istio's
/// `DefaultMeshConfig`).
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

/// An object that was read but not used, because Istio or Kubernetes would refuse it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub source: Option<PathBuf>,
    /// An [`ObjectError`](super::fields::ObjectError), as text.
    pub reason: String,
    /// For a PeerAuthentication whose selector could be read and is not empty, its labels:
    /// [`Cluster::effective`] mentions the rejected policy only to the pods it was meant for.
    /// `None`: every pod of its namespace.
    #[serde(skip)]
    pub(super) selector: Option<BTreeMap<String, String>>,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(src) = &self.source {
            write!(f, "{}: ", src.display())?;
        }
        write!(
            f,
            "{} {}/{}: {}",
            self.kind,
            self.namespace.as_deref().unwrap_or("?"),
            self.name.as_deref().unwrap_or("?"),
            self.reason
        )
    }
}

/// Where the root namespace in force comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootNamespaceOrigin {
    /// [`Cluster::set_root_namespace`] (`--root-namespace`).
    Override,
    /// `rootNamespace` in the mesh config of this ConfigMap (`namespace/name`).
    MeshConfig(String),
    /// Neither: Istio's default `istio-system`.
    Default,
}

impl fmt::Display for RootNamespaceOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootNamespaceOrigin::Override => f.write_str("set on the command line"),
            RootNamespaceOrigin::MeshConfig(cm) => write!(f, "mesh config in ConfigMap {cm}"),
            RootNamespaceOrigin::Default => f.write_str("Istio's default"),
        }
    }
}

/// What was loaded, for a one-line summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Summary {
    pub pods: usize,
    pub peer_authentications: usize,
    pub services: usize,
    pub rejected: usize,
    /// Objects of kinds not used here (Deployments, Secrets, ...).
    pub skipped: usize,
    /// The same object (kind, namespace, name) seen again; the first copy is kept.
    pub duplicates: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} pods, {} PeerAuthentications, {} services",
            self.pods, self.peer_authentications, self.services
        )?;
        if self.rejected > 0 {
            write!(f, ", {} rejected", self.rejected)?;
        }
        if self.skipped > 0 {
            write!(f, ", {} objects of other kinds skipped", self.skipped)?;
        }
        if self.duplicates > 0 {
            write!(f, ", {} duplicates ignored", self.duplicates)?;
        }
        Ok(())
    }
}

/// A mesh config found in an `istio` (or `istio-<revision>`) ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MeshConfigSource {
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) root_namespace: Option<String>,
}

/// What identifies an object for deduplication.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ObjectKey {
    pub(super) kind: String,
    pub(super) namespace: String,
    pub(super) name: String,
}

/// The root namespace in force and why.
struct RootNamespace<'a> {
    name: &'a str,
    origin: RootNamespaceOrigin,
}

/// Everything the engine knows about a cluster.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub(super) pods: Vec<Pod>,
    pub(super) policies: Vec<PeerAuthentication>,
    pub(super) services: Vec<Service>,
    pub(super) namespaces: BTreeSet<String>,
    pub(super) mesh_configs: Vec<MeshConfigSource>,
    pub(super) root_override: Option<String>,
    pub(super) rejected: Vec<Rejected>,
    pub(super) warnings: Vec<String>,
    /// Where each object was first seen: the first copy is the one kept.
    pub(super) seen: BTreeMap<ObjectKey, Option<PathBuf>>,
    pub(super) skipped: usize,
    pub(super) duplicates: usize,
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster::default()
    }

    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    pub fn policies(&self) -> &[PeerAuthentication] {
        &self.policies
    }

    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// Objects read but not used, with the reason.
    pub fn rejected(&self) -> &[Rejected] {
        &self.rejected
    }

    /// Things worth telling the user that are not about one object's validity: duplicates,
    /// conflicting mesh configs.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = self.warnings.clone();
        let roots: BTreeSet<_> = self
            .mesh_configs
            .iter()
            .map(|m| m.root_namespace.as_deref().unwrap_or(DEFAULT_ROOT_NAMESPACE))
            .collect();
        if roots.len() > 1 {
            let RootNamespace { name: root, origin } = self.root();
            out.push(format!(
                "mesh configs disagree on rootNamespace ({}); using {root} ({origin})",
                roots.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        out
    }

    pub fn summary(&self) -> Summary {
        Summary {
            pods: self.pods.len(),
            peer_authentications: self.policies.len(),
            services: self.services.len(),
            rejected: self.rejected.len(),
            skipped: self.skipped,
            duplicates: self.duplicates,
        }
    }

    /// Namespaces seen in any loaded object.
    pub fn namespaces(&self) -> &BTreeSet<String> {
        &self.namespaces
    }

    /// Overrides the root namespace (`--root-namespace`), whatever the mesh config says.
    pub fn set_root_namespace(&mut self, ns: &str) {
        self.root_override = Some(ns.to_owned());
    }

    pub fn root_namespace(&self) -> &str {
        self.root().name
    }

    pub fn root_namespace_origin(&self) -> RootNamespaceOrigin {
        self.root().origin
    }

    fn root(&self) -> RootNamespace<'_> {
        if let Some(ns) = &self.root_override {
            return RootNamespace {
                name: ns,
                origin: RootNamespaceOrigin::Override,
            };
        }
        // Prefer the plain `istio` ConfigMap, then the one in istio-system, so the choice does
        // not depend on load order when revisions add more.
        let best = self.mesh_configs.iter().min_by_key(|m| {
            (
                m.name != "istio",
                m.namespace != DEFAULT_ROOT_NAMESPACE,
                m.namespace.clone(),
                m.name.clone(),
            )
        });
        let default = RootNamespace {
            name: DEFAULT_ROOT_NAMESPACE,
            origin: RootNamespaceOrigin::Default,
        };
        match best {
            Some(m) => match &m.root_namespace {
                Some(root) => RootNamespace {
                    name: root,
                    origin: RootNamespaceOrigin::MeshConfig(format!("{}/{}", m.namespace, m.name)),
                },
                None => default,
            },
            None => default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_support::*;
    use crate::policy::{Level, Mode};
    use serde_json::json;

    #[test]
    fn mesh_config_root_namespace() {
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "istio", "namespace": "istio-system"},
            "data": {"mesh": "trustDomain: cluster.local\nrootNamespace: mesh-admin\n"}
        });
        let c = cluster(vec![
            reviews(),
            cm,
            pa("mesh-admin", "default", T0, json!({"mtls": {"mode": "STRICT"}})),
            pa("istio-system", "default", T0, json!({"mtls": {"mode": "DISABLE"}})),
        ]);
        assert_eq!(c.root_namespace(), "mesh-admin");
        assert_eq!(
            c.root_namespace_origin(),
            RootNamespaceOrigin::MeshConfig("istio-system/istio".into())
        );
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Strict);
        assert_eq!(by(&d), (Level::Mesh, Some("mesh-admin"), Some("default")));
    }

    #[test]
    fn mesh_config_without_root_namespace_means_istio_system() {
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "istio", "namespace": "istio-system"},
            "data": {"mesh": "trustDomain: cluster.local\n"}
        });
        let c = cluster(vec![cm]);
        assert_eq!(c.root_namespace(), "istio-system");
        assert_eq!(c.root_namespace_origin(), RootNamespaceOrigin::Default);
    }

    #[test]
    fn root_namespace_override_beats_mesh_config() {
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "istio", "namespace": "istio-system"},
            "data": {"mesh": "rootNamespace: mesh-admin"}
        });
        let mut c = cluster(vec![
            reviews(),
            cm,
            pa("mesh-admin", "default", T0, json!({"mtls": {"mode": "STRICT"}})),
            pa("ops", "default", T0, json!({"mtls": {"mode": "DISABLE"}})),
        ]);
        c.set_root_namespace("ops");
        assert_eq!(c.root_namespace(), "ops");
        assert_eq!(c.root_namespace_origin(), RootNamespaceOrigin::Override);
        assert_eq!(decide(&c, 9080).mode, Mode::Disable);
    }
}
