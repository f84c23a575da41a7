//! The command line as a user meets it: inputs from files, gzip and stdin, filters, output
//! formats, bad input and privacy.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mtlscope"))
}

fn capture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn run(args: &[&str]) -> Output {
    bin().args(args).env("CI", "true").output().expect("runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mtlscope-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

#[test]
fn table_ends_with_summary_line() {
    let o = run(&["analyze", &capture("nginx-curl-tls13.pcap")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("mtls (inferred)"), "{out}");
    assert_eq!(out.lines().last(), Some("2 connections: 1 mtls, 1 tls (2 inferred)"));
}

#[test]
fn json_document_has_summary_and_flows() {
    let o = run(&[
        "analyze",
        "-o",
        "json",
        &capture("openssl-tls12-mtls-rsa.pcap"),
        &capture("plaintext-http.pcap"),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let v = json(&o);
    assert_eq!(v["summary"]["connections"], 2);
    assert_eq!(v["flows"][0]["verdict"], "mtls");
    assert_eq!(v["flows"][0]["tls"]["client_certificate"]["subject"], "CN=client.test");
    assert_eq!(v["flows"][1]["verdict"], "plaintext");
}

#[test]
fn jsonl_from_stdin_one_line_per_connection_then_summary() {
    let data = std::fs::read(capture("nginx-curl-tls12.pcap")).unwrap();
    let mut child = bin()
        .args(["analyze", "-", "-o", "jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["verdict"], "mtls");
    assert_eq!(lines[1]["verdict"], "tls");
    assert_eq!(lines[2]["summary"]["connections"], 2);
}

#[test]
fn gzip_input_gives_same_verdicts() {
    let gz = tmp("mtls.pcap.gz");
    let raw = std::fs::read(capture("openssl-tls12-mtls-ecdsa.pcap")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(&raw).unwrap();
    enc.finish().unwrap();
    let a = json(&run(&[
        "analyze",
        "-o",
        "json",
        &capture("openssl-tls12-mtls-ecdsa.pcap"),
    ]));
    let b = json(&run(&["analyze", "-o", "json", gz.to_str().unwrap()]));
    assert_eq!(a["flows"], b["flows"]);
}

#[test]
fn bpf_filter_selects_packets() {
    let file = capture("nginx-curl-tls12.pcap");
    let all = json(&run(&["analyze", "-o", "json", &file]));
    let port = all["flows"][1]["client"]["port"].as_u64().unwrap();
    let one = json(&run(&[
        "analyze",
        "-o",
        "json",
        "-f",
        &format!("tcp port {port}"),
        &file,
    ]));
    assert_eq!(one["summary"]["connections"], 1);
    assert_eq!(one["flows"][0]["client"]["port"], port);
    let none = json(&run(&["analyze", "-o", "json", "-f", "udp", &file]));
    assert_eq!(none["summary"]["connections"], 0);
}

#[test]
fn bad_filter_is_a_usage_error() {
    let o = run(&["analyze", "-f", "tcp prot 443", &capture("plaintext-http.pcap")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("tcp prot 443"), "{}", stderr(&o));
}

#[test]
fn missing_file_names_it() {
    let o = run(&["analyze", "/nonexistent/x.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("/nonexistent/x.pcap"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn not_a_capture_names_the_file() {
    let f = tmp("notes.txt");
    std::fs::write(&f, "these are not packets\n").unwrap();
    let o = run(&["analyze", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("notes.txt") && e.contains("not a pcap"), "{e}");
}

#[test]
fn truncated_capture_reports_flows_so_far_and_the_offset() {
    let mut a = std::fs::read(capture("openssl-tls12-mtls-rsa.pcap")).unwrap();
    let b = std::fs::read(capture("plaintext-http.pcap")).unwrap();
    // Second capture's packets appended after the first (same link type), then cut mid-packet.
    a.extend_from_slice(&b[24..b.len() - 20]);
    let f = tmp("cut.pcap");
    std::fs::write(&f, &a).unwrap();
    let o = run(&["analyze", "-o", "json", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let v = json(&o);
    assert_eq!(
        v["flows"][0]["verdict"], "mtls",
        "flows read before the cut are reported"
    );
    let e = stderr(&o);
    assert!(
        e.contains("cut.pcap") && e.contains("truncated") && e.contains("byte"),
        "{e}"
    );
    assert_eq!(v["summary"]["errors"].as_array().unwrap().len(), 1);
}

#[test]
fn unknown_link_type_is_reported() {
    let mut pcap = std::fs::read(capture("plaintext-http.pcap")).unwrap();
    pcap[20..24].copy_from_slice(&147u32.to_le_bytes()); // LINKTYPE_USER0
    let f = tmp("user0.pcap");
    std::fs::write(&f, &pcap).unwrap();
    let o = run(&["analyze", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("user0.pcap") && e.contains("link type") && e.contains("147"),
        "{e}"
    );
}

#[test]
fn no_query_string_or_header_value_in_any_output() {
    for fmt in ["table", "json", "jsonl"] {
        let o = run(&["analyze", "-o", fmt, &capture("plaintext-http.pcap")]);
        let out = stdout(&o);
        assert!(out.contains("/index.html"), "{fmt}: {out}");
        assert!(
            !out.contains("secret123") && !out.contains("token="),
            "{fmt} leaks the query: {out}"
        );
        assert!(!out.contains("curl/"), "{fmt} leaks the User-Agent: {out}");
    }
}

#[test]
fn closed_stdout_is_not_an_error() {
    let mut child = bin()
        .args([
            "analyze",
            "-o",
            "jsonl",
            &capture("nginx-curl-tls12.pcap"),
            &capture("nginx-curl-tls13.pcap"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// 1 MB of nested `[`, `{` or `- ` once kept the YAML parser busy for minutes; the pre-scan
/// refuses it at once, naming the file and the limit.
#[test]
fn deeply_nested_yaml_is_refused_naming_file_and_limit() {
    let pcap = capture("plaintext-http.pcap");
    for (name, text) in [
        ("deep-flow.yaml", format!("rules: {}", "[".repeat(1_000_000))),
        ("deep-map.yaml", "{".repeat(1_000_000)),
        ("deep-block.yaml", "- ".repeat(500_000)),
    ] {
        let file = tmp(name);
        std::fs::write(&file, &text).unwrap();
        let f = file.to_str().unwrap();
        for args in [
            vec!["check", "--rules", f, &pcap],
            vec!["analyze", "--policy-from", f, &pcap],
            vec![
                "policy", "explain", "--from", f, "-n", "ns", "--pod", "p", "--port", "80",
            ],
        ] {
            let started = std::time::Instant::now();
            let o = run(&args);
            // Well under a second alone; the bound leaves room for a loaded machine (the YAML
            // parser took 13 s to more than a minute on these files).
            assert!(started.elapsed().as_secs() < 5, "{args:?}: {:?}", started.elapsed());
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
            if args[0] != "check" {
                let flag = args.iter().find(|a| a.starts_with("--")).unwrap();
                assert!(stderr(&o).starts_with(&format!("mtlscope: {flag}: ")), "{}", stderr(&o));
            }
            let err = stderr(&o);
            assert!(
                err.contains(f) && err.contains("nested more than 64 levels deep (the limit)"),
                "{err}"
            );
        }
    }
}

#[test]
fn oversized_rules_file_is_refused_naming_the_limit() {
    let file = tmp("huge-rules.yaml");
    std::fs::write(&file, format!("# {}\n", "x".repeat(1 << 20))).unwrap();
    let o = run(&[
        "check",
        "--rules",
        file.to_str().unwrap(),
        &capture("plaintext-http.pcap"),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("larger than the limit of 1 MiB for a rules file"),
        "{}",
        stderr(&o)
    );
}

/// The mesh config is YAML inside a string of the `istio` ConfigMap: the file's own nesting
/// check cannot see into it, so it is checked on its own, and the ConfigMap is skipped.
#[test]
fn deeply_nested_mesh_config_is_skipped_at_once() {
    let file = tmp("deep-mesh.json");
    let cm = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "istio", "namespace": "istio-system"},
        "data": {"mesh": "[".repeat(1_000_000)},
    });
    std::fs::write(&file, cm.to_string()).unwrap();
    let started = std::time::Instant::now();
    let o = run(&[
        "analyze",
        "--policy-from",
        file.to_str().unwrap(),
        &capture("plaintext-http.pcap"),
    ]);
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "skipped {}: ConfigMap istio-system/istio: data.mesh, line 1, column 64: nested more than 64 levels deep"
                .replace("{}", file.to_str().unwrap())
                .as_str()
        ),
        "{}",
        stderr(&o)
    );
}

/// `--max-flows 0` used to mean 1, and `--stream-buffer 0`, `--total-buffer 0`,
/// `--idle-timeout 0` and `--count 0` were taken silently: each is a usage error naming the
/// flag and the range.
#[test]
fn zero_and_out_of_range_limits_are_refused_naming_flag_and_range() {
    let pcap = capture("plaintext-http.pcap");
    for (args, message) in [
        (
            &["analyze", "--max-flows", "0"][..],
            "'0' for '--max-flows <N>': 0 is out of range: give 1 to 100000000",
        ),
        (
            &["analyze", "--stream-buffer", "0"],
            "'0' for '--stream-buffer <SIZE>': 0 is out of range: give 1 KiB to 1 GiB",
        ),
        (
            &["analyze", "--total-buffer", "0"],
            "'0' for '--total-buffer <SIZE>': 0 is out of range: give 64 KiB to 64 GiB",
        ),
        (
            &["analyze", "--total-buffer", "100GiB"],
            "'100GiB' for '--total-buffer <SIZE>': 100GiB is out of range",
        ),
        (
            &["analyze", "--idle-timeout", "0"],
            "'0' for '--idle-timeout <DURATION>': 0 is out of range: give 1s to 7days",
        ),
        (
            &["analyze", "--idle-timeout", "10M"],
            "M is months; write m for minutes",
        ),
        (&["analyze", "--stream-buffer", "lots"], "'lots' is not a size"),
        (
            &["check", "--require", "mtls", "--max-flows", "0"],
            "'0' for '--max-flows <N>'",
        ),
        (
            &["capture", "-i", "lo", "--count", "0"],
            "'0' for '--count <N>': 0 is out of range: give at least 1",
        ),
        (
            &["capture", "-i", "lo", "--duration", "0s"],
            "'0s' for '--duration <DURATION>': 0s is out of range",
        ),
        (
            &["capture", "-i", "lo", "--buffer-size", "0"],
            "'0' for '--buffer-size <SIZE>'",
        ),
        (&["capture", "-i", "lo", "-s", "1MiB"], "'1MiB' for '--snaplen <SIZE>'"),
        (
            &["agent", "--container-id", "x", "--total-buffer", "0"],
            "'0' for '--total-buffer <SIZE>'",
        ),
        (
            &["sniff", "p", "--idle-timeout", "0"],
            "'0' for '--idle-timeout <DURATION>'",
        ),
        (
            &["sniff", "p", "--pod-running-timeout", "0"],
            "'0' for '--pod-running-timeout <DURATION>'",
        ),
        (
            &["sniff", "p", "--max-duration", "0"],
            "'0' for '--max-duration <DURATION>'",
        ),
    ] {
        let mut all = args.to_vec();
        if args[0] == "analyze" {
            all.push(&pcap);
        }
        let o = run(&all);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(message), "{all:?}: {}", stderr(&o));
    }
}

/// Sizes and durations as docs/security.md writes them; every size unit is a power of 1024.
#[test]
fn sizes_and_durations_take_units() {
    let o = run(&[
        "analyze",
        "-o",
        "json",
        "--total-buffer",
        "32MiB",
        "--stream-buffer",
        "64k",
        "--idle-timeout",
        "10m",
        "--max-flows",
        "1",
        &capture("openssl-tls12-mtls-rsa.pcap"),
        &capture("plaintext-http.pcap"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)["summary"]["connections"], 2, "{}", stdout(&o));
    let help = stdout(&run(&["analyze", "--help"]));
    assert!(help.contains("k, M and G are powers of 1024"), "{help}");
    assert!(
        help.contains("[default: 256MiB]") && help.contains("[default: 10m]"),
        "{help}"
    );
}
