//! Stage 4, inspect: TLS record and handshake parsing for one connection.
//!
//! The classifier reads both reassembled directions, walks the record layer itself (so that
//! application-data records are skipped without being buffered), defragments handshake messages
//! across records and hands each complete message to tls-parser. It only records facts; the
//! verdict stage decides what they mean.
//!
//! State per direction is driven by one match over (record type, whether that direction is
//! already encrypted), laid out as a table in [`Classifier::on_record_header`]. Memory is bounded:
//! a handshake message may not exceed [`MAX_HANDSHAKE`] bytes, and every list kept has a cap.

use crate::pipeline::inspect::certs::{self, CertInfo};
use crate::pipeline::side::{PerSide, Side};
use serde::Serialize;
use tls_parser::{
    parse_tls_client_hello_extension, parse_tls_handshake_client_hello, parse_tls_handshake_server_hello,
    parse_tls_server_hello_extension, TlsExtension,
};

/// Largest handshake message kept (a certificate chain of a few certificates fits easily).
pub const MAX_HANDSHAKE: usize = 256 * 1024;
/// Largest TLS record body: 2^14 plus the expansion TLS 1.2 allows (TLS 1.3 allows 256).
const MAX_RECORD: usize = (1 << 14) + 2048;
/// How many record lengths of the TLS 1.3 server flight are kept.
const MAX_FLIGHT: usize = 16;
/// How many alerts and handshake message types are kept per connection.
const MAX_LIST: usize = 24;
/// Bytes looked at to re-find the record boundary after a gap or in a mid-stream capture.
const RESYNC_WINDOW: usize = 64 * 1024;

/// The random value that marks a ServerHello as a HelloRetryRequest (RFC 8446, 4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11,
    0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Record content types.
const CCS: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APP_DATA: u8 = 23;
const HEARTBEAT: u8 = 24;

/// Does this 5-byte header look like a TLS record header?
pub fn plausible_header(h: &[u8]) -> bool {
    h.len() >= 5
        && (CCS..=HEARTBEAT).contains(&h[0])
        && h[1] == 3
        && h[2] <= 4
        && usize::from(u16::from_be_bytes([h[3], h[4]])) <= MAX_RECORD
        && u16::from_be_bytes([h[3], h[4]]) > 0
}

/// Does this stream start with a handshake record carrying a ClientHello or ServerHello?
pub fn starts_with_hello(b: &[u8]) -> bool {
    b.len() >= 6 && b[0] == HANDSHAKE && plausible_header(b) && (b[5] == 1 || b[5] == 2)
}

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
    fn pack_offered(&mut self, versions: &[u16], alpn: &[String]) {
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

/// A certificate chain as seen in a clear-text Certificate message.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Chain {
    pub len: usize,
    pub leaf: Option<CertInfo>,
    /// SHA-256 of the leaf when it could not be parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_error: Option<String>,
}

/// What the encrypted TLS 1.3 flights looked like (lengths only).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Tls13Flights {
    /// Inner lengths (record length - tag - content type) of the server's encrypted records
    /// after ServerHello and before the client's first encrypted record.
    pub server_flight: RareList<u32>,
    /// Length of the client's first encrypted record after ServerHello.
    pub client_first_record: Option<u32>,
    /// Number of records the client sent whose inner length is that of EndOfEarlyData,
    /// skipped because early data was offered.
    pub end_of_early_data_skipped: u32,
    /// Inner length of the server's first encrypted record after the client's flight.
    pub server_reply: Option<u32>,
    /// The client sent a second encrypted record (its flight was accepted).
    pub client_continued: bool,
}

/// Everything the classifier learnt about one connection. Directions are the flow's indices.
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

impl TlsFacts {
    pub fn server_dir(&self) -> Option<Side> {
        self.client_dir.map(Side::other)
    }

    pub fn is_tls13(&self) -> bool {
        self.server_hello.as_ref().is_some_and(|s| s.version == 0x0304)
    }

    fn problem(&mut self, p: String) {
        if self.problems.len() < MAX_LIST {
            self.problems.push(p);
        }
    }
}

