//! Judging connections against rules: which connections each rule selects, why one falls short
//! of what the rule requires, and the counts per rule that every rendering of a check shows.

use crate::check::rules::{Cidr, Match, Pattern, Requirement, Rule};
use crate::pipeline::record::FlowReport;
use crate::pipeline::verdict::{Confidence, Kind};
use serde::Serialize;
use std::net::IpAddr;

/// How much proof a verdict needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EvidenceLevel {
    /// Only what the wire shows in clear (TLS 1.3 client certificates cannot pass `mtls`).
    Certain,
    /// Also verdicts inferred with confidence (TLS 1.3 record lengths, linked resumptions).
    #[default]
    Inferred,
}

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
    pub status: Status,
    pub matched: usize,
    pub passed: usize,
    /// Passing connections whose verdict was inferred (TLS 1.3, resumptions), said so openly.
    pub passed_inferred: usize,
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
    /// Run-level problems (`--min-flows` not reached).
    pub problems: Vec<String>,
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

/// Why a connection fails its rule, or None when it passes.
fn judge(c: &Compiled, f: &FlowReport, level: EvidenceLevel) -> Option<String> {
    let rule = c.rule;
    let v = &f.verdict;
    let name = v.verdict.name();
    if rule.require == Requirement::Policy {
        use crate::policy::Finding;
        let policy = f.kubernetes.as_ref().and_then(|k| k.policy.as_ref());
        return match policy.and_then(|p| p.finding.as_ref()) {
            Some(Finding::Violation(msg)) => Some(format!("{name}: {msg}")),
            _ => None,
        };
    }
    let met = match rule.require {
        Requirement::Any | Requirement::Policy => true,
        Requirement::Encrypted => matches!(v.verdict, Kind::Mtls | Kind::Tls | Kind::Encrypted),
        Requirement::Tls => matches!(v.verdict, Kind::Mtls | Kind::Tls),
        Requirement::Mtls => v.verdict == Kind::Mtls,
    };
    if !met {
        let why = match (rule.require, v.verdict, v.confidence) {
            (Requirement::Mtls, Kind::Tls, Confidence::Uncertain) => {
                "requires mtls; client authentication could not be established"
            }
            (Requirement::Mtls, Kind::Encrypted, _) => "requires mtls; the handshake is not in the capture",
            (Requirement::Mtls, _, _) => "requires mtls",
            (Requirement::Tls, _, _) => "requires tls",
            _ => "requires encryption",
        };
        return Some(format!("{name}: {why}"));
    }
    if rule.require == Requirement::Mtls && level == EvidenceLevel::Certain && v.confidence != Confidence::Certain {
        return Some(format!(
            "{name} is only inferred; --evidence certain requires it in clear"
        ));
    }
    if let (Some(g), Some(pattern)) = (&rule.client_identity, &c.client_identity) {
        match &v.client_identity {
            Some(id) if !pattern.as_ref().is_some_and(|p| p.matches(id)) => {
                return Some(format!("client identity {id} does not match {g}"))
            }
            None if level == EvidenceLevel::Certain && rule.require != Requirement::Any => {
                return Some(format!(
                    "client identity not visible; --evidence certain requires it to match {g}"
                ))
            }
            _ => {}
        }
    }
    None
}

/// Judge every connection against every rule that selects it.
pub fn evaluate(rules: &[Rule], flows: &[FlowReport], opts: &CheckOptions) -> CheckReport {
    let mut results = Vec::new();
    for rule in rules {
        let compiled = Compiled::new(rule);
        let mut r = RuleResult {
            name: rule.name.clone(),
            require: rule.require,
            selector: rule.selector.clone(),
            client_identity: rule.client_identity.clone(),
            status: Status::Pass,
            matched: 0,
            passed: 0,
            passed_inferred: 0,
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
            let reason = judge(&compiled, f, opts.evidence);
            r.cases.push((endpoint(f, true), endpoint(f, false), reason.clone()));
            match reason {
                None => {
                    r.passed += 1;
                    if f.verdict.confidence != Confidence::Certain {
                        r.passed_inferred += 1;
                    }
                }
                Some(reason) => r.violations.push(Violation {
                    client: endpoint(f, true),
                    server: endpoint(f, false),
                    verdict: f.verdict.verdict,
                    confidence: f.verdict.confidence,
                    reason,
                    evidence: f.verdict.evidence.clone(),
                }),
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
    }
}
