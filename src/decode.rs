//! Stage 1, decode: link layer -> IPv4/IPv6 -> TCP header, through overlay tunnels.
//!
//! Link and IP layers are sliced with etherparse's lax parser, so a packet cut short by the snap
//! length still yields whatever headers are complete. The TCP header is read here directly because
//! the reassembler needs two facts etherparse's `TcpSlice` does not give for a cut packet: the
//! payload length the IP header announces (`wire_len`) and how much of it was captured.
//! Overlay tunnels a node-level capture sees (VXLAN, Geneve, IP-in-IP; [`crate::tunnel`]) are
//! opened and the inner packet decoded the same way, so connections are the pod-to-pod ones.
//! WireGuard and IPsec ESP between nodes are recognised and reported as such ([`Packet`]).
//! Nothing here allocates.

use crate::source::LinkType;
use crate::tunnel::{self, NodeEncrypted, NodeEncryption, Tunnel, TunnelKind};
use etherparse::{EtherType, IpNumber, LaxNetSlice, LaxSlicedPacket};
use std::net::IpAddr;

/// TCP flag bits as they appear in byte 13 of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

/// One TCP segment, borrowed from the packet buffer.
#[derive(Debug, Clone, Copy)]
pub struct TcpSegment<'a> {
    /// Addresses and ports of the connection; for a tunnelled packet, the inner (pod) ones.
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// The captured part of the payload.
    pub payload: &'a [u8],
    /// Payload length announced by the IP header; larger than `payload.len()` when the snap
    /// length cut the packet.
    pub wire_len: u32,
    /// The outermost overlay tunnel (VXLAN, Geneve, IP-in-IP) the segment was carried in.
    pub tunnel: Option<Tunnel>,
}

/// What a decoded frame carries that mtlscope can use.
#[derive(Debug, Clone, Copy)]
pub enum Packet<'a> {
    Tcp(TcpSegment<'a>),
    /// WireGuard or IPsec ESP between nodes: encrypted below TCP, so no connection inside it can
    /// be seen (an "encrypted at node level" flow).
    NodeEncrypted(NodeEncrypted),
}

/// Why a packet carries no TCP segment we can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not IP, or IP but not TCP (UDP, ICMP, ARP...), also inside a tunnel.
    NotTcp,
    /// A non-first IP fragment or a fragmented TCP segment: not reassembled at the IP layer.
    Fragment,
    /// The link type is not one mtlscope decodes.
    UnsupportedLink(LinkType),
    /// The headers are cut short or inconsistent, or tunnels nest deeper than
    /// [`MAX_TUNNEL_DEPTH`].
    Malformed,
}

/// Tunnels inside tunnels followed at most; real overlays nest one, rarely two, deep. Bounds the
/// work a crafted packet can cause.
pub const MAX_TUNNEL_DEPTH: usize = 4;

/// Decode one captured frame down to its TCP segment. Node-level encrypted packets (WireGuard,
/// ESP) are `Skip::NotTcp` here; [`decode_packet`] tells them apart.
pub fn decode(link: LinkType, data: &[u8]) -> Result<TcpSegment<'_>, Skip> {
    match decode_packet(link, data)? {
        Packet::Tcp(seg) => Ok(seg),
        Packet::NodeEncrypted(_) => Err(Skip::NotTcp),
    }
}

