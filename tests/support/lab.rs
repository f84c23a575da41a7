//! Two network namespaces joined by a veth pair, with real OpenSSL and Python servers and
//! clients: the test bed of tests/live.rs and tests/sniff.rs. Needs root, `ip`, `openssl` and
//! `python3`; [`can_run`] says so (and the tests skip) otherwise. Addresses live only inside the
//! namespaces this creates; dropping a [`Lab`] kills what it started and deletes them.
#![allow(dead_code)] // Each test binary that includes this module uses a different part of it.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn sh(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh runs")
}

pub fn ok(cmd: &str) {
    let o = sh(cmd);
    assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
}

pub fn can_run() -> bool {
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
pub struct Lab {
    pub name: String,
    pub dir: PathBuf,
    children: Vec<Child>,
}

impl Lab {
    pub fn new(tag: &str, n: u8) -> Lab {
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

    pub fn client_ns(&self) -> String {
        format!("{}-c", self.name)
    }
    pub fn server_ns(&self) -> String {
        format!("{}-s", self.name)
    }
    pub fn server_if(&self) -> String {
        format!("{}b", self.name)
    }

    pub fn certs(&self) {
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
    pub fn serve(&mut self, cmd: &str) -> u32 {
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

    pub fn wait_listening(&self, port: u16) {
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
    pub fn client(&self, cmd: &str) {
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
    pub fn servers(&mut self) -> u32 {
        let pid = self.serve("openssl s_server -quiet -tls1_3 -accept 4433 -cert server.pem -key server.key -CAfile ca.pem -Verify 1 -www");
        self.serve("openssl s_server -quiet -tls1_2 -accept 4434 -cert server.pem -key server.key -www");
        self.serve("python3 -m http.server 8080");
        for p in [4433, 4434, 8080] {
            self.wait_listening(p);
        }
        pid
    }

    pub fn traffic(&self, n: u8) {
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

/// A "container": the lab's server process in a cgroup named as a kubelet names a container's:
/// on cgroup v1 (a `pids` hierarchy) as the cgroupfs driver does, `kubepods/<qos>/pod<uid>/<id>`;
/// on cgroup v2 as the systemd driver with containerd does,
/// `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope`.
/// The process goes back to the root cgroup and the directories are removed on drop.
pub struct Container {
    root: PathBuf,
    /// Created directories, outermost first.
    dirs: Vec<PathBuf>,
    pid: u32,
}

impl Container {
    pub fn new(pid: u32, id: &str) -> Option<Container> {
        let tag = format!("{}x{}", std::process::id(), &id[id.len() - 8..]);
        let v1 = PathBuf::from("/sys/fs/cgroup/pids");
        let (root, parts) = if v1.join("cgroup.procs").exists() {
            (
                v1,
                vec![
                    "kubepods".to_owned(),
                    "besteffort".to_owned(),
                    format!("pod-mtlscope-{tag}"),
                    id.to_owned(),
                ],
            )
        } else {
            let v2 = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.join("cgroup.controllers").exists())?;
            let pod = format!("kubepods-besteffort-podmtlscope{tag}.slice");
            (
                v2,
                vec![
                    "kubepods.slice".to_owned(),
                    "kubepods-besteffort.slice".to_owned(),
                    pod,
                    format!("cri-containerd-{id}.scope"),
                ],
            )
        };
        let mut dirs = Vec::new();
        let mut dir = root.clone();
        for part in parts {
            dir = dir.join(part);
            if !dir.exists() {
                std::fs::create_dir(&dir).ok()?;
                dirs.push(dir.clone());
            }
        }
        let c = Container { root, dirs, pid };
        std::fs::write(dir.join("cgroup.procs"), pid.to_string()).ok()?;
        Some(c)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::fs::write(self.root.join("cgroup.procs"), self.pid.to_string());
        for d in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}
