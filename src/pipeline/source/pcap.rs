//! Legacy pcap: what the file header's magic number says about the records
//! ([`PcapLayout`]), and the 16- or 24-byte record header ([`PcapRecord`]).

use super::bytes::read_u32;
use super::link_type::LinkType;
use super::time;

/// Size of the file header; the first record starts right after it.
pub(super) const FILE_HEADER: usize = 24;

/// How a legacy pcap file lays out its records; fixed by the file header.
#[derive(Debug, Clone, Copy)]
pub(super) struct PcapLayout {
    big_endian: bool,
    /// Nanosecond-resolution magic; otherwise the fraction is in microseconds.
    nanos: bool,
    /// 16, or 24 for Alexey Kuznetzov's "modified" pcap which adds ifindex/protocol/type.
    pub(super) record_header: usize,
    pub(super) link: LinkType,
}

/// A legacy pcap record header, read by [`PcapLayout::record`].
#[derive(Debug, Clone, Copy)]
pub(super) struct PcapRecord {
    pub(super) ts_ns: u64,
    /// Captured length, in bytes after the header. Not checked against anything: the reader
    /// knows how much it agrees to buffer.
    pub(super) caplen: u32,
    pub(super) orig_len: u32,
}

/// What a legacy pcap magic number says about the file, before the rest of its header is read.
#[derive(Debug, Clone, Copy)]
pub(super) struct PcapMagic {
    big_endian: bool,
    nanos: bool,
    record_header: usize,
}

impl PcapMagic {
    /// `None` when the first four bytes of a file are not a legacy pcap magic number.
    pub(super) fn from_bytes(magic: [u8; 4]) -> Option<PcapMagic> {
        let (big_endian, nanos, record_header) = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => (false, false, 16),
            [0xa1, 0xb2, 0xc3, 0xd4] => (true, false, 16),
            [0x4d, 0x3c, 0xb2, 0xa1] => (false, true, 16),
            [0xa1, 0xb2, 0x3c, 0x4d] => (true, true, 16),
            [0x34, 0xcd, 0xb2, 0xa1] => (false, false, 24),
            [0xa1, 0xb2, 0xcd, 0x34] => (true, false, 24),
            _ => return None,
        };
        Some(PcapMagic {
            big_endian,
            nanos,
            record_header,
        })
    }

    /// The layout of the records, from the whole file header ([`FILE_HEADER`] bytes).
    pub(super) fn layout(self, header: &[u8]) -> PcapLayout {
        // Only the link type matters: libpcap ignores thiszone/sigfigs, and the snap length is
        // often wrong. The top bits carry FCS information (LT_FCS_DATALINK_EXT).
        let network = read_u32(header, 20, self.big_endian) & 0x03FF_FFFF;
        PcapLayout {
            big_endian: self.big_endian,
            nanos: self.nanos,
            record_header: self.record_header,
            link: LinkType(i32::try_from(network).unwrap_or(i32::MAX)),
        }
    }
}

impl PcapLayout {
    /// Reads the record header at the start of `header` (at least `record_header` bytes).
    #[inline]
    pub(super) fn record(&self, header: &[u8]) -> PcapRecord {
        let be = self.big_endian;
        let sec = read_u32(header, 0, be);
        let frac = read_u32(header, 4, be);
        PcapRecord {
            ts_ns: time::pcap_ns(sec, frac, self.nanos),
            caplen: read_u32(header, 8, be),
            orig_len: read_u32(header, 12, be),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_captures::*;
    use super::super::LinkType;

    #[test]
    fn pcap_all_magics() {
        let recs = [
            Rec {
                sec: 1_700_000_000,
                frac: 123_456,
                data: b"abc",
                orig: 60,
            },
            Rec {
                sec: 1_700_000_001,
                frac: 999_999,
                data: b"",
                orig: 0,
            },
        ];
        for (magic, nanos) in [(0xa1b2_c3d4u32, false), (0xa1b2_3c4d, true)] {
            for be in [false, true] {
                let bytes = pcap_file(magic, be, 113, &recs);
                let len = bytes.len() as u64;
                let mut r = reader(bytes).unwrap();
                assert_eq!(r.offset(), 24);
                let (packets, err) = read_all(&mut r);
                assert!(err.is_none(), "{err:?}");
                let scale = if nanos { 1 } else { 1000 };
                assert_eq!(
                    packets,
                    [
                        pkt(1_700_000_000 * SEC + 123_456 * scale, LinkType::LINUX_SLL, b"abc", 60),
                        pkt(1_700_000_001 * SEC + 999_999 * scale, LinkType::LINUX_SLL, b"", 0),
                    ],
                    "magic {magic:x} be {be}"
                );
                assert_eq!(r.offset(), len);
            }
        }
    }

    #[test]
    fn pcap_link_type_ignores_fcs_bits() {
        let bytes = pcap_file(0xa1b2_c3d4, false, 0x1400_0001, &[]);
        let mut r = reader(bytes).unwrap();
        assert!(r.next_packet().unwrap().is_none());
        let bytes = pcap_file(
            0xa1b2_c3d4,
            false,
            1,
            &[Rec {
                sec: 0,
                frac: 0,
                data: b"x",
                orig: 1,
            }],
        );
        let (packets, _) = read_bytes(bytes);
        assert_eq!(packets[0].link, LinkType::ETHERNET);
    }

    #[test]
    fn modified_pcap_has_24_byte_records() {
        let mut bytes = pcap_file(0xa1b2_cd34, false, 1, &[]);
        for data in [&b"first"[..], b"second"] {
            bytes.extend(u32b(10, false));
            bytes.extend(u32b(20, false));
            bytes.extend(u32b(data.len() as u32, false));
            bytes.extend(u32b(data.len() as u32, false));
            bytes.extend([0; 8]);
            bytes.extend(data);
        }
        let (packets, err) = read_bytes(bytes);
        assert!(err.is_none());
        assert_eq!(packets[1], pkt(10 * SEC + 20_000, LinkType::ETHERNET, b"second", 6));
    }
}
