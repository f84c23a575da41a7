//! Names the application protocol of a TCP stream that is not TLS, from the first bytes each
//! side sent. The point is to say *what* went over the wire in clear, never to copy it: the only
//! payload-derived strings that leave this module are an HTTP method from a fixed allow-list and
//! a request path with its query string and fragment removed.
//!
//! Detection is by byte signatures. Each detector says how sure it is: `Strong` when the bytes
//! could hardly be another protocol, `Weak` when they fit but another protocol could send the
//! same thing (a bare `220 ` banner is SMTP or FTP). The server port only breaks ties between
//! candidates the bytes already allow; a port alone never names a protocol.

use std::fmt::Write as _;

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
    fn owns_port(self, port: u16) -> bool {
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
    /// percent-encoded, at most `MAX_PATH_CHARS` characters (cut with "…").
    pub path: Option<String>,
    /// HTTP/1.x `Host` header: the server name the client asked for, as SNI is for TLS. Only
    /// host-name characters (letters, digits, `.-:[]`, at most 253); anything else gives None.
    pub host: Option<String>,
}

impl PlaintextInfo {
    fn bare(protocol: Protocol) -> Self {
        PlaintextInfo {
            protocol,
            method: None,
            path: None,
            host: None,
        }
    }
}

/// The `Host` header of an HTTP/1.x request head, if it is a plain host name (or address) with
/// an optional port. No other header value is read.
fn http1_host(client: &[u8]) -> Option<String> {
    let head = client.split(|&b| b == b'\n').skip(1);
    for line in head {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.len() > 5 && line[..5].eq_ignore_ascii_case(b"host:") {
            let value = line[5..].trim_ascii();
            let ok = !value.is_empty()
                && value.len() <= 253
                && value
                    .iter()
                    .all(|&c| c.is_ascii_alphanumeric() || b".-:[]".contains(&c));
            return ok.then(|| String::from_utf8_lossy(value).into_owned());
        }
    }
    None
}

const MAX_PATH_CHARS: usize = 200;

/// `client`/`server`: the first bytes each side sent (may be empty, may be cut anywhere);
/// `server_port`: the server's TCP port, used only as a tie-breaker when the bytes are ambiguous.
pub fn identify(client: &[u8], server: &[u8], server_port: u16) -> PlaintextInfo {
    if let Some(info) = http2(client, server) {
        return info;
    }
    if let Some(request) = http1_request(client) {
        return PlaintextInfo {
            protocol: Protocol::Http,
            method: Some(request.method.to_string()),
            path: request.target.and_then(sanitize_path),
            host: http1_host(client),
        };
    }
    let mut found = Vec::new();
    for detect in DETECTORS {
        detect(client, server, &mut found);
    }
    PlaintextInfo::bare(choose(&found, server_port))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evidence {
    /// Fits, but another protocol could send the same bytes.
    Weak,
    /// Could hardly be anything else.
    Strong,
}

type Found = Vec<(Protocol, Evidence)>;
/// Looks at both sides' first bytes and adds any protocol they fit.
type Detector = fn(&[u8], &[u8], &mut Found);

/// Order matters: among candidates of equal evidence and no port preference, the first wins.
const DETECTORS: &[Detector] = &[
    ssh,
    http1_response,
    postgresql,
    mysql,
    ldap,
    dns,
    redis,
    imap,
    smtp_ftp,
    pop3,
    irc,
    xmpp,
];

fn choose(found: &[(Protocol, Evidence)], port: u16) -> Protocol {
    for evidence in [Evidence::Strong, Evidence::Weak] {
        let mut level = found.iter().filter(|(_, e)| *e == evidence);
        let first = level.clone().next();
        if let Some((p, _)) = level.find(|(p, _)| p.owns_port(port)).or(first) {
            return *p;
        }
    }
    Protocol::Unknown
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.x

const HTTP_METHODS: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "REPORT",
];

/// Maps wire bytes to the allow-listed `&'static str`, so nothing the peer wrote is kept.
fn allowed_method(token: &[u8]) -> Option<&'static str> {
    HTTP_METHODS.iter().copied().find(|m| m.as_bytes() == token)
}

struct Http1Request<'a> {
    method: &'static str,
    /// None for CONNECT's authority-form, which names a host, not a path.
    target: Option<&'a [u8]>,
}

/// `METHOD SP request-target SP HTTP/1.x CRLF`, possibly cut anywhere after the first byte of
/// the target. HTTP methods are case-sensitive, which also keeps Redis's inline `get key` out.
fn http1_request(client: &[u8]) -> Option<Http1Request<'_>> {
    let (line, complete) = first_line(client);
    let mut parts = line.splitn(3, |&b| b == b' ');
    let method = allowed_method(parts.next()?)?;
    let target = parts.next().filter(|t| !t.is_empty())?;
    if target.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return None;
    }
    let version = parts.next();
    let version_ok = match version {
        Some(v) if complete => v == b"HTTP/1.1" || v == b"HTTP/1.0",
        Some(v) => b"HTTP/1.1".starts_with(v) || b"HTTP/1.0".starts_with(v),
        // HTTP/0.9 has no version; a cut line may not have reached it yet.
        None => !complete || method == "GET",
    };
    if !version_ok {
        return None;
    }
    let origin_like = target.first() == Some(&b'/')
        || target == b"*"
        || starts_with_ci(target, b"http://")
        || starts_with_ci(target, b"https://");
    if origin_like {
        return Some(Http1Request {
            method,
            target: Some(target),
        });
    }
    let authority_like = target
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
    (method == "CONNECT" && authority_like).then_some(Http1Request { method, target: None })
}

fn http1_response(_client: &[u8], server: &[u8], found: &mut Found) {
    let status_line = server.len() >= 8
        && server.starts_with(b"HTTP/1.")
        && server.get(7).is_some_and(u8::is_ascii_digit)
        && server.get(8).is_none_or(|&b| b == b' ');
    if status_line {
        found.push((Protocol::Http, Evidence::Strong));
    }
}

