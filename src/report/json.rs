//! Reports as JSON: one document with the summary and every connection, or JSON lines — one
//! connection per line as its verdict is decided, then the summary (described in
//! `docs/json.md`, with JSON Schemas in `docs/schema/`).

use crate::pipeline::record::{FlowReport, Output, Summary, SCHEMA_VERSION};
use serde::Serialize;
use std::io::{self, Write};

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

    /// The `first_seen` / `last_seen` of every JSON connection.
    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000000Z");
        assert_eq!(rfc3339(1_795_000_000_123_456_789), "2026-11-18T11:06:40.123456Z");
        assert_eq!(rfc3339(u64::MAX), "2554-07-21T23:34:33.709551Z");
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
