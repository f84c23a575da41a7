//! Enrich, PeerAuthentication: the mTLS mode Istio enforces for a pod and port, computed the way
//! istiod computes it, and a loader for the cluster data it needs (pods, PeerAuthentications,
//! Services, the `istio` mesh ConfigMap) from `kubectl get ... -o yaml|json` dumps or from
//! objects fetched live.
//!
//! The rules follow istiod's source, not its documentation (see "Istio's rules" below): istio/istio
//! `pilot/pkg/security/authn/policy_applier.go` (`ComposePeerAuthentication`,
//! `GetMutualTLSModeForPort`), `pilot/pkg/model/authentication.go` (`getConfigsForWorkload`,
//! `addPeerAuthentication`), `pilot/pkg/model/config.go` (`sortConfigByCreationTime`),
//! `pkg/config/mesh/mesh.go` (`DefaultMeshConfig`: root namespace `istio-system`), and for what
//! is rejected, `pkg/config/validation` (`ValidatePeerAuthentication`) plus the CEL rules of the
//! CRD in istio/api `security/v1beta1/peer_authentication.proto`.
//!
//! # Istio's rules
//! 1. Start PERMISSIVE.
//! 2. Mesh level: a policy in the root namespace without a selector. Namespace level: a policy in
//!    the pod's namespace without a selector. A selector whose `matchLabels` is missing or empty
//!    counts as no selector (`Selector == nil || len(Selector.MatchLabels) == 0`).
//! 3. Workload level: a policy in the pod's namespace whose `matchLabels` are all among the pod's
//!    labels. A selector policy in the root namespace is never used, not even for pods in the root
//!    namespace (`else if cfg.Namespace != rootNamespace`), although the API reference says it
//!    would match workloads in every namespace.
//! 4. Mesh, then namespace, then workload: each mode that is not UNSET replaces the one before.
//! 5. `portLevelMtls` is read only from the workload policy, keyed by the port the pod receives
//!    on (the container port, a Service's `targetPort`), never the Service port. A non-UNSET entry
//!    replaces the workload result for that port; an UNSET entry keeps it.
//! 6. Several policies at one level: only the oldest `creationTimestamp` counts; equal timestamps
//!    (they have one-second resolution) are ordered by name, then namespace. A missing timestamp
//!    is Go's zero time, older than any other.
//! 7. The root namespace is `istio-system` unless the mesh config (`rootNamespace` in the `mesh`
//!    key of the `istio` ConfigMap) or an explicit override says otherwise.
//!
//! Objects that Istio's admission (CRD schema, CEL rules, validating webhook) would refuse are
//! not used: they are listed in [`Cluster::rejected`] with their namespace/name and why.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Root namespace when neither an override nor the mesh config names one (Istio's
/// `DefaultMeshConfig`).
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

/// How deep `List`s may nest inside each other. kubectl writes one level; the cap only stops a
/// crafted file from recursing without end.
const MAX_LIST_DEPTH: usize = 8;

/// How deep a folder walk goes; stops symlink loops.
const MAX_DIR_DEPTH: usize = 32;

/// The API versions of `security.istio.io` that carry PeerAuthentication (same schema).
const PA_API_VERSIONS: [&str; 2] = ["security.istio.io/v1", "security.istio.io/v1beta1"];

// ---------------------------------------------------------------------------------------------
// Modes, decisions, findings
// ---------------------------------------------------------------------------------------------

/// `PeerAuthentication.MutualTLS.Mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Mode {
    /// Inherit from the level above; PERMISSIVE when nothing above sets a mode.
    Unset,
    Disable,
    Permissive,
    Strict,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Unset => "UNSET",
            Mode::Disable => "DISABLE",
            Mode::Permissive => "PERMISSIVE",
            Mode::Strict => "STRICT",
        }
    }

    /// The CRD's schema is an enum of exactly these spellings; anything else (`strict`, `1`) is
    /// refused by the API server, so it is refused here too.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "UNSET" => Some(Mode::Unset),
            "DISABLE" => Some(Mode::Disable),
            "PERMISSIVE" => Some(Mode::Permissive),
            "STRICT" => Some(Mode::Strict),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which scope decided the mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Mesh,
    Namespace,
    Workload,
    /// A `portLevelMtls` entry of the workload policy.
    Port,
    /// No policy set a mode: Istio's built-in PERMISSIVE.
    Default,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Mesh => "mesh",
            Level::Namespace => "namespace",
            Level::Workload => "workload",
            Level::Port => "port",
            Level::Default => "default",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The policy that decided the mode. For [`Level::Default`] there is none: `kind` is
/// `"default"` and `namespace`/`name` are `None` (JSON `null`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecidedBy {
    pub kind: &'static str,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub level: Level,
}

impl DecidedBy {
    fn default_mode() -> DecidedBy {
        DecidedBy {
            kind: "default",
            namespace: None,
            name: None,
            level: Level::Default,
        }
    }

    fn policy(p: &PeerAuthentication, level: Level) -> DecidedBy {
        DecidedBy {
            kind: "PeerAuthentication",
            namespace: Some(p.namespace.clone()),
            name: Some(p.name.clone()),
            level,
        }
    }
}

/// A policy that could apply to the pod but does not count, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    pub namespace: String,
    pub name: String,
    pub reason: String,
}

/// A policy that took part in the decision, in the order Istio applies them (mesh, namespace,
/// workload, port). Its mode may be UNSET, in which case it passed the mode above it through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub level: Level,
    pub namespace: String,
    pub name: String,
    pub mode: Mode,
}

/// The effective mode for one pod and port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Never [`Mode::Unset`].
    pub mode: Mode,
    pub decided_by: DecidedBy,
    pub ignored: Vec<Ignored>,
    /// The chain that led to `mode`, for a human-readable explanation. Not part of
    /// `policy explain -o json`.
    #[serde(skip)]
    pub applied: Vec<Applied>,
}

/// `policy explain -o json`: exactly
/// `{"namespace","pod","port","mode","decided_by":{"kind","namespace","name","level"},"ignored":[{"namespace","name","reason"}]}`
/// with the keys in that order when serialized with `serde_json::to_string`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub namespace: String,
    pub pod: String,
    pub port: u16,
    pub mode: Mode,
    pub decided_by: DecidedBy,
    pub ignored: Vec<Ignored>,
}

impl Explanation {
    pub fn new(pod: &Pod, port: u16, decision: &Decision) -> Explanation {
        Explanation {
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
            port,
            mode: decision.mode,
            decided_by: decision.decided_by.clone(),
            ignored: decision.ignored.clone(),
        }
    }
}

/// [`Explanation`] as a JSON value. `serde_json::Value` sorts keys unless serde_json's
/// `preserve_order` feature is on; print an [`Explanation`] directly to keep the issue's order.
pub fn explain_json(pod: &Pod, port: u16, decision: &Decision) -> Value {
    serde_json::to_value(Explanation::new(pod, port, decision)).unwrap_or(Value::Null)
}

/// What a connection's verdict means under the expected mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "severity", content = "message", rename_all = "lowercase")]
pub enum Finding {
    /// The policy forbids what the wire shows.
    Violation(String),
    /// Allowed, but not where the mesh is meant to end up.
    Warning(String),
    /// Worth knowing, not wrong.
    Note(String),
}

/// Joins the expected mode with a connection verdict (`"plaintext"`, `"tls"`, `"mtls"`,
/// `"encrypted"`, `"no-data"`, as `verdict::Kind::name` spells them).
///
/// STRICT + plaintext and STRICT + TLS without a client certificate are violations: a STRICT
/// sidecar accepts neither, so either the connection bypassed the sidecar or the pod has none.
/// PERMISSIVE + plaintext is a warning (migration incomplete). DISABLE + mTLS is a note: the
/// mTLS came from the applications, not from Istio. `encrypted` (handshake not seen) and
/// `no-data` prove nothing either way.
pub fn finding(mode: Mode, verdict: &str) -> Option<Finding> {
    // An UNSET mode can only reach here if a caller built it by hand; Istio reads it as PERMISSIVE.
    let mode = if mode == Mode::Unset { Mode::Permissive } else { mode };
    match (mode, verdict) {
        (Mode::Strict, "plaintext") => Some(Finding::Violation(
            "plaintext connection to a port whose PeerAuthentication mode is STRICT".into(),
        )),
        (Mode::Strict, "tls") => Some(Finding::Violation(
            "TLS without a client certificate to a port whose PeerAuthentication mode is STRICT \
             (STRICT requires mTLS)"
                .into(),
        )),
        (Mode::Permissive, "plaintext") => Some(Finding::Warning(
            "plaintext accepted under PERMISSIVE: migration to mTLS incomplete".into(),
        )),
        (Mode::Disable, "mtls") => Some(Finding::Note(
            "mTLS on a port whose PeerAuthentication mode is DISABLE: the applications do their \
             own mTLS"
                .into(),
        )),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Cluster objects
// ---------------------------------------------------------------------------------------------

/// An instant read from a `creationTimestamp`. Ordered as instants, not as text:
/// `10:00:00+02:00` is older than `09:00:00Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(jiff::Timestamp);

/// Why a `creationTimestamp` is not a time the API server would have stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TimestampError {
    #[error("{text:?} is not an RFC 3339 time: expected {expected} at byte {offset}")]
    Layout {
        text: String,
        /// 0-based byte offset of the first byte that breaks the layout.
        offset: usize,
        expected: &'static str,
    },
    /// RFC 3339 allows second 60; Go's `time.Parse`, and so the API server, refuses it (jiff
    /// would fold it into :59).
    #[error("{text:?} is not an RFC 3339 time: second 60 (a leap second) is refused by Kubernetes")]
    LeapSecond { text: String },
    /// RFC 3339's `time-numoffset` hour is 00-23 (jiff reads up to 25 for POSIX zones).
    #[error("{text:?} is not an RFC 3339 time: offset hour {hour} is past 23")]
    OffsetHour { text: String, hour: u8 },
    /// The layout is right but a value is not: day 30 of February, hour 24, a year jiff cannot
    /// hold (after 9999-12-30).
    #[error("{text:?} is not an RFC 3339 time: {source}")]
    Value {
        text: String,
        #[source]
        source: jiff::Error,
    },
}

/// RFC 3339 section 5.6 `date-time` up to the seconds: `d` is an ASCII digit, `T` is `T`, `t` or
/// a space (the RFC's note on readability), anything else is itself.
const DATE_TIME: &[u8; 19] = b"dddd-dd-ddTdd:dd:dd";

/// jiff keeps nanoseconds; Kubernetes (Go's `time.Parse`) reads a longer fraction and drops the
/// digits past the ninth, so they are dropped here too.
const MAX_FRACTION_DIGITS: usize = 9;

impl Timestamp {
    /// RFC 3339 as Kubernetes writes it (`2024-05-14T09:12:41Z`), with an optional fraction and
    /// a numeric offset (`+02:00`) instead of `Z`. Every other form jiff would read (ISO 8601
    /// basic `20240514T091241Z`, `+0200`, `-04`, no seconds, a `,` fraction, `[UTC]`
    /// annotations, six-digit years) is refused, as the API server refuses it. Never panics.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, TimestampError> {
        let checked = rfc3339_layout(text)?;
        checked
            .parse::<jiff::Timestamp>()
            .map(Timestamp)
            .map_err(|source| TimestampError::Value {
                text: text.to_owned(),
                source,
            })
    }
}

