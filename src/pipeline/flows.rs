//! Stage 2, flows: a bidirectional table keyed by the 5-tuple (TCP only, so the protocol is
//! implied). A connection is stored once and found from either direction: the key puts the
//! smaller endpoint first, and a [`Side`] says which end sent a packet.
//!
//! Who is the client is decided once, in this order: the sender of a SYN without ACK (or the
//! receiver of a SYN-ACK); else the side that sent a ClientHello (decided by the inspector);
//! else the side with the ephemeral port.

use crate::pipeline::decode::TcpSegment;
use crate::pipeline::inspect::coverage::Coverage;
use crate::pipeline::inspect::Inspector;
use crate::pipeline::reassembly::{Reassembler, StreamStats};
use crate::pipeline::side::{PerSide, Side};
use crate::pipeline::verdict::Verdict;
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{ip}:{}", self.port),
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}

/// Two endpoints, the smaller first, and the side `from` is on: one conversation gets one key
/// whichever side sent the packet.
pub fn canonical(from: Endpoint, to: Endpoint) -> ([Endpoint; 2], Side) {
    if from <= to {
        ([from, to], Side::Lo)
    } else {
        ([to, from], Side::Hi)
    }
}

/// The sender's and the receiver's endpoints of a segment.
fn ends(seg: &TcpSegment<'_>) -> (Endpoint, Endpoint) {
    let from = Endpoint {
        ip: seg.src,
        port: seg.sport,
    };
    let to = Endpoint {
        ip: seg.dst,
        port: seg.dport,
    };
    (from, to)
}

/// Canonical 5-tuple: the smaller endpoint first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    lo: Endpoint,
    hi: Endpoint,
}

impl FlowKey {
    /// The key of a segment and the side that sent it.
    pub fn of(seg: &TcpSegment<'_>) -> (FlowKey, Side) {
        let (from, to) = ends(seg);
        FlowKey::between(from, to)
    }

    /// The key of a conversation from `from` to `to`, and the side `from` is on.
    fn between(from: Endpoint, to: Endpoint) -> (FlowKey, Side) {
        let ([lo, hi], dir) = canonical(from, to);
        (FlowKey { lo, hi }, dir)
    }

    /// The endpoint on side `side` (the sender of that direction).
    pub fn sender(&self, side: Side) -> Endpoint {
        match side {
            Side::Lo => self.lo,
            Side::Hi => self.hi,
        }
    }
}

/// How the client side was determined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RolesFrom {
    Syn,
    Tls,
    Port,
}

/// The per-connection work that stops once the verdict is final.
pub struct Active {
    pub streams: PerSide<Reassembler>,
    pub inspector: Inspector,
}

impl Active {
    /// Bytes this connection holds in buffers (out-of-order data, partial records).
    pub fn buffered(&self) -> usize {
        self.streams.iter().map(Reassembler::buffered).sum::<usize>() + self.inspector.buffered()
    }
}

pub enum State {
    /// Reassembling and inspecting.
    Active(Box<Active>),
    /// The verdict is final; only counters move. The verdict is kept only when the report is
    /// written at the end (table, JSON), not when it was already streamed.
    Decided(Option<Box<Verdict>>),
    /// Reported; the key lingers briefly to absorb the last ACKs and retransmissions.
    Closed,
}

