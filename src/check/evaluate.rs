//! Judging connections against rules: which connections each rule selects, the judgement of
//! each ([`judge`](crate::check::judge)), and the counts per rule that every rendering of a
//! check shows.

use crate::check::judge::{judge, Demand, EvidenceLevel};
use crate::check::rules::{Cidr, Match, Pattern, Requirement, Rule};
use crate::pipeline::input_error::{InputError, InputErrors};
use crate::pipeline::record::FlowReport;
use crate::pipeline::verdict::{Confidence, Handshake, Kind};
use serde::Serialize;
use std::net::IpAddr;

pub struct CheckOptions {
    pub evidence: EvidenceLevel,
    pub allow_empty: bool,
    pub min_flows: usize,
    /// Judge loopback connections too (the app <-> sidecar leg inside a pod).
    pub include_loopback: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub client: String,
    pub server: String,
    pub verdict: Kind,
    pub confidence: Confidence,
    pub handshake: Handshake,
    /// What fell short, as a stable name: `verdict`, `handshake-failed`, `uncertain`,
    /// `not-certain`, `policy`, `identity-mismatch` or `identity-hidden`.
    pub failure: &'static str,
    pub reason: String,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Nothing matched the rule (a failure unless empty rules are allowed).
    Empty,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleResult {
    pub name: String,
    pub require: Requirement,
    #[serde(rename = "match")]
    pub selector: Match,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_identity: Option<String>,
    /// Uncertain verdicts may pass (`--allow-uncertain`, or `allow_uncertain: true`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_uncertain: bool,
    pub status: Status,
    pub matched: usize,
    pub passed: usize,
    /// Passing connections whose verdict was inferred (TLS 1.3, resumptions), said so openly.
    pub passed_inferred: usize,
    /// Passing connections whose verdict was uncertain (allowed by the rule, or `require: any`).
    pub passed_uncertain: usize,
    /// Connections that carried no data: nothing to judge, not counted as matched.
    pub no_data: usize,
    /// Loopback connections left out (see `--include-loopback`).
    pub loopback: usize,
    pub violations: Vec<Violation>,
    /// Every connection the rule checked, for JUnit: (client, server, failure reason). The
    /// failing ones are in the order of `violations`.
    #[serde(skip)]
    pub cases: Vec<(String, String, Option<String>)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub connections: usize,
    pub rules: Vec<RuleResult>,
    /// Run-level problems: inputs not read completely (each message names the file and the
    /// byte offset), then `--min-flows` not reached.
    pub problems: Vec<String>,
    /// The inputs of `problems` that could not be read completely, for JUnit's error
    /// testcases: (what was read: the file, or the interface of a live capture; the offset).
    #[serde(skip)]
    pub unread: Vec<(String, Option<u64>)>,
}

impl CheckReport {
    /// An input that could not be read completely fails the check in every rendering, whatever
    /// the rules said: what was not read was not checked.
    pub fn add_input_errors(&mut self, errors: &InputErrors) {
        for (i, e) in errors.iter().enumerate() {
            let what = match e {
                InputError::Capture { interface, .. } => format!("capture on {interface}"),
                e => e.file().unwrap_or("input").to_string(),
            };
            self.problems.insert(i, e.to_string());
            self.unread.push((what, e.offset()));
        }
        if !errors.is_empty() {
            self.ok = false;
        }
    }
}

/// A rule with its networks and globs parsed once for all connections. [`parse_rules`]
/// refuses values that do not parse; in a rule built in code, such a value matches nothing.
///
/// [`parse_rules`]: crate::check::rules::parse_rules
struct Compiled<'a> {
    rule: &'a Rule,
    /// `None`: not given, any address; `Some`: the address must fall in one of these.
    cidrs: Option<Vec<Cidr>>,
    server_cidrs: Option<Vec<Cidr>>,
    client_cidrs: Option<Vec<Cidr>>,
    /// `Some(None)`: given but not a glob.
    sni: Option<Option<Pattern>>,
    client_identity: Option<Option<Pattern>>,
}

impl<'a> Compiled<'a> {
    fn new(rule: &'a Rule) -> Self {
        let nets = |n: &[String]| (!n.is_empty()).then(|| n.iter().filter_map(|c| Cidr::parse(c).ok()).collect());
        let glob = |g: &Option<String>| g.as_deref().map(|g| Pattern::new(g).ok());
        let m = &rule.selector;
        Compiled {
            rule,
            cidrs: nets(&m.cidrs),
            server_cidrs: nets(&m.server_cidrs),
            client_cidrs: nets(&m.client_cidrs),
            sni: glob(&m.sni),
            client_identity: glob(&rule.client_identity),
        }
    }

