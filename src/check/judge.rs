//! Why one connection falls short of what a rule requires. `check` passes a connection only on
//! positive evidence (DESIGN.md, after the verdict table): a failed handshake never satisfies
//! `tls`, `mtls` or `encrypted`; an `uncertain` verdict satisfies none of them unless the rule
//! allows it; under `--evidence certain`, `tls` and `mtls` must be `certain`. A STRICT
//! PeerAuthentication (`require: policy`) is held to the same rules as `require: mtls`.
//!
//! The order of the tests is the order of the failure messages: a connection that fails
//! several of them is reported for the first (docs/ci.md, "When a connection passes").

use crate::check::rules::{Pattern, Requirement};
use crate::pipeline::record::FlowReport;
use crate::pipeline::verdict::{Confidence, Handshake, Kind};
use crate::policy::{Finding, Mode};
use std::fmt;

/// How much proof a verdict needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EvidenceLevel {
    /// Only what the wire shows in clear: `tls` and `mtls` verdicts inferred from TLS 1.3
    /// record lengths or from a linked resumption do not pass `tls`, `mtls` or a STRICT policy.
    Certain,
    /// Also verdicts inferred with confidence (TLS 1.3 record lengths, linked resumptions).
    #[default]
    Inferred,
}

/// What a connection has to prove to pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Mtls,
    Tls,
    Encrypted,
    /// The mTLS a STRICT PeerAuthentication expects on the server's port.
    StrictMtls,
}

impl Needs {
    fn met_by(self, k: Kind) -> bool {
        match self {
            Needs::Mtls | Needs::StrictMtls => k == Kind::Mtls,
            Needs::Tls => matches!(k, Kind::Mtls | Kind::Tls),
            Needs::Encrypted => matches!(k, Kind::Mtls | Kind::Tls | Kind::Encrypted),
        }
    }

    /// `--evidence certain` asks these for a `certain` verdict. `encrypted` asks only whether
    /// the bytes are TLS records, which the confidence of a verdict does not speak to: it says
    /// how sure the client-certificate part is.
    fn wants_certainty(self) -> bool {
        self != Needs::Encrypted
    }
}

impl fmt::Display for Needs {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Needs::Mtls => "requires mtls",
            Needs::Tls => "requires tls",
            Needs::Encrypted => "requires encryption",
            Needs::StrictMtls => "STRICT expects mtls",
        })
    }
}

/// Why a connection fails its rule. Its `Display` is the violation's reason, led by the
/// verdict's name where the verdict is what fell short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortfall {
    /// The handshake failed (a fatal alert, an encrypted alert in answer to the client's
    /// flight, a server that did not answer in TLS): nothing was protected. `why` is the
    /// evidence line that says so.
    HandshakeFailed {
        needs: Needs,
        verdict: Kind,
        why: Option<String>,
    },
    /// The verdict is not the one required. `uncertain` is the first evidence line when the
    /// verdict is uncertain as well.
    Verdict {
        needs: Needs,
        verdict: Kind,
        uncertain: Option<String>,
    },
    /// The verdict would do, but it is uncertain and the rule does not allow that. `reason` is
    /// the first evidence line.
    Uncertain {
        needs: Needs,
        verdict: Kind,
        reason: Option<String>,
    },
    /// `--evidence certain`, and the verdict is inferred (or uncertain: then `reason` is its
    /// first evidence line).
    NotCertain {
        verdict: Kind,
        confidence: Confidence,
        reason: Option<String>,
    },
    /// The PeerAuthentication finding is a violation.
    Policy {
        verdict: Kind,
        message: String,
    },
    IdentityMismatch {
        identity: String,
        glob: String,
    },
    /// `--evidence certain` and the client identity is not on the wire (TLS 1.3).
    IdentityHidden {
        glob: String,
    },
}

impl Shortfall {
    /// A stable name for the kind of failure, in the JSON report.
    pub fn code(&self) -> &'static str {
        match self {
            Shortfall::HandshakeFailed { .. } => "handshake-failed",
            Shortfall::Verdict { .. } => "verdict",
            Shortfall::Uncertain { .. } => "uncertain",
            Shortfall::NotCertain { .. } => "not-certain",
            Shortfall::Policy { .. } => "policy",
            Shortfall::IdentityMismatch { .. } => "identity-mismatch",
            Shortfall::IdentityHidden { .. } => "identity-hidden",
        }
    }
}