#[derive(Default)]
struct Dir {
    hdr: [u8; 5],
    hdr_len: u8,
    /// Remaining body bytes of the current record (at most 2^16 - 1).
    need: u32,
    /// The current record's body is being kept (clear-text handshake or alert).
    keep: bool,
    rec_type: u8,
    /// Boxed and only while a record or a message is incomplete: a connection waiting in
    /// mid-handshake then holds one pointer per direction instead of two empty vectors.
    bufs: Option<Box<Bufs>>,
    /// Records after ChangeCipherSpec (TLS <= 1.2) or ServerHello (TLS 1.3) are encrypted.
    encrypted: bool,
    /// Re-finding record boundaries; bytes collected so far.
    // Boxed on purpose: re-synchronising is rare, and one pointer instead of a vector's three
    // words is 16 bytes less for every direction of every open connection.
    #[allow(clippy::box_collection)]
    resync: Option<Box<Vec<u8>>>,
    /// Offset in the stream, for messages.
    offset: u64,
    dead: bool,
}

/// A list that is empty for most connections (alerts, problems, encrypted flight lengths):
/// one pointer instead of a vector's three words until the first element arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
// Boxed on purpose: one pointer instead of a vector's three words while empty.
#[allow(clippy::box_collection)]
pub struct RareList<T>(Option<Box<Vec<T>>>);

impl<T> Default for RareList<T> {
    fn default() -> Self {
        RareList(None)
    }
}

impl<T> std::ops::Deref for RareList<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl<T> RareList<T> {
    pub fn push(&mut self, v: T) {
        self.0.get_or_insert_with(Box::default).push(v);
    }

    pub fn as_slice(&self) -> &[T] {
        self
    }
}

impl<T: Serialize> Serialize for RareList<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
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

#[derive(Default)]
struct Bufs {
    /// The body of the current record, while it is kept.
    body: Vec<u8>,
    /// Handshake bytes not yet forming a complete message.
    hs: Vec<u8>,
}

impl Dir {
    fn bufs(&mut self) -> &mut Bufs {
        self.bufs.get_or_insert_with(Box::default)
    }

    /// Drop the buffers once nothing is held in them.
    fn release(&mut self) {
        if self.bufs.as_ref().is_some_and(|b| b.body.is_empty() && b.hs.is_empty()) {
            self.bufs = None;
        }
    }
}

/// The TLS classifier for one connection.
#[derive(Default)]
pub struct Classifier {
    dirs: PerSide<Dir>,
    pub facts: TlsFacts,
}

impl Classifier {
    pub fn new() -> Self {
        Classifier::default()
    }

    /// Start a direction that is picked up in the middle (no handshake seen): the first record
    /// boundary is found by looking for record headers that chain back to back.
    pub fn start_midstream(&mut self, dir: Side) {
        self.dirs[dir].resync = Some(Box::default());
        self.dirs[dir].encrypted = true;
    }

    /// Bytes held: partial record bodies, partial handshake messages, re-synchronisation.
    pub fn buffered(&self) -> usize {
        self.dirs
            .iter()
            .map(|d| {
                d.bufs.as_ref().map_or(0, |b| b.body.capacity() + b.hs.capacity())
                    + d.resync.as_ref().map_or(0, |r| r.capacity())
            })
            .sum()
    }

    /// Is this direction parsing records (not lost)?
    pub fn in_sync(&self, dir: Side) -> bool {
        self.dirs[dir].resync.is_none() && !self.dirs[dir].dead
    }

    /// Has this direction given up (no record boundary found)?
    pub fn dead(&self, dir: Side) -> bool {
        self.dirs[dir].dead
    }

