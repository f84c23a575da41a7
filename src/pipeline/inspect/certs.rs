//! X.509 details of the certificates seen in clear on the wire (TLS 1.0-1.2 Certificate
//! messages): who the peer claims to be, who vouched for it, and a fingerprint to match it
//! against other tools.
//!
//! Certificates come from untrusted packets. Nothing here verifies a signature or a chain: the
//! point is to *describe* what was presented, so unknown algorithms (ML-DSA and whatever comes
//! next) are reported by OID instead of rejected.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use x509_parser::der_parser::asn1_rs::{Any, Tag};
use x509_parser::error::X509Error;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::nom;
use x509_parser::objects::{oid2abbrev, oid_registry};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;
use x509_parser::time::ASN1Time;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo, X509Name};

/// What a certificate says about its holder. Every field is already rendered as text so the
/// report layer never needs x509-parser types, and the value outlives the packet buffer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CertInfo {
    /// RFC 4514-ish, in the order the RDNs appear in the DER (x509-parser's rendering).
    pub subject: String,
    pub issuer: String,
    /// The serial's DER content bytes as on the wire, lowercase hex, colon-separated.
    pub serial: String,
    /// RFC 3339 UTC, e.g. "2026-11-22T08:00:00Z".
    pub not_before: String,
    pub not_after: String,
    pub san_dns: Vec<String>,
    pub san_ip: Vec<String>,
    pub san_uri: Vec<String>,
    pub san_email: Vec<String>,
    /// First URI SAN starting with "spiffe://".
    pub spiffe_id: Option<String>,
    /// That SPIFFE ID split into trust domain, path, and (Istio form) namespace and service
    /// account.
    pub spiffe: Option<SpiffeId>,
    /// Lowercase hex SHA-256 over the certificate's DER, no separators (what
    /// `openssl x509 -fingerprint -sha256` shows, minus colons and case).
    pub sha256: String,
    /// "RSA 2048", "EC P-256", "Ed25519", ..., or the dotted OID when the algorithm is unknown.
    pub public_key: String,
    /// Name when known (e.g. "sha256WithRSAEncryption"), else dotted OID.
    pub signature_algorithm: String,
    pub is_ca: bool,
}

impl CertInfo {
    /// The identity to show for this certificate: first spiffe:// URI SAN, else first URI SAN,
    /// else first DNS SAN, else the subject CN value, else the whole subject string.
    pub fn identity(&self) -> String {
        self.spiffe_id
            .as_deref()
            .or_else(|| self.san_uri.first().map(String::as_str))
            .or_else(|| self.san_dns.first().map(String::as_str))
            .or_else(|| common_name(&self.subject))
            .unwrap_or(&self.subject)
            .to_string()
    }
}

/// The CN value out of a rendered subject. x509-parser joins attributes with ", " and
/// multi-valued RDNs with " + " without escaping, so a CN that itself contains ", " is cut
/// there; that only shortens what is displayed.
fn common_name(subject: &str) -> Option<&str> {
    subject
        .split(", ")
        .flat_map(|rdn| rdn.split(" + "))
        .find_map(|attr| attr.strip_prefix("CN="))
        .filter(|cn| !cn.is_empty())
}

/// Why a certificate could not be described. The caller still has the raw bytes, and
/// [`sha256_hex`] of them, to report.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate is empty (0 bytes)")]
    Empty,
    #[error("certificate is truncated: {len} bytes present, the DER encoding needs more")]
    Truncated { len: usize },
    #[error("certificate ({len} bytes) is not valid X.509 DER: {source}")]
    Malformed {
        len: usize,
        #[source]
        source: X509Error,
    },
}

/// Lowercase hex SHA-256 of arbitrary bytes; the fingerprint to report when a certificate
/// cannot be parsed, so it can still be matched against other tools.
pub fn sha256_hex(der: &[u8]) -> String {
    hex(&Sha256::digest(der), "")
}

/// Certificates remembered per thread by [`parse_certificate_cached`]; the cache starts over
/// when full.
const CACHE_ENTRIES: usize = 256;

thread_local! {
    static CACHE: std::cell::RefCell<rustc_hash::FxHashMap<Box<[u8]>, Arc<CertInfo>>> =
        std::cell::RefCell::new(rustc_hash::FxHashMap::default());
}

