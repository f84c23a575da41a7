//! Loading cluster data into a [`Cluster`]: `kubectl get ... -o yaml|json` dumps (files,
//! folders, several YAML documents, JSON values back to back, `List`s and typed lists) or objects
//! already fetched from the API. Each object goes to the reader of its kind; what a reader
//! refuses is kept in [`Cluster::rejected`] with the reason, and only unreadable input is a
//! [`LoadError`].

use super::admission::{parse_peer_authentication, PA_API_VERSIONS};
use super::cluster::{Cluster, MeshConfigSource, ObjectKey, Rejected};
use super::fields::{json_type, str_field, Meta, ObjectError};
use super::objects::{parse_pod, parse_service};
use super::yaml_bounds::{check_nesting, read_bounded, ReadError, TooDeep};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// How deep `List`s may nest inside each other. kubectl writes one level; the cap only stops a
/// crafted file from recursing without end.
const MAX_LIST_DEPTH: usize = 8;

/// How deep a folder walk goes; stops symlink loops.
const MAX_DIR_DEPTH: usize = 32;

/// The largest file of a dump read; a larger dump can be split into a folder of files (per
/// namespace or kind), which is read as one.
pub const MAX_DUMP_FILE_BYTES: u64 = 256 << 20;

/// Why cluster data could not be read. Objects that parse but are invalid are not errors: they
/// go to [`Cluster::rejected`].
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: invalid {format}: {message}", located(path, *line, *column))]
    Syntax {
        path: PathBuf,
        /// `"YAML"` or `"JSON"`.
        format: &'static str,
        /// 1-based; `None` when the parser gave no position.
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    #[error("{}: document {document} is {what}, not a Kubernetes object", path.as_deref().map_or_else(|| "<objects>".into(), |p| p.display().to_string()))]
    NotAnObject {
        path: Option<PathBuf>,
        /// 1-based position in the file (or in the list given to [`Cluster::from_objects`]).
        document: usize,
        what: &'static str,
    },
    #[error("{}: Lists nested more than {MAX_LIST_DEPTH} deep", path.as_deref().map_or_else(|| "<objects>".into(), |p| p.display().to_string()))]
    TooDeep { path: Option<PathBuf> },
    #[error("{}: no .yaml, .yml or .json files in this folder", path.display())]
    NoFiles { path: PathBuf },
    #[error("{}: larger than the limit of {} MiB for one file; split the dump into a folder of files", path.display(), MAX_DUMP_FILE_BYTES >> 20)]
    TooLarge { path: PathBuf },
    #[error("{}: {at}", path.display())]
    Nesting { path: PathBuf, at: TooDeep },
}

fn located(path: &Path, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", path.display()),
        (Some(l), None) => format!("{}:{l}", path.display()),
        _ => path.display().to_string(),
    }
}

/// `apiVersion` and `kind` of the items of a typed list (`PodList` items from the API server
/// carry no `kind` of their own).
#[derive(Clone, Copy)]
struct ItemType<'a> {
    api_version: &'a str,
    kind: &'a str,
}

impl Cluster {
    /// Reads files and folders. A folder is walked recursively for `*.yaml`, `*.yml` and
    /// `*.json` (hidden entries skipped, sorted, so the result does not depend on the file
    /// system's order); a file named explicitly is read whatever its extension (JSON if it ends
    /// in `.json`, else YAML, which also reads most JSON). Each file may hold single objects,
    /// several YAML documents, or `List`s; unknown kinds are skipped.
    pub fn load_paths(paths: &[PathBuf]) -> Result<Cluster, LoadError> {
        let mut cluster = Cluster::new();
        for path in paths {
            cluster.load_path(path)?;
        }
        Ok(cluster)
    }

