//! Continuous mode (`mtlscope monitor`, DESIGN.md "Continuous mode"): capture in the network
//! namespaces of the pods on a node, follow them as they come and go, and keep only verdict
//! counters, which Prometheus scrapes from `/metrics`.
//!
//! - [`targets`]: what to capture in, and the changes to it that whoever follows the pods sends.
//! - [`view`]: the cluster as currently known (pods, Services, PeerAuthentications), swapped whole
//!   when it changes, read for every verdict.
//! - [`run`](mod@run): the loop ([`run()`]): one engine, a capture thread per target.
//! - [`peers`]: which namespace feeds a packet two captured namespaces both see.
//! - [`count`]: each final verdict into `mtlscope_connections_total`, and which monitor counts it.
//! - [`metrics`]: the series served; [`serve`]: the HTTP server (`/metrics`, `/healthz`).

pub mod count;
pub mod metrics;
pub mod peers;
pub mod run;
pub mod serve;
pub mod targets;
pub mod view;

pub use run::{run, MonitorError, MonitorOptions, DEFAULT_BUFFER_SIZE, DEFAULT_MAX_PODS};