/// [`parse_certificate`], remembering the result for the same DER bytes: a mesh's servers and
/// clients present the same few certificates on thousands of connections, and parsing and
/// fingerprinting each copy was a third of the work on a capture of short TLS connections.
/// Shared, not copied: a copy of the 14 strings and lists of a [`CertInfo`] for each connection
/// and again for its report was 11% of the allocations on the bench capture.
pub fn parse_certificate_cached(der: &[u8]) -> Result<Arc<CertInfo>, CertError> {
    if let Some(info) = CACHE.with(|c| c.borrow().get(der).cloned()) {
        return Ok(info);
    }
    let info = Arc::new(parse_certificate(der)?);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHE_ENTRIES {
            c.clear();
        }
        c.insert(der.into(), info.clone());
    });
    Ok(info)
}

/// Describes one DER certificate (as carried in a TLS Certificate message). Bytes after the
/// certificate are ignored; nothing is verified.
pub fn parse_certificate(der: &[u8]) -> Result<CertInfo, CertError> {
    if der.is_empty() {
        return Err(CertError::Empty);
    }
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| match e {
        // Inner parsers report a short read in several ways (Incomplete, Eof, invalid length);
        // the outer header is the reliable witness that the capture cut the certificate, which
        // is a different finding from a peer sending garbage.
        _ if outer_sequence_runs_past(der) => CertError::Truncated { len: der.len() },
        nom::Err::Incomplete(_) => CertError::Truncated { len: der.len() },
        nom::Err::Error(source) | nom::Err::Failure(source) => CertError::Malformed { len: der.len(), source },
    })?;
    // Bytes after the certificate are ignored rather than rejected: the structure is complete,
    // and the fingerprint must cover exactly the certificate to match other tools.
    let cert_len = der.len().saturating_sub(rest.len());
    let cert_der = der.get(..cert_len).unwrap_or(der);

    let tbs = &cert.tbs_certificate;
    let mut info = CertInfo {
        subject: name_to_string(&tbs.subject),
        issuer: name_to_string(&tbs.issuer),
        serial: hex(tbs.raw_serial(), ":"),
        not_before: rfc3339(&tbs.validity.not_before),
        not_after: rfc3339(&tbs.validity.not_after),
        san_dns: Vec::new(),
        san_ip: Vec::new(),
        san_uri: Vec::new(),
        san_email: Vec::new(),
        spiffe_id: None,
        spiffe: None,
        sha256: sha256_hex(cert_der),
        public_key: public_key_name(&tbs.subject_pki),
        signature_algorithm: signature_algorithm_name(&cert.signature_algorithm),
        is_ca: false,
    };
    // Iterated by hand instead of x509-parser's accessors, which refuse the whole certificate
    // when an extension appears twice; here every SAN extension counts and any CA:TRUE wins.
    for ext in tbs.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    add_general_name(&mut info, name);
                }
            }
            ParsedExtension::BasicConstraints(bc) => info.is_ca |= bc.ca,
            _ => {}
        }
    }
    info.spiffe_id = info.san_uri.iter().find(|uri| uri.starts_with("spiffe://")).cloned();
    info.spiffe = info.spiffe_id.as_deref().and_then(parse_spiffe_id);
    Ok(info)
}

/// True when `der` starts like a DER SEQUENCE whose header, or declared content, does not fit
/// in the bytes present.
fn outer_sequence_runs_past(der: &[u8]) -> bool {
    let Some((&0x30, rest)) = der.split_first() else {
        return false;
    };
    let Some((&first, rest)) = rest.split_first() else {
        return true;
    };
    let (header_len, content_len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let n = usize::from(first & 0x7f);
        // 0x80 is BER's indefinite length; more than 8 length bytes is not a length at all.
        if n == 0 || n > 8 {
            return false;
        }
        let Some(len_bytes) = rest.get(..n) else {
            return true;
        };
        let len = len_bytes
            .iter()
            .fold(0u64, |acc, &b| acc.wrapping_shl(8) | u64::from(b));
        (2 + n, usize::try_from(len).unwrap_or(usize::MAX))
    };
    header_len.saturating_add(content_len) > der.len()
}

