//! `mtlscope analyze`: capture files (or standard input) to a table, one JSON document or
//! JSON lines; the exit status says whether every input was read completely.

use super::flags::AnalyzeArgs;
use super::run::{checked, report_errors};
use crate::pipeline::filter::PacketFilter;
use crate::pipeline::keylog::KeyLog;
use crate::pipeline::record::{Collect, FlowReport, Summary};
use crate::pipeline::runner::{engine, Inputs};
use crate::report::{self, Format, JsonLines, LinesThread};
use anyhow::{Context, Result};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// The `--keylog-file` files, read now (an unreadable one is an error); `follow`: read again
/// as they grow (a live capture). None without any.
pub(super) fn load_keylog(paths: &[PathBuf], follow: bool) -> Result<Option<Arc<KeyLog>>> {
    if paths.is_empty() {
        return Ok(None);
    }
    let log = KeyLog::new();
    for p in paths {
        log.load_file(p, follow)?;
    }
    Ok(Some(Arc::new(log)))
}

/// The key log lines skipped, on standard error (never their secrets).
pub(super) fn report_keylog(summary: &Summary) {
    if let Some(k) = &summary.keylog {
        for w in &k.warnings {
            eprintln!("mtlscope: warning: key log {w}");
        }
        if k.more_warnings > 0 {
            eprintln!("mtlscope: warning: {} more key log lines skipped", k.more_warnings);
        }
    }
}

/// `mtlscope analyze`.
pub fn analyze(args: &AnalyzeArgs) -> Result<i32> {
    let filter = args
        .input
        .filter
        .as_deref()
        .map(PacketFilter::new)
        .transpose()
        .context("-f/--filter")?;
    let mut cfg = args.input.limits.config();
    cfg.keylog = load_keylog(&args.input.keylog_file, false)?;
    let cluster = args.input.policy.load()?;
    let progress = args.input.progress();
    let paths = &args.input.inputs;
    if paths.is_empty() {
        anyhow::bail!("no capture file given (name one or more files, as arguments or with -r FILE, or `-` for standard input; `mtlscope capture -i IFACE` captures live)");
    }
    let inputs = Inputs {
        paths,
        filter,
        progress,
    };
    let stdout = io::stdout();
    match args.format {
        Format::Jsonl => {
            // Regular files are read as fast as they can be: no flush per connection. Standard
            // input or a FIFO may be a live capture (`tcpdump -w - | mtlscope analyze -`).
            let files = paths
                .iter()
                .all(|p| p != "-" && std::fs::metadata(p).is_ok_and(|m| m.is_file()));
            if !files {
                let lines = JsonLines::new(io::BufWriter::new(stdout.lock()));
                let ran = checked(inputs.run(engine(cfg, lines, cluster.as_ref())))?;
                return lines_end(ran.out, &ran.summary);
            }
            let lines = JsonLines::batched(io::BufWriter::with_capacity(64 << 10, stdout));
            match LinesThread::spawn(lines, cfg.judge(cluster.as_ref())) {
                Ok(writer) => {
                    let ran = checked(inputs.run(engine(cfg, writer, cluster.as_ref())))?;
                    let (lines, judged) = ran.out.finish().context("writing to standard output")?;
                    let mut summary = ran.summary;
                    summary.add_verdicts(&judged);
                    lines_end(lines, &summary)
                }
                Err(lines) => {
                    let ran = checked(inputs.run(engine(cfg, lines, cluster.as_ref())))?;
                    lines_end(ran.out, &ran.summary)
                }
            }
        }
        Format::Json => {
            // Streamed past a few thousand connections: memory does not grow with the input.
            let out = report::JsonDocument::new(io::BufWriter::new(stdout.lock()));
            let ran = checked(inputs.run(engine(cfg, out, cluster.as_ref())))?;
            ran.out
                .finish(&ran.summary)
                .and_then(|mut w| w.flush())
                .context("writing to standard output")?;
            report_keylog(&ran.summary);
            Ok(report_errors(&ran.summary.errors))
        }
        Format::Table | Format::Wide => {
            let collect = Collect::at_most(report::TABLE_ROWS);
            let ran = checked(inputs.run(engine(cfg, collect, cluster.as_ref())))?;
            let mut collect = ran.out;
            collect.trim();
            let left_out = report::left_out_line(&collect.left_out);
            write_table(args.format, &collect.sorted(), &ran.summary, left_out.as_deref())?;
            report_keylog(&ran.summary);
            Ok(report_errors(&ran.summary.errors))
        }
    }
}

/// The end of a JSON lines run: the summary line, the key log's warnings, the exit status.
fn lines_end<W: Write>(mut lines: JsonLines<W>, summary: &Summary) -> Result<i32> {
    lines.summary(summary).context("writing to standard output")?;
    report_keylog(summary);
    Ok(report_errors(&summary.errors))
}

/// The table at the end of the run, with the line that says what it left out.
fn write_table(format: Format, flows: &[FlowReport], summary: &Summary, left_out: Option<&str>) -> Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    let width = report::terminal_width();
    report::write_table(&mut out, flows, summary, width, format.columns())
        .and_then(|()| match left_out {
            Some(line) => writeln!(out, "{line}"),
            None => Ok(()),
        })
        .and_then(|()| out.flush())
        .context("writing to standard output")
}
