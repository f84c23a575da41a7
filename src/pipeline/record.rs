//! What the pipeline produces: one [`FlowReport`] per connection and a [`Summary`] of the run,
//! handed to an [`Output`] as verdicts are decided and connections close. The JSON schema is
//! documented in `docs/json.md`; the report module turns these into tables and documents.

use crate::pipeline::flows::{Endpoint, FlowFacts, Inspected, RolesFrom};
use crate::pipeline::reassembly::StreamStats;
use crate::pipeline::verdict::{Confidence, Kind, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io;

/// The `schema_version` at the top of every JSON document (`analyze -o json`, the summary line
/// of `-o jsonl`, `check -o json`): raised when a field changes meaning or goes away, not when
/// one is added. The schemas are in `docs/schema/`.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TcpReport {
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub client: StreamStats,
    pub server: StreamStats,
}

/// Everything mtlscope reports about one connection.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FlowReport {
    pub id: u64,
    /// Community ID v1 (seed 0) of the connection, as Zeek and Suricata compute it: the key to
    /// find it in their logs.
    #[serde(default)]
    pub community_id: Option<String>,
    /// The input of its first packet: the path as given, `-` for standard input, the interface
    /// for a live capture; `None` when the engine was given packets with no input named.
    #[serde(default)]
    pub file: Option<String>,
    pub client: Endpoint,
    pub server: Endpoint,
    pub roles_from: RolesFrom,
    /// Both ends are this host (127.0.0.0/8, ::1, or the same address): inside a pod, the
    /// app <-> sidecar leg, which is plaintext by design.
    pub loopback: bool,
    pub first_seen: String,
    pub last_seen: String,
    pub packets: u64,
    pub client_bytes: u64,
    pub server_bytes: u64,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub tcp: TcpReport,
    /// Pods and the expected PeerAuthentication mode, when a cluster dump was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<crate::pipeline::enrich::Kubernetes>,
    /// The overlay tunnel the connection was captured in (node-level captures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TunnelReport {
    /// `vxlan`, `geneve` or `ipip`.
    pub kind: &'static str,
    pub outer_src: std::net::IpAddr,
    pub outer_dst: std::net::IpAddr,
    pub vni: Option<u32>,
}

impl FlowReport {
    pub fn build(flow: &FlowFacts, verdict: Verdict) -> FlowReport {
        let c = flow.client_dir;
        FlowReport {
            id: flow.id,
            community_id: community_id(flow.client, flow.server),
            file: None,
            client: flow.client,
            server: flow.server,
            roles_from: flow.roles_from,
            loopback: is_loopback(flow.client.ip, flow.server.ip),
            first_seen: rfc3339(flow.first_ts),
            last_seen: rfc3339(flow.last_ts),
            packets: flow.packets.iter().sum(),
            client_bytes: flow.bytes[c],
            server_bytes: flow.bytes[c.other()],
            verdict,
            tcp: TcpReport {
                syn: flow.syn_seen,
                fin: flow.fin.iter().any(|&f| f),
                rst: flow.rst,
                client: flow.stream_stats[c],
                server: flow.stream_stats[c.other()],
            },
            kubernetes: None,
            tunnel: flow.tunnel.map(|t| TunnelReport {
                kind: t.kind.name(),
                outer_src: t.outer_src,
                outer_dst: t.outer_dst,
                vni: t.vni,
            }),
        }
    }
}

/// The Community ID v1 of a TCP connection (seed 0, base64). The crate refuses only ends of
/// two address families, which one IP header cannot give.
pub fn community_id(a: Endpoint, b: Endpoint) -> Option<String> {
    const TCP: u8 = 6;
    community_id::calculate_community_id(0, a.ip, b.ip, Some(a.port), Some(b.port), TCP, false).ok()
}

/// Traffic that never leaves the host (or the pod's network namespace).
pub fn is_loopback(a: std::net::IpAddr, b: std::net::IpAddr) -> bool {
    a.is_loopback() || b.is_loopback() || a == b
}

/// A pair of nodes talking WireGuard or IPsec.
#[derive(Debug, Clone, Serialize)]
pub struct NodeEncryptedReport {
    /// `wireguard` or `ipsec-esp`.
    pub kind: &'static str,
    pub endpoints: [Endpoint; 2],
    pub packets: u64,
    pub bytes: u64,
    #[serde(skip)]
    pub first_seen_ns: u64,
    #[serde(skip)]
    pub last_seen_ns: u64,
}

