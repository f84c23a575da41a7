//! Detectors for protocols whose first bytes are binary: SSH's banner (text, but one
//! line that settles it), PostgreSQL's startup and SSL requests and its server's authentication
//! request, MySQL's greeting and handshake response, LDAP's BER-encoded messages, and DNS over
//! TCP. Each looks at both sides' first bytes and adds what they fit to `found`.

use super::bytes::be_u32_pair;
use super::types::{Evidence, Found, Protocol};

pub(super) fn ssh(client: &[u8], server: &[u8], found: &mut Found) {
    if client.starts_with(b"SSH-") || server.starts_with(b"SSH-") {
        found.push((Protocol::Ssh, Evidence::Strong));
    }
}

pub(super) const PG_SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
pub(super) const PG_GSSENC_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];
const PG_CANCEL_CODE: u32 = 0x04d2_162e;

pub(super) fn postgresql(client: &[u8], server: &[u8], found: &mut Found) {
    if let Some((len, code)) = be_u32_pair(client) {
        let startup = code >> 16 == 3
            && (code & 0xffff) <= 2
            && (9..=10_000).contains(&len)
            && client.get(8).is_none_or(u8::is_ascii_lowercase);
        if client.starts_with(&PG_SSL_REQUEST)
            || client.starts_with(&PG_GSSENC_REQUEST)
            || (len == 16 && code == PG_CANCEL_CODE)
            || startup
        {
            found.push((Protocol::Postgresql, Evidence::Strong));
            return;
        }
    }
    // Server speaking first without the client's startup: an authentication request
    // ('R', length, method code) is a short, plausible-looking pattern, hence weak.
    if let Some((&b'R', rest)) = server.split_first() {
        if let Some((len, method)) = be_u32_pair(rest) {
            if (8..=2048).contains(&len) && method <= 12 && method != 1 && method != 4 {
                found.push((Protocol::Postgresql, Evidence::Weak));
            }
        }
    }
}

pub(super) fn mysql(client: &[u8], server: &[u8], found: &mut Found) {
    if let [l0, l1, l2, 0, rest @ ..] = server {
        let len = u32::from_le_bytes([*l0, *l1, *l2, 0]);
        match rest {
            // Protocol 10 greeting: the NUL-terminated server version comes next ("8.0.36").
            [10, version @ ..] if (20..=1024).contains(&len) => {
                let v = version.split(|&b| b == 0).next().unwrap_or_default();
                if v.first().is_some_and(u8::is_ascii_digit) && v.iter().all(|b| b.is_ascii_graphic()) {
                    found.push((Protocol::Mysql, Evidence::Strong));
                    return;
                }
            }
            // An error packet instead of a greeting ("Host ... is not allowed to connect").
            [0xff, _, _, ..] if (3..=1024).contains(&len) => {
                found.push((Protocol::Mysql, Evidence::Weak));
                return;
            }
            _ => {}
        }
    }
    // Handshake response or SSLRequest: seq 1 and CLIENT_PROTOCOL_41.
    if let [l0, l1, l2, 1, c0, c1, ..] = client {
        let len = u32::from_le_bytes([*l0, *l1, *l2, 0]);
        let caps = u16::from_le_bytes([*c0, *c1]);
        if (32..=65_536).contains(&len) && caps & 0x0200 != 0 {
            found.push((Protocol::Mysql, Evidence::Weak));
        }
    }
}

/// LDAPMessage ::= SEQUENCE { messageID INTEGER, protocolOp [APPLICATION n] ... }
pub(super) fn ldap(client: &[u8], server: &[u8], found: &mut Found) {
    const REQUESTS: &[u8] = &[0x60, 0x42, 0x63, 0x66, 0x68, 0x4a, 0x6c, 0x6e, 0x50, 0x77];
    const RESPONSES: &[u8] = &[0x61, 0x64, 0x65, 0x73, 0x67, 0x69, 0x6b, 0x6d, 0x6f, 0x78, 0x79];
    let request = ldap_op(client).is_some_and(|op| REQUESTS.contains(&op));
    let response = ldap_op(server).is_some_and(|op| RESPONSES.contains(&op));
    if request || response {
        found.push((Protocol::Ldap, Evidence::Strong));
    }
}

/// The protocolOp tag of an LDAPMessage, if the bytes start like one.
pub(super) fn ldap_op(data: &[u8]) -> Option<u8> {
    let (&0x30, rest) = data.split_first()? else {
        return None;
    };
    let (len, rest) = ber_length(rest)?;
    if !(5..=16 * 1024 * 1024).contains(&len) {
        return None;
    }
    let [0x02, id_len, rest @ ..] = rest else {
        return None;
    };
    let id_len = usize::from(*id_len);
    if !(1..=4).contains(&id_len) {
        return None;
    }
    rest.get(id_len).copied()
}

