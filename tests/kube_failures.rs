//! `kubectl mtlscope sniff` against a fake cluster that fails where real ones fail (issue 18):
//! RBAC applied to every request and to exec as kube-apiserver 1.34 and 1.35 apply it, with the
//! ClusterRole read from docs/kubernetes.md; admission refusals (ValidatingAdmissionPolicy,
//! ResourceQuota, webhooks); the kubelet's pull and start failures and an OOMKilled helper; a
//! RoleBinding in one namespace only; target pods whose container crash-loops, that are being
//! deleted, or that use the node's network. The plugin binary runs through a kubeconfig against
//! the in-process fake API server (tests/support), with scripted agents.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;

use fake_apiserver::{
    exec_format_error, rules_from_yaml, ExecAction, ExecRequest, FakeApiServer, Reply, Rule, StartFailure,
};
use mtlscope::pipeline::engine::Config;
use mtlscope::pipeline::flows::Endpoint;
use mtlscope::pipeline::record::{CaptureStats, Output as _, Summary};
use mtlscope::pipeline::runner::analyze_files;
use mtlscope::report::JsonLines;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

const NS: &str = "shop";
/// An image with the agent inside: no upload, only the agent's exec.
const IMAGE: &str = "registry.test/mtlscope:dev";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mtlscope-kubefail-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn plugin(server: &FakeApiServer, name: &str, args: &[&str]) -> (Output, Duration) {
    let dir = temp_dir(name);
    let kc = server.kubeconfig(&dir, NS);
    let start = Instant::now();
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-mtlscope"))
        .args(args)
        .env("KUBECONFIG", &kc)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .await
        .unwrap();
    (o, start.elapsed())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn id(n: u64) -> String {
    format!("{:064x}", 0x6b75_6265_6661_696cu64 ^ (n << 24))
}

/// A running pod with an app container and a sidecar, both running.
fn pod(name: &str, node: &str, ip: &str, app: &str, n: u64) -> Value {
    let running = json!({"running": {"startedAt": "2026-11-01T10:00:05Z"}});
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": app},
                     "annotations": {"sidecar.istio.io/status": "{}"}, "creationTimestamp": "2026-11-01T10:00:00Z"},
        "spec": {"nodeName": node, "containers": [
            {"name": "app", "image": "example/app:1", "ports": [{"containerPort": 4433}]},
            {"name": "istio-proxy", "image": "istio/proxyv2:1.24"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "containerStatuses": [
            {"name": "app", "containerID": format!("containerd://{}", id(n)), "image": "example/app:1",
             "imageID": "", "ready": true, "restartCount": 0, "state": running},
            {"name": "istio-proxy", "containerID": format!("containerd://{}", id(n + 100)),
             "image": "istio/proxyv2:1.24", "imageID": "", "ready": true, "restartCount": 0, "state": running}]}
    })
}

fn node(name: &str, arch: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
           "status": {"nodeInfo": {"architecture": arch, "operatingSystem": "linux", "kubeletVersion": "v1.35.0",
                      "containerRuntimeVersion": "containerd://2.1.0", "kernelVersion": "6.8.0",
                      "osImage": "Ubuntu 24.04", "kubeProxyVersion": "", "machineID": "", "systemUUID": "",
                      "bootID": ""}}})
}

fn mesh_policy() -> Value {
    json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
           "metadata": {"name": "default", "namespace": "istio-system", "creationTimestamp": "2026-11-01T09:00:00Z"},
           "spec": {"mtls": {"mode": "STRICT"}}})
}

fn shop() -> Vec<Value> {
    vec![
        pod("web-0", "node-1", "10.1.0.2", "web", 1),
        pod("client", "node-2", "10.1.0.5", "client", 2),
        node("node-1", "amd64"),
        node("node-2", "amd64"),
        mesh_policy(),
    ]
}

