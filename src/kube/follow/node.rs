//! The pods of this node as capture targets: each Running pod that has its own network
//! namespace and a running container becomes a [`Target`] named `NAMESPACE/POD`, in the
//! namespace of that container's process (found under `--proc-root` as the agent finds it).

use crate::kube::agent::{find_container_pid, AgentError};
use crate::live::netns::NetnsTarget;
use crate::monitor::targets::{Target, TargetEvent};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A pod being captured: which container's process named its namespace, and the path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Captured {
    container_id: String,
    path: String,
}

/// What the follower knows of the node's pods.
#[derive(Debug, Default)]
pub struct NodePods {
    captured: BTreeMap<String, Captured>,
    /// Pods to capture whose process was not found yet (a container starting): tried again on
    /// their next event and on the retry timer.
    pending: BTreeMap<String, Value>,
    /// Pods already warned about (a container ID that is not one), so the warning is said once.
    warned: BTreeSet<String>,
}

/// `Some(container IDs of the running containers)` when the pod should be captured.
fn capturable(pod: &Value) -> Option<Vec<String>> {
    let running = pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running");
    let terminating = pod.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null());
    let host_network = pod.pointer("/spec/hostNetwork").and_then(Value::as_bool) == Some(true);
    if !running || terminating || host_network {
        return None;
    }
    let ids: Vec<String> = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.pointer("/state/running").is_some())
        .filter_map(|c| c.get("containerID").and_then(Value::as_str))
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    (!ids.is_empty()).then_some(ids)
}

pub fn pod_name(pod: &Value) -> String {
    let get = |p: &str| pod.pointer(p).and_then(Value::as_str).unwrap_or_default();
    format!("{}/{}", get("/metadata/namespace"), get("/metadata/name"))
}

impl NodePods {
    /// The pod as it is now; the events to send.
    pub fn update(&mut self, pod: &Value, proc_root: &Path, out: &mut Vec<TargetEvent>) {
        let name = pod_name(pod);
        let Some(ids) = capturable(pod) else {
            self.forget(&name, out);
            return;
        };
        if let Some(c) = self.captured.get(&name) {
            if ids.contains(&c.container_id) {
                self.pending.remove(&name);
                return;
            }
        }
        for id in &ids {
            match find_container_pid(proc_root, id) {
                Ok(pid) => {
                    let path = netns_path(proc_root, pid);
                    self.pending.remove(&name);
                    let now = Captured {
                        container_id: id.clone(),
                        path: path.clone(),
                    };
                    let same_path = self.captured.get(&name).is_some_and(|c| c.path == path);
                    self.captured.insert(name.clone(), now);
                    if !same_path {
                        out.push(TargetEvent::Add(Target {
                            name,
                            netns: Some(NetnsTarget::Netns(path)),
                        }));
                    }
                    return;
                }
                Err(AgentError::BadId(_)) => {
                    if self.warned.insert(name.clone()) {
                        eprintln!("mtlscope: warning: pod {name}: container ID '{id}' is not <runtime>://<hex id>; not capturing in it");
                    }
                }
                Err(AgentError::NotFound { .. }) => {}
                Err(e @ AgentError::Read { .. }) => {
                    if self.warned.insert(name.clone()) {
                        eprintln!("mtlscope: warning: pod {name}: {e} (is --proc-root right?); retrying");
                    }
                }
            }
        }
        self.pending.insert(name, pod.clone());
    }

    /// The pod is gone (deleted, or no longer to capture).
    pub fn forget(&mut self, name: &str, out: &mut Vec<TargetEvent>) {
        self.pending.remove(name);
        self.warned.remove(name);
        if self.captured.remove(name).is_some() {
            out.push(TargetEvent::Remove { name: name.to_owned() });
        }
    }

    /// A fresh list: pods not in it are gone; the others are updated.
    pub fn replace(&mut self, pods: &[Value], proc_root: &Path, out: &mut Vec<TargetEvent>) {
        let listed: BTreeSet<String> = pods.iter().map(pod_name).collect();
        let known: Vec<String> = self.captured.keys().chain(self.pending.keys()).cloned().collect();
        for name in known.iter().filter(|n| !listed.contains(*n)) {
            self.forget(name, out);
        }
        for pod in pods {
            self.update(pod, proc_root, out);
        }
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Looks again for the processes of the pods still pending.
    pub fn retry(&mut self, proc_root: &Path, out: &mut Vec<TargetEvent>) {
        let pending: Vec<Value> = self.pending.values().cloned().collect();
        for pod in &pending {
            self.update(pod, proc_root, out);
        }
    }
}

/// `/proc/PID/ns/net` under `proc_root`.
fn netns_path(proc_root: &Path, pid: u32) -> String {
    let p: PathBuf = proc_root.join(pid.to_string()).join("ns").join("net");
    p.display().to_string()
}
