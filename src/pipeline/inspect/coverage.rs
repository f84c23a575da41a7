//! What the capture holds of one connection besides its bytes — which directions have packets,
//! how many packets the snap length cut, how many bytes were lost — and the words for what a
//! TLS handshake is missing because of it. The verdict stage puts these words in its evidence,
//! so that an `uncertain` always says what is missing and, when the capture shows it, why
//! (DESIGN.md: "only one direction captured"; a snap length that cuts the handshake; a message
//! over the size limit; a server that answers a ClientHello in plaintext).
//!
//! A leaf of `inspect`: it reads the TLS facts and plaintext protocol names and decides nothing.

use crate::pipeline::inspect::plaintext::Protocol;
use crate::pipeline::inspect::tls::{Oversized, TlsFacts, MAX_HANDSHAKE};
use crate::pipeline::side::{PerSide, Side};

/// What the capture holds of one connection, per side; the flow table fills it in when the
/// verdict is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    /// The side the client is on (the direction it sends in).
    pub client: Side,
    /// Packets captured per direction; 0 means the direction is not in the capture at all.
    pub packets: PerSide<u64>,
    /// TCP payload bytes on the wire per direction, including what the snap length cut.
    pub bytes: PerSide<u64>,
    /// Bytes of each direction's stream that the capture does not have (lost, cut, given up).
    pub gap_bytes: PerSide<u64>,
    /// Whether the snap length cut the payload of a packet, per direction.
    pub cut: PerSide<bool>,
    /// The capture's snap length: the kept length of the longest cut frame (0 when none was cut).
    pub snap_len: u32,
}

impl Coverage {
    /// Both directions captured in full: nothing missing to explain.
    pub fn complete(client: Side) -> Self {
        Coverage {
            client,
            packets: PerSide::new(1, 1),
            bytes: PerSide::default(),
            gap_bytes: PerSide::default(),
            cut: PerSide::default(),
            snap_len: 0,
        }
    }

    pub fn server(&self) -> Side {
        self.client.other()
    }

    /// "only the client's direction is in the capture" when the other one has no packet at all
    /// (asymmetric routing, a span port, a filter on one address).
    pub fn one_way(&self) -> Option<&'static str> {
        match (self.packets[self.client], self.packets[self.server()]) {
            (c, 0) if c > 0 => Some("only the client's direction is in the capture"),
            (0, s) if s > 0 => Some("only the server's direction is in the capture"),
            _ => None,
        }
    }

    /// "packets cut by the capture's snap length (96 bytes)" when any packet of `side` was cut.
    fn snap_cut(&self, side: Side) -> Option<String> {
        self.cut[side].then(|| format!("packets cut by the capture's snap length ({} bytes)", self.snap_len))
    }

    /// Why `what`, which `side` sends, is not in the capture, most telling reason first: the snap
    /// length cut its packets, that direction is not in the capture, bytes of it were lost, it
    /// sent nothing, or the capture (or the connection) ends before it.
    pub fn not_seen(&self, side: Side, what: &str) -> String {
        let peer = self.name(side);
        if let Some(cut) = self.snap_cut(side) {
            return format!("{cut}: {what} is not in the capture");
        }
        if self.packets[side] == 0 {
            return format!(
                "{what} is not in the capture: {}",
                self.one_way().unwrap_or("neither direction is in it")
            );
        }
        match (self.gap_bytes[side], self.bytes[side]) {
            (0, 0) => format!("{what} is not in the capture: the {peer} sent no data"),
            (0, _) => format!("{what} is not in the capture: the {peer}'s data ends before it"),
            (lost, _) => format!("{what} is not in the capture: {lost} bytes of the {peer}'s direction are missing"),
        }
    }

    /// Bytes of `side`'s handshake fell in a gap: say whose, and the snap length when it cut them.
    pub fn handshake_bytes_missing(&self, side: Side) -> String {
        let what = format!(
            "bytes of the {}'s handshake are missing from the capture",
            self.name(side)
        );
        match self.snap_cut(side) {
            Some(cut) => format!("{cut}: {what}"),
            None => what,
        }
    }

    /// "client" or "server".
    pub fn name(&self, side: Side) -> &'static str {
        if side == self.client {
            "client"
        } else {
            "server"
        }
    }
}

/// Why `what`, which `side` sends, is not in the capture — or not read, when a message of that
/// side over the size limit stopped its parsing.
pub fn unseen(f: &TlsFacts, cov: &Coverage, side: Side, what: &str) -> String {
    match f.oversized.filter(|o| o.from == side) {
        Some(o) => format!("{what} is not read: the {}'s {}", cov.name(side), too_large(&o)),
        None => cov.not_seen(side, what),
    }
}

/// The handshake did not reach a ServerHello and no alert says it failed: what is missing, and
/// why when the capture shows it. `cov.client` must be the side that sent (or would send) the
/// ClientHello.
pub fn no_server_hello(f: &TlsFacts, cov: &Coverage) -> String {
    if let Some(o) = oversized(f) {
        return o;
    }
    let client = cov.client;
    if f.client_hello.is_some() {
        return format!("ClientHello seen; {}", unseen(f, cov, cov.server(), "the ServerHello"));
    }
    let client_hello_sent = f.messages.iter().any(|m| m.from == client && m.ty == 1);
    if client_hello_sent {
        // tls-parser rejected it; its error is in the problems.
        return "the ClientHello could not be parsed, and no ServerHello is in the capture".into();
    }
    if f.lost_sync[client] && cov.snap_len == 0 {
        return format!(
            "{}: the ClientHello is not complete",
            cov.handshake_bytes_missing(client)
        );
    }
    cov.not_seen(client, "the handshake")
}

