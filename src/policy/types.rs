//! The vocabulary of a decision: the PeerAuthentication modes, the level that set one, the policy
//! that decided and the ones passed over. A leaf: every other file of the engine speaks it.

use serde::{Deserialize, Serialize};
use std::fmt;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
    /// No policy set a mode: Istio's built-in PERMISSIVE.
    pub(super) fn default_mode() -> DecidedBy {
        DecidedBy {
            kind: "default",
            namespace: None,
            name: None,
            level: Level::Default,
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

/// [`Decision`] for a Service port, with the pod's port it was translated to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortDecision {
    /// The pod's (container's) port the Service port maps to: the one policies are keyed by.
    pub port: u16,
    pub decision: Decision,
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
