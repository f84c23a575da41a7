//! The terminal table: one [`Row`] per connection (from a report, or from the JSON line an
//! agent sent), drawn with comfy-table under a summary line, and the [`LiveTable`] redrawn as
//! verdicts arrive during a live capture.

use crate::pipeline::flows::Endpoint;
use crate::pipeline::record::{Collect, FlowReport, Output, Summary};
use std::io::{self, Write};

/// How wide the table may be: what [`crate::report::terminal_width`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// On a terminal: comfy-table asks it for its width.
    Terminal,
    /// `COLUMNS` (or a test) says how many columns.
    Columns(u16),
    /// Piped without `COLUMNS`: every column as wide as its content, nothing wrapped or cut
    /// (as `kubectl get` does into a pipe).
    Unlimited,
}

/// Which columns: the default ones, or `-o wide` (ALPN, cipher, first seen and every line of
/// the evidence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Columns {
    #[default]
    Default,
    Wide,
}

/// One row of the terminal table, from a connection report (or, in the kubectl plugin, from
/// an agent's JSON line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    /// The capture file, when several were read (see [`FlowReport::file`]).
    pub file: Option<String>,
    pub client: String,
    pub server: String,
    /// The verdict, its confidence when not certain, and `resumed` / `loopback` labels.
    pub verdict: String,
    pub tls: String,
    pub cipher: String,
    /// The protocol the server chose, else the ones the client offered.
    pub alpn: String,
    pub sni: String,
    pub identity: String,
    /// The expected PeerAuthentication mode and finding; `None` without a cluster.
    pub policy: Option<String>,
    pub first_seen: String,
    /// Every line of the evidence; the default table shows the first one, `-o wide` all.
    pub evidence: Vec<String>,
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
        let alpn = tls.map(|t| alpn_text(t.alpn.as_deref(), &t.alpn_offered));
        Row {
            file: f.file.clone(),
            client: end(k.and_then(|k| k.client_pod.as_ref()), &f.client),
            server: end(k.and_then(|k| k.server_pod.as_ref()), &f.server),
            verdict: verdict_text(v.verdict.name(), v.confidence.name(), v.resumed, f.loopback),
            tls: tls.and_then(|t| t.version.clone()).unwrap_or_else(|| "-".into()),
            cipher: tls.and_then(|t| t.cipher.clone()).unwrap_or_else(|| "-".into()),
            alpn: alpn.unwrap_or_else(|| "-".into()),
            sni: tls.and_then(|t| t.sni.clone()).unwrap_or_else(|| "-".into()),
            identity: v.client_identity.clone().unwrap_or_else(|| "-".into()),
            policy: k.map(crate::pipeline::enrich::short),
            first_seen: f.first_seen.clone(),
            evidence: v.evidence.clone(),
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
        let strings = |p: &str| -> Vec<String> {
            f.pointer(p)
                .and_then(serde_json::Value::as_array)
                .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        let alpn = f
            .get("tls")
            .filter(|t| !t.is_null())
            .map(|_| alpn_text(text("/tls/alpn"), &strings("/tls/alpn_offered")));
        let flag = |k: &str| f.get(k).and_then(serde_json::Value::as_bool).unwrap_or(false);
        Row {
            file: text("/file").map(str::to_owned),
            client: end("client"),
            server: end("server"),
            verdict: verdict_text(
                text("/verdict").unwrap_or("-"),
                text("/confidence").unwrap_or("certain"),
                flag("resumed"),
                flag("loopback"),
            ),
            tls: dash("/tls/version"),
            cipher: dash("/tls/cipher"),
            alpn: alpn.unwrap_or_else(|| "-".into()),
            sni: dash("/tls/sni"),
            identity: dash("/client_identity"),
            policy,
            first_seen: dash("/first_seen"),
            evidence: strings("/evidence"),
        }
    }
}

fn verdict_text(verdict: &str, confidence: &str, resumed: bool, loopback: bool) -> String {
    let mut s = match confidence {
        "certain" => verdict.to_owned(),
        other => format!("{verdict} ({other})"),
    };
    if resumed {
        s.push_str(", resumed");
    }
    // Inside a pod the app <-> sidecar leg is plaintext by design: say so next to the verdict.
    if loopback {
        s.push_str(", loopback");
    }
    s
}

