//! Which service mesh set up a TLS connection, judged from what the handshake shows in clear:
//! SNI, the client's ALPN list, the server port and the negotiated version. These are naming
//! conventions of the mesh proxies, not proofs; they strengthen a verdict, they do not make one.

/// A mesh recognised from one connection's handshake.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "mesh", rename_all = "lowercase")]
pub enum MeshSignal {
    /// Sidecar mTLS. `alpn` holds the Istio-specific ALPN values the client offered (empty when
    /// only the SNI gave it away).
    Istio {
        #[serde(skip_serializing_if = "Option::is_none")]
        service: Option<IstioService>,
        alpn: Vec<String>,
    },
    /// Ambient mode's HBONE tunnel: port 15008, TLS 1.3, ALPN h2, no SNI.
    IstioAmbient,
    Linkerd {
        service_account: Option<String>,
        namespace: Option<String>,
        control_plane_ns: Option<String>,
        trust_domain: Option<String>,
    },
    Consul {
        service: Option<String>,
        namespace: Option<String>,
        datacenter: Option<String>,
        trust_domain: Option<String>,
    },
}

/// Istio's SNI for a destination cluster: its cluster name `outbound|<port>|<subset>|<host>`
/// with `|` written as `_.`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IstioService {
    /// "outbound" or "inbound".
    pub direction: String,
    pub port: u16,
    /// DestinationRule subset; None when the SNI has an empty subset.
    pub subset: Option<String>,
    pub host: String,
    /// From a Kubernetes service host `<svc>.<ns>.svc.<domain>`.
    pub service: Option<String>,
    pub namespace: Option<String>,
}

const ISTIO_ALPNS: &[&str] = &[
    "istio",
    "istio-peer-exchange",
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
];
const LINKERD_ALPN: &str = "transport.l5d.io/v1";
const LINKERD_INBOUND_PORT: u16 = 4143;
const HBONE_PORT: u16 = 15008;

/// Parse Istio's SNI `outbound_.<port>_.<subset>_.<host>` (subset may be empty:
/// `outbound_.9080_._.reviews.bookinfo.svc.cluster.local`); service/namespace from a
/// `<svc>.<ns>.svc.<domain>` host.
pub fn parse_istio_sni(sni: &str) -> Option<IstioService> {
    istio_sni(&normalize(sni))
}

/// [`parse_istio_sni`] of an SNI already normalized.
fn istio_sni(sni: &str) -> Option<IstioService> {
    let mut parts = sni.splitn(4, "_.");
    let direction = parts.next()?;
    let port = parts.next()?;
    let subset = parts.next()?;
    let host = parts.next()?;
    if direction != "outbound" && direction != "inbound" {
        return None;
    }
    // u16 parsing alone would accept "+80".
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    if !subset.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    let labels = dns_labels(host)?;
    let (service, namespace) = match labels.as_slice() {
        [svc, ns, "svc", ..] => (Some((*svc).to_string()), Some((*ns).to_string())),
        _ => (None, None),
    };
    Some(IstioService {
        direction: direction.to_string(),
        port,
        subset: (!subset.is_empty()).then(|| subset.to_string()),
        host: host.to_string(),
        service,
        namespace,
    })
}

/// Combine what the ClientHello/ServerHello showed: sni, ALPN offered by the client, the server
/// port, the negotiated version (0x0304 for TLS 1.3, None if unknown).
///
/// `tls13` is true only when TLS 1.3 was actually negotiated; pass false when unknown. Signals
/// are tried from the most specific (a mesh's own SNI or ALPN) to the least (a port).
pub fn detect(sni: Option<&str>, alpn_offered: &[String], server_port: u16, tls13: bool) -> Option<MeshSignal> {
    let istio_alpn: Vec<String> = alpn_offered
        .iter()
        .filter(|a| ISTIO_ALPNS.contains(&a.as_str()))
        .cloned()
        .collect();
    // The SNI is normalized and split into labels once for all the meshes (before: normalized
    // three times and split twice, 2,200 instructions a TLS connection on the bench capture;
    // 1,270 now, callgrind).
    let sni = sni.map(normalize);
    let sni = sni.as_deref();
    let istio_service = sni.and_then(istio_sni);
    if istio_service.is_some() || !istio_alpn.is_empty() {
        return Some(MeshSignal::Istio {
            service: istio_service,
            alpn: istio_alpn,
        });
    }
    let labels = sni.and_then(dns_labels);

    if let Some(linkerd) = labels.as_deref().and_then(linkerd_sni) {
        return Some(linkerd);
    }
    if alpn_offered.iter().any(|a| a == LINKERD_ALPN) {
        return Some(linkerd_unnamed());
    }
    if let Some(consul) = labels.as_deref().and_then(consul_sni) {
        return Some(consul);
    }
    // ztunnel's tunnel carries no SNI; the destination is inside the CONNECT request.
    let hbone =
        server_port == HBONE_PORT && tls13 && sni.is_none_or(str::is_empty) && alpn_offered.iter().any(|a| a == "h2");
    if hbone {
        return Some(MeshSignal::IstioAmbient);
    }
    // Linkerd's proxies only speak TLS 1.3, and 4143 is their inbound port; without the SNI or
    // ALPN above, nothing more can be said about the identities.
    if server_port == LINKERD_INBOUND_PORT && tls13 {
        return Some(linkerd_unnamed());
    }
    None
}

