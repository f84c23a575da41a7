//! The Kubernetes side of `--cluster` and of the kubectl plugin, against the in-process fake API
//! server in tests/support (real HTTP and JSON, no cluster). The cluster is the bookinfo dump in
//! tests/data/policy, served as the API server would serve it.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;

use fake_apiserver::{FakeApiServer, IstioApi};
use mtlscope::kube::client::{self, KubeError, KubeTarget};
use mtlscope::policy;
use mtlscope::policy::{Cluster, Level, Mode};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

fn dump_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/policy/bookinfo/dump.yaml")
}

/// The dump's objects, plus what a live cluster has that a policy dump does not need: container
/// statuses on the reviews pods and the workloads that own them.
fn bookinfo() -> Vec<Value> {
    let text = std::fs::read_to_string(dump_path()).unwrap();
    let list: Value = serde_norway::from_str(&text).unwrap();
    let mut objects = list["items"].as_array().unwrap().clone();
    for o in &mut objects {
        let name = o["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        if o["kind"] == "Pod" && name.starts_with("reviews-") {
            o["status"]["containerStatuses"] = json!([
                container_status("reviews", &format!("containerd://{}", hex_id(&name, 1))),
                container_status("istio-proxy", &format!("containerd://{}", hex_id(&name, 2))),
            ]);
        }
    }
    objects.extend([
        deployment(
            "reviews-v1",
            json!({"matchLabels": {"app": "reviews", "version": "v1"}}),
        ),
        // matchExpressions as well as matchLabels: both versions of reviews.
        deployment(
            "reviews",
            json!({"matchLabels": {"app": "reviews"},
                   "matchExpressions": [{"key": "version", "operator": "In", "values": ["v2", "v1"]}]}),
        ),
        deployment("ghost", json!({"matchLabels": {"app": "ghost"}})),
    ]);
    objects
}

fn hex_id(seed: &str, n: u8) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(n);
    for b in seed.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}{:016x}{h:016x}{:016x}", h.rotate_left(17), h.rotate_left(41))
}

fn container_status(name: &str, id: &str) -> Value {
    json!({
        "name": name, "containerID": id, "image": format!("docker.io/example/{name}:1"),
        "imageID": format!("docker.io/example/{name}@sha256:{}", "ab".repeat(32)),
        "ready": true, "restartCount": 0, "started": true,
        "state": {"running": {"startedAt": "2024-05-14T09:12:50Z"}},
    })
}

fn workload(kind: &str, namespace: &str, name: &str, selector: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": "2024-05-14T09:12:40Z"},
        "spec": {
            "selector": selector,
            "template": {"metadata": {"labels": {}}, "spec": {"containers": [{"name": "app", "image": "example"}]}},
        },
    })
}

fn deployment(name: &str, selector: Value) -> Value {
    workload("Deployment", "bookinfo", name, selector)
}

async fn fake(istio: IstioApi) -> FakeApiServer {
    FakeApiServer::builder().objects(bookinfo()).istio(istio).start().await
}

fn kinds(objects: &[Value], kind: &str) -> Vec<Value> {
    objects.iter().filter(|o| o["kind"] == kind).cloned().collect()
}

