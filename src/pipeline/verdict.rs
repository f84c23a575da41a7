//! Stage 5, verdict: turns what the inspector saw into `plaintext`, `tls` or `mtls`, with the
//! evidence and how sure we are — following the table in DESIGN.md ("what the wire can prove").
//! What TLS 1.3's encrypted lengths say about the client's certificate is read by [`tls13`].

use crate::pipeline::inspect::certs::CertInfo;
use crate::pipeline::inspect::coverage::{self, Coverage};
use crate::pipeline::inspect::mesh::{self, MeshSignal};
use crate::pipeline::inspect::plaintext::{PlaintextInfo, Protocol};
pub use crate::pipeline::inspect::resumption::{resumption, session_keys, Resumption};
use crate::pipeline::inspect::tls::{Chain, Decrypted, TlsFacts};
use crate::pipeline::inspect::Outcome;
use crate::pipeline::side::Side;
pub use decrypted::KeylogReport;
use serde::Serialize;
use std::sync::Arc;
pub use tls13::Tls13Report;
use tls13::{tls13_report, Answer, Progress};

mod decrypted;
mod tls13;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Mtls,
    Tls,
    /// TLS records in both directions, handshake not in the capture.
    Encrypted,
    Plaintext,
    NoData,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mtls => "mtls",
            Kind::Tls => "tls",
            Kind::Encrypted => "encrypted",
            Kind::Plaintext => "plaintext",
            Kind::NoData => "no-data",
        }
    }
    pub const ALL: [Kind; 5] = [Kind::Mtls, Kind::Tls, Kind::Encrypted, Kind::Plaintext, Kind::NoData];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// The wire shows it (a clear-text Certificate message, plaintext bytes).
    Certain,
    /// Derived from encrypted lengths or a linked earlier handshake.
    Inferred,
    /// The signals do not fit any known pattern, or contradict each other.
    Uncertain,
}

