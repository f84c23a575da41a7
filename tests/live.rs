//! Live capture inside network namespaces this test creates (two namespaces joined by a veth
//! pair, addresses only inside them), with real OpenSSL servers and clients. Needs root, `ip`
//! and `openssl`; skips with a message otherwise. CI runs it as root.

#[path = "support/lab.rs"]
mod lab;

use lab::{can_run, sh, Lab};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mtlscope"))
}

/// Start `mtlscope capture` in the background; wait until it is capturing.
fn start_capture(args: &[&str]) -> Child {
    let child = bin()
        .args(["capture", "-o", "jsonl"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // libpcap is open well within this; the tests leave margin on both sides of the traffic.
    std::thread::sleep(Duration::from_millis(700));
    child
}

fn verdicts_by_port(jsonl: &str) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = jsonl
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|j| j.get("verdict").is_some())
        .map(|j| {
            (
                j["server"]["port"].as_u64().unwrap(),
                j["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn expected() -> Vec<(u64, String)> {
    vec![(4433, "mtls".into()), (4434, "tls".into()), (8080, "plaintext".into())]
}

#[test]
fn capture_in_netns_classifies_and_writes_a_pcap_that_reanalyzes_the_same() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("a", 1);
    lab.servers();
    let pcap = lab.dir.join("out.pcap");
    let cap = start_capture(&[
        "--netns",
        &lab.server_ns(),
        "-i",
        &lab.server_if(),
        "--duration",
        "6s",
        "-f",
        "tcp",
        "-w",
        pcap.to_str().unwrap(),
    ]);
    lab.traffic(1);
    let o = cap.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(verdicts_by_port(&out), expected(), "{out}");
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(summary["summary"]["capture"]["dropped"], 0, "{out}");
    assert!(err.contains("0 dropped"), "{err}");

    // The -w file: readable by mtlscope (and tshark), same verdicts.
    let re = bin()
        .args(["analyze", "-o", "jsonl", pcap.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(re.status.code(), Some(0));
    assert_eq!(verdicts_by_port(&String::from_utf8_lossy(&re.stdout)), expected());
    if sh("command -v tshark").status.success() {
        let t = sh(&format!(
            "tshark -r {} -Y tls.handshake.type==1 2>/dev/null | wc -l",
            pcap.display()
        ));
        assert_eq!(String::from_utf8_lossy(&t.stdout).trim(), "2");
    }
}

#[test]
fn capture_by_pid_and_check_live() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("b", 2);
    let server_pid = lab.servers();
    let cap = start_capture(&[
        "--pid",
        &server_pid.to_string(),
        "-i",
        &lab.server_if(),
        "--duration",
        "5s",
    ]);
    lab.traffic(2);
    let o = cap.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(verdicts_by_port(&String::from_utf8_lossy(&o.stdout)), expected());

    // `check` with the same live options: the plaintext and server-only connections fail.
    let check = bin()
        .args([
            "check",
            "--netns",
            &lab.server_ns(),
            "-i",
            &lab.server_if(),
            "--duration",
            "5s",
            "--require",
            "mtls",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    lab.traffic(2);
    let o = check.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(":8080 plaintext: requires mtls") && out.contains(":4434 tls: requires mtls"),
        "{out}"
    );
    assert!(out.contains("3 matched, 1 passed, 2 failed"), "{out}");
}

/// Regression (issue 15): when the capture interface disappeared (a pod deleted during a
/// capture), `-o table`, `-o json` and `check -i` printed nothing though connections were seen,
/// and JSON lines lost their summary. Now every format writes the connections seen and a summary
/// naming the error, and the exit status is 2.
#[test]
fn interface_deleted_during_capture_still_reports_every_format() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("g", 8);
    lab.servers();
    let (ns, iface) = (lab.server_ns(), lab.server_if());
    let live = ["--netns", ns.as_str(), "-i", iface.as_str(), "--duration", "30s"];
    let spawn = |args: &[&str]| {
        bin()
            .args(args)
            .args(live)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let runs = [
        ("jsonl", spawn(&["capture", "-o", "jsonl"])),
        ("json", spawn(&["capture", "-o", "json"])),
        ("table", spawn(&["capture", "-o", "table"])),
        ("check", spawn(&["check", "--require", "any", "-o", "json"])),
    ];
    std::thread::sleep(Duration::from_millis(1000));
    lab.traffic(8);
    std::thread::sleep(Duration::from_millis(300));
    lab::ok(&format!("ip -n {ns} link del {iface}"));
    for (format, child) in runs {
        let o = child.wait_with_output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{format}: {out}\n{err}");
        let said = format!("capture on '{iface}' stopped early");
        assert!(err.contains(&said), "{format}: {err}");
        match format {
            "jsonl" => {
                assert_eq!(verdicts_by_port(&out), expected(), "{out}");
                let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
                assert!(last["summary"]["errors"][0].as_str().unwrap().contains(&said), "{out}");
            }
            "json" => {
                let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert_eq!(v["flows"].as_array().unwrap().len(), 3, "{out}");
                assert!(v["summary"]["errors"][0].as_str().unwrap().contains(&said), "{out}");
            }
            "table" => {
                for verdict in ["mtls", "tls", "plaintext"] {
                    assert!(out.contains(verdict), "{out}");
                }
                assert!(out.contains(&said), "{out}");
            }
            _ => {
                let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert_eq!(
                    (v["ok"].as_bool(), v["connections"].as_u64()),
                    (Some(false), Some(3)),
                    "{out}"
                );
                assert!(v["problems"][0].as_str().unwrap().contains(&said), "{out}");
            }
        }
    }
}

#[test]
fn loopback_leg_is_labelled_not_a_leak() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("c", 3);
    lab.serve("python3 -m http.server 15001 --bind 127.0.0.1");
    lab.wait_listening(15001);
    let cap = start_capture(&["--netns", &lab.server_ns(), "-i", "lo", "--duration", "3s"]);
    let o = sh(&format!(
        "ip netns exec {} python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:15001/').read()\"",
        lab.server_ns()
    ));
    assert!(o.status.success());
    let o = cap.wait_with_output().unwrap();
    let line = String::from_utf8_lossy(&o.stdout).lines().next().unwrap().to_string();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["verdict"], "plaintext");
    assert_eq!(v["loopback"], true);
    assert!(v["evidence"].to_string().contains("app <-> sidecar"), "{v}");
}

#[test]
fn errors_name_what_is_missing() {
    if !can_run() {
        return;
    }
    let o = bin()
        .args(["capture", "--netns", "mtlscope-no-such-ns", "-i", "eth0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no network namespace 'mtlscope-no-such-ns'"));

    let o = bin()
        .args(["capture", "--pid", "4000000000", "-i", "eth0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no process 4000000000"));

    let lab = Lab::new("d", 4);
    let o = bin()
        .args(["capture", "--netns", &lab.server_ns(), "-i", "eth9", "--duration", "1s"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("no interface 'eth9'") && e.contains(&lab.server_if()) && e.contains("lo"),
        "{e}"
    );

    // Without privileges: say which capability is missing.
    if sh("command -v setpriv").status.success() {
        let o = sh(&format!(
            "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all {} capture -i lo --duration 1s 2>&1",
            Path::new(env!("CARGO_BIN_EXE_mtlscope")).display()
        ));
        assert_eq!(o.status.code(), Some(2));
        let e = String::from_utf8_lossy(&o.stdout);
        assert!(e.contains("CAP_NET_RAW"), "{e}");
    }
}

#[test]
fn least_privilege_capabilities() {
    if !can_run() || !sh("command -v setpriv").status.success() {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_mtlscope");
    let as_nobody = |caps: &str, args: &str| {
        sh(&format!(
            "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps={caps} --ambient-caps={caps} {bin} {args} 2>&1"
        ))
    };
    // CAP_NET_RAW alone captures in the current namespace.
    let o = as_nobody("+net_raw", "capture -i lo --duration 1s");
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    // Entering another namespace needs CAP_SYS_ADMIN too, and the error says so.
    let lab = Lab::new("e", 5);
    let args = format!("capture --netns {} -i lo --duration 1s", lab.server_ns());
    let o = as_nobody("+net_raw", &args);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stdout).contains("needs CAP_SYS_ADMIN"));
    let o = as_nobody("+net_raw,+sys_admin", &args);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
}

/// The helper pod's `agent`: a "container" made of a real cgroup (as the cgroupfs driver names
/// it: kubepods/<qos>/pod<uid>/<container id>) holding the OpenSSL server in its namespace.
#[test]
fn agent_finds_the_container_by_cgroup_and_captures_in_its_netns() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("f", 6);
    let server_pid = lab.servers();
    let id = format!("{:064x}", 0x6d746c73636f7065u64 + u64::from(std::process::id()));
    let Some(container) = lab::Container::new(server_pid, &id) else {
        eprintln!("SKIP: agent test needs a writable cgroup v1 pids hierarchy");
        return;
    };
    let agent = bin()
        .args([
            "agent",
            "--container-id",
            &format!("containerd://{id}"),
            "-i",
            &lab.server_if(),
            "--duration",
            "5s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    lab.traffic(6);
    let o = agent.wait_with_output().unwrap();
    drop(container);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains(&format!("is process {server_pid}")), "{err}");
    assert_eq!(verdicts_by_port(&String::from_utf8_lossy(&o.stdout)), expected());
}

/// The helper pod's capabilities (src/helper_pod.rs): root in a container whose bounding set
/// is NET_RAW, SYS_ADMIN and SYS_PTRACE captures in another container's namespace, and
/// without any one of them it cannot, and says which is missing.
#[test]
fn helper_capabilities_are_enough_and_each_is_needed() {
    if !can_run() || !sh("command -v setpriv").status.success() {
        return;
    }
    let mut lab = Lab::new("h", 9);
    let server_pid = lab.servers();
    let id = format!("{:064x}", 0x68656c706572u64 + u64::from(std::process::id()));
    let Some(_container) = lab::Container::new(server_pid, &id) else {
        eprintln!("SKIP: needs a writable cgroup v1 pids hierarchy");
        return;
    };
    let agent = |caps: &str| {
        sh(&format!(
            "setpriv --bounding-set=-all,{caps} --inh-caps=-all {} agent --container-id containerd://{id} -i {} \
             --duration 1s 2>&1",
            env!("CARGO_BIN_EXE_mtlscope"),
            lab.server_if()
        ))
    };
    let o = agent("+net_raw,+sys_admin,+sys_ptrace");
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    for (caps, missing) in [
        ("+sys_admin,+sys_ptrace", "CAP_NET_RAW"),
        ("+net_raw,+sys_ptrace", "CAP_SYS_ADMIN"),
        ("+net_raw,+sys_admin", "CAP_SYS_PTRACE"),
    ] {
        let o = agent(caps);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(2), "with {caps}: {out}");
        assert!(out.contains(missing), "with {caps}: {out}");
    }
}

/// README's streaming example as written, `tcpdump -i IFACE -U -w - | mtlscope analyze - -o
/// jsonl`: with `-U` tcpdump writes each packet as it captures it, so every verdict comes out
/// while tcpdump is still running (without it, tcpdump holds its buffer until the buffer fills
/// or tcpdump stops); when tcpdump stops, the summary line follows.
#[test]
fn readme_streaming_example_gives_verdicts_while_tcpdump_runs() {
    if !can_run() || !sh("command -v tcpdump").status.success() {
        return;
    }
    let mut lab = Lab::new("g", 8);
    lab.servers();
    let mut tcpdump = Command::new("ip")
        .args(["netns", "exec", &lab.server_ns(), "tcpdump", "-i", &lab.server_if()])
        .args(["-U", "-w", "-", "tcp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let analyze = bin()
        .args(["analyze", "-", "-o", "jsonl"])
        .stdin(tcpdump.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    lab.traffic(8);

    let (tx, rx) = std::sync::mpsc::channel();
    let mut analyze = analyze;
    let out = analyze.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while verdicts_by_port(&lines.join("\n")).len() < 3 {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) => lines.push(l),
            Err(_) => panic!("no verdict while tcpdump runs (is -U honoured?): {lines:?}"),
        }
    }
    assert!(tcpdump.try_wait().unwrap().is_none(), "tcpdump stopped early");
    assert_eq!(verdicts_by_port(&lines.join("\n")), expected(), "{lines:?}");
    assert!(
        lines.iter().all(|l| l.contains(r#""file":"-""#)),
        "standard input is file `-`: {lines:?}"
    );

    sh(&format!("kill {}", tcpdump.id()));
    let _ = tcpdump.wait();
    let o = analyze.wait_with_output().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(summary["summary"]["connections"], 3, "{lines:?}");
}