fn pod_names(pods: &[policy::Pod]) -> Vec<&str> {
    pods.iter().map(|p| p.name.as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// cluster_objects
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cluster_objects_reads_peer_authentications_through_v1_when_served() {
    let server = fake(IstioApi::V1AndV1beta1).await;
    let got = client::cluster_objects(&server.client(), None).await.unwrap();
    assert_eq!(got.peer_authentication_version, Some("v1"));
    assert!(got.notes.is_empty(), "{:?}", got.notes);

    let policies = kinds(&got.objects, "PeerAuthentication");
    assert_eq!(policies.len(), 7);
    assert!(policies.iter().all(|p| p["apiVersion"] == "security.istio.io/v1"));
    // List items from the server carry no kind; the module puts it back for the engine.
    assert_eq!(kinds(&got.objects, "Pod").len(), 8);
    assert!(kinds(&got.objects, "Pod").iter().all(|p| p["apiVersion"] == "v1"));
    assert_eq!(kinds(&got.objects, "Service").len(), 5);
    let config_maps = kinds(&got.objects, "ConfigMap");
    assert_eq!(config_maps.len(), 1, "only the mesh config, not every ConfigMap");
    assert_eq!(config_maps[0]["metadata"]["name"], "istio");

    let lines = server.request_lines();
    for expected in [
        "GET /api/v1/configmaps?fieldSelector=metadata.name=istio&limit=500",
        "GET /api/v1/configmaps?labelSelector=istio.io/rev&limit=500",
        "GET /apis/security.istio.io",
        "GET /apis/security.istio.io/v1/peerauthentications?limit=500",
        "GET /api/v1/services?limit=500",
        "GET /api/v1/pods?limit=500",
    ] {
        assert!(lines.iter().any(|l| l == expected), "no {expected:?} in {lines:#?}");
    }
    assert!(!lines.iter().any(|l| l.contains("v1beta1")), "{lines:#?}");
}

#[tokio::test]
async fn cluster_objects_falls_back_to_v1beta1_when_v1_is_not_served() {
    let server = fake(IstioApi::V1beta1Only).await;
    let got = client::cluster_objects(&server.client(), None).await.unwrap();
    assert_eq!(got.peer_authentication_version, Some("v1beta1"));
    assert_eq!(got.notes.len(), 1, "{:?}", got.notes);
    assert!(got.notes[0].contains("security.istio.io/v1beta1"), "{}", got.notes[0]);
    assert!(got.notes[0].contains("does not serve v1"), "{}", got.notes[0]);
    let policies = kinds(&got.objects, "PeerAuthentication");
    assert_eq!(policies.len(), 7);
    assert!(policies.iter().all(|p| p["apiVersion"] == "security.istio.io/v1beta1"));
    let lines = server.request_lines();
    assert!(lines.contains(&"GET /apis/security.istio.io/v1beta1/peerauthentications?limit=500".to_owned()));
    assert!(
        !lines.iter().any(|l| l.starts_with("GET /apis/security.istio.io/v1/")),
        "{lines:#?}"
    );

    // The engine reads v1beta1 objects exactly like v1 ones.
    let cluster = got.into_cluster().unwrap();
    let reviews = cluster.find_pod("bookinfo", "reviews-v1-5c5d5f4f5c-x7k2p").unwrap();
    assert_eq!(cluster.effective(reviews, 9080).mode, Mode::Strict);
}

#[tokio::test]
async fn cluster_without_istio_is_not_an_error_and_says_so() {
    let server = fake(IstioApi::Absent).await;
    let got = client::cluster_objects(&server.client(), None).await.unwrap();
    assert_eq!(got.peer_authentication_version, None);
    assert_eq!(kinds(&got.objects, "PeerAuthentication").len(), 0);
    assert_eq!(kinds(&got.objects, "Pod").len(), 8);
    assert_eq!(got.notes.len(), 1, "{:?}", got.notes);
    assert!(
        got.notes[0].contains("does not serve the security.istio.io API (Istio's CRDs are not installed)"),
        "{}",
        got.notes[0]
    );
    let lines = server.request_lines();
    assert!(!lines.iter().any(|l| l.contains("peerauthentications")), "{lines:#?}");

    let cluster = got.into_cluster().unwrap();
    let reviews = cluster.find_pod("bookinfo", "reviews-v1-5c5d5f4f5c-x7k2p").unwrap();
    let d = cluster.effective(reviews, 9080);
    assert_eq!((d.mode, d.decided_by.level), (Mode::Permissive, Level::Default));
}

#[tokio::test]
async fn forbidden_peer_authentications_name_the_rbac_rule_to_grant() {
    let server = FakeApiServer::builder()
        .objects(bookinfo())
        .forbid("security.istio.io", "peerauthentications", None)
        .start()
        .await;
    let e = client::cluster_objects(&server.client(), None).await.unwrap_err();
    assert!(matches!(e, KubeError::Forbidden { verb: "list", .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "forbidden: cannot list peerauthentications.security.istio.io in all namespaces (needs RBAC: get/list on \
             peerauthentications.security.istio.io, from a ClusterRole bound with a ClusterRoleBinding; check with \
             `kubectl auth can-i list peerauthentications.security.istio.io -A`); the API server said: \
             peerauthentications.security.istio.io is forbidden: User"
        ),
        "{msg}"
    );

    // Namespaced: the message says where, and how to check there.
    let server = FakeApiServer::builder()
        .objects(bookinfo())
        .forbid("", "pods", Some("bookinfo"))
        .start()
        .await;
    let msg = client::cluster_objects(&server.client(), Some("bookinfo"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with(
            "forbidden: cannot list pods in namespace 'bookinfo' (needs RBAC: get/list on pods, from a Role or \
             ClusterRole bound in namespace 'bookinfo'; check with `kubectl auth can-i list pods -n bookinfo`)"
        ),
        "{msg}"
    );
}

/// What `--cluster` computes must be what `--policy-from dump.yaml` computes for the same cluster.
#[tokio::test]
async fn live_objects_give_the_same_effective_modes_as_the_dump_file() {
    let from_file = Cluster::load_paths(&[dump_path()]).unwrap();
    for istio in [IstioApi::V1AndV1beta1, IstioApi::V1beta1Only] {
        let server = fake(istio).await;
        let live = client::cluster_objects(&server.client(), None)
            .await
            .unwrap()
            .into_cluster()
            .unwrap();
        assert_eq!(live.summary().pods, from_file.summary().pods);
        assert_eq!(
            live.summary().peer_authentications,
            from_file.summary().peer_authentications
        );
        assert_eq!(live.summary().services, from_file.summary().services);
        assert_eq!(live.root_namespace(), "istio-system");
        assert_eq!(live.root_namespace_origin(), from_file.root_namespace_origin());
        let mut compared = 0;
        for pod in from_file.pods() {
            let live_pod = live.find_pod(&pod.namespace, &pod.name).unwrap();
            let mut ports: Vec<u16> = pod.ports.iter().map(|p| p.port).collect();
            ports.extend([9080, 15090, 8080, 1]);
            for port in ports {
                assert_eq!(
                    live.effective(live_pod, port),
                    from_file.effective(pod, port),
                    "{istio:?} {}/{} port {port}",
                    pod.namespace,
                    pod.name
                );
                compared += 1;
            }
        }
        assert!(compared > 30);
        let reviews = live.find_pod("bookinfo", "reviews-v1-5c5d5f4f5c-x7k2p").unwrap();
        let d = live.effective(reviews, 9080);
        assert_eq!(d.mode, Mode::Strict);
        assert_eq!(d.decided_by.name.as_deref(), Some("reviews-strict"));
        assert_eq!(d.decided_by.level, Level::Workload);
    }
}

#[tokio::test]
async fn one_namespace_reads_its_policies_and_the_root_namespaces() {
    let server = fake(IstioApi::V1AndV1beta1).await;
    let got = client::cluster_objects(&server.client(), Some("bookinfo"))
        .await
        .unwrap();
    let lines = server.request_lines();
    for expected in [
        "GET /apis/security.istio.io/v1/namespaces/bookinfo/peerauthentications?limit=500",
        "GET /apis/security.istio.io/v1/namespaces/istio-system/peerauthentications?limit=500",
        "GET /api/v1/namespaces/bookinfo/pods?limit=500",
        "GET /api/v1/namespaces/bookinfo/services?limit=500",
    ] {
        assert!(lines.iter().any(|l| l == expected), "no {expected:?} in {lines:#?}");
    }
    assert!(kinds(&got.objects, "Pod")
        .iter()
        .all(|p| p["metadata"]["namespace"] == "bookinfo"));
    let live = got.into_cluster().unwrap();
    let from_file = Cluster::load_paths(&[dump_path()]).unwrap();
    for pod in from_file.pods().iter().filter(|p| p.namespace == "bookinfo") {
        let live_pod = live.find_pod("bookinfo", &pod.name).unwrap();
        for port in [9080, 15090] {
            assert_eq!(
                live.effective(live_pod, port),
                from_file.effective(pod, port),
                "{} {port}",
                pod.name
            );
        }
    }
}

#[tokio::test]
async fn one_namespace_without_the_root_namespaces_policies_keeps_its_pods_and_drops_all_policies() {
    // A RoleBinding in bookinfo: its PeerAuthentications can be read, istio-system's cannot.
    let server = FakeApiServer::builder()
        .objects(bookinfo())
        .forbid("security.istio.io", "peerauthentications", Some("istio-system"))
        .forbid("", "services", Some("bookinfo"))
        .start()
        .await;
    let got = client::cluster_objects(&server.client(), Some("bookinfo"))
        .await
        .unwrap();
    assert!(!kinds(&got.objects, "Pod").is_empty());
    // Half the policies would give wrong expected modes: none at all, and it says so.
    assert!(kinds(&got.objects, "PeerAuthentication").is_empty());
    assert_eq!(got.peer_authentication_version, None);
    assert!(
        got.notes.iter().any(|n| n
            == "listing PeerAuthentications in namespace 'istio-system' is forbidden (needs RBAC get/list on \
                peerauthentications.security.istio.io there, the mesh's root namespace): connections are shown \
                without an expected mode"),
        "{:?}",
        got.notes
    );
    assert!(
        got.notes
            .iter()
            .any(|n| n == "listing Services in namespace 'bookinfo' is forbidden: Service IPs are shown as addresses"),
        "{:?}",
        got.notes
    );
    let cluster = got.into_cluster().unwrap();
    assert!(cluster.pods().iter().all(|p| p.namespace == "bookinfo"));
}

#[tokio::test]
async fn root_namespace_comes_from_the_mesh_config_map() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/policy/custom-root/mesh.yaml"))
            .unwrap();
    let objects: Vec<Value> = text
        .split("\n---\n")
        .map(|doc| serde_norway::from_str::<Value>(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect();
    let server = FakeApiServer::builder().objects(objects).start().await;
    let got = client::cluster_objects(&server.client(), Some("team-a")).await.unwrap();
    let lines = server.request_lines();
    assert!(
        lines
            .contains(&"GET /apis/security.istio.io/v1/namespaces/mesh-admin/peerauthentications?limit=500".to_owned()),
        "{lines:#?}"
    );
    let cluster = got.into_cluster().unwrap();
    assert_eq!(cluster.root_namespace(), "mesh-admin");
}

#[tokio::test]
async fn revisioned_mesh_config_maps_are_found_and_others_left_out() {
    let mut objects = bookinfo();
    objects.retain(|o| !(o["kind"] == "ConfigMap" && o["metadata"]["name"] == "istio"));
    objects.push(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "istio-canary", "namespace": "istio-system", "labels": {"istio.io/rev": "canary"}},
        "data": {"mesh": "rootNamespace: istio-config\n"},
    }));
    let server = FakeApiServer::builder().objects(objects).start().await;
    let got = client::cluster_objects(&server.client(), None).await.unwrap();
    let names: Vec<Value> = kinds(&got.objects, "ConfigMap")
        .iter()
        .map(|c| c["metadata"]["name"].clone())
        .collect();
    // istio-sidecar-injector carries istio.io/rev=default too, but is not istio-default.
    assert_eq!(names, vec![json!("istio-canary")]);
    assert_eq!(got.into_cluster().unwrap().root_namespace(), "istio-config");
}

#[tokio::test]
async fn large_lists_are_read_page_by_page() {
    let pods: Vec<Value> = (0..1203)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": format!("load-{i:04}"), "namespace": "load", "labels": {"app": "load"}},
                   "spec": {"containers": [{"name": "app", "image": "x"}]},
                   "status": {"phase": "Running", "podIP": format!("10.1.{}.{}", i / 250, i % 250 + 1)}})
        })
        .collect();
    let server = FakeApiServer::builder()
        .objects(pods)
        .istio(IstioApi::Absent)
        .start()
        .await;
    let got = client::cluster_objects(&server.client(), None).await.unwrap();
    assert_eq!(kinds(&got.objects, "Pod").len(), 1203);
    let pages: Vec<String> = server
        .request_lines()
        .into_iter()
        .filter(|l| l.starts_with("GET /api/v1/pods"))
        .collect();
    assert_eq!(
        pages,
        [
            "GET /api/v1/pods?limit=500",
            "GET /api/v1/pods?limit=500&continue=500",
            "GET /api/v1/pods?limit=500&continue=1000",
        ]
    );
    let targets = client::resolve_targets(&server.client(), "load", None, Some("app=load"))
        .await
        .unwrap();
    assert_eq!(targets.len(), 1203);
}