/// The agent's answer: one plaintext connection from the client pod to the target, and the
/// summary, written by the agent's own writer.
fn scripted_agent(_req: &ExecRequest) -> ExecAction {
    let (flows, _) = analyze_files(&[capture_file("plaintext-http.pcap")], None, Config::default()).unwrap();
    let mut flow = flows.into_iter().next().unwrap();
    flow.client = Endpoint {
        ip: "10.1.0.5".parse().unwrap(),
        port: 40000,
    };
    flow.server = Endpoint {
        ip: "10.1.0.2".parse().unwrap(),
        port: 4433,
    };
    flow.loopback = false;
    let summary = Summary {
        connections: 1,
        packets: 10,
        tcp_packets: 10,
        capture: Some(CaptureStats {
            interface: "eth0".into(),
            packets: 10,
            received: 10,
            seconds: 1.0,
            ..CaptureStats::default()
        }),
        ..Summary::default()
    };
    let mut out = JsonLines::new(Vec::new());
    out.decided(&flow).unwrap();
    out.summary(&summary).unwrap();
    ExecAction::Script {
        stdout: out.into_inner(),
        stderr: Vec::new(),
        exit_code: 0,
    }
}

fn capture_file(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name)
        .display()
        .to_string()
}

fn helpers_left(server: &FakeApiServer) -> Vec<String> {
    server
        .pod_names()
        .into_iter()
        .filter(|p| p.contains("/mtlscope-"))
        .collect()
}

fn created_helpers(server: &FakeApiServer) -> Vec<Value> {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == format!("/api/v1/namespaces/{NS}/pods"))
        .filter_map(|r| r.json())
        .collect()
}

fn exec_ids(server: &FakeApiServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/exec"))
        .filter_map(|r| {
            let cmd: Vec<&str> = r
                .query
                .iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.as_str())
                .collect();
            cmd.iter()
                .skip_while(|a| **a != "--container-id")
                .nth(1)
                .map(|s| (*s).to_owned())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// RBAC: the documented ClusterRole, and exec as a WebSocket GET
// ---------------------------------------------------------------------------------------------

/// The ClusterRole of docs/kubernetes.md, as a user would `kubectl apply` it.
fn documented_rules() -> Vec<Rule> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/kubernetes.md")).unwrap();
    let section = doc
        .split("### RBAC for the user running the plugin")
        .nth(1)
        .expect("docs/kubernetes.md has the RBAC section");
    let yaml = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|s| s.split("\n```").next())
        .expect("the RBAC section starts with a yaml block");
    let rules = rules_from_yaml(yaml);
    assert!(rules.len() >= 5, "{rules:?}");
    rules
}

/// The documented rules with the `pods/exec` verbs replaced.
fn with_exec_verbs(verbs: &[&str]) -> Vec<Rule> {
    let mut rules = documented_rules();
    let exec = rules
        .iter_mut()
        .find(|r| r.resources.iter().any(|x| x == "pods/exec"))
        .expect("the documented role has a pods/exec rule");
    exec.verbs = verbs.iter().map(|v| (*v).to_owned()).collect();
    rules
}

fn with_rbac(rules: Vec<Rule>, namespace: Option<&str>, minor: u32) -> fake_apiserver::Builder {
    FakeApiServer::builder()
        .objects(shop())
        .kubelet(0)
        .exec(scripted_agent)
        .rbac(rules, namespace)
        .server_minor(minor)
}

#[tokio::test]
async fn the_documented_role_is_enough_for_a_capture_on_1_34_and_on_1_35() {
    for minor in [34, 35] {
        let server = with_rbac(documented_rules(), None, minor).start().await;
        let (o, _) = plugin(&server, "role", &["sniff", "web-0", "--image", IMAGE, "-o", "json"]).await;
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "1.{minor}: {err}");
        let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
        let f = &doc["flows"][0];
        assert_eq!(f["kubernetes"]["client_pod"], format!("{NS}/client"), "1.{minor}");
        assert_eq!(f["kubernetes"]["policy"]["expected_mode"], "STRICT", "1.{minor}");
        assert!(!err.contains("forbidden"), "1.{minor}: {err}");
        assert!(helpers_left(&server).is_empty());
    }
}