impl Confidence {
    /// As in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Confidence::Certain => "certain",
            Confidence::Inferred => "inferred",
            Confidence::Uncertain => "uncertain",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Handshake {
    Complete,
    /// A fatal alert (or an encrypted alert in reply to the client's flight) ended it.
    Failed,
    /// It started but its end is not in the capture.
    Incomplete,
    NotSeen,
    /// Not TLS.
    None,
}

/// An earlier full handshake in the same capture that a resumed connection continues.
#[derive(Debug, Clone)]
pub struct SessionOrigin {
    pub flow_id: u64,
    pub kind: Kind,
    pub client_identity: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertReport {
    pub from: &'static str,
    pub level: &'static str,
    pub description: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsReport {
    pub version: Option<String>,
    pub cipher: Option<String>,
    pub sni: Option<String>,
    pub alpn_offered: Vec<String>,
    /// The protocol the server chose, when visible (TLS <= 1.2).
    pub alpn: Option<String>,
    /// Whether the server asked for a client certificate; null when not observable.
    pub client_cert_requested: Option<bool>,
    pub client_certificate: Option<Arc<CertInfo>>,
    pub client_chain_len: Option<usize>,
    pub server_certificate: Option<Arc<CertInfo>>,
    pub server_chain_len: Option<usize>,
    pub hello_retry: bool,
    pub resumption: Option<&'static str>,
    pub resumed_from: Option<u64>,
    pub upgrade: Option<Protocol>,
    pub alerts: Vec<AlertReport>,
    pub handshake_messages: Vec<MessageName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls13: Option<Tls13Report>,
    /// What a key log decrypted of a TLS 1.3 handshake; only when it had this connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keylog: Option<KeylogReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh: Option<MeshSignal>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PlaintextReport {
    #[serde(flatten)]
    pub info: PlaintextInfo,
    /// The client asked to switch to TLS (e.g. STARTTLS) but no TLS followed.
    pub upgrade_refused: Option<Protocol>,
    /// Only with `--show-payload`: the first bytes each side sent, escaped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Payload {
    pub client: String,
    pub server: String,
}

/// Printable ASCII as is, everything else as `\xNN` (and `\\`).
fn escape(b: &[u8]) -> String {
    b.iter()
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect()
}

/// The verdict for one connection.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Verdict {
    pub verdict: Kind,
    pub confidence: Confidence,
    pub handshake: Handshake,
    pub resumed: bool,
    pub client_identity: Option<String>,
    pub server_identity: Option<String>,
    pub evidence: Vec<String>,
    pub tls: Option<TlsReport>,
    pub plaintext: Option<PlaintextReport>,
}

/// Decide. `cov` is what the capture holds of the flow (its client direction, the directions
/// and bytes seen); `server_port` feeds the mesh signals;
/// `origin` is the earlier handshake a resumed session continues, if the capture has it.
/// `show_payload` keeps the first bytes of plaintext connections (the user asked for them).
pub fn decide(
    outcome: Outcome,
    cov: &Coverage,
    server_port: u16,
    origin: Option<&SessionOrigin>,
    show_payload: bool,
) -> Verdict {
    match outcome {
        Outcome::NoData => Verdict {
            verdict: Kind::NoData,
            confidence: Confidence::Certain,
            handshake: Handshake::None,
            resumed: false,
            client_identity: None,
            server_identity: None,
            evidence: vec!["no payload in either direction".into()],
            tls: None,
            plaintext: None,
        },
        Outcome::Plaintext {
            info,
            upgrade_refused,
            first_bytes,
        } => {
            let payload = show_payload.then(|| Payload {
                client: escape(&first_bytes[cov.client]),
                server: escape(&first_bytes[cov.server()]),
            });
            let mut evidence = vec![plaintext_evidence(&info)];
            if let Some(p) = upgrade_refused {
                evidence.push(format!(
                    "client asked to upgrade {} to TLS, but no TLS followed",
                    p.name()
                ));
            }
            Verdict {
                verdict: Kind::Plaintext,
                confidence: Confidence::Certain,
                handshake: Handshake::None,
                resumed: false,
                client_identity: None,
                server_identity: None,
                evidence,
                tls: None,
                plaintext: Some(PlaintextReport {
                    info,
                    upgrade_refused,
                    payload,
                }),
            }
        }
        Outcome::Midstream { facts } => {
            let (c, s) = (facts.app_records[cov.client], facts.app_records[cov.server()]);
            let version = facts.server_hello.as_ref().map(|s| version_name(s.version));
            Verdict {
                verdict: Kind::Encrypted,
                confidence: Confidence::Inferred,
                handshake: Handshake::NotSeen,
                resumed: false,
                client_identity: None,
                server_identity: None,
                evidence: vec![format!(
                    "handshake not in capture; TLS records chain back to back: {c} client->server, {s} server->client"
                )],
                tls: Some(TlsReport {
                    version,
                    ..empty_tls_report()
                }),
                plaintext: None,
            }
        }
        Outcome::Tls {
            facts,
            decrypted,
            upgrade,
            adat,
            answer,
        } => decide_tls(
            &facts,
            decrypted.as_deref(),
            upgrade,
            adat,
            answer,
            server_port,
            origin,
            cov,
        ),
    }
}

fn empty_tls_report() -> TlsReport {
    TlsReport {
        version: None,
        cipher: None,
        sni: None,
        alpn_offered: Vec::new(),
        alpn: None,
        client_cert_requested: None,
        client_certificate: None,
        client_chain_len: None,
        server_certificate: None,
        server_chain_len: None,
        hello_retry: false,
        resumption: None,
        resumed_from: None,
        upgrade: None,
        alerts: Vec::new(),
        handshake_messages: Vec::new(),
        tls13: None,
        keylog: None,
        mesh: None,
        problems: Vec::new(),
    }
}

fn plaintext_evidence(info: &PlaintextInfo) -> String {
    match (&info.method, &info.path) {
        (Some(m), Some(p)) => format!("{} request {m} {p} in clear", info.protocol.name()),
        _ if info.protocol == Protocol::Unknown => "payload is not TLS; protocol not recognised".into(),
        _ => format!("{} in clear", info.protocol.name()),
    }
}

fn identity(chain: &Option<Box<Chain>>) -> Option<String> {
    chain.as_ref().and_then(|c| c.leaf.as_ref()).map(|l| l.identity())
}

/// `answer`: what the server answered the ClientHello with, when it was not TLS; `dec`: what a
/// key log decrypted of a TLS 1.3 handshake.
#[allow(clippy::too_many_arguments)]
fn decide_tls(
    f: &TlsFacts,
    dec: Option<&Decrypted>,
    upgrade: Option<Protocol>,
    adat: bool,
    answer: Option<PlaintextInfo>,
    server_port: u16,
    origin: Option<&SessionOrigin>,
    cov: &Coverage,
) -> Verdict {
    // The roles from the ClientHello, else the flow's (a ClientHello too large to parse).
    let cov = &Coverage {
        client: f.client_dir.unwrap_or(cov.client),
        ..*cov
    };
    let server = Some(cov.server());
    let mut rep = empty_tls_report();
    let ch = f.client_hello.as_ref();
    let sh = f.server_hello.as_ref();
    // Without the ServerHello, the client's Certificate record carries the negotiated version.
    rep.version = sh
        .map(|s| s.version)
        .or(f.client_chain.as_ref().map(|c| c.record_version))
        .map(version_name);
    rep.cipher = sh.map(|s| cipher_name(s.cipher));
    rep.sni = ch.and_then(|c| c.sni.as_deref().map(String::from));
    rep.alpn_offered = ch.map(|c| c.alpn().map(String::from).collect()).unwrap_or_default();
    rep.alpn = sh.and_then(|s| s.alpn.as_deref().map(String::from));
    rep.hello_retry = f.hello_retry;
    rep.upgrade = upgrade;
    rep.server_certificate = f.server_chain.as_ref().and_then(|c| c.leaf.clone());
    rep.server_chain_len = f.server_chain.as_ref().map(|c| c.len);
    rep.client_certificate = f.client_chain.as_ref().and_then(|c| c.leaf.clone());
    rep.client_chain_len = f.client_chain.as_ref().map(|c| c.len);
    rep.problems = f.problems.to_vec();
    rep.alerts = f
        .alerts
        .iter()
        .map(|a| AlertReport {
            from: if Some(a.dir) == server { "server" } else { "client" },
            level: match (a.encrypted, a.level) {
                (true, _) => "encrypted",
                (_, 1) => "warning",
                (_, 2) => "fatal",
                _ => "unknown",
            },
            description: if a.encrypted {
                "encrypted".into()
            } else {
                alert_name(a.description)
            },
        })
        .collect();
    rep.handshake_messages = f
        .messages
        .iter()
        .map(|m| MessageName {
            from: if Some(m.from) == server { "server" } else { "client" },
            ty: m.ty,
        })
        .collect();
    let tls13 = f.is_tls13();
    rep.mesh = mesh::detect(rep.sni.as_deref(), &rep.alpn_offered, server_port, tls13);

    let mut evidence = Vec::new();
    // Said after the reason for the verdict, which leads the evidence.
    let upgrade_note = match upgrade {
        _ if answer.is_some() => None,
        Some(_) if adat => Some("TLS handshake inside FTP ADAT commands (GSI)".to_string()),
        Some(p) => Some(format!("upgraded from {} to TLS", p.name())),
        None => None,
    };
    let fatal = f.alerts.iter().find(|a| a.level == 2 && !a.encrypted);
    let mut server_id = identity(&f.server_chain);
    let mut client_id = identity(&f.client_chain);
    let resumed = resumption(f);
    rep.resumption = resumed.map(Resumption::name);

    let (mut kind, mut confidence, handshake);
    // A client Certificate in clear proves mTLS without the ServerHello (a one-way capture).
    let client_certificate = f.client_chain.as_ref().is_some_and(|c| c.len > 0);
    if let Some(a) = &answer {
        kind = Kind::Plaintext;
        confidence = Confidence::Certain;
        handshake = Handshake::Failed;
        evidence.push(coverage::answered_in_plaintext(a.protocol));
    } else if sh.is_none() && !client_certificate {
        kind = Kind::Tls;
        match fatal {
            Some(a) => {
                confidence = Confidence::Certain;
                handshake = Handshake::Failed;
                evidence.push(format!(
                    "handshake failed before ServerHello: {} alert {}",
                    if Some(a.dir) == server { "server" } else { "client" },
                    alert_name(a.description)
                ));
                evidence.extend(coverage::oversized(f));
            }
            None => {
                confidence = Confidence::Uncertain;
                handshake = Handshake::Incomplete;
                evidence.push(coverage::no_server_hello(f, cov));
            }
        }
    } else if let Some(r) = resumed {
        handshake = if fatal.is_some() {
            Handshake::Failed
        } else {
            Handshake::Complete
        };
        // TLS 1.3 forbids a CertificateRequest in a PSK handshake; TLS 1.2 shows it in clear.
        rep.client_cert_requested = Some(!tls13 && f.certificate_requested);
        if let Some(d) = dec.filter(|_| tls13) {
            let r = decrypted::resumed(d, cov.client, handshake_name);
            evidence.extend(r.evidence);
            rep.client_cert_requested = r.cert_requested.or(rep.client_cert_requested);
            rep.keylog = Some(r.report);
        }
        match origin {
            Some(o) => {
                kind = if o.kind == Kind::Mtls { Kind::Mtls } else { Kind::Tls };
                confidence = Confidence::Inferred;
                client_id = o.client_identity.clone();
                rep.resumed_from = Some(o.flow_id);
                evidence.push(format!(
                    "resumed ({}) the session of connection #{}, which was {}",
                    r.name(),
                    o.flow_id,
                    o.kind.name()
                ));
            }
            None => {
                kind = Kind::Tls;
                confidence = Confidence::Uncertain;
                // A TLS 1.2 session ID or ticket is in clear, so its origin is found when it is
                // in the capture; a TLS 1.3 ticket arrives encrypted under the application keys,
                // which mtlscope never uses, so its origin is never known from the wire.
                let origin = if tls13 {
                    "a TLS 1.3 ticket cannot be tied to the handshake that issued it (the ticket travels encrypted)"
                } else {
                    "the original handshake is not in this capture"
                };
                evidence.push(format!(
                    "resumed ({}): no certificates on the wire and {origin}; client identity not observable",
                    r.name()
                ));
            }
        }
    } else if tls13 {
        let t = infer_tls13(f);
        let d = dec;
        let r = d.map(|d| decrypted::read(d, cov.client, handshake_name));
        match (d, &r) {
            (Some(d), Some(r @ decrypted::Reading { answer: Some(a), .. })) => {
                // The wire, decrypted, shows it: the lengths are only compared with it.
                kind = if *a == decrypted::Answer::Certificate {
                    Kind::Mtls
                } else {
                    Kind::Tls
                };
                confidence = Confidence::Certain;
                handshake = match t.handshake {
                    Handshake::Failed => Handshake::Failed,
                    _ if r.complete => Handshake::Complete,
                    h => h,
                };
                evidence.extend(r.evidence.iter().cloned());
                if t.kind != kind {
                    evidence.push(format!(
                        "the length inference said {} ({})",
                        t.kind.name(),
                        t.confidence.name()
                    ));
                }
                rep.client_cert_requested = r.cert_requested.or(t.cert_requested);
                rep.client_certificate = d.client_chain.as_ref().and_then(|c| c.leaf.clone());
                rep.client_chain_len = d.client_chain.as_ref().map(|c| c.len);
                rep.server_certificate = d.server_chain.as_ref().and_then(|c| c.leaf.clone());
                rep.server_chain_len = d.server_chain.as_ref().map(|c| c.len);
                client_id = decrypted::leaf(&d.client_chain).map(CertInfo::identity);
                server_id = decrypted::leaf(&d.server_chain).map(CertInfo::identity).or(server_id);
            }
            _ => {
                kind = t.kind;
                confidence = t.confidence;
                handshake = t.handshake;
                evidence.extend(t.evidence);
                rep.client_cert_requested = t.cert_requested;
                if let Some(r) = &r {
                    // A wrong key (or one that got nowhere) is said, and the inference stands.
                    evidence.extend(r.evidence.iter().cloned());
                    rep.client_cert_requested = r.cert_requested.or(rep.client_cert_requested);
                }
            }
        }
        rep.keylog = r.map(|r| r.report);
        rep.tls13 = Some(tls13_report(f));
    } else {
        handshake = if fatal.is_some() {
            Handshake::Failed
        } else if f.finished[Side::Lo] && f.finished[Side::Hi] {
            Handshake::Complete
        } else {
            Handshake::Incomplete
        };
        confidence = Confidence::Certain;
        // A client sends a Certificate only when asked (RFC 5246, 7.4.6).
        rep.client_cert_requested = Some(f.certificate_requested || f.client_chain.is_some());
        match &f.client_chain {
            Some(c) if c.len > 0 => {
                kind = Kind::Mtls;
                evidence.push(format!(
                    "client sent a Certificate: {} (chain of {})",
                    client_id.as_deref().unwrap_or("unparsed certificate"),
                    c.len
                ));
            }
            Some(_) => {
                kind = Kind::Tls;
                evidence.push("certificate requested, client sent an empty Certificate".into());
            }
            None if f.certificate_requested => {
                kind = Kind::Tls;
                if handshake == Handshake::Complete {
                    evidence.push("certificate requested, client sent no Certificate message".into());
                } else {
                    confidence = Confidence::Uncertain;
                    let unseen = coverage::unseen(f, cov, cov.client, "the client's answer");
                    evidence.push(format!("certificate requested; {unseen}"));
                }
            }
            None => {
                kind = Kind::Tls;
                if f.messages.iter().any(|m| Some(m.from) == server && m.ty == 14) {
                    evidence.push("no client certificate requested".into());
                } else {
                    confidence = Confidence::Uncertain;
                    let unseen = coverage::unseen(f, cov, cov.server(), "the server's ServerHelloDone");
                    evidence.push(format!(
                        "whether a client certificate was requested is not known; {unseen}"
                    ));
                }
            }
        }
        if let Some(a) = fatal {
            evidence.push(format!(
                "handshake failed: {} alert {}",
                if Some(a.dir) == server { "server" } else { "client" },
                alert_name(a.description)
            ));
        }
    }
    if f.lost_sync.iter().any(|&l| l) && confidence == Confidence::Certain && kind == Kind::Tls {
        // A client certificate could have been in the missing bytes.
        confidence = Confidence::Uncertain;
        let lost = Side::BOTH.into_iter().filter(|&d| f.lost_sync[d]);
        evidence.extend(lost.map(|d| cov.handshake_bytes_missing(d)));
    }
    // What one direction proves is said above; say which one is missing unless that was said.
    if let Some(w) = cov.one_way().filter(|w| !evidence.iter().any(|e| e.contains(w))) {
        evidence.push(w.into());
    }
    evidence.extend(upgrade_note);
    if let Some(m) = &rep.mesh {
        evidence.push(mesh_evidence(m));
    }
    if kind != Kind::Mtls {
        client_id = None;
    }
    if handshake == Handshake::Failed && kind == Kind::Mtls && confidence == Confidence::Inferred {
        kind = Kind::Tls;
        confidence = Confidence::Uncertain;
        evidence.push(
            "handshake failed after the client's flight: a client certificate inferred from lengths \
             is not counted as mTLS"
                .into(),
        );
    }
    Verdict {
        verdict: kind,
        confidence,
        handshake,
        resumed: resumed.is_some(),
        client_identity: client_id,
        server_identity: server_id,
        evidence,
        tls: Some(rep),
        plaintext: answer.map(|info| PlaintextReport {
            info,
            upgrade_refused: upgrade,
            payload: None,
        }),
    }
}

fn mesh_evidence(m: &MeshSignal) -> String {
    match m {
        MeshSignal::Istio { service, alpn } => {
            let mut s = String::from("Istio sidecar signals:");
            if !alpn.is_empty() {
                s.push_str(&format!(" ALPN {}", alpn.join(",")));
            }
            if let Some(svc) = service {
                s.push_str(&format!(" SNI {} port {}", svc.host, svc.port));
            }
            s
        }
        MeshSignal::IstioAmbient => "Istio ambient HBONE (port 15008, TLS 1.3, ALPN h2)".into(),
        MeshSignal::Linkerd { .. } => "Linkerd identity SNI / ALPN".into(),
        MeshSignal::Consul { .. } => "Consul Connect SNI".into(),
    }
}

/// What the lengths of a TLS 1.3 handshake say about the client's certificate.
struct Tls13Inference {
    kind: Kind,
    confidence: Confidence,
    handshake: Handshake,
    evidence: Vec<String>,
    /// Whether the server asked for a certificate, when the lengths tell.
    cert_requested: Option<bool>,
}

/// TLS 1.3: was a client certificate sent? `tls13` reads the lengths; an answer it is not sure
/// of is `tls`, uncertain.
fn infer_tls13(f: &TlsFacts) -> Tls13Inference {
    let r = tls13::read(f);
    let (kind, confidence) = match r.answer {
        Answer::Certificate => (Kind::Mtls, Confidence::Inferred),
        Answer::NoCertificate => (Kind::Tls, Confidence::Inferred),
        Answer::Unknown => (Kind::Tls, Confidence::Uncertain),
    };
    Tls13Inference {
        kind,
        confidence,
        handshake: match r.progress {
            Progress::ClientFlightMissing => Handshake::Incomplete,
            Progress::Complete => Handshake::Complete,
            Progress::Rejected => Handshake::Failed,
        },
        evidence: r.evidence,
        cert_requested: r.cert_requested,
    }
}

pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        other => format!("0x{other:04x}"),
    }
}