fn linkerd_unnamed() -> MeshSignal {
    MeshSignal::Linkerd {
        service_account: None,
        namespace: None,
        control_plane_ns: None,
        trust_domain: None,
    }
}

/// `<sa>.<ns>.serviceaccount.identity.<control-plane-ns>.<trust-domain>`, from the labels of
/// the normalized SNI.
fn linkerd_sni(labels: &[&str]) -> Option<MeshSignal> {
    let [sa, ns, "serviceaccount", "identity", cp_ns, trust_domain @ ..] = labels else {
        return None;
    };
    if trust_domain.is_empty() {
        return None;
    }
    Some(MeshSignal::Linkerd {
        service_account: Some((*sa).to_string()),
        namespace: Some((*ns).to_string()),
        control_plane_ns: Some((*cp_ns).to_string()),
        trust_domain: Some(trust_domain.join(".")),
    })
}

/// Consul Connect's upstream SNI: `[<subset>.]<svc>.<ns>.<dc>.internal.<trust-domain>`, or with
/// an admin partition `[<subset>.]<svc>.<ns>.<partition>.<dc>.internal-v1.<trust-domain>`, from
/// the labels of the normalized SNI.
fn consul_sni(labels: &[&str]) -> Option<MeshSignal> {
    let marker = labels.iter().position(|l| *l == "internal" || *l == "internal-v1")?;
    let (names, rest) = labels.split_at(marker);
    let (&kind, trust_domain) = rest.split_first()?;
    if trust_domain.is_empty() {
        return None;
    }
    let (svc, ns, dc) = match (kind, names) {
        ("internal", [.., svc, ns, dc]) if names.len() <= 4 => (svc, ns, dc),
        ("internal-v1", [.., svc, ns, _partition, dc]) if names.len() <= 5 => (svc, ns, dc),
        _ => return None,
    };
    Some(MeshSignal::Consul {
        service: Some((*svc).to_string()),
        namespace: Some((*ns).to_string()),
        datacenter: Some((*dc).to_string()),
        trust_domain: Some(trust_domain.join(".")),
    })
}

/// SNI is a DNS name: compare without case and without a trailing root dot.
fn normalize(sni: &str) -> String {
    sni.strip_suffix('.').unwrap_or(sni).to_ascii_lowercase()
}

