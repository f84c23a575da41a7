//! Requests to upgrade a plaintext connection to TLS: STARTTLS (SMTP, IMAP, XMPP), STLS
//! (POP3), AUTH TLS (FTP), LDAP's StartTLS extended request, PostgreSQL's SSLRequest and
//! MySQL's SSL request. The inspector asks this of every client message while an upgrade can
//! still come.

use super::binary::{ber_length, ldap_op, PG_SSL_REQUEST};
use super::bytes::{first_line, starts_with_ci, trim_ascii};
use super::text::{imap_tagged_command, is_ftp_auth_tls, trim_xml_start};
use super::types::Protocol;

/// If this client->server plaintext message asks to upgrade the connection to TLS, say which
/// protocol's upgrade it is.
///
/// A bare `STARTTLS` line is both SMTP's and IRC's command; it is reported as SMTP, and a caller
/// that already knows the stream is IRC (from `identify`) should keep that.
pub fn upgrade_request(client_msg: &[u8]) -> Option<Protocol> {
    if client_msg.starts_with(&PG_SSL_REQUEST) {
        return Some(Protocol::Postgresql);
    }
    if is_mysql_ssl_request(client_msg) {
        return Some(Protocol::Mysql);
    }
    if is_ldap_start_tls(client_msg) {
        return Some(Protocol::Ldap);
    }
    if starts_with_ci(trim_xml_start(client_msg), b"<starttls") {
        return Some(Protocol::Xmpp);
    }
    let (line, _) = first_line(client_msg);
    let line = trim_ascii(line);
    if line.eq_ignore_ascii_case(b"STARTTLS") {
        return Some(Protocol::Smtp);
    }
    if line.eq_ignore_ascii_case(b"STLS") {
        return Some(Protocol::Pop3);
    }
    if is_ftp_auth_tls(line) {
        return Some(Protocol::Ftp);
    }
    let imap = imap_tagged_command(line).is_some_and(|c| c.eq_ignore_ascii_case(b"STARTTLS"))
        && line.split(|&b| b == b' ').count() == 2;
    imap.then_some(Protocol::Imap)
}

/// Protocol 4.1 SSLRequest: a 32-byte payload, sequence 1, CLIENT_SSL (0x0800) set. The full
/// handshake response is longer, so the length alone separates the two.
fn is_mysql_ssl_request(msg: &[u8]) -> bool {
    matches!(msg, [32, 0, 0, 1, c0, c1, ..] if u16::from_le_bytes([*c0, *c1]) & 0x0800 != 0)
}

pub(super) const LDAP_START_TLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";

/// ExtendedRequest ([APPLICATION 23]) whose requestName ([0]) is the StartTLS OID.
fn is_ldap_start_tls(msg: &[u8]) -> bool {
    if ldap_op(msg) != Some(0x77) {
        return false;
    }
    ldap_extended_request_name(msg) == Some(LDAP_START_TLS_OID)
}

fn ldap_extended_request_name(msg: &[u8]) -> Option<&[u8]> {
    let (_, rest) = ber_length(msg.get(1..)?)?;
    let id_len = usize::from(*rest.get(1)?);
    let op = rest.get(2 + id_len + 1..)?;
    let (_, op) = ber_length(op)?;
    let (&0x80, name) = op.split_first()? else {
        return None;
    };
    let (len, name) = ber_length(name)?;
    name.get(..len)
}

#[cfg(test)]
mod tests {
    use super::super::binary::PG_GSSENC_REQUEST;
    use super::*;

    #[test]
    fn upgrade_requests() {
        assert_eq!(upgrade_request(b"STARTTLS\r\n"), Some(Protocol::Smtp));
        assert_eq!(upgrade_request(b"starttls\r\n"), Some(Protocol::Smtp));
        assert_eq!(upgrade_request(b"a2 StartTLS\r\n"), Some(Protocol::Imap));
        assert_eq!(upgrade_request(b"STLS\r\n"), Some(Protocol::Pop3));
        assert_eq!(upgrade_request(b"AUTH TLS\r\n"), Some(Protocol::Ftp));
        assert_eq!(upgrade_request(b"auth ssl\r\n"), Some(Protocol::Ftp));
        assert_eq!(upgrade_request(&PG_SSL_REQUEST), Some(Protocol::Postgresql));
        assert_eq!(
            upgrade_request(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
            Some(Protocol::Xmpp)
        );
        let mut ldap = vec![0x30, 0x1d, 0x02, 0x01, 0x01, 0x77, 0x18, 0x80, 0x16];
        ldap.extend_from_slice(LDAP_START_TLS_OID);
        assert_eq!(upgrade_request(&ldap), Some(Protocol::Ldap));
        let mut mysql = vec![32, 0, 0, 1];
        let caps: u32 = 0x0200 | 0x0800 | 0x8000 | 0x0008_0000;
        mysql.extend_from_slice(&caps.to_le_bytes());
        mysql.extend_from_slice(&[0, 0, 0, 1, 0x21]);
        mysql.resize(36, 0);
        assert_eq!(upgrade_request(&mysql), Some(Protocol::Mysql));

        // Near misses.
        assert_eq!(upgrade_request(b"EHLO x\r\n"), None);
        assert_eq!(upgrade_request(b"STARTTLSX\r\n"), None);
        assert_eq!(upgrade_request(b"AUTH PLAIN AGFsaWNl\r\n"), None);
        assert_eq!(upgrade_request(b"a2 STARTTLS extra\r\n"), None);
        assert_eq!(upgrade_request(&PG_GSSENC_REQUEST), None);
        let mut other_ext = ldap.clone();
        *other_ext.last_mut().unwrap() = b'8';
        assert_eq!(upgrade_request(&other_ext), None);
        let mut no_ssl = mysql.clone();
        no_ssl[5] &= !0x08;
        assert_eq!(upgrade_request(&no_ssl), None);
        assert_eq!(upgrade_request(b""), None);
    }
}
