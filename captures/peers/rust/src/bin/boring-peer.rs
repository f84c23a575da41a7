//! BoringSSL peer (the `boring` crate): the TLS library of Envoy, so of Istio's and OpenShift
//! Service Mesh's sidecars. Library defaults except what a scenario sets: one protocol version,
//! the certificates, and whether the server requests (`PEER`) or requires
//! (`PEER | FAIL_IF_NO_PEER_CERT`) a client certificate. BoringSSL's TLS 1.3 suites are not
//! configurable; with AES hardware it prefers TLS_AES_128_GCM_SHA256.
#[path = "../common.rs"]
mod common;

use boring::ssl::{Ssl, SslContextBuilder, SslFiletype, SslMethod, SslRef, SslVerifyMode, SslVersion};
use common::*;
use std::io::Write;
use std::net::{TcpListener, TcpStream};

fn context(a: &Args) -> SslContextBuilder {
    let mut b = SslContextBuilder::new(SslMethod::tls()).unwrap_or_else(|e| fail("context", e));
    let v = if a.tls13() {
        SslVersion::TLS1_3
    } else {
        SslVersion::TLS1_2
    };
    b.set_min_proto_version(Some(v))
        .unwrap_or_else(|e| fail("min version", e));
    b.set_max_proto_version(Some(v))
        .unwrap_or_else(|e| fail("max version", e));
    if let Some(cert) = a.get("cert") {
        b.set_certificate_chain_file(cert)
            .unwrap_or_else(|e| fail("certificate", e));
        b.set_private_key_file(a.req("key"), SslFiletype::PEM)
            .unwrap_or_else(|e| fail("key", e));
        b.check_private_key().unwrap_or_else(|e| fail("key does not match", e));
    }
    if let Some(ca) = a.get("ca") {
        b.set_ca_file(ca).unwrap_or_else(|e| fail("CA file", e));
    }
    b
}

fn summary(ssl: &SslRef) -> String {
    let suite = ssl.current_cipher().and_then(|c| c.standard_name()).unwrap_or("?");
    let cert = match ssl.peer_certificate() {
        Some(c) => {
            let cn = c
                .subject_name()
                .entries_by_nid(boring::nid::Nid::COMMONNAME)
                .next()
                .and_then(|e| e.data().as_utf8().ok().map(|s| s.to_string()))
                .unwrap_or_default();
            format!("CN={cn}")
        }
        None => "none".to_string(),
    };
    format!(
        "handshake ok version={} suite={suite} peer_cert={cert}",
        ssl.version_str()
    )
}

fn server(a: &Args) {
    let mut b = context(a);
    match a.client_auth() {
        "none" => b.set_verify(SslVerifyMode::NONE),
        "request" => b.set_verify(SslVerifyMode::PEER),
        "require" => b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT),
        other => fail("--client-auth", other),
    }
    let ctx = b.build();
    let listener = TcpListener::bind(a.req("listen")).unwrap_or_else(|e| fail("listen", e));
    println!("listening");
    let (tcp, _) = listener.accept().unwrap_or_else(|e| fail("accept", e));
    let ssl = Ssl::new(&ctx).unwrap_or_else(|e| fail("ssl", e));
    let mut s = ssl.accept(tcp).unwrap_or_else(|e| fail("handshake", e));
    println!("{}", summary(s.ssl()).replace("peer_cert=", "client_cert="));
    read_request(&mut s).unwrap_or_else(|e| fail("request", e));
    s.write_all(RESPONSE).unwrap_or_else(|e| fail("response", e));
    let _ = s.shutdown();
}

fn client(a: &Args) {
    let mut b = context(a);
    b.set_verify(SslVerifyMode::PEER);
    let ctx = b.build();
    let sni = a.req("sni");
    let mut ssl = Ssl::new(&ctx).unwrap_or_else(|e| fail("ssl", e));
    ssl.set_hostname(sni).unwrap_or_else(|e| fail("sni", e));
    ssl.param_mut().set_host(sni).unwrap_or_else(|e| fail("host check", e));
    let tcp = TcpStream::connect(a.req("connect")).unwrap_or_else(|e| fail("connect", e));
    let mut s = ssl.connect(tcp).unwrap_or_else(|e| fail("handshake", e));
    println!("{}", summary(s.ssl()).replace("peer_cert=", "server_cert="));
    s.write_all(REQUEST).unwrap_or_else(|e| fail("request", e));
    let resp = read_response(&mut s).unwrap_or_else(|e| fail("response", e));
    println!("{}", status_line(&resp));
    let _ = s.shutdown();
}

fn main() {
    let a = Args::parse();
    if a.role == "server" {
        server(&a)
    } else {
        client(&a)
    }
}