// ---------------------------------------------------------------------------------------------
// resolve_targets
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_pod_name_resolves_to_its_node_ips_and_container_ids() {
    let server = fake(IstioApi::V1AndV1beta1).await;
    let pods = client::resolve_targets(&server.client(), "bookinfo", Some("reviews-v1-5c5d5f4f5c-x7k2p"), None)
        .await
        .unwrap();
    assert_eq!(pods.len(), 1);
    let p = &pods[0];
    assert_eq!(
        (p.namespace.as_str(), p.name.as_str()),
        ("bookinfo", "reviews-v1-5c5d5f4f5c-x7k2p")
    );
    assert_eq!(p.node.as_deref(), Some("kind-control-plane"));
    assert_eq!(p.ips, vec!["10.99.0.2".parse::<IpAddr>().unwrap()]);
    assert_eq!(p.phase.as_deref(), Some("Running"));
    assert!(!p.host_network);
    let containers: Vec<(&str, bool)> = p.containers.iter().map(|c| (c.name.as_str(), c.sidecar)).collect();
    // istio-init runs to completion: not a capture target.
    assert_eq!(containers, [("reviews", false), ("istio-proxy", true)]);
    let id = format!("containerd://{}", hex_id("reviews-v1-5c5d5f4f5c-x7k2p", 1));
    assert_eq!(p.containers[0].id.as_deref(), Some(id.as_str()));
    assert_eq!(
        p.default_container.as_deref(),
        Some("reviews"),
        "from kubectl's annotation"
    );
    assert_eq!(p.container(None).unwrap().name, "reviews");
    assert!(p.container(Some("istio-proxy")).unwrap().sidecar);
    let e = p.container(Some("nginx")).unwrap_err().to_string();
    assert_eq!(
        e,
        "container 'nginx' not found in pod 'reviews-v1-5c5d5f4f5c-x7k2p' in namespace 'bookinfo' \
         (containers: reviews, istio-proxy)"
    );
    assert_eq!(
        server.request_lines(),
        ["GET /api/v1/namespaces/bookinfo/pods/reviews-v1-5c5d5f4f5c-x7k2p"]
    );

    // pod/NAME is the same thing.
    let again = client::resolve_targets(
        &server.client(),
        "bookinfo",
        Some("pod/reviews-v1-5c5d5f4f5c-x7k2p"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(again, pods);
}

#[tokio::test]
async fn a_deployment_resolves_through_its_selector() {
    let server = fake(IstioApi::V1AndV1beta1).await;
    let client = server.client();
    let pods = client::resolve_targets(&client, "bookinfo", Some("deploy/reviews-v1"), None)
        .await
        .unwrap();
    assert_eq!(pod_names(&pods), ["reviews-v1-5c5d5f4f5c-x7k2p"]);
    let lines = server.request_lines();
    assert_eq!(
        lines,
        [
            "GET /apis/apps/v1/namespaces/bookinfo/deployments/reviews-v1",
            "GET /api/v1/namespaces/bookinfo/pods?labelSelector=app=reviews,version=v1&limit=500",
        ]
    );

    // matchLabels and matchExpressions together.
    server.clear_requests();
    let pods = client::resolve_targets(&client, "bookinfo", Some("deployment/reviews"), None)
        .await
        .unwrap();
    assert_eq!(
        pod_names(&pods),
        ["reviews-v1-5c5d5f4f5c-x7k2p", "reviews-v2-6f8b7b6c8d-m4zqd"]
    );
    assert_eq!(
        server.requests()[1].query("labelSelector"),
        Some("app=reviews,version in (v1,v2)")
    );
}

#[tokio::test]
async fn statefulsets_daemonsets_and_services_resolve_too() {
    let mut objects = bookinfo();
    objects.push(workload(
        "StatefulSet",
        "bookinfo",
        "ratings",
        json!({"matchLabels": {"app": "ratings"}}),
    ));
    objects.push(workload(
        "DaemonSet",
        "bookinfo",
        "details",
        json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["details"]}]}),
    ));
    let server = FakeApiServer::builder().objects(objects).start().await;
    let client = server.client();
    let names = |pods: Vec<policy::Pod>| pods.into_iter().map(|p| p.name).collect::<Vec<_>>();
    for (target, expected) in [
        ("sts/ratings", vec!["ratings-v1-7c9bd4b87f-9q7tv"]),
        ("statefulset/ratings", vec!["ratings-v1-7c9bd4b87f-9q7tv"]),
        ("ds/details", vec!["details-v1-65cfcf56f9-4x8jq"]),
        ("daemonset/details", vec!["details-v1-65cfcf56f9-4x8jq"]),
        (
            "svc/reviews",
            vec!["reviews-v1-5c5d5f4f5c-x7k2p", "reviews-v2-6f8b7b6c8d-m4zqd"],
        ),
    ] {
        let pods = client::resolve_targets(&client, "bookinfo", Some(target), None)
            .await
            .unwrap_or_else(|e| panic!("{target}: {e}"));
        assert_eq!(names(pods), expected, "{target}");
    }
}

