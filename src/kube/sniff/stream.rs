//! The agents' streams: each agent's standard output (JSON lines, read back into the records
//! the agent wrote with [`crate::kube::wire`]; or pcap with `-w`, analysed here by the same
//! engine) and standard error, read into [`Event`]s for the main loop.

use super::options::SniffOptions;
use super::plan::Capture;
use crate::kube::wire::{self, AgentLine};
use crate::pipeline::engine::{Config, Engine};
use crate::pipeline::record::{CaptureStats, FlowReport, Output, Summary};
use crate::pipeline::source::CaptureReader;
use anyhow::{bail, Result};
use std::io;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// What the agents' streams deliver to the main loop.
pub(super) enum Event {
    /// A connection whose verdict is final.
    Flow(usize, Box<FlowReport>),
    /// The agent's final summary.
    Summary(usize, Box<Summary>),
    /// The kernel's counters, from an agent streaming pcap (on its stderr).
    Capture(usize, CaptureStats),
    /// A line the agent wrote on standard error.
    Stderr(usize, String),
    /// The exec stream ended: `Err` says why the agent failed.
    Done(usize, std::result::Result<(), String>),
}

/// Read an agent's stdout (JSON lines, or pcap with -w) and stderr into events. The handle
/// ends when the last event from stdout has been sent.
pub(super) fn spawn_streams(
    i: usize,
    attached: &mut kube::api::AttachedProcess,
    c: &Capture,
    opts: &SniffOptions,
    tx: mpsc::UnboundedSender<Event>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut handles = Vec::new();
    if let Some(stderr) = attached.stderr() {
        let tx = tx.clone();
        handles.push(tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // An agent streaming pcap reports the kernel's counters as one JSON line here.
                let _ = match wire::parse_capture_line(&line) {
                    Some(stats) => tx.send(Event::Capture(i, stats)),
                    None => tx.send(Event::Stderr(i, line)),
                };
            }
        }));
    }
    let Some(stdout) = attached.stdout() else {
        bail!("the exec stream of {} has no standard output", c.label());
    };
    let handle = match &c.write {
        None => {
            let label = c.label();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = match wire::parse_line(&line) {
                        Ok(AgentLine::Flow(f)) => tx.send(Event::Flow(i, f)),
                        Ok(AgentLine::Summary(s)) => tx.send(Event::Summary(i, s)),
                        Err(e) => tx.send(Event::Stderr(
                            i,
                            format!(
                                "unexpected output from the agent for {label} (not a connection or its summary: {e})"
                            ),
                        )),
                    };
                }
            })
        }
        Some(path) => {
            let path = path.clone();
            let cfg = opts.limits.clone();
            // Bounded: a local analysis slower than the stream holds this task back (not the
            // runtime), and the -w file is written whatever the analysis does.
            let (chunks_tx, chunks_rx) = mpsc::channel::<Vec<u8>>(64);
            // The pcap stream: to the file, and to a local engine on a thread of its own.
            let analysis_tx = tx.clone();
            let name = path.display().to_string();
            let analysis = std::thread::spawn(move || analyse_stream(i, &name, cfg, chunks_rx, analysis_tx));
            tokio::spawn(async move {
                match tokio::fs::File::create(&path).await {
                    Ok(mut file) => {
                        let mut stdout = stdout;
                        let mut buf = vec![0u8; 64 << 10];
                        loop {
                            let n = match stdout.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if let Err(e) = file.write_all(&buf[..n]).await {
                                let _ = tx.send(Event::Stderr(i, format!("-w {}: {e}", path.display())));
                                break;
                            }
                            // The analysis may have stopped (a broken stream): keep the file going.
                            let _ = chunks_tx.send(buf[..n].to_vec()).await;
                        }
                        let _ = file.flush().await;
                    }
                    Err(e) => {
                        let _ = tx.send(Event::Stderr(
                            i,
                            format!("-w {}: cannot create it: {e}", path.display()),
                        ));
                    }
                }
                // The end of the stream ends the local analysis, which sends the summary.
                drop(chunks_tx);
                let _ = tokio::task::spawn_blocking(move || analysis.join()).await;
            })
        }
    };
    handles.push(handle);
    Ok(handles)
}

/// A `Read` over chunks handed over from the async side.
struct ChunkReader {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(c) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Decided connections of the local engine, as the agent's lines would carry them.
struct ToEvents {
    i: usize,
    tx: mpsc::UnboundedSender<Event>,
}

impl Output for ToEvents {
    fn wants_closed(&self) -> bool {
        false
    }
    fn decided(&mut self, report: &FlowReport) -> io::Result<()> {
        let _ = self.tx.send(Event::Flow(self.i, Box::new(report.clone())));
        Ok(())
    }
    fn closed(&mut self, _report: FlowReport) -> io::Result<()> {
        Ok(())
    }
}

/// `-w`: verdicts from the pcap stream, made here by the same engine the agent runs.
fn analyse_stream(i: usize, name: &str, cfg: Config, rx: mpsc::Receiver<Vec<u8>>, tx: mpsc::UnboundedSender<Event>) {
    let reader = ChunkReader {
        rx,
        chunk: Vec::new(),
        pos: 0,
    };
    let mut engine = Engine::new(cfg, ToEvents { i, tx: tx.clone() });
    // A stream that ends before its header: the agent failed first, and its error says why.
    if let Ok(mut r) = CaptureReader::from_read(name, Box::new(reader)) {
        loop {
            match r.next_packet() {
                Ok(Some(p)) => {
                    let _ = engine.packet(p.ts_ns, p.link, p.data);
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Event::Stderr(i, format!("reading the packet stream: {e}")));
                    break;
                }
            }
        }
    }
    engine.finish();
    let _ = tx.send(Event::Summary(i, Box::new(std::mem::take(&mut engine.summary))));
}
