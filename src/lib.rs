//! mtlscope: a verdict for every TCP connection in a capture — `plaintext`, `tls` or `mtls` —
//! with the evidence the wire shows.
//!
//! The tree follows the data path (DESIGN.md):
//! - [`pipeline`]: the stages in order — source -> filter -> decode -> flows -> reassembly ->
//!   inspect -> verdict -> enrich — then the judge that applies the last two to each finished
//!   connection, the record they produce, the engine that drives one packet through them and
//!   the runner that reads inputs into it.
//! - [`report`]: what a record becomes for people and programs (table, JSON, JSON lines) and the
//!   exit statuses; [`check`]: the CI gate (rules, JUnit, annotations) over the records.
//! - [`policy`]: Istio's PeerAuthentication, the mode it expects per pod and port.
//! - [`live`]: capture on an interface, also inside another network namespace.
//! - [`kube`]: the API client, the helper pod, the agent in it and the kubectl plugin.
//! - [`monitor`]: continuous mode, capture in every pod of a node, counters for Prometheus.
//! - [`promql`]: a Prometheus HTTP API client and the queries; [`readiness`]: can a namespace
//!   switch to STRICT, from those counters.
//! - [`cli`]: the command line (flags, one file per command); nothing above imports it.
// No unsafe code, except the AF_PACKET socket and its ring (src/live/afpacket.rs).
#![deny(unsafe_code)]

pub mod check;
pub mod cli;
pub mod kube;
pub mod live;
pub mod monitor;
pub mod pipeline;
pub mod policy;
pub mod promql;
pub mod readiness;
pub mod report;
