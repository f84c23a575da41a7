//! Pods and Services read from their JSON (a dump's or the API's), as far as PeerAuthentication
//! and capture need them. An object that lacks what is needed is an [`ObjectError`]; a field
//! that is only a hint (annotations, an unparsable IP) is read leniently.

use super::fields::{port_number, string_map, typed, Meta, ObjectError};
use super::model::{Container, ContainerPort, Pod, Service, ServicePort, TargetPort};
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
    })
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
