//! HTTP/2 with prior knowledge (RFC 9113 section 3.3), and gRPC over it: the client preface,
//! the first HEADERS frame (with its CONTINUATION frames) and, from its HPACK block, the
//! `:method`, `:path` and `content-type` of the first request. A server that speaks first with
//! SETTINGS also names HTTP/2 when the client's preface was not captured.

use super::bytes::starts_with_ci;
use super::hpack;
use super::http1::{allowed_method, sanitize_path};
use super::types::{PlaintextInfo, Protocol};

pub(super) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub(super) const H2_FRAME_HEADERS: u8 = 0x1;
pub(super) const H2_FRAME_SETTINGS: u8 = 0x4;
pub(super) const H2_FRAME_CONTINUATION: u8 = 0x9;
pub(super) const H2_FLAG_END_HEADERS: u8 = 0x4;
pub(super) const H2_FLAG_PADDED: u8 = 0x8;
pub(super) const H2_FLAG_PRIORITY: u8 = 0x20;

/// The connection as HTTP/2 or gRPC, or None when neither side's bytes are HTTP/2.
pub(super) fn identify(client: &[u8], server: &[u8]) -> Option<PlaintextInfo> {
    // "PRI * HTTP/2" is long enough that nothing else starts that way.
    let cut_preface = client.len() >= 12 && H2_PREFACE.starts_with(client);
    if let Some(frames) = client.strip_prefix(H2_PREFACE) {
        let Some(block) = first_header_block(frames) else {
            return Some(PlaintextInfo::bare(Protocol::Http2));
        };
        let request = first_request(&block);
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

/// What is kept of the first request: nothing but these three facts leaves the header block.
#[derive(Debug, Default, PartialEq, Eq)]
struct Request {
    method: Option<&'static str>,
    path: Option<String>,
    grpc: bool,
}

/// Reads the fields HPACK decodes, up to the first one that cannot be decoded (cut or
/// malformed); fields before it are still used.
fn first_request(block: &[u8]) -> Request {
    let mut request = Request::default();
    for (name, value) in hpack::Fields::new(block) {
        match name.as_slice() {
            b":method" if request.method.is_none() => request.method = allowed_method(&value),
            b":path" if request.path.is_none() => request.path = sanitize_path(&value),
            b"content-type" => request.grpc |= starts_with_ci(&value, b"application/grpc"),
            _ => {}
        }
    }
    request
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{
        assert_no_leak, grpc_request_block, h2_client, h2_frame, huffman_literal, id, proto, raw_literal,
    };
    use super::*;

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
    fn first_request_of_rfc7541_c4_1() {
        let block = [
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        let request = first_request(&block);
        assert_eq!(request.method, Some("GET"));
        assert_eq!(request.path.as_deref(), Some("/"));
        assert!(!request.grpc);
    }

    #[test]
    fn content_type_from_the_dynamic_table_names_grpc() {
        // content-type literal with incremental indexing, then index 62 (the newest dynamic
        // entry) repeats it.
        let mut block = vec![0x83];
        block.extend(raw_literal(0x5f, "application/grpc"));
        block.push(0x80 | 62);
        assert!(first_request(&block).grpc);
        // Index past the end of both tables stops decoding without panicking.
        assert_eq!(first_request(&[0xff, 0x7f]), Request::default());
    }
}