/// The chosen protocol, else what the client offered (`h2,http/1.1 offered`), else `-`.
fn alpn_text(chosen: Option<&str>, offered: &[String]) -> String {
    match chosen {
        Some(a) => a.to_owned(),
        None if offered.is_empty() => "-".to_owned(),
        None => format!("{} offered", offered.join(",")),
    }
}

/// The terminal table: one row per connection, then the summary line.
pub fn write_table(
    out: &mut impl Write,
    flows: &[FlowReport],
    summary: &Summary,
    width: Width,
    columns: Columns,
) -> io::Result<()> {
    let rows: Vec<Row> = flows.iter().map(Row::from_report).collect();
    write_rows_as(out, &rows, &summary.line(), width, columns)
}

/// A table of rows with the default columns (none: no table), then `summary_line`.
pub fn write_rows(out: &mut impl Write, rows: &[Row], summary_line: &str, width: Width) -> io::Result<()> {
    write_rows_as(out, rows, summary_line, width, Columns::Default)
}

/// The narrowest the wrapping columns (sni, identity, evidence) get before the table folds
/// into its compact layout.
const MIN_WRAPPED: usize = 16;

/// A table of rows (none: no table), then `summary_line`.
///
/// With several inputs the first column names the file each connection came from.
/// Addresses, file names, verdicts, versions, policies, ciphers and times never wrap: their columns are as
/// wide as their content. The sni, client identity and evidence columns share what is left and
/// wrap at spaces (a word longer than its column, such as a long SPIFFE ID, is split), and
/// sni and identity get at most two sevenths of that room each, so the evidence keeps three
/// sevenths or more. When
/// that leaves them fewer than [`MIN_WRAPPED`] columns each, the default table folds into four
/// columns of two lines (client over server, verdict over TLS version, sni over identity,
/// evidence); when even that does not fit, the table is wider than asked rather than split an
/// address. `-o wide` ignores the width: every column is as wide as its content, with one
/// line per line of evidence.
pub fn write_rows_as(
    out: &mut impl Write,
    rows: &[Row],
    summary_line: &str,
    width: Width,
    columns: Columns,
) -> io::Result<()> {
    if !rows.is_empty() {
        writeln!(out, "{}", render(rows, width, columns))?;
    }
    writeln!(out, "{summary_line}")
}

/// A column: its header, whether it keeps its content's width, and each row's cell.
struct Col {
    header: &'static str,
    fixed: bool,
    cells: Vec<String>,
}

fn col(header: &'static str, fixed: bool, rows: &[Row], cell: impl Fn(&Row) -> String) -> Col {
    Col {
        header,
        fixed,
        cells: rows.iter().map(cell).collect(),
    }
}

