//! Judging connections against rules: which connections each rule selects, the judgement of
//! each ([`judge`](crate::check::judge)), and the counts per rule that every rendering of a
//! check shows.

use crate::check::judge::{judge, Demand, EvidenceLevel};
use crate::check::rules::{Cidr, Match, Pattern, Requirement, Rule};
use crate::pipeline::flows::Endpoint;
use crate::pipeline::input_error::{InputError, InputErrors};
use crate::pipeline::record::{FlowReport, Output, SCHEMA_VERSION};
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
    /// The connection's `id`, `community_id` and `file`, as `analyze -o json` reports them.
    pub id: u64,
    pub community_id: Option<String>,
    pub file: Option<String>,
    /// `{ip, port}`, as `analyze -o json` writes them.
    pub client: Endpoint,
    pub server: Endpoint,
    /// `namespace/pod` of each end, when a cluster dump names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_pod: Option<String>,
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
    /// The first [`MAX_LISTED`] violations, in the order of the connections.
    pub violations: Vec<Violation>,
    /// Violations past [`MAX_LISTED`]: counted, not listed.
    #[serde(skip_serializing_if = "is_zero")]
    pub violations_not_listed: usize,
    /// The connections the rule checked, for JUnit: (client, server, failure reason), in the
    /// order of the connections; the failing ones are those of `violations`, in their order.
    /// At most [`MAX_LISTED`] passing ones.
    #[serde(skip)]
    pub cases: Vec<(String, String, Option<String>)>,
    /// Passing connections past [`MAX_LISTED`], not in `cases`.
    #[serde(skip)]
    pub cases_not_listed: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// [`SCHEMA_VERSION`], as in `analyze -o json`.
    pub schema_version: u32,
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
    let (e, pod) = match client {
        true => (f.client, pod(f, true)),
        false => (f.server, pod(f, false)),
    };
    named(e, pod.as_deref())
}

/// `namespace/pod` of one end, when a cluster dump names it.
fn pod(f: &FlowReport, client: bool) -> Option<String> {
    let k = f.kubernetes.as_ref()?;
    match client {
        true => k.client_pod.clone(),
        false => k.server_pod.clone(),
    }
}

/// `namespace/pod:port` when the pod is known, else `ip:port`: how text, JUnit and annotations
/// name an end.
fn named(e: Endpoint, pod: Option<&str>) -> String {
    match pod {
        Some(p) => format!("{p}:{}", e.port),
        None => e.to_string(),
    }
}

impl Violation {
    /// The client as text, JUnit and annotations name it.
    pub fn client_name(&self) -> String {
        named(self.client, self.client_pod.as_deref())
    }
    /// The server as text, JUnit and annotations name it.
    pub fn server_name(&self) -> String {
        named(self.server, self.server_pod.as_deref())
    }
}

/// Most violations, and most passing connections for JUnit, a rule keeps; the others are
/// counted (`violations_not_listed`, and a JUnit testcase that says how many). The lowest flow
/// ids are kept, so a run under the cap lists exactly what it did before the cap existed.
pub const MAX_LISTED: usize = 1000;

/// Judge every connection against every rule that selects it.
pub fn evaluate(rules: &[Rule], flows: &[FlowReport], opts: &CheckOptions) -> CheckReport {
    let mut e = Evaluator::new(rules, opts);
    for f in flows {
        e.judge(f);
    }
    e.finish()
}

/// A check judged as the connections are reported: it keeps counts, at most [`MAX_LISTED`]
/// violations and passing cases per rule, and nothing else of a connection, so its memory does
/// not grow with the capture. An [`Output`] of the engine.
pub struct Evaluator<'a> {
    rules: Vec<Compiled<'a>>,
    opts: &'a CheckOptions,
    results: Vec<Judged>,
    connections: usize,
    /// Connections with data (for `--min-flows`).
    checked: usize,
}

