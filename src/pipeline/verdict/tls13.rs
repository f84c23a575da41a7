//! TLS 1.3: what the lengths of the encrypted handshake say about the client's certificate
//! (DESIGN.md, the verdict table; docs/verdicts.md has the measured lengths per stack).
//!
//! Certificate messages are encrypted, so the client's first encrypted record after ServerHello
//! is read against the lengths the negotiated suite allows: Finished alone (no certificate
//! requested), an empty Certificate (requested, none sent) or a certificate. Two things change
//! those lengths, and are read off the flights before that:
//! - record padding (RFC 8446, 5.4): a padded Finished can be as long as a Certificate, so a
//!   padded record never yields a certificate on its length alone;
//! - a constant number of bytes a stack adds to every record (Java's JSSE adds 16), calibrated
//!   on the server's own Finished, the last record of its flight.
//!
//! Answers in its own terms ([`Tls13Reading`]): the verdict stage, its parent, turns the answer
//! into a verdict, so nothing here uses the parent's items.

use crate::pipeline::inspect::tls::TlsFacts;
use serde::{Deserialize, Serialize};
use std::ops::RangeInclusive;

/// The suite assumed when the ServerHello's is unknown: TLS_AES_128_GCM_SHA256, the one every
/// TLS 1.3 stack must implement (RFC 8446, 9.1).
const DEFAULT_SUITE: u16 = 0x1301;
/// TLS_AES_256_GCM_SHA384: the one TLS 1.3 suite with a 48-byte hash (the others use SHA-256).
const SHA384_SUITE: u16 = 0x1302;
/// TLS_AES_128_CCM_8_SHA256: the one TLS 1.3 suite whose AEAD tag is 8 bytes (the others
/// have 16).
const CCM_8_SUITE: u16 = 0x1305;
/// An empty client Certificate message: type, 3-byte length, empty context, empty list.
const EMPTY_CERTIFICATE: u32 = 8;
/// A client EncryptedExtensions carrying only ALPS (Chrome): 4-byte header, 2-byte list length,
/// the extension's 4-byte header, then the settings (empty or a few HTTP/2 SETTINGS).
const ALPS_EE_MIN: u32 = 10;
const ALPS_EE_MAX: u32 = 80;
/// Smallest Certificate message that can hold a real certificate.
const MIN_CERTIFICATE: u32 = 100;
/// Records in a server flight written one record per message: EncryptedExtensions,
/// [CertificateRequest], Certificate, CertificateVerify, Finished. Only then is the last record
/// the Finished alone and the count a sign of the CertificateRequest; fewer records mean some
/// were packed together, more that something (early data) follows the Finished.
const ONE_RECORD_PER_MESSAGE: RangeInclusive<usize> = 4..=5;
/// Records that must share a padding block before it counts: unpadded lengths share a divisor
/// of at least [`MIN_PADDING_BLOCK`] about once in 50 pairs, once in 2,400 triples. Two records
/// are what a stack that packs its flight into one record sends (the flight, then application
/// data): they are never taken for padding.
const MIN_PADDED_RECORDS: usize = 3;
/// Smallest padding block recognised. Below it, a padded Finished is still shorter than any
/// certificate, so missing it costs nothing: the length then fits nothing and is `uncertain`.
const MIN_PADDING_BLOCK: u32 = 32;
/// Most bytes a stack is taken to add to every record (Java's JSSE: 16). RFC 8446 lets
/// padding add up to 2^14 bytes; only a constant this small is calibrated on, and a server
/// Finished longer than this past its expected length is left unexplained.
const MAX_RECORD_OVERHEAD: u32 = 255;

/// What a TLS 1.3 cipher suite makes of lengths in the encrypted flights.
struct Tls13Lengths {
    /// The Finished message: 4-byte header and the suite's hash.
    finished: u32,
    /// The AEAD tag every encrypted record ends with.
    tag: u32,
}

fn tls13_lengths(cipher: u16) -> Tls13Lengths {
    let hash = if cipher == SHA384_SUITE { 48 } else { 32 };
    let tag = if cipher == CCM_8_SUITE { 8 } else { 16 };
    Tls13Lengths {
        finished: 4 + hash,
        tag,
    }
}

