//! Reports as JSON: one document with the summary and every connection, or JSON lines — one
//! connection per line as its verdict is decided, then the summary (described in
//! `docs/json.md`, with JSON Schemas in `docs/schema/`).

use crate::pipeline::beside;
use crate::pipeline::flows::Inspected;
use crate::pipeline::judge::Judge;
use crate::pipeline::record::{FlowReport, Output, Summary, SCHEMA_VERSION};
use serde::Serialize;
use std::io::{self, Write};
use std::sync::mpsc;
use std::thread;

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
            schema_version: u32,
            summary: &'a Summary,
        }
        let line = Line {
            schema_version: SCHEMA_VERSION,
            summary: s,
        };
        serde_json::to_writer(&mut self.out, &line)?;
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

/// [`JsonLines`] written on a thread of its own (`mtlscope-write`) when there is a core for it,
/// for a run over files: the analysis thread hands each connection whose inspection is over
/// ([`Inspected`]) over, [`LINES_BATCH`] at a time, and goes on with the packets while this
/// thread judges them (verdict, report: [`Judge`]), serializes, writes and frees them. The lines
/// and their order are [`JsonLines`]'s, and the verdicts the engine's: one judge takes every
/// connection in the order the engine would have judged them. On the benchmark capture
/// serializing and freeing the reports was about a third of the analysis thread's
/// instructions (docs/performance.md, "The writing thread"), and judging them a fifth of
/// what was left (599.7 M instructions before, 473.4 M after; callgrind).
pub struct LinesThread<W: Write + Send + 'static> {
    batch: Vec<Work>,
    /// None once the writer stopped.
    tx: Option<mpsc::SyncSender<Vec<Work>>>,
    writer: Option<thread::JoinHandle<Written<W>>>,
    /// The writer's error, given again to every later report.
    failed: Option<io::Error>,
}

/// What the writing thread is given: a report, or a connection to judge first. The engine
/// gives every connection as the second (488 bytes, moved into the batch: a box would be one
/// more allocation per connection); a report is 1,320 bytes and rare here, hence its box.
#[allow(clippy::large_enum_variant)]
enum Work {
    Report(Box<FlowReport>),
    Inspected(Inspected),
}

/// What the writing thread leaves: the lines, what it counted of the verdicts it gave, and how
/// writing went.
type Written<W> = (JsonLines<W>, Summary, io::Result<()>);

/// Connections per hand-over: one wake-up of the writer per batch instead of per connection.
pub const LINES_BATCH: usize = 64;
/// Batches on their way to the writer: at most this many more connections are held in memory.
const BATCHES_QUEUED: usize = 4;

