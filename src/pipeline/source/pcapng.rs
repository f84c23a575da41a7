//! pcapng: block headers, the sections and the interfaces they describe, and the three kinds
//! of packet block (Enhanced, Simple, and the obsolete Packet Block).
//!
//! Packet blocks have a fixed layout and are read here directly (pcap-parser's EPB parser
//! allocates a vector for every packet that carries options); Section Header and Interface
//! Description Blocks, whose options are the fiddly part, go through pcap-parser. Nothing here
//! reads input: the reader hands in the bytes of one block at a time.

use pcap_parser::pcapng::{
    parse_interfacedescriptionblock_be, parse_interfacedescriptionblock_le, parse_sectionheaderblock,
    InterfaceDescriptionBlock, OptionCode,
};

use super::bytes::{read_u16, read_u32};
use super::error::{Corrupt, ParseFailure};
use super::link_type::LinkType;
use super::time::{self, TsUnit};

/// Block types. A Section Header Block's type reads the same in both byte orders, which is
/// what lets a reader find it before it knows the byte order.
pub(super) const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
/// Decryption Secrets Block, and its secrets type for a TLS key log ("TLSK").
const DSB: u32 = 0x0A;
const TLS_KEY_LOG: u32 = 0x544c_534b;
/// Byte-order magic of a Section Header Block, as written by a little-endian host.
const BOM: u32 = 0x1A2B_3C4D;

/// `if_tsresol` when an interface has none: microseconds.
const DEFAULT_TSRESOL: u8 = 6;

/// Whether the block at the start of `head` (at least 4 bytes) is a Section Header Block,
/// whose length can only be read once its byte-order magic (bytes 8 to 12) is there.
#[inline]
pub(super) fn starts_section(head: &[u8]) -> bool {
    read_u32(head, 0, false) == SHB
}

/// The type and total length of a block, from its first bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct BlockHeader {
    kind: u32,
    /// Total length, header and trailer included: a multiple of 4 of at least 12.
    pub(super) len: u32,
}

/// A packet found in a block: `lo..hi` are the offsets of its bytes within the block.
#[derive(Debug, Clone, Copy)]
pub(super) struct BlockPacket {
    pub(super) ts_ns: u64,
    pub(super) link: LinkType,
    pub(super) lo: usize,
    pub(super) hi: usize,
    pub(super) orig_len: u32,
}

/// Why a block could not be read; the reader adds the file and the offset.
#[derive(Debug)]
pub(super) enum BlockError {
    Corrupt(Corrupt),
    /// A packet names an interface its section never described.
    UnknownInterface {
        interface: u32,
        described: usize,
    },
}

impl From<Corrupt> for BlockError {
    fn from(c: Corrupt) -> BlockError {
        BlockError::Corrupt(c)
    }
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link: LinkType,
    snaplen: u32,
    unit: TsUnit,
    /// `if_tsoffset` in nanoseconds ([`time::offset_ns`]); timestamps are relative to it.
    offset_ns: i128,
}

impl Interface {
    #[inline]
    fn ts_ns(&self, high: u32, low: u32) -> u64 {
        let ns = self.unit.to_nanos((u64::from(high) << 32) | u64::from(low));
        time::shift(ns, self.offset_ns)
    }
}

/// What the blocks read so far say about the current section.
#[derive(Debug, Default)]
pub(super) struct Section {
    big_endian: bool,
    /// Interfaces of the current section, indexed by interface ID; reset by each SHB.
    interfaces: Vec<Interface>,
    /// For Simple Packet Blocks, which have no timestamp of their own.
    last_ts_ns: u64,
    /// TLS key log lines of the Decryption Secrets Blocks read since the last packet.
    pub(super) secrets: Vec<u8>,
}

impl Section {
    /// Interfaces described in the current section.
    pub(super) fn interfaces(&self) -> usize {
        self.interfaces.len()
    }

