//! The pod follower of `mtlscope monitor --node` (src/kube/follow) against the in-process fake
//! API server's list+watch (real HTTP, chunked JSON-lines watch streams) and a fake `/proc` tree
//! whose `cgroup` files name the containers, as a node's `/proc` does under `hostPID: true`.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;

use fake_apiserver::{FakeApiServer, IstioApi, Reply};
use mtlscope::kube::client::KubeError;
use mtlscope::kube::follow::{follow, FollowOptions};
use mtlscope::live::netns::NetnsTarget;
use mtlscope::monitor::targets::{Target, TargetEvent};
use mtlscope::monitor::view::ClusterView;
use mtlscope::policy::{Cluster, Mode};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

const NODE: &str = "worker-1";

fn id(n: u64) -> String {
    format!("{n:064x}")
}

/// A Running pod of a ReplicaSet, with one container (and its ID) and a sidecar.
fn pod(ns: &str, name: &str, node: &str, ip: &str, container: u64) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"),
                     "labels": {"app": name.split('-').next().unwrap_or(name), "pod-template-hash": "5d8f"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f",
                                          "controller": true, "uid": "rs-1"}],
                     "managedFields": [{"manager": "kube-controller-manager", "operation": "Update"}]},
        "spec": {"nodeName": node, "containers": [
            {"name": "app", "image": "web:1", "ports": [{"containerPort": 8080}]},
            {"name": "istio-proxy", "image": "proxyv2"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                   "containerStatuses": [
                       {"name": "app", "containerID": format!("containerd://{}", id(container)),
                        "state": {"running": {"startedAt": "2026-12-04T10:00:00Z"}}},
                       {"name": "istio-proxy", "containerID": format!("containerd://{}", id(container + 1)),
                        "state": {"running": {"startedAt": "2026-12-04T10:00:00Z"}}}]}
    })
}

/// A fake `/proc`: one directory per process, its `cgroup` naming its container.
struct FakeProc(PathBuf);