    fn selects(&self, f: &FlowReport) -> bool {
        let any = |nets: &Option<Vec<Cidr>>, ips: &[IpAddr]| {
            nets.as_ref()
                .is_none_or(|nets| nets.iter().any(|n| ips.iter().any(|&ip| n.contains(ip))))
        };
        let ports = &self.rule.selector.ports;
        (ports.is_empty() || ports.contains(&f.server.port))
            && any(&self.cidrs, &[f.client.ip, f.server.ip])
            && any(&self.server_cidrs, &[f.server.ip])
            && any(&self.client_cidrs, &[f.client.ip])
            && self.sni.as_ref().is_none_or(|g| {
                let sni = f.verdict.tls.as_ref().and_then(|t| t.sni.as_deref());
                sni.is_some_and(|sni| g.as_ref().is_some_and(|g| g.matches(sni)))
            })
    }
}

/// `ip:port`, or `namespace/pod:port` when a cluster dump names the pod.
fn endpoint(f: &FlowReport, client: bool) -> String {
    let (e, pod) = match (client, &f.kubernetes) {
        (true, k) => (f.client, k.as_ref().and_then(|k| k.client_pod.as_ref())),
        (false, k) => (f.server, k.as_ref().and_then(|k| k.server_pod.as_ref())),
    };
    match pod {
        Some(p) => format!("{p}:{}", e.port),
        None => e.to_string(),
    }
}

