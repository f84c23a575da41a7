//! rustls peer (ring provider): the TLS library of Linkerd's proxy. Library defaults except what a
//! scenario sets: one protocol version, the certificates, whether the server requests
//! (`allow_unauthenticated`) or requires a client certificate, and optionally the client's
//! cipher suites (`--suites TLS13_CHACHA20_POLY1305_SHA256`, names as rustls spells them).
#[path = "../common.rs"]
mod common;

use common::*;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

fn provider(a: &Args) -> Arc<CryptoProvider> {
    let mut p = ring::default_provider();
    if let Some(list) = a.get("suites") {
        let want: Vec<&str> = list.split(':').collect();
        p.cipher_suites
            .retain(|s| want.contains(&format!("{:?}", s.suite()).as_str()));
        if p.cipher_suites.is_empty() {
            fail("--suites", "no suite left");
        }
    }
    Arc::new(p)
}

static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
static TLS12_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];

fn versions(a: &Args) -> &'static [&'static rustls::SupportedProtocolVersion] {
    if a.tls13() {
        &TLS13_ONLY
    } else {
        &TLS12_ONLY
    }
}

fn certs(path: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| fail(path, e))
}

fn key(path: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(path).unwrap_or_else(|e| fail(path, e))
}

fn roots(path: &str) -> Arc<RootCertStore> {
    let mut r = RootCertStore::empty();
    for c in certs(path) {
        r.add(c).unwrap_or_else(|e| fail("CA", e));
    }
    Arc::new(r)
}

fn summary(conn: &rustls::CommonState, peer: &str) -> String {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        other => format!("{other:?}"),
    };
    let suite = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    let cert = match conn.peer_certificates() {
        Some(c) if !c.is_empty() => format!("sent({} certs)", c.len()),
        _ => "none".to_string(),
    };
    format!("handshake ok version={version} suite={suite} {peer}={cert}")
}

fn server(a: &Args) {
    let p = provider(a);
    let b = ServerConfig::builder_with_provider(p.clone())
        .with_protocol_versions(versions(a))
        .unwrap_or_else(|e| fail("versions", e));
    let verifier = match a.client_auth() {
        "none" => WebPkiClientVerifier::no_client_auth(),
        "request" => WebPkiClientVerifier::builder_with_provider(roots(a.req("ca")), p.clone())
            .allow_unauthenticated()
            .build()
            .unwrap_or_else(|e| fail("verifier", e)),
        "require" => WebPkiClientVerifier::builder_with_provider(roots(a.req("ca")), p.clone())
            .build()
            .unwrap_or_else(|e| fail("verifier", e)),
        other => fail("--client-auth", other),
    };
    let config = b
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(a.req("cert")), key(a.req("key")))
        .unwrap_or_else(|e| fail("server cert", e));
    let listener = TcpListener::bind(a.req("listen")).unwrap_or_else(|e| fail("listen", e));
    println!("listening");
    let (tcp, _) = listener.accept().unwrap_or_else(|e| fail("accept", e));
    let conn = ServerConnection::new(Arc::new(config)).unwrap_or_else(|e| fail("connection", e));
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap_or_else(|e| fail("handshake", e));
    }
    println!("{}", summary(&s.conn, "client_cert"));
    read_request(&mut s).unwrap_or_else(|e| fail("request", e));
    s.write_all(RESPONSE).unwrap_or_else(|e| fail("response", e));
    s.conn.send_close_notify();
    let _ = s.conn.complete_io(&mut s.sock);
}

fn client(a: &Args) {
    let b = ClientConfig::builder_with_provider(provider(a))
        .with_protocol_versions(versions(a))
        .unwrap_or_else(|e| fail("versions", e))
        .with_root_certificates(roots(a.req("ca")));
    let config = match a.get("cert") {
        Some(c) => b
            .with_client_auth_cert(certs(c), key(a.req("key")))
            .unwrap_or_else(|e| fail("client cert", e)),
        None => b.with_no_client_auth(),
    };
    let name = ServerName::try_from(a.req("sni").to_string()).unwrap_or_else(|e| fail("sni", e));
    let conn = ClientConnection::new(Arc::new(config), name).unwrap_or_else(|e| fail("connection", e));
    let tcp = TcpStream::connect(a.req("connect")).unwrap_or_else(|e| fail("connect", e));
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap_or_else(|e| fail("handshake", e));
    }
    println!("{}", summary(&s.conn, "server_cert"));
    s.write_all(REQUEST).unwrap_or_else(|e| fail("request", e));
    let resp = read_response(&mut s).unwrap_or_else(|e| fail("response", e));
    println!("{}", status_line(&resp));
    s.conn.send_close_notify();
    let _ = s.conn.complete_io(&mut s.sock);
}

fn main() {
    let a = Args::parse();
    if a.role == "server" {
        server(&a)
    } else {
        client(&a)
    }
}