fn add_general_name(info: &mut CertInfo, name: &GeneralName<'_>) {
    match name {
        GeneralName::DNSName(s) => info.san_dns.push((*s).to_string()),
        GeneralName::URI(s) => info.san_uri.push((*s).to_string()),
        GeneralName::RFC822Name(s) => info.san_email.push((*s).to_string()),
        GeneralName::IPAddress(bytes) => info.san_ip.push(ip_to_string(bytes)),
        // x509-parser gives up on IA5 strings that are not UTF-8; the lossy text still tells
        // the user which identity was presented, with U+FFFD marking the bad bytes.
        GeneralName::Invalid(tag, data) => {
            let text = String::from_utf8_lossy(data).into_owned();
            match tag.0 {
                1 => info.san_email.push(text),
                2 => info.san_dns.push(text),
                6 => info.san_uri.push(text),
                _ => {}
            }
        }
        _ => {}
    }
}

/// 4 and 16 bytes are addresses; other lengths (address+mask belongs in name constraints, not
/// SANs) are shown as hex rather than dropped.
fn ip_to_string(bytes: &[u8]) -> String {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        Ipv4Addr::from(v4).to_string()
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        Ipv6Addr::from(v6).to_string()
    } else {
        hex(bytes, ":")
    }
}

fn name_to_string(name: &X509Name<'_>) -> String {
    // x509-parser fails the whole name when one attribute is not valid UTF-8; fall back to the
    // same layout with lossy values so the other attributes are still shown.
    name.to_string_with_registry(oid_registry()).unwrap_or_else(|_| {
        name.iter_rdn()
            .map(|rdn| {
                rdn.iter()
                    .map(|attr| {
                        let key = oid2abbrev(attr.attr_type(), oid_registry())
                            .map(str::to_string)
                            .unwrap_or_else(|_| attr.attr_type().to_id_string());
                        format!("{key}={}", lossy_value(attr.attr_value()))
                    })
                    .collect::<Vec<_>>()
                    .join(" + ")
            })
            .collect::<Vec<_>>()
            .join(", ")
    })
}

fn lossy_value(value: &Any<'_>) -> String {
    match value.tag() {
        Tag::BmpString => {
            let units: Vec<u16> = value
                .data
                .chunks(2)
                .map(|c| match c {
                    [hi, lo] => u16::from_be_bytes([*hi, *lo]),
                    _ => 0xfffd,
                })
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(value.data).into_owned(),
    }
}

fn hex(bytes: &[u8], sep: &str) -> String {
    let mut out = String::with_capacity(bytes.len() * (2 + sep.len()));
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// RFC 3339 UTC to the second, e.g. "2026-11-22T08:00:00Z". Through a civil date-time, not a
/// `jiff::Timestamp`: a timestamp stops at 9999-12-30T22:00Z, and RFC 5280's "no expiry"
/// notAfter is 9999-12-31T23:59:59Z. A GeneralizedTime with a UTC offset can fall just outside
/// years 0-9999 (RFC 5280 forbids offsets); such a time is clamped to the civil range.
fn rfc3339(t: &ASN1Time) -> String {
    const EPOCH: jiff::civil::DateTime = jiff::civil::DateTime::constant(1970, 1, 1, 0, 0, 0, 0);
    let secs = t.timestamp();
    let at = jiff::Span::new()
        .try_seconds(secs)
        .and_then(|s| EPOCH.checked_add(s))
        .unwrap_or(if secs < 0 {
            jiff::civil::DateTime::MIN
        } else {
            jiff::civil::DateTime::MAX
        });
    // Precision 0: whole seconds, as X.509 times have.
    format!("{at:.0}Z")
}

fn public_key_name(spki: &SubjectPublicKeyInfo<'_>) -> String {
    let oid = spki.algorithm.algorithm.to_id_string();
    match oid.as_str() {
        "1.2.840.113549.1.1.1" => with_bits("RSA", rsa_bits(spki)),
        "1.2.840.113549.1.1.10" => with_bits("RSA-PSS", rsa_bits(spki)),
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|c| c.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => "EC P-256".to_string(),
                Some("1.3.132.0.34") => "EC P-384".to_string(),
                Some("1.3.132.0.35") => "EC P-521".to_string(),
                Some("1.3.132.0.10") => "EC secp256k1".to_string(),
                Some(other) => format!("EC {other}"),
                // Explicit curve parameters instead of a named curve.
                None => "EC".to_string(),
            }
        }
        "1.3.101.112" => "Ed25519".to_string(),
        "1.3.101.113" => "Ed448".to_string(),
        "1.2.840.10040.4.1" => {
            let bits = match spki.parsed() {
                Ok(PublicKey::DSA(y)) => Some(unsigned_bits(y)),
                _ => None,
            };
            with_bits("DSA", bits)
        }
        _ => oid,
    }
}

