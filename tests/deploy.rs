//! deploy/: what `kubectl kustomize` renders from it, checked against what the program needs and
//! allows. The manifests are rendered by the real kubectl (its embedded kustomize), parsed, and
//! compared with the crate itself: the helper pod's privileges (`kube::helper_pod`), the flags of
//! `mtlscope monitor --help`, the crate's version, and the metrics of the contract in issue 16
//! (docs/monitor.md). The dashboard's PromQL is checked by Prometheus's own parser
//! (`promtool check rules`). Without kubectl on PATH the tests print SKIP
//! (`.ci/install-deps --test` installs one).

use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

const IMAGE_REPOSITORY: &str = "ghcr.io/mtlscope/mtlscope";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every document `kubectl kustomize deploy/DIR` renders, as JSON; `None` (after a SKIP line)
/// when there is no kubectl.
fn kustomize(dir: &str) -> Option<Vec<Value>> {
    let path = root().join("deploy").join(dir);
    let out = match Command::new("kubectl").arg("kustomize").arg(&path).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIP: kubectl is not on PATH (.ci/install-deps --test installs Debian's kubernetes-client)");
            return None;
        }
        Err(e) => panic!("running kubectl kustomize {}: {e}", path.display()),
    };
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("kustomize prints UTF-8");
    let docs: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: a document does not parse: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect();
    assert!(
        !docs.is_empty(),
        "kubectl kustomize {} rendered nothing",
        path.display()
    );
    Some(docs)
}

fn kind_name(doc: &Value) -> (String, String, String) {
    let s = |p: &str| doc.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
    (s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| {
            let (k, _, n) = kind_name(d);
            k == kind && n == name
        })
        .unwrap_or_else(|| panic!("deploy/ renders no {kind} {name}"))
}

fn daemonset(docs: &[Value]) -> &Value {
    find(docs, "DaemonSet", "mtlscope")
}

fn container(docs: &[Value]) -> &Value {
    let containers = daemonset(docs)["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("the DaemonSet has containers");
    assert_eq!(containers.len(), 1, "the DaemonSet runs one container, the monitor");
    &containers[0]
}

/// The base, and each overlay: the base's objects and its one Prometheus-operator object.
#[test]
fn each_kustomization_renders_the_objects_it_should() {
    let base = [
        ("ClusterRole", "", "mtlscope-monitor"),
        ("ClusterRoleBinding", "", "mtlscope-monitor"),
        ("ConfigMap", "mtlscope", "mtlscope-dashboard"),
        ("DaemonSet", "mtlscope", "mtlscope"),
        ("Namespace", "", "mtlscope"),
        ("Role", "istio-system", "mtlscope-mesh-config"),
        ("Role", "mtlscope", "mtlscope-leader-election"),
        ("RoleBinding", "istio-system", "mtlscope-mesh-config"),
        ("RoleBinding", "mtlscope", "mtlscope-leader-election"),
        ("Service", "mtlscope", "mtlscope"),
        ("ServiceAccount", "mtlscope", "mtlscope"),
    ];
    for (dir, extra) in [
        ("", None),
        ("prometheus-operator", Some("ServiceMonitor")),
        ("prometheus-operator/pod-monitor", Some("PodMonitor")),
    ] {
        let Some(docs) = kustomize(dir) else { return };
        let got: BTreeSet<(String, String, String)> = docs.iter().map(kind_name).collect();
        assert_eq!(got.len(), docs.len(), "deploy/{dir}: an object is rendered twice");
        let mut want: BTreeSet<(String, String, String)> = base
            .iter()
            .map(|(k, ns, n)| ((*k).to_owned(), (*ns).to_owned(), (*n).to_owned()))
            .collect();
        if let Some(kind) = extra {
            want.insert((kind.to_owned(), "mtlscope".to_owned(), "mtlscope".to_owned()));
        }
        assert_eq!(got, want, "deploy/{dir} renders other objects than expected");
        for doc in &docs {
            let (kind, _, _) = kind_name(doc);
            let api = doc["apiVersion"].as_str().unwrap_or_default();
            if kind.ends_with("Monitor") {
                assert_eq!(api, "monitoring.coreos.com/v1", "deploy/{dir}: {kind}");
            }
        }
    }
}

/// The base must apply on a cluster without the Prometheus operator: no monitoring.coreos.com
/// object in it, and the operator's objects scrape the port the DaemonSet and Service name.
#[test]
fn the_base_needs_no_operator_and_the_monitors_scrape_the_metrics_port() {
    let Some(docs) = kustomize("") else { return };
    assert!(docs.iter().all(|d| !d["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .starts_with("monitoring.coreos.com")));
    let service = find(&docs, "Service", "mtlscope");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "metrics", "port": 9477, "targetPort": "metrics", "protocol": "TCP"}])
    );
    let pod_labels = &daemonset(&docs)["spec"]["template"]["metadata"]["labels"];
    for (k, v) in service["spec"]["selector"]
        .as_object()
        .expect("the Service selects pods")
    {
        assert_eq!(
            &pod_labels[k], v,
            "the Service's selector {k} does not select the DaemonSet's pods"
        );
    }
    assert_eq!(
        container(&docs)["ports"],
        json!([{"name": "metrics", "containerPort": 9477, "protocol": "TCP"}])
    );
    for (dir, kind, endpoints) in [
        ("prometheus-operator", "ServiceMonitor", "endpoints"),
        ("prometheus-operator/pod-monitor", "PodMonitor", "podMetricsEndpoints"),
    ] {
        let Some(docs) = kustomize(dir) else { return };
        let monitor = find(&docs, kind, "mtlscope");
        let ep = &monitor["spec"][endpoints][0];
        assert_eq!(ep["port"], "metrics", "{kind}");
        assert_eq!(ep["path"], "/metrics", "{kind}");
        for (k, v) in monitor["spec"]["selector"]["matchLabels"]
            .as_object()
            .expect("a selector")
        {
            let labels = if kind == "PodMonitor" {
                pod_labels
            } else {
                &service["metadata"]["labels"]
            };
            assert_eq!(&labels[k], v, "{kind}'s selector {k} selects nothing");
        }
    }
}