/// Decode one captured frame: a TCP segment (through any overlay tunnels), or a packet of
/// node-level encryption.
pub fn decode_packet(link: LinkType, data: &[u8]) -> Result<Packet<'_>, Skip> {
    let sliced = match link {
        LinkType::ETHERNET => LaxSlicedPacket::from_ethernet(data).map_err(|_| Skip::Malformed)?,
        // 12 and 14 are raw IP as some BSDs number it.
        LinkType::RAW | LinkType(12) | LinkType(14) | LinkType::IPV4 | LinkType::IPV6 => {
            LaxSlicedPacket::from_ip(data).map_err(|_| Skip::Malformed)?
        }
        LinkType::NULL | LinkType::LOOP => {
            // 4-byte address family in the capturing host's byte order (NULL) or network order
            // (LOOP). Values: 2 = IPv4; 24, 28, 30 = IPv6 on the BSDs and macOS.
            let family = data.get(..4).ok_or(Skip::Malformed)?;
            let le = u32::from_le_bytes([family[0], family[1], family[2], family[3]]);
            let be = u32::from_be_bytes([family[0], family[1], family[2], family[3]]);
            let ether_type = match (le, be) {
                (2, _) | (_, 2) => EtherType::IPV4,
                (24 | 28 | 30, _) | (_, 24 | 28 | 30) => EtherType::IPV6,
                _ => return Err(Skip::NotTcp),
            };
            LaxSlicedPacket::from_ether_type(ether_type, &data[4..])
        }
        LinkType::LINUX_SLL => {
            // 16-byte header; protocol type (an EtherType) in the last two bytes.
            let proto = data.get(14..16).ok_or(Skip::Malformed)?;
            let ether_type = EtherType(u16::from_be_bytes([proto[0], proto[1]]));
            LaxSlicedPacket::from_ether_type(ether_type, &data[16..])
        }
        LinkType::LINUX_SLL2 => {
            // 20-byte header; protocol type in the first two bytes.
            let proto = data.get(0..2).ok_or(Skip::Malformed)?;
            if data.len() < 20 {
                return Err(Skip::Malformed);
            }
            let ether_type = EtherType(u16::from_be_bytes([proto[0], proto[1]]));
            LaxSlicedPacket::from_ether_type(ether_type, &data[20..])
        }
        other => return Err(Skip::UnsupportedLink(other)),
    };
    ip_packet(sliced.net, None, 0)
}

