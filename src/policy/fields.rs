//! Reading the fields of a Kubernetes object given as JSON (`metadata`, label maps, port
//! numbers, typed parts), and [`ObjectError`]: why an object is not used. Shared by the readers
//! of each kind (`objects.rs`, `admission.rs`) and the loader.

use super::timestamp::TimestampError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Why an object is not used: Kubernetes' schema or Istio's admission would have refused it.
/// Its text is a rejected object's `reason`, which `policy explain` and the load warnings show.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("metadata.name is missing")]
    MissingName,
    /// A dump never lacks a namespace; a hand-written file may, and guessing `default` (what
    /// kubectl would do) could put a policy where the user did not mean it.
    #[error(
        "metadata.namespace is missing (kubectl would use the current context's namespace, \
         which a file does not record)"
    )]
    MissingNamespace,
    #[error("{field}.{key} must be a string, found {found}")]
    NotAString {
        field: String,
        key: String,
        found: &'static str,
    },
    #[error("{field} must be a map, found {found}")]
    NotAMap { field: String, found: &'static str },
    #[error("{field} must be an object, found {found}")]
    NotAnObject { field: String, found: &'static str },
    #[error("{field} must be a port number 1-65535, found {value}")]
    NotAPort { field: String, value: Value },
    /// `spec` or `status` does not have the shape of the kind's schema.
    #[error("{field}: {source}")]
    Shape {
        field: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("metadata.creationTimestamp must be a string, found {found}")]
    CreationTimestampType { found: &'static str },
    #[error("metadata.creationTimestamp {0}")]
    CreationTimestamp(#[from] TimestampError),
    /// The CRD's enum takes exactly these spellings (`strict` is refused).
    #[error("{field}.mode {mode:?} is not one of UNSET, DISABLE, PERMISSIVE, STRICT")]
    UnknownMode { field: String, mode: String },
    #[error("{field}.mode {value} is not one of UNSET, DISABLE, PERMISSIVE, STRICT")]
    ModeNotAString { field: String, value: Value },
    #[error("spec.selector.matchLabels: key must not be empty")]
    EmptySelectorKey,
    #[error("spec.selector.matchLabels: wildcard not allowed ({key}: {value})")]
    SelectorWildcard { key: String, value: String },
    #[error("portLevelMtls requires selector")]
    PortLevelWithoutSelector,
    #[error("portLevelMtls, if defined, must have at least one element")]
    PortLevelEmpty,
    #[error("portLevelMtls: port must be between 1-65535, found {key:?}")]
    PortLevelKey { key: String },
    #[error("portLevelMtls[{port}] must not be null")]
    PortLevelNull { port: u16 },
    #[error(
        "apiVersion {api_version} is not served for PeerAuthentication \
         (use security.istio.io/v1 or v1beta1)"
    )]
    UnservedApiVersion { api_version: String },
    #[error("data.mesh is not a string")]
    MeshNotAString,
    #[error("data.mesh: rootNamespace is not a string")]
    RootNamespaceNotAString,
    #[error("data.mesh, {at}")]
    MeshTooDeep { at: super::yaml_bounds::TooDeep },
    #[error("data.mesh is not valid YAML: {source}")]
    MeshYaml {
        #[source]
        source: serde_norway::Error,
    },
}

/// `metadata`, read leniently: a wrong type here makes the field absent, and the object's
/// reader decides whether that is fatal.
#[derive(Debug, Default)]
pub(super) struct Meta {
    pub(super) name: Option<String>,
    pub(super) namespace: Option<String>,
    pub(super) labels: Option<Value>,
    pub(super) annotations: Option<Value>,
    pub(super) creation_timestamp: Option<Value>,
}

/// Where an object is: both parts are required to place it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    pub(super) namespace: String,
    pub(super) name: String,
}

impl Meta {
    pub(super) fn read(obj: &Map<String, Value>) -> Meta {
        let Some(Value::Object(m)) = obj.get("metadata") else {
            return Meta::default();
        };
        let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
        Meta {
            name: s("name"),
            namespace: s("namespace"),
            labels: m.get("labels").cloned(),
            annotations: m.get("annotations").cloned(),
            creation_timestamp: m.get("creationTimestamp").cloned(),
        }
    }

    /// Name and namespace, or why the object cannot be placed.
    pub(super) fn identity(&self) -> Result<Identity, ObjectError> {
        let name = self.name.clone().ok_or(ObjectError::MissingName)?;
        let namespace = self.namespace.clone().ok_or(ObjectError::MissingNamespace)?;
        Ok(Identity { namespace, name })
    }
}

/// A label or annotation map: absent and null are empty.
pub(super) fn string_map(v: Option<&Value>, field: &str) -> Result<BTreeMap<String, String>, ObjectError> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(ObjectError::NotAString {
                    field: field.to_owned(),
                    key: k.clone(),
                    found: json_type(other),
                }),
            })
            .collect(),
        Some(other) => Err(ObjectError::NotAMap {
            field: field.to_owned(),
            found: json_type(other),
        }),
    }
}

pub(super) fn port_number(v: &Value, field: impl FnOnce() -> String) -> Result<u16, ObjectError> {
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&n| n != 0)
        .ok_or_else(|| ObjectError::NotAPort {
            field: field(),
            value: v.clone(),
        })
}

/// A part of an object read into its schema's type: absent and null are the default.
pub(super) fn typed<T: serde::de::DeserializeOwned + Default>(
    v: Option<&Value>,
    field: &'static str,
) -> Result<T, ObjectError> {
    match v {
        None | Some(Value::Null) => Ok(T::default()),
        Some(v) => T::deserialize(v).map_err(|source| ObjectError::Shape { field, source }),
    }
}

pub(super) fn str_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

/// The JSON type of a value, for messages ("found a number").
pub(super) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "an object",
    }
}
