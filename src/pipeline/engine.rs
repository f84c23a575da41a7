//! The engine: drives packets through decode -> flows -> streams -> inspect -> verdict and hands
//! finished connections to an [`Output`] (judged by the [`Judge`] here, or by the output's own
//! on its thread when it takes them as [`Inspected`]). One engine may read several inputs in a row (rotated
//! capture files), so a connection can continue from one file into the next.

use crate::pipeline::decode::{self, Skip, TcpSegment};
use crate::pipeline::flows::{Active, Flow, FlowFacts, FlowKey, Inspected, RolesFrom, State, NO_SOURCE};
use crate::pipeline::inspect::{Inspector, Outcome};
use crate::pipeline::judge::Judge;
use crate::pipeline::keylog::KeyLog;
use crate::pipeline::reassembly::{StreamSink, DEFAULT_DIR_CAP};
use crate::pipeline::record::{Output, Summary};
use crate::pipeline::side::{PerSide, Side};
use crate::pipeline::source::LinkType;
use crate::pipeline::verdict;
use std::io;
use std::sync::Arc;

/// Limits; the defaults suit a laptop and a 2-core CI runner alike.
#[derive(Debug, Clone)]
pub struct Config {
    /// Out-of-order bytes buffered per direction before a hole is given up.
    pub dir_cap: usize,
    /// A connection with no packet for this long (capture time) is closed and reported.
    pub idle_timeout_ns: u64,
    /// Most connections tracked at once; past it the least recently active are closed.
    pub max_flows: usize,
    /// Remembered session IDs / tickets for linking resumed sessions.
    pub max_sessions: usize,
    /// Bytes all connections together may buffer (out-of-order segments, partial handshake
    /// messages); past it the connections holding the most give up their holes first.
    pub total_buffer_cap: usize,
    /// Keep the first bytes of plaintext connections in the report (`--show-payload`).
    pub show_payload: bool,
    /// Most SYN-only connections (a SYN, nothing since) tracked at once; past it the oldest
    /// are reported `no-data` and counted as evicted. A SYN flood then costs this many flows'
    /// state, not `max_flows`' (about 500 bytes each).
    pub max_syn_only: usize,
    /// TLS key logs (`--keylog-file`, and the Decryption Secrets Blocks of pcapng inputs): the
    /// TLS 1.3 handshakes they have keys for are decrypted (docs/keylogs.md).
    pub keylog: Option<Arc<KeyLog>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            dir_cap: DEFAULT_DIR_CAP,
            idle_timeout_ns: 600 * 1_000_000_000,
            max_flows: 1_000_000,
            total_buffer_cap: 256 << 20,
            show_payload: false,
            max_sessions: 100_000,
            max_syn_only: 10_000,
            keylog: None,
        }
    }
}

impl Config {
    /// The verdict stage these limits ask for, joined to `cluster` when there is one: the
    /// engine's, or an output's that judges on its own thread.
    pub fn judge(&self, cluster: Option<&Arc<crate::policy::Cluster>>) -> Judge {
        Judge::new(self.max_sessions, self.show_payload, cluster.cloned())
    }
}

/// How long a closed connection's key is kept to absorb its last ACKs and retransmissions.
const CLOSED_LINGER_NS: u64 = 30 * 1_000_000_000;
/// How often (capture time) idle connections are looked for.
const SWEEP_EVERY_NS: u64 = 1_000_000_000;

/// The capture clock: `now` follows the latest timestamp, and every `SWEEP_EVERY_NS` of capture
/// time idle connections are looked for. Returns the time to sweep at, if one is due.
/// Saturating: a capture timestamp near `u64::MAX` (a corrupt or hostile file) must neither
/// panic a debug build nor wrap and close flows early in a release build.
fn sweep_due(now: &mut u64, last_sweep: &mut u64, ts: u64) -> Option<u64> {
    if ts > *now {
        *now = ts;
        if *now >= last_sweep.saturating_add(SWEEP_EVERY_NS) {
            *last_sweep = *now;
            return Some(*now);
        }
    }
    None
}

/// The reassembler's sink for one direction: the flow's inspector.
struct DirSink<'a> {
    inspector: &'a mut Inspector,
    dir: Side,
}

impl StreamSink for DirSink<'_> {
    fn data(&mut self, bytes: &[u8]) {
        self.inspector.data(self.dir, bytes);
    }
    fn gap(&mut self, len: u64) {
        self.inspector.gap(self.dir, len);
    }
}

