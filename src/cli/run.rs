//! What the commands add around [`runner`](crate::pipeline::runner): Ctrl-C and SIGTERM (and,
//! for the agent, its standard input) stop a live capture; a failed write is an error "writing
//! to standard output"; input errors and the kernel's counters go to standard error, and the
//! input errors decide the exit status.

use crate::live::capture::LiveOptions;
use crate::pipeline::engine::Engine;
use crate::pipeline::record::{CaptureStats, Output, Summary};
use crate::pipeline::runner::{InputErrors, Live, PacketSink, Ran, RunError};
use crate::report::{EXIT_BAD_INPUT, EXIT_OK};
use anyhow::{Context, Result};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The run's result with a closed pipe or a full disk said as the command line says it.
pub(super) fn checked<O, E>(ran: Result<Ran<O>, RunError<E>>) -> Result<Ran<O>>
where
    E: std::error::Error + Send + Sync + 'static,
{
    ran.or_else(|e| match e {
        RunError::Output(e) => Err(e).context("writing to standard output"),
        RunError::Capture(e) => Err(e.into()),
    })
}

/// Capture into `engine` until Ctrl-C, SIGTERM, --duration or --count (or, with
/// `stop_on_stdin`, a `stop` line or the end of standard input); then close every connection.
pub(super) fn live<O: Output + Send>(options: &LiveOptions, engine: Engine<O>, stop_on_stdin: bool) -> Result<Ran<O>> {
    let stop = StopSignals::new(stop_on_stdin)?;
    let capture = |sink: &mut dyn PacketSink| crate::live::capture::run(options, stop.flag(), sink);
    let source = options.interface.clone();
    checked(Live { capture, source }.run(engine))
}

/// A flag that Ctrl-C and SIGTERM (and, with `stop_on_stdin`, the agent's standard input) set
/// while it lives; a second signal while stopping ends the process at once.
pub(super) struct StopSignals {
    stop: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl StopSignals {
    pub(super) fn new(stop_on_stdin: bool) -> Result<StopSignals> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let stop = Arc::new(AtomicBool::new(false));
        let mut signals = StopSignals {
            stop: stop.clone(),
            ids: Vec::new(),
        };
        for sig in [SIGINT, SIGTERM] {
            // A second signal while stopping ends the process at once: registered first, this
            // action sees the flag as it was before the signal set it.
            signals.ids.push(signal_hook::flag::register_conditional_shutdown(
                sig,
                130,
                stop.clone(),
            )?);
            signals.ids.push(signal_hook::flag::register(sig, stop.clone())?);
        }
        if stop_on_stdin {
            crate::kube::agent::stop_on_stdin(stop);
        }
        Ok(signals)
    }

    pub(super) fn flag(&self) -> &AtomicBool {
        &self.stop
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Input errors go to standard error, one line each; the exit status says whether there were
/// any.
pub(super) fn report_errors(errors: &InputErrors) -> i32 {
    for e in errors {
        eprintln!("mtlscope: {e}");
    }
    if errors.is_empty() {
        EXIT_OK
    } else {
        EXIT_BAD_INPUT
    }
}

/// The kernel's counters on standard error, with a warning when packets were dropped.
pub(super) fn report_capture(s: &CaptureStats) {
    eprintln!(
        "mtlscope: {} packets captured on {}{} in {:.1}s; kernel: {} received, {} dropped, {} dropped by the interface{}",
        s.packets,
        s.interface,
        s.netns.as_ref().map(|n| format!(" ({n})")).unwrap_or_default(),
        s.seconds,
        s.received,
        s.dropped,
        s.if_dropped,
        s.written.as_ref().map(|w| format!("; written to {w}")).unwrap_or_default()
    );
    if s.dropped > 0 || s.if_dropped > 0 {
        eprintln!(
            "mtlscope: warning: {} packets were dropped before mtlscope saw them: some verdicts may be missing or uncertain (try a larger --buffer-size or a narrower -f filter)",
            u64::from(s.dropped) + u64::from(s.if_dropped)
        );
    }
}

/// The kernel's counters of a live run (always there after [`live`]).
pub(super) fn report_live(summary: &Summary) {
    if let Some(stats) = &summary.capture {
        report_capture(stats);
    }
}