/// Reduces a request target to a path that is safe to show: scheme, authority (and any
/// userinfo in it), query and fragment are dropped; bytes outside printable ASCII are
/// percent-encoded; the result is at most `MAX_PATH_CHARS` characters.
fn sanitize_path(target: &[u8]) -> Option<String> {
    if target == b"*" {
        return Some("*".to_string());
    }
    let path = if let Some(after_scheme) =
        strip_prefix_ci(target, b"http://").or_else(|| strip_prefix_ci(target, b"https://"))
    {
        match after_scheme.iter().position(|&b| b"/?#".contains(&b)) {
            Some(i) => after_scheme.get(i..).unwrap_or_default(),
            None => &[],
        }
    } else if target.first() == Some(&b'/') {
        target
    } else {
        return None;
    };
    let end = path.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(path.len());
    let path = path.get(..end).unwrap_or_default();
    if path.is_empty() {
        // Absolute-form with no path component means the root.
        return Some("/".to_string());
    }
    let width = |b: u8| if (0x21..=0x7e).contains(&b) { 1 } else { 3 };
    let total: usize = path.iter().map(|&b| width(b)).sum();
    // Room for the ellipsis when cutting; a %XX escape is never split.
    let budget = if total > MAX_PATH_CHARS {
        MAX_PATH_CHARS - 1
    } else {
        total
    };
    let mut out = String::new();
    let mut chars = 0;
    for &b in path {
        if chars + width(b) > budget {
            break;
        }
        if width(b) == 1 {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        chars += width(b);
    }
    if total > MAX_PATH_CHARS {
        out.push('…');
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 with prior knowledge, and gRPC

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const H2_FRAME_HEADERS: u8 = 0x1;
const H2_FRAME_SETTINGS: u8 = 0x4;
const H2_FRAME_CONTINUATION: u8 = 0x9;
const H2_FLAG_END_HEADERS: u8 = 0x4;
const H2_FLAG_PADDED: u8 = 0x8;
const H2_FLAG_PRIORITY: u8 = 0x20;

fn http2(client: &[u8], server: &[u8]) -> Option<PlaintextInfo> {
    // "PRI * HTTP/2" is long enough that nothing else starts that way.
    let cut_preface = client.len() >= 12 && H2_PREFACE.starts_with(client);
    if let Some(frames) = client.strip_prefix(H2_PREFACE) {
        let Some(block) = first_header_block(frames) else {
            return Some(PlaintextInfo::bare(Protocol::Http2));
        };
        let request = hpack::first_request(&block);
        return Some(PlaintextInfo {
            protocol: if request.grpc { Protocol::Grpc } else { Protocol::Http2 },
            method: request.method.map(str::to_string),
            path: request.path,
            host: None,
        });
    }
    if cut_preface {
        return Some(PlaintextInfo::bare(Protocol::Http2));
    }
    // A server that speaks first with a SETTINGS frame on stream 0 is HTTP/2 even when the
    // client's preface was not captured.
    let settings = client.is_empty()
        && matches!(server, [l0, l1, l2, H2_FRAME_SETTINGS, 0, 0, 0, 0, 0, ..]
            if (u32::from(*l0) << 16 | u32::from(*l1) << 8 | u32::from(*l2)) % 6 == 0);
    settings.then(|| PlaintextInfo::bare(Protocol::Http2))
}

/// The header block of the client's first HEADERS frame, with CONTINUATION frames appended.
/// Frames cut short by the capture contribute what is present: HPACK decodes front to back, so
/// a prefix still yields the fields it contains.
fn first_header_block(mut frames: &[u8]) -> Option<Vec<u8>> {
    let mut block: Option<Vec<u8>> = None;
    let mut stream = 0;
    while let Some((header, rest)) = frames.split_first_chunk::<9>() {
        let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = *header;
        let len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        let id = u32::from_be_bytes([s0 & 0x7f, s1, s2, s3]);
        let payload = rest.get(..len).unwrap_or(rest);
        frames = rest.get(len..).unwrap_or_default();
        match (&mut block, kind) {
            (None, H2_FRAME_HEADERS) if id != 0 => {
                stream = id;
                let padded = flags & H2_FLAG_PADDED != 0;
                let priority = flags & H2_FLAG_PRIORITY != 0;
                let mut fragment = payload;
                let mut pad = 0;
                if padded {
                    let (&p, tail) = fragment.split_first()?;
                    pad = usize::from(p);
                    fragment = tail;
                }
                if priority {
                    fragment = fragment.get(5..)?;
                }
                // Padding sits at the end of the declared payload, which a cut frame may not
                // reach, so the fragment length comes from the header, not from what is present.
                let overhead = usize::from(padded) + if priority { 5 } else { 0 } + pad;
                let fragment_len = len.checked_sub(overhead)?;
                let fragment = fragment.get(..fragment_len).unwrap_or(fragment);
                block = Some(fragment.to_vec());
                if flags & H2_FLAG_END_HEADERS != 0 {
                    break;
                }
            }
            (Some(b), H2_FRAME_CONTINUATION) if id == stream => {
                b.extend_from_slice(payload);
                if flags & H2_FLAG_END_HEADERS != 0 {
                    break;
                }
            }
            // Anything between HEADERS and its END_HEADERS is a protocol error; stop there.
            (Some(_), _) => break,
            (None, _) => {}
        }
    }
    block
}

/// Just enough HPACK (RFC 7541) to read the pseudo-headers and content-type of the first
/// request on a connection. The dynamic table is empty at that point, so the first header block
/// can be decoded on its own; later blocks could not be without following the whole connection.
mod hpack {
    use super::{allowed_method, sanitize_path, starts_with_ci};

    #[derive(Debug, Default, PartialEq, Eq)]
    pub(super) struct Request {
        pub method: Option<&'static str>,
        pub path: Option<String>,
        pub grpc: bool,
    }

    /// Decodes field by field and stops at the first field that cannot be decoded (cut or
    /// malformed); fields before it are still used.
    pub(super) fn first_request(block: &[u8]) -> Request {
        let mut request = Request::default();
        let mut table = DynamicTable::new();
        let mut pos = 0;
        while pos < block.len() {
            let Some((field, next)) = next_field(block, pos, &mut table) else {
                break;
            };
            pos = next;
            let Some((name, value)) = field else {
                continue;
            };
            match name.as_slice() {
                b":method" if request.method.is_none() => request.method = allowed_method(&value),
                b":path" if request.path.is_none() => request.path = sanitize_path(&value),
                b"content-type" => request.grpc |= starts_with_ci(&value, b"application/grpc"),
                _ => {}
            }
        }
        request
    }

    type Field = (Vec<u8>, Vec<u8>);

    /// One representation starting at `pos`: `Some((None, next))` for a table size update.
    fn next_field(block: &[u8], pos: usize, table: &mut DynamicTable) -> Option<(Option<Field>, usize)> {
        let first = *block.get(pos)?;
        if first & 0x80 != 0 {
            let (index, pos) = integer(block, pos, 7)?;
            return Some((Some(table.get(index)?), pos));
        }
        if first & 0xe0 == 0x20 {
            let (size, pos) = integer(block, pos, 5)?;
            table.set_max_size(size);
            return Some((None, pos));
        }
        // 01xxxxxx: literal with incremental indexing; 0000xxxx / 0001xxxx: without / never.
        let indexing = first & 0x40 != 0;
        let (name_index, pos) = integer(block, pos, if indexing { 6 } else { 4 })?;
        let (name, pos) = if name_index == 0 {
            string(block, pos)?
        } else {
            (table.get(name_index)?.0, pos)
        };
        let (value, pos) = string(block, pos)?;
        if indexing {
            table.insert(name.clone(), value.clone());
        }
        Some((Some((name, value)), pos))
    }

    /// RFC 7541 5.1 prefix integer. Values are capped well below overflow: nothing in a header
    /// block legitimately needs more than a few megabytes.
    pub(super) fn integer(data: &[u8], pos: usize, prefix_bits: u32) -> Option<(usize, usize)> {
        let mask = (1u8 << prefix_bits) - 1;
        let mut value = usize::from(*data.get(pos)? & mask);
        let mut pos = pos + 1;
        if value < usize::from(mask) {
            return Some((value, pos));
        }
        let mut shift = 0u32;
        loop {
            let b = *data.get(pos)?;
            pos += 1;
            value = value.checked_add(usize::from(b & 0x7f).checked_shl(shift)?)?;
            if b & 0x80 == 0 {
                return Some((value, pos));
            }
            shift += 7;
            if shift > 21 {
                return None;
            }
        }
    }

    fn string(data: &[u8], pos: usize) -> Option<(Vec<u8>, usize)> {
        let huffman = *data.get(pos)? & 0x80 != 0;
        let (len, pos) = integer(data, pos, 7)?;
        let end = pos.checked_add(len)?;
        let raw = data.get(pos..end)?;
        let text = if huffman {
            super::huffman::decode(raw)?
        } else {
            raw.to_vec()
        };
        Some((text, end))
    }

    const DEFAULT_TABLE_SIZE: usize = 4096;
    /// Bounds memory if a peer announces an absurd table size.
    const MAX_TABLE_SIZE: usize = 65_536;

    struct DynamicTable {
        /// Newest first, as HPACK indexes it.
        entries: Vec<Field>,
        size: usize,
        max_size: usize,
    }

    impl DynamicTable {
        fn new() -> Self {
            DynamicTable {
                entries: Vec::new(),
                size: 0,
                max_size: DEFAULT_TABLE_SIZE,
            }
        }

        fn get(&self, index: usize) -> Option<Field> {
            match index {
                0 => None,
                1..=61 => STATIC_TABLE
                    .get(index - 1)
                    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())),
                _ => self.entries.get(index - 62).cloned(),
            }
        }

        fn set_max_size(&mut self, size: usize) {
            self.max_size = size.min(MAX_TABLE_SIZE);
            self.evict_to(self.max_size);
        }

        fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
            let size = name.len() + value.len() + 32;
            if size > self.max_size {
                self.entries.clear();
                self.size = 0;
                return;
            }
            self.evict_to(self.max_size - size);
            self.entries.insert(0, (name, value));
            self.size += size;
        }

        fn evict_to(&mut self, limit: usize) {
            while self.size > limit {
                match self.entries.pop() {
                    Some((n, v)) => self.size = self.size.saturating_sub(n.len() + v.len() + 32),
                    None => self.size = 0,
                }
            }
        }
    }

    /// RFC 7541 Appendix A.
    const STATIC_TABLE: [(&str, &str); 61] = [
        (":authority", ""),
        (":method", "GET"),
        (":method", "POST"),
        (":path", "/"),
        (":path", "/index.html"),
        (":scheme", "http"),
        (":scheme", "https"),
        (":status", "200"),
        (":status", "204"),
        (":status", "206"),
        (":status", "304"),
        (":status", "400"),
        (":status", "404"),
        (":status", "500"),
        ("accept-charset", ""),
        ("accept-encoding", "gzip, deflate"),
        ("accept-language", ""),
        ("accept-ranges", ""),
        ("accept", ""),
        ("access-control-allow-origin", ""),
        ("age", ""),
        ("allow", ""),
        ("authorization", ""),
        ("cache-control", ""),
        ("content-disposition", ""),
        ("content-encoding", ""),
        ("content-language", ""),
        ("content-length", ""),
        ("content-location", ""),
        ("content-range", ""),
        ("content-type", ""),
        ("cookie", ""),
        ("date", ""),
        ("etag", ""),
        ("expect", ""),
        ("expires", ""),
        ("from", ""),
        ("host", ""),
        ("if-match", ""),
        ("if-modified-since", ""),
        ("if-none-match", ""),
        ("if-range", ""),
        ("if-unmodified-since", ""),
        ("last-modified", ""),
        ("link", ""),
        ("location", ""),
        ("max-forwards", ""),
        ("proxy-authenticate", ""),
        ("proxy-authorization", ""),
        ("range", ""),
        ("referer", ""),
        ("refresh", ""),
        ("retry-after", ""),
        ("server", ""),
        ("set-cookie", ""),
        ("strict-transport-security", ""),
        ("transfer-encoding", ""),
        ("user-agent", ""),
        ("vary", ""),
        ("via", ""),
        ("www-authenticate", ""),
    ];
}

