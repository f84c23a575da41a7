//! What both peers share: the command line and the tiny HTTP/1.0 exchange generate.sh checks.
//!
//!   PEER server --listen IP:PORT --tls 1.2|1.3 --cert PEM --key PEM [--ca PEM --client-auth none|request|require]
//!   PEER client --connect IP:PORT --tls 1.2|1.3 --sni NAME --ca PEM [--cert PEM --key PEM] [--suites A:B]
//!
//! The server accepts one connection, completes the handshake, reads one request, answers
//! `HTTP/1.0 200 ok`, sends close_notify and closes. The client sends `GET / HTTP/1.0` and reads
//! until the server closes, so TLS 1.3 session tickets are received as well. Each side prints one
//! `handshake ok version=... suite=... client_cert=...` line on stdout for generate.sh to check.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, Read};

pub struct Args {
    pub role: String,
    opts: HashMap<String, String>,
}

impl Args {
    pub fn parse() -> Args {
        let mut it = std::env::args().skip(1);
        let role = it.next().unwrap_or_default();
        if role != "server" && role != "client" {
            usage();
        }
        let mut opts = HashMap::new();
        while let Some(k) = it.next() {
            let Some(name) = k.strip_prefix("--") else { usage() };
            let Some(v) = it.next() else { usage() };
            opts.insert(name.to_string(), v);
        }
        Args { role, opts }
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.opts.get(k).map(String::as_str)
    }
    pub fn req(&self, k: &str) -> &str {
        self.get(k).unwrap_or_else(|| {
            eprintln!("missing --{k}");
            std::process::exit(2)
        })
    }
    pub fn tls13(&self) -> bool {
        match self.req("tls") {
            "1.3" => true,
            "1.2" => false,
            other => {
                eprintln!("--tls must be 1.2 or 1.3, not {other}");
                std::process::exit(2)
            }
        }
    }
    pub fn client_auth(&self) -> &str {
        self.get("client-auth").unwrap_or("none")
    }
}

fn usage() -> ! {
    eprintln!("usage: PEER server|client --option value ... (see src/common.rs)");
    std::process::exit(2)
}

pub const REQUEST: &[u8] = b"GET / HTTP/1.0\r\n\r\n";
pub const RESPONSE: &[u8] = b"HTTP/1.0 200 ok\r\nContent-Type: text/plain\r\n\r\nhello from the capture peer\n";

/// Read one request head (up to the blank line) from the TLS stream.
pub fn read_request(s: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "client closed before its request",
            ));
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(got)
}

/// Read until the server closes; a TCP close without close_notify still ends the response.
pub fn read_response(s: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !got.is_empty() => return Ok(got),
            Err(e) => return Err(e),
        }
    }
}

pub fn status_line(resp: &[u8]) -> String {
    let end = resp.iter().position(|&b| b == b'\r').unwrap_or(resp.len());
    String::from_utf8_lossy(&resp[..end]).into_owned()
}

pub fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("{what}: {e}");
    std::process::exit(1)
}
