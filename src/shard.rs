//! `--threads N`: the engine spread over N worker threads, with exactly the output of one.
//!
//! ```text
//! plain pcap file:   workers 1..N                                        calling thread
//!                    read (pread), frame, decode every Nth block ->      merge in input order,
//!                    go through every block, Engine for own connections  flow ids, write
//! any other input:   calling thread frames records into chunks ->
//!                    every worker decodes every frame of a chunk
//! ```
//!
//! - **Blocks of a plain pcap file** (not compressed, a regular file, no `-f`;
//!   [`crate::source::PcapBlocks`]). Worker `w` reads blocks `w`, `w + N`, `w + 2N`... of
//!   1 MiB with `pread`, so the kernel's copy, half of a single-threaded run, is spread over
//!   the workers, and each block is framed and decoded on the core that the kernel copied it
//!   to. A block holds the records that start in it; framing it needs only the offset of its
//!   first record, which the worker of the block before sends as soon as it has framed its
//!   own, before it decodes (`Link`), and the worker of the block where the file ends
//!   passes the end round. The owner decodes every frame once and files each TCP segment
//!   under the worker its connection hashes to; the block is then shared (an `Arc`, no
//!   copy). Every worker goes through every block in file order: its own segments, and the
//!   sweeps due before them, found by binary search in the block's clock (the TCP frames that
//!   are later than every earlier one), so a worker never walks the other workers' frames.
//!   A worker reads and frames at most `AHEAD` blocks ahead of going through them.
//! - **Chunks, for any other input** (pcapng, gzip, standard input, `-f`). A read-ahead
//!   thread does the `read(2)` calls (or gzip decompression:
//!   [`crate::source::CaptureReader::start_read_ahead`]); the calling thread only frames
//!   records (walking their headers) and applies the BPF filter. The frames of one read
//!   buffer go out as one chunk that shares the buffer ([`crate::source::Packet::buffer`]) and
//!   lists where each frame is: payload bytes are never copied, and there is one channel
//!   operation per chunk and worker, none per frame. Every worker gets the same chunk and
//!   decodes the headers of every frame (the common Ethernet/IP/TCP frame at fixed offsets,
//!   anything else through the general decoder, tunnels included: the inner connection's
//!   addresses, as the flow table keys it), going on only with its own segments.
//! - **Sharding.** [`shard_of`] is a symmetric hash of the two endpoints, so both directions
//!   of a connection meet on one worker. What one engine counts per frame (frames, TCP
//!   segments, skipped frames, node-level encryption such as WireGuard and ESP, in input
//!   order) worker 0 counts; with chunks, the calling thread counts frames and frames of
//!   unsupported link types.
//! - **The clock.** One engine sweeps idle connections when the capture clock (the latest TCP
//!   timestamp) passes a sweep time (`analyzer::sweep_due`). Every worker runs that clock
//!   over every TCP frame, so each sweeps before the same frame.
//! - **Order.** Everything a worker would have written is an [`Event`] keyed by the input frame
//!   it happened at ([`EventKey`]): a sweep's events come before that frame's own, and within a
//!   sweep (and at the end of input) connections go oldest first, as in one engine. The writer
//!   merges the workers' event streams by key, which gives the single-threaded order. Flow ids
//!   are assigned there, in order of creation; a worker uses the creating frame's index until
//!   then (JSON lines are serialized by the worker without the id, and the writer puts it in
//!   front).
//! - **Resumed sessions** are linked to an earlier handshake that may be on another worker, so
//!   the worker hands such a connection's inspection outcome to the writer, which keeps the
//!   session table and decides it in order ([`Event::Pending`]).
//!
//! Limits are per worker: `--max-flows` and `--total-buffer` are divided by N (rounded up), so
//! the memory bound of the whole run stays what the flags say. A capture that reaches them can
//! therefore see different evictions than with one thread; below them the output is the same
//! byte for byte (tests/threads.rs). A closed output stops the reading between files, not
//! within a block-read file.

use crate::analyzer::{self, Config, Engine, Packets, Sessions};
use crate::decode::{self, Skip, TcpSegment};
use crate::flows::FlowFacts;
use crate::inspect::Outcome;
use crate::peer_authentication::Cluster;
use crate::report::{Collect, FlowReport, Output, Summary};
use crate::source::{BlockBytes, BlockEnd, CaptureReader, LinkType, Packet, PcapBlocks, PCAP_DATA_START};
use crate::tunnel::NodeEncrypted;
use crate::verdict::{self, Kind, Resumption, SessionOrigin};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Most frames in one chunk; a chunk also ends with the reader's buffer (1 MiB of input).
pub const BATCH_FRAMES: usize = 2048;
/// Chunks in flight per worker before the reader waits.
const QUEUE: usize = 4;
/// Reports queued per worker before the workers wait for the writer.
const REPORTS_QUEUED: usize = 4;

/// The worker for a segment: a hash of its two endpoints that is the same in both directions.
/// Tunnelled segments carry their inner addresses, so this is the pod-to-pod connection.
pub fn shard_of(seg: &TcpSegment<'_>, workers: usize) -> usize {
    let h = endpoint_hash(seg.src, seg.sport) ^ endpoint_hash(seg.dst, seg.dport);
    // Multiply-shift onto 0..workers: uses the high bits, which the mixing made uniform.
    ((u128::from(fmix64(h)) * workers as u128) >> 64) as usize
}

