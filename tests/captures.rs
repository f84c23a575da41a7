//! Every capture in `captures/` gives exactly the result its `.expected.json` states: the
//! generator wrote those files from what each scenario did, not from mtlscope's output.
//! The whole set of classified fields is compared per connection, in order of first packet.

use mtlscope::pipeline::engine::Config;
use mtlscope::pipeline::keylog::KeyLog;
use mtlscope::pipeline::record::FlowReport;
use mtlscope::pipeline::runner::analyze_files;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("captures")
}

/// The configuration a capture is analyzed with: its key log when `NAME.keylog` is beside it,
/// as `mtlscope analyze NAME.pcap --keylog-file NAME.keylog` reads it (a pcapng with a
/// Decryption Secrets Block needs none).
fn config_for(capture: &Path) -> Config {
    let keylog = capture.with_extension("keylog");
    let mut cfg = Config::default();
    if keylog.exists() {
        let log = KeyLog::new();
        log.load_file(&keylog, false).unwrap();
        assert_eq!(log.take_warnings(), (vec![], 0), "{}", keylog.display());
        cfg.keylog = Some(Arc::new(log));
    }
    cfg
}

/// The fields an expected file states, taken from mtlscope's report; `want` is the expected
/// connection, which states the client certificate's SHA-256 for key-logged captures.
fn observed(f: &FlowReport, want: Option<&Value>) -> Value {
    let v = &f.verdict;
    let tls = v.tls.as_ref();
    let mut got = json!({
        "client": f.client.ip.to_string(),
        "server": f.server.to_string(),
        "verdict": v.verdict,
        "confidence": v.confidence,
        "tls_version": tls.and_then(|t| t.version.clone()),
        "sni": tls.and_then(|t| t.sni.clone()),
        "alpn": tls.and_then(|t| t.alpn.clone()),
        "resumed": v.resumed,
        "client_cert_requested": tls.and_then(|t| t.client_cert_requested),
        "handshake": v.handshake,
        "client_identity": v.client_identity,
        "server_identity": v.server_identity,
        "plaintext_protocol": v.plaintext.as_ref().map(|p| p.info.protocol),
    });
    if want.is_some_and(|w| w.get("client_cert_sha256").is_some()) {
        let sha = tls
            .and_then(|t| t.client_certificate.as_ref())
            .map(|c| c.sha256.clone());
        got["client_cert_sha256"] = json!(sha);
    }
    got
}

#[test]
fn every_capture_gives_its_expected_result() {
    let mut expected_files: Vec<PathBuf> = std::fs::read_dir(captures_dir())
        .expect("captures/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".expected.json"))
        .collect();
    expected_files.sort();
    assert!(
        expected_files.len() >= 20,
        "only {} expected files",
        expected_files.len()
    );
    let mut failures = Vec::new();
    for path in &expected_files {
        let expected: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let capture = captures_dir().join(expected["capture"].as_str().expect("capture name"));
        let (flows, summary) =
            analyze_files(&[capture.to_string_lossy().into_owned()], None, config_for(&capture)).unwrap();
        assert!(summary.errors.is_empty(), "{}: {:?}", capture.display(), summary.errors);
        let want = expected["connections"].as_array().expect("connections");
        let got: Vec<Value> = flows
            .iter()
            .enumerate()
            .map(|(i, f)| observed(f, want.get(i)))
            .collect();
        if &got != want {
            failures.push(format!(
                "{}:\n  expected {}\n  got      {}",
                capture.file_name().unwrap().to_string_lossy(),
                serde_json::to_string(want).unwrap(),
                serde_json::to_string(&got).unwrap()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} captures differ:\n{}",
        failures.len(),
        expected_files.len(),
        failures.join("\n")
    );
}

/// The whole result of every capture — every field of every connection (verdict, confidence,
/// handshake, evidence, the TLS 1.3 lengths, certificates...) and the summary — is the JSON
/// document `mtlscope analyze captures/FILE -o json` writes, compared byte for byte with
/// `tests/golden/captures/FILE.json`. The expected files above are the independent truth for
/// the fields a scenario decides; this catches a change in any other field. After a change
/// that is meant, `SNAPSHOTS=overwrite cargo test --test captures` rewrites the golden files,
/// and the diff is reviewed like code.
#[test]
fn every_capture_gives_its_whole_golden_result() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/captures");
    let mut captures: Vec<PathBuf> = std::fs::read_dir(captures_dir())
        .expect("captures/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.to_string_lossy();
            name.ends_with(".pcap") || name.ends_with(".pcapng")
        })
        .collect();
    captures.sort();
    assert!(captures.len() >= 20, "only {} captures", captures.len());
    for capture in &captures {
        let name = capture.file_name().unwrap().to_string_lossy().into_owned();
        // Named relative to the package root (the tests' working directory), as
        // `mtlscope analyze captures/NAME` names it: each connection's `file` says so.
        let (flows, summary) = analyze_files(&[format!("captures/{name}")], None, config_for(capture)).unwrap();
        let mut doc = Vec::new();
        mtlscope::report::write_json(&mut doc, &flows, &summary).unwrap();
        snapbox::Assert::new()
            .action_env(snapbox::assert::DEFAULT_ACTION_ENV)
            .eq(
                snapbox::Data::text(String::from_utf8(doc).unwrap()).raw(),
                snapbox::Data::read_from(&golden.join(format!("{name}.json")), None).raw(),
            );
    }
}
