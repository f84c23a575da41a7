//! The TLS classifier of one connection: walks the record layer of both reassembled directions
//! itself (so that application-data records are skipped without being buffered), re-finds
//! record boundaries after a gap or in a capture that starts mid-stream, defragments handshake
//! messages across records and hands each complete one to the `hello` parsers. It only records
//! facts; the verdict stage decides what they mean.
//!
//! State per direction is driven by one match over (record type, whether that direction is
//! already encrypted), laid out as a table in [`Classifier::on_record_header`]. Memory is bounded:
//! a handshake message may not exceed [`MAX_HANDSHAKE`] bytes, and every list kept has a cap.

use super::decrypt::{Keys, Opened};
use super::facts::{Alert, Chain, Decrypted, HandshakeMessage, Oversized, TlsFacts, MAX_LIST};
use super::hello::{self, ServerHello};
use crate::pipeline::keylog::KeyLog;
use crate::pipeline::side::{PerSide, Side};
use std::sync::Arc;

/// Largest handshake message kept (a certificate chain of a few certificates fits easily).
pub const MAX_HANDSHAKE: usize = 256 * 1024;
/// Largest TLS record body: 2^14 plus the expansion TLS 1.2 allows (TLS 1.3 allows 256).
const MAX_RECORD: usize = (1 << 14) + 2048;
/// Bytes looked at to re-find the record boundary after a gap or in a mid-stream capture.
const RESYNC_WINDOW: usize = 64 * 1024;
/// First bytes kept of a direction that does not start with a TLS record (a server answering
/// a ClientHello in plaintext): enough to name the protocol, as the plaintext heads are.
const ANSWER_HEAD: usize = 512;

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

#[derive(Default)]
struct Dir {
    hdr: [u8; 5],
    hdr_len: u8,
    /// Remaining body bytes of the current record (at most 2^16 - 1).
    need: u32,
    /// The current record's body is being kept (clear-text handshake or alert).
    keep: bool,
    rec_type: u8,
    /// The current record's minor version (the major is always 3, see `plausible_header`);
    /// one byte, so that it fits beside `rec_type` and the classifier does not grow.
    rec_minor: u8,
    /// Boxed and only while a record or a message is incomplete: a connection waiting in
    /// mid-handshake then holds one pointer per direction instead of two empty vectors.
    bufs: Option<Box<Bufs>>,
    /// Records after ChangeCipherSpec (TLS <= 1.2) or ServerHello (TLS 1.3) are encrypted.
    encrypted: bool,
    /// Bytes held outside the record layer: while re-finding record boundaries, those collected
    /// so far; in a direction that died at its very start (not TLS), its first bytes.
    // Boxed on purpose: re-synchronising is rare, and one pointer instead of a vector's three
    // words is 16 bytes less for every direction of every open connection.
    #[allow(clippy::box_collection)]
    resync: Option<Box<Vec<u8>>>,
    /// Offset in the stream, for messages.
    offset: u64,
    dead: bool,
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
    /// With a key log only: the connection's random and, once found, its handshake keys.
    keys: Option<Box<Keys>>,
}

impl Classifier {
    pub fn new() -> Self {
        Classifier::default()
    }

    /// A classifier that decrypts a TLS 1.3 handshake whose keys this key log has.
    pub fn with_keys(log: Option<&Arc<KeyLog>>) -> Self {
        Classifier {
            keys: log.map(|l| Box::new(Keys::new(l.clone()))),
            ..Classifier::default()
        }
    }

    /// What the key log decrypted of this connection's handshake (taken: the verdict reads it).
    pub fn take_decrypted(&mut self) -> Option<Box<Decrypted>> {
        self.keys.as_mut().and_then(|k| k.decrypted.take())
    }

    /// A direction whose handshake is being decrypted and whose Finished is still to come.
    pub fn decrypting(&self) -> bool {
        self.keys
            .as_ref()
            .is_some_and(|k| k.found() && Side::BOTH.into_iter().any(|d| k.pending(d)))
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
            .sum::<usize>()
            + self.keys.as_ref().map_or(0, |k| k.buffered())
    }

    /// Is this direction parsing records (not lost)?
    pub fn in_sync(&self, dir: Side) -> bool {
        self.dirs[dir].resync.is_none() && !self.dirs[dir].dead
    }

