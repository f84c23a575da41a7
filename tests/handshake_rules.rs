//! The verdict rules that are not about TLS 1.3 record lengths (DESIGN.md, the verdict table),
//! on packets built here: a ClientHello answered in plaintext, one-way captures, a ClientHello
//! over the handshake size limit, a snap length that cuts the handshake, and `uncertain`
//! verdicts that say what is missing. Real handshakes come from this repository's captures.

use mtlscope::check::{evaluate, parse_rules, CheckOptions, EvidenceLevel};
use mtlscope::pipeline::record::FlowReport;
use mtlscope::pipeline::verdict::{Confidence, Handshake, Kind};

#[path = "support/frames.rs"]
mod frames;
use frames::{run, Conn};

/// The TCP payloads of a capture in this repository, each with whether the client sent it.
fn payloads(capture: &str, server_port: u16) -> Vec<(bool, Vec<u8>)> {
    frames::payloads(capture, server_port)
        .into_iter()
        .map(|p| (p.from_client, p.bytes))
        .collect()
}

fn tls12_mtls() -> Vec<(bool, Vec<u8>)> {
    payloads("openssl-tls12-mtls-rsa.pcap", 4402)
}

fn client_hello() -> Vec<u8> {
    tls12_mtls().into_iter().find(|(c, _)| *c).unwrap().1
}

/// A handshake where the server answers the ClientHello with `answer`.
fn answered_with(answer: &[u8], handshake: bool) -> FlowReport {
    let mut c = Conn::new(40100, 8081, 1000, 5000);
    let mut frames = if handshake {
        vec![c.syn(), c.synack()]
    } else {
        Vec::new()
    };
    frames.push(c.client(&client_hello()));
    frames.push(c.server(answer));
    let mut flows = run(&frames);
    assert_eq!(flows.len(), 1);
    flows.remove(0)
}

fn evidence(f: &FlowReport) -> &[String] {
    &f.verdict.evidence
}

#[test]
fn client_hello_answered_by_http_is_plaintext_and_failed() {
    let f = answered_with(
        b"HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\n\r\n<html>400</html>",
        true,
    );
    let v = &f.verdict;
    assert_eq!(
        (v.verdict, v.confidence, v.handshake),
        (Kind::Plaintext, Confidence::Certain, Handshake::Failed)
    );
    assert_eq!(v.plaintext.as_ref().map(|p| p.info.protocol.name()), Some("http"));
    assert_eq!(
        evidence(&f),
        ["TLS handshake failed: the server answered the ClientHello in plaintext (HTTP)"]
    );
    // The ClientHello's facts stay (the SNI the client asked for); nothing TLS was negotiated.
    let tls = v.tls.as_ref().unwrap();
    assert!(tls.sni.is_some());
    assert_eq!((tls.version.as_deref(), tls.client_cert_requested), (None, None));
    // No payload byte of the answer leaks into the report's texts.
    let texts = serde_json::to_string(&(&v.evidence, &tls.problems)).unwrap();
    for leak in ["Bad Request", "nginx", "48 54 54", "400"] {
        assert!(!texts.contains(leak), "{leak} in {texts}");
    }
}

#[test]
fn client_hello_answered_by_an_ssh_banner_is_plaintext_ssh() {
    let f = answered_with(b"SSH-2.0-OpenSSH_9.2p1\r\n", true);
    let v = &f.verdict;
    assert_eq!(
        (v.verdict, v.confidence, v.handshake),
        (Kind::Plaintext, Confidence::Certain, Handshake::Failed)
    );
    assert_eq!(v.plaintext.as_ref().map(|p| p.info.protocol.name()), Some("ssh"));
    assert_eq!(
        evidence(&f),
        ["TLS handshake failed: the server answered the ClientHello in plaintext (SSH)"]
    );
}

#[test]
fn an_answer_of_unknown_bytes_is_plaintext_unless_the_capture_started_mid_stream() {
    let garbage = [0x00, 0x01, 0xfe, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42];
    let f = answered_with(&garbage, true);
    assert_eq!(f.verdict.verdict, Kind::Plaintext);
    assert!(
        evidence(&f)[0].contains("bytes that are not TLS (protocol not recognised)"),
        "{:?}",
        evidence(&f)
    );
    // Without the handshake of the TCP connection, unknown bytes from the server may be the
    // middle of a record: not an answer. A recognised protocol still is.
    let f = answered_with(&garbage, false);
    assert_eq!(
        (f.verdict.verdict, f.verdict.confidence),
        (Kind::Tls, Confidence::Uncertain)
    );
    let f = answered_with(b"HTTP/1.1 400 Bad Request\r\n\r\n", false);
    assert_eq!(f.verdict.verdict, Kind::Plaintext);
}