/// BER definite length: (length, rest). Indefinite and over-long forms are rejected.
pub(super) fn ber_length(data: &[u8]) -> Option<(usize, &[u8])> {
    let (&first, rest) = data.split_first()?;
    if first < 0x80 {
        return Some((usize::from(first), rest));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let bytes = rest.get(..n)?;
    let len = bytes.iter().fold(0usize, |acc, &b| acc << 8 | usize::from(b));
    Some((len, rest.get(n..)?))
}

pub(super) fn dns(client: &[u8], server: &[u8], found: &mut Found) {
    if let Some(evidence) = dns_message(client, false).or_else(|| dns_message(server, true)) {
        found.push((Protocol::Dns, evidence));
    }
}

/// DNS over TCP: 2-byte length, then a header whose counts look like one question.
/// Strong when the question name and type also parse.
fn dns_message(data: &[u8], response: bool) -> Option<Evidence> {
    let [l0, l1, _id0, _id1, f0, f1, q0, q1, a0, a1, n0, n1, r0, r1, question @ ..] = data else {
        return None;
    };
    let len = u16::from_be_bytes([*l0, *l1]);
    let flags = u16::from_be_bytes([*f0, *f1]);
    let qd = u16::from_be_bytes([*q0, *q1]);
    let an = u16::from_be_bytes([*a0, *a1]);
    let ns = u16::from_be_bytes([*n0, *n1]);
    let ar = u16::from_be_bytes([*r0, *r1]);
    let is_response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    let z = flags & 0x0040;
    let sane = len >= 17
        && is_response == response
        && opcode == 0
        && z == 0
        && qd == 1
        && (response || (an == 0 && ns == 0 && ar <= 2));
    if !sane {
        return None;
    }
    let mut pos = 0;
    loop {
        let label = usize::from(*question.get(pos)?);
        if label == 0 {
            break;
        }
        if label > 63 || pos > 255 {
            return None;
        }
        let Some(bytes) = question.get(pos + 1..pos + 1 + label) else {
            return Some(Evidence::Weak);
        };
        if !bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_*".contains(b)) {
            return None;
        }
        pos += 1 + label;
    }
    let Some([_t0, _t1, c0, c1]) = question.get(pos + 1..pos + 5) else {
        return Some(Evidence::Weak);
    };
    let class = u16::from_be_bytes([*c0, *c1]);
    matches!(class, 1 | 3 | 254 | 255).then_some(Evidence::Strong)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_no_leak, id, proto};
    use super::*;

    #[test]
    fn postgresql() {
        let mut startup = vec![0, 0, 0, 0x29, 0, 3, 0, 0];
        startup.extend_from_slice(b"user\0postgres\0database\0app\0\0");
        assert_eq!(proto(&startup, b"", 1), Protocol::Postgresql);
        assert_eq!(proto(&PG_SSL_REQUEST, b"N", 1), Protocol::Postgresql);
        assert_eq!(proto(&PG_GSSENC_REQUEST, b"", 1), Protocol::Postgresql);
        assert_eq!(proto(&startup[..8], b"", 1), Protocol::Postgresql);
        let auth_sasl = b"R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0";
        assert_eq!(proto(b"", auth_sasl, 5432), Protocol::Postgresql);
        assert_no_leak(&id(&startup, b"", 5432), &["postgres\"", "app"]);
    }

    #[test]
    fn mysql() {
        let mut greeting = vec![0x4a, 0, 0, 0, 10];
        greeting.extend_from_slice(b"8.0.36\0");
        greeting.extend_from_slice(&[0x0d, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0xff, 0xf7]);
        greeting.resize(0x4a + 4, 0);
        assert_eq!(proto(b"", &greeting, 1), Protocol::Mysql);
        assert_eq!(proto(b"", &greeting[..7], 1), Protocol::Mysql);
        let refused = b"\x45\0\0\0\xff\x6a\x04Host '10.0.0.1' is not allowed";
        assert_eq!(proto(b"", refused, 3306), Protocol::Mysql);
    }

    #[test]
    fn ldap() {
        // Anonymous simple bind, message 1.
        let bind = [
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00,
        ];
        assert_eq!(proto(&bind, b"", 1), Protocol::Ldap);
        let bind_ok = [
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
        ];
        assert_eq!(proto(b"", &bind_ok, 1), Protocol::Ldap);
        // A SEQUENCE that is not an LDAPMessage.
        assert_eq!(proto(&[0x30, 0x03, 0x01, 0x01, 0xff], b"", 389), Protocol::Unknown);
    }

    #[test]
    fn dns_over_tcp() {
        let mut query = vec![0, 0x1d, 0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        query.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
        assert_eq!(query.len(), 0x1d + 2);
        assert_eq!(proto(&query, b"", 1), Protocol::Dns);
        // Header fits but the name is cut: weak, so the port decides only among candidates.
        assert_eq!(proto(&query[..18], b"", 53), Protocol::Dns);
        let mut response = query.clone();
        response[4] = 0x81;
        response[5] = 0x80;
        assert_eq!(proto(b"", &response, 53), Protocol::Dns);
        // Counts that make no sense for a query.
        let mut bad = query.clone();
        bad[7] = 9;
        assert_eq!(proto(&bad, b"", 53), Protocol::Unknown);
    }

    #[test]
    fn ssh() {
        assert_eq!(proto(b"SSH-2.0-OpenSSH_9.6\r\n", b"", 2222), Protocol::Ssh);
        assert_eq!(proto(b"", b"SSH-2.0-dropbear\r\n", 1), Protocol::Ssh);
    }
}