/// The HPACK Huffman code (RFC 7541 Appendix B). It is canonical, so the code lengths alone
/// define it; the codes are rebuilt at compile time instead of transcribing 257 bit patterns.
mod huffman {
    /// Code length in bits for each symbol 0..=255, then EOS (256).
    const LENGTHS: [u8; 257] = [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //
        28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //
        6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //
        5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //
        13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //
        7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //
        6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //
        20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, //
        24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, //
        22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, //
        21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, //
        26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, //
        19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, //
        20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, //
        26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, //
        30,
    ];
    const MAX_LEN: usize = 30;
    const EOS: u16 = 256;

    /// Per code length: how many codes, the first code, and where its symbols start in SORTED.
    struct Canonical {
        count: [u32; MAX_LEN + 1],
        first: [u32; MAX_LEN + 1],
        offset: [usize; MAX_LEN + 1],
        sorted: [u16; 257],
    }

    const CANONICAL: Canonical = build();

    const fn build() -> Canonical {
        let mut c = Canonical {
            count: [0; MAX_LEN + 1],
            first: [0; MAX_LEN + 1],
            offset: [0; MAX_LEN + 1],
            sorted: [0; 257],
        };
        let mut s = 0;
        while s < 257 {
            c.count[LENGTHS[s] as usize] += 1;
            s += 1;
        }
        let mut len = 1;
        let mut code = 0;
        let mut offset = 0;
        while len <= MAX_LEN {
            c.first[len] = code;
            c.offset[len] = offset;
            code = (code + c.count[len]) << 1;
            offset += c.count[len] as usize;
            len += 1;
        }
        let mut next = c.offset;
        let mut s = 0;
        while s < 257 {
            let len = LENGTHS[s] as usize;
            c.sorted[next[len]] = s as u16;
            next[len] += 1;
            s += 1;
        }
        c
    }

    /// None on an invalid code, an EOS symbol in the data, or padding that is not a prefix of
    /// EOS (RFC 7541 5.2).
    pub(super) fn decode(src: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(src.len() * 8 / 5);
        let mut code = 0u32;
        let mut len = 0usize;
        for byte in src {
            for shift in (0..8).rev() {
                code = (code << 1) | u32::from((byte >> shift) & 1);
                len += 1;
                let first = *CANONICAL.first.get(len)?;
                let count = *CANONICAL.count.get(len)?;
                match code.checked_sub(first) {
                    Some(rank) if rank < count => {
                        let at = CANONICAL.offset.get(len)?.checked_add(rank as usize)?;
                        let symbol = *CANONICAL.sorted.get(at)?;
                        if symbol == EOS {
                            return None;
                        }
                        out.push(u8::try_from(symbol).ok()?);
                        code = 0;
                        len = 0;
                    }
                    _ if len >= MAX_LEN => return None,
                    _ => {}
                }
            }
        }
        let padding_ok = len <= 7 && code == (1u32 << len) - 1;
        padding_ok.then_some(out)
    }

