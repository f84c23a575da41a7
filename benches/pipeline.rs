//! The whole engine (`mtlscope::pipeline::engine::Engine` with `mtlscope::pipeline::record::Collect`): decode,
//! connection table, reassembly, inspection, verdicts, reports, over every packet of every
//! committed capture (one engine per capture, as `mtlscope analyze` runs one file).
//!
//! `MTLSCOPE_BENCH_CAPTURE=benches/out/capture.pcap cargo bench --bench pipeline` also runs the
//! engine over that file, read with `CaptureReader` each iteration (from the page cache).
mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mtlscope::pipeline::engine::{Config, Engine};
use mtlscope::pipeline::record::Collect;
use mtlscope::pipeline::source::CaptureReader;
use std::hint::black_box;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let captures = common::captures();
    let bytes: u64 = captures.iter().map(|c| c.bytes()).sum();
    let frames: usize = captures.iter().map(|c| c.frames.len()).sum();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function(format!("captures/{}_files_{frames}_frames", captures.len()), |b| {
        b.iter(|| {
            let mut flows = 0;
            for cap in &captures {
                let mut e = Engine::new(Config::default(), Collect::default());
                for f in &cap.frames {
                    let _ = e.packet(f.ts_ns, f.link, black_box(&f.data));
                }
                e.finish();
                flows += e.out.flows.len();
            }
            black_box(flows)
        })
    });

    if let Ok(path) = std::env::var("MTLSCOPE_BENCH_CAPTURE") {
        let len = std::fs::metadata(&path)
            .map(|m| m.len())
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        g.throughput(Throughput::Bytes(len));
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(20));
        g.bench_function("file", |b| {
            b.iter(|| {
                let mut r = CaptureReader::open(&path).expect("open");
                let mut e = Engine::new(Config::default(), Collect::default());
                while let Some(p) = r.next_packet().expect("read") {
                    let _ = e.packet(p.ts_ns, p.link, p.data);
                }
                e.finish();
                black_box(e.out.flows.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
