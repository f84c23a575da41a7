//! `kubectl mtlscope sniff` and `cleanup`, end to end: the plugin binary, through a kubeconfig,
//! against the in-process fake API server (real HTTP, JSON and exec WebSockets; tests/support).
//! The fake's exec runs the real `mtlscope agent` on this machine for the end-to-end tests
//! (root: a network namespace with live OpenSSL traffic, the server process in a cgroup named
//! like a container's), and scripted agents for the plugin's own paths (several pods, failures,
//! Ctrl-C). Every run here uses a prebuilt helper image (`--image`, added by [`plugin`] when a
//! test names none); the default, the agent uploaded into a stock image, is tests/sniff_upload.rs.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/lab.rs"]
mod lab;

use fake_apiserver::{ExecAction, ExecRequest, FakeApiServer, RecordedRequest, Reply};
use mtlscope::kube::wire::{self, AgentLine};
use mtlscope::pipeline::engine::Config;
use mtlscope::pipeline::enrich::{Kubernetes, PolicyReport};
use mtlscope::pipeline::flows::Endpoint;
use mtlscope::pipeline::record::{CaptureStats, FlowReport, Output as _, Summary};
use mtlscope::pipeline::runner::analyze_files;
use mtlscope::policy::{self as mesh_policy, DecidedBy, Level, Mode};
use mtlscope::report::JsonLines;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

const NS: &str = "shop";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mtlscope-sniff-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn hex_id(n: u64) -> String {
    format!(
        "{:064x}",
        0x6d74_6c73_636f_7065u64 ^ (n << 20) ^ u64::from(std::process::id())
    )
}

fn pod(name: &str, node: &str, ip: &str, app: &str, id: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": app},
                     "annotations": {"sidecar.istio.io/status": "{}"},
                     "creationTimestamp": "2026-11-01T10:00:00Z"},
        "spec": {"nodeName": node, "containers": [
            {"name": "app", "image": "example/app:1", "ports": [{"containerPort": 4433}]},
            {"name": "istio-proxy", "image": "istio/proxyv2:1.24"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "containerStatuses": [
            {"name": "app", "containerID": format!("containerd://{id}"), "image": "example/app:1", "imageID": "",
             "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2026-11-01T10:00:05Z"}}},
            {"name": "istio-proxy", "containerID": format!("containerd://{}", "e".repeat(64)), "image": "istio/proxyv2:1.24",
             "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2026-11-01T10:00:05Z"}}}]}
    })
}

fn strict_policy() -> Value {
    json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
           "metadata": {"name": "default", "namespace": NS, "creationTimestamp": "2026-11-01T09:00:00Z"},
           "spec": {"mtls": {"mode": "STRICT"}}})
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": NS},
           "spec": {"selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app"}]}}}})
}

/// The prebuilt helper image of the runs here.
const IMAGE: &str = "example.org/mtlscope:test";

/// `args`, with `--image IMAGE` for a `sniff` that names no image.
fn with_image<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    if args.first() == Some(&"sniff") && !args.contains(&"--image") {
        v.extend(["--image", IMAGE]);
    }
    v
}

/// The plugin binary, as kubectl runs it, with a kubeconfig for the fake.
async fn plugin(kubeconfig: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-mtlscope"))
        .args(with_image(args))
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .await
        .unwrap()
}

/// The plugin in the background, its output collected, to signal it while it runs.
fn spawn_plugin(kubeconfig: &Path, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-mtlscope"))
        .args(with_image(args))
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn created_pods(server: &FakeApiServer) -> Vec<Value> {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == format!("/api/v1/namespaces/{NS}/pods"))
        .filter_map(RecordedRequest::json)
        .collect()
}

fn deleted(server: &FakeApiServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.rsplit('/').next().unwrap_or_default().to_owned())
        .collect()
}

fn helpers_left(server: &FakeApiServer) -> Vec<String> {
    server
        .pod_names()
        .into_iter()
        .filter(|p| p.contains("/mtlscope-"))
        .collect()
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

fn capture_file(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name)
        .display()
        .to_string()
}

/// What the agent writes, through the writer it writes with: its connections, then its summary.
fn agent_lines(flows: &[FlowReport], summary: &Summary) -> Vec<u8> {
    let mut out = JsonLines::new(Vec::new());
    for f in flows {
        out.decided(f).unwrap();
    }
    out.summary(summary).unwrap();
    out.into_inner()
}