/// A rule as a set of (apiGroup, resource, resourceName, verb): every verb a rule grants is one
/// element, so an added verb, resource or name shows as a difference.
fn grants(rules: &Value) -> BTreeSet<(String, String, String, String)> {
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().expect("a string").to_owned()).collect())
            .unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for rule in rules.as_array().expect("rules") {
        let names = list(&rule["resourceNames"]);
        let names = if names.is_empty() { vec!["*".to_owned()] } else { names };
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "no non-resource URL is needed: {rule}"
        );
        for group in list(&rule["apiGroups"]) {
            for resource in list(&rule["resources"]) {
                for name in &names {
                    for verb in list(&rule["verbs"]) {
                        out.insert((group.clone(), resource.clone(), name.clone(), verb));
                    }
                }
            }
        }
    }
    out
}

fn set(items: &[(&str, &str, &str, &[&str])]) -> BTreeSet<(String, String, String, String)> {
    let mut out = BTreeSet::new();
    for (group, resource, name, verbs) in items {
        for verb in *verbs {
            out.insert(((*group).into(), (*resource).into(), (*name).into(), (*verb).into()));
        }
    }
    out
}

/// The least RBAC the monitor needs, exactly: adding a verb, a resource or a name (or dropping
/// the resourceNames of the mesh ConfigMap) fails here, on purpose. Change it with the code
/// that needs it, and say why in deploy/base/rbac.yaml.
#[test]
fn rbac_is_exactly_the_least_the_monitor_needs() {
    let Some(docs) = kustomize("") else { return };
    const READ: &[&str] = &["get", "list", "watch"];
    let cluster = grants(&find(&docs, "ClusterRole", "mtlscope-monitor")["rules"]);
    assert_eq!(
        cluster,
        set(&[
            ("", "pods", "*", READ),
            ("", "services", "*", READ),
            ("security.istio.io", "peerauthentications", "*", READ),
            (
                "openreports.io",
                "reports",
                "*",
                &["get", "list", "watch", "create", "update", "patch", "delete"]
            ),
        ]),
        "the ClusterRole"
    );
    let mesh = find(&docs, "Role", "mtlscope-mesh-config");
    assert_eq!(mesh["metadata"]["namespace"], "istio-system");
    assert_eq!(
        grants(&mesh["rules"]),
        set(&[("", "configmaps", "istio", READ)]),
        "the mesh config Role"
    );
    let lease = find(&docs, "Role", "mtlscope-leader-election");
    assert_eq!(lease["metadata"]["namespace"], "mtlscope");
    assert_eq!(
        grants(&lease["rules"]),
        set(&[("coordination.k8s.io", "leases", "*", &["get", "create", "update"])]),
        "the Lease Role"
    );
    // Each role is bound to the DaemonSet's service account, and nothing else is bound.
    let sa = daemonset(&docs)["spec"]["template"]["spec"]["serviceAccountName"].clone();
    assert_eq!(sa, "mtlscope");
    let mut bound = BTreeSet::new();
    for doc in &docs {
        let (kind, ns, name) = kind_name(doc);
        if !kind.ends_with("Binding") {
            continue;
        }
        assert_eq!(
            doc["subjects"],
            json!([{"kind": "ServiceAccount", "name": "mtlscope", "namespace": "mtlscope"}]),
            "{kind} {ns}/{name}"
        );
        let role_kind = doc["roleRef"]["kind"].as_str().unwrap_or_default().to_owned();
        assert_eq!(
            role_kind == "ClusterRole",
            kind == "ClusterRoleBinding",
            "{kind} {name}"
        );
        bound.insert((
            ns,
            role_kind,
            doc["roleRef"]["name"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let want: BTreeSet<(String, String, String)> = [
        ("", "ClusterRole", "mtlscope-monitor"),
        ("istio-system", "Role", "mtlscope-mesh-config"),
        ("mtlscope", "Role", "mtlscope-leader-election"),
    ]
    .iter()
    .map(|(a, b, c)| ((*a).into(), (*b).into(), (*c).into()))
    .collect();
    assert_eq!(bound, want);
}

/// The DaemonSet's pod has the helper pod's privileges, taken from the helper the crate builds
/// (`kube::helper_pod::helper_pod`): its container's securityContext, hostPID, the seccomp
/// profile and the tolerations; and the namespace's Pod Security level admits them.
#[test]
fn the_daemonset_has_the_helper_pods_privileges_and_no_more() {
    let Some(docs) = kustomize("") else { return };
    use mtlscope::kube::helper_pod::{helper_pod, HelperOptions, CAPABILITIES};
    let opts = HelperOptions {
        namespace: "mtlscope".into(),
        image: format!("{IMAGE_REPOSITORY}:v{}", env!("CARGO_PKG_VERSION")),
        pull_policy: "IfNotPresent".into(),
        privileged: false,
        deadline: std::time::Duration::from_secs(60),
        session: "deploy-test".into(),
    };
    let helper = serde_json::to_value(helper_pod(&opts, "node-1", &[], None)).expect("the helper pod serializes");
    let pod = &daemonset(&docs)["spec"]["template"]["spec"];
    let c = container(&docs);
    assert_eq!(
        c["securityContext"], helper["spec"]["containers"][0]["securityContext"],
        "the monitor's securityContext differs from the helper's"
    );
    let added: Vec<&str> = c["securityContext"]["capabilities"]["add"]
        .as_array()
        .expect("capabilities are added")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(added, CAPABILITIES);
    for field in ["hostPID", "securityContext", "tolerations"] {
        assert_eq!(
            pod[field], helper["spec"][field],
            "the pod's {field} differs from the helper's"
        );
    }
    assert_eq!(pod["hostNetwork"], false);
    // Pod Security: only "privileged" admits hostPID and added capabilities.
    let labels = &find(&docs, "Namespace", "mtlscope")["metadata"]["labels"];
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "privileged");
    // The node from the downward API (--node defaults to NODE_NAME), and the Lease's identity.
    let env: BTreeMap<&str, &str> = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap(),
                e["valueFrom"]["fieldRef"]["fieldPath"]
                    .as_str()
                    .unwrap_or("not from the downward API"),
            )
        })
        .collect();
    assert_eq!(
        env,
        BTreeMap::from([
            ("NODE_NAME", "spec.nodeName"),
            ("POD_NAME", "metadata.name"),
            ("POD_NAMESPACE", "metadata.namespace"),
        ])
    );
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(c[probe]["httpGet"]["path"], "/healthz", "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"], "metrics", "{probe}");
    }
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(c["resources"][bound][resource].is_string(), "no {bound}.{resource}");
        }
    }
}