    /// Adds one file or folder (see [`Cluster::load_paths`]).
    pub fn load_path(&mut self, path: &Path) -> Result<(), LoadError> {
        let meta = fs::metadata(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if meta.is_dir() {
            let mut files = Vec::new();
            collect_files(path, 0, &mut files)?;
            if files.is_empty() {
                return Err(LoadError::NoFiles {
                    path: path.to_path_buf(),
                });
            }
            for file in files {
                self.load_file(&file)?;
            }
            Ok(())
        } else {
            self.load_file(path)
        }
    }

    fn load_file(&mut self, path: &Path) -> Result<(), LoadError> {
        let text = read_bounded(path, MAX_DUMP_FILE_BYTES).map_err(|e| match e {
            ReadError::Io(source) => LoadError::Io {
                path: path.to_path_buf(),
                source,
            },
            ReadError::TooLarge { .. } => LoadError::TooLarge {
                path: path.to_path_buf(),
            },
        })?;
        self.add_text(path, &text)
    }

    /// Adds objects from text (a file's content, or stdin under a name such as `-`). JSON when
    /// `origin` ends in `.json`, else YAML.
    pub fn add_text(&mut self, origin: &Path, text: &str) -> Result<(), LoadError> {
        let is_json = origin.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let docs = if is_json {
            parse_json_stream(origin, text)?
        } else {
            parse_yaml_stream(origin, text)?
        };
        for (i, doc) in docs.into_iter().enumerate() {
            self.add_document(doc, Some(origin), i + 1)?;
        }
        Ok(())
    }

    /// Builds a cluster from objects already decoded, e.g. fetched from the API server: each a
    /// Kubernetes object or a `List` of them.
    pub fn from_objects(values: Vec<Value>) -> Result<Cluster, LoadError> {
        let mut cluster = Cluster::new();
        for (i, value) in values.into_iter().enumerate() {
            cluster.add_document(value, None, i + 1)?;
        }
        Ok(cluster)
    }

    fn add_document(&mut self, doc: Value, source: Option<&Path>, index: usize) -> Result<(), LoadError> {
        match doc {
            // An empty YAML document (a trailing `---`) holds nothing.
            Value::Null => Ok(()),
            Value::Object(obj) => self.add_object(obj, source, 0, None),
            other => Err(LoadError::NotAnObject {
                path: source.map(Path::to_path_buf),
                document: index,
                what: json_type(&other),
            }),
        }
    }

    /// `inherited`: the item type of the typed list `obj` is in, if any.
    fn add_object(
        &mut self,
        mut obj: Map<String, Value>,
        source: Option<&Path>,
        depth: usize,
        inherited: Option<ItemType<'_>>,
    ) -> Result<(), LoadError> {
        let mut kind = str_field(&obj, "kind").map(str::to_owned);
        let mut api_version = str_field(&obj, "apiVersion").map(str::to_owned);
        if kind.is_none() {
            if let Some(item) = inherited {
                kind = Some(item.kind.to_owned());
                api_version = api_version.or_else(|| Some(item.api_version.to_owned()));
            }
        }
        let kind = kind.unwrap_or_default();
        let api_version = api_version.unwrap_or_default();

        if kind == "List" || (kind.ends_with("List") && obj.get("items").is_some()) {
            if depth >= MAX_LIST_DEPTH {
                return Err(LoadError::TooDeep {
                    path: source.map(Path::to_path_buf),
                });
            }
            let item_kind = kind.strip_suffix("List").unwrap_or_default().to_owned();
            let items = match obj.remove("items") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            for item in items {
                if let Value::Object(o) = item {
                    let inherit = (!item_kind.is_empty()).then_some(ItemType {
                        api_version: &api_version,
                        kind: &item_kind,
                    });
                    self.add_object(o, source, depth + 1, inherit)?;
                } else {
                    self.skipped += 1;
                }
            }
            return Ok(());
        }

        let meta = Meta::read(&obj);
        if let Some(ns) = &meta.namespace {
            self.namespaces.insert(ns.clone());
        }
        let group = api_version.split('/').next().unwrap_or_default();
        let is_core = !api_version.contains('/');
        match kind.as_str() {
            "Namespace" if is_core => {
                if let Some(name) = &meta.name {
                    self.namespaces.insert(name.clone());
                }
                self.skipped += 1;
            }
            "Pod" if is_core => {
                if self.first_copy("Pod", &meta, source) {
                    match parse_pod(&obj, &meta, source) {
                        Ok(pod) => self.pods.push(pod),
                        Err(error) => self.reject("Pod", &meta, source, error, None),
                    }
                }
            }
            "Service" if is_core => {
                if self.first_copy("Service", &meta, source) {
                    match parse_service(&obj, &meta, source) {
                        Ok(svc) => self.services.push(svc),
                        Err(error) => self.reject("Service", &meta, source, error, None),
                    }
                }
            }
            "ConfigMap" if is_core => self.add_config_map(&obj, &meta, source),
            "PeerAuthentication" if group == "security.istio.io" => {
                if !PA_API_VERSIONS.contains(&api_version.as_str()) {
                    let error = ObjectError::UnservedApiVersion {
                        api_version: api_version.clone(),
                    };
                    self.reject("PeerAuthentication", &meta, source, error, None);
                } else if self.first_copy("PeerAuthentication", &meta, source) {
                    match parse_peer_authentication(&obj, &meta, &api_version, source) {
                        Ok(pa) => self.policies.push(pa),
                        Err(r) => self.reject("PeerAuthentication", &meta, source, r.error, r.selector),
                    }
                }
            }
            _ => self.skipped += 1,
        }
        Ok(())
    }

    /// Records (kind, namespace, name) and says whether this is the first copy. The same
    /// object often comes twice, e.g. listed as v1 and as v1beta1, or in two dumps.
    fn first_copy(&mut self, kind: &str, meta: &Meta, source: Option<&Path>) -> bool {
        let (Some(ns), Some(name)) = (&meta.namespace, &meta.name) else {
            // Not identifiable: parsing will reject it with the reason.
            return true;
        };
        let key = ObjectKey {
            kind: kind.to_owned(),
            namespace: ns.clone(),
            name: name.clone(),
        };
        if let Some(first) = self.seen.get(&key) {
            self.duplicates += 1;
            let from = first
                .as_deref()
                .map_or_else(|| "the objects given".into(), |p| p.display().to_string());
            self.warnings.push(format!(
                "{kind} {ns}/{name} appears more than once; the first copy (from {from}) is used"
            ));
            return false;
        }
        self.seen.insert(key, source.map(Path::to_path_buf));
        true
    }

    fn reject(
        &mut self,
        kind: &str,
        meta: &Meta,
        source: Option<&Path>,
        error: ObjectError,
        selector: Option<BTreeMap<String, String>>,
    ) {
        self.rejected.push(Rejected {
            kind: kind.to_owned(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            source: source.map(Path::to_path_buf),
            reason: error.to_string(),
            selector,
        });
    }

    /// The mesh config lives in the `mesh` key of the ConfigMap `istio` (`istio-<revision>`
    /// with revisions) in istiod's namespace. Other ConfigMaps are ignored.
    fn add_config_map(&mut self, obj: &Map<String, Value>, meta: &Meta, source: Option<&Path>) {
        let (Some(ns), Some(name)) = (&meta.namespace, &meta.name) else {
            self.skipped += 1;
            return;
        };
        let mesh = obj.get("data").and_then(|d| d.get("mesh"));
        let is_mesh_cm = name == "istio" || name.starts_with("istio-");
        let Some(mesh) = mesh.filter(|_| is_mesh_cm) else {
            self.skipped += 1;
            return;
        };
        if !self.first_copy("ConfigMap", meta, source) {
            return;
        }
        let root = match mesh_root_namespace(mesh) {
            Ok(root) => root,
            Err(error) => return self.reject("ConfigMap", meta, source, error, None),
        };
        self.mesh_configs.push(MeshConfigSource {
            namespace: ns.clone(),
            name: name.clone(),
            root_namespace: root,
        });
    }
}

/// `rootNamespace` in the mesh config text of an `istio` ConfigMap; `None` when absent or
/// empty (Istio's default then). The text is YAML inside a string, which the file's nesting
/// check skipped (and a ConfigMap read through the API never had): it is checked here.
fn mesh_root_namespace(mesh: &Value) -> Result<Option<String>, ObjectError> {
    let text = mesh.as_str().ok_or(ObjectError::MeshNotAString)?;
    check_nesting(text).map_err(|at| ObjectError::MeshTooDeep { at })?;
    let config: serde_norway::Value =
        serde_norway::from_str(text).map_err(|source| ObjectError::MeshYaml { source })?;
    match config.get("rootNamespace") {
        None | Some(serde_norway::Value::Null) => Ok(None),
        Some(serde_norway::Value::String(s)) if s.is_empty() => Ok(None),
        Some(serde_norway::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ObjectError::RootNamespaceNotAString),
    }
}

fn collect_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    if depth > MAX_DIR_DEPTH {
        return Ok(());
    }
    let io = |source| LoadError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        entries.push(entry.map_err(io)?.path());
    }
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        // Follows symlinks; MAX_DIR_DEPTH bounds a loop.
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            collect_files(&path, depth + 1, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["yaml", "yml", "json"].iter().any(|x| e.eq_ignore_ascii_case(x)))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Nesting past [`super::yaml_bounds::MAX_DEPTH`] is refused first: the YAML parser is slow on it.
fn parse_yaml_stream(path: &Path, text: &str) -> Result<Vec<Value>, LoadError> {
    check_nesting(text).map_err(|at| LoadError::Nesting {
        path: path.to_path_buf(),
        at,
    })?;
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = serde_norway::Value::deserialize(doc).map_err(|e| {
            let loc = e.location();
            LoadError::Syntax {
                path: path.to_path_buf(),
                format: "YAML",
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
                message: e.to_string(),
            }
        })?;
        docs.push(yaml_to_json(value));
    }
    Ok(docs)
}