/// The kernel's counters of a live capture on eth0.
fn kernel(packets: u32) -> CaptureStats {
    CaptureStats {
        interface: "eth0".into(),
        packets: u64::from(packets),
        received: packets,
        seconds: 1.5,
        ..CaptureStats::default()
    }
}

/// A scripted agent: one plaintext HTTP connection (the one of the bundled capture) from
/// 10.1.0.5 to the given address, then the summary.
fn scripted_agent(req: &ExecRequest, server_ip: &str) -> ExecAction {
    let (flows, _) = analyze_files(&[capture_file("plaintext-http.pcap")], None, Config::default()).unwrap();
    let mut flow = flows.into_iter().next().unwrap();
    assert_eq!(flow.verdict.verdict.name(), "plaintext");
    flow.client = Endpoint {
        ip: "10.1.0.5".parse().unwrap(),
        port: 40000,
    };
    flow.server = Endpoint {
        ip: server_ip.parse().unwrap(),
        port: 4433,
    };
    flow.loopback = false;
    let summary = Summary {
        connections: 1,
        packets: 10,
        tcp_packets: 10,
        capture: Some(kernel(10)),
        ..Summary::default()
    };
    let id = req
        .command
        .iter()
        .skip_while(|a| *a != "--container-id")
        .nth(1)
        .cloned()
        .unwrap_or_default();
    ExecAction::Script {
        stdout: agent_lines(&[flow], &summary),
        stderr: format!("mtlscope agent: container {id} is process 4242\n").into_bytes(),
        exit_code: 0,
    }
}

