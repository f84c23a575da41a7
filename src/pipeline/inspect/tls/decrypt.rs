//! TLS 1.3 handshake decryption with a key log (docs/keylogs.md): the handshake traffic keys
//! from the secrets the key log holds for the connection's ClientHello random (RFC 8446, 7.1
//! and 7.3: HKDF-Expand-Label with the cipher suite's hash), then each encrypted record of the
//! handshake opened with `iv XOR sequence number` as the nonce (5.3), its padding stripped and
//! its inner content type read (5.2). A direction is decrypted from its first encrypted record
//! to its Finished and never further: the records after it are under the application traffic
//! keys, which the key log's application secrets would give and which are never derived.
//!
//! Crypto is `ring`'s (HKDF, AES-GCM, ChaCha20-Poly1305): measured against RustCrypto's crates
//! in benches/keylog_crypto.rs (the figures are in docs/performance.md, "Key logs").
//!
//! Keys live only while the connection's handshake is inspected: they go with the classifier.

use super::facts::Decrypted;
use crate::pipeline::keylog::{Entry, KeyLog, Secret};
use crate::pipeline::side::{PerSide, Side};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use std::sync::Arc;

/// Encrypted records a client may send under its early-data keys before its handshake
/// records, when it offered 0-RTT: skipped, not taken for a wrong key.
const MAX_EARLY_RECORDS: u32 = 16;
/// Largest TLS 1.3 inner plaintext: 2^14 bytes and the content type.
const MAX_INNER: usize = (1 << 14) + 1;

/// What to do with one encrypted record.
pub(super) enum Opened {
    /// Its inner content type and plaintext (padding removed).
    Record(u8, Vec<u8>),
    /// Not ours to open: no key for this direction, or its handshake is over.
    Skip,
    /// Skipped as 0-RTT data (client, early data offered, nothing authenticated yet).
    Early,
    /// It did not authenticate with the key log's keys: record `n` of its direction.
    Failed(u32),
    /// The key log has secrets for this connection but they do not fit its cipher suite.
    Unusable(String),
}

struct DirKeys {
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
}

#[derive(Default)]
struct Dir {
    keys: Option<Box<DirKeys>>,
    /// Encrypted records seen in this direction since ServerHello.
    records: u32,
    /// Records of this direction that authenticated.
    opened: u32,
    /// No more records of this direction are opened (its Finished, a failure, no key).
    done: bool,
    /// Decrypted handshake bytes not yet forming a whole message.
    hs: Vec<u8>,
}

/// Per connection, only when a key log is given: its random until the keys are known, then
/// the keys of each direction.
pub(super) struct Keys {
    log: Arc<KeyLog>,
    random: Option<[u8; 32]>,
    /// The key log's entry, once looked up (at each direction's first encrypted record).
    entry: Option<Entry>,
    dirs: PerSide<Dir>,
    /// What was decrypted, once the key log had an entry for this connection.
    pub(super) decrypted: Option<Box<Decrypted>>,
}

impl Keys {
    pub(super) fn new(log: Arc<KeyLog>) -> Keys {
        Keys {
            log,
            random: None,
            entry: None,
            dirs: PerSide::default(),
            decrypted: None,
        }
    }

    /// The first ClientHello's random (a second one after HelloRetryRequest has the same).
    pub(super) fn client_hello(&mut self, body: &[u8]) {
        if self.random.is_none() {
            self.random = body.get(2..34).and_then(|r| r.try_into().ok());
        }
    }

    /// Whether an encrypted record of `dir` is to be kept and opened.
    pub(super) fn wants(&self, dir: Side) -> bool {
        self.random.is_some() && !self.dirs[dir].done
    }

    /// Whether the key log had an entry for this connection.
    pub(super) fn found(&self) -> bool {
        self.entry.is_some()
    }

    /// A direction whose key is known and whose Finished has not been read yet.
    pub(super) fn pending(&self, dir: Side) -> bool {
        self.dirs[dir].keys.is_some() && !self.dirs[dir].done
    }

    pub(super) fn buffered(&self) -> usize {
        self.dirs.iter().map(|d| d.hs.capacity()).sum()
    }

    /// Stop opening records of `dir`: its Finished was read, or it failed.
    pub(super) fn finish(&mut self, dir: Side) {
        let d = &mut self.dirs[dir];
        d.done = true;
        d.keys = None;
        d.hs = Vec::new();
    }

