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

/// JSON lines over files are judged on the writing thread (src/pipeline/judge.rs): the same
/// verdicts, pods, policies and findings as `-o json`, judged on the analysis thread, for every
/// connection and in the summary. (The counters differ by design: a line is written when the
/// verdict is final, the document's entry when the connection closes.)
#[test]
fn analyze_jsonl_over_files_joins_the_dump_as_json_does() {
    let dump = p("tests/data/policy/bookinfo/dump.yaml");
    let files = [
        p("captures/plaintext-http.pcap"),
        p("captures/istio-like-tls13-mtls-spiffe.pcap"),
    ];
    let with = |format: &str| {
        let mut args = vec!["analyze", "-o", format, "--policy-from", dump.as_str()];
        args.extend(files.iter().map(String::as_str));
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    let doc: serde_json::Value = serde_json::from_slice(&with("json")).unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(with("jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (summary, flows) = lines.split_last().unwrap();
    let judged = |f: &serde_json::Value| {
        [
            "id",
            "client",
            "server",
            "verdict",
            "confidence",
            "evidence",
            "tls",
            "plaintext",
            "kubernetes",
        ]
        .map(|k| f[k].clone())
    };
    let in_doc: Vec<_> = doc["flows"].as_array().unwrap().iter().map(judged).collect();
    assert_eq!(flows.iter().map(judged).collect::<Vec<_>>(), in_doc);
    for k in ["connections", "verdicts", "inferred", "uncertain", "findings"] {
        assert_eq!(summary["summary"][k], doc["summary"][k], "{k}");
    }
    assert_eq!(summary["summary"]["findings"]["violation"], 1);
    assert_eq!(flows[0]["kubernetes"]["policy"]["finding"]["severity"], "violation");
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
