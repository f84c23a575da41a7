//! Node-level encapsulations: overlay tunnels whose inner packets are pod-to-pod connections
//! (VXLAN, Geneve, IP-in-IP), and node-to-node encryption whose inner packets cannot be seen
//! (WireGuard, IPsec ESP). The decoder opens the tunnels these functions recognise.
//!
//! Everything here looks at one UDP or IP payload and never allocates. A tunnel is recognised by
//! its well-known port *and* a header that checks out, so a random UDP datagram to port 4789 is
//! not taken for VXLAN.

use std::net::IpAddr;

/// VXLAN: the IANA port and the Linux kernel's default (flannel, Cilium, Calico's VXLAN mode).
pub const VXLAN_PORTS: [u16; 2] = [4789, 8472];
/// Geneve (RFC 8926): OVN-Kubernetes (OpenShift), Cilium's Geneve mode.
pub const GENEVE_PORT: u16 = 6081;
/// WireGuard: the usual port (Calico, flannel's IPv4 backend), flannel's IPv6 backend, Cilium.
/// WireGuard has no assigned port; on other ports only its fixed-size handshake messages are
/// recognised (see [`wireguard`]).
pub const WIREGUARD_PORTS: [u16; 3] = [51820, 51821, 51871];
/// IKE NAT traversal (RFC 3948): ESP inside UDP.
pub const ESP_IN_UDP_PORT: u16 = 4500;

/// Geneve protocol type for an Ethernet frame (Transparent Ethernet Bridging).
const ETHER_TYPE_TEB: u16 = 0x6558;

/// The encapsulation a TCP segment arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    Vxlan,
    Geneve,
    /// IPv4 or IPv6 directly inside IPv4 or IPv6 (IP protocol 4 or 41): Calico's IPIP mode.
    IpInIp,
}

impl TunnelKind {
    pub fn name(self) -> &'static str {
        match self {
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::IpInIp => "ipip",
        }
    }
}

/// The outermost tunnel around a packet: the node-to-node leg a capture on a node's physical
/// interface sees. Nested tunnels (rare) keep only the outermost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tunnel {
    pub kind: TunnelKind,
    /// Outer (node) addresses.
    pub outer_src: IpAddr,
    pub outer_dst: IpAddr,
    /// VXLAN / Geneve virtual network identifier (24 bits); None for IP-in-IP.
    pub vni: Option<u32>,
}

/// Node-to-node encryption: what it carries is not visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeEncryption {
    /// WireGuard; `message` is the message type: 1 handshake initiation, 2 handshake response,
    /// 3 cookie reply, 4 transport data.
    WireGuard { message: u8 },
    /// IPsec ESP, in IP (protocol 50) or, with `udp`, in UDP (NAT traversal, port 4500).
    Esp { spi: u32, udp: bool },
}

impl NodeEncryption {
    pub fn name(self) -> &'static str {
        match self {
            NodeEncryption::WireGuard { .. } => "wireguard",
            NodeEncryption::Esp { .. } => "ipsec-esp",
        }
    }
}

/// One packet of node-level encrypted traffic, with its outer endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeEncrypted {
    pub kind: NodeEncryption,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// UDP ports; 0 for ESP directly in IP.
    pub sport: u16,
    pub dport: u16,
    /// Length of the encrypted message (UDP payload, or ESP packet) as the headers announce it,
    /// which may exceed what the snap length kept.
    pub wire_len: u32,
    /// A tunnel around it, when node encryption itself runs inside an overlay.
    pub tunnel: Option<Tunnel>,
}

