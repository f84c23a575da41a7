//! Link / IP / TCP decoding (`mtlscope::pipeline::decode::decode`) of the frames of the committed captures.
mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mtlscope::pipeline::decode::decode;
use mtlscope::pipeline::source::LinkType;
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let captures = common::captures();
    let all: Vec<&common::Frame> = captures.iter().flat_map(|c| c.frames.iter()).collect();
    let ethernet: Vec<&common::Frame> = all.iter().copied().filter(|f| f.link == LinkType::ETHERNET).collect();

    let mut g = c.benchmark_group("decode");
    for (name, frames) in [("ethernet", &ethernet), ("all_link_types", &all)] {
        let bytes: u64 = frames.iter().map(|f| f.data.len() as u64).sum();
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function(format!("{name}/{}_frames", frames.len()), |b| {
            b.iter(|| {
                let mut payload = 0usize;
                for f in frames.iter() {
                    if let Ok(seg) = decode(f.link, black_box(&f.data)) {
                        payload += seg.payload.len();
                    }
                }
                black_box(payload)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
