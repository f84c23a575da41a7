//! Test-only helpers shared by the detectors' tests: shorthands for [`identify`], the leak
//! check that backs the module's privacy rule, and builders for HTTP/2 frames and HPACK fields.
//! Compiled only under `cfg(test)` (see `mod.rs`).

use super::http2::{H2_FLAG_END_HEADERS, H2_FRAME_HEADERS, H2_FRAME_SETTINGS, H2_PREFACE};
use super::{huffman, identify, PlaintextInfo, Protocol};

pub(super) fn id(client: &[u8], server: &[u8], port: u16) -> PlaintextInfo {
    identify(client, server, port)
}

pub(super) fn proto(client: &[u8], server: &[u8], port: u16) -> Protocol {
    identify(client, server, port).protocol
}

/// The output must never contain anything from a query string, header value or body.
pub(super) fn assert_no_leak(info: &PlaintextInfo, secrets: &[&str]) {
    let json = serde_json::to_string(info).unwrap();
    for secret in secrets {
        assert!(!json.contains(secret), "{secret:?} leaked into {json}");
    }
}

pub(super) fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub(super) fn huffman_literal(prefix: u8, text: &str) -> Vec<u8> {
    let encoded = huffman::encode(text.as_bytes());
    assert!(encoded.len() < 127);
    let mut out = vec![prefix, 0x80 | encoded.len() as u8];
    out.extend(encoded);
    out
}

pub(super) fn raw_literal(prefix: u8, text: &str) -> Vec<u8> {
    assert!(text.len() < 127);
    let mut out = vec![prefix, text.len() as u8];
    out.extend_from_slice(text.as_bytes());
    out
}

pub(super) fn grpc_request_block() -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    block.extend(huffman_literal(0x44, "/helloworld.Greeter/SayHello")); // :path
    block.extend(huffman_literal(0x41, "localhost:50051")); // :authority
    block.extend(huffman_literal(0x5f, "application/grpc")); // content-type (31)
    block.extend(raw_literal(0x40, "te"));
    block.extend(huffman_literal(0, "trailers").into_iter().skip(1));
    block.extend(huffman_literal(0x0f, "Bearer secret-token")); // 0x0f 0x08: authorization
    block
}

pub(super) fn h2_client(block: &[u8]) -> Vec<u8> {
    let mut c = H2_PREFACE.to_vec();
    c.extend(h2_frame(H2_FRAME_SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
    c.extend(h2_frame(0x8, 0, 0, &[0, 0xff, 0, 0])); // WINDOW_UPDATE
    c.extend(h2_frame(H2_FRAME_HEADERS, H2_FLAG_END_HEADERS, 1, block));
    c
}
