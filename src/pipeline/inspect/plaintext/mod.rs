//! Names the application protocol of a TCP stream that is not TLS, from the first bytes each
//! side sent. The point is to say *what* went over the wire in clear, never to copy it: the only
//! payload-derived strings that leave this module are an HTTP method from a fixed allow-list, a
//! request path with its query string and fragment removed, and an HTTP/1.x `Host` made only of
//! host-name characters.
//!
//! Detection is by byte signatures. Each detector says how sure it is: `Strong` when the bytes
//! could hardly be another protocol, `Weak` when they fit but another protocol could send the
//! same thing (a bare `220 ` banner is SMTP or FTP). The server port only breaks ties between
//! candidates the bytes already allow; a port alone never names a protocol.
//!
//! This file is the entry point ([`identify`]) and the order detectors run in. The parts:
//! `types` (what is reported), `http1`, `http2` (which reads headers with `hpack` and
//! `huffman`), `binary` and `text` (the other detectors), `upgrade` (STARTTLS-style requests,
//! [`upgrade_request`]) and `bytes` (shared byte helpers). None of them uses this file.

mod binary;
mod bytes;
mod hpack;
mod http1;
mod http2;
mod huffman;
#[cfg(test)]
mod test_support;
mod text;
mod types;
mod upgrade;

pub use types::{PlaintextInfo, Protocol};
pub use upgrade::upgrade_request;

use types::{Evidence, Found};

/// `client`/`server`: the first bytes each side sent (may be empty, may be cut anywhere);
/// `server_port`: the server's TCP port, used only as a tie-breaker when the bytes are ambiguous.
pub fn identify(client: &[u8], server: &[u8], server_port: u16) -> PlaintextInfo {
    if let Some(info) = http2::identify(client, server) {
        return info;
    }
    if let Some(info) = http1::request_info(client) {
        return info;
    }
    let mut found = Vec::new();
    for detect in DETECTORS {
        detect(client, server, &mut found);
    }
    PlaintextInfo::bare(choose(&found, server_port))
}

/// Looks at both sides' first bytes and adds any protocol they fit.
type Detector = fn(&[u8], &[u8], &mut Found);

/// Order matters: among candidates of equal evidence and no port preference, the first wins.
const DETECTORS: &[Detector] = &[
    binary::ssh,
    http1::response,
    binary::postgresql,
    binary::mysql,
    binary::ldap,
    binary::dns,
    text::redis,
    text::imap,
    text::smtp_ftp,
    text::pop3,
    text::irc,
    text::xmpp,
];

fn choose(found: &[(Protocol, Evidence)], port: u16) -> Protocol {
    for evidence in [Evidence::Strong, Evidence::Weak] {
        let mut level = found.iter().filter(|(_, e)| *e == evidence);
        let first = level.clone().next();
        if let Some((p, _)) = level.find(|(p, _)| p.owns_port(port)).or(first) {
            return *p;
        }
    }
    Protocol::Unknown
}

#[cfg(test)]
mod tests {
    use super::binary::PG_SSL_REQUEST;
    use super::test_support::{grpc_request_block, h2_client, id, proto};
    use super::*;

    #[test]
    fn unknown_and_port_alone() {
        assert_eq!(id(b"", b"", 80), PlaintextInfo::bare(Protocol::Unknown));
        assert_eq!(proto(b"\x00\x01\x02garbage", b"\xff\xfe", 5432), Protocol::Unknown);
        // The port never names a protocol by itself.
        assert_eq!(proto(b"hi there\r\n", b"", 25), Protocol::Unknown);
    }

    #[test]
    fn every_prefix_and_corruption_is_panic_free() {
        let samples: Vec<Vec<u8>> = vec![
            h2_client(&grpc_request_block()),
            b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            PG_SSL_REQUEST.to_vec(),
            vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x04, 1, 2, 3, 4, 0x77],
            vec![0, 0x1d, 0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f],
            b"a1 STARTTLS\r\n".to_vec(),
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for sample in &samples {
            for cut in 0..=sample.len() {
                let head = sample.get(..cut).unwrap();
                let _ = identify(head, head, 53);
                let _ = upgrade_request(head);
            }
            for _ in 0..2000 {
                let mut bad = sample.clone();
                for _ in 0..3 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let i = (seed as usize) % bad.len();
                    bad[i] = (seed >> 32) as u8;
                }
                let _ = identify(&bad, &bad, 0);
                let _ = upgrade_request(&bad);
            }
        }
    }
}