    /// Reads the header of the block at the start of `head`: 8 bytes, or 12 for a Section
    /// Header Block ([`starts_section`]), whose byte-order magic sets the byte order of
    /// everything up to the next one.
    #[inline]
    pub(super) fn header(&mut self, head: &[u8]) -> Result<BlockHeader, Corrupt> {
        if starts_section(head) {
            let magic = read_u32(head, 8, false);
            self.big_endian = if magic == BOM {
                false
            } else if magic == BOM.swap_bytes() {
                true
            } else {
                return Err(Corrupt::ByteOrder { magic });
            };
        }
        let be = self.big_endian;
        let len = read_u32(head, 4, be);
        if len < 12 || !len.is_multiple_of(4) {
            return Err(Corrupt::BlockLength { len });
        }
        Ok(BlockHeader {
            kind: read_u32(head, 0, be),
            len,
        })
    }

    /// Reads one whole block (`header.len` bytes): the packet it carries, or `None` for a
    /// block that carries none (after taking in what it says about the section).
    #[inline]
    pub(super) fn block(&mut self, header: BlockHeader, block: &[u8]) -> Result<Option<BlockPacket>, BlockError> {
        let be = self.big_endian;
        let trailer = read_u32(block, block.len().saturating_sub(4), be);
        if trailer != header.len {
            return Err(Corrupt::LengthMismatch {
                start: header.len,
                end: trailer,
            }
            .into());
        }
        match header.kind {
            EPB => self.packet(block, false).map(Some),
            PB => self.packet(block, true).map(Some),
            SPB => self.simple_packet(block).map(Some),
            IDB => {
                self.describe_interface(block)?;
                Ok(None)
            }
            SHB => {
                self.start_section(block)?;
                Ok(None)
            }
            DSB => {
                self.decryption_secrets(block);
                Ok(None)
            }
            // Statistics, name resolution, custom and unknown blocks carry no
            // packets; the format says to skip what a reader does not understand.
            _ => Ok(None),
        }
    }

    /// Enhanced Packet Block, or the obsolete Packet Block (`obsolete`), whose layout is the
    /// same except for a 16-bit interface ID followed by a 16-bit drop count.
    #[inline]
    fn packet(&mut self, block: &[u8], obsolete: bool) -> Result<BlockPacket, BlockError> {
        const FIXED: usize = 32;
        let be = self.big_endian;
        let len = block.len();
        if len < FIXED {
            return Err(Corrupt::PacketBlockTooShort { len, fixed: FIXED }.into());
        }
        let if_id = if obsolete {
            u32::from(read_u16(block, 8, be))
        } else {
            read_u32(block, 8, be)
        };
        let ts_high = read_u32(block, 12, be);
        let ts_low = read_u32(block, 16, be);
        let caplen = read_u32(block, 20, be);
        let orig_len = read_u32(block, 24, be);
        let caplen_usize = usize::try_from(caplen).unwrap_or(usize::MAX);
        if caplen_usize > len - FIXED {
            return Err(Corrupt::CaptureBeyondBlock { caplen, len }.into());
        }
        let iface = self.interface(if_id)?;
        let ts_ns = iface.ts_ns(ts_high, ts_low);
        self.last_ts_ns = ts_ns;
        Ok(BlockPacket {
            ts_ns,
            link: iface.link,
            lo: 28,
            hi: 28 + caplen_usize,
            orig_len,
        })
    }

    /// A Decryption Secrets Block: a TLS key log is kept for the packets that follow; other
    /// secrets types (WireGuard, SSH...) and a block too short for its length are skipped, as
    /// the format says to skip what a reader does not understand.
    fn decryption_secrets(&mut self, block: &[u8]) {
        let be = self.big_endian;
        if block.len() < 20 || read_u32(block, 8, be) != TLS_KEY_LOG {
            return;
        }
        let len = usize::try_from(read_u32(block, 12, be)).unwrap_or(usize::MAX);
        if let Some(text) = block.get(16..).and_then(|b| b.get(..len)) {
            if !self.secrets.is_empty() && !self.secrets.ends_with(b"\n") {
                self.secrets.push(b'\n');
            }
            self.secrets.extend_from_slice(text);
        }
    }

