//! TLS 1.3 decrypted with a key log: what the server's CertificateRequest and the client's
//! Certificate said (docs/verdicts.md, "TLS 1.3 with a key log"). The wire shows it, so the
//! answer is certain; a key that did not authenticate gives no answer, only the evidence that
//! says so.
//!
//! Answers in its own terms ([`Reading`]): the verdict stage, its parent, turns the answer into
//! a verdict, so nothing here uses the parent's items.

use crate::pipeline::inspect::certs::CertInfo;
use crate::pipeline::inspect::tls::{Chain, Decrypted};
use crate::pipeline::side::Side;
use serde::{Deserialize, Serialize};

/// What the decrypted handshake says about the client's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The client's Certificate carried a certificate.
    Certificate,
    /// An empty Certificate: requested, none sent.
    EmptyCertificate,
    /// No CertificateRequest (or a client flight without Certificate).
    NotRequested,
}

/// What decrypting the handshake gave.
#[derive(Debug, Clone)]
pub struct Reading {
    /// None: decryption did not get far enough (or the key was wrong); the inference stands.
    pub answer: Option<Answer>,
    pub evidence: Vec<String>,
    /// The server's CertificateRequest, when its flight (or the client's) tells.
    pub cert_requested: Option<bool>,
    /// Both Finished messages were decrypted.
    pub complete: bool,
    pub report: KeylogReport,
}

/// `tls.keylog` in the JSON report: what the key log decrypted of this connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeylogReport {
    /// `decrypted` (both flights to their Finished), `partial`, `wrong-key` (a record did not
    /// authenticate) or `unusable` (the entry does not fit the cipher suite).
    pub status: String,
    /// Records that authenticated, per side.
    pub client_records: u32,
    pub server_records: u32,
    /// The record that did not authenticate: its side and its number in that direction (from 1).
    pub failed_record: Option<FailedRecord>,
    /// The handshake messages decrypted, in order, as `server:certificate_request`.
    pub messages: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailedRecord {
    pub from: String,
    pub record: u32,
}

fn side_name(d: Side, client: Side) -> &'static str {
    if d == client {
        "client"
    } else {
        "server"
    }
}

/// The identity of a decrypted chain's leaf, or what is known of an unparsed one.
pub fn leaf(chain: &Option<Chain>) -> Option<&CertInfo> {
    chain.as_ref().and_then(|c| c.leaf.as_deref())
}

fn describe(c: &Chain) -> String {
    match (&c.leaf, &c.leaf_sha256) {
        (Some(l), _) => format!(
            "{} (subject {}, issuer {}, SHA-256 {}, chain of {})",
            l.identity(),
            l.subject,
            l.issuer,
            l.sha256,
            c.len
        ),
        (None, Some(sha)) => format!("unparsed certificate (SHA-256 {sha}, chain of {})", c.len),
        (None, None) => format!("chain of {}", c.len),
    }
}

/// Read the decrypted handshake. `client`: the client's direction; `name`: the handshake
/// message names, as the report writes them.
pub fn read(d: &Decrypted, client: Side, name: impl Fn(u8) -> String) -> Reading {
    let server = client.other();
    let report = KeylogReport {
        status: if d.failed.is_some() {
            "wrong-key"
        } else if d.unusable.is_some() {
            "unusable"
        } else if d.finished[client] && d.finished[server] {
            "decrypted"
        } else {
            "partial"
        }
        .to_string(),
        client_records: d.records[client],
        server_records: d.records[server],
        failed_record: d.failed.map(|(dir, n)| FailedRecord {
            from: side_name(dir, client).into(),
            record: n,
        }),
        messages: d
            .messages
            .iter()
            .map(|m| format!("{}:{}", side_name(m.from, client), name(m.ty)))
            .collect(),
    };
    let mut r = Reading {
        answer: None,
        evidence: Vec::new(),
        cert_requested: None,
        complete: d.finished[client] && d.finished[server],
        report,
    };
    if let Some((dir, n)) = d.failed {
        r.evidence.push(format!(
            "wrong key log entry for this connection (record {n} failed to authenticate), sent by the {}",
            side_name(dir, client)
        ));
        return r;
    }
    if let Some(why) = &d.unusable {
        r.evidence
            .push(format!("key log entry for this connection not used: {why}"));
        return r;
    }
    let server_read = d.finished[server];
    if server_read || d.certificate_requested {
        r.cert_requested = Some(d.certificate_requested);
    }
    match &d.client_chain {
        Some(c) if c.len > 0 => {
            r.cert_requested = Some(true);
            r.answer = Some(Answer::Certificate);
            r.evidence.push(format!(
                "client certificate decrypted with the key log: {}",
                describe(c)
            ));
        }
        Some(_) => {
            r.cert_requested = Some(true);
            r.answer = Some(Answer::EmptyCertificate);
            r.evidence
                .push("decrypted with the key log: certificate requested, client sent an empty Certificate".into());
        }
        None if d.finished[client] => {
            r.answer = Some(Answer::NotRequested);
            r.evidence.push(if d.certificate_requested {
                "decrypted with the key log: certificate requested, client sent no Certificate message".into()
            } else {
                "decrypted with the key log: no client certificate requested, the client's flight is its Finished"
                    .into()
            });
        }
        None if server_read && !d.certificate_requested => {
            r.answer = Some(Answer::NotRequested);
            r.evidence.push(
                "decrypted with the key log: the server's flight has no CertificateRequest (the client's flight was not decrypted)"
                    .into(),
            );
        }
        None => {
            let what = if server_read {
                "the server asked for a certificate, but the client's flight was not decrypted to its Finished"
            } else {
                "neither flight was decrypted to its Finished"
            };
            r.evidence.push(format!(
                "key log entry found for this connection, but {what} (a secret missing from the key log, or records not in the capture)"
            ));
        }
    }
    if let Some(c) = &d.server_chain {
        r.evidence.push(format!(
            "server certificate decrypted with the key log: {}",
            describe(c)
        ));
    }
    if d.early_records > 0 {
        r.evidence.push(format!(
            "{} record(s) of 0-RTT early data skipped (not decrypted)",
            d.early_records
        ));
    }
    r
}

/// A resumed (PSK) TLS 1.3 handshake decrypted: no Certificate messages, as RFC 8446 has it;
/// the verdict stays the resumption's.
pub fn resumed(d: &Decrypted, client: Side, name: impl Fn(u8) -> String) -> Reading {
    let mut r = read(d, client, name);
    if d.failed.is_none() && d.unusable.is_none() {
        r.answer = None;
        let certs = d.client_chain.is_some() || d.server_chain.is_some();
        r.evidence = vec![format!(
            "decrypted with the key log: a resumed (PSK) handshake, {}",
            if certs {
                "yet with Certificate messages"
            } else {
                "no Certificate messages: the client identity is the original session's"
            }
        )];
        r.cert_requested = Some(d.certificate_requested);
    }
    r
}
