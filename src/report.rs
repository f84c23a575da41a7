//! Stage 7, report: one record per connection, written as a table (comfy-table), one JSON
//! document, or JSON lines; plus the summary. The JSON schema is documented in `docs/json.md`.

use crate::flows::{Endpoint, FlowFacts, RolesFrom};
use crate::tcp_reassembly::StreamStats;
use crate::verdict::{Confidence, Kind, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};

#[derive(Debug, Clone, Serialize)]
pub struct TcpReport {
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub client: StreamStats,
    pub server: StreamStats,
}

/// Everything mtlscope reports about one connection.
#[derive(Debug, Clone, Serialize)]
pub struct FlowReport {
    pub id: u64,
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
    pub kubernetes: Option<crate::enrich::Kubernetes>,
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
            client: flow.client,
            server: flow.server,
            roles_from: flow.roles_from,
            loopback: is_loopback(flow.client.ip, flow.server.ip),
            first_seen: rfc3339(flow.first_ts),
            last_seen: rfc3339(flow.last_ts),
            packets: flow.packets[0] + flow.packets[1],
            client_bytes: flow.bytes[c],
            server_bytes: flow.bytes[1 - c],
            verdict,
            tcp: TcpReport {
                syn: flow.syn_seen,
                fin: flow.fin[0] || flow.fin[1],
                rst: flow.rst,
                client: flow.stream_stats[c],
                server: flow.stream_stats[1 - c],
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
    /// Times the total buffer cap made a connection give up buffered data.
    pub buffer_limit_hits: u64,
    /// PeerAuthentication findings by severity, when a cluster dump was given.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub findings: BTreeMap<&'static str, u64>,
    pub errors: Vec<String>,
    /// Traffic encrypted between nodes (WireGuard, IPsec ESP): the pod connections inside it
    /// are not visible, so they get no verdict.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_encrypted: Vec<NodeEncryptedReport>,
    /// Live capture only: what the kernel reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<crate::capture::CaptureStats>,
}

/// Pairs of nodes reported as encrypted at node level (WireGuard, IPsec); more are not listed.
const MAX_NODE_ENCRYPTED: usize = 1024;

impl Summary {
    /// A frame that carries no usable TCP segment, counted by reason.
    pub fn skipped(&mut self, skip: crate::decode::Skip) {
        use crate::decode::Skip;
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
    pub fn node_encrypted(&mut self, ts: u64, e: &crate::tunnel::NodeEncrypted) {
        let a = Endpoint {
            ip: e.src,
            port: e.sport,
        };
        let b = Endpoint {
            ip: e.dst,
            port: e.dport,
        };
        let ([lo, hi], _) = crate::flows::canonical(a, b);
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

    pub fn count_finding(&mut self, k: &Option<crate::enrich::Kubernetes>) {
        use crate::peer_authentication::Finding;
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

    pub fn count(&mut self, v: &Verdict) {
        self.connections += 1;
        *self.verdicts.entry(v.verdict.name()).or_default() += 1;
        match v.confidence {
            Confidence::Inferred => self.inferred += 1,
            Confidence::Uncertain => self.uncertain += 1,
            Confidence::Certain => {}
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
        s
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Jsonl,
}

/// Where decided and closed connections go. A streaming output writes at decision time and
/// lets the engine drop each verdict; the others collect at close and sort at the end.
pub trait Output {
    /// Does this output need the verdict again when the connection closes?
    fn wants_closed(&self) -> bool;
    fn decided(&mut self, report: &FlowReport) -> io::Result<()>;
    fn closed(&mut self, report: FlowReport) -> io::Result<()>;
    /// A regular tick during live capture, for outputs that redraw.
    fn tick(&mut self, _packets: u64, _open: usize) {}
}

/// JSON lines: one connection per line as soon as its verdict is final, then a summary line.
pub struct JsonLines<W: Write> {
    out: W,
    /// Flush after each line: someone may be tailing a live capture.
    each_line: bool,
}

impl<W: Write> JsonLines<W> {
    /// Lines written as connections are decided, each flushed at once (live input).
    pub fn new(out: W) -> Self {
        JsonLines { out, each_line: true }
    }

    /// Lines left to the writer's buffer: for files read as fast as they can be, where a
    /// flush per connection would be a write(2) per connection (12,000 for the benchmark
    /// capture, 20-40% of the run when the output is a file or a pipe).
    pub fn batched(out: W) -> Self {
        JsonLines { out, each_line: false }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    pub fn summary(&mut self, s: &Summary) -> io::Result<()> {
        #[derive(Serialize)]
        struct Line<'a> {
            summary: &'a Summary,
        }
        serde_json::to_writer(&mut self.out, &Line { summary: s })?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

impl<W: Write> Output for JsonLines<W> {
    fn wants_closed(&self) -> bool {
        false
    }
    fn decided(&mut self, report: &FlowReport) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, report)?;
        self.out.write_all(b"\n")?;
        if self.each_line {
            // Someone is tailing this: a decided connection should show up now, not at 8 KiB.
            self.out.flush()?;
        }
        Ok(())
    }
    fn closed(&mut self, _report: FlowReport) -> io::Result<()> {
        Ok(())
    }
}

/// Collects connections for a table or one JSON document written at the end.
#[derive(Default)]
pub struct Collect {
    pub flows: Vec<FlowReport>,
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
        Ok(())
    }
}

impl Collect {
    pub fn sorted(mut self) -> Vec<FlowReport> {
        self.flows.sort_by_key(|f| f.id);
        self.flows
    }
}

/// A table on a terminal that is redrawn as verdicts arrive; the final table (with complete
/// counters) is printed from the collected connections at the end.
pub struct LiveTable {
    pub collect: Collect,
    shown: Vec<FlowReport>,
    dirty: bool,
    last_draw: std::time::Instant,
    /// Shown under the table: what is being captured.
    pub status: String,
    /// Redraw while capturing (standard output is a terminal); otherwise only the final table.
    live: bool,
}

/// Rows of the live table (the most recent connections).
const LIVE_ROWS: usize = 30;

impl LiveTable {
    pub fn new(status: String, live: bool) -> Self {
        LiveTable {
            collect: Collect::default(),
            shown: Vec::new(),
            dirty: true,
            last_draw: std::time::Instant::now(),
            status,
            live,
        }
    }

    /// Redraw at most twice a second when something changed, else once a second for the
    /// packet counter.
    fn redraw(&mut self, packets: u64, open: usize) {
        if !self.live {
            return;
        }
        if !self.dirty && self.last_draw.elapsed().as_secs() < 1 {
            return;
        }
        if self.last_draw.elapsed().as_millis() < 500 {
            return;
        }
        self.dirty = false;
        self.last_draw = std::time::Instant::now();
        let start = self.shown.len().saturating_sub(LIVE_ROWS);
        let mut summary = Summary::default();
        for f in &self.shown {
            summary.count(&f.verdict);
        }
        let mut buf = Vec::new();
        let _ = write_table(&mut buf, &self.shown[start..], &summary, None);
        let mut out = io::stdout().lock();
        // Clear the screen, home the cursor, draw.
        let _ = out.write_all(b"\x1b[2J\x1b[H");
        let _ = out.write_all(&buf);
        let _ = writeln!(
            out,
            "{} | {packets} packets, {open} connections open | Ctrl-C to stop",
            self.status
        );
        let _ = out.flush();
    }
}

impl Output for LiveTable {
    fn wants_closed(&self) -> bool {
        true
    }
    fn decided(&mut self, report: &FlowReport) -> io::Result<()> {
        self.shown.push(report.clone());
        self.dirty = true;
        Ok(())
    }
    fn closed(&mut self, report: FlowReport) -> io::Result<()> {
        self.collect.closed(report)
    }
    fn tick(&mut self, packets: u64, open: usize) {
        self.redraw(packets, open);
    }
}

pub fn write_json(out: &mut impl Write, flows: &[FlowReport], summary: &Summary) -> io::Result<()> {
    #[derive(Serialize)]
    struct Document<'a> {
        summary: &'a Summary,
        flows: &'a [FlowReport],
    }
    serde_json::to_writer_pretty(&mut *out, &Document { summary, flows })?;
    out.write_all(b"\n")
}

/// One row of the terminal table, from a connection report (or, in the kubectl plugin, from
/// an agent's JSON line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    pub client: String,
    pub server: String,
    pub verdict: String,
    pub tls: String,
    pub sni: String,
    pub identity: String,
    /// The expected PeerAuthentication mode and finding; `None` without a cluster.
    pub policy: Option<String>,
    pub evidence: String,
}

impl Row {
    pub fn from_report(f: &FlowReport) -> Row {
        let v = &f.verdict;
        let tls = v.tls.as_ref();
        let k = f.kubernetes.as_ref();
        // Pod names instead of addresses when the cluster knows them.
        let end = |pod: Option<&String>, e: &Endpoint| match pod {
            Some(p) => format!("{p}:{}", e.port),
            None => e.to_string(),
        };
        Row {
            client: end(k.and_then(|k| k.client_pod.as_ref()), &f.client),
            server: end(k.and_then(|k| k.server_pod.as_ref()), &f.server),
            verdict: verdict_text(v.verdict.name(), v.confidence.name(), v.resumed),
            tls: tls.and_then(|t| t.version.clone()).unwrap_or_else(|| "-".into()),
            sni: tls.and_then(|t| t.sni.clone()).unwrap_or_else(|| "-".into()),
            identity: v.client_identity.clone().unwrap_or_else(|| "-".into()),
            policy: k.map(crate::enrich::short),
            evidence: short_evidence(v.evidence.first().map(String::as_str).unwrap_or("")),
        }
    }

    /// The same row from a connection's JSON (the `-o jsonl` line of `capture` or `agent`,
    /// with the plugin's `kubernetes` object).
    pub fn from_json(f: &serde_json::Value) -> Row {
        let text = |p: &str| f.pointer(p).and_then(serde_json::Value::as_str);
        let dash = |p: &str| text(p).unwrap_or("-").to_owned();
        let end = |side: &str| {
            let port = f
                .pointer(&format!("/{side}/port"))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            match text(&format!("/kubernetes/{side}_pod")) {
                Some(pod) => format!("{pod}:{port}"),
                None => match text(&format!("/{side}/ip")) {
                    Some(ip) if ip.contains(':') => format!("[{ip}]:{port}"),
                    Some(ip) => format!("{ip}:{port}"),
                    None => "-".to_owned(),
                },
            }
        };
        let policy = f.get("kubernetes").filter(|k| !k.is_null()).map(|k| {
            match (
                k.pointer("/policy/expected_mode").and_then(serde_json::Value::as_str),
                k.pointer("/policy/finding/severity")
                    .and_then(serde_json::Value::as_str),
            ) {
                (None, _) => "-".to_owned(),
                (Some(mode), None) => mode.to_owned(),
                (Some(mode), Some(sev)) => format!("{mode}: {sev}"),
            }
        });
        Row {
            client: end("client"),
            server: end("server"),
            verdict: verdict_text(
                text("/verdict").unwrap_or("-"),
                text("/confidence").unwrap_or("certain"),
                f.get("resumed").and_then(serde_json::Value::as_bool).unwrap_or(false),
            ),
            tls: dash("/tls/version"),
            sni: dash("/tls/sni"),
            identity: dash("/client_identity"),
            policy,
            evidence: short_evidence(text("/evidence/0").unwrap_or("")),
        }
    }
}

fn verdict_text(verdict: &str, confidence: &str, resumed: bool) -> String {
    let mut s = match confidence {
        "certain" => verdict.to_owned(),
        other => format!("{verdict} ({other})"),
    };
    if resumed {
        s.push_str(", resumed");
    }
    s
}

/// The terminal table: one row per connection, then the summary line.
pub fn write_table(
    out: &mut impl Write,
    flows: &[FlowReport],
    summary: &Summary,
    width: Option<u16>,
) -> io::Result<()> {
    let rows: Vec<Row> = flows.iter().map(Row::from_report).collect();
    write_rows(out, &rows, &summary.line(), width)
}

/// A table of rows (none: no table), then `summary_line`.
pub fn write_rows(out: &mut impl Write, rows: &[Row], summary_line: &str, width: Option<u16>) -> io::Result<()> {
    use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
    if !rows.is_empty() {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        t.set_content_arrangement(ContentArrangement::Dynamic);
        if let Some(w) = width {
            t.set_width(w);
        }
        let k8s = rows.iter().any(|r| r.policy.is_some());
        let mut header = vec!["client", "server", "verdict", "tls", "sni", "client identity"];
        if k8s {
            header.push("policy");
        }
        header.push("evidence");
        t.set_header(header);
        for r in rows {
            let mut row = vec![
                r.client.clone(),
                r.server.clone(),
                r.verdict.clone(),
                r.tls.clone(),
                r.sni.clone(),
                r.identity.clone(),
            ];
            if k8s {
                row.push(r.policy.clone().unwrap_or_else(|| "-".into()));
            }
            row.push(r.evidence.clone());
            t.add_row(row);
        }
        writeln!(out, "{t}")?;
    }
    writeln!(out, "{summary_line}")
}

fn short_evidence(first: &str) -> String {
    const MAX: usize = 90;
    if first.chars().count() > MAX {
        let cut: String = first.chars().take(MAX - 1).collect();
        format!("{cut}…")
    } else {
        first.to_string()
    }
}

/// Nanoseconds since the epoch as RFC 3339 UTC with microseconds, without a date library.
/// Digits are written directly: two of these per connection, and `format!` made them a tenth
/// of the work of writing a report.
pub fn rfc3339(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let micros = (ns % 1_000_000_000) / 1000;
    let rem = secs % 86_400;
    let (year, month, day) = crate::certs::civil_from_days((secs / 86_400) as i64);
    if !(0..=9999).contains(&year) {
        return format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        );
    }
    // "YYYY-MM-DDTHH:MM:SS.uuuuuuZ"
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u64);
    put(5, 2, month as u64);
    put(8, 2, day as u64);
    put(11, 2, rem / 3600);
    put(14, 2, (rem % 3600) / 60);
    put(17, 2, rem % 60);
    put(20, 6, micros);
    b.iter().map(|&c| char::from(c)).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The report of a plaintext connection that carried nothing, with flow id `id`.
    pub(crate) fn sample_report(id: u64) -> FlowReport {
        let v = crate::verdict::decide(crate::inspect::Outcome::NoData, 0, 80, None, false);
        let facts = crate::flows::FlowFacts {
            id,
            client: Endpoint {
                ip: "10.0.0.1".parse().unwrap(),
                port: 40000,
            },
            server: Endpoint {
                ip: "10.0.0.2".parse().unwrap(),
                port: 80,
            },
            client_dir: 0,
            roles_from: crate::flows::RolesFrom::Syn,
            first_ts: 0,
            last_ts: 0,
            packets: [1, 0],
            bytes: [0, 0],
            syn_seen: true,
            fin: [false; 2],
            rst: false,
            stream_stats: Default::default(),
            tunnel: None,
        };
        FlowReport::build(&facts, v)
    }