/// Takes captured frames one by one.
pub trait Packets {
    /// One captured frame; the error says why it carries nothing usable.
    fn frame(&mut self, p: &crate::pipeline::source::Packet<'_>) -> Result<(), Skip>;
    /// The output is gone (a closed pipe): stop reading.
    fn stopped(&self) -> bool;
    /// Connections open now, when known (for the progress bar).
    fn open_flows(&self) -> Option<usize>;
    /// End of all input: close every connection.
    fn finish(&mut self);
    /// The frames that follow come from this input (see [`Engine::source`]).
    fn source(&mut self, name: &str);
    /// TLS key log lines from the input (a pcapng Decryption Secrets Block), for the frames
    /// that follow; `source` names the block in warnings.
    fn secrets(&mut self, source: &str, text: &[u8]);
}

impl<O: Output> Packets for Engine<O> {
    fn frame(&mut self, p: &crate::pipeline::source::Packet<'_>) -> Result<(), Skip> {
        self.packet(p.ts_ns, p.link, p.data)
    }
    fn secrets(&mut self, source: &str, text: &[u8]) {
        Engine::secrets(self, source, text)
    }
    fn stopped(&self) -> bool {
        self.out_error.is_some()
    }
    fn open_flows(&self) -> Option<usize> {
        Some(self.active_flows())
    }
    fn finish(&mut self) {
        Engine::finish(self)
    }
    fn source(&mut self, name: &str) {
        Engine::source(self, name)
    }
}

pub struct Engine<O: Output> {
    cfg: Config,
    table: crate::pipeline::flows::FlowTable,
    next_id: u64,
    /// The verdict stage, for the connections the output does not judge itself.
    judge: Judge,
    now: u64,
    last_sweep: u64,
    pub summary: Summary,
    pub out: O,
    /// First write error of the output (a closed pipe): the run stops.
    pub out_error: Option<io::Error>,
    /// Bytes buffered by all active connections, as last accounted per flow.
    buffered: usize,
    /// The inputs named so far ([`Engine::source`]); a connection's `file` is the one its first
    /// packet came from (a connection may go on in the next file).
    sources: Vec<String>,
    /// Flows created by a bare SYN, oldest first, as (id, slot). An entry may be stale (the
    /// flow got an answer, or is gone): it is checked when taken and pruned in bulk, so the
    /// queue stays under twice `max_syn_only` entries.
    syn_only: std::collections::VecDeque<(u64, usize)>,
}

impl<O: Output> Engine<O> {
    pub fn new(cfg: Config, out: O) -> Self {
        let judge = cfg.judge(None);
        let summary = Summary {
            keylog: cfg.keylog.as_ref().map(|_| Default::default()),
            ..Summary::default()
        };
        Engine {
            cfg,
            table: Default::default(),
            next_id: 1,
            judge,
            now: 0,
            last_sweep: 0,
            summary,
            out,
            out_error: None,
            buffered: 0,
            sources: Vec::new(),
            syn_only: Default::default(),
        }
    }

    /// The packets that follow come from this input (a capture file, `-`, an interface): the
    /// `file` of the connections they start.
    pub fn source(&mut self, name: &str) {
        if self.sources.last().map(String::as_str) != Some(name) {
            self.sources.push(name.to_string());
        }
    }

    /// Does the output need the verdict again when the connection closes?
    fn keep(&self) -> bool {
        self.out.wants_closed()
    }

    /// Join every connection to what this cluster dump knows (pods, PeerAuthentication).
    pub fn with_cluster(mut self, cluster: std::sync::Arc<crate::policy::Cluster>) -> Self {
        self.judge = self.judge.with_cluster(cluster);
        self
    }

    /// The input a connection's first packet came from.
    fn file(&self, flow: &FlowFacts) -> Option<String> {
        self.sources.get(flow.source as usize).cloned()
    }

    /// Key log lines carried by the input (a pcapng Decryption Secrets Block): the
    /// connections that start after them are decrypted with them, as with `--keylog-file`.
    pub fn secrets(&mut self, source: &str, text: &[u8]) {
        self.cfg
            .keylog
            .get_or_insert_with(Default::default)
            .add_text(source, text);
        self.summary.keylog.get_or_insert_with(Default::default);
    }