    pub fn data(&mut self, dir: Side, bytes: &[u8]) {
        if self.dirs[dir].dead {
            return;
        }
        match self.dirs[dir].resync.take() {
            None => self.feed(dir, bytes),
            Some(mut buf) => {
                let room = RESYNC_WINDOW.saturating_sub(buf.len());
                buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
                match find_boundary(&buf) {
                    Boundary::At(start) => {
                        self.dirs[dir].offset += start as u64;
                        self.facts.resynced_records[dir] += 1;
                        self.feed(dir, &buf[start..]);
                        if bytes.len() > room {
                            self.feed(dir, &bytes[room..]);
                        }
                    }
                    Boundary::NeedMore if buf.len() < RESYNC_WINDOW => {
                        self.dirs[dir].resync = Some(buf);
                    }
                    _ => {
                        self.dirs[dir].dead = true;
                        self.facts.problem(format!(
                            "direction {}: no TLS record boundary found in {} bytes",
                            dir.index(),
                            buf.len()
                        ));
                    }
                }
            }
        }
    }

    pub fn gap(&mut self, dir: Side, len: u64) {
        let d = &mut self.dirs[dir];
        d.offset += len;
        if d.dead || d.resync.is_some() {
            return;
        }
        if d.hdr_len == 0 && !d.keep && u64::from(d.need) >= len {
            // Inside a record we skip anyway: nothing lost.
            d.need -= len as u32;
            return;
        }
        let what = if d.keep {
            "a handshake record"
        } else {
            "a record header"
        };
        let off = d.offset - len;
        d.hdr_len = 0;
        d.need = 0;
        d.keep = false;
        d.bufs = None;
        d.resync = Some(Box::default());
        self.facts.lost_sync[dir] = true;
        self.facts.problem(format!(
            "{len} bytes missing at offset {off} of direction {}, inside {what}",
            dir.index()
        ));
    }

    fn feed(&mut self, dir: Side, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.dirs[dir].dead {
            let d = &mut self.dirs[dir];
            if d.need > 0 {
                let n = (d.need as usize).min(bytes.len());
                if d.keep {
                    d.bufs().body.extend_from_slice(&bytes[..n]);
                }
                d.need -= n as u32;
                d.offset += n as u64;
                bytes = &bytes[n..];
                if d.need == 0 && d.keep {
                    d.keep = false;
                    // The body buffer is dropped after each record: a connection waiting in
                    // mid-handshake then holds nothing, which is what a million of them cost.
                    let body = std::mem::take(&mut self.dirs[dir].bufs().body);
                    self.on_record_body(dir, &body);
                    self.dirs[dir].release();
                }
                continue;
            }
            let at = usize::from(d.hdr_len);
            let n = (5 - at).min(bytes.len());
            d.hdr[at..at + n].copy_from_slice(&bytes[..n]);
            d.hdr_len += n as u8;
            d.offset += n as u64;
            bytes = &bytes[n..];
            if d.hdr_len == 5 {
                d.hdr_len = 0;
                let hdr = d.hdr;
                self.on_record_header(dir, hdr);
            }
        }
    }

    /// The record-layer table: what to do with a record of this type in this direction's state.
    fn on_record_header(&mut self, dir: Side, h: [u8; 5]) {
        if !plausible_header(&h) {
            let off = self.dirs[dir].offset - 5;
            self.facts.problem(format!(
                "direction {}: not a TLS record at offset {off} (bytes {:02x} {:02x} {:02x})",
                dir.index(),
                h[0],
                h[1],
                h[2]
            ));
            self.dirs[dir].dead = true;
            return;
        }
        let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
        let encrypted = self.dirs[dir].encrypted;
        let tls13 = self.facts.is_tls13();
        let d = &mut self.dirs[dir];
        d.rec_type = h[0];
        d.need = len as u32;
        d.keep = false;
        match (h[0], encrypted) {
            (HANDSHAKE, false) | (ALERT, false) => {
                d.keep = true;
                if let Some(b) = &mut d.bufs {
                    b.body.clear();
                }
            }
            (CCS, _) => {
                self.facts.ccs[dir] = true;
                // TLS 1.3 sends a dummy ChangeCipherSpec for middleboxes (also right after a
                // HelloRetryRequest, before the second ClientHello); it changes nothing. In
                // TLS <= 1.2 it can only follow ServerHello.
                if !tls13 && self.facts.server_hello.is_some() {
                    d.encrypted = true;
                }
            }
            (HANDSHAKE, true) => {
                // TLS <= 1.2 Finished (or a renegotiation), encrypted.
                self.facts.finished[dir] = true;
            }
            (ALERT, true) => {
                self.push_alert(Alert {
                    dir,
                    level: 0,
                    description: 0,
                    encrypted: true,
                });
            }
            (APP_DATA, _) => self.on_app_record(dir, len as u32),
            _ => {}
        }
    }

