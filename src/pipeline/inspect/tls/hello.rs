//! The handshake messages whose contents count, parsed from their bodies: ClientHello (SNI,
//! ALPN, versions, resumption offers), ServerHello (what was chosen, HelloRetryRequest) and a
//! clear-text Certificate (the chain and its leaf). tls-parser reads the structures; each
//! extension is parsed on its own so that one it rejects does not hide the others.

use super::facts::{Chain, ClientHelloFacts, ServerHelloFacts};
use crate::pipeline::inspect::certs;
use tls_parser::{
    parse_tls_client_hello_extension, parse_tls_handshake_client_hello, parse_tls_handshake_server_hello,
    parse_tls_server_hello_extension, TlsExtension,
};

/// The random value that marks a ServerHello as a HelloRetryRequest (RFC 8446, 4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11,
    0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// A hello tls-parser could not read; the text goes into the connection's problems.
#[derive(Debug, thiserror::Error)]
#[error("{message} not parsed: {detail}")]
pub struct NotParsed {
    /// "ClientHello" or "ServerHello".
    message: &'static str,
    /// tls-parser's error, as it prints it.
    detail: String,
}

/// What a ServerHello body turned out to be.
pub enum ServerHello {
    /// A HelloRetryRequest: the server wants another ClientHello; nothing is chosen yet.
    Retry,
    Hello(ServerHelloFacts),
}

/// The facts of a ClientHello body (the handshake message without its 4-byte header).
pub fn client_hello(body: &[u8]) -> Result<ClientHelloFacts, NotParsed> {
    let ch = match parse_tls_handshake_client_hello(body) {
        Ok((_, ch)) => ch,
        Err(e) => {
            return Err(NotParsed {
                message: "ClientHello",
                detail: format!("{e:?}"),
            })
        }
    };
    let mut f = ClientHelloFacts::default();
    f.cipher_suites = ch.ciphers.len();
    f.session_id = ch.session_id.filter(|s| !s.is_empty()).map(hash);
    let mut versions = vec![ch.version.0];
    let mut alpn = Vec::new();
    for ext in raw_extensions(ch.ext.unwrap_or(&[])) {
        // Only the extensions read here are parsed. Parsing the others too (signature
        // algorithms, groups, key shares: 7 of the 10 in curl's ClientHello) took 2,630
        // instructions a ClientHello on the bench capture, against 780 now (callgrind).
        match ext.get(..2) {
            // application_settings: 17513 (draft codepoint) and 17613; tls-parser does not know it.
            Some([0x44, 0x69] | [0x44, 0xcd]) => {
                f.alps_offered = true;
                continue;
            }
            Some([0, 0 | 16 | 35 | 41 | 42 | 43]) => {}
            _ => continue,
        }
        match parse_tls_client_hello_extension(ext) {
            Ok((_, TlsExtension::SNI(names))) => {
                f.sni = names.first().map(|(_, n)| printable(n).into_boxed_str());
            }
            Ok((_, TlsExtension::ALPN(protos))) => {
                alpn = protos.iter().map(|p| printable(p)).collect();
            }
            Ok((_, TlsExtension::SupportedVersions(v))) => {
                let v: Vec<u16> = v.iter().map(|v| v.0).filter(|v| v & 0x0f0f != 0x0a0a).collect();
                if !v.is_empty() {
                    versions = v;
                }
            }
            Ok((_, TlsExtension::SessionTicket(t))) if !t.is_empty() => f.ticket = Some(hash(t)),
            Ok((_, TlsExtension::PreSharedKey(_))) => f.psk_offered = true,
            Ok((_, TlsExtension::EarlyData(_))) => f.early_data = true,
            _ => {
                // Extension types 41 (psk) / 42 (early data) parse as Unknown on some inputs.
                match ext.get(..2) {
                    Some([0, 41]) => f.psk_offered = true,
                    Some([0, 42]) => f.early_data = true,
                    _ => {}
                }
            }
        }
    }
    f.pack_offered(&versions, &alpn);
    Ok(f)
}

