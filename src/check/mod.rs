//! `mtlscope check`: rules over verdicts, for CI. A rule selects connections (server ports,
//! CIDRs, SNI) and states what they require; every selected connection that falls short is a
//! violation. An empty rule is not a pass. Outputs: lines for people, JSON, JUnit XML and
//! GitHub Actions `::error` commands.

use crate::pipeline::record::FlowReport;
use crate::pipeline::verdict::{Confidence, Kind};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

/// What a rule requires of each connection it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Requirement {
    /// The client presented a certificate.
    Mtls,
    /// TLS, with or without a client certificate.
    Tls,
    /// Any TLS, including connections whose handshake is not in the capture.
    Encrypted,
    /// Anything: the rule only counts connections (useful with `client_identity`).
    Any,
    /// What Istio's PeerAuthentication expects for the server pod and port (needs a cluster
    /// dump): a violation fails, a warning or note passes.
    Policy,
}

/// How much proof a verdict needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EvidenceLevel {
    /// Only what the wire shows in clear (TLS 1.3 client certificates cannot pass `mtls`).
    Certain,
    /// Also verdicts inferred with confidence (TLS 1.3 record lengths, linked resumptions).
    #[default]
    Inferred,
}

/// Which connections a rule looks at. Every given field must match.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// Server ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Networks that the client or the server address falls in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<String>,
    /// Networks of the server address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_cidrs: Vec<String>,
    /// Networks of the client address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_cidrs: Vec<String>,
    /// Glob on the SNI the client sent (`*` matches any run of characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    #[serde(default, rename = "match")]
    pub selector: Match,
    pub require: Requirement,
    /// Glob the client certificate identity must match, where it is visible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_identity: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    rules: Vec<Rule>,
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{file}: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}: line {line}, column {column}: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: rule '{rule}': {message}")]
    Invalid {
        file: String,
        rule: String,
        message: String,
    },
    #[error("{file}: no rules (expected `rules:` with at least one entry)")]
    Empty { file: String },
}

/// Read a rules file (YAML, or JSON which is YAML too).
pub fn load_rules(path: &Path) -> Result<Vec<Rule>, RulesError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
        file: file.clone(),
        source,
    })?;
    parse_rules(&file, &text)
}

pub fn parse_rules(file: &str, text: &str) -> Result<Vec<Rule>, RulesError> {
    let parsed: RulesFile = serde_norway::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        RulesError::Syntax {
            file: file.to_string(),
            line,
            column,
            message: e.to_string(),
        }
    })?;
    if parsed.rules.is_empty() {
        return Err(RulesError::Empty { file: file.to_string() });
    }
    for r in &parsed.rules {
        for c in r
            .selector
            .cidrs
            .iter()
            .chain(&r.selector.server_cidrs)
            .chain(&r.selector.client_cidrs)
        {
            Cidr::parse(c).map_err(|message| RulesError::Invalid {
                file: file.to_string(),
                rule: r.name.clone(),
                message,
            })?;
        }
    }
    Ok(parsed.rules)
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, bits) = match s.split_once('/') {
            Some((ip, b)) => (ip, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = ip
            .parse()
            .map_err(|_| format!("'{s}' is not an IP network (like 10.0.0.0/8)"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|&b| b <= max)
                .ok_or_else(|| format!("'{s}': prefix length must be 0..={max}"))?,
            None => max,
        };
        Ok(Cidr { net, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
            let full = usize::from(bits / 8);
            let rest = bits % 8;
            a[..full] == b[..full] && (rest == 0 || (a[full] ^ b[full]) >> (8 - rest) == 0)
        }
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => prefix_eq(&n.octets(), &i.octets(), self.bits),
            (IpAddr::V6(n), IpAddr::V6(i)) => prefix_eq(&n.octets(), &i.octets(), self.bits),
            (IpAddr::V6(n), IpAddr::V4(i)) => prefix_eq(&n.octets(), &i.to_ipv6_mapped().octets(), self.bits),
            (IpAddr::V4(_), IpAddr::V6(i)) => i.to_ipv4_mapped().is_some_and(|i| self.contains(IpAddr::V4(i))),
        }
    }
}

/// `*` matches any run of characters (including `/`), `?` one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

