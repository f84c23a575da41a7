//! The agent's stream, typed on both ends. `mtlscope agent` writes one [`FlowReport`] per line
//! as each verdict is final, then one `{"summary": ...}` line with the [`Summary`], through
//! [`crate::report::JsonLines`]; the plugin reads each line back into the same types with
//! [`parse_line`]. With `--pcap` the agent streams packets instead and reports the kernel's
//! counters on standard error as one `{"capture": ...}` line ([`parse_capture_line`]).
//!
//! Most record types derive `Deserialize` where they are defined. The ones here hold
//! `&'static str` names (a verdict, a tunnel kind, an alert's level) that serde cannot borrow
//! from a line read at run time; their impls read a name and keep the producer's own static
//! string for it, so a re-serialized record is byte for byte what the agent wrote. A name
//! outside the vocabulary is an error that names it: both ends are built from the same source.

use crate::pipeline::decode::tunnel::TunnelKind;
use crate::pipeline::flows::Endpoint;
use crate::pipeline::inspect::certs::CertInfo;
use crate::pipeline::inspect::mesh::MeshSignal;
use crate::pipeline::inspect::plaintext::Protocol;
use crate::pipeline::record::{CaptureStats, FlowReport, NodeEncryptedReport, Summary, TunnelReport};
use crate::pipeline::verdict::{AlertReport, Kind, MessageName, Tls13Report, TlsReport};
use crate::policy::{DecidedBy, Level};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One line of the agent's JSON stream.
#[derive(Debug, Clone)]
pub enum AgentLine {
    /// A connection whose verdict is final.
    Flow(Box<FlowReport>),
    /// The last line: the agent's counters.
    Summary(Box<Summary>),
}

/// Read one line the agent wrote. Which type it is comes from its top-level keys (the summary
/// line is `{"summary": ...}`, whatever the key order), so a broken line gets the error of the
/// type it was meant to be.
pub fn parse_line(line: &str) -> Result<AgentLine, serde_json::Error> {
    #[derive(Deserialize)]
    struct Probe {
        summary: Option<de::IgnoredAny>,
    }
    #[derive(Deserialize)]
    struct SummaryLine {
        summary: Summary,
    }
    if serde_json::from_str::<Probe>(line)?.summary.is_some() {
        Ok(AgentLine::Summary(Box::new(
            serde_json::from_str::<SummaryLine>(line)?.summary,
        )))
    } else {
        Ok(AgentLine::Flow(Box::new(serde_json::from_str(line)?)))
    }
}

/// The kernel's counters from an agent streaming pcap, if this standard error line is them.
pub fn parse_capture_line(line: &str) -> Option<CaptureStats> {
    #[derive(Deserialize)]
    struct CaptureLine {
        capture: CaptureStats,
    }
    serde_json::from_str::<CaptureLine>(line).ok().map(|l| l.capture)
}

// ---------------------------------------------------------------------------------------------
// Vocabularies: the `&'static str` names the pipeline writes
// ---------------------------------------------------------------------------------------------

/// `AlertReport::from`, as `verdict::tls_report` sets it.
const ALERT_FROM: &[&str] = &["client", "server"];
/// `AlertReport::level`, as `verdict::tls_report` sets it.
const ALERT_LEVELS: &[&str] = &["encrypted", "warning", "fatal", "unknown"];
/// `TlsReport::resumption`: `verdict::Resumption`'s names.
const RESUMPTIONS: &[&str] = &["session-id", "ticket", "psk"];
/// `NodeEncryptedReport::kind`: `decode::tunnel::NodeEncryption`'s names.
const NODE_ENCRYPTIONS: &[&str] = &["wireguard", "ipsec-esp"];
/// `DecidedBy::kind`: a policy decided, or Istio's default did.
const DECIDED_BY: &[&str] = &["PeerAuthentication", "default"];
/// `Summary::findings` keys, as `Summary::count_finding` counts them.
const FINDINGS: &[&str] = &["violation", "warning", "note"];
/// Every tunnel kind (the match in the tests keeps this list whole).
const TUNNELS: [TunnelKind; 3] = [TunnelKind::Vxlan, TunnelKind::Geneve, TunnelKind::IpInIp];