    fn push_alert(&mut self, a: Alert) {
        if self.facts.alerts.len() < MAX_LIST {
            self.facts.alerts.push(a);
        }
    }

    fn on_app_record(&mut self, dir: Side, len: u32) {
        self.facts.app_records[dir] += 1;
        let Some(sh) = &self.facts.server_hello else {
            return;
        };
        if sh.version != 0x0304 {
            return;
        }
        let tag = if sh.cipher == 0x1305 { 8 } else { 16 };
        let inner = len.saturating_sub(tag + 1);
        let server = self.facts.server_dir() == Some(dir);
        let early = self.facts.client_hello.as_ref().is_some_and(|c| c.early_data);
        let f = &mut self.facts.tls13;
        match (server, f.client_first_record) {
            (true, None) => {
                if f.server_flight.len() < MAX_FLIGHT {
                    f.server_flight.push(inner);
                }
            }
            (true, Some(_)) => {
                if f.server_reply.is_none() {
                    f.server_reply = Some(inner);
                }
            }
            (false, None) => {
                // EndOfEarlyData (4 bytes) precedes the client's flight when 0-RTT was used.
                if early && inner == 4 {
                    f.end_of_early_data_skipped += 1;
                } else {
                    f.client_first_record = Some(len);
                }
            }
            (false, Some(_)) => f.client_continued = true,
        }
    }

    fn on_record_body(&mut self, dir: Side, body: &[u8]) {
        match self.dirs[dir].rec_type {
            ALERT => {
                // Several alerts may share a record; a 2-byte body is the usual case.
                for a in body.chunks(2) {
                    if let [level, description] = *a {
                        self.push_alert(Alert {
                            dir,
                            level,
                            description,
                            encrypted: false,
                        });
                    }
                }
            }
            HANDSHAKE => {
                let hs = &mut self.dirs[dir].bufs().hs;
                if hs.len() + body.len() > MAX_HANDSHAKE {
                    self.facts.problem(format!(
                        "direction {}: handshake message larger than {MAX_HANDSHAKE} bytes, not parsed",
                        dir.index()
                    ));
                    self.dirs[dir].bufs = None;
                    self.dirs[dir].dead = true;
                    return;
                }
                hs.extend_from_slice(body);
                self.drain_handshake(dir);
            }
            _ => {}
        }
    }

    fn drain_handshake(&mut self, dir: Side) {
        let mut consumed = 0;
        let hs = std::mem::take(&mut self.dirs[dir].bufs().hs);
        while let Some(h) = hs.get(consumed..consumed + 4) {
            let len = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
            let Some(msg) = hs.get(consumed..consumed + 4 + len) else {
                break;
            };
            self.on_handshake(dir, msg[0], &msg[4..]);
            consumed += 4 + len;
            if self.dirs[dir].encrypted {
                // A TLS 1.3 ServerHello switches keys: whatever follows in this record is not
                // ours to parse (it can't be: 1.3 forbids it, but don't trust the peer).
                consumed = hs.len();
            }
        }
        let mut hs = hs;
        hs.drain(..consumed.min(hs.len()));
        // Between messages nothing needs keeping; release the allocation.
        if !hs.is_empty() {
            self.dirs[dir].bufs().hs = hs;
        }
    }

    fn on_handshake(&mut self, dir: Side, ty: u8, body: &[u8]) {
        if self.facts.messages.len() < MAX_LIST * 2 {
            self.facts.messages.push(HandshakeMessage { from: dir, ty });
        }
        match ty {
            1 => self.on_client_hello(dir, body),
            2 => self.on_server_hello(dir, body),
            4 => {
                // NewSessionTicket (clear in TLS <= 1.2): lifetime hint, then the ticket.
                if let Some(t) = body.get(6..) {
                    self.facts.new_ticket = Some(hash(t));
                }
            }
            11 => self.on_certificate(dir, body),
            13 if self.facts.server_dir() == Some(dir) || self.facts.client_dir.is_none() => {
                self.facts.certificate_requested = true;
            }
            _ => {}
        }
    }

