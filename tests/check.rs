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
fn github_actions_annotations_go_to_stderr_with_the_file_and_a_title() {
    let file = capture("plaintext-http.pcap");
    let o = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["check", "--require", "mtls", &file])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    let first = err.lines().find(|l| l.starts_with("::error ")).unwrap_or_default();
    let props = format!(
        "file={},title=mtlscope%3A every connection (--require)::10.99.0.1:",
        file.replace(':', "%3A").replace(',', "%2C")
    );
    assert!(first.starts_with(&format!("::error {props}")), "{err}");
    assert!(!out(&o).contains("::error"), "{}", out(&o));
}

#[test]
fn github_actions_json_on_stdout_stays_json() {
    let o = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args([
            "check",
            "--require",
            "mtls",
            "-o",
            "json",
            &capture("plaintext-http.pcap"),
            &capture("nginx-curl-tls12.pcap"),
        ])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", out(&o)));
    assert_eq!(doc["ok"], false);
    let err = String::from_utf8_lossy(&o.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("::error ")).collect();
    // Two inputs: each violation names its own file (both fail mtls), and has a title.
    assert_eq!(errors.len(), 2, "{err}");
    for (name, line) in ["plaintext-http.pcap", "nginx-curl-tls12.pcap"].iter().zip(&errors) {
        let file = capture(name).replace(':', "%3A").replace(',', "%2C");
        assert!(
            line.starts_with(&format!("::error file={file},title=mtlscope")),
            "{err}"
        );
    }
    let violations = doc["rules"][0]["violations"].as_array().unwrap();
    assert_eq!(violations[0]["file"], capture("plaintext-http.pcap"), "{doc}");
}