/// The static string among `names` equal to `s`; else serde's own words for an unknown variant.
fn known<E: de::Error>(s: &str, names: &[&'static str]) -> Result<&'static str, E> {
    names.iter().copied().find(|n| *n == s).ok_or_else(|| {
        let expected: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        E::custom(format_args!(
            "unknown variant `{s}`, expected one of {}",
            expected.join(", ")
        ))
    })
}

fn name_in<'de, D: Deserializer<'de>>(d: D, names: &[&'static str]) -> Result<&'static str, D::Error> {
    known(&String::deserialize(d)?, names)
}

fn alert_from<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    name_in(d, ALERT_FROM)
}

fn alert_level<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    name_in(d, ALERT_LEVELS)
}

fn resumption<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'static str>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| known(&s, RESUMPTIONS))
        .transpose()
}

fn messages<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<MessageName>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|m| {
            m.parse()
                .map_err(|()| <D::Error as de::Error>::custom(format!("unknown handshake message '{m}'")))
        })
        .collect()
}

fn node_encryption<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    name_in(d, NODE_ENCRYPTIONS)
}

fn decided_by<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    name_in(d, DECIDED_BY)
}

fn tunnel<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let s = String::deserialize(d)?;
    let names = TUNNELS.map(TunnelKind::name);
    known(&s, &names)
}

/// A map keyed by names, with the vocabulary's static strings as keys.
fn keyed_by<'de, D: Deserializer<'de>>(d: D, names: &[&'static str]) -> Result<BTreeMap<&'static str, u64>, D::Error> {
    BTreeMap::<String, u64>::deserialize(d)?
        .into_iter()
        .map(|(k, n)| Ok((known::<D::Error>(&k, names)?, n)))
        .collect()
}

fn verdict_counts<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<&'static str, u64>, D::Error> {
    keyed_by(d, &Kind::ALL.map(Kind::name))
}

fn finding_counts<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<&'static str, u64>, D::Error> {
    keyed_by(d, FINDINGS)
}

// ---------------------------------------------------------------------------------------------
// The types with static names, field for field as they are defined (serde's remote derive: a
// field added there and not here fails to compile)
// ---------------------------------------------------------------------------------------------

/// A name the pipeline writes. Spelt `&'static str` in a field, serde's derive would borrow it
/// from the input (and ask for input that lives forever); through an alias it is an ordinary
/// field whose `deserialize_with` picks the static string.
type Name = &'static str;

#[derive(Deserialize)]
#[serde(remote = "AlertReport")]
struct AlertReportDef {
    #[serde(deserialize_with = "alert_from")]
    from: Name,
    #[serde(deserialize_with = "alert_level")]
    level: Name,
    description: String,
}

impl<'de> Deserialize<'de> for AlertReport {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        AlertReportDef::deserialize(d)
    }
}

#[derive(Deserialize)]
#[serde(remote = "TlsReport")]
struct TlsReportDef {
    version: Option<String>,
    cipher: Option<String>,
    sni: Option<String>,
    alpn_offered: Vec<String>,
    alpn: Option<String>,
    client_cert_requested: Option<bool>,
    client_certificate: Option<std::sync::Arc<CertInfo>>,
    client_chain_len: Option<usize>,
    server_certificate: Option<std::sync::Arc<CertInfo>>,
    server_chain_len: Option<usize>,
    hello_retry: bool,
    #[serde(deserialize_with = "resumption")]
    resumption: Option<Name>,
    resumed_from: Option<u64>,
    upgrade: Option<Protocol>,
    alerts: Vec<AlertReport>,
    #[serde(deserialize_with = "messages")]
    handshake_messages: Vec<MessageName>,
    #[serde(default)]
    tls13: Option<Tls13Report>,
    #[serde(default)]
    keylog: Option<crate::pipeline::verdict::KeylogReport>,
    #[serde(default)]
    mesh: Option<MeshSignal>,
    #[serde(default)]
    problems: Vec<String>,
}

impl<'de> Deserialize<'de> for TlsReport {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        TlsReportDef::deserialize(d)
    }
}

