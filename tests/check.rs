//! `mtlscope check` end to end on the project's captures: exit statuses, rules files, JSON,
//! JUnit XML and GitHub annotations.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn capture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .arg("check")
        .args(args)
        .env("CI", "true")
        .env_remove("GITHUB_ACTIONS")
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mtlscope-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn plaintext_fails_require_mtls() {
    let o = check(&["--require", "mtls", &capture("plaintext-http.pcap")]);
    assert_eq!(o.status.code(), Some(1));
    let s = out(&o);
    assert!(
        s.contains("FAIL [every connection (--require)] 10.99.0.1:")
            && s.contains("-> 10.99.0.2:8080 plaintext: requires mtls"),
        "{s}"
    );
    assert!(
        s.lines()
            .last()
            .unwrap()
            .starts_with("FAIL: 1 connection, 1 rule, 1 violation"),
        "{s}"
    );
}

#[test]
fn mtls_captures_pass_require_mtls() {
    let o = check(&[
        "--require",
        "mtls",
        &capture("openssl-tls12-mtls-rsa.pcap"),
        &capture("openssl-tls13-mtls-ecdsa.pcap"),
        &capture("istio-like-tls13-mtls-spiffe.pcap"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("(2 passed on inferred verdicts)"), "{}", out(&o));
}

#[test]
fn evidence_certain_refuses_tls13_inference() {
    let o = check(&[
        "--require",
        "mtls",
        "--evidence",
        "certain",
        &capture("openssl-tls13-mtls-rsa.pcap"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).contains("only inferred"), "{}", out(&o));
}

#[test]
fn empty_check_fails_unless_allowed() {
    let f = capture("plaintext-http.pcap");
    let o = check(&["--require", "mtls", "--exclude", "port 8080", &f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).contains("nothing to check"));
    let o = check(&["--require", "mtls", "--exclude", "port 8080", "--allow-empty", &f]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn min_flows() {
    let f = capture("openssl-tls12-mtls-rsa.pcap");
    assert_eq!(
        check(&["--require", "mtls", "--min-flows", "1", &f]).status.code(),
        Some(0)
    );
    let o = check(&["--require", "mtls", "--min-flows", "2", &f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).contains("--min-flows requires 2"));
}

#[test]
fn no_data_connections_are_not_judged() {
    let o = check(&["--require", "mtls", "--allow-empty", &capture("tcp-no-data.pcap")]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("without data not checked"));
}

#[test]
fn rules_file_scopes_and_client_identity() {
    let rules = tmp("rules.yaml");
    std::fs::write(
        &rules,
        r#"rules:
  - name: bookinfo east-west traffic is mutual TLS
    match: { ports: [9080], cidrs: ["10.99.0.0/24"] }
    require: mtls
    client_identity: "spiffe://cluster.local/ns/bookinfo/sa/*"
  - name: web may be plain
    match: { ports: [8080] }
    require: any
"#,
    )
    .unwrap();
    let files = [
        capture("istio-like-tls12-mtls-spiffe.pcap"),
        capture("plaintext-http.pcap"),
    ];
    let o = check(&["--rules", rules.to_str().unwrap(), &files[0], &files[1]]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));

    std::fs::write(
        &rules,
        r#"rules:
  - name: only reviews may call
    match: { ports: [9080] }
    require: mtls
    client_identity: "spiffe://cluster.local/ns/bookinfo/sa/reviews"
"#,
    )
    .unwrap();
    let o = check(&["--rules", rules.to_str().unwrap(), &files[0]]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out(&o).contains("client identity spiffe://cluster.local/ns/bookinfo/sa/productpage does not match"),
        "{}",
        out(&o)
    );
}

/// SNI globs with alternatives (Istio's SNI is `outbound_.PORT_._.HOST`), and an IPv6 network of IPv4-mapped addresses that holds the
/// capture's IPv4 clients.
#[test]
fn rules_file_sni_alternatives_and_mapped_networks() {
    let rules = tmp("sni.yaml");
    std::fs::write(
        &rules,
        r#"rules:
  - name: reviews and ratings are mutual TLS
    match: { sni: "outbound_.*_._.{reviews,ratings}.bookinfo.svc.cluster.local", client_cidrs: ["::ffff:10.99.0.0/120"] }
    require: mtls
  - name: nobody asks for details
    match: { sni: "details.*" }
    require: mtls
"#,
    )
    .unwrap();
    let o = check(&[
        "--rules",
        rules.to_str().unwrap(),
        "--allow-empty",
        &capture("istio-like-tls12-mtls-spiffe.pcap"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let s = out(&o);
    assert!(
        s.contains("rule 'reviews and ratings are mutual TLS' (require mtls): 1 matched, 1 passed, 0 failed"),
        "{s}"
    );
    assert!(
        s.contains("rule 'nobody asks for details' (require mtls): 0 matched"),
        "{s}"
    );
}

#[test]
fn invalid_glob_is_exit_2_naming_rule_and_key() {
    let rules = tmp("bad-glob.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - name: x\n    require: mtls\n    client_identity: \"spiffe://cluster.local/ns/[bookinfo\"\n",
    )
    .unwrap();
    let o = check(&["--rules", rules.to_str().unwrap(), &capture("plaintext-http.pcap")]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("bad-glob.yaml: rule 'x': client_identity: "), "{e}");
}

#[test]
fn invalid_rules_file_is_exit_2_with_line_and_column() {
    let rules = tmp("bad.yaml");
    std::fs::write(&rules, "rules:\n  - name: x\n    require: sometimes\n").unwrap();
    let o = check(&["--rules", rules.to_str().unwrap(), &capture("plaintext-http.pcap")]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("bad.yaml: line 3, column"), "{e}");
}

#[test]
fn unreadable_capture_is_exit_2_even_with_violations() {
    let o = check(&[
        "--require",
        "mtls",
        &capture("plaintext-http.pcap"),
        "/nonexistent.pcap",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn json_and_junit_reports() {
    let junit = tmp("report.xml");
    let o = check(&[
        "--require",
        "tls",
        "-o",
        "json",
        "--junit",
        junit.to_str().unwrap(),
        &capture("nginx-curl-tls12.pcap"),
        &capture("plaintext-http.pcap"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["rules"][0]["matched"], 3);
    assert_eq!(v["rules"][0]["violations"][0]["verdict"], "plaintext");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.starts_with("<?xml"));
    assert_eq!(xml.matches("<testcase ").count(), 3);
    assert_eq!(xml.matches("<failure ").count(), 1);
    // quick-junit writes every count, zero or not: `skipped` and `errors` too.
    assert!(
        xml.contains("<testsuites name=\"mtlscope\" tests=\"3\" skipped=\"0\" failures=\"1\" errors=\"0\">"),
        "{xml}"
    );
    assert!(xml.contains("<failure message=\"plaintext: requires tls\">"), "{xml}");
    assert_eq!(xml.matches("<testsuite ").count(), xml.matches("</testsuite>").count());
}

#[test]
fn github_actions_annotations() {
    let o = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["check", "--require", "mtls", &capture("plaintext-http.pcap")])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    let s = out(&o);
    assert!(
        s.lines()
            .next()
            .unwrap()
            .starts_with("::error title=mtlscope%3A every connection (--require)::10.99.0.1:"),
        "{s}"
    );
}
