//! `mtlscope monitor` end to end: the built binary captures in a network namespace this test
//! creates while real OpenSSL and Python servers and clients talk (tests/support/lab.rs); a real
//! Prometheus scrapes it every second; the test asks Prometheus's HTTP API what it recorded.
//! Then the namespace goes away (its series must too) and SIGTERM stops the monitor. Needs root,
//! `ip`, `openssl`, `python3`, `curl`, `prometheus` and `promtool`; skips with a message
//! otherwise. CI runs it as root (`.ci/install-deps --test` installs prometheus).

#[path = "support/frames.rs"]
mod frames;
#[path = "support/lab.rs"]
mod lab;

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
/// StatefulSet api; `shop` is STRICT, except api's port 8080, PERMISSIVE.
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
                  "portLevelMtls": {"8080": {"mode": "PERMISSIVE"}}}},
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
            row("4433", "mtls", "STRICT", "none"),
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