    /// Has this direction given up (no record boundary found)?
    pub fn dead(&self, dir: Side) -> bool {
        self.dirs[dir].dead
    }

    /// The first bytes of `dir` (up to [`ANSWER_HEAD`]) when its very first bytes were not a
    /// TLS record header: the direction speaks something else, whose protocol they can name.
    pub fn not_tls_head(&self, dir: Side) -> Option<&[u8]> {
        let d = &self.dirs[dir];
        d.resync.as_deref().filter(|_| d.dead).map(Vec::as_slice)
    }

    pub fn data(&mut self, dir: Side, bytes: &[u8]) {
        if self.dirs[dir].dead {
            if let Some(head) = self.dirs[dir].resync.as_mut() {
                let n = ANSWER_HEAD.saturating_sub(head.len()).min(bytes.len());
                head.extend_from_slice(&bytes[..n]);
            }
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
                let d = &mut self.dirs[dir];
                if d.dead && d.offset == 5 {
                    // Not TLS from the first byte: keep the start to name what it is.
                    let mut head = hdr.to_vec();
                    head.extend_from_slice(&bytes[..bytes.len().min(ANSWER_HEAD - 5)]);
                    d.resync = Some(Box::new(head));
                }
            }
        }
    }

    /// The record-layer table: what to do with a record of this type in this direction's state.
    fn on_record_header(&mut self, dir: Side, h: [u8; 5]) {
        if !plausible_header(&h) {
            let off = self.dirs[dir].offset - 5;
            self.facts.problem(if off == 0 {
                // Most likely plaintext: its bytes are payload, which problems never show.
                format!("direction {}: its first bytes are not a TLS record", dir.index())
            } else {
                format!(
                    "direction {}: not a TLS record at offset {off} (bytes {:02x} {:02x} {:02x})",
                    dir.index(),
                    h[0],
                    h[1],
                    h[2]
                )
            });
            self.dirs[dir].dead = true;
            return;
        }
        let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
        let encrypted = self.dirs[dir].encrypted;
        let tls13 = self.facts.is_tls13();
        let d = &mut self.dirs[dir];
        d.rec_type = h[0];
        d.rec_minor = h[2];
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
                // HelloRetryRequest, before the second ClientHello in clear); it changes
                // nothing, and TLS 1.3 encrypts in records of their own type anyway. In
                // TLS <= 1.2 it follows ServerHello and an encrypted Finished follows it — also
                // when the ServerHello is not in the capture (one direction only, or lost).
                if !tls13 && (self.facts.server_hello.is_some() || !self.facts.hello_retry) {
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
            (APP_DATA, _) => {
                self.on_app_record(dir, len as u32);
                // With the keys, the handshake's encrypted records are kept to be opened.
                if tls13 && self.keys.as_ref().is_some_and(|k| k.wants(dir)) {
                    let d = &mut self.dirs[dir];
                    d.keep = true;
                    if let Some(b) = &mut d.bufs {
                        b.body.clear();
                    }
                }
            }
            _ => {}
        }
    }

    fn push_alert(&mut self, a: Alert) {
        if self.facts.alerts.len() < MAX_LIST {
            self.facts.alerts.push(a);
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
                // Bounded: `drain_handshake` gives up on a message announced over
                // MAX_HANDSHAKE, so at most one such message and one record body are held.
                self.dirs[dir].bufs().hs.extend_from_slice(body);
                self.drain_handshake(dir);
            }
            APP_DATA => self.on_encrypted(dir, body),
            _ => {}
        }
    }

    /// A TLS 1.3 encrypted record kept because the key log may have its keys.
    fn on_encrypted(&mut self, dir: Side, body: &[u8]) {
        let (Some(keys), Some(sh)) = (self.keys.as_mut(), &self.facts.server_hello) else {
            return;
        };
        let client = self.facts.client_dir == Some(dir);
        let early = self.facts.client_hello.as_ref().is_some_and(|c| c.early_data);
        let opened = keys.open(dir, client, sh.cipher, early, self.dirs[dir].hdr, body);
        if matches!(opened, Opened::Skip) {
            return;
        }
        let dec = keys.decrypted.get_or_insert_with(Box::default);
        match opened {
            Opened::Skip => {}
            Opened::Early => dec.early_records += 1,
            Opened::Failed(n) => dec.failed = dec.failed.or(Some((dir, n))),
            Opened::Unusable(why) => dec.unusable = Some(why),
            Opened::Record(ty, plain) => {
                dec.records[dir] += 1;
                match ty {
                    HANDSHAKE => {
                        keys.handshake_buffer(dir).extend_from_slice(&plain);
                        self.drain_decrypted(dir);
                    }
                    ALERT => {
                        if let [_, description] = plain[..] {
                            dec.alerts.push((dir, description));
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// The whole messages of a direction's decrypted handshake.
    fn drain_decrypted(&mut self, dir: Side) {
        while let Some(keys) = self.keys.as_mut() {
            let hs = keys.handshake_buffer(dir);
            let Some(h) = hs.get(..4) else {
                return;
            };
            let len = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
            if 4 + len > MAX_HANDSHAKE {
                let ty = h[0];
                keys.finish(dir);
                return self.facts.problem(format!(
                    "direction {}: decrypted handshake message of {len} bytes (type {ty}) over the {MAX_HANDSHAKE}-byte limit, not parsed",
                    dir.index()
                ));
            }
            if hs.len() < 4 + len {
                return;
            }
            let msg: Vec<u8> = hs.drain(..4 + len).collect();
            if msg[0] == 20 {
                keys.finish(dir);
            }
            self.on_decrypted_message(dir, msg[0], &msg[4..]);
        }
    }

    fn on_decrypted_message(&mut self, dir: Side, ty: u8, body: &[u8]) {
        let server = self.facts.server_dir() == Some(dir);
        let mut problem = None;
        let Some(keys) = self.keys.as_mut() else {
            return;
        };
        let dec = keys.decrypted.get_or_insert_with(Box::default);
        if dec.messages.len() < MAX_LIST * 2 {
            dec.messages.push(HandshakeMessage { from: dir, ty });
        }
        match ty {
            13 if server => dec.certificate_requested = true,
            11 => match hello::parse_chain13(body) {
                Some(chain) if server => dec.server_chain = Some(chain),
                Some(chain) => dec.client_chain = Some(chain),
                None => {
                    problem = Some(format!(
                        "direction {}: decrypted Certificate message not parsed",
                        dir.index()
                    ))
                }
            },
            20 => dec.finished[dir] = true,
            _ => {}
        }
        if let Some(p) = problem {
            self.facts.problem(p);
        }
    }

    fn drain_handshake(&mut self, dir: Side) {
        let mut consumed = 0;
        let hs = std::mem::take(&mut self.dirs[dir].bufs().hs);
        while let Some(h) = hs.get(consumed..consumed + 4) {
            let len = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
            if 4 + len > MAX_HANDSHAKE {
                return self.oversized(dir, h[0], len);
            }
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

    /// A message announced over [`MAX_HANDSHAKE`]: given up without buffering it, and the
    /// direction with it (nothing after it can be framed without reading it). Its type still
    /// tells the roles.
    fn oversized(&mut self, dir: Side, ty: u8, len: usize) {
        self.push_message(dir, ty);
        match ty {
            1 => self.facts.client_dir = self.facts.client_dir.or(Some(dir)),
            2 => self.facts.client_dir = self.facts.client_dir.or(Some(dir.other())),
            _ => {}
        }
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.facts.oversized = self.facts.oversized.or(Some(Oversized { from: dir, ty, len }));
        self.facts.problem(format!(
            "direction {}: handshake message of {len} bytes (type {ty}) over the {MAX_HANDSHAKE}-byte limit, not parsed",
            dir.index()
        ));
        self.dirs[dir].bufs = None;
        self.dirs[dir].dead = true;
    }

    fn push_message(&mut self, from: Side, ty: u8) {
        if self.facts.messages.len() < MAX_LIST * 2 {
            self.facts.messages.push(HandshakeMessage { from, ty });
        }
    }

    fn on_handshake(&mut self, dir: Side, ty: u8, body: &[u8]) {
        self.push_message(dir, ty);
        match ty {
            1 => self.on_client_hello(dir, body),
            2 => self.on_server_hello(dir, body),
            4 => {
                // NewSessionTicket (clear in TLS <= 1.2): lifetime hint, then the ticket.
                if let Some(t) = body.get(6..) {
                    self.facts.new_ticket = Some(hello::hash(t));
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
        if let Some(k) = &mut self.keys {
            k.client_hello(body);
        }
        let f = match hello::client_hello(body) {
            Ok(f) => f,
            Err(e) => return self.facts.problem(e.to_string()),
        };
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
        let f = match hello::server_hello(body) {
            Ok(ServerHello::Hello(f)) => f,
            Ok(ServerHello::Retry) => {
                self.facts.hello_retry = true;
                return;
            }
            Err(e) => return self.facts.problem(e.to_string()),
        };
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
        let Some(chain) = hello::parse_chain(body) else {
            self.facts
                .problem(format!("direction {}: Certificate message not parsed", dir.index()));
            return;
        };
        let chain = Box::new(Chain {
            record_version: 0x0300 | u16::from(self.dirs[dir].rec_minor),
            ..chain
        });
        if self.facts.server_dir() == Some(dir) {
            self.facts.server_chain = Some(chain);
        } else {
            self.facts.client_chain = Some(chain);
        }
    }

    /// An application-data record: counted, and in TLS 1.3 (where the whole handshake after
    /// ServerHello travels as such records) its length is filed for the inference.
    fn on_app_record(&mut self, dir: Side, len: u32) {
        self.facts.app_records[dir] += 1;
        let Some(sh) = &self.facts.server_hello else {
            return;
        };
        if sh.version != 0x0304 {
            return;
        }
        let cipher = sh.cipher;
        let from_server = self.facts.server_dir() == Some(dir);
        let early = self.facts.client_hello.as_ref().is_some_and(|c| c.early_data);
        self.facts.tls13.record(from_server, len, cipher, early);
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
    fn a_message_announced_over_the_limit_is_given_up_at_once() {
        let mut msg = vec![1];
        msg.extend_from_slice(&300_000u32.to_be_bytes()[1..]);
        msg.resize(16 * 1024, 0);
        let mut c = Classifier::new();
        c.data(Side::Hi, &record(HANDSHAKE, &msg));
        assert!(c.dead(Side::Hi));
        // Nothing of it is held, and it still says who the client is.
        assert_eq!(c.buffered(), 0);
        assert_eq!(c.facts.client_dir, Some(Side::Hi));
        let o = c.facts.oversized.unwrap();
        assert_eq!((o.from, o.ty, o.len), (Side::Hi, 1, 300_000));
        assert_eq!(c.facts.messages[0].ty, 1);
    }

    #[test]
    fn a_direction_that_is_not_tls_from_its_start_keeps_its_first_bytes() {
        let mut c = Classifier::new();
        c.data(Side::Lo, &record(HANDSHAKE, &client_hello("a.test")));
        c.data(Side::Hi, b"HTT");
        c.data(Side::Hi, b"P/1.1 400 Bad Request\r\n");
        assert!(c.dead(Side::Hi));
        assert_eq!(c.not_tls_head(Side::Hi), Some(&b"HTTP/1.1 400 Bad Request\r\n"[..]));
        assert_eq!(c.not_tls_head(Side::Lo), None);
        // The problem says so without the bytes, which are payload.
        assert_eq!(
            c.facts.problems[..],
            ["direction 1: its first bytes are not a TLS record"]
        );
        // After a valid record, bad bytes are a lost record boundary, not an answer.
        let mut c = Classifier::new();
        c.data(Side::Hi, &record(ALERT, &[1, 0]));
        c.data(Side::Hi, b"HTTP/1.1 400 Bad Request\r\n");
        assert!(c.dead(Side::Hi) && c.not_tls_head(Side::Hi).is_none());
    }

    #[test]
    fn change_cipher_spec_without_server_hello_encrypts_what_follows() {
        // The client's direction alone: its Finished after ChangeCipherSpec is not clear text.
        let mut c = Classifier::new();
        c.data(Side::Lo, &record(HANDSHAKE, &client_hello("a.test")));
        c.data(Side::Lo, &record(CCS, &[1]));
        c.data(Side::Lo, &record(HANDSHAKE, &[0x5a; 40]));
        c.data(Side::Lo, &record(ALERT, &[0x17; 26]));
        assert!(c.facts.finished[Side::Lo]);
        assert_eq!(c.facts.messages.len(), 1);
        assert!(c.facts.alerts.iter().all(|a| a.encrypted));
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
}