    /// Decrypted handshake bytes of `dir`, to be framed into messages by the caller.
    pub(super) fn handshake_buffer(&mut self, dir: Side) -> &mut Vec<u8> {
        &mut self.dirs[dir].hs
    }

    /// Open one encrypted record of `dir` (`hdr` its 5-byte header, the AEAD's additional data).
    /// `client`: `dir` is the client's; `early_data`: the client offered 0-RTT.
    pub(super) fn open(
        &mut self,
        dir: Side,
        client: bool,
        cipher: u16,
        early_data: bool,
        hdr: [u8; 5],
        body: &[u8],
    ) -> Opened {
        self.dirs[dir].records += 1;
        let n = self.dirs[dir].records;
        if self.dirs[dir].done {
            return Opened::Skip;
        }
        if self.dirs[dir].keys.is_none() {
            if n > 1 {
                // Keys are only taken at a direction's first record: the sequence numbers
                // and the message boundaries are known from there.
                self.finish(dir);
                return Opened::Skip;
            }
            let Some(random) = self.random else {
                self.finish(dir);
                return Opened::Skip;
            };
            if self.entry.is_none() {
                self.entry = self.log.lookup(&random);
            }
            let secret = self.entry.and_then(|e| if client { e.client } else { e.server });
            let Some(secret) = secret else {
                self.finish(dir);
                return Opened::Skip;
            };
            match traffic_keys(cipher, &secret) {
                Ok(k) => self.dirs[dir].keys = Some(Box::new(k)),
                Err(why) => {
                    self.finish(dir);
                    return Opened::Unusable(why);
                }
            }
        }
        let d = &mut self.dirs[dir];
        let Some(k) = d.keys.as_mut() else {
            return Opened::Skip;
        };
        if body.len() > MAX_INNER + 255 {
            // Longer than TLS 1.3 allows (RFC 8446, 5.2): it cannot authenticate.
            return self.failed(dir, client, early_data, n);
        }
        let mut nonce = k.iv;
        for (b, s) in nonce[4..].iter_mut().zip(k.seq.to_be_bytes()) {
            *b ^= s;
        }
        let mut buf = body.to_vec();
        let opened = k
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(hdr), &mut buf)
            .map(|p| p.len());
        let Ok(len) = opened else {
            return self.failed(dir, client, early_data, n);
        };
        k.seq += 1;
        d.opened += 1;
        buf.truncate(len);
        // The inner plaintext: content, the content type, then zeros (padding).
        let Some(end) = buf.iter().rposition(|&b| b != 0) else {
            return self.failed(dir, client, early_data, n);
        };
        let ty = buf[end];
        buf.truncate(end);
        Opened::Record(ty, buf)
    }

    fn failed(&mut self, dir: Side, client: bool, early_data: bool, n: u32) -> Opened {
        if client && early_data && self.dirs[dir].opened == 0 && n <= MAX_EARLY_RECORDS {
            return Opened::Early;
        }
        for d in Side::BOTH {
            self.finish(d);
        }
        Opened::Failed(n)
    }
}

/// `ring`'s HKDF output length.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446, 7.1) with an empty context.
fn expand_label(prk: &hkdf::Prk, label: &[u8], out: &mut [u8]) -> Result<(), String> {
    let len = (out.len() as u16).to_be_bytes();
    let label_len = [(6 + label.len()) as u8];
    let info: [&[u8]; 5] = [&len, &label_len, b"tls13 ", label, &[0]];
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| "HKDF-Expand-Label failed".to_string())
}

/// The AEAD, key length and hash length of a TLS 1.3 cipher suite.
fn suite(cipher: u16) -> Option<(&'static aead::Algorithm, usize, hkdf::Algorithm, usize)> {
    match cipher {
        0x1301 => Some((&aead::AES_128_GCM, 16, hkdf::HKDF_SHA256, 32)),
        0x1302 => Some((&aead::AES_256_GCM, 32, hkdf::HKDF_SHA384, 48)),
        0x1303 => Some((&aead::CHACHA20_POLY1305, 32, hkdf::HKDF_SHA256, 32)),
        _ => None,
    }
}

