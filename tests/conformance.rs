//! Conformance against the public Zeek corpus in `../shared/corpus/public/`, read in place.
//! For every TLS connection a Zeek baseline logs (the `expected_facts` column of MANIFEST.tsv),
//! mtlscope must agree on the version, SNI, established, resumed and whether the client sent a
//! certificate. Every file in the corpus must be analyzed without a panic.
//! When the corpus is absent (a fresh clone without `shared/`), the tests say so and pass.

use mtlscope::pipeline::engine::Config;
use mtlscope::pipeline::record::FlowReport;
use mtlscope::pipeline::runner::{analyze_files, InputErrors};
use mtlscope::pipeline::verdict::{Handshake, Kind};
use std::path::{Path, PathBuf};

fn corpus() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/public");
    if dir.join("MANIFEST.tsv").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: {} not found; conformance tests need shared/ beside the checkout",
            dir.display()
        );
        None
    }
}

/// One connection as a Zeek ssl.log line states it.
#[derive(Debug)]
struct ZeekConn {
    client: (String, u16),
    server: (String, u16),
    version: Option<String>,
    sni: Option<String>,
    resumed: Option<bool>,
    established: Option<bool>,
    client_cert: Option<bool>,
}

fn split_endpoint(s: &str) -> (String, u16) {
    let (ip, port) = s.rsplit_once(':').expect("ip:port");
    (ip.to_string(), port.parse().expect("port"))
}

fn field<'a>(words: &[&'a str], key: &str) -> Option<&'a str> {
    words
        .iter()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

fn flag(v: Option<&str>) -> Option<bool> {
    match v {
        Some("T") => Some(true),
        Some("F") => Some(false),
        _ => None,
    }
}

fn parse_facts(facts: &str) -> Vec<ZeekConn> {
    let body = facts.split_once("] ").map_or(facts, |(_, b)| b);
    body.split(" ;; ")
        .filter_map(|conn| {
            let words: Vec<&str> = conn.split_whitespace().collect();
            let (c, s) = words.first()?.split_once("->")?;
            field(&words, "ver")?;
            let version = match field(&words, "ver")? {
                "-" | "n/a" => None,
                v => Some(v.replace("TLSv1", "TLS 1.").replace("DTLSv1", "DTLS 1.")),
            };
            Some(ZeekConn {
                client: split_endpoint(c),
                server: split_endpoint(s),
                version,
                sni: field(&words, "sni").filter(|s| *s != "-").map(str::to_string),
                resumed: flag(field(&words, "resumed")),
                established: flag(field(&words, "established")),
                client_cert: match field(&words, "client_cert_chain") {
                    Some("NONEMPTY") => Some(true),
                    Some("empty") => Some(false),
                    _ => None,
                },
            })
        })
        .collect()
}

fn manifest(dir: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(dir.join("MANIFEST.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            Some((cols.first()?.to_string(), cols.get(6)?.to_string()))
        })
        .collect()
}

fn analyze(path: &Path) -> (Vec<FlowReport>, InputErrors) {
    let (flows, summary) = analyze_files(&[path.to_string_lossy().into_owned()], None, Config::default()).unwrap();
    (flows, summary.errors)
}

fn find<'a>(flows: &'a [FlowReport], z: &ZeekConn) -> Option<&'a FlowReport> {
    flows.iter().find(|f| {
        f.client.ip.to_string() == z.client.0
            && f.client.port == z.client.1
            && f.server.ip.to_string() == z.server.0
            && f.server.port == z.server.1
    })
}