#[tokio::test]
async fn exec_needs_get_and_from_1_35_create_too_and_the_error_says_which() {
    // The Role this repository documented before: `create` only. A WebSocket exec is a GET.
    let server = with_rbac(with_exec_verbs(&["create"]), None, 34).start().await;
    let (o, _) = plugin(&server, "exec-create-only", &["sniff", "web-0", "--image", IMAGE]).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("forbidden: cannot open pods/exec in namespace 'shop' (`get` was refused; needs RBAC: get and create on pods/exec"), "{err}");
    assert!(
        err.contains("`kubectl auth can-i get pods --subresource=exec -n shop` and `kubectl auth can-i create pods --subresource=exec -n shop`"),
        "{err}"
    );
    assert!(
        err.contains("cannot get resource \"pods/exec\" in API group \"\" in the namespace \"shop\""),
        "{err}"
    );
    assert!(helpers_left(&server).is_empty());

    // `get` only: enough before 1.35, refused by 1.35's extra `create` check.
    let server = with_rbac(with_exec_verbs(&["get"]), None, 34).start().await;
    let (o, _) = plugin(&server, "exec-get-1-34", &["sniff", "web-0", "--image", IMAGE]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let server = with_rbac(with_exec_verbs(&["get"]), None, 35).start().await;
    let (o, _) = plugin(&server, "exec-get-1-35", &["sniff", "web-0", "--image", IMAGE]).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("(`create` was refused; needs RBAC: get and create on pods/exec"),
        "{err}"
    );
    assert!(err.contains("Kubernetes 1.35 and later check `create` too"), "{err}");
    assert!(helpers_left(&server).is_empty());
}