    /// Counts flushes.
    #[derive(Default)]
    struct Flushes {
        bytes: Vec<u8>,
        flushes: usize,
    }

    impl Write for Flushes {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.bytes.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.flushes += 1;
            Ok(())
        }
    }

    /// Live input: each decided connection is flushed at once. Files: the lines are the same,
    /// the flushes left to the buffer (and one for the summary at the end).
    #[test]
    fn live_lines_are_flushed_one_by_one_batched_ones_are_not() {
        let mut live = JsonLines::new(Flushes::default());
        let mut batched = JsonLines::batched(Flushes::default());
        for id in 1..=3 {
            live.decided(&sample_report(id)).unwrap();
            batched.decided(&sample_report(id)).unwrap();
        }
        assert_eq!(live.out.flushes, 3);
        assert_eq!(batched.out.flushes, 0);
        live.summary(&Summary::default()).unwrap();
        batched.summary(&Summary::default()).unwrap();
        assert_eq!(batched.out.flushes, 1);
        assert_eq!(live.into_inner().bytes, batched.into_inner().bytes);
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000000Z");
        assert_eq!(rfc3339(1_795_000_000_123_456_789), "2026-11-18T11:06:40.123456Z");
        assert_eq!(rfc3339(u64::MAX), "2554-07-21T23:34:33.709551Z");
    }
}
