//! The runner: reads every input (capture files, standard input) through the optional BPF
//! filter into anything that takes packets ([`Packets`]: the engine), with a progress bar when
//! asked, and collects the errors that did not stop the run ([`InputError`]). `analyze`,
//! `check`, the agent and the tests all read their inputs through it.

pub use crate::pipeline::input_error::{InputError, InputErrors};

use crate::pipeline::decode::Skip;
use crate::pipeline::engine::{Config, Engine, Packets};
use crate::pipeline::filter::PacketFilter;
use crate::pipeline::record::{Collect, FlowReport, Summary};
use crate::pipeline::source::CaptureReader;

use std::collections::BTreeSet;
use std::sync::Arc;

/// Read every input through the engine, then close all connections. Returns the input errors;
/// the connections read before an error are still reported.
pub fn read_all<P: Packets>(
    inputs: &[String],
    filter: &mut Option<PacketFilter>,
    engine: &mut P,
    progress: bool,
) -> InputErrors {
    let mut errors = InputErrors::default();
    for input in inputs {
        if let Err(e) = read_one(input, filter, engine, progress) {
            errors.push(e);
        }
        if engine.stopped() {
            break;
        }
    }
    engine.finish();
    errors
}

/// One input to its end. Its first problem is returned, except that an error that stops the
/// reading replaces a skipped link type or filter noted before it.
fn read_one<P: Packets>(
    input: &str,
    filter: &mut Option<PacketFilter>,
    engine: &mut P,
    progress: bool,
) -> Result<(), InputError> {
    let mut reader = CaptureReader::open(input)?;
    let bar = progress.then(|| progress_bar(&reader));
    let mut unsupported: BTreeSet<i32> = BTreeSet::new();
    let mut first_error = None;
    let mut n: u64 = 0;
    loop {
        let offset = reader.offset();
        let packet = match reader.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                first_error = Some(InputError::from(e));
                break;
            }
        };
        n += 1;
        if let Some(f) = filter.as_mut() {
            match f.matches(packet.link, packet.data, packet.orig_len) {
                Ok(true) => {}
                Ok(false) => continue,
                // The expression does not apply to this link type (said once per link type):
                // remember it, skip those packets, keep reading the others.
                Err(e) => {
                    first_error.get_or_insert_with(|| InputError::Filter {
                        file: input.to_string(),
                        offset,
                        filter: Arc::new(e),
                    });
                    continue;
                }
            }
        }
        if let Err(Skip::UnsupportedLink(link)) = engine.frame(&packet) {
            if unsupported.insert(link.0) && first_error.is_none() {
                first_error = Some(InputError::UnsupportedLink {
                    file: input.to_string(),
                    offset,
                    link,
                });
            }
        }
        if engine.stopped() {
            break;
        }
        if let Some(b) = &bar {
            if n.is_multiple_of(4096) {
                b.set_position(reader.offset());
                if let Some(open) = engine.open_flows() {
                    b.set_message(format!("{open} connections open"));
                }
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    first_error.map_or(Ok(()), Err)
}

fn progress_bar(reader: &CaptureReader) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let bar = match reader.len_hint() {
        Some(len) => ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{prefix} {spinner} {bytes} {bytes_per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_prefix(reader.name().to_string());
    bar
}

/// Exposed for tests: analyze files into reports without touching stdout.
pub fn analyze_files(
    inputs: &[String],
    filter: Option<&str>,
    cfg: Config,
) -> anyhow::Result<(Vec<FlowReport>, Summary)> {
    let mut filter = filter.map(PacketFilter::new).transpose()?;
    let mut engine = Engine::new(cfg, Collect::default());
    let errors = read_all(inputs, &mut filter, &mut engine, false);
    let mut summary = std::mem::take(&mut engine.summary);
    summary.errors = errors;
    Ok((engine.out.sorted(), summary))
}