/// ` ("the evidence line")`, or nothing when the verdict carries no evidence.
struct Quoted<'a>(&'a Option<String>);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0 {
            Some(line) => write!(f, " (\"{line}\")"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Shortfall::HandshakeFailed { needs, verdict, why } => {
                write!(f, "{}: {needs}; the handshake failed{}", verdict.name(), Quoted(why))
            }
            Shortfall::Verdict {
                needs,
                verdict,
                uncertain,
            } => {
                write!(f, "{}: {needs}", verdict.name())?;
                if *verdict == Kind::Encrypted {
                    f.write_str("; the handshake is not in the capture")?;
                }
                if uncertain.is_some() {
                    write!(f, "; the verdict is uncertain{}", Quoted(uncertain))?;
                }
                Ok(())
            }
            Shortfall::Uncertain { needs, verdict, reason } => write!(
                f,
                "{}: {needs}; the verdict is uncertain{}; --allow-uncertain accepts it",
                verdict.name(),
                Quoted(reason)
            ),
            Shortfall::NotCertain {
                verdict,
                confidence: Confidence::Uncertain,
                reason,
            } => write!(
                f,
                "{} is uncertain{}; --evidence certain requires it in clear",
                verdict.name(),
                Quoted(reason)
            ),
            Shortfall::NotCertain {
                verdict, confidence, ..
            } => write!(
                f,
                "{} is only {}; --evidence certain requires it in clear",
                verdict.name(),
                confidence.name()
            ),
            Shortfall::Policy { verdict, message } => write!(f, "{}: {message}", verdict.name()),
            Shortfall::IdentityMismatch { identity, glob } => {
                write!(f, "client identity {identity} does not match {glob}")
            }
            Shortfall::IdentityHidden { glob } => write!(
                f,
                "client identity not visible; --evidence certain requires it to match {glob}"
            ),
        }
    }
}

/// What one rule asks of every connection it selects.
pub struct Demand<'a> {
    pub require: Requirement,
    /// An `uncertain` verdict may satisfy `require` (`--allow-uncertain`, `allow_uncertain: true`).
    pub allow_uncertain: bool,
    pub evidence: EvidenceLevel,
    /// The `client_identity` glob and its compiled form (`None`: it does not compile, and so
    /// matches nothing).
    pub client_identity: Option<(&'a str, Option<&'a Pattern>)>,
}

/// The evidence line that says why a handshake failed: the verdict stage words it with
/// "failed" or names the alert that ended it (it is not always the first line: a TLS 1.2
/// verdict first says what the client sent). Else the first line.
fn failure_line(evidence: &[String]) -> Option<String> {
    let says = |e: &&String| {
        let e = e.to_ascii_lowercase();
        e.contains("fail") || e.contains("alert")
    };
    evidence.iter().find(says).or(evidence.first()).cloned()
}