pub struct Flow {
    /// Sequence number in order of first packet; reports are sorted by it.
    pub id: u64,
    pub key: FlowKey,
    /// The side the client is on (the direction it sends in).
    pub client_dir: Side,
    pub roles_from: RolesFrom,
    pub first_ts: u64,
    pub last_ts: u64,
    pub packets: PerSide<u64>,
    /// TCP payload bytes on the wire per direction (including what the snap length cut).
    pub bytes: PerSide<u64>,
    /// Whether the snap length cut the payload of a packet, per direction, and the kept length
    /// of the longest cut frame (the snap length): the evidence names them when the handshake
    /// is lost.
    pub cut: PerSide<bool>,
    pub snap_len: u32,
    /// Initial sequence number of the client's SYN, to tell a retransmitted SYN from a new
    /// connection reusing the 5-tuple.
    pub isn: Option<u32>,
    /// Initial sequence number of the server's SYN-ACK: with only the server's side captured,
    /// a new one after the connection ended is a new connection on the same 5-tuple.
    pub synack: Option<u32>,
    pub syn_seen: bool,
    pub fin: PerSide<bool>,
    pub rst: bool,
    /// The reassemblers' counters once they are gone (after the verdict); while the flow is
    /// active they are the reassemblers' own. Boxed so that an open handshake does not carry
    /// a second copy.
    pub stream_stats: Option<Box<PerSide<StreamStats>>>,
    /// Bytes buffered as last accounted in the engine's total.
    pub buffered: usize,
    /// The overlay tunnel of the first packet (node-level captures). Boxed: most captures
    /// have none, and it would be a sixth of every connection's state.
    pub tunnel: Option<Box<crate::pipeline::decode::tunnel::Tunnel>>,
    /// The input of the first packet, as an index into the engine's inputs (a name per flow
    /// would cost 16 bytes more of every connection's state); [`NO_SOURCE`] when none was named.
    pub source: u32,
    pub state: State,
}

/// [`Flow::source`] of packets fed to the engine with no input named.
pub const NO_SOURCE: u32 = u32::MAX;

impl Flow {
    /// `keys`: the run's key log, for the TLS 1.3 handshakes it has keys for.
    pub fn new(
        id: u64,
        key: FlowKey,
        dir: Side,
        seg: &TcpSegment<'_>,
        ts: u64,
        dir_cap: usize,
        keys: Option<std::sync::Arc<crate::pipeline::keylog::KeyLog>>,
    ) -> Flow {
        let f = seg.flags;
        let (client_dir, roles_from) = if f.syn() && !f.ack() {
            (dir, RolesFrom::Syn)
        } else if f.syn() && f.ack() {
            (dir.other(), RolesFrom::Syn)
        } else {
            (port_guess(key, dir), RolesFrom::Port)
        };
        let midstream = !f.syn();
        Flow {
            id,
            key,
            client_dir,
            roles_from,
            first_ts: ts,
            last_ts: ts,
            packets: PerSide::default(),
            bytes: PerSide::default(),
            cut: PerSide::default(),
            snap_len: 0,
            isn: (f.syn() && !f.ack()).then_some(seg.seq),
            synack: (f.syn() && f.ack()).then_some(seg.seq),
            syn_seen: f.syn(),
            fin: PerSide::default(),
            rst: false,
            stream_stats: None,
            buffered: 0,
            tunnel: seg.tunnel.map(Box::new),
            source: NO_SOURCE,
            state: State::Active(Box::new(Active {
                streams: PerSide::new(Reassembler::new(dir_cap), Reassembler::new(dir_cap)),
                inspector: Inspector::new(client_dir, midstream, key.sender(client_dir.other()).port).with_keys(keys),
            })),
        }
    }

    pub fn client(&self) -> Endpoint {
        self.key.sender(self.client_dir)
    }

    pub fn server(&self) -> Endpoint {
        self.key.sender(self.client_dir.other())
    }

    /// Per direction: what the reassembler counted.
    pub fn stream_stats(&self) -> PerSide<StreamStats> {
        match (&self.state, &self.stream_stats) {
            (State::Active(a), _) => a.streams.each_ref().map(Reassembler::stats),
            (_, Some(s)) => **s,
            (_, None) => Default::default(),
        }
    }

    /// A segment of `dir` arrived: count it if the snap length cut its payload.
    pub fn count_cut(&mut self, dir: Side, seg: &TcpSegment<'_>) {
        if seg.payload.len() < seg.wire_len as usize {
            self.cut[dir] = true;
            self.snap_len = self.snap_len.max(seg.frame_len);
        }
    }

