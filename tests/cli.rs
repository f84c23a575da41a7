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
    let mut b = json(&run(&["analyze", "-o", "json", gz.to_str().unwrap()]));
    // Everything but the input each connection names.
    assert_eq!(b["flows"][0]["file"], gz.to_str().unwrap());
    b["flows"][0]["file"] = a["flows"][0]["file"].clone();
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

/// The table of `analyze FILES` (bundled captures, or absolute paths) with COLUMNS as given
/// (None: not set), into a pipe.
fn table(columns: Option<&str>, extra: &[&str], files: &[&str]) -> String {
    let mut cmd = bin();
    cmd.arg("analyze").args(extra).env("CI", "true").env_remove("COLUMNS");
    for f in files {
        match f.starts_with('/') {
            true => cmd.arg(f),
            false => cmd.arg(capture(f)),
        };
    }
    if let Some(c) = columns {
        cmd.env("COLUMNS", c);
    }
    let o = cmd.output().expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
}

const TABLE_CAPTURES: [&str; 3] = [
    "istio-like-tls12-mtls-spiffe.pcap",
    "go-tls13-mtls-rsa.pcap",
    "plaintext-http.pcap",
];

/// The bundled captures under short names, as `ls`-ed captures often are: the file column the
/// three inputs bring takes no more width than an address.
fn short_named(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let short = tmp(&format!("{}.pcap", (b'a' + i as u8) as char));
            std::fs::copy(capture(n), &short).unwrap();
            short.to_string_lossy().into_owned()
        })
        .collect()
}

#[test]
fn table_follows_columns_and_never_splits_an_address() {
    let short = short_named(&TABLE_CAPTURES);
    let files: Vec<&str> = short.iter().map(String::as_str).collect();
    for c in ["80", "200"] {
        let out = table(Some(c), &[], &files);
        let width: usize = c.parse().unwrap();
        for l in out.lines() {
            assert!(l.chars().count() <= width, "COLUMNS={c}: {l:?}\n{out}");
        }
        for whole in ["10.99.0.1:38218", "10.99.0.2:9080", "mtls (inferred)", "10.99.0.2:8080"] {
            assert!(
                out.lines().any(|l| l.contains(whole)),
                "COLUMNS={c}: {whole} split\n{out}"
            );
        }
        // The evidence's conclusion is there, not cut off.
        assert!(!out.contains('…') && out.contains("the client sent a"), "{out}");
        for name in ["a.pcap", "b.pcap", "c.pcap"] {
            assert!(out.contains(&format!(" {name} ")), "COLUMNS={c}: {name}\n{out}");
        }
    }
}

#[test]
fn table_into_a_pipe_without_columns_is_not_wrapped() {
    let out = table(None, &[], &TABLE_CAPTURES);
    // Header, three rows, three box lines, the summary.
    assert_eq!(out.lines().count(), 8, "{out}");
    assert!(
        out.contains("outbound_.9080_._.reviews.bookinfo.svc.cluster.local"),
        "{out}"
    );
}

#[test]
fn wide_table_has_cipher_alpn_first_seen_and_all_the_evidence() {
    let out = table(Some("80"), &["-o", "wide"], &["go-tls13-mtls-rsa.pcap"]);
    let header = out.lines().nth(1).unwrap_or_default();
    for h in ["cipher", "alpn", "first seen", "evidence"] {
        assert!(header.contains(h), "{out}");
    }
    assert!(out.contains("TLS_AES_128_GCM_SHA256"), "{out}");
    let j = json(&run(&["analyze", "-o", "json", &capture("go-tls13-mtls-rsa.pcap")]));
    for line in j["flows"][0]["evidence"].as_array().unwrap() {
        assert!(out.contains(line.as_str().unwrap()), "{line} missing\n{out}");
    }
}

