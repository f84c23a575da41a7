//! What the monitor captures in: one network namespace per target, added and removed while it
//! runs. In a cluster the pod follower (`crate::kube::follow`) sends the changes; outside one the
//! command line gives a fixed set (`--netns`, or the monitor's own namespace).

use crate::live::netns::NetnsTarget;

/// One network namespace to capture in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its name in the metrics (the `netns` label) and in messages: `NAMESPACE/POD` for a pod,
    /// the `--netns` argument as given, or `host` for the monitor's own namespace. Unique among
    /// the targets of one monitor.
    pub name: String,
    /// `None`: the monitor's own network namespace.
    pub netns: Option<NetnsTarget>,
}

/// A change to the set of targets. Adding a name that is already captured replaces it (a pod
/// whose sandbox was recreated has a new namespace); removing an unknown name does nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetEvent {
    Add(Target),
    Remove { name: String },
}