    /// What the capture holds of this connection, for the verdict to say what is missing.
    pub fn coverage(&self) -> Coverage {
        let stats = self.stream_stats();
        Coverage {
            client: self.client_dir,
            packets: self.packets,
            bytes: self.bytes,
            gap_bytes: stats.map(|s| s.gap_bytes),
            cut: self.cut,
            snap_len: self.snap_len,
        }
    }

    /// What a report says about the connection itself (everything but the verdict), as it
    /// stands now.
    pub fn facts(&self) -> FlowFacts {
        FlowFacts {
            id: self.id,
            client: self.client(),
            server: self.server(),
            client_dir: self.client_dir,
            roles_from: self.roles_from,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            packets: self.packets,
            bytes: self.bytes,
            syn_seen: self.syn_seen,
            fin: self.fin,
            rst: self.rst,
            stream_stats: self.stream_stats(),
            tunnel: self.tunnel.as_deref().copied(),
            source: self.source,
        }
    }

    /// Both sides said goodbye: no more data can come.
    pub fn closed(&self) -> bool {
        self.rst || (self.fin[Side::Lo] && self.fin[Side::Hi])
    }

    /// A client's SYN and nothing since: no packet from the server, no payload either way.
    /// What a SYN flood or a port scan leaves; the engine holds only so many of these.
    pub fn syn_only(&self) -> bool {
        self.roles_from == RolesFrom::Syn
            && self.isn.is_some()
            && self.packets[self.client_dir.other()] == 0
            && self.bytes == PerSide::default()
            && matches!(self.state, State::Active(_))
    }
}

/// A copy of a flow's counters and roles, detached from the table: what the verdict and the
/// report need.
#[derive(Debug, Clone)]
pub struct FlowFacts {
    pub id: u64,
    pub client: Endpoint,
    pub server: Endpoint,
    /// The side the client is on (the direction it sends in).
    pub client_dir: Side,
    pub roles_from: RolesFrom,
    pub first_ts: u64,
    pub last_ts: u64,
    /// Per direction.
    pub packets: PerSide<u64>,
    pub bytes: PerSide<u64>,
    pub syn_seen: bool,
    pub fin: PerSide<bool>,
    pub rst: bool,
    pub stream_stats: PerSide<StreamStats>,
    pub tunnel: Option<crate::pipeline::decode::tunnel::Tunnel>,
    /// See [`Flow::source`].
    pub source: u32,
}

/// A connection whose inspection is over, with all its verdict and report need: what the
/// inspector concluded, the flow's counters and what the capture holds of it, the session it
/// resumes and the keys a later one may resume it by, and the input its first packet came from.
#[derive(Debug)]
pub struct Inspected {
    pub outcome: crate::pipeline::inspect::Outcome,
    pub facts: FlowFacts,
    pub coverage: Coverage,
    pub resumption: Option<crate::pipeline::verdict::Resumption>,
    pub keys: Vec<crate::pipeline::verdict::Resumption>,
    pub file: Option<String>,
}

/// With no SYN and no TLS handshake to go by: the server is the side with the well-known (or
/// at least the lower, non-ephemeral) port; failing that, the first sender is the client.
fn port_guess(key: FlowKey, first_dir: Side) -> Side {
    let (lo, hi) = (key.sender(Side::Lo).port, key.sender(Side::Hi).port);
    let server_like = |port: u16| port < 1024;
    let ephemeral = |port: u16| port >= 32768;
    match (server_like(lo), server_like(hi)) {
        (true, false) => return Side::Hi,
        (false, true) => return Side::Lo,
        _ => {}
    }
    match (ephemeral(lo), ephemeral(hi)) {
        (true, false) => Side::Lo,
        (false, true) => Side::Hi,
        _ => first_dir,
    }
}

