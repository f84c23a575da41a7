//! Stage 4, inspect: decides what a connection's bytes are (TLS from its handshake, TLS picked up
//! mid-stream, plaintext, plaintext upgraded to TLS) and feeds them to the TLS classifier or the
//! plaintext identifier. It is the reassembler's sink for both directions of one flow.
//!
//! It also says when nothing more needs to be read ([`Inspector::is_final`]): from then on the
//! flow keeps only counters. [`coverage`] puts into words what the capture lacks of a handshake
//! (a direction, bytes cut by the snap length), for the verdict's evidence.

pub mod certs;
pub mod coverage;
pub mod mesh;
pub mod plaintext;
pub mod resumption;
pub mod tls;

use crate::pipeline::inspect::plaintext::{PlaintextInfo, Protocol};
use crate::pipeline::inspect::tls::{starts_with_hello, Classifier, Decrypted, TlsFacts};
use crate::pipeline::keylog::KeyLog;
use crate::pipeline::side::{PerSide, Side};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

/// Bytes that tell a TLS hello from anything else: record header and handshake type.
const HELLO_PROBE: usize = 6;
/// Bytes kept from the start of each direction to name a plaintext protocol.
const HEAD: usize = 512;
/// Plaintext bytes from the client after which an upgrade to TLS is no longer expected.
const UPGRADE_WINDOW: u64 = 16 * 1024;
/// Client messages after which an upgrade to TLS is no longer expected.
const UPGRADE_MESSAGES: u32 = 32;
/// Records each direction must show, back to back, before a mid-stream connection counts as TLS.
const MIDSTREAM_RECORDS: u64 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No payload yet.
    Waiting,
    /// A handshake was seen (possibly after a plaintext upgrade).
    Tls,
    /// Picked up without the handshake: looking for chained TLS records.
    Midstream,
    Plaintext,
}

/// What the inspector concluded, handed to the verdict stage.
#[derive(Debug)]
pub enum Outcome {
    NoData,
    Plaintext {
        info: PlaintextInfo,
        /// The client asked to upgrade to TLS, but no TLS followed (refused or not captured).
        upgrade_refused: Option<Protocol>,
        /// The first bytes of each direction; shown only on request.
        first_bytes: PerSide<Vec<u8>>,
    },
    Tls {
        facts: Box<TlsFacts>,
        /// What a key log decrypted of a TLS 1.3 handshake, when it had this connection.
        decrypted: Option<Box<Decrypted>>,
        /// The plaintext protocol the connection started with before switching to TLS.
        upgrade: Option<Protocol>,
        /// The handshake travelled base64-encoded inside FTP ADAT commands (GSI / GridFTP).
        adat: bool,
        /// The server answered the ClientHello with bytes that are not TLS: what they are.
        answer: Option<PlaintextInfo>,
    },
    /// TLS records chained in both directions, handshake not in the capture.
    Midstream {
        facts: Box<TlsFacts>,
    },
}

#[derive(Default)]
struct FirstBytes {
    /// The first bytes of each direction of a plaintext (or mid-stream) connection.
    head: PerSide<Vec<u8>>,
    /// First bytes held while the mode is undecided.
    probe: PerSide<Vec<u8>>,
}

pub struct Inspector {
    mode: Mode,
    midstream: bool,
    /// The direction believed to be the client: from the SYN, else the port heuristic. A
    /// ClientHello overrides it.
    client_hint: Side,
    /// The server's port under that belief; a tie-breaker for naming plaintext protocols.
    server_port: u16,
    tls: Option<Box<Classifier>>,
    /// Boxed and only while there is something in it: a TLS connection needs none of it, and
    /// a million open handshakes would otherwise carry four empty vectors each.
    first: Option<Box<FirstBytes>>,
    upgrade: Option<Protocol>,
    upgrade_requested: Option<Protocol>,
    /// TLS carried in FTP ADAT lines (RFC 2228 security exchange, as GridFTP's GSI does).
    adat: Option<Box<Adat>>,
    plain_client_bytes: u64,
    plain_client_msgs: u32,
    bytes: PerSide<u64>,
    /// The run's key log, when one was given: a TLS 1.3 handshake it has keys for is decrypted.
    keys: Option<std::sync::Arc<KeyLog>>,
}