impl<W: Write + Send + 'static> LinesThread<W> {
    /// Starts the writer, which judges connections with `judge` (the run's: the engine's
    /// limits and cluster dump); without a second core, or when the thread cannot start, the
    /// lines come back to be written by the caller.
    pub fn spawn(lines: JsonLines<W>, judge: Judge) -> Result<Self, JsonLines<W>> {
        if !beside::second_core() {
            return Err(lines);
        }
        Self::start(lines, judge)
    }

    /// [`Self::spawn`] whatever the cores (tests).
    fn start(lines: JsonLines<W>, judge: Judge) -> Result<Self, JsonLines<W>> {
        let (tx, rx) = mpsc::sync_channel::<Vec<Work>>(BATCHES_QUEUED);
        let writer = beside::spawn_taking("mtlscope-write", (lines, judge), move |(mut lines, mut judge)| {
            // Counted here, added to the run's summary at the end (`finish`).
            let mut counts = Summary {
                keylog: Some(Default::default()),
                ..Summary::default()
            };
            for work in rx.into_iter().flatten() {
                let report = match work {
                    Work::Report(r) => *r,
                    Work::Inspected(c) => judge.judge(c, &mut counts),
                };
                if let Err(e) = lines.decided(&report) {
                    return (lines, counts, Err(e));
                }
            }
            (lines, counts, Ok(()))
        })
        .map_err(|(lines, _)| lines)?;
        Ok(LinesThread {
            batch: Vec::with_capacity(LINES_BATCH),
            tx: Some(tx),
            writer: Some(writer),
            failed: None,
        })
    }

    /// Waits for every report to be written; the lines, for the summary, and the counts of
    /// the verdicts judged here, to add to it ([`Summary::add_verdicts`]).
    pub fn finish(mut self) -> io::Result<(JsonLines<W>, Summary)> {
        self.hand_over()?;
        self.tx = None;
        match self.stop()? {
            Some(done) => Ok(done),
            None => Err(io::Error::other("the JSON writer stopped")),
        }
    }

    fn push(&mut self, work: Work) -> io::Result<()> {
        self.batch.push(work);
        if self.batch.len() >= LINES_BATCH {
            self.hand_over()?;
        }
        Ok(())
    }

    fn hand_over(&mut self) -> io::Result<()> {
        if let Some(e) = &self.failed {
            return Err(io::Error::new(e.kind(), e.to_string()));
        }
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(LINES_BATCH));
        match &self.tx {
            Some(tx) if tx.send(batch).is_err() => {
                // The writer stopped on an error: take it, and give it again from now on.
                self.tx = None;
                let e = self
                    .stop()
                    .err()
                    .unwrap_or_else(|| io::Error::other("the JSON writer stopped"));
                let again = io::Error::new(e.kind(), e.to_string());
                self.failed = Some(e);
                Err(again)
            }
            _ => Ok(()),
        }
    }

    /// Joins the writer (its channel closed): the lines and counts, or its write error; None
    /// when it was joined before.
    fn stop(&mut self) -> io::Result<Option<(JsonLines<W>, Summary)>> {
        match self.writer.take().map(thread::JoinHandle::join) {
            None => Ok(None),
            Some(Ok((lines, counts, Ok(())))) => Ok(Some((lines, counts))),
            Some(Ok((_, _, Err(e)))) => Err(e),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
        }
    }
}

impl<W: Write + Send + 'static> Output for LinesThread<W> {
    fn wants_closed(&self) -> bool {
        false
    }
    fn decided(&mut self, report: &FlowReport) -> io::Result<()> {
        self.decided_owned(report.clone())
    }
    fn decided_owned(&mut self, report: FlowReport) -> io::Result<()> {
        self.push(Work::Report(Box::new(report)))
    }
    fn inspected(&mut self, c: &mut Option<Inspected>) -> io::Result<()> {
        match c.take() {
            Some(c) => self.push(Work::Inspected(c)),
            None => Ok(()),
        }
    }
    fn closed(&mut self, _report: FlowReport) -> io::Result<()> {
        Ok(())
    }
}

/// One pretty-printed document, `{"schema_version": 1, "summary": ..., "flows": [...]}`
/// (`-o json`).
pub fn write_json(out: &mut impl Write, flows: &[FlowReport], summary: &Summary) -> io::Result<()> {
    #[derive(Serialize)]
    struct Document<'a> {
        schema_version: u32,
        summary: &'a Summary,
        flows: &'a [FlowReport],
    }
    let doc = Document {
        schema_version: SCHEMA_VERSION,
        summary,
        flows,
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    out.write_all(b"\n")
}

/// `-o json` for a run of any size. Up to [`JSON_SORT_WINDOW`] connections are held and the
/// document is [`write_json`]'s: the summary, then the connections in order of their first
/// packet. Past it the document is streamed so that memory stays bounded: the connections held
/// so far (in order), then each as it is reported (the order of JSON lines), and the summary
/// last: `{"flows": [...], "summary": {...}}`, the same fields.
pub struct JsonDocument<W: Write> {
    out: W,
    held: Vec<FlowReport>,
    /// Past the window: the array is open and elements go straight out.
    streaming: bool,
}

/// Connections `-o json` holds (about 2.5 KB each) before it streams.
pub const JSON_SORT_WINDOW: usize = 5000;

impl<W: Write> JsonDocument<W> {
    pub fn new(out: W) -> Self {
        JsonDocument {
            out,
            held: Vec::new(),
            streaming: false,
        }
    }