/// Labels of a host name, or None if any label is empty or has characters no mesh would put
/// in a name (underscore is allowed: it appears in real service names despite RFC 1123).
fn dns_labels(host: &str) -> Option<Vec<&str>> {
    let labels: Vec<&str> = host.split('.').collect();
    let valid = |l: &&str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    labels.iter().all(valid).then_some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_consul_sni(sni: &str) -> Option<MeshSignal> {
        consul_sni(&dns_labels(&normalize(sni))?)
    }

    fn alpn(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn istio_sni_empty_subset() {
        assert_eq!(
            parse_istio_sni("outbound_.9080_._.reviews.bookinfo.svc.cluster.local"),
            Some(IstioService {
                direction: "outbound".into(),
                port: 9080,
                subset: None,
                host: "reviews.bookinfo.svc.cluster.local".into(),
                service: Some("reviews".into()),
                namespace: Some("bookinfo".into()),
            })
        );
    }

    #[test]
    fn istio_sni_with_subset_and_non_kubernetes_host() {
        let s = parse_istio_sni("outbound_.443_.v2_.api.example.com").unwrap();
        assert_eq!(s.subset.as_deref(), Some("v2"));
        assert_eq!(s.port, 443);
        assert_eq!(s.host, "api.example.com");
        assert_eq!((s.service, s.namespace), (None, None));
        let inbound = parse_istio_sni("Inbound_.8080_._.Ratings.Bookinfo.svc.cluster.local.").unwrap();
        assert_eq!(inbound.direction, "inbound");
        assert_eq!(inbound.service.as_deref(), Some("ratings"));
    }

    #[test]
    fn istio_sni_rejects_near_misses() {
        for sni in [
            "outbound_.0_._.reviews.bookinfo.svc.cluster.local",
            "outbound_.70000_._.reviews.bookinfo.svc.cluster.local",
            "outbound_.+80_._.reviews.bookinfo.svc.cluster.local",
            "outbound_.9080_._.",
            "outbound_.9080_.v1",
            "sideways_.9080_._.reviews.bookinfo.svc.cluster.local",
            "outbound_.9080_.v 1_.reviews.bookinfo.svc.cluster.local",
            "reviews.bookinfo.svc.cluster.local",
            "",
        ] {
            assert_eq!(parse_istio_sni(sni), None, "{sni}");
        }
    }

    #[test]
    fn istio_from_sni_and_alpn() {
        let offered = alpn(&["istio-peer-exchange", "istio-http/1.1", "istio", "http/1.1"]);
        let signal = detect(
            Some("outbound_.9080_._.reviews.bookinfo.svc.cluster.local"),
            &offered,
            9080,
            true,
        )
        .unwrap();
        let MeshSignal::Istio { service, alpn } = &signal else {
            panic!("{signal:?}");
        };
        assert_eq!(service.as_ref().unwrap().service.as_deref(), Some("reviews"));
        assert_eq!(alpn, &["istio-peer-exchange", "istio-http/1.1", "istio"]);

        let json = serde_json::to_value(&signal).unwrap();
        assert_eq!(json["mesh"], "istio");
        assert_eq!(json["service"]["namespace"], "bookinfo");
    }

    #[test]
    fn istio_from_alpn_only_omits_service() {
        let signal = detect(None, &alpn(&["istio-h2", "h2"]), 8080, false).unwrap();
        assert_eq!(
            signal,
            MeshSignal::Istio {
                service: None,
                alpn: alpn(&["istio-h2"]),
            }
        );
        let json = serde_json::to_value(&signal).unwrap();
        assert!(json.get("service").is_none(), "{json}");
    }

    #[test]
    fn linkerd_from_sni() {
        let signal = detect(
            Some("web.emojivoto.serviceaccount.identity.linkerd.cluster.local"),
            &[],
            8080,
            true,
        );
        assert_eq!(
            signal,
            Some(MeshSignal::Linkerd {
                service_account: Some("web".into()),
                namespace: Some("emojivoto".into()),
                control_plane_ns: Some("linkerd".into()),
                trust_domain: Some("cluster.local".into()),
            })
        );
        assert_eq!(serde_json::to_value(signal.unwrap()).unwrap()["mesh"], "linkerd");
        // No trust domain after the control-plane namespace.
        assert_eq!(
            detect(Some("web.emojivoto.serviceaccount.identity.linkerd"), &[], 8080, true),
            None
        );
    }

    #[test]
    fn linkerd_from_alpn_or_port() {
        let unnamed = Some(linkerd_unnamed());
        assert_eq!(detect(None, &alpn(&[LINKERD_ALPN]), 4143, true), unnamed);
        assert_eq!(
            detect(Some("db.internal.example"), &alpn(&[LINKERD_ALPN]), 5432, false),
            unnamed
        );
        assert_eq!(detect(None, &[], 4143, true), unnamed);
        // Linkerd never negotiates below TLS 1.3.
        assert_eq!(detect(None, &[], 4143, false), None);
    }

    #[test]
    fn consul() {
        let signal = detect(
            Some("billing.default.dc1.internal.7f8a3c1e-1b2c-4d5e-8f90-a1b2c3d4e5f6.consul"),
            &alpn(&["http/1.1"]),
            21000,
            true,
        );
        assert_eq!(
            signal,
            Some(MeshSignal::Consul {
                service: Some("billing".into()),
                namespace: Some("default".into()),
                datacenter: Some("dc1".into()),
                trust_domain: Some("7f8a3c1e-1b2c-4d5e-8f90-a1b2c3d4e5f6.consul".into()),
            })
        );
        let subset = parse_consul_sni("v2.billing.payments.dc2.internal.td.consul").unwrap();
        assert!(
            matches!(subset, MeshSignal::Consul { service: Some(ref s), namespace: Some(ref n), .. } if s == "billing" && n == "payments")
        );
        let partition = parse_consul_sni("billing.payments.ap1.dc2.internal-v1.td.consul").unwrap();
        assert!(matches!(partition, MeshSignal::Consul { datacenter: Some(ref d), .. } if d == "dc2"));
        assert_eq!(parse_consul_sni("dc1.internal.td.consul"), None);
        assert_eq!(parse_consul_sni("billing.default.dc1.internal"), None);
        assert_eq!(parse_consul_sni("a.b.c.d.e.internal.td.consul"), None);
    }

    #[test]
    fn hbone() {
        let h2 = alpn(&["h2"]);
        assert_eq!(detect(None, &h2, 15008, true), Some(MeshSignal::IstioAmbient));
        assert_eq!(
            serde_json::to_value(MeshSignal::IstioAmbient).unwrap()["mesh"],
            "istioambient"
        );
        assert_eq!(detect(Some("example.com"), &h2, 15008, true), None);
        assert_eq!(detect(None, &h2, 15008, false), None);
        assert_eq!(detect(None, &alpn(&["http/1.1"]), 15008, true), None);
        assert_eq!(detect(None, &h2, 15009, true), None);
    }

    #[test]
    fn plain_tls_is_no_mesh() {
        assert_eq!(
            detect(Some("www.example.com"), &alpn(&["h2", "http/1.1"]), 443, true),
            None
        );
        assert_eq!(detect(None, &[], 443, false), None);
    }
}
