//! Flag values with units, and the range each flag allows. clap calls one parser per flag and
//! puts the flag's name in front of the message, so a message here says what is wrong with the
//! value and what to give instead.
//!
//! - Sizes: plain bytes, or a number with a unit. Every unit is a power of 1024, as
//!   docs/security.md writes the defaults: `k`, `K`, `KB`, `Ki` and `KiB` all mean 1024 bytes,
//!   `M`/`MB`/`Mi`/`MiB` 1024², `G`/`GB`/`Gi`/`GiB` 1024³, in any case. `bytesize` does the
//!   arithmetic (exact for whole numbers, `1.5MiB` allowed); its own reading of `k`, `KB` and
//!   `MB` is 1000-based, so the unit is rewritten to its binary name before it sees it: with
//!   buffer sizes, `32MB` meaning 32,000,000 while `32MiB` means 33,554,432 would only surprise.
//! - Durations: plain seconds (`600`, `1.5`), or `humantime`'s syntax: `500ms`, `30s`, `10m`,
//!   `1h30m`, `2days`. `M` is humantime's month, never minutes: it is refused with a hint.

use std::ops::RangeInclusive;
use std::time::Duration;

const SIZE_UNITS: &str = "k, KiB, M, MiB, G or GiB; all are powers of 1024";

/// A size in bytes (see the module's comment for the units).
pub fn size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let binary = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => "B",
        "k" | "kb" | "ki" | "kib" => "KiB",
        "m" | "mb" | "mi" | "mib" => "MiB",
        "g" | "gb" | "gi" | "gib" => "GiB",
        _ => {
            return Err(format!(
                "'{s}' is not a size: give bytes (65536) or a number with a unit ({SIZE_UNITS}), like 64KiB or 32MiB"
            ))
        }
    };
    format!("{number} {binary}")
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| format!("'{s}' is not a size: give bytes (65536) or a number with a unit, like 64KiB or 32MiB"))
}

/// `64 KiB` rather than bytesize's `64.0 KiB` for the round numbers the ranges are made of.
fn iec(bytes: u64) -> String {
    for (unit, name) in [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    bytesize::ByteSize(bytes).display().iec().to_string()
}

/// A size within `range`; `what` says what the flag bounds.
pub fn size_in(s: &str, range: RangeInclusive<u64>, what: &str) -> Result<u64, String> {
    let bytes = size(s)?;
    if range.contains(&bytes) {
        return Ok(bytes);
    }
    Err(format!(
        "{} is out of range: give {} to {} ({what})",
        s.trim(),
        iec(*range.start()),
        iec(*range.end())
    ))
}

/// A duration: plain seconds, or with units (see the module's comment).
pub fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let like = "like 30s, 10m, 1h30m, 500ms, or plain seconds";
    if let Ok(secs) = t.parse::<f64>() {
        // Negative, infinite and NaN seconds are refused here.
        return Duration::try_from_secs_f64(secs).map_err(|_| format!("'{s}' is not a duration ({like})"));
    }
    if t.contains('M') {
        return Err(format!("'{s}': M is months; write m for minutes ({like})"));
    }
    humantime::parse_duration(t).map_err(|e| format!("'{s}' is not a duration ({like}): {e}"))
}

/// A duration within `range`; `what` says what the flag bounds.
pub fn duration_in(s: &str, range: RangeInclusive<Duration>, what: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if range.contains(&d) {
        return Ok(d);
    }
    Err(format!(
        "{} is out of range: give {} to {} ({what})",
        s.trim(),
        humantime::format_duration(*range.start()),
        humantime::format_duration(*range.end())
    ))
}

/// A whole number within `range`; `what` says what the flag counts.
pub fn count_in(s: &str, range: RangeInclusive<u64>, what: &str) -> Result<u64, String> {
    let n: u64 = s.trim().parse().map_err(|_| format!("'{s}' is not a whole number"))?;
    if range.contains(&n) {
        return Ok(n);
    }
    if *range.end() == u64::MAX {
        return Err(format!("{n} is out of range: give at least {} ({what})", range.start()));
    }
    Err(format!(
        "{n} is out of range: give {} to {} ({what})",
        range.start(),
        range.end()
    ))
}

// The parsers clap calls, one per flag, so that each range is written once. The ranges are
// wide: they refuse what cannot work (0 connections, a buffer smaller than a TLS record, a
// timeout of 0 that would close every connection at its first packet), not unusual choices.

