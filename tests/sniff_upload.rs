//! `kubectl mtlscope sniff` without `--image`: the plugin uploads the agent into a stock helper
//! image and runs the uploaded copy. The fake API server's node (tests/support/fake_apiserver.rs,
//! `Builder::empty_dirs` and `node_exec`) gives each helper pod a directory for its `emptyDir`
//! and runs what the plugin exec's on this machine, with `/mtlscope` mapped to that directory:
//! the upload's real `sh`, `head`, `wc`, `sha256sum` (busybox's applets, as in the default
//! helper image, when busybox is installed; else this machine's), then the uploaded file itself. The end to
//! end tests (root) capture with that copy in a network namespace with OpenSSL and Python peers,
//! over both exec protocols (v5, and v4 which cannot close stdin alone); the others make the
//! upload fail as nodes and images do and check what the user is told, and that the helper is
//! deleted.
//!
//! The agent uploaded: `MTLSCOPE_AGENT_BIN`, else a static build of `mtlscope` when there is
//! one (`$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/mtlscope`), else this build's
//! `mtlscope`; one that is dynamically linked is passed with the hidden `--allow-dynamic-agent`
//! (this machine, standing in for the node, has its C library).

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/lab.rs"]
mod lab;

use fake_apiserver::{node_exec, ExecAction, FakeApiServer, RecordedRequest, StdinFault};
use mtlscope::kube::elf::Arch;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

const NS: &str = "shop";
const BUSYBOX: &str = "docker.io/library/busybox:1.37";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mtlscope-upload-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn hex_id(n: u64) -> String {
    format!(
        "{:064x}",
        0x7570_6c6f_6164_0000u64 ^ (n << 20) ^ u64::from(std::process::id())
    )
}

fn pod(name: &str, node: &str, ip: &str, id: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name},
                     "creationTimestamp": "2026-11-01T10:00:00Z"},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "example/app:1"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "containerStatuses": [
            {"name": "app", "containerID": format!("containerd://{id}"), "image": "example/app:1", "imageID": "",
             "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2026-11-01T10:00:05Z"}}}]}
    })
}

/// A node as the kubelet reports it.
fn node(name: &str, arch: &str, os: &str, labels: Value) -> Value {
    let mut l = json!({"kubernetes.io/arch": arch, "kubernetes.io/os": os, "kubernetes.io/hostname": name});
    for (k, v) in labels.as_object().into_iter().flatten() {
        l[k] = v.clone();
    }
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": l},
        "status": {"nodeInfo": {"architecture": arch, "operatingSystem": os, "bootID": "b", "containerRuntimeVersion":
            "containerd://2.0.5", "kernelVersion": "6.8.0", "kubeProxyVersion": "", "kubeletVersion": "v1.33.0",
            "machineID": "m", "osImage": "Ubuntu 24.04", "systemUUID": "u"}}
    })
}

/// The agent to upload, and the flags that pass it.
fn agent() -> (PathBuf, Vec<String>) {
    let dynamic = PathBuf::from(env!("CARGO_BIN_EXE_mtlscope"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| dynamic.parent()?.parent().map(Path::to_owned));
    let chosen = std::env::var_os("MTLSCOPE_AGENT_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            target
                .map(|t| t.join("x86_64-unknown-linux-musl/release/mtlscope"))
                .filter(|p| p.exists() && cfg!(target_arch = "x86_64"))
        })
        .unwrap_or(dynamic);
    let mut flags = vec!["--agent-binary".to_owned(), chosen.display().to_string()];
    // The production check stays: only a file that is not static needs the hidden flag.
    let bytes = std::fs::read(&chosen).unwrap();
    if Arch::this_program().is_some_and(|a| mtlscope::kube::elf::check_static(&bytes, a).is_err()) {
        flags.push("--allow-dynamic-agent".to_owned());
    }
    (chosen, flags)
}

