//! The runner: the one owner of reading inputs into an engine. Capture files and standard input
//! are read in order through the optional BPF filter, with a progress bar when asked; a live
//! capture runs until it is stopped. Either way every connection is closed at the end and the
//! summary says what did not stop the run (one [`InputError`] per input that could not be read
//! completely) and, live, what the kernel counted. `analyze`, `check`, `capture`, the agent and
//! the tests all read through [`Inputs::run`] or [`Live::run`].

pub use crate::pipeline::input_error::{InputError, InputErrors};

use crate::pipeline::decode::Skip;
use crate::pipeline::engine::{Config, Engine, Packets};
use crate::pipeline::filter::PacketFilter;
use crate::pipeline::record::{CaptureStats, Collect, FlowReport, Output, Summary};
use crate::pipeline::source::{CaptureReader, LinkType};
use crate::policy::Cluster;

use std::collections::BTreeSet;
use std::io;
use std::sync::Arc;

/// Capture files (pcap, pcapng, optionally gzip-compressed) and `-` for standard input, read
/// one after the other into the same engine.
pub struct Inputs<'a> {
    pub paths: &'a [String],
    /// Applied to every packet in user space (per link type; see [`PacketFilter`]).
    pub filter: Option<PacketFilter>,
    /// A progress bar per input on standard error.
    pub progress: bool,
}

/// Where live packets go (the engine), and a regular tick for live views. A capture calls
/// [`PacketSink::tick`] at least every few hundred milliseconds, packets or not.
pub trait PacketSink: Send {
    fn packet(&mut self, ts_ns: u64, link: LinkType, data: &[u8]);
    /// The socket is open and its filter attached: from here on the kernel keeps every packet
    /// for the capture (or counts it as dropped). Called once, before the first packet.
    fn started(&mut self) {}
    fn tick(&mut self) {}
    /// The kernel's count of packets it dropped on this capture so far (the ring was full),
    /// given with each tick.
    fn kernel_drops(&mut self, _total: u64) {}
}

/// A live capture: `capture` pushes packets into the sink it is given until it is stopped, and
/// returns what the kernel counted (the live module's `capture::run`, on an interface). The runner
/// knows nothing of interfaces or namespaces; the caller does.
pub struct Live<F> {
    pub capture: F,
    /// What the connections' `file` says: the interface (the caller's name for it).
    pub source: String,
}

/// How a live capture that started ended: what the kernel counted and, when it broke off
/// rather than being stopped (the interface went away), why. A capture that could not start
/// returns its error instead.
pub struct Captured<E> {
    pub stats: CaptureStats,
    pub broke_off: Option<E>,
}

/// What a run leaves: the output (with whatever it collected) and the summary, whose `errors`
/// hold the input errors and, for a live capture, `capture` the kernel's counters.
pub struct Ran<O> {
    pub out: O,
    pub summary: Summary,
}

/// What stops a run (a capture error only live). Input errors do not: they are in
/// [`Ran::summary`].
#[derive(Debug, thiserror::Error)]
pub enum RunError<E = std::convert::Infallible> {
    /// The live capture could not start (one that broke off later is an input error).
    #[error(transparent)]
    Capture(E),
    /// The output could not be written (a closed pipe): reading stopped there.
    #[error("writing the output")]
    Output(#[source] io::Error),
}

/// The engine for a run, joined to the cluster (pods, PeerAuthentication) when there is one.
pub fn engine<O: Output>(cfg: Config, out: O, cluster: Option<&Arc<Cluster>>) -> Engine<O> {
    let e = Engine::new(cfg, out);
    match cluster {
        Some(c) => e.with_cluster(c.clone()),
        None => e,
    }
}

impl Inputs<'_> {
    /// Read every input into `engine`, then close all connections. The connections read
    /// before an input error are still reported.
    pub fn run<O: Output>(mut self, mut engine: Engine<O>) -> Result<Ran<O>, RunError> {
        let errors = read_files(self.paths, &mut self.filter, &mut engine, self.progress);
        ran(engine, errors, None)
    }
}

