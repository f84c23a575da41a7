//! The static agent (`.ci/build-agent`: musl, no libpcap) captures with AF_PACKET and applies a
//! filter that the plugin side compiled with libpcap (`--bpf-program`), in the kernel.
//!
//! The agent under test is `$MTLSCOPE_AGENT_BIN` when set (`.ci/run` sets it to what
//! `.ci/build-agent` printed, and this test then checks that it is static), else this build's
//! `mtlscope`, which captures the same way. The programs are compiled here by the library, as
//! the plugin compiles them. Real OpenSSL and Python servers in network namespaces this test
//! creates (tests/support/lab.rs); needs root, and skips with a message otherwise.

#[path = "support/lab.rs"]
mod lab;

use lab::{can_run, sh, Lab};
use mtlscope::pipeline::filter;
use mtlscope::pipeline::source::LinkType;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The agent binary, and whether it is the static one built by `.ci/build-agent`.
fn agent_bin() -> (String, bool) {
    match std::env::var("MTLSCOPE_AGENT_BIN") {
        Ok(path) if !path.is_empty() => (path, true),
        _ => (env!("CARGO_BIN_EXE_mtlscope").to_string(), false),
    }
}

fn verdicts_by_port(jsonl: &str) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = jsonl
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
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

/// Runs the agent on the container for 4 s while the lab's clients connect to every port.
fn run_agent(lab: &Lab, n: u8, id: &str, args: &[&str]) -> std::process::Output {
    let (bin, _) = agent_bin();
    let agent = Command::new(bin)
        .args([
            "agent",
            "--container-id",
            &format!("containerd://{id}"),
            "--duration",
            "4s",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    lab.traffic(n);
    agent.wait_with_output().unwrap()
}

#[test]
fn static_agent_applies_a_filter_compiled_on_the_plugin_side() {
    if !can_run() {
        return;
    }
    let (bin, is_static) = agent_bin();
    if is_static {
        let ldd = sh(&format!("ldd {bin} 2>&1"));
        let said = String::from_utf8_lossy(&ldd.stdout);
        assert!(said.contains("not a dynamic executable"), "ldd {bin}: {said}");
    } else {
        eprintln!("NOTE: MTLSCOPE_AGENT_BIN is not set: testing this build's mtlscope, not the static agent");
    }
    let mut lab = Lab::new("s", 11);
    let server_pid = lab.servers();
    let id = format!("{:064x}", 0x737461746963u64 + u64::from(std::process::id()));
    let Some(_container) = lab::Container::new(server_pid, &id) else {
        eprintln!("SKIP: the agent test needs a writable cgroup hierarchy");
        return;
    };
    let iface = lab.server_if();

    // Ethernet (the pod's eth0): only the TLS 1.2 server's port gets through the kernel.
    let eth = filter::compile("tcp port 4434", LinkType::ETHERNET).unwrap();
    let o = run_agent(
        &lab,
        11,
        &id,
        &["-i", &iface, "--bpf-program", &eth.text(), "--bpf-link-type", "1"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(
        verdicts_by_port(&String::from_utf8_lossy(&o.stdout)),
        [(4434, "tls".to_string())],
        "{err}"
    );

    // `-i any` gives Linux cooked frames: a program compiled for them is moved to what the
    // kernel's filter sees, and still picks one port.
    let cooked = filter::compile("tcp port 4433", LinkType::LINUX_SLL).unwrap();
    let o = run_agent(
        &lab,
        11,
        &id,
        &["-i", "any", "--bpf-program", &cooked.text(), "--bpf-link-type", "113"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(
        verdicts_by_port(&String::from_utf8_lossy(&o.stdout)),
        [(4433, "mtls".to_string())],
        "{err}"
    );

    // A program for another link type than the interface's is refused, naming both.
    let o = Command::new(&bin)
        .args(["agent", "--container-id", &format!("containerd://{id}"), "-i", &iface])
        .args([
            "--duration",
            "1s",
            "--bpf-program",
            &cooked.text(),
            "--bpf-link-type",
            "113",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--bpf-program was compiled for link type LINUX_SLL (113)")
            && err.contains(&format!("'{iface}'"))
            && err.contains("ETHERNET (1)"),
        "{err}"
    );

    // Not a program: the flag is named with what is wrong.
    let o = Command::new(&bin)
        .args(["agent", "--container-id", &format!("containerd://{id}"), "-i", &iface])
        .args(["--duration", "1s", "--bpf-program", "2,6 0 0 0", "--bpf-link-type", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--bpf-program: the count says 2 instructions, 1 follow"),
        "{err}"
    );

    // The static agent has no libpcap: an expression is refused and the message says what to do.
    if is_static {
        let o = Command::new(&bin)
            .args(["agent", "--container-id", &format!("containerd://{id}"), "-i", &iface])
            .args(["--duration", "1s", "-f", "tcp port 4434"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.contains("built without libpcap") && err.contains("--bpf-program"),
            "{err}"
        );
    }
}