/// One rule's result while it is being judged: its listed violations and passing cases with
/// their flow ids, trimmed to the lowest [`MAX_LISTED`] ids now and then.
struct Judged {
    result: RuleResult,
    failed: Vec<(u64, Violation)>,
    passed: Vec<(u64, (String, String))>,
}

/// Keep the `MAX_LISTED` lowest ids of `v` once it holds twice as many; returns how many
/// were dropped.
fn trim<T>(v: &mut Vec<(u64, T)>, at_end: bool) -> usize {
    if v.len() < 2 * MAX_LISTED && !(at_end && v.len() > MAX_LISTED) {
        return 0;
    }
    v.sort_unstable_by_key(|(id, _)| *id);
    let dropped = v.len().saturating_sub(MAX_LISTED);
    v.truncate(MAX_LISTED);
    dropped
}

impl<'a> Evaluator<'a> {
    pub fn new(rules: &'a [Rule], opts: &'a CheckOptions) -> Self {
        let results = rules
            .iter()
            .map(|rule| Judged {
                result: RuleResult {
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
                    violations_not_listed: 0,
                    cases: Vec::new(),
                    cases_not_listed: 0,
                },
                failed: Vec::new(),
                passed: Vec::new(),
            })
            .collect();
        Evaluator {
            rules: rules.iter().map(Compiled::new).collect(),
            opts,
            results,
            connections: 0,
            checked: 0,
        }
    }

    /// One connection, against every rule that selects it.
    pub fn judge(&mut self, f: &FlowReport) {
        self.connections += 1;
        if f.verdict.verdict != Kind::NoData {
            self.checked += 1;
        }
        for (compiled, j) in self.rules.iter().zip(&mut self.results) {
            if !compiled.selects(f) {
                continue;
            }
            let rule = compiled.rule;
            let r = &mut j.result;
            if f.loopback && !self.opts.include_loopback {
                r.loopback += 1;
                continue;
            }
            if f.verdict.verdict == Kind::NoData && rule.require != Requirement::Any {
                r.no_data += 1;
                continue;
            }
            r.matched += 1;
            let demand = Demand {
                require: rule.require,
                allow_uncertain: rule.allow_uncertain,
                evidence: self.opts.evidence,
                client_identity: rule
                    .client_identity
                    .as_deref()
                    .map(|g| (g, compiled.client_identity.as_ref().and_then(Option::as_ref))),
            };
            match judge(&demand, f) {
                Err(s) => {
                    j.failed.push((
                        f.id,
                        Violation {
                            id: f.id,
                            community_id: f.community_id.clone(),
                            file: f.file.clone(),
                            client: f.client,
                            server: f.server,
                            client_pod: pod(f, true),
                            server_pod: pod(f, false),
                            verdict: f.verdict.verdict,
                            confidence: f.verdict.confidence,
                            handshake: f.verdict.handshake,
                            failure: s.code(),
                            reason: s.to_string(),
                            evidence: f.verdict.evidence.clone(),
                        },
                    ));
                    r.violations_not_listed += trim(&mut j.failed, false);
                }
                Ok(()) => {
                    r.passed += 1;
                    match f.verdict.confidence {
                        Confidence::Certain => {}
                        Confidence::Inferred => r.passed_inferred += 1,
                        Confidence::Uncertain => r.passed_uncertain += 1,
                    }
                    j.passed.push((f.id, (endpoint(f, true), endpoint(f, false))));
                    r.cases_not_listed += trim(&mut j.passed, false);
                }
            }
        }
    }

