//! TLS inspection of the TLS connections in the committed captures: both directions' payloads,
//! in capture order, fed to `mtlscope::pipeline::inspect::Inspector` (protocol detection, TLS classifier,
//! certificate parsing, outcome) and to `mtlscope::pipeline::inspect::tls::Classifier` alone.
mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mtlscope::pipeline::decode::decode;
use mtlscope::pipeline::flows::FlowKey;
use mtlscope::pipeline::inspect::tls::Classifier;
use mtlscope::pipeline::inspect::Inspector;
use mtlscope::pipeline::side::{PerSide, Side};
use std::collections::HashMap;
use std::hint::black_box;

/// One connection's payloads in capture order; direction 0 = the client (sent the SYN).
struct Conn {
    server_port: u16,
    /// Each payload with the side that sent it, the client on `Side::Lo`.
    chunks: Vec<(Side, Vec<u8>)>,
}

/// A connection being collected, directions in `FlowKey` terms.
#[derive(Default)]
struct Collecting {
    /// The side that sent the SYN.
    client: Option<Side>,
    server_port: u16,
    next_seq: PerSide<Option<u32>>,
    chunks: Vec<(Side, Vec<u8>)>,
}

fn tls_connections() -> Vec<Conn> {
    let mut out = Vec::new();
    for cap in common::captures() {
        let mut flows: HashMap<FlowKey, Collecting> = HashMap::new();
        let mut order = Vec::new();
        for f in &cap.frames {
            let Ok(seg) = decode(f.link, &f.data) else { continue };
            let (key, dir) = FlowKey::of(&seg);
            let e = flows.entry(key).or_insert_with(|| {
                order.push(key);
                Collecting::default()
            });
            if seg.flags.syn() {
                if !seg.flags.ack() {
                    e.client = Some(dir);
                    e.server_port = seg.dport;
                }
                e.next_seq[dir] = Some(seg.seq.wrapping_add(1));
                continue;
            }
            // in-order segments only (the committed captures have next to no retransmissions)
            if seg.payload.is_empty() || e.next_seq[dir] != Some(seg.seq) {
                continue;
            }
            e.next_seq[dir] = Some(seg.seq.wrapping_add(seg.payload.len() as u32));
            e.chunks.push((dir, seg.payload.to_vec()));
        }
        for key in order {
            let c = flows.remove(&key).expect("flow");
            let Some(client) = c.client else { continue };
            // TLS from the client's first byte (a handshake record)
            if c.chunks
                .iter()
                .find(|(d, _)| *d == client)
                .is_none_or(|(_, b)| b.first() != Some(&0x16))
            {
                continue;
            }
            out.push(Conn {
                server_port: c.server_port,
                chunks: c
                    .chunks
                    .into_iter()
                    .map(|(d, b)| (if d == client { Side::Lo } else { Side::Hi }, b))
                    .collect(),
            });
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let conns = tls_connections();
    let bytes: u64 = conns
        .iter()
        .flat_map(|c| c.chunks.iter())
        .map(|(_, b)| b.len() as u64)
        .sum();
    let mut g = c.benchmark_group("tls_inspect");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function(format!("inspector/{}_connections", conns.len()), |b| {
        b.iter(|| {
            for conn in &conns {
                let mut insp = Inspector::new(Side::Lo, false, conn.server_port);
                for (dir, data) in &conn.chunks {
                    insp.data(*dir, black_box(data));
                }
                black_box(insp.is_final());
                black_box(insp.outcome());
            }
        })
    });
    g.bench_function(format!("classifier/{}_connections", conns.len()), |b| {
        b.iter(|| {
            for conn in &conns {
                let mut cl = Classifier::new();
                for (dir, data) in &conn.chunks {
                    cl.data(*dir, black_box(data));
                }
                black_box(&cl.facts);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
