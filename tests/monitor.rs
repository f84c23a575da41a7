//! `mtlscope monitor` end to end: the built binary captures in a network namespace this test
//! creates while real OpenSSL and Python servers and clients talk (tests/support/lab.rs); a real
//! Prometheus scrapes it every second; the test asks Prometheus's HTTP API what it recorded.
//! Then the namespace goes away (its series must too) and SIGTERM stops the monitor. Needs root,
//! `ip`, `openssl`, `python3`, `curl`, `prometheus` and `promtool`; skips with a message
//! otherwise. CI runs it as root (`.ci/install-deps --test` installs prometheus). With `--node`,
//! the pods come from the in-process fake API server instead of `--policy-from`.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/frames.rs"]
mod frames;
#[path = "support/lab.rs"]
mod lab;

use fake_apiserver::{FakeApiServer, IstioApi};
use lab::{can_run, sh, Lab};
use serde_json::{json, Value};
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const N: u8 = 60;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn curl(url: &str) -> String {
    let o = sh(&format!("curl -sf --max-time 5 '{url}'"));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// An instant query to Prometheus's HTTP API: the result vector.
fn query(prom: u16, q: &str) -> Vec<Value> {
    let o = Command::new("curl")
        .args(["-sf", "--max-time", "5", "-G"])
        .arg(format!("http://127.0.0.1:{prom}/api/v1/query"))
        .args(["--data-urlencode", &format!("query={q}")])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The pods and policies of the lab, as a cluster dump: the client namespace is pod
/// `shop/web-7c9f6d-x2x4z` of Deployment web, the server namespace pod `shop/api-0` of
/// StatefulSet api; `shop` is STRICT, except api's ports 4433 and 8080, PERMISSIVE.
fn cluster_dump() -> Value {
    let pod = |name: &str, ip: String, owner: Value, labels: Value| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"namespace": "shop", "name": name, "labels": labels, "ownerReferences": owner,
                            "annotations": {"sidecar.istio.io/status": "{}"}},
               "spec": {"nodeName": "node-1", "containers": [{"name": "app"}, {"name": "istio-proxy"}]},
               "status": {"phase": "Running", "podIP": ip}})
    };
    json!({"apiVersion": "v1", "kind": "List", "items": [
        pod("web-7c9f6d-x2x4z", format!("10.203.{N}.1"),
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7c9f6d", "controller": true, "uid": "1"}]),
            json!({"app": "web", "pod-template-hash": "7c9f6d"})),
        pod("api-0", format!("10.203.{N}.2"),
            json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "api", "controller": true, "uid": "2"}]),
            json!({"app": "api"})),
        {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
         "metadata": {"namespace": "shop", "name": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
         "spec": {"mtls": {"mode": "STRICT"}}},
        {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
         "metadata": {"namespace": "shop", "name": "api", "creationTimestamp": "2026-01-01T00:00:00Z"},
         "spec": {"selector": {"matchLabels": {"app": "api"}}, "mtls": {"mode": "STRICT"},
                  "portLevelMtls": {"4433": {"mode": "PERMISSIVE"}, "8080": {"mode": "PERMISSIVE"}}}},
    ]})
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_prometheus(lab: &Lab, port: u16, target: u16) -> Killed {
    let config = lab.dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: mtlscope\n    \
             static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
        ),
    )
    .unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", lab.dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Killed(child)
}

