//! Waiting for a helper pod to run, and why one does not, or no longer, runs: what the kubelet
//! wrote in its status, read at every poll so that a failure ends the wait at once rather than
//! after `--pod-running-timeout`.
//!
//! The reasons are the kubelet's own (`pkg/kubelet/images/types.go` for pulls; `StartError`,
//! `OOMKilled`, `Error` for a container that ended). An image or an agent built for another
//! architecture than the node's fails with the kernel's `exec format error`, inside the
//! runtime's message: that is named as a wrong architecture, with the node's
//! (`status.nodeInfo.architecture`) when it can be read.

use crate::kube::client;
use crate::kube::helper_pod;
use crate::kube::labels::{ANNOTATION_TARGETS, CONTAINER};
use anyhow::{bail, Result};
use k8s_openapi::api::core::v1::{ContainerStatus, Node, Pod};
use std::time::{Duration, Instant};

/// Poll the helper until its container runs; fail as soon as its status says it cannot.
pub(super) async fn wait_running(client: &kube::Client, namespace: &str, name: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        let pod = client::get_pod(client, namespace, name).await?;
        if let Some(why) = cannot_run(client, &pod).await {
            bail!("helper pod {namespace}/{name} cannot run: {why}");
        }
        if helper_pod::running(&pod) {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            let phase = pod.status.and_then(|s| s.phase).unwrap_or_else(|| "unknown".into());
            bail!(
                "helper pod {namespace}/{name} is not running after {}s (phase {phase}); `kubectl describe pod -n \
                 {namespace} {name}` shows why (raise the wait with --pod-running-timeout)",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// Why the helper's container has ended, once it has (`None` while it runs, or if the pod
/// cannot be read): asked when an agent's stream fails, since an agent killed with its helper
/// (OOMKilled, evicted, past its deadline) only sees its stream end.
pub(super) async fn helper_ended(client: &kube::Client, namespace: &str, name: &str) -> Option<String> {
    let pod = client::get_pod(client, namespace, name).await.ok()?;
    let ended = container_status(&pod).is_some_and(|cs| cs.state.as_ref().is_some_and(|s| s.terminated.is_some()))
        || matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Failed" | "Succeeded")
        );
    if !ended {
        return None;
    }
    cannot_run(client, &pod).await
}

/// An agent's failure as its exec reported it (the Status, then its last lines on stderr), with
/// the architecture named when the kernel refused the binary: `exec format error` in the
/// runtime's message, `Exec format error` in a shell's.
pub(super) async fn agent_failure(client: &kube::Client, node: &str, message: &str) -> String {
    if !message.to_ascii_lowercase().contains("exec format error") {
        return message.to_owned();
    }
    let arch = node_architecture(client, node).await;
    format!(
        "the agent binary is not built for node {node}'s architecture{} (the kernel answered `exec format error`): \
         {}; the runtime said: {message}",
        arch.as_deref().map_or_else(String::new, |a| format!(" ({a})")),
        arch.as_deref().map_or_else(
            || "use the agent or --image for that node's architecture (`kubectl get node NODE -o \
                jsonpath='{.status.nodeInfo.architecture}'` prints it)"
                .to_owned(),
            |a| format!("use the linux/{a} agent, or an --image built for linux/{a}")
        )
    )
}

/// Why the helper cannot run, from its status, or `None` while it may still start (or runs).
async fn cannot_run(client: &kube::Client, pod: &Pod) -> Option<String> {
    let why = container_failure(pod).or_else(|| helper_pod::failure(pod).map(Failure::plain))?;
    if !why.wrong_architecture {
        return Some(why.text);
    }
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
    let arch = node_architecture(client, &node).await;
    let image = container_status(pod).map(|c| c.image.clone()).unwrap_or_default();
    Some(format!(
        "its image {image} is not built for node {node}'s architecture{} ({}); pass --image with an image built for \
         {} (a multi-arch image has one for each)",
        arch.as_deref().map_or_else(String::new, |a| format!(" ({a})")),
        why.text,
        arch.as_deref()
            .map_or_else(|| "the node's architecture".to_owned(), |a| format!("linux/{a}"))
    ))
}

/// `status.nodeInfo.architecture` (`amd64`, `arm64`); `None` when the node cannot be read
/// (RBAC without `get nodes` is common, and the message only gets less precise).
async fn node_architecture(client: &kube::Client, node: &str) -> Option<String> {
    let nodes: kube::Api<Node> = kube::Api::all(client.clone());
    let n = nodes.get(node).await.ok()?;
    n.status?.node_info.map(|i| i.architecture).filter(|a| !a.is_empty())
}

struct Failure {
    text: String,
    wrong_architecture: bool,
}

impl Failure {
    fn plain(text: String) -> Failure {
        Failure {
            text,
            wrong_architecture: false,
        }
    }
}

fn container_status(pod: &Pod) -> Option<&ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == CONTAINER)
}