/// Counts for the summary line and the JSON summary object.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub connections: u64,
    pub verdicts: BTreeMap<&'static str, u64>,
    pub inferred: u64,
    pub uncertain: u64,
    pub packets: u64,
    pub tcp_packets: u64,
    pub skipped: BTreeMap<String, u64>,
    pub evicted_flows: u64,
    /// Of those, SYN-only connections closed at `max_syn_only` (the rest hit `max_flows`).
    #[serde(skip)]
    pub evicted_syn_only: u64,
    /// Times the total buffer cap made a connection give up buffered data.
    pub buffer_limit_hits: u64,
    /// PeerAuthentication findings by severity, when a cluster dump was given.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub findings: BTreeMap<&'static str, u64>,
    /// Inputs not read completely, each serialized as its message.
    pub errors: crate::pipeline::input_error::InputErrors,
    /// Traffic encrypted between nodes (WireGuard, IPsec ESP): the pod connections inside it
    /// are not visible, so they get no verdict.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_encrypted: Vec<NodeEncryptedReport>,
    /// Live capture only: what the kernel reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureStats>,
    /// With a key log only (`--keylog-file`, a pcapng Decryption Secrets Block).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keylog: Option<KeylogSummary>,
}

/// What the key log did over the run.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct KeylogSummary {
    /// ClientHello randoms with a TLS 1.3 handshake secret, from every key log read.
    pub entries: usize,
    /// Connections whose verdict the decrypted handshake gave (confidence `certain`).
    pub decrypted: u64,
    /// Connections whose key log entry did not authenticate their records.
    pub wrong_key: u64,
    /// Connections with a key log entry that did not decrypt far enough for a verdict.
    pub partial: u64,
    /// Key log lines skipped, as `FILE:LINE: why` (the first 50).
    pub warnings: Vec<String>,
    /// Lines skipped beyond those.
    pub more_warnings: u64,
}

/// Pairs of nodes reported as encrypted at node level (WireGuard, IPsec); more are not listed.
const MAX_NODE_ENCRYPTED: usize = 1024;

impl Summary {
    /// A frame that carries no usable TCP segment, counted by reason.
    pub fn skipped(&mut self, skip: crate::pipeline::decode::Skip) {
        use crate::pipeline::decode::Skip;
        let what = match skip {
            Skip::NotTcp => "not TCP".to_string(),
            Skip::Fragment => "IP fragment".to_string(),
            Skip::Malformed => "malformed or cut headers".to_string(),
            Skip::UnsupportedLink(l) => format!("unsupported link type {} ({})", l.0, l.name()),
        };
        *self.skipped.entry(what).or_default() += 1;
    }

    /// WireGuard / IPsec between nodes: pod traffic inside is not visible, but that it is
    /// encrypted at node level is worth saying. One entry per kind and pair of endpoints, in
    /// order of first packet.
    pub fn node_encrypted(&mut self, ts: u64, e: &crate::pipeline::decode::tunnel::NodeEncrypted) {
        let a = Endpoint {
            ip: e.src,
            port: e.sport,
        };
        let b = Endpoint {
            ip: e.dst,
            port: e.dport,
        };
        let ([lo, hi], _) = crate::pipeline::flows::canonical(a, b);
        let list = &mut self.node_encrypted;
        let known = list
            .iter()
            .position(|n| n.kind == e.kind.name() && n.endpoints == [lo, hi]);
        match known {
            Some(i) => {
                let n = &mut list[i];
                n.packets += 1;
                n.bytes += u64::from(e.wire_len);
                n.last_seen_ns = ts;
            }
            None if list.len() < MAX_NODE_ENCRYPTED => list.push(NodeEncryptedReport {
                kind: e.kind.name(),
                endpoints: [lo, hi],
                packets: 1,
                bytes: u64::from(e.wire_len),
                first_seen_ns: ts,
                last_seen_ns: ts,
            }),
            None => {}
        }
    }

    pub fn count_finding(&mut self, k: &Option<crate::pipeline::enrich::Kubernetes>) {
        use crate::policy::Finding;
        if let Some(f) = k
            .as_ref()
            .and_then(|k| k.policy.as_ref())
            .and_then(|p| p.finding.as_ref())
        {
            let key = match f {
                Finding::Violation(_) => "violation",
                Finding::Warning(_) => "warning",
                Finding::Note(_) => "note",
            };
            *self.findings.entry(key).or_default() += 1;
        }
    }

    /// Add what another summary counted of verdicts (connections judged on another thread).
    pub fn add_verdicts(&mut self, other: &Summary) {
        self.connections += other.connections;
        for (k, n) in &other.verdicts {
            *self.verdicts.entry(k).or_default() += n;
        }
        self.inferred += other.inferred;
        self.uncertain += other.uncertain;
        for (k, n) in &other.findings {
            *self.findings.entry(k).or_default() += n;
        }
        // A connection has a key log result only when the run has a key log, and then this
        // summary has its `keylog` too.
        if let (Some(k), Some(o)) = (&mut self.keylog, &other.keylog) {
            k.decrypted += o.decrypted;
            k.wrong_key += o.wrong_key;
            k.partial += o.partial;
        }
    }