// ---------------------------------------------------------------------------------------------
// --dry-run
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn dry_run_prints_the_helper_pod_and_creates_nothing() {
    let server = one_pod().start().await;
    let dir = temp_dir("dry-run");
    let kc = server.kubeconfig(&dir, NS);
    let o = plugin(
        &kc,
        &[
            "sniff",
            "web-0",
            "--dry-run",
            "-o",
            "yaml",
            "-f",
            "tcp port 4433",
            "--duration",
            "30s",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let yaml = text(&o.stdout);
    eprintln!("{yaml}");
    // The filter goes compiled, for the Ethernet of the pod's eth0: the static agent has no libpcap.
    let program = mtlscope::pipeline::filter::compile("tcp port 4433", mtlscope::pipeline::source::LinkType::ETHERNET)
        .unwrap()
        .text();
    assert!(
        yaml.contains(&format!(
            "#   {NS}/web-0: mtlscope agent --container-id containerd://{} -i eth0 --stop-on-stdin --bpf-program '{program}' \
             --bpf-link-type 1 --duration 30000ms",
            hex_id(1)
        )),
        "{yaml}"
    );
    let pod: Value = serde_norway::from_str(&yaml).unwrap();
    assert_eq!(pod["apiVersion"], "v1");
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["metadata"]["generateName"], "mtlscope-node-1-");
    assert_eq!(pod["metadata"]["namespace"], NS);
    assert_eq!(
        pod["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "kubectl-mtlscope"
    );
    assert_eq!(
        pod["metadata"]["annotations"]["mtlscope.io/targets"],
        format!("{NS}/web-0")
    );
    let spec = &pod["spec"];
    assert_eq!(spec["nodeName"], "node-1");
    assert_eq!(spec["hostPID"], true);
    // 30 s of capture + 2 min to start + 1 min for the agent's end and cleanup.
    assert_eq!(spec["activeDeadlineSeconds"], 210);
    assert_eq!(spec["tolerations"], json!([{"operator": "Exists"}]));
    let c = &spec["containers"][0];
    assert_eq!(c["image"], IMAGE);
    // A prebuilt image: nothing to upload, no volume.
    assert!(
        spec.get("volumes").is_none() && c.get("volumeMounts").is_none(),
        "{yaml}"
    );
    assert_eq!(
        c["securityContext"]["capabilities"]["add"],
        json!(["NET_RAW", "SYS_ADMIN", "SYS_PTRACE"])
    );
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["resources"]["limits"], json!({"cpu": "1", "memory": "512Mi"}));
    // Read only: nothing was created, nothing was exec'd.
    assert!(
        server.requests().iter().all(|r| r.method == "GET"),
        "{:?}",
        server.request_lines()
    );
}

// ---------------------------------------------------------------------------------------------
// Several pods, scripted agents
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_deployment_gets_one_helper_per_node_and_one_agent_per_pod() {
    let server = FakeApiServer::builder()
        .objects([
            pod("web-a", "node-1", "10.1.0.2", "web", &hex_id(1)),
            pod("web-b", "node-2", "10.1.0.3", "web", &hex_id(2)),
            pod("web-c", "node-1", "10.1.0.4", "web", &hex_id(3)),
            pod("client", "node-3", "10.1.0.5", "client", &hex_id(4)),
            deployment(),
            strict_policy(),
        ])
        .kubelet(1)
        .exec(|req| {
            let ip = match req.command.iter().skip_while(|a| *a != "--container-id").nth(1) {
                Some(id) if id.ends_with(&hex_id(1)) => "10.1.0.2",
                Some(id) if id.ends_with(&hex_id(2)) => "10.1.0.3",
                _ => "10.1.0.4",
            };
            scripted_agent(req, ip)
        })
        .start()
        .await;
    let dir = temp_dir("deploy");
    let kc = server.kubeconfig(&dir, NS);
    let o = plugin(
        &kc,
        &[
            "sniff",
            "deploy/web",
            "-o",
            "json",
            "--image",
            "registry.test/mtlscope:dev",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let created = created_pods(&server);
    let nodes: Vec<&str> = created
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["node-1", "node-2"]);
    assert_eq!(
        created[0]["metadata"]["annotations"]["mtlscope.io/targets"],
        format!("{NS}/web-a,{NS}/web-c")
    );
    assert!(created
        .iter()
        .all(|p| p["spec"]["containers"][0]["image"] == "registry.test/mtlscope:dev"));
    let execs = execs(&server);
    assert_eq!(execs.len(), 3);
    assert!(execs.iter().all(|e| e.query("container") == Some("agent")));
    let mut ids: Vec<String> = execs.iter().map(|e| exec_command(e)[3].clone()).collect();
    ids.sort();
    let mut want: Vec<String> = (1..=3).map(|n| format!("containerd://{}", hex_id(n))).collect();
    want.sort();
    assert_eq!(ids, want);

    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let flows = doc["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 3);
    let mut pods: Vec<&str> = flows
        .iter()
        .map(|f| f["captured_in"]["pod"].as_str().unwrap())
        .collect();
    pods.sort();
    assert_eq!(
        pods,
        [format!("{NS}/web-a"), format!("{NS}/web-b"), format!("{NS}/web-c")]
    );
    for f in flows {
        assert_eq!(f["kubernetes"]["client_pod"], format!("{NS}/client"));
        assert_eq!(f["kubernetes"]["policy"]["expected_mode"], "STRICT");
        assert_eq!(f["kubernetes"]["policy"]["finding"]["severity"], "violation");
    }
    assert_eq!(doc["summary"]["connections"], 3);
    assert_eq!(doc["summary"]["packets"], 30);
    assert_eq!(doc["summary"]["findings"]["violation"], 3);
    assert_eq!(doc["summary"]["captures"].as_array().unwrap().len(), 3);
    // Both helpers deleted, nothing left.
    assert_eq!(deleted(&server).len(), 2);
    assert!(helpers_left(&server).is_empty(), "{:?}", server.pod_names());
    assert!(text(&o.stderr).contains(&format!(
        "[{NS}/web-b] mtlscope agent: container containerd://{}",
        hex_id(2)
    )));
}

// ---------------------------------------------------------------------------------------------
// Failures and cancellation: the helper is always deleted
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn agent_failure_is_reported_and_the_helper_deleted() {
    let server = one_pod()
        .kubelet(0)
        .exec(|_| ExecAction::Script {
            stdout: Vec::new(),
            stderr: b"mtlscope: no process of container containerd://abc under /proc (is this the container's node?)\n"
                .to_vec(),
            exit_code: 2,
        })
        .start()
        .await;
    let dir = temp_dir("agent-fails");
    let kc = server.kubeconfig(&dir, NS);
    let o = plugin(&kc, &["sniff", "web-0"]).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "agent for {NS}/web-0 failed: command terminated with non-zero exit code"
        )),
        "{err}"
    );
    assert!(err.contains("no process of container"), "{err}");
    assert_eq!(deleted(&server).len(), 1);
    assert!(helpers_left(&server).is_empty());
}

