//! Service-mesh recognition from SNI, ALPN, port and version. Layout: 2 bytes server port,
//! 1 byte flags (bit 0: TLS 1.3, bit 1: no SNI), then NUL-separated strings: the SNI first,
//! the offered ALPN values after it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtlscope::pipeline::inspect::mesh::{detect, parse_istio_sni};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let port = u16::from_be_bytes([data[0], data[1]]);
    let flags = data[2];
    let text = String::from_utf8_lossy(&data[3..]);
    let mut parts = text.split('\0');
    let sni = parts.next().unwrap_or_default();
    let alpn: Vec<String> = parts.map(str::to_string).collect();
    let _ = parse_istio_sni(&text);
    let _ = parse_istio_sni(sni);
    let sni = (flags & 2 == 0).then_some(sni);
    if let Some(signal) = detect(sni, &alpn, port, flags & 1 != 0) {
        let _ = serde_json::to_string(&signal).unwrap();
    }
});
