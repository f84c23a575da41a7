//! TLS record and handshake parsing of both directions of one connection, through the
//! classifier alone and through the inspector and the verdict, as the analyzer does it.
//!
//! Layout: 1 header byte (bit 0: the inspector starts mid-stream; bits 1-2: the classifier
//! starts mid-stream in direction 0 / 1; bits 3-4: server port 443 / 8443 / 15008 / 4143;
//! bit 5: the verdict keeps plaintext payload bytes, `--show-payload`), then chunks of 1 control
//! byte + 2 bytes little-endian length: control bit 0 is the direction (0 = client), bit 7 makes
//! the chunk a gap of that length, else that many data bytes follow (fewer at the end of the
//! input).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtlscope::pipeline::inspect::coverage::Coverage;
use mtlscope::pipeline::inspect::Inspector;
use mtlscope::pipeline::inspect::tls::Classifier;
use mtlscope::pipeline::side::Side;
use mtlscope::pipeline::verdict;

const PORTS: [u16; 4] = [443, 8443, 15008, 4143];

enum Chunk<'a> {
    Data(Side, &'a [u8]),
    Gap(Side, u64),
}

fn chunks(mut data: &[u8]) -> Vec<Chunk<'_>> {
    let mut out = Vec::new();
    while data.len() >= 3 {
        let (c, len) = (data[0], usize::from(u16::from_le_bytes([data[1], data[2]])));
        data = &data[3..];
        let dir = Side::BOTH[usize::from(c & 1)];
        if c & 0x80 != 0 {
            out.push(Chunk::Gap(dir, len as u64));
        } else {
            let (now, rest) = data.split_at(len.min(data.len()));
            out.push(Chunk::Data(dir, now));
            data = rest;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, body)) = data.split_first() else {
        return;
    };
    let port = PORTS[usize::from(head >> 3) & 3];
    let chunks = chunks(body);

    let mut c = Classifier::new();
    for dir in Side::BOTH {
        if head & (2 << dir.index()) != 0 {
            c.start_midstream(dir);
        }
    }
    let mut inspector = Inspector::new(Side::Lo, head & 1 != 0, port);
    for chunk in &chunks {
        match *chunk {
            Chunk::Data(dir, bytes) => {
                c.data(dir, bytes);
                inspector.data(dir, bytes);
            }
            Chunk::Gap(dir, len) => {
                c.gap(dir, len);
                inspector.gap(dir, len);
            }
        }
        let _ = inspector.is_final();
    }
    let facts = &c.facts;
    let _ = (facts.is_tls13(), facts.server_dir(), c.in_sync(Side::Lo), c.dead(Side::Hi));
    let _ = verdict::resumption(facts);
    let _ = verdict::session_keys(facts);

    let outcome = inspector.outcome();
    let v = verdict::decide(outcome, &Coverage::complete(Side::Lo), port, None, head & 0x20 != 0);
    let _ = serde_json::to_string(&v).unwrap();
});