fn endpoint_hash(ip: IpAddr, port: u16) -> u64 {
    let x = match ip {
        IpAddr::V4(a) => u64::from(u32::from(a)) | 1 << 32,
        IpAddr::V6(a) => {
            let b = u128::from(a);
            (b as u64) ^ ((b >> 64) as u64).rotate_left(29) ^ 2 << 32
        }
    };
    fmix64(x ^ (u64::from(port) << 40).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// MurmurHash3's 64-bit finalizer.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Where an event belongs in the single-threaded order: the input frame it happened at (1 for
/// the first frame, `u64::MAX` at the end of input), 0 for a sweep before that frame or 1 for
/// the frame's own segment, and then the flow id (sweeps, end of input: oldest first) or the
/// order in which the one worker that owns the frame produced them.
pub type EventKey = (u64, u8, u64);

/// What a worker engine did that one engine would have written or remembered.
pub enum Event {
    /// A connection was created; the writer gives it the next flow id.
    Created,
    /// The verdict is final. `line`: the JSON line for `-o jsonl`, written with id 0
    /// (`line_without_id`). `session`: keys a later resumed session may use.
    Decided {
        line: Option<Vec<u8>>,
        session: Option<(Vec<Resumption>, Kind, Option<String>)>,
    },
    /// A resumed session: the writer decides it (its origin may be on another worker).
    Pending {
        facts: Box<FlowFacts>,
        outcome: Outcome,
        keys: Vec<Resumption>,
    },
    /// Closed, for outputs that collect reports (table, JSON); the id is the provisional one.
    Closed(Box<FlowReport>),
    /// Closed, and the verdict is the writer's (it was [`Event::Pending`]).
    ClosedPending(Box<FlowFacts>),
}

/// The events of one worker engine, in the order it produced them (which is key order).
pub(crate) struct ShardLog {
    /// The output collects reports at close (table, JSON) rather than streaming JSON lines.
    pub(crate) keep: bool,
    index: u64,
    phase: u8,
    seq: u64,
    events: Vec<(EventKey, u64, Event)>,
}

impl ShardLog {
    pub(crate) fn new(keep: bool) -> Self {
        ShardLog {
            keep,
            index: 0,
            phase: 0,
            seq: 0,
            events: Vec::new(),
        }
    }

    /// Events from now on happen at frame `index`, in a sweep (0) or its segment (1).
    pub(crate) fn at(&mut self, index: u64, phase: u8) {
        self.index = index;
        self.phase = phase;
    }

    /// The current frame index: a new flow's provisional id.
    pub(crate) fn index(&self) -> u64 {
        self.index
    }

    pub(crate) fn push(&mut self, flow_id: u64, e: Event) {
        let sub = if self.phase == 0 {
            flow_id
        } else {
            self.seq += 1;
            self.seq
        };
        self.events.push(((self.index, self.phase, sub), flow_id, e));
    }

    pub(crate) fn take(&mut self) -> Vec<(EventKey, u64, Event)> {
        std::mem::take(&mut self.events)
    }
}

/// `report` as a JSON line (newline included) with id 0: the writer replaces the leading
/// `{"id":0,` ([`ID_PREFIX`]) once the id is known. `id` is the first field of [`FlowReport`].
pub(crate) fn line_without_id(report: &mut FlowReport) -> Vec<u8> {
    report.id = 0;
    // Room for a typical line, so that serializing does not grow the vector step by step.
    let mut line = Vec::with_capacity(2048);
    if serde_json::to_writer(&mut line, report).is_err() {
        line.clear();
    }
    line.push(b'\n');
    debug_assert!(line.starts_with(ID_PREFIX));
    line
}

/// How a line from [`line_without_id`] starts.
pub(crate) const ID_PREFIX: &[u8] = b"{\"id\":0,";

/// A frame as the calling thread framed it: only where it is, not decoded.
struct Frame {
    index: u64,
    ts: u64,
    link: LinkType,
    /// The captured bytes, in the chunk's buffer.
    data: std::ops::Range<usize>,
}

/// Consecutive frames of the input, all in one of the reader's buffers, which the chunk keeps
/// alive; every worker gets the same chunk, decodes every frame's headers and goes on only
/// with the segments that hash to it. No payload is copied.
#[derive(Default)]
struct Chunk {
    buffer: Option<Arc<Vec<u8>>>,
    frames: Vec<Frame>,
    /// Every frame up to this index is in this chunk or an earlier one.
    upto: u64,
    /// The last chunk: close everything.
    finish: bool,
}

/// What a worker sends the writer.
struct Report {
    worker: usize,
    events: Vec<(EventKey, u64, Event)>,
    upto: u64,
    /// With the last report.
    summary: Option<Summary>,
    /// Reading a file block by block: the file's bytes read up to here (for progress).
    offset: u64,
    /// Reading a file block by block: with the worker's last report for the file.
    file_end: Option<FileEnd>,
    /// The worker panicked (its join says how): nothing else in this report.
    gone: bool,
}

/// What the calling thread gives every worker.
enum Job {
    /// Frames it framed (any input).
    Chunk(Arc<Chunk>),
    /// A plain pcap file for the workers to read, frame and decode in blocks themselves.
    File(Arc<FileJob>),
}

struct FileJob {
    blocks: PcapBlocks,
    /// The index of the file's first frame.
    first_index: u64,
}

/// What a worker gets from other workers while reading a file block by block.
enum Msg {
    Link(Link),
    Block(Arc<Block>),
    /// A worker panicked: nothing more will come from it.
    Gone,
}

/// Tells every worker and the writer when this worker panics, so that none waits for it
/// forever (a worker through with a file waits for its next job, not for messages).
struct Farewell {
    me: usize,
    peers: Vec<Sender<Msg>>,
    writer: SyncSender<Report>,
}

impl Drop for Farewell {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for peer in &self.peers {
                let _ = peer.send(Msg::Gone);
            }
            let _ = self.writer.send(Report {
                worker: self.me,
                events: Vec::new(),
                upto: 0,
                summary: None,
                offset: 0,
                file_end: None,
                gone: true,
            });
        }
    }
}

/// From the worker that framed a block to the worker of the next block.
enum Link {
    /// The next block's first record starts at `offset` and is frame `index`.
    Next { offset: u64, index: u64 },
    /// The file ended.
    End(FileEnd),
}

/// Where a file ended, and why if not cleanly.
#[derive(Clone)]
struct FileEnd {
    /// The block it ended in.
    block: u64,
    /// The index of its last frame (of the frame before it, if it had none).
    last_index: u64,
    error: Option<String>,
}

