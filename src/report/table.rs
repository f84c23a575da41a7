//! The terminal table: one [`Row`] per connection (from a report, or from the JSON line an
//! agent sent), drawn with comfy-table under a summary line, and the [`LiveTable`] redrawn as
//! verdicts arrive during a live capture.

use crate::pipeline::flows::Endpoint;
use crate::pipeline::record::{Collect, FlowReport, Output, Summary};
use std::io::{self, Write};

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
            policy: k.map(crate::pipeline::enrich::short),
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