    /// One element of the open `flows` array, indented as `to_writer_pretty` would.
    fn element(&mut self, report: &FlowReport, first: bool) -> io::Result<()> {
        let pretty = serde_json::to_string_pretty(report)?;
        self.out
            .write_all(if first { &b"\n    "[..] } else { &b",\n    "[..] })?;
        // JSON strings escape newlines, so every newline here is the formatter's.
        self.out.write_all(pretty.replace('\n', "\n    ").as_bytes())
    }

    fn start_streaming(&mut self) -> io::Result<()> {
        self.held.sort_by_key(|f| f.id);
        self.out.write_all(b"{\n  \"flows\": [")?;
        for (i, f) in std::mem::take(&mut self.held).iter().enumerate() {
            self.element(f, i == 0)?;
        }
        self.streaming = true;
        Ok(())
    }

    /// The end of the run: the summary (and, for a run within the window, everything).
    pub fn finish(mut self, summary: &Summary) -> io::Result<W> {
        if !self.streaming {
            self.held.sort_by_key(|f| f.id);
            write_json(&mut self.out, &self.held, summary)?;
            return Ok(self.out);
        }
        let pretty = serde_json::to_string_pretty(summary)?;
        self.out.write_all(b"\n  ],\n  \"summary\": ")?;
        self.out.write_all(pretty.replace('\n', "\n  ").as_bytes())?;
        self.out.write_all(b"\n}\n")?;
        Ok(self.out)
    }
}