fn rsa_bits(spki: &SubjectPublicKeyInfo<'_>) -> Option<usize> {
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => Some(unsigned_bits(rsa.modulus)),
        _ => None,
    }
}

/// Bit length of a big-endian unsigned integer. x509-parser's `key_size()` assumes a leading
/// zero byte is always there, which under-counts moduli whose top bit is clear.
fn unsigned_bits(be: &[u8]) -> usize {
    let significant = match be.iter().position(|&b| b != 0) {
        Some(first) => be.get(first..).unwrap_or_default(),
        None => return 0,
    };
    match significant.first() {
        Some(&top) => (significant.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
        None => 0,
    }
}

fn with_bits(name: &str, bits: Option<usize>) -> String {
    match bits {
        Some(bits) if bits > 0 => format!("{name} {bits}"),
        _ => name.to_string(),
    }
}

fn signature_algorithm_name(alg: &AlgorithmIdentifier<'_>) -> String {
    let oid = alg.algorithm.to_id_string();
    let name = match oid.as_str() {
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.14" => "sha224WithRSAEncryption",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.1" => "ecdsa-with-SHA224",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        "1.2.840.10040.4.3" => "dsa-with-SHA1",
        "2.16.840.1.101.3.4.3.2" => "dsa-with-SHA256",
        _ => return oid,
    };
    name.to_string()
}

/// A SPIFFE ID split into parts. `namespace` and `service_account` are filled only for the
/// Istio/Kubernetes path form `/ns/<ns>/sa/<sa>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpiffeId {
    pub trust_domain: String,
    /// Starts with "/" or is empty.
    pub path: String,
    pub namespace: Option<String>,
    pub service_account: Option<String>,
}