fn cipher_name(c: u16) -> String {
    tls_parser::TlsCipherSuiteID(c)
        .get_ciphersuite()
        .map(|s| s.name.to_string())
        .unwrap_or_else(|| format!("0x{c:04x}"))
}

fn handshake_name(t: u8) -> String {
    handshake_str(t).map_or_else(|| format!("type_{t}"), String::from)
}

/// The RFC 8446 / RFC 5246 name of a handshake message type, when it has one.
fn handshake_str(t: u8) -> Option<&'static str> {
    Some(match t {
        0 => "hello_request",
        1 => "client_hello",
        2 => "server_hello",
        4 => "new_session_ticket",
        5 => "end_of_early_data",
        8 => "encrypted_extensions",
        11 => "certificate",
        12 => "server_key_exchange",
        13 => "certificate_request",
        14 => "server_hello_done",
        15 => "certificate_verify",
        16 => "client_key_exchange",
        20 => "finished",
        22 => "certificate_status",
        24 => "key_update",
        _ => return None,
    })
}

/// A handshake message seen in clear, as the report names it: `client:client_hello`, or
/// `server:type_99` for a type without a name. Written straight into the output: a `String` for
/// each was 12% of the allocations on the bench capture (9 messages a connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageName {
    pub from: &'static str,
    pub ty: u8,
}