impl<W: Write> Output for JsonDocument<W> {
    fn wants_closed(&self) -> bool {
        true
    }
    fn decided(&mut self, _report: &FlowReport) -> io::Result<()> {
        Ok(())
    }
    fn closed(&mut self, report: FlowReport) -> io::Result<()> {
        if self.streaming {
            return self.element(&report, false);
        }
        self.held.push(report);
        if self.held.len() > JSON_SORT_WINDOW {
            self.start_streaming()?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pipeline::flows::Endpoint;
    use crate::pipeline::record::rfc3339;

    /// The verdict stage of a run with default limits.
    fn judge() -> Judge {
        crate::pipeline::engine::Config::default().judge(None)
    }

    /// The report of a plaintext connection that carried nothing, with flow id `id`.
    pub(crate) fn sample_report(id: u64) -> FlowReport {
        let v = crate::pipeline::verdict::decide(
            crate::pipeline::inspect::Outcome::NoData,
            &crate::pipeline::inspect::coverage::Coverage::complete(crate::pipeline::side::Side::Lo),
            80,
            None,
            false,
        );
        let facts = crate::pipeline::flows::FlowFacts {
            id,
            client: Endpoint {
                ip: "10.0.0.1".parse().unwrap(),
                port: 40000,
            },
            server: Endpoint {
                ip: "10.0.0.2".parse().unwrap(),
                port: 80,
            },
            client_dir: crate::pipeline::side::Side::Lo,
            roles_from: crate::pipeline::flows::RolesFrom::Syn,
            first_ts: 0,
            last_ts: 0,
            packets: [1, 0].into(),
            bytes: Default::default(),
            syn_seen: true,
            fin: Default::default(),
            rst: false,
            stream_stats: Default::default(),
            tunnel: None,
            source: crate::pipeline::flows::NO_SOURCE,
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

    /// The writing thread gives the lines `JsonLines` gives, in the same order, across batch
    /// boundaries, reports handed over by reference or by value.
    #[test]
    fn lines_thread_writes_what_json_lines_writes() {
        let n = LINES_BATCH as u64 * 2 + 5;
        let mut direct = JsonLines::batched(Vec::new());
        let mut threaded =
            LinesThread::start(JsonLines::batched(Vec::new()), judge()).unwrap_or_else(|_| panic!("spawn"));
        for id in 1..=n {
            direct.decided(&sample_report(id)).unwrap();
            if id % 2 == 0 {
                threaded.decided(&sample_report(id)).unwrap();
            } else {
                threaded.decided_owned(sample_report(id)).unwrap();
            }
        }
        let summary = Summary::default();
        direct.summary(&summary).unwrap();
        let (mut lines, counts) = threaded.finish().unwrap();
        assert_eq!(counts.connections, 0, "reports are not judged again");
        lines.summary(&summary).unwrap();
        let (a, b) = (direct.into_inner(), lines.into_inner());
        assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
    }

    /// Connections judged on the writing thread give the lines and the summary the engine's
    /// own judging gives, byte for byte: every bundled capture alone (with its key log when it
    /// has one), and all of them in one run (resumed sessions find their full handshakes in
    /// earlier files) three ways: as they are, joined to the bookinfo cluster dump (pods,
    /// PeerAuthentication findings), and with `--show-payload` and a single remembered session.
    #[test]
    fn lines_thread_judges_as_the_engine_does() {
        use crate::pipeline::engine::Config;
        use crate::pipeline::keylog::KeyLog;
        use crate::pipeline::runner::{engine, Inputs};
        use crate::policy::Cluster;
        use std::sync::Arc;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("captures");
        let mut all: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        all.sort();
        assert!(all.len() > 50, "{} captures in {}", all.len(), dir.display());
        let bookinfo = Arc::new(Cluster::load_paths(&[root.join("tests/data/policy/bookinfo/dump.yaml")]).unwrap());
        let config = |paths: &[String], odd: bool| {
            let mut cfg = Config::default();
            let keylog = std::path::Path::new(&paths[0]).with_extension("keylog");
            if paths.len() == 1 && keylog.exists() {
                let log = KeyLog::new();
                log.load_file(&keylog, false).unwrap();
                cfg.keylog = Some(Arc::new(log));
            }
            if odd {
                cfg.show_payload = true;
                cfg.max_sessions = 1;
            }
            cfg
        };
        let mut runs: Vec<(Vec<String>, Option<Arc<Cluster>>, bool)> =
            all.iter().map(|p| (vec![p.clone()], None, false)).collect();
        runs.push((all.clone(), None, false));
        runs.push((all.clone(), Some(bookinfo), false));
        runs.push((all.clone(), None, true));
        let (mut resumed, mut connections, mut joined) = (0, 0, 0);
        for (paths, cluster, odd) in runs {
            let inputs = || Inputs {
                paths: &paths,
                filter: None,
                progress: false,
            };
            let here = inputs()
                .run(engine(
                    config(&paths, odd),
                    JsonLines::batched(Vec::new()),
                    cluster.as_ref(),
                ))
                .unwrap();
            let mut inline = here.out;
            inline.summary(&here.summary).unwrap();
            let cfg = config(&paths, odd);
            let threaded = LinesThread::start(JsonLines::batched(Vec::new()), cfg.judge(cluster.as_ref()))
                .unwrap_or_else(|_| panic!("spawn"));
            let ran = inputs().run(engine(cfg, threaded, cluster.as_ref())).unwrap();
            assert_eq!(ran.summary.connections, 0, "the engine judged some itself: {paths:?}");
            let (mut lines, judged) = ran.out.finish().unwrap();
            assert_eq!(judged.connections, here.summary.connections, "{paths:?}");
            let mut summary = ran.summary;
            summary.add_verdicts(&judged);
            lines.summary(&summary).unwrap();
            let (a, b) = (
                String::from_utf8(inline.into_inner()).unwrap(),
                String::from_utf8(lines.into_inner()).unwrap(),
            );
            assert_eq!(a, b, "{paths:?}");
            connections += a.lines().count() - 1;
            resumed += a.matches("\"resumed_from\":").count() - a.matches("\"resumed_from\":null").count();
            joined += a.matches("\"client_pod\":\"").count();
        }
        assert!(connections > 100, "{connections} connections");
        assert!(resumed > 0, "no resumed session was linked to its full handshake");
        assert!(joined > 0, "no connection was joined to a pod");
    }

    /// Fails every write after the first `ok` bytes, as a closed pipe does.
    struct ClosesAfter {
        ok: usize,
    }

    impl Write for ClosesAfter {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.ok == 0 {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "pipe closed"));
            }
            let n = b.len().min(self.ok);
            self.ok -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A write error on the thread reaches the analysis with its kind (`| head` ends the run
    /// quietly on BrokenPipe), at a later hand-over or at the end.
    #[test]
    fn lines_thread_gives_back_the_write_error() {
        for reports in [3u64, LINES_BATCH as u64 * (BATCHES_QUEUED as u64 + 3)] {
            let mut threaded = LinesThread::start(JsonLines::new(ClosesAfter { ok: 100 }), judge())
                .unwrap_or_else(|_| panic!("spawn"));
            let mut first = None;
            for id in 1..=reports {
                if let Err(e) = threaded.decided_owned(sample_report(id)) {
                    first.get_or_insert(e.kind());
                }
            }
            let end = threaded.finish().map(|_| ()).unwrap_err();
            assert_eq!(end.kind(), io::ErrorKind::BrokenPipe, "{reports} reports");
            if reports > 3 {
                assert_eq!(first, Some(io::ErrorKind::BrokenPipe), "seen before the end");
            }
        }
    }

    /// The `first_seen` / `last_seen` of every JSON connection.
    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000000Z");
        assert_eq!(rfc3339(1_795_000_000_123_456_789), "2026-11-18T11:06:40.123456Z");
        assert_eq!(rfc3339(u64::MAX), "2554-07-21T23:34:33.709551Z");
    }

    /// The remembered second gives what jiff gives for every time, in any order: within one
    /// second, across its edges, back in time, and spread over the whole range.
    #[test]
    fn rfc3339_is_jiff_at_microseconds() {
        let jiff = |ns: u64| format!("{:.6}", jiff::Timestamp::from_nanosecond(i128::from(ns)).unwrap());
        let mut times = vec![
            0,
            999,
            1_000,
            999_999_999,
            1_000_000_000,
            u64::MAX,
            u64::MAX - 1_000_000_000,
        ];
        let base = 1_795_000_000_000_000_000u64;
        times.extend((0..2_000u64).map(|i| base + i * 1_234_567));
        times.extend((0..2_000u64).map(|i| base - i * 7_654_321));
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            times.push(x);
            times.push(x.wrapping_add(1));
        }
        for t in times {
            assert_eq!(rfc3339(t), jiff(t), "{t}");
        }
    }

    /// Issue 15: `-o json` kept every connection (2.4 GB at a million). Within the window the
    /// document is byte for byte `write_json`'s; past it the streamed one holds the same
    /// connections and summary.
    #[test]
    fn json_document_is_write_json_within_the_window_and_the_same_data_past_it() {
        let summary = Summary::default();
        for n in [3u64, JSON_SORT_WINDOW as u64 + 200] {
            let mut doc = JsonDocument::new(Vec::new());
            for id in (1..=n).rev() {
                doc.closed(sample_report(id)).unwrap();
            }
            let streamed = doc.finish(&summary).unwrap();
            let mut flows: Vec<FlowReport> = (1..=n).map(sample_report).collect();
            flows.sort_by_key(|f| f.id);
            let mut whole = Vec::new();
            write_json(&mut whole, &flows, &summary).unwrap();
            if n == 3 {
                assert_eq!(String::from_utf8(streamed).unwrap(), String::from_utf8(whole).unwrap());
                continue;
            }
            let a: serde_json::Value = serde_json::from_slice(&streamed).unwrap();
            let b: serde_json::Value = serde_json::from_slice(&whole).unwrap();
            assert_eq!(a["summary"], b["summary"]);
            let ids = |v: &serde_json::Value| -> Vec<u64> {
                let mut ids: Vec<u64> = v["flows"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["id"].as_u64().unwrap())
                    .collect();
                ids.sort();
                ids
            };
            assert_eq!(ids(&a), ids(&b));
            assert_eq!(a["flows"][0], b["flows"][199]);
        }
    }
}