    fn on_client_hello(&mut self, dir: Side, body: &[u8]) {
        if self.facts.client_dir.is_none() {
            self.facts.client_dir = Some(dir);
        }
        let ch = match parse_tls_handshake_client_hello(body) {
            Ok((_, ch)) => ch,
            Err(e) => {
                self.facts.problem(format!("ClientHello not parsed: {e:?}"));
                return;
            }
        };
        let mut f = ClientHelloFacts {
            cipher_suites: ch.ciphers.len(),
            session_id: ch.session_id.filter(|s| !s.is_empty()).map(hash),
            ..Default::default()
        };
        let mut versions = vec![ch.version.0];
        let mut alpn = Vec::new();
        for ext in raw_extensions(ch.ext.unwrap_or(&[])) {
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
                        // application_settings: 17513 (draft codepoint) and 17613.
                        Some([0x44, 0x69]) | Some([0x44, 0xcd]) => f.alps_offered = true,
                        _ => {}
                    }
                }
            }
        }
        f.pack_offered(&versions, &alpn);
        // Keep the first ClientHello's facts after a HelloRetryRequest, but learn PSK/early data.
        match &mut self.facts.client_hello {
            Some(prev) if self.facts.hello_retry => {
                prev.psk_offered |= f.psk_offered;
            }
            _ => self.facts.client_hello = Some(f),
        }
    }

    fn on_server_hello(&mut self, dir: Side, body: &[u8]) {
        if self.facts.client_dir.is_none() {
            self.facts.client_dir = Some(dir.other());
        }
        let sh = match parse_tls_handshake_server_hello(body) {
            Ok((_, sh)) => sh,
            Err(e) => {
                self.facts.problem(format!("ServerHello not parsed: {e:?}"));
                return;
            }
        };
        if sh.random == HRR_RANDOM {
            self.facts.hello_retry = true;
            return;
        }
        let mut f = ServerHelloFacts {
            version: sh.version.0,
            cipher: sh.cipher.0,
            session_id: sh.session_id.filter(|s| !s.is_empty()).map(hash),
            ..Default::default()
        };
        for ext in raw_extensions(sh.ext.unwrap_or(&[])) {
            match parse_tls_server_hello_extension(ext) {
                Ok((_, TlsExtension::SupportedVersions(v))) => {
                    if let Some(v) = v.first() {
                        f.version = v.0;
                    }
                }
                Ok((_, TlsExtension::ALPN(p))) => f.alpn = p.first().map(|p| printable(p).into_boxed_str()),
                _ => {
                    if ext.get(..2) == Some(&[0, 41]) {
                        f.psk_accepted = true;
                    }
                }
            }
        }
        let tls13 = f.version == 0x0304;
        self.facts.server_hello = Some(f);
        if tls13 {
            // Everything after ServerHello is encrypted, in both directions.
            for d in self.dirs.iter_mut() {
                d.encrypted = true;
            }
        }
    }

    fn on_certificate(&mut self, dir: Side, body: &[u8]) {
        let chain = parse_chain(body);
        let chain = match chain {
            Some(c) => c,
            None => {
                self.facts
                    .problem(format!("direction {}: Certificate message not parsed", dir.index()));
                return;
            }
        };
        if self.facts.server_dir() == Some(dir) {
            self.facts.server_chain = Some(Box::new(chain));
        } else {
            self.facts.client_chain = Some(Box::new(chain));
        }
    }
}

enum Boundary {
    At(usize),
    NeedMore,
    NotFound,
}

