//! Writers for tiny captures (legacy pcap records, pcapng blocks, gzip) and a reader that
//! collects every packet, for the tests of the reader and of the formats' modules. Test-only.
//! The block numbers are written out here rather than taken from the reader, so a wrong
//! constant there cannot hide behind the same one here.

use std::io::{Cursor, Read, Write};

use flate2::write::GzEncoder;
use flate2::Compression;

use super::read_ahead::Handover;
use super::{CaptureReader, LinkType, SourceError};

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const BOM: u32 = 0x1A2B_3C4D;

pub(super) fn u16b(v: u16, be: bool) -> [u8; 2] {
    if be {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

pub(super) fn u32b(v: u32, be: bool) -> [u8; 4] {
    if be {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

#[derive(Clone)]
pub(super) struct Rec<'a> {
    pub(super) sec: u32,
    pub(super) frac: u32,
    pub(super) data: &'a [u8],
    pub(super) orig: u32,
}

pub(super) fn pcap_file(magic: u32, be: bool, link: u32, recs: &[Rec<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(u32b(magic, be));
    out.extend(u16b(2, be));
    out.extend(u16b(4, be));
    out.extend([0; 8]);
    out.extend(u32b(65535, be));
    out.extend(u32b(link, be));
    for r in recs {
        out.extend(u32b(r.sec, be));
        out.extend(u32b(r.frac, be));
        out.extend(u32b(r.data.len() as u32, be));
        out.extend(u32b(r.orig, be));
        out.extend(r.data);
    }
    out
}

pub(super) fn block(kind: u32, body: &[u8], be: bool) -> Vec<u8> {
    let mut padded = body.to_vec();
    while !padded.len().is_multiple_of(4) {
        padded.push(0);
    }
    let len = (padded.len() + 12) as u32;
    let mut out = Vec::new();
    out.extend(u32b(kind, be));
    out.extend(u32b(len, be));
    out.extend(padded);
    out.extend(u32b(len, be));
    out
}

pub(super) fn option(code: u16, value: &[u8], be: bool) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(u16b(code, be));
    out.extend(u16b(value.len() as u16, be));
    out.extend(value);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out
}

pub(super) fn shb(be: bool) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(u32b(BOM, be));
    body.extend(u16b(1, be));
    body.extend(u16b(0, be));
    body.extend([0xff; 8]);
    block(SHB, &body, be)
}

pub(super) fn idb(be: bool, link: u16, snaplen: u32, options: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(u16b(link, be));
    body.extend(u16b(0, be));
    body.extend(u32b(snaplen, be));
    for o in options {
        body.extend(o);
    }
    if !options.is_empty() {
        body.extend([0; 4]);
    }
    block(IDB, &body, be)
}

pub(super) fn epb(be: bool, if_id: u32, ts: u64, data: &[u8], orig: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(u32b(if_id, be));
    body.extend(u32b((ts >> 32) as u32, be));
    body.extend(u32b(ts as u32, be));
    body.extend(u32b(data.len() as u32, be));
    body.extend(u32b(orig, be));
    body.extend(data);
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    // An epb_flags option, as some writers add to every packet.
    body.extend(option(2, &u32b(1, be), be));
    body.extend([0; 4]);
    block(EPB, &body, be)
}

pub(super) fn spb(be: bool, data: &[u8], orig: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(u32b(orig, be));
    body.extend(data);
    block(SPB, &body, be)
}

pub(super) fn obsolete_pb(be: bool, if_id: u16, ts: u64, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(u16b(if_id, be));
    body.extend(u16b(0, be));
    body.extend(u32b((ts >> 32) as u32, be));
    body.extend(u32b(ts as u32, be));
    body.extend(u32b(data.len() as u32, be));
    body.extend(u32b(data.len() as u32, be));
    body.extend(data);
    block(PB, &body, be)
}

pub(super) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub(super) fn reader(bytes: Vec<u8>) -> Result<CaptureReader, SourceError> {
    CaptureReader::from_read("test.pcap", Box::new(Cursor::new(bytes)))
}

#[derive(Debug, PartialEq)]
pub(super) struct Owned {
    pub(super) ts_ns: u64,
    pub(super) link: LinkType,
    pub(super) data: Vec<u8>,
    pub(super) orig_len: u32,
}

/// Every packet, then the error that stopped reading (if any).
pub(super) fn read_all(r: &mut CaptureReader) -> (Vec<Owned>, Option<SourceError>) {
    let mut packets = Vec::new();
    loop {
        match r.next_packet() {
            Ok(Some(p)) => packets.push(Owned {
                ts_ns: p.ts_ns,
                link: p.link,
                data: p.data.to_vec(),
                orig_len: p.orig_len,
            }),
            Ok(None) => return (packets, None),
            Err(e) => {
                assert!(r.next_packet().unwrap().is_none(), "reader must be done");
                return (packets, Some(e));
            }
        }
    }
}

/// Every packet of `bytes` and the error that stopped reading, read directly; read also through
/// the read-ahead thread with small chunks (so that records straddle chunk boundaries in every
/// way), which must give the same packets and the same error, at the same offset.
pub(super) fn read_bytes(bytes: Vec<u8>) -> (Vec<Owned>, Option<SourceError>) {
    let direct = read_direct(bytes.clone());
    for (headroom, chunk) in [(5, 7), (16, 64), (1, 1000), (2048, 4096)] {
        for handover in [Handover::EachRead, Handover::Full] {
            let ahead = read_ahead(Box::new(Cursor::new(bytes.clone())), headroom, chunk, handover);
            assert_same(&direct, &ahead, headroom, chunk);
        }
    }
    direct
}

pub(super) fn read_direct(bytes: Vec<u8>) -> (Vec<Owned>, Option<SourceError>) {
    match reader(bytes) {
        Ok(mut r) => read_all(&mut r),
        Err(e) => (Vec::new(), Some(e)),
    }
}

/// Reads `input` through the read-ahead thread, its first buffer `chunk` bytes.
pub(super) fn read_ahead(
    input: Box<dyn Read + Send>,
    headroom: usize,
    chunk: usize,
    handover: Handover,
) -> (Vec<Owned>, Option<SourceError>) {
    match CaptureReader::with_buffer("test.pcap", input, None, chunk) {
        Ok(mut r) => {
            r.read_ahead_in(headroom, chunk, handover);
            read_all(&mut r)
        }
        Err(e) => (Vec::new(), Some(e)),
    }
}

pub(super) fn assert_same(
    direct: &(Vec<Owned>, Option<SourceError>),
    ahead: &(Vec<Owned>, Option<SourceError>),
    headroom: usize,
    chunk: usize,
) {
    assert_eq!(
        direct.0, ahead.0,
        "packets, read ahead in {chunk}-byte chunks after {headroom}"
    );
    assert_eq!(
        direct.1.as_ref().map(|e| (e.to_string(), e.position())),
        ahead.1.as_ref().map(|e| (e.to_string(), e.position())),
        "error, read ahead in {chunk}-byte chunks after {headroom}"
    );
}

pub(super) fn pkt(ts_ns: u64, link: LinkType, data: &[u8], orig_len: u32) -> Owned {
    Owned {
        ts_ns,
        link,
        data: data.to_vec(),
        orig_len,
    }
}

pub(super) const SEC: u64 = 1_000_000_000;
