//! The OpenReports writer (`mtlscope::kube::reports`) against the fake API server, with the
//! Lease and Report routes of tests/support/fake_reports.rs: two writers, one lease holder and
//! one writer; a Report updated in place round after round; a namespace without data losing
//! its Report; an expired lease taken over; a released lease taken over at once; the Report's
//! JSON checked against the OpenReports CRD's own schema (tests/data/openreports, copied from
//! github.com/openreports/reports-api config/crd).
//!
//! Prometheus here is a small HTTP server answering `/api/v1/query` as Prometheus's HTTP API
//! does, with sums the test sets, so each round's numbers are known; the PromQL client and
//! queries are tested against the real Prometheus in tests/readiness.rs.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/fake_reports.rs"]
mod fake_reports;

use fake_apiserver::FakeApiServer;
use fake_reports::Writes;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mtlscope::kube::reports::{run_reports, ReportOptions, LEASE_NAME};
use mtlscope::promql::Prometheus;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

type Vector = Arc<Mutex<Vec<(Value, f64)>>>;

fn series(ns: &str, workload: &str, port: &str, verdict: &str, mode: &str, finding: &str) -> Value {
    json!({
        "destination_workload_namespace": ns, "destination_workload": workload, "destination_port": port,
        "verdict": verdict, "expected_mode": mode, "finding": finding,
    })
}

/// Answers every instant query with the vector the test set.
async fn fake_prometheus(vector: Vector) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let vector = vector.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let ok = req.uri().path() == "/api/v1/query";
                    let result: Vec<Value> = vector
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|(m, v)| json!({"metric": m, "value": [1764886000.0, v.to_string()]}))
                        .collect();
                    let body = if ok {
                        json!({"status": "success", "data": {"resultType": "vector", "result": result}})
                    } else {
                        json!({"status": "error", "errorType": "not_found", "error": "no such path"})
                    };
                    async move { Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(body.to_string())))) }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    format!("http://{addr}")
}

struct Writer {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), mtlscope::kube::reports::ReportsError>>,
}

impl Writer {
    fn start(server: &FakeApiServer, prom: &str, identity: &str, lease: Duration) -> Writer {
        let mut opts = ReportOptions::new(Prometheus::new(prom, None).unwrap(), "mtlscope", identity);
        opts.lease_duration = lease;
        opts.renew_every = Duration::from_millis(200);
        opts.interval = Duration::from_millis(300);
        opts.window = Duration::from_secs(3600);
        let (tx, rx) = oneshot::channel();
        let client = server.client();
        let task = tokio::spawn(run_reports(client, opts, async {
            let _ = rx.await;
        }));
        Writer { stop: Some(tx), task }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

fn holder(server: &FakeApiServer) -> Option<String> {
    server.with_store(|s| {
        s.get("coordination.k8s.io", "Lease", Some("mtlscope"), LEASE_NAME)
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
    })
}

fn report(server: &FakeApiServer, ns: &str) -> Option<Value> {
    server.with_store(|s| s.get("openreports.io", "Report", Some(ns), "mtlscope").cloned())
}

async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The CRD's openAPIV3Schema, made strict: where it lists an object's properties, no others
/// (as the API server prunes unknown fields, a field outside the schema would silently vanish).
fn crd_schema() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/openreports/openreports.io_reports.yaml"
    ))
    .unwrap();
    let crd: Value = serde_norway::from_str(&text).unwrap();
    let version = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1alpha1")
        .unwrap();
    fn strict(v: &mut Value) {
        if let Some(o) = v.as_object_mut() {
            if o.contains_key("properties") && !o.contains_key("additionalProperties") {
                o.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (_, child) in o.iter_mut() {
                strict(child);
            }
        } else if let Some(a) = v.as_array_mut() {
            a.iter_mut().for_each(strict);
        }
    }
    let mut schema = version["schema"]["openAPIV3Schema"].clone();
    strict(&mut schema);
    // metadata is ObjectMeta, which the CRD leaves open.
    schema["properties"]["metadata"] = json!({"type": "object"});
    schema
}

