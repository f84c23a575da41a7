//! Stage 3, streams: per-direction TCP reassembly.
//!
//! A [`Reassembler`] turns the segments of one direction into an ordered byte stream handed to a
//! [`StreamSink`], and says where bytes are missing instead of waiting for them forever.
//!
//! Invariants (checked by the property test in `tests/reassembly_prop.rs`):
//! - Positions are 64-bit stream offsets; sequence numbers are only ever compared through
//!   `wrapping_sub` relative to `next_seq`, so a stream may cross 2^32 any number of times.
//! - `pending` is sorted by offset, its ranges never overlap each other, and every range starts
//!   after `next_off` (anything at or before it has been delivered or reported as a gap).
//! - The sink sees every offset of the stream exactly once, either as data or inside a gap, in
//!   increasing order; it never sees a byte twice.
//! - Buffered bytes never exceed `cap` and buffered segments never exceed [`MAX_PENDING`]: when a
//!   new out-of-order segment would break either bound, the oldest hole is given up (reported as
//!   a gap) until it fits. Memory is bounded by construction, as in smoltcp's assembler.
//! - When a segment overlaps bytes that are still buffered, the first copy wins and a difference
//!   is counted as a conflict (a possible evasion attempt). Bytes already handed to the sink are
//!   not kept, so a retransmission of those is counted but not compared.

use serde::Serialize;

/// Most out-of-order segments one direction keeps; past this the oldest hole is skipped.
pub const MAX_PENDING: usize = 64;
/// Default cap on buffered out-of-order bytes per direction.
pub const DEFAULT_DIR_CAP: usize = 256 * 1024;
/// Segments further than this from the expected sequence number are not part of this stream
/// (a stale or forged segment): ignored and counted.
const MAX_DISTANCE: i64 = 1 << 30;

/// Where reassembled bytes go.
pub trait StreamSink {
    /// The next bytes of the stream, in order.
    fn data(&mut self, bytes: &[u8]);
    /// `len` bytes of the stream are missing (lost before the capture point, cut by the snap
    /// length, or given up when the buffer cap was reached).
    fn gap(&mut self, len: u64);
}

/// What happened to one direction's stream; reported per flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StreamStats {
    /// Bytes handed to the sink.
    pub delivered: u64,
    /// Number of holes reported to the sink.
    pub gaps: u32,
    /// Bytes inside those holes.
    pub gap_bytes: u64,
    /// Segments that carried only bytes already delivered.
    pub retransmissions: u32,
    /// Segments that partly overlapped bytes already delivered or buffered.
    pub overlaps: u32,
    /// Overlaps whose bytes differed from the first copy.
    pub conflicts: u32,
    /// Segments ignored because their sequence number was nowhere near the stream.
    pub out_of_window: u32,
    /// The out-of-order buffer reached its cap and a hole was given up.
    pub limit_hit: bool,
    /// The stream was picked up without its SYN.
    pub midstream: bool,
}

struct Pending {
    off: u64,
    data: Vec<u8>,
    /// Bytes after `data` that the segment carried on the wire but the capture did not keep.
    cut: u32,
}

impl Pending {
    fn end(&self) -> u64 {
        self.off + self.data.len() as u64 + u64::from(self.cut)
    }
}

/// Out-of-order segments, sorted by offset. Boxed and only while there are some: most streams
/// arrive in order, and a million open connections would otherwise carry two empty vectors each.
#[derive(Default)]
// Boxed on purpose: one pointer instead of a vector's three words while empty.
#[allow(clippy::box_collection)]
struct PendingList(Option<Box<Vec<Pending>>>);

impl std::ops::Deref for PendingList {
    type Target = [Pending];

    fn deref(&self) -> &[Pending] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl PendingList {
    fn insert(&mut self, at: usize, p: Pending) {
        self.0.get_or_insert_with(Box::default).insert(at, p);
    }

    fn remove_first(&mut self) -> Pending {
        let v = self.0.as_mut().expect("remove_first on an empty list");
        let p = v.remove(0);
        if v.is_empty() {
            self.0 = None;
        }
        p
    }
}

/// One direction of a TCP connection.
pub struct Reassembler {
    started: bool,
    next_seq: u32,
    /// Bytes held in `pending`; at most `cap`.
    pending_bytes: u32,
    /// At most 4 GiB buffered per direction (a larger cap is clamped).
    cap: u32,
    next_off: u64,
    pending: PendingList,
    stats: StreamStats,
}

impl Reassembler {
    pub fn new(cap: usize) -> Self {
        Reassembler {
            started: false,
            next_seq: 0,
            next_off: 0,
            pending: PendingList::default(),
            pending_bytes: 0,
            cap: u32::try_from(cap).unwrap_or(u32::MAX),
            stats: StreamStats::default(),
        }
    }

    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// Bytes currently held for out-of-order segments.
    pub fn buffered(&self) -> usize {
        self.pending_bytes as usize
    }