fn sha256_hex(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn plugin_cmd(kubeconfig: &Path, args: &[String]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-mtlscope"));
    c.args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST");
    c
}

async fn plugin(kubeconfig: &Path, args: &[String]) -> Output {
    plugin_cmd(kubeconfig, args).output().await.unwrap()
}

fn args(list: &[&str], extra: &[String]) -> Vec<String> {
    list.iter()
        .map(|s| (*s).to_owned())
        .chain(extra.iter().cloned())
        .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn execs(server: &FakeApiServer) -> Vec<RecordedRequest> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/exec"))
        .collect()
}

fn exec_command(r: &RecordedRequest) -> Vec<String> {
    r.query
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect()
}

fn created_pods(server: &FakeApiServer) -> Vec<Value> {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/pods"))
        .filter_map(RecordedRequest::json)
        .collect()
}

fn helpers_left(server: &FakeApiServer) -> Vec<String> {
    server
        .pod_names()
        .into_iter()
        .filter(|p| p.contains("/mtlscope-"))
        .collect()
}

fn deletes(server: &FakeApiServer) -> usize {
    server.requests().iter().filter(|r| r.method == "DELETE").count()
}

/// The fake cluster of the failure tests: pod `web-0` on amd64 node `node-1`, a kubelet that
/// starts helpers at once, and a node that runs what is exec'd.
fn one_pod() -> fake_apiserver::Builder {
    FakeApiServer::builder()
        .objects([
            pod("web-0", "node-1", "10.1.0.2", &hex_id(1)),
            node("node-1", "amd64", "linux", json!({})),
        ])
        .kubelet(0)
        .empty_dirs()
        .exec(node_exec)
}

// ---------------------------------------------------------------------------------------------
// End to end: the uploaded copy captures real TLS (root)
// ---------------------------------------------------------------------------------------------

async fn wait_for_agent_exec(server: &FakeApiServer) {
    let start = Instant::now();
    while execs(server).len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no agent exec: {:?}",
            server.request_lines()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
}

async fn uploaded_agent_captures(v4_only: bool, n: u8) {
    if !lab::can_run() {
        return;
    }
    let mut lab = lab::Lab::new(if v4_only { "u4" } else { "u5" }, n);
    let server_pid = lab.servers();
    let id = hex_id(u64::from(n));
    let Some(_container) = lab::Container::new(server_pid, &id) else {
        eprintln!("SKIP: needs a writable cgroup hierarchy");
        return;
    };
    let mut builder = FakeApiServer::builder()
        .objects([
            pod("web-0", "node-1", &format!("10.203.{n}.2"), &id),
            pod("client-0", "node-2", &format!("10.203.{n}.1"), &hex_id(99)),
            node("node-1", "amd64", "linux", json!({})),
        ])
        .kubelet(1)
        .empty_dirs()
        .exec(node_exec);
    if v4_only {
        builder = builder.exec_v4_only();
    }
    let server = builder.start().await;
    let dir = temp_dir(&format!("e2e-{n}"));
    let kc = server.kubeconfig(&dir, NS);
    let (agent, agent_flags) = agent();
    let iface = lab.server_if();
    let a = args(
        &["sniff", "web-0", "-i", &iface, "--duration", "6s", "-o", "jsonl"],
        &agent_flags,
    );
    let traffic = async {
        wait_for_agent_exec(&server).await;
        tokio::task::spawn_blocking(move || {
            lab.traffic(n);
            lab
        })
        .await
        .unwrap()
    };
    let started = Instant::now();
    let (o, _lab) = tokio::join!(plugin(&kc, &a), traffic);
    let err = text(&o.stderr);
    eprintln!("{err}");
    assert_eq!(o.status.code(), Some(0), "{err}");

    // The verdicts, from the uploaded copy.
    let lines: Vec<Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut got: Vec<(u64, String)> = lines
        .iter()
        .filter(|l| l.get("summary").is_none())
        .map(|f| {
            (
                f["server"]["port"].as_u64().unwrap(),
                f["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (4433, "mtls".to_owned()),
            (4434, "tls".to_owned()),
            (8080, "plaintext".to_owned())
        ],
        "{err}"
    );
    assert_eq!(lines.last().unwrap()["summary"]["connections"], 3);

    // One upload exec (length and SHA-256 first), then the agent from the emptyDir.
    let execs = execs(&server);
    assert_eq!(execs.len(), 2, "{:?}", server.request_lines());
    let size = std::fs::metadata(&agent).unwrap().len();
    let sha = sha256_hex(&agent);
    let upload = exec_command(&execs[0]);
    assert_eq!(&upload[..2], ["sh", "-c"]);
    assert_eq!(&upload[3..], ["mtlscope-upload", "/mtlscope", &size.to_string(), &sha]);
    let run = exec_command(&execs[1]);
    assert_eq!(
        &run[..4],
        [
            "/mtlscope/agent",
            "agent",
            "--container-id",
            &format!("containerd://{id}")
        ]
    );
    // The uploaded file is the agent, byte for byte, executable, and it is what ran.
    let files = server.empty_dir_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].path, "/mtlscope/agent");
    assert_eq!((files[0].len, files[0].sha256.as_str()), (size, sha.as_str()));
    assert_eq!(files[0].mode, 0o555);
    assert!(
        err.contains(&format!(
            "mtlscope agent: container containerd://{id} is process {server_pid}"
        )),
        "{err}"
    );
    let exits: Vec<Option<i32>> = server.exec_exits().iter().map(|e| e.1).collect();
    assert_eq!(exits.first(), Some(&Some(0)), "the upload's script succeeded");
    // The upload time, as the plugin measured it.
    let took = err
        .lines()
        .find_map(|l| l.split(" in ").nth(1)?.split(" s: ").next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no upload time in {err}"));
    eprintln!(
        "upload of {size} bytes over exec {}: {took:.2} s (whole run {:.1} s)",
        if v4_only { "v4" } else { "v5" },
        started.elapsed().as_secs_f64()
    );

    // The helper: busybox, an emptyDir a little larger than the agent, root read-only.
    let created = created_pods(&server);
    assert_eq!(created.len(), 1);
    let spec = &created[0]["spec"];
    let c = &spec["containers"][0];
    assert_eq!(c["image"], BUSYBOX);
    assert_eq!(c["volumeMounts"], json!([{"name": "agent", "mountPath": "/mtlscope"}]));
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(spec["automountServiceAccountToken"], false);
    let limit = spec["volumes"][0]["emptyDir"]["sizeLimit"].as_str().unwrap();
    let mib: u64 = limit.trim_end_matches("Mi").parse().unwrap();
    assert!(
        mib << 20 > size && mib << 20 < size * 2 + (2 << 20),
        "{limit} for {size}"
    );
    assert!(helpers_left(&server).is_empty());
}

#[tokio::test]
async fn the_uploaded_agent_captures_over_exec_v5() {
    uploaded_agent_captures(false, 8).await;
}

/// API servers before 1.30: v4 cannot close stdin, and the upload never needs it to.
#[tokio::test]
async fn the_uploaded_agent_captures_over_exec_v4() {
    uploaded_agent_captures(true, 9).await;
}

// ---------------------------------------------------------------------------------------------
// What the user is told when the upload cannot work
// ---------------------------------------------------------------------------------------------

/// Run the plugin against `server` for `web-0`; its stderr, once it ended with `code`, and the
/// helper deleted.
async fn fails(server: &FakeApiServer, name: &str, extra: &[&str], code: i32) -> String {
    let dir = temp_dir(name);
    let kc = server.kubeconfig(&dir, NS);
    let (_, agent_flags) = agent();
    let mut a = args(&["sniff", "web-0", "--duration", "5s"], &agent_flags);
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    let o = tokio::time::timeout(Duration::from_secs(120), plugin(&kc, &a))
        .await
        .expect("the plugin ends");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert!(helpers_left(server).is_empty(), "{:?}", server.pod_names());
    err
}

#[tokio::test]
async fn an_image_without_a_shell_is_named_with_what_to_pass() {
    let server = one_pod()
        .shell_less_image("gcr.io/distroless/static:nonroot")
        .start()
        .await;
    let err = fails(
        &server,
        "no-shell",
        &["--helper-image", "gcr.io/distroless/static:nonroot"],
        2,
    )
    .await;
    assert!(
        err.contains("the helper image gcr.io/distroless/static:nonroot has no shell"),
        "{err}"
    );
    assert!(err.contains("executable file not found in $PATH"), "{err}");
    assert!(err.contains("--helper-image") && err.contains("--image"), "{err}");
    assert_eq!(deletes(&server), 1);
}

#[tokio::test]
async fn a_cut_upload_says_how_many_bytes_arrived() {
    let server = one_pod().stdin_fault(StdinFault::CutAfter(100_000)).start().await;
    let err = fails(&server, "cut", &[], 2).await;
    let (agent, _) = agent();
    let size = std::fs::metadata(agent).unwrap().len();
    assert!(
        err.contains(&format!("was cut: 100000 of {size} bytes arrived")),
        "{err}"
    );
    // Nothing half-uploaded became the agent, and no agent ran.
    assert!(server.empty_dir_files().iter().all(|f| f.path != "/mtlscope/agent"));
    assert_eq!(execs(&server).len(), 1);
}

#[tokio::test]
async fn a_changed_byte_is_a_checksum_mismatch_and_nothing_runs() {
    let server = one_pod().stdin_fault(StdinFault::FlipByte(70_000)).start().await;
    let err = fails(&server, "checksum", &[], 2).await;
    let (agent, _) = agent();
    let sha = sha256_hex(&agent);
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(
        err.contains(&format!(", not {sha} (that of {})", agent.display())),
        "{err}"
    );
    let files = server.empty_dir_files();
    assert!(files.iter().all(|f| f.path != "/mtlscope/agent"), "{files:?}");
    assert!(
        files
            .iter()
            .any(|f| f.path == "/mtlscope/.agent.part" && f.sha256 != sha),
        "{files:?}"
    );
    assert_eq!(execs(&server).len(), 1);
}

/// An arm64 node, and neither the plugin (this test build) nor anything beside it is an arm64
/// agent: the error names the three places and --image, before anything is created.
#[tokio::test]
async fn an_architecture_with_no_agent_is_an_error_before_anything_is_created() {
    let server = FakeApiServer::builder()
        .objects([
            pod("web-0", "node-a", "10.1.0.2", &hex_id(1)),
            node("node-a", "arm64", "linux", json!({})),
        ])
        .kubelet(0)
        .start()
        .await;
    let dir = temp_dir("arm64");
    let kc = server.kubeconfig(&dir, NS);
    let o = plugin(&kc, &args(&["sniff", "web-0"], &[])).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for part in [
        "no agent for linux/arm64 nodes",
        "--agent-binary PATH was not given",
        "this plugin (",
        "there is no mtlscope-agent-linux-arm64 beside it",
        "--image IMAGE",
    ] {
        assert!(err.contains(part), "{part} missing from {err}");
    }
    assert!(created_pods(&server).is_empty());
    // --agent-binary of another architecture is refused, with the reason.
    let o = plugin(
        &kc,
        &args(
            &["sniff", "web-0", "--agent-binary", env!("CARGO_BIN_EXE_mtlscope")],
            &[],
        ),
    )
    .await;
    let err = text(&o.stderr);
    assert!(
        err.contains("cannot run in the helper on linux/arm64 nodes: it is built for x86-64 (amd64), not for AArch64"),
        "{err}"
    );
    assert!(created_pods(&server).is_empty());
}

/// This build's `mtlscope` is dynamically linked: refused without the hidden flag.
#[tokio::test]
async fn a_dynamic_agent_binary_is_refused_with_its_interpreter() {
    let bin = env!("CARGO_BIN_EXE_mtlscope");
    let server = one_pod().start().await;
    let dir = temp_dir("dynamic");
    let kc = server.kubeconfig(&dir, NS);
    if mtlscope::kube::elf::check_static(&std::fs::read(bin).unwrap(), Arch::Amd64).is_ok()
        || !cfg!(target_arch = "x86_64")
    {
        eprintln!("SKIP: this build of mtlscope is static, or not for amd64");
        return;
    }
    let o = plugin(&kc, &args(&["sniff", "web-0", "--agent-binary", bin], &[])).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("--agent-binary {bin} cannot run in the helper on linux/amd64 nodes: it is dynamically linked (its interpreter is /")),
        "{err}"
    );
    assert!(created_pods(&server).is_empty());
}

