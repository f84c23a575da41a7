//! `metadata.creationTimestamp`, the instant Istio orders PeerAuthentications by (the oldest at
//! a level wins), read from the RFC 3339 text Kubernetes writes. jiff checks the values and
//! computes the instant; this file only narrows jiff's wider grammar to the RFC 3339 layout the
//! API server accepts.

use std::borrow::Cow;

/// An instant read from a `creationTimestamp`. Ordered as instants, not as text:
/// `10:00:00+02:00` is older than `09:00:00Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(jiff::Timestamp);

/// Why a `creationTimestamp` is not a time the API server would have stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TimestampError {
    #[error("{text:?} is not an RFC 3339 time: expected {expected} at byte {offset}")]
    Layout {
        text: String,
        /// 0-based byte offset of the first byte that breaks the layout.
        offset: usize,
        expected: &'static str,
    },
    /// RFC 3339 allows second 60; Go's `time.Parse`, and so the API server, refuses it (jiff
    /// would fold it into :59).
    #[error("{text:?} is not an RFC 3339 time: second 60 (a leap second) is refused by Kubernetes")]
    LeapSecond { text: String },
    /// RFC 3339's `time-numoffset` hour is 00-23 (jiff reads up to 25 for POSIX zones).
    #[error("{text:?} is not an RFC 3339 time: offset hour {hour} is past 23")]
    OffsetHour { text: String, hour: u8 },
    /// The layout is right but a value is not: day 30 of February, hour 24, a year jiff cannot
    /// hold (after 9999-12-30).
    #[error("{text:?} is not an RFC 3339 time: {source}")]
    Value {
        text: String,
        #[source]
        source: jiff::Error,
    },
}

/// RFC 3339 section 5.6 `date-time` up to the seconds: `d` is an ASCII digit, `T` is `T`, `t` or
/// a space (the RFC's note on readability), anything else is itself.
const DATE_TIME: &[u8; 19] = b"dddd-dd-ddTdd:dd:dd";

/// jiff keeps nanoseconds; Kubernetes (Go's `time.Parse`) reads a longer fraction and drops the
/// digits past the ninth, so they are dropped here too.
const MAX_FRACTION_DIGITS: usize = 9;

impl Timestamp {
    /// RFC 3339 as Kubernetes writes it (`2024-05-14T09:12:41Z`), with an optional fraction and
    /// a numeric offset (`+02:00`) instead of `Z`. Every other form jiff would read (ISO 8601
    /// basic `20240514T091241Z`, `+0200`, `-04`, no seconds, a `,` fraction, `[UTC]`
    /// annotations, six-digit years) is refused, as the API server refuses it. Never panics.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, TimestampError> {
        let checked = rfc3339_layout(text)?;
        checked
            .parse::<jiff::Timestamp>()
            .map(Timestamp)
            .map_err(|source| TimestampError::Value {
                text: text.to_owned(),
                source,
            })
    }
}

impl From<Timestamp> for jiff::Timestamp {
    fn from(t: Timestamp) -> jiff::Timestamp {
        t.0
    }
}

