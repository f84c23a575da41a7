//! Naming a plaintext protocol from the first bytes of each direction. Layout: 2 bytes server
//! port, 2 bytes length of the client part, client bytes, server bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtlscope::pipeline::inspect::plaintext::{identify, upgrade_request};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let port = u16::from_be_bytes([data[0], data[1]]);
    let split = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let rest = &data[4..];
    let (client, server) = rest.split_at(split.min(rest.len()));
    let info = identify(client, server, port);
    let _ = info.protocol.name();
    let _ = serde_json::to_string(&info).unwrap();
    let _ = upgrade_request(client);
    let _ = upgrade_request(server);
});