/// A block of a pcap file, read, framed and decoded by one worker (its owner), shared with
/// every other worker: each worker's segments, decoded, with their payload as a range of the
/// block's bytes, and what every worker needs to run the capture clock.
#[derive(Default)]
struct Block {
    /// Its number: it holds the records that start in `[k * size, (k + 1) * size)`.
    k: u64,
    /// The worker that read it.
    owner: usize,
    bytes: BlockBytes,
    /// The index of the block's first frame.
    first_index: u64,
    /// Frames in the block.
    frames: u64,
    /// By worker: the segments that hash to it, in input order.
    segs: Vec<Vec<Seg>>,
    /// The capture clock: each TCP frame whose timestamp is later than every earlier one's in
    /// the block, as (index, timestamp). A sweep is due at the first TCP frame at or past a
    /// time, which is always one of these, so a worker finds it by binary search without
    /// going through the other workers' frames.
    clock: Vec<(u64, u64)>,
    /// TCP frames, and the other frames in order (worker 0 counts them).
    tcp: u64,
    other: Vec<(u64, Result<NodeEncrypted, Skip>)>,
}

/// A TCP segment of a [`Block`]: `seg.payload` is empty, the payload is `payload` of the
/// block's bytes.
struct Seg {
    index: u64,
    ts: u64,
    seg: TcpSegment<'static>,
    payload: std::ops::Range<usize>,
}

/// Where the writer puts connections.
pub enum Sink<W: Write> {
    /// `-o jsonl`: a line as soon as the verdict is final.
    Lines(W),
    /// Table and JSON: reports collected at close, sorted at the end.
    Collect(Collect),
}

/// The result of a sharded run: the sink, the summary of all threads, and the first write
/// error of the output, if any.
pub struct Finished<W: Write> {
    pub sink: Sink<W>,
    pub summary: Summary,
    pub out_error: Option<io::Error>,
}

/// The calling thread's side of a sharded run: it reads, hands chunks of frames to the
/// workers, and writes what they report in between. Give it frames ([`Packets`]), then
/// [`Sharded::finish`].
pub struct Sharded<W: Write> {
    workers: Vec<SyncSender<Job>>,
    handles: Vec<JoinHandle<()>>,
    reports: Receiver<Report>,
    writer: Writer<W>,
    chunk: Chunk,
    /// Chunks sent earlier, to reuse once the workers are done with them.
    spare: Vec<Arc<Chunk>>,
    index: u64,
    /// Frames, and frames of link types no worker can decode (the rest of what one engine
    /// counts per frame, worker 0 counts).
    summary: Summary,
    finished: bool,
    /// Bytes of a block of a plain pcap file ([`crate::source::BLOCK`]; tests use small ones).
    block_size: usize,
}