    pub fn count(&mut self, v: &Verdict) {
        self.connections += 1;
        *self.verdicts.entry(v.verdict.name()).or_default() += 1;
        match v.confidence {
            Confidence::Inferred => self.inferred += 1,
            Confidence::Uncertain => self.uncertain += 1,
            Confidence::Certain => {}
        }
        if let (Some(k), Some(r)) = (&mut self.keylog, v.tls.as_ref().and_then(|t| t.keylog.as_ref())) {
            match r.status.as_str() {
                "wrong-key" => k.wrong_key += 1,
                _ if v.confidence == Confidence::Certain && !v.resumed => k.decrypted += 1,
                _ => k.partial += 1,
            }
        }
    }

    /// "12 connections: 5 mtls, 4 tls, 2 plaintext, 1 no-data (3 inferred)".
    pub fn line(&self) -> String {
        let parts: Vec<String> = Kind::ALL
            .iter()
            .filter_map(|k| self.verdicts.get(k.name()).map(|n| format!("{n} {}", k.name())))
            .collect();
        let mut s = format!(
            "{} connection{}",
            self.connections,
            if self.connections == 1 { "" } else { "s" }
        );
        if !parts.is_empty() {
            s.push_str(": ");
            s.push_str(&parts.join(", "));
        }
        let mut notes = Vec::new();
        if self.inferred > 0 {
            notes.push(format!("{} inferred", self.inferred));
        }
        if self.uncertain > 0 {
            notes.push(format!("{} uncertain", self.uncertain));
        }
        if !notes.is_empty() {
            s.push_str(&format!(" ({})", notes.join(", ")));
        }
        if let Some(k) = &self.keylog {
            s.push_str(&format!(
                "; key log: {} decrypted, {} wrong key, {} partial",
                k.decrypted, k.wrong_key, k.partial
            ));
        }
        for n in &self.node_encrypted {
            s.push_str(&format!(
                "; encrypted at node level ({}): {} <-> {}, {} packets",
                n.kind, n.endpoints[0], n.endpoints[1], n.packets
            ));
        }
        if !self.findings.is_empty() {
            let f: Vec<String> = self
                .findings
                .iter()
                .map(|(k, n)| format!("{n} {k}{}", if *n == 1 { "" } else { "s" }))
                .collect();
            s.push_str(&format!("; PeerAuthentication: {}", f.join(", ")));
        }
        // The table ends with this line: a run that did not read everything says so there too.
        for e in &self.errors {
            s.push_str(&format!("; not complete: {e}"));
        }
        s
    }
}

/// Where decided and closed connections go. A streaming output writes at decision time and
/// lets the engine drop each verdict; the others collect at close and sort at the end.
pub trait Output {
    /// Does this output need the verdict again when the connection closes?
    fn wants_closed(&self) -> bool;
    fn decided(&mut self, report: &FlowReport) -> io::Result<()>;
    fn closed(&mut self, report: FlowReport) -> io::Result<()>;
    /// [`Output::decided`] for an output that does not want the report when the connection
    /// closes ([`Output::wants_closed`] is false): it may keep the report instead of copying
    /// from it.
    fn decided_owned(&mut self, report: FlowReport) -> io::Result<()> {
        self.decided(&report)
    }
    /// A regular tick during live capture, for outputs that redraw.
    fn tick(&mut self, _packets: u64, _open: usize) {}
    /// A connection whose inspection is over, offered before it is judged to an output that
    /// does not want reports again when connections close. An output that judges connections
    /// itself (on a thread of its own, with its own [`crate::pipeline::judge::Judge`]) takes it
    /// out of `c` and says how handing it over went; the others leave it, and the engine judges
    /// it and calls [`Output::decided`].
    fn inspected(&mut self, _c: &mut Option<Inspected>) -> io::Result<()> {
        Ok(())
    }
}

