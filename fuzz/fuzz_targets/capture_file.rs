//! The whole pipeline: capture file (pcap / pcapng / gzip) -> decode -> flows -> reassembly ->
//! inspect -> verdict -> report, exactly as `mtlscope analyze` drives it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtlscope::pipeline::engine::{Config, Engine};
use mtlscope::pipeline::record::Collect;
use mtlscope::pipeline::source::CaptureReader;
use mtlscope::report;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = CaptureReader::from_read("fuzz", Box::new(Cursor::new(data.to_vec()))) else {
        return;
    };
    let mut engine = Engine::new(Config::default(), Collect::default());
    while let Ok(Some(p)) = reader.next_packet() {
        assert!(p.data.len() <= data.len().max(1 << 20), "packet larger than any input");
        let _ = engine.packet(p.ts_ns, p.link, p.data);
    }
    engine.finish();
    assert_eq!(engine.active_flows(), 0, "finish() left connections open");
    // Every connection is decided once and, with Collect, reported once when closed.
    assert_eq!(engine.summary.connections, engine.out.flows.len() as u64);
    let flows = std::mem::take(&mut engine.out).sorted();
    let mut out = Vec::new();
    report::write_json(&mut out, &flows, &engine.summary).unwrap();
    report::write_table(
        &mut out,
        &flows,
        &engine.summary,
        report::Width::Columns(120),
        report::Columns::Default,
    )
    .unwrap();
});