impl<W: Write> Sharded<W> {
    /// Start `n` workers (at least 2).
    pub fn start(cfg: &Config, n: usize, sink: Sink<W>, cluster: Option<Arc<Cluster>>) -> Self {
        let n = n.max(2);
        let keep = matches!(sink, Sink::Collect(_));
        let per_worker = Config {
            max_flows: cfg.max_flows.div_ceil(n).max(1),
            total_buffer_cap: cfg.total_buffer_cap.div_ceil(n),
            ..cfg.clone()
        };
        // Bounded: workers reading a file themselves wait for a slow output instead of piling
        // up what it has not written yet.
        let (report_tx, reports) = mpsc::sync_channel::<Report>(REPORTS_QUEUED * n);
        // Block by block reading: every worker's inbox.
        let (peers, inboxes): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel::<Msg>()).unzip();
        let mut inboxes = inboxes.into_iter();
        let mut workers = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for me in 0..n {
            let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
            let mut engine = Engine::sharded(per_worker.clone(), NoOutput, ShardLog::new(keep));
            if let Some(c) = &cluster {
                engine = engine.with_cluster(c.clone());
            }
            let Some(inbox) = inboxes.next() else {
                unreachable!("one inbox per worker");
            };
            let worker = Worker {
                me,
                workers: n,
                engine,
                now: 0,
                last_sweep: 0,
                inbox,
                peers: peers.clone(),
                spare: Vec::new(),
            };
            let report_tx = report_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("mtlscope-worker-{me}"))
                .spawn(move || worker.run(rx, report_tx))
                .expect("spawning a worker thread");
            workers.push(tx);
            handles.push(handle);
        }
        let writer = Writer {
            sink,
            queues: (0..n).map(|_| VecDeque::new()).collect(),
            upto: vec![0; n],
            done: 0,
            summaries: Vec::new(),
            ids: FxHashMap::default(),
            next_id: 1,
            verdicts: FxHashMap::default(),
            sessions: Sessions::default(),
            max_sessions: cfg.max_sessions,
            show_payload: cfg.show_payload,
            cluster,
            summary: Summary::default(),
            out_error: None,
        };
        Sharded {
            workers,
            handles,
            reports,
            writer,
            chunk: Chunk::default(),
            spare: Vec::new(),
            index: 0,
            summary: Summary::default(),
            finished: false,
            block_size: crate::source::BLOCK,
        }
    }

    /// Hand worker `w` a job. While its queue is full, write what the workers report: a
    /// worker may be waiting to hand in a report (the report queue is bounded too).
    fn give(&mut self, w: usize, job: Job) {
        let mut job = job;
        loop {
            match self.workers[w].try_send(job) {
                // Disconnected: the worker panicked; its join reports that.
                Ok(()) | Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(j)) => job = j,
            }
            match self.reports.recv_timeout(std::time::Duration::from_millis(1)) {
                Ok(r) => self.writer.report(r),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Send the chunk so far to every worker, then write what the workers have reported.
    fn send(&mut self, finish: bool) {
        let next = self.recycled();
        let mut chunk = std::mem::replace(&mut self.chunk, next);
        chunk.upto = self.index;
        chunk.finish = finish;
        let chunk = Arc::new(chunk);
        for w in 0..self.workers.len() {
            self.give(w, Job::Chunk(chunk.clone()));
        }
        if self.spare.len() < 2 * QUEUE + 2 {
            self.spare.push(chunk);
        }
        while let Ok(r) = self.reports.try_recv() {
            self.writer.report(r);
        }
    }

    /// An empty chunk, reusing the item lists of one every worker is done with (lists of a
    /// few hundred kilobytes, which the allocator would otherwise map and unmap each time).
    /// Chunks still in the spare list let go of their read buffer as soon as the workers are
    /// done, so the reader can read into it again.
    fn recycled(&mut self) -> Chunk {
        let mut reuse = None;
        for (i, c) in self.spare.iter_mut().enumerate() {
            if let Some(c) = Arc::get_mut(c) {
                c.buffer = None;
                reuse.get_or_insert(i);
            }
        }
        let Some(i) = reuse else {
            return Chunk::default();
        };
        let mut c = self.spare.swap_remove(i);
        let mut frames = Arc::get_mut(&mut c)
            .map(|c| std::mem::take(&mut c.frames))
            .unwrap_or_default();
        frames.clear();
        Chunk {
            frames,
            ..Chunk::default()
        }
    }

    /// Close every connection, wait for the workers, and return the output and the summary.
    pub fn finish(mut self) -> Finished<W> {
        Packets::finish(&mut self);
        self.workers.clear();
        while self.writer.done < self.handles.len() {
            match self.reports.recv() {
                Ok(r) => self.writer.report(r),
                Err(_) => break,
            }
        }
        for h in self.handles.drain(..) {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
        let mut done = self.writer.finish();
        let mut summary = std::mem::take(&mut self.summary);
        summary.absorb(done.summary);
        done.summary = summary;
        done
    }
}

impl<W: Write> Packets for Sharded<W> {
    fn frame(&mut self, p: &Packet<'_>) -> Result<(), Skip> {
        self.index += 1;
        self.summary.packets += 1;
        if !decode::supports(p.link) {
            let skip = Skip::UnsupportedLink(p.link);
            self.summary.skipped(skip);
            return Err(skip);
        }
        if self.chunk.buffer.as_ref().is_some_and(|b| !Arc::ptr_eq(b, p.buffer)) {
            self.send(false);
        }
        if self.chunk.buffer.is_none() {
            self.chunk.buffer = Some(p.buffer.clone());
            self.chunk.frames.reserve(BATCH_FRAMES);
        }
        self.chunk.frames.push(Frame {
            index: self.index,
            ts: p.ts_ns,
            link: p.link,
            data: p.at..p.at + p.data.len(),
        });
        if self.chunk.frames.len() >= BATCH_FRAMES {
            self.send(false);
        }
        Ok(())
    }

    fn stopped(&self) -> bool {
        self.writer.out_error.is_some()
    }

    fn open_flows(&self) -> Option<usize> {
        None
    }

    fn read_ahead(&self) -> bool {
        true
    }

    /// A plain pcap file of a link type the workers decode: the workers read, frame and decode
    /// it block by block themselves, and the calling thread only writes.
    fn read_file(
        &mut self,
        path: &str,
        reader: &CaptureReader,
        bar: Option<&indicatif::ProgressBar>,
    ) -> Option<Result<(), String>> {
        let blocks = PcapBlocks::open(path, reader, self.block_size)?;
        if !decode::supports(blocks.link()) {
            return None;
        }
        // The frames of the input before this file go first.
        if !self.chunk.frames.is_empty() {
            self.send(false);
        }
        let job = Arc::new(FileJob {
            blocks,
            first_index: self.index + 1,
        });
        for w in 0..self.workers.len() {
            self.give(w, Job::File(job.clone()));
        }
        drop(job);
        let mut ended = 0;
        let mut end = None;
        let mut offset = 0;
        while ended < self.handles.len() {
            // A worker panicked, and `finish` says so.
            let Ok(mut r) = self.reports.recv() else { break };
            if r.gone {
                break;
            }
            if let Some(e) = r.file_end.take() {
                ended += 1;
                end = Some(e);
            }
            if let Some(b) = bar {
                if r.offset > offset {
                    offset = r.offset;
                    b.set_position(offset);
                }
            }
            self.writer.report(r);
        }
        // None: a worker panicked, and `finish` reports it.
        let Some(end) = end else {
            return Some(Ok(()));
        };
        self.index = end.last_index;
        Some(match end.error {
            Some(e) => Err(e),
            None => Ok(()),
        })
    }

    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            self.send(true);
        }
    }
}

/// Workers write nothing themselves: their engine's log has the events.
struct NoOutput;

impl Output for NoOutput {
    fn wants_closed(&self) -> bool {
        false
    }
    fn decided(&mut self, _report: &FlowReport) -> io::Result<()> {
        Ok(())
    }
    fn closed(&mut self, _report: FlowReport) -> io::Result<()> {
        Ok(())
    }
}

/// One worker: the engine for the connections that hash to it.
struct Worker {
    me: usize,
    workers: usize,
    engine: Engine<NoOutput>,
    /// The capture clock over all segments, as one engine runs it (every worker sees every
    /// frame, so each runs the same clock and sweeps at the same frames).
    now: u64,
    last_sweep: u64,
    /// Reading a file block by block: the offset of this worker's next block, from the worker
    /// before it, and other workers' blocks.
    inbox: Receiver<Msg>,
    /// Every worker's inbox, by worker.
    peers: Vec<Sender<Msg>>,
    /// Blocks of this worker's, to reuse once no worker holds them any more.
    spare: Vec<Arc<Block>>,
}

/// Blocks a worker keeps for reuse.
const SPARE_BLOCKS: usize = 8;
/// How far ahead of going through the blocks a worker reads and frames its own: what is
/// read too far ahead waits in memory, out of the caches. 2, 3 and 4 measured the same on
/// the benchmark capture (docs/performance.md); unbounded, the whole file was read ahead.
const AHEAD: u64 = 3;
/// How many times a worker looks for a message before it sleeps (tens of microseconds).
const SPINS: u32 = 2000;
/// Blocks between a worker's reports to the writer: each report wakes the writing thread,
/// which then takes a core from a worker.
const REPORT_BLOCKS: u64 = 8;

/// A worker's progress through a file read block by block.
struct FileState {
    /// The next block to go through.
    next: u64,
    /// This worker's next block, not framed yet (waiting for its offset).
    pending: Option<u64>,
    /// This worker's blocks, framed and decoded, not yet gone through.
    ready: VecDeque<Arc<Block>>,
    /// Other workers' blocks, by block number.
    inbox: std::collections::BTreeMap<u64, Arc<Block>>,
    /// Offsets for this worker's blocks, in order.
    links: VecDeque<Link>,
    end: Option<FileEnd>,
    /// The last frame gone through.
    upto: u64,
    /// `next` at the last report.
    reported: u64,
}