/// The lengths the inference used (`tls.tls13` in the JSON report).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tls13Report {
    pub client_first_record_len: Option<u32>,
    pub client_first_inner_len: Option<u32>,
    pub finished_len: u32,
    pub server_flight_inner_lens: Vec<u32>,
    /// Inner lengths of the client's records until the server's reply. Defaults keep reports
    /// from an agent older than these fields readable.
    #[serde(default)]
    pub client_flight_inner_lens: Vec<u32>,
    /// Every record of the server's flight is padded to a multiple of this (tag aside).
    #[serde(default)]
    pub server_padding_block: Option<u32>,
    /// Every record of the client's flight is padded to a multiple of this (tag aside).
    #[serde(default)]
    pub client_padding_block: Option<u32>,
    /// Bytes the server's stack adds to every record, calibrated on its Finished.
    #[serde(default)]
    pub record_overhead: Option<u32>,
}

pub fn tls13_report(f: &TlsFacts) -> Tls13Report {
    let s = Shape::of(f);
    let t = &f.tls13;
    Tls13Report {
        client_first_record_len: t.client_first_record,
        client_first_inner_len: t.client_first_record.map(|l| l.saturating_sub(s.tag + 1)),
        finished_len: s.fin,
        server_flight_inner_lens: t.server_flight.to_vec(),
        client_flight_inner_lens: t.client_flight.to_vec(),
        server_padding_block: s.server_padding,
        client_padding_block: s.client_padding,
        record_overhead: s.overhead,
    }
}

/// Whether the client sent a certificate, as far as the lengths tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Certificate,
    NoCertificate,
    /// The lengths fit no reading, fit several, or contradict the server's flight.
    Unknown,
}

/// How far the handshake got, as the encrypted records show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// No encrypted record from the client after ServerHello.
    ClientFlightMissing,
    Complete,
    /// The server answered the client's flight with an encrypted alert.
    Rejected,
}

/// What the lengths of a TLS 1.3 handshake say about the client's certificate.
#[derive(Debug, Clone)]
pub struct Tls13Reading {
    pub answer: Answer,
    pub progress: Progress,
    /// Why, with the lengths used; an [`Answer::Unknown`] always says which length did not fit
    /// which expectation.
    pub evidence: Vec<String>,
    /// Whether the server asked for a certificate, when the lengths tell.
    pub cert_requested: Option<bool>,
}

/// What the flights show besides the messages they carry.
struct Shape<'a> {
    /// Finished length and AEAD tag of the negotiated suite.
    fin: u32,
    tag: u32,
    /// Inner lengths of the server's flight and of the client's.
    server_flight: &'a [u32],
    client_flight: &'a [u32],
    /// Block the server's flight is padded to.
    server_padding: Option<u32>,
    /// Block the client's flight is padded to.
    client_padding: Option<u32>,
    /// Bytes the server's stack adds to every record.
    overhead: Option<u32>,
    /// Inner length the server's Finished has in this flight: exact, padded, or with the
    /// overhead.
    server_finished: u32,
    /// The server wrote one record per message, its Finished last: whether a
    /// CertificateRequest is among them (5 records) or not (4).
    server_says: Option<bool>,
}