#[tokio::test]
async fn one_elected_writer_keeps_one_report_per_namespace() {
    let writes = Writes::default();
    let server = FakeApiServer::builder()
        .handler(fake_reports::handler(writes.clone()))
        .start()
        .await;
    let vector: Vector = Arc::new(Mutex::new(vec![
        (
            series("bookinfo", "reviews", "9080", "mtls", "PERMISSIVE", "none"),
            40.0,
        ),
        (series("bookinfo", "details", "9080", "mtls", "PERMISSIVE", "none"), 7.0),
        (
            series("bookinfo", "details", "9080", "plaintext", "PERMISSIVE", "warning"),
            3.0,
        ),
        (
            series("bookinfo", "ratings", "9080", "plaintext", "STRICT", "violation"),
            2.0,
        ),
        (series("shop", "web", "80", "mtls", "STRICT", "none"), 5.0),
        // The server was no known pod: no namespace to write to.
        (series("unknown", "unknown", "443", "tls", "unknown", "note"), 9.0),
    ]));
    let prom = fake_prometheus(vector.clone()).await;

    // Two monitors; only one leads and writes.
    let a = Writer::start(&server, &prom, "monitor-a", Duration::from_secs(2));
    let b = Writer::start(&server, &prom, "monitor-b", Duration::from_secs(2));
    until("a Report in bookinfo", Duration::from_secs(10), || {
        report(&server, "bookinfo").is_some()
    })
    .await;
    let leader = holder(&server).unwrap();
    until("the Report rewritten in place", Duration::from_secs(10), || {
        writes.all().iter().filter(|w| w.namespace == "bookinfo").count() >= 3
    })
    .await;
    let all = writes.all();
    assert!(all.iter().all(|w| w.writer == leader), "{all:?}");
    assert_eq!(holder(&server).as_deref(), Some(leader.as_str()));
    let bookinfo: Vec<_> = all.iter().filter(|w| w.namespace == "bookinfo").collect();
    assert_eq!(bookinfo[0].verb, "create");
    assert!(bookinfo[1..].iter().all(|w| w.verb == "replace"), "{bookinfo:?}");
    assert!(report(&server, "unknown").is_none());

    let first = report(&server, "bookinfo").unwrap();
    println!("{}", serde_json::to_string_pretty(&first).unwrap());
    let validator = jsonschema::validator_for(&crd_schema()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&first)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "the Report does not match the CRD: {errors:#?}");
    assert_eq!(
        first["summary"],
        json!({"pass": 1, "fail": 1, "warn": 1, "error": 0, "skip": 0})
    );
    let results = first["results"].as_array().unwrap();
    let rule = |r: &str| results.iter().find(|x| x["rule"] == r).unwrap().clone();
    assert_eq!(rule("reviews:9080")["result"], "pass");
    assert_eq!(rule("details:9080")["result"], "warn");
    assert_eq!(rule("details:9080")["scored"], false);
    assert_eq!(rule("details:9080")["properties"]["plaintext"], "3");
    assert_eq!(rule("details:9080")["properties"]["mtls"], "7");
    assert_eq!(rule("ratings:9080")["result"], "fail");
    assert_eq!(rule("ratings:9080")["properties"]["violations"], "2");

    // More traffic: the same object (uid) carries the new counts; shop has no more data and
    // loses its Report.
    vector
        .lock()
        .unwrap()
        .retain(|(m, _)| m["destination_workload_namespace"] != "shop");
    vector.lock().unwrap()[0].1 = 90.0;
    until("the new counts", Duration::from_secs(10), || {
        report(&server, "bookinfo").is_some_and(|r| {
            r["results"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["properties"]["mtls"] == "90")
        })
    })
    .await;
    until("shop's Report deleted", Duration::from_secs(10), || {
        report(&server, "shop").is_none()
    })
    .await;
    let second = report(&server, "bookinfo").unwrap();
    assert_eq!(second["metadata"]["uid"], first["metadata"]["uid"]);
    assert_ne!(
        second["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );
    let reports = server.with_store(|s| s.objects().filter(|o| o["kind"] == "Report").count());
    assert_eq!(reports, 1);

    // The leader stops and gives the lease up: the other takes over without waiting it out.
    let (leader_w, other_w, other) = if leader == "monitor-a" {
        (a, b, "monitor-b")
    } else {
        (b, a, "monitor-a")
    };
    leader_w.stop().await;
    let stopped = Instant::now();
    until("the other monitor holding the lease", Duration::from_secs(10), || {
        holder(&server).as_deref() == Some(other)
    })
    .await;
    assert!(stopped.elapsed() < Duration::from_secs(2), "{:?}", stopped.elapsed());
    until("a write by the new leader", Duration::from_secs(10), || {
        writes.all().iter().any(|w| w.writer == other)
    })
    .await;
    other_w.stop().await;
}

#[tokio::test]
async fn expired_lease_taken_over() {
    let writes = Writes::default();
    let server = FakeApiServer::builder()
        .handler(fake_reports::handler(writes.clone()))
        .start()
        .await;
    // A monitor that died holding the lease.
    server.with_store(|s| {
        s.insert(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": "mtlscope"},
            "spec": {"holderIdentity": "monitor-dead", "leaseDurationSeconds": 2, "leaseTransitions": 4,
                     "renewTime": "2026-01-01T00:00:00.000000Z", "acquireTime": "2026-01-01T00:00:00.000000Z"},
        }))
    });
    let vector: Vector = Arc::new(Mutex::new(vec![(
        series("bookinfo", "reviews", "9080", "mtls", "PERMISSIVE", "none"),
        1.0,
    )]));
    let prom = fake_prometheus(vector).await;
    let started = Instant::now();
    let c = Writer::start(&server, &prom, "monitor-c", Duration::from_secs(2));
    until("monitor-c holding the lease", Duration::from_secs(10), || {
        holder(&server).as_deref() == Some("monitor-c")
    })
    .await;
    // Not before the dead holder's lease ran out on monitor-c's own clock.
    assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());
    until("a Report", Duration::from_secs(10), || {
        report(&server, "bookinfo").is_some()
    })
    .await;
    let lease = server.with_store(|s| {
        s.get("coordination.k8s.io", "Lease", Some("mtlscope"), LEASE_NAME)
            .cloned()
    });
    assert_eq!(lease.unwrap()["spec"]["leaseTransitions"], 5);
    assert!(writes.all().iter().all(|w| w.writer == "monitor-c"));
    c.stop().await;
}