/// The first `n` packets of a classic pcap file (little-endian, as the bundled captures are),
/// written whole: a capture that stopped early, not a truncated file.
fn first_packets(name: &str, n: usize, out: &str) -> String {
    let data = std::fs::read(capture(name)).unwrap();
    assert_eq!(
        &data[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "{name}: not a little-endian pcap"
    );
    let mut end = 24;
    for _ in 0..n {
        let incl = u32::from_le_bytes(data[end + 8..end + 12].try_into().unwrap()) as usize;
        end += 16 + incl;
    }
    // Tests run in parallel and several of them ask for the same file: each writes its own copy
    // and renames it into place, so a reader never sees one half written.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let path = tmp(out);
    let part = tmp(&format!(
        "{out}.{}.part",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::write(&part, &data[..end]).unwrap();
    std::fs::rename(&part, &path).unwrap();
    path.to_string_lossy().into_owned()
}

/// openssl-tls12-mtls-rsa.pcap up to the server's flight (CertificateRequest, ServerHelloDone):
/// the client's answer, and so its certificate, is not in the capture.
fn tls12_client_answer_missing() -> String {
    first_packets("openssl-tls12-mtls-rsa.pcap", 9, "tls12-client-answer-missing.pcap")
}

const ANSWER_MISSING: &str =
    "the verdict is uncertain (\"certificate requested; the client's answer is not in the capture: the client's data ends before it\")";

#[test]
fn uncertain_never_satisfies_tls_mtls_or_encrypted() {
    let f = tls12_client_answer_missing();
    for (level, hint) in [
        ("tls", "; --allow-uncertain accepts it"),
        ("encrypted", "; --allow-uncertain accepts it"),
        ("mtls", ""),
    ] {
        let o = check(&["--require", level, &f]);
        assert_eq!(o.status.code(), Some(1), "{level}: {}", out(&o));
        let want = match level {
            "encrypted" => "encryption",
            l => l,
        };
        assert!(
            out(&o).contains(&format!(":4402 tls: requires {want}; {ANSWER_MISSING}{hint}\n")),
            "{level}: {}",
            out(&o)
        );
    }
    // --allow-uncertain lets it satisfy tls and encrypted, never mtls.
    for level in ["tls", "encrypted"] {
        let o = check(&["--require", level, "--allow-uncertain", &f]);
        assert_eq!(o.status.code(), Some(0), "{level}: {}", out(&o));
        assert!(
            out(&o).contains("1 matched, 1 passed, 0 failed (1 passed on uncertain verdicts, allowed): ok"),
            "{}",
            out(&o)
        );
    }
    let o = check(&["--require", "mtls", "--allow-uncertain", &f]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    // --evidence certain is not lowered by --allow-uncertain.
    let o = check(&["--require", "tls", "--allow-uncertain", "--evidence", "certain", &f]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains("tls is uncertain (\"certificate requested;"),
        "{}",
        out(&o)
    );
}

/// A TLS 1.3 resumption is `tls, uncertain`: its ticket, encrypted, does not say which handshake
/// issued it.
#[test]
fn uncertain_resumption_fails_require_tls() {
    let f = capture("openssl-tls13-resume-psk.pcap");
    let o = check(&["--require", "tls", "-o", "json", &f]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rule = &v["rules"][0];
    assert_eq!((rule["matched"].as_u64(), rule["passed"].as_u64()), (Some(2), Some(1)));
    let violation = &rule["violations"][0];
    assert_eq!(violation["confidence"], "uncertain");
    assert_eq!(violation["failure"], "uncertain");
    assert_eq!(
        violation["reason"],
        "tls: requires tls; the verdict is uncertain (\"resumed (psk): no certificates on the wire and a TLS 1.3 ticket cannot be tied to the handshake that issued it (the ticket travels encrypted); client identity not observable\"); --allow-uncertain accepts it"
    );
    let o = check(&["--require", "tls", "--allow-uncertain", "-o", "json", &f]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rules"][0]["passed_uncertain"], 1);
    assert_eq!(v["rules"][0]["passed_inferred"], 1);
    assert_eq!(v["rules"][0]["allow_uncertain"], true);
}

#[test]
fn rules_file_allow_uncertain_is_per_rule() {
    let rules = tmp("allow-uncertain.yaml");
    std::fs::write(
        &rules,
        r#"rules:
  - name: resumed sessions may be uncertain
    match: { ports: [4418] }
    require: tls
    allow_uncertain: true
  - name: the rest must be sure
    match: { ports: [4402] }
    require: tls
"#,
    )
    .unwrap();
    let files = [capture("openssl-tls13-resume-psk.pcap"), tls12_client_answer_missing()];
    let o = check(&["--rules", rules.to_str().unwrap(), &files[0], &files[1]]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let s = out(&o);
    assert!(
        s.contains("rule 'resumed sessions may be uncertain' (require tls): 2 matched, 2 passed, 0 failed (1 passed on inferred verdicts) (1 passed on uncertain verdicts, allowed): ok"),
        "{s}"
    );
    assert!(
        s.contains("FAIL [the rest must be sure] 10.99.0.1:40436 -> 10.99.0.2:4402 tls: requires tls; the verdict is uncertain"),
        "{s}"
    );
    // --allow-uncertain says it for every rule.
    let o = check(&[
        "--rules",
        rules.to_str().unwrap(),
        "--allow-uncertain",
        &files[0],
        &files[1],
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
}

#[test]
fn failed_handshake_never_satisfies_tls_mtls_or_encrypted() {
    let tls12 = capture("openssl-tls12-client-cert-required-missing.pcap");
    let tls13 = capture("openssl-tls13-client-cert-required-missing.pcap");
    for level in ["tls", "mtls", "encrypted"] {
        let want = if level == "encrypted" { "encryption" } else { level };
        for extra in [&[][..], &["--allow-uncertain"][..]] {
            let mut args = vec!["--require", level];
            args.extend_from_slice(extra);
            args.push(&tls12);
            let o = check(&args);
            assert_eq!(o.status.code(), Some(1), "{args:?}: {}", out(&o));
            // The verdict is tls, certain: the handshake decides.
            assert!(
                out(&o).contains(&format!(
                    ":4423 tls: requires {want}; the handshake failed (\"handshake failed: server alert handshake_failure\")\n"
                )),
                "{args:?}: {}",
                out(&o)
            );
        }
        // TLS 1.3: an inferred verdict, and an encrypted alert ends the handshake.
        let o = check(&["--require", level, &tls13]);
        assert_eq!(o.status.code(), Some(1), "{}", out(&o));
        assert!(
            out(&o).contains(&format!(
                ":4422 tls: requires {want}; the handshake failed (\"server answered the client's flight with an encrypted alert\")\n"
            )),
            "{}",
            out(&o)
        );
    }
    // `any` only counts.
    assert_eq!(check(&["--require", "any", &tls12]).status.code(), Some(0));
}

#[test]
fn midstream_is_encrypted_but_never_tls() {
    let f = capture("openssl-tls12-midstream.pcap");
    for extra in [&[][..], &["--evidence", "certain"][..]] {
        let mut args = vec!["--require", "encrypted", &f];
        args.extend_from_slice(extra);
        let o = check(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", out(&o));
    }
    for level in ["tls", "mtls"] {
        let o = check(&["--require", level, "--allow-uncertain", &f]);
        assert_eq!(o.status.code(), Some(1), "{}", out(&o));
        assert!(
            out(&o).contains(&format!(
                ":4421 encrypted: requires {level}; the handshake is not in the capture\n"
            )),
            "{}",
            out(&o)
        );
    }
}

#[test]
fn evidence_certain_applies_to_tls() {
    let tls13 = capture("openssl-tls13-server-only-rsa.pcap");
    let tls12 = capture("openssl-tls12-server-only-rsa.pcap");
    assert_eq!(check(&["--require", "tls", &tls13]).status.code(), Some(0));
    let o = check(&["--require", "tls", "--evidence", "certain", &tls13]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains(" tls: tls is only inferred; --evidence certain requires it in clear\n"),
        "{}",
        out(&o)
    );
    let o = check(&["--require", "tls", "--evidence", "certain", &tls12]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    // An inferred mtls verdict does not prove TLS in clear either; encryption needs no more.
    let m13 = capture("openssl-tls13-mtls-rsa.pcap");
    assert_eq!(
        check(&["--require", "tls", "--evidence", "certain", &m13])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        check(&["--require", "encrypted", "--evidence", "certain", &m13])
            .status
            .code(),
        Some(0)
    );
}

/// The same failures, with the same reasons, in the text, JSON, JUnit XML and GitHub
/// annotations of one run.
#[test]
fn every_output_carries_the_same_failures() {
    let files = [
        tls12_client_answer_missing(),
        capture("openssl-tls12-client-cert-required-missing.pcap"),
        // Not openssl-tls12-mtls-rsa.pcap: its connection is the one cut short above.
        capture("openssl-tls12-mtls-ecdsa.pcap"),
    ];
    let reasons = [
        format!("tls: requires tls; {ANSWER_MISSING}; --allow-uncertain accepts it"),
        "tls: requires tls; the handshake failed (\"handshake failed: server alert handshake_failure\")".to_string(),
    ];
    let junit = tmp("same-failures.xml");
    let o = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["check", "--require", "tls", "--junit", junit.to_str().unwrap()])
        .args(&files)
        .env("CI", "true")
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let s = out(&o);
    // Annotations on standard error (the runner reads both streams), each naming its file.
    let err = String::from_utf8_lossy(&o.stderr);
    let annotations: Vec<&str> = err.lines().filter(|l| l.starts_with("::error ")).collect();
    let text: Vec<&str> = s.lines().filter(|l| l.starts_with("FAIL [")).collect();
    assert_eq!((annotations.len(), text.len()), (2, 2), "{s}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let report = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert_eq!((report.tests, report.failures), (3, 2), "{xml}");
    let messages: Vec<String> = report.test_suites[0]
        .test_cases
        .iter()
        .filter_map(|c| match &c.status {
            quick_junit::TestCaseStatus::NonSuccess { message, .. } => message.as_ref().map(|m| m.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(messages, reasons);
    let o = check(&["--require", "tls", "-o", "json", &files[0], &files[1], &files[2]]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let violations = v["rules"][0]["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 2);
    for (i, reason) in reasons.iter().enumerate() {
        assert_eq!(violations[i]["reason"], reason.as_str());
        assert!(annotations[i].ends_with(reason.as_str()), "{}", annotations[i]);
        let file = files[i].replace(':', "%3A").replace(',', "%2C");
        assert!(
            annotations[i].starts_with(&format!("::error file={file},")),
            "{}",
            annotations[i]
        );
        assert!(text[i].ends_with(reason.trim_start_matches("tls: ")), "{}", text[i]);
    }
    assert_eq!(violations[0]["failure"], "uncertain");
    assert_eq!(violations[1]["failure"], "handshake-failed");
    assert_eq!(violations[1]["handshake"], "failed");
}

/// `--require policy`: a STRICT port expects mTLS, judged as `--require mtls` is.
#[test]
fn strict_policy_needs_positive_evidence() {
    let dump = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/policy/bookinfo")
        .to_string_lossy()
        .into_owned();
    let policy = |extra: &[&str], file: &str| {
        let mut args = vec!["--require", "policy", "--policy-from", &dump];
        args.extend_from_slice(extra);
        args.push(file);
        check(&args)
    };
    let o = policy(&[], &capture("openssl-tls12-client-cert-required-missing.pcap"));
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains(":4423 tls: STRICT expects mtls; the handshake failed (\"handshake failed: server alert handshake_failure\")\n"),
        "{}",
        out(&o)
    );
    // Uncertain: said so rather than "TLS without a client certificate".
    let o = policy(&["--allow-uncertain"], &tls12_client_answer_missing());
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains(&format!(":4402 tls: STRICT expects mtls; {ANSWER_MISSING}\n")),
        "{}",
        out(&o)
    );
    let o = policy(&[], &capture("openssl-tls12-midstream.pcap"));
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains(":4421 encrypted: STRICT expects mtls; the handshake is not in the capture\n"),
        "{}",
        out(&o)
    );
    let m13 = capture("openssl-tls13-mtls-rsa.pcap");
    assert_eq!(policy(&[], &m13).status.code(), Some(0));
    let o = policy(&["--evidence", "certain"], &m13);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains(" mtls: mtls is only inferred;"), "{}", out(&o));
    assert_eq!(
        policy(&["--evidence", "certain"], &capture("openssl-tls12-mtls-rsa.pcap"))
            .status
            .code(),
        Some(0)
    );
}

/// Regression (issue 15): a truncated capture printed `PASS`, `{"ok":true,"problems":[]}` and a
/// JUnit file without failures; a missing file gave only "nothing to check". Every rendering
/// now fails and names the file and the offset; the exit status is 2.
#[test]
fn truncated_or_missing_input_fails_every_rendering() {
    let data = std::fs::read(capture("openssl-tls13-mtls-ecdsa.pcap")).unwrap();
    let cut = tmp("cut.pcap");
    std::fs::write(&cut, &data[..data.len() - 30]).unwrap();
    let cut = cut.to_str().unwrap();
    let junit = tmp("cut.xml");
    let text = check(&["--require", "any", cut, "--junit", junit.to_str().unwrap()]);
    assert_eq!(text.status.code(), Some(2));
    let s = out(&text);
    assert!(
        s.contains("FAILED: ") && s.contains("cut.pcap: truncated at byte "),
        "{s}"
    );
    assert!(s.lines().last().unwrap().starts_with("FAIL: 1 connection"), "{s}");
    let report = quick_junit::Report::deserialize_from_str(&std::fs::read_to_string(&junit).unwrap()).unwrap();
    assert_eq!((report.errors, report.failures), (1, 0));
    let case = report
        .test_suites
        .iter()
        .flat_map(|s| &s.test_cases)
        .find(|c| c.name.as_str().starts_with("read "))
        .unwrap();
    assert!(
        case.name.as_str().contains("cut.pcap (at byte "),
        "{}",
        case.name.as_str()
    );

    let json = check(&["--require", "any", "-o", "json", cut]);
    assert_eq!(json.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let problem = v["problems"][0].as_str().unwrap();
    assert!(problem.contains("cut.pcap: truncated at byte "), "{v}");

    let gh = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["check", "--require", "any", cut])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_eq!(gh.status.code(), Some(2));
    // Annotations are on standard error, naming the capture with file=.
    let annotations = String::from_utf8_lossy(&gh.stderr);
    assert!(
        annotations
            .lines()
            .any(|l| l.starts_with("::error file=") && l.contains("cut.pcap: truncated at byte ")),
        "{annotations}"
    );

    let missing = tmp("missing.pcap");
    let junit = tmp("missing.xml");
    let o = check(&[
        "--require",
        "mtls",
        missing.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let report = quick_junit::Report::deserialize_from_str(&std::fs::read_to_string(&junit).unwrap()).unwrap();
    assert_eq!(report.errors, 1);
    let names: Vec<&str> = report
        .test_suites
        .iter()
        .flat_map(|s| &s.test_cases)
        .map(|c| c.name.as_str())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("read ") && n.ends_with("missing.pcap")),
        "{names:?}"
    );
}