    #[cfg(test)]
    pub(super) fn encode(text: &[u8]) -> Vec<u8> {
        // Test-only inverse, to build header blocks without hand-assembling bits.
        let mut codes = [0u32; 257];
        let mut s = 0;
        while s < 257 {
            let len = LENGTHS[s] as usize;
            let rank = CANONICAL.sorted[CANONICAL.offset[len]..]
                .iter()
                .position(|&x| x as usize == s)
                .unwrap();
            codes[s] = CANONICAL.first[len] + rank as u32;
            s += 1;
        }
        let mut bits: Vec<bool> = Vec::new();
        for &b in text {
            let len = LENGTHS[b as usize];
            for i in (0..len).rev() {
                bits.push((codes[b as usize] >> i) & 1 == 1);
            }
        }
        while !bits.len().is_multiple_of(8) {
            bits.push(true);
        }
        bits.chunks(8)
            .map(|c| c.iter().fold(0u8, |acc, &bit| acc << 1 | u8::from(bit)))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Binary protocols

fn ssh(client: &[u8], server: &[u8], found: &mut Found) {
    if client.starts_with(b"SSH-") || server.starts_with(b"SSH-") {
        found.push((Protocol::Ssh, Evidence::Strong));
    }
}

const PG_SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
const PG_GSSENC_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];
const PG_CANCEL_CODE: u32 = 0x04d2_162e;

fn postgresql(client: &[u8], server: &[u8], found: &mut Found) {
    if let Some((len, code)) = be_u32_pair(client) {
        let startup = code >> 16 == 3
            && (code & 0xffff) <= 2
            && (9..=10_000).contains(&len)
            && client.get(8).is_none_or(u8::is_ascii_lowercase);
        if client.starts_with(&PG_SSL_REQUEST)
            || client.starts_with(&PG_GSSENC_REQUEST)
            || (len == 16 && code == PG_CANCEL_CODE)
            || startup
        {
            found.push((Protocol::Postgresql, Evidence::Strong));
            return;
        }
    }
    // Server speaking first without the client's startup: an authentication request
    // ('R', length, method code) is a short, plausible-looking pattern, hence weak.
    if let Some((&b'R', rest)) = server.split_first() {
        if let Some((len, method)) = be_u32_pair(rest) {
            if (8..=2048).contains(&len) && method <= 12 && method != 1 && method != 4 {
                found.push((Protocol::Postgresql, Evidence::Weak));
            }
        }
    }
}

fn mysql(client: &[u8], server: &[u8], found: &mut Found) {
    if let [l0, l1, l2, 0, rest @ ..] = server {
        let len = u32::from_le_bytes([*l0, *l1, *l2, 0]);
        match rest {
            // Protocol 10 greeting: the NUL-terminated server version comes next ("8.0.36").
            [10, version @ ..] if (20..=1024).contains(&len) => {
                let v = version.split(|&b| b == 0).next().unwrap_or_default();
                if v.first().is_some_and(u8::is_ascii_digit) && v.iter().all(|b| b.is_ascii_graphic()) {
                    found.push((Protocol::Mysql, Evidence::Strong));
                    return;
                }
            }
            // An error packet instead of a greeting ("Host ... is not allowed to connect").
            [0xff, _, _, ..] if (3..=1024).contains(&len) => {
                found.push((Protocol::Mysql, Evidence::Weak));
                return;
            }
            _ => {}
        }
    }
    // Handshake response or SSLRequest: seq 1 and CLIENT_PROTOCOL_41.
    if let [l0, l1, l2, 1, c0, c1, ..] = client {
        let len = u32::from_le_bytes([*l0, *l1, *l2, 0]);
        let caps = u16::from_le_bytes([*c0, *c1]);
        if (32..=65_536).contains(&len) && caps & 0x0200 != 0 {
            found.push((Protocol::Mysql, Evidence::Weak));
        }
    }
}

/// LDAPMessage ::= SEQUENCE { messageID INTEGER, protocolOp [APPLICATION n] ... }
fn ldap(client: &[u8], server: &[u8], found: &mut Found) {
    const REQUESTS: &[u8] = &[0x60, 0x42, 0x63, 0x66, 0x68, 0x4a, 0x6c, 0x6e, 0x50, 0x77];
    const RESPONSES: &[u8] = &[0x61, 0x64, 0x65, 0x73, 0x67, 0x69, 0x6b, 0x6d, 0x6f, 0x78, 0x79];
    let request = ldap_op(client).is_some_and(|op| REQUESTS.contains(&op));
    let response = ldap_op(server).is_some_and(|op| RESPONSES.contains(&op));
    if request || response {
        found.push((Protocol::Ldap, Evidence::Strong));
    }
}

/// The protocolOp tag of an LDAPMessage, if the bytes start like one.
fn ldap_op(data: &[u8]) -> Option<u8> {
    let (&0x30, rest) = data.split_first()? else {
        return None;
    };
    let (len, rest) = ber_length(rest)?;
    if !(5..=16 * 1024 * 1024).contains(&len) {
        return None;
    }
    let [0x02, id_len, rest @ ..] = rest else {
        return None;
    };
    let id_len = usize::from(*id_len);
    if !(1..=4).contains(&id_len) {
        return None;
    }
    rest.get(id_len).copied()
}

/// BER definite length: (length, rest). Indefinite and over-long forms are rejected.
fn ber_length(data: &[u8]) -> Option<(usize, &[u8])> {
    let (&first, rest) = data.split_first()?;
    if first < 0x80 {
        return Some((usize::from(first), rest));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let bytes = rest.get(..n)?;
    let len = bytes.iter().fold(0usize, |acc, &b| acc << 8 | usize::from(b));
    Some((len, rest.get(n..)?))
}

fn dns(client: &[u8], server: &[u8], found: &mut Found) {
    if let Some(evidence) = dns_message(client, false).or_else(|| dns_message(server, true)) {
        found.push((Protocol::Dns, evidence));
    }
}

/// DNS over TCP: 2-byte length, then a header whose counts look like one question.
/// Strong when the question name and type also parse.
fn dns_message(data: &[u8], response: bool) -> Option<Evidence> {
    let [l0, l1, _id0, _id1, f0, f1, q0, q1, a0, a1, n0, n1, r0, r1, question @ ..] = data else {
        return None;
    };
    let len = u16::from_be_bytes([*l0, *l1]);
    let flags = u16::from_be_bytes([*f0, *f1]);
    let qd = u16::from_be_bytes([*q0, *q1]);
    let an = u16::from_be_bytes([*a0, *a1]);
    let ns = u16::from_be_bytes([*n0, *n1]);
    let ar = u16::from_be_bytes([*r0, *r1]);
    let is_response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    let z = flags & 0x0040;
    let sane = len >= 17
        && is_response == response
        && opcode == 0
        && z == 0
        && qd == 1
        && (response || (an == 0 && ns == 0 && ar <= 2));
    if !sane {
        return None;
    }
    let mut pos = 0;
    loop {
        let label = usize::from(*question.get(pos)?);
        if label == 0 {
            break;
        }
        if label > 63 || pos > 255 {
            return None;
        }
        let Some(bytes) = question.get(pos + 1..pos + 1 + label) else {
            return Some(Evidence::Weak);
        };
        if !bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_*".contains(b)) {
            return None;
        }
        pos += 1 + label;
    }
    let Some([_t0, _t1, c0, c1]) = question.get(pos + 1..pos + 5) else {
        return Some(Evidence::Weak);
    };
    let class = u16::from_be_bytes([*c0, *c1]);
    matches!(class, 1 | 3 | 254 | 255).then_some(Evidence::Strong)
}

// ---------------------------------------------------------------------------------------------
// Text protocols

fn redis(client: &[u8], server: &[u8], found: &mut Found) {
    // RESP array of bulk strings: "*<n>\r\n$<len>\r\n..."
    if let Some(rest) = client.strip_prefix(b"*") {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if (1..=7).contains(&digits) {
            let tail = rest.get(digits..).unwrap_or_default();
            if tail.starts_with(b"\r\n$") {
                found.push((Protocol::Redis, Evidence::Strong));
                return;
            }
            if b"\r\n$".starts_with(tail) {
                found.push((Protocol::Redis, Evidence::Weak));
                return;
            }
        }
    }
    let (line, _) = first_line(client);
    let inline = [b"PING".as_slice(), b"HELLO", b"INFO"]
        .iter()
        .any(|cmd| line_is_command(line, cmd));
    let (reply, _) = first_line(server);
    if server.starts_with(b"+PONG\r\n") {
        found.push((Protocol::Redis, Evidence::Strong));
    } else if inline
        // A bare "+OK" line is how Redis acknowledges; POP3 banners carry text after "+OK ".
        || reply == b"+OK"
        || [b"-ERR ".as_slice(), b"-NOAUTH ", b"-WRONGPASS ", b"-DENIED "]
            .iter()
            .any(|p| server.starts_with(p))
    {
        found.push((Protocol::Redis, Evidence::Weak));
    }
}

fn imap(client: &[u8], server: &[u8], found: &mut Found) {
    let (banner, _) = first_line(server);
    let greeting = [b"* OK".as_slice(), b"* PREAUTH", b"* BYE"]
        .iter()
        .any(|g| starts_with_ci(banner, g));
    if greeting || imap_tagged_command(client).is_some() {
        found.push((Protocol::Imap, Evidence::Strong));
    }
}

/// `<tag> <COMMAND>` with a tag of IMAP atom characters and a command IMAP clients send first.
fn imap_tagged_command(client: &[u8]) -> Option<&[u8]> {
    const FIRST_COMMANDS: &[&[u8]] = &[
        b"CAPABILITY",
        b"STARTTLS",
        b"LOGIN",
        b"AUTHENTICATE",
        b"NOOP",
        b"LOGOUT",
        b"ID",
        b"ENABLE",
        b"SELECT",
        b"EXAMINE",
        b"LIST",
    ];
    let (line, _) = first_line(client);
    let mut words = line.split(|&b| b == b' ');
    let tag = words.next()?;
    let command = words.next()?;
    let tag_ok =
        !tag.is_empty() && tag.len() <= 32 && tag.iter().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b));
    (tag_ok && FIRST_COMMANDS.iter().any(|c| command.eq_ignore_ascii_case(c))).then_some(command)
}

fn pop3(client: &[u8], server: &[u8], found: &mut Found) {
    let (banner, _) = first_line(server);
    let (line, _) = first_line(client);
    let pop_only_command = [b"CAPA".as_slice(), b"STLS", b"APOP", b"UIDL"]
        .iter()
        .any(|c| line_is_command(line, c));
    if starts_with_ci(banner, b"+OK ") || pop_only_command {
        found.push((Protocol::Pop3, Evidence::Strong));
    } else if line_is_command(line, b"USER") && !irc_user(line) {
        found.push((Protocol::Pop3, Evidence::Weak));
    }
}