    /// A SYN (or SYN-ACK) from this direction fixes the initial sequence number.
    pub fn syn(&mut self, seq: u32) {
        if self.started && self.stats.delivered > 0 {
            return; // a retransmitted SYN after data cannot move the stream
        }
        self.started = true;
        self.stats.midstream = false;
        self.next_seq = seq.wrapping_add(1);
    }

    /// A segment of this direction: `payload` is what was captured, `wire_len` what the segment
    /// carried (larger when the snap length cut it).
    pub fn segment(&mut self, seq: u32, payload: &[u8], wire_len: u32, sink: &mut impl StreamSink) {
        let wire_len = u64::from(wire_len.max(payload.len() as u32));
        if wire_len == 0 {
            return;
        }
        if !self.started {
            self.started = true;
            self.stats.midstream = true;
            self.next_seq = seq;
        }
        let delta = i64::from(seq.wrapping_sub(self.next_seq) as i32);
        if !(-MAX_DISTANCE..=MAX_DISTANCE).contains(&delta) {
            self.stats.out_of_window += 1;
            return;
        }
        let start = self.next_off as i64 + delta;
        let end = start + wire_len as i64;
        if end <= self.next_off as i64 {
            self.stats.retransmissions += 1;
            return;
        }
        // Trim what was already delivered.
        let skip = (self.next_off as i64 - start).max(0) as u64;
        if skip > 0 {
            self.stats.overlaps += 1;
        }
        // start + skip >= next_off >= 0, even when start itself is negative (a segment from
        // before the point a mid-stream capture picked the stream up).
        let start = (start + skip as i64) as u64;
        let captured = payload.get(skip.min(payload.len() as u64) as usize..).unwrap_or(&[]);
        let cut = (end as u64 - start) - captured.len() as u64;
        let overlaps_buffered = self.pending.first().is_some_and(|p| p.off < end as u64);
        if start == self.next_off && !overlaps_buffered {
            self.deliver(captured, cut, sink);
            self.drain(sink);
        } else {
            // Out of order, or in order but reaching bytes already buffered: insert() keeps
            // the first copy of every byte and counts differences.
            self.insert(start, captured, cut, sink);
        }
    }

    /// The other direction acknowledged `ack`: bytes before it reached the receiver, so a hole
    /// before it will never be filled in this capture.
    pub fn acked(&mut self, ack: u32, sink: &mut impl StreamSink) {
        if !self.started {
            return;
        }
        let delta = i64::from(ack.wrapping_sub(self.next_seq) as i32);
        if delta <= 0 || delta > MAX_DISTANCE {
            return;
        }
        let target = self.next_off + delta as u64;
        // Only skip up to what is buffered: a hole with nothing after it yet may be data that is
        // merely late in the capture (merged interfaces reorder packets).
        if let Some(first) = self.pending.first() {
            let to = first.off.min(target);
            if to > self.next_off {
                self.skip_to(to, sink);
                self.drain(sink);
            }
        }
    }

    /// End of the stream (FIN, RST, eviction or end of capture): report what is still missing
    /// and hand over what is buffered.
    pub fn finish(&mut self, sink: &mut impl StreamSink) {
        while let Some(first) = self.pending.first() {
            let to = first.off;
            self.skip_to(to, sink);
            self.drain(sink);
        }
    }

    fn deliver(&mut self, bytes: &[u8], cut: u64, sink: &mut impl StreamSink) {
        if !bytes.is_empty() {
            sink.data(bytes);
            self.stats.delivered += bytes.len() as u64;
        }
        if cut > 0 {
            sink.gap(cut);
            self.stats.gaps += 1;
            self.stats.gap_bytes += cut;
        }
        self.advance(bytes.len() as u64 + cut);
    }

    fn advance(&mut self, n: u64) {
        self.next_off += n;
        self.next_seq = self.next_seq.wrapping_add(n as u32);
    }