#[test]
fn a_refused_starttls_client_hello_is_plaintext_in_the_preamble_protocol() {
    let mut c = Conn::new(40101, 25, 1000, 5000);
    let mut frames = vec![c.syn(), c.synack()];
    frames.push(c.server(b"220 mx.test ESMTP\r\n"));
    frames.push(c.client(b"EHLO client.test\r\n"));
    frames.push(c.server(b"250-mx.test\r\n250 STARTTLS\r\n"));
    frames.push(c.client(b"STARTTLS\r\n"));
    frames.push(c.server(b"220 2.0.0 Ready to start TLS\r\n"));
    frames.push(c.client(&client_hello()));
    frames.push(c.server(b"421 4.7.0 TLS error\r\n"));
    let f = &run(&frames)[0];
    let v = &f.verdict;
    assert_eq!((v.verdict, v.handshake), (Kind::Plaintext, Handshake::Failed), "{v:?}");
    assert_eq!(
        v.evidence,
        ["TLS handshake failed: the server answered the ClientHello in plaintext (SMTP)"]
    );
    assert_eq!(
        v.plaintext.as_ref().and_then(|p| p.upgrade_refused).map(|p| p.name()),
        Some("smtp")
    );
}

#[test]
fn check_fails_a_client_hello_answered_in_plaintext() {
    let flows = vec![answered_with(b"HTTP/1.1 400 Bad Request\r\n\r\n", true)];
    for require in ["tls", "mtls", "encrypted"] {
        let rules = parse_rules("r.yaml", &format!("rules:\n  - name: r\n    require: {require}\n")).unwrap();
        let opts = CheckOptions {
            evidence: EvidenceLevel::Inferred,
            allow_empty: false,
            min_flows: 0,
            include_loopback: false,
        };
        let report = evaluate(&rules, &flows, &opts);
        assert!(!report.ok, "--require {require} passed a plaintext answer");
    }
}

#[test]
fn client_direction_alone_with_a_client_certificate_is_mtls_certain() {
    let mut c = Conn::new(40102, 4402, 1000, 5000);
    let mut frames = vec![c.syn()];
    for (from_client, p) in tls12_mtls() {
        if from_client {
            frames.push(c.client(&p));
        } else {
            // The server's bytes are not in the capture; only the client's ACKs show them.
            c.sseq += p.len() as u32;
        }
    }
    let f = &run(&frames)[0];
    let v = &f.verdict;
    assert_eq!(
        (v.verdict, v.confidence, v.handshake),
        (Kind::Mtls, Confidence::Certain, Handshake::Incomplete)
    );
    let tls = v.tls.as_ref().unwrap();
    assert_eq!(tls.version.as_deref(), Some("TLS 1.2"));
    assert_eq!(tls.client_cert_requested, Some(true));
    assert!(v.client_identity.is_some());
    assert!(
        v.evidence[0].starts_with("client sent a Certificate: "),
        "{:?}",
        v.evidence
    );
    assert_eq!(v.evidence[1], "only the client's direction is in the capture");
    // The client's encrypted Finished and close_notify are not read as clear-text alerts.
    assert!(tls.alerts.iter().all(|a| a.level == "encrypted"), "{:?}", tls.alerts);
}

#[test]
fn client_direction_alone_without_a_certificate_says_the_server_is_missing() {
    let mut c = Conn::new(40103, 4401, 1000, 5000);
    let mut frames = vec![c.syn()];
    for (from_client, p) in payloads("openssl-tls12-server-only-rsa.pcap", 4401) {
        if from_client {
            frames.push(c.client(&p));
        } else {
            c.sseq += p.len() as u32;
        }
    }
    let v = &run(&frames)[0].verdict;
    assert_eq!((v.verdict, v.confidence), (Kind::Tls, Confidence::Uncertain));
    assert_eq!(
        v.evidence,
        ["ClientHello seen; the ServerHello is not in the capture: only the client's direction is in the capture"]
    );
}

#[test]
fn server_direction_alone_says_the_client_is_missing() {
    let mut c = Conn::new(40104, 4402, 1000, 5000);
    let mut frames = vec![c.synack()];
    for (from_client, p) in tls12_mtls() {
        if from_client {
            c.cseq += p.len() as u32;
        } else {
            frames.push(c.server(&p));
        }
    }
    let v = &run(&frames)[0].verdict;
    assert_eq!((v.verdict, v.confidence), (Kind::Tls, Confidence::Uncertain));
    assert_eq!(
        v.evidence,
        ["certificate requested; the client's answer is not in the capture: only the server's direction is in the capture"]
    );
}

/// A ClientHello whose header announces `len` bytes, sent in records of 16 KiB.
fn huge_client_hello(len: u32) -> Vec<Vec<u8>> {
    let mut msg = vec![1];
    msg.extend_from_slice(&len.to_be_bytes()[1..]);
    msg.extend_from_slice(&[3, 3]);
    msg.resize(4 + len as usize, 0);
    msg.chunks(16 * 1024)
        .map(|body| {
            let mut r = vec![22, 3, 1];
            r.extend_from_slice(&(body.len() as u16).to_be_bytes());
            r.extend_from_slice(body);
            r
        })
        .collect()
}