/// Compare one Zeek-logged connection; returns the disagreements.
fn compare(file: &str, z: &ZeekConn, f: &FlowReport) -> Vec<String> {
    let mut diffs = Vec::new();
    let v = &f.verdict;
    let tls = v.tls.as_ref();
    let version = tls.and_then(|t| t.version.clone());
    if version != z.version {
        diffs.push(format!("{file}: version: zeek {:?}, mtlscope {:?}", z.version, version));
    }
    let sni = tls.and_then(|t| t.sni.clone());
    if sni != z.sni {
        diffs.push(format!("{file}: sni: zeek {:?}, mtlscope {:?}", z.sni, sni));
    }
    if let Some(r) = z.resumed {
        if r != v.resumed {
            diffs.push(format!("{file}: resumed: zeek {r}, mtlscope {}", v.resumed));
        }
    }
    if let Some(e) = z.established {
        let ours = v.handshake == Handshake::Complete;
        if e != ours {
            diffs.push(format!(
                "{file}: established: zeek {e}, mtlscope handshake {:?}",
                v.handshake
            ));
        }
    }
    // Zeek cannot see TLS 1.3 certificates: its "empty" there means "not observed".
    let tls13 = z.version.as_deref() == Some("TLS 1.3");
    if let (Some(cert), false) = (z.client_cert, tls13) {
        let ours = v.verdict == Kind::Mtls;
        if cert != ours {
            diffs.push(format!(
                "{file}: client certificate: zeek {cert}, mtlscope verdict {:?}",
                v.verdict
            ));
        }
    }
    diffs
}

#[test]
fn zeek_baselines_agree() {
    let Some(dir) = corpus() else { return };
    let mut diffs = Vec::new();
    let mut checked = 0;
    for (file, facts) in manifest(&dir) {
        let conns = parse_facts(&facts);
        if conns.is_empty()
            || conns
                .iter()
                .all(|c| c.version.as_deref().is_some_and(|v| v.starts_with("DTLS")))
        {
            continue; // no ssl.log line, or DTLS over UDP (mtlscope reads TCP)
        }
        let (flows, errors) = analyze(&dir.join(&file));
        assert!(errors.is_empty(), "{file}: {errors:?}");
        for z in &conns {
            match find(&flows, z) {
                Some(f) => {
                    diffs.extend(compare(&file, z, f));
                    checked += 1;
                    eprintln!(
                        "{file}: {}:{} -> {}:{}: {} ({:?}) {:?}",
                        z.client.0,
                        z.client.1,
                        z.server.0,
                        z.server.1,
                        f.verdict.verdict.name(),
                        f.verdict.confidence,
                        f.verdict.evidence.first()
                    );
                }
                None => diffs.push(format!("{file}: connection {:?} -> {:?} not found", z.client, z.server)),
            }
        }
    }
    assert!(checked >= 20, "only {checked} connections checked");
    assert!(diffs.is_empty(), "{} disagreements:\n{}", diffs.len(), diffs.join("\n"));
}

/// `zeek__client-certificate.pcap` has no ssl.log baseline; MANIFEST.tsv states its facts from a
/// tshark dissection: TLS 1.2, SNI certauth.idrix.fr, the client sends a 3423-byte Certificate.
#[test]
fn client_certificate_trace_is_mtls() {
    let Some(dir) = corpus() else { return };
    let (flows, errors) = analyze(&dir.join("zeek__client-certificate.pcap"));
    assert!(errors.is_empty(), "{errors:?}");
    let f = flows
        .iter()
        .find(|f| f.client.port == 49480 && f.server.port == 443)
        .expect("192.168.0.64:49480 -> 54.36.191.227:443");
    let tls = f.verdict.tls.as_ref().unwrap();
    assert_eq!(f.verdict.verdict, Kind::Mtls);
    assert_eq!(tls.version.as_deref(), Some("TLS 1.2"));
    assert_eq!(tls.sni.as_deref(), Some("certauth.idrix.fr"));
    assert_eq!(tls.client_cert_requested, Some(true));
}

#[test]
fn no_corpus_file_panics() {
    let Some(dir) = corpus() else { return };
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && path.file_name().unwrap().to_string_lossy().starts_with("zeek__") {
            let _ = analyze(&path);
            n += 1;
        }
    }
    assert!(n >= 20, "only {n} corpus files");
}