impl FakeProc {
    fn new(test: &str) -> FakeProc {
        let dir = std::env::temp_dir().join(format!("mtlscope-follow-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("1")).unwrap();
        std::fs::write(dir.join("1/cgroup"), "0::/init.scope\n").unwrap();
        FakeProc(dir)
    }

    fn process(&self, pid: u32, container: u64) {
        let p = self.0.join(pid.to_string());
        std::fs::create_dir_all(&p).unwrap();
        let cgroup = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-{}.scope\n",
            id(container)
        );
        std::fs::write(p.join("cgroup"), cgroup).unwrap();
    }

    fn netns(&self, pid: u32) -> Option<NetnsTarget> {
        Some(NetnsTarget::Netns(
            self.0.join(format!("{pid}/ns/net")).display().to_string(),
        ))
    }
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Following {
    events: mpsc::Receiver<TargetEvent>,
    view: Arc<ClusterView>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), KubeError>>,
}

fn start(server: &FakeApiServer, proc: &Path) -> Following {
    let (tx, events) = mpsc::channel();
    let view = Arc::new(ClusterView::new(Cluster::new()));
    let (stop, stopped) = oneshot::channel::<()>();
    let mut opts = FollowOptions::new(NODE, proc);
    opts.retry_interval = Duration::from_millis(100);
    opts.rebuild_interval = Duration::from_millis(200);
    let task = tokio::spawn(follow(server.client(), opts, tx, view.clone(), async {
        let _ = stopped.await;
    }));
    Following {
        events,
        view,
        stop: Some(stop),
        task,
    }
}

impl Following {
    /// The next target event within `wait`.
    async fn next(&self, wait: Duration) -> Option<TargetEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Ok(e) = self.events.try_recv() {
                return Some(e);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn expect(&self, want: TargetEvent) {
        let got = self.next(Duration::from_secs(5)).await;
        assert_eq!(got, Some(want));
    }

    async fn expect_quiet(&self) {
        let got = self.next(Duration::from_millis(600)).await;
        assert_eq!(got, None, "expected no more target events");
    }

    /// Waits until the view satisfies `f`.
    async fn view_until(&self, what: &str, f: impl Fn(&Cluster) -> bool) {
        for _ in 0..500 {
            if f(&self.view.get()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the view never had {what}");
    }

    async fn stop(mut self) -> Result<(), KubeError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("follow stops when asked")
            .expect("follow does not panic")
    }
}

fn add(name: &str, netns: Option<NetnsTarget>) -> TargetEvent {
    TargetEvent::Add(Target {
        name: name.to_owned(),
        netns,
    })
}

fn remove(name: &str) -> TargetEvent {
    TargetEvent::Remove { name: name.to_owned() }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn node_pods_become_targets_and_other_nodes_pods_are_only_in_the_view() {
    let proc = FakeProc::new("node");
    proc.process(4100, 10);
    proc.process(4200, 11); // the sidecar of the same pod: a higher PID, the app's is first
    proc.process(5100, 20); // on another node, in truth; never asked for
    let server = FakeApiServer::builder()
        .istio(IstioApi::Absent)
        .objects([
            pod("shop", "web-1", NODE, "10.244.1.5", 10),
            pod("shop", "cart-1", "worker-2", "10.244.2.7", 20),
        ])
        .start()
        .await;
    let f = start(&server, &proc.0);
    f.expect(add("shop/web-1", proc.netns(4100))).await;
    f.expect_quiet().await;
    f.view_until("the other node's pod", |c| {
        c.pod_by_ip(ip("10.244.2.7"))
            .is_some_and(|p| p.name == "cart-1" && p.node.as_deref() == Some("worker-2"))
    })
    .await;
    assert!(f.view.get().pod_by_ip(ip("10.244.1.5")).is_some());
    let lines = server.request_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("watch=true") && l.contains("fieldSelector=spec.nodeName=worker-1")),
        "the node's pods are watched with a field selector: {lines:#?}"
    );
    f.stop().await.unwrap();
}

#[tokio::test]
async fn pods_leaving_are_removed_and_a_new_sandbox_is_added_again() {
    let proc = FakeProc::new("lifecycle");
    proc.process(4100, 10);
    let server = FakeApiServer::builder()
        .istio(IstioApi::Absent)
        .objects([pod("shop", "web-1", NODE, "10.244.1.5", 10)])
        .start()
        .await;
    let f = start(&server, &proc.0);
    f.expect(add("shop/web-1", proc.netns(4100))).await;

    server.with_store(|s| s.remove("", "Pod", Some("shop"), "web-1"));
    f.expect(remove("shop/web-1")).await;

    // Recreated with new containers (a new sandbox, a new network namespace): the process is
    // not there yet (the container is starting), then it is.
    server.with_store(|s| s.insert(pod("shop", "web-1", NODE, "10.244.1.9", 30)));
    f.expect_quiet().await;
    proc.process(6100, 30);
    f.expect(add("shop/web-1", proc.netns(6100))).await;

    // An update that changes nothing the target depends on sends nothing.
    let mut relabelled = pod("shop", "web-1", NODE, "10.244.1.9", 30);
    relabelled["metadata"]["labels"]["tier"] = json!("front");
    server.with_store(|s| s.insert(relabelled.clone()));
    f.expect_quiet().await;

    // Terminating (deletionTimestamp set), then Succeeded: removed once.
    let mut terminating = relabelled;
    terminating["metadata"]["deletionTimestamp"] = json!("2026-12-04T11:00:00Z");
    server.with_store(|s| s.insert(terminating.clone()));
    f.expect(remove("shop/web-1")).await;
    terminating["status"]["phase"] = json!("Succeeded");
    server.with_store(|s| s.insert(terminating));
    f.expect_quiet().await;

    // A host-network pod shares the node's namespace: not a target.
    let mut host = pod("kube-system", "proxy-1", NODE, "192.168.0.10", 40);
    host["spec"]["hostNetwork"] = json!(true);
    proc.process(7100, 40);
    server.with_store(|s| s.insert(host));
    f.expect_quiet().await;
    f.stop().await.unwrap();
}

fn peer_authentication(ns: &str, mode: &str) -> Value {
    json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
           "metadata": {"name": "default", "namespace": ns},
           "spec": {"mtls": {"mode": mode}}})
}