/// Judge every connection against every rule that selects it.
pub fn evaluate(rules: &[Rule], flows: &[FlowReport], opts: &CheckOptions) -> CheckReport {
    let mut results = Vec::new();
    for rule in rules {
        let compiled = Compiled::new(rule);
        let demand = Demand {
            require: rule.require,
            allow_uncertain: rule.allow_uncertain,
            evidence: opts.evidence,
            client_identity: rule
                .client_identity
                .as_deref()
                .map(|g| (g, compiled.client_identity.as_ref().and_then(Option::as_ref))),
        };
        let mut r = RuleResult {
            name: rule.name.clone(),
            require: rule.require,
            selector: rule.selector.clone(),
            client_identity: rule.client_identity.clone(),
            allow_uncertain: rule.allow_uncertain,
            status: Status::Pass,
            matched: 0,
            passed: 0,
            passed_inferred: 0,
            passed_uncertain: 0,
            no_data: 0,
            loopback: 0,
            violations: Vec::new(),
            cases: Vec::new(),
        };
        for f in flows.iter().filter(|f| compiled.selects(f)) {
            if f.loopback && !opts.include_loopback {
                r.loopback += 1;
                continue;
            }
            if f.verdict.verdict == Kind::NoData && rule.require != Requirement::Any {
                r.no_data += 1;
                continue;
            }
            r.matched += 1;
            let judged = judge(&demand, f).map_err(|s| (s.code(), s.to_string()));
            let reason = judged.as_ref().err().map(|(_, reason)| reason.clone());
            r.cases.push((endpoint(f, true), endpoint(f, false), reason));
            match judged {
                Err((failure, reason)) => r.violations.push(Violation {
                    client: endpoint(f, true),
                    server: endpoint(f, false),
                    verdict: f.verdict.verdict,
                    confidence: f.verdict.confidence,
                    handshake: f.verdict.handshake,
                    failure,
                    reason,
                    evidence: f.verdict.evidence.clone(),
                }),
                Ok(()) => {
                    r.passed += 1;
                    match f.verdict.confidence {
                        Confidence::Certain => {}
                        Confidence::Inferred => r.passed_inferred += 1,
                        Confidence::Uncertain => r.passed_uncertain += 1,
                    }
                }
            }
        }
        r.status = if !r.violations.is_empty() {
            Status::Fail
        } else if r.matched == 0 {
            Status::Empty
        } else {
            Status::Pass
        };
        results.push(r);
    }
    let mut problems = Vec::new();
    let checked = flows.iter().filter(|f| f.verdict.verdict != Kind::NoData).count();
    if checked < opts.min_flows {
        problems.push(format!(
            "{checked} connections with data, --min-flows requires {}",
            opts.min_flows
        ));
    }
    let ok = problems.is_empty()
        && results
            .iter()
            .all(|r| r.status == Status::Pass || (r.status == Status::Empty && opts.allow_empty));
    CheckReport {
        ok,
        connections: flows.len(),
        rules: results,
        problems,
        unread: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::verdict::Handshake;

    fn flow(id: u64, kind: Kind, confidence: Confidence, handshake: Handshake, evidence: &str) -> FlowReport {
        let mut f = crate::report::json::tests::sample_report(id);
        f.client.port = 40000 + id as u16;
        f.verdict.verdict = kind;
        f.verdict.confidence = confidence;
        f.verdict.handshake = handshake;
        f.verdict.evidence = vec![evidence.to_string()];
        f
    }

    fn rule(name: &str, require: Requirement, allow_uncertain: bool) -> Rule {
        Rule {
            name: name.into(),
            selector: Match::default(),
            require,
            client_identity: None,
            allow_uncertain,
        }
    }

    fn opts() -> CheckOptions {
        CheckOptions {
            evidence: EvidenceLevel::Inferred,
            allow_empty: false,
            min_flows: 0,
            include_loopback: false,
        }
    }

    /// A certain, an inferred, an uncertain and a failed connection.
    fn flows() -> Vec<FlowReport> {
        vec![
            flow(
                1,
                Kind::Tls,
                Confidence::Certain,
                Handshake::Complete,
                "no client certificate requested",
            ),
            flow(
                2,
                Kind::Tls,
                Confidence::Inferred,
                Handshake::Complete,
                "TLS 1.3: Finished alone",
            ),
            flow(
                3,
                Kind::Tls,
                Confidence::Uncertain,
                Handshake::Incomplete,
                "ClientHello seen, no ServerHello in the capture",
            ),
            flow(
                4,
                Kind::Tls,
                Confidence::Certain,
                Handshake::Failed,
                "handshake failed: server alert bad_certificate",
            ),
        ]
    }

    #[test]
    fn uncertain_fails_unless_the_rule_allows_it_and_is_counted_apart() {
        let rules = [
            rule("strict", Requirement::Tls, false),
            rule("relaxed", Requirement::Tls, true),
        ];
        let r = evaluate(&rules, &flows(), &opts());
        assert!(!r.ok);
        let [strict, relaxed] = &r.rules[..] else { panic!() };
        assert_eq!((strict.matched, strict.passed, strict.violations.len()), (4, 2, 2));
        assert_eq!((strict.passed_inferred, strict.passed_uncertain), (1, 0));
        let failures: Vec<_> = strict
            .violations
            .iter()
            .map(|v| (v.client.as_str(), v.failure, v.handshake))
            .collect();
        assert_eq!(
            failures,
            [
                ("10.0.0.1:40003", "uncertain", Handshake::Incomplete),
                ("10.0.0.1:40004", "handshake-failed", Handshake::Failed)
            ]
        );
        // Allowed: the uncertain one passes, said so; the failed handshake still fails.
        assert_eq!(
            (relaxed.passed, relaxed.passed_inferred, relaxed.passed_uncertain),
            (3, 1, 1)
        );
        assert_eq!(relaxed.violations.len(), 1);
        assert_eq!(relaxed.violations[0].failure, "handshake-failed");
        let text = r.text(false);
        assert!(
            text.contains("rule 'relaxed' (require tls): 4 matched, 3 passed, 1 failed (1 passed on inferred verdicts) (1 passed on uncertain verdicts, allowed): FAILED"),
            "{text}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["rules"][1]["allow_uncertain"], true);
        assert!(json["rules"][0].get("allow_uncertain").is_none());
        assert_eq!(json["rules"][1]["passed_uncertain"], 1);
        assert_eq!(json["rules"][0]["violations"][0]["failure"], "uncertain");
        assert_eq!(json["rules"][0]["violations"][1]["handshake"], "failed");
    }

    /// Text, JSON, JUnit and GitHub annotations carry the same failures, each with its reason.
    #[test]
    fn every_rendering_carries_the_same_failures() {
        let rules = [
            rule("tls", Requirement::Tls, false),
            rule("encrypted", Requirement::Encrypted, false),
        ];
        let r = evaluate(&rules, &flows(), &opts());
        let reasons: Vec<&str> = r
            .rules
            .iter()
            .flat_map(|r| &r.violations)
            .map(|v| v.reason.as_str())
            .collect();
        assert_eq!(
            reasons,
            [
                "tls: requires tls; the verdict is uncertain (\"ClientHello seen, no ServerHello in the capture\"); --allow-uncertain accepts it",
                "tls: requires tls; the handshake failed (\"handshake failed: server alert bad_certificate\")",
                "tls: requires encryption; the verdict is uncertain (\"ClientHello seen, no ServerHello in the capture\"); --allow-uncertain accepts it",
                "tls: requires encryption; the handshake failed (\"handshake failed: server alert bad_certificate\")",
            ]
        );
        let text = r.text(false);
        let fails: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL [")).collect();
        assert_eq!(fails.len(), 4, "{text}");
        // The uncertain reason already quotes the evidence: no second `evidence:` line for it.
        assert_eq!(text.matches("evidence: ClientHello seen").count(), 0, "{text}");
        let json = serde_json::to_value(&r).unwrap();
        let github = r.github(false);
        assert_eq!(github.lines().count(), 4, "{github}");
        let junit = quick_junit::Report::deserialize_from_str(&r.junit(false)).unwrap();
        assert_eq!((junit.tests, junit.failures), (8, 4));
        let messages: Vec<String> = junit
            .test_suites
            .iter()
            .flat_map(|s| &s.test_cases)
            .filter_map(|c| match &c.status {
                quick_junit::TestCaseStatus::NonSuccess { message, .. } => message.as_ref().map(|m| m.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(messages, reasons);
        for (i, reason) in reasons.iter().enumerate() {
            let rule = &json["rules"][i / 2];
            assert_eq!(rule["violations"][i % 2]["reason"], *reason);
            assert_eq!(rule["status"], "fail");
            let tail = reason.trim_start_matches("tls: ");
            assert_eq!(text.matches(tail).count(), 1, "{tail}\n{text}");
            // GitHub's workflow commands escape only %, CR and LF in the message.
            assert_eq!(github.matches(*reason).count(), 1, "{reason}\n{github}");
        }
    }
}