impl std::fmt::Display for MessageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match handshake_str(self.ty) {
            Some(name) => write!(f, "{}:{name}", self.from),
            None => write!(f, "{}:type_{}", self.from, self.ty),
        }
    }
}

/// The report's text back (the agent's lines, read by the plugin).
impl std::str::FromStr for MessageName {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (from, name) = s.split_once(':').ok_or(())?;
        let from = match from {
            "client" => "client",
            "server" => "server",
            _ => return Err(()),
        };
        let ty = match name.strip_prefix("type_") {
            Some(n) => n.parse().map_err(|_| ())?,
            None => (0..=u8::MAX).find(|&t| handshake_str(t) == Some(name)).ok_or(())?,
        };
        Ok(MessageName { from, ty })
    }
}

impl Serialize for MessageName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// RFC 8446 / RFC 5246 alert names.
pub fn alert_name(d: u8) -> String {
    match d {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return format!("alert_{d}"),
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names in `handshake_messages`, with and without a known type, as text and as JSON.
    #[test]
    fn message_names() {
        let known = MessageName { from: "client", ty: 1 };
        let unknown = MessageName { from: "server", ty: 99 };
        assert_eq!(known.to_string(), "client:client_hello");
        assert_eq!(unknown.to_string(), "server:type_99");
        assert_eq!(
            serde_json::to_string(&[known, unknown]).unwrap(),
            r#"["client:client_hello","server:type_99"]"#
        );
        assert_eq!("client:client_hello".parse(), Ok(known));
        assert_eq!("server:type_99".parse(), Ok(unknown));
        assert_eq!("peer:finished".parse::<MessageName>(), Err(()));
        assert_eq!("client:hello".parse::<MessageName>(), Err(()));
        assert_eq!(handshake_name(99), "type_99");
        assert_eq!(handshake_name(20), "finished");
    }
}