/// One JSON value, or several back to back (`kubectl get -o json` of several commands).
fn parse_json_stream(path: &Path, text: &str) -> Result<Vec<Value>, LoadError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut docs = Vec::new();
    for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        let value = value.map_err(|e| LoadError::Syntax {
            path: path.to_path_buf(),
            format: "JSON",
            line: Some(e.line()),
            column: Some(e.column()),
            message: e.to_string(),
        })?;
        docs.push(value);
    }
    Ok(docs)
}

/// YAML to the JSON data model, as Kubernetes' own YAML reader does: map keys become strings
/// (`portLevelMtls` keys are often bare integers), tags are dropped, non-finite floats become
/// null. Depth is bounded by `check_nesting` before parsing.
fn yaml_to_json(v: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(seq.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match yaml_to_json(k) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, yaml_to_json(v));
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_support::*;
    use crate::policy::{explain_json, Level, Mode, RootNamespaceOrigin};
    use serde_json::json;
    use std::net::IpAddr;

    #[test]
    fn same_policy_listed_as_v1_and_v1beta1_counted_once() {
        let mut beta = pa("bookinfo", "default", T0, json!({"mtls": {"mode": "STRICT"}}));
        beta["apiVersion"] = json!("security.istio.io/v1beta1");
        let v1 = pa("bookinfo", "default", T0, json!({"mtls": {"mode": "STRICT"}}));
        let c = cluster(vec![reviews(), v1, beta]);
        assert_eq!(c.policies().len(), 1);
        assert_eq!(c.summary().duplicates, 1);
        assert!(decide(&c, 9080).ignored.is_empty());
    }

    #[test]
    fn arbitrary_json_never_panics() {
        // Shapes a fuzzer would try first: wrong types everywhere the parsers look.
        let weird = [
            json!(null),
            json!({"kind": "Pod"}),
            json!({"kind": "Pod", "apiVersion": "v1", "metadata": 3}),
            json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p", "namespace": "n"}, "spec": {"containers": [{"ports": [{"containerPort": -1}]}]}}),
            json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p2", "namespace": "n", "labels": {"a": 1}}}),
            json!({"kind": "Service", "apiVersion": "v1", "metadata": {"name": "s", "namespace": "n"}, "spec": {"ports": [{"port": 70000}]}}),
            json!({"kind": "Service", "apiVersion": "v1", "metadata": {"name": "s2", "namespace": "n"}, "spec": {"ports": [{"port": 80, "targetPort": 1.5}]}}),
            json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "istio", "namespace": "n"}, "data": {"mesh": ": : :"}}),
            json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "istio-x", "namespace": "n"}, "data": {"mesh": 7}}),
            json!({"kind": "PeerAuthentication", "apiVersion": "security.istio.io/v1", "metadata": {"name": "x", "namespace": "n"}, "spec": []}),
            json!({"kind": "PeerAuthentication", "apiVersion": "security.istio.io/v1", "metadata": {"name": "y", "namespace": "n"}, "spec": {"selector": 1}}),
            json!({"kind": "PeerAuthentication", "apiVersion": "security.istio.io/v1", "metadata": {"name": "z", "namespace": "n"}, "spec": {"mtls": "STRICT"}}),
            json!({"kind": "List", "items": [1, null, {"kind": "PodList", "apiVersion": "v1", "items": [{"metadata": {"name": "q", "namespace": "n"}}]}]}),
        ];
        let c = Cluster::from_objects(weird.to_vec()).unwrap();
        assert_eq!(c.pods().len(), 1, "only the typed-list pod q is valid");
        assert_eq!(c.pods()[0].name, "q");
        assert!(c.rejected().len() >= 9, "{:#?}", c.rejected());
        for r in c.rejected() {
            assert!(!r.to_string().is_empty());
        }
        let deep = (0..20).fold(json!({"kind": "Pod"}), |acc, _| json!({"kind": "List", "items": [acc]}));
        assert!(matches!(
            Cluster::from_objects(vec![deep]),
            Err(LoadError::TooDeep { .. })
        ));
        assert!(matches!(
            Cluster::from_objects(vec![json!([1])]),
            Err(LoadError::NotAnObject { document: 1, .. })
        ));
    }

    #[test]
    fn loads_kubectl_list_dump() {
        let c = bookinfo();
        let s = c.summary();
        assert_eq!((s.pods, s.peer_authentications, s.services, s.rejected), (8, 7, 5, 0));
        // Three ConfigMaps that are not the mesh config.
        assert_eq!(s.skipped, 3);
        assert_eq!(c.root_namespace(), "istio-system");
        assert_eq!(
            c.root_namespace_origin(),
            RootNamespaceOrigin::MeshConfig("istio-system/istio".into())
        );
        let details = c.pod("bookinfo", "details-v1-65cfcf56f9-4x8jq").unwrap();
        assert_eq!(details.ips, vec!["10.244.0.12".parse::<IpAddr>().unwrap()]);
        assert!(details.sidecar);
        assert_eq!(details.labels.get("app").map(String::as_str), Some("details"));
        assert_eq!(details.ports.iter().map(|p| p.port).collect::<Vec<_>>(), [9080, 15090]);
        assert!(!c.pod("istio-system", "istiod-7d4f7c9b8d-2bqzn").unwrap().sidecar);
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    }

    /// Mode, level and deciding policy for a pod of the bookinfo dump.
    #[test]
    fn loads_multi_document_yaml() {
        let c = Cluster::load_paths(&[data("multidoc/bookinfo-extra.yaml")]).unwrap();
        let s = c.summary();
        // Namespace and Deployment skipped; the trailing empty document is nothing.
        assert_eq!((s.pods, s.peer_authentications, s.services, s.skipped), (1, 1, 1, 2));
        assert!(c.namespaces().contains("shop"));
        let p = c.pod("shop", "cart-5f7d8c9b6-abcde").unwrap();
        assert!(p.ambient && !p.sidecar);
        assert_eq!(p.ips.len(), 2);
        // Bare integer YAML keys in portLevelMtls are read as ports.
        assert_eq!(c.policies()[0].port_level.get(&8443), Some(&Mode::Permissive));
        let crate::policy::PortDecision { port, decision: d } = c.effective_for_service_port(p, 443).unwrap();
        assert_eq!(
            (port, d.mode, d.decided_by.level),
            (8443, Mode::Permissive, Level::Port)
        );
        let v6 = c.pod_by_ip("fd00:10:244:1::14".parse().unwrap()).unwrap();
        assert_eq!(v6.name, p.name);
    }

    #[test]
    fn loads_json_lists_and_typed_lists() {
        let c = Cluster::load_paths(&[data("json")]).unwrap();
        assert_eq!((c.pods().len(), c.policies().len()), (1, 2));
        let p = c.pod_by_ip("10.244.2.9".parse().unwrap()).unwrap();
        assert!(p.sidecar);
        assert_eq!(c.effective(p, 8080).mode, Mode::Strict);
        assert_eq!(c.effective(p, 8081).mode, Mode::Disable);
    }

    #[test]
    fn loads_several_paths_and_custom_root() {
        let c = Cluster::load_paths(&[data("custom-root"), data("multidoc")]).unwrap();
        assert_eq!(c.root_namespace(), "mesh-admin");
        let web = c.pod("team-a", "web-0").unwrap();
        let d = c.effective(web, 8080);
        assert_eq!(by(&d), (Level::Mesh, Some("mesh-admin"), Some("default")));
        // istio-system is now an ordinary namespace: its policy is namespace-level there.
        assert!(c.policies().iter().any(|p| p.namespace == "istio-system"));
    }

    #[test]
    fn broken_yaml_names_file_line_and_column() {
        let err = Cluster::load_paths(&[data("broken/broken.yaml")]).unwrap_err();
        match &err {
            LoadError::Syntax {
                path,
                format,
                line,
                column,
                ..
            } => {
                assert!(path.ends_with("broken/broken.yaml"));
                assert_eq!(*format, "YAML");
                assert_eq!((*line, *column), (Some(9), Some(4)));
            }
            other => panic!("{other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("broken/broken.yaml:9:4: invalid YAML:"), "{text}");
    }

    #[test]
    fn broken_json_names_file_line_and_column() {
        let err = Cluster::load_paths(&[data("broken/broken.json")]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("broken/broken.json:5:") && text.contains("invalid JSON"),
            "{text}"
        );
        assert!(matches!(err, LoadError::Syntax { line: Some(5), .. }));
    }

    #[test]
    fn missing_path_and_empty_folder_are_errors() {
        let err = Cluster::load_paths(&[data("no-such-dir")]).unwrap_err();
        assert!(matches!(err, LoadError::Io { .. }));
        assert!(err.to_string().contains("no-such-dir"));
        let empty = std::env::temp_dir().join(format!("pa-empty-{}", std::process::id()));
        fs::create_dir_all(&empty).unwrap();
        let err = Cluster::load_paths(std::slice::from_ref(&empty)).unwrap_err();
        assert!(matches!(err, LoadError::NoFiles { .. }), "{err}");
        let _ = fs::remove_dir(&empty);
    }

    #[test]
    fn mutated_dumps_never_panic() {
        // A fixed-seed stand-in for the fuzz target: flip, drop and duplicate bytes of real
        // files and load the result as YAML and as JSON. Errors are fine; panics are not.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for file in [
            "multidoc/bookinfo-extra.yaml",
            "json/payments.json",
            "invalid/invalid-policies.yaml",
        ] {
            let original = fs::read(data(file)).unwrap();
            for _ in 0..150 {
                let mut bytes = original.clone();
                for _ in 0..(1 + next() % 4) {
                    let len = bytes.len().max(1) as u64;
                    let at = (next() % len) as usize;
                    match next() % 3 {
                        0 => {
                            if let Some(b) = bytes.get_mut(at) {
                                *b = b" :-{}[]\"0123456789ZT\n\t#&*!|>'"[(next() % 26) as usize];
                            }
                        }
                        1 => bytes.truncate(at),
                        _ => {
                            let chunk: Vec<u8> = bytes.iter().skip(at).take(40).copied().collect();
                            bytes.splice(at..at, chunk);
                        }
                    }
                }
                let text = String::from_utf8_lossy(&bytes);
                for name in ["m.yaml", "m.json"] {
                    let mut c = Cluster::new();
                    let _ = c.add_text(Path::new(name), &text);
                    for pod in c.pods() {
                        for port in [0, 80, 8443, 9080, 65535] {
                            let d = c.effective(pod, port);
                            assert_ne!(d.mode, Mode::Unset);
                            let _ = explain_json(pod, port, &d);
                            let _ = c.target_port(pod, port);
                        }
                    }
                    let _ = (c.summary().to_string(), c.warnings());
                }
            }
        }
    }

    /// The mesh config is YAML in a string, which the file's own nesting check cannot see into.
    #[test]
    fn deeply_nested_mesh_config_is_skipped_before_the_yaml_parser() {
        let cm = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "istio", "namespace": "istio-system"},
            "data": {"mesh": "[".repeat(1_000_000)},
        });
        let mut c = Cluster::new();
        let started = std::time::Instant::now();
        c.add_text(Path::new("cm.json"), &cm.to_string()).unwrap();
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
        let rejected: Vec<String> = c.rejected().iter().map(|r| r.to_string()).collect();
        assert_eq!(
            rejected,
            ["cm.json: ConfigMap istio-system/istio: data.mesh, line 1, column 64: nested more than 64 levels deep (the limit)"]
        );
    }

    #[test]
    fn yaml_that_is_not_objects_is_an_error() {
        let mut c = Cluster::new();
        let err = c.add_text(Path::new("x.yaml"), "a: 1\n---\n- 1\n- 2\n").unwrap_err();
        assert!(err.to_string().contains("x.yaml: document 2 is a sequence"), "{err}");
    }
}
