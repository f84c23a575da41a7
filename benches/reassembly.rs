//! TCP reassembly (`mtlscope::pipeline::reassembly::Reassembler`) of one 1 MiB direction cut into
//! 1448-byte segments (the MSS on a 1500-byte MTU), delivered in order and out of order.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mtlscope::pipeline::reassembly::{Reassembler, StreamSink, DEFAULT_DIR_CAP};
use std::hint::black_box;

/// Counts what it is handed, nothing else.
#[derive(Default)]
struct Noop {
    bytes: u64,
    gaps: u64,
}

impl StreamSink for Noop {
    fn data(&mut self, bytes: &[u8]) {
        self.bytes += black_box(bytes).len() as u64;
    }
    fn gap(&mut self, len: u64) {
        self.gaps += len;
    }
}

const MSS: usize = 1448;
const STREAM: usize = 1 << 20;
/// Close enough to 2^32 that the stream's sequence numbers wrap.
const ISN: u32 = 0xFFFF_8000;

fn run(segments: &[(u32, &[u8])]) -> Noop {
    let mut sink = Noop::default();
    let mut r = Reassembler::new(DEFAULT_DIR_CAP);
    r.syn(ISN.wrapping_sub(1));
    for (seq, data) in segments {
        r.segment(*seq, data, data.len() as u32, &mut sink);
    }
    r.finish(&mut sink);
    assert_eq!(sink.bytes, STREAM as u64);
    sink
}

fn bench(c: &mut Criterion) {
    // xorshift bytes: incompressible-looking, deterministic
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let payload: Vec<u8> = (0..STREAM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let in_order: Vec<(u32, &[u8])> = payload
        .chunks(MSS)
        .enumerate()
        .map(|(i, c)| (ISN.wrapping_add((i * MSS) as u32), c))
        .collect();
    // every window of 8 segments arrives last-first: up to 7 segments wait for the first
    let mut out_of_order = Vec::with_capacity(in_order.len());
    for w in in_order.chunks(8) {
        out_of_order.extend(w.iter().rev().copied());
    }
    // every segment twice (a retransmission right after the original)
    let duplicated: Vec<(u32, &[u8])> = in_order.iter().flat_map(|s| [*s, *s]).collect();

    let mut g = c.benchmark_group("reassembly");
    g.throughput(Throughput::Bytes(STREAM as u64));
    g.bench_function("in_order", |b| b.iter(|| black_box(run(&in_order))));
    g.bench_function("out_of_order_windows_of_8", |b| {
        b.iter(|| black_box(run(&out_of_order)))
    });
    g.bench_function("every_segment_twice", |b| b.iter(|| black_box(run(&duplicated))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
