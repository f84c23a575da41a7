//! TLS 1.3 with key logs, through the command line (docs/keylogs.md): `--keylog-file` on
//! `analyze` and `check`, a pcapng Decryption Secrets Block without any flag, bad key log lines
//! named by line number and skipped, a wrong key said for its connection, and no secret ever
//! printed. The captures and their key logs are real (captures/keylog.sh).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn mtlscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(args)
        .current_dir(root())
        .env("CI", "true")
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every secret of a key log, as it is written there (hex).
fn secrets(keylog: &Path) -> Vec<String> {
    std::fs::read_to_string(keylog)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_lowercase))
        .collect()
}

fn assert_no_secret(out: &Output, keylog: &Path) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .to_lowercase();
    for s in secrets(keylog) {
        // Also no half of one (a secret cut in a message).
        assert!(
            !text.contains(&s[..s.len() / 2]),
            "a secret of {} was printed",
            keylog.display()
        );
    }
}

fn expected_sha(name: &str) -> String {
    let e: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join(format!("captures/{name}.expected.json"))).unwrap())
            .unwrap();
    e["connections"][0]["client_cert_sha256"].as_str().unwrap().to_string()
}

#[test]
fn the_key_log_gives_a_certain_verdict_and_the_client_certificate() {
    let name = "openssl-tls13-keylog-mtls-aes128";
    let keylog = root().join(format!("captures/{name}.keylog"));
    let pcap = format!("captures/{name}.pcap");
    let out = mtlscope(&[
        "analyze",
        "-o",
        "json",
        "--keylog-file",
        keylog.to_str().unwrap(),
        &pcap,
    ]);
    assert_no_secret(&out, &keylog);
    let d = json(&out);
    let f = &d["flows"][0];
    assert_eq!(
        (f["verdict"].as_str(), f["confidence"].as_str()),
        (Some("mtls"), Some("certain"))
    );
    assert_eq!(f["client_identity"], "client.test");
    let cert = &f["tls"]["client_certificate"];
    assert_eq!(cert["sha256"].as_str().unwrap(), expected_sha(name));
    assert_eq!(cert["subject"], "CN=client.test");
    assert_eq!(f["tls"]["keylog"]["status"], "decrypted");
    assert!(f["evidence"][0]
        .as_str()
        .unwrap()
        .starts_with("client certificate decrypted with the key log: client.test"));
    assert_eq!(d["summary"]["keylog"]["decrypted"], 1);
    // Without the key log: the inference, as before.
    let d = json(&mtlscope(&["analyze", "-o", "json", &pcap]));
    assert_eq!(d["flows"][0]["confidence"], "inferred");
    assert!(d["flows"][0]["tls"].get("keylog").is_none() && d["summary"].get("keylog").is_none());
}

#[test]
fn a_pcapng_with_a_decryption_secrets_block_needs_no_flag() {
    let d = json(&mtlscope(&[
        "analyze",
        "-o",
        "json",
        "captures/openssl-tls13-keylog-dsb-mtls.pcapng",
    ]));
    let f = &d["flows"][0];
    assert_eq!(
        (f["verdict"].as_str(), f["confidence"].as_str()),
        (Some("mtls"), Some("certain"))
    );
    assert_eq!(
        f["tls"]["client_certificate"]["sha256"].as_str().unwrap(),
        expected_sha("openssl-tls13-keylog-dsb-mtls")
    );
}

#[test]
fn bad_lines_are_named_and_skipped_and_the_rest_is_used() {
    let name = "nginx-curl-tls13-keylog";
    let real = root().join(format!("captures/{name}.keylog"));
    let dir = std::env::temp_dir().join(format!("mtlscope-keylog-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad: PathBuf = dir.join("bad.keylog");
    let text = std::fs::read_to_string(&real).unwrap();
    let first = text.lines().next().unwrap().to_string();
    // The first line again with its secret cut, a line of nonsense, then the real ones.
    let cut = &first[..first.len() - 10];
    std::fs::write(&bad, format!("{cut}\nnot a key log line\n{text}")).unwrap();
    let out = mtlscope(&[
        "analyze",
        "-o",
        "json",
        "--keylog-file",
        bad.to_str().unwrap(),
        &format!("captures/{name}.pcap"),
    ]);
    assert_no_secret(&out, &real);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let shown = bad.display().to_string();
    assert!(stderr.contains(&format!("{shown}:1: ")), "{stderr}");
    assert!(
        stderr.contains(&format!("{shown}:2: not LABEL CLIENT_RANDOM SECRET")),
        "{stderr}"
    );
    let d = json(&out);
    assert_eq!(d["summary"]["keylog"]["warnings"].as_array().unwrap().len(), 2);
    let verdicts: Vec<_> = d["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["verdict"].clone())
        .collect();
    assert_eq!(verdicts, ["mtls", "tls"]);
    assert!(d["flows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["confidence"] == "certain"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_wrong_key_is_said_for_its_connection_and_the_inference_stands() {
    let name = "openssl-tls13-keylog-wrong-key";
    let keylog = root().join(format!("captures/{name}.keylog"));
    let out = mtlscope(&[
        "analyze",
        "-o",
        "json",
        "--keylog-file",
        keylog.to_str().unwrap(),
        &format!("captures/{name}.pcap"),
    ]);
    assert_no_secret(&out, &keylog);
    let d = json(&out);
    let f = &d["flows"][0];
    assert_eq!(
        (f["verdict"].as_str(), f["confidence"].as_str()),
        (Some("mtls"), Some("inferred"))
    );
    let ev: Vec<&str> = f["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        ev.iter()
            .any(|e| e.starts_with("wrong key log entry for this connection (record 1 failed to authenticate)")),
        "{ev:?}"
    );
    assert_eq!(f["tls"]["keylog"]["status"], "wrong-key");
    assert_eq!(d["summary"]["keylog"]["wrong_key"], 1);
}

#[test]
fn check_evidence_certain_passes_a_decrypted_mtls_verdict() {
    let name = "go-tls13-keylog-mtls-rsa";
    let keylog = format!("captures/{name}.keylog");
    let pcap = format!("captures/{name}.pcap");
    let args = ["check", "--require", "mtls", "--evidence", "certain", "--no-progress"];
    let with = mtlscope(&[&args[..], &["--keylog-file", &keylog, &pcap]].concat());
    assert_eq!(with.status.code(), Some(0), "{}", String::from_utf8_lossy(&with.stdout));
    // Inferred from lengths, the same connection does not meet --evidence certain.
    let without = mtlscope(&[&args[..], &[pcap.as_str()]].concat());
    assert_eq!(
        without.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&without.stdout)
    );
}

#[test]
fn an_unreadable_key_log_is_an_error_that_names_it() {
    let out = mtlscope(&[
        "analyze",
        "--keylog-file",
        "captures/no-such.keylog",
        "captures/openssl-tls13-mtls-rsa.pcap",
    ]);
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--keylog-file captures/no-such.keylog: cannot read the key log"),
        "{stderr}"
    );
}