    fn simple_packet(&self, block: &[u8]) -> Result<BlockPacket, BlockError> {
        const FIXED: usize = 16;
        let len = block.len();
        if len < FIXED {
            return Err(Corrupt::SimpleBlockTooShort { len, fixed: FIXED }.into());
        }
        let orig_len = read_u32(block, 8, self.big_endian);
        let iface = self.interface(0)?;
        // The captured length is implicit: the smallest of the original length, the snap
        // length and the room in the block.
        let mut caplen = (len - FIXED).min(usize::try_from(orig_len).unwrap_or(usize::MAX));
        if iface.snaplen != 0 {
            caplen = caplen.min(usize::try_from(iface.snaplen).unwrap_or(usize::MAX));
        }
        Ok(BlockPacket {
            ts_ns: self.last_ts_ns,
            link: iface.link,
            lo: 12,
            hi: 12 + caplen,
            orig_len,
        })
    }

    fn describe_interface(&mut self, block: &[u8]) -> Result<(), Corrupt> {
        let be = self.big_endian;
        let parsed = if be {
            parse_interfacedescriptionblock_be(block)
        } else {
            parse_interfacedescriptionblock_le(block)
        };
        let (_, idb) = parsed.map_err(|e| Corrupt::InterfaceDescription(ParseFailure::from(e)))?;
        self.interfaces.push(interface(&idb, be)?);
        Ok(())
    }

    fn start_section(&mut self, block: &[u8]) -> Result<(), Corrupt> {
        let (_, shb) = parse_sectionheaderblock(block).map_err(|e| Corrupt::SectionHeader(ParseFailure::from(e)))?;
        match (shb.major_version, shb.minor_version) {
            (1, _) => {
                self.interfaces.clear();
                Ok(())
            }
            (major, minor) => Err(Corrupt::Version { major, minor }),
        }
    }

    fn interface(&self, if_id: u32) -> Result<Interface, BlockError> {
        match self.interfaces.get(usize::try_from(if_id).unwrap_or(usize::MAX)) {
            Some(iface) => Ok(*iface),
            None => Err(BlockError::UnknownInterface {
                interface: if_id,
                described: self.interfaces.len(),
            }),
        }
    }
}