#[tokio::test]
async fn a_role_binding_in_one_namespace_keeps_its_pod_names() {
    // The documented rules, bound with a RoleBinding in `shop` only: no cluster-wide lists, no
    // PeerAuthentications in istio-system.
    let server = with_rbac(documented_rules(), Some(NS), 35).start().await;
    let (o, _) = plugin(
        &server,
        "rolebinding",
        &["sniff", "web-0", "--image", IMAGE, "-o", "json"],
    )
    .await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let k = &doc["flows"][0]["kubernetes"];
    assert_eq!(k["client_pod"], format!("{NS}/client"), "{err}");
    assert_eq!(k["server_pod"], format!("{NS}/web-0"), "{err}");
    assert!(k["policy"].is_null(), "{k}");
    assert!(
        err.contains("mtlscope: note: listing configmaps in all namespaces is forbidden")
            || err.contains("in all namespaces is forbidden: read namespace 'shop' only"),
        "{err}"
    );
    assert!(
        err.contains(
            "listing PeerAuthentications in namespace 'istio-system' is forbidden (needs RBAC get/list on \
             peerauthentications.security.istio.io there, the mesh's root namespace): connections are shown without \
             an expected mode"
        ),
        "{err}"
    );
    assert!(!err.contains("without pod names"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Admission and quota refusals are not RBAC
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn admission_and_quota_refusals_are_named_as_such_not_as_missing_rbac() {
    let cases: Vec<(&str, fake_apiserver::Builder, &str)> = vec![
        (
            "vap",
            FakeApiServer::builder().admission(|op, resource, _, obj| {
                (op == "CREATE" && resource == "pods").then(|| {
                    Reply::policy_denied(
                        "pods",
                        obj["metadata"]["name"].as_str().unwrap_or_default(),
                        "no-host-pid",
                        "no-host-pid-shop",
                        "hostPID is not allowed",
                        "Forbidden",
                    )
                })
            }),
            "refused by the ValidatingAdmissionPolicy 'no-host-pid' (binding 'no-host-pid-shop'), not by RBAC",
        ),
        (
            "vap-422",
            FakeApiServer::builder().admission(|op, resource, _, obj| {
                (op == "CREATE" && resource == "pods").then(|| {
                    Reply::policy_denied(
                        "pods",
                        obj["metadata"]["name"].as_str().unwrap_or_default(),
                        "no-host-pid",
                        "no-host-pid-shop",
                        "hostPID is not allowed",
                        "Invalid",
                    )
                })
            }),
            "the API server answered 422",
        ),
        (
            "quota",
            FakeApiServer::builder().admission(|op, resource, _, obj| {
                (op == "CREATE" && resource == "pods").then(|| {
                    Reply::quota_exceeded(
                        obj["metadata"]["name"].as_str().unwrap_or_default(),
                        "compute",
                        "limits.memory=512Mi",
                        "limits.memory=1792Mi",
                        "limits.memory=2Gi",
                    )
                })
            }),
            "refused by the ResourceQuota 'compute', not by RBAC",
        ),
        (
            "webhook-exec",
            FakeApiServer::builder().admission(|op, resource, _, _| {
                (op == "CONNECT" && resource == "pods/exec")
                    .then(|| Reply::webhook_denied("deny-exec.policy.example", 400, "exec into pods is not allowed"))
            }),
            "refused by the admission webhook \"deny-exec.policy.example\", not by RBAC",
        ),
    ];
    for (name, builder, want) in cases {
        let server = builder.objects(shop()).kubelet(0).exec(scripted_agent).start().await;
        let (o, _) = plugin(&server, name, &["sniff", "web-0", "--image", IMAGE]).await;
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
        assert!(!err.contains("needs RBAC"), "{name}: {err}");
        assert!(helpers_left(&server).is_empty(), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// The kubelet: pull and start failures, OOMKilled, the wrong architecture
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn pull_and_start_failures_end_the_wait_at_once_with_the_kubelets_reason() {
    let cases = [
        (
            StartFailure::ImageInspectError,
            "the node cannot inspect its image registry.test/mtlscope:dev (ImageInspectError: Failed to inspect image",
        ),
        (
            StartFailure::RegistryUnavailable,
            "the registry of its image registry.test/mtlscope:dev is unavailable from the node (RegistryUnavailable: \
             image pull failed for registry.test/mtlscope:dev because the registry is unavailable",
        ),
        (
            StartFailure::WrongArchitecture,
            "its image registry.test/mtlscope:dev is not built for node node-1's architecture (arm64) (StartError, exit \
             code 128: failed to create containerd task",
        ),
        (
            StartFailure::Terminated {
                reason: "Error".into(),
                exit_code: 1,
                message: "sleep: invalid number '3780s'\n".into(),
            },
            "its container ended (Error, exit code 1: sleep: invalid number '3780s')",
        ),
    ];
    for (failure, want) in cases {
        let arm = matches!(failure, StartFailure::WrongArchitecture);
        let server = FakeApiServer::builder()
            .objects(shop())
            .objects([node("node-1", if arm { "arm64" } else { "amd64" })])
            .kubelet(0)
            .start_failure(failure.clone())
            .exec(scripted_agent)
            .start()
            .await;
        let (o, took) = plugin(
            &server,
            "start",
            &["sniff", "web-0", "--image", IMAGE, "--pod-running-timeout", "2m"],
        )
        .await;
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{failure:?}: {err}");
        assert!(err.contains("cannot run: "), "{failure:?}: {err}");
        assert!(err.contains(want), "{failure:?}: {err}");
        if arm {
            assert!(
                err.contains("pass --image with an image built for linux/arm64"),
                "{err}"
            );
        }
        // At once, not after --pod-running-timeout.
        assert!(took < Duration::from_secs(20), "{failure:?}: {took:?}");
        assert!(helpers_left(&server).is_empty(), "{failure:?}");
    }
}

#[tokio::test]
async fn an_agent_of_the_wrong_architecture_is_named_with_the_nodes() {
    let server = FakeApiServer::builder()
        .objects(shop())
        .objects([node("node-1", "arm64")])
        .kubelet(0)
        .exec(exec_format_error)
        .start()
        .await;
    let (o, _) = plugin(&server, "agent-arch", &["sniff", "web-0", "--image", IMAGE]).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "agent for {NS}/web-0 failed: the agent binary is not built for node node-1's architecture (arm64) (the \
             kernel answered `exec format error`): use the linux/arm64 agent, or an --image built for linux/arm64"
        )),
        "{err}"
    );
    assert!(
        err.contains("Internal error occurred: error executing command in container"),
        "{err}"
    );
    assert!(helpers_left(&server).is_empty());

    // Started by a shell (an uploaded agent), the kernel's refusal is the shell's last words.
    let server = FakeApiServer::builder()
        .objects(shop())
        .objects([node("node-1", "arm64")])
        .kubelet(0)
        .exec(|_| ExecAction::Script {
            stdout: Vec::new(),
            stderr: b"sh: 1: /run/mtlscope/mtlscope: Exec format error\n".to_vec(),
            exit_code: 126,
        })
        .start()
        .await;
    let (o, _) = plugin(&server, "agent-arch-sh", &["sniff", "web-0", "--image", IMAGE]).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the agent binary is not built for node node-1's architecture (arm64)")
            && err.contains("exit status 126 (it said: sh: 1: /run/mtlscope/mtlscope: Exec format error)"),
        "{err}"
    );
}

/// An agent that runs until its stream is closed (it never reports on its own).
fn waiting_agent() -> ExecAction {
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "echo 'agent waiting' >&2; read line"]);
    ExecAction::Run(cmd)
}

