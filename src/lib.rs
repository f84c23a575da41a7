//! mtlscope: a verdict for every TCP connection in a capture — `plaintext`, `tls` or `mtls` —
//! with the evidence the wire shows.
//!
//! The data path, one module per stage (see `DESIGN.md`):
//! [`source`] (capture files, stdin) -> [`filter`] (BPF) -> [`decode`] (link, IP, TCP) ->
//! [`flows`] (bidirectional table) -> [`tcp_reassembly`] (per-direction streams) ->
//! [`inspect`] / [`tls_classifier`] / [`certs`] / [`plaintext`] / [`mesh`] ->
//! [`verdict`] -> [`report`]. [`analyzer`] drives them;
//! [`app`] is the command line.
#![forbid(unsafe_code)]

pub mod agent;
pub mod analyzer;
pub mod app;
pub mod capture;
pub mod certs;
pub mod check;
pub mod decode;
pub mod enrich;
pub mod filter;
pub mod flows;
pub mod helper_pod;
pub mod inspect;
pub mod kube_client;
pub mod mesh;
pub mod netns;
pub mod peer_authentication;
pub mod plaintext;
pub mod report;
pub mod sniff;
pub mod source;
pub mod tcp_reassembly;
pub mod tls_classifier;
pub mod tunnel;
pub mod verdict;