    fn skip_to(&mut self, to: u64, sink: &mut impl StreamSink) {
        if to > self.next_off {
            let n = to - self.next_off;
            sink.gap(n);
            self.stats.gaps += 1;
            self.stats.gap_bytes += n;
            self.advance(n);
        }
    }

    /// Deliver buffered segments that now start at (or before) the next expected offset.
    fn drain(&mut self, sink: &mut impl StreamSink) {
        while let Some(first) = self.pending.first() {
            if first.off > self.next_off {
                break;
            }
            let p = self.pending.remove_first();
            self.pending_bytes -= p.data.len() as u32;
            if p.end() <= self.next_off {
                continue;
            }
            let skip = (self.next_off - p.off) as usize;
            let cut = u64::from(p.cut);
            if skip <= p.data.len() {
                self.deliver(&p.data[skip..], cut, sink);
            } else {
                // Only part of the cut tail is still ahead.
                let rest = p.end() - self.next_off;
                self.deliver(&[], rest, sink);
            }
        }
    }

    fn insert(&mut self, start: u64, captured: &[u8], cut: u64, sink: &mut impl StreamSink) {
        let end = start + captured.len() as u64 + cut;
        // Split the new segment into the pieces not already buffered; compare the rest.
        let mut pieces: Vec<(u64, u64)> = Vec::new(); // [from, to) in stream offsets
        let mut cursor = start;
        let mut overlapped = false;
        for p in self.pending.iter() {
            if p.end() <= cursor {
                continue;
            }
            if p.off >= end {
                break;
            }
            if p.off > cursor {
                pieces.push((cursor, p.off.min(end)));
            }
            overlapped = true;
            // Compare the captured bytes both copies hold.
            let lo = cursor.max(p.off);
            let hi = end.min(p.off + p.data.len() as u64).min(start + captured.len() as u64);
            if hi > lo {
                let a = &captured[(lo - start) as usize..(hi - start) as usize];
                let b = &p.data[(lo - p.off) as usize..(hi - p.off) as usize];
                if a != b {
                    self.stats.conflicts += 1;
                }
            }
            cursor = cursor.max(p.end());
            if cursor >= end {
                break;
            }
        }
        if cursor < end {
            pieces.push((cursor, end));
        }
        if overlapped {
            self.stats.overlaps += 1;
        }
        for (from, to) in pieces {
            // The piece may lie wholly or partly in the cut (uncaptured) tail.
            let cap_end = (start + captured.len() as u64).clamp(from, to);
            let lo = ((from - start) as usize).min(captured.len());
            let hi = ((cap_end - start) as usize).clamp(lo, captured.len());
            let data = captured[lo..hi].to_vec();
            let piece = Pending {
                off: from,
                cut: (to - cap_end) as u32,
                data,
            };
            self.make_room(piece.data.len(), sink);
            if piece.data.len() > self.cap as usize && piece.off > self.next_off {
                // Larger than the whole buffer (which make_room emptied): give up the hole
                // before it now rather than hold more than the cap.
                self.skip_to(piece.off, sink);
            }
            if piece.end() <= self.next_off {
                continue; // making room skipped past it
            }
            if piece.off <= self.next_off {
                let skip = (self.next_off - piece.off) as usize;
                if skip <= piece.data.len() {
                    self.deliver(&piece.data[skip..], u64::from(piece.cut), sink);
                } else {
                    self.deliver(&[], piece.end() - self.next_off, sink);
                }
                self.drain(sink);
                continue;
            }
            let at = self.pending.partition_point(|p| p.off < piece.off);
            self.pending_bytes += piece.data.len() as u32;
            self.pending.insert(at, piece);
        }
    }

