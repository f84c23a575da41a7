//! What the plugin reads of the nodes its helpers run on: each node's CPU architecture (which
//! agent to upload) and whether a helper can capture there at all (not on Windows nodes, not on
//! virtual nodes such as EKS Fargate's or virtual-kubelet's, where no kubelet of ours runs pods
//! with hostPID).

use super::error::KubeError;
use super::request::{api_error, Asked};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;

/// One node, as far as the helper is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeFacts {
    pub name: String,
    /// `status.nodeInfo.architecture` (`amd64`, `arm64`), else the `kubernetes.io/arch` label.
    pub architecture: Option<String>,
    /// `status.nodeInfo.operatingSystem`, else the `kubernetes.io/os` label.
    pub os: Option<String>,
    /// Why no helper pod can capture on it (a virtual node), if so.
    pub virtual_node: Option<String>,
}

/// Labels that mark a virtual node, with the value that does, and what it is.
const VIRTUAL: &[(&str, &str, &str)] = &[
    ("eks.amazonaws.com/compute-type", "fargate", "an EKS Fargate node"),
    ("type", "virtual-kubelet", "a virtual-kubelet node"),
    ("kubernetes.azure.com/virtual-node", "true", "an AKS virtual node"),
];

impl NodeFacts {
    pub fn from_node(node: &Node) -> NodeFacts {
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let info = node.status.as_ref().and_then(|s| s.node_info.as_ref());
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        NodeFacts {
            name: node.metadata.name.clone().unwrap_or_default(),
            architecture: info
                .and_then(|i| nonempty(&i.architecture))
                .or_else(|| labels.get("kubernetes.io/arch").cloned()),
            os: info
                .and_then(|i| nonempty(&i.operating_system))
                .or_else(|| labels.get("kubernetes.io/os").cloned()),
            virtual_node: VIRTUAL
                .iter()
                .find(|(k, v, _)| labels.get(*k).map(String::as_str) == Some(*v))
                .map(|(k, v, what)| format!("{what} ({k}={v})")),
        }
    }

    /// Why a helper on this node cannot capture, if it cannot.
    pub fn not_capturable(&self) -> Option<String> {
        if let Some(v) = &self.virtual_node {
            return Some(format!(
                "it is {v}: pods there run in their own virtual machines, with no node a helper pod could enter"
            ));
        }
        match self.os.as_deref() {
            Some("linux") | None => None,
            Some(os) => Some(format!(
                "it runs {os}: the agent captures in Linux network namespaces only"
            )),
        }
    }
}

/// `GET /api/v1/nodes/{name}`.
pub async fn node_facts(client: &kube::Client, name: &str) -> Result<NodeFacts, KubeError> {
    let api: Api<Node> = Api::all(client.clone());
    let asked = Asked {
        verb: "get",
        resource: "nodes".to_owned(),
        kind: "node",
        namespace: None,
        name: Some(name),
    };
    let node = api.get(name).await.map_err(|e| api_error(e, &asked))?;
    Ok(NodeFacts::from_node(&node))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(v: serde_json::Value) -> NodeFacts {
        NodeFacts::from_node(&serde_json::from_value(v).unwrap())
    }

    #[test]
    fn architecture_and_os_from_node_info_then_labels() {
        let n = node(
            serde_json::json!({"metadata": {"name": "w1", "labels": {"kubernetes.io/arch": "amd64"}},
            "status": {"nodeInfo": {"architecture": "arm64", "operatingSystem": "linux", "bootID": "", "containerRuntimeVersion": "",
            "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": "", "machineID": "", "osImage": "", "systemUUID": ""}}}),
        );
        assert_eq!(
            (n.architecture.as_deref(), n.os.as_deref()),
            (Some("arm64"), Some("linux"))
        );
        assert_eq!(n.not_capturable(), None);
        let n = node(
            serde_json::json!({"metadata": {"name": "w2", "labels": {"kubernetes.io/arch": "amd64", "kubernetes.io/os": "windows"}}}),
        );
        assert_eq!(n.architecture.as_deref(), Some("amd64"));
        assert!(n.not_capturable().unwrap().contains("runs windows"));
    }

    #[test]
    fn virtual_nodes_are_named() {
        let n = node(serde_json::json!({"metadata": {"name": "fargate-ip-10-0-1-1",
            "labels": {"eks.amazonaws.com/compute-type": "fargate", "kubernetes.io/os": "linux"}}}));
        let why = n.not_capturable().unwrap();
        assert!(
            why.contains("EKS Fargate node (eks.amazonaws.com/compute-type=fargate)"),
            "{why}"
        );
        let n = node(serde_json::json!({"metadata": {"name": "vk", "labels": {"type": "virtual-kubelet"}}}));
        assert!(n.not_capturable().unwrap().contains("virtual-kubelet"));
    }
}
