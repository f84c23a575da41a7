//! `first_seen` / `last_seen` of every connection report: nanoseconds since the epoch as RFC 3339
//! UTC with microseconds (`mtlscope::pipeline::record::rfc3339`, jiff), against the digits
//! written by hand that it replaced and the other ways to write the same bytes. Two of these per
//! connection, and `analyze -o jsonl` spends about 10 µs per connection on the benchmark capture:
//! 1% of that is 50 ns a timestamp. Figures: the comment above `rfc3339`.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jiff::tz::Offset;
use jiff::Timestamp;
use std::hint::black_box;

/// Capture-like timestamps: within one day of late 2026, nanosecond resolution, in no order.
fn timestamps(n: usize) -> Vec<u64> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            // xorshift64: cheap, and no pattern the date arithmetic could benefit from.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            1_795_000_000_000_000_000 + x % 86_400_000_000_000
        })
        .collect()
}

/// Writes `v` as `width` decimal digits ending before `end`.
fn digits(b: &mut [u8; 27], end: usize, width: usize, mut v: u64) {
    for i in (end - width..end).rev() {
        b[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`),
/// as the report and certificate times were computed before jiff.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The digits written by hand into a fixed buffer; the date from `civil_from_days`.
fn hand_written_hinnant(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    digits(&mut b, 4, 4, year as u64);
    digits(&mut b, 7, 2, month as u64);
    digits(&mut b, 10, 2, day as u64);
    digits(&mut b, 13, 2, rem / 3600);
    digits(&mut b, 16, 2, (rem % 3600) / 60);
    digits(&mut b, 19, 2, rem % 60);
    digits(&mut b, 26, 6, (ns % 1_000_000_000) / 1000);
    b.iter().map(|&c| char::from(c)).collect()
}

/// The same digits, every field from jiff's civil datetime in UTC.
fn hand_written_jiff_civil(ns: u64) -> String {
    let t = Timestamp::from_nanosecond(i128::from(ns)).unwrap();
    let dt = Offset::UTC.to_datetime(t);
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    digits(&mut b, 4, 4, dt.year() as u64);
    digits(&mut b, 7, 2, dt.month() as u64);
    digits(&mut b, 10, 2, dt.day() as u64);
    digits(&mut b, 13, 2, dt.hour() as u64);
    digits(&mut b, 16, 2, dt.minute() as u64);
    digits(&mut b, 19, 2, dt.second() as u64);
    digits(&mut b, 26, 6, dt.subsec_nanosecond() as u64 / 1000);
    b.iter().map(|&c| char::from(c)).collect()
}

/// jiff's `Display` with a precision of 6 (it truncates, as the report does), through
/// `format!`; `record::rfc3339` writes the same into a String sized for it.
fn jiff_format(ns: u64) -> String {
    let t = Timestamp::from_nanosecond(i128::from(ns)).unwrap();
    format!("{t:.6}")
}

/// One way to write a timestamp.
type Way = fn(u64) -> String;

fn bench(c: &mut Criterion) {
    let ts = timestamps(1 << 16);
    let ways: [(&str, Way); 4] = [
        ("record::rfc3339", mtlscope::pipeline::record::rfc3339),
        ("hand_written_hinnant", hand_written_hinnant),
        ("hand_written_jiff_civil", hand_written_jiff_civil),
        ("jiff_format", jiff_format),
    ];
    // Every way writes the same bytes, or the comparison means nothing.
    for &t in ts.iter().take(4096).chain(&[0, 951_782_400_000_000_000, u64::MAX]) {
        let want = hand_written_hinnant(t);
        for (name, f) in ways {
            assert_eq!(f(t), want, "{name} at {t}");
        }
    }
    let mut g = c.benchmark_group("rfc3339");
    g.throughput(Throughput::Elements(ts.len() as u64));
    for (name, f) in ways {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut len = 0;
                for &t in &ts {
                    len += f(black_box(t)).len();
                }
                black_box(len)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