    /// The report: each rule's listed violations and cases in the order of the connections.
    pub fn finish(self) -> CheckReport {
        let opts = self.opts;
        let mut results = Vec::new();
        for mut j in self.results {
            let r = &mut j.result;
            r.violations_not_listed += trim(&mut j.failed, true);
            r.cases_not_listed += trim(&mut j.passed, true);
            j.failed.sort_unstable_by_key(|(id, _)| *id);
            j.passed.sort_unstable_by_key(|(id, _)| *id);
            // The JUnit cases, failing and passing, in flow order; the failing ones are the
            // listed violations, in their order.
            let mut failed = j.failed.iter().peekable();
            let mut passed = j.passed.iter().peekable();
            loop {
                let take_failed = match (failed.peek(), passed.peek()) {
                    (Some((a, _)), Some((b, _))) => a < b,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (None, None) => break,
                };
                if take_failed {
                    let Some((_, v)) = failed.next() else { break };
                    r.cases.push((v.client_name(), v.server_name(), Some(v.reason.clone())));
                } else {
                    let Some((_, (c, s))) = passed.next() else { break };
                    r.cases.push((c.clone(), s.clone(), None));
                }
            }
            r.violations = j.failed.into_iter().map(|(_, v)| v).collect();
            r.status = if r.failed() > 0 {
                Status::Fail
            } else if r.matched == 0 {
                Status::Empty
            } else {
                Status::Pass
            };
            results.push(j.result);
        }
        let mut problems = Vec::new();
        if self.checked < opts.min_flows {
            problems.push(format!(
                "{} connections with data, --min-flows requires {}",
                self.checked, opts.min_flows
            ));
        }
        let ok = problems.is_empty()
            && results
                .iter()
                .all(|r| r.status == Status::Pass || (r.status == Status::Empty && opts.allow_empty));
        CheckReport {
            schema_version: SCHEMA_VERSION,
            ok,
            connections: self.connections,
            rules: results,
            problems,
            unread: Vec::new(),
        }
    }
}

/// The engine reports each connection once, when it closes: judged then, and let go.
impl Output for Evaluator<'_> {
    fn wants_closed(&self) -> bool {
        true
    }
    fn decided(&mut self, _report: &FlowReport) -> std::io::Result<()> {
        Ok(())
    }
    fn closed(&mut self, report: FlowReport) -> std::io::Result<()> {
        self.judge(&report);
        Ok(())
    }
}

impl RuleResult {
    /// Violations, listed or not.
    pub fn failed(&self) -> usize {
        self.violations.len() + self.violations_not_listed
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
            .map(|v| (v.client_name(), v.failure, v.handshake))
            .collect();
        let failures: Vec<_> = failures.iter().map(|(c, f, h)| (c.as_str(), *f, *h)).collect();
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

    /// Regression (issue 15): `check` kept every connection until the end (2.4 GB for a
    /// million). Past the cap only counts grow; the listed violations are the first ones, in
    /// the order of the connections, whatever order they were reported in.
    #[test]
    fn violations_past_the_cap_are_counted_not_listed() {
        let rules = [rule("tls", Requirement::Tls, false)];
        let o = opts();
        let mut e = Evaluator::new(&rules, &o);
        let n = 2 * MAX_LISTED as u64 + 500;
        for id in (1..=n).rev() {
            let kind = if id % 2 == 0 { Kind::Plaintext } else { Kind::Tls };
            e.judge(&flow(id, kind, Confidence::Certain, Handshake::Complete, "x"));
        }
        let r = e.finish();
        let rule = &r.rules[0];
        assert_eq!((rule.matched, rule.passed, rule.failed()), (n as usize, 1250, 1250));
        assert_eq!((rule.violations.len(), rule.violations_not_listed), (MAX_LISTED, 250));
        assert_eq!(rule.violations[0].client_name(), "10.0.0.1:40002");
        assert_eq!(rule.cases.len(), 2 * MAX_LISTED);
        assert_eq!(rule.cases_not_listed, 250);
        assert!(r.text(false).contains("1250 failed"), "{}", r.text(false));
        assert!(r.text(false).contains("and 250 more violations not listed"));
        let junit = quick_junit::Report::deserialize_from_str(&r.junit(false)).unwrap();
        assert_eq!((junit.tests, junit.failures), (2001, 1001));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["rules"][0]["violations_not_listed"], 250);
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
        let github = r.github(false, None);
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