#[test]
fn a_client_hello_over_the_limit_is_named_and_the_alert_is_the_servers() {
    let mut c = Conn::new(40105, 4474, 1000, 5000);
    let mut frames = vec![c.syn(), c.synack()];
    for r in huge_client_hello(300_000) {
        frames.push(c.client(&r));
    }
    frames.push(c.server(&[21, 3, 3, 0, 2, 2, 47]));
    let v = &run(&frames)[0].verdict;
    assert_eq!(
        (v.verdict, v.confidence, v.handshake),
        (Kind::Tls, Confidence::Certain, Handshake::Failed)
    );
    assert_eq!(
        v.evidence,
        [
            "handshake failed before ServerHello: server alert illegal_parameter",
            "ClientHello of 300000 bytes is over the 256 KiB handshake limit: not parsed",
        ]
    );

    // Unanswered, it is all there is to say.
    let mut c = Conn::new(40106, 4474, 1000, 5000);
    let mut frames = vec![c.syn(), c.synack()];
    for r in huge_client_hello(300_000) {
        frames.push(c.client(&r));
    }
    let v = &run(&frames)[0].verdict;
    assert_eq!(
        (v.verdict, v.confidence, v.handshake),
        (Kind::Tls, Confidence::Uncertain, Handshake::Incomplete)
    );
    assert_eq!(
        v.evidence,
        ["ClientHello of 300000 bytes is over the 256 KiB handshake limit: not parsed"]
    );
}

#[test]
fn a_snap_length_that_cuts_the_handshake_is_named() {
    let mut c = Conn::new(40107, 4402, 1000, 5000);
    let mut frames = vec![c.syn(), c.synack()];
    for (from_client, p) in tls12_mtls() {
        let mut f = if from_client { c.client(&p) } else { c.server(&p) };
        // tcpdump -s 96: the IP header still announces the whole packet.
        f.truncate(96);
        frames.push(f);
    }
    let f = &run(&frames)[0];
    let v = &f.verdict;
    assert_eq!(
        (v.verdict, v.confidence, v.handshake),
        (Kind::Tls, Confidence::Uncertain, Handshake::Incomplete)
    );
    assert_eq!(
        v.evidence[0],
        "packets cut by the capture's snap length (96 bytes): the handshake is not in the capture"
    );
    assert!(f.tcp.client.gap_bytes > 0 && f.tcp.server.gap_bytes > 0);
}

#[test]
fn a_server_that_never_answers_is_said_so() {
    let mut c = Conn::new(40108, 443, 1000, 5000);
    let frames = vec![c.syn(), c.synack(), c.client(&client_hello())];
    let v = &run(&frames)[0].verdict;
    assert_eq!((v.verdict, v.confidence), (Kind::Tls, Confidence::Uncertain));
    assert_eq!(
        v.evidence,
        ["ClientHello seen; the ServerHello is not in the capture: the server sent no data"]
    );
}

/// The TLS 1.2 mTLS handshake with the payload at `index` lost from the capture (the receiver's
/// ACKs still show it was sent).
fn tls12_mtls_without(index: usize) -> FlowReport {
    let mut c = Conn::new(40109 + index as u16, 4402, 1000, 5000);
    let mut frames = vec![c.syn(), c.synack()];
    for (i, (from_client, p)) in tls12_mtls().into_iter().enumerate() {
        let f = if from_client { c.client(&p) } else { c.server(&p) };
        if i != index {
            frames.push(f);
        }
    }
    run(&frames).remove(0)
}

#[test]
fn a_client_certificate_in_clear_is_mtls_even_when_the_server_hello_is_lost() {
    // Payload 1 is the server's first segment: ServerHello and the start of its Certificate.
    let f = tls12_mtls_without(1);
    let v = &f.verdict;
    assert_eq!((v.verdict, v.confidence), (Kind::Mtls, Confidence::Certain), "{v:?}");
    let tls = v.tls.as_ref().unwrap();
    // The server's Finished after its ChangeCipherSpec is encrypted, not a message to parse.
    assert!(tls.problems.iter().all(|p| !p.contains("limit")), "{:?}", tls.problems);
    assert!(
        tls.handshake_messages.iter().all(|m| !m.to_string().contains("type_")),
        "{:?}",
        tls.handshake_messages
    );
}

#[test]
fn lost_client_certificate_bytes_name_the_client() {
    // Payload 3 is the start of the client's Certificate.
    let v = tls12_mtls_without(3).verdict;
    assert_eq!((v.verdict, v.confidence), (Kind::Tls, Confidence::Uncertain), "{v:?}");
    assert!(
        v.evidence
            .contains(&"bytes of the client's handshake are missing from the capture".to_string()),
        "{:?}",
        v.evidence
    );
}
