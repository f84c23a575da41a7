//! Link, IP and TCP header decoding of one frame. The first byte picks the link type.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtlscope::pipeline::decode::decode;
use mtlscope::pipeline::source::LinkType;

const LINKS: [LinkType; 8] = [
    LinkType::ETHERNET,
    LinkType::NULL,
    LinkType::LOOP,
    LinkType::RAW,
    LinkType::LINUX_SLL,
    LinkType::LINUX_SLL2,
    LinkType::IPV4,
    LinkType::IPV6,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    if let Ok(seg) = decode(LINKS[usize::from(pick) % LINKS.len()], frame) {
        assert!(seg.payload.len() as u64 <= u64::from(seg.wire_len));
        // The payload is borrowed from the frame.
        let (lo, hi) = (frame.as_ptr() as usize, frame.as_ptr() as usize + frame.len());
        let p = seg.payload.as_ptr() as usize;
        assert!(seg.payload.is_empty() || (p >= lo && p + seg.payload.len() <= hi));
    }
});
