//! The data path, one module per stage, in the order packets go through them (DESIGN.md, "The
//! data path"): [`source`] reads capture files and standard input, [`filter`] applies a BPF
//! expression, [`decode`] takes the link, IP and TCP layers (and node tunnels) apart, [`flows`]
//! keeps the bidirectional connection table, [`reassembly`] rebuilds each direction's byte
//! stream, [`inspect`] parses TLS, certificates and plaintext protocols (and decrypts a TLS 1.3
//! handshake with the keys of a [`keylog`]), [`verdict`] decides
//! `plaintext` / `tls` / `mtls` with the evidence, and [`enrich`] joins what the cluster knows;
//! [`judge`] applies both to each connection whose inspection is over, in order.
//! [`record`] is what comes out: one [`record::FlowReport`] per connection and a
//! [`record::Summary`], handed to an [`record::Output`]. [`engine`] drives one packet through
//! the stages; [`runner`] reads every input into an engine, and [`input_error`] says which input
//! could not be read completely, where. [`side`] names the two ends of a connection for every
//! stage, and [`beside`] starts the threads that read and write beside the analysis. A stage
//! never reaches back into an earlier one.

pub mod beside;
pub mod decode;
pub mod engine;
pub mod enrich;
pub mod filter;
pub mod flows;
pub mod input_error;
pub mod inspect;
pub mod judge;
pub mod keylog;
pub mod reassembly;
pub mod record;
pub mod runner;
pub mod side;
pub mod source;
pub mod verdict;