#[test]
fn prometheus_scrapes_verdicts_by_workload_and_mode_series_go_with_their_namespace_and_sigterm_stops_it() {
    if !can_run() {
        return;
    }
    if !sh("command -v prometheus && command -v promtool && command -v curl")
        .status
        .success()
    {
        eprintln!("SKIP: the monitor test needs prometheus, promtool and curl (.ci/install-deps --test)");
        return;
    }
    let mut lab = Lab::new("m", N);
    lab.servers();
    let dump = lab.dir.join("cluster.json");
    std::fs::write(&dump, cluster_dump().to_string()).unwrap();
    let (metrics, prom) = (free_port(), free_port());
    let netns = lab.server_ns();
    let mut monitor = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["monitor", "--netns", &netns, "-i", &lab.server_if()])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
        .arg("--policy-from")
        .arg(&dump)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = monitor.id();
    let url = format!("http://127.0.0.1:{metrics}");
    wait_for("/healthz", 10, || {
        (curl(&format!("{url}/healthz")) == "ok").then_some(())
    });
    let _prometheus = start_prometheus(&lab, prom, metrics);
    wait_for("Prometheus to scrape the monitor", 20, || {
        let up = query(prom, "up{job=\"mtlscope\"}");
        (up.first()?["value"][1] == "1").then_some(())
    });

    lab.traffic(N);
    let series = wait_for("three connections in Prometheus", 20, || {
        let r = query(prom, "mtlscope_connections_total");
        (r.len() >= 3).then_some(r)
    });
    println!(
        "query mtlscope_connections_total:\n{}",
        serde_json::to_string_pretty(&series).unwrap()
    );
    let mut got: Vec<Vec<String>> = series
        .iter()
        .map(|s| {
            let m = &s["metric"];
            let l = |k: &str| m[k].as_str().unwrap_or("-").to_string();
            assert_eq!(s["value"][1], "1", "{s}");
            assert!(["certain", "inferred"].contains(&l("confidence").as_str()), "{s}");
            vec![
                l("source_workload"),
                l("source_workload_namespace"),
                l("destination_workload"),
                l("destination_workload_namespace"),
                l("destination_port"),
                l("verdict"),
                l("expected_mode"),
                l("finding"),
            ]
        })
        .collect();
    got.sort();
    let row = |port: &str, verdict: &str, mode: &str, finding: &str| -> Vec<String> {
        ["web", "shop", "api", "shop", port, verdict, mode, finding]
            .map(String::from)
            .to_vec()
    };
    assert_eq!(
        got,
        vec![
            row("4433", "mtls", "PERMISSIVE", "none"),
            row("4434", "tls", "STRICT", "violation"),
            row("8080", "plaintext", "PERMISSIVE", "warning"),
        ]
    );
    let packets = query(prom, &format!("mtlscope_capture_packets_total{{netns=\"{netns}\"}}"));
    println!(
        "query mtlscope_capture_packets_total: {}",
        Value::Array(packets.clone())
    );
    let n: f64 = packets[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(n >= 20.0, "{packets:?}");

    // Readiness, against this same Prometheus: 4433 had only mTLS (safe), 8080 a plaintext
    // client (named), 4434 is STRICT already; so the namespace is not ready (exit 1).
    let prom_url = format!("http://127.0.0.1:{prom}");
    let readiness = |format: &str| {
        Command::new(env!("CARGO_BIN_EXE_kubectl-mtlscope"))
            .args([
                "readiness",
                "-n",
                "shop",
                "--since",
                "5m",
                "--prometheus",
                &prom_url,
                "-o",
                format,
            ])
            .output()
            .unwrap()
    };
    let table = readiness("table");
    let text = String::from_utf8_lossy(&table.stdout).to_string();
    println!("kubectl mtlscope readiness -n shop --since 5m:\n{text}");
    assert_eq!(
        table.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&table.stderr)
    );
    assert!(
        text.contains("api:4433 (PERMISSIVE): safe to switch to STRICT"),
        "{text}"
    );
    assert!(
        text.contains("api:8080 (PERMISSIVE): not safe: web.shop sent plaintext (1)"),
        "{text}"
    );
    let doc: Value = serde_json::from_slice(&readiness("json").stdout).unwrap();
    let verdicts: Vec<(String, String)> = doc["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_str().unwrap().to_string(),
                p["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [("4433", "safe"), ("4434", "strict"), ("8080", "not-safe")].map(|(p, v)| (p.to_string(), v.to_string()))
    );

    // The exposition as curl gets it passes promtool's checks.
    let check = sh(&format!("curl -sf '{url}/metrics' | promtool check metrics"));
    assert!(
        check.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // The pod goes away: its namespaces and veth pair are deleted. The monitor says so, names
    // the target, drops its series and keeps serving.
    drop(lab);
    wait_for("the target's series to leave the exposition", 10, || {
        let text = curl(&format!("{url}/metrics"));
        (text.contains("mtlscope_capture_targets 0") && !text.contains(&netns)).then_some(())
    });
    wait_for("the series to leave Prometheus", 10, || {
        query(prom, &format!("mtlscope_capture_packets_total{{netns=\"{netns}\"}}"))
            .is_empty()
            .then_some(())
    });
    assert_eq!(query(prom, "mtlscope_connections_total").len(), 3);

    let asked = Instant::now();
    sh(&format!("kill -TERM {pid}"));
    let status = wait_for("the monitor to exit", 5, || monitor.try_wait().unwrap());
    println!("SIGTERM to exit: {:?}", asked.elapsed());
    let mut err = String::new();
    monitor.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(asked.elapsed() < Duration::from_secs(2), "{:?}", asked.elapsed());
    assert!(
        err.contains(&format!("warning: {netns}: capture stopped")) && err.contains("its series are removed"),
        "{err}"
    );
    println!("monitor's standard error:\n{err}");
}

/// No packet comes to close an idle connection: the monitor's tick does, and it is counted then,
/// once. (The engine with the monitor's counting output, without capture.)
#[test]
fn an_idle_connection_is_closed_and_counted_by_the_tick() {
    use mtlscope::monitor::count::{Counting, LocalPods};
    use mtlscope::monitor::metrics::Metrics;
    use mtlscope::monitor::view::ClusterView;
    use mtlscope::pipeline::engine::{Config, Engine};
    use mtlscope::pipeline::source::LinkType;
    use mtlscope::policy::Cluster;
    use std::sync::Arc;

    let metrics = Arc::new(Metrics::new());
    let out = Counting {
        view: Arc::new(ClusterView::new(Cluster::new())),
        local: Arc::new(LocalPods::default()),
        metrics: metrics.clone(),
    };
    let cfg = Config {
        idle_timeout_ns: 5_000_000_000,
        ..Config::default()
    };
    let mut engine = Engine::new(cfg, out);
    let t0 = 1_700_000_000_000_000_000u64;
    let conn = frames::Conn::new(40000, 5432, 1000, 9000);
    for (i, f) in [conn.syn(), conn.synack()].iter().enumerate() {
        engine.packet(t0 + i as u64 * 1000, LinkType::ETHERNET, f).unwrap();
    }
    let counted = || {
        let text = metrics.encode_text();
        text.lines()
            .filter(|l| l.starts_with("mtlscope_connections_total{"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    engine.advance(t0 + 4_000_000_000);
    assert!(counted().is_empty(), "{:?}", counted());
    assert_eq!(engine.active_flows(), 1);
    engine.advance(t0 + 7_000_000_000);
    assert_eq!(
        counted(),
        vec![
            "mtlscope_connections_total{source_workload=\"unknown\",source_workload_namespace=\"unknown\",\
             destination_workload=\"unknown\",destination_workload_namespace=\"unknown\",destination_port=\"5432\",\
             verdict=\"no-data\",confidence=\"certain\",expected_mode=\"unknown\",finding=\"none\"} 1"
                .to_string()
        ]
    );
    engine.advance(t0 + 60_000_000_000);
    assert_eq!(counted().len(), 1);
    assert!(counted()[0].ends_with(" 1"));
}

/// `monitor --node` end to end: the pods come from the fake API server (list and watch), the
/// node's `/proc` is a fake one whose process of the server pod's container has the lab's
/// server namespace as its `ns/net`, and real TLS stacks talk. The counted series carry the
/// workloads the API names; deleting the pod from the API stops its capture.
#[test]
fn node_mode_follows_the_pods_of_the_api_and_counts_their_connections() {
    if !can_run() {
        return;
    }
    const M: u8 = 61;
    let container = "3f1c9e7a0b2d4c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f506";
    let mut lab = Lab::new("k", M);
    lab.servers();
    let proc_root = lab.dir.join("proc");
    let process = proc_root.join("4242");
    std::fs::create_dir_all(process.join("ns")).unwrap();
    std::fs::write(
        process.join("cgroup"),
        format!("0::/kubepods.slice/kubepods-besteffort.slice/cri-containerd-{container}.scope\n"),
    )
    .unwrap();
    std::os::unix::fs::symlink(format!("/var/run/netns/{}", lab.server_ns()), process.join("ns/net")).unwrap();
    let pod = |name: &str, node: &str, ip: String, owner: Value, labels: Value, id: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"namespace": "shop", "name": name, "uid": name, "labels": labels, "ownerReferences": owner},
               "spec": {"nodeName": node, "containers": [{"name": "app"}]},
               "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                          "containerStatuses": [{"name": "app", "containerID": format!("containerd://{id}"),
                                                 "state": {"running": {}}}]}})
    };
    let objects = vec![
        pod(
            "api-0",
            "node-1",
            format!("10.203.{M}.2"),
            json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "api", "controller": true, "uid": "2"}]),
            json!({"app": "api"}),
            container,
        ),
        pod(
            "web-7c9f6d-x2x4z",
            "node-2",
            format!("10.203.{M}.1"),
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7c9f6d", "controller": true, "uid": "1"}]),
            json!({"app": "web", "pod-template-hash": "7c9f6d"}),
            &"ab".repeat(32),
        ),
    ];
    // The fake API server runs on a thread of its own for the whole test.
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let dir = lab.dir.clone();
    let api = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let server = FakeApiServer::builder()
                .istio(IstioApi::Absent)
                .objects(objects)
                .start()
                .await;
            tx.send((server.kubeconfig(&dir, "default"), server)).unwrap();
            let _ = stop_rx.await;
        });
    });
    let (kubeconfig, server) = rx.recv().unwrap();
    let metrics = free_port();
    let mut monitor = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["monitor", "--node", "node-1", "-i", &lab.server_if()])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--proc-root")
        .arg(&proc_root)
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{metrics}/metrics");
    wait_for("the node's one pod to be captured", 20, || {
        curl(&url).contains("mtlscope_capture_targets 1").then_some(())
    });
    lab.traffic(M);
    let lines = wait_for("three connections counted", 20, || {
        let text = curl(&url);
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("mtlscope_connections_total{"))
            .map(String::from)
            .collect();
        (lines.len() >= 3).then_some(lines)
    });
    println!("monitor --node: {}", lines.join("\n"));
    assert_eq!(lines.len(), 3, "{lines:?}");
    for verdict in ["mtls", "tls", "plaintext"] {
        assert!(
            lines.iter().any(|l| l.contains("source_workload=\"web\"")
                && l.contains("destination_workload=\"api\"")
                && l.contains("destination_workload_namespace=\"shop\"")
                && l.contains(&format!("verdict=\"{verdict}\""))
                && l.contains("expected_mode=\"PERMISSIVE\"")
                && l.ends_with(" 1")),
            "{verdict}: {lines:?}"
        );
    }
    // The pod is deleted in the API: the watch says so and the capture stops.
    server.with_store(|s| s.remove("", "Pod", Some("shop"), "api-0"));
    wait_for("the deleted pod's capture to stop", 20, || {
        curl(&url).contains("mtlscope_capture_targets 0").then_some(())
    });
    sh(&format!("kill -TERM {}", monitor.id()));
    let status = wait_for("the monitor to exit", 5, || monitor.try_wait().unwrap());
    let mut err = String::new();
    monitor.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("stopped capturing in shop/api-0"), "{err}");
    let _ = stop_tx.send(());
    api.join().unwrap();
}