/// The IP layer of a (possibly inner) packet. `tunnel` is the outermost tunnel around it,
/// `depth` how many tunnels were opened to get here.
fn ip_packet(net: Option<LaxNetSlice<'_>>, tunnel: Option<Tunnel>, depth: usize) -> Result<Packet<'_>, Skip> {
    let net = net.ok_or(Skip::NotTcp)?;
    let (src, dst, ip_payload, announced) = match net {
        LaxNetSlice::Ipv4(v4) => {
            let h = v4.header();
            let p = v4.payload().clone();
            // The IP payload length the header announces (total length minus header and
            // options), regardless of what the snap length kept.
            let announced = usize::from(h.total_len()).saturating_sub(h.slice().len());
            (IpAddr::from(h.source()), IpAddr::from(h.destination()), p, announced)
        }
        LaxNetSlice::Ipv6(v6) => {
            let h = v6.header();
            let p = v6.payload().clone();
            let announced = usize::from(h.payload_length()).saturating_sub(v6.extensions().slice().len());
            (IpAddr::from(h.source()), IpAddr::from(h.destination()), p, announced)
        }
        LaxNetSlice::Arp(_) => return Err(Skip::NotTcp),
    };
    let proto = ip_payload.ip_number;
    let handled = [
        IpNumber::TCP,
        IpNumber::UDP,
        IpNumber::IPV4,
        IpNumber::IPV6,
        IpNumber::ENCAPSULATING_SECURITY_PAYLOAD,
    ];
    if !handled.contains(&proto) {
        return Err(Skip::NotTcp);
    }
    if ip_payload.fragmented {
        return Err(Skip::Fragment);
    }
    // A jumbogram or a TSO-sized frame can announce 0 while carrying data; trust the capture then.
    let announced = if announced == 0 {
        ip_payload.payload.len()
    } else {
        announced
    };
    // Ethernet pads short frames to 60 bytes: never treat padding as payload.
    let payload = &ip_payload.payload[..ip_payload.payload.len().min(announced)];
    let wrap = |kind, vni| {
        tunnel.or(Some(Tunnel {
            kind,
            outer_src: src,
            outer_dst: dst,
            vni,
        }))
    };
    match proto {
        IpNumber::TCP => {
            let mut seg = parse_tcp(src, dst, payload, announced)?;
            seg.tunnel = tunnel;
            Ok(Packet::Tcp(seg))
        }
        IpNumber::IPV4 | IpNumber::IPV6 => {
            if depth >= MAX_TUNNEL_DEPTH {
                return Err(Skip::Malformed);
            }
            let inner = LaxSlicedPacket::from_ip(payload).map_err(|_| Skip::Malformed)?;
            ip_packet(inner.net, wrap(TunnelKind::IpInIp, None), depth + 1)
        }
        IpNumber::ENCAPSULATING_SECURITY_PAYLOAD => {
            let spi = tunnel::esp_spi(payload).ok_or(Skip::Malformed)?;
            Ok(Packet::NodeEncrypted(NodeEncrypted {
                kind: NodeEncryption::Esp { spi, udp: false },
                src,
                dst,
                sport: 0,
                dport: 0,
                wire_len: u32::try_from(announced).unwrap_or(u32::MAX),
                tunnel,
            }))
        }
        _ => udp(src, dst, payload, announced, tunnel, depth),
    }
}

/// A UDP datagram: an overlay tunnel to open, node-level encryption to report, or nothing.
fn udp(
    src: IpAddr,
    dst: IpAddr,
    seg: &[u8],
    announced: usize,
    tunnel: Option<Tunnel>,
    depth: usize,
) -> Result<Packet<'_>, Skip> {
    let h = seg.get(..8).ok_or(Skip::Malformed)?;
    let sport = u16::from_be_bytes([h[0], h[1]]);
    let dport = u16::from_be_bytes([h[2], h[3]]);
    // The UDP length field; 0 in IPv6 jumbograms, where the IP length is all there is.
    let udp_len = match usize::from(u16::from_be_bytes([h[4], h[5]])) {
        0 => announced,
        n if n < 8 => return Err(Skip::Malformed),
        n => n,
    };
    let wire_len = udp_len - 8;
    let payload = &seg[8..seg.len().min(udp_len)];
    let open = |kind, vni| {
        if depth >= MAX_TUNNEL_DEPTH {
            return Err(Skip::Malformed);
        }
        Ok(tunnel.or(Some(Tunnel {
            kind,
            outer_src: src,
            outer_dst: dst,
            vni: Some(vni),
        })))
    };
    if tunnel::VXLAN_PORTS.contains(&dport) {
        if let Some((vni, frame)) = tunnel::vxlan(payload) {
            let t = open(TunnelKind::Vxlan, vni)?;
            let inner = LaxSlicedPacket::from_ethernet(frame).map_err(|_| Skip::Malformed)?;
            return ip_packet(inner.net, t, depth + 1);
        }
    }
    if dport == tunnel::GENEVE_PORT {
        if let Some((vni, inner)) = tunnel::geneve(payload) {
            let t = open(TunnelKind::Geneve, vni)?;
            let inner = match inner {
                tunnel::Inner::Ethernet(frame) => LaxSlicedPacket::from_ethernet(frame).map_err(|_| Skip::Malformed)?,
                tunnel::Inner::Ip(ether_type, ip) => LaxSlicedPacket::from_ether_type(EtherType(ether_type), ip),
            };
            return ip_packet(inner.net, t, depth + 1);
        }
    }
    let kind = if let Some(message) = tunnel::wireguard(sport, dport, wire_len, payload) {
        NodeEncryption::WireGuard { message }
    } else if let Some(spi) = tunnel::esp_in_udp(sport, dport, payload) {
        NodeEncryption::Esp { spi, udp: true }
    } else {
        return Err(Skip::NotTcp);
    };
    Ok(Packet::NodeEncrypted(NodeEncrypted {
        kind,
        src,
        dst,
        sport,
        dport,
        wire_len: u32::try_from(wire_len).unwrap_or(u32::MAX),
        tunnel,
    }))
}