/// The widest line of a cell.
fn text_width(s: &str) -> usize {
    s.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

fn layout(rows: &[Row], columns: Columns, compact: bool) -> Vec<Col> {
    let k8s = rows.iter().any(|r| r.policy.is_some());
    let policy = |r: &Row| r.policy.clone().unwrap_or_else(|| "-".into());
    let first = |r: &Row| r.evidence.first().cloned().unwrap_or_default();
    let files = file_cells(rows);
    let mut cols = Vec::new();
    if compact {
        // The file over the addresses: it costs no width when the name is short.
        let ends = match &files {
            Some(files) => Col {
                header: "file\nclient\n→ server",
                fixed: true,
                cells: rows
                    .iter()
                    .zip(files)
                    .map(|(r, f)| format!("{f}\n{}\n→ {}", r.client, r.server))
                    .collect(),
            },
            None => col("client\n→ server", true, rows, |r| {
                format!("{}\n→ {}", r.client, r.server)
            }),
        };
        cols.extend([
            ends,
            col("verdict\ntls", true, rows, |r| match (&r.policy, k8s) {
                (_, false) => format!("{}\n{}", r.verdict, r.tls),
                (_, true) => format!("{}\n{}\n{}", r.verdict, r.tls, policy(r)),
            }),
            col("sni\nclient identity", false, rows, |r| {
                format!("{}\n{}", r.sni, r.identity)
            }),
            col("evidence", false, rows, first),
        ]);
        return cols;
    }
    let wide = columns == Columns::Wide;
    if let Some(cells) = files {
        cols.push(Col {
            header: "file",
            fixed: true,
            cells,
        });
    }
    cols.extend([
        col("client", true, rows, |r| r.client.clone()),
        col("server", true, rows, |r| r.server.clone()),
        col("verdict", true, rows, |r| r.verdict.clone()),
        col("tls", true, rows, |r| r.tls.clone()),
    ]);
    if wide {
        cols.push(col("cipher", true, rows, |r| r.cipher.clone()));
        cols.push(col("alpn", false, rows, |r| r.alpn.clone()));
    }
    cols.push(col("sni", false, rows, |r| r.sni.clone()));
    cols.push(col("client identity", false, rows, |r| r.identity.clone()));
    if k8s {
        cols.push(col("policy", true, rows, policy));
    }
    if wide {
        cols.push(col("first seen", true, rows, |r| r.first_seen.clone()));
        cols.push(col("evidence", false, rows, |r| r.evidence.join("\n")));
    } else {
        cols.push(col("evidence", false, rows, first));
    }
    cols
}

/// With several inputs, which one each row came from (`-` when a row does not say), without
/// the directory all of them share: `a.pcap` and `b.pcap` for `/tmp/caps/a.pcap
/// /tmp/caps/b.pcap`. `None` when the rows do not name two inputs (one input, a live capture).
fn file_cells(rows: &[Row]) -> Option<Vec<String>> {
    use std::path::{Path, PathBuf};
    let named = || rows.iter().filter_map(|r| r.file.as_deref());
    // One input (or a live capture): every row names the same one, and the column says nothing.
    let first = named().next()?;
    if named().all(|f| f == first) {
        return None;
    }
    let mut paths = named().map(Path::new);
    let mut common: PathBuf = paths.next()?.parent().unwrap_or(Path::new("")).into();
    for p in paths {
        while !p.starts_with(&common) && common.pop() {}
    }
    let short = |f: &str| match Path::new(f).strip_prefix(&common) {
        Ok(rest) if !rest.as_os_str().is_empty() => rest.display().to_string(),
        _ => f.to_owned(),
    };
    Some(
        rows.iter()
            .map(|r| r.file.as_deref().map_or_else(|| "-".to_owned(), short))
            .collect(),
    )
}

/// The width a table of `cols` takes with only its fixed columns filled: borders (one per
/// column, plus one), padding (one each side) and the fixed columns' content.
fn fixed_width(cols: &[Col]) -> usize {
    let fixed: usize = cols
        .iter()
        .filter(|c| c.fixed)
        .map(|c| {
            c.cells
                .iter()
                .map(|s| text_width(s))
                .chain([text_width(c.header)])
                .max()
                .unwrap_or(0)
        })
        .sum();
    fixed + cols.len() * 3 + 1
}

fn render(rows: &[Row], width: Width, columns: Columns) -> comfy_table::Table {
    use comfy_table::{presets::UTF8_FULL_CONDENSED, ColumnConstraint, ContentArrangement, Table};
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let limit = match width {
        // Wide is for reading everything: nothing wraps (`less -S` scrolls it).
        _ if columns == Columns::Wide => None,
        Width::Terminal => t.width(),
        Width::Columns(w) => {
            t.set_width(w);
            Some(w)
        }
        Width::Unlimited => None,
    };
    let mut cols = layout(rows, columns, false);
    // The widest a column other than the evidence may be.
    let mut share = None;
    if let Some(limit) = limit {
        let wrapped = cols.iter().filter(|c| !c.fixed).count();
        let room = usize::from(limit).saturating_sub(fixed_width(&cols));
        if room < wrapped * MIN_WRAPPED {
            cols = layout(rows, columns, true);
        } else {
            share = Some((room * 2 / 7).max(MIN_WRAPPED));
        }
        t.set_content_arrangement(ContentArrangement::Dynamic);
    } else {
        // Piped: nothing wraps but the lines a cell already has.
        t.set_content_arrangement(ContentArrangement::Disabled);
    }
    t.set_header(cols.iter().map(|c| c.header));
    for i in 0..rows.len() {
        t.add_row(cols.iter().map(|c| c.cells[i].as_str()));
    }
    for (i, c) in cols.iter().enumerate() {
        let constraint = match share {
            _ if c.fixed => Some(ColumnConstraint::ContentWidth),
            Some(share) if c.header != "evidence" => {
                let share = u16::try_from(share).unwrap_or(u16::MAX);
                Some(ColumnConstraint::UpperBoundary(comfy_table::Width::Fixed(share)))
            }
            _ => None,
        };
        if let (Some(constraint), Some(column)) = (constraint, t.column_mut(i)) {
            column.set_constraint(constraint);
        }
    }
    t
}

/// Rows a table shows at most (`analyze -o table`, `capture -o table`); the others are counted
/// in a line under it. A table of a million rows is read by nobody and would cost gigabytes.
pub const TABLE_ROWS: usize = 5000;

/// A table on a terminal that is redrawn as verdicts arrive; the final table (with complete
/// counters) is printed from the collected connections at the end.
pub struct LiveTable {
    /// The final table's rows: at most [`TABLE_ROWS`], the others counted.
    pub collect: Collect,
    /// The most recent verdicts, redrawn while capturing; `counts` covers all of them.
    shown: std::collections::VecDeque<FlowReport>,
    counts: Summary,
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
            collect: Collect::at_most(TABLE_ROWS),
            shown: std::collections::VecDeque::with_capacity(LIVE_ROWS + 1),
            counts: Summary::default(),
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
        let rows: Vec<FlowReport> = self.shown.iter().cloned().collect();
        let mut buf = Vec::new();
        let _ = write_table(&mut buf, &rows, &self.counts, Width::Terminal, Columns::Default);
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
        // Bounded whatever the traffic: the last LIVE_ROWS verdicts and the counts.
        self.counts.count(&report.verdict);
        if self.live {
            if self.shown.len() == LIVE_ROWS {
                self.shown.pop_front();
            }
            self.shown.push_back(report.clone());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(client: &str, server: &str, verdict: &str, evidence: &str) -> Row {
        Row {
            file: None,
            client: client.into(),
            server: server.into(),
            verdict: verdict.into(),
            tls: "TLS 1.3".into(),
            cipher: "TLS_AES_128_GCM_SHA256".into(),
            alpn: "h2".into(),
            sni: "outbound_.9080_._.reviews.bookinfo.svc.cluster.local".into(),
            identity: "spiffe://cluster.local/ns/bookinfo/sa/productpage".into(),
            policy: None,
            first_seen: "2024-05-01T10:00:00.123456Z".into(),
            evidence: vec![evidence.into(), "second line of evidence".into()],
        }
    }

    /// `capture -o table` keeps the last LIVE_ROWS verdicts for the screen and at most
    /// TABLE_ROWS (twice that before a trim) for the final table, whatever the traffic.
    #[test]
    fn live_table_memory_is_bounded() {
        let mut t = LiveTable::new("lo".into(), true);
        let n = 3 * TABLE_ROWS as u64;
        for id in 1..=n {
            let r = crate::report::json::tests::sample_report(id);
            t.decided(&r).unwrap();
            t.closed(r).unwrap();
            assert!(t.shown.len() <= LIVE_ROWS);
            assert!(t.collect.flows.len() < 2 * TABLE_ROWS);
        }
        assert_eq!(t.counts.connections, n);
        t.collect.trim();
        assert_eq!(t.collect.flows.len(), TABLE_ROWS);
        assert_eq!(t.collect.left_out_total(), n - TABLE_ROWS as u64);
    }

    const LONG: &str = "TLS 1.3: client's first encrypted record after ServerHello is 792 bytes \
                        (775 inner) = a Certificate: the client sent a certificate";

    fn rows() -> Vec<Row> {
        vec![
            row(
                "127.0.0.1:1",
                "127.0.0.1:8080",
                "plaintext, loopback",
                "http request GET / in clear",
            ),
            row("10.99.0.1:54550", "10.99.0.2:4450", "mtls (inferred)", LONG),
            row("[fd00::1]:40000", "[fd00::2]:443", "tls (uncertain), resumed", LONG),
        ]
    }

    fn draw(width: Width, columns: Columns) -> String {
        let mut out = Vec::new();
        write_rows_as(&mut out, &rows(), "3 connections", width, columns).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Every one of `words` is whole on some line.
    fn whole(table: &str, words: &[&str]) {
        for w in words {
            assert!(table.lines().any(|l| l.contains(w)), "{w} split in\n{table}");
        }
    }

    #[test]
    fn no_line_is_wider_than_the_width_and_no_address_or_verdict_is_split() {
        for w in [80u16, 100, 120, 160, 200] {
            let t = draw(Width::Columns(w), Columns::Default);
            for l in t.lines() {
                assert!(
                    l.chars().count() <= usize::from(w),
                    "{w}: {l:?} is {} wide",
                    l.chars().count()
                );
            }
            whole(
                &t,
                &[
                    "127.0.0.1:1 ",
                    "127.0.0.1:8080",
                    "10.99.0.1:54550",
                    "[fd00::2]:443",
                    "plaintext, loopback",
                    "mtls (inferred)",
                    "tls (uncertain), resumed",
                    "TLS 1.3",
                ],
            );
        }
    }

    #[test]
    fn the_evidence_is_never_cut() {
        // Its conclusion is at the end: all of it is there, wrapped at spaces.
        let t = draw(Width::Columns(200), Columns::Default);
        assert!(!t.contains('…'), "{t}");
        whole(&t, &["certificate", "(775", "inner)"]);
        let t = draw(Width::Columns(80), Columns::Default);
        whole(&t, &["certificate", "Certificate:"]);
    }

    #[test]
    fn piped_without_columns_nothing_wraps() {
        let t = draw(Width::Unlimited, Columns::Default);
        // Header, three rows, the box lines and the summary: one line per row.
        assert_eq!(t.lines().count(), 3 + 3 + 2, "{t}");
        assert!(t.lines().any(|l| l.contains(LONG)), "{t}");
        assert!(!t.contains("second line of evidence"), "{t}");
    }

    #[test]
    fn wide_has_more_columns_and_every_line_of_evidence() {
        let t = draw(Width::Columns(80), Columns::Wide);
        let header = t.lines().nth(1).unwrap();
        for h in ["cipher", "alpn", "first seen", "evidence"] {
            assert!(header.contains(h), "{header}");
        }
        assert!(t.lines().any(|l| l.contains(LONG)), "{t}");
        assert!(t.contains("second line of evidence"), "{t}");
        whole(&t, &["TLS_AES_128_GCM_SHA256", "2024-05-01T10:00:00.123456Z"]);
    }

    #[test]
    fn file_names_lose_only_the_directory_they_share() {
        let with = |files: &[Option<&str>]| -> Vec<Row> {
            files
                .iter()
                .map(|f| Row {
                    file: f.map(str::to_owned),
                    ..Row::default()
                })
                .collect()
        };
        let cells = |files: &[Option<&str>]| file_cells(&with(files));
        assert_eq!(cells(&[None, None]), None);
        assert_eq!(
            cells(&[Some("/tmp/caps/a.pcap"), Some("/tmp/caps/day2/b.pcap")]).unwrap(),
            ["a.pcap", "day2/b.pcap"]
        );
        assert_eq!(
            cells(&[Some("caps/a.pcap"), Some("-"), None]).unwrap(),
            ["caps/a.pcap", "-", "-"]
        );
        assert_eq!(
            cells(&[Some("/x/a.pcap"), Some("/y/a.pcap")]).unwrap(),
            ["x/a.pcap", "y/a.pcap"]
        );
        // Every row from one input (one file read, or a live capture): no column.
        assert_eq!(cells(&[Some("/tmp/a.pcap"), Some("/tmp/a.pcap")]), None);
        assert_eq!(cells(&[Some("lo")]), None);
    }

    #[test]
    fn loopback_connections_are_labelled() {
        let f = serde_json::json!({
            "client": {"ip": "127.0.0.1", "port": 40000},
            "server": {"ip": "127.0.0.1", "port": 15001},
            "verdict": "plaintext", "confidence": "certain", "resumed": false, "loopback": true,
            "evidence": ["http request GET / in clear"], "tls": null,
        });
        let r = Row::from_json(&f);
        assert_eq!(r.verdict, "plaintext, loopback");
        assert_eq!((r.alpn.as_str(), r.tls.as_str()), ("-", "-"));
        assert_eq!(verdict_text("tls", "inferred", true, false), "tls (inferred), resumed");
        assert_eq!(
            alpn_text(None, &["h2".into(), "http/1.1".into()]),
            "h2,http/1.1 offered"
        );
    }
}