#[tokio::test]
async fn a_helper_oom_killed_under_three_agents_names_its_limit_and_ends_the_run() {
    let server = FakeApiServer::builder()
        .objects([
            pod("web-0", "node-1", "10.1.0.2", "web", 1),
            pod("web-1", "node-1", "10.1.0.3", "web", 3),
            pod("web-2", "node-1", "10.1.0.4", "web", 4),
            node("node-1", "amd64"),
        ])
        .kubelet(0)
        .exec(|_| waiting_agent())
        .oom_kill_on_exec(3)
        .start()
        .await;
    let (o, took) = plugin(&server, "oom", &["sniff", "-l", "app=web", "--image", IMAGE]).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    // One helper for the node, sized for its three agents.
    let created = created_helpers(&server);
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0]["spec"]["containers"][0]["resources"]["limits"]["memory"],
        "1024Mi"
    );
    assert!(err.contains("on node node-1 stopped, ending the agents in it: it was killed for using more memory than its limit of 1024Mi with 3 agents (OOMKilled, exit code 137)"), "{err}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(helpers_left(&server).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Targets: a crash-looping container, a terminating pod, host networking
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_crash_looping_container_is_entered_through_another_and_terminating_pods_are_skipped() {
    // web-0's app container crash-loops: its containerID is the last run's, whose process is gone.
    let mut crashing = pod("web-0", "node-1", "10.1.0.2", "web", 1);
    crashing["status"]["containerStatuses"][0]["state"] = json!({"waiting": {"reason": "CrashLoopBackOff",
        "message": "back-off 5m0s restarting failed container=app pod=web-0_shop"}});
    crashing["status"]["containerStatuses"][0]["lastState"] = json!({"terminated": {"reason": "Error", "exitCode": 1,
        "containerID": format!("containerd://{}", id(1))}});
    let mut leaving = pod("web-1", "node-1", "10.1.0.3", "web", 3);
    leaving["metadata"]["deletionTimestamp"] = json!("2026-11-01T11:00:00Z");
    leaving["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    let mut host = pod("web-2", "node-2", "192.168.1.12", "web", 4);
    host["spec"]["hostNetwork"] = json!(true);
    let server = FakeApiServer::builder()
        .objects([
            crashing,
            leaving,
            host,
            node("node-1", "amd64"),
            node("node-2", "amd64"),
        ])
        .kubelet(0)
        .exec(scripted_agent)
        .start()
        .await;
    let (o, _) = plugin(
        &server,
        "targets",
        &["sniff", "-l", "app=web", "--image", IMAGE, "-o", "json"],
    )
    .await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains(
            "mtlscope: note: container 'app' of pod shop/web-0 is waiting (CrashLoopBackOff): capturing through its \
             container 'istio-proxy' instead, which shares the pod's network namespace"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "mtlscope: warning: skipping pod shop/web-1: it is terminating (deletionTimestamp 2026-11-01T11:00:00Z)"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "pod shop/web-2 uses the node's network (hostNetwork): `-i` names an interface of node node-2 itself"
        ),
        "{err}"
    );
    let mut ids = exec_ids(&server);
    ids.sort();
    let mut want = vec![
        format!("containerd://{}", id(101)), // web-0 through istio-proxy, not the stale app ID
        format!("containerd://{}", id(4)),   // web-2's app
    ];
    want.sort();
    assert_eq!(ids, want);
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let captures: Vec<&str> = doc["summary"]["captures"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["container"].as_str())
        .collect();
    assert!(captures.contains(&"istio-proxy"), "{}", doc["summary"]["captures"]);
}