/// SMTP and FTP both greet with "220"; the banner text or the client's first command usually
/// tells them apart, and the port breaks the tie when neither does.
fn smtp_ftp(client: &[u8], server: &[u8], found: &mut Found) {
    let (banner, _) = first_line(server);
    let (line, _) = first_line(client);
    let smtp_client = [b"EHLO".as_slice(), b"HELO", b"LHLO"]
        .iter()
        .any(|c| line_is_command(line, c));
    let greets_220 = banner.starts_with(b"220") && banner.get(3).is_none_or(|&b| b == b' ' || b == b'-');
    // SMTP has no USER command, so USER after a 220 greeting is FTP's login.
    let ftp_user = greets_220 && line_is_command(line, b"USER") && !irc_user(line);
    let ftp_client = ftp_user
        || is_ftp_auth_tls(line)
        || [b"FEAT".as_slice(), b"SYST", b"OPTS"]
            .iter()
            .any(|c| line_is_command(line, c));
    let says_smtp = contains_ci(banner, b"SMTP");
    let says_ftp = contains_ci(banner, b"FTP");
    if smtp_client || (greets_220 && says_smtp && !says_ftp) {
        found.push((Protocol::Smtp, Evidence::Strong));
    } else if ftp_client || (greets_220 && says_ftp && !says_smtp) {
        found.push((Protocol::Ftp, Evidence::Strong));
    } else if greets_220 {
        found.push((Protocol::Smtp, Evidence::Weak));
        found.push((Protocol::Ftp, Evidence::Weak));
    } else if line_is_command(line, b"USER") && !irc_user(line) {
        found.push((Protocol::Ftp, Evidence::Weak));
    }
}

fn is_ftp_auth_tls(line: &[u8]) -> bool {
    let Some(arg) = strip_prefix_ci(line, b"AUTH ") else {
        return false;
    };
    let arg = trim_ascii(arg);
    [b"TLS".as_slice(), b"SSL", b"TLS-C", b"TLS-P"]
        .iter()
        .any(|a| arg.eq_ignore_ascii_case(a))
}

fn irc(client: &[u8], server: &[u8], found: &mut Found) {
    let (line, _) = first_line(client);
    let (banner, _) = first_line(server);
    let client_strong = line_is_command(line, b"NICK")
        || starts_with_ci(line, b"CAP LS")
        || starts_with_ci(line, b"CAP REQ")
        || irc_user(line);
    // ":irc.example.net NOTICE * :*** Looking up your hostname..." or the older "NOTICE AUTH".
    let server_strong =
        (banner.first() == Some(&b':') && contains_ci(banner, b" NOTICE ")) || starts_with_ci(banner, b"NOTICE AUTH");
    if client_strong || server_strong {
        found.push((Protocol::Irc, Evidence::Strong));
    } else if line_is_command(line, b"PASS") {
        found.push((Protocol::Irc, Evidence::Weak));
    }
}

/// IRC's `USER <user> <mode> <unused> :<realname>`, which FTP's and POP3's `USER <name>` is not.
fn irc_user(line: &[u8]) -> bool {
    strip_prefix_ci(line, b"USER ").is_some_and(|args| {
        let mut params = args.splitn(4, |&b| b == b' ');
        params.nth(3).is_some_and(|last| last.first() == Some(&b':'))
    })
}

fn xmpp(client: &[u8], server: &[u8], found: &mut Found) {
    for side in [client, server] {
        let head = trim_xml_start(side);
        let head = head.get(..head.len().min(512)).unwrap_or(head);
        let stream = contains_ci(head, b"<stream:stream") || contains_ci(head, b"jabber:");
        if stream {
            found.push((Protocol::Xmpp, Evidence::Strong));
            return;
        }
        if head.starts_with(b"<?xml") {
            found.push((Protocol::Xmpp, Evidence::Weak));
            return;
        }
    }
}

fn trim_xml_start(data: &[u8]) -> &[u8] {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let start = data.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(data.len());
    data.get(start..).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// STARTTLS and friends

/// If this client->server plaintext message asks to upgrade the connection to TLS, say which
/// protocol's upgrade it is.
///
/// A bare `STARTTLS` line is both SMTP's and IRC's command; it is reported as SMTP, and a caller
/// that already knows the stream is IRC (from [`identify`]) should keep that.
pub fn upgrade_request(client_msg: &[u8]) -> Option<Protocol> {
    if client_msg.starts_with(&PG_SSL_REQUEST) {
        return Some(Protocol::Postgresql);
    }
    if is_mysql_ssl_request(client_msg) {
        return Some(Protocol::Mysql);
    }
    if is_ldap_start_tls(client_msg) {
        return Some(Protocol::Ldap);
    }
    if starts_with_ci(trim_xml_start(client_msg), b"<starttls") {
        return Some(Protocol::Xmpp);
    }
    let (line, _) = first_line(client_msg);
    let line = trim_ascii(line);
    if line.eq_ignore_ascii_case(b"STARTTLS") {
        return Some(Protocol::Smtp);
    }
    if line.eq_ignore_ascii_case(b"STLS") {
        return Some(Protocol::Pop3);
    }
    if is_ftp_auth_tls(line) {
        return Some(Protocol::Ftp);
    }
    let imap = imap_tagged_command(line).is_some_and(|c| c.eq_ignore_ascii_case(b"STARTTLS"))
        && line.split(|&b| b == b' ').count() == 2;
    imap.then_some(Protocol::Imap)
}

/// Protocol 4.1 SSLRequest: a 32-byte payload, sequence 1, CLIENT_SSL (0x0800) set. The full
/// handshake response is longer, so the length alone separates the two.
fn is_mysql_ssl_request(msg: &[u8]) -> bool {
    matches!(msg, [32, 0, 0, 1, c0, c1, ..] if u16::from_le_bytes([*c0, *c1]) & 0x0800 != 0)
}

const LDAP_START_TLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";

/// ExtendedRequest ([APPLICATION 23]) whose requestName ([0]) is the StartTLS OID.
fn is_ldap_start_tls(msg: &[u8]) -> bool {
    if ldap_op(msg) != Some(0x77) {
        return false;
    }
    ldap_extended_request_name(msg) == Some(LDAP_START_TLS_OID)
}

fn ldap_extended_request_name(msg: &[u8]) -> Option<&[u8]> {
    let (_, rest) = ber_length(msg.get(1..)?)?;
    let id_len = usize::from(*rest.get(1)?);
    let op = rest.get(2 + id_len + 1..)?;
    let (_, op) = ber_length(op)?;
    let (&0x80, name) = op.split_first()? else {
        return None;
    };
    let (len, name) = ber_length(name)?;
    name.get(..len)
}

// ---------------------------------------------------------------------------------------------
// Byte helpers

/// The first line without its terminator, and whether a terminator was seen.
fn first_line(data: &[u8]) -> (&[u8], bool) {
    match data.iter().position(|&b| b == b'\n') {
        Some(nl) => {
            let line = data.get(..nl).unwrap_or_default();
            (line.strip_suffix(b"\r").unwrap_or(line), true)
        }
        None => (data.strip_suffix(b"\r").unwrap_or(data), false),
    }
}

/// `line` is `cmd` alone or `cmd` followed by a space (case-insensitive).
fn line_is_command(line: &[u8], cmd: &[u8]) -> bool {
    strip_prefix_ci(line, cmd).is_some_and(|rest| rest.is_empty() || rest.first() == Some(&b' '))
}

fn strip_prefix_ci<'a>(data: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = data.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| data.get(prefix.len()..).unwrap_or_default())
}

fn starts_with_ci(data: &[u8], prefix: &[u8]) -> bool {
    strip_prefix_ci(data, prefix).is_some()
}