impl Inspector {
    pub fn new(client_hint: Side, midstream: bool, server_port: u16) -> Self {
        Inspector {
            mode: Mode::Waiting,
            midstream,
            client_hint,
            server_port,
            tls: None,
            first: None,
            upgrade: None,
            upgrade_requested: None,
            adat: None,
            plain_client_bytes: 0,
            plain_client_msgs: 0,
            bytes: PerSide::default(),
            keys: None,
        }
    }

    /// Decrypt the TLS 1.3 handshakes this key log has keys for.
    pub fn with_keys(mut self, keys: Option<std::sync::Arc<KeyLog>>) -> Self {
        self.keys = keys;
        self
    }

    fn classifier(&self) -> Box<Classifier> {
        Box::new(Classifier::with_keys(self.keys.as_ref()))
    }

    /// Bytes held in buffers: first bytes, and the TLS classifier's partial records.
    pub fn buffered(&self) -> usize {
        let own: usize = self
            .first
            .as_ref()
            .map_or(0, |f| f.head.iter().chain(&f.probe).map(Vec::capacity).sum());
        own + self.tls.as_ref().map_or(0, |c| c.buffered()) + self.adat.as_ref().map_or(0, |a| a.buffered())
    }

    /// Payload bytes seen per direction (delivered, not counting gaps).
    pub fn bytes(&self) -> PerSide<u64> {
        self.bytes
    }

    pub fn data(&mut self, dir: Side, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.bytes[dir] += bytes.len() as u64;
        if self.mode != Mode::Waiting {
            return self.route(dir, bytes);
        }
        // A handshake record header plus the message type is 6 bytes; a peer may send them one
        // at a time, so hold the first bytes until they can tell a hello from anything else.
        let nothing_held = self.first.as_ref().is_none_or(|f| f.probe[dir].is_empty());
        if nothing_held && (bytes.len() >= HELLO_PROBE || bytes[0] != 0x16) {
            // The usual case: this segment alone tells.
            return self.start(dir, bytes);
        }
        let probe = &mut self.first.get_or_insert_with(Box::default).probe[dir];
        probe.extend_from_slice(bytes);
        if probe.len() < HELLO_PROBE && probe[0] == 0x16 {
            return;
        }
        let held = std::mem::take(probe);
        self.start(dir, &held);
    }

    /// The first bytes of `dir` decide the mode; then they and whatever the other direction
    /// held are inspected.
    fn start(&mut self, dir: Side, first: &[u8]) {
        self.choose_mode(dir, first);
        let other = self.take_probe(dir.other());
        if !other.is_empty() {
            self.route(dir.other(), &other);
        }
        self.route(dir, first);
        if self
            .first
            .as_ref()
            .is_some_and(|f| f.head.iter().chain(&f.probe).all(|v| v.capacity() == 0))
        {
            self.first = None;
        }
    }

    fn take_probe(&mut self, dir: Side) -> Vec<u8> {
        self.first
            .as_mut()
            .map(|f| std::mem::take(&mut f.probe[dir]))
            .unwrap_or_default()
    }

    fn head(&self, dir: Side) -> &[u8] {
        self.first.as_ref().map_or(&[][..], |f| &f.head[dir])
    }

    fn choose_mode(&mut self, dir: Side, first: &[u8]) {
        self.mode = if starts_with_hello(first) {
            Mode::Tls
        } else if self.midstream && self.bytes[dir.other()] == 0 {
            Mode::Midstream
        } else {
            Mode::Plaintext
        };
        match self.mode {
            Mode::Tls => self.tls = Some(self.classifier()),
            Mode::Midstream => {
                let mut c = Box::<Classifier>::default();
                c.start_midstream(Side::Lo);
                c.start_midstream(Side::Hi);
                self.tls = Some(c);
            }
            _ => {}
        }
    }

