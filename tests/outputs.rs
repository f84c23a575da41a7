//! Every output format of `analyze`, `check` and `policy explain`, run as a user runs them on
//! the bundled captures, compared with a checked-in golden file in `tests/golden/outputs/`: the
//! command, its exit status, its standard output and standard error (and the JUnit file it
//! writes). A change to any output, its wording or its layout shows up here as a diff; when it
//! is meant, `SNAPSHOTS=overwrite cargo test --test outputs` rewrites the files, and the diff is
//! reviewed like code. The JUnit file is also read by an XML parser (roxmltree), so that it is
//! well-formed and its counts agree with the text report.
//!
//! Commands run from the repository root with relative paths, so the files name
//! `captures/...` as a user's terminal would. Standard output is a pipe here: tables take the
//! width they take when piped. `CI`, `GITHUB_ACTIONS` and `COLUMNS` are cleared (and set where
//! a case needs them) so that the results do not depend on where the tests run.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every bundled capture, as relative paths, sorted.
fn all_captures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("captures"))
        .expect("captures/ exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .map(|n| format!("captures/{n}"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "only {} captures", names.len());
    names
}

/// A scratch directory for files a command writes (JUnit).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mtlscope-outputs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[String], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtlscope"));
    cmd.current_dir(root())
        .args(args)
        .env_remove("CI")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("COLUMNS")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    Run {
        status: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8(o.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(o.stderr).expect("stderr is UTF-8"),
    }
}

/// The golden text of one run: the command line as a user types it, then each stream.
fn transcript(args: &[String], env: &[(&str, &str)], r: &Run, extra: &[(&str, &str)]) -> String {
    let mut t = String::from("$ ");
    for (k, v) in env {
        t.push_str(&format!("{k}={v} "));
    }
    t.push_str("mtlscope ");
    t.push_str(&shell_join(args));
    t.push_str(&format!("\n? exit {}\n--- stdout\n{}", r.status, r.stdout));
    if !r.stdout.is_empty() && !r.stdout.ends_with('\n') {
        t.push('\n');
    }
    t.push_str(&format!("--- stderr\n{}", r.stderr));
    for (name, body) in extra {
        t.push_str(&format!("--- {name}\n{body}"));
    }
    t
}

fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn assert_golden(name: &str, text: String) {
    let path = root().join("tests/golden/outputs").join(name);
    snapbox::Assert::new()
        .action_env(snapbox::assert::DEFAULT_ACTION_ENV)
        .eq(
            snapbox::Data::text(text).raw(),
            snapbox::Data::read_from(&path, None).raw(),
        );
}

fn args(parts: &[&str], files: &[String]) -> Vec<String> {
    parts
        .iter()
        .map(|s| s.to_string())
        .chain(files.iter().cloned())
        .collect()
}

#[test]
fn analyze_every_format_on_every_capture() {
    let all = all_captures();
    for (golden, flags) in [
        ("analyze-table.txt", &[][..]),
        ("analyze-jsonl.txt", &["-o", "jsonl"][..]),
        ("analyze-json.txt", &["-o", "json"][..]),
    ] {
        let a = args(&[&["analyze"][..], flags].concat(), &all);
        let r = run(&a, &[]);
        assert_eq!(r.status, 0, "{golden}: {}", r.stderr);
        assert_golden(golden, transcript(&a, &[], &r, &[]));
    }
}

#[test]
fn analyze_with_a_cluster_dump() {
    let a = args(
        &["analyze", "--policy-from", "tests/data/policy/bookinfo/dump.yaml"],
        &[
            "captures/plaintext-http.pcap".into(),
            "captures/istio-like-tls13-mtls-spiffe.pcap".into(),
            "captures/openssl-tls12-mtls-rsa.pcap".into(),
        ],
    );
    for (golden, flags) in [
        ("analyze-policy-table.txt", &[][..]),
        ("analyze-policy-json.txt", &["-o", "json"][..]),
    ] {
        let a: Vec<String> = a.iter().cloned().chain(flags.iter().map(|s| s.to_string())).collect();
        let r = run(&a, &[]);
        assert_eq!(r.status, 0, "{golden}: {}", r.stderr);
        assert_golden(golden, transcript(&a, &[], &r, &[]));
    }
}

#[test]
fn check_every_format_on_every_capture() {
    let all = all_captures();
    for (golden, flags, env) in [
        ("check-text.txt", &[][..], &[][..]),
        ("check-json.txt", &["-o", "json"][..], &[][..]),
        ("check-github.txt", &[][..], &[("GITHUB_ACTIONS", "true")][..]),
    ] {
        let a = args(&[&["check", "--require", "mtls"][..], flags].concat(), &all);
        let r = run(&a, env);
        // Some captures are cut on purpose (an input not read completely is exit 2).
        assert!(matches!(r.status, 1 | 2), "{golden}: exit {}: {}", r.status, r.stderr);
        assert_golden(golden, transcript(&a, env, &r, &[]));
    }
}

#[test]
fn check_junit_is_xml_whose_counts_match_the_report() {
    let all = all_captures();
    let junit = scratch("check.xml");
    let a = args(
        &[
            "check",
            "--require",
            "tls",
            "--junit",
            &junit.to_string_lossy(),
            "-o",
            "json",
        ],
        &all,
    );
    let r = run(&a, &[]);
    assert!(matches!(r.status, 1 | 2), "exit {}: {}", r.status, r.stderr);
    let xml = std::fs::read_to_string(&junit).unwrap();

    let doc = roxmltree::Document::parse(&xml).expect("the JUnit file is well-formed XML");
    let suites = doc.root_element();
    assert_eq!(suites.tag_name().name(), "testsuites");
    let cases: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    let failed = cases
        .iter()
        .filter(|c| {
            c.children()
                .any(|n| n.has_tag_name("failure") || n.has_tag_name("error"))
        })
        .count();
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let violations: usize = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| rule["violations"].as_array().unwrap().len())
        .sum();
    assert!(failed > 0, "some captures fail --require tls");
    let count = |name: &str| -> usize { suites.attribute(name).unwrap().parse().unwrap() };
    assert_eq!(
        count("failures") + count("errors"),
        failed,
        "the suite's counts agree with its test cases"
    );
    assert_eq!(count("tests"), cases.len());
    // One test case per connection a rule matched, and the failed ones are the violations.
    assert_eq!(failed, violations + report["problems"].as_array().unwrap().len());
    assert_eq!(report["ok"], false);

    // The file itself, with the scratch path the command line names made stable.
    let a: Vec<String> = a
        .into_iter()
        .map(|s| {
            if s == junit.to_string_lossy() {
                "check.xml".into()
            } else {
                s
            }
        })
        .collect();
    assert_golden("check-junit.txt", transcript(&a, &[], &r, &[("check.xml", &xml)]));
}

#[test]
fn policy_explain_text_and_json() {
    for (golden, output) in [("policy-explain-text.txt", "text"), ("policy-explain-json.txt", "json")] {
        let a = args(
            &[
                "policy",
                "explain",
                "--from",
                "tests/data/policy/bookinfo/dump.yaml",
                "-n",
                "bookinfo",
                "--pod",
                "reviews-v1-5c5d5f4f5c-x7k2p",
                "--port",
                "9080",
                "-o",
                output,
            ],
            &[],
        );
        let r = run(&a, &[]);
        assert_eq!(r.status, 0, "{golden}: {}", r.stderr);
        assert_golden(golden, transcript(&a, &[], &r, &[]));
    }
}