/// The facts of a ServerHello body, or that it is a HelloRetryRequest.
pub fn server_hello(body: &[u8]) -> Result<ServerHello, NotParsed> {
    let sh = match parse_tls_handshake_server_hello(body) {
        Ok((_, sh)) => sh,
        Err(e) => {
            return Err(NotParsed {
                message: "ServerHello",
                detail: format!("{e:?}"),
            })
        }
    };
    if sh.random == HRR_RANDOM {
        return Ok(ServerHello::Retry);
    }
    let mut f = ServerHelloFacts {
        version: sh.version.0,
        cipher: sh.cipher.0,
        session_id: sh.session_id.filter(|s| !s.is_empty()).map(hash),
        ..Default::default()
    };
    for ext in raw_extensions(sh.ext.unwrap_or(&[])) {
        // As in the ClientHello, only what is read here is parsed (not the key share).
        match ext.get(..2) {
            Some([0, 41]) => {
                f.psk_accepted = true;
                continue;
            }
            Some([0, 16 | 43]) => {}
            _ => continue,
        }
        match parse_tls_server_hello_extension(ext) {
            Ok((_, TlsExtension::SupportedVersions(v))) => {
                if let Some(v) = v.first() {
                    f.version = v.0;
                }
            }
            Ok((_, TlsExtension::ALPN(p))) => f.alpn = p.first().map(|p| printable(p).into_boxed_str()),
            _ => {}
        }
    }
    Ok(ServerHello::Hello(f))
}

/// Parse a TLS <= 1.2 Certificate message body: 3-byte list length, then 3-byte-prefixed DER.
pub fn parse_chain(body: &[u8]) -> Option<Chain> {
    let total = u24(body.get(..3)?);
    let list = body.get(3..3 + total)?;
    let mut certs = Vec::new();
    let mut i = 0;
    while i < list.len() {
        let len = u24(list.get(i..i + 3)?);
        certs.push(list.get(i + 3..i + 3 + len)?);
        i += 3 + len;
    }
    Some(chain_of(&certs))
}

/// Parse a TLS 1.3 Certificate message body (RFC 8446, 4.4.2): the request context, then a
/// 3-byte list length and entries of 3-byte-prefixed DER, each followed by its extensions.
pub fn parse_chain13(body: &[u8]) -> Option<Chain> {
    let ctx = usize::from(*body.first()?);
    let rest = body.get(1 + ctx..)?;
    let total = u24(rest.get(..3)?);
    let list = rest.get(3..3 + total)?;
    let mut certs = Vec::new();
    let mut i = 0;
    while i < list.len() {
        let len = u24(list.get(i..i + 3)?);
        certs.push(list.get(i + 3..i + 3 + len)?);
        i += 3 + len;
        let ext = list.get(i..i + 2)?;
        i += 2 + usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    (i == list.len()).then(|| chain_of(&certs))
}

fn chain_of(certs: &[&[u8]]) -> Chain {
    let mut chain = Chain {
        len: certs.len(),
        ..Default::default()
    };
    if let Some(der) = certs.first() {
        match certs::parse_certificate_cached(der) {
            Ok(c) => chain.leaf = Some(c),
            Err(e) => {
                chain.leaf_sha256 = Some(certs::sha256_hex(der));
                chain.leaf_error = Some(e.to_string());
            }
        }
    }
    chain
}

fn u24(b: &[u8]) -> usize {
    (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2])
}

/// Split an extensions block into whole extensions (type + length + data), so that one
/// extension tls-parser rejects does not hide the others.
fn raw_extensions(mut b: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?]));
        let ext = b.get(..4 + len)?;
        b = &b[4 + len..];
        Some(ext)
    })
}

/// Wire strings (SNI, ALPN) as printable text; anything else is escaped.
fn printable(b: &[u8]) -> String {
    // Nearly always plain ASCII (a host name, `h2`): one copy instead of a push per character.
    if b.iter()
        .all(|&c| matches!(c, b' '..=b'~') && c != b'"' && c != b'\'' && c != b'\\')
    {
        return String::from_utf8_lossy(b).into_owned();
    }
    b.iter()
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect()
}

/// A cheap, stable 64-bit hash (FNV-1a) for session IDs and tickets: they are only compared.
pub fn hash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcut for plain text gives what escaping every byte gives, for every byte alone
    /// and inside a name.
    #[test]
    fn printable_is_escape_default() {
        let slow = |b: &[u8]| -> String {
            b.iter()
                .flat_map(|&c| std::ascii::escape_default(c))
                .map(char::from)
                .collect()
        };
        for c in 0..=255u8 {
            for b in [vec![c], vec![b'h', c, b'2']] {
                assert_eq!(printable(&b), slow(&b), "{b:?}");
            }
        }
        assert_eq!(printable(b"server.test"), "server.test");
    }

    #[test]
    fn hash_is_stable() {
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(hash(b"a"), hash(b"b"));
    }
}
