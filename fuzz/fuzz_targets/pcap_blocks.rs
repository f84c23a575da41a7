//! `--threads N` reads plain pcap files in blocks, each framed on its own from the offset the
//! block before gave (`source::PcapBlocks`). Differential: for any bytes and block size, the
//! records and the error must be exactly what the sequential reader
//! (`source::CaptureReader`) gives.
//!
//! Input: a capture file, then one byte that picks the block size.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtlscope::source::{CaptureReader, PcapBlocks};
use std::io::Cursor;

const SIZES: [usize; 8] = [1, 7, 16, 24, 64, 301, 4096, 1 << 20];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, file)) = data.split_last() else {
        return;
    };
    let size = SIZES[usize::from(pick) % SIZES.len()];
    let Some(blocks) = PcapBlocks::from_bytes("fuzz", file.to_vec(), size) else {
        return;
    };
    let mut got = Vec::new();
    let got_err = blocks.frame_all(|ts, bytes, orig| got.push((ts, bytes.to_vec(), orig)));
    let Ok(mut reader) = CaptureReader::from_read("fuzz", Box::new(Cursor::new(file.to_vec()))) else {
        panic!("PcapBlocks took a file the reader refuses");
    };
    let mut want = Vec::new();
    let want_err = loop {
        match reader.next_packet() {
            Ok(Some(p)) => want.push((p.ts_ns, p.data.to_vec(), p.orig_len)),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    assert_eq!(got, want, "blocks of {size}");
    assert_eq!(got_err.map(|e| e.to_string()), want_err.map(|e| e.to_string()), "blocks of {size}");
});