impl FileState {
    /// False when a worker is gone.
    fn take(&mut self, m: Msg) -> bool {
        match m {
            Msg::Link(l) => self.links.push_back(l),
            Msg::Block(b) => {
                self.inbox.insert(b.k, b);
            }
            Msg::Gone => return false,
        }
        true
    }
}

impl Worker {
    fn run(mut self, rx: Receiver<Job>, out: SyncSender<Report>) {
        let _farewell = Farewell {
            me: self.me,
            peers: self.peers.clone(),
            writer: out.clone(),
        };
        for job in rx {
            let chunk = match job {
                Job::Chunk(chunk) => chunk,
                Job::File(file) => {
                    if self.file(&file, &out) {
                        continue;
                    }
                    return;
                }
            };
            self.items(&chunk);
            let (upto, finish) = (chunk.upto, chunk.finish);
            // Let the reader reuse the buffer as soon as every worker is through with it.
            drop(chunk);
            if finish {
                self.engine.finish();
            }
            let report = Report {
                worker: self.me,
                events: self.engine.take_events(),
                upto: if finish { u64::MAX } else { upto },
                summary: finish.then(|| std::mem::take(&mut self.engine.summary)),
                offset: 0,
                file_end: None,
                gone: false,
            };
            if out.send(report).is_err() || finish {
                return;
            }
        }
    }

    /// Decode every frame of the chunk (the common Ethernet/IP/TCP frame at fixed offsets,
    /// [`decode::decode_packet`]) and go on with the segments that hash to this worker. What
    /// one engine counts per frame (TCP segments, skipped frames, node-level encryption)
    /// worker 0 counts.
    fn items(&mut self, chunk: &Chunk) {
        let Some(buffer) = &chunk.buffer else {
            return;
        };
        for f in &chunk.frames {
            let data = buffer.get(f.data.clone()).unwrap_or_default();
            match decode::decode_packet(f.link, data) {
                Ok(decode::Packet::Tcp(seg)) => {
                    self.clock(f.index, f.ts);
                    if shard_of(&seg, self.workers) == self.me {
                        self.engine.shard_segment(f.index, f.ts, &seg);
                    }
                }
                Ok(decode::Packet::NodeEncrypted(e)) => self.not_tcp(f.ts, Ok(&e)),
                Err(skip) => self.not_tcp(f.ts, Err(skip)),
            }
        }
    }

    /// A TCP segment at frame `index`, this worker's or not: count it, run the clock.
    #[inline]
    fn clock(&mut self, index: u64, ts: u64) {
        if self.me == 0 {
            self.engine.summary.tcp_packets += 1;
        }
        if let Some(now) = analyzer::sweep_due(&mut self.now, &mut self.last_sweep, ts) {
            self.engine.shard_sweep(index, now);
        }
    }

    /// A frame without a TCP segment: worker 0 counts it.
    fn not_tcp(&mut self, ts: u64, what: Result<&NodeEncrypted, Skip>) {
        if self.me == 0 {
            match what {
                Ok(e) => self.engine.summary.node_encrypted(ts, e),
                Err(skip) => self.engine.summary.skipped(skip),
            }
        }
    }

    /// A plain pcap file, block by block. This worker reads (the kernel's copy), frames and
    /// decodes blocks `me`, `me + N`, `me + 2N`... and shares them; every worker goes through
    /// every block in file order, as with chunks. A block can be framed once the worker of
    /// the block before says where its first record starts, and that is passed on at once:
    /// between blocks, a worker frames its next block as soon as it may, so that no worker
    /// waits for another's processing. False when another thread is gone (a panic, which
    /// the calling thread reports).
    fn file(&mut self, job: &FileJob, out: &SyncSender<Report>) -> bool {
        let n = self.workers as u64;
        let mut st = FileState {
            next: 0,
            pending: None,
            ready: VecDeque::new(),
            inbox: std::collections::BTreeMap::new(),
            links: VecDeque::new(),
            end: None,
            upto: job.first_index - 1,
            reported: 0,
        };
        self.read_own(&mut st, self.me as u64);
        loop {
            while let Ok(m) = self.inbox.try_recv() {
                if !st.take(m) {
                    return false;
                }
            }
            if !self.frame_own(job, &mut st) {
                return false;
            }
            if st.end.as_ref().is_some_and(|e| st.next > e.block) {
                break;
            }
            let block = if st.next % n != self.me as u64 {
                st.inbox.remove(&st.next)
            } else if st.ready.front().is_some_and(|b| b.k == st.next) {
                st.ready.pop_front()
            } else {
                None
            };
            let Some(block) = block else {
                let alive = wait(&self.inbox).is_ok_and(|m| st.take(m));
                if !alive {
                    return false;
                }
                continue;
            };
            self.block(&block);
            st.upto = block.first_index + block.frames - 1;
            st.next += 1;
            // Blocks that grew for a huge record (a corrupt length can ask for 256 MiB) are
            // not kept, as the reader does not keep such buffers.
            if block.owner == self.me
                && self.spare.len() < SPARE_BLOCKS
                && block.bytes.buf.len() <= job.blocks.capacity()
            {
                self.spare.push(block);
            }
            if st.next - st.reported >= REPORT_BLOCKS {
                st.reported = st.next;
                if out
                    .send(self.report(st.upto, st.next * job.blocks.size as u64, None))
                    .is_err()
                {
                    return false;
                }
            }
        }
        let Some(end) = st.end else { return false };
        out.send(self.report(end.last_index, st.next * job.blocks.size as u64, Some(end)))
            .is_ok()
    }

    /// Block `k` is this worker's next, unless the file ended before it.
    fn read_own(&mut self, st: &mut FileState, k: u64) {
        if st.end.as_ref().is_some_and(|e| k > e.block) {
            return;
        }
        st.pending = Some(k);
    }

