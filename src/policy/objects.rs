//! Pods and Services read from their JSON (a dump's or the API's), as far as PeerAuthentication
//! and capture need them. An object that lacks what is needed is an [`ObjectError`]; a field
//! that is only a hint (annotations, an unparsable IP) is read leniently.

use super::fields::{port_number, string_map, typed, Meta, ObjectError};
use super::model::{Container, ContainerPort, Pod, Service, ServicePort, TargetPort, Workload};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

/// Mesh proxies by container name: a capture target picks another container by default.
const PROXY_CONTAINERS: &[&str] = &["istio-proxy", "linkerd-proxy"];
/// Names the container `kubectl exec` and `kubectl logs` use when none is given.
const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

impl Pod {
    /// A Pod object (JSON, as the API or `kubectl get -o json` gives it).
    pub fn from_object(obj: &Map<String, Value>) -> Result<Pod, ObjectError> {
        parse_pod(obj, &Meta::read(obj), None)
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawPodSpec {
    containers: Option<Vec<RawContainer>>,
    init_containers: Option<Vec<RawContainer>>,
    host_network: Option<bool>,
    node_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawContainer {
    name: Option<String>,
    ports: Option<Vec<RawContainerPort>>,
    restart_policy: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawContainerStatus {
    name: Option<String>,
    #[serde(rename = "containerID")]
    container_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawContainerPort {
    container_port: Value,
    name: Option<String>,
    protocol: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawPodStatus {
    phase: Option<String>,
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pod_ips: Option<Vec<RawPodIp>>,
    container_statuses: Option<Vec<RawContainerStatus>>,
    init_container_statuses: Option<Vec<RawContainerStatus>>,
}

#[derive(Deserialize)]
struct RawPodIp {
    ip: Option<String>,
}

/// A Pod (kind and apiVersion already checked).
pub(super) fn parse_pod(obj: &Map<String, Value>, meta: &Meta, source: Option<&Path>) -> Result<Pod, ObjectError> {
    let id = meta.identity()?;
    let labels = string_map(meta.labels.as_ref(), "metadata.labels")?;
    // Annotations only feed the sidecar guess, so a malformed map is not worth rejecting for.
    let annotations = string_map(meta.annotations.as_ref(), "metadata.annotations").unwrap_or_default();
    let spec: RawPodSpec = typed(obj.get("spec"), "spec")?;
    let status: RawPodStatus = typed(obj.get("status"), "status")?;

    let mut ports = Vec::new();
    let mut sidecar = annotations.contains_key("sidecar.istio.io/status");
    let containers = spec.containers.iter().flatten();
    let init = spec.init_containers.iter().flatten();
    for c in containers.chain(init) {
        let cname = c.name.clone().unwrap_or_default();
        sidecar |= cname == "istio-proxy";
        for p in c.ports.iter().flatten() {
            ports.push(ContainerPort {
                container: cname.clone(),
                name: p.name.clone().filter(|n| !n.is_empty()),
                port: port_number(&p.container_port, || format!("container {cname}: containerPort"))?,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            });
        }
    }

    let listed = status.pod_ips.iter().flatten().filter_map(|p| p.ip.as_deref());
    let ips = unique_ips(status.pod_ip.as_deref().into_iter().chain(listed));

    let statuses = status
        .init_container_statuses
        .iter()
        .chain(status.container_statuses.iter())
        .flatten();
    let statuses: Vec<&RawContainerStatus> = statuses.collect();
    let container = |c: &RawContainer, native_sidecar: bool| {
        let name = c.name.clone().unwrap_or_default();
        Container {
            id: statuses
                .iter()
                .find(|s| s.name.as_deref() == Some(name.as_str()))
                .and_then(|s| s.container_id.clone())
                .filter(|id| !id.is_empty()),
            sidecar: native_sidecar || PROXY_CONTAINERS.contains(&name.as_str()),
            name,
        }
    };
    let native = spec.init_containers.iter().flatten();
    let native = native.filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let mut pod_containers: Vec<Container> = native.map(|c| container(c, true)).collect();
    pod_containers.extend(spec.containers.iter().flatten().map(|c| container(c, false)));
    let default_container = annotations
        .get(DEFAULT_CONTAINER_ANNOTATION)
        .filter(|n| pod_containers.iter().any(|c| &c.name == *n))
        .cloned();

    let workload = workload(obj, &id.name, &labels);
    Ok(Pod {
        namespace: id.namespace,
        name: id.name,
        labels,
        ips,
        ports,
        host_network: spec.host_network.unwrap_or(false),
        phase: status.phase,
        sidecar,
        ambient: annotations
            .get("ambient.istio.io/redirection")
            .is_some_and(|v| v == "enabled"),
        source: source.map(Path::to_path_buf),
        node: spec.node_name.filter(|n| !n.is_empty()),
        containers: pod_containers,
        default_container,
        workload,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOwnerReference {
    kind: Option<String>,
    name: Option<String>,
    controller: Option<bool>,
}

/// The pod's workload from its controlling owner reference, as Istio's `GetDeployMetaFromPod`
/// derives it (see [`Workload`]). Owner references are only a hint here: a malformed list makes
/// the pod its own workload rather than rejecting it. Istio looks at the owner only when the pod
/// has a `generateName`; every controller's pods have one, so that check is left out (a
/// hand-written dump with owners but no `generateName` still names the workload).
fn workload(obj: &Map<String, Value>, pod_name: &str, labels: &BTreeMap<String, String>) -> Workload {
    let refs = obj
        .get("metadata")
        .and_then(|m| m.get("ownerReferences"))
        .cloned()
        .and_then(|v| serde_json::from_value::<Vec<RawOwnerReference>>(v).ok())
        .unwrap_or_default();
    let controller = refs.into_iter().find(|r| r.controller == Some(true));
    let Some((kind, name)) = controller.and_then(|r| Some((r.kind?, r.name?))) else {
        return Workload {
            kind: "Pod".into(),
            name: pod_name.into(),
        };
    };
    let hash = labels.get("pod-template-hash").filter(|h| !h.is_empty());
    match kind.as_str() {
        // As Istio: the name ends with the hash, and loses `-<hash>` if it has that.
        "ReplicaSet" if hash.is_some_and(|h| name.ends_with(h.as_str())) => Workload {
            kind: "Deployment".into(),
            name: hash
                .and_then(|h| name.strip_suffix(&format!("-{h}")))
                .unwrap_or(&name)
                .into(),
        },
        "Job" => match cronjob_of(&name) {
            Some(cron) => Workload {
                kind: "CronJob".into(),
                name: cron.into(),
            },
            None => Workload { kind, name },
        },
        _ => Workload { kind, name },
    }
}

/// `<cronjob>-<8 to 10 digits>`, Istio's `cronJobNameRegexp` (`(.+)-\d{8,10}$`): the CronJob's
/// name.
fn cronjob_of(job: &str) -> Option<&str> {
    let (cron, digits) = job.rsplit_once('-')?;
    let digits_ok = (8..=10).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    (digits_ok && !cron.is_empty()).then_some(cron)
}

#[cfg(test)]
mod workload_tests {
    use super::*;
    use serde_json::json;

    fn pod_workload(meta: Value) -> Workload {
        let mut m = json!({"name": "p-1", "namespace": "ns"});
        m.as_object_mut().unwrap().extend(meta.as_object().unwrap().clone());
        let obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": m, "spec": {}, "status": {}});
        Pod::from_object(obj.as_object().unwrap()).unwrap().workload
    }

    fn owner(kind: &str, name: &str) -> Value {
        json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "controller": true, "uid": "u"}])
    }

    fn w(kind: &str, name: &str) -> Workload {
        Workload {
            kind: kind.into(),
            name: name.into(),
        }
    }

    #[test]
    fn workloads_are_named_as_istio_names_them() {
        let rs = json!({"ownerReferences": owner("ReplicaSet", "reviews-v1-5d9f8b7c6"),
                        "labels": {"pod-template-hash": "5d9f8b7c6"}});
        assert_eq!(pod_workload(rs), w("Deployment", "reviews-v1"));
        // A ReplicaSet of its own (no hash label, or a name the hash does not end) is itself.
        let bare_rs = json!({"ownerReferences": owner("ReplicaSet", "frontend")});
        assert_eq!(pod_workload(bare_rs), w("ReplicaSet", "frontend"));
        let other_hash = json!({"ownerReferences": owner("ReplicaSet", "frontend"),
                                "labels": {"pod-template-hash": "abc"}});
        assert_eq!(pod_workload(other_hash), w("ReplicaSet", "frontend"));
        // Ending with the hash without a dash before it: a Deployment of the whole name (Istio's
        // TrimSuffix of `-<hash>` does nothing).
        let no_dash = json!({"ownerReferences": owner("ReplicaSet", "webabc"),
                             "labels": {"pod-template-hash": "abc"}});
        assert_eq!(pod_workload(no_dash), w("Deployment", "webabc"));
        let sts = json!({"ownerReferences": owner("StatefulSet", "db")});
        assert_eq!(pod_workload(sts), w("StatefulSet", "db"));
        let ds = json!({"ownerReferences": owner("DaemonSet", "mtlscope")});
        assert_eq!(pod_workload(ds), w("DaemonSet", "mtlscope"));
        let cron = json!({"ownerReferences": owner("Job", "backup-28930260")});
        assert_eq!(pod_workload(cron), w("CronJob", "backup"));
        let job = json!({"ownerReferences": owner("Job", "migrate-2")});
        assert_eq!(pod_workload(job), w("Job", "migrate-2"));
        // 7 or 11 digits are not a CronJob's schedule time.
        let short = json!({"ownerReferences": owner("Job", "x-1234567")});
        assert_eq!(pod_workload(short), w("Job", "x-1234567"));
        let long = json!({"ownerReferences": owner("Job", "x-12345678901")});
        assert_eq!(pod_workload(long), w("Job", "x-12345678901"));
        assert_eq!(pod_workload(json!({})), w("Pod", "p-1"));
        // An owner that does not control the pod does not name its workload.
        let not_controller = json!({"ownerReferences": [{"kind": "StatefulSet", "name": "db", "controller": false}]});
        assert_eq!(pod_workload(not_controller), w("Pod", "p-1"));
        // Malformed references are a hint not taken, not a rejected pod.
        assert_eq!(pod_workload(json!({"ownerReferences": "nope"})), w("Pod", "p-1"));
    }

    #[test]
    fn a_pod_built_by_hand_is_its_own_workload() {
        let pod = Pod {
            name: "solo".into(),
            ..Pod::default()
        };
        assert_eq!(pod.workload_name(), "solo");
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawServiceSpec {
    selector: Option<BTreeMap<String, String>>,
    #[serde(rename = "clusterIP")]
    cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs")]
    cluster_ips: Option<Vec<String>>,
    ports: Option<Vec<RawServicePort>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawServicePort {
    name: Option<String>,
    protocol: Option<String>,
    port: Value,
    target_port: Option<Value>,
}

/// A Service (kind and apiVersion already checked).
pub(super) fn parse_service(
    obj: &Map<String, Value>,
    meta: &Meta,
    source: Option<&Path>,
) -> Result<Service, ObjectError> {
    let id = meta.identity()?;
    let spec: RawServiceSpec = typed(obj.get("spec"), "spec")?;
    let mut ports = Vec::new();
    for p in spec.ports.iter().flatten() {
        let port = port_number(&p.port, || "spec.ports[].port".into())?;
        let target_port = match &p.target_port {
            None | Some(Value::Null) => TargetPort::Number(port),
            Some(Value::String(s)) => match s.parse::<u16>() {
                // Kubernetes refuses an all-digit name; a hand-written "9080" means the number.
                Ok(n) if n != 0 && s.bytes().all(|b| b.is_ascii_digit()) => TargetPort::Number(n),
                _ => TargetPort::Name(s.clone()),
            },
            Some(v) => TargetPort::Number(port_number(v, || "spec.ports[].targetPort".into())?),
        };
        ports.push(ServicePort {
            name: p.name.clone(),
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            port,
            target_port,
        });
    }
    let listed = spec.cluster_ips.iter().flatten().map(String::as_str);
    let cluster_ips = unique_ips(spec.cluster_ip.as_deref().into_iter().chain(listed));
    Ok(Service {
        namespace: id.namespace,
        name: id.name,
        selector: spec.selector.unwrap_or_default(),
        cluster_ips,
        ports,
        source: source.map(Path::to_path_buf),
    })
}

/// The addresses among `texts`, each once, in order. An unparsable one ("None" for a headless
/// Service, "") cannot match any packet: it is dropped, not the object that listed it.
fn unique_ips<'a>(texts: impl Iterator<Item = &'a str>) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    for ip in texts.filter_map(|t| t.parse::<IpAddr>().ok()) {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips
}