/// An agent that runs until it reads `stop`, then reports its summary, as `mtlscope agent
/// --stop-on-stdin` does.
fn stoppable_agent() -> ExecAction {
    let summary = Summary {
        packets: 7,
        ..Summary::default()
    };
    let mut cmd = std::process::Command::new("sh");
    cmd.args([
        "-c",
        r#"echo "agent waiting" >&2; read line; [ "$line" = stop ] && printf %s "$SUMMARY""#,
    ])
    .env("SUMMARY", String::from_utf8(agent_lines(&[], &summary)).unwrap());
    ExecAction::Run(cmd)
}

async fn wait_for_exec(server: &FakeApiServer) {
    let start = Instant::now();
    while execs(server).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no exec: {:?}",
            server.request_lines()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the agent start and the plugin settle into its loop.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

async fn interrupted_capture(server: FakeApiServer, signal: &str, name: &str) {
    let dir = temp_dir(name);
    let kc = server.kubeconfig(&dir, NS);
    let child = spawn_plugin(&kc, &["sniff", "web-0", "-o", "json"]);
    wait_for_exec(&server).await;
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap()
        .success());
    let o = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the plugin stops after one signal")
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("stopping the capture"), "{err}");
    // The agent was told to stop (it exits 0 only after reading `stop`) and its summary arrived.
    let start = Instant::now();
    while server.exec_exits().is_empty() && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.exec_exits().iter().map(|e| e.1).collect::<Vec<_>>(), [Some(0)]);
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["summary"]["packets"], 7);
    assert_eq!(doc["summary"]["captures"][0]["finished"], true);
    assert_eq!(deleted(&server).len(), 1);
    assert!(helpers_left(&server).is_empty());
}

/// The fake cluster of most tests: pod `web-0` on `node-1`.
fn one_pod() -> fake_apiserver::Builder {
    FakeApiServer::builder().objects([pod("web-0", "node-1", "10.1.0.2", "web", &hex_id(1))])
}

fn one_stoppable_pod() -> fake_apiserver::Builder {
    one_pod().kubelet(0).exec(|_| stoppable_agent())
}

#[tokio::test]
async fn ctrl_c_stops_the_agents_then_deletes_the_helper() {
    interrupted_capture(one_stoppable_pod().start().await, "-INT", "ctrl-c").await;
}

/// API servers before 1.30 speak only v4, which cannot half-close stdin: `stop` still works.
#[tokio::test]
async fn sigterm_with_an_old_api_server_stops_and_deletes_too() {
    interrupted_capture(one_stoppable_pod().exec_v4_only().start().await, "-TERM", "sigterm").await;
}

#[tokio::test]
async fn ctrl_c_while_the_helper_starts_deletes_it() {
    // No kubelet: the helper stays Pending.
    let server = one_pod().start().await;
    let dir = temp_dir("ctrl-c-pending");
    let kc = server.kubeconfig(&dir, NS);
    let child = spawn_plugin(&kc, &["sniff", "web-0"]);
    let start = Instant::now();
    while created_pods(&server).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let o = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted; helper pods deleted"), "{err}");
    assert_eq!(deleted(&server).len(), 1);
    assert!(helpers_left(&server).is_empty());
}

/// A pod that does not exist: a clear error that names it and the pods it may have meant, and
/// nothing is created.
#[tokio::test]
async fn a_pod_that_does_not_exist_is_named_and_nothing_is_created() {
    let server = one_pod().start().await;
    let dir = temp_dir("no-such-pod");
    let kc = server.kubeconfig(&dir, NS);
    let o = plugin(&kc, &["sniff", "web"]).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("pod 'web' not found in namespace 'shop'"), "{err}");
    assert!(err.contains("pods whose name starts with it: web-0"), "{err}");
    assert!(
        server.requests().iter().all(|r| r.method == "GET"),
        "{:?}",
        server.request_lines()
    );
}