fn parse_tcp(src: IpAddr, dst: IpAddr, seg: &[u8], announced: usize) -> Result<TcpSegment<'_>, Skip> {
    let h = seg.get(..20).ok_or(Skip::Malformed)?;
    let data_offset = usize::from(h[12] >> 4) * 4;
    if data_offset < 20 {
        return Err(Skip::Malformed);
    }
    let payload = seg.get(data_offset..).ok_or(Skip::Malformed)?;
    let wire_len = announced.saturating_sub(data_offset).max(payload.len());
    // Ethernet pads short frames to 60 bytes: never treat padding as payload.
    let payload = &payload[..payload.len().min(announced.saturating_sub(data_offset))];
    Ok(TcpSegment {
        src,
        dst,
        sport: u16::from_be_bytes([h[0], h[1]]),
        dport: u16::from_be_bytes([h[2], h[3]]),
        seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        flags: TcpFlags(h[13]),
        payload,
        wire_len: u32::try_from(wire_len).unwrap_or(u32::MAX),
        tunnel: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_header(sport: u16, dport: u16, seq: u32, flags: u8) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&seq.to_be_bytes());
        t.extend_from_slice(&0u32.to_be_bytes());
        t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        t
    }

    fn ipv4(payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(payload);
        ip
    }

    fn ether(ether_type: [u8; 2], payload: &[u8]) -> Vec<u8> {
        let mut e = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        e.extend_from_slice(&ether_type);
        e.extend_from_slice(payload);
        e
    }

    fn segment_bytes() -> Vec<u8> {
        let mut tcp = tcp_header(40000, 443, 7, TcpFlags::ACK);
        tcp.extend_from_slice(b"hello");
        ipv4(&tcp)
    }

    #[test]
    fn ethernet_ipv4_tcp() {
        let frame = ether([0x08, 0x00], &segment_bytes());
        let s = decode(LinkType::ETHERNET, &frame).unwrap();
        assert_eq!(s.src, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!((s.sport, s.dport, s.seq), (40000, 443, 7));
        assert_eq!(s.payload, b"hello");
        assert_eq!(s.wire_len, 5);
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut frame = ether([0x08, 0x00], &ipv4(&tcp_header(1, 2, 3, TcpFlags::SYN)));
        frame.resize(60, 0);
        let s = decode(LinkType::ETHERNET, &frame).unwrap();
        assert!(s.payload.is_empty());
        assert_eq!(s.wire_len, 0);
    }

    #[test]
    fn qinq_vlan() {
        let inner = segment_bytes();
        let mut tags = vec![0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x08, 0x00];
        tags.extend_from_slice(&inner);
        let frame = ether([0x88, 0xa8], &tags);
        let s = decode(LinkType::ETHERNET, &frame).unwrap();
        assert_eq!(s.payload, b"hello");
    }

    #[test]
    fn linux_cooked_v1_and_v2_null_raw() {
        let ip = segment_bytes();
        let mut sll = vec![0u8; 16];
        sll[14..16].copy_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ip);
        assert_eq!(decode(LinkType::LINUX_SLL, &sll).unwrap().payload, b"hello");

        let mut sll2 = vec![0u8; 20];
        sll2[0..2].copy_from_slice(&[0x08, 0x00]);
        sll2.extend_from_slice(&ip);
        assert_eq!(decode(LinkType::LINUX_SLL2, &sll2).unwrap().payload, b"hello");

        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(&ip);
        assert_eq!(decode(LinkType::NULL, &null).unwrap().payload, b"hello");

        assert_eq!(decode(LinkType::RAW, &ip).unwrap().payload, b"hello");
    }

    #[test]
    fn snaplen_cut_keeps_wire_length() {
        let frame = ether([0x08, 0x00], &segment_bytes());
        let cut = &frame[..frame.len() - 3];
        let s = decode(LinkType::ETHERNET, cut).unwrap();
        assert_eq!(s.payload, b"he");
        assert_eq!(s.wire_len, 5);
    }

    #[test]
    fn ipv6_with_hop_by_hop_extension() {
        let mut tcp = tcp_header(5555, 80, 1, TcpFlags::ACK);
        tcp.extend_from_slice(b"GET");
        // Hop-by-hop header: next header TCP, length 0 (8 bytes), PadN.
        let mut ext = vec![6, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&tcp);
        let mut ip6 = vec![0x60, 0, 0, 0];
        ip6.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        ip6.extend_from_slice(&[0, 64]);
        ip6.extend_from_slice(&[0xfd; 16]);
        ip6.extend_from_slice(&[0xfe; 16]);
        ip6.extend_from_slice(&ext);
        let s = decode(LinkType::RAW, &ip6).unwrap();
        assert_eq!(s.payload, b"GET");
        assert!(s.src.is_ipv6());
    }

    #[test]
    fn garbage_is_not_a_panic() {
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37) as u8).collect();
            for lt in [
                LinkType::ETHERNET,
                LinkType::NULL,
                LinkType::LINUX_SLL,
                LinkType::LINUX_SLL2,
                LinkType::RAW,
            ] {
                let _ = decode(lt, &junk);
            }
        }
        assert_eq!(
            decode(LinkType(147), b"x").unwrap_err(),
            Skip::UnsupportedLink(LinkType(147))
        );
    }
}