    /// Read, frame, decode and share this worker's next block once the offset of its first
    /// record is known. Reading only then, not ahead, keeps the block in this core's cache
    /// for framing and decoding. False when another worker is gone.
    fn frame_own(&mut self, job: &FileJob, st: &mut FileState) -> bool {
        let n = self.workers as u64;
        let me = self.me as u64;
        let Some(k) = st.pending else {
            return true;
        };
        // Not too far ahead of going through the blocks: what is read ahead of that waits in
        // memory, out of the caches.
        // The end of the file is passed on whatever the distance: the workers after this one
        // wait for it, and going through the blocks never gets past the end.
        if k >= st.next + AHEAD && !matches!(st.links.front(), Some(Link::End(_))) {
            return true;
        }
        let link = if k == 0 {
            Link::Next {
                offset: PCAP_DATA_START,
                index: job.first_index,
            }
        } else {
            match st.links.pop_front() {
                Some(link) => link,
                None => return true,
            }
        };
        st.pending = None;
        let (offset, index) = match link {
            Link::Next { offset, index } => (offset, index),
            Link::End(e) => {
                // Everyone after this worker up to the one that found the end waits too.
                let pass = (me + 1) % n != e.block % n;
                st.end = Some(e.clone());
                return !pass
                    || self.peers[((me + 1) % n) as usize]
                        .send(Msg::Link(Link::End(e)))
                        .is_ok();
            }
        };
        let mut block = self.spare_block();
        block.k = k;
        job.blocks.read(k, &mut block.bytes);
        let framed = job.blocks.frame(k, &mut block.bytes, offset);
        let frames = block.bytes.frames.len() as u64;
        let link = match framed {
            BlockEnd::Next(offset) => Link::Next {
                offset,
                index: index + frames,
            },
            BlockEnd::End(error) => {
                let e = FileEnd {
                    block: k,
                    last_index: index + frames - 1,
                    error: error.map(|e| e.to_string()),
                };
                st.end = Some(e.clone());
                Link::End(e)
            }
        };
        if self.peers[((me + 1) % n) as usize].send(Msg::Link(link)).is_err() {
            return false;
        }
        block.first_index = index;
        block.owner = self.me;
        self.decode_block(&mut block, job.blocks.link());
        let block = Arc::new(block);
        for (w, tx) in self.peers.iter().enumerate() {
            if w != self.me && tx.send(Msg::Block(block.clone())).is_err() {
                return false;
            }
        }
        st.ready.push_back(block);
        self.read_own(st, k + n);
        true
    }

    /// What the engine did since the last report, which went up to frame `upto`.
    fn report(&mut self, upto: u64, offset: u64, file_end: Option<FileEnd>) -> Report {
        Report {
            worker: self.me,
            upto,
            events: self.engine.take_events(),
            summary: None,
            offset,
            file_end,
            gone: false,
        }
    }

    /// A block to read into: the one used last that no other worker holds any more (the most
    /// likely to be in this core's cache still), or a new one.
    fn spare_block(&mut self) -> Block {
        let free = self.spare.iter().rposition(|b| Arc::strong_count(b) == 1);
        free.and_then(|i| Arc::try_unwrap(self.spare.remove(i)).ok())
            .unwrap_or_default()
    }

    /// Decode every frame of a block this worker read.
    fn decode_block(&self, block: &mut Block, link: LinkType) {
        block.segs.resize_with(self.workers, Vec::new);
        for s in &mut block.segs {
            s.clear();
        }
        block.clock.clear();
        block.other.clear();
        block.tcp = 0;
        block.frames = block.bytes.frames.len() as u64;
        let buf = &block.bytes.buf;
        let base = buf.as_ptr().addr();
        let mut latest = 0;
        for (i, f) in block.bytes.frames.iter().enumerate() {
            let index = block.first_index + i as u64;
            let data = buf.get(f.data.clone()).unwrap_or_default();
            match decode::decode_packet(link, data) {
                Ok(decode::Packet::Tcp(seg)) => {
                    block.tcp += 1;
                    if f.ts_ns > latest || block.clock.is_empty() {
                        latest = f.ts_ns;
                        block.clock.push((index, f.ts_ns));
                    }
                    let at = seg.payload.as_ptr().addr().wrapping_sub(base);
                    let payload = if seg.payload.is_empty() || at > buf.len() {
                        0..0
                    } else {
                        at..at + seg.payload.len()
                    };
                    block.segs[shard_of(&seg, self.workers)].push(Seg {
                        index,
                        ts: f.ts_ns,
                        seg: TcpSegment { payload: &[], ..seg },
                        payload,
                    });
                }
                Ok(decode::Packet::NodeEncrypted(e)) => block.other.push((f.ts_ns, Ok(e))),
                Err(skip) => block.other.push((f.ts_ns, Err(skip))),
            }
        }
    }

    /// A block: this worker's segments, the sweeps due before each (and after the last),
    /// and, on worker 0, the counts of one engine.
    fn block(&mut self, block: &Block) {
        if self.me == 0 {
            self.engine.summary.packets += block.frames;
            self.engine.summary.tcp_packets += block.tcp;
            for (ts, what) in &block.other {
                self.not_tcp(*ts, what.as_ref().map_err(|s| *s));
            }
        }
        let buf = &block.bytes.buf;
        let mut clock = &block.clock[..];
        let segs = block.segs.get(self.me).map(Vec::as_slice).unwrap_or_default();
        for s in segs {
            // Most blocks have no sweep at all (one a second of capture): one comparison.
            if clock
                .last()
                .is_some_and(|&(_, ts)| ts >= self.last_sweep + analyzer::SWEEP_EVERY_NS)
            {
                clock = self.sweeps_before(clock, s.index);
            }
            let seg = TcpSegment {
                payload: buf.get(s.payload.clone()).unwrap_or_default(),
                ..s.seg
            };
            self.engine.shard_segment(s.index, s.ts, &seg);
        }
        self.sweeps_before(clock, u64::MAX);
        if let Some(&(_, latest)) = block.clock.last() {
            self.now = self.now.max(latest);
        }
    }

