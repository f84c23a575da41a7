//! The nodes of the planned captures: the ones a helper cannot capture on (Windows, virtual
//! nodes) are skipped with a warning, and the others' architecture picks the agent to upload.

use super::plan::Capture;
use crate::kube::client::{self, KubeError, NodeFacts};
use crate::kube::elf::Arch;
use anyhow::{bail, Result};
use std::collections::BTreeMap;

/// Each node of `captures`, as read from the API server; a node that cannot be read is known
/// by name only (and said so once: with `--image` only the skipping of Windows and virtual
/// nodes depends on it, without `--image` the agent's architecture too).
pub(super) async fn read_nodes(
    client: &kube::Client,
    captures: &[Capture],
    upload: bool,
) -> BTreeMap<String, NodeFacts> {
    let mut out = BTreeMap::new();
    let mut warned = false;
    for node in captures.iter().map(|c| c.node.clone()) {
        if out.contains_key(&node) {
            continue;
        }
        let facts = match client::node_facts(client, &node).await {
            Ok(f) => f,
            Err(e) => {
                if !warned {
                    warned = true;
                    let assumed = match (upload, Arch::this_program()) {
                        (true, Some(a)) => format!("; every node is taken to be linux/{a}, like this plugin"),
                        _ => String::new(),
                    };
                    let why = match &e {
                        KubeError::Forbidden { .. } => "reading nodes is not allowed (RBAC: get nodes)".to_owned(),
                        e => e.to_string(),
                    };
                    eprintln!(
                        "mtlscope: warning: cannot read node {node}: {why}; Windows and virtual nodes are not \
                         recognised{assumed}"
                    );
                }
                NodeFacts {
                    name: node.clone(),
                    ..Default::default()
                }
            }
        };
        out.insert(node, facts);
    }
    out
}

/// The captures on nodes a helper can capture on; the others are skipped with a warning, and
/// an error when none is left.
pub(super) fn keep_capturable(captures: Vec<Capture>, nodes: &BTreeMap<String, NodeFacts>) -> Result<Vec<Capture>> {
    let mut kept = Vec::new();
    let mut skipped = Vec::new();
    for c in captures {
        match nodes.get(&c.node).and_then(NodeFacts::not_capturable) {
            Some(why) => skipped.push(format!("pod {} on node {}: {why}", c.label(), c.node)),
            None => kept.push(c),
        }
    }
    if kept.is_empty() {
        bail!("nothing to capture in: {}", skipped.join("; "));
    }
    for s in skipped {
        eprintln!("mtlscope: warning: skipping {s}");
    }
    Ok(kept)
}

/// The architecture of the agent node `node` needs: from its `nodeInfo`, else (the node could
/// not be read) this plugin's own.
pub(super) fn node_arch(node: &NodeFacts) -> Result<Arch> {
    match node.architecture.as_deref() {
        Some(name) => match Arch::from_kubernetes(name) {
            Some(a) => Ok(a),
            None => bail!(
                "node {} is linux/{name}: no agent is built for that architecture (only {}); pass --image IMAGE with \
                 an mtlscope image built for linux/{name}",
                node.name,
                Arch::ALL.map(|a| format!("linux/{a}")).join(" and ")
            ),
        },
        None => match Arch::this_program() {
            Some(a) => Ok(a),
            None => bail!(
                "the architecture of node {} is unknown and this plugin's own ({}) has no agent; pass --agent-binary \
                 PATH or --image IMAGE",
                node.name,
                std::env::consts::ARCH
            ),
        },
    }
}
