//! What the TLS classifier learns about one connection, as plain data: the hellos, the
//! certificate chains, alerts, the handshake messages seen in clear and how each direction's
//! record layer fared. The verdict stage reads these; nothing here parses bytes.
//!
//! Kept small on purpose: a million connections waiting in mid-handshake each hold one.

use super::rare_list::RareList;
use super::tls13::Tls13Flights;
use crate::pipeline::inspect::certs::CertInfo;
use crate::pipeline::side::{PerSide, Side};
use serde::Serialize;

/// How many alerts, problems and (twice this many) handshake message types are kept per
/// connection.
pub(super) const MAX_LIST: usize = 24;

/// What the ClientHello offered. Kept small: a million connections waiting in mid-handshake
/// each hold one (issue 7), so the SNI is one exact-size string and the offered versions and
/// ALPN protocols share one allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHelloFacts {
    pub sni: Option<Box<str>>,
    /// The offered versions (2 bytes each, big-endian), then each ALPN protocol (as printable
    /// text) preceded by its length (2 bytes, big-endian).
    offered: Box<[u8]>,
    /// How many versions lead `offered`.
    n_versions: u8,
    pub cipher_suites: usize,
    /// A non-empty legacy session ID (a TLS 1.2 resumption attempt, or TLS 1.3 compatibility mode).
    pub session_id: Option<u64>,
    /// A non-empty SessionTicket extension: a TLS 1.2 ticket resumption attempt.
    pub ticket: Option<u64>,
    pub psk_offered: bool,
    pub early_data: bool,
    /// Chrome's ALPS (application_settings): when the server accepts it, the client sends its
    /// own EncryptedExtensions before Finished.
    pub alps_offered: bool,
}

impl ClientHelloFacts {
    /// Versions the client offers: `supported_versions`, else the legacy version field.
    pub fn versions(&self) -> impl Iterator<Item = u16> + '_ {
        self.offered[..2 * usize::from(self.n_versions)]
            .chunks_exact(2)
            .map(|v| u16::from_be_bytes([v[0], v[1]]))
    }

    /// The ALPN protocols offered, in order.
    pub fn alpn(&self) -> impl Iterator<Item = &str> + '_ {
        let mut rest = &self.offered[2 * usize::from(self.n_versions)..];
        std::iter::from_fn(move || {
            let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
            let p = rest.get(2..2 + len)?;
            rest = &rest[2 + len..];
            // Written by `pack_offered` from `printable` text: always ASCII.
            std::str::from_utf8(p).ok()
        })
    }

    /// Store the offered versions and ALPN protocols in one exact-size allocation.
    pub(super) fn pack_offered(&mut self, versions: &[u16], alpn: &[String]) {
        let versions = &versions[..versions.len().min(usize::from(u8::MAX))];
        let mut b = Vec::with_capacity(2 * versions.len() + alpn.iter().map(|p| 2 + p.len()).sum::<usize>());
        for v in versions {
            b.extend_from_slice(&v.to_be_bytes());
        }
        for p in alpn {
            // An ALPN protocol is at most 255 bytes, 1,020 once escaped: the length fits.
            b.extend_from_slice(&(p.len() as u16).to_be_bytes());
            b.extend_from_slice(p.as_bytes());
        }
        self.n_versions = versions.len() as u8;
        self.offered = b.into_boxed_slice();
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ServerHelloFacts {
    /// Negotiated version: `supported_versions` when present, else the legacy version field.
    pub version: u16,
    pub cipher: u16,
    pub alpn: Option<Box<str>>,
    #[serde(skip)]
    pub session_id: Option<u64>,
    pub psk_accepted: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Alert {
    /// The side that sent it.
    #[serde(skip)]
    pub dir: Side,
    pub level: u8,
    pub description: u8,
    /// Sent after that direction switched to encryption: only its length is known.
    pub encrypted: bool,
}

/// A handshake message announced larger than the classifier keeps: given up, not parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversized {
    /// The side that sent it.
    pub from: Side,
    /// Its handshake type (1 ClientHello, 11 Certificate...).
    pub ty: u8,
    /// The length its header announces, without the 4-byte header.
    pub len: u32,
}

/// A certificate chain as seen in a clear-text Certificate message.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Chain {
    pub len: usize,
    pub leaf: Option<std::sync::Arc<CertInfo>>,
    /// SHA-256 of the leaf when it could not be parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_error: Option<String>,
    /// The version field of the record that carried the Certificate: the negotiated version
    /// (RFC 5246, E.1), which names it when the ServerHello is not in the capture.
    #[serde(skip)]
    pub record_version: u16,
}

