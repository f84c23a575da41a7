//! Live capture inside network namespaces this test creates (two namespaces joined by a veth
//! pair, addresses only inside them), with real OpenSSL servers and clients. Needs root, `ip`
//! and `openssl`; skips with a message otherwise. CI runs it as root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mtlscope"))
}

fn sh(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh runs")
}

fn ok(cmd: &str) {
    let o = sh(cmd);
    assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
}

fn can_run() -> bool {
    let root = sh("id -u").stdout.starts_with(b"0\n");
    let tools = sh("command -v ip && command -v openssl && command -v python3")
        .status
        .success();
    if !root || !tools {
        eprintln!("SKIP: live capture tests need root, ip, openssl and python3");
    }
    root && tools
}

/// Two namespaces `<name>-c` (10.203.N.1) and `<name>-s` (10.203.N.2), removed on drop with
/// every process started in them.
struct Lab {
    name: String,
    dir: PathBuf,
    children: Vec<Child>,
}

impl Lab {
    fn new(tag: &str, n: u8) -> Lab {
        let name = format!("mtlst{}{tag}", std::process::id() % 10000);
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (c, s) = (format!("{name}-c"), format!("{name}-s"));
        ok(&format!(
            "ip netns add {c} && ip netns add {s} && \
             ip link add {name}a netns {c} type veth peer name {name}b netns {s} && \
             ip -n {c} addr add 10.203.{n}.1/24 dev {name}a && ip -n {s} addr add 10.203.{n}.2/24 dev {name}b && \
             ip -n {c} link set {name}a up && ip -n {s} link set {name}b up && \
             ip -n {c} link set lo up && ip -n {s} link set lo up"
        ));
        let lab = Lab {
            name,
            dir,
            children: Vec::new(),
        };
        lab.certs();
        lab
    }

    fn client_ns(&self) -> String {
        format!("{}-c", self.name)
    }
    fn server_ns(&self) -> String {
        format!("{}-s", self.name)
    }
    fn server_if(&self) -> String {
        format!("{}b", self.name)
    }

    fn certs(&self) {
        let d = self.dir.display();
        ok(&format!(
            "cd {d} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -subj /CN=test-ca -days 2 2>/dev/null && \
             for n in server client; do \
               openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $n.key -out $n.csr -subj /CN=$n.test 2>/dev/null && \
               printf 'subjectAltName=URI:spiffe://cluster.local/ns/test/sa/%s\\n' $n > $n.ext && \
               openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $n.pem -days 2 -extfile $n.ext 2>/dev/null; \
             done"
        ));
    }

    /// Start a long-running command in the server namespace.
    fn serve(&mut self, cmd: &str) -> u32 {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.server_ns(),
                "sh",
                "-c",
                &format!("cd {} && exec {cmd}", self.dir.display()),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }

    fn wait_listening(&self, port: u16) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            let o = sh(&format!(
                "ip netns exec {} ss -ltnH 'sport = :{port}'",
                self.server_ns()
            ));
            if !o.stdout.is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nothing listens on {port}");
    }

    /// Run a client in the client namespace to completion.
    fn client(&self, cmd: &str) {
        let o = sh(&format!(
            "cd {} && timeout 10 ip netns exec {} sh -c '{cmd}'",
            self.dir.display(),
            self.client_ns()
        ));
        assert!(
            o.status.success(),
            "client {cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Three connections: TLS 1.3 mTLS (4433), TLS 1.2 without client certificate (4434),
    /// plaintext HTTP (8080).
    fn servers(&mut self) -> u32 {
        let pid = self.serve("openssl s_server -quiet -tls1_3 -accept 4433 -cert server.pem -key server.key -CAfile ca.pem -Verify 1 -www");
        self.serve("openssl s_server -quiet -tls1_2 -accept 4434 -cert server.pem -key server.key -www");
        self.serve("python3 -m http.server 8080");
        for p in [4433, 4434, 8080] {
            self.wait_listening(p);
        }
        pid
    }

    fn traffic(&self, n: u8) {
        let host = format!("10.203.{n}.2");
        self.client(&format!("printf \"GET / HTTP/1.0\\r\\n\\r\\n\" | openssl s_client -quiet -connect {host}:4433 -servername server.test -cert client.pem -key client.key -CAfile ca.pem >/dev/null 2>&1"));
        self.client(&format!("printf \"GET / HTTP/1.0\\r\\n\\r\\n\" | openssl s_client -quiet -connect {host}:4434 -servername server.test -CAfile ca.pem >/dev/null 2>&1"));
        self.client(&format!(
            "python3 -c \"import urllib.request; urllib.request.urlopen(\\\"http://{host}:8080/\\\").read()\""
        ));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = sh(&format!("ip netns pids {0}-s | xargs -r kill; ip netns pids {0}-c | xargs -r kill; ip netns del {0}-c; ip netns del {0}-s", self.name));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
    let cg_root = Path::new("/sys/fs/cgroup/pids");
    if !can_run() || !cg_root.join("cgroup.procs").exists() {
        eprintln!("SKIP: agent test needs root and a writable cgroup v1 pids hierarchy");
        return;
    }
    let mut lab = Lab::new("f", 6);
    let server_pid = lab.servers();
    let id = format!("{:064x}", 0x6d746c73636f7065u64 + u64::from(std::process::id()));
    let pod_dir = cg_root.join(format!("kubepods/besteffort/pod-mtlscope-{}", std::process::id()));
    let cg = pod_dir.join(&id);
    std::fs::create_dir_all(&cg).unwrap();
    std::fs::write(cg.join("cgroup.procs"), server_pid.to_string()).unwrap();
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
    // Move the process back and remove the cgroups before asserting.
    let _ = std::fs::write(cg_root.join("cgroup.procs"), server_pid.to_string());
    let _ = std::fs::remove_dir(&cg);
    let _ = std::fs::remove_dir(&pod_dir);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains(&format!("is process {server_pid}")), "{err}");
    assert_eq!(verdicts_by_port(&String::from_utf8_lossy(&o.stdout)), expected());
}