    fn route(&mut self, dir: Side, bytes: &[u8]) {
        if matches!(self.mode, Mode::Plaintext | Mode::Midstream) {
            let head = &mut self.first.get_or_insert_with(Box::default).head[dir];
            if head.len() < HEAD {
                let n = (HEAD - head.len()).min(bytes.len());
                head.extend_from_slice(&bytes[..n]);
            }
        }
        match self.mode {
            Mode::Tls => {
                if let Some(c) = &mut self.tls {
                    c.data(dir, bytes);
                }
            }
            Mode::Midstream => {
                let c = self.tls.as_mut().expect("midstream mode has a classifier");
                c.data(dir, bytes);
                if c.dead(dir) {
                    // Not TLS after all: a plaintext connection picked up mid-stream.
                    self.mode = Mode::Plaintext;
                    self.tls = None;
                }
            }
            Mode::Plaintext => self.plaintext(dir, bytes),
            Mode::Waiting => {}
        }
    }

    fn plaintext(&mut self, dir: Side, bytes: &[u8]) {
        if self.adat.is_none() && dir == self.client_hint && bytes.starts_with(b"ADAT ") {
            self.adat = Some(Box::default());
        }
        if let Some(a) = &mut self.adat {
            a.data(dir, dir == self.client_hint, bytes);
        }
        if dir != self.client_hint {
            return;
        }
        self.plain_client_bytes += bytes.len() as u64;
        self.plain_client_msgs += 1;
        if let Some(p) = plaintext::upgrade_request(bytes) {
            self.upgrade_requested = Some(p);
        }
        // The upgrade is complete when the client's next message is a ClientHello. Some clients
        // (MySQL, PostgreSQL) send the request and the ClientHello in one segment.
        let at = (0..bytes.len().min(64)).find(|&i| starts_with_hello(&bytes[i..]));
        if let Some(at) = at {
            if at == 0 || self.upgrade_requested.is_some() {
                // "STARTTLS" alone is said by SMTP, IMAP, IRC...: the preamble names the protocol.
                let protocol = match self.plaintext_info().protocol {
                    Protocol::Unknown => self.upgrade_requested.unwrap_or(Protocol::Unknown),
                    p => p,
                };
                self.upgrade = Some(protocol);
                self.mode = Mode::Tls;
                let mut c = self.classifier();
                c.data(dir, &bytes[at..]);
                self.tls = Some(c);
            }
        }
    }

    pub fn gap(&mut self, dir: Side, len: u64) {
        if let Some(c) = &mut self.tls {
            c.gap(dir, len);
        }
    }

    fn plaintext_info(&self) -> PlaintextInfo {
        let c = self.client_hint;
        plaintext::identify(self.head(c), self.head(c.other()), self.server_port)
    }

    /// True once the outcome can no longer change: the flow stops buffering and reassembling.
    /// A plaintext connection whose server has not spoken yet: with `--show-payload` the
    /// verdict waits for the server's first bytes (or the end of the connection), because the
    /// report promises both sides' and the inspector is gone once the verdict is made.
    pub fn server_head_pending(&self) -> bool {
        matches!(self.mode, Mode::Plaintext) && self.bytes[self.client_hint.other()] == 0
    }

    pub fn is_final(&self) -> bool {
        match self.mode {
            Mode::Waiting => false,
            Mode::Plaintext if self.adat.is_some() => self.adat.as_ref().is_some_and(|a| tls_final(&a.tls)),
            Mode::Plaintext => {
                let c = self.client_hint;
                if self.bytes[c] == 0 {
                    return false;
                }
                let p = self.plaintext_info().protocol;
                let may_upgrade = !matches!(
                    p,
                    Protocol::Http | Protocol::Http2 | Protocol::Grpc | Protocol::Redis | Protocol::Dns | Protocol::Ssh
                );
                !may_upgrade || self.plain_client_bytes > UPGRADE_WINDOW || self.plain_client_msgs > UPGRADE_MESSAGES
            }
            Mode::Midstream => {
                let Some(c) = &self.tls else { return true };
                Side::BOTH
                    .into_iter()
                    .all(|d| c.in_sync(d) && c.facts.app_records[d] >= MIDSTREAM_RECORDS)
            }
            Mode::Tls => self.tls.as_ref().is_none_or(|c| {
                // A plaintext answer ends the handshake; wait only until its bytes name it.
                tls_final(c) || self.answer(c).is_some_and(|a| a.protocol != Protocol::Unknown)
            }),
        }
    }