impl From<Timestamp> for jiff::Timestamp {
    fn from(t: Timestamp) -> jiff::Timestamp {
        t.0
    }
}

/// Checks the RFC 3339 layout that jiff's grammar is wider than, and returns the text for jiff
/// (a fraction longer than nanoseconds cut to nine digits).
fn rfc3339_layout(text: &str) -> Result<Cow<'_, str>, TimestampError> {
    let b = text.as_bytes();
    let layout = |offset: usize, expected: &'static str| TimestampError::Layout {
        text: text.to_owned(),
        offset,
        expected,
    };
    for (i, &want) in DATE_TIME.iter().enumerate() {
        let (ok, expected) = match (want, b.get(i)) {
            (b'd', got) => (got.is_some_and(u8::is_ascii_digit), "a digit"),
            (b'T', got) => (got.is_some_and(|c| matches!(c, b'T' | b't' | b' ')), "'T'"),
            (b'-', got) => (got == Some(&b'-'), "'-'"),
            (_, got) => (got == Some(&b':'), "':'"),
        };
        if !ok {
            return Err(layout(i, expected));
        }
    }
    if &b[17..19] == b"60" {
        return Err(TimestampError::LeapSecond { text: text.to_owned() });
    }

    let mut end = DATE_TIME.len();
    let mut cut = None;
    if b.get(end) == Some(&b'.') {
        let digits = b[end + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(layout(end + 1, "a digit after '.'"));
        }
        if digits > MAX_FRACTION_DIGITS {
            cut = Some((end + 1 + MAX_FRACTION_DIGITS, end + 1 + digits));
        }
        end += 1 + digits;
    }
    match &b[end..] {
        [b'Z' | b'z'] => {}
        [b'+' | b'-', h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) => {
            let hour = (h1 - b'0') * 10 + (h2 - b'0');
            if hour > 23 {
                return Err(TimestampError::OffsetHour {
                    text: text.to_owned(),
                    hour,
                });
            }
        }
        _ => return Err(layout(end, "'Z' or an offset +HH:MM / -HH:MM ending the text")),
    }
    // Every byte before `end` is ASCII, so these are character boundaries.
    Ok(match cut {
        Some((keep, skip)) => Cow::Owned(format!("{}{}", &text[..keep], &text[skip..])),
        None => Cow::Borrowed(text),
    })
}

/// A PeerAuthentication that passed Istio's validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAuthentication {
    pub namespace: String,
    pub name: String,
    /// `security.istio.io/v1` or `security.istio.io/v1beta1`.
    pub api_version: String,
    /// `None` when absent: Go's zero time, which sorts before every real timestamp.
    pub creation_timestamp: Option<Timestamp>,
    /// The timestamp as written, for messages.
    pub created: Option<String>,
    /// `None` when there is no selector or its `matchLabels` is empty: such a policy is
    /// namespace-wide (mesh-wide in the root namespace).
    pub selector: Option<BTreeMap<String, String>>,
    pub mode: Mode,
    /// `portLevelMtls`; only ever non-empty when `selector` is `Some`.
    pub port_level: BTreeMap<u16, Mode>,
    pub source: Option<PathBuf>,
}

impl PeerAuthentication {
    /// Istio's tie-break order: creation time, then name, then namespace.
    fn age_key(&self) -> (Option<Timestamp>, &str, &str) {
        (self.creation_timestamp, &self.name, &self.namespace)
    }

    fn created_text(&self) -> &str {
        self.created.as_deref().unwrap_or("no creationTimestamp")
    }
}

/// A port a container declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerPort {
    pub container: String,
    pub name: Option<String>,
    pub port: u16,
    /// `TCP` unless the pod says otherwise.
    pub protocol: String,
}

/// A container of a pod, as capture needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Container {
    pub name: String,
    /// `status.containerStatuses[].containerID`, e.g. `containerd://3f1c...`; `None` until the
    /// container has been created.
    pub id: Option<String>,
    /// A mesh proxy (`istio-proxy`, `linkerd-proxy`) or a native sidecar.
    pub sidecar: bool,
}

/// Mesh proxies by container name: a capture target picks another container by default.
const PROXY_CONTAINERS: &[&str] = &["istio-proxy", "linkerd-proxy"];
/// Names the container `kubectl exec` and `kubectl logs` use when none is given.
const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// The one model of a Pod: what PeerAuthentication needs (labels, ports, sidecar) and what
/// capture needs (node, containers), read by [`Pod::from_object`] from a cluster dump or from
/// the API alike.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `status.podIPs` (and `status.podIP`), deduplicated.
    pub ips: Vec<IpAddr>,
    /// Ports of all containers, init containers included (native sidecars live there).
    pub ports: Vec<ContainerPort>,
    /// A host-network pod's IP is its node's, and Istio injects no sidecar into it.
    pub host_network: bool,
    /// `status.phase`: `Succeeded`/`Failed` pods keep an IP that a new pod may already reuse.
    pub phase: Option<String>,
    /// An `istio-proxy` container or the `sidecar.istio.io/status` annotation. Without a
    /// sidecar (or ztunnel) nothing enforces PeerAuthentication on this pod.
    pub sidecar: bool,
    /// `ambient.istio.io/redirection: enabled`: ztunnel enforces the policy.
    pub ambient: bool,
    pub source: Option<PathBuf>,
    /// `spec.nodeName`; `None` while the pod is not scheduled.
    pub node: Option<String>,
    /// Native sidecars (init containers with `restartPolicy: Always`) first, as they start
    /// first, then `spec.containers`, in spec order. Init containers that run to completion are
    /// left out: there is nothing to capture in them.
    pub containers: Vec<Container>,
    /// The `kubectl.kubernetes.io/default-container` annotation, when it names a container.
    pub default_container: Option<String>,
}

impl Pod {
    /// A Pod object (JSON, as the API or `kubectl get -o json` gives it).
    pub fn from_object(obj: &Map<String, Value>) -> Result<Pod, String> {
        parse_pod(obj, &Meta::read(obj), None)
    }

    fn is_terminated(&self) -> bool {
        matches!(self.phase.as_deref(), Some("Succeeded" | "Failed"))
    }
}

/// `spec.ports[].targetPort` of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    /// A container port name, resolved per pod.
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: Option<String>,
    pub protocol: String,
    pub port: u16,
    /// Defaults to `port` when the Service leaves it out, as Kubernetes does.
    pub target_port: TargetPort,
}

/// The parts of a Service that matter here: which pods it selects and how its ports map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    /// Empty: the Service selects no pods (its endpoints are managed by hand).
    pub selector: BTreeMap<String, String>,
    pub cluster_ips: Vec<IpAddr>,
    pub ports: Vec<ServicePort>,
    pub source: Option<PathBuf>,
}

/// An object that was read but not used, because Istio or Kubernetes would refuse it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub source: Option<PathBuf>,
    pub reason: String,
    /// For PeerAuthentications whose selector could be read: `Some(None)` namespace-wide,
    /// `Some(Some(labels))` a selector. Lets [`Cluster::effective`] mention the rejected
    /// policy only to the pods it was meant for.
    #[serde(skip)]
    selector: Option<Option<BTreeMap<String, String>>>,
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
struct MeshConfigSource {
    namespace: String,
    name: String,
    root_namespace: Option<String>,
}

/// Everything the engine knows about a cluster.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pods: Vec<Pod>,
    policies: Vec<PeerAuthentication>,
    services: Vec<Service>,
    namespaces: BTreeSet<String>,
    mesh_configs: Vec<MeshConfigSource>,
    root_override: Option<String>,
    rejected: Vec<Rejected>,
    warnings: Vec<String>,
    seen: BTreeMap<(String, String, String), Option<PathBuf>>,
    skipped: usize,
    duplicates: usize,
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

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
}

fn located(path: &Path, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", path.display()),
        (Some(l), None) => format!("{}:{l}", path.display()),
        _ => path.display().to_string(),
    }
}

