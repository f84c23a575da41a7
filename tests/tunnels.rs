//! Node-level captures (`captures/node-*.pcap`, made by `captures/generate.sh` with real tunnels
//! between two namespaces, captured on the underlay): every packet is opened down to the
//! pod-to-pod TCP segment, the connections get the verdicts of what ran inside the tunnel, and
//! WireGuard between the nodes is recognised as node-level encryption with no connection in it.
//! (`tests/captures.rs` also compares these captures with their expected files.)

use mtlscope::pipeline::decode::tunnel::{NodeEncryption, Tunnel, TunnelKind};
use mtlscope::pipeline::decode::{decode_packet, Packet, Skip};
use mtlscope::pipeline::engine::Config;
use mtlscope::pipeline::runner::analyze_files;
use mtlscope::pipeline::source::CaptureReader;
use mtlscope::pipeline::verdict::Kind;
use std::collections::BTreeSet;
use std::net::IpAddr;

const NODES: [&str; 2] = ["10.99.0.1", "10.99.0.2"];
const PODS: [&str; 2] = ["10.244.1.5", "10.244.2.7"];

fn path(name: &str) -> String {
    format!("{}/captures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn ips(a: [&str; 2]) -> [IpAddr; 2] {
    a.map(|s| s.parse().unwrap())
}

/// Decode every packet of a capture.
fn each_packet(name: &str, mut f: impl FnMut(Result<Packet<'_>, Skip>)) -> usize {
    let mut r = CaptureReader::open(&path(name)).unwrap();
    let mut n = 0;
    while let Some(p) = r.next_packet().unwrap() {
        f(decode_packet(p.link, p.data));
        n += 1;
    }
    n
}

/// Every packet is a pod-to-pod TCP segment inside the node-to-node tunnel `kind`.
fn assert_all_tunnelled(name: &str, kind: TunnelKind, vni: Option<u32>) {
    let (nodes, pods) = (ips(NODES), ips(PODS));
    let n = each_packet(name, |p| {
        let seg = match p {
            Ok(Packet::Tcp(seg)) => seg,
            other => panic!("{name}: not a tunnelled TCP segment: {other:?}"),
        };
        assert!(
            pods.contains(&seg.src) && pods.contains(&seg.dst),
            "{name}: inner {seg:?}"
        );
        let Some(Tunnel {
            kind: k,
            outer_src,
            outer_dst,
            vni: v,
        }) = seg.tunnel
        else {
            panic!("{name}: no tunnel on {seg:?}")
        };
        assert_eq!((k, v), (kind, vni), "{name}");
        assert!(nodes.contains(&outer_src) && nodes.contains(&outer_dst) && outer_src != outer_dst);
        // the outer direction is the inner one: pod 1 lives on node 1
        assert_eq!(
            pods.iter().position(|a| *a == seg.src),
            nodes.iter().position(|a| *a == outer_src)
        );
    });
    assert!(n > 20, "{name}: only {n} packets");
}

/// (client, server, verdict, client identity) of every connection, in order of first packet.
fn verdicts(name: &str) -> Vec<(String, String, Kind, Option<String>)> {
    let (flows, summary) = analyze_files(&[path(name)], None, Config::default()).unwrap();
    assert!(summary.errors.is_empty(), "{name}: {:?}", summary.errors);
    assert_eq!(
        summary.packets, summary.tcp_packets,
        "{name}: undecoded packets {:?}",
        summary.skipped
    );
    flows
        .iter()
        .map(|f| {
            (
                f.client.ip.to_string(),
                f.server.to_string(),
                f.verdict.verdict,
                f.verdict.client_identity.clone(),
            )
        })
        .collect()
}

fn conn(server: &str, kind: Kind, identity: Option<&str>) -> (String, String, Kind, Option<String>) {
    (PODS[0].into(), server.into(), kind, identity.map(Into::into))
}

#[test]
fn vxlan_4789_pod_connections_are_classified() {
    let name = "node-vxlan-tls13-mtls-http.pcap";
    assert_all_tunnelled(name, TunnelKind::Vxlan, Some(42));
    assert_eq!(
        verdicts(name),
        [
            conn("10.244.2.7:4440", Kind::Mtls, None),
            conn("10.244.2.7:8080", Kind::Plaintext, None)
        ]
    );
}

#[test]
fn vxlan_8472_flannel_shows_certificates_inside_the_tunnel() {
    let name = "node-vxlan-flannel-tls12-mtls.pcap";
    assert_all_tunnelled(name, TunnelKind::Vxlan, Some(42));
    assert_eq!(
        verdicts(name),
        [conn("10.244.2.7:4441", Kind::Mtls, Some("client.test"))]
    );
}

#[test]
fn geneve_ovn_style_with_options() {
    let name = "node-geneve-istio-tls12-mtls-http.pcap";
    assert_all_tunnelled(name, TunnelKind::Geneve, Some(42));
    assert_eq!(
        verdicts(name),
        [
            conn(
                "10.244.2.7:9080",
                Kind::Mtls,
                Some("spiffe://cluster.local/ns/bookinfo/sa/productpage")
            ),
            conn("10.244.2.7:8080", Kind::Plaintext, None)
        ]
    );
}

#[test]
fn ip_in_ip() {
    let name = "node-ipip-tls13-http.pcap";
    assert_all_tunnelled(name, TunnelKind::IpInIp, None);
    assert_eq!(
        verdicts(name),
        [
            conn("10.244.2.7:4442", Kind::Tls, None),
            conn("10.244.2.7:8080", Kind::Plaintext, None)
        ]
    );
}

#[test]
fn wireguard_between_nodes_is_node_level_encryption() {
    let name = "node-wireguard.pcap";
    let nodes = ips(NODES);
    let mut messages = BTreeSet::new();
    let n = each_packet(name, |p| match p {
        Ok(Packet::NodeEncrypted(e)) => {
            let NodeEncryption::WireGuard { message } = e.kind else {
                panic!("{name}: {e:?}")
            };
            messages.insert(message);
            assert!(nodes.contains(&e.src) && nodes.contains(&e.dst));
            assert_eq!((e.sport, e.dport, e.tunnel), (51820, 51820, None));
            assert!(e.wire_len >= 32);
        }
        other => panic!("{name}: not WireGuard: {other:?}"),
    });
    assert!(n > 20);
    // handshake initiation, response, then transport data
    assert_eq!(messages, BTreeSet::from([1, 2, 4]));
    // no TCP connection is visible inside
    let (flows, summary) = analyze_files(&[path(name)], None, Config::default()).unwrap();
    assert!(flows.is_empty());
    assert_eq!((summary.packets, summary.tcp_packets), (n as u64, 0));
}

#[test]
fn wireguard_between_nodes_is_reported_as_encrypted_at_node_level() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/node-wireguard.pcap");
    let (flows, summary) = mtlscope::pipeline::runner::analyze_files(
        &[path.to_string_lossy().into_owned()],
        None,
        mtlscope::pipeline::engine::Config::default(),
    )
    .unwrap();
    assert!(flows.is_empty());
    let n = &summary.node_encrypted;
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].kind, "wireguard");
    assert_eq!(n[0].packets, 41);
    assert_eq!(n[0].endpoints[0].to_string(), "10.99.0.1:51820");
    assert!(summary.line().contains("encrypted at node level (wireguard)"));
}

#[test]
fn connections_carry_their_tunnel() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/node-geneve-istio-tls12-mtls-http.pcap");
    let (flows, _) = mtlscope::pipeline::runner::analyze_files(
        &[path.to_string_lossy().into_owned()],
        None,
        mtlscope::pipeline::engine::Config::default(),
    )
    .unwrap();
    let t = flows[0].tunnel.as_ref().expect("tunnel");
    assert_eq!((t.kind, t.vni), ("geneve", Some(42)));
    assert_eq!(t.outer_src.to_string(), "10.99.0.1");
}