#[tokio::test]
async fn a_peer_authentication_added_changes_the_effective_mode_in_the_view() {
    let proc = FakeProc::new("policy");
    let server = FakeApiServer::builder()
        .istio(IstioApi::V1AndV1beta1)
        .objects([
            pod("shop", "web-1", "worker-2", "10.244.2.5", 10),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system"},
                   "data": {"mesh": "rootNamespace: istio-system\n"}}),
        ])
        .start()
        .await;
    let f = start(&server, &proc.0);
    let mode = |c: &Cluster| c.pod_by_ip(ip("10.244.2.5")).map(|p| c.effective(p, 8080).mode);
    f.view_until("the pod, PERMISSIVE", |c| mode(c) == Some(Mode::Permissive))
        .await;
    server.with_store(|s| s.insert(peer_authentication("shop", "STRICT")));
    f.view_until("STRICT from the new PeerAuthentication", |c| {
        mode(c) == Some(Mode::Strict)
    })
    .await;
    // The mesh-wide policy in the root namespace does not override the namespace's own.
    server.with_store(|s| s.insert(peer_authentication("istio-system", "DISABLE")));
    server.with_store(|s| s.remove("security.istio.io", "PeerAuthentication", Some("shop"), "default"));
    f.view_until("DISABLE from the mesh-wide policy", |c| mode(c) == Some(Mode::Disable))
        .await;
    let lines = server.request_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("/apis/security.istio.io/v1/peerauthentications") && l.contains("watch=true")),
        "{lines:#?}"
    );
    f.stop().await.unwrap();
}

#[tokio::test]
async fn a_forbidden_watch_on_pods_ends_with_an_error_naming_the_verb_and_resource() {
    let proc = FakeProc::new("forbidden");
    let server = FakeApiServer::builder()
        .istio(IstioApi::Absent)
        .objects([pod("shop", "web-1", NODE, "10.244.1.5", 10)])
        .handler(|req, _| {
            (req.path == "/api/v1/pods" && req.query("watch") == Some("true")).then(|| {
                Reply::status(
                    403,
                    "Forbidden",
                    "pods is forbidden: User \"system:serviceaccount:mtlscope:mtlscope\" cannot watch resource \
                     \"pods\" in API group \"\" at the cluster scope",
                    Some(json!({"kind": "pods"})),
                )
            })
        })
        .start()
        .await;
    let f = start(&server, &proc.0);
    let ended = tokio::time::timeout(Duration::from_secs(10), f.task)
        .await
        .expect("a 403 ends follow, it is not retried forever")
        .expect("no panic");
    let e = ended.expect_err("a 403 on watch is an error");
    let text = e.to_string();
    assert!(matches!(e, KubeError::Forbidden { verb: "watch", .. }), "{e:?}");
    assert!(text.contains("cannot watch pods in all namespaces"), "{text}");
    assert!(text.contains("kubectl auth can-i watch pods -A"), "{text}");
}

#[tokio::test]
async fn a_dropped_watch_is_resumed_without_adding_pods_twice() {
    let proc = FakeProc::new("resume");
    proc.process(4100, 10);
    proc.process(4300, 50);
    let server = FakeApiServer::builder()
        .istio(IstioApi::Absent)
        .objects([pod("shop", "web-1", NODE, "10.244.1.5", 10)])
        .start()
        .await;
    let f = start(&server, &proc.0);
    f.expect(add("shop/web-1", proc.netns(4100))).await;
    let node_watches = |server: &FakeApiServer| {
        server
            .requests()
            .iter()
            .filter(|r| r.path == "/api/v1/pods" && r.query("fieldSelector") == Some("spec.nodeName=worker-1"))
            .map(|r| {
                (
                    r.query("watch") == Some("true"),
                    r.query("resourceVersion").map(str::to_owned),
                )
            })
            .collect::<Vec<_>>()
    };
    // A change while the watch is down must still arrive once it is resumed.
    server.with_store(|s| s.end_watches());
    server.with_store(|s| s.insert(pod("shop", "api-1", NODE, "10.244.1.6", 50)));
    f.expect(add("shop/api-1", proc.netns(4300))).await;
    f.expect_quiet().await;
    let seen = node_watches(&server);
    let lists = seen.iter().filter(|(w, _)| !w).count();
    let watches: Vec<_> = seen.iter().filter(|(w, _)| *w).collect();
    assert_eq!(lists, 1, "resumed, not listed again: {seen:?}");
    assert!(watches.len() >= 2, "{seen:?}");
    assert_ne!(
        watches[0].1, watches[1].1,
        "the second watch resumes from a later version: {seen:?}"
    );

    // History compacted past the last version seen: 410 Gone, list again; what is unchanged
    // is not added again, what went away while nobody watched is removed.
    server.with_store(|s| {
        s.remove("", "Pod", Some("shop"), "api-1");
        s.compact();
        s.end_watches();
    });
    f.expect(remove("shop/api-1")).await;
    f.expect_quiet().await;
    let lists = node_watches(&server).iter().filter(|(w, _)| !w).count();
    assert_eq!(lists, 2, "410 Gone lists again");
    f.stop().await.unwrap();
}