    /// The key log of this run, if any (for its warnings and counts).
    pub fn keylog(&self) -> Option<&KeyLog> {
        self.cfg.keylog.as_deref()
    }

    /// Connections currently tracked.
    pub fn active_flows(&self) -> usize {
        self.table.len()
    }

    /// One captured frame.
    pub fn packet(&mut self, ts_ns: u64, link: LinkType, data: &[u8]) -> Result<(), Skip> {
        self.decoded(ts_ns, decode::decode_packet(link, data))
    }

    /// One captured frame, decoded by the caller (the monitor decodes outside its engine's lock,
    /// and looks at the addresses before it hands the frame over).
    pub fn decoded(&mut self, ts_ns: u64, packet: Result<decode::Packet<'_>, Skip>) -> Result<(), Skip> {
        self.summary.packets += 1;
        match packet {
            Ok(decode::Packet::Tcp(seg)) => {
                self.summary.tcp_packets += 1;
                self.segment(ts_ns, &seg);
                Ok(())
            }
            Ok(decode::Packet::NodeEncrypted(e)) => {
                self.node_encrypted(ts_ns, &e);
                Ok(())
            }
            Err(skip) => {
                self.summary.skipped(skip);
                Err(skip)
            }
        }
    }

    /// The clock moved on without packets (a live capture's tick, `now_ns` the wall clock):
    /// connections idle past the timeout are closed and reported as if a packet had come.
    pub fn advance(&mut self, now_ns: u64) {
        if let Some(now) = sweep_due(&mut self.now, &mut self.last_sweep, now_ns) {
            self.sweep(now);
        }
    }

    pub fn segment(&mut self, ts: u64, seg: &TcpSegment<'_>) {
        if let Some(now) = sweep_due(&mut self.now, &mut self.last_sweep, ts) {
            self.sweep(now);
        }
        self.track(ts, seg);
    }

    fn track(&mut self, ts: u64, seg: &TcpSegment<'_>) {
        let (key, dir, found) = self.table.find(seg);
        let f = seg.flags;
        let new_syn = f.syn() && !f.ack();
        let slot = match found {
            Some(slot) => {
                let flow = self.table.get_mut(slot);
                // A SYN-ACK with a new ISN: the server's side of a new connection (a one-way
                // capture shows no SYN).
                let new_synack = f.syn() && f.ack() && flow.synack.is_some_and(|isn| isn != seg.seq);
                let moved = flow.bytes != PerSide::default();
                let reused = match flow.state {
                    State::Decided(_) | State::Active(_) => {
                        // A SYN after the connection ended, or with a new ISN once data moved.
                        let syn = new_syn
                            && (flow.closed() || flow.isn.is_some_and(|isn| isn != seg.seq) && moved)
                            && flow.isn != Some(seg.seq);
                        // A new SYN-ACK once the connection or the server's side ended, or data moved.
                        let synack = new_synack && (flow.closed() || flow.fin[dir] || moved);
                        syn || synack
                    }
                    State::Closed => new_syn || new_synack,
                };
                if reused {
                    self.close(slot);
                    self.table.remove(slot);
                    self.create(key, dir, seg, ts)
                } else if matches!(flow.state, State::Closed) {
                    flow.last_ts = ts;
                    return;
                } else {
                    slot
                }
            }
            None => self.create(key, dir, seg, ts),
        };
        let flow = self.table.get_mut(slot);
        flow.last_ts = ts.max(flow.last_ts);
        flow.packets[dir] += 1;
        flow.bytes[dir] += u64::from(seg.wire_len);
        flow.count_cut(dir, seg);
        if f.syn() && flow.isn.is_none() && !f.ack() {
            flow.isn = Some(seg.seq);
        }
        if f.syn() && f.ack() && flow.synack.is_none() {
            flow.synack = Some(seg.seq);
        }
        if let State::Active(a) = &mut flow.state {
            let Active { streams, inspector } = &mut **a;
            if f.syn() {
                streams[dir].syn(seg.seq);
            }
            if seg.wire_len > 0 {
                // The SYN itself takes one sequence number: data in a SYN (TCP Fast Open)
                // starts after it.
                let seq = if f.syn() { seg.seq.wrapping_add(1) } else { seg.seq };
                streams[dir].segment(seq, seg.payload, seg.wire_len, &mut DirSink { inspector, dir });
            }
            if f.ack() {
                // The ACK is about the other direction's bytes.
                let receiver = dir.other();
                streams[receiver].acked(
                    seg.ack,
                    &mut DirSink {
                        inspector,
                        dir: receiver,
                    },
                );
            }
        }
        if f.fin() {
            flow.fin[dir] = true;
        }
        if f.rst() {
            flow.rst = true;
        }
        let (final_now, held) = match &flow.state {
            State::Active(a) => (
                a.inspector.is_final() && !(self.cfg.show_payload && a.inspector.server_head_pending()),
                a.buffered(),
            ),
            _ => (false, 0),
        };
        self.buffered = self.buffered + held - flow.buffered;
        flow.buffered = held;
        let closed = flow.closed();
        if final_now {
            self.decide(slot);
        }
        if closed {
            self.close(slot);
        }
        if self.buffered > self.cfg.total_buffer_cap {
            self.shed();
        }
    }