#[derive(Deserialize)]
#[serde(remote = "TunnelReport")]
struct TunnelReportDef {
    #[serde(deserialize_with = "tunnel")]
    kind: Name,
    outer_src: IpAddr,
    outer_dst: IpAddr,
    vni: Option<u32>,
}

impl<'de> Deserialize<'de> for TunnelReport {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        TunnelReportDef::deserialize(d)
    }
}

#[derive(Deserialize)]
#[serde(remote = "DecidedBy")]
struct DecidedByDef {
    #[serde(deserialize_with = "decided_by")]
    kind: Name,
    namespace: Option<String>,
    name: Option<String>,
    level: Level,
}

impl<'de> Deserialize<'de> for DecidedBy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DecidedByDef::deserialize(d)
    }
}

#[derive(Deserialize)]
#[serde(remote = "NodeEncryptedReport")]
struct NodeEncryptedReportDef {
    #[serde(deserialize_with = "node_encryption")]
    kind: Name,
    endpoints: [Endpoint; 2],
    packets: u64,
    bytes: u64,
    /// Not written: capture times the summary line does not carry.
    #[serde(skip)]
    first_seen_ns: u64,
    #[serde(skip)]
    last_seen_ns: u64,
}

impl<'de> Deserialize<'de> for NodeEncryptedReport {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        NodeEncryptedReportDef::deserialize(d)
    }
}

#[derive(Deserialize)]
#[serde(remote = "Summary")]
struct SummaryDef {
    connections: u64,
    #[serde(deserialize_with = "verdict_counts")]
    verdicts: BTreeMap<&'static str, u64>,
    inferred: u64,
    uncertain: u64,
    packets: u64,
    tcp_packets: u64,
    skipped: BTreeMap<String, u64>,
    evicted_flows: u64,
    #[serde(skip)]
    evicted_syn_only: u64,
    buffer_limit_hits: u64,
    #[serde(default, deserialize_with = "finding_counts")]
    findings: BTreeMap<&'static str, u64>,
    errors: crate::pipeline::input_error::InputErrors,
    #[serde(default)]
    node_encrypted: Vec<NodeEncryptedReport>,
    #[serde(default)]
    capture: Option<CaptureStats>,
    #[serde(default)]
    keylog: Option<crate::pipeline::record::KeylogSummary>,
}

impl<'de> Deserialize<'de> for Summary {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SummaryDef::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tunnel_kind_is_known() {
        for k in TUNNELS {
            // A new kind fails to compile here until TUNNELS has it.
            match k {
                TunnelKind::Vxlan | TunnelKind::Geneve | TunnelKind::IpInIp => {}
            }
        }
        assert_eq!(TUNNELS.map(TunnelKind::name), ["vxlan", "geneve", "ipip"]);
    }

    #[test]
    fn an_unknown_name_is_an_error_that_names_it() {
        let e = serde_json::from_str::<TunnelReport>(
            r#"{"kind":"gre","outer_src":"192.0.2.1","outer_dst":"192.0.2.2","vni":null}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("unknown variant `gre`, expected one of `vxlan`, `geneve`, `ipip`"),
            "{e}"
        );
    }

    #[test]
    fn lines_are_told_apart_by_their_keys() {
        let summary = serde_json::to_string(&serde_json::json!({"summary": Summary::default()})).unwrap();
        assert!(matches!(parse_line(&summary), Ok(AgentLine::Summary(_))));
        let broken = r#"{"summary":{"connections":"many"}}"#;
        let e = parse_line(broken).unwrap_err().to_string();
        assert!(e.contains("invalid type: string \"many\", expected u64"), "{e}");
        let flow = parse_line(r#"{"id":1}"#).unwrap_err().to_string();
        assert!(flow.contains("missing field"), "{flow}");
        assert!(parse_line("not json").is_err());
        let stats = CaptureStats {
            interface: "eth0".into(),
            received: 3,
            ..CaptureStats::default()
        };
        let line = serde_json::to_string(&serde_json::json!({ "capture": stats })).unwrap();
        assert_eq!(parse_capture_line(&line).map(|c| c.received), Some(3));
        assert!(parse_capture_line("mtlscope agent: container x is process 1").is_none());
    }
}
