//! Continuous mode (`mtlscope monitor`, DESIGN.md "Continuous mode"): capture in the network
//! namespaces of the pods on a node, follow them as they come and go, and keep only verdict
//! counters, which Prometheus scrapes from `/metrics`.
//!
//! - [`targets`]: what to capture in, and the changes to it that whoever follows the pods sends.
//! - [`view`]: the cluster as currently known (pods, Services, PeerAuthentications), swapped whole
//!   when it changes, read for every verdict.

pub mod targets;
pub mod view;