/// The traffic key and IV of a handshake traffic secret (RFC 8446, 7.3).
fn traffic_keys(cipher: u16, secret: &Secret) -> Result<DirKeys, String> {
    let Some((alg, key_len, hash, hash_len)) = suite(cipher) else {
        return Err(format!(
            "cipher suite 0x{cipher:04x} is not decrypted (AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305 are)"
        ));
    };
    let s = secret.expose();
    if s.len() != hash_len {
        return Err(format!(
            "the key log's secret for this connection is {} bytes, its cipher suite's hash {hash_len}",
            s.len()
        ));
    }
    let prk = hkdf::Prk::new_less_safe(hash, s);
    let mut key = [0u8; 32];
    expand_label(&prk, b"key", &mut key[..key_len])?;
    let mut iv = [0u8; 12];
    expand_label(&prk, b"iv", &mut iv)?;
    let key = UnboundKey::new(alg, &key[..key_len]).map_err(|_| "the AEAD key was refused".to_string())?;
    Ok(DirKeys {
        key: LessSafeKey::new(key),
        iv,
        seq: 0,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 8448 (example handshake traces), section 3 "Simple 1-RTT Handshake": the server
    /// handshake traffic secret, and the key and IV it derives.
    #[test]
    fn key_schedule_matches_rfc_8448() {
        let secret =
            unhex("b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38");
        let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &secret);
        let mut key = [0u8; 16];
        expand_label(&prk, b"key", &mut key).unwrap();
        assert_eq!(key.to_vec(), unhex("3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc"));
        let mut iv = [0u8; 12];
        expand_label(&prk, b"iv", &mut iv).unwrap();
        assert_eq!(iv.to_vec(), unhex("5d 31 3e b2 67 12 76 ee 13 00 0b 30"));
    }

    fn record(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![ty, 3, 3];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    fn message(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![ty];
        m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        m.extend_from_slice(body);
        m
    }

    /// One TLS 1.3 record sealed as a peer would: `content` + handshake type + 3 bytes of
    /// padding, the record header as additional data, nonce = iv XOR `seq`.
    fn sealed(k: &DirKeys, seq: u64, content: &[u8]) -> Vec<u8> {
        let mut inner = content.to_vec();
        inner.extend_from_slice(&[22, 0, 0, 0]);
        let hdr = [23, 3, 3, 0, 0];
        let mut hdr = hdr;
        hdr[3..].copy_from_slice(&((inner.len() + 16) as u16).to_be_bytes());
        let mut nonce = k.iv;
        for (b, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
            *b ^= s;
        }
        k.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(hdr), &mut inner)
            .unwrap();
        let mut r = hdr.to_vec();
        r.extend_from_slice(&inner);
        r
    }

    fn hello(ty: u8, random: [u8; 32], client: bool) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&random);
        b.push(0);
        if client {
            b.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
            b.extend_from_slice(&[0, 7, 0, 0x2b, 0, 3, 2, 3, 4]);
        } else {
            b.extend_from_slice(&[0x13, 0x01, 0]);
            b.extend_from_slice(&[0, 6, 0, 0x2b, 0, 2, 3, 4]);
        }
        record(22, &message(ty, &b))
    }

    /// A whole TLS 1.3 mTLS handshake sealed with a key log's secrets, its messages split
    /// across records, then application data that must never be opened (it is not sealed with
    /// the handshake keys: opening it would fail and say "wrong key").
    #[test]
    fn a_handshake_split_across_records_is_decrypted_up_to_each_finished() {
        use crate::pipeline::inspect::tls::Classifier;
        let random = [9u8; 32];
        let (cs, ss) = ([0x11u8; 32], [0x22u8; 32]);
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let log = Arc::new(KeyLog::new());
        let text = format!(
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET {r} {c}\nSERVER_HANDSHAKE_TRAFFIC_SECRET {r} {s}\n",
            r = hex(&random),
            c = hex(&cs),
            s = hex(&ss)
        );
        log.add_text("test", text.as_bytes());
        let ck = traffic_keys(0x1301, &log.lookup(&random).unwrap().client.unwrap()).unwrap();
        let sk = traffic_keys(0x1301, &log.lookup(&random).unwrap().server.unwrap()).unwrap();

        let mut server = message(8, &[0, 0]);
        server.extend(message(13, &[0, 0, 0]));
        server.extend(message(11, &[0, 0, 0, 0]));
        server.extend(message(20, &[0x5a; 32]));
        let der = [0x30, 0x03, 0x02, 0x01, 0x01];
        let mut entry = vec![0, 0, der.len() as u8];
        entry.extend_from_slice(&der);
        entry.extend_from_slice(&[0, 0]);
        let mut cert = vec![0, 0, 0, entry.len() as u8];
        cert.extend_from_slice(&entry);
        let mut client = message(11, &cert);
        client.extend(message(20, &[0xa5; 32]));

        let mut c = Classifier::with_keys(Some(&log));
        let (cli, srv) = (Side::Lo, Side::Hi);
        c.data(cli, &hello(1, random, true));
        c.data(srv, &hello(2, [3; 32], false));
        // The server's flight in three records, cut inside CertificateRequest and Finished.
        let (a, rest) = server.split_at(7);
        let (b, d) = rest.split_at(rest.len() - 10);
        for (seq, part) in [a, b, d].into_iter().enumerate() {
            c.data(srv, &sealed(&sk, seq as u64, part));
        }
        // Then application data (NewSessionTicket), under keys the key log does not give.
        c.data(srv, &record(23, &[0x77; 80]));
        let (a, b) = client.split_at(5);
        c.data(cli, &sealed(&ck, 0, a));
        c.data(cli, &sealed(&ck, 1, b));
        c.data(cli, &record(23, &[0x66; 40]));
        assert!(!c.decrypting());
        let d = c.take_decrypted().unwrap();
        assert_eq!(d.failed, None, "application data was opened");
        assert_eq!((d.records[cli], d.records[srv]), (2, 3));
        assert!(d.certificate_requested && d.finished[cli] && d.finished[srv]);
        let chain = d.client_chain.as_ref().unwrap();
        assert_eq!(chain.len, 1);
        assert_eq!(
            chain.leaf_sha256.as_deref(),
            Some(&crate::pipeline::inspect::certs::sha256_hex(&der)[..])
        );
        assert_eq!(d.server_chain.as_ref().unwrap().len, 0);
        let types: Vec<u8> = d.messages.iter().map(|m| m.ty).collect();
        assert_eq!(types, [8, 13, 11, 20, 11, 20]);
        // The length inference still saw every record.
        assert_eq!(c.facts.app_records[srv], 4);
    }

    #[test]
    fn a_record_that_does_not_authenticate_is_a_wrong_key_for_the_connection() {
        use crate::pipeline::inspect::tls::Classifier;
        let random = [4u8; 32];
        let log = Arc::new(KeyLog::new());
        let line = format!(
            "SERVER_HANDSHAKE_TRAFFIC_SECRET {} {}\n",
            "04".repeat(32),
            "33".repeat(32)
        );
        log.add_text("test", line.as_bytes());
        let wrong = traffic_keys(0x1301, &Secret::new(&[0x34; 32]).unwrap()).unwrap();
        let mut c = Classifier::with_keys(Some(&log));
        c.data(Side::Lo, &hello(1, random, true));
        c.data(Side::Hi, &hello(2, [3; 32], false));
        c.data(Side::Hi, &sealed(&wrong, 0, &message(8, &[0, 0])));
        c.data(Side::Hi, &sealed(&wrong, 1, &message(20, &[0; 32])));
        let d = c.take_decrypted().unwrap();
        assert_eq!(d.failed, Some((Side::Hi, 1)));
        assert_eq!(d.records[Side::Hi], 0);
    }

    #[test]
    fn a_secret_of_the_wrong_length_or_an_unknown_suite_is_said() {
        let log = KeyLog::new();
        let line = format!(
            "SERVER_HANDSHAKE_TRAFFIC_SECRET {} {}\n",
            "01".repeat(32),
            "02".repeat(32)
        );
        log.add_text("t", line.as_bytes());
        let e = log.lookup(&[1; 32]).unwrap();
        let s = e.server.unwrap();
        assert!(traffic_keys(0x1302, &s).err().unwrap().contains("32 bytes"));
        assert!(traffic_keys(0x1305, &s).err().unwrap().contains("0x1305"));
        assert!(traffic_keys(0x1301, &s).is_ok());
    }
}