    /// The sweeps one engine would make at the TCP frames of `clock` up to frame `index`
    /// (before its segment); returns the rest of `clock`. As [`analyzer::sweep_due`]: a sweep
    /// is due at the first frame at or past the last sweep's time plus the interval (the
    /// latest time seen is always below that, so "later than the latest" adds nothing).
    fn sweeps_before<'c>(&mut self, mut clock: &'c [(u64, u64)], index: u64) -> &'c [(u64, u64)] {
        loop {
            let due = self.last_sweep + analyzer::SWEEP_EVERY_NS;
            let at = clock.partition_point(|&(_, ts)| ts < due);
            match clock.get(at) {
                Some(&(i, ts)) if i <= index => {
                    self.now = ts;
                    self.last_sweep = ts;
                    self.engine.shard_sweep(i, ts);
                    clock = &clock[at + 1..];
                }
                _ => return clock,
            }
        }
    }
}

/// The next message: what another worker sends is usually microseconds away, and waking a
/// sleeping thread costs more than that, so spin a while first.
fn wait(inbox: &Receiver<Msg>) -> Result<Msg, mpsc::RecvError> {
    for _ in 0..SPINS {
        match inbox.try_recv() {
            Ok(m) => return Ok(m),
            Err(mpsc::TryRecvError::Disconnected) => return Err(mpsc::RecvError),
            Err(mpsc::TryRecvError::Empty) => std::hint::spin_loop(),
        }
    }
    inbox.recv()
}

/// Merges the workers' events in input order and writes them as one engine would.
struct Writer<W: Write> {
    sink: Sink<W>,
    queues: Vec<VecDeque<(EventKey, u64, Event)>>,
    /// Per worker: every event at a frame up to this index has arrived.
    upto: Vec<u64>,
    /// Workers that sent their last report, and their summaries.
    done: usize,
    summaries: Vec<(usize, Summary)>,
    /// Provisional id (creating frame) -> flow id, for connections not yet fully reported.
    ids: FxHashMap<u64, u64>,
    next_id: u64,
    /// Verdicts the writer decided ([`Event::Pending`]), until their connection closes.
    verdicts: FxHashMap<u64, verdict::Verdict>,
    sessions: Sessions,
    max_sessions: usize,
    show_payload: bool,
    cluster: Option<Arc<Cluster>>,
    summary: Summary,
    out_error: Option<io::Error>,
}

impl<W: Write> Writer<W> {
    fn report(&mut self, r: Report) {
        if r.gone {
            return;
        }
        self.queues[r.worker].extend(r.events);
        self.upto[r.worker] = r.upto;
        if let Some(s) = r.summary {
            self.summaries.push((r.worker, s));
            self.done += 1;
        }
        self.drain();
    }

    fn finish(mut self) -> Finished<W> {
        self.summaries.sort_by_key(|(w, _)| *w);
        let mut summary = Summary::default();
        for (_, s) in self.summaries.drain(..) {
            summary.absorb(s);
        }
        summary.absorb(std::mem::take(&mut self.summary));
        if let Sink::Lines(w) = &mut self.sink {
            if let Err(e) = w.flush() {
                self.out_error.get_or_insert(e);
            }
        }
        Finished {
            sink: self.sink,
            summary,
            out_error: self.out_error,
        }
    }

    /// Handle, in key order, every event no worker can still precede.
    fn drain(&mut self) {
        let safe = self.upto.iter().copied().min().unwrap_or(0);
        let mut wrote = false;
        loop {
            let next = self
                .queues
                .iter()
                .enumerate()
                .filter_map(|(w, q)| q.front().map(|e| (e.0, w)))
                .filter(|(k, _)| k.0 <= safe)
                .min();
            let Some((_, w)) = next else { break };
            let Some((_, pid, event)) = self.queues[w].pop_front() else {
                break;
            };
            wrote |= self.event(pid, event);
        }
        if wrote {
            if let Sink::Lines(w) = &mut self.sink {
                // Someone may be tailing this: what was decided shows up now.
                if let Err(e) = w.flush() {
                    self.fail(e);
                }
            }
        }
    }

    fn fail(&mut self, e: io::Error) {
        self.out_error.get_or_insert(e);
    }

    /// One event; true when a line was written.
    fn event(&mut self, pid: u64, event: Event) -> bool {
        let keep = matches!(self.sink, Sink::Collect(_));
        match event {
            Event::Created => {
                self.ids.insert(pid, self.next_id);
                self.next_id += 1;
                false
            }
            Event::Decided { line, session } => {
                let id = self.id(pid, !keep);
                if let Some((keys, kind, client_identity)) = session {
                    self.remember(keys, id, kind, &client_identity);
                }
                match line {
                    Some(rest) => {
                        self.write_line(|w| {
                            write!(w, "{{\"id\":{id},")?;
                            w.write_all(rest.get(ID_PREFIX.len()..).unwrap_or_default())
                        });
                        true
                    }
                    None => false,
                }
            }
            Event::Pending {
                mut facts,
                outcome,
                keys,
            } => {
                facts.id = self.id(pid, !keep);
                let origin = match &outcome {
                    Outcome::Tls { facts, .. } => {
                        verdict::resumption(facts).and_then(|r| self.sessions.get(&r).cloned())
                    }
                    _ => None,
                };
                let v = analyzer::judge(outcome, &facts, origin.as_ref(), self.show_payload);
                self.remember(keys, facts.id, v.verdict, &v.client_identity);
                self.summary.count(&v);
                let report = analyzer::report(self.cluster.as_deref(), &facts, v);
                self.summary.count_finding(&report.kubernetes);
                if keep {
                    self.verdicts.insert(pid, report.verdict);
                    false
                } else {
                    self.write_line(|w| {
                        serde_json::to_writer(&mut *w, &report)?;
                        w.write_all(b"\n")
                    });
                    true
                }
            }
            Event::Closed(mut report) => {
                report.id = self.id(pid, true);
                self.collect(*report);
                false
            }
            Event::ClosedPending(mut facts) => {
                facts.id = self.id(pid, true);
                if let Some(v) = self.verdicts.remove(&pid) {
                    let report = analyzer::report(self.cluster.as_deref(), &facts, v);
                    self.collect(report);
                }
                false
            }
        }
    }