#[tokio::test]
async fn image_that_cannot_be_pulled_is_named_and_the_helper_deleted() {
    let server = one_pod()
        .handler(|req, store| {
            // The kubelet cannot pull the image: the pod stays Pending with ImagePullBackOff.
            let name = req
                .path
                .strip_prefix(&format!("/api/v1/namespaces/{NS}/pods/mtlscope-"))?;
            if req.method != "GET" {
                return None;
            }
            let full = format!("mtlscope-{name}");
            let mut p = store.get("", "Pod", Some(NS), &full)?.clone();
            p["status"] = json!({"phase": "Pending", "containerStatuses": [{
                "name": "agent", "image": p["spec"]["containers"][0]["image"], "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff",
                "message": "Back-off pulling image"}}}]});
            store.insert(p.clone());
            Some(Reply::ok(p))
        })
        .start()
        .await;
    let dir = temp_dir("image");
    let kc = server.kubeconfig(&dir, NS);
    let o = plugin(&kc, &["sniff", "web-0", "--image", "registry.invalid/nope:1"]).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("its image registry.invalid/nope:1 cannot be pulled (ImagePullBackOff"),
        "{err}"
    );
    assert!(err.contains("pass --image"), "{err}");
    assert_eq!(deleted(&server).len(), 1);
    assert!(helpers_left(&server).is_empty());
}

#[tokio::test]
async fn pod_security_refusal_says_which_policy_and_what_to_grant() {
    let server = one_pod()
        .handler(|req, _| {
            (req.method == "POST" && req.path.ends_with("/pods")).then(|| {
                Reply::status(
                    403,
                    "Forbidden",
                    "pods \"mtlscope-node-1-bcdfg\" is forbidden: violates PodSecurity \"baseline:latest\": host \
                     namespaces (hostPID=true), non-default capabilities (container \"agent\" must not include \
                     \"SYS_ADMIN\", \"SYS_PTRACE\" in securityContext.capabilities.add)",
                    None,
                )
            })
        })
        .start()
        .await;
    let dir = temp_dir("psa");
    let kc = server.kubeconfig(&dir, NS);
    let o = plugin(&kc, &["sniff", "web-0"]).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("refused in namespace 'shop' by Pod Security admission"),
        "{err}"
    );
    assert!(
        err.contains("kubectl label namespace shop pod-security.kubernetes.io/enforce=privileged"),
        "{err}"
    );
    assert!(deleted(&server).is_empty());
}

/// A signal while the create request is in flight: the create is not abandoned (the pod would
/// exist under a name this run never learns); the helper is deleted once it is known.
#[tokio::test]
async fn ctrl_c_during_the_create_still_deletes_the_helper() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let posting = Arc::new(AtomicBool::new(false));
    let flag = posting.clone();
    let server = one_pod()
        .handler(move |req, _| {
            if req.method == "POST" && !flag.swap(true, Ordering::SeqCst) {
                // A slow API server: the signal arrives while this create is being served.
                std::thread::sleep(Duration::from_millis(1500));
            }
            None
        })
        .start()
        .await;
    let dir = temp_dir("ctrl-c-create");
    let kc = server.kubeconfig(&dir, NS);
    let child = spawn_plugin(&kc, &["sniff", "web-0"]);
    let pid = child.id().unwrap().to_string();
    let signaller = std::thread::spawn(move || {
        while !posting.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(300));
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
    });
    let o = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    signaller.join().unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert_eq!(created_pods(&server).len(), 1);
    assert_eq!(deleted(&server).len(), 1, "{:?}", server.request_lines());
    assert!(helpers_left(&server).is_empty());
}