    /// Give up the oldest holes until `incoming` more bytes and one more segment fit.
    fn make_room(&mut self, incoming: usize, sink: &mut impl StreamSink) {
        while !self.pending.is_empty()
            && (self.pending.len() >= MAX_PENDING || self.pending_bytes as usize + incoming > self.cap as usize)
        {
            self.stats.limit_hit = true;
            let to = self.pending[0].off;
            self.skip_to(to, sink);
            self.drain(sink);
        }
        if incoming > self.cap as usize {
            self.stats.limit_hit = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        bytes: Vec<u8>,
        gaps: Vec<u64>,
    }
    impl StreamSink for Collect {
        fn data(&mut self, bytes: &[u8]) {
            self.bytes.extend_from_slice(bytes);
        }
        fn gap(&mut self, len: u64) {
            self.gaps.push(len);
            self.bytes.extend(std::iter::repeat_n(b'?', len as usize));
        }
    }

    #[test]
    fn in_order_and_out_of_order() {
        let mut r = Reassembler::new(DEFAULT_DIR_CAP);
        let mut s = Collect::default();
        r.syn(99);
        r.segment(106, b"world", 5, &mut s);
        r.segment(100, b"hello ", 6, &mut s);
        assert_eq!(s.bytes, b"hello world");
        assert!(s.gaps.is_empty());
    }

    #[test]
    fn sequence_wraps_around() {
        let mut r = Reassembler::new(DEFAULT_DIR_CAP);
        let mut s = Collect::default();
        r.syn(u32::MAX - 3);
        r.segment(u32::MAX - 2, b"abc", 3, &mut s);
        r.segment(2, b"fg", 2, &mut s);
        r.segment(0, b"de", 2, &mut s);
        assert_eq!(s.bytes, b"abcdefg");
    }

    #[test]
    fn retransmission_and_overlap_conflict() {
        let mut r = Reassembler::new(DEFAULT_DIR_CAP);
        let mut s = Collect::default();
        r.syn(0);
        r.segment(1, b"abcd", 4, &mut s);
        r.segment(1, b"abcd", 4, &mut s);
        r.segment(9, b"ijkl", 4, &mut s);
        r.segment(11, b"XXmn", 4, &mut s); // overlaps buffered "kl" with different bytes
        r.segment(5, b"efgh", 4, &mut s);
        assert_eq!(s.bytes, b"abcdefghijklmn");
        let st = r.stats();
        assert_eq!(st.retransmissions, 1);
        assert_eq!(st.conflicts, 1);
    }

    /// Fuzz (reassembly): an in-order segment reaching bytes already buffered replaced them;
    /// the first copy must win and the difference be counted.
    #[test]
    fn in_order_segment_does_not_override_buffered_first_copy() {
        let mut r = Reassembler::new(DEFAULT_DIR_CAP);
        let mut s = Collect::default();
        r.syn(0);
        r.segment(11, b"KLMNOPQRST", 10, &mut s);
        r.segment(1, b"abcdefghijXXXXXXXXXXuvwxyz0123", 30, &mut s);
        assert_eq!(s.bytes, b"abcdefghijKLMNOPQRSTuvwxyz0123");
        assert_eq!(r.stats().conflicts, 1);
    }

    #[test]
    fn finish_reports_gap() {
        let mut r = Reassembler::new(DEFAULT_DIR_CAP);
        let mut s = Collect::default();
        r.syn(0);
        r.segment(1, b"ab", 2, &mut s);
        r.segment(6, b"fg", 2, &mut s);
        r.finish(&mut s);
        assert_eq!(s.bytes, b"ab???fg");
        assert_eq!(s.gaps, vec![3]);
    }

    #[test]
    fn ack_beyond_hole_skips_it() {
        let mut r = Reassembler::new(DEFAULT_DIR_CAP);
        let mut s = Collect::default();
        r.syn(0);
        r.segment(1, b"ab", 2, &mut s);
        r.segment(6, b"fg", 2, &mut s);
        r.acked(8, &mut s);
        assert_eq!(s.bytes, b"ab???fg");
    }

    #[test]
    fn cap_gives_up_oldest_hole() {
        let mut r = Reassembler::new(8);
        let mut s = Collect::default();
        r.syn(0);
        r.segment(11, b"12345", 5, &mut s);
        r.segment(21, b"abcde", 5, &mut s); // 10 bytes > cap 8: hole before "12345" given up
        assert!(r.stats().limit_hit);
        assert!(r.buffered() <= 8);
        assert_eq!(s.bytes, b"??????????12345");
    }

    #[test]
    fn snaplen_cut_becomes_gap() {
        let mut r = Reassembler::new(DEFAULT_DIR_CAP);
        let mut s = Collect::default();
        r.syn(0);
        r.segment(1, b"abc", 6, &mut s);
        r.segment(7, b"g", 1, &mut s);
        assert_eq!(s.bytes, b"abc???g");
    }

    #[test]
    fn midstream_start() {
        let mut r = Reassembler::new(DEFAULT_DIR_CAP);
        let mut s = Collect::default();
        r.segment(5000, b"xyz", 3, &mut s);
        assert!(r.stats().midstream);
        assert_eq!(s.bytes, b"xyz");
    }
}