/// The image is what the release publishes: release.yml tags it with the git tag
/// (`github.ref_name`), which its first job requires to be `v` and Cargo.toml's version; so
/// `IMAGE:vVERSION`, whose entry point is where the Dockerfile puts the agent.
#[test]
fn the_image_is_the_release_of_this_version() {
    let Some(docs) = kustomize("") else { return };
    let version = env!("CARGO_PKG_VERSION");
    let c = container(&docs);
    assert_eq!(
        c["image"].as_str().unwrap(),
        format!("{IMAGE_REPOSITORY}:v{version}"),
        "deploy/base/daemonset.yaml's image is not the release of Cargo.toml's version {version}"
    );
    for labels in [
        &daemonset(&docs)["metadata"]["labels"],
        &daemonset(&docs)["spec"]["template"]["metadata"]["labels"],
    ] {
        assert_eq!(labels["app.kubernetes.io/version"], version);
    }
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    let binary = c["command"][0].as_str().expect("the DaemonSet names the command");
    assert!(
        dockerfile.contains(&format!("COPY --from=agent /out/mtlscope {binary}")),
        "the Dockerfile does not install mtlscope at {binary}"
    );
    let release = std::fs::read_to_string(root().join(".github/workflows/release.yml")).expect("release.yml");
    for published in [
        "image=ghcr.io/${GITHUB_REPOSITORY_OWNER,,}/mtlscope",
        "tags: ${{ steps.name.outputs.image }}:${{ github.ref_name }}",
        r#"if [[ "$GITHUB_REF_NAME" != "v$crate" ]]; then"#,
    ] {
        assert!(
            release.contains(published),
            "release.yml no longer has {published:?}: check what image tag the release publishes"
        );
    }
}

