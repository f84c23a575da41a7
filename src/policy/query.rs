//! Questions about a loaded [`Cluster`] that come before a decision: which pod is at an address
//! or has a name (with an error that says what is there instead), which Services select a pod,
//! and which pod port a Service port reaches (the port `portLevelMtls` is keyed by).

use super::cluster::Cluster;
use super::model::{Pod, Service, TargetPort};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Why a pod asked for by namespace and name is not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("namespace {namespace:?} is not in the cluster data (namespaces seen: {known})")]
    UnknownNamespace { namespace: String, known: String },
    #[error("no pod {name:?} in namespace {namespace:?}{hint}")]
    UnknownPod {
        namespace: String,
        name: String,
        /// `"; did you mean ..."` or `" (it has no pods in the data)"`.
        hint: String,
    },
}

/// `labels.Instance.SubsetOf`: every selector label is on the pod with the same value.
pub(super) fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl Cluster {
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Pod> {
        self.pods.iter().find(|p| p.namespace == namespace && p.name == name)
    }

    /// [`Cluster::pod`] with an error that says what is there instead.
    pub fn find_pod(&self, namespace: &str, name: &str) -> Result<&Pod, LookupError> {
        if let Some(pod) = self.pod(namespace, name) {
            return Ok(pod);
        }
        if !self.namespaces.contains(namespace) {
            let known: Vec<&str> = self.namespaces.iter().map(String::as_str).collect();
            return Err(LookupError::UnknownNamespace {
                namespace: namespace.to_owned(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        }
        let in_ns: Vec<&str> = self
            .pods
            .iter()
            .filter(|p| p.namespace == namespace)
            .map(|p| p.name.as_str())
            .collect();
        let close: Vec<&str> = in_ns.iter().copied().filter(|p| p.starts_with(name)).take(5).collect();
        let hint = if in_ns.is_empty() {
            " (the data has no pods in that namespace)".to_owned()
        } else if !close.is_empty() {
            format!("; did you mean {}?", close.join(", "))
        } else {
            format!(
                "; pods there: {}",
                in_ns.iter().take(10).copied().collect::<Vec<_>>().join(", ")
            )
        };
        Err(LookupError::UnknownPod {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            hint,
        })
    }

    /// Every pod that has this IP, terminated and host-network ones included.
    pub fn pods_by_ip(&self, ip: IpAddr) -> Vec<&Pod> {
        self.pods.iter().filter(|p| p.ips.contains(&ip)).collect()
    }

    /// The pod that owns this IP now. Pods that finished (`Succeeded`/`Failed`) keep their old
    /// IP in the dump after it is reused, and host-network pods share their node's IP and have
    /// no sidecar, so both are passed over; if that still leaves more than one, the IP is
    /// ambiguous and the answer is `None` rather than a guess.
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&Pod> {
        let mut live = self
            .pods
            .iter()
            .filter(|p| p.ips.contains(&ip) && !p.host_network && !p.is_terminated());
        let first = live.next()?;
        live.next().is_none().then_some(first)
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
    }

    /// The Service with this cluster IP (a capture taken before the sidecar, or without one,
    /// shows the cluster IP and the Service port).
    pub fn service_by_ip(&self, ip: IpAddr) -> Option<&Service> {
        self.services.iter().find(|s| s.cluster_ips.contains(&ip))
    }

    /// Live pods a Service sends traffic to. A Service without a selector selects none.
    pub fn pods_for_service(&self, service: &Service) -> Vec<&Pod> {
        if service.selector.is_empty() {
            return Vec::new();
        }
        self.pods
            .iter()
            .filter(|p| p.namespace == service.namespace && !p.is_terminated() && selects(&service.selector, &p.labels))
            .collect()
    }

    /// The port `pod` receives on when a client uses `service_port` of a Service that selects
    /// it: that is the port `portLevelMtls` is keyed by. A named `targetPort` is looked up among
    /// the pod's container ports with the same name and protocol (Kubernetes' `FindPort`).
    /// Services are tried by name; `None` when none selects the pod on that port.
    pub fn target_port(&self, pod: &Pod, service_port: u16) -> Option<u16> {
        let mut services: Vec<&Service> = self
            .services
            .iter()
            .filter(|s| s.namespace == pod.namespace && !s.selector.is_empty() && selects(&s.selector, &pod.labels))
            .collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        services
            .iter()
            .flat_map(|s| s.ports.iter())
            .filter(|sp| sp.port == service_port)
            .find_map(|sp| match &sp.target_port {
                TargetPort::Number(n) => Some(*n),
                TargetPort::Name(name) => pod
                    .ports
                    .iter()
                    .find(|cp| cp.name.as_deref() == Some(name) && cp.protocol == sp.protocol)
                    .map(|cp| cp.port),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_support::*;
    use serde_json::json;

    #[test]
    fn named_target_port_resolved() {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "reviews", "namespace": "bookinfo"},
            "spec": {"selector": {"app": "reviews"}, "ports": [
                {"name": "web", "port": 80, "targetPort": "http"},
                {"name": "metrics", "port": 9999, "targetPort": "no-such-port"},
                {"name": "plain", "port": 9080}
            ]}
        });
        let c = cluster(vec![reviews(), svc]);
        let p = c.pod("bookinfo", "reviews-v1").unwrap();
        assert_eq!(c.target_port(p, 80), Some(9080));
        assert_eq!(c.target_port(p, 9999), None);
        // targetPort left out defaults to the port itself.
        assert_eq!(c.target_port(p, 9080), Some(9080));
        assert_eq!(c.target_port(p, 443), None);
    }

    #[test]
    fn named_target_port_needs_same_protocol() {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "reviews", "namespace": "bookinfo"},
            "spec": {"selector": {"app": "reviews"}, "ports": [
                {"port": 53, "protocol": "UDP", "targetPort": "http"}
            ]}
        });
        let c = cluster(vec![reviews(), svc]);
        let p = c.pod("bookinfo", "reviews-v1").unwrap();
        assert_eq!(c.target_port(p, 53), None);
    }

    #[test]
    fn find_pod_explains_what_is_missing() {
        let c = cluster(vec![reviews()]);
        assert!(c.find_pod("bookinfo", "reviews-v1").is_ok());
        let e = c.find_pod("nope", "x").unwrap_err();
        assert!(
            e.to_string().contains("namespace \"nope\" is not in the cluster data"),
            "{e}"
        );
        assert!(e.to_string().contains("bookinfo"));
        let e = c.find_pod("bookinfo", "reviews").unwrap_err();
        assert!(e.to_string().contains("did you mean reviews-v1"), "{e}");
    }

    #[test]
    fn pod_by_ip_skips_finished_and_host_network_pods() {
        let mut done = pod("bookinfo", "job-1", "10.0.0.2", json!({}));
        done["status"]["phase"] = json!("Succeeded");
        let mut host = pod("kube-system", "node-agent", "10.0.0.2", json!({}));
        host["spec"]["hostNetwork"] = json!(true);
        let c = cluster(vec![done, reviews(), host]);
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(c.pod_by_ip(ip).map(|p| p.name.as_str()), Some("reviews-v1"));
        assert_eq!(c.pods_by_ip(ip).len(), 3);
        assert_eq!(c.pod_by_ip("10.9.9.9".parse().unwrap()), None);
    }

    #[test]
    fn pod_by_ip_ambiguous_is_none() {
        let a = pod("a", "one", "10.0.0.3", json!({}));
        let b = pod("b", "two", "10.0.0.3", json!({}));
        let c = cluster(vec![a, b]);
        assert_eq!(c.pod_by_ip("10.0.0.3".parse().unwrap()), None);
    }

    #[test]
    fn bookinfo_dump_finished_pod_ip_reused() {
        let c = bookinfo();
        let ip = "10.244.0.14".parse().unwrap();
        assert_eq!(c.pods_by_ip(ip).len(), 2);
        assert_eq!(
            c.pod_by_ip(ip).map(|p| p.name.as_str()),
            Some("reviews-v2-6f8b7b6c8d-m4zqd")
        );
    }

    #[test]
    fn bookinfo_dump_named_target_port_and_cluster_ip() {
        let c = bookinfo();
        let svc = c.service_by_ip("10.96.112.40".parse().unwrap()).unwrap();
        assert_eq!(svc.name, "details");
        let pods = c.pods_for_service(svc);
        assert_eq!(pods.len(), 1);
        assert_eq!(c.target_port(pods[0], 80), Some(9080));
    }
}