#[tokio::test]
async fn a_label_selector_resolves_to_matching_pods() {
    let server = fake(IstioApi::V1AndV1beta1).await;
    let client = server.client();
    let pods = client::resolve_targets(&client, "bookinfo", None, Some("app=reviews"))
        .await
        .unwrap();
    assert_eq!(
        pod_names(&pods),
        ["reviews-v1-5c5d5f4f5c-x7k2p", "reviews-v2-6f8b7b6c8d-m4zqd"]
    );
    assert_eq!(pods[1].ips, vec!["10.244.0.14".parse::<IpAddr>().unwrap()]);
    let pods = client::resolve_targets(&client, "bookinfo", None, Some("app in (ratings, details),version!=v2"))
        .await
        .unwrap();
    assert_eq!(
        pod_names(&pods),
        ["details-v1-65cfcf56f9-4x8jq", "ratings-v1-7c9bd4b87f-9q7tv"]
    );

    let e = client::resolve_targets(&client, "bookinfo", None, Some("app=nothing"))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "no pods in namespace 'bookinfo' match app=nothing");
    let e = client::resolve_targets(&client, "bookinfo", None, Some("app in (x"))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot use '-l app in (x' as a target: unable to parse requirement"),
        "{e}"
    );
}

#[tokio::test]
async fn unknown_targets_give_errors_a_person_can_act_on() {
    let server = fake(IstioApi::V1AndV1beta1).await;
    let client = server.client();
    let err = |target: &'static str| {
        let client = client.clone();
        async move {
            client::resolve_targets(&client, "bookinfo", Some(target), None)
                .await
                .unwrap_err()
                .to_string()
        }
    };
    assert_eq!(
        err("nosuchpod").await,
        "pod 'nosuchpod' not found in namespace 'bookinfo'"
    );
    // A Deployment's name given as a pod: the pods it could mean are named.
    assert_eq!(
        err("reviews-v1").await,
        "pod 'reviews-v1' not found in namespace 'bookinfo' (pods whose name starts with it: \
         reviews-v1-5c5d5f4f5c-x7k2p; for all pods of a workload use deploy/NAME, sts/NAME or ds/NAME)"
    );
    assert_eq!(
        err("deploy/nope").await,
        "deployment 'nope' not found in namespace 'bookinfo'"
    );
    assert_eq!(
        err("deploy/ghost").await,
        "deployment 'ghost' in namespace 'bookinfo' has no pods matching app=ghost"
    );
    assert!(err("cronjob/x")
        .await
        .starts_with("cannot use 'cronjob/x' as a target: unknown type 'cronjob'"));
    let e = client::resolve_targets(&client, "bookinfo", Some("x"), Some("app=x"))
        .await
        .unwrap_err();
    assert!(matches!(e, KubeError::Usage(_)), "{e:?}");
    let e = client::resolve_targets(&client, "bookinfo", None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, KubeError::Usage(_)), "{e:?}");
}