/// The parts of an Interface Description Block that packets need.
fn interface(idb: &InterfaceDescriptionBlock<'_>, be: bool) -> Result<Interface, Corrupt> {
    let mut tsresol = DEFAULT_TSRESOL;
    let mut tsoffset = 0i64;
    for opt in &idb.options {
        let value = opt.value();
        if opt.code == OptionCode::IfTsresol && opt.len == 1 {
            tsresol = value.first().copied().unwrap_or(DEFAULT_TSRESOL);
        } else if opt.code == OptionCode::IfTsoffset && opt.len == 8 {
            // pcap-parser's own `if_tsoffset` reads this as little-endian in every section.
            if let Some(bytes) = value.get(..8).and_then(|v| <[u8; 8]>::try_from(v).ok()) {
                tsoffset = if be {
                    i64::from_be_bytes(bytes)
                } else {
                    i64::from_le_bytes(bytes)
                };
            }
        }
    }
    let unit = TsUnit::from_tsresol(tsresol).ok_or(Corrupt::TimeResolution { tsresol })?;
    Ok(Interface {
        link: LinkType(idb.linktype.0),
        snaplen: idb.snaplen,
        unit,
        offset_ns: time::offset_ns(tsoffset),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_captures::*;
    use super::super::LinkType;

    #[test]
    fn pcapng_interfaces_with_different_link_types() {
        for be in [false, true] {
            let mut bytes = shb(be);
            bytes.extend(idb(be, 1, 65535, &[]));
            bytes.extend(idb(be, 276, 128, &[option(9, &[9], be)]));
            bytes.extend(idb(
                be,
                101,
                0,
                &[
                    option(9, &[3], be),
                    option(
                        14,
                        &u32b(0, be).iter().chain(&u32b(0, be)).copied().collect::<Vec<_>>(),
                        be,
                    ),
                ],
            ));
            bytes.extend(epb(be, 0, 1_000_001, b"ether", 100));
            bytes.extend(epb(be, 1, 7 * SEC + 5, b"sll2!", 5));
            bytes.extend(epb(be, 2, 2_500, b"raw", 3));
            bytes.extend(epb(be, 0, 3, b"", 0));
            let (packets, err) = read_bytes(bytes);
            assert!(err.is_none(), "{err:?}");
            assert_eq!(
                packets,
                [
                    pkt(1_000_001_000, LinkType::ETHERNET, b"ether", 100),
                    pkt(7 * SEC + 5, LinkType::LINUX_SLL2, b"sll2!", 5),
                    pkt(2_500_000_000, LinkType::RAW, b"raw", 3),
                    pkt(3_000, LinkType::ETHERNET, b"", 0),
                ],
                "be {be}"
            );
        }
    }

    #[test]
    fn pcapng_time_resolution_and_offset() {
        let cases: [(u8, i64, u64, u64); 6] = [
            (6, 0, 1_500_000, 1_500_000_000),
            (9, 0, 42, 42),
            (12, 0, 5_000_000, 5_000),
            (0x80 | 10, 0, 3 * 1024 + 512, 3 * SEC + SEC / 2),
            (6, 100, 1, 100 * SEC + 1_000),
            (6, -100, 1, 0),
        ];
        for be in [false, true] {
            for (tsresol, tsoffset, units, want) in cases {
                let mut bytes = shb(be);
                let offset = if be {
                    tsoffset.to_be_bytes()
                } else {
                    tsoffset.to_le_bytes()
                };
                bytes.extend(idb(be, 1, 0, &[option(9, &[tsresol], be), option(14, &offset, be)]));
                bytes.extend(epb(be, 0, units, b"x", 1));
                let (packets, err) = read_bytes(bytes);
                assert!(err.is_none(), "{err:?}");
                assert_eq!(packets[0].ts_ns, want, "tsresol {tsresol:#x} offset {tsoffset} be {be}");
            }
        }
    }

    /// A corrupt or hostile clock: 64-bit timestamps at the top of their range, at several
    /// resolutions, with the largest offsets either way. The debug test build panics on an
    /// overflow, so this reads them there; every result saturates at 0 or `u64::MAX`.
    #[test]
    fn pcapng_timestamps_near_u64_max_saturate() {
        let max = u64::MAX;
        let cases: [(u8, i64, u64, u64); 12] = [
            (9, 0, max, max),
            (9, 0, max - 5, max - 5),
            (6, 0, max, max),
            (0, 0, max, max),
            (0x80, 0, max, max),
            (19, 0, max, 1_844_674_407),
            (9, 1, max - SEC, max),
            (9, 1, max - SEC - 1, max - 1),
            (9, -1, max, max - SEC),
            (9, i64::MAX, 0, max),
            (9, i64::MAX, max, max),
            (9, i64::MIN, max, 0),
        ];
        for be in [false, true] {
            for (tsresol, tsoffset, units, want) in cases {
                let mut bytes = shb(be);
                let offset = if be {
                    tsoffset.to_be_bytes()
                } else {
                    tsoffset.to_le_bytes()
                };
                bytes.extend(idb(be, 1, 0, &[option(9, &[tsresol], be), option(14, &offset, be)]));
                bytes.extend(epb(be, 0, units, b"x", 1));
                // A Simple Packet Block takes the timestamp before it.
                bytes.extend(spb(be, b"y", 1));
                let (packets, err) = read_bytes(bytes);
                assert!(err.is_none(), "{err:?}");
                let case = format!("tsresol {tsresol:#x} offset {tsoffset} units {units} be {be}");
                assert_eq!(packets[0].ts_ns, want, "{case}");
                assert_eq!(packets[1].ts_ns, want, "{case}");
            }
        }
    }

    #[test]
    fn pcapng_unusable_time_resolution_is_an_error() {
        let mut bytes = shb(false);
        bytes.extend(idb(false, 1, 0, &[option(9, &[20], false)]));
        let (_, err) = read_bytes(bytes);
        assert_eq!(
            err.unwrap().to_string(),
            "test.pcap: corrupt pcapng block at byte 28: if_tsresol 0x14 is not a usable time resolution"
        );
    }

    #[test]
    fn pcapng_sections_reset_interfaces_and_may_change_byte_order() {
        let mut bytes = shb(false);
        bytes.extend(idb(false, 1, 0, &[]));
        bytes.extend(idb(false, 113, 0, &[]));
        bytes.extend(epb(false, 1, 1, b"a", 1));
        bytes.extend(shb(true));
        bytes.extend(idb(true, 101, 0, &[]));
        bytes.extend(epb(true, 0, 2, b"b", 1));
        let at = bytes.len();
        bytes.extend(epb(true, 1, 3, b"c", 1));
        let (packets, err) = read_bytes(bytes);
        assert_eq!(
            packets,
            [
                pkt(1_000, LinkType::LINUX_SLL, b"a", 1),
                pkt(2_000, LinkType::RAW, b"b", 1)
            ]
        );
        let err = err.unwrap();
        assert_eq!(
            err.to_string(),
            format!("test.pcap: packet at byte {at} refers to interface 1, but only 1 is described")
        );
        assert_eq!(err.position().map(|p| p.offset), Some(at as u64));
    }

    #[test]
    fn pcapng_simple_obsolete_and_unknown_blocks() {
        let be = false;
        let mut bytes = shb(be);
        bytes.extend(block(0x1234_5678, b"unknown block", be));
        bytes.extend(idb(be, 0, 4, &[]));
        bytes.extend(block(4, &[0; 4], be)); // name resolution, empty
        bytes.extend(spb(be, b"before", 6));
        bytes.extend(epb(be, 0, 9, b"null", 4));
        bytes.extend(block(5, &[0; 12], be)); // interface statistics
        bytes.extend(spb(be, b"snapped", 7));
        bytes.extend(spb(be, b"ab", 1));
        bytes.extend(obsolete_pb(be, 0, 11, b"old"));
        let (packets, err) = read_bytes(bytes);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            packets,
            [
                pkt(0, LinkType::NULL, b"befo", 6),
                pkt(9_000, LinkType::NULL, b"null", 4),
                pkt(9_000, LinkType::NULL, b"snap", 7),
                pkt(9_000, LinkType::NULL, b"a", 1),
                pkt(11_000, LinkType::NULL, b"old", 3),
            ]
        );
    }

    #[test]
    fn pcapng_packet_before_any_interface() {
        let mut bytes = shb(false);
        bytes.extend(spb(false, b"x", 1));
        let (_, err) = read_bytes(bytes);
        assert_eq!(
            err.unwrap().to_string(),
            "test.pcap: packet at byte 28 refers to interface 0, but no interface is described"
        );
    }

    #[test]
    fn pcapng_corrupt_blocks() {
        let cases: [(Vec<u8>, &str); 4] = [
            (
                [1u32.to_le_bytes(), 13u32.to_le_bytes()].concat(),
                "corrupt pcapng block at byte 28: block length 13 is not a multiple of 4 of at least 12",
            ),
            (
                [6u32.to_le_bytes(), 0xffff_fff0u32.to_le_bytes()].concat(),
                "corrupt pcapng block at byte 28: block length 4294967280 is larger than the 256 MiB limit",
            ),
            (
                [
                    6u32.to_le_bytes(),
                    16u32.to_le_bytes(),
                    0u32.to_le_bytes(),
                    20u32.to_le_bytes(),
                ]
                .concat(),
                "corrupt pcapng block at byte 28: length fields disagree: 16 at the start, 20 at the end",
            ),
            (
                {
                    let mut b = epb(false, 0, 0, b"abcd", 4);
                    b[20..24].copy_from_slice(&1000u32.to_le_bytes());
                    b
                },
                "corrupt pcapng block at byte 28: captured length 1000 does not fit in a block of 48 bytes",
            ),
        ];
        for (tail, want) in cases {
            let mut bytes = shb(false);
            bytes.extend(tail);
            let (_, err) = read_bytes(bytes);
            assert_eq!(err.unwrap().to_string(), format!("test.pcap: {want}"));
        }
        let mut bytes = shb(false);
        bytes[8..12].copy_from_slice(&[1, 2, 3, 4]);
        let (_, err) = read_bytes(bytes);
        assert_eq!(
            err.unwrap().to_string(),
            "test.pcap: corrupt pcapng section header at byte 0: byte-order magic 04030201 is neither 1a2b3c4d nor 4d3c2b1a"
        );
    }
}
