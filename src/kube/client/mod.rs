//! Enrich, Kubernetes API: what `--cluster` and the kubectl plugin read from a live cluster.
//!
//! - [`connect()`] (and [`client()`], [`config()`]) finds the cluster the way kubectl does:
//!   `--kubeconfig`, `KUBECONFIG`, `~/.kube/config`, then the pod's service account.
//! - [`cluster_objects`] fetches what [`crate::policy::Cluster::from_objects`] needs: pods,
//!   Services, PeerAuthentications and the mesh ConfigMaps.
//! - [`resolve_targets`] turns the plugin's target (`POD`, `deploy/NAME`, ..., `-l SELECTOR`)
//!   into pods with their node, IPs and container IDs.
//! - [`create_pod`], [`delete_pod`], [`exec`] and their kin drive the plugin's helper pods;
//!   [`node_facts`] says which agent a node needs and whether a helper can capture there.
//! - [`follow_collection`] lists a collection and watches it from there (`mtlscope monitor`).
//!
//! Every failure becomes a [`KubeError`] that names what was asked, where, and what to do
//! about it. This file only declares the parts and re-exports what they offer: the parts use
//! each other (errors and request descriptions are leaves), never this file.

mod connect;
mod error;
mod nodes;
mod objects;
mod pods;
mod request;
mod targets;
mod watch;

pub use connect::{client, client_from_config, config, connect, KubeTarget};
pub use error::{KubeError, Refuser};
pub use nodes::{node_facts, NodeFacts};
pub use objects::{
    cluster_objects, peer_authentications, served_peer_authentication_version, ClusterObjects, Discovered, Resource,
    CONFIG_MAPS, PODS, SERVICES,
};
pub use pods::{create_pod, delete_pod, exec, get_pod, list_pods_labelled};
pub use targets::{resolve_target_pods, resolve_targets, ContainerState, TargetPod};
pub use watch::{follow_collection, Change, Collection};
