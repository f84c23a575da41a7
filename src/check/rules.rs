//! The rules file of `mtlscope check --rules` (docs/ci.md, "Rules file"): what a rule selects,
//! what it requires, and reading the file. Every network and glob is parsed here, at load time,
//! so a typo is an error naming the file and the rule rather than a rule that matches nothing.

use crate::policy::yaml_bounds::{self, read_bounded, ReadError, TooDeep};
use globset::{GlobBuilder, GlobMatcher};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
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
    /// dump): a violation fails and a STRICT port is held to `mtls`; a warning or note passes.
    Policy,
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
    /// Glob on the SNI the client sent (see [`Pattern`]).
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
    /// Glob the client certificate identity must match, where it is visible (see [`Pattern`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_identity: Option<String>,
    /// Let an `uncertain` verdict satisfy `require` (by default it never does): for traffic
    /// that is known to be padded or resumed from outside the capture.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_uncertain: bool,
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
    #[error("{file}: rule '{rule}': {source}")]
    Invalid {
        file: String,
        rule: String,
        source: ValueError,
    },
    #[error("{file}: no rules (expected `rules:` with at least one entry)")]
    Empty { file: String },
    #[error("{file}: larger than the limit of {} MiB for a rules file", MAX_RULES_BYTES >> 20)]
    TooLarge { file: String },
    #[error("{file}: {at}")]
    TooDeep { file: String, at: TooDeep },
}

/// The largest rules file read: a few hundred rules take a few tens of KB.
pub const MAX_RULES_BYTES: u64 = 1 << 20;

/// A value in a rule that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    #[error("'{0}' is not an IP network (like 10.0.0.0/8)")]
    NotANetwork(String),
    #[error("'{text}': prefix length must be 0..={max}")]
    PrefixLength { text: String, max: u8 },
    #[error("{field}: {source}")]
    Glob {
        /// The key the glob was given under: `sni` or `client_identity`.
        field: &'static str,
        source: globset::Error,
    },
}

/// Read a rules file (YAML, or JSON which is YAML too).
pub fn load_rules(path: &Path) -> Result<Vec<Rule>, RulesError> {
    let file = path.display().to_string();
    let text = read_bounded(path, MAX_RULES_BYTES).map_err(|e| match e {
        ReadError::Io(source) => RulesError::Read {
            file: file.clone(),
            source,
        },
        ReadError::TooLarge { .. } => RulesError::TooLarge { file: file.clone() },
    })?;
    parse_rules(&file, &text)
}

/// Parse the text of a rules file; `file` names it in errors. Nesting past
/// [`yaml_bounds::MAX_DEPTH`] is refused before the YAML parser, which is slow on it.
pub fn parse_rules(file: &str, text: &str) -> Result<Vec<Rule>, RulesError> {
    yaml_bounds::check_nesting(text).map_err(|at| RulesError::TooDeep {
        file: file.to_string(),
        at,
    })?;
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
        validate(r).map_err(|source| RulesError::Invalid {
            file: file.to_string(),
            rule: r.name.clone(),
            source,
        })?;
    }
    Ok(parsed.rules)
}

/// Every network and glob of a rule parses.
fn validate(r: &Rule) -> Result<(), ValueError> {
    let m = &r.selector;
    for c in m.cidrs.iter().chain(&m.server_cidrs).chain(&m.client_cidrs) {
        Cidr::parse(c)?;
    }
    if let Some(g) = &m.sni {
        Pattern::new(g).map_err(|source| ValueError::Glob { field: "sni", source })?;
    }
    if let Some(g) = &r.client_identity {
        Pattern::new(g).map_err(|source| ValueError::Glob {
            field: "client_identity",
            source,
        })?;
    }
    Ok(())
}

/// An IPv4 or IPv6 network: `10.0.0.0/8`, `fd00::/8`, or a bare address for one host. Host
/// bits after the prefix are ignored (`10.1.2.3/8` is `10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(IpNet);

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, ValueError> {
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Cidr(net));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Cidr(IpNet::from(ip)));
        }
        // ipnet's error does not say which half is wrong: tell a bad prefix length apart.
        let max = match s.split_once('/').map(|(ip, _)| ip.parse::<IpAddr>()) {
            Some(Ok(IpAddr::V4(_))) => 32,
            Some(Ok(IpAddr::V6(_))) => 128,
            _ => return Err(ValueError::NotANetwork(s.to_string())),
        };
        Err(ValueError::PrefixLength {
            text: s.to_string(),
            max,
        })
    }

    /// Across families too: an IPv4 network holds the IPv4-mapped IPv6 form of its addresses
    /// (`::ffff:10.0.0.1`, as dual-stack sockets show IPv4 peers), and an IPv6 network is
    /// compared with the IPv4-mapped form of an IPv4 address (`::ffff:0:0/96` holds all IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.0, ip) {
            (IpNet::V4(n), IpAddr::V6(i)) => i.to_ipv4_mapped().is_some_and(|i| n.contains(&i)),
            (IpNet::V6(n), IpAddr::V4(i)) => n.contains(&i.to_ipv6_mapped()),
            (n, i) => n.contains(&i),
        }
    }
}