/// What a tunnel header says follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inner<'a> {
    Ethernet(&'a [u8]),
    /// An IP packet; the EtherType says IPv4 (0x0800) or IPv6 (0x86DD).
    Ip(u16, &'a [u8]),
}

/// A VXLAN header (RFC 7348): flags with the I bit (0x08) set, 3 reserved bytes, 24-bit VNI,
/// 1 reserved byte, then an Ethernet frame. Other flag bits (VXLAN-GBP's G bit) are tolerated.
pub fn vxlan(payload: &[u8]) -> Option<(u32, &[u8])> {
    let h = payload.get(..8)?;
    if h[0] & 0x08 == 0 {
        return None;
    }
    let vni = u32::from_be_bytes([0, h[4], h[5], h[6]]);
    Some((vni, &payload[8..]))
}

/// A Geneve header (RFC 8926): version 0, option length in 4-byte words, protocol type, VNI.
/// Only Ethernet (0x6558) and IPv4/IPv6 payloads are followed.
pub fn geneve(payload: &[u8]) -> Option<(u32, Inner<'_>)> {
    let h = payload.get(..8)?;
    if h[0] >> 6 != 0 {
        return None;
    }
    let opt_len = usize::from(h[0] & 0x3f) * 4;
    let protocol = u16::from_be_bytes([h[2], h[3]]);
    let vni = u32::from_be_bytes([0, h[4], h[5], h[6]]);
    let inner = payload.get(8 + opt_len..)?;
    match protocol {
        ETHER_TYPE_TEB => Some((vni, Inner::Ethernet(inner))),
        0x0800 | 0x86dd => Some((vni, Inner::Ip(protocol, inner))),
        _ => None,
    }
}

/// A WireGuard message: type 1-4, then three reserved zero bytes, and the size its type fixes
/// (148, 92, 64 bytes; transport data: a 16-byte header, the data and a 16-byte tag, at least
/// 32 bytes). Transport data is padded to a multiple of 16 only up to the tunnel MTU, so an
/// MTU-sized packet can have any length (measured: 1452 bytes with wireguard-go's MTU 1420).
/// `len` is the UDP payload length announced on the wire. On the [`WIREGUARD_PORTS`] every
/// type is accepted; on other ports only the fixed-size handshake messages, which nothing else
/// plausibly mimics (a transport-data packet alone is too weak a signal there).
pub fn wireguard(sport: u16, dport: u16, len: usize, payload: &[u8]) -> Option<u8> {
    let h = payload.get(..4)?;
    if h[1..4] != [0, 0, 0] {
        return None;
    }
    let known_port = WIREGUARD_PORTS.contains(&sport) || WIREGUARD_PORTS.contains(&dport);
    let fits = match h[0] {
        1 => len == 148,
        2 => len == 92,
        3 => len == 64,
        4 => known_port && len >= 32,
        _ => false,
    };
    fits.then_some(h[0])
}

/// ESP in UDP on port 4500 (RFC 3948): a non-zero SPI first. A zero first word is the
/// non-ESP marker of IKE, and a single 0xFF byte a NAT keepalive.
pub fn esp_in_udp(sport: u16, dport: u16, payload: &[u8]) -> Option<u32> {
    if sport != ESP_IN_UDP_PORT && dport != ESP_IN_UDP_PORT {
        return None;
    }
    esp_spi(payload)
}

/// The SPI of an ESP packet: 4-byte SPI (never 0; 1-255 are reserved) and a 4-byte sequence
/// number before the encrypted data.
pub fn esp_spi(payload: &[u8]) -> Option<u32> {
    let h = payload.get(..8)?;
    let spi = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    (spi != 0).then_some(spi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan_needs_the_i_flag() {
        let mut h = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
        h.extend_from_slice(b"frame");
        assert_eq!(vxlan(&h), Some((42, &b"frame"[..])));
        h[0] = 0;
        assert_eq!(vxlan(&h), None);
        assert_eq!(vxlan(&[0x08, 0, 0]), None);
    }

    #[test]
    fn geneve_skips_options_and_checks_version() {
        // one 8-byte option (opt len 2 words)
        let mut h = vec![0x02, 0, 0x65, 0x58, 0, 0x01, 0x00, 0];
        h.extend_from_slice(&[0xff; 8]);
        h.extend_from_slice(b"eth");
        assert_eq!(geneve(&h), Some((256, Inner::Ethernet(&b"eth"[..]))));
        h[2..4].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(geneve(&h), Some((256, Inner::Ip(0x0800, &b"eth"[..]))));
        h[0] = 0x42; // version 1
        assert_eq!(geneve(&h), None);
        // options longer than the packet
        assert_eq!(geneve(&[0x3f, 0, 0x65, 0x58, 0, 0, 1, 0, 1, 2]), None);
        // unknown protocol type
        assert_eq!(geneve(&[0, 0, 0x12, 0x34, 0, 0, 1, 0]), None);
    }

    #[test]
    fn wireguard_message_sizes() {
        let init = [1u8, 0, 0, 0];
        assert_eq!(wireguard(40000, 51820, 148, &init), Some(1));
        assert_eq!(
            wireguard(40000, 9999, 148, &init),
            Some(1),
            "handshake is recognised on any port"
        );
        assert_eq!(wireguard(40000, 51820, 149, &init), None);
        assert_eq!(wireguard(40000, 51820, 92, &[2, 0, 0, 0]), Some(2));
        assert_eq!(wireguard(40000, 51820, 64, &[3, 0, 0, 0]), Some(3));
        assert_eq!(wireguard(51820, 40000, 32, &[4, 0, 0, 0]), Some(4), "keepalive");
        assert_eq!(wireguard(51820, 40000, 1456, &[4, 0, 0, 0]), Some(4));
        assert_eq!(
            wireguard(51820, 40000, 1452, &[4, 0, 0, 0]),
            Some(4),
            "MTU-sized: padding capped"
        );
        assert_eq!(
            wireguard(51820, 40000, 31, &[4, 0, 0, 0]),
            None,
            "shorter than header + tag"
        );
        assert_eq!(
            wireguard(40000, 9999, 1456, &[4, 0, 0, 0]),
            None,
            "data only on WireGuard ports"
        );
        assert_eq!(wireguard(40000, 51820, 148, &[1, 0, 1, 0]), None, "reserved bytes");
        assert_eq!(wireguard(40000, 51820, 148, &[5, 0, 0, 0]), None);
        assert_eq!(wireguard(40000, 51820, 148, &[1, 0]), None);
    }

    #[test]
    fn esp_in_udp_skips_ike_and_keepalives() {
        let esp = [0, 0, 0x10, 0x01, 0, 0, 0, 1, 0xaa];
        assert_eq!(esp_in_udp(4500, 4500, &esp), Some(0x1001));
        assert_eq!(
            esp_in_udp(4500, 4500, &[0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44, 0]),
            None,
            "IKE"
        );
        assert_eq!(esp_in_udp(4500, 4500, &[0xff]), None, "keepalive");
        assert_eq!(esp_in_udp(1234, 5678, &esp), None);
    }
}
