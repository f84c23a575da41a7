//! The `-w` file of a live capture: classic pcap with nanosecond timestamps (magic
//! `a1b23c4d`), as libpcap's `pcap_dump` writes it with nanosecond precision, so tcpdump,
//! Wireshark and `mtlscope analyze` read it.

use crate::pipeline::source::LinkType;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// The pcap magic number of files with nanosecond timestamps.
const NANO_MAGIC: u32 = 0xa1b2_3c4d;

pub struct Savefile {
    out: BufWriter<Box<dyn Write + Send>>,
}

impl Savefile {
    /// Creates (or truncates) `path` and writes the file header; `-` is standard output, as
    /// for libpcap.
    pub fn create(path: &Path, link: LinkType, snaplen: u32) -> io::Result<Savefile> {
        let out: Box<dyn Write + Send> = match path.as_os_str().to_str() {
            Some("-") => Box::new(io::stdout()),
            _ => Box::new(File::create(path)?),
        };
        let mut save = Savefile {
            out: BufWriter::with_capacity(256 << 10, out),
        };
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&NANO_MAGIC.to_ne_bytes());
        header.extend_from_slice(&2u16.to_ne_bytes());
        header.extend_from_slice(&4u16.to_ne_bytes());
        header.extend_from_slice(&0i32.to_ne_bytes()); // thiszone
        header.extend_from_slice(&0u32.to_ne_bytes()); // sigfigs
        header.extend_from_slice(&snaplen.to_ne_bytes());
        header.extend_from_slice(&link.0.to_ne_bytes());
        save.out.write_all(&header)?;
        Ok(save)
    }

    /// One packet: its timestamp, its length on the wire and the bytes kept.
    pub fn write(&mut self, ts_ns: u64, len: u32, data: &[u8]) -> io::Result<()> {
        let mut record = [0u8; 16];
        record[0..4].copy_from_slice(&((ts_ns / 1_000_000_000) as u32).to_ne_bytes());
        record[4..8].copy_from_slice(&((ts_ns % 1_000_000_000) as u32).to_ne_bytes());
        record[8..12].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        record[12..16].copy_from_slice(&len.to_ne_bytes());
        self.out.write_all(&record)?;
        self.out.write_all(data)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::source::CaptureReader;

    #[test]
    fn written_files_read_back_with_nanoseconds() {
        let dir = std::env::temp_dir().join(format!("mtlscope-savefile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.pcap");
        let mut w = Savefile::create(&path, LinkType::ETHERNET, 262_144).unwrap();
        w.write(1_700_000_000_123_456_789, 60, &[0xab; 14]).unwrap();
        w.write(1_700_000_001_000_000_001, 1514, &[0xcd; 96]).unwrap();
        w.flush().unwrap();
        drop(w);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 24 + 16 + 14 + 16 + 96);
        let mut src = CaptureReader::open(path.to_str().unwrap()).unwrap();
        let mut got = Vec::new();
        while let Some(p) = src.next_packet().unwrap() {
            got.push((p.ts_ns, p.orig_len, p.data.len(), p.link));
        }
        assert_eq!(
            got,
            [
                (1_700_000_000_123_456_789, 60, 14, LinkType::ETHERNET),
                (1_700_000_001_000_000_001, 1514, 96, LinkType::ETHERNET)
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
