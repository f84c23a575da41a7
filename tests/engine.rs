//! Flow-table and verdict behaviour on packets built here, for situations the captures don't
//! show: 5-tuple reuse, retransmitted SYNs, roles without a SYN, conflicting overlaps, gaps.

use mtlscope::pipeline::flows::RolesFrom;
use mtlscope::pipeline::verdict::{Confidence, Kind};

#[path = "support/frames.rs"]
mod frames;
use frames::{frame, run, run_with, Conn, Payload, C, S};
use mtlscope::pipeline::engine::{Config, Engine};
use mtlscope::pipeline::record::Collect;
use mtlscope::pipeline::source::LinkType;

/// The first handshake record of a real TLS 1.2 mTLS capture in each direction, and more.
fn tls12_payloads() -> Vec<Payload> {
    frames::payloads("openssl-tls12-mtls-rsa.pcap", 4402)
}

#[test]
fn reused_five_tuple_after_fin_is_a_new_connection() {
    let mut frames = Vec::new();
    for round in 0..2u32 {
        let mut c = Conn::new(40000, 80, 1000 + round * 7777, 5000);
        frames.push(c.syn());
        frames.push(c.synack());
        frames.push(c.client(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
        frames.push(c.server(b"HTTP/1.1 200 OK\r\n\r\n"));
        frames.extend(c.fins());
    }
    let flows = run(&frames);
    assert_eq!(flows.len(), 2, "{flows:#?}");
    assert!(flows.iter().all(|f| f.verdict.verdict == Kind::Plaintext));
}

/// Only the server's side captured (a one-way tap): a reused 5-tuple shows as a SYN-ACK with a
/// new sequence number after the old connection's FIN, and is a new connection. The bench
/// capture cut to server -> client lost 102 of 4,000 connections this way.
#[test]
fn reused_five_tuple_seen_only_from_the_server_is_a_new_connection() {
    let mut frames = Vec::new();
    for round in 0..2u32 {
        let mut c = Conn::new(40000, 80, 1000 + round * 7777, 5000 + round * 3333);
        frames.push(c.synack());
        frames.push(c.server(b"HTTP/1.1 200 OK\r\n\r\n"));
        frames.push(c.fins().remove(1));
    }
    // The SYN-ACK sent again (the same number) is the same connection.
    let mut again = frames.clone();
    again.insert(1, again[0].clone());
    for frames in [frames, again] {
        let flows = run(&frames);
        assert_eq!(flows.len(), 2, "{flows:#?}");
        assert!(
            flows.iter().all(|f| f.client.port == 40000 && f.server.port == 80),
            "{flows:#?}"
        );
    }
}

#[test]
fn retransmitted_syn_is_the_same_connection() {
    let mut c = Conn::new(40001, 80, 1, 9);
    let frames = vec![c.syn(), c.syn(), c.synack(), c.client(b"GET / HTTP/1.1\r\n\r\n")];
    let flows = run(&frames);
    assert_eq!(flows.len(), 1);
}

#[test]
fn client_from_client_hello_when_no_syn() {
    // Capture started after the SYN; the ports alone would call 40443 the server (both are
    // ephemeral, and 40443 sent first), but the ClientHello says who the client is.
    let mut frames = Vec::new();
    let mut c = Conn::new(50000, 40443, 100, 200);
    let payloads = tls12_payloads();
    frames.push(c.server(b"")); // a bare ACK from the server side first
    for p in &payloads {
        frames.push(c.send(p));
    }
    let flows = run(&frames);
    assert_eq!(flows.len(), 1);
    let f = &flows[0];
    assert_eq!(f.roles_from, RolesFrom::Tls);
    assert_eq!(f.client.port, 50000);
    assert_eq!(f.verdict.verdict, Kind::Mtls);
}

#[test]
fn handshake_one_byte_per_segment() {
    let mut c = Conn::new(40002, 4433, 7, 70);
    let mut frames = vec![c.syn(), c.synack()];
    for p in tls12_payloads() {
        for b in p.bytes.chunks(1) {
            frames.push(if p.from_client { c.client(b) } else { c.server(b) });
        }
    }
    let flows = run(&frames);
    assert_eq!(flows[0].verdict.verdict, Kind::Mtls);
    assert_eq!(flows[0].verdict.confidence, Confidence::Certain);
}

#[test]
fn conflicting_overlap_is_counted() {
    let mut c = Conn::new(40003, 80, 1, 1);
    let mut frames = vec![c.syn(), c.synack()];
    // Out of order: bytes 10.. first, then a conflicting copy of them, then the start.
    let late = frame((C, 40003), (S, 80), 2 + 10, Some(2), "", b"0123456789");
    let evil = frame((C, 40003), (S, 80), 2 + 10, Some(2), "", b"XXXXXXXXXX");
    frames.push(late);
    frames.push(evil);
    frames.push(c.client(b"GET /x HTT")); // exactly fills the 10-byte hole
    let flows = run(&frames);
    assert_eq!(flows[0].tcp.client.conflicts, 1);
}

#[test]
fn gap_in_tls12_handshake_is_uncertain() {
    let mut c = Conn::new(40004, 4433, 7, 70);
    let mut frames = vec![c.syn(), c.synack()];
    for (i, p) in tls12_payloads().iter().enumerate() {
        let f = c.send(p);
        // Drop the start of the client's Certificate from the capture, but let the server's
        // ACK show the receiver got it. (Without the ServerHello instead, the client's
        // Certificate in clear is still mTLS, certain: tests/handshake_rules.rs.)
        if i != 3 {
            frames.push(f);
        }
    }
    let flows = run(&frames);
    let v = &flows[0].verdict;
    assert_ne!(v.confidence, Confidence::Certain, "{v:#?}");
    assert!(flows[0].tcp.client.gap_bytes > 0);
}

#[test]
fn syn_only_is_no_data() {
    let c = Conn::new(40005, 443, 1, 1);
    let flows = run(&[c.syn(), frame((S, 443), (C, 40005), 0, Some(2), "R", &[])]);
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].verdict.verdict, Kind::NoData);
    assert!(flows[0].tcp.rst);
}