/// Every `--flag` the DaemonSet passes is one `mtlscope monitor --help` lists.
#[test]
fn the_daemonset_passes_only_flags_of_mtlscope_monitor() {
    let Some(docs) = kustomize("") else { return };
    let c = container(&docs);
    assert_eq!(c["command"][1], "monitor", "the DaemonSet runs `mtlscope monitor`");
    let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["monitor", "--help"])
        .output()
        .expect("run mtlscope monitor --help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "`mtlscope monitor --help` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let known: BTreeSet<&str> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .collect();
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(!args.is_empty());
    for arg in args {
        let flag = arg.split('=').next().unwrap();
        assert!(
            flag.starts_with("--"),
            "DaemonSet argument {arg:?} is not a --flag=value"
        );
        assert!(
            known.contains(flag),
            "DaemonSet passes {flag}, which `mtlscope monitor --help` does not list"
        );
    }
}

/// The metrics of the contract (issue 16, docs/monitor.md) and their labels.
fn contract_metrics() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        (
            "mtlscope_connections_total",
            &[
                "source_workload",
                "source_workload_namespace",
                "destination_workload",
                "destination_workload_namespace",
                "destination_port",
                "verdict",
                "confidence",
                "expected_mode",
                "finding",
            ][..],
        ),
        ("mtlscope_build_info", &["version"][..]),
        ("mtlscope_capture_packets_total", &["netns"][..]),
        ("mtlscope_capture_drops_total", &["netns"][..]),
        ("mtlscope_capture_targets", &[][..]),
        ("mtlscope_flows_tracked", &[][..]),
        ("mtlscope_buffer_limit_hits_total", &["limit"][..]),
    ])
}

/// Labels Prometheus adds to every series it scrapes from a monitor (`node` by the relabeling
/// in the ServiceMonitor and PodMonitor, as docs/monitor.md says for a hand-written config).
const TARGET_LABELS: &[&str] = &["instance", "job", "node"];

/// The PromQL of every panel target and of the template variables, Grafana's variables replaced
/// by values Prometheus parses.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a PromQL expr");
            out.push((format!("{} / {}", panel["title"], target["refId"]), expr.to_owned()));
        }
    }
    for var in dashboard["templating"]["list"].as_array().expect("templating") {
        if let Some(q) = var["query"]["query"].as_str() {
            // label_values(METRIC, LABEL) is Grafana's, not PromQL: check its parts.
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .expect("a label_values() query");
            let (metric, label) = inner.split_once(',').expect("label_values(METRIC, LABEL)");
            out.push((
                format!("variable {}", var["name"]),
                format!("count by ({}) ({})", label.trim(), metric.trim()),
            ));
        }
    }
    out.into_iter()
        .map(|(what, e)| {
            let e = e
                .replace("$__rate_interval", "2m")
                .replace("$__range", "1h")
                .replace("$namespace", ".*");
            assert!(
                !e.contains('$'),
                "{what}: a Grafana variable this test does not know: {e}"
            );
            (what, e)
        })
        .collect()
}