#[tokio::test]
async fn native_sidecars_are_flagged_and_not_the_default_container() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {
            "nodeName": "worker-2",
            "initContainers": [
                {"name": "istio-validation", "image": "proxyv2"},
                {"name": "istio-proxy", "image": "proxyv2", "restartPolicy": "Always"},
                {"name": "log-shipper", "image": "fluent-bit", "restartPolicy": "Always"},
            ],
            "containers": [{"name": "web", "image": "nginx"}],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.244.1.7",
            "podIPs": [{"ip": "10.244.1.7"}, {"ip": "fd00:10:244:1::7"}],
            "initContainerStatuses": [
                container_status("istio-validation", "containerd://aaaa"),
                container_status("istio-proxy", "cri-o://bbbb"),
                container_status("log-shipper", "cri-o://cccc"),
            ],
            "containerStatuses": [container_status("web", "cri-o://dddd")],
        },
    });
    let server = FakeApiServer::builder().objects([pod]).start().await;
    let pods = client::resolve_targets(&server.client(), "shop", Some("web-0"), None)
        .await
        .unwrap();
    let p = &pods[0];
    let got: Vec<(&str, Option<&str>, bool)> = p
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.id.as_deref(), c.sidecar))
        .collect();
    assert_eq!(
        got,
        [
            ("istio-proxy", Some("cri-o://bbbb"), true),
            ("log-shipper", Some("cri-o://cccc"), true),
            ("web", Some("cri-o://dddd"), false),
        ]
    );
    assert_eq!(p.container(None).unwrap().name, "web");
    assert_eq!(
        p.ips,
        [
            "10.244.1.7".parse::<IpAddr>().unwrap(),
            "fd00:10:244:1::7".parse().unwrap()
        ]
    );
    assert_eq!(p.node.as_deref(), Some("worker-2"));
}