/// Why a pod asked for by namespace and name is not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("namespace {namespace:?} is not in the cluster data (namespaces seen: {known})")]
    UnknownNamespace { namespace: String, known: String },
    #[error("no pod {name:?} in namespace {namespace:?}{hint}")]
    UnknownPod {
        namespace: String,
        name: String,
        /// `"; did you mean ..."` or `" (it has no pods in the data)"`.
        hint: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

impl Cluster {
    pub fn new() -> Cluster {
        Cluster::default()
    }

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
        let text = fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
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

    /// `inherited`: `(apiVersion, kind)` of items in a typed list (`PodList` items from the API
    /// server carry no `kind` of their own).
    fn add_object(
        &mut self,
        mut obj: Map<String, Value>,
        source: Option<&Path>,
        depth: usize,
        inherited: Option<(&str, &str)>,
    ) -> Result<(), LoadError> {
        let mut kind = str_field(&obj, "kind").map(str::to_owned);
        let mut api_version = str_field(&obj, "apiVersion").map(str::to_owned);
        if kind.is_none() {
            if let Some((v, k)) = inherited {
                kind = Some(k.to_owned());
                api_version = api_version.or_else(|| Some(v.to_owned()));
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
                    let inherit = (!item_kind.is_empty()).then_some((api_version.as_str(), item_kind.as_str()));
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
                        Err(reason) => self.reject("Pod", &meta, source, reason, None),
                    }
                }
            }
            "Service" if is_core => {
                if self.first_copy("Service", &meta, source) {
                    match parse_service(&obj, &meta, source) {
                        Ok(svc) => self.services.push(svc),
                        Err(reason) => self.reject("Service", &meta, source, reason, None),
                    }
                }
            }
            "ConfigMap" if is_core => self.add_config_map(&obj, &meta, source),
            "PeerAuthentication" if group == "security.istio.io" => {
                if !PA_API_VERSIONS.contains(&api_version.as_str()) {
                    let reason = format!(
                        "apiVersion {api_version} is not served for PeerAuthentication \
                         (use security.istio.io/v1 or v1beta1)"
                    );
                    self.reject("PeerAuthentication", &meta, source, reason, None);
                } else if self.first_copy("PeerAuthentication", &meta, source) {
                    match parse_peer_authentication(&obj, &meta, &api_version, source) {
                        Ok(pa) => self.policies.push(pa),
                        Err((reason, selector)) => self.reject("PeerAuthentication", &meta, source, reason, selector),
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
        let key = (kind.to_owned(), ns.clone(), name.clone());
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
        reason: String,
        selector: Option<Option<BTreeMap<String, String>>>,
    ) {
        self.rejected.push(Rejected {
            kind: kind.to_owned(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            source: source.map(Path::to_path_buf),
            reason,
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
        let Some(text) = mesh.as_str() else {
            let reason = "data.mesh is not a string".to_owned();
            self.reject("ConfigMap", meta, source, reason, None);
            return;
        };
        let parsed: Result<serde_norway::Value, _> = serde_norway::from_str(text);
        let root = match parsed {
            Ok(v) => match v.get("rootNamespace") {
                None | Some(serde_norway::Value::Null) => None,
                Some(serde_norway::Value::String(s)) if s.is_empty() => None,
                Some(serde_norway::Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    let reason = "data.mesh: rootNamespace is not a string".to_owned();
                    self.reject("ConfigMap", meta, source, reason, None);
                    return;
                }
            },
            Err(e) => {
                let reason = format!("data.mesh is not valid YAML: {e}");
                self.reject("ConfigMap", meta, source, reason, None);
                return;
            }
        };
        self.mesh_configs.push(MeshConfigSource {
            namespace: ns.clone(),
            name: name.clone(),
            root_namespace: root,
        });
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

fn parse_yaml_stream(path: &Path, text: &str) -> Result<Vec<Value>, LoadError> {
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
/// null. Depth is bounded by the YAML parser's recursion limit.
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

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "an object",
    }
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

// ---------------------------------------------------------------------------------------------
// Object parsing
// ---------------------------------------------------------------------------------------------

/// `metadata`, read leniently: a wrong type here makes the field absent, and the object's
/// parser decides whether that is fatal.
#[derive(Debug, Default)]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    labels: Option<Value>,
    annotations: Option<Value>,
    creation_timestamp: Option<Value>,
}

impl Meta {
    fn read(obj: &Map<String, Value>) -> Meta {
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

    /// Name and namespace, or why the object cannot be placed. A dump never lacks a namespace;
    /// a hand-written file may, and guessing `default` (what kubectl would do) could put a
    /// policy where the user did not mean it.
    fn identity(&self) -> Result<(String, String), String> {
        let name = self.name.clone().ok_or("metadata.name is missing")?;
        let ns = self.namespace.clone().ok_or(
            "metadata.namespace is missing (kubectl would use the current context's namespace, \
             which a file does not record)",
        )?;
        Ok((ns, name))
    }
}

fn string_map(v: Option<&Value>, field: &str) -> Result<BTreeMap<String, String>, String> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(format!("{field}.{k} must be a string, found {}", json_type(other))),
            })
            .collect(),
        Some(other) => Err(format!("{field} must be a map, found {}", json_type(other))),
    }
}

fn port_number(v: &Value, field: &str) -> Result<u16, String> {
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&n| n != 0)
        .ok_or_else(|| format!("{field} must be a port number 1-65535, found {v}"))
}

fn parse_creation(meta: &Meta) -> Result<(Option<Timestamp>, Option<String>), String> {
    match &meta.creation_timestamp {
        None | Some(Value::Null) => Ok((None, None)),
        Some(Value::String(s)) => Timestamp::parse_rfc3339(s)
            .map(|t| (Some(t), Some(s.clone())))
            .map_err(|e| format!("metadata.creationTimestamp {e}")),
        Some(other) => Err(format!(
            "metadata.creationTimestamp must be a string, found {}",
            json_type(other)
        )),
    }
}

/// Reads `spec.mtls`-shaped values: absent, null, `{}` and `{mode: null}` are UNSET.
fn parse_mtls(v: Option<&Value>, field: &str) -> Result<Mode, String> {
    match v {
        None | Some(Value::Null) => Ok(Mode::Unset),
        Some(Value::Object(m)) => match m.get("mode") {
            None | Some(Value::Null) => Ok(Mode::Unset),
            Some(Value::String(s)) => Mode::parse(s)
                .ok_or_else(|| format!("{field}.mode {s:?} is not one of UNSET, DISABLE, PERMISSIVE, STRICT")),
            Some(other) => Err(format!(
                "{field}.mode {other} is not one of UNSET, DISABLE, PERMISSIVE, STRICT"
            )),
        },
        Some(other) => Err(format!("{field} must be an object, found {}", json_type(other))),
    }
}

type PaError = (String, Option<Option<BTreeMap<String, String>>>);

/// Applies the checks Istio's admission makes (CRD enum, CEL rules, webhook), so that an object
/// the API server would have refused is not used.
fn parse_peer_authentication(
    obj: &Map<String, Value>,
    meta: &Meta,
    api_version: &str,
    source: Option<&Path>,
) -> Result<PeerAuthentication, PaError> {
    let (namespace, name) = meta.identity().map_err(|r| (r, None))?;
    let (creation_timestamp, created) = parse_creation(meta).map_err(|r| (r, None))?;
    let empty = Map::new();
    let spec = match obj.get("spec") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(other) => return Err((format!("spec must be an object, found {}", json_type(other)), None)),
    };

    let selector = match spec.get("selector") {
        None | Some(Value::Null) => None,
        Some(Value::Object(sel)) => {
            let labels = string_map(sel.get("matchLabels"), "spec.selector.matchLabels").map_err(|r| (r, None))?;
            for (k, v) in &labels {
                if k.is_empty() {
                    return Err(("spec.selector.matchLabels: key must not be empty".into(), None));
                }
                if k.contains('*') || v.contains('*') {
                    return Err((
                        format!("spec.selector.matchLabels: wildcard not allowed ({k}: {v})"),
                        None,
                    ));
                }
            }
            (!labels.is_empty()).then_some(labels)
        }
        Some(other) => {
            return Err((
                format!("spec.selector must be an object, found {}", json_type(other)),
                None,
            ))
        }
    };
    // From here on, a rejection knows which pods the policy was meant for.
    let fail = |r: String| (r, Some(selector.clone()));

    let mode = parse_mtls(spec.get("mtls"), "spec.mtls").map_err(fail)?;

    let mut port_level = BTreeMap::new();
    match spec.get("portLevelMtls") {
        None | Some(Value::Null) => {}
        Some(Value::Object(ports)) => {
            if selector.is_none() {
                return Err(fail("portLevelMtls requires selector".into()));
            }
            if ports.is_empty() {
                return Err(fail("portLevelMtls, if defined, must have at least one element".into()));
            }
            for (key, value) in ports {
                // Go's ParseUint: digits only (no sign, no spaces); the CEL rule bounds it.
                let port = Some(key)
                    .filter(|k| !k.is_empty() && k.len() <= 10 && k.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|k| k.parse::<u64>().ok())
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|&n| n != 0)
                    .ok_or_else(|| fail(format!("portLevelMtls: port must be between 1-65535, found {key:?}")))?;
                if value.is_null() {
                    return Err(fail(format!("portLevelMtls[{port}] must not be null")));
                }
                let m = parse_mtls(Some(value), &format!("portLevelMtls[{port}]")).map_err(fail)?;
                port_level.insert(port, m);
            }
        }
        Some(other) => return Err(fail(format!("portLevelMtls must be a map, found {}", json_type(other)))),
    }

    Ok(PeerAuthentication {
        namespace,
        name,
        api_version: api_version.to_owned(),
        creation_timestamp,
        created,
        selector,
        mode,
        port_level,
        source: source.map(Path::to_path_buf),
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawPodSpec {
    containers: Option<Vec<RawContainer>>,
    init_containers: Option<Vec<RawContainer>>,
    host_network: Option<bool>,
    node_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawContainer {
    name: Option<String>,
    ports: Option<Vec<RawContainerPort>>,
    restart_policy: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawContainerStatus {
    name: Option<String>,
    #[serde(rename = "containerID")]
    container_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawContainerPort {
    container_port: Value,
    name: Option<String>,
    protocol: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawPodStatus {
    phase: Option<String>,
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pod_ips: Option<Vec<RawPodIp>>,
    container_statuses: Option<Vec<RawContainerStatus>>,
    init_container_statuses: Option<Vec<RawContainerStatus>>,
}

#[derive(Deserialize)]
struct RawPodIp {
    ip: Option<String>,
}

fn typed<T: serde::de::DeserializeOwned + Default>(v: Option<&Value>, field: &str) -> Result<T, String> {
    match v {
        None | Some(Value::Null) => Ok(T::default()),
        Some(v) => T::deserialize(v).map_err(|e| format!("{field}: {e}")),
    }
}

fn parse_pod(obj: &Map<String, Value>, meta: &Meta, source: Option<&Path>) -> Result<Pod, String> {
    let (namespace, name) = meta.identity()?;
    let labels = string_map(meta.labels.as_ref(), "metadata.labels")?;
    // Annotations only feed the sidecar guess, so a malformed map is not worth rejecting for.
    let annotations = string_map(meta.annotations.as_ref(), "metadata.annotations").unwrap_or_default();
    let spec: RawPodSpec = typed(obj.get("spec"), "spec")?;
    let status: RawPodStatus = typed(obj.get("status"), "status")?;

    let mut ports = Vec::new();
    let mut sidecar = annotations.contains_key("sidecar.istio.io/status");
    let containers = spec.containers.iter().flatten();
    let init = spec.init_containers.iter().flatten();
    for c in containers.chain(init) {
        let cname = c.name.clone().unwrap_or_default();
        sidecar |= cname == "istio-proxy";
        for p in c.ports.iter().flatten() {
            ports.push(ContainerPort {
                container: cname.clone(),
                name: p.name.clone().filter(|n| !n.is_empty()),
                port: port_number(&p.container_port, &format!("container {cname}: containerPort"))?,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            });
        }
    }

    let listed = status.pod_ips.iter().flatten().filter_map(|p| p.ip.as_deref());
    let ips = unique_ips(status.pod_ip.as_deref().into_iter().chain(listed));

    let statuses = status
        .init_container_statuses
        .iter()
        .chain(status.container_statuses.iter())
        .flatten();
    let statuses: Vec<&RawContainerStatus> = statuses.collect();
    let container = |c: &RawContainer, native_sidecar: bool| {
        let name = c.name.clone().unwrap_or_default();
        Container {
            id: statuses
                .iter()
                .find(|s| s.name.as_deref() == Some(name.as_str()))
                .and_then(|s| s.container_id.clone())
                .filter(|id| !id.is_empty()),
            sidecar: native_sidecar || PROXY_CONTAINERS.contains(&name.as_str()),
            name,
        }
    };
    let native = spec.init_containers.iter().flatten();
    let native = native.filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let mut pod_containers: Vec<Container> = native.map(|c| container(c, true)).collect();
    pod_containers.extend(spec.containers.iter().flatten().map(|c| container(c, false)));
    let default_container = annotations
        .get(DEFAULT_CONTAINER_ANNOTATION)
        .filter(|n| pod_containers.iter().any(|c| &c.name == *n))
        .cloned();

    Ok(Pod {
        namespace,
        name,
        labels,
        ips,
        ports,
        host_network: spec.host_network.unwrap_or(false),
        phase: status.phase,
        sidecar,
        ambient: annotations
            .get("ambient.istio.io/redirection")
            .is_some_and(|v| v == "enabled"),
        source: source.map(Path::to_path_buf),
        node: spec.node_name.filter(|n| !n.is_empty()),
        containers: pod_containers,
        default_container,
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawServiceSpec {
    selector: Option<BTreeMap<String, String>>,
    #[serde(rename = "clusterIP")]
    cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs")]
    cluster_ips: Option<Vec<String>>,
    ports: Option<Vec<RawServicePort>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawServicePort {
    name: Option<String>,
    protocol: Option<String>,
    port: Value,
    target_port: Option<Value>,
}

fn parse_service(obj: &Map<String, Value>, meta: &Meta, source: Option<&Path>) -> Result<Service, String> {
    let (namespace, name) = meta.identity()?;
    let spec: RawServiceSpec = typed(obj.get("spec"), "spec")?;
    let mut ports = Vec::new();
    for p in spec.ports.iter().flatten() {
        let port = port_number(&p.port, "spec.ports[].port")?;
        let target_port = match &p.target_port {
            None | Some(Value::Null) => TargetPort::Number(port),
            Some(Value::String(s)) => match s.parse::<u16>() {
                // Kubernetes refuses an all-digit name; a hand-written "9080" means the number.
                Ok(n) if n != 0 && s.bytes().all(|b| b.is_ascii_digit()) => TargetPort::Number(n),
                _ => TargetPort::Name(s.clone()),
            },
            Some(v) => TargetPort::Number(port_number(v, "spec.ports[].targetPort")?),
        };
        ports.push(ServicePort {
            name: p.name.clone(),
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            port,
            target_port,
        });
    }
    let listed = spec.cluster_ips.iter().flatten().map(String::as_str);
    let cluster_ips = unique_ips(spec.cluster_ip.as_deref().into_iter().chain(listed));
    Ok(Service {
        namespace,
        name,
        selector: spec.selector.unwrap_or_default(),
        cluster_ips,
        ports,
        source: source.map(Path::to_path_buf),
    })
}

// ---------------------------------------------------------------------------------------------
// Queries and the engine
// ---------------------------------------------------------------------------------------------

/// `labels.Instance.SubsetOf`: every selector label is on the pod with the same value.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl Cluster {
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
            let (root, origin) = self.root();
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
        self.root().0
    }

    pub fn root_namespace_origin(&self) -> RootNamespaceOrigin {
        self.root().1
    }

    fn root(&self) -> (&str, RootNamespaceOrigin) {
        if let Some(ns) = &self.root_override {
            return (ns, RootNamespaceOrigin::Override);
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
        match best {
            Some(m) => match &m.root_namespace {
                Some(root) => (
                    root,
                    RootNamespaceOrigin::MeshConfig(format!("{}/{}", m.namespace, m.name)),
                ),
                None => (DEFAULT_ROOT_NAMESPACE, RootNamespaceOrigin::Default),
            },
            None => (DEFAULT_ROOT_NAMESPACE, RootNamespaceOrigin::Default),
        }
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Pod> {
        self.pods.iter().find(|p| p.namespace == namespace && p.name == name)
    }

    /// [`Cluster::pod`] with an error that says what is there instead.
    pub fn find_pod(&self, namespace: &str, name: &str) -> Result<&Pod, LookupError> {
        if let Some(pod) = self.pod(namespace, name) {
            return Ok(pod);
        }
        if !self.namespaces.contains(namespace) {
            let known: Vec<&str> = self.namespaces.iter().map(String::as_str).collect();
            return Err(LookupError::UnknownNamespace {
                namespace: namespace.to_owned(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        }
        let in_ns: Vec<&str> = self
            .pods
            .iter()
            .filter(|p| p.namespace == namespace)
            .map(|p| p.name.as_str())
            .collect();
        let close: Vec<&str> = in_ns.iter().copied().filter(|p| p.starts_with(name)).take(5).collect();
        let hint = if in_ns.is_empty() {
            " (the data has no pods in that namespace)".to_owned()
        } else if !close.is_empty() {
            format!("; did you mean {}?", close.join(", "))
        } else {
            format!(
                "; pods there: {}",
                in_ns.iter().take(10).copied().collect::<Vec<_>>().join(", ")
            )
        };
        Err(LookupError::UnknownPod {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            hint,
        })
    }

    /// Every pod that has this IP, terminated and host-network ones included.
    pub fn pods_by_ip(&self, ip: IpAddr) -> Vec<&Pod> {
        self.pods.iter().filter(|p| p.ips.contains(&ip)).collect()
    }

    /// The pod that owns this IP now. Pods that finished (`Succeeded`/`Failed`) keep their old
    /// IP in the dump after it is reused, and host-network pods share their node's IP and have
    /// no sidecar, so both are passed over; if that still leaves more than one, the IP is
    /// ambiguous and the answer is `None` rather than a guess.
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&Pod> {
        let mut live = self
            .pods
            .iter()
            .filter(|p| p.ips.contains(&ip) && !p.host_network && !p.is_terminated());
        let first = live.next()?;
        live.next().is_none().then_some(first)
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
    }

    /// The Service with this cluster IP (a capture taken before the sidecar, or without one,
    /// shows the cluster IP and the Service port).
    pub fn service_by_ip(&self, ip: IpAddr) -> Option<&Service> {
        self.services.iter().find(|s| s.cluster_ips.contains(&ip))
    }

    /// Live pods a Service sends traffic to. A Service without a selector selects none.
    pub fn pods_for_service(&self, service: &Service) -> Vec<&Pod> {
        if service.selector.is_empty() {
            return Vec::new();
        }
        self.pods
            .iter()
            .filter(|p| p.namespace == service.namespace && !p.is_terminated() && selects(&service.selector, &p.labels))
            .collect()
    }

    /// The port `pod` receives on when a client uses `service_port` of a Service that selects
    /// it: that is the port `portLevelMtls` is keyed by. A named `targetPort` is looked up among
    /// the pod's container ports with the same name and protocol (Kubernetes' `FindPort`).
    /// Services are tried by name; `None` when none selects the pod on that port.
    pub fn target_port(&self, pod: &Pod, service_port: u16) -> Option<u16> {
        let mut services: Vec<&Service> = self
            .services
            .iter()
            .filter(|s| s.namespace == pod.namespace && !s.selector.is_empty() && selects(&s.selector, &pod.labels))
            .collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        services
            .iter()
            .flat_map(|s| s.ports.iter())
            .filter(|sp| sp.port == service_port)
            .find_map(|sp| match &sp.target_port {
                TargetPort::Number(n) => Some(*n),
                TargetPort::Name(name) => pod
                    .ports
                    .iter()
                    .find(|cp| cp.name.as_deref() == Some(name) && cp.protocol == sp.protocol)
                    .map(|cp| cp.port),
            })
    }

    /// [`Cluster::effective`] for a connection to a Service port: translated to the pod's port
    /// first. `None` when no Service maps that port to the pod.
    pub fn effective_for_service_port(&self, pod: &Pod, service_port: u16) -> Option<(u16, Decision)> {
        let port = self.target_port(pod, service_port)?;
        Some((port, self.effective(pod, port)))
    }

    /// The mode Istio enforces for connections to `pod` on `port` (the pod's own port, see
    /// [`Cluster::target_port`]), which policy decided it, and which policies were passed over.
    pub fn effective(&self, pod: &Pod, port: u16) -> Decision {
        let root = self.root_namespace();
        let mut ignored = Vec::new();
        let (mut mesh, mut namespace, mut workload) = (Vec::new(), Vec::new(), Vec::new());
        for p in &self.policies {
            if p.namespace != pod.namespace && p.namespace != root {
                continue;
            }
            match &p.selector {
                None if p.namespace == root => mesh.push(p),
                None => namespace.push(p),
                Some(sel) if selects(sel, &pod.labels) => {
                    if p.namespace == root {
                        ignored.push(Ignored {
                            namespace: p.namespace.clone(),
                            name: p.name.clone(),
                            reason: format!(
                                "selector policy in the root namespace {root}: Istio never \
                                 applies those; put it in the workload's namespace"
                            ),
                        });
                    } else {
                        workload.push(p);
                    }
                }
                Some(_) => {}
            }
        }

        let mesh = oldest(mesh, Level::Mesh, &mut ignored);
        let namespace = oldest(namespace, Level::Namespace, &mut ignored);
        let workload = oldest(workload, Level::Workload, &mut ignored);

        let mut mode = Mode::Permissive;
        let mut decided_by = DecidedBy::default_mode();
        let mut applied = Vec::new();
        for (level, policy) in [
            (Level::Mesh, mesh),
            (Level::Namespace, namespace),
            (Level::Workload, workload),
        ] {
            let Some(p) = policy else { continue };
            applied.push(Applied {
                level,
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                mode: p.mode,
            });
            if p.mode != Mode::Unset {
                mode = p.mode;
                decided_by = DecidedBy::policy(p, level);
            }
        }
        if let Some(w) = workload {
            if let Some(&port_mode) = w.port_level.get(&port) {
                applied.push(Applied {
                    level: Level::Port,
                    namespace: w.namespace.clone(),
                    name: w.name.clone(),
                    mode: port_mode,
                });
                if port_mode != Mode::Unset {
                    mode = port_mode;
                    decided_by = DecidedBy::policy(w, Level::Port);
                }
            }
        }

        // Policies the user wrote for this pod but Istio would have refused.
        for r in &self.rejected {
            let (Some(ns), Some(name)) = (&r.namespace, &r.name) else {
                continue;
            };
            let meant_for_pod = match &r.selector {
                Some(Some(sel)) => selects(sel, &pod.labels),
                Some(None) | None => true,
            };
            if r.kind == "PeerAuthentication" && (ns == &pod.namespace || ns == root) && meant_for_pod {
                ignored.push(Ignored {
                    namespace: ns.clone(),
                    name: name.clone(),
                    reason: format!("invalid, Istio would reject it: {}", r.reason),
                });
            }
        }

        Decision {
            mode,
            decided_by,
            ignored,
            applied,
        }
    }
}

/// The policy Istio uses at one level (the oldest), and an [`Ignored`] entry for each other one.
fn oldest<'a>(
    mut candidates: Vec<&'a PeerAuthentication>,
    level: Level,
    ignored: &mut Vec<Ignored>,
) -> Option<&'a PeerAuthentication> {
    candidates.sort_by(|a, b| a.age_key().cmp(&b.age_key()));
    let (&winner, rest) = candidates.split_first()?;
    for p in rest {
        let why = if p.creation_timestamp == winner.creation_timestamp {
            format!(
                "same creationTimestamp as {}/{} ({}); Istio breaks the tie by name, then \
                 namespace, and uses only that one",
                winner.namespace,
                winner.name,
                winner.created_text()
            )
        } else {
            format!(
                "{}/{} is older ({} vs {}); Istio uses only the oldest",
                winner.namespace,
                winner.name,
                winner.created_text(),
                p.created_text()
            )
        };
        ignored.push(Ignored {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            reason: format!("another {level}-level policy applies: {why}"),
        });
    }
    Some(winner)
}

/// The addresses among `texts`, each once, in order. An unparsable one ("None" for a headless
/// Service, "") cannot match any packet: it is dropped, not the object that listed it.
fn unique_ips<'a>(texts: impl Iterator<Item = &'a str>) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    for ip in texts.filter_map(|t| t.parse::<IpAddr>().ok()) {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pa(ns: &str, name: &str, created: &str, spec: Value) -> Value {
        json!({
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
            "spec": spec,
        })
    }

    fn pod(ns: &str, name: &str, ip: &str, labels: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"containers": [
                {"name": "app", "ports": [{"containerPort": 9080, "name": "http"}]},
                {"name": "istio-proxy", "ports": [{"containerPort": 15090, "name": "http-envoy-prom"}]}
            ]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
        })
    }

    fn reviews() -> Value {
        pod(
            "bookinfo",
            "reviews-v1",
            "10.0.0.2",
            json!({"app": "reviews", "version": "v1"}),
        )
    }

    const T0: &str = "2024-01-01T00:00:00Z";
    const T1: &str = "2024-01-02T00:00:00Z";
    const T2: &str = "2024-01-03T00:00:00Z";

    fn cluster(objects: Vec<Value>) -> Cluster {
        Cluster::from_objects(objects).expect("objects load")
    }

    /// Effective decision for bookinfo/reviews-v1 on `port`.
    fn decide(c: &Cluster, port: u16) -> Decision {
        let p = c.pod("bookinfo", "reviews-v1").expect("pod loaded");
        c.effective(p, port)
    }

    fn by(d: &Decision) -> (Level, Option<&str>, Option<&str>) {
        (
            d.decided_by.level,
            d.decided_by.namespace.as_deref(),
            d.decided_by.name.as_deref(),
        )
    }

    fn data(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/policy")
            .join(rel)
    }

    // --- one test per rule -------------------------------------------------------------------

    #[test]
    fn default_is_permissive() {
        let c = cluster(vec![reviews()]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Permissive);
        assert_eq!(d.decided_by, DecidedBy::default_mode());
        assert!(d.ignored.is_empty() && d.applied.is_empty());
    }

    #[test]
    fn mesh_policy_applies_to_every_namespace() {
        let c = cluster(vec![
            reviews(),
            pa("istio-system", "default", T0, json!({"mtls": {"mode": "STRICT"}})),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Strict);
        assert_eq!(by(&d), (Level::Mesh, Some("istio-system"), Some("default")));
    }

    #[test]
    fn namespace_overrides_mesh() {
        let c = cluster(vec![
            reviews(),
            pa("istio-system", "default", T0, json!({"mtls": {"mode": "STRICT"}})),
            pa("bookinfo", "default", T1, json!({"mtls": {"mode": "PERMISSIVE"}})),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Permissive);
        assert_eq!(by(&d), (Level::Namespace, Some("bookinfo"), Some("default")));
        assert_eq!(d.applied.len(), 2);
    }

    #[test]
    fn workload_selector_overrides_namespace() {
        let c = cluster(vec![
            reviews(),
            pa("bookinfo", "default", T0, json!({"mtls": {"mode": "PERMISSIVE"}})),
            pa(
                "bookinfo",
                "reviews",
                T1,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}},
                    "mtls": {"mode": "STRICT"}
                }),
            ),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Strict);
        assert_eq!(by(&d), (Level::Workload, Some("bookinfo"), Some("reviews")));
    }

    #[test]
    fn workload_selector_must_be_subset_of_pod_labels() {
        let c = cluster(vec![
            reviews(),
            pa(
                "bookinfo",
                "reviews-v2-only",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews", "version": "v2"}},
                    "mtls": {"mode": "STRICT"}
                }),
            ),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Permissive);
        assert_eq!(d.decided_by.level, Level::Default);
    }

    #[test]
    fn selector_in_other_namespace_never_applies() {
        let c = cluster(vec![
            reviews(),
            pa(
                "other",
                "reviews",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}},
                    "mtls": {"mode": "STRICT"}
                }),
            ),
            pa("other", "default", T0, json!({"mtls": {"mode": "STRICT"}})),
        ]);
        assert_eq!(decide(&c, 9080).mode, Mode::Permissive);
    }

    #[test]
    fn empty_selector_counts_as_no_selector() {
        // `selector: {}` and `matchLabels: {}` are namespace-wide in ComposePeerAuthentication.
        let c = cluster(vec![
            reviews(),
            pa(
                "bookinfo",
                "empty-selector",
                T0,
                json!({"selector": {}, "mtls": {"mode": "STRICT"}}),
            ),
            pa(
                "istio-system",
                "empty-match-labels",
                T0,
                json!({
                    "selector": {"matchLabels": {}}, "mtls": {"mode": "DISABLE"}
                }),
            ),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Strict);
        assert_eq!(by(&d), (Level::Namespace, Some("bookinfo"), Some("empty-selector")));
        assert_eq!(d.applied[0].level, Level::Mesh);
    }

    #[test]
    fn unset_inherits_from_level_above() {
        let c = cluster(vec![
            reviews(),
            pa("istio-system", "default", T0, json!({"mtls": {"mode": "STRICT"}})),
            pa("bookinfo", "default", T0, json!({"mtls": {"mode": "UNSET"}})),
            pa(
                "bookinfo",
                "reviews",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}}
                }),
            ),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Strict);
        assert_eq!(by(&d), (Level::Mesh, Some("istio-system"), Some("default")));
        assert_eq!(d.applied.len(), 3);
    }

    #[test]
    fn mesh_unset_is_default_permissive() {
        let c = cluster(vec![reviews(), pa("istio-system", "default", T0, json!({"mtls": {}}))]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Permissive);
        assert_eq!(d.decided_by.level, Level::Default);
    }

    #[test]
    fn port_level_overrides_workload_for_that_port_only() {
        let c = cluster(vec![
            reviews(),
            pa(
                "bookinfo",
                "reviews",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}},
                    "mtls": {"mode": "STRICT"},
                    "portLevelMtls": {"9080": {"mode": "DISABLE"}}
                }),
            ),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Disable);
        assert_eq!(by(&d), (Level::Port, Some("bookinfo"), Some("reviews")));
        let d = decide(&c, 15090);
        assert_eq!(d.mode, Mode::Strict);
        assert_eq!(d.decided_by.level, Level::Workload);
    }

    #[test]
    fn port_level_only_from_selector_policy() {
        // Istio refuses portLevelMtls without a selector; even if one got into the data it must
        // not set a port's mode, and the user is told why.
        let c = cluster(vec![
            reviews(),
            pa(
                "bookinfo",
                "default",
                T0,
                json!({
                    "mtls": {"mode": "PERMISSIVE"},
                    "portLevelMtls": {"9080": {"mode": "STRICT"}}
                }),
            ),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Permissive);
        assert_eq!(d.decided_by.level, Level::Default);
        assert_eq!(d.ignored.len(), 1);
        assert!(d.ignored[0].reason.contains("portLevelMtls requires selector"));
        assert_eq!(c.rejected().len(), 1);
    }

    #[test]
    fn unset_port_inherits_workload() {
        let c = cluster(vec![
            reviews(),
            pa("bookinfo", "default", T0, json!({"mtls": {"mode": "DISABLE"}})),
            pa(
                "bookinfo",
                "reviews",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}},
                    "mtls": {"mode": "STRICT"},
                    "portLevelMtls": {"9080": {"mode": "UNSET"}, "9443": {}}
                }),
            ),
        ]);
        for port in [9080, 9443] {
            let d = decide(&c, port);
            assert_eq!(d.mode, Mode::Strict, "port {port}");
            assert_eq!(by(&d), (Level::Workload, Some("bookinfo"), Some("reviews")));
            assert_eq!(
                d.applied.last().map(|a| (a.level, a.mode)),
                Some((Level::Port, Mode::Unset))
            );
        }
    }

    #[test]
    fn unset_port_with_unset_workload_inherits_namespace() {
        let c = cluster(vec![
            reviews(),
            pa("bookinfo", "default", T0, json!({"mtls": {"mode": "DISABLE"}})),
            pa(
                "bookinfo",
                "reviews",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}},
                    "portLevelMtls": {"9080": {"mode": "UNSET"}}
                }),
            ),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Disable);
        assert_eq!(by(&d), (Level::Namespace, Some("bookinfo"), Some("default")));
    }

    #[test]
    fn port_level_keyed_by_target_port_not_service_port() {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "reviews", "namespace": "bookinfo"},
            "spec": {"selector": {"app": "reviews"}, "ports": [{"port": 80, "targetPort": 9080}]}
        });
        let c = cluster(vec![
            reviews(),
            svc,
            pa(
                "bookinfo",
                "reviews",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}},
                    "mtls": {"mode": "STRICT"},
                    "portLevelMtls": {"80": {"mode": "DISABLE"}, "9080": {"mode": "PERMISSIVE"}}
                }),
            ),
        ]);
        let p = c.pod("bookinfo", "reviews-v1").unwrap();
        let (port, d) = c.effective_for_service_port(p, 80).unwrap();
        assert_eq!(port, 9080);
        assert_eq!(d.mode, Mode::Permissive);
        assert_eq!(d.decided_by.level, Level::Port);
    }

    #[test]
    fn named_target_port_resolved() {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "reviews", "namespace": "bookinfo"},
            "spec": {"selector": {"app": "reviews"}, "ports": [
                {"name": "web", "port": 80, "targetPort": "http"},
                {"name": "metrics", "port": 9999, "targetPort": "no-such-port"},
                {"name": "plain", "port": 9080}
            ]}
        });
        let c = cluster(vec![reviews(), svc]);
        let p = c.pod("bookinfo", "reviews-v1").unwrap();
        assert_eq!(c.target_port(p, 80), Some(9080));
        assert_eq!(c.target_port(p, 9999), None);
        // targetPort left out defaults to the port itself.
        assert_eq!(c.target_port(p, 9080), Some(9080));
        assert_eq!(c.target_port(p, 443), None);
    }

    #[test]
    fn named_target_port_needs_same_protocol() {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "reviews", "namespace": "bookinfo"},
            "spec": {"selector": {"app": "reviews"}, "ports": [
                {"port": 53, "protocol": "UDP", "targetPort": "http"}
            ]}
        });
        let c = cluster(vec![reviews(), svc]);
        let p = c.pod("bookinfo", "reviews-v1").unwrap();
        assert_eq!(c.target_port(p, 53), None);
    }

    #[test]
    fn root_namespace_selector_policy_ignored() {
        let c = cluster(vec![
            reviews(),
            pa(
                "istio-system",
                "reviews-from-root",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}},
                    "mtls": {"mode": "STRICT"}
                }),
            ),
            pa(
                "istio-system",
                "not-for-reviews",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "ratings"}},
                    "mtls": {"mode": "STRICT"}
                }),
            ),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Permissive);
        assert_eq!(d.decided_by.level, Level::Default);
        assert_eq!(d.ignored.len(), 1, "only the one whose selector matches");
        assert_eq!(d.ignored[0].name, "reviews-from-root");
        assert!(d.ignored[0].reason.contains("root namespace istio-system"));
    }

    #[test]
    fn root_namespace_selector_policy_ignored_for_pods_in_root_namespace() {
        let gw = pod("istio-system", "gw", "10.0.0.9", json!({"istio": "ingressgateway"}));
        let c = cluster(vec![
            gw,
            pa("istio-system", "default", T0, json!({"mtls": {"mode": "STRICT"}})),
            pa(
                "istio-system",
                "gw",
                T0,
                json!({
                    "selector": {"matchLabels": {"istio": "ingressgateway"}},
                    "mtls": {"mode": "PERMISSIVE"}
                }),
            ),
        ]);
        let p = c.pod("istio-system", "gw").unwrap();
        let d = c.effective(p, 8080);
        assert_eq!(d.mode, Mode::Strict);
        assert_eq!(by(&d), (Level::Mesh, Some("istio-system"), Some("default")));
        assert_eq!(d.ignored.len(), 1);
    }

    #[test]
    fn oldest_creation_timestamp_wins() {
        let sel = json!({"app": "reviews"});
        let c = cluster(vec![
            reviews(),
            pa(
                "istio-system",
                "aaa-newer-mesh",
                T1,
                json!({"mtls": {"mode": "DISABLE"}}),
            ),
            pa(
                "istio-system",
                "zzz-older-mesh",
                T0,
                json!({"mtls": {"mode": "STRICT"}}),
            ),
            pa("bookinfo", "b-ns", T2, json!({"mtls": {"mode": "PERMISSIVE"}})),
            pa("bookinfo", "c-ns", T1, json!({"mtls": {"mode": "UNSET"}})),
            pa(
                "bookinfo",
                "wl-new",
                T2,
                json!({"selector": {"matchLabels": sel}, "mtls": {"mode": "DISABLE"}}),
            ),
            pa("bookinfo", "wl-old", T1, json!({"selector": {"matchLabels": sel}})),
        ]);
        let d = decide(&c, 9080);
        // Oldest at each level: zzz-older-mesh STRICT, c-ns UNSET, wl-old UNSET -> STRICT.
        assert_eq!(d.mode, Mode::Strict);
        assert_eq!(by(&d), (Level::Mesh, Some("istio-system"), Some("zzz-older-mesh")));
        let names: Vec<&str> = d.ignored.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["aaa-newer-mesh", "b-ns", "wl-new"]);
        assert!(d.ignored[0].reason.contains("is older"), "{}", d.ignored[0].reason);
    }

    #[test]
    fn missing_creation_timestamp_is_oldest() {
        // Go's zero time.Time sorts before every real timestamp.
        let mut no_time = pa("bookinfo", "zzz-no-time", T0, json!({"mtls": {"mode": "DISABLE"}}));
        no_time["metadata"].as_object_mut().unwrap().remove("creationTimestamp");
        let c = cluster(vec![
            reviews(),
            pa("bookinfo", "aaa-timed", T0, json!({"mtls": {"mode": "STRICT"}})),
            no_time,
        ]);
        assert_eq!(decide(&c, 9080).mode, Mode::Disable);
    }

    #[test]
    fn timestamps_compare_as_instants_not_text() {
        // 10:00+02:00 is 08:00Z, older than 09:00Z although it sorts later as text.
        let c = cluster(vec![
            reviews(),
            pa(
                "bookinfo",
                "a",
                "2024-01-01T09:00:00Z",
                json!({"mtls": {"mode": "STRICT"}}),
            ),
            pa(
                "bookinfo",
                "b",
                "2024-01-01T10:00:00+02:00",
                json!({"mtls": {"mode": "DISABLE"}}),
            ),
        ]);
        assert_eq!(decide(&c, 9080).decided_by.name.as_deref(), Some("b"));
    }

    #[test]
    fn tie_broken_by_name_then_namespace() {
        let c = cluster(vec![
            reviews(),
            pa("bookinfo", "zeta", T0, json!({"mtls": {"mode": "DISABLE"}})),
            pa("bookinfo", "alpha", T0, json!({"mtls": {"mode": "STRICT"}})),
        ]);
        let d = decide(&c, 9080);
        assert_eq!(by(&d), (Level::Namespace, Some("bookinfo"), Some("alpha")));
        assert!(d.ignored[0].reason.contains("same creationTimestamp"));

        // Same time and name: the namespace decides. Every candidate at one level shares a
        // namespace, so this is only visible to `oldest` itself.
        let mk = |ns: &str, mode| PeerAuthentication {
            namespace: ns.into(),
            name: "same".into(),
            api_version: "security.istio.io/v1".into(),
            creation_timestamp: Timestamp::parse_rfc3339(T0).ok(),
            created: Some(T0.into()),
            selector: None,
            mode,
            port_level: BTreeMap::new(),
            source: None,
        };
        let (b, a) = (mk("b-ns", Mode::Strict), mk("a-ns", Mode::Disable));
        let mut ignored = Vec::new();
        let winner = oldest(vec![&b, &a], Level::Namespace, &mut ignored).unwrap();
        assert_eq!(winner.namespace, "a-ns");
        assert_eq!(ignored[0].namespace, "b-ns");
    }

    #[test]
    fn v1beta1_and_v1_both_read() {
        let mut beta = pa("bookinfo", "default", T0, json!({"mtls": {"mode": "STRICT"}}));
        beta["apiVersion"] = json!("security.istio.io/v1beta1");
        let c = cluster(vec![
            reviews(),
            beta,
            pa(
                "bookinfo",
                "reviews",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}},
                    "portLevelMtls": {"9080": {"mode": "DISABLE"}}
                }),
            ),
        ]);
        assert_eq!(c.policies().len(), 2);
        assert_eq!(c.policies()[0].api_version, "security.istio.io/v1beta1");
        assert_eq!(decide(&c, 15090).mode, Mode::Strict);
        assert_eq!(decide(&c, 9080).mode, Mode::Disable);
    }

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

    #[test]
    fn invalid_policies_rejected_and_skipped() {
        let c = cluster(vec![
            reviews(),
            pa("bookinfo", "lower", T0, json!({"mtls": {"mode": "strict"}})),
            pa("bookinfo", "number", T0, json!({"mtls": {"mode": 3}})),
            pa(
                "bookinfo",
                "port0",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}}, "portLevelMtls": {"0": {"mode": "STRICT"}}
                }),
            ),
            pa(
                "bookinfo",
                "port-big",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}}, "portLevelMtls": {"65536": {"mode": "STRICT"}}
                }),
            ),
            pa(
                "bookinfo",
                "port-sign",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}}, "portLevelMtls": {"+80": {"mode": "STRICT"}}
                }),
            ),
            pa(
                "bookinfo",
                "port-null",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}}, "portLevelMtls": {"80": null}
                }),
            ),
            pa(
                "bookinfo",
                "port-empty",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "reviews"}}, "portLevelMtls": {}
                }),
            ),
            pa(
                "bookinfo",
                "wildcard",
                T0,
                json!({"selector": {"matchLabels": {"app": "*"}}}),
            ),
            pa("bookinfo", "bad-time", "yesterday", json!({})),
            pa(
                "bookinfo",
                "ratings-only",
                T0,
                json!({
                    "selector": {"matchLabels": {"app": "ratings"}}, "mtls": {"mode": "bogus"}
                }),
            ),
        ]);
        assert!(c.policies().is_empty());
        let names: Vec<_> = c.rejected().iter().map(|r| r.name.as_deref().unwrap_or("")).collect();
        assert_eq!(names.len(), 10, "{names:?}");
        let d = decide(&c, 9080);
        assert_eq!(d.mode, Mode::Permissive);
        // Every rejected policy meant for reviews is explained; the ratings one is not.
        assert_eq!(d.ignored.len(), 9);
        assert!(d
            .ignored
            .iter()
            .all(|i| i.reason.starts_with("invalid, Istio would reject it")));
        assert!(!d.ignored.iter().any(|i| i.name == "ratings-only"));
        let lower = c
            .rejected()
            .iter()
            .find(|r| r.name.as_deref() == Some("lower"))
            .unwrap();
        assert!(lower.reason.contains("\"strict\" is not one of"), "{}", lower.reason);
    }

    #[test]
    fn policy_without_namespace_rejected() {
        let mut p = pa("x", "nons", T0, json!({}));
        p["metadata"].as_object_mut().unwrap().remove("namespace");
        let c = cluster(vec![p]);
        assert_eq!(c.rejected().len(), 1);
        assert!(c.rejected()[0].reason.contains("metadata.namespace is missing"));
    }

    // --- findings ------------------------------------------------------------------------------

    #[test]
    fn findings_follow_the_design_table() {
        use Finding::*;
        assert!(matches!(finding(Mode::Strict, "plaintext"), Some(Violation(_))));
        assert!(matches!(finding(Mode::Strict, "tls"), Some(Violation(_))));
        assert_eq!(finding(Mode::Strict, "mtls"), None);
        assert_eq!(finding(Mode::Strict, "encrypted"), None);
        assert_eq!(finding(Mode::Strict, "no-data"), None);
        match finding(Mode::Permissive, "plaintext") {
            Some(Warning(m)) => assert!(m.contains("migration")),
            other => panic!("{other:?}"),
        }
        assert_eq!(finding(Mode::Permissive, "tls"), None);
        assert_eq!(finding(Mode::Permissive, "mtls"), None);
        assert!(matches!(finding(Mode::Disable, "mtls"), Some(Note(_))));
        assert_eq!(finding(Mode::Disable, "plaintext"), None);
        assert!(matches!(finding(Mode::Unset, "plaintext"), Some(Warning(_))));
        assert_eq!(finding(Mode::Strict, "bogus"), None);
        let j = serde_json::to_value(finding(Mode::Strict, "tls")).unwrap();
        assert_eq!(j["severity"], "violation");
    }

    // --- output shape ----------------------------------------------------------------------------

    #[test]
    fn explain_json_has_the_issue_shape() {
        let c = cluster(vec![
            reviews(),
            pa("istio-system", "default", T0, json!({"mtls": {"mode": "STRICT"}})),
            pa("istio-system", "later", T1, json!({"mtls": {"mode": "DISABLE"}})),
        ]);
        let p = c.pod("bookinfo", "reviews-v1").unwrap();
        let d = c.effective(p, 9080);
        let text = serde_json::to_string(&Explanation::new(p, 9080, &d)).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"namespace":"bookinfo","pod":"reviews-v1","port":9080,"mode":"STRICT","#,
                r#""decided_by":{"kind":"PeerAuthentication","namespace":"istio-system","name":"default","level":"mesh"},"#,
                r#""ignored":[{"namespace":"istio-system","name":"later","reason":"another mesh-level policy applies: "#,
                r#"istio-system/default is older (2024-01-01T00:00:00Z vs 2024-01-02T00:00:00Z); Istio uses only the oldest"}]}"#
            )
        );
        assert_eq!(explain_json(p, 9080, &d), serde_json::from_str::<Value>(&text).unwrap());
    }

    #[test]
    fn explain_json_default_level() {
        let c = cluster(vec![reviews()]);
        let p = c.pod("bookinfo", "reviews-v1").unwrap();
        let j = explain_json(p, 9080, &c.effective(p, 9080));
        assert_eq!(
            j["decided_by"],
            json!({"kind": "default", "namespace": null, "name": null, "level": "default"})
        );
        assert_eq!(j["mode"], "PERMISSIVE");
        assert_eq!(j["ignored"], json!([]));
    }

    // --- lookups ---------------------------------------------------------------------------------

    #[test]
    fn find_pod_explains_what_is_missing() {
        let c = cluster(vec![reviews()]);
        assert!(c.find_pod("bookinfo", "reviews-v1").is_ok());
        let e = c.find_pod("nope", "x").unwrap_err();
        assert!(
            e.to_string().contains("namespace \"nope\" is not in the cluster data"),
            "{e}"
        );
        assert!(e.to_string().contains("bookinfo"));
        let e = c.find_pod("bookinfo", "reviews").unwrap_err();
        assert!(e.to_string().contains("did you mean reviews-v1"), "{e}");
    }

    #[test]
    fn pod_by_ip_skips_finished_and_host_network_pods() {
        let mut done = pod("bookinfo", "job-1", "10.0.0.2", json!({}));
        done["status"]["phase"] = json!("Succeeded");
        let mut host = pod("kube-system", "node-agent", "10.0.0.2", json!({}));
        host["spec"]["hostNetwork"] = json!(true);
        let c = cluster(vec![done, reviews(), host]);
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(c.pod_by_ip(ip).map(|p| p.name.as_str()), Some("reviews-v1"));
        assert_eq!(c.pods_by_ip(ip).len(), 3);
        assert_eq!(c.pod_by_ip("10.9.9.9".parse().unwrap()), None);
    }

    #[test]
    fn pod_by_ip_ambiguous_is_none() {
        let a = pod("a", "one", "10.0.0.3", json!({}));
        let b = pod("b", "two", "10.0.0.3", json!({}));
        let c = cluster(vec![a, b]);
        assert_eq!(c.pod_by_ip("10.0.0.3".parse().unwrap()), None);
    }

    fn instant(s: &str) -> Option<(i64, i32)> {
        let t = jiff::Timestamp::from(Timestamp::parse_rfc3339(s).ok()?);
        Some((t.as_second(), t.subsec_nanosecond()))
    }

    #[test]
    fn timestamp_parser_is_strict_and_total() {
        assert_eq!(instant("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(instant("2024-05-14T09:12:41Z"), Some((1_715_677_961, 0)));
        assert_eq!(instant("2024-05-14T09:12:41.5Z"), Some((1_715_677_961, 500_000_000)));
        assert_eq!(instant("2024-05-14T11:12:41+02:00"), Some((1_715_677_961, 0)));
        assert_eq!(instant("2024-05-14t09:12:41z"), Some((1_715_677_961, 0)));
        assert_eq!(instant("2024-05-14 09:12:41-00:00"), Some((1_715_677_961, 0)));
        assert!(instant("2024-02-29T00:00:00Z").is_some());
        for bad in [
            "",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-05-14 09:12:41",
            "2024-05-14T09:12:41",
            "2024-05-14T24:00:00Z",
            "2024-05-14T09:12:41.Z",
            "2024-05-14T09:12:41+0200",
            "2024-05-14T09:12:41Zjunk",
            "２０２４-05-14T09:12:41Z",
            "2024-05-14T09:12:41+02:0",
            "-024-05-14T09:12:41Z",
            // Forms jiff reads and the API server does not.
            "20240514T091241Z",
            "2024-05-14T09:12Z",
            "2024-05-14T09:12:41,5Z",
            "2024-05-14T09:12:41-04",
            "2024-05-14T09:12:41Z[UTC]",
            "+002024-05-14T09:12:41Z",
            "2024-05-14T23:59:60Z",
            "2024-05-14T09:12:41+24:00",
            "2024-05-14T09:12:41+02:00:30",
            "2024-05-14T09:12:41+02:60",
        ] {
            assert_eq!(instant(bad), None, "{bad}");
        }
    }

    #[test]
    fn fraction_past_nanoseconds_is_cut() {
        assert_eq!(
            instant("2024-05-14T09:12:41.1234567899Z"),
            Some((1_715_677_961, 123_456_789))
        );
        assert_eq!(
            instant("2024-05-14T11:12:41.000000001999+02:00"),
            Some((1_715_677_961, 1))
        );
    }

    #[test]
    fn errors_say_what_is_wrong_and_where() {
        let err = |s| Timestamp::parse_rfc3339(s).unwrap_err().to_string();
        assert_eq!(
            err("yesterday"),
            "\"yesterday\" is not an RFC 3339 time: expected a digit at byte 0"
        );
        assert_eq!(
            err("2024-05-14T09:12:41+0200"),
            "\"2024-05-14T09:12:41+0200\" is not an RFC 3339 time: expected 'Z' or an offset \
             +HH:MM / -HH:MM ending the text at byte 19"
        );
        assert!(
            err("2023-02-29T00:00:00Z").contains("'day'"),
            "{}",
            err("2023-02-29T00:00:00Z")
        );
        assert!(err("2024-05-14T23:59:60Z").contains("leap second"));
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

    // --- loader over files ---------------------------------------------------------------------

    fn bookinfo() -> Cluster {
        Cluster::load_paths(&[data("bookinfo")]).expect("bookinfo dump loads")
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
    fn bookinfo_decision(c: &Cluster, ip: &str, port: u16) -> (Mode, Level, String) {
        let p = c.pod_by_ip(ip.parse().unwrap()).expect("pod by ip");
        let d = c.effective(p, port);
        let who = format!(
            "{}/{}",
            d.decided_by.namespace.as_deref().unwrap_or("-"),
            d.decided_by.name.as_deref().unwrap_or("-")
        );
        (d.mode, d.decided_by.level, who)
    }

    #[test]
    fn bookinfo_dump_effective_modes() {
        let c = bookinfo();
        let ns = (Mode::Permissive, Level::Namespace, "bookinfo/default".to_owned());
        // details: no workload policy; namespace PERMISSIVE overrides mesh STRICT.
        assert_eq!(bookinfo_decision(&c, "10.244.0.12", 9080), ns);
        // productpage: workload UNSET, port 9080 STRICT; other ports inherit the namespace.
        assert_eq!(
            bookinfo_decision(&c, "10.99.0.1", 9080),
            (Mode::Strict, Level::Port, "bookinfo/productpage-ports".into())
        );
        assert_eq!(bookinfo_decision(&c, "10.99.0.1", 15090), ns);
        // reviews (both versions): workload STRICT on every port.
        let reviews = (Mode::Strict, Level::Workload, "bookinfo/reviews-strict".to_owned());
        assert_eq!(bookinfo_decision(&c, "10.99.0.2", 8080), reviews);
        assert_eq!(bookinfo_decision(&c, "10.244.0.14", 9080), reviews);
        // ratings: the UNSET port entry keeps the workload's STRICT.
        assert_eq!(
            bookinfo_decision(&c, "10.244.0.15", 9080),
            (Mode::Strict, Level::Workload, "bookinfo/ratings-strict".into())
        );
        // The ingress gateway: mesh STRICT; its selector policy in istio-system is ignored, and
        // so is the mesh policy that lost the tie on name.
        let gw = c.pod("istio-system", "istio-ingressgateway-6b7f8d9c5d-p9wxl").unwrap();
        let d = c.effective(gw, 8080);
        assert_eq!((d.mode, d.decided_by.level), (Mode::Strict, Level::Mesh));
        let ignored: Vec<_> = d.ignored.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(ignored, ["ingressgateway-permissive", "mesh-permissive"]);
    }

    #[test]
    fn bookinfo_dump_finished_pod_ip_reused() {
        let c = bookinfo();
        let ip = "10.244.0.14".parse().unwrap();
        assert_eq!(c.pods_by_ip(ip).len(), 2);
        assert_eq!(
            c.pod_by_ip(ip).map(|p| p.name.as_str()),
            Some("reviews-v2-6f8b7b6c8d-m4zqd")
        );
    }

    #[test]
    fn bookinfo_dump_named_target_port_and_cluster_ip() {
        let c = bookinfo();
        let svc = c.service_by_ip("10.96.112.40".parse().unwrap()).unwrap();
        assert_eq!(svc.name, "details");
        let pods = c.pods_for_service(svc);
        assert_eq!(pods.len(), 1);
        assert_eq!(c.target_port(pods[0], 80), Some(9080));
    }

    #[test]
    fn bookinfo_dump_explain_json() {
        let c = bookinfo();
        let p = c.find_pod("bookinfo", "productpage-v1-d5789fdfb-8l2rw").unwrap();
        let j = explain_json(p, 9080, &c.effective(p, 9080));
        assert_eq!(
            j,
            json!({
                "namespace": "bookinfo",
                "pod": "productpage-v1-d5789fdfb-8l2rw",
                "port": 9080,
                "mode": "STRICT",
                "decided_by": {
                    "kind": "PeerAuthentication",
                    "namespace": "bookinfo",
                    "name": "productpage-ports",
                    "level": "port"
                },
                "ignored": [{
                    "namespace": "istio-system",
                    "name": "mesh-permissive",
                    "reason": "another mesh-level policy applies: same creationTimestamp as \
                               istio-system/default (2024-05-14T09:02:33Z); Istio breaks the tie \
                               by name, then namespace, and uses only that one"
                }]
            })
        );
    }

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
        let (port, d) = c.effective_for_service_port(p, 443).unwrap();
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
    fn loads_invalid_policies_with_reasons() {
        let c = Cluster::load_paths(&[data("invalid")]).unwrap();
        assert_eq!(c.policies().len(), 1);
        let reasons: BTreeMap<_, _> = c
            .rejected()
            .iter()
            .map(|r| (r.name.clone().unwrap_or_default(), r.reason.clone()))
            .collect();
        assert_eq!(reasons.len(), 5);
        assert!(reasons["lowercase-mode"].contains("\"strict\" is not one of"));
        assert_eq!(reasons["ports-without-selector"], "portLevelMtls requires selector");
        assert!(reasons["port-zero"].contains("between 1-65535"));
        assert!(reasons["port-too-large"].contains("\"70000\""));
        assert!(reasons["wrong-version"].contains("security.istio.io/v1alpha1"));
        let r = &c.rejected()[0];
        let text = r.to_string();
        assert!(
            text.contains("invalid-policies.yaml: PeerAuthentication bookinfo/lowercase-mode"),
            "{text}"
        );
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

    #[test]
    fn yaml_that_is_not_objects_is_an_error() {
        let mut c = Cluster::new();
        let err = c.add_text(Path::new("x.yaml"), "a: 1\n---\n- 1\n- 2\n").unwrap_err();
        assert!(err.to_string().contains("x.yaml: document 2 is a sequence"), "{err}");
    }
}