    /// The flow id for a provisional one; `last`: nothing more will be reported for it.
    fn id(&mut self, pid: u64, last: bool) -> u64 {
        let id = if last {
            self.ids.remove(&pid)
        } else {
            self.ids.get(&pid).copied()
        };
        id.expect("every connection is created before it is reported")
    }

    fn remember(&mut self, keys: Vec<Resumption>, flow_id: u64, kind: Kind, client_identity: &Option<String>) {
        for k in keys {
            let o = SessionOrigin {
                flow_id,
                kind,
                client_identity: client_identity.clone(),
            };
            self.sessions.insert(k, o, self.max_sessions);
        }
    }

    fn write_line(&mut self, f: impl FnOnce(&mut W) -> io::Result<()>) {
        if self.out_error.is_some() {
            return;
        }
        if let Sink::Lines(w) = &mut self.sink {
            if let Err(e) = f(w) {
                self.fail(e);
            }
        }
    }

    fn collect(&mut self, report: FlowReport) {
        if let Sink::Collect(c) = &mut self.sink {
            let _ = c.closed(report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TcpFlags;

    fn seg(src: &str, sport: u16, dst: &str, dport: u16) -> TcpSegment<'static> {
        TcpSegment {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            sport,
            dport,
            seq: 0,
            ack: 0,
            flags: TcpFlags(TcpFlags::ACK),
            payload: &[],
            wire_len: 0,
            tunnel: None,
        }
    }

    #[test]
    fn both_directions_of_a_connection_go_to_one_worker() {
        for n in 2..=8 {
            for port in 30000..31000u16 {
                let a = shard_of(&seg("10.77.0.1", port, "10.77.0.2", 4431), n);
                let b = shard_of(&seg("10.77.0.2", 4431, "10.77.0.1", port), n);
                assert_eq!(a, b, "port {port}, {n} workers");
                assert!(a < n);
                let a6 = shard_of(&seg("fd00::1", port, "fd00::2:1", 443), n);
                let b6 = shard_of(&seg("fd00::2:1", 443, "fd00::1", port), n);
                assert_eq!(a6, b6);
            }
        }
    }

    #[test]
    fn connections_between_two_hosts_spread_evenly() {
        // The benchmark capture: one client address, one server address, ephemeral ports.
        for n in [2, 3, 4] {
            let mut count = vec![0usize; n];
            for port in 20000..40000u16 {
                count[shard_of(&seg("10.77.0.1", port, "10.77.0.2", 4431), n)] += 1;
            }
            let even = 20000 / n;
            for c in &count {
                assert!(c.abs_diff(even) < even / 20, "{n} workers: {count:?}");
            }
        }
    }

    /// `-o jsonl` of one engine, and of `n` workers reading plain pcap files in blocks of
    /// `block_size` bytes; both end with the summary line, errors included.
    fn jsonl(inputs: &[String], workers: Option<(usize, usize)>) -> String {
        let cfg = Config::default();
        let out = match workers {
            None => {
                let mut engine = Engine::new(cfg, crate::report::JsonLines::new(Vec::new()));
                engine.summary.errors = crate::app::read_all(inputs, &mut None, &mut engine, false);
                engine.out.summary(&engine.summary).unwrap();
                engine.out.into_inner()
            }
            Some((n, block_size)) => {
                let mut sharded = Sharded::start(&cfg, n, Sink::Lines(Vec::new()), None);
                sharded.block_size = block_size;
                let errors = crate::app::read_all(inputs, &mut None, &mut sharded, false);
                let done = sharded.finish();
                let mut summary = done.summary;
                summary.errors = errors;
                let Sink::Lines(lines) = done.sink else { unreachable!() };
                let mut out = crate::report::JsonLines::new(lines);
                out.summary(&summary).unwrap();
                out.into_inner()
            }
        };
        String::from_utf8(out).unwrap()
    }

    /// Blocks small enough that records cross them, span several, and the end of a file (or
    /// a cut in it) lands on every worker: the output is one engine's, byte for byte. Every
    /// plain pcap file of captures/ alone, all of them in one run (connections and flow ids
    /// go on from file to file, pcapng files in between take the chunk path), and cut ones.
    #[test]
    fn blocks_of_any_size_give_the_output_of_one_engine() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert!(files.len() > 40, "captures/ has {} files", files.len());
        let tmp = std::env::temp_dir().join(format!("mtlscope-shard-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let biggest = files
            .iter()
            .filter(|f| f.ends_with(".pcap"))
            .max_by_key(|f| std::fs::metadata(f).unwrap().len())
            .unwrap();
        let bytes = std::fs::read(biggest).unwrap();
        let mut cut = Vec::new();
        for at in [25, 100, 1000, bytes.len() / 3, bytes.len() / 2, bytes.len() - 7] {
            let path = tmp.join(format!("cut-{at}.pcap"));
            std::fs::write(&path, &bytes[..at]).unwrap();
            cut.push(vec![path.to_string_lossy().into_owned()]);
        }
        let runs = files
            .iter()
            .filter(|f| f.ends_with(".pcap"))
            .map(|f| vec![f.clone()])
            .chain([files.clone()])
            .chain(cut);
        for inputs in runs {
            let one = jsonl(&inputs, None);
            for (n, size) in [
                (2, 97),
                (2, 1500),
                (3, 64),
                (3, 4096),
                (5, 97),
                (8, 300),
                (2, crate::source::BLOCK),
            ] {
                let many = jsonl(&inputs, Some((n, size)));
                assert!(
                    one == many,
                    "{inputs:?}: {n} workers, blocks of {size}:\n{one}\nvs\n{many}"
                );
            }
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn a_line_without_its_id_starts_right_after_it() {
        let mut report = crate::report::tests::sample_report(77);
        let whole = serde_json::to_string(&report).unwrap() + "\n";
        let line = line_without_id(&mut report);
        assert!(line.starts_with(ID_PREFIX));
        let rest = String::from_utf8(line[ID_PREFIX.len()..].to_vec()).unwrap();
        assert_eq!(format!("{{\"id\":77,{rest}"), whole);
    }
}
