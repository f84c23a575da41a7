//! Session resumption: how a connection resumed an earlier session (a TLS <= 1.2 session ID or
//! ticket, a TLS 1.3 PSK) and the keys a full handshake leaves for later connections, so that
//! the engine can link a resumed connection to the handshake that showed its certificates.
//! Reads only the TLS facts; the verdict stage decides what a link means.

use crate::pipeline::inspect::tls::TlsFacts;

/// How a TLS <= 1.2 connection resumed, and the key to find its origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resumption {
    SessionId(u64),
    Ticket(u64),
    Psk,
}

impl Resumption {
    /// As reports name it (`TlsReport::resumption`).
    pub fn name(self) -> &'static str {
        match self {
            Resumption::SessionId(_) => "session-id",
            Resumption::Ticket(_) => "ticket",
            Resumption::Psk => "psk",
        }
    }
}

/// How this connection resumed an earlier session, if it did.
pub fn resumption(f: &TlsFacts) -> Option<Resumption> {
    let sh = f.server_hello.as_ref()?;
    let ch = f.client_hello.as_ref()?;
    if sh.version == 0x0304 {
        return sh.psk_accepted.then_some(Resumption::Psk);
    }
    // Abbreviated handshake: the server goes straight from ServerHello to ChangeCipherSpec.
    let server = f.server_dir()?;
    let certificate_sent = f
        .messages
        .iter()
        .any(|m| m.from == server && matches!(m.ty, 11 | 12 | 14));
    if certificate_sent || !f.ccs[server] {
        return None;
    }
    // A client offering a ticket also sends a session ID, which the server echoes when it
    // accepts the ticket (RFC 5077, 3.4): the ticket is what was resumed.
    match (ch.ticket, ch.session_id, sh.session_id) {
        (Some(t), _, _) => Some(Resumption::Ticket(t)),
        (None, _, Some(s)) => Some(Resumption::SessionId(s)),
        _ => None,
    }
}

/// Session keys a full handshake leaves for later connections to resume.
pub fn session_keys(f: &TlsFacts) -> Vec<Resumption> {
    let mut keys = Vec::new();
    if f.is_tls13() || resumption(f).is_some() {
        return keys;
    }
    if let Some(s) = f.server_hello.as_ref().and_then(|s| s.session_id) {
        keys.push(Resumption::SessionId(s));
    }
    if let Some(t) = f.new_ticket {
        keys.push(Resumption::Ticket(t));
    }
    keys
}