/// Nanoseconds since the epoch as RFC 3339 UTC with microseconds, truncated:
/// `2026-11-18T11:06:40.123456Z`. Two of these per connection. jiff writes the date and time of
/// the whole second, once per second (consecutive connections mostly start and end within the
/// same one); the microseconds are six digits after it. Measured before (per call,
/// `cargo bench --bench timestamps` medians and a loop of 4 M calls under `perf stat`): jiff's
/// `Display` at precision 6 into a String sized for it, 38-44 ns; `format!`, 43-49 ns; digits by
/// hand with the date from Hinnant's `civil_from_days`, 50-60 ns. On the bench capture the
/// 24,008 calls took 17.2 M instructions through jiff's `Display` each time, 8.0 M with the
/// second remembered (callgrind).
pub fn rfc3339(ns: u64) -> String {
    use std::cell::Cell;
    thread_local! {
        /// The last whole second written, and its text up to the fraction.
        static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
    }
    let (secs, micros) = (ns / 1_000_000_000, (ns % 1_000_000_000) / 1_000);
    let date = SECOND.with(|last| {
        let (s, date) = last.get();
        if s == secs {
            return date;
        }
        let mut date = [0u8; 19];
        // Every u64 of nanoseconds is in jiff's range (1970 to 2554 of its -9999..=9999), so
        // the whole second is `YYYY-MM-DDTHH:MM:SSZ`: 19 bytes before the `Z`.
        let t = i64::try_from(secs)
            .ok()
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .unwrap_or(jiff::Timestamp::MAX);
        let text = t.to_string();
        if let Some(head) = text.as_bytes().get(..19) {
            date.copy_from_slice(head);
        }
        last.set((secs, date));
        date
    });
    let mut text = [0u8; 27];
    text[..19].copy_from_slice(&date);
    text[19] = b'.';
    let mut m = micros;
    for d in text[20..26].iter_mut().rev() {
        *d = b'0' + (m % 10) as u8;
        m /= 10;
    }
    text[26] = b'Z';
    // jiff writes ASCII, and so do the digits.
    std::str::from_utf8(&text).unwrap_or_default().to_owned()
}

/// Collects connections for a table or one JSON document written at the end: all of them, or
/// with [`Collect::at_most`] a bounded number, the others only counted.
#[derive(Default)]
pub struct Collect {
    pub flows: Vec<FlowReport>,
    /// Keep at most this many (connections with data first, then by first packet).
    limit: Option<usize>,
    /// The connections left out, by verdict.
    pub left_out: BTreeMap<&'static str, u64>,
}

impl Output for Collect {
    fn wants_closed(&self) -> bool {
        true
    }
    fn decided(&mut self, _report: &FlowReport) -> io::Result<()> {
        Ok(())
    }
    fn closed(&mut self, report: FlowReport) -> io::Result<()> {
        self.flows.push(report);
        if self.limit.is_some_and(|n| self.flows.len() >= 2 * n.max(1)) {
            self.trim();
        }
        Ok(())
    }
}

impl Collect {
    /// At most `n` connections, for a table: past that, those with data come before those
    /// without, and the first seen before the later ones. The others are counted by verdict
    /// in [`Collect::left_out`].
    pub fn at_most(n: usize) -> Self {
        Collect {
            limit: Some(n),
            ..Collect::default()
        }
    }

    /// Apply the bound now (it is applied lazily, when twice as many are held).
    pub fn trim(&mut self) {
        let Some(n) = self.limit else { return };
        if self.flows.len() <= n {
            return;
        }
        self.flows
            .sort_unstable_by_key(|f| (f.verdict.verdict == Kind::NoData, f.id));
        for f in self.flows.drain(n..) {
            *self.left_out.entry(f.verdict.verdict.name()).or_default() += 1;
        }
    }

    /// How many connections were left out.
    pub fn left_out_total(&self) -> u64 {
        self.left_out.values().sum()
    }

    pub fn sorted(mut self) -> Vec<FlowReport> {
        self.trim();
        self.flows.sort_by_key(|f| f.id);
        self.flows
    }
}

/// What the kernel and libpcap say about the capture.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct CaptureStats {
    pub interface: String,
    pub netns: Option<String>,
    /// Packets read by mtlscope.
    pub packets: u64,
    /// Packets the kernel passed to the capture (pcap_stats ps_recv).
    pub received: u32,
    /// Dropped because the buffer was full: mtlscope did not keep up (ps_drop).
    pub dropped: u32,
    /// Dropped by the interface or its driver (ps_ifdrop).
    pub if_dropped: u32,
    pub written: Option<String>,
    pub seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(s: &str) -> Endpoint {
        let a: std::net::SocketAddr = s.parse().unwrap();
        Endpoint {
            ip: a.ip(),
            port: a.port(),
        }
    }

    /// The TCP vectors of corelight/community-id-spec (`baseline/baseline_deflt.json` and the
    /// table in `baseline/README.md`, seed 0, base64), both ways round: the ID Zeek and
    /// Suricata log for the same connection.
    #[test]
    fn community_id_matches_the_spec_baseline() {
        for (a, b, id) in [
            ("1.2.3.4:1122", "5.6.7.8:3344", "1:wCb3OG7yAFWelaUydu0D+125CLM="),
            (
                "128.232.110.120:34855",
                "66.35.250.204:80",
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                "[2001:470:e5bf:dead:4957:2174:e82c:4887]:63943",
                "[2607:f8b0:400c:c03::1a]:25",
                "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            ),
        ] {
            assert_eq!(community_id(end(a), end(b)).as_deref(), Some(id), "{a} -> {b}");
            assert_eq!(community_id(end(b), end(a)).as_deref(), Some(id), "{b} -> {a}");
        }
    }
}