/// `capture -w - -o jsonl` wrote pcap and JSON into the same standard output.
#[test]
fn packets_and_a_report_on_standard_output_are_refused() {
    for args in [
        &["capture", "-i", "lo", "-w", "-", "-o", "jsonl"][..],
        &["capture", "-i", "lo", "-w", "/dev/stdout"],
        &["check", "-i", "lo", "-w", "-", "--require", "mtls"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{args:?}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(
            err.contains("cannot go there too") && err.contains("-w capture.pcap"),
            "{args:?}: {err}"
        );
    }
}

/// Several inputs got no file column: which capture a connection came from was lost.
#[test]
fn several_inputs_get_a_file_column_and_a_file_per_connection() {
    let files = ["go-tls13-mtls-rsa.pcap", "plaintext-http.pcap"];
    let out = table(Some("80"), &[], &files);
    assert!(out.lines().nth(1).unwrap_or_default().contains(" file "), "{out}");
    // Without the directory both share, never split.
    for f in files {
        assert!(out.contains(&format!(" {f} ")), "{f} missing\n{out}");
    }
    let one = table(Some("200"), &[], &files[..1]);
    assert!(!one.lines().nth(1).unwrap_or_default().contains(" file "), "{one}");
    let j = json(&run(&["analyze", "-o", "json", &capture(files[0]), &capture(files[1])]));
    let got: Vec<&str> = j["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(got, [capture(files[0]), capture(files[1])]);
    // With one input too, as every JSON connection names its input.
    let j = json(&run(&["analyze", "-o", "json", &capture(files[0])]));
    assert_eq!(j["flows"][0]["file"], capture(files[0]), "{j}");
}

/// `--progress` said it forced the bar, but indicatif hid it whenever standard error was not a
/// terminal (as here: a pipe, under CI=true).
#[test]
fn progress_flag_draws_the_bar_on_a_standard_error_that_is_not_a_terminal() {
    let file = capture("go-tls13-mtls-rsa.pcap");
    let o = run(&["analyze", "--progress", &file]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("go-tls13-mtls-rsa.pcap") && err.contains('['), "{err:?}");
    // The table on standard output is untouched.
    assert!(!stdout(&o).contains('\x1b'), "{}", stdout(&o));
    let o = run(&["analyze", &file]);
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

/// The README says loopback connections are labelled; the table did not say so. The bundled
/// plaintext capture moved to 127.0.0.1 -> 127.0.0.2 (Ethernet, IPv4: the addresses at bytes
/// 26..34 of each frame; the header checksum is not checked).
#[test]
fn loopback_connections_are_labelled_in_the_table() {
    let mut data = std::fs::read(capture("plaintext-http.pcap")).unwrap();
    let mut at = 24;
    while at + 16 <= data.len() {
        let incl = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = at + 16;
        for ip in [frame + 26, frame + 30] {
            assert_eq!(&data[ip..ip + 3], &[10, 99, 0], "not the lab's addresses");
            data[ip..ip + 3].copy_from_slice(&[127, 0, 0]);
        }
        at = frame + incl;
    }
    let path = tmp("loopback-http.pcap");
    std::fs::write(&path, &data).unwrap();
    let path = path.to_string_lossy().into_owned();
    let out = table(Some("200"), &[], &[&path]);
    assert!(
        out.contains("127.0.0.1:54414") && out.contains("plaintext, loopback"),
        "{out}"
    );
    let j = json(&run(&["analyze", "-o", "json", &path]));
    assert_eq!(j["flows"][0]["loopback"], true, "{j}");
}

// -r, completions, man pages and examples: the conventions tcpdump, kubectl and ripgrep set.

#[test]
fn read_file_flag_reads_as_file_arguments_do() {
    let (a, b) = (capture("openssl-tls12-mtls-rsa.pcap"), capture("plaintext-http.pcap"));
    let positional = run(&["analyze", "-o", "json", &a, &b]);
    assert_eq!(positional.status.code(), Some(0), "{}", stderr(&positional));
    for args in [
        vec!["analyze", "-o", "json", "-r", &a, "-r", &b],
        vec!["analyze", "-o", "json", "-r", &a, &b],
        vec!["analyze", "-o", "json", &a, "--read-file", &b],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert_eq!(json(&o)["flows"], json(&positional)["flows"], "{args:?}");
    }
    let o = run(&["check", "-r", &a, "--require", "mtls"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let o = run(&["check", "-r", &a, "-r", &b, "--require", "mtls"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the plaintext file was not read: {}",
        stdout(&o)
    );
}

#[test]
fn read_file_flags_and_file_arguments_are_read_in_command_line_order() {
    let o = run(&["analyze", "missing-2.pcap", "-r", "missing-1.pcap", "missing-3.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    let at = |name| err.find(name).unwrap_or_else(|| panic!("{name} not named: {err}"));
    assert!(
        at("missing-2.pcap") < at("missing-1.pcap") && at("missing-1.pcap") < at("missing-3.pcap"),
        "{err}"
    );
}

/// Every command, as `mtlscope help` would list it, with its subcommands.
const COMMANDS: &[&[&str]] = &[
    &["analyze"],
    &["capture"],
    &["check"],
    &["policy"],
    &["policy", "explain"],
    &["sniff"],
    &["cleanup"],
    &["agent"],
    &["monitor"],
    &["readiness"],
    &["completions"],
    &["man"],
];

#[test]
fn every_command_help_ends_with_examples() {
    for cmd in COMMANDS {
        for help in ["-h", "--help"] {
            let o = run(&[cmd, &[help][..]].concat());
            assert_eq!(o.status.code(), Some(0), "{cmd:?} {help}: {}", stderr(&o));
            let out = stdout(&o);
            let examples = out
                .find("\nExamples")
                .unwrap_or_else(|| panic!("{cmd:?} {help}: no examples:\n{out}"));
            assert!(
                out[examples..].contains(&format!("mtlscope {}", cmd.join(" "))),
                "{cmd:?} {help}: {out}"
            );
        }
    }
}

#[test]
fn bash_completions_name_every_command_and_flag() {
    let o = run(&["completions", "bash"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let script = stdout(&o);
    for cmd in COMMANDS {
        assert!(script.contains(cmd.last().unwrap()), "{cmd:?} missing");
    }
    for flag in ["--read-file", "--require", "--policy-from", "--output"] {
        assert!(script.contains(flag), "{flag} missing");
    }
    let path = tmp("mtlscope.bash");
    std::fs::write(&path, &script).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&path).output();
    if let Ok(s) = syntax {
        assert!(s.status.success(), "bash -n: {}", stderr(&s));
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let o = run(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", stderr(&o));
        assert!(stdout(&o).contains("analyze"), "{shell}");
    }
    assert_eq!(run(&["completions", "tcsh"]).status.code(), Some(2));
}

/// `man -l` renders the page, where man is installed; the roff is checked either way.
fn assert_man_page(page: &Path, name: &str, contains: &[&str]) {
    let roff = std::fs::read_to_string(page).unwrap();
    assert!(
        roff.starts_with(".ie") || roff.contains(&format!(".TH {name} 1")),
        "{name}: {roff}"
    );
    let rendered = match Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(page)
        .env("MANWIDTH", "100")
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => roff,
    };
    for c in contains {
        assert!(rendered.contains(c), "{name}: {c} missing:\n{rendered}");
    }
}

#[test]
fn man_page_renders_with_every_command() {
    let o = run(&["man"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = tmp("mtlscope.1");
    std::fs::write(&page, &o.stdout).unwrap();
    assert_man_page(&page, "mtlscope", &["analyze", "check", "sniff", "completions", "man"]);

    let dir = tmp("man1");
    let o = run(&["man", "--dir", &dir.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for cmd in COMMANDS {
        let name = format!("mtlscope-{}", cmd.join("-"));
        assert_man_page(&dir.join(format!("{name}.1")), &name, &["Examples"]);
    }
    assert_man_page(
        &dir.join("mtlscope-analyze.1"),
        "mtlscope-analyze",
        &["--read-file", "tcpdump -i eth0 -U -w -"],
    );
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
