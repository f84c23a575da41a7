//! What a connection's verdict means under the mode Istio expects for its server port: a
//! violation, a warning or a note (DESIGN.md, "PeerAuthentication").

use super::types::Mode;
use serde::{Deserialize, Serialize};

/// What a connection's verdict means under the expected mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