const DAY: u64 = 24 * 3600;

/// `--max-flows`: 1 to 100,000,000 connections.
pub fn max_flows(s: &str) -> Result<usize, String> {
    count_in(
        s,
        1..=100_000_000,
        "connections tracked at once; 0 does not mean unlimited",
    )
    .map(|n| n as usize)
}

/// `--stream-buffer`: 1 KiB to 1 GiB per direction.
pub fn stream_buffer(s: &str) -> Result<usize, String> {
    size_in(
        s,
        1 << 10..=1 << 30,
        "out-of-order bytes kept per direction of a connection",
    )
    .map(|n| n as usize)
}

/// `--total-buffer`: 64 KiB to 64 GiB.
pub fn total_buffer(s: &str) -> Result<usize, String> {
    size_in(s, 64 << 10..=64 << 30, "bytes all connections may buffer together").map(|n| n as usize)
}

/// `--idle-timeout`: 1 s to 7 days.
pub fn idle_timeout(s: &str) -> Result<Duration, String> {
    duration_in(
        s,
        Duration::from_secs(1)..=Duration::from_secs(7 * DAY),
        "how long a connection may be silent before it is closed",
    )
}

const LONGEST_CAPTURE: Duration = Duration::from_secs(30 * DAY);

/// `--duration`: 1 ms to 30 days.
pub fn capture_duration(s: &str) -> Result<Duration, String> {
    duration_in(
        s,
        Duration::from_millis(1)..=LONGEST_CAPTURE,
        "how long the capture runs; without the flag it runs until Ctrl-C",
    )
}

/// `sniff --max-duration`: 1 ms to 30 days.
pub fn max_duration(s: &str) -> Result<Duration, String> {
    duration_in(
        s,
        Duration::from_millis(1)..=LONGEST_CAPTURE,
        "how long a capture without --duration may run; the helper pod's deadline follows",
    )
}

/// `--pod-running-timeout`: 1 s to 1 day.
pub fn pod_running_timeout(s: &str) -> Result<Duration, String> {
    duration_in(
        s,
        Duration::from_secs(1)..=Duration::from_secs(DAY),
        "how long to wait for the helper pod, image pull included",
    )
}

/// `-c/--count`: at least one packet.
pub fn packet_count(s: &str) -> Result<u64, String> {
    count_in(
        s,
        1..=u64::MAX,
        "packets before the capture stops; without the flag it does not stop on a count",
    )
}

/// libpcap's largest snap length, also what `-s 0` means (as in tcpdump).
pub const MAX_SNAPLEN: u64 = 256 << 10;

/// `-s/--snaplen`: 1 byte to 256 KiB; 0 means 256 KiB, as in tcpdump.
pub fn snaplen(s: &str) -> Result<i32, String> {
    if size(s) == Ok(0) {
        return Ok(MAX_SNAPLEN as i32);
    }
    size_in(s, 1..=MAX_SNAPLEN, "bytes kept of each packet; 0 keeps whole packets").map(|n| n as i32)
}

