//! Shared by the criterion benches: the frames of the committed captures in `captures/`.
#![allow(dead_code)]

use mtlscope::pipeline::source::{CaptureReader, LinkType};
use std::path::PathBuf;

/// One captured frame, copied out of its capture.
pub struct Frame {
    pub ts_ns: u64,
    pub link: LinkType,
    pub data: Vec<u8>,
}

/// A capture file's name and frames.
pub struct Capture {
    pub name: String,
    pub frames: Vec<Frame>,
}

impl Capture {
    pub fn bytes(&self) -> u64 {
        self.frames.iter().map(|f| f.data.len() as u64).sum()
    }
}

/// Every `captures/*.pcap` and `captures/*.pcapng`, in name order.
pub fn captures() -> Vec<Capture> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("captures/ directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("pcap" | "pcapng")))
        .collect();
    paths.sort();
    paths.iter().map(|p| read(p.to_str().expect("utf-8 path"))).collect()
}

pub fn read(path: &str) -> Capture {
    let mut r = CaptureReader::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut frames = Vec::new();
    while let Some(p) = r.next_packet().unwrap_or_else(|e| panic!("{path}: {e}")) {
        frames.push(Frame {
            ts_ns: p.ts_ns,
            link: p.link,
            data: p.data.to_vec(),
        });
    }
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Capture { name, frames }
}
