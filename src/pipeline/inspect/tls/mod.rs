//! Stage 4, inspect: TLS record and handshake parsing for one connection, by job:
//! - `classifier`: the record layer of both directions, re-synchronisation after gaps,
//!   handshake defragmentation — the [`Classifier`] that drives the rest;
//! - `hello`: what ClientHello, ServerHello and a clear-text Certificate say;
//! - `decrypt`: TLS 1.3 handshake records opened with the keys a key log gives;
//! - `tls13`: the lengths of TLS 1.3's encrypted handshake records, filed for the inference;
//! - `facts`: the [`TlsFacts`] all of them fill in, handed to the verdict stage;
//! - `rare_list`: the small list type the facts keep.
//!
//! This file only declares and re-exports: no child uses anything defined here.

mod classifier;
mod decrypt;
mod facts;
mod hello;
mod rare_list;
mod tls13;

pub use classifier::{plausible_header, starts_with_hello, Classifier, MAX_HANDSHAKE};
pub use facts::{
    Alert, Chain, ClientHelloFacts, Decrypted, HandshakeMessage, Messages, Oversized, ServerHelloFacts, TlsFacts,
};
pub use rare_list::RareList;
pub use tls13::Tls13Flights;
