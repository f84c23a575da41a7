//! Byte-string helpers the detectors share: the first line of a message, case-insensitive
//! prefixes and searches, ASCII trimming, big-endian words. A leaf: it uses nothing else from
//! `plaintext`.

/// The first line without its terminator, and whether a terminator was seen.
pub(super) fn first_line(data: &[u8]) -> (&[u8], bool) {
    match data.iter().position(|&b| b == b'\n') {
        Some(nl) => {
            let line = data.get(..nl).unwrap_or_default();
            (line.strip_suffix(b"\r").unwrap_or(line), true)
        }
        None => (data.strip_suffix(b"\r").unwrap_or(data), false),
    }
}

/// `line` is `cmd` alone or `cmd` followed by a space (case-insensitive).
pub(super) fn line_is_command(line: &[u8], cmd: &[u8]) -> bool {
    strip_prefix_ci(line, cmd).is_some_and(|rest| rest.is_empty() || rest.first() == Some(&b' '))
}

pub(super) fn strip_prefix_ci<'a>(data: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = data.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| data.get(prefix.len()..).unwrap_or_default())
}

pub(super) fn starts_with_ci(data: &[u8], prefix: &[u8]) -> bool {
    strip_prefix_ci(data, prefix).is_some()
}

pub(super) fn contains_ci(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

pub(super) fn trim_ascii(data: &[u8]) -> &[u8] {
    let start = data.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(data.len());
    let end = data
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    data.get(start..end).unwrap_or_default()
}

/// The first two big-endian 32-bit words.
pub(super) fn be_u32_pair(data: &[u8]) -> Option<(u32, u32)> {
    let [a0, a1, a2, a3, b0, b1, b2, b3, ..] = *data else {
        return None;
    };
    Some((
        u32::from_be_bytes([a0, a1, a2, a3]),
        u32::from_be_bytes([b0, b1, b2, b3]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_with_and_without_terminator() {
        assert_eq!(first_line(b"EHLO x\r\nrest"), (&b"EHLO x"[..], true));
        assert_eq!(first_line(b"EHLO x\nrest"), (&b"EHLO x"[..], true));
        assert_eq!(first_line(b"EHLO x\r"), (&b"EHLO x"[..], false));
        assert_eq!(first_line(b""), (&b""[..], false));
    }

    #[test]
    fn case_insensitive_helpers() {
        assert!(line_is_command(b"user alice", b"USER"));
        assert!(line_is_command(b"CAPA", b"CAPA"));
        assert!(!line_is_command(b"CAPABILITY", b"CAPA"));
        assert_eq!(strip_prefix_ci(b"Auth TLS", b"AUTH "), Some(&b"TLS"[..]));
        assert_eq!(strip_prefix_ci(b"AU", b"AUTH "), None);
        assert!(contains_ci(b"220 mx ESMTP", b"smtp"));
        assert!(!contains_ci(b"anything", b""));
        assert_eq!(trim_ascii(b" \t x y \r\n"), b"x y");
        assert_eq!(trim_ascii(b"   "), b"");
        assert_eq!(
            be_u32_pair(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]),
            Some((8, 0x04d2_162f))
        );
        assert_eq!(be_u32_pair(&[0; 7]), None);
    }
}
