//! One direction of TCP reassembly, checked against a model of the stream.
//!
//! Layout: 4 bytes ISN (LE), 1 config byte (bit 0: a SYN fixes the ISN, else the stream is
//! picked up mid-stream at the first segment; bits 1-2: cap 512 / 64 / 1500 / 65536), then
//! 8-byte operations: kind, 4 bytes sequence offset from the ISN (LE), 2 bytes captured length
//! (LE, 14 bits), 1 byte cut (wire length = captured + cut). Kinds (low 2 bits): 0, 1 segment;
//! 2 ACK of that sequence number; 3 segment whose bytes differ from every other copy.
//!
//! Segment bytes are not taken from the input: byte at sequence number `s` is `content(s)`
//! (xor 0xff for kind 3), so every delivered byte can be checked against the stream offset
//! it was delivered at.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtlscope::pipeline::reassembly::{Reassembler, StreamSink};
use std::collections::BTreeMap;

const CAPS: [usize; 4] = [512, 64, 1500, 65536];
/// `MAX_DISTANCE` in src/tcp_reassembly.rs: segments further away are not part of the stream.
const WINDOW: i64 = 1 << 30;

fn content(seq: u32) -> u8 {
    (seq.wrapping_mul(0x9E37_79B1) >> 24) as u8
}

/// The first copy of a range of stream offsets, from the start it is keyed by.
#[derive(Clone, Copy)]
struct Claim {
    /// One past the last offset.
    end: u64,
    /// The segment carried these bytes (not cut by the snap length).
    captured: bool,
    /// The segment's bytes were the flipped copy (`!content`).
    altered: bool,
}

/// The first copy of each stream offset that arrived while it was still ahead of the sink:
/// `start -> Claim`, ranges never overlap.
#[derive(Default)]
struct Claims(BTreeMap<u64, Claim>);

impl Claims {
    /// Claims the parts of `[from, to)` nobody claimed yet.
    fn claim(&mut self, from: u64, to: u64, captured: bool, altered: bool) {
        let mut free = Vec::new();
        let mut cursor = from;
        if let Some((_, before)) = self.0.range(..from).next_back() {
            cursor = cursor.max(before.end);
        }
        for (&s, c) in self.0.range(from..to) {
            if s > cursor {
                free.push((cursor, s));
            }
            cursor = cursor.max(c.end);
        }
        if cursor < to {
            free.push((cursor, to));
        }
        for (s, e) in free {
            self.0.insert(
                s,
                Claim {
                    end: e,
                    captured,
                    altered,
                },
            );
        }
    }

    /// The claim holding offset `o`, else `Err(next start)`.
    fn at(&self, o: u64) -> Result<Claim, u64> {
        match self.0.range(..=o).next_back() {
            Some((_, &c)) if o < c.end => Ok(c),
            _ => Err(self.0.range(o..).next().map_or(u64::MAX, |(&s, _)| s)),
        }
    }

    fn forget_before(&mut self, pos: u64) {
        while let Some((&s, c)) = self.0.first_key_value() {
            if c.end > pos {
                break;
            }
            self.0.remove(&s);
        }
    }
}

struct Model {
    base: u32,
    pos: u64,
    data_bytes: u64,
    gap_bytes: u64,
    gaps: u32,
    claims: Claims,
}

impl StreamSink for Model {
    fn data(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            let o = self.pos + i as u64;
            let Claim { end: e, captured, altered } = match self.claims.at(o) {
                Ok(claim) => claim,
                Err(next) => panic!("offsets {o}..{next}: delivered data no segment carried"),
            };
            let n = ((e - o) as usize).min(bytes.len() - i);
            for (k, &b) in bytes[i..i + n].iter().enumerate() {
                let o = o + k as u64;
                let want = content(self.base.wrapping_add(o as u32));
                if captured && !cfg!(feature = "lax-first-copy") {
                    // The documented rule: the first copy of a byte wins.
                    let first = want ^ if altered { 0xff } else { 0 };
                    assert_eq!(b, first, "offset {o}: delivered a byte that is not the first copy's");
                } else {
                    // The first copy was cut by the snap length, so a later copy may fill it
                    // (or, with the feature `lax-first-copy`, any copy may win: to fuzz past
                    // that known finding).
                    assert!(b == want || b == !want, "offset {o}: byte from no copy");
                }
            }
            i += n;
        }
        self.pos += bytes.len() as u64;
        self.data_bytes += bytes.len() as u64;
    }
    fn gap(&mut self, len: u64) {
        self.pos += len;
        self.gap_bytes += len;
        self.gaps += 1;
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let isn = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let cfg = data[4];
    let cap = CAPS[usize::from(cfg >> 1) & 3];
    let mut r = Reassembler::new(cap);
    let mut m = Model {
        base: isn,
        pos: 0,
        data_bytes: 0,
        gap_bytes: 0,
        gaps: 0,
        claims: Claims::default(),
    };
    let mut started = false;
    if cfg & 1 != 0 {
        r.syn(isn);
        m.base = isn.wrapping_add(1);
        started = true;
    }
    let mut max_end = 0u64;
    let mut altered_any = false;
    let mut payload = Vec::new();
    for op in data[5..].chunks_exact(8) {
        let kind = op[0] & 3;
        let seq = isn.wrapping_add(u32::from_le_bytes([op[1], op[2], op[3], op[4]]));
        let len = usize::from(u16::from_le_bytes([op[5], op[6]]) & 0x3fff);
        let wire_len = len as u32 + u32::from(op[7]);
        let pos_before = m.pos;
        if kind == 2 {
            r.acked(seq, &mut m);
        } else {
            let altered = kind == 3;
            altered_any |= altered;
            payload.clear();
            payload.extend((0..len).map(|i| content(seq.wrapping_add(i as u32)) ^ if altered { 0xff } else { 0 }));
            if !started && wire_len > 0 {
                started = true;
                m.base = seq;
            }
            // Where the reassembler will place it: relative to the next expected byte.
            let delta = i64::from(seq.wrapping_sub(m.base.wrapping_add(m.pos as u32)) as i32);
            let accepted = wire_len > 0 && (-WINDOW..=WINDOW).contains(&delta);
            let start = m.pos as i64 + delta;
            let end = start + i64::from(wire_len);
            if accepted && end > m.pos as i64 {
                let from = (start.max(m.pos as i64)) as u64;
                let cap_end = (start + len as i64).max(from as i64) as u64;
                m.claims.claim(from, cap_end, true, altered);
                m.claims.claim(cap_end, end as u64, false, altered);
                max_end = max_end.max(end as u64);
            }
            r.segment(seq, &payload, wire_len, &mut m);
        }
        assert!(m.pos >= pos_before);
        assert!(r.buffered() <= cap, "buffered {} > cap {cap}", r.buffered());
        assert!(m.pos <= max_end, "sink got past every byte sent: {} > {max_end}", m.pos);
        m.claims.forget_before(m.pos);
    }
    r.finish(&mut m);
    assert_eq!(r.buffered(), 0, "bytes left buffered after finish");
    assert_eq!(m.pos, max_end, "finish() did not account for the stream up to its end");
    let s = r.stats();
    assert_eq!(s.delivered, m.data_bytes);
    assert_eq!(s.gap_bytes, m.gap_bytes);
    assert_eq!(s.gaps, m.gaps);
    if !altered_any {
        assert_eq!(s.conflicts, 0, "conflict counted although every copy was identical");
    }
});