/// -w: the agent streams pcap (a real capture from captures/ here), the plugin writes it to
/// the file unchanged and makes the verdicts locally; the kernel's counters come on stderr.
#[tokio::test]
async fn write_brings_the_packets_back_and_the_verdicts_are_made_locally() {
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/openssl-tls12-mtls-rsa.pcap");
    let bytes = std::fs::read(&capture).unwrap();
    let streamed = bytes.clone();
    let server = one_pod()
        .kubelet(0)
        .exec(move |req| {
            if !req.command.iter().any(|a| a == "--pcap") {
                return ExecAction::Script {
                    stdout: Vec::new(),
                    stderr: b"no --pcap\n".to_vec(),
                    exit_code: 2,
                };
            }
            let stats = json!({ "capture": kernel(17) });
            ExecAction::Script {
                stdout: streamed.clone(),
                stderr: format!("{stats}\n").into_bytes(),
                exit_code: 0,
            }
        })
        .start()
        .await;
    let dir = temp_dir("write");
    let kc = server.kubeconfig(&dir, NS);
    let out = dir.join("web.pcap");
    let o = plugin(&kc, &["sniff", "web-0", "-w", out.to_str().unwrap(), "-o", "json"]).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        bytes,
        "the -w file is the stream, byte for byte"
    );
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let flows = doc["flows"].as_array().unwrap();
    let verdicts: Vec<&str> = flows.iter().map(|f| f["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["mtls"]);
    assert_eq!(flows[0]["captured_in"]["pod"], format!("{NS}/web-0"));
    assert_eq!(doc["summary"]["captures"][0]["capture"]["received"], 17);
    assert!(
        err.contains(&format!("packets of {NS}/web-0 written to {}", out.display())),
        "{err}"
    );
    assert!(helpers_left(&server).is_empty());
}

// ---------------------------------------------------------------------------------------------
// cleanup
// ---------------------------------------------------------------------------------------------

fn helper(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": namespace,
                        "labels": {"app.kubernetes.io/managed-by": "kubectl-mtlscope"},
                        "annotations": {"mtlscope.io/targets": format!("{namespace}/web-0")}},
           "spec": {"nodeName": "node-1", "containers": [{"name": "agent"}]},
           "status": {"phase": "Running"}})
}

#[tokio::test]
async fn cleanup_deletes_only_helpers() {
    let server = FakeApiServer::builder()
        .objects([
            helper(NS, "mtlscope-node-1-aaaaa"),
            helper("other", "mtlscope-node-2-bbbbb"),
            pod("web-0", "node-1", "10.1.0.2", "web", &hex_id(1)),
        ])
        .start()
        .await;
    let dir = temp_dir("cleanup");
    let kc = server.kubeconfig(&dir, NS);
    let o = plugin(&kc, &["cleanup"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        format!("pod/mtlscope-node-1-aaaaa deleted from {NS} (captured in: {NS}/web-0)\n")
    );
    let o = plugin(&kc, &["cleanup", "-A", "--dry-run"]).await;
    assert_eq!(
        text(&o.stdout),
        "pod/mtlscope-node-2-bbbbb in other would be deleted (captured in: other/web-0)\n"
    );
    let o = plugin(&kc, &["cleanup", "-A"]).await;
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(server.pod_names(), [format!("{NS}/web-0")]);
    let o = plugin(&kc, &["cleanup", "-A"]).await;
    assert_eq!(text(&o.stdout), "No mtlscope helper pods found.\n");
}

// ---------------------------------------------------------------------------------------------
// The agent's stream: the same types on both ends
// ---------------------------------------------------------------------------------------------

/// Read the agent's lines the way the plugin does and write them again the way the agent does.
fn read_and_write_again(lines: &[u8]) -> Vec<u8> {
    let mut out = JsonLines::new(Vec::new());
    for line in std::str::from_utf8(lines).unwrap().lines() {
        match wire::parse_line(line).unwrap_or_else(|e| panic!("{e}: {line}")) {
            AgentLine::Flow(f) => out.decided(&f).unwrap(),
            AgentLine::Summary(s) => out.summary(&s).unwrap(),
        }
    }
    out.into_inner()
}

/// The cluster's view of a connection, as the plugin joins it: every mode, both kinds of
/// decision, enforced or not.
fn joined(f: &FlowReport) -> Vec<FlowReport> {
    let decided_by = |level: Level| match level {
        Level::Default => DecidedBy {
            kind: "default",
            namespace: None,
            name: None,
            level,
        },
        _ => DecidedBy {
            kind: "PeerAuthentication",
            namespace: Some(NS.into()),
            name: Some("default".into()),
            level,
        },
    };
    let cases = [
        (Mode::Strict, Level::Namespace, false),
        (Mode::Permissive, Level::Default, false),
        (Mode::Disable, Level::Port, true),
    ];
    cases
        .into_iter()
        .map(|(mode, level, not_enforced)| {
            let mut f = f.clone();
            f.kubernetes = Some(Kubernetes {
                client_pod: Some(format!("{NS}/client-0")),
                server_pod: None,
                policy: Some(PolicyReport {
                    expected_mode: mode,
                    decided_by: decided_by(level),
                    finding: mesh_policy::finding(mode, f.verdict.verdict.name()),
                    not_enforced,
                }),
            });
            f
        })
        .collect()
}

/// Every connection of every bundled capture, as the agent writes it (with the payload
/// excerpts of `--show-payload`, joined to a cluster as the plugin joins it) and with the
/// summary: read back into the same types and written again, byte for byte the same.
#[test]
fn every_connection_of_every_capture_reads_back_to_the_same_bytes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".pcap"))
        })
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(files.len() >= 40, "{files:?}");
    let mut connections = 0;
    for file in &files {
        for show_payload in [false, true] {
            let cfg = Config {
                show_payload,
                ..Config::default()
            };
            let (flows, mut summary) = analyze_files(std::slice::from_ref(file), None, cfg).unwrap();
            let mut all = flows.clone();
            for f in &flows {
                let cluster = joined(f);
                for j in &cluster {
                    summary.count_finding(&j.kubernetes);
                }
                all.extend(cluster);
            }
            summary.capture = Some(kernel(17));
            let lines = agent_lines(&all, &summary);
            assert_eq!(read_and_write_again(&lines), lines, "{file}");
            connections += all.len();
        }
    }
    assert!(connections > 400, "{connections}");
}

