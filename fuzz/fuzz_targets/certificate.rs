//! One DER certificate as carried in a TLS Certificate message.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match mtlscope::pipeline::inspect::certs::parse_certificate(data) {
        Ok(info) => {
            let _ = info.identity();
            let _ = serde_json::to_string(&info).unwrap();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
