//! The JSON output against the JSON Schemas in docs/schema/, with the `jsonschema` crate:
//! `analyze -o json` and every line of `-o jsonl` for every capture in captures/ (and with the
//! options that add fields: a cluster dump, --show-payload), and `check -o json`. The schemas
//! refuse fields they do not name, so a field added to the output without its description
//! fails here.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn schema(name: &str) -> Value {
    let path = root().join("docs/schema").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A validator for `schema`, or for one of its `$defs` (`def`), whose references stay inside it.
fn validator(schema: &Value, def: Option<&str>) -> jsonschema::Validator {
    let mut s = schema.clone();
    if let Some(def) = def {
        s = json!({"$defs": schema["$defs"], "$ref": format!("#/$defs/{def}")});
    }
    jsonschema::draft202012::new(&s).unwrap_or_else(|e| panic!("schema {def:?}: {e}"))
}

fn assert_valid(v: &jsonschema::Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .take(10)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}:\n{}", errors.join("\n"));
}

fn mtlscope(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(args)
        .current_dir(root())
        .env("CI", "true")
        .output()
        .unwrap()
}

fn captures() -> Vec<String> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(root().join("captures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    all.sort();
    assert!(all.len() >= 20, "only {} captures", all.len());
    all.iter()
        .map(|p| format!("captures/{}", p.file_name().unwrap().to_string_lossy()))
        .collect()
}

/// The document and the lines of one run of `analyze` with `args`.
fn analyze_both(args: &[&str]) -> (Value, Vec<Value>) {
    let json = mtlscope(&[&["analyze", "-o", "json"], args].concat());
    assert_eq!(
        json.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&json.stderr)
    );
    let lines = mtlscope(&[&["analyze", "-o", "jsonl"], args].concat());
    assert_eq!(lines.status.code(), Some(0), "{args:?}");
    let lines = String::from_utf8(lines.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (serde_json::from_slice(&json.stdout).unwrap(), lines)
}

#[test]
fn analyze_output_of_every_capture_matches_its_schema() {
    let s = schema("analyze.schema.json");
    let (doc, connection, summary_line) = (
        validator(&s, None),
        validator(&s, Some("connection")),
        validator(&s, Some("summary_line")),
    );
    let dump = "tests/data/policy/bookinfo";
    // Key-logged captures, with their key log.
    let keylogged: Vec<[String; 2]> = ["nginx-curl-tls13-keylog", "openssl-tls13-keylog-wrong-key"]
        .map(|n| [format!("captures/{n}.keylog"), format!("captures/{n}.pcap")])
        .into();
    let mut runs: Vec<Vec<&str>> = Vec::new();
    let files = captures();
    runs.extend(files.iter().map(|f| vec![f.as_str()]));
    runs.push(vec!["--show-payload", "captures/plaintext-http.pcap"]);
    let istio = [
        "captures/istio-like-tls12-mtls-spiffe.pcap",
        "captures/istio-like-tls13-mtls-spiffe.pcap",
    ];
    runs.push([&["--policy-from", dump][..], &istio].concat());
    // A key log adds `tls.keylog` and `summary.keylog` (a wrong key too).
    for [keys, pcap] in &keylogged {
        runs.push(vec!["--keylog-file", keys, pcap]);
    }
    let mut seen = std::collections::BTreeSet::new();
    for args in &runs {
        let (d, lines) = analyze_both(args);
        assert_valid(&doc, &d, &format!("analyze -o json {args:?}"));
        let (last, flows) = lines.split_last().expect("a summary line");
        assert_valid(&summary_line, last, &format!("-o jsonl {args:?}: summary line"));
        for (i, l) in flows.iter().enumerate() {
            assert_valid(&connection, l, &format!("-o jsonl {args:?}: line {}", i + 1));
        }
        // The same connections with the same fields either way (a line's counters are those
        // at the moment of the verdict, the document's those at the end).
        let fields = |f: &Value| {
            (
                f["id"].as_u64(),
                f.as_object().unwrap().keys().cloned().collect::<Vec<_>>(),
            )
        };
        let mut by_id: Vec<_> = flows.iter().map(fields).collect();
        by_id.sort();
        let want: Vec<_> = d["flows"].as_array().unwrap().iter().map(fields).collect();
        assert_eq!(by_id, want, "{args:?}");
        for f in d["flows"].as_array().unwrap() {
            seen.extend(f.as_object().unwrap().keys().cloned());
            if let Some(p) = f["plaintext"].as_object() {
                seen.extend(p.keys().map(|k| format!("plaintext.{k}")));
            }
        }
    }
    // The options above reached the fields the schema has for them.
    for key in ["kubernetes", "tunnel", "plaintext.payload", "community_id", "file"] {
        assert!(seen.contains(key), "no output had {key}: {seen:?}");
    }
}

#[test]
fn analyze_schema_refuses_what_it_does_not_describe() {
    let v = validator(&schema("analyze.schema.json"), None);
    let (mut d, _) = analyze_both(&["captures/openssl-tls12-mtls-rsa.pcap"]);
    assert!(v.is_valid(&d));
    d["flows"][0]["undocumented"] = json!(1);
    assert!(!v.is_valid(&d), "an unknown connection field passed");
    d["flows"][0].as_object_mut().unwrap().remove("undocumented");
    d["flows"][0]["verdict"] = json!("maybe");
    assert!(!v.is_valid(&d), "an unknown verdict passed");
}

#[test]
fn check_output_matches_its_schema() {
    let v = validator(&schema("check.schema.json"), None);
    let rules = std::env::temp_dir().join(format!("mtlscope-schema-rules-{}.yaml", std::process::id()));
    std::fs::write(
        &rules,
        r#"rules:
  - name: bookinfo is mutual TLS
    match: { ports: [9080], cidrs: ["10.99.0.0/24"], sni: "*.svc.cluster.local" }
    require: mtls
    client_identity: "spiffe://cluster.local/ns/bookinfo/sa/*"
    allow_uncertain: true
  - name: nothing on 1
    match: { ports: [1] }
    require: tls
"#,
    )
    .unwrap();
    let rules = rules.to_string_lossy().into_owned();
    let runs: Vec<(Vec<&str>, i32)> = vec![
        (vec!["--require", "mtls", "captures/openssl-tls12-mtls-rsa.pcap"], 0),
        (
            vec![
                "--require",
                "mtls",
                "-r",
                "captures/plaintext-http.pcap",
                "captures/openssl-tls13-padding512-mtls.pcap",
            ],
            1,
        ),
        (
            vec![
                "--rules",
                &rules,
                "--allow-empty",
                "captures/istio-like-tls12-mtls-spiffe.pcap",
            ],
            0,
        ),
        (
            vec![
                "--rules",
                &rules,
                "--min-flows",
                "5",
                "captures/istio-like-tls13-mtls-spiffe.pcap",
            ],
            1,
        ),
        (
            vec![
                "--require",
                "policy",
                "--policy-from",
                "tests/data/policy/bookinfo",
                "captures/openssl-tls12-client-cert-required-missing.pcap",
            ],
            1,
        ),
    ];
    let mut violations = 0;
    for (args, code) in &runs {
        let o = mtlscope(&[&["check", "-o", "json"], &args[..]].concat());
        assert_eq!(
            o.status.code(),
            Some(*code),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        let d: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_valid(&v, &d, &format!("check -o json {args:?}"));
        for r in d["rules"].as_array().unwrap() {
            for x in r["violations"].as_array().unwrap() {
                violations += 1;
                assert!(x["community_id"].as_str().is_some_and(|c| c.starts_with("1:")), "{x}");
                assert!(x["file"].as_str().is_some_and(|f| f.starts_with("captures/")), "{x}");
            }
        }
    }
    assert!(violations > 0);
}
