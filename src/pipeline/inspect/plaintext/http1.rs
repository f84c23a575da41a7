//! HTTP/1.x: the request line (method from an allow-list, request target), the status line of
//! a response, and the `Host` header. The request target is reduced by [`sanitize_path`] to a
//! path that is safe to show; HTTP/2 uses the same allow-list and sanitiser for its pseudo-headers.

use std::fmt::Write as _;

use super::bytes::{first_line, starts_with_ci, strip_prefix_ci};
use super::types::{Evidence, Found, PlaintextInfo, Protocol};

/// The longest path reported, in characters, the "…" that marks a cut included.
pub(super) const MAX_PATH_CHARS: usize = 200;

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
pub(super) fn allowed_method(token: &[u8]) -> Option<&'static str> {
    HTTP_METHODS.iter().copied().find(|m| m.as_bytes() == token)
}

/// The client's first bytes as an HTTP/1.x request: method, sanitised path and `Host`.
pub(super) fn request_info(client: &[u8]) -> Option<PlaintextInfo> {
    let request = request(client)?;
    Some(PlaintextInfo {
        protocol: Protocol::Http,
        method: Some(request.method.to_string()),
        path: request.target.and_then(sanitize_path),
        host: host(client),
    })
}

struct Request<'a> {
    method: &'static str,
    /// None for CONNECT's authority-form, which names a host, not a path.
    target: Option<&'a [u8]>,
}

/// `METHOD SP request-target SP HTTP/1.x CRLF`, possibly cut anywhere after the first byte of
/// the target. HTTP methods are case-sensitive, which also keeps Redis's inline `get key` out.
fn request(client: &[u8]) -> Option<Request<'_>> {
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
        return Some(Request {
            method,
            target: Some(target),
        });
    }
    let authority_like = target
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
    (method == "CONNECT" && authority_like).then_some(Request { method, target: None })
}

/// The `Host` header of an HTTP/1.x request head, if it is a plain host name (or address) with
/// an optional port. No other header value is read.
fn host(client: &[u8]) -> Option<String> {
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

/// Detector: a server that answers with an HTTP/1.x status line.
pub(super) fn response(_client: &[u8], server: &[u8], found: &mut Found) {
    let status_line = server.len() >= 8
        && server.starts_with(b"HTTP/1.")
        && server.get(7).is_some_and(u8::is_ascii_digit)
        && server.get(8).is_none_or(|&b| b == b' ');
    if status_line {
        found.push((Protocol::Http, Evidence::Strong));
    }
}

/// Reduces a request target to a path that is safe to show: scheme, authority (and any
/// userinfo in it), path parameters (`;...` in a segment), query and fragment are dropped;
/// bytes outside printable ASCII are percent-encoded; the result is at most `MAX_PATH_CHARS`
/// characters.
pub(super) fn sanitize_path(target: &[u8]) -> Option<String> {
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
    // Path parameters (`/a;jsessionid=SECRET/b`) carry session ids as often as queries do:
    // each segment keeps only what comes before its `;`.
    let mut in_param = false;
    let path: Vec<u8> = path
        .get(..end)
        .unwrap_or_default()
        .iter()
        .copied()
        .filter(|&b| {
            match b {
                b';' => in_param = true,
                b'/' => in_param = false,
                _ => {}
            }
            !in_param
        })
        .collect();
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
    for &b in &path {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_no_leak, id, proto};
    use super::*;
    use crate::pipeline::inspect::plaintext::identify;

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

    /// Regression (issue 15): `;jsessionid=` in a segment reached every output and JUnit.
    #[test]
    fn http1_path_parameters_are_dropped_like_queries() {
        let info = id(b"GET /a;jsessionid=SECRET/b;v=1;x=2/c?q=1 HTTP/1.1\r\n", b"", 8080);
        assert_eq!(info.path.as_deref(), Some("/a/b/c"));
        assert_no_leak(&info, &["jsessionid", "SECRET", "v=1", "x=2"]);
        assert_eq!(sanitize_path(b";x").as_deref(), None);
        assert_eq!(sanitize_path(b"/;secret").as_deref(), Some("/"));
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