/// Names in `by (...)`, `without (...)` and label matchers `{name=...}`.
fn label_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| s.trim().to_owned();
    let mut rest = expr;
    while let Some(i) = rest.find(['{', '(']) {
        let before = rest[..i].trim_end();
        let open = rest.as_bytes()[i] as char;
        let close = if open == '{' { '}' } else { ')' };
        let end = rest[i..].find(close).map(|e| i + e).unwrap_or(rest.len());
        let inside = &rest[i + 1..end];
        if open == '{' {
            for m in inside.split(',').filter(|m| !m.trim().is_empty()) {
                let name = m.split(['=', '!', '~']).next().unwrap();
                out.insert(ident(name));
            }
            rest = &rest[end..];
        } else {
            if before.ends_with(" by") || before.ends_with(" without") || before == "by" || before == "without" {
                out.extend(inside.split(',').map(ident));
            }
            rest = &rest[i + 1..];
        }
    }
    out
}

/// Every PromQL expression in the dashboard parses (promtool, as a recording rule each), names
/// only the contract's metrics, and groups or filters only by their labels.
#[test]
fn the_dashboards_promql_parses_and_uses_only_the_contracts_metrics() {
    let path = root().join("deploy/base/grafana/mtlscope.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    let dashboard: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // What the ConfigMap ships is that file, labelled for Grafana's sidecar.
    if let Some(docs) = kustomize("") {
        let cm = find(&docs, "ConfigMap", "mtlscope-dashboard");
        assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
        assert_eq!(cm["data"]["mtlscope.json"].as_str(), Some(text.as_str()));
    }
    let metrics = contract_metrics();
    let queries = dashboard_queries(&dashboard);
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for wanted in [
        "mTLS share per workload pair",
        "Violations",
        "Kernel drops",
        "Flows tracked",
    ] {
        assert!(
            titles.iter().any(|t| t.starts_with(wanted)),
            "the dashboard has no panel {wanted:?}"
        );
    }
    let mut rules = String::from("groups:\n  - name: mtlscope-dashboard\n    rules:\n");
    for (i, (what, expr)) in queries.iter().enumerate() {
        let used: BTreeSet<&str> = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter(|w| w.starts_with("mtlscope_"))
            .collect();
        assert!(!used.is_empty(), "{what}: no mtlscope metric in {expr}");
        let mut allowed: BTreeSet<&str> = TARGET_LABELS.iter().copied().collect();
        for m in &used {
            let labels = metrics
                .get(m)
                .unwrap_or_else(|| panic!("{what}: {m} is not a metric of the contract (docs/monitor.md)"));
            allowed.extend(labels.iter().copied());
        }
        for label in label_names(expr) {
            assert!(
                allowed.contains(label.as_str()),
                "{what}: label {label:?} is not one of {used:?}'s in {expr}"
            );
        }
        rules.push_str(&format!(
            "      - record: mtlscope:dashboard_query:{i}\n        expr: {}\n",
            serde_json::to_string(expr).unwrap()
        ));
    }
    let dir = std::env::temp_dir().join(format!("mtlscope-deploy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dashboard-rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("running promtool: {e}; install Debian's `prometheus` package (.ci/install-deps --test)")
        });
    assert!(
        out.status.success(),
        "promtool check rules {} refused the dashboard's PromQL:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{} rules found", queries.len())));
    std::fs::remove_dir_all(&dir).ok();
}

/// The label scanner above, on the shapes the dashboard uses.
#[test]
fn label_names_finds_matchers_and_groupings() {
    let names =
        label_names(r#"sum by (a, b) (rate(m{c="x",d=~"y"}[5m])) / sum without (e) (m{f!="z"}) > 0 and count(m)"#);
    let want: BTreeSet<String> = ["a", "b", "c", "d", "e", "f"].iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(names, want);
}