/// `--buffer-size`: 64 KiB to 1 GiB of kernel buffer.
pub fn buffer_size(s: &str) -> Result<i32, String> {
    size_in(s, 64 << 10..=1 << 30, "the kernel's capture buffer").map(|n| n as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults are written as text in flags.rs: they must still be the engine's.
    #[test]
    fn flag_defaults_are_the_engines() {
        use crate::cli::flags::{Cli, Command};
        use clap::Parser;
        let cli = Cli::try_parse_from(["mtlscope", "check", "--require", "mtls", "x.pcap"]).unwrap();
        let Command::Check(args) = cli.command else {
            panic!("not check")
        };
        let (c, d) = (args.input.limits.config(), crate::pipeline::engine::Config::default());
        assert_eq!(
            (c.dir_cap, c.idle_timeout_ns, c.max_flows, c.total_buffer_cap),
            (d.dir_cap, d.idle_timeout_ns, d.max_flows, d.total_buffer_cap)
        );
        assert_eq!(args.live.snaplen as u64, MAX_SNAPLEN);
        assert_eq!(args.live.buffer_size, 32 << 20);
    }

    #[test]
    fn sizes_take_units_and_plain_bytes() {
        assert_eq!(total_buffer("32MiB"), Ok(32 << 20));
        assert_eq!(total_buffer("33554432"), Ok(32 << 20));
        assert_eq!(total_buffer(" 256 MiB "), Ok(256 << 20));
        assert_eq!(stream_buffer("64KiB"), Ok(64 << 10));
        assert_eq!(stream_buffer("1.5 MiB"), Ok(3 << 19));
        assert_eq!(snaplen("256KiB"), Ok(262_144));
        assert_eq!(buffer_size("1G"), Ok(1 << 30));
        assert!(stream_buffer("lots").unwrap_err().contains("not a size"));
        assert!(stream_buffer("").unwrap_err().contains("not a size"));
        assert!(stream_buffer("64 KiBs").unwrap_err().contains("powers of 1024"));
        assert!(stream_buffer("-1").unwrap_err().contains("not a size"));
    }

    /// bytesize alone reads `k`, `KB` and `MB` as powers of 1000; here every unit is binary.
    #[test]
    fn every_size_unit_is_a_power_of_1024() {
        for s in ["64k", "64K", "64KB", "64kb", "64Ki", "64KiB", "64 kib"] {
            assert_eq!(size(s), Ok(65_536), "{s}");
        }
        for s in ["32M", "32MB", "32Mi", "32MiB", "32mib"] {
            assert_eq!(size(s), Ok(32 << 20), "{s}");
        }
        assert_eq!(size("2GB"), Ok(2 << 30));
        assert_eq!(size("100b"), Ok(100));
    }

    #[test]
    fn sizes_out_of_range_name_the_range_and_the_bound() {
        assert_eq!(
            total_buffer("0").unwrap_err(),
            "0 is out of range: give 64 KiB to 64 GiB (bytes all connections may buffer together)"
        );
        assert!(stream_buffer("0")
            .unwrap_err()
            .starts_with("0 is out of range: give 1 KiB to 1 GiB"));
        assert!(stream_buffer("2GiB").is_err());
        assert!(total_buffer("99999999999999999999").is_err());
        assert!(total_buffer("99999999999GiB").is_err());
        assert!(snaplen("1MiB").is_err());
        assert!(buffer_size("4GiB").is_err());
        assert!(buffer_size("0").is_err());
    }

    #[test]
    fn snaplen_zero_keeps_whole_packets_as_in_tcpdump() {
        assert_eq!(snaplen("0"), Ok(262_144));
        assert_eq!(snaplen("96"), Ok(96));
    }

    #[test]
    fn durations_take_units_and_plain_seconds() {
        assert_eq!(idle_timeout("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(idle_timeout("600"), Ok(Duration::from_secs(600)));
        assert_eq!(idle_timeout("600s"), Ok(Duration::from_secs(600)));
        assert_eq!(idle_timeout("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(idle_timeout("2days"), Ok(Duration::from_secs(2 * DAY)));
        assert_eq!(capture_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(capture_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(capture_duration("30000ms"), Ok(Duration::from_secs(30)));
        assert_eq!(capture_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(capture_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(capture_duration("soon").unwrap_err().contains("not a duration"));
        assert!(capture_duration("-1").unwrap_err().contains("not a duration"));
        assert!(capture_duration("inf").unwrap_err().contains("not a duration"));
        assert!(capture_duration("NaN").unwrap_err().contains("not a duration"));
        assert!(idle_timeout("10M")
            .unwrap_err()
            .contains("M is months; write m for minutes"));
    }

    #[test]
    fn zero_and_out_of_range_are_refused() {
        assert_eq!(
            max_flows("0").unwrap_err(),
            "0 is out of range: give 1 to 100000000 (connections tracked at once; 0 does not mean unlimited)"
        );
        assert_eq!(
            idle_timeout("0").unwrap_err(),
            "0 is out of range: give 1s to 7days (how long a connection may be silent before it is closed)"
        );
        assert!(idle_timeout("0s").is_err());
        assert!(idle_timeout("500ms").is_err());
        assert!(idle_timeout("30d").is_err());
        assert!(capture_duration("0s").is_err());
        assert!(capture_duration("31days").is_err());
        assert!(max_duration("31days").unwrap_err().contains("without --duration"));
        assert!(pod_running_timeout("0").is_err());
        assert!(max_flows("-1").unwrap_err().contains("not a whole number"));
        assert_eq!(
            packet_count("0").unwrap_err(),
            "0 is out of range: give at least 1 (packets before the capture stops; without the flag it does not stop on a count)"
        );
        assert_eq!(packet_count("1"), Ok(1));
    }
}