/// Everything the classifier learnt about one connection, per side of the flow.
#[derive(Debug, Clone, Default)]
pub struct TlsFacts {
    pub client_dir: Option<Side>,
    pub client_hello: Option<ClientHelloFacts>,
    pub hello_retry: bool,
    // Boxed: a certificate is large and most connections waiting in mid-handshake have none.
    pub server_hello: Option<ServerHelloFacts>,
    pub server_chain: Option<Box<Chain>>,
    pub client_chain: Option<Box<Chain>>,
    pub certificate_requested: bool,
    /// A handshake message over the size limit, which stopped that direction's parsing.
    pub oversized: Option<Oversized>,
    /// A NewSessionTicket in clear (TLS <= 1.2): hash of the ticket.
    pub new_ticket: Option<u64>,
    pub ccs: PerSide<bool>,
    /// A handshake record after that direction's ChangeCipherSpec (its Finished).
    pub finished: PerSide<bool>,
    pub app_records: PerSide<u64>,
    pub alerts: RareList<Alert>,
    /// Handshake message types seen in clear, in order, with their direction.
    pub messages: Messages,
    pub tls13: Tls13Flights,
    /// Problems met while parsing, for the evidence (bounded).
    pub problems: RareList<String>,
    /// A gap hit a record header or a handshake message in this direction.
    pub lost_sync: PerSide<bool>,
    /// Records found by re-synchronising (mid-stream capture or after a gap).
    pub resynced_records: PerSide<u32>,
}

/// A TLS 1.3 handshake decrypted with the key log (inspect/tls/decrypt.rs); only when the key
/// log had this connection's ClientHello random. Kept beside the [`TlsFacts`], not in them: a
/// million connections in mid-handshake without a key log do not pay for it.
#[derive(Debug, Clone, Default)]
pub struct Decrypted {
    /// Records that authenticated, per direction.
    pub records: PerSide<u32>,
    /// The server's CertificateRequest.
    pub certificate_requested: bool,
    pub server_chain: Option<Chain>,
    pub client_chain: Option<Chain>,
    /// That direction's Finished was decrypted: its whole flight was read.
    pub finished: PerSide<bool>,
    /// Handshake messages decrypted, in order, with their direction.
    pub messages: RareList<HandshakeMessage>,
    /// Alerts sent under the handshake keys (description).
    pub alerts: RareList<(Side, u8)>,
    /// A record that did not authenticate: the key log's entry is not this connection's.
    /// (direction, the record's number in that direction, from 1).
    pub failed: Option<(Side, u32)>,
    /// The key log's entry could not be used (its secret does not fit the cipher suite).
    pub unusable: Option<String>,
    /// Records skipped as 0-RTT early data.
    pub early_records: u32,
}

impl TlsFacts {
    pub fn server_dir(&self) -> Option<Side> {
        self.client_dir.map(Side::other)
    }

    pub fn is_tls13(&self) -> bool {
        self.server_hello.as_ref().is_some_and(|s| s.version == 0x0304)
    }

    /// Note a problem met while parsing, up to the cap.
    pub(super) fn problem(&mut self, p: String) {
        if self.problems.len() < MAX_LIST {
            self.problems.push(p);
        }
    }
}

/// Handshake messages kept inline: a handshake in progress has a few.
const INLINE_MESSAGES: usize = 6;

/// One handshake message seen in clear: who sent it and its type (1 ClientHello, 11
/// Certificate...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeMessage {
    pub from: Side,
    pub ty: u8,
}

/// Handshake messages seen in clear, in order. The first few are kept inline (a connection in
/// mid-handshake has two or three), the rest, up to the cap, in a vector that holds all of them
/// once it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Messages {
    inline: [HandshakeMessage; INLINE_MESSAGES],
    len: u8,
    spilled: RareList<HandshakeMessage>,
}

impl Default for Messages {
    fn default() -> Self {
        let unused = HandshakeMessage { from: Side::Lo, ty: 0 };
        Messages {
            inline: [unused; INLINE_MESSAGES],
            len: 0,
            spilled: RareList::default(),
        }
    }
}

impl std::ops::Deref for Messages {
    type Target = [HandshakeMessage];

    fn deref(&self) -> &[HandshakeMessage] {
        if self.spilled.is_empty() {
            &self.inline[..usize::from(self.len)]
        } else {
            &self.spilled
        }
    }
}

impl Messages {
    pub fn push(&mut self, m: HandshakeMessage) {
        if self.spilled.is_empty() {
            if usize::from(self.len) < INLINE_MESSAGES {
                self.inline[usize::from(self.len)] = m;
                self.len += 1;
                return;
            }
            for &old in &self.inline {
                self.spilled.push(old);
            }
        }
        self.spilled.push(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_spill_past_the_inline_ones_in_order() {
        let mut m = Messages::default();
        let want: Vec<HandshakeMessage> = (0..10)
            .map(|ty| HandshakeMessage {
                from: Side::BOTH[usize::from(ty % 2)],
                ty,
            })
            .collect();
        for (i, &x) in want.iter().enumerate() {
            m.push(x);
            assert_eq!(&m[..], &want[..=i]);
        }
    }

    #[test]
    fn client_hello_offer_packs_versions_and_alpn() {
        let mut f = ClientHelloFacts::default();
        assert_eq!(f.versions().count() + f.alpn().count(), 0);
        f.pack_offered(&[0x0304, 0x0303], &["h2".into(), String::new(), "http/1.1".into()]);
        assert_eq!(f.versions().collect::<Vec<_>>(), [0x0304, 0x0303]);
        assert_eq!(f.alpn().collect::<Vec<_>>(), ["h2", "", "http/1.1"]);
    }
}