fn contains_ci(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

fn trim_ascii(data: &[u8]) -> &[u8] {
    let start = data.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(data.len());
    let end = data
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    data.get(start..end).unwrap_or_default()
}

fn be_u32_pair(data: &[u8]) -> Option<(u32, u32)> {
    let [a0, a1, a2, a3, b0, b1, b2, b3, ..] = *data else {
        return None;
    };
    Some((
        u32::from_be_bytes([a0, a1, a2, a3]),
        u32::from_be_bytes([b0, b1, b2, b3]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(client: &[u8], server: &[u8], port: u16) -> PlaintextInfo {
        identify(client, server, port)
    }

    fn proto(client: &[u8], server: &[u8], port: u16) -> Protocol {
        identify(client, server, port).protocol
    }

    /// The output must never contain anything from a query string, header value or body.
    fn assert_no_leak(info: &PlaintextInfo, secrets: &[&str]) {
        let json = serde_json::to_string(info).unwrap();
        for secret in secrets {
            assert!(!json.contains(secret), "{secret:?} leaked into {json}");
        }
    }

    fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn huffman_literal(prefix: u8, text: &str) -> Vec<u8> {
        let encoded = huffman::encode(text.as_bytes());
        assert!(encoded.len() < 127);
        let mut out = vec![prefix, 0x80 | encoded.len() as u8];
        out.extend(encoded);
        out
    }

    fn raw_literal(prefix: u8, text: &str) -> Vec<u8> {
        assert!(text.len() < 127);
        let mut out = vec![prefix, text.len() as u8];
        out.extend_from_slice(text.as_bytes());
        out
    }

    fn grpc_request_block() -> Vec<u8> {
        let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
        block.extend(huffman_literal(0x44, "/helloworld.Greeter/SayHello")); // :path
        block.extend(huffman_literal(0x41, "localhost:50051")); // :authority
        block.extend(huffman_literal(0x5f, "application/grpc")); // content-type (31)
        block.extend(raw_literal(0x40, "te"));
        block.extend(huffman_literal(0, "trailers").into_iter().skip(1));
        block.extend(huffman_literal(0x0f, "Bearer secret-token")); // 0x0f 0x08: authorization
        block
    }

    fn h2_client(block: &[u8]) -> Vec<u8> {
        let mut c = H2_PREFACE.to_vec();
        c.extend(h2_frame(H2_FRAME_SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
        c.extend(h2_frame(0x8, 0, 0, &[0, 0xff, 0, 0])); // WINDOW_UPDATE
        c.extend(h2_frame(H2_FRAME_HEADERS, H2_FLAG_END_HEADERS, 1, block));
        c
    }

    #[test]
    fn protocol_names_match_serde() {
        for p in [Protocol::Http2, Protocol::Postgresql, Protocol::Pop3, Protocol::Unknown] {
            assert_eq!(serde_json::to_value(p).unwrap(), p.name());
        }
    }

    #[test]
    fn http1_request_path_without_query() {
        let client = b"GET /api/v1/items?token=secret&x=1#frag HTTP/1.1\r\n\
                       Host: internal.example\r\nAuthorization: Bearer hunter2\r\n\r\n";
        let info = id(client, b"HTTP/1.1 200 OK\r\n", 8080);
        assert_eq!(
            info,
            PlaintextInfo {
                protocol: Protocol::Http,
                method: Some("GET".into()),
                path: Some("/api/v1/items".into()),
                // The Host names the server, as SNI does (issue 9 asks for it); no other header.
                host: Some("internal.example".into()),
            }
        );
        assert_no_leak(&info, &["token", "secret", "frag", "hunter2", "Bearer"]);
    }

    #[test]
    fn http1_absolute_form_drops_authority_and_userinfo() {
        let info = id(
            b"POST http://user:pw@proxy.example:3128/submit?token=secret HTTP/1.1\r\n",
            b"",
            3128,
        );
        assert_eq!(info.method.as_deref(), Some("POST"));
        assert_eq!(info.path.as_deref(), Some("/submit"));
        assert_no_leak(&info, &["user", "pw", "proxy", "token", "secret"]);
        let root = id(b"GET https://example.org?token=secret HTTP/1.1\r\n", b"", 80);
        assert_eq!(root.path.as_deref(), Some("/"));
        assert_no_leak(&root, &["secret", "example"]);
    }

    #[test]
    fn http1_connect_has_no_path() {
        let info = id(b"CONNECT db.internal:5432 HTTP/1.1\r\n\r\n", b"", 3128);
        assert_eq!(info.protocol, Protocol::Http);
        assert_eq!(info.method.as_deref(), Some("CONNECT"));
        assert_eq!(info.path, None);
    }

    #[test]
    fn http1_cut_request_line_and_response_only() {
        let info = id(b"DELETE /users/42?tok", b"", 1234);
        assert_eq!(info.protocol, Protocol::Http);
        assert_eq!(info.path.as_deref(), Some("/users/42"));
        assert_eq!(proto(b"", b"HTTP/1.1 404 Not Found\r\n", 9999), Protocol::Http);
        assert_eq!(proto(b"", b"HTTP/1.0", 9999), Protocol::Http);
        // Not a method from the allow-list, and lowercase methods are not HTTP.
        assert_eq!(proto(b"FROB /x HTTP/1.1\r\n", b"", 80), Protocol::Unknown);
        assert_eq!(proto(b"get /x HTTP/1.1\r\n", b"", 80), Protocol::Unknown);
        assert_eq!(proto(b"GET /x SPDY/3\r\n", b"", 80), Protocol::Unknown);
    }

    #[test]
    fn path_is_printable_and_bounded() {
        let info = id(b"GET /caf\xc3\xa9/a\tb HTTP/1.1\r\n", b"", 80);
        // A tab ends nothing in a request target but is a control byte: not HTTP.
        assert_eq!(info.protocol, Protocol::Unknown);
        let info = id(b"GET /caf\xc3\xa9 HTTP/1.1\r\n", b"", 80);
        assert_eq!(info.path.as_deref(), Some("/caf%C3%A9"));

        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(500));
        let path = id(long.as_bytes(), b"", 80).path.unwrap();
        assert_eq!(path.chars().count(), MAX_PATH_CHARS);
        assert!(path.ends_with('…'));

        let exact = format!("GET /{} HTTP/1.1\r\n", "b".repeat(MAX_PATH_CHARS - 1));
        let path = id(exact.as_bytes(), b"", 80).path.unwrap();
        assert_eq!(path.len(), MAX_PATH_CHARS);
        assert!(!path.contains('…'));

        // Escapes are not split by the cut.
        let escaped = format!("GET /{} HTTP/1.1\r\n", "\u{e9}".repeat(100));
        let path = id(escaped.as_bytes(), b"", 80).path.unwrap();
        assert!(path.chars().count() <= MAX_PATH_CHARS);
        let body = path.trim_end_matches('…');
        assert!(body.ends_with(|c: char| c.is_ascii_hexdigit()), "{path}");
        assert_eq!(body.len() % 3, 1, "{path}");
    }

    #[test]
    fn grpc_from_first_headers_frame() {
        let info = id(&h2_client(&grpc_request_block()), b"", 50051);
        assert_eq!(
            info,
            PlaintextInfo {
                protocol: Protocol::Grpc,
                method: Some("POST".into()),
                path: Some("/helloworld.Greeter/SayHello".into()),
                host: None,
            }
        );
        assert_no_leak(&info, &["localhost", "secret", "Bearer", "trailers"]);
    }

    #[test]
    fn grpc_content_type_with_suffix_as_plain_literal() {
        let mut block = vec![0x83];
        block.extend(raw_literal(0x04, "/pkg.Svc/Call"));
        // Literal without indexing; name index 31 does not fit the 4-bit prefix: 15 + 16.
        block.push(0x0f);
        block.extend(raw_literal(0x10, "application/grpc+proto"));
        let info = id(&h2_client(&block), b"", 443);
        assert_eq!(info.protocol, Protocol::Grpc);
        assert_eq!(info.path.as_deref(), Some("/pkg.Svc/Call"));
    }

    #[test]
    fn http2_request_without_grpc_and_query_dropped() {
        let mut block = vec![0x82, 0x87]; // GET, https
        block.extend(raw_literal(0x04, "/search?token=secret"));
        block.extend(huffman_literal(0x41, "www.example.com"));
        let info = id(&h2_client(&block), b"", 80);
        assert_eq!(info.protocol, Protocol::Http2);
        assert_eq!(info.method.as_deref(), Some("GET"));
        assert_eq!(info.path.as_deref(), Some("/search"));
        assert_no_leak(&info, &["token", "secret", "example"]);
    }

    #[test]
    fn http2_headers_split_over_continuation_with_padding_and_priority() {
        let block = grpc_request_block();
        let (a, b) = block.split_at(7);
        let mut payload = vec![3]; // pad length
        payload.extend([0x80, 0, 0, 0, 16]); // priority: exclusive dep on 0, weight
        payload.extend_from_slice(a);
        payload.extend([0, 0, 0]);
        let mut c = H2_PREFACE.to_vec();
        c.extend(h2_frame(H2_FRAME_SETTINGS, 0, 0, &[]));
        c.extend(h2_frame(
            H2_FRAME_HEADERS,
            H2_FLAG_PADDED | H2_FLAG_PRIORITY,
            3,
            &payload,
        ));
        c.extend(h2_frame(H2_FRAME_CONTINUATION, H2_FLAG_END_HEADERS, 3, b));
        let info = id(&c, b"", 8080);
        assert_eq!(info.protocol, Protocol::Grpc);
        assert_eq!(info.path.as_deref(), Some("/helloworld.Greeter/SayHello"));
    }

    #[test]
    fn http2_without_visible_headers_is_just_http2() {
        let mut c = H2_PREFACE.to_vec();
        assert_eq!(id(&c, b"", 50051), PlaintextInfo::bare(Protocol::Http2));
        c.extend(h2_frame(H2_FRAME_SETTINGS, 0, 0, &[]));
        assert_eq!(proto(&c, b"", 50051), Protocol::Http2);
        assert_eq!(proto(b"PRI * HTTP/2", b"", 1), Protocol::Http2);
        let settings = h2_frame(H2_FRAME_SETTINGS, 0, 0, &[0, 4, 0, 0, 0xff, 0xff]);
        assert_eq!(proto(b"", &settings, 1), Protocol::Http2);
    }

    #[test]
    fn http2_headers_cut_midway_keep_decoded_fields() {
        let client = h2_client(&grpc_request_block());
        let block_start = client.len() - grpc_request_block().len();
        // Cut inside the :authority literal: method and path are known, content-type is not.
        let cut = client.get(..block_start + 30).unwrap();
        let info = id(cut, b"", 50051);
        assert_eq!(info.protocol, Protocol::Http2);
        assert_eq!(info.method.as_deref(), Some("POST"));
        assert_eq!(info.path.as_deref(), Some("/helloworld.Greeter/SayHello"));
    }

    #[test]
    fn hpack_rfc7541_c4_1() {
        let block = [
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        let request = hpack::first_request(&block);
        assert_eq!(request.method, Some("GET"));
        assert_eq!(request.path.as_deref(), Some("/"));
        assert!(!request.grpc);
        assert_eq!(
            huffman::decode(&[0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff]),
            Some(b"www.example.com".to_vec())
        );
    }

    #[test]
    fn hpack_dynamic_table_reference() {
        // :path literal with incremental indexing, then a second :method that refers back to
        // it would be invalid; instead index 62 (newest dynamic entry) repeats the content-type.
        let mut block = vec![0x83];
        block.extend(raw_literal(0x5f, "application/grpc"));
        block.push(0x80 | 62);
        let request = hpack::first_request(&block);
        assert!(request.grpc);
        // Index past the end of both tables stops decoding without panicking.
        assert_eq!(hpack::first_request(&[0xff, 0x7f]), hpack::Request::default());
    }

    #[test]
    fn huffman_rejects_bad_padding_and_eos() {
        assert_eq!(huffman::decode(&[]), Some(vec![]));
        // "a" is 00011 then padding 111: 0x1f. Padding of zeros is invalid.
        assert_eq!(huffman::decode(&[0x1f]), Some(b"a".to_vec()));
        assert_eq!(huffman::decode(&[0x18]), None);
        // More than 7 bits of padding (a whole 0xff byte).
        assert_eq!(huffman::decode(&[0x1f, 0xff]), None);
        // EOS (30 ones) inside the data.
        assert_eq!(huffman::decode(&[0xff, 0xff, 0xff, 0xfc]), None);
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(huffman::decode(&huffman::encode(&all)), Some(all));
    }

    #[test]
    fn hpack_integers() {
        // RFC 7541 C.1.2: 1337 with a 5-bit prefix.
        assert_eq!(hpack::integer(&[0x1f, 0x9a, 0x0a], 0, 5), Some((1337, 3)));
        assert_eq!(hpack::integer(&[0x0a], 0, 5), Some((10, 1)));
        assert_eq!(hpack::integer(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0x01], 0, 5), None);
        assert_eq!(hpack::integer(&[0x1f, 0x9a], 0, 5), None);
    }

    #[test]
    fn postgresql() {
        let mut startup = vec![0, 0, 0, 0x29, 0, 3, 0, 0];
        startup.extend_from_slice(b"user\0postgres\0database\0app\0\0");
        assert_eq!(proto(&startup, b"", 1), Protocol::Postgresql);
        assert_eq!(proto(&PG_SSL_REQUEST, b"N", 1), Protocol::Postgresql);
        assert_eq!(proto(&PG_GSSENC_REQUEST, b"", 1), Protocol::Postgresql);
        assert_eq!(proto(&startup[..8], b"", 1), Protocol::Postgresql);
        let auth_sasl = b"R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0";
        assert_eq!(proto(b"", auth_sasl, 5432), Protocol::Postgresql);
        assert_no_leak(&id(&startup, b"", 5432), &["postgres\"", "app"]);
    }

    #[test]
    fn mysql() {
        let mut greeting = vec![0x4a, 0, 0, 0, 10];
        greeting.extend_from_slice(b"8.0.36\0");
        greeting.extend_from_slice(&[0x0d, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0xff, 0xf7]);
        greeting.resize(0x4a + 4, 0);
        assert_eq!(proto(b"", &greeting, 1), Protocol::Mysql);
        assert_eq!(proto(b"", &greeting[..7], 1), Protocol::Mysql);
        let refused = b"\x45\0\0\0\xff\x6a\x04Host '10.0.0.1' is not allowed";
        assert_eq!(proto(b"", refused, 3306), Protocol::Mysql);
    }

    #[test]
    fn redis() {
        assert_eq!(
            proto(b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n", b"$-1\r\n", 1),
            Protocol::Redis
        );
        assert_eq!(proto(b"PING\r\n", b"+PONG\r\n", 1), Protocol::Redis);
        assert_eq!(proto(b"ping\r\n", b"", 6379), Protocol::Redis);
        assert_eq!(proto(b"", b"-NOAUTH Authentication required.\r\n", 1), Protocol::Redis);
        assert_eq!(proto(b"", b"+OK\r\n", 6379), Protocol::Redis);
        let info = id(b"*3\r\n$3\r\nSET\r\n$5\r\ntoken\r\n$6\r\nsecret\r\n", b"+OK\r\n", 6379);
        assert_no_leak(&info, &["token", "secret"]);
    }

    #[test]
    fn dns_over_tcp() {
        let mut query = vec![0, 0x1d, 0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        query.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
        assert_eq!(query.len(), 0x1d + 2);
        assert_eq!(proto(&query, b"", 1), Protocol::Dns);
        // Header fits but the name is cut: weak, so the port decides only among candidates.
        assert_eq!(proto(&query[..18], b"", 53), Protocol::Dns);
        let mut response = query.clone();
        response[4] = 0x81;
        response[5] = 0x80;
        assert_eq!(proto(b"", &response, 53), Protocol::Dns);
        // Counts that make no sense for a query.
        let mut bad = query.clone();
        bad[7] = 9;
        assert_eq!(proto(&bad, b"", 53), Protocol::Unknown);
    }

    #[test]
    fn smtp_and_ftp_banners() {
        let ehlo = b"EHLO client.example\r\n";
        assert_eq!(proto(ehlo, b"220 mx.example ESMTP Postfix\r\n", 25), Protocol::Smtp);
        assert_eq!(proto(ehlo, b"220 hello\r\n", 2525), Protocol::Smtp);
        assert_eq!(proto(b"", b"220-mx.example ESMTP\r\n", 1), Protocol::Smtp);
        assert_eq!(proto(b"", b"220 (vsFTPd 3.0.5)\r\n", 1), Protocol::Ftp);
        assert_eq!(proto(b"AUTH TLS\r\n", b"220 Welcome\r\n", 2121), Protocol::Ftp);
        assert_eq!(proto(b"USER anonymous\r\n", b"220 Welcome\r\n", 1), Protocol::Ftp);
        // A bare "220 " banner: the port breaks the tie.
        assert_eq!(proto(b"", b"220 Welcome\r\n", 25), Protocol::Smtp);
        assert_eq!(proto(b"", b"220 Welcome\r\n", 587), Protocol::Smtp);
        assert_eq!(proto(b"", b"220 Welcome\r\n", 21), Protocol::Ftp);
    }

    #[test]
    fn imap_pop3() {
        let banner = b"* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.\r\n";
        assert_eq!(proto(b"", banner, 1), Protocol::Imap);
        assert_eq!(proto(b"a001 CAPABILITY\r\n", b"", 1), Protocol::Imap);
        let login = id(b"A1 LOGIN alice s3cret\r\n", b"", 143);
        assert_eq!(login.protocol, Protocol::Imap);
        assert_no_leak(&login, &["alice", "s3cret"]);
        assert_eq!(proto(b"", b"+OK Dovecot ready.\r\n", 1), Protocol::Pop3);
        assert_eq!(proto(b"CAPA\r\n", b"", 1), Protocol::Pop3);
        assert_eq!(proto(b"USER alice\r\n", b"", 110), Protocol::Pop3);
        assert_eq!(proto(b"USER alice\r\n", b"", 21), Protocol::Ftp);
    }

    #[test]
    fn ldap() {
        // Anonymous simple bind, message 1.
        let bind = [
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00,
        ];
        assert_eq!(proto(&bind, b"", 1), Protocol::Ldap);
        let bind_ok = [
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
        ];
        assert_eq!(proto(b"", &bind_ok, 1), Protocol::Ldap);
        // A SEQUENCE that is not an LDAPMessage.
        assert_eq!(proto(&[0x30, 0x03, 0x01, 0x01, 0xff], b"", 389), Protocol::Unknown);
    }

    #[test]
    fn xmpp_irc_ssh() {
        let stream = b"<?xml version='1.0'?><stream:stream to='example.com' \
                       xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
        assert_eq!(proto(stream, b"", 1), Protocol::Xmpp);
        assert_eq!(proto(b"<?xml version='1.0'?>", b"", 5222), Protocol::Xmpp);
        assert_eq!(proto(b"NICK alice\r\nUSER alice 0 * :Alice\r\n", b"", 1), Protocol::Irc);
        assert_eq!(proto(b"CAP LS 302\r\n", b"", 1), Protocol::Irc);
        let notice = b":irc.example.net NOTICE * :*** Looking up your hostname...\r\n";
        assert_eq!(proto(b"", notice, 1), Protocol::Irc);
        assert_eq!(proto(b"USER alice 0 * :Alice\r\n", b"", 21), Protocol::Irc);
        assert_eq!(proto(b"SSH-2.0-OpenSSH_9.6\r\n", b"", 2222), Protocol::Ssh);
        assert_eq!(proto(b"", b"SSH-2.0-dropbear\r\n", 1), Protocol::Ssh);
    }

    #[test]
    fn unknown_and_port_alone() {
        assert_eq!(id(b"", b"", 80), PlaintextInfo::bare(Protocol::Unknown));
        assert_eq!(proto(b"\x00\x01\x02garbage", b"\xff\xfe", 5432), Protocol::Unknown);
        // The port never names a protocol by itself.
        assert_eq!(proto(b"hi there\r\n", b"", 25), Protocol::Unknown);
    }

    #[test]
    fn every_prefix_and_corruption_is_panic_free() {
        let samples: Vec<Vec<u8>> = vec![
            h2_client(&grpc_request_block()),
            b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            PG_SSL_REQUEST.to_vec(),
            vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x04, 1, 2, 3, 4, 0x77],
            vec![0, 0x1d, 0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f],
            b"a1 STARTTLS\r\n".to_vec(),
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for sample in &samples {
            for cut in 0..=sample.len() {
                let head = sample.get(..cut).unwrap();
                let _ = identify(head, head, 53);
                let _ = upgrade_request(head);
            }
            for _ in 0..2000 {
                let mut bad = sample.clone();
                for _ in 0..3 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let i = (seed as usize) % bad.len();
                    bad[i] = (seed >> 32) as u8;
                }
                let _ = identify(&bad, &bad, 0);
                let _ = upgrade_request(&bad);
            }
        }
    }

    #[test]
    fn upgrade_requests() {
        assert_eq!(upgrade_request(b"STARTTLS\r\n"), Some(Protocol::Smtp));
        assert_eq!(upgrade_request(b"starttls\r\n"), Some(Protocol::Smtp));
        assert_eq!(upgrade_request(b"a2 StartTLS\r\n"), Some(Protocol::Imap));
        assert_eq!(upgrade_request(b"STLS\r\n"), Some(Protocol::Pop3));
        assert_eq!(upgrade_request(b"AUTH TLS\r\n"), Some(Protocol::Ftp));
        assert_eq!(upgrade_request(b"auth ssl\r\n"), Some(Protocol::Ftp));
        assert_eq!(upgrade_request(&PG_SSL_REQUEST), Some(Protocol::Postgresql));
        assert_eq!(
            upgrade_request(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
            Some(Protocol::Xmpp)
        );
        let mut ldap = vec![0x30, 0x1d, 0x02, 0x01, 0x01, 0x77, 0x18, 0x80, 0x16];
        ldap.extend_from_slice(LDAP_START_TLS_OID);
        assert_eq!(upgrade_request(&ldap), Some(Protocol::Ldap));
        let mut mysql = vec![32, 0, 0, 1];
        let caps: u32 = 0x0200 | 0x0800 | 0x8000 | 0x0008_0000;
        mysql.extend_from_slice(&caps.to_le_bytes());
        mysql.extend_from_slice(&[0, 0, 0, 1, 0x21]);
        mysql.resize(36, 0);
        assert_eq!(upgrade_request(&mysql), Some(Protocol::Mysql));

        // Near misses.
        assert_eq!(upgrade_request(b"EHLO x\r\n"), None);
        assert_eq!(upgrade_request(b"STARTTLSX\r\n"), None);
        assert_eq!(upgrade_request(b"AUTH PLAIN AGFsaWNl\r\n"), None);
        assert_eq!(upgrade_request(b"a2 STARTTLS extra\r\n"), None);
        assert_eq!(upgrade_request(&PG_GSSENC_REQUEST), None);
        let mut other_ext = ldap.clone();
        *other_ext.last_mut().unwrap() = b'8';
        assert_eq!(upgrade_request(&other_ext), None);
        let mut no_ssl = mysql.clone();
        no_ssl[5] &= !0x08;
        assert_eq!(upgrade_request(&no_ssl), None);
        assert_eq!(upgrade_request(b""), None);
    }
}

#[cfg(test)]
mod host_tests {
    use super::*;

    #[test]
    fn host_is_a_plain_name_or_nothing() {
        let info = identify(
            b"GET /a?b=c HTTP/1.1\r\nUser-Agent: x\r\nHOST: Reviews.bookinfo:9080\r\n\r\n",
            b"",
            9080,
        );
        assert_eq!(info.host.as_deref(), Some("Reviews.bookinfo:9080"));
        let info = identify(b"GET / HTTP/1.1\r\nHost: evil\x01name\r\n\r\n", b"", 80);
        assert_eq!(info.host, None);
        let info = identify(b"GET / HTTP/1.1\r\nX: y\r\n\r\nHost: body\r\n", b"", 80);
        assert_eq!(info.host, None, "only the request head is read");
        let info = identify(b"GET / HTTP/1.1\r\nHost: [fd00::1]:8080\r\n\r\n", b"", 80);
        assert_eq!(info.host.as_deref(), Some("[fd00::1]:8080"));
    }
}