/// A glob on an SNI or a client certificate identity, in globset's syntax with `*` and `?` free
/// to cross `/` (a SPIFFE ID is a URI: `spiffe://cluster.local/ns/bookinfo/sa/*`): `*` any run
/// of characters, `?` one character, `[a-z]` / `[!a-z]` one of (or none of) a set, `{a,b}`
/// either pattern, `\` quotes the next character. Matching is case-sensitive, and `?` takes one
/// byte: SPIFFE IDs, DNS names and pod names are ASCII.
#[derive(Debug, Clone)]
pub struct Pattern(GlobMatcher);

impl Pattern {
    pub fn new(glob: &str) -> Result<Pattern, globset::Error> {
        let g = GlobBuilder::new(glob)
            .literal_separator(false)
            // The default depends on the platform; rules files should mean the same everywhere.
            .backslash_escape(true)
            .build()?;
        Ok(Pattern(g.compile_matcher()))
    }

    pub fn matches(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(pattern: &str, text: &str) -> bool {
        Pattern::new(pattern).unwrap().matches(text)
    }

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
        assert!(glob(
            "spiffe://cluster.local/ns/*/sa/default",
            "spiffe://cluster.local/ns/a/sa/default"
        ));
        assert!(glob("*.svc.cluster.local", "reviews.bookinfo.svc.cluster.local"));
        assert!(glob("a?c", "abc") && !glob("a?c", "abbc"));
        assert!(glob("*", ""));
        assert!(!glob("Reviews", "reviews"));
    }

    /// `*` and `?` cross `/`, as the hand-written matcher before globset did.
    #[test]
    fn glob_stars_cross_slashes() {
        assert!(glob("spiffe://*", "spiffe://cluster.local/ns/bookinfo/sa/reviews"));
        assert!(glob(
            "spiffe://cluster.local/*/reviews",
            "spiffe://cluster.local/ns/bookinfo/sa/reviews"
        ));
        assert!(glob("a?b", "a/b"));
        assert!(glob("*/sa/reviews", "spiffe://cluster.local/ns/bookinfo/sa/reviews"));
    }

    #[test]
    fn glob_sets_and_alternatives() {
        let g = "spiffe://cluster.local/ns/bookinfo/sa/{reviews,ratings}";
        assert!(glob(g, "spiffe://cluster.local/ns/bookinfo/sa/ratings"));
        assert!(!glob(g, "spiffe://cluster.local/ns/bookinfo/sa/details"));
        assert!(glob("reviews-v[12]-*", "reviews-v2-7c9f8d"));
        assert!(glob(r"a\*", "a*") && !glob(r"a\*", "ab"));
        assert!(Pattern::new("spiffe://[x").is_err());
    }

    /// `**` is two `*`, except between slashes, where it may also cover no segment at all.
    #[test]
    fn glob_double_star() {
        assert!(glob("spiffe://cluster.local/**", "spiffe://cluster.local/ns/a/sa/b"));
        assert!(glob("a**b", "a/x/b"));
        assert!(glob("ns/**/sa", "ns/a/b/sa") && glob("ns/**/sa", "ns/sa"));
    }

    #[test]
    fn cidr_contains() {
        let n = Cidr::parse("10.244.0.0/16").unwrap();
        assert!(n.contains("10.244.3.4".parse().unwrap()));
        assert!(!n.contains("10.245.0.1".parse().unwrap()));
        assert!(Cidr::parse("fd00::/8").unwrap().contains("fd42::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.1").unwrap().contains("10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("10.1.2.3/8").unwrap().contains("10.9.9.9".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("192.0.2.1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nonsense").is_err());
    }

    #[test]
    fn cidr_contains_across_families() {
        let v4 = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(v4.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!v4.contains("::ffff:11.1.2.3".parse().unwrap()));
        assert!(!v4.contains("fd00::1".parse().unwrap()));
        let mapped = Cidr::parse("::ffff:0:0/96").unwrap();
        assert!(mapped.contains("192.0.2.1".parse().unwrap()));
        assert!(!Cidr::parse("fd00::/8").unwrap().contains("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn cidr_errors_say_what_is_wrong() {
        let e = Cidr::parse("10.0.0.0/33").unwrap_err().to_string();
        assert_eq!(e, "'10.0.0.0/33': prefix length must be 0..=32");
        let e = Cidr::parse("fd00::/200").unwrap_err().to_string();
        assert_eq!(e, "'fd00::/200': prefix length must be 0..=128");
        let e = Cidr::parse("10.0.0/8").unwrap_err().to_string();
        assert_eq!(e, "'10.0.0/8' is not an IP network (like 10.0.0.0/8)");
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
    fn bad_glob_names_the_file_rule_and_key() {
        let e = parse_rules(
            "r.yaml",
            "rules:\n  - name: x\n    require: mtls\n    client_identity: \"spiffe://{a,b\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("r.yaml: rule 'x': client_identity: "), "{e}");
        let e = parse_rules(
            "r.yaml",
            "rules:\n  - name: y\n    require: tls\n    match: {sni: \"[z\"}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("r.yaml: rule 'y': sni: "), "{e}");
    }
}
