//! PeerAuthentication joined to verdicts: `analyze --policy-from`, `check --require policy` and
//! `policy explain`, on the bookinfo dump in tests/data/policy (productpage-v1 is 10.99.0.1 and
//! reviews-v1 is 10.99.0.2, the captures' client and server; reviews is STRICT).

use std::path::Path;
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(args)
        .env("CI", "true")
        .output()
        .unwrap()
}

fn p(rel: &str) -> String {
    root().join(rel).to_string_lossy().into_owned()
}

#[test]
fn analyze_flags_plaintext_to_a_strict_pod() {
    let o = run(&[
        "analyze",
        "-o",
        "json",
        "--policy-from",
        &p("tests/data/policy/bookinfo/dump.yaml"),
        &p("captures/plaintext-http.pcap"),
        &p("captures/istio-like-tls13-mtls-spiffe.pcap"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let plain = &v["flows"][0]["kubernetes"];
    assert_eq!(plain["client_pod"], "bookinfo/productpage-v1-d5789fdfb-8l2rw");
    assert_eq!(plain["server_pod"], "bookinfo/reviews-v1-5c5d5f4f5c-x7k2p");
    assert_eq!(plain["policy"]["expected_mode"], "STRICT");
    assert_eq!(plain["policy"]["decided_by"]["name"], "reviews-strict");
    assert_eq!(plain["policy"]["finding"]["severity"], "violation");
    let mtls = &v["flows"][1]["kubernetes"]["policy"];
    assert_eq!(mtls["expected_mode"], "STRICT");
    assert!(mtls["finding"].is_null());
    assert_eq!(v["summary"]["findings"]["violation"], 1);
}

#[test]
fn check_require_policy() {
    let dump = p("tests/data/policy/bookinfo");
    let o = run(&[
        "check",
        "--require",
        "policy",
        "--policy-from",
        &dump,
        &p("captures/plaintext-http.pcap"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("bookinfo/productpage-v1-d5789fdfb-8l2rw:")
            && s.contains("-> bookinfo/reviews-v1-5c5d5f4f5c-x7k2p:8080"),
        "{s}"
    );
    let o = run(&[
        "check",
        "--require",
        "policy",
        "--policy-from",
        &dump,
        &p("captures/istio-like-tls13-mtls-spiffe.pcap"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    let o = run(&["check", "--require", "policy", &p("captures/plaintext-http.pcap")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--policy-from"));
}

#[test]
fn explain_json_is_exactly_one_object_in_the_documented_shape() {
    let o = run(&[
        "policy",
        "explain",
        "--from",
        &p("tests/data/policy/bookinfo"),
        "-n",
        "bookinfo",
        "--pod",
        "reviews-v1-5c5d5f4f5c-x7k2p",
        "--port",
        "9080",
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.lines().count(), 1);
    assert!(text.starts_with(r#"{"namespace":"bookinfo","pod":"reviews-v1-5c5d5f4f5c-x7k2p","port":9080,"mode":"STRICT","decided_by":{"kind":"PeerAuthentication","namespace":"bookinfo","name":"reviews-strict","level":"workload"},"ignored":["#), "{text}");
}

#[test]
fn explain_unknown_pod_lists_the_pods_there() {
    let o = run(&[
        "policy",
        "explain",
        "--from",
        &p("tests/data/policy/bookinfo"),
        "-n",
        "bookinfo",
        "--pod",
        "nope",
        "--port",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("no pod \"nope\"") && e.contains("reviews-v1-5c5d5f4f5c-x7k2p"),
        "{e}"
    );
}

#[test]
fn invalid_policies_are_reported_with_namespace_and_name_and_skipped() {
    let o = run(&[
        "analyze",
        "--policy-from",
        &p("tests/data/policy/invalid"),
        &p("captures/plaintext-http.pcap"),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("warning: skipped") && e.contains("PeerAuthentication"),
        "{e}"
    );
}