/// Splits `spiffe://<trust-domain><path>`. Returns None when the scheme is not spiffe or the
/// trust domain is empty; the scheme is matched case-insensitively as URI schemes are, but the
/// SPIFFE spec's character rules are not enforced, because a non-conforming ID seen on the
/// wire is still worth showing.
pub fn parse_spiffe_id(uri: &str) -> Option<SpiffeId> {
    let scheme = uri.get(..9)?;
    if !scheme.eq_ignore_ascii_case("spiffe://") {
        return None;
    }
    let rest = uri.get(9..)?;
    let (trust_domain, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    if trust_domain.is_empty() {
        return None;
    }
    let (namespace, service_account) = match path.split('/').collect::<Vec<_>>().as_slice() {
        ["", "ns", ns, "sa", sa] if !ns.is_empty() && !sa.is_empty() => {
            (Some((*ns).to_string()), Some((*sa).to_string()))
        }
        _ => (None, None),
    };
    Some(SpiffeId {
        trust_domain: trust_domain.to_string(),
        path: path.to_string(),
        namespace,
        service_account,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_CA: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/certs/rsa_ca.der"));
    const EC_P256: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/certs/ec_p256.der"));
    const SPIFFE_SAN: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/certs/spiffe_san.der"));
    const IP_SAN: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/certs/ip_san.der"));
    const ED25519: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/certs/ed25519.der"));
    const MLDSA65: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/certs/mldsa65.der"));

    #[test]
    fn rsa_root_ca() {
        let info = parse_certificate(RSA_CA).unwrap();
        assert_eq!(
            info,
            CertInfo {
                subject: "O=mtlscope, CN=mtlscope test root CA".into(),
                issuer: "O=mtlscope, CN=mtlscope test root CA".into(),
                serial: "10:01".into(),
                not_before: "2026-11-22T08:21:14Z".into(),
                not_after: "2036-11-19T08:21:14Z".into(),
                san_dns: vec![],
                san_ip: vec![],
                san_uri: vec![],
                san_email: vec![],
                spiffe_id: None,
                spiffe: None,
                sha256: "2997053995788fb82cd8de707685044c39486edf519a364298921ba234b1cf44".into(),
                public_key: "RSA 2048".into(),
                signature_algorithm: "sha256WithRSAEncryption".into(),
                is_ca: true,
            }
        );
        assert_eq!(info.identity(), "mtlscope test root CA");
    }

    #[test]
    fn ecdsa_p256_self_signed() {
        let info = parse_certificate(EC_P256).unwrap();
        assert_eq!(info.subject, "CN=ec-leaf.example");
        assert_eq!(info.issuer, "CN=ec-leaf.example");
        assert_eq!(info.serial, "20:02");
        assert_eq!(info.public_key, "EC P-256");
        assert_eq!(info.signature_algorithm, "ecdsa-with-SHA256");
        assert_eq!(
            info.sha256,
            "33138b77f4f1f84e6fc4092f95f7ce6b991c3ddeb5ac96c1a7ef7640d6d783a2"
        );
        assert!(!info.is_ca, "CA:FALSE must not read as a CA");
        assert_eq!(info.identity(), "ec-leaf.example");
    }

    #[test]
    fn spiffe_and_dns_sans() {
        let info = parse_certificate(SPIFFE_SAN).unwrap();
        let id = "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews";
        assert_eq!(info.subject, "O=cluster.local");
        assert_eq!(info.issuer, "O=mtlscope, CN=mtlscope test root CA");
        assert_eq!(info.san_uri, vec![id]);
        assert_eq!(info.san_dns, vec!["reviews.bookinfo.svc.cluster.local"]);
        assert_eq!(info.spiffe_id.as_deref(), Some(id));
        assert_eq!(info.public_key, "EC P-256");
        assert_eq!(info.signature_algorithm, "sha256WithRSAEncryption");
        assert_eq!(info.identity(), id);
        let parsed = parse_spiffe_id(info.spiffe_id.as_deref().unwrap()).unwrap();
        assert_eq!(parsed.namespace.as_deref(), Some("bookinfo"));
        assert_eq!(parsed.service_account.as_deref(), Some("bookinfo-reviews"));
    }

    #[test]
    fn ip_email_dns_sans_and_p384() {
        let info = parse_certificate(IP_SAN).unwrap();
        assert_eq!(info.san_ip, vec!["10.1.2.3", "2001:db8::1"]);
        assert_eq!(info.san_dns, vec!["db.example"]);
        assert_eq!(info.san_email, vec!["ops@example.com"]);
        assert!(info.san_uri.is_empty());
        assert_eq!(info.spiffe_id, None);
        assert_eq!(info.public_key, "EC P-384");
        assert_eq!(info.signature_algorithm, "sha384WithRSAEncryption");
        assert_eq!(
            info.sha256,
            "19ed55f1149b43dea14b975e1ca1809cd45f5b3f52724ddeed35659f563def14"
        );
        // DNS SAN beats the CN even though the CN is set.
        assert_eq!(info.identity(), "db.example");
    }

    #[test]
    fn ed25519() {
        let info = parse_certificate(ED25519).unwrap();
        assert_eq!(info.public_key, "Ed25519");
        assert_eq!(info.signature_algorithm, "Ed25519");
    }

    #[test]
    fn unknown_algorithms_reported_by_oid() {
        let info = parse_certificate(MLDSA65).unwrap();
        assert_eq!(info.public_key, "2.16.840.1.101.3.4.3.18");
        assert_eq!(info.signature_algorithm, "2.16.840.1.101.3.4.3.18");
        assert_eq!(info.subject, "CN=pq.example");
        // UTCTime and GeneralizedTime both end up as RFC 3339 UTC.
        assert_eq!(info.not_before, "2026-11-22T08:00:00Z");
        assert_eq!(info.not_after, "2099-12-31T23:59:59Z");
        assert_eq!(info.serial, "60:06");
        assert_eq!(
            info.sha256,
            "caf72ec395dda9f652ee6313feef699d843747356b159c5af37b8ed1be9e9878"
        );
    }

    #[test]
    fn garbage_is_an_error_and_still_fingerprintable() {
        let garbage = b"this is not a certificate at all";
        let err = parse_certificate(garbage).unwrap_err();
        assert!(matches!(err, CertError::Malformed { len: 32, .. }), "{err:?}");
        assert!(err.to_string().contains("32 bytes"), "{err}");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(matches!(parse_certificate(&[]), Err(CertError::Empty)));
    }

    #[test]
    fn truncated_der_at_every_length() {
        for cut in 1..SPIFFE_SAN.len() {
            let head = SPIFFE_SAN.get(..cut).unwrap();
            match parse_certificate(head) {
                Err(CertError::Truncated { len }) => assert_eq!(len, cut),
                other => panic!("cut at {cut}: expected Truncated, got {other:?}"),
            }
        }
    }

    #[test]
    fn trailing_bytes_do_not_change_the_fingerprint() {
        let mut padded = EC_P256.to_vec();
        padded.extend_from_slice(&[0, 0, 0]);
        let info = parse_certificate(&padded).unwrap();
        assert_eq!(info.sha256, sha256_hex(EC_P256));
    }

    #[test]
    fn corrupted_bytes_never_panic() {
        for cert in [RSA_CA, EC_P256, SPIFFE_SAN, IP_SAN, MLDSA65] {
            for i in 0..cert.len() {
                let mut bad = cert.to_vec();
                if let Some(b) = bad.get_mut(i) {
                    *b ^= 0xa5;
                }
                let _ = parse_certificate(&bad);
            }
        }
    }

    #[test]
    fn invalid_utf8_in_name_is_shown_lossily() {
        let mut bad = EC_P256.to_vec();
        let needle = b"ec-leaf.example";
        let mut patched = 0;
        for i in 0..bad.len() - needle.len() {
            if &bad[i..i + needle.len()] == needle {
                bad[i] = 0xff;
                patched += 1;
            }
        }
        assert_eq!(patched, 2, "subject and issuer");
        let info = parse_certificate(&bad).unwrap();
        assert_eq!(info.subject, "CN=\u{fffd}c-leaf.example");
        assert_eq!(info.identity(), "\u{fffd}c-leaf.example");
    }

    #[test]
    fn identity_fallbacks() {
        let mut info = parse_certificate(EC_P256).unwrap();
        info.subject = "O=acme + OU=x, CN=svc".into();
        assert_eq!(info.identity(), "svc");
        info.subject = "O=acme".into();
        assert_eq!(info.identity(), "O=acme");
        info.san_dns = vec!["dns.example".into()];
        assert_eq!(info.identity(), "dns.example");
        info.san_uri = vec!["https://a.example".into(), "spiffe://td/x".into()];
        assert_eq!(info.identity(), "https://a.example");
        info.spiffe_id = Some("spiffe://td/x".into());
        assert_eq!(info.identity(), "spiffe://td/x");
    }

    #[test]
    fn rsa_bit_length_without_sign_byte() {
        assert_eq!(unsigned_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(unsigned_bits(&[0x7f, 0xff]), 15);
        assert_eq!(unsigned_bits(&[0x00]), 0);
        assert_eq!(unsigned_bits(&[]), 0);
    }

    #[test]
    fn rfc3339_from_the_first_to_the_last_second_of_years_0_to_9999() {
        let at = |secs: i64| rfc3339(&ASN1Time::from_timestamp(secs).unwrap());
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(-62_167_219_200), "0000-01-01T00:00:00Z");
        assert_eq!(at(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn spiffe_ids() {
        assert_eq!(
            parse_spiffe_id("spiffe://cluster.local/ns/default/sa/sleep"),
            Some(SpiffeId {
                trust_domain: "cluster.local".into(),
                path: "/ns/default/sa/sleep".into(),
                namespace: Some("default".into()),
                service_account: Some("sleep".into()),
            })
        );
        let other = parse_spiffe_id("spiffe://example.org/payments/web").unwrap();
        assert_eq!(other.trust_domain, "example.org");
        assert_eq!(other.path, "/payments/web");
        assert_eq!(other.namespace, None);
        assert_eq!(parse_spiffe_id("spiffe://td").map(|s| s.path), Some(String::new()));
        assert_eq!(parse_spiffe_id("spiffe:///ns/a/sa/b"), None);
        assert_eq!(parse_spiffe_id("https://example.org/ns/a/sa/b"), None);
        assert_eq!(parse_spiffe_id("spiffe:/"), None);
        assert_eq!(parse_spiffe_id("spiffé://x"), None);
        assert_eq!(parse_spiffe_id("").map(|s| s.path), None);
    }

    #[test]
    fn serializes_with_field_names() {
        let info = parse_certificate(SPIFFE_SAN).unwrap();
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["public_key"], "EC P-256");
        assert_eq!(json["is_ca"], false);
    }
}
