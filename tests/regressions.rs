//! Inputs that once broke mtlscope (found by fuzzing or reported), replayed through the whole
//! pipeline. Run in a debug build too (`.ci/run` does), where integer overflow panics.
//! Each file is named after what broke.

use mtlscope::pipeline::engine::{Config, Engine};
use mtlscope::pipeline::record::Collect;
use mtlscope::pipeline::source::CaptureReader;
use std::path::Path;

fn replay(path: &Path) -> usize {
    let data = std::fs::read(path).unwrap();
    let mut engine = Engine::new(Config::default(), Collect::default());
    if let Ok(mut r) = CaptureReader::from_read("regression", Box::new(std::io::Cursor::new(data))) {
        while let Ok(Some(p)) = r.next_packet() {
            let _ = engine.packet(p.ts_ns, p.link, p.data);
        }
    }
    engine.finish();
    engine.out.sorted().len()
}

#[test]
fn every_regression_input_runs_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in ["tests/data/regressions", "fuzz/regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_file() && p.extension().is_none_or(|x| x != "md") {
                replay(&p);
                n += 1;
            }
        }
    }
    assert!(n >= 1);
}

/// A mid-stream flow whose first segment came before a later one's start: the offset went
/// negative and `as u64 + skip` overflowed (fuzz: capture_file).
#[test]
fn reassembly_segment_before_midstream_start() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/regressions/reassembly-segment-before-midstream-start.pcap");
    assert_eq!(replay(&p), 1);
}

/// Fuzz (capture_file): a ClientHello carried in the SYN (TCP Fast Open) lost its first byte,
/// because the data was placed at the SYN's own sequence number; the mTLS connection came out
/// as plaintext.
#[test]
fn data_in_syn_is_placed_after_it() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/capture_file-syn-with-data.bin");
    let data = std::fs::read(&p).unwrap();
    let mut engine = Engine::new(Config::default(), Collect::default());
    let mut r = CaptureReader::from_read("tfo", Box::new(std::io::Cursor::new(data))).unwrap();
    while let Ok(Some(p)) = r.next_packet() {
        let _ = engine.packet(p.ts_ns, p.link, p.data);
    }
    engine.finish();
    let flows = engine.out.sorted();
    assert_eq!(
        flows[0].verdict.verdict,
        mtlscope::pipeline::verdict::Kind::Mtls,
        "{:?}",
        flows[0].verdict.evidence
    );
}

/// Capture timestamps near `u64::MAX` (a corrupt or hostile pcapng clock): the sweep clock and
/// the idle check added to them and overflowed, which panicked a debug build and, wrapped in a
/// release build, closed connections early. Every packet of a real mTLS capture is shifted so
/// that the last one lands on `u64::MAX`; the one connection keeps its verdict.
#[test]
fn timestamps_near_u64_max_do_not_overflow() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/openssl-tls13-mtls-rsa.pcap");
    let mut r = CaptureReader::open(p.to_str().unwrap()).unwrap();
    let mut packets = Vec::new();
    while let Ok(Some(p)) = r.next_packet() {
        packets.push((p.ts_ns, p.link, p.data.to_vec()));
    }
    let last = packets.last().unwrap().0;
    for shift_to in [u64::MAX, u64::MAX - 1_000_000_000] {
        let mut engine = Engine::new(Config::default(), Collect::default());
        for (ts, link, data) in &packets {
            let _ = engine.packet(shift_to - (last - ts), *link, data);
        }
        engine.finish();
        let flows = engine.out.sorted();
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0].verdict.verdict, mtlscope::pipeline::verdict::Kind::Mtls);
    }
}