impl<'a> Shape<'a> {
    fn of(f: &'a TlsFacts) -> Shape<'a> {
        let cipher = f.server_hello.as_ref().map_or(DEFAULT_SUITE, |s| s.cipher);
        let Tls13Lengths { finished: fin, tag } = tls13_lengths(cipher);
        let t = &f.tls13;
        let server = t.server_flight.as_slice();
        let server_padding = padding_block(server, fin);
        let overhead = match server_padding {
            Some(_) => None,
            None => record_overhead(server, fin),
        };
        let server_finished = match (server_padding, overhead) {
            (Some(b), _) => padded(fin, b),
            (None, Some(o)) => fin + o,
            (None, None) => fin,
        };
        let server_says = match server {
            [.., last] if *last == server_finished && ONE_RECORD_PER_MESSAGE.contains(&server.len()) => {
                Some(server.len() == *ONE_RECORD_PER_MESSAGE.end())
            }
            _ => None,
        };
        Shape {
            fin,
            tag,
            server_flight: server,
            client_flight: t.client_flight.as_slice(),
            server_padding,
            client_padding: padding_block(&t.client_flight, fin),
            overhead,
            server_finished,
            server_says,
        }
    }

    fn padding(&self) -> Option<u32> {
        self.server_padding.or(self.client_padding)
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The block all these records are padded to: each inner plaintext (content and type byte,
/// the inner length + 1) a multiple of it. A block that pads a Finished of `fin` bytes to
/// itself is no padding to speak of, and is what a flight ending with its exact Finished
/// shares by chance (OpenSSL's RSA CertificateVerify, 265 bytes of plaintext, and a 53-byte
/// Finished are both multiples of 53): a flight whose Finished is exact is never padded.
fn padding_block(inner: &[u32], fin: u32) -> Option<u32> {
    if inner.len() < MIN_PADDED_RECORDS {
        return None;
    }
    let block = inner.iter().fold(0, |g, &l| gcd(g, l.saturating_add(1)));
    (block >= MIN_PADDING_BLOCK && !(fin + 1).is_multiple_of(block)).then_some(block)
}

/// Inner length of a `len`-byte message padded to `block`.
fn padded(len: u32, block: u32) -> u32 {
    (len + 1).div_ceil(block) * block - 1
}

/// Bytes the server's stack adds to every record: its last record is its Finished, when it
/// wrote one record per message.
fn record_overhead(server: &[u32], fin: u32) -> Option<u32> {
    if !ONE_RECORD_PER_MESSAGE.contains(&server.len()) {
        return None;
    }
    let o = server.last()?.checked_sub(fin)?;
    (1..=MAX_RECORD_OVERHEAD).contains(&o).then_some(o)
}

/// What a client record of this inner length can be, when it fits exactly one thing.
struct Fit {
    certificate: bool,
    requested: bool,
    what: String,
}

/// `exact_only`: accept only the lengths too short for any certificate (Finished, an empty
/// Certificate), for padded flights: padding only adds bytes, so any longer record may hold a
/// certificate or a padded Finished.
fn fit(inner: u32, fin: u32, alps: bool, exact_only: bool) -> Option<Fit> {
    let alps_ee = inner
        .checked_sub(fin)
        .filter(|ee| alps && !exact_only && (ALPS_EE_MIN..=ALPS_EE_MAX).contains(ee));
    let (certificate, requested, what) = if inner == fin {
        (
            false,
            false,
            format!("Finished ({fin}) alone: no certificate requested"),
        )
    } else if let Some(ee) = alps_ee {
        (
            false,
            false,
            format!("the client's EncryptedExtensions for ALPS ({ee}) + Finished ({fin}): no certificate requested"),
        )
    } else if inner == EMPTY_CERTIFICATE || inner == EMPTY_CERTIFICATE + fin {
        (
            false,
            true,
            "an empty Certificate (8): certificate requested, none sent".to_string(),
        )
    } else if inner >= MIN_CERTIFICATE && !exact_only {
        (true, true, "a Certificate: the client sent a certificate".to_string())
    } else {
        return None;
    };
    Some(Fit {
        certificate,
        requested,
        what,
    })
}

/// `528+528+2064` from inner lengths.
fn records(inner: &[u32], tag: u32) -> String {
    let lens: Vec<String> = inner.iter().map(|l| (l + tag + 1).to_string()).collect();
    lens.join("+")
}

fn inners(inner: &[u32]) -> String {
    let lens: Vec<String> = inner.iter().map(u32::to_string).collect();
    lens.join("+")
}

/// TLS 1.3: was a client certificate sent? See DESIGN.md: the client's first encrypted record
/// after ServerHello is its Certificate (or its Finished when none was requested).
pub fn read(f: &TlsFacts) -> Tls13Reading {
    let s = Shape::of(f);
    let t = &f.tls13;
    let Some(len) = t.client_first_record else {
        return Tls13Reading {
            answer: Answer::Unknown,
            progress: Progress::ClientFlightMissing,
            evidence: vec!["TLS 1.3: the client's encrypted flight is not in the capture".into()],
            cert_requested: None,
        };
    };
    let inner = len.saturating_sub(s.tag + 1);
    let alps = f.client_hello.as_ref().is_some_and(|c| c.alps_offered);
    let server = t.server_flight.as_slice();
    let flight = inners(server);
    let calibration = s.overhead.map(|o| {
        format!(
            "record overhead calibrated on the server's Finished ({} inner = {} + {o} bytes per record)",
            s.server_finished, s.fin
        )
    });
    let mut ev = Vec::new();
    let (answer, cert_requested) = match s.read_client(len, inner, alps) {
        Ok((r, note)) => {
            ev.push(format!(
                "TLS 1.3: client's first encrypted record after ServerHello is {len} bytes ({inner} inner{note}) = {}",
                r.what
            ));
            ev.extend(calibration);
            if let Some(block) = s.padding() {
                ev.push(format!(
                    "records are padded (multiples of {block} bytes), but {inner} bytes cannot hold a certificate"
                ));
            }
            let mut answer = if r.certificate {
                Answer::Certificate
            } else {
                Answer::NoCertificate
            };
            match s.server_says {
                Some(says) if says == r.requested => ev.push(format!(
                    "server flight of {} records ({flight}) {} CertificateRequest",
                    server.len(),
                    if says { "includes a" } else { "has no" }
                )),
                Some(says) => {
                    // Not even a length that reads as a certificate is taken for one against
                    // the server's flight: a client sends a Certificate only when asked.
                    answer = Answer::Unknown;
                    ev.push(format!(
                        "but the server flight of {} records ({flight}, one per message, Finished last) {} CertificateRequest, which contradicts the client's record",
                        server.len(),
                        if says { "includes a" } else { "has no" }
                    ));
                }
                None if !server.is_empty() => ev.push(format!(
                    "server flight in {} record{} ({flight}): no cross-check",
                    server.len(),
                    if server.len() == 1 { "" } else { "s" }
                )),
                None => {}
            }
            (answer, Some(r.requested))
        }
        Err(why) => {
            ev.push(why);
            ev.extend(calibration);
            if let Some(says) = s.server_says {
                ev.push(format!(
                    "the server flight of {} records ({flight} inner) suggests {} CertificateRequest, but does not show what the client's record holds",
                    server.len(),
                    if says { "a" } else { "no" }
                ));
            }
            (Answer::Unknown, s.server_says)
        }
    };
    // An encrypted 2-byte reply right after the client's flight is an alert (plus the stack's
    // overhead, when calibrated; a padded alert cannot be told from a padded ticket).
    let alert = 2 + s.overhead.unwrap_or(0);
    let progress = if s.padding().is_none() && t.server_reply == Some(alert) {
        ev.push("server answered the client's flight with an encrypted alert".into());
        Progress::Rejected
    } else {
        Progress::Complete
    };
    Tls13Reading {
        answer,
        progress,
        evidence: ev,
        cert_requested,
    }
}

impl Shape<'_> {
    /// Read the client's first record (`len` bytes, `inner` inner): with the padding in mind,
    /// else with the server's overhead taken off (as it is when that fits nothing: a client
    /// of another stack may not add it), else as it is. On success, what it is and a note on
    /// the lengths; else why it fits nothing.
    fn read_client(&self, len: u32, inner: u32, alps: bool) -> Result<(Fit, String), String> {
        let fin = self.fin;
        let expected = format!(
            "Finished ({fin}), an empty Certificate (8, or {} with Finished) nor a certificate (at least {MIN_CERTIFICATE})",
            EMPTY_CERTIFICATE + fin
        );
        if let Some(block) = self.padding() {
            return fit(inner, fin, alps, true)
                .map(|r| (r, String::new()))
                .ok_or_else(|| self.padding_evidence(block, len, inner));
        }
        let Some(o) = self.overhead else {
            return fit(inner, fin, alps, false).map(|r| (r, String::new())).ok_or_else(|| {
                format!(
                    "TLS 1.3: client's first encrypted record is {len} bytes ({inner} inner), which fits neither {expected}; {}",
                    no_calibration(self.server_flight, fin)
                )
            });
        };
        let calibrated = inner.checked_sub(o);
        if let Some(r) = calibrated.and_then(|c| fit(c, fin, alps, false)) {
            let c = inner - o;
            return Ok((r, format!(", {c} without the server's {o} bytes per record")));
        }
        if let Some(r) = fit(inner, fin, alps, false) {
            return Ok((
                r,
                format!(": the client does not add the server's {o} bytes per record"),
            ));
        }
        let without = calibrated.map_or(String::new(), |c| {
            format!(", {c} without the server's {o} bytes per record")
        });
        Err(format!(
            "TLS 1.3: client's first encrypted record is {len} bytes ({inner} inner{without}), which fits neither {expected}, with or without the {o} bytes"
        ))
    }

    fn padding_evidence(&self, block: u32, len: u32, inner: u32) -> String {
        let mut shown = Vec::new();
        if self.server_padding.is_some() {
            shown.push(format!("server flight {} bytes", records(self.server_flight, self.tag)));
        }
        if self.client_padding.is_some() {
            shown.push(format!("client flight {} bytes", records(self.client_flight, self.tag)));
        }
        format!(
            "TLS 1.3 records are padded ({}: each a multiple of {block} plus the {}-byte tag): the client's first record ({len} bytes, {inner} inner) cannot tell a certificate from a padded Finished ({})",
            shown.join(", "),
            self.tag,
            self.fin
        )
    }
}

/// Why the server's flight gave no padding block and no overhead to read the client with.
fn no_calibration(server: &[u32], fin: u32) -> String {
    let flight = inners(server);
    match server {
        [] => "the server's flight is not in the capture".into(),
        [_] => format!("the server's flight is one record ({flight} inner): nothing to calibrate on"),
        _ if !ONE_RECORD_PER_MESSAGE.contains(&server.len()) => format!(
            "the server's flight of {} records ({flight} inner) is not one record per message: nothing to calibrate on",
            server.len()
        ),
        [.., last] if *last == fin => format!(
            "the server's flight ({flight} inner) ends with its Finished ({fin}) exactly: no padding and no per-record overhead to allow for"
        ),
        [.., last] => format!(
            "the server's flight ({flight} inner) is not padded, and its last record ({last}) is not its Finished ({fin}) plus at most {MAX_RECORD_OVERHEAD} bytes"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::inspect::tls::{ClientHelloFacts, ServerHelloFacts};

    const SHA256: u16 = 0x1301;
    const SHA384: u16 = SHA384_SUITE;
    const CHACHA20: u16 = 0x1303;
    /// Who sent a record.
    const S: bool = true;
    const C: bool = false;

    /// A TLS 1.3 handshake whose encrypted records after ServerHello had these lengths on the
    /// wire, in order (ChangeCipherSpec left out): the lengths below are those of the captures
    /// named, as `tshark -T fields -e tcp.srcport -e tls.record.length` prints them.
    fn facts(cipher: u16, records: &[(bool, u32)]) -> TlsFacts {
        let mut f = TlsFacts {
            client_hello: Some(ClientHelloFacts::default()),
            server_hello: Some(ServerHelloFacts {
                version: 0x0304,
                cipher,
                ..Default::default()
            }),
            ..Default::default()
        };
        for &(from_server, len) in records {
            f.tls13.record(from_server, len, cipher, false);
        }
        f
    }

    fn read_of(cipher: u16, records: &[(bool, u32)]) -> (Tls13Reading, Tls13Report) {
        let f = facts(cipher, records);
        (read(&f), tls13_report(&f))
    }

    /// An `Unknown` answer says which length fitted which expectation.
    fn says_why(r: &Tls13Reading, len: u32, fin: u32) {
        assert_eq!(r.answer, Answer::Unknown);
        let why = &r.evidence[0];
        assert!(
            why.contains(&format!("({len} bytes")) || why.contains(&format!("is {len} bytes")),
            "{why}"
        );
        assert!(why.contains(&format!("Finished ({fin})")), "{why}");
    }

    #[test]
    fn openssl_and_gnutls_one_record_per_message_read_as_before() {
        // openssl-tls13-mtls-rsa
        let (r, rep) = read_of(
            SHA384,
            &[
                (S, 23),
                (S, 99),
                (S, 1696),
                (S, 281),
                (S, 69),
                (C, 1670),
                (C, 281),
                (C, 69),
                (C, 35),
                (S, 1082),
            ],
        );
        assert_eq!(r.answer, Answer::Certificate);
        assert_eq!((r.progress, r.cert_requested), (Progress::Complete, Some(true)));
        assert_eq!(
            r.evidence,
            [
                "TLS 1.3: client's first encrypted record after ServerHello is 1670 bytes (1653 inner) = a Certificate: the client sent a certificate",
                "server flight of 5 records (6+82+1679+264+52) includes a CertificateRequest",
            ]
        );
        assert_eq!(
            (rep.server_padding_block, rep.client_padding_block, rep.record_overhead),
            (None, None, None)
        );
        assert_eq!(rep.client_flight_inner_lens, [1653, 264, 52, 18]);

        // openssl-tls13-server-only-rsa
        let (r, _) = read_of(
            SHA384,
            &[(S, 23), (S, 880), (S, 281), (S, 69), (C, 69), (C, 35), (S, 250)],
        );
        assert_eq!((r.answer, r.cert_requested), (Answer::NoCertificate, Some(false)));
        assert_eq!(
            r.evidence,
            [
                "TLS 1.3: client's first encrypted record after ServerHello is 69 bytes (52 inner) = Finished (52) alone: no certificate requested",
                "server flight of 4 records (6+863+264+52) has no CertificateRequest",
            ]
        );

        // openssl-tls13-empty-client-cert
        let (r, _) = read_of(
            SHA384,
            &[
                (S, 23),
                (S, 99),
                (S, 1696),
                (S, 281),
                (S, 69),
                (C, 25),
                (C, 69),
                (C, 35),
                (S, 250),
            ],
        );
        assert_eq!((r.answer, r.cert_requested), (Answer::NoCertificate, Some(true)));
        assert!(r.evidence[0]
            .ends_with("is 25 bytes (8 inner) = an empty Certificate (8): certificate requested, none sent"));

        // openssl-tls13-client-cert-required-missing: the 19-byte record is an encrypted alert.
        let (r, _) = read_of(
            SHA384,
            &[
                (S, 23),
                (S, 99),
                (S, 1696),
                (S, 281),
                (S, 69),
                (C, 25),
                (C, 69),
                (S, 19),
            ],
        );
        assert_eq!((r.answer, r.progress), (Answer::NoCertificate, Progress::Rejected));

        // gnutls-tls13-server-only: TLS_CHACHA20_POLY1305_SHA256, a 36-byte Finished.
        let (r, _) = read_of(
            CHACHA20,
            &[(S, 49), (S, 880), (S, 281), (S, 53), (C, 53), (C, 35), (S, 234)],
        );
        assert_eq!((r.answer, r.cert_requested), (Answer::NoCertificate, Some(false)));

        // gnutls-tls13-mtls-rsa: the leaf alone.
        let (r, _) = read_of(
            SHA384,
            &[
                (S, 49),
                (S, 99),
                (S, 1696),
                (S, 281),
                (S, 69),
                (C, 854),
                (C, 281),
                (C, 69),
                (C, 35),
                (S, 1082),
            ],
        );
        assert_eq!((r.answer, r.cert_requested), (Answer::Certificate, Some(true)));
    }

    #[test]
    fn padded_records_never_read_as_a_certificate() {
        // openssl-tls13-padding512-mtls: -record_padding 512 on both sides, certificate sent.
        let (r, rep) = read_of(
            SHA384,
            &[
                (S, 528),
                (S, 528),
                (S, 2064),
                (S, 528),
                (S, 528),
                (C, 2064),
                (C, 528),
                (C, 528),
                (S, 1552),
            ],
        );
        says_why(&r, 2064, 52);
        assert_eq!(
            r.evidence[0],
            "TLS 1.3 records are padded (server flight 528+528+2064+528+528 bytes, client flight 2064+528+528 bytes: each a multiple of 512 plus the 16-byte tag): the client's first record (2064 bytes, 2047 inner) cannot tell a certificate from a padded Finished (52)"
        );
        // Five records, a padded Finished last: the server asked.
        assert_eq!((r.cert_requested, r.progress), (Some(true), Progress::Complete));
        assert_eq!(
            (rep.server_padding_block, rep.client_padding_block),
            (Some(512), Some(512))
        );
        assert_eq!(rep.record_overhead, None);

        // openssl-tls13-padding512-server-only: the client's Finished is a 528-byte record, as
        // long as a short certificate would be.
        let (r, rep) = read_of(
            SHA384,
            &[(S, 528), (S, 1040), (S, 528), (S, 528), (C, 528), (S, 528), (S, 528)],
        );
        says_why(&r, 528, 52);
        assert!(
            r.evidence[0].contains("server flight 528+1040+528+528 bytes"),
            "{}",
            r.evidence[0]
        );
        assert_eq!(r.cert_requested, Some(false));
        // One client record before the server's reply: nothing to see padding in.
        assert_eq!((rep.server_padding_block, rep.client_padding_block), (Some(512), None));
    }

    #[test]
    fn padding_seen_on_the_client_flight_alone_is_padding() {
        // An unpadded OpenSSL server (openssl-tls13-mtls-rsa), a client padding to 512.
        let (r, rep) = read_of(
            SHA384,
            &[
                (S, 23),
                (S, 99),
                (S, 1696),
                (S, 281),
                (S, 69),
                (C, 2064),
                (C, 528),
                (C, 528),
                (S, 1082),
            ],
        );
        says_why(&r, 2064, 52);
        assert!(r.evidence[0].contains("(client flight 2064+528+528 bytes: each a multiple of 512"));
        assert_eq!((rep.server_padding_block, rep.client_padding_block), (None, Some(512)));
    }

    #[test]
    fn under_padding_a_record_too_short_for_a_certificate_still_reads() {
        // A padding server (openssl-tls13-padding512-server-only), an unpadded client Finished.
        let (r, _) = read_of(SHA384, &[(S, 528), (S, 1040), (S, 528), (S, 528), (C, 69), (S, 528)]);
        assert_eq!((r.answer, r.cert_requested), (Answer::NoCertificate, Some(false)));
        assert!(
            r.evidence[1].contains("but 52 bytes cannot hold a certificate"),
            "{:?}",
            r.evidence
        );
        assert_eq!(
            r.evidence[2],
            "server flight of 4 records (511+1023+511+511) has no CertificateRequest"
        );
    }

    #[test]
    fn java_is_calibrated_on_the_server_finished() {
        let calibration = "record overhead calibrated on the server's Finished (68 inner = 52 + 16 bytes per record)";
        // java-tls13-server-only: the client's Finished is 52 + 16.
        let (r, rep) = read_of(SHA384, &[(S, 65), (S, 1712), (S, 297), (S, 85), (C, 85), (S, 1977)]);
        assert_eq!((r.answer, r.cert_requested), (Answer::NoCertificate, Some(false)));
        assert_eq!(
            r.evidence,
            [
                "TLS 1.3: client's first encrypted record after ServerHello is 85 bytes (68 inner, 52 without the server's 16 bytes per record) = Finished (52) alone: no certificate requested",
                calibration,
                "server flight of 4 records (48+1695+280+68) has no CertificateRequest",
            ]
        );
        assert_eq!((rep.record_overhead, rep.server_padding_block), (Some(16), None));

        // java-tls13-empty-client-cert: an empty Certificate, 8 + 16.
        let (r, _) = read_of(
            SHA384,
            &[
                (S, 65),
                (S, 153),
                (S, 1712),
                (S, 297),
                (S, 85),
                (C, 41),
                (C, 85),
                (C, 51),
                (S, 1977),
            ],
        );
        assert_eq!((r.answer, r.cert_requested), (Answer::NoCertificate, Some(true)));
        assert!(r.evidence[0]
            .contains("41 bytes (24 inner, 8 without the server's 16 bytes per record) = an empty Certificate"));
        assert_eq!(r.evidence[1], calibration);

        // java-tls13-mtls-rsa
        let (r, _) = read_of(
            SHA384,
            &[
                (S, 65),
                (S, 153),
                (S, 1712),
                (S, 297),
                (S, 85),
                (C, 1686),
                (C, 297),
                (C, 85),
                (S, 1977),
            ],
        );
        assert_eq!((r.answer, r.cert_requested), (Answer::Certificate, Some(true)));
        assert_eq!(r.evidence[1], calibration);

        // The certificate_required alert of a Java server carries the 16 bytes too.
        let (r, _) = read_of(
            SHA384,
            &[
                (S, 65),
                (S, 153),
                (S, 1712),
                (S, 297),
                (S, 85),
                (C, 41),
                (C, 85),
                (S, 35),
            ],
        );
        assert_eq!((r.answer, r.progress), (Answer::NoCertificate, Progress::Rejected));
    }

    #[test]
    fn a_client_without_the_server_overhead_reads_as_it_is() {
        // Java server (java-tls13-server-only), OpenSSL client: an exact Finished.
        let (r, _) = read_of(SHA384, &[(S, 65), (S, 1712), (S, 297), (S, 85), (C, 69), (S, 250)]);
        assert_eq!((r.answer, r.cert_requested), (Answer::NoCertificate, Some(false)));
        assert!(r.evidence[0].contains("(52 inner: the client does not add the server's 16 bytes per record)"));
    }

    #[test]
    fn a_client_overhead_the_server_does_not_show_is_uncertain_and_says_why() {
        // OpenSSL server (openssl-tls13-server-only-rsa), Java client: 52 + 16.
        let (r, rep) = read_of(SHA384, &[(S, 23), (S, 880), (S, 281), (S, 69), (C, 85), (S, 250)]);
        says_why(&r, 85, 52);
        assert_eq!(
            r.evidence[0],
            "TLS 1.3: client's first encrypted record is 85 bytes (68 inner), which fits neither Finished (52), an empty Certificate (8, or 60 with Finished) nor a certificate (at least 100); the server's flight (6+863+264+52 inner) ends with its Finished (52) exactly: no padding and no per-record overhead to allow for"
        );
        assert_eq!(r.cert_requested, Some(false));
        assert_eq!(rep.record_overhead, None);
    }

    #[test]
    fn flights_packed_into_one_record_are_read_without_calibration() {
        // boringssl-tls13-mtls-ecdsa, -server-only, -empty-client-cert (SHA-256 suite).
        let (r, rep) = read_of(SHA256, &[(S, 829), (C, 792), (C, 35), (S, 1693)]);
        assert_eq!((r.answer, r.cert_requested), (Answer::Certificate, Some(true)));
        assert_eq!(r.evidence[1], "server flight in 1 record (812): no cross-check");
        assert_eq!(
            (rep.server_padding_block, rep.client_padding_block, rep.record_overhead),
            (None, None, None)
        );
        let (r, _) = read_of(SHA256, &[(S, 798), (C, 53), (C, 35), (S, 381)]);
        assert_eq!((r.answer, r.cert_requested), (Answer::NoCertificate, Some(false)));
        let (r, _) = read_of(SHA256, &[(S, 829), (C, 61), (C, 35), (S, 381)]);
        assert_eq!((r.answer, r.cert_requested), (Answer::NoCertificate, Some(true)));
        // rustls-tls13-mtls-ecdsa, -server-only, -empty-client-cert (SHA-384 suite).
        let (r, _) = read_of(SHA384, &[(S, 886), (C, 808), (S, 179)]);
        assert_eq!(r.answer, Answer::Certificate);
        let (r, _) = read_of(SHA384, &[(S, 817), (C, 69), (S, 179)]);
        assert_eq!(r.answer, Answer::NoCertificate);
        let (r, _) = read_of(SHA384, &[(S, 886), (C, 77), (S, 179)]);
        assert_eq!((r.answer, r.cert_requested), (Answer::NoCertificate, Some(true)));
    }

    #[test]
    fn a_packed_flight_of_round_lengths_is_not_padding() {
        // One server record and a client flight of two whose plaintexts are multiples of 512:
        // what a packing stack could send by chance. Two records never make a padding block.
        let (r, rep) = read_of(SHA384, &[(S, 1040), (C, 2064), (C, 528), (S, 1552)]);
        assert_eq!(r.answer, Answer::Certificate);
        assert_eq!((rep.server_padding_block, rep.client_padding_block), (None, None));
        assert!(r.evidence[1].contains("no cross-check"));
    }

    #[test]
    fn a_certificate_against_a_server_flight_without_request_is_not_mtls() {
        // openssl-tls13-server-only-rsa's server flight, a certificate-sized client record.
        let (r, _) = read_of(SHA384, &[(S, 23), (S, 880), (S, 281), (S, 69), (C, 1670), (S, 250)]);
        assert_eq!(r.answer, Answer::Unknown);
        assert_eq!(
            r.evidence[1],
            "but the server flight of 4 records (6+863+264+52, one per message, Finished last) has no CertificateRequest, which contradicts the client's record"
        );
    }

    #[test]
    fn no_client_flight_is_incomplete() {
        let (r, _) = read_of(SHA384, &[(S, 23), (S, 880), (S, 281), (S, 69)]);
        assert_eq!(
            (r.answer, r.progress, r.cert_requested),
            (Answer::Unknown, Progress::ClientFlightMissing, None)
        );
        assert_eq!(
            r.evidence,
            ["TLS 1.3: the client's encrypted flight is not in the capture"]
        );
    }

    #[test]
    fn alps_client_encrypted_extensions_before_finished() {
        let mut f = facts(SHA256, &[(S, 829), (C, 17 + 36 + 20), (S, 381)]);
        // Without ALPS offered the same length fits nothing.
        says_why(&read(&f), 73, 36);
        if let Some(c) = f.client_hello.as_mut() {
            c.alps_offered = true;
        }
        let r = read(&f);
        assert_eq!((r.answer, r.cert_requested), (Answer::NoCertificate, Some(false)));
        assert!(r.evidence[0].contains("EncryptedExtensions for ALPS (20)"));
    }

    #[test]
    fn padding_blocks() {
        assert_eq!(padding_block(&[511, 511, 2047, 511, 511], 52), Some(512));
        assert_eq!(padding_block(&[511, 1023], 52), None, "two records are not enough");
        assert_eq!(padding_block(&[6, 82, 1679, 264, 52], 52), None);
        assert_eq!(
            padding_block(&[15, 15, 31], 52),
            None,
            "a block under 32 is not recognised"
        );
        // An OpenSSL client flight (Certificate, RSA CertificateVerify, Finished) whose
        // Certificate happens to be 31 * 53 bytes of plaintext.
        assert_eq!(
            padding_block(&[1642, 264, 52], 52),
            None,
            "an exact Finished is not padded"
        );
        assert_eq!(padding_block(&[1642, 264, 52, 105], 36), Some(53));
        assert_eq!(padded(52, 512), 511);
        assert_eq!(padded(36, 64), 63);
        assert_eq!(record_overhead(&[48, 1695, 280, 68], 52), Some(16));
        assert_eq!(
            record_overhead(&[812], 36),
            None,
            "a packed flight gives no calibration"
        );
        assert_eq!(record_overhead(&[6, 863, 264, 52], 52), None);
    }
}
