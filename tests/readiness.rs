//! `kubectl mtlscope readiness` against a real Prometheus (the Debian package's
//! /usr/bin/prometheus, started here on loopback with a 1s scrape interval and a temporary TSDB)
//! scraping a real exposition served by this test, whose counters grow between scrapes:
//! - bookinfo: reviews:9080 (PERMISSIVE) only ever sees mTLS clients -> "safe to switch to
//!   STRICT"; details:9080 (UNSET) has a plaintext client -> "not safe", naming it; exit 1;
//! - payments: every port safe -> exit 0; a Prometheus that is not there -> exit 2.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mtlscope::promql::Prometheus;
use serde_json::Value;
use std::convert::Infallible;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// One series of `mtlscope_connections_total`: (source workload, its namespace, destination
/// workload, its namespace, port, verdict, confidence, expected mode, finding), and how much it grows per
/// tick.
struct Series {
    labels: [&'static str; 9],
    per_tick: u64,
    value: u64,
}

fn series() -> Vec<Series> {
    let s = |labels, per_tick| Series {
        labels,
        per_tick,
        value: 0,
    };
    vec![
        s(
            [
                "productpage",
                "bookinfo",
                "reviews",
                "bookinfo",
                "9080",
                "mtls",
                "certain",
                "PERMISSIVE",
                "none",
            ],
            3,
        ),
        s(
            [
                "ratings",
                "bookinfo",
                "reviews",
                "bookinfo",
                "9080",
                "mtls",
                "certain",
                "PERMISSIVE",
                "none",
            ],
            1,
        ),
        s(
            [
                "productpage",
                "bookinfo",
                "details",
                "bookinfo",
                "9080",
                "mtls",
                "certain",
                "UNSET",
                "none",
            ],
            2,
        ),
        s(
            [
                "legacy-client",
                "legacy",
                "details",
                "bookinfo",
                "9080",
                "plaintext",
                "certain",
                "UNSET",
                "warning",
            ],
            1,
        ),
        s(
            [
                "checkout",
                "payments",
                "ledger",
                "payments",
                "8443",
                "mtls",
                "certain",
                "PERMISSIVE",
                "none",
            ],
            2,
        ),
        // Another namespace's plaintext must not leak into bookinfo's or payments' answer.
        s(
            [
                "legacy-client",
                "legacy",
                "web",
                "shop",
                "80",
                "plaintext",
                "certain",
                "PERMISSIVE",
                "warning",
            ],
            1,
        ),
    ]
}

const LABELS: [&str; 9] = [
    "source_workload",
    "source_workload_namespace",
    "destination_workload",
    "destination_workload_namespace",
    "destination_port",
    "verdict",
    "confidence",
    "expected_mode",
    "finding",
];

fn exposition(series: &[Series]) -> String {
    let mut out = String::from(
        "# HELP mtlscope_connections_total Connections whose verdict is final.\n\
         # TYPE mtlscope_connections_total counter\n",
    );
    for s in series {
        let labels: Vec<String> = LABELS
            .iter()
            .zip(s.labels)
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        out.push_str(&format!(
            "mtlscope_connections_total{{{}}} {}\n",
            labels.join(","),
            s.value
        ));
    }
    out
}

/// Serve /metrics on 127.0.0.1; the counters grow every 500ms.
async fn serve_metrics() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(Mutex::new(series()));
    let ticker = state.clone();
    tokio::spawn(async move {
        loop {
            for s in ticker.lock().unwrap().iter_mut() {
                s.value += s.per_tick;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req| {
                    let body = exposition(&state.lock().unwrap());
                    async move {
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "text/plain; version=0.0.4")
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    addr
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_prometheus(dir: &Path, target: std::net::SocketAddr) -> (tokio::process::Child, String) {
    assert!(
        Path::new(PROMETHEUS).exists(),
        "{PROMETHEUS} is missing: `apt-get install prometheus` (.ci/install-deps installs it)"
    );
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: mtlscope\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = tokio::process::Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    (child, format!("http://127.0.0.1:{port}"))
}

/// Wait until Prometheus has scraped enough for every series to show growth over the window.
async fn wait_for_samples(url: &str, dir: &Path) {
    let prom = Prometheus::new(url, None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let q = "count(increase(mtlscope_connections_total[5m]) > 0)";
    loop {
        if let Ok(v) = prom.query(q).await {
            if v.first().is_some_and(|s| s.value >= series().len() as f64) {
                // A few more scrapes, so last-seen subquery steps have data too.
                tokio::time::sleep(Duration::from_secs(3)).await;
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus at {url} never had the series; its log:\n{}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn readiness(args: &[&str]) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-mtlscope"))
        .arg("readiness")
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn port<'a>(doc: &'a Value, workload: &str) -> &'a Value {
    doc["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["workload"] == workload)
        .unwrap_or_else(|| panic!("no port of {workload} in {doc:#}"))
}

#[tokio::test]
async fn readiness_against_real_prometheus() {
    let dir = std::env::temp_dir().join(format!("mtlscope-readiness-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let target = serve_metrics().await;
    let (mut prometheus, url) = start_prometheus(&dir, target);
    wait_for_samples(&url, &dir).await;

    // The table: one port safe, the other naming its plaintext client; exit 1.
    let (code, table, err) = readiness(&["-n", "bookinfo", "--since", "5m", "--prometheus", &url]).await;
    println!("kubectl mtlscope readiness -n bookinfo --since 5m --prometheus {url}\n{table}");
    assert_eq!(code, Some(1), "stdout:\n{table}\nstderr:\n{err}");
    assert!(
        table.contains("reviews:9080 (PERMISSIVE): safe to switch to STRICT: all 2 client(s) used mTLS"),
        "{table}"
    );
    assert!(
        table.contains("details:9080 (UNSET): not safe: legacy-client.legacy sent plaintext ("),
        "{table}"
    );
    assert!(
        table.contains("productpage.bookinfo") && !table.contains("shop"),
        "{table}"
    );

    // The same as JSON.
    let (code, json, err) = readiness(&["-n", "bookinfo", "--since", "5m", "--prometheus", &url, "-o", "json"]).await;
    assert_eq!(code, Some(1), "{err}");
    let doc: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["ready"], false);
    assert_eq!(doc["namespace"], "bookinfo");
    assert_eq!(doc["window"], "5m");
    assert_eq!(doc["ports"].as_array().unwrap().len(), 2, "{doc:#}");
    let reviews = port(&doc, "reviews");
    assert_eq!(reviews["verdict"], "safe");
    assert_eq!(reviews["port"], "9080");
    assert_eq!(reviews["expected_mode"], "PERMISSIVE");
    let clients = reviews["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 2);
    for c in clients {
        let mtls = c["connections"]["mtls"].as_u64().unwrap();
        assert!(mtls > 0, "{c}");
        assert_eq!(c["connections"].as_object().unwrap().len(), 1, "{c}");
        assert!(c["last_seen"].as_str().is_some_and(|t| t.ends_with('Z')), "{c}");
    }
    // productpage grows three times as fast as ratings.
    let by = |name: &str| {
        clients.iter().find(|c| c["workload"] == name).unwrap()["connections"]["mtls"]
            .as_u64()
            .unwrap() as f64
    };
    let ratio = by("productpage") / by("ratings");
    assert!((1.5..=5.0).contains(&ratio), "{ratio}: {clients:?}");
    let details = port(&doc, "details");
    assert_eq!(details["verdict"], "not-safe");
    let legacy = details["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["workload"] == "legacy-client")
        .unwrap();
    assert_eq!(legacy["namespace"], "legacy");
    assert!(legacy["connections"]["plaintext"].as_u64().unwrap() > 0, "{legacy}");

    // Every port safe: exit 0.
    let (code, table, err) = readiness(&["-n", "payments", "--since", "5m", "--prometheus", &url]).await;
    assert_eq!(code, Some(0), "stdout:\n{table}\nstderr:\n{err}");
    assert!(
        table.contains("ledger:8443 (PERMISSIVE): safe to switch to STRICT"),
        "{table}"
    );

    // A namespace nobody talked to: nothing proves it safe, exit 1, and it says where to look.
    let (code, table, _) = readiness(&["-n", "empty", "--since", "5m", "--prometheus", &url]).await;
    assert_eq!(code, Some(1), "{table}");
    assert!(table.contains("no connections to namespace empty"), "{table}");

    // Prometheus not there: exit 2, naming the URL and the query.
    let down = format!("http://127.0.0.1:{}", free_port());
    let (code, out, err) = readiness(&["-n", "bookinfo", "--prometheus", &down]).await;
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        err.contains(&format!("cannot reach Prometheus at {down}")) && err.contains("mtlscope_connections_total"),
        "{err}"
    );

    // A bad flag: exit 2 from clap.
    let (code, _, err) = readiness(&["-n", "Bad_NS", "--prometheus", &url]).await;
    assert_eq!(code, Some(2), "{err}");

    prometheus.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