/// Ctrl-C while the agent is on its way: the plugin stops at once and deletes the helper.
#[tokio::test]
async fn ctrl_c_during_the_upload_deletes_the_helper() {
    // The node takes the upload's bytes slowly: a process that does not read its stdin, so
    // the stream backs up while the plugin sends.
    let server = FakeApiServer::builder()
        .objects([
            pod("web-0", "node-1", "10.1.0.2", &hex_id(1)),
            node("node-1", "amd64", "linux", json!({})),
        ])
        .kubelet(0)
        .empty_dirs()
        .exec(|req| {
            if req.command.first().map(String::as_str) == Some("sh") {
                let mut cmd = std::process::Command::new("sleep");
                cmd.arg("60");
                return ExecAction::Run(cmd);
            }
            node_exec(req)
        })
        .start()
        .await;
    let dir = temp_dir("ctrl-c");
    let kc = server.kubeconfig(&dir, NS);
    let (_, agent_flags) = agent();
    let child = plugin_cmd(&kc, &args(&["sniff", "web-0"], &agent_flags))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while execs(&server).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{:?}",
            server.request_lines()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let o = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the plugin stops after one Ctrl-C")
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted; helper pods deleted"), "{err}");
    assert!(!err.contains("agent uploaded"), "{err}");
    assert_eq!(deletes(&server), 1);
    assert!(helpers_left(&server).is_empty());
    // No agent was started.
    assert_eq!(execs(&server).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Nodes, and --dry-run
// ---------------------------------------------------------------------------------------------

/// A Windows node and an EKS Fargate node are skipped with a warning; the dry run shows the
/// upload into the Linux node's helper.
#[tokio::test]
async fn windows_and_virtual_nodes_are_skipped_and_the_dry_run_shows_the_upload() {
    let server = FakeApiServer::builder()
        .objects([
            pod("web-0", "node-1", "10.1.0.2", &hex_id(1)),
            pod("web-1", "win-1", "10.1.0.3", &hex_id(2)),
            pod("web-2", "fargate-ip-10-0-1-1", "10.1.0.4", &hex_id(3)),
            node("node-1", "amd64", "linux", json!({})),
            node("win-1", "amd64", "windows", json!({})),
            node(
                "fargate-ip-10-0-1-1",
                "amd64",
                "linux",
                json!({"eks.amazonaws.com/compute-type": "fargate"}),
            ),
        ])
        .start()
        .await;
    let dir = temp_dir("nodes");
    let kc = server.kubeconfig(&dir, NS);
    let (agent, agent_flags) = agent();
    let o = plugin(
        &kc,
        &args(
            &["sniff", "-l", "app in (web-0,web-1,web-2)", "--dry-run"],
            &agent_flags,
        ),
    )
    .await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("skipping pod {NS}/web-1 on node win-1: it runs windows")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "skipping pod {NS}/web-2 on node fargate-ip-10-0-1-1: it is an EKS Fargate node \
             (eks.amazonaws.com/compute-type=fargate)"
        )),
        "{err}"
    );
    let yaml = text(&o.stdout);
    let size = std::fs::metadata(&agent).unwrap().len();
    let sha = sha256_hex(&agent);
    assert!(yaml.contains("the plugin uploads the agent"), "{yaml}");
    assert!(
        yaml.contains(&format!("#   sh -c \"$SCRIPT\" mtlscope-upload /mtlscope {size} {sha}")),
        "{yaml}"
    );
    assert!(yaml.contains("#     head -c \"$2\" > \"$part\" || exit 5"), "{yaml}");
    assert!(
        yaml.contains(&format!(
            "#   {NS}/web-0: /mtlscope/agent agent --container-id containerd://{}",
            hex_id(1)
        )),
        "{yaml}"
    );
    let pod: Value = serde_norway::from_str(&yaml).unwrap();
    assert_eq!(pod["spec"]["nodeName"], "node-1");
    assert_eq!(pod["spec"]["containers"][0]["image"], BUSYBOX);
    assert_eq!(pod["spec"]["volumes"][0]["name"], "agent");
    assert!(server.requests().iter().all(|r| r.method == "GET"));
    // Only Windows and virtual nodes: nothing to capture in.
    let o = plugin(&kc, &args(&["sniff", "web-1", "--dry-run"], &agent_flags)).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("nothing to capture in: pod shop/web-1 on node win-1: it runs windows"),
        "{err}"
    );
}

/// Without the right to read nodes the plugin assumes they are like itself, and says so.
#[tokio::test]
async fn nodes_that_cannot_be_read_are_taken_to_be_like_the_plugin() {
    let server = FakeApiServer::builder()
        .objects([
            pod("web-0", "node-1", "10.1.0.2", &hex_id(1)),
            node("node-1", "amd64", "linux", json!({})),
        ])
        .forbid("", "nodes", None)
        .start()
        .await;
    let dir = temp_dir("nodes-forbidden");
    let kc = server.kubeconfig(&dir, NS);
    let (_, agent_flags) = agent();
    let o = plugin(&kc, &args(&["sniff", "web-0", "--dry-run"], &agent_flags)).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("cannot read node node-1: reading nodes is not allowed (RBAC: get nodes)"),
        "{err}"
    );
    if cfg!(target_arch = "x86_64") {
        assert!(
            err.contains("every node is taken to be linux/amd64, like this plugin"),
            "{err}"
        );
    }
    assert!(text(&o.stdout).contains("the plugin uploads the agent"));
}
