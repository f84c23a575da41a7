//! Packets built for the flow-table and verdict tests (tests/engine.rs, tests/handshake_rules.rs):
//! one TCP connection between a client `C` and a server `S`, its frames in order with sequence
//! numbers that follow the bytes sent, and the payloads of a real capture to replay through it.
#![allow(dead_code)] // each test file uses its own part

use etherparse::PacketBuilder;
use mtlscope::pipeline::engine::{Config, Engine};
use mtlscope::pipeline::record::{Collect, FlowReport};
use mtlscope::pipeline::source::{CaptureReader, LinkType};

pub const C: [u8; 4] = [10, 1, 0, 1];
pub const S: [u8; 4] = [10, 1, 0, 2];

/// An Ethernet/IPv4/TCP frame. `from`/`to`: address and port; `flags`: any of `S`, `F`, `R`.
pub fn frame(
    from: ([u8; 4], u16),
    to: ([u8; 4], u16),
    seq: u32,
    ack: Option<u32>,
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let ((src, sp), (dst, dp)) = (from, to);
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(src, dst, 64);
    let mut t = b.tcp(sp, dp, seq, 65535);
    if flags.contains('S') {
        t = t.syn();
    }
    if flags.contains('F') {
        t = t.fin();
    }
    if flags.contains('R') {
        t = t.rst();
    }
    if let Some(a) = ack {
        t = t.ack(a);
    }
    let mut out = Vec::new();
    t.write(&mut out, payload).unwrap();
    out
}

/// One connection's state: ports and the next sequence number of each side.
pub struct Conn {
    pub cport: u16,
    pub sport: u16,
    pub cseq: u32,
    pub sseq: u32,
}

impl Conn {
    pub fn new(cport: u16, sport: u16, cseq: u32, sseq: u32) -> Self {
        Conn {
            cport,
            sport,
            cseq,
            sseq,
        }
    }
    pub fn syn(&self) -> Vec<u8> {
        frame((C, self.cport), (S, self.sport), self.cseq, None, "S", &[])
    }
    pub fn synack(&self) -> Vec<u8> {
        frame(
            (S, self.sport),
            (C, self.cport),
            self.sseq,
            Some(self.cseq + 1),
            "S",
            &[],
        )
    }
    pub fn client(&mut self, data: &[u8]) -> Vec<u8> {
        let f = frame(
            (C, self.cport),
            (S, self.sport),
            self.cseq + 1,
            Some(self.sseq + 1),
            "",
            data,
        );
        self.cseq += data.len() as u32;
        f
    }
    pub fn server(&mut self, data: &[u8]) -> Vec<u8> {
        let f = frame(
            (S, self.sport),
            (C, self.cport),
            self.sseq + 1,
            Some(self.cseq + 1),
            "",
            data,
        );
        self.sseq += data.len() as u32;
        f
    }
    pub fn fins(&self) -> Vec<Vec<u8>> {
        vec![
            frame(
                (C, self.cport),
                (S, self.sport),
                self.cseq + 1,
                Some(self.sseq + 1),
                "F",
                &[],
            ),
            frame(
                (S, self.sport),
                (C, self.cport),
                self.sseq + 1,
                Some(self.cseq + 2),
                "F",
                &[],
            ),
        ]
    }
    /// The frame that carries `p` in its direction.
    pub fn send(&mut self, p: &Payload) -> Vec<u8> {
        if p.from_client {
            self.client(&p.bytes)
        } else {
            self.server(&p.bytes)
        }
    }
}

/// Every frame through one engine, a microsecond apart; the connections it reports, sorted.
pub fn run(frames: &[Vec<u8>]) -> Vec<FlowReport> {
    run_with(Config::default(), frames)
}

/// [`run`] with an engine configured as given.
pub fn run_with(cfg: Config, frames: &[Vec<u8>]) -> Vec<FlowReport> {
    let mut e = Engine::new(cfg, Collect::default());
    for (i, f) in frames.iter().enumerate() {
        let _ = e.packet(1_700_000_000_000_000_000 + i as u64 * 1000, LinkType::ETHERNET, f);
    }
    e.finish();
    e.out.sorted()
}

/// One TCP payload of a capture, and who sent it.
pub struct Payload {
    pub from_client: bool,
    pub bytes: Vec<u8>,
}

/// The TCP payloads of a capture in this repository's captures/, in order; the client is the
/// side that sends to `server_port`.
pub fn payloads(capture: &str, server_port: u16) -> Vec<Payload> {
    let path = format!("{}/captures/{capture}", env!("CARGO_MANIFEST_DIR"));
    let mut r = CaptureReader::open(&path).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        let seg = mtlscope::pipeline::decode::decode(p.link, p.data).unwrap();
        if !seg.payload.is_empty() {
            out.push(Payload {
                from_client: seg.dport == server_port,
                bytes: seg.payload.to_vec(),
            });
        }
    }
    out
}