/// Whether `f` passes `d`, and if not, the first reason it does not.
pub fn judge(d: &Demand, f: &FlowReport) -> Result<(), Shortfall> {
    let v = &f.verdict;
    let needs = match d.require {
        Requirement::Any => None,
        Requirement::Mtls => Some(Needs::Mtls),
        Requirement::Tls => Some(Needs::Tls),
        Requirement::Encrypted => Some(Needs::Encrypted),
        Requirement::Policy => {
            let policy = f.kubernetes.as_ref().and_then(|k| k.policy.as_ref());
            let strict = policy.is_some_and(|p| p.expected_mode == Mode::Strict);
            // A failed handshake is said as such before the finding, which names the verdict
            // alone; the verdict name leads both.
            if strict && v.handshake == Handshake::Failed {
                return Err(Shortfall::HandshakeFailed {
                    needs: Needs::StrictMtls,
                    verdict: v.verdict,
                    why: failure_line(&v.evidence),
                });
            }
            // An uncertain verdict under STRICT is said as such: the finding would state as a
            // fact what the wire did not show ("TLS without a client certificate").
            let finding = policy
                .and_then(|p| p.finding.as_ref())
                .filter(|_| !(strict && v.confidence == Confidence::Uncertain));
            if let Some(Finding::Violation(message)) = finding {
                return Err(Shortfall::Policy {
                    verdict: v.verdict,
                    message: message.clone(),
                });
            }
            // PERMISSIVE and DISABLE accept anything (plaintext is a warning there); a server
            // that is no known pod expects nothing.
            strict.then_some(Needs::StrictMtls)
        }
    };
    if let Some(needs) = needs {
        if v.handshake == Handshake::Failed {
            return Err(Shortfall::HandshakeFailed {
                needs,
                verdict: v.verdict,
                why: failure_line(&v.evidence),
            });
        }
        let uncertain = v.confidence == Confidence::Uncertain;
        let first = || v.evidence.first().cloned();
        if !needs.met_by(v.verdict) {
            return Err(Shortfall::Verdict {
                needs,
                verdict: v.verdict,
                uncertain: if uncertain { first() } else { None },
            });
        }
        // Before the uncertain test: --allow-uncertain cannot lower what --evidence certain asks.
        if d.evidence == EvidenceLevel::Certain && needs.wants_certainty() && v.confidence != Confidence::Certain {
            return Err(Shortfall::NotCertain {
                verdict: v.verdict,
                confidence: v.confidence,
                reason: if uncertain { first() } else { None },
            });
        }
        if uncertain && !d.allow_uncertain {
            return Err(Shortfall::Uncertain {
                needs,
                verdict: v.verdict,
                reason: first(),
            });
        }
    }
    if let Some((glob, pattern)) = d.client_identity {
        match &v.client_identity {
            Some(id) if !pattern.is_some_and(|p| p.matches(id)) => {
                return Err(Shortfall::IdentityMismatch {
                    identity: id.clone(),
                    glob: glob.to_string(),
                })
            }
            None if d.evidence == EvidenceLevel::Certain && d.require != Requirement::Any => {
                return Err(Shortfall::IdentityHidden { glob: glob.to_string() })
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::enrich::{Kubernetes, PolicyReport};
    use crate::policy::{DecidedBy, Level};

    const KINDS: [Kind; 4] = [Kind::Mtls, Kind::Tls, Kind::Encrypted, Kind::Plaintext];
    const CONFIDENCES: [Confidence; 3] = [Confidence::Certain, Confidence::Inferred, Confidence::Uncertain];

    /// A connection with this verdict; its first evidence line names it, its second says how a
    /// handshake ended.
    fn flow(kind: Kind, confidence: Confidence, handshake: Handshake) -> FlowReport {
        let mut f = crate::report::json::tests::sample_report(1);
        f.verdict.verdict = kind;
        f.verdict.confidence = confidence;
        f.verdict.handshake = handshake;
        f.verdict.evidence = vec![
            format!("{} {}", kind.name(), confidence.name()),
            "handshake failed: server alert handshake_failure".into(),
        ];
        f
    }

    /// The same connection to a pod whose port has this PeerAuthentication mode, with the
    /// finding Istio's rules give its verdict.
    fn under(mode: Mode, mut f: FlowReport) -> FlowReport {
        f.kubernetes = Some(Kubernetes {
            client_pod: None,
            server_pod: Some("bookinfo/reviews-v1".into()),
            policy: Some(PolicyReport {
                expected_mode: mode,
                decided_by: DecidedBy {
                    kind: "PeerAuthentication",
                    namespace: Some("bookinfo".into()),
                    name: Some("strict".into()),
                    level: Level::Namespace,
                },
                finding: crate::policy::finding(mode, f.verdict.verdict.name()),
                not_enforced: false,
            }),
        });
        f
    }

    fn demand(require: Requirement, evidence: EvidenceLevel, allow_uncertain: bool) -> Demand<'static> {
        Demand {
            require,
            allow_uncertain,
            evidence,
            client_identity: None,
        }
    }

    /// One letter per outcome: Pass, wrong Verdict, Handshake failed, Uncertain, not Certain
    /// enough, Policy finding.
    fn letter(r: &Result<(), Shortfall>) -> char {
        match r {
            Ok(()) => 'P',
            Err(Shortfall::Verdict { .. }) => 'V',
            Err(Shortfall::HandshakeFailed { .. }) => 'H',
            Err(Shortfall::Uncertain { .. }) => 'U',
            Err(Shortfall::NotCertain { .. }) => 'C',
            Err(Shortfall::Policy { .. }) => 'F',
            Err(other) => panic!("no identity rule here: {other:?}"),
        }
    }

    /// The outcomes of a row: for each verdict of KINDS, each confidence of CONFIDENCES.
    fn row(require: &str, evidence: EvidenceLevel, allow_uncertain: bool, handshake: Handshake) -> String {
        let mut s = String::new();
        for kind in KINDS {
            s.push(' ');
            for confidence in CONFIDENCES {
                let f = flow(kind, confidence, handshake);
                let r = match require {
                    "strict" => judge(
                        &demand(Requirement::Policy, evidence, allow_uncertain),
                        &under(Mode::Strict, f),
                    ),
                    _ => {
                        let req = serde_json::from_value(serde_json::Value::from(require)).unwrap();
                        judge(&demand(req, evidence, allow_uncertain), &f)
                    }
                };
                s.push(letter(&r));
            }
        }
        s
    }

    /// Every handshake state but `failed` gives the same outcomes.
    const NOT_FAILED: [Handshake; 4] = [
        Handshake::Complete,
        Handshake::Incomplete,
        Handshake::NotSeen,
        Handshake::None,
    ];

    /// The matrix of docs/ci.md, "When a connection passes", cell by cell. Columns: verdict
    /// mtls, tls, encrypted, plaintext; within each, confidence certain, inferred, uncertain.
    fn assert_matrix(evidence: EvidenceLevel, allow_uncertain: bool, expected: [(&str, &str); 4]) {
        for handshake in NOT_FAILED {
            for (require, cells) in expected {
                assert_eq!(
                    row(require, evidence, allow_uncertain, handshake),
                    cells,
                    "require {require}, handshake {handshake:?}, evidence {evidence:?}, allow_uncertain {allow_uncertain}"
                );
            }
        }
    }

    #[test]
    fn matrix_default() {
        assert_matrix(
            EvidenceLevel::Inferred,
            false,
            [
                //          mtls tls  enc  plain
                ("mtls", " PPU VVV VVV VVV"),
                ("tls", " PPU PPU VVV VVV"),
                ("encrypted", " PPU PPU PPU VVV"),
                ("strict", " PPU FFV VVV FFV"),
            ],
        );
    }

    #[test]
    fn matrix_evidence_certain() {
        assert_matrix(
            EvidenceLevel::Certain,
            false,
            [
                ("mtls", " PCC VVV VVV VVV"),
                ("tls", " PCC PCC VVV VVV"),
                ("encrypted", " PPU PPU PPU VVV"),
                ("strict", " PCC FFV VVV FFV"),
            ],
        );
    }

    #[test]
    fn matrix_allow_uncertain() {
        assert_matrix(
            EvidenceLevel::Inferred,
            true,
            [
                ("mtls", " PPP VVV VVV VVV"),
                ("tls", " PPP PPP VVV VVV"),
                ("encrypted", " PPP PPP PPP VVV"),
                ("strict", " PPP FFV VVV FFV"),
            ],
        );
    }

    /// --allow-uncertain does not lower what --evidence certain asks of tls and mtls.
    #[test]
    fn matrix_evidence_certain_and_allow_uncertain() {
        assert_matrix(
            EvidenceLevel::Certain,
            true,
            [
                ("mtls", " PCC VVV VVV VVV"),
                ("tls", " PCC PCC VVV VVV"),
                ("encrypted", " PPP PPP PPP VVV"),
                ("strict", " PCC FFV VVV FFV"),
            ],
        );
    }

    /// A failed handshake fails every level, whatever the verdict and the options.
    #[test]
    fn matrix_failed_handshake() {
        for evidence in [EvidenceLevel::Inferred, EvidenceLevel::Certain] {
            for allow in [false, true] {
                for require in ["mtls", "tls", "encrypted", "strict"] {
                    assert_eq!(
                        row(require, evidence, allow, Handshake::Failed),
                        " HHH HHH HHH HHH",
                        "{require} {evidence:?} {allow}"
                    );
                }
            }
        }
    }

    /// `any`, PERMISSIVE and DISABLE accept every verdict, failed handshakes included; so does
    /// `require: policy` for a server that is not a known pod.
    #[test]
    fn levels_that_ask_nothing_pass_everything() {
        for kind in KINDS {
            for confidence in CONFIDENCES {
                for handshake in [Handshake::Complete, Handshake::Failed] {
                    let f = flow(kind, confidence, handshake);
                    for evidence in [EvidenceLevel::Inferred, EvidenceLevel::Certain] {
                        let any = demand(Requirement::Any, evidence, false);
                        let policy = demand(Requirement::Policy, evidence, false);
                        assert_eq!(judge(&any, &f), Ok(()));
                        assert_eq!(judge(&policy, &f), Ok(()));
                        assert_eq!(judge(&policy, &under(Mode::Disable, f.clone())), Ok(()));
                        if kind != Kind::Plaintext {
                            assert_eq!(judge(&policy, &under(Mode::Permissive, f.clone())), Ok(()));
                        }
                    }
                }
            }
        }
        // PERMISSIVE + plaintext is a warning, and a warning passes.
        let f = under(
            Mode::Permissive,
            flow(Kind::Plaintext, Confidence::Certain, Handshake::None),
        );
        assert!(matches!(
            f.kubernetes.as_ref().unwrap().policy.as_ref().unwrap().finding,
            Some(Finding::Warning(_))
        ));
        assert_eq!(
            judge(&demand(Requirement::Policy, EvidenceLevel::Inferred, false), &f),
            Ok(())
        );
    }

    fn reason(require: Requirement, evidence: EvidenceLevel, f: &FlowReport) -> String {
        judge(&demand(require, evidence, false), f).unwrap_err().to_string()
    }

    #[test]
    fn uncertain_says_so_and_quotes_the_first_evidence_line() {
        let f = flow(Kind::Tls, Confidence::Uncertain, Handshake::Incomplete);
        let inferred = EvidenceLevel::Inferred;
        assert_eq!(
            reason(Requirement::Tls, inferred, &f),
            "tls: requires tls; the verdict is uncertain (\"tls uncertain\"); --allow-uncertain accepts it"
        );
        assert_eq!(
            reason(Requirement::Encrypted, inferred, &f),
            "tls: requires encryption; the verdict is uncertain (\"tls uncertain\"); --allow-uncertain accepts it"
        );
        // --allow-uncertain would not make tls mtls: no hint.
        assert_eq!(
            reason(Requirement::Mtls, inferred, &f),
            "tls: requires mtls; the verdict is uncertain (\"tls uncertain\")"
        );
        assert_eq!(
            reason(Requirement::Tls, EvidenceLevel::Certain, &f),
            "tls is uncertain (\"tls uncertain\"); --evidence certain requires it in clear"
        );
        assert_eq!(
            reason(Requirement::Policy, inferred, &under(Mode::Strict, f.clone())),
            "tls: STRICT expects mtls; the verdict is uncertain (\"tls uncertain\")"
        );
        let m = flow(Kind::Mtls, Confidence::Uncertain, Handshake::Complete);
        assert_eq!(
            reason(Requirement::Policy, inferred, &under(Mode::Strict, m)),
            "mtls: STRICT expects mtls; the verdict is uncertain (\"mtls uncertain\"); --allow-uncertain accepts it"
        );
        // A verdict without evidence is still refused, without a quote.
        let mut bare = flow(Kind::Tls, Confidence::Uncertain, Handshake::Complete);
        bare.verdict.evidence.clear();
        assert_eq!(
            reason(Requirement::Tls, inferred, &bare),
            "tls: requires tls; the verdict is uncertain; --allow-uncertain accepts it"
        );
    }

    #[test]
    fn failed_handshake_says_so_and_why() {
        let inferred = EvidenceLevel::Inferred;
        // The line that says it failed, not the first one.
        let f = flow(Kind::Mtls, Confidence::Certain, Handshake::Failed);
        let why = "; the handshake failed (\"handshake failed: server alert handshake_failure\")";
        assert_eq!(
            reason(Requirement::Mtls, inferred, &f),
            format!("mtls: requires mtls{why}")
        );
        assert_eq!(
            reason(Requirement::Tls, inferred, &f),
            format!("mtls: requires tls{why}")
        );
        assert_eq!(
            reason(Requirement::Encrypted, inferred, &f),
            format!("mtls: requires encryption{why}")
        );
        assert_eq!(
            reason(Requirement::Policy, inferred, &under(Mode::Strict, f.clone())),
            format!("mtls: STRICT expects mtls{why}")
        );
        // Before the policy finding, which would only say "plaintext".
        let p = flow(Kind::Plaintext, Confidence::Certain, Handshake::Failed);
        assert_eq!(
            reason(Requirement::Policy, inferred, &under(Mode::Strict, p)),
            "plaintext: STRICT expects mtls; the handshake failed (\"handshake failed: server alert handshake_failure\")"
        );
        // An encrypted alert, as TLS 1.3 ends a handshake.
        let mut t13 = flow(Kind::Tls, Confidence::Inferred, Handshake::Failed);
        t13.verdict.evidence = vec![
            "TLS 1.3: client's first encrypted record after ServerHello is 25 bytes (8 inner)".into(),
            "server flight of 5 records (6+82+1679+264+52) includes a CertificateRequest".into(),
            "server answered the client's flight with an encrypted alert".into(),
        ];
        assert_eq!(
            reason(Requirement::Tls, inferred, &t13),
            "tls: requires tls; the handshake failed (\"server answered the client's flight with an encrypted alert\")"
        );
        // Nothing says why: the first line.
        t13.verdict.evidence.truncate(1);
        assert_eq!(
            reason(Requirement::Tls, inferred, &t13),
            "tls: requires tls; the handshake failed (\"TLS 1.3: client's first encrypted record after ServerHello is 25 bytes (8 inner)\")"
        );
        t13.verdict.evidence.clear();
        assert_eq!(
            reason(Requirement::Tls, inferred, &t13),
            "tls: requires tls; the handshake failed"
        );
    }

    #[test]
    fn other_reasons() {
        let inferred = EvidenceLevel::Inferred;
        let certain = EvidenceLevel::Certain;
        let mid = flow(Kind::Encrypted, Confidence::Inferred, Handshake::NotSeen);
        assert_eq!(
            reason(Requirement::Mtls, inferred, &mid),
            "encrypted: requires mtls; the handshake is not in the capture"
        );
        assert_eq!(
            reason(Requirement::Policy, inferred, &under(Mode::Strict, mid)),
            "encrypted: STRICT expects mtls; the handshake is not in the capture"
        );
        let plain = flow(Kind::Plaintext, Confidence::Certain, Handshake::None);
        assert_eq!(reason(Requirement::Tls, inferred, &plain), "plaintext: requires tls");
        assert_eq!(
            reason(Requirement::Encrypted, inferred, &plain),
            "plaintext: requires encryption"
        );
        assert_eq!(
            reason(Requirement::Policy, inferred, &under(Mode::Strict, plain)),
            "plaintext: plaintext connection to a port whose PeerAuthentication mode is STRICT"
        );
        let t13 = flow(Kind::Tls, Confidence::Inferred, Handshake::Complete);
        assert_eq!(
            reason(Requirement::Tls, certain, &t13),
            "tls is only inferred; --evidence certain requires it in clear"
        );
        assert_eq!(reason(Requirement::Mtls, certain, &t13), "tls: requires mtls");
    }

    #[test]
    fn client_identity_after_the_verdict() {
        let pattern = Pattern::new("spiffe://cluster.local/ns/bookinfo/sa/*").unwrap();
        let d = |require, evidence| Demand {
            require,
            allow_uncertain: false,
            evidence,
            client_identity: Some(("spiffe://cluster.local/ns/bookinfo/sa/*", Some(&pattern))),
        };
        let mut f = flow(Kind::Mtls, Confidence::Certain, Handshake::Complete);
        f.verdict.client_identity = Some("spiffe://cluster.local/ns/other/sa/x".into());
        let e = judge(&d(Requirement::Mtls, EvidenceLevel::Inferred), &f).unwrap_err();
        assert_eq!(e.code(), "identity-mismatch");
        assert_eq!(
            e.to_string(),
            "client identity spiffe://cluster.local/ns/other/sa/x does not match spiffe://cluster.local/ns/bookinfo/sa/*"
        );
        f.verdict.client_identity = Some("spiffe://cluster.local/ns/bookinfo/sa/reviews".into());
        assert_eq!(judge(&d(Requirement::Mtls, EvidenceLevel::Certain), &f), Ok(()));
        // Hidden (TLS 1.3): the verdict alone decides, unless --evidence certain.
        let mut t13 = flow(Kind::Mtls, Confidence::Inferred, Handshake::Complete);
        t13.verdict.client_identity = None;
        assert_eq!(judge(&d(Requirement::Mtls, EvidenceLevel::Inferred), &t13), Ok(()));
        assert_eq!(judge(&d(Requirement::Any, EvidenceLevel::Certain), &t13), Ok(()));
        let e = judge(&d(Requirement::Encrypted, EvidenceLevel::Certain), &t13).unwrap_err();
        assert_eq!(e.code(), "identity-hidden");
        // The verdict is judged first.
        let u = flow(Kind::Mtls, Confidence::Uncertain, Handshake::Complete);
        assert_eq!(
            judge(&d(Requirement::Mtls, EvidenceLevel::Inferred), &u)
                .unwrap_err()
                .code(),
            "uncertain"
        );
    }
}
