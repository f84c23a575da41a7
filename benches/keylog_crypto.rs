//! What decrypting a TLS 1.3 handshake costs, per crate: `ring` (already in the dependency tree
//! through rustls) against RustCrypto's `aes-gcm`, `chacha20poly1305` and `hkdf` (with `sha2`).
//! Per connection the key log decryption derives two keys and two IVs (HKDF-Expand-Label, RFC
//! 8446 7.1) and opens a handful of handshake records of a few hundred bytes to 2 KiB
//! (src/pipeline/inspect/tls/decrypt.rs); both are measured here, on the same inputs, for the
//! three suites decrypted. The figures and the choice are in docs/performance.md ("Key logs").
//!
//! `cargo bench --bench keylog_crypto`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

/// A Certificate record of a 2-certificate RSA chain, as OpenSSL writes it (1,653 inner bytes).
const RECORD: usize = 1653 + 1;
const HDR: [u8; 5] = [23, 3, 3, 0x06, 0x86];

#[derive(Clone, Copy)]
enum Suite {
    Aes128,
    Aes256,
    Chacha,
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Suite::Aes128 => "TLS_AES_128_GCM_SHA256",
            Suite::Aes256 => "TLS_AES_256_GCM_SHA384",
            Suite::Chacha => "TLS_CHACHA20_POLY1305_SHA256",
        }
    }
    fn key_len(self) -> usize {
        match self {
            Suite::Aes128 => 16,
            _ => 32,
        }
    }
}

const SUITES: [Suite; 3] = [Suite::Aes128, Suite::Aes256, Suite::Chacha];

fn hkdf_label(len: usize, label: &[u8]) -> Vec<u8> {
    let mut info = (len as u16).to_be_bytes().to_vec();
    info.push((6 + label.len()) as u8);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label);
    info.push(0);
    info
}

mod with_ring {
    use super::*;
    use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
    use ring::hkdf;

    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }

    fn alg(s: Suite) -> (&'static aead::Algorithm, hkdf::Algorithm) {
        match s {
            Suite::Aes128 => (&aead::AES_128_GCM, hkdf::HKDF_SHA256),
            Suite::Aes256 => (&aead::AES_256_GCM, hkdf::HKDF_SHA384),
            Suite::Chacha => (&aead::CHACHA20_POLY1305, hkdf::HKDF_SHA256),
        }
    }

    pub fn keys(s: Suite, secret: &[u8]) -> (LessSafeKey, [u8; 12]) {
        let (a, h) = alg(s);
        let prk = hkdf::Prk::new_less_safe(h, secret);
        let mut key = [0u8; 32];
        let info = hkdf_label(s.key_len(), b"key");
        prk.expand(&[&info], Len(s.key_len()))
            .unwrap()
            .fill(&mut key[..s.key_len()])
            .unwrap();
        let mut iv = [0u8; 12];
        let info = hkdf_label(12, b"iv");
        prk.expand(&[&info], Len(12)).unwrap().fill(&mut iv).unwrap();
        (LessSafeKey::new(UnboundKey::new(a, &key[..s.key_len()]).unwrap()), iv)
    }

    pub fn seal(k: &LessSafeKey, iv: [u8; 12], plain: &[u8]) -> Vec<u8> {
        let mut b = plain.to_vec();
        k.seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::from(HDR), &mut b)
            .unwrap();
        b
    }

    pub fn open(k: &LessSafeKey, iv: [u8; 12], record: &[u8]) -> usize {
        let mut b = record.to_vec();
        k.open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(HDR), &mut b)
            .unwrap()
            .len()
    }
}

mod with_rustcrypto {
    use super::*;
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use aes_gcm::{Aes128Gcm, Aes256Gcm};
    use chacha20poly1305::ChaCha20Poly1305;

    pub enum Key {
        Aes128(Box<Aes128Gcm>),
        Aes256(Box<Aes256Gcm>),
        Chacha(Box<ChaCha20Poly1305>),
    }

    pub fn keys(s: Suite, secret: &[u8]) -> (Key, [u8; 12]) {
        let mut key = [0u8; 32];
        let mut iv = [0u8; 12];
        let key_info = hkdf_label(s.key_len(), b"key");
        let iv_info = hkdf_label(12, b"iv");
        match s {
            Suite::Aes256 => {
                let h = hkdf::Hkdf::<sha2::Sha384>::from_prk(secret).unwrap();
                h.expand(&key_info, &mut key).unwrap();
                h.expand(&iv_info, &mut iv).unwrap();
            }
            _ => {
                let h = hkdf::Hkdf::<sha2::Sha256>::from_prk(secret).unwrap();
                h.expand(&key_info, &mut key[..s.key_len()]).unwrap();
                h.expand(&iv_info, &mut iv).unwrap();
            }
        }
        let k = match s {
            Suite::Aes128 => Key::Aes128(Box::new(Aes128Gcm::new_from_slice(&key[..16]).unwrap())),
            Suite::Aes256 => Key::Aes256(Box::new(Aes256Gcm::new_from_slice(&key).unwrap())),
            Suite::Chacha => Key::Chacha(Box::new(ChaCha20Poly1305::new_from_slice(&key).unwrap())),
        };
        (k, iv)
    }

    pub fn open(k: &Key, iv: [u8; 12], record: &[u8]) -> usize {
        let mut b = record.to_vec();
        let nonce = aes_gcm::Nonce::from_slice(&iv);
        match k {
            Key::Aes128(k) => k.decrypt_in_place(nonce, &HDR, &mut b),
            Key::Aes256(k) => k.decrypt_in_place(nonce, &HDR, &mut b),
            Key::Chacha(k) => k.decrypt_in_place(nonce, &HDR, &mut b),
        }
        .unwrap();
        b.len()
    }
}

fn secret(s: Suite) -> Vec<u8> {
    let len = if matches!(s, Suite::Aes256) { 48 } else { 32 };
    (0..len as u8).map(|i| i.wrapping_mul(37)).collect()
}

fn bench(c: &mut Criterion) {
    let plain: Vec<u8> = (0..RECORD).map(|i| (i * 7) as u8).collect();
    let mut derive = c.benchmark_group("keylog_derive_keys");
    for s in SUITES {
        let sec = secret(s);
        derive.bench_with_input(BenchmarkId::new("ring", s.name()), &sec, |b, sec| {
            b.iter(|| black_box(with_ring::keys(s, black_box(sec))))
        });
        derive.bench_with_input(BenchmarkId::new("rustcrypto", s.name()), &sec, |b, sec| {
            b.iter(|| black_box(with_rustcrypto::keys(s, black_box(sec))))
        });
    }
    derive.finish();
    let mut open = c.benchmark_group("keylog_open_record");
    open.throughput(Throughput::Bytes(RECORD as u64 + 16));
    for s in SUITES {
        let sec = secret(s);
        let (rk, iv) = with_ring::keys(s, &sec);
        let (ck, civ) = with_rustcrypto::keys(s, &sec);
        assert_eq!(iv, civ, "both derive the same IV");
        let record = with_ring::seal(&rk, iv, &plain);
        // The same record opens with both: the same keys, the same AEAD.
        assert_eq!(with_rustcrypto::open(&ck, civ, &record), RECORD);
        open.bench_function(BenchmarkId::new("ring", s.name()), |b| {
            b.iter(|| black_box(with_ring::open(&rk, iv, black_box(&record))))
        });
        open.bench_function(BenchmarkId::new("rustcrypto", s.name()), |b| {
            b.iter(|| black_box(with_rustcrypto::open(&ck, civ, black_box(&record))))
        });
    }
    open.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
