//! The types every part of plaintext identification shares: the protocol names it reports
//! ([`Protocol`], [`PlaintextInfo`]) and the evidence a detector gives for one ([`Evidence`]).
//! A leaf: it uses nothing else from `plaintext`, so every detector can use it.

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Http2,
    Grpc,
    Postgresql,
    Mysql,
    Redis,
    Dns,
    Smtp,
    Imap,
    Pop3,
    Ftp,
    Ldap,
    Xmpp,
    Irc,
    Ssh,
    Unknown,
}

impl Protocol {
    /// The same lowercase name serde uses.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Http2 => "http2",
            Protocol::Grpc => "grpc",
            Protocol::Postgresql => "postgresql",
            Protocol::Mysql => "mysql",
            Protocol::Redis => "redis",
            Protocol::Dns => "dns",
            Protocol::Smtp => "smtp",
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
            Protocol::Ftp => "ftp",
            Protocol::Ldap => "ldap",
            Protocol::Xmpp => "xmpp",
            Protocol::Irc => "irc",
            Protocol::Ssh => "ssh",
            Protocol::Unknown => "unknown",
        }
    }

    /// Well-known server ports, used only to break ties between byte-level candidates.
    pub(super) fn owns_port(self, port: u16) -> bool {
        match self {
            Protocol::Http => matches!(port, 80 | 8000 | 8008 | 8080 | 8081 | 9080),
            Protocol::Http2 | Protocol::Grpc | Protocol::Unknown => false,
            Protocol::Postgresql => port == 5432,
            Protocol::Mysql => port == 3306,
            Protocol::Redis => port == 6379,
            Protocol::Dns => port == 53,
            Protocol::Smtp => matches!(port, 25 | 587 | 2525),
            Protocol::Imap => port == 143,
            Protocol::Pop3 => port == 110,
            Protocol::Ftp => port == 21,
            Protocol::Ldap => port == 389,
            Protocol::Xmpp => matches!(port, 5222 | 5269),
            Protocol::Irc => matches!(port, 194 | 6667),
            Protocol::Ssh => port == 22,
        }
    }
}

/// What a plaintext stream was. `method` and `path` are set only for HTTP/1.x, HTTP/2 and gRPC.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlaintextInfo {
    pub protocol: Protocol,
    /// From a fixed allow-list of methods, so arbitrary client bytes never end up here.
    pub method: Option<String>,
    /// Request path without query string or fragment, bytes outside printable ASCII
    /// percent-encoded, at most `http1::MAX_PATH_CHARS` (200) characters (cut with "…").
    pub path: Option<String>,
    /// HTTP/1.x `Host` header: the server name the client asked for, as SNI is for TLS. Only
    /// host-name characters (letters, digits, `.-:[]`, at most 253); anything else gives None.
    pub host: Option<String>,
}

impl PlaintextInfo {
    pub(super) fn bare(protocol: Protocol) -> Self {
        PlaintextInfo {
            protocol,
            method: None,
            path: None,
            host: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Evidence {
    /// Fits, but another protocol could send the same bytes.
    Weak,
    /// Could hardly be anything else.
    Strong,
}

/// The candidates the detectors found, in detector order.
pub(super) type Found = Vec<(Protocol, Evidence)>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names_match_serde() {
        for p in [Protocol::Http2, Protocol::Postgresql, Protocol::Pop3, Protocol::Unknown] {
            assert_eq!(serde_json::to_value(p).unwrap(), p.name());
        }
    }
}
