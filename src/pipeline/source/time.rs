//! Capture timestamps to nanoseconds since the Unix epoch: legacy pcap's seconds and fraction,
//! pcapng's `if_tsresol` units and `if_tsoffset` seconds.
//!
//! A pcapng timestamp is a free 64-bit count, so a corrupt or hostile file can put it anywhere
//! up to `u64::MAX` units; every conversion here saturates at `0` and `u64::MAX` instead of
//! overflowing (which would panic a debug build and wrap in a release one).

pub(super) const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A legacy pcap record's timestamp: whole seconds and a fraction in microseconds, or in
/// nanoseconds for the nanosecond magic.
#[inline]
pub(super) fn pcap_ns(sec: u32, frac: u32, nanos: bool) -> u64 {
    let frac_ns = if nanos { u64::from(frac) } else { u64::from(frac) * 1000 };
    // Cannot overflow: u32::MAX * 1e9 + u32::MAX * 1e3 < u64::MAX.
    u64::from(sec) * NANOS_PER_SEC + frac_ns
}

/// Timestamp unit of a pcapng interface, reduced to the cheapest conversion to nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TsUnit {
    /// 10^k units per second with k <= 9: multiply.
    Mul(u64),
    /// 10^k units per second with k > 9: divide.
    Div(u64),
    /// 2^k units per second.
    Pow2(u32),
}

impl TsUnit {
    /// From the raw `if_tsresol` byte: high bit clear = negative power of 10, set = of 2.
    /// `None` for a power of 10 beyond what a `u64` holds (10^19 is the largest) and for 2^k
    /// with k > 63.
    pub(super) fn from_tsresol(tsresol: u8) -> Option<TsUnit> {
        let exp = u32::from(tsresol & 0x7f);
        if tsresol & 0x80 == 0 {
            match exp {
                0..=9 => Some(TsUnit::Mul(10u64.pow(9 - exp))),
                10..=19 => Some(TsUnit::Div(10u64.pow(exp - 9))),
                _ => None,
            }
        } else if exp <= 63 {
            Some(TsUnit::Pow2(exp))
        } else {
            None
        }
    }

    /// `units` of this resolution in nanoseconds, `u64::MAX` when that does not fit.
    #[inline]
    pub(super) fn to_nanos(self, units: u64) -> u64 {
        match self {
            TsUnit::Mul(m) => units.saturating_mul(m),
            TsUnit::Div(d) => units / d,
            TsUnit::Pow2(k) => {
                // u64::MAX * 1e9 < 2^94: the product fits a u128.
                let ns = (u128::from(units) * u128::from(NANOS_PER_SEC)) >> k;
                u64::try_from(ns).unwrap_or(u64::MAX)
            }
        }
    }
}

/// `if_tsoffset` (whole seconds, signed) in nanoseconds. An i128 holds any i64 times 1e9
/// exactly, so the offset is kept whole rather than saturated to an i64.
pub(super) fn offset_ns(tsoffset: i64) -> i128 {
    i128::from(tsoffset) * i128::from(NANOS_PER_SEC)
}

/// `ns` moved by an offset from [`offset_ns`], clamped to `0..=u64::MAX`. The sum cannot
/// overflow an i128: |offset| < 2^93 and `ns` < 2^64.
#[inline]
pub(super) fn shift(ns: u64, offset_ns: i128) -> u64 {
    if offset_ns == 0 {
        return ns;
    }
    let shifted = i128::from(ns) + offset_ns;
    u64::try_from(shifted.max(0)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_timestamps_at_the_top_of_their_range() {
        assert_eq!(pcap_ns(1, 2, false), NANOS_PER_SEC + 2_000);
        assert_eq!(pcap_ns(1, 2, true), NANOS_PER_SEC + 2);
        assert_eq!(
            pcap_ns(u32::MAX, u32::MAX, false),
            u64::from(u32::MAX) * NANOS_PER_SEC + u64::from(u32::MAX) * 1000
        );
    }

    #[test]
    fn conversions_saturate_near_u64_max() {
        let max = u64::MAX;
        assert_eq!(TsUnit::from_tsresol(0).unwrap().to_nanos(max), max, "seconds");
        assert_eq!(TsUnit::from_tsresol(6).unwrap().to_nanos(max / 1000), max / 1000 * 1000);
        assert_eq!(TsUnit::from_tsresol(6).unwrap().to_nanos(max / 1000 + 1), max);
        assert_eq!(TsUnit::from_tsresol(9).unwrap().to_nanos(max), max);
        assert_eq!(TsUnit::from_tsresol(19).unwrap().to_nanos(max), 1_844_674_407);
        assert_eq!(TsUnit::from_tsresol(0x80).unwrap().to_nanos(max), max, "2^0 per second");
        assert_eq!(TsUnit::from_tsresol(0x80 | 63).unwrap().to_nanos(max), 1_999_999_999);
        assert_eq!(TsUnit::from_tsresol(20), None);
        assert_eq!(TsUnit::from_tsresol(0x80 | 64), None);

        for offset in [i64::MAX, i64::MIN, 1, -1] {
            let off = offset_ns(offset);
            for ns in [0, 1, max - 1, max] {
                let want = (i128::from(ns) + off).clamp(0, i128::from(max));
                assert_eq!(i128::from(shift(ns, off)), want, "{ns} {offset}");
            }
        }
        assert_eq!(shift(max, 0), max);
    }
}