impl Match {
    fn matches(&self, f: &FlowReport) -> bool {
        let any = |nets: &[String], ips: &[IpAddr]| {
            nets.is_empty()
                || nets
                    .iter()
                    .filter_map(|n| Cidr::parse(n).ok())
                    .any(|n| ips.iter().any(|&ip| n.contains(ip)))
        };
        (self.ports.is_empty() || self.ports.contains(&f.server.port))
            && any(&self.cidrs, &[f.client.ip, f.server.ip])
            && any(&self.server_cidrs, &[f.server.ip])
            && any(&self.client_cidrs, &[f.client.ip])
            && self.sni.as_ref().is_none_or(|g| {
                f.verdict
                    .tls
                    .as_ref()
                    .and_then(|t| t.sni.as_deref())
                    .is_some_and(|sni| glob(g, sni))
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
fn judge(rule: &Rule, f: &FlowReport, level: EvidenceLevel) -> Option<String> {
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
    if let Some(g) = &rule.client_identity {
        match &v.client_identity {
            Some(id) if !glob(g, id) => return Some(format!("client identity {id} does not match {g}")),
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
    /// Every connection the rule checked, for JUnit: (client, server, failure reason).
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

pub struct CheckOptions {
    pub evidence: EvidenceLevel,
    pub allow_empty: bool,
    pub min_flows: usize,
    /// Judge loopback connections too (the app <-> sidecar leg inside a pod).
    pub include_loopback: bool,
}

/// Judge every connection against every rule that selects it.
pub fn evaluate(rules: &[Rule], flows: &[FlowReport], opts: &CheckOptions) -> CheckReport {
    let mut results = Vec::new();
    for rule in rules {
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
        for f in flows.iter().filter(|f| rule.selector.matches(f)) {
            if f.loopback && !opts.include_loopback {
                r.loopback += 1;
                continue;
            }
            if f.verdict.verdict == Kind::NoData && rule.require != Requirement::Any {
                r.no_data += 1;
                continue;
            }
            r.matched += 1;
            let reason = judge(rule, f, opts.evidence);
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

impl CheckReport {
    /// One line per violation, then one per rule and a verdict line.
    pub fn text(&self, allow_empty: bool) -> String {
        let mut s = String::new();
        for r in &self.rules {
            for v in &r.violations {
                let _ = writeln!(
                    s,
                    "FAIL [{}] {} -> {} {}: {}",
                    r.name,
                    v.client,
                    v.server,
                    v.verdict.name(),
                    v.reason.trim_start_matches(&format!("{}: ", v.verdict.name()))
                );
                if let Some(e) = v.evidence.first() {
                    let _ = writeln!(s, "     evidence: {e}");
                }
            }
        }
        for r in &self.rules {
            let status = match (r.status, allow_empty) {
                (Status::Pass, _) => "ok",
                (Status::Fail, _) => "FAILED",
                (Status::Empty, true) => "empty (allowed)",
                (Status::Empty, false) => "FAILED: nothing to check",
            };
            let mut line = format!(
                "rule '{}' (require {}): {} matched, {} passed, {} failed",
                r.name,
                serde_json::to_value(r.require)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                r.matched,
                r.passed,
                r.violations.len()
            );
            if r.passed_inferred > 0 {
                line.push_str(&format!(" ({} passed on inferred verdicts)", r.passed_inferred));
            }
            if r.no_data > 0 {
                line.push_str(&format!(", {} without data not checked", r.no_data));
            }
            if r.loopback > 0 {
                line.push_str(&format!(", {} loopback not checked", r.loopback));
            }
            let _ = writeln!(s, "{line}: {status}");
        }
        for p in &self.problems {
            let _ = writeln!(s, "FAILED: {p}");
        }
        let failed: usize = self.rules.iter().map(|r| r.violations.len()).sum();
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let _ = writeln!(
            s,
            "{}: {}, {}, {}",
            if self.ok { "PASS" } else { "FAIL" },
            plural(self.connections, "connection"),
            plural(self.rules.len(), "rule"),
            plural(failed, "violation")
        );
        s
    }

    /// GitHub Actions workflow commands, one `::error` per violation or failed rule.
    pub fn github(&self, allow_empty: bool) -> String {
        let esc = |s: &str| s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
        let mut s = String::new();
        for r in &self.rules {
            for v in &r.violations {
                let _ = writeln!(
                    s,
                    "::error title={}::{} -> {} {}",
                    esc(&format!("mtlscope: {}", r.name))
                        .replace(',', "%2C")
                        .replace(':', "%3A"),
                    esc(&v.client),
                    esc(&v.server),
                    esc(&v.reason)
                );
            }
            if r.status == Status::Empty && !allow_empty {
                let _ = writeln!(
                    s,
                    "::error title=mtlscope%3A {}::nothing to check",
                    esc(&r.name).replace(':', "%3A")
                );
            }
        }
        for p in &self.problems {
            let _ = writeln!(s, "::error title=mtlscope::{}", esc(p));
        }
        s
    }

    /// JUnit XML: one testsuite per rule, one testcase per checked connection.
    pub fn junit(&self, allow_empty: bool) -> String {
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let total: usize = self.rules.iter().map(|r| r.cases.len().max(1)).sum();
        let failures: usize = self
            .rules
            .iter()
            .map(|r| r.violations.len() + usize::from(r.status == Status::Empty && !allow_empty))
            .sum();
        let _ = writeln!(
            s,
            "<testsuites name=\"mtlscope\" tests=\"{total}\" failures=\"{failures}\">"
        );
        for r in &self.rules {
            let empty_fails = r.status == Status::Empty && !allow_empty;
            let _ = writeln!(
                s,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\">",
                xml(&r.name),
                r.cases.len().max(1),
                r.violations.len() + usize::from(empty_fails)
            );
            for (client, server, fail) in &r.cases {
                let name = xml(&format!("{client} -> {server}"));
                match fail {
                    None => {
                        let _ = writeln!(s, "    <testcase classname=\"{}\" name=\"{name}\"/>", xml(&r.name));
                    }
                    Some(reason) => {
                        let evidence = r
                            .violations
                            .iter()
                            .find(|v| &v.client == client && &v.server == server)
                            .map(|v| v.evidence.join("\n"))
                            .unwrap_or_default();
                        let _ = writeln!(
                            s,
                            "    <testcase classname=\"{}\" name=\"{name}\">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                            xml(&r.name),
                            xml(reason),
                            xml(&evidence)
                        );
                    }
                }
            }
            if r.cases.is_empty() {
                if empty_fails {
                    let _ = writeln!(
                        s,
                        "    <testcase classname=\"{0}\" name=\"nothing to check\">\n      <failure message=\"no connection matched this rule\"/>\n    </testcase>",
                        xml(&r.name)
                    );
                } else {
                    let _ = writeln!(
                        s,
                        "    <testcase classname=\"{0}\" name=\"nothing to check\"><skipped/></testcase>",
                        xml(&r.name)
                    );
                }
            }
            let _ = writeln!(s, "  </testsuite>");
        }
        s.push_str("</testsuites>\n");
        s
    }
}

fn xml(s: &str) -> String {
    s.chars()
        .filter(|&c| c == '\t' || c == '\n' || c == '\r' || c >= ' ')
        .fold(String::with_capacity(s.len()), |mut out, c| {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&apos;"),
                c => out.push(c),
            }
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_spiffe_ids() {
        assert!(glob(
            "spiffe://cluster.local/ns/bookinfo/sa/*",
            "spiffe://cluster.local/ns/bookinfo/sa/reviews"
        ));
        assert!(!glob(
            "spiffe://cluster.local/ns/bookinfo/sa/*",
            "spiffe://cluster.local/ns/other/sa/reviews"
        ));
        assert!(glob("*.svc.cluster.local", "reviews.bookinfo.svc.cluster.local"));
        assert!(glob("a?c", "abc") && !glob("a?c", "abbc"));
        assert!(glob("*", ""));
    }

    #[test]
    fn cidr_contains() {
        let n = Cidr::parse("10.244.0.0/16").unwrap();
        assert!(n.contains("10.244.3.4".parse().unwrap()));
        assert!(!n.contains("10.245.0.1".parse().unwrap()));
        assert!(Cidr::parse("fd00::/8").unwrap().contains("fd42::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.1").unwrap().contains("10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nonsense").is_err());
    }

    #[test]
    fn rules_file_errors_have_line_and_column() {
        let e = parse_rules("r.yaml", "rules:\n  - name: x\n    require: mtlss\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("r.yaml: line 3, column"), "{msg}");
        let e = parse_rules(
            "r.yaml",
            "rules:\n  - name: x\n    require: mtls\n    match: {cidrs: [\"10.0.0.0/99\"]}\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("prefix length"), "{e}");
        let e = parse_rules("r.yaml", "rules:\n  - name: x\n    require: mtls\n    colour: red\n").unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[test]
    fn xml_escapes() {
        assert_eq!(xml("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
    }
}