#[test]
fn refused_starttls_stays_plaintext() {
    let mut c = Conn::new(40006, 25, 1, 1);
    let mut frames = vec![c.syn(), c.synack()];
    frames.push(c.server(b"220 mx.test ESMTP\r\n"));
    frames.push(c.client(b"EHLO client.test\r\n"));
    frames.push(c.server(b"250-mx.test\r\n250 STARTTLS\r\n"));
    frames.push(c.client(b"STARTTLS\r\n"));
    frames.push(c.server(b"454 4.7.0 TLS not available due to temporary reason\r\n"));
    frames.push(c.client(b"MAIL FROM:<a@client.test>\r\n"));
    frames.push(c.server(b"250 2.1.0 Ok\r\n"));
    frames.extend(c.fins());
    let flows = run(&frames);
    let v = &flows[0].verdict;
    assert_eq!(v.verdict, Kind::Plaintext);
    let p = v.plaintext.as_ref().unwrap();
    assert_eq!(p.info.protocol.name(), "smtp");
    assert_eq!(p.upgrade_refused.map(|p| p.name()), Some("smtp"));
    assert!(
        v.evidence
            .iter()
            .any(|e| e.contains("asked to upgrade smtp to TLS, but no TLS followed")),
        "{v:?}"
    );
}

/// Regression (issue 15): a path parameter (`;jsessionid=`) reached the path, the evidence and
/// so every output and JUnit; and `--show-payload` showed an empty server side, because the
/// verdict of an HTTP request was final before the server answered.
#[test]
fn path_parameters_are_dropped_and_show_payload_has_both_sides() {
    let mut c = Conn::new(40007, 8080, 1, 1);
    let mut frames = vec![c.syn(), c.synack()];
    frames.push(c.client(b"GET /a;jsessionid=SECRET/b HTTP/1.1\r\nHost: s.test\r\n\r\n"));
    frames.push(c.server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    frames.extend(c.fins());
    let flows = run(&frames);
    let v = &flows[0].verdict;
    assert_eq!(v.plaintext.as_ref().unwrap().info.path.as_deref(), Some("/a/b"));
    assert_eq!(v.evidence, ["http request GET /a/b in clear"]);
    let json = serde_json::to_string(&flows[0]).unwrap();
    assert!(!json.contains("SECRET") && !json.contains("jsessionid"), "{json}");

    let cfg = Config {
        show_payload: true,
        ..Config::default()
    };
    let flows = run_with(cfg, &frames);
    let payload = flows[0].verdict.plaintext.as_ref().unwrap().payload.as_ref().unwrap();
    assert!(payload.client.starts_with("GET /a;jsessionid=SECRET/b"), "{payload:?}");
    assert!(payload.server.starts_with("HTTP/1.1 200 OK"), "{payload:?}");
    // Waiting for the server's bytes does not change the verdict.
    assert_eq!(flows[0].verdict.evidence, ["http request GET /a/b in clear"]);
}

/// Issue 15: a SYN flood filled the flow table to --max-flows (491 MB at 1M SYNs). SYN-only
/// connections past `max_syn_only` are reported `no-data` early and counted as evicted; a
/// connection that was answered is not one of them.
#[test]
fn syn_only_connections_are_capped_and_answered_ones_kept() {
    let mut c = Conn::new(40008, 8080, 1, 1);
    let mut frames = vec![c.syn(), c.synack()];
    for i in 0..100u16 {
        frames.push(Conn::new(50000 + i, 443, u32::from(i), 0).syn());
    }
    frames.push(c.client(b"GET / HTTP/1.1\r\nHost: s.test\r\n\r\n"));
    frames.push(c.server(b"HTTP/1.1 204 No Content\r\n\r\n"));
    frames.extend(c.fins());
    let cfg = Config {
        max_syn_only: 10,
        ..Config::default()
    };
    let mut e = Engine::new(cfg, Collect::default());
    for (i, f) in frames.iter().enumerate() {
        let _ = e.packet(1_700_000_000_000_000_000 + i as u64 * 1000, LinkType::ETHERNET, f);
    }
    e.finish();
    assert!(
        (90..=91).contains(&e.summary.evicted_flows),
        "{}",
        e.summary.evicted_flows
    );
    let flows = e.out.sorted();
    assert_eq!(flows.len(), 101);
    assert_eq!(flows[0].verdict.verdict, Kind::Plaintext);
    assert_eq!(flows[0].roles_from, RolesFrom::Syn);
    assert!(flows[1..].iter().all(|f| f.verdict.verdict == Kind::NoData));
}