/// Checks the RFC 3339 layout that jiff's grammar is wider than, and returns the text for jiff
/// (a fraction longer than nanoseconds cut to nine digits).
fn rfc3339_layout(text: &str) -> Result<Cow<'_, str>, TimestampError> {
    let b = text.as_bytes();
    let layout = |offset: usize, expected: &'static str| TimestampError::Layout {
        text: text.to_owned(),
        offset,
        expected,
    };
    for (i, &want) in DATE_TIME.iter().enumerate() {
        let (ok, expected) = match (want, b.get(i)) {
            (b'd', got) => (got.is_some_and(u8::is_ascii_digit), "a digit"),
            (b'T', got) => (got.is_some_and(|c| matches!(c, b'T' | b't' | b' ')), "'T'"),
            (b'-', got) => (got == Some(&b'-'), "'-'"),
            (_, got) => (got == Some(&b':'), "':'"),
        };
        if !ok {
            return Err(layout(i, expected));
        }
    }
    if &b[17..19] == b"60" {
        return Err(TimestampError::LeapSecond { text: text.to_owned() });
    }

    let mut end = DATE_TIME.len();
    let mut cut = None;
    if b.get(end) == Some(&b'.') {
        let digits = b[end + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(layout(end + 1, "a digit after '.'"));
        }
        if digits > MAX_FRACTION_DIGITS {
            cut = Some((end + 1 + MAX_FRACTION_DIGITS, end + 1 + digits));
        }
        end += 1 + digits;
    }
    match &b[end..] {
        [b'Z' | b'z'] => {}
        [b'+' | b'-', h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) => {
            let hour = (h1 - b'0') * 10 + (h2 - b'0');
            if hour > 23 {
                return Err(TimestampError::OffsetHour {
                    text: text.to_owned(),
                    hour,
                });
            }
        }
        _ => return Err(layout(end, "'Z' or an offset +HH:MM / -HH:MM ending the text")),
    }
    // Every byte before `end` is ASCII, so these are character boundaries.
    Ok(match cut {
        Some((keep, skip)) => Cow::Owned(format!("{}{}", &text[..keep], &text[skip..])),
        None => Cow::Borrowed(text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instant(s: &str) -> Option<(i64, i32)> {
        let t = jiff::Timestamp::from(Timestamp::parse_rfc3339(s).ok()?);
        Some((t.as_second(), t.subsec_nanosecond()))
    }

    #[test]
    fn timestamp_parser_is_strict_and_total() {
        assert_eq!(instant("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(instant("2024-05-14T09:12:41Z"), Some((1_715_677_961, 0)));
        assert_eq!(instant("2024-05-14T09:12:41.5Z"), Some((1_715_677_961, 500_000_000)));
        assert_eq!(instant("2024-05-14T11:12:41+02:00"), Some((1_715_677_961, 0)));
        assert_eq!(instant("2024-05-14t09:12:41z"), Some((1_715_677_961, 0)));
        assert_eq!(instant("2024-05-14 09:12:41-00:00"), Some((1_715_677_961, 0)));
        assert!(instant("2024-02-29T00:00:00Z").is_some());
        for bad in [
            "",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-05-14 09:12:41",
            "2024-05-14T09:12:41",
            "2024-05-14T24:00:00Z",
            "2024-05-14T09:12:41.Z",
            "2024-05-14T09:12:41+0200",
            "2024-05-14T09:12:41Zjunk",
            "２０２４-05-14T09:12:41Z",
            "2024-05-14T09:12:41+02:0",
            "-024-05-14T09:12:41Z",
            // Forms jiff reads and the API server does not.
            "20240514T091241Z",
            "2024-05-14T09:12Z",
            "2024-05-14T09:12:41,5Z",
            "2024-05-14T09:12:41-04",
            "2024-05-14T09:12:41Z[UTC]",
            "+002024-05-14T09:12:41Z",
            "2024-05-14T23:59:60Z",
            "2024-05-14T09:12:41+24:00",
            "2024-05-14T09:12:41+02:00:30",
            "2024-05-14T09:12:41+02:60",
        ] {
            assert_eq!(instant(bad), None, "{bad}");
        }
    }

    #[test]
    fn fraction_past_nanoseconds_is_cut() {
        assert_eq!(
            instant("2024-05-14T09:12:41.1234567899Z"),
            Some((1_715_677_961, 123_456_789))
        );
        assert_eq!(
            instant("2024-05-14T11:12:41.000000001999+02:00"),
            Some((1_715_677_961, 1))
        );
    }

    #[test]
    fn errors_say_what_is_wrong_and_where() {
        let err = |s| Timestamp::parse_rfc3339(s).unwrap_err().to_string();
        assert_eq!(
            err("yesterday"),
            "\"yesterday\" is not an RFC 3339 time: expected a digit at byte 0"
        );
        assert_eq!(
            err("2024-05-14T09:12:41+0200"),
            "\"2024-05-14T09:12:41+0200\" is not an RFC 3339 time: expected 'Z' or an offset \
             +HH:MM / -HH:MM ending the text at byte 19"
        );
        assert!(
            err("2023-02-29T00:00:00Z").contains("'day'"),
            "{}",
            err("2023-02-29T00:00:00Z")
        );
        assert!(err("2024-05-14T23:59:60Z").contains("leap second"));
    }
}