// ---------------------------------------------------------------------------------------------
// Connecting: kubeconfig and context
// ---------------------------------------------------------------------------------------------

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mtlscope-kube-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("config");
    let text = format!(
        "apiVersion: v1
kind: Config
current-context: other
clusters:
- name: fake-cluster
  cluster:
    server: {server}
- name: other-cluster
  cluster:
    server: http://127.0.0.1:9
contexts:
- name: fake
  context:
    cluster: fake-cluster
    user: fake-user
    namespace: bookinfo
- name: other
  context:
    cluster: other-cluster
    user: fake-user
users:
- name: fake-user
  user:
    token: t0ken-for-tests
"
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn kubeconfig_and_context_pick_the_cluster_and_credentials() {
    let server = fake(IstioApi::V1AndV1beta1).await;
    let dir = temp_dir("kubeconfig");
    let path = write_kubeconfig(&dir, &server.url());
    let target = KubeTarget {
        kubeconfig: Some(path.clone()),
        context: Some("fake".into()),
    };
    let client = client::client(&target).await.unwrap();
    assert_eq!(
        client.default_namespace(),
        "bookinfo",
        "the context's namespace is -n's default"
    );
    let pods = client::resolve_targets(&client, client.default_namespace(), None, Some("app=reviews"))
        .await
        .unwrap();
    assert_eq!(pods.len(), 2);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("authorization"), Some("Bearer t0ken-for-tests"));

    let unknown = KubeTarget {
        kubeconfig: Some(path.clone()),
        context: Some("prod".into()),
    };
    let Err(e) = client::client(&unknown).await else {
        panic!("an unknown context was accepted");
    };
    assert_eq!(
        e.to_string(),
        format!(
            "context 'prod' not found in kubeconfig {} (--kubeconfig) (contexts: fake, other); \
             `kubectl config get-contexts` lists them",
            path.display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_unreachable_api_server_is_named_as_such() {
    // A port nothing listens on: bind, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = temp_dir("unreachable");
    let path = write_kubeconfig(&dir, &format!("http://127.0.0.1:{port}"));
    let target = KubeTarget {
        kubeconfig: Some(path),
        context: Some("fake".into()),
    };
    let client = client::client(&target).await.unwrap();
    let e = client::cluster_objects(&client, None).await.unwrap_err();
    assert!(matches!(e, KubeError::Unreachable { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.starts_with("cannot reach the Kubernetes API server: "), "{msg}");
    assert!(msg.to_lowercase().contains("connection refused"), "{msg}");
    assert!(msg.ends_with("`kubectl cluster-info` checks both)"), "{msg}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// The fake itself: what later plugin tests will build on
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn fake_server_creates_and_deletes_pods_and_answers_like_the_api_server() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, DeleteParams, PostParams};
    let server = FakeApiServer::builder().objects(bookinfo()).start().await;
    let pods: Api<Pod> = Api::namespaced(server.client(), "bookinfo");
    let helper: Pod = serde_json::from_value(json!({
        "metadata": {"generateName": "mtlscope-helper-", "labels": {"app.kubernetes.io/name": "mtlscope-helper"}},
        "spec": {"nodeName": "kind-control-plane", "hostPID": true,
                 "containers": [{"name": "agent", "image": "mtlscope"}]},
    }))
    .unwrap();
    let created = pods.create(&PostParams::default(), &helper).await.unwrap();
    let name = created.metadata.name.clone().unwrap();
    assert!(
        name.starts_with("mtlscope-helper-") && name.len() == "mtlscope-helper-".len() + 5,
        "{name}"
    );
    assert_eq!(created.metadata.namespace.as_deref(), Some("bookinfo"));
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    let posted = server.requests().pop().unwrap();
    assert_eq!(
        (posted.method.as_str(), posted.path.as_str()),
        ("POST", "/api/v1/namespaces/bookinfo/pods")
    );
    assert_eq!(posted.json().unwrap()["spec"]["hostPID"], true);

    let listed = pods
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/name=mtlscope-helper"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    pods.delete(&name, &DeleteParams::default()).await.unwrap();
    let e = pods.get(&name).await.unwrap_err();
    match e {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
            assert_eq!(s.message, format!("pods \"{name}\" not found"));
        }
        other => panic!("{other:?}"),
    }
    let e = pods.create(&PostParams::default(), &created).await;
    assert!(e.is_ok(), "recreating after delete works");
    let e = pods.create(&PostParams::default(), &created).await.unwrap_err();
    assert!(matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"));

    // Discovery documents, typed as kube reads them.
    let client = server.client();
    let groups = client.list_api_groups().await.unwrap();
    let names: Vec<&str> = groups.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["apps", "security.istio.io"]);
    let resources = client
        .list_api_group_resources("security.istio.io/v1beta1")
        .await
        .unwrap();
    assert_eq!(resources.resources[0].name, "peerauthentications");
    assert_eq!(client.apiserver_version().await.unwrap().minor, "33");
    assert_eq!(client.list_core_api_versions().await.unwrap().versions, ["v1"]);

    // A handler answers first: here, a pod whose status the test controls.
    let server = FakeApiServer::builder()
        .handler(|req, _store| {
            (req.method == "GET" && req.path == "/api/v1/namespaces/x/pods/y").then(|| {
                fake_apiserver::Reply::ok(json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "y", "namespace": "x"}, "status": {"phase": "Succeeded"}}))
            })
        })
        .start()
        .await;
    let pod = Api::<Pod>::namespaced(server.client(), "x").get("y").await.unwrap();
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Succeeded"));
}

#[tokio::test]
async fn mesh_config_falls_back_to_istio_system_when_configmaps_cannot_be_listed_everywhere() {
    // Allowed to read istio-system's ConfigMaps, not to list them in every namespace.
    let server = FakeApiServer::builder()
        .objects(bookinfo())
        .handler(|req, _| {
            (req.path == "/api/v1/configmaps").then(|| {
                fake_apiserver::Reply::status(
                    403,
                    "Forbidden",
                    "configmaps is forbidden: User \"dev\" cannot list resource \"configmaps\" in API group \"\" \
                     at the cluster scope",
                    None,
                )
            })
        })
        .start()
        .await;
    let got = client::cluster_objects(&server.client(), Some("bookinfo"))
        .await
        .unwrap();
    assert_eq!(
        got.notes,
        ["listing ConfigMaps in all namespaces is forbidden: read the mesh config from istio-system/istio only"]
    );
    assert_eq!(kinds(&got.objects, "ConfigMap").len(), 1);
    assert!(server
        .request_lines()
        .contains(&"GET /api/v1/namespaces/istio-system/configmaps/istio".to_owned()));

    // Not even that: the default root namespace, and a note saying what to do.
    let server = FakeApiServer::builder()
        .objects(bookinfo())
        .forbid("", "configmaps", None)
        .start()
        .await;
    let got = client::cluster_objects(&server.client(), Some("bookinfo"))
        .await
        .unwrap();
    assert_eq!(got.notes.len(), 1);
    assert!(
        got.notes[0].starts_with("cannot read the mesh config"),
        "{}",
        got.notes[0]
    );
    assert!(got.notes[0].contains("pass --root-namespace"), "{}", got.notes[0]);
    let cluster = got.into_cluster().unwrap();
    let reviews = cluster.find_pod("bookinfo", "reviews-v1-5c5d5f4f5c-x7k2p").unwrap();
    assert_eq!(cluster.effective(reviews, 9080).mode, Mode::Strict);
}

// ---------------------------------------------------------------------------------------------
// The command line with --cluster: the binary talks to the fake API server through a kubeconfig
// ---------------------------------------------------------------------------------------------

/// Run the mtlscope binary off the runtime thread, so the fake server keeps answering.
async fn mtlscope(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mtlscope"))
            .args(args)
            .env("CI", "true")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn cli_policy_explain_with_cluster_matches_the_dump() {
    let server = fake(IstioApi::V1AndV1beta1).await;
    let dir = temp_dir("cli-explain");
    let kubeconfig = write_kubeconfig(&dir, &server.url()).to_string_lossy().into_owned();
    let common = [
        "policy",
        "explain",
        "-n",
        "bookinfo",
        "--pod",
        "reviews-v1-5c5d5f4f5c-x7k2p",
        "--port",
        "9080",
        "-o",
        "json",
    ];
    let mut live: Vec<String> = common.iter().map(|s| s.to_string()).collect();
    live.extend(["--cluster", "--kubeconfig", &kubeconfig, "--context", "fake"].map(String::from));
    let mut file: Vec<String> = common.iter().map(|s| s.to_string()).collect();
    file.extend(["--from".to_string(), dump_path().to_string_lossy().into_owned()]);
    let (a, b) = (mtlscope(live).await, mtlscope(file).await);
    assert_eq!(a.status.code(), Some(0), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(String::from_utf8_lossy(&a.stdout), String::from_utf8_lossy(&b.stdout));
    assert!(String::from_utf8_lossy(&a.stdout).contains(r#""mode":"STRICT""#));
}

#[tokio::test]
async fn cli_analyze_with_cluster_flags_plaintext_to_a_strict_pod() {
    let server = fake(IstioApi::V1AndV1beta1).await;
    let dir = temp_dir("cli-analyze");
    let kubeconfig = write_kubeconfig(&dir, &server.url()).to_string_lossy().into_owned();
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/plaintext-http.pcap");
    let args = [
        "analyze",
        "-o",
        "json",
        "--cluster",
        "--kubeconfig",
        &kubeconfig,
        "--context",
        "fake",
    ];
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.push(capture.to_string_lossy().into_owned());
    let o = mtlscope(args).await;
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["flows"][0]["kubernetes"]["server_pod"],
        "bookinfo/reviews-v1-5c5d5f4f5c-x7k2p"
    );
    assert_eq!(
        v["flows"][0]["kubernetes"]["policy"]["finding"]["severity"],
        "violation"
    );
    // The API server saw the requests a real client makes.
    assert!(
        server.request_lines().iter().any(|l| l.contains("peerauthentications")),
        "{:?}",
        server.request_lines()
    );
}

#[tokio::test]
async fn cli_unknown_context_is_a_clear_error() {
    let server = fake(IstioApi::V1AndV1beta1).await;
    let dir = temp_dir("cli-context");
    let kubeconfig = write_kubeconfig(&dir, &server.url()).to_string_lossy().into_owned();
    let args = [
        "policy",
        "explain",
        "--cluster",
        "--kubeconfig",
        &kubeconfig,
        "--context",
        "nope",
        "-n",
        "x",
        "--pod",
        "y",
        "--port",
        "1",
    ];
    let o = mtlscope(args.iter().map(|s| s.to_string()).collect()).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("context 'nope' not found"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
