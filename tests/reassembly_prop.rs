//! Property test of the TCP reassembler against a trivial model, as smoltcp's `test_random`
//! checks its assembler against a bitmap: random segment order, duplicates, overlaps, holes,
//! snap-length cuts and sequence numbers that wrap around 2^32.

use mtlscope::pipeline::reassembly::{Reassembler, StreamSink};
use proptest::prelude::*;

/// What the sink saw: `Some(byte)` for data, `None` for a reported gap.
#[derive(Default)]
struct Seen(Vec<Option<u8>>);

impl StreamSink for Seen {
    fn data(&mut self, bytes: &[u8]) {
        self.0.extend(bytes.iter().map(|&b| Some(b)));
    }
    fn gap(&mut self, len: u64) {
        self.0.extend(std::iter::repeat_n(None, len as usize));
    }
}

#[derive(Debug, Clone)]
struct Seg {
    start: usize,
    len: usize,
    /// Bytes the capture kept (the rest was cut by the snap length).
    captured: usize,
}

fn segments(stream_len: usize) -> impl Strategy<Value = Vec<Seg>> {
    prop::collection::vec(
        (0..stream_len, 1..200usize, 0..=100u8).prop_map(move |(start, len, keep)| {
            let len = len.min(stream_len - start);
            // Most segments are captured whole; some are cut.
            let captured = if keep > 90 {
                len * usize::from(keep - 90) / 10
            } else {
                len
            };
            Seg { start, len, captured }
        }),
        1..60,
    )
}

fn stream(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// With room to buffer everything: every byte some segment captured is delivered, exactly
    /// as sent; every byte no segment covered (below the highest covered offset) is a gap.
    #[test]
    fn matches_bitmap_model(
        isn in prop_oneof![Just(u32::MAX - 50), Just(0u32), any::<u32>()],
        segs in segments(1500),
    ) {
        let data = stream(1500);
        let mut r = Reassembler::new(1 << 20);
        let mut seen = Seen::default();
        r.syn(isn);
        let mut model = vec![0u8; 1500]; // 0 uncovered, 1 covered but cut, 2 captured
        for s in &segs {
            let seq = isn.wrapping_add(1).wrapping_add(s.start as u32);
            r.segment(seq, &data[s.start..s.start + s.captured], s.len as u32, &mut seen);
            // Remember, per byte, whether any copy covered it and whether any copy captured it.
            for (k, m) in model[s.start..s.start + s.len].iter_mut().enumerate() {
                *m = (*m).max(if k < s.captured { 2 } else { 1 });
            }
        }
        r.finish(&mut seen);
        let end = model.iter().rposition(|&m| m > 0).map_or(0, |p| p + 1);
        prop_assert_eq!(seen.0.len(), end, "stream length");
        for (i, got) in seen.0.iter().enumerate() {
            match got {
                Some(b) => prop_assert_eq!(*b, data[i], "byte {} differs", i),
                None => prop_assert!(model[i] < 2 || cut_copy_first(&segs, i), "byte {} captured but reported missing", i),
            }
            if model[i] == 0 {
                prop_assert!(got.is_none(), "byte {} never sent but delivered", i);
            }
        }
        prop_assert_eq!(r.buffered(), 0);
    }

    /// With a small buffer: memory never exceeds the cap, delivered bytes are still correct,
    /// and the stream is still accounted for byte by byte.
    #[test]
    fn small_cap_stays_bounded(isn in any::<u32>(), segs in segments(3000), cap in 1..600usize) {
        let data = stream(3000);
        let mut r = Reassembler::new(cap);
        let mut seen = Seen::default();
        r.syn(isn);
        let mut end = 0;
        for s in &segs {
            let seq = isn.wrapping_add(1).wrapping_add(s.start as u32);
            r.segment(seq, &data[s.start..s.start + s.captured], s.len as u32, &mut seen);
            prop_assert!(r.buffered() <= cap, "buffered {} > cap {}", r.buffered(), cap);
            end = end.max(s.start + s.len);
        }
        r.finish(&mut seen);
        prop_assert_eq!(seen.0.len(), end);
        for (i, got) in seen.0.iter().enumerate() {
            if let Some(b) = got {
                prop_assert_eq!(*b, data[i], "byte {} differs", i);
            }
        }
    }
}

/// Was byte `i` first delivered from a copy that did not capture it? Then it is a gap even
/// though a later copy captured it: delivered offsets are never revisited.
fn cut_copy_first(segs: &[Seg], i: usize) -> bool {
    segs.iter().any(|s| i >= s.start + s.captured && i < s.start + s.len)
}