impl<F, E> Live<F>
where
    F: FnOnce(&mut dyn PacketSink) -> Result<Captured<E>, E>,
    E: std::error::Error + Send + Sync + 'static,
{
    /// Capture into `engine` (on a thread of its own: hence `Send`), then close all
    /// connections. A capture that broke off is an input error in the summary, like a
    /// truncated file: the connections seen are still reported.
    pub fn run<O: Output + Send>(self, mut engine: Engine<O>) -> Result<Ran<O>, RunError<E>> {
        engine.source(&self.source);
        let captured = (self.capture)(&mut LiveSink { engine: &mut engine }).map_err(RunError::Capture)?;
        engine.finish();
        let mut errors = InputErrors::default();
        if let Some(e) = captured.broke_off {
            errors.push(InputError::Capture {
                interface: captured.stats.interface.clone(),
                error: Arc::new(e),
            });
        }
        ran(engine, errors, Some(captured.stats))
    }
}

/// The end of a run: the output's first write error, or the output with the summary.
fn ran<O: Output, E>(
    mut engine: Engine<O>,
    errors: InputErrors,
    capture: Option<CaptureStats>,
) -> Result<Ran<O>, RunError<E>> {
    if let Some(e) = engine.out_error.take() {
        return Err(RunError::Output(e));
    }
    let mut summary = std::mem::take(&mut engine.summary);
    if let (Some(k), Some(log)) = (&mut summary.keylog, engine.keylog()) {
        k.entries = log.len();
        (k.warnings, k.more_warnings) = log.take_warnings();
    }
    summary.errors = errors;
    summary.capture = capture;
    Ok(Ran {
        out: engine.out,
        summary,
    })
}

/// Read files into reports without touching standard output (the tests' way in).
pub fn analyze_files(
    inputs: &[String],
    filter: Option<PacketFilter>,
    cfg: Config,
) -> Result<(Vec<FlowReport>, Summary), RunError> {
    let ran = Inputs {
        paths: inputs,
        filter,
        progress: false,
    }
    .run(Engine::new(cfg, Collect::default()))?;
    Ok((ran.out.sorted(), ran.summary))
}

/// Feeds live packets to the engine; ticks drive the live table.
struct LiveSink<'a, O: Output> {
    engine: &'a mut Engine<O>,
}

impl<O: Output + Send> PacketSink for LiveSink<'_, O> {
    fn packet(&mut self, ts_ns: u64, link: LinkType, data: &[u8]) {
        let _ = self.engine.packet(ts_ns, link, data);
    }
    fn tick(&mut self) {
        let (packets, open) = (self.engine.summary.packets, self.engine.active_flows());
        self.engine.out.tick(packets, open);
    }
}

/// Every input in order, then the end of all connections; stops early when the output is gone.
fn read_files<P: Packets>(
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
    engine.source(input);
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
        if !packet.secrets.is_empty() {
            engine.secrets(&format!("{input}: Decryption Secrets Block"), packet.secrets);
        }
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

/// The bar on standard error. The caller decided to show it (`--progress`, or a terminal), so
/// it is drawn even when standard error is not a terminal: indicatif's own stderr target hides
/// itself there, which made `--progress` do nothing under CI or into a log.
fn progress_bar(reader: &CaptureReader) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::io::IsTerminal;
    let target = || match io::stderr().is_terminal() {
        true => ProgressDrawTarget::stderr(),
        false => ProgressDrawTarget::term_like_with_hz(Box::new(console::Term::stderr()), 20),
    };
    let bar = match reader.len_hint() {
        Some(len) => ProgressBar::with_draw_target(Some(len), target()).with_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
        None => ProgressBar::with_draw_target(None, target()).with_style(
            ProgressStyle::with_template("{prefix} {spinner} {bytes} {bytes_per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_prefix(reader.name().to_string());
    // Drawn once now: a capture shorter than one update would otherwise never show it.
    bar.tick();
    bar
}