    /// The server's answer to the ClientHello, when its first bytes are not TLS. In a capture
    /// that started mid-stream, bytes that name no protocol may be the middle of a TLS record
    /// rather than an answer, so only a recognised protocol counts there.
    fn answer(&self, c: &Classifier) -> Option<PlaintextInfo> {
        let server = c.facts.client_dir?.other();
        let head = c.not_tls_head(server)?;
        let mut info = plaintext::identify(&[], head, self.server_port);
        if info.protocol == Protocol::Unknown {
            // After STARTTLS, the refusal is in the protocol the connection started with.
            info.protocol = self.upgrade.unwrap_or(Protocol::Unknown);
        }
        (!self.midstream || info.protocol != Protocol::Unknown).then_some(info)
    }

    pub fn outcome(mut self) -> Outcome {
        if self.mode == Mode::Waiting {
            // The connection ended while its first bytes were still undecided.
            for dir in Side::BOTH {
                let held = self.take_probe(dir);
                if !held.is_empty() {
                    if self.mode == Mode::Waiting {
                        self.choose_mode(dir, &held);
                    }
                    self.route(dir, &held);
                }
            }
        }
        match self.mode {
            Mode::Waiting => Outcome::NoData,
            Mode::Plaintext => match self.adat {
                Some(a) if a.tls.facts.client_hello.is_some() => Outcome::Tls {
                    facts: Box::new(a.tls.facts),
                    decrypted: None,
                    upgrade: Some(Protocol::Ftp),
                    adat: true,
                    answer: None,
                },
                _ => Outcome::Plaintext {
                    info: self.plaintext_info(),
                    upgrade_refused: self.upgrade_requested,
                    first_bytes: self.first.take().map(|f| f.head).unwrap_or_default(),
                },
            },
            Mode::Tls => {
                let answer = self.tls.as_deref().and_then(|c| self.answer(c));
                let decrypted = self.tls.as_mut().and_then(|c| c.take_decrypted());
                Outcome::Tls {
                    facts: Box::new(self.tls.map(|c| c.facts).unwrap_or_default()),
                    decrypted,
                    upgrade: self.upgrade,
                    adat: false,
                    answer,
                }
            }
            Mode::Midstream => {
                let c = self.tls.expect("midstream mode has a classifier");
                // One silent direction is fine (a one-way transfer); a direction that spoke
                // must have shown chained records.
                let ok = Side::BOTH
                    .into_iter()
                    .all(|d| self.bytes[d] == 0 || (c.in_sync(d) && c.facts.app_records[d] >= 1));
                if ok && self.bytes.iter().any(|&b| b > 0) {
                    Outcome::Midstream {
                        facts: Box::new(c.facts),
                    }
                } else {
                    let cl = self.client_hint;
                    let heads = self.first.take().map(|f| f.head).unwrap_or_default();
                    Outcome::Plaintext {
                        info: plaintext::identify(&heads[cl], &heads[cl.other()], self.server_port),
                        upgrade_refused: None,
                        first_bytes: heads,
                    }
                }
            }
        }
    }
}

/// Nothing more to learn from this TLS connection: the handshake finished or failed.
fn tls_final(c: &Classifier) -> bool {
    let f = &c.facts;
    let dead = c.dead(Side::Lo) && c.dead(Side::Hi);
    let fatal = f.alerts.iter().any(|a| a.level == 2 && !a.encrypted);
    if dead || fatal {
        return true;
    }
    if f.is_tls13() {
        let t = &f.tls13;
        // Wait for the server's answer to the client's flight: an encrypted alert there means
        // the server rejected it (e.g. certificate_required).
        // With the keys, the client's flight is read to its Finished.
        t.client_first_record.is_some() && t.server_reply.is_some() && !c.decrypting()
    } else {
        f.server_hello.is_some() && f.finished[Side::Lo] && f.finished[Side::Hi]
    }
}