// ---------------------------------------------------------------------------------------------
// kubectl plugin discovery
// ---------------------------------------------------------------------------------------------

#[test]
fn kubectl_finds_the_plugin() {
    if !lab::sh("command -v kubectl").status.success() {
        eprintln!("SKIP: kubectl is not installed");
        return;
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_kubectl-mtlscope"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let o = std::process::Command::new("kubectl")
        .args(["mtlscope", "--help"])
        .env("PATH", &path)
        .output()
        .unwrap();
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(out.contains("Usage: kubectl mtlscope <COMMAND>"), "{out}");
    assert!(out.contains("sniff") && out.contains("cleanup"), "{out}");
    let o = std::process::Command::new("kubectl")
        .args(["mtlscope", "sniff", "--help"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(text(&o.stdout).contains("kubectl mtlscope sniff deploy/productpage -n bookinfo --duration 30s"));
}

// ---------------------------------------------------------------------------------------------
// End to end with the real agent (root)
// ---------------------------------------------------------------------------------------------

/// The exec runs what the helper image would: the real `mtlscope` binary, as root on this
/// machine (the node), with the agent's arguments as the plugin sent them.
fn real_agent(req: &ExecRequest) -> ExecAction {
    if req.container.as_deref() != Some("agent") || req.command.first().map(String::as_str) != Some("mtlscope") {
        return ExecAction::Script {
            stdout: Vec::new(),
            stderr: format!("unexpected exec {:?} in container {:?}\n", req.command, req.container).into_bytes(),
            exit_code: 127,
        };
    }
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mtlscope"));
    cmd.args(&req.command[1..]);
    ExecAction::Run(cmd)
}

/// Run the plugin; once its agent runs, send the lab's three connections.
async fn sniff_during_traffic(kc: &Path, server: &FakeApiServer, lab: lab::Lab, args: &[&str]) -> (Output, lab::Lab) {
    let traffic = async move {
        wait_for_exec(server).await;
        tokio::task::spawn_blocking(move || {
            lab.traffic(7);
            lab
        })
        .await
        .unwrap()
    };
    tokio::join!(plugin(kc, args), traffic)
}

#[tokio::test]
async fn end_to_end_plugin_helper_pod_real_agent_stream_table() {
    if !lab::can_run() {
        return;
    }
    let mut lab = lab::Lab::new("k", 7);
    let server_pid = lab.servers();
    let id = hex_id(7);
    let Some(_container) = lab::Container::new(server_pid, &id) else {
        eprintln!("SKIP: needs a writable cgroup v1 pids hierarchy");
        return;
    };
    let server = FakeApiServer::builder()
        .objects([
            pod("web-0", "node-1", "10.203.7.2", "web", &id),
            pod("client-0", "node-2", "10.203.7.1", "client", &hex_id(8)),
            strict_policy(),
        ])
        .kubelet(1)
        .exec(real_agent)
        .start()
        .await;
    let dir = temp_dir("e2e");
    let kc = server.kubeconfig(&dir, NS);
    let iface = lab.server_if();

    // 1. JSON lines.
    let args = [
        "sniff",
        "web-0",
        "-i",
        &iface,
        "--duration",
        "6s",
        "-o",
        "jsonl",
        "--image",
        "mtlscope:e2e",
    ];
    let (o, lab) = sniff_during_traffic(&kc, &server, lab, &args).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let lines: Vec<Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut flows: Vec<(u64, String, String, Value)> = lines
        .iter()
        .filter(|l| l.get("summary").is_none())
        .map(|f| {
            (
                f["server"]["port"].as_u64().unwrap(),
                f["verdict"].as_str().unwrap().to_owned(),
                f["captured_in"]["pod"].as_str().unwrap().to_owned(),
                f["kubernetes"].clone(),
            )
        })
        .collect();
    flows.sort_by_key(|f| f.0);
    let got: Vec<(u64, &str, &str)> = flows.iter().map(|f| (f.0, f.1.as_str(), f.2.as_str())).collect();
    assert_eq!(
        got,
        [
            (4433, "mtls", "shop/web-0"),
            (4434, "tls", "shop/web-0"),
            (8080, "plaintext", "shop/web-0")
        ],
        "{err}"
    );
    for (port, _, _, k) in &flows {
        assert_eq!(k["client_pod"], "shop/client-0");
        assert_eq!(k["server_pod"], "shop/web-0");
        assert_eq!(k["policy"]["expected_mode"], "STRICT");
        let severity = k["policy"]["finding"]["severity"].as_str();
        assert_eq!(
            severity,
            if *port == 4433 { None } else { Some("violation") },
            "port {port}"
        );
    }
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["connections"], 3);
    assert_eq!(summary["captures"][0]["capture"]["dropped"], 0);
    assert!(
        err.contains(&format!(
            "[shop/web-0] mtlscope agent: container containerd://{id} is process {server_pid}"
        )),
        "{err}"
    );

    // The helper pod as created, field by field.
    let created = created_pods(&server);
    assert_eq!(created.len(), 1);
    let spec = &created[0]["spec"];
    assert_eq!(spec["nodeName"], "node-1");
    assert_eq!(spec["hostPID"], true);
    assert_eq!(spec["activeDeadlineSeconds"], 186);
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(spec["containers"][0]["image"], "mtlscope:e2e");
    assert_eq!(
        spec["containers"][0]["securityContext"]["capabilities"]["add"],
        json!(["NET_RAW", "SYS_ADMIN", "SYS_PTRACE"])
    );
    let cmd = exec_command(&execs(&server)[0]).join(" ");
    assert!(
        cmd.starts_with(&format!(
            "mtlscope agent --container-id containerd://{id} -i {iface} --stop-on-stdin --duration 6000ms \
             --max-flows 100000 --stream-buffer "
        )),
        "{cmd}"
    );
    assert!(cmd.ends_with(" --total-buffer 67108864 --idle-timeout 600s"), "{cmd}");
    assert_eq!(deleted(&server).len(), 1);
    assert!(helpers_left(&server).is_empty());

    // 2. The table, with -w: packets come back as pcap and are analysed here.
    server.clear_requests();
    let pcap = dir.join("web.pcap");
    let pcap_arg = pcap.display().to_string();
    let args = ["sniff", "web-0", "-i", &iface, "--duration", "6s", "-w", &pcap_arg];
    let (o, _lab) = sniff_during_traffic(&kc, &server, lab, &args).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let table = text(&o.stdout);
    eprintln!("{table}");
    assert!(exec_command(&execs(&server)[0]).contains(&"--pcap".to_owned()));
    for row in [
        "shop/client-0:",
        "shop/web-0:4433",
        "shop/web-0:8080",
        "STRICT: violation",
    ] {
        assert!(table.contains(row), "{row} missing from\n{table}");
    }
    assert!(table.contains("3 connections: 1 mtls, 1 tls, 1 plaintext"), "{table}");
    assert!(table.contains("PeerAuthentication: 2 violations"), "{table}");
    // The file is a capture `analyze` reads to the same verdicts.
    let a = std::process::Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["analyze", &pcap_arg, "-o", "jsonl"])
        .output()
        .unwrap();
    let verdicts: Vec<String> = text(&a.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["verdict"].as_str().map(str::to_owned))
        .collect();
    let mut verdicts = verdicts;
    verdicts.sort();
    assert_eq!(verdicts, ["mtls", "plaintext", "tls"]);
    assert!(helpers_left(&server).is_empty());
}