/// Flow storage: a map from key to slot, and the flows themselves in a slab so that the map
/// value stays small (a `u32` slot: at a million connections the index has two million
/// buckets, and each byte of one costs 2 MB).
#[derive(Default)]
pub struct FlowTable {
    index: FxHashMap<FlowKey, u32>,
    slots: Vec<Option<Flow>>,
    free: Vec<usize>,
    /// The last flow found, as it was addressed: consecutive packets mostly belong to the same
    /// connection (83% of the bench capture's 624,110), and for them this skips ordering the
    /// endpoints into a key and hashing it.
    last: Option<Last>,
}

/// The sender and receiver of the last segment found, its key and side, and its flow's slot.
#[derive(Clone, Copy)]
struct Last {
    from: Endpoint,
    to: Endpoint,
    key: FlowKey,
    side: Side,
    slot: usize,
}

impl FlowTable {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The key of a segment, the side that sent it, and the slot of its flow if there is one.
    pub fn find(&mut self, seg: &TcpSegment<'_>) -> (FlowKey, Side, Option<usize>) {
        let (from, to) = ends(seg);
        if let Some(l) = &self.last {
            if l.from == from && l.to == to {
                return (l.key, l.side, Some(l.slot));
            }
            if l.from == to && l.to == from {
                return (l.key, l.side.other(), Some(l.slot));
            }
        }
        let (key, side) = FlowKey::between(from, to);
        let slot = self.index.get(&key).map(|&s| s as usize);
        if let Some(slot) = slot {
            self.last = Some(Last {
                from,
                to,
                key,
                side,
                slot,
            });
        }
        (key, side, slot)
    }

    pub fn get(&self, slot: usize) -> &Flow {
        self.slots[slot].as_ref().expect("slot in index is occupied")
    }

    /// The flow in `slot`, if the slot holds one.
    pub fn try_get(&self, slot: usize) -> Option<&Flow> {
        self.slots.get(slot).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, slot: usize) -> &mut Flow {
        self.slots[slot].as_mut().expect("slot in index is occupied")
    }

    pub fn insert(&mut self, flow: Flow) -> usize {
        let key = flow.key;
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s] = Some(flow);
                s
            }
            None => {
                self.slots.push(Some(flow));
                self.slots.len() - 1
            }
        };
        self.index
            .insert(key, u32::try_from(slot).expect("fewer than 2^32 flows"));
        slot
    }

    pub fn remove(&mut self, slot: usize) -> Flow {
        let flow = self.slots[slot].take().expect("slot in index is occupied");
        self.index.remove(&flow.key);
        if self.last.as_ref().is_some_and(|l| l.slot == slot) {
            self.last = None;
        }
        self.free.push(slot);
        flow
    }

    /// Slots of flows matching `pred`, in no particular order.
    pub fn slots_where(&self, mut pred: impl FnMut(&Flow) -> bool) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.as_ref().filter(|f| pred(f)).map(|_| i))
            .collect()
    }
}

#[cfg(test)]
mod memory_budget {
    /// A decided connection keeps a `Flow` (plus its index entry): issue 7 allows 512 bytes.
    /// An undecided one also holds `Active` and the classifier. These bounds catch a field that
    /// silently makes a million connections cost another gigabyte.
    #[test]
    fn per_connection_state_stays_small() {
        use std::mem::size_of;
        // 160 before the SYN-ACK's ISN (8 bytes: 8 MB a million connections), which tells a
        // reused 5-tuple in a capture of the server's side only.
        assert!(
            size_of::<super::Flow>() <= 168,
            "Flow is {} bytes",
            size_of::<super::Flow>()
        );
        assert!(
            size_of::<super::Active>() <= 216,
            "Active is {} bytes",
            size_of::<super::Active>()
        );
        let c = size_of::<crate::pipeline::inspect::tls::Classifier>();
        // 352 before issue 19 added the oversized handshake message (8 bytes, docs/performance.md);
        // 368 since issue 17's key log (one pointer, null without a key log: 8 MB a million
        // connections in mid-handshake; docs/performance.md, "Key logs").
        assert!(c <= 368, "Classifier is {c} bytes");
    }
}
