//! `mtlscope capture`: live capture on an interface, optionally inside another network
//! namespace, to a table that refreshes as verdicts arrive, one JSON document at the end, or
//! JSON lines as each verdict is final.

use super::flags::CaptureArgs;
use super::run::{live, report_errors, report_live};
use super::setup::refuse_packets_on_stdout;
use crate::live::capture::LiveOptions;
use crate::pipeline::engine::Config;
use crate::pipeline::runner::engine;
use crate::policy::Cluster;
use crate::report::{self, Format, JsonLines, LiveTable};
use anyhow::{Context, Result};
use std::io::{self, IsTerminal, Write};
use std::sync::Arc;

/// `mtlscope capture`.
pub fn capture(args: &CaptureArgs) -> Result<i32> {
    let Some(options) = args.live.options(args.filter.clone()) else {
        anyhow::bail!("-i/--interface is required (e.g. -i eth0, or -i any)");
    };
    // Every format reports on standard output.
    refuse_packets_on_stdout(&options, &format!("-o {}", args.format.name()))?;
    let mut cfg = args.limits.config();
    // Clients write their key log as they connect: it is read again when a random is missing.
    cfg.keylog = super::analyze::load_keylog(&args.keylog_file, true)?;
    let cluster = args.policy.load()?;
    let status = match &options.netns {
        Some(t) => format!("capturing on {} in {}", options.interface, t.path().display()),
        None => format!("capturing on {}", options.interface),
    };
    match args.format {
        Format::Jsonl => stream_jsonl(&options, cfg, cluster.as_ref(), false),
        Format::Json => {
            // As `analyze -o json`: streamed past a few thousand connections.
            let out = report::JsonDocument::new(io::BufWriter::new(io::stdout()));
            let ran = live(&options, engine(cfg, out, cluster.as_ref()), false)?;
            ran.out
                .finish(&ran.summary)
                .and_then(|mut w| w.flush())
                .context("writing to standard output")?;
            report_live(&ran.summary);
            super::analyze::report_keylog(&ran.summary);
            Ok(report_errors(&ran.summary.errors))
        }
        Format::Table | Format::Wide => {
            let table = LiveTable::new(status, io::stdout().is_terminal());
            let ran = live(&options, engine(cfg, table, cluster.as_ref()), false)?;
            let mut collect = ran.out.collect;
            collect.trim();
            let left_out = report::left_out_line(&collect.left_out);
            let flows = collect.sorted();
            let mut out = io::BufWriter::new(io::stdout().lock());
            report::write_table(
                &mut out,
                &flows,
                &ran.summary,
                report::terminal_width(),
                args.format.columns(),
            )?;
            if let Some(line) = left_out {
                writeln!(out, "{line}")?;
            }
            out.flush()?;
            report_live(&ran.summary);
            super::analyze::report_keylog(&ran.summary);
            Ok(report_errors(&ran.summary.errors))
        }
    }
}

/// JSON lines on standard output as verdicts are made, then the summary with the kernel's
/// counters; the counters on standard error too. Also what the agent streams to the plugin.
pub(super) fn stream_jsonl(
    options: &LiveOptions,
    cfg: Config,
    cluster: Option<&Arc<Cluster>>,
    stop_on_stdin: bool,
) -> Result<i32> {
    let out = JsonLines::new(io::BufWriter::new(io::stdout()));
    let mut ran = live(options, engine(cfg, out, cluster), stop_on_stdin)?;
    ran.out.summary(&ran.summary).context("writing to standard output")?;
    report_live(&ran.summary);
    super::analyze::report_keylog(&ran.summary);
    Ok(report_errors(&ran.summary.errors))
}