    /// Over the total buffer cap: the connections holding the most give up their holes (and,
    /// if that is not enough, are decided with what was seen) until a tenth of the cap is free.
    fn shed(&mut self) {
        let target = self.cfg.total_buffer_cap - self.cfg.total_buffer_cap / 10;
        let mut heavy: Vec<(usize, usize)> = self
            .table
            .slots_where(|f| f.buffered > 0)
            .into_iter()
            .map(|s| (self.table.get(s).buffered, s))
            .collect();
        heavy.sort_unstable_by(|a, b| b.cmp(a));
        for (_, slot) in heavy {
            if self.buffered <= target {
                break;
            }
            self.summary.buffer_limit_hits += 1;
            let flow = self.table.get_mut(slot);
            if let State::Active(a) = &mut flow.state {
                let Active { streams, inspector } = &mut **a;
                for dir in Side::BOTH {
                    streams[dir].finish(&mut DirSink { inspector, dir });
                }
                let held = a.buffered();
                self.buffered = self.buffered + held - flow.buffered;
                flow.buffered = held;
                if held > 0 {
                    self.decide(slot);
                }
            }
        }
    }

    fn create(&mut self, key: FlowKey, dir: Side, seg: &TcpSegment<'_>, ts: u64) -> usize {
        if self.table.len() >= self.cfg.max_flows {
            self.evict();
        }
        let bare_syn = seg.flags.syn() && !seg.flags.ack();
        if bare_syn {
            self.limit_syn_only();
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut flow = Flow::new(id, key, dir, seg, ts, self.cfg.dir_cap, self.cfg.keylog.clone());
        flow.source = (self.sources.len().checked_sub(1))
            .and_then(|i| u32::try_from(i).ok())
            .unwrap_or(NO_SOURCE);
        let slot = self.table.insert(flow);
        if bare_syn {
            self.syn_only.push_back((id, slot));
        }
        slot
    }

    /// Before another SYN-only flow: at `max_syn_only` entries, drop the stale ones; if the
    /// SYN-only flows still fill nine tenths of the cap, close the oldest down to that (so the
    /// next prune is a tenth of the cap away).
    fn limit_syn_only(&mut self) {
        let cap = self.cfg.max_syn_only.max(1);
        if self.syn_only.len() < cap {
            return;
        }
        let table = &self.table;
        self.syn_only
            .retain(|&(id, slot)| table.try_get(slot).is_some_and(|f| f.id == id && f.syn_only()));
        let keep = cap - cap.div_ceil(10);
        while self.syn_only.len() > keep {
            let Some((_, slot)) = self.syn_only.pop_front() else {
                break;
            };
            self.close(slot);
            self.table.remove(slot);
            self.summary.evicted_flows += 1;
            self.summary.evicted_syn_only += 1;
        }
    }

    /// The inspection of an active flow is over: free its buffers and have it judged (by the
    /// output, when it takes it, else by the engine's judge) and reported.
    fn decide(&mut self, slot: usize) {
        let keep = self.keep();
        let flow = self.table.get_mut(slot);
        let State::Active(a) = std::mem::replace(&mut flow.state, State::Decided(None)) else {
            return;
        };
        let Active { streams, inspector } = *a;
        self.buffered -= flow.buffered;
        flow.buffered = 0;
        flow.stream_stats = Some(Box::new(streams.each_ref().map(|s| s.stats())));
        drop(streams);
        let outcome = inspector.outcome();
        let mut resumption = None;
        let mut keys = Vec::new();
        if let Outcome::Tls { facts, .. } = &outcome {
            if let Some(c) = facts.client_dir {
                if flow.roles_from == RolesFrom::Port {
                    flow.client_dir = c;
                    flow.roles_from = RolesFrom::Tls;
                }
            }
            resumption = verdict::resumption(facts);
            keys = verdict::session_keys(facts);
        }
        let facts = flow.facts();
        let inspected = Inspected {
            outcome,
            coverage: flow.coverage(),
            file: self.file(&facts),
            facts,
            resumption,
            keys,
        };
        let mut offered = Some(inspected);
        if !keep {
            if let Err(e) = self.out.inspected(&mut offered) {
                self.out_error.get_or_insert(e);
            }
        }
        let Some(inspected) = offered else {
            // Taken: the output judges and writes it on its own thread.
            self.table.get_mut(slot).state = State::Decided(None);
            return;
        };
        let report = self.judge.judge(inspected, &mut self.summary);
        let (written, kept) = if keep {
            (self.out.decided(&report), Some(Box::new(report.verdict)))
        } else {
            (self.out.decided_owned(report), None)
        };
        if let Err(e) = written {
            self.out_error.get_or_insert(e);
        }
        self.table.get_mut(slot).state = State::Decided(kept);
    }

    /// The connection is over (FIN/RST, idle, evicted, end of input): flush, decide, report.
    fn close(&mut self, slot: usize) {
        let flow = self.table.get_mut(slot);
        if let State::Active(a) = &mut flow.state {
            let Active { streams, inspector } = &mut **a;
            for dir in Side::BOTH {
                streams[dir].finish(&mut DirSink { inspector, dir });
            }
            self.decide(slot);
        }
        let flow = self.table.get_mut(slot);
        if let State::Decided(Some(v)) = std::mem::replace(&mut flow.state, State::Closed) {
            let facts = self.table.get(slot).facts();
            let mut report = self.judge.report(&facts, *v);
            report.file = self.file(&facts);
            if let Err(e) = self.out.closed(report) {
                self.out_error.get_or_insert(e);
            }
        }
    }

    /// Close idle connections and forget closed ones after their linger time, oldest first
    /// (the order is the same however the connections are spread over workers).
    fn sweep(&mut self, now: u64) {
        let idle = self.cfg.idle_timeout_ns;
        let mut stale: Vec<(u64, usize)> = self
            .table
            .slots_where(|f| match f.state {
                State::Closed => f.last_ts.saturating_add(CLOSED_LINGER_NS) < now,
                _ => f.last_ts.saturating_add(idle) < now,
            })
            .into_iter()
            .map(|s| (self.table.get(s).id, s))
            .collect();
        stale.sort_unstable();
        for (_, slot) in stale {
            self.close(slot);
            self.table.remove(slot);
        }
    }

    /// WireGuard / IPsec between nodes: counted in the summary.
    fn node_encrypted(&mut self, ts: u64, e: &crate::pipeline::decode::tunnel::NodeEncrypted) {
        self.summary.node_encrypted(ts, e);
    }

    /// At the flow cap: close the least recently active tenth of the connections.
    fn evict(&mut self) {
        let mut by_age: Vec<(u64, usize)> = Vec::with_capacity(self.table.len());
        for slot in self.table.slots_where(|_| true) {
            by_age.push((self.table.get_mut(slot).last_ts, slot));
        }
        let n = (self.cfg.max_flows / 10).clamp(1, by_age.len().max(1));
        if by_age.len() > n {
            by_age.select_nth_unstable(n);
        }
        for &(_, slot) in by_age.iter().take(n) {
            let was_closed = matches!(self.table.get_mut(slot).state, State::Closed);
            self.close(slot);
            self.table.remove(slot);
            if !was_closed {
                self.summary.evicted_flows += 1;
            }
        }
    }

    /// End of all input: every connection still open is closed and reported, oldest first.
    pub fn finish(&mut self) {
        let mut slots: Vec<(u64, usize)> = self
            .table
            .slots_where(|_| true)
            .into_iter()
            .map(|s| (self.table.get_mut(s).id, s))
            .collect();
        slots.sort_unstable();
        for (_, slot) in slots {
            self.close(slot);
            self.table.remove(slot);
        }
    }
}