/// Find the first offset where two plausible record headers of the same version chain back to
/// back. A record boundary is at most one maximal record away, so only that far is searched.
fn find_boundary(buf: &[u8]) -> Boundary {
    let last = buf.len().saturating_sub(5).min(MAX_RECORD + 5);
    for start in 0..last {
        let h = &buf[start..];
        if !plausible_header(h) {
            continue;
        }
        let next = start + 5 + usize::from(u16::from_be_bytes([h[3], h[4]]));
        match buf.get(next..next + 5) {
            Some(h2) if plausible_header(h2) && h2[1..3] == h[1..3] => return Boundary::At(start),
            Some(_) => continue,
            // The candidate can't be confirmed yet; later candidates would be checked with the
            // same missing bytes, so wait for more.
            None => return Boundary::NeedMore,
        }
    }
    if buf.len() > MAX_RECORD + 10 {
        Boundary::NotFound
    } else {
        Boundary::NeedMore
    }
}

/// Parse a TLS <= 1.2 Certificate message body: 3-byte list length, then 3-byte-prefixed DER.
fn parse_chain(body: &[u8]) -> Option<Chain> {
    let total = u24(body.get(..3)?);
    let list = body.get(3..3 + total)?;
    let mut certs = Vec::new();
    let mut i = 0;
    while i < list.len() {
        let len = u24(list.get(i..i + 3)?);
        certs.push(list.get(i + 3..i + 3 + len)?);
        i += 3 + len;
    }
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
    Some(chain)
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
    b.iter()
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect()
}

/// A cheap, stable 64-bit hash (FNV-1a) for session IDs and tickets: they are only compared.
fn hash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![ty, 3, 3];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    fn handshake(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![ty];
        m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        m.extend_from_slice(body);
        m
    }

    fn client_hello(sni: &str) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[7; 32]);
        b.push(0); // session id
        b.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
        let name = sni.as_bytes();
        let mut sni_ext = vec![0, 0];
        let list_len = (name.len() + 3) as u16;
        sni_ext.extend_from_slice(&(list_len + 2).to_be_bytes());
        sni_ext.extend_from_slice(&list_len.to_be_bytes());
        sni_ext.push(0);
        sni_ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni_ext.extend_from_slice(name);
        b.extend_from_slice(&(sni_ext.len() as u16).to_be_bytes());
        b.extend_from_slice(&sni_ext);
        handshake(1, &b)
    }

    #[test]
    fn client_hello_split_across_records_and_segments() {
        let ch = client_hello("reviews.test");
        let (a, b) = ch.split_at(10);
        let mut stream = record(HANDSHAKE, a);
        stream.extend(record(HANDSHAKE, b));
        let mut c = Classifier::new();
        for byte in stream.chunks(3) {
            c.data(Side::Lo, byte);
        }
        assert_eq!(c.facts.client_dir, Some(Side::Lo));
        let f = c.facts.client_hello.as_ref().unwrap();
        assert_eq!(f.sni.as_deref(), Some("reviews.test"));
    }

    #[test]
    fn not_tls_kills_direction_without_panic() {
        let mut c = Classifier::new();
        c.data(Side::Lo, b"GET / HTTP/1.1\r\n");
        assert!(c.dead(Side::Lo));
        assert!(!c.facts.problems.is_empty());
    }

    #[test]
    fn midstream_resync_finds_chained_records() {
        let mut c = Classifier::new();
        c.start_midstream(Side::Hi);
        let mut s = vec![0x42; 7]; // tail of a record we joined in the middle of
        s.extend(record(APP_DATA, &[1; 40]));
        s.extend(record(APP_DATA, &[2; 50]));
        s.extend(record(APP_DATA, &[3; 60]));
        c.data(Side::Hi, &s[..20]);
        c.data(Side::Hi, &s[20..]);
        assert!(c.in_sync(Side::Hi));
        assert_eq!(c.facts.app_records[Side::Hi], 3);
    }

    #[test]
    fn gap_inside_application_data_is_harmless() {
        let mut c = Classifier::new();
        let r = record(APP_DATA, &[0; 100]);
        c.data(Side::Lo, &r[..30]);
        c.gap(Side::Lo, 50);
        c.data(Side::Lo, &r[80..]);
        c.data(Side::Lo, &record(APP_DATA, &[0; 10]));
        assert!(c.in_sync(Side::Lo));
        assert_eq!(c.facts.app_records[Side::Lo], 2);
    }

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

    #[test]
    fn hash_is_stable() {
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(hash(b"a"), hash(b"b"));
    }
}