/// A handshake message over [`MAX_HANDSHAKE`] was given up: "ClientHello of 307200 bytes is over
/// the 256 KiB handshake limit: not parsed".
pub fn oversized(f: &TlsFacts) -> Option<String> {
    f.oversized.as_ref().map(|o| format!("{}: not parsed", too_large(o)))
}

/// "ClientHello of 307200 bytes is over the 256 KiB handshake limit".
fn too_large(o: &Oversized) -> String {
    let what = match o.ty {
        1 => "ClientHello".to_string(),
        2 => "ServerHello".to_string(),
        11 => "Certificate".to_string(),
        t => format!("handshake message (type {t})"),
    };
    format!(
        "{what} of {} bytes is over the {} KiB handshake limit",
        o.len,
        MAX_HANDSHAKE / 1024
    )
}

/// The server answered the ClientHello with bytes that are not a TLS record.
pub fn answered_in_plaintext(p: Protocol) -> String {
    match display_name(p) {
        Some(name) => format!("TLS handshake failed: the server answered the ClientHello in plaintext ({name})"),
        None => "TLS handshake failed: the server answered the ClientHello with bytes that are not TLS (protocol not recognised)".into(),
    }
}

/// Protocol names as people write them; `None` for an unrecognised protocol.
fn display_name(p: Protocol) -> Option<&'static str> {
    Some(match p {
        Protocol::Http => "HTTP",
        Protocol::Http2 => "HTTP/2",
        Protocol::Grpc => "gRPC",
        Protocol::Postgresql => "PostgreSQL",
        Protocol::Mysql => "MySQL",
        Protocol::Redis => "Redis",
        Protocol::Dns => "DNS",
        Protocol::Smtp => "SMTP",
        Protocol::Imap => "IMAP",
        Protocol::Pop3 => "POP3",
        Protocol::Ftp => "FTP",
        Protocol::Ldap => "LDAP",
        Protocol::Xmpp => "XMPP",
        Protocol::Irc => "IRC",
        Protocol::Ssh => "SSH",
        Protocol::Unknown => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::inspect::tls::{ClientHelloFacts, HandshakeMessage, Oversized};

    fn client_only() -> Coverage {
        Coverage {
            packets: PerSide::new(9, 0),
            bytes: PerSide::new(2301, 0),
            ..Coverage::complete(Side::Lo)
        }
    }

    #[test]
    fn one_way_names_the_direction_that_is_there() {
        assert_eq!(
            client_only().one_way(),
            Some("only the client's direction is in the capture")
        );
        let server_only = Coverage {
            client: Side::Hi,
            ..client_only()
        };
        assert_eq!(
            server_only.one_way(),
            Some("only the server's direction is in the capture")
        );
        assert_eq!(Coverage::complete(Side::Lo).one_way(), None);
    }

    #[test]
    fn a_missing_server_hello_says_why() {
        let mut f = TlsFacts {
            client_hello: Some(ClientHelloFacts::default()),
            ..Default::default()
        };
        assert_eq!(
            no_server_hello(&f, &client_only()),
            "ClientHello seen; the ServerHello is not in the capture: only the client's direction is in the capture"
        );
        let silent = Coverage {
            bytes: PerSide::new(300, 0),
            ..Coverage::complete(Side::Lo)
        };
        assert_eq!(
            no_server_hello(&f, &silent),
            "ClientHello seen; the ServerHello is not in the capture: the server sent no data"
        );
        let lost = Coverage {
            bytes: PerSide::new(300, 1500),
            gap_bytes: PerSide::new(0, 1500),
            ..silent
        };
        assert!(no_server_hello(&f, &lost).ends_with("1500 bytes of the server's direction are missing"));
        f.client_hello = None;
        let cut = Coverage {
            cut: PerSide::new(true, true),
            snap_len: 96,
            ..lost
        };
        assert_eq!(
            no_server_hello(&f, &cut),
            "packets cut by the capture's snap length (96 bytes): the handshake is not in the capture"
        );
        f.messages.push(HandshakeMessage { from: Side::Lo, ty: 1 });
        assert!(no_server_hello(&f, &silent).starts_with("the ClientHello could not be parsed"));
    }

    #[test]
    fn an_oversized_client_hello_is_named_with_its_length() {
        let f = TlsFacts {
            oversized: Some(Oversized {
                from: Side::Lo,
                ty: 1,
                len: 307_200,
            }),
            ..Default::default()
        };
        assert_eq!(
            no_server_hello(&f, &Coverage::complete(Side::Lo)),
            "ClientHello of 307200 bytes is over the 256 KiB handshake limit: not parsed"
        );
    }

    #[test]
    fn a_message_over_the_limit_is_why_the_rest_of_its_direction_is_not_read() {
        let f = TlsFacts {
            oversized: Some(Oversized {
                from: Side::Hi,
                ty: 11,
                len: 339_629,
            }),
            ..Default::default()
        };
        let cov = Coverage::complete(Side::Lo);
        assert_eq!(
            unseen(&f, &cov, Side::Hi, "the server's ServerHelloDone"),
            "the server's ServerHelloDone is not read: the server's Certificate of 339629 bytes is over the 256 KiB handshake limit"
        );
        // The other direction's reasons are its own.
        assert_eq!(
            unseen(&f, &cov, Side::Lo, "the client's answer"),
            "the client's answer is not in the capture: the client sent no data"
        );
    }

    #[test]
    fn plaintext_answers_name_their_protocol() {
        assert_eq!(
            answered_in_plaintext(Protocol::Http),
            "TLS handshake failed: the server answered the ClientHello in plaintext (HTTP)"
        );
        assert!(answered_in_plaintext(Protocol::Unknown).contains("not TLS"));
    }
}
