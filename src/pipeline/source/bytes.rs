//! Fixed-width integers at an offset, in either byte order: the primitive every pcap and
//! pcapng header field is read with. Out-of-range reads give 0 instead of panicking; callers
//! check lengths first, so that never changes a result.

#[inline]
pub(super) fn read_u32(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let bytes: [u8; 4] = b.get(at..at + 4).and_then(|s| s.try_into().ok()).unwrap_or_default();
    if big_endian {
        u32::from_be_bytes(bytes)
    } else {
        u32::from_le_bytes(bytes)
    }
}

#[inline]
pub(super) fn read_u16(b: &[u8], at: usize, big_endian: bool) -> u16 {
    let bytes: [u8; 2] = b.get(at..at + 2).and_then(|s| s.try_into().ok()).unwrap_or_default();
    if big_endian {
        u16::from_be_bytes(bytes)
    } else {
        u16::from_le_bytes(bytes)
    }
}