/// Longest ADAT line kept (a base64 certificate chain fits).
const MAX_ADAT_LINE: usize = 256 * 1024;
/// Standard base64 (RFC 4648) as ADAT carries it: padding optional (RFC 2228 does not say),
/// and unused trailing bits tolerated, as GSI implementations have never been strict there.
const ADAT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// FTP security exchange (RFC 2228): the client sends `ADAT <base64>`, the server answers
/// `335 ADAT=<base64>` (continue) or `235 ADAT=<base64>` (done). GSI puts a TLS handshake there.
#[derive(Default)]
struct Adat {
    lines: PerSide<Vec<u8>>,
    tls: Classifier,
}

impl Adat {
    fn buffered(&self) -> usize {
        self.lines.iter().map(Vec::capacity).sum::<usize>() + self.tls.buffered()
    }

    fn data(&mut self, dir: Side, from_client: bool, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let (part, rest, done) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            bytes = rest;
            let line = &mut self.lines[dir];
            if line.len() + part.len() <= MAX_ADAT_LINE {
                line.extend_from_slice(part);
            }
            if !done {
                return;
            }
            let line = std::mem::take(&mut self.lines[dir]);
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            let payload = if from_client {
                line.strip_prefix(b"ADAT ")
            } else {
                line.strip_prefix(b"335 ADAT=")
                    .or_else(|| line.strip_prefix(b"235 ADAT="))
            };
            if let Some(decoded) = payload.and_then(|p| ADAT_BASE64.decode(p).ok()) {
                self.tls.data(dir, &decoded);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello record (type, length, then a body tls-parser reads) from `Side::Lo`.
    fn client_hello_record() -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        let mut msg = vec![1, 0, 0, body.len() as u8];
        msg.extend_from_slice(&body);
        let mut r = vec![22, 3, 1, 0, msg.len() as u8];
        r.extend_from_slice(&msg);
        r
    }

    fn answered(midstream: bool, answer: &[u8]) -> (bool, Option<Protocol>) {
        let mut i = Inspector::new(Side::Lo, midstream, 8081);
        i.data(Side::Lo, &client_hello_record());
        i.data(Side::Hi, answer);
        let done = i.is_final();
        match i.outcome() {
            Outcome::Tls { answer, .. } => (done, answer.map(|a| a.protocol)),
            other => panic!("not TLS: {other:?}"),
        }
    }

    #[test]
    fn a_plaintext_answer_to_the_client_hello_is_named_and_ends_inspection() {
        assert_eq!(
            answered(false, b"HTTP/1.1 400 Bad Request\r\n"),
            (true, Some(Protocol::Http))
        );
        assert_eq!(
            answered(false, b"SSH-2.0-OpenSSH_9.2p1\r\n"),
            (true, Some(Protocol::Ssh))
        );
        // Unrecognised bytes: an answer all the same, but wait for more before deciding.
        assert_eq!(answered(false, &[0, 1, 2, 3, 4, 5]), (false, Some(Protocol::Unknown)));
        // Picked up mid-stream, unrecognised bytes may be inside a TLS record: not an answer.
        assert_eq!(answered(true, &[0, 1, 2, 3, 4, 5]), (false, None));
        // A TLS answer is no plaintext answer.
        assert_eq!(answered(false, &[21, 3, 3, 0, 2, 2, 40]), (true, None));
    }

    #[test]
    fn adat_base64_with_or_without_padding() {
        assert_eq!(ADAT_BASE64.decode(b"aGVsbG8=").unwrap(), b"hello");
        assert_eq!(ADAT_BASE64.decode(b"aGVsbG8").unwrap(), b"hello");
        assert_eq!(ADAT_BASE64.decode(b"aGVsbG8h").unwrap(), b"hello!");
        assert!(ADAT_BASE64.decode(b"a*b").is_err());
    }

    #[test]
    fn adat_lines_reach_the_classifier_decoded() {
        // "GET /" is not TLS: once decoded and fed, the classifier gives the direction up.
        let mut a = Adat::default();
        a.data(Side::Lo, true, b"ADAT R0VUIC8=\r\n");
        assert!(a.tls.dead(Side::Lo));
        // Not base64: nothing reaches the classifier.
        let mut a = Adat::default();
        a.data(Side::Hi, false, b"335 ADAT=R0V*IC8=\r\n");
        assert!(!a.tls.dead(Side::Hi));
    }
}