/// What [`helper_pod::failure`] does not read: the pull failures it does not know, and a
/// container that has ended (restartPolicy Never: it stays ended).
fn container_failure(pod: &Pod) -> Option<Failure> {
    let cs = container_status(pod)?;
    let state = cs.state.as_ref()?;
    let image = &cs.image;
    let with = |reason: &str, message: Option<&str>| match message.filter(|m| !m.is_empty()) {
        Some(m) => format!("{reason}: {m}"),
        None => reason.to_owned(),
    };
    if let Some(w) = &state.waiting {
        let reason = w.reason.as_deref().unwrap_or_default();
        let message = w.message.as_deref();
        if message.is_some_and(|m| m.contains("exec format error")) {
            return Some(Failure {
                text: with(reason, message),
                wrong_architecture: true,
            });
        }
        let text = match reason {
            "ImageInspectError" => format!(
                "the node cannot inspect its image {image} ({}): the copy in the node's image store cannot be read; \
                 pass --image with another tag, or have the node's copy removed (`crictl rmi {image}` on the node) so \
                 that it is pulled again",
                with(reason, message)
            ),
            "RegistryUnavailable" => format!(
                "the registry of its image {image} is unavailable from the node ({}): check that the node reaches it \
                 (proxy, firewall, an air-gapped cluster), or pass --image with an image in a registry the node can \
                 reach (a mirror)",
                with(reason, message)
            ),
            "SignatureValidationFailed" => format!(
                "its image {image} failed the node's signature validation ({}): pass --image with an image the \
                 node's policy accepts",
                with(reason, message)
            ),
            _ => return None,
        };
        return Some(Failure::plain(text));
    }
    let t = state.terminated.as_ref()?;
    let reason = t.reason.as_deref().unwrap_or("terminated");
    let detail = format!(
        "{reason}, exit code {}{}",
        t.exit_code,
        t.message
            .as_deref()
            .filter(|m| !m.is_empty())
            .map_or_else(String::new, |m| format!(": {}", m.trim_end()))
    );
    if t.message.as_deref().is_some_and(|m| m.contains("exec format error")) {
        return Some(Failure {
            text: detail,
            wrong_architecture: true,
        });
    }
    let text = if reason == "OOMKilled" {
        let limit = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == CONTAINER))
            .and_then(|c| {
                c.resources
                    .as_ref()?
                    .limits
                    .as_ref()?
                    .get("memory")
                    .map(|q| q.0.clone())
            })
            .unwrap_or_else(|| "its limit".to_owned());
        let agents = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_TARGETS))
            .map_or(1, |t| t.split(',').filter(|s| !s.is_empty()).count());
        format!(
            "it was killed for using more memory than its limit of {limit} with {agents} agent{} ({detail}); capture \
             fewer pods on that node at once (a narrower -l selector), or lower the agents' bounds with --max-flows \
             and --total-buffer",
            if agents == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "its container ended ({detail}); `kubectl logs -n {} {}` may say more",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        )
    };
    Some(Failure::plain(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn helper(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "mtlscope-w1-abcde", "namespace": "shop",
                         "annotations": {"mtlscope.io/targets": "shop/a,shop/b,shop/c"}},
            "spec": {"nodeName": "w1", "containers": [{"name": "agent", "image": "busybox:1.37",
                     "resources": {"limits": {"memory": "1024Mi"}}}]},
            "status": status,
        }))
        .unwrap()
    }

    fn agent_status(state: serde_json::Value) -> serde_json::Value {
        json!({"phase": "Pending", "containerStatuses": [{"name": "agent", "image": "busybox:1.37", "imageID": "",
               "ready": false, "restartCount": 0, "state": state}]})
    }

    #[test]
    fn pull_failures_the_old_check_missed_are_named() {
        let p = helper(agent_status(json!({"waiting": {"reason": "RegistryUnavailable",
            "message": "image pull failed for busybox:1.37 because the registry is unavailable"}})));
        let f = container_failure(&p).unwrap();
        assert!(
            f.text
                .starts_with("the registry of its image busybox:1.37 is unavailable"),
            "{}",
            f.text
        );
        let p = helper(agent_status(json!({"waiting": {"reason": "ImageInspectError",
            "message": "Failed to inspect image \"busybox:1.37\": rpc error: code = Unknown"}})));
        assert!(container_failure(&p).unwrap().text.contains("cannot inspect its image"));
        // Still pulling: nothing to say yet.
        let p = helper(agent_status(json!({"waiting": {"reason": "ContainerCreating"}})));
        assert!(container_failure(&p).is_none());
    }

    #[test]
    fn an_ended_container_says_how_and_oom_names_the_limit_and_the_agents() {
        let p = helper(agent_status(
            json!({"terminated": {"reason": "OOMKilled", "exitCode": 137}}),
        ));
        let f = container_failure(&p).unwrap();
        assert!(
            f.text.starts_with(
                "it was killed for using more memory than its limit of 1024Mi with 3 agents (OOMKilled, exit code 137)"
            ),
            "{}",
            f.text
        );
        let p = helper(agent_status(
            json!({"terminated": {"reason": "StartError", "exitCode": 128,
            "message": "failed to create containerd task: exec format error: unknown"}}),
        ));
        let f = container_failure(&p).unwrap();
        assert!(
            f.wrong_architecture && f.text.starts_with("StartError, exit code 128: "),
            "{}",
            f.text
        );
    }
}
