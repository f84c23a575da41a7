//! The decode stage: link layer -> IPv4/IPv6 -> TCP header, through overlay tunnels.
//!
//! Link and IP layers are sliced with etherparse's lax parser, so a packet cut short by the snap
//! length still yields whatever headers are complete. The TCP header is read here directly because
//! the reassembler needs two facts etherparse's `TcpSlice` does not give for a cut packet: the
//! payload length the IP header announces (`wire_len`) and how much of it was captured.
//! Overlay tunnels a node-level capture sees (VXLAN, Geneve, IP-in-IP; [`tunnel`]) are opened
//! and the inner packet decoded the same way, so connections are the pod-to-pod ones.
//! WireGuard and IPsec ESP between nodes are recognised and reported as such ([`Packet`]).
//! Nothing here allocates.
//!
//! This file is the decoder. What it produces ([`Packet`], [`TcpSegment`], [`Skip`]) is in
//! `packet.rs`, and the tunnel headers it opens in [`tunnel`]: leaves that the later stages
//! use without depending on the decoder.

mod packet;
pub mod tunnel;

pub use self::packet::{Packet, Skip, TcpFlags, TcpSegment, MAX_TUNNEL_DEPTH};
use self::tunnel::{NodeEncrypted, NodeEncryption, Tunnel, TunnelKind};
use crate::pipeline::source::LinkType;
use etherparse::{EtherType, IpNumber, LaxNetSlice, LaxSlicedPacket};
use std::net::IpAddr;

/// Decode one captured frame down to its TCP segment. Node-level encrypted packets (WireGuard,
/// ESP) are `Skip::NotTcp` here; [`decode_packet`] tells them apart.
pub fn decode(link: LinkType, data: &[u8]) -> Result<TcpSegment<'_>, Skip> {
    match decode_packet(link, data)? {
        Packet::Tcp(seg) => Ok(seg),
        Packet::NodeEncrypted(_) => Err(Skip::NotTcp),
    }
}

/// Does [`decode_packet`] read frames of this link type? (Otherwise every one of them is
/// `Skip::UnsupportedLink`.)
pub fn supports(link: LinkType) -> bool {
    matches!(
        link,
        LinkType::ETHERNET
            | LinkType::RAW
            | LinkType(12)
            | LinkType(14)
            | LinkType::IPV4
            | LinkType::IPV6
            | LinkType::NULL
            | LinkType::LOOP
            | LinkType::LINUX_SLL
            | LinkType::LINUX_SLL2
    )
}

/// Decode one captured frame: a TCP segment (through any overlay tunnels), or a packet of
/// node-level encryption.
///
/// Inlined, with the common frame's work in [`ethernet_tcp_fast`] and everything else out of
/// line ([`decode_packet_general`]): the fast path only finds where the layers are, and the
/// segment (~130 bytes) is built once, in the caller, instead of being copied through the fast
/// path's `Option<Result<Packet>>` and this function's `Result` on its way out. Measured on the
/// bench capture (666,736 packets, docs/performance.md): decoding took 8.9% of the perf samples
/// of a run (most of them on those copies' loads, waiting on the narrower stores before them),
/// and this file's lines 74 M instructions (callgrind); now 48 M, and with the fast path
/// returning only the layers but still a call, 2.6% of the samples. `#[inline(always)]`
/// because a plain `#[inline]` left it a call.
#[inline(always)]
pub fn decode_packet(link: LinkType, data: &[u8]) -> Result<Packet<'_>, Skip> {
    if link == LinkType::ETHERNET {
        match ethernet_tcp_fast(data) {
            Fast::Tcp {
                src,
                dst,
                tcp,
                announced,
            } => {
                return parse_tcp(src, dst, tcp, announced, data.len()).map(Packet::Tcp);
            }
            Fast::Fragment => return Err(Skip::Fragment),
            Fast::General => {}
        }
    }
    decode_packet_general(link, data)
}

/// The frames the fast path leaves to etherparse, out of line so that the hot path stays small.
#[inline(never)]
fn decode_packet_general(link: LinkType, data: &[u8]) -> Result<Packet<'_>, Skip> {
    let mut packet = decode_packet_sliced(link, data)?;
    if let Packet::Tcp(seg) = &mut packet {
        seg.frame_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    }
    Ok(packet)
}

/// What [`ethernet_tcp_fast`] found: only where the layers are, so that the (large) segment is
/// built in one place.
enum Fast<'a> {
    /// Ethernet, IP, TCP: the IP addresses, the bytes from the TCP header on (up to the end the
    /// IP header announces) and the IP payload length it announces.
    Tcp {
        src: IpAddr,
        dst: IpAddr,
        tcp: &'a [u8],
        announced: usize,
    },
    /// An IPv4 fragment: `Skip::Fragment`, as the general path says.
    Fragment,
    /// Anything else: the general path decides.
    General,
}

/// The common frame — Ethernet, IPv4 (any options) or IPv6 without extension headers, TCP —
/// read directly: etherparse's general slicer copies its large result around, which showed up
/// as a tenth of the time on a gigabyte capture. `General` for anything else (VLAN tags,
/// tunnels, extension headers, odd lengths): the general path decides those, with the same
/// results (`fast_path_agrees_with_etherparse` checks every packet of the bundled captures).
#[inline(always)]
fn ethernet_tcp_fast(data: &[u8]) -> Fast<'_> {
    let (Some(&t0), Some(&t1), Some(ip)) = (data.get(12), data.get(13), data.get(14..)) else {
        return Fast::General;
    };
    match [t0, t1] {
        [0x08, 0x00] => {
            let Some(h) = ip.get(..20) else {
                return Fast::General;
            };
            let ihl = usize::from(h[0] & 0x0f) * 4;
            if h[0] >> 4 != 4 || ihl < 20 || h[9] != 6 || ip.len() < ihl {
                return Fast::General;
            }
            if h[6] & 0x20 != 0 || (u16::from(h[6] & 0x1f) << 8 | u16::from(h[7])) != 0 {
                return Fast::Fragment;
            }
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            if total != 0 && total < ihl {
                return Fast::General;
            }
            let end = if total == 0 { ip.len() } else { total.min(ip.len()) };
            let announced = if total == 0 { end - ihl } else { total - ihl };
            Fast::Tcp {
                src: IpAddr::from([h[12], h[13], h[14], h[15]]),
                dst: IpAddr::from([h[16], h[17], h[18], h[19]]),
                tcp: &ip[ihl..end],
                announced,
            }
        }
        [0x86, 0xdd] => {
            let Some(h) = ip.get(..40) else {
                return Fast::General;
            };
            if h[0] >> 4 != 6 || h[6] != 6 {
                return Fast::General;
            }
            let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
            if len == 0 {
                return Fast::General; // a jumbogram: let the general path handle it
            }
            let end = (40 + len).min(ip.len());
            let (Ok(src), Ok(dst)) = (<[u8; 16]>::try_from(&h[8..24]), <[u8; 16]>::try_from(&h[24..40])) else {
                return Fast::General;
            };
            Fast::Tcp {
                src: IpAddr::from(src),
                dst: IpAddr::from(dst),
                tcp: &ip[40..end],
                announced: len,
            }
        }
        _ => Fast::General,
    }
}

/// The general decoder, through etherparse's lax slicer.
fn decode_packet_sliced(link: LinkType, data: &[u8]) -> Result<Packet<'_>, Skip> {
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
        // Keep in step with `supports`.
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
            let mut seg = parse_tcp(src, dst, payload, announced, 0)?;
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

/// The TCP header at the start of `seg`. `frame_len` is the captured frame's length, for
/// [`TcpSegment::frame_len`] (0 where only the caller knows it and sets it).
#[inline(always)]
fn parse_tcp(src: IpAddr, dst: IpAddr, seg: &[u8], announced: usize, frame_len: usize) -> Result<TcpSegment<'_>, Skip> {
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
        frame_len: u32::try_from(frame_len).unwrap_or(u32::MAX),
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
        // The kept length of a cut frame is the snap length the evidence names.
        assert_eq!(s.frame_len as usize, cut.len());
        let whole = decode(LinkType::ETHERNET, &frame).unwrap();
        assert_eq!(whole.frame_len as usize, frame.len());
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

    // ---- node-level captures: tunnels and node encryption ----

    use etherparse::PacketBuilder;

    const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
    const NODE_A: [u8; 4] = [10, 98, 0, 1];
    const NODE_B: [u8; 4] = [10, 98, 0, 2];
    const POD_A: [u8; 4] = [10, 244, 1, 5];
    const POD_B: [u8; 4] = [10, 244, 2, 7];

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A pod-to-pod TCP segment as an Ethernet frame (what VXLAN and Geneve carry).
    fn pod_frame(payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(POD_A, POD_B, 63)
            .tcp(43210, 8443, 1000, 64240)
            .ack(1)
            .write(&mut v, payload)
            .unwrap();
        v
    }

    /// The same segment as a bare IPv4 packet (what IP-in-IP carries).
    fn pod_ipv4(payload: &[u8]) -> Vec<u8> {
        pod_frame(payload)[14..].to_vec()
    }

    fn pod_ipv6(payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 63)
            .tcp(43210, 8443, 1000, 64240)
            .write(&mut v, payload)
            .unwrap();
        v
    }

    fn node_udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(NODE_A, NODE_B, 64)
            .udp(sport, dport)
            .write(&mut v, payload)
            .unwrap();
        v
    }

    fn node_ip(proto: IpNumber, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(NODE_A, NODE_B, 64)
            .write(&mut v, proto, payload)
            .unwrap();
        v
    }

    fn node6_ip(proto: IpNumber, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv6(
                [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                64,
            )
            .write(&mut v, proto, payload)
            .unwrap();
        v
    }

    fn vxlan_hdr(vni: u32) -> Vec<u8> {
        let v = vni.to_be_bytes();
        vec![0x08, 0, 0, 0, v[1], v[2], v[3], 0]
    }

    fn geneve_hdr(vni: u32, protocol: u16, options: &[u8]) -> Vec<u8> {
        assert_eq!(options.len() % 4, 0);
        let v = vni.to_be_bytes();
        let p = protocol.to_be_bytes();
        let mut h = vec![(options.len() / 4) as u8, 0, p[0], p[1], v[1], v[2], v[3], 0];
        h.extend_from_slice(options);
        h
    }

    fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
        [a, b].concat()
    }

    fn tcp_of(p: Result<Packet<'_>, Skip>) -> TcpSegment<'_> {
        match p {
            Ok(Packet::Tcp(s)) => s,
            other => panic!("expected a TCP segment, got {other:?}"),
        }
    }

    fn node_encrypted(p: Result<Packet<'_>, Skip>) -> NodeEncrypted {
        match p {
            Ok(Packet::NodeEncrypted(n)) => n,
            other => panic!("expected node-level encryption, got {other:?}"),
        }
    }

    #[test]
    fn vxlan_on_both_ports_gives_the_inner_connection() {
        for port in [4789, 8472] {
            let frame = node_udp(50000, port, &cat(&vxlan_hdr(42), &pod_frame(b"hello")));
            let s = tcp_of(decode_packet(LinkType::ETHERNET, &frame));
            assert_eq!((s.src, s.dst), (ip("10.244.1.5"), ip("10.244.2.7")));
            assert_eq!((s.sport, s.dport, s.seq), (43210, 8443, 1000));
            assert_eq!((s.payload, s.wire_len), (&b"hello"[..], 5));
            assert_eq!(
                s.tunnel,
                Some(Tunnel {
                    kind: TunnelKind::Vxlan,
                    outer_src: ip("10.98.0.1"),
                    outer_dst: ip("10.98.0.2"),
                    vni: Some(42)
                })
            );
        }
    }

    #[test]
    fn udp_to_a_tunnel_port_without_a_tunnel_header_is_just_udp() {
        let mut hdr = vxlan_hdr(42);
        hdr[0] = 0; // no I flag
        let frame = node_udp(50000, 4789, &cat(&hdr, &pod_frame(b"x")));
        assert_eq!(decode(LinkType::ETHERNET, &frame).unwrap_err(), Skip::NotTcp);
        let frame = node_udp(50000, 6081, &[0xc0, 0, 0x65, 0x58, 0, 0, 1, 0]); // Geneve version 3
        assert_eq!(decode(LinkType::ETHERNET, &frame).unwrap_err(), Skip::NotTcp);
        // VXLAN from the tunnel port (a reply would go *to* it): not opened
        let frame = node_udp(4789, 50000, &cat(&vxlan_hdr(1), &pod_frame(b"x")));
        assert_eq!(decode(LinkType::ETHERNET, &frame).unwrap_err(), Skip::NotTcp);
    }

    #[test]
    fn vxlan_over_ipv6_and_a_cooked_capture() {
        let mut udp = Vec::new();
        let inner = cat(&vxlan_hdr(7), &pod_frame(b"GET /"));
        PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 64)
            .udp(1234, 4789)
            .write(&mut udp, &inner)
            .unwrap();
        let mut sll2 = vec![0x86, 0xdd];
        sll2.resize(20, 0);
        sll2.extend_from_slice(&udp);
        let s = decode(LinkType::LINUX_SLL2, &sll2).unwrap();
        assert_eq!(s.payload, b"GET /");
        assert_eq!(s.src, ip("10.244.1.5"));
        let t = s.tunnel.unwrap();
        assert!(t.outer_src.is_ipv6());
        assert_eq!(t.vni, Some(7));
    }

    #[test]
    fn geneve_with_options_ethernet_and_ip_payloads() {
        let opts = [0x01, 0x02, 0x80, 0x01, 0xde, 0xad, 0xbe, 0xef]; // one OVN-style option
        let frame = node_udp(
            50000,
            6081,
            &cat(&geneve_hdr(0x0a0b0c, 0x6558, &opts), &pod_frame(b"hi")),
        );
        let s = decode(LinkType::ETHERNET, &frame).unwrap();
        assert_eq!((s.src, s.dport, s.payload), (ip("10.244.1.5"), 8443, &b"hi"[..]));
        let t = s.tunnel.unwrap();
        assert_eq!((t.kind, t.vni), (TunnelKind::Geneve, Some(0x0a0b0c)));

        let frame = node_udp(50000, 6081, &cat(&geneve_hdr(5, 0x86dd, &[]), &pod_ipv6(b"v6")));
        let s = decode(LinkType::ETHERNET, &frame).unwrap();
        assert_eq!(s.payload, b"v6");
        assert!(s.src.is_ipv6());
        assert_eq!(s.tunnel.unwrap().kind, TunnelKind::Geneve);

        let frame = node_udp(50000, 6081, &cat(&geneve_hdr(5, 0x0800, &[]), &pod_ipv4(b"v4")));
        assert_eq!(decode(LinkType::ETHERNET, &frame).unwrap().payload, b"v4");
    }

    #[test]
    fn ip_in_ip_all_four_combinations() {
        let cases = [
            (node_ip(IpNumber::IPV4, &pod_ipv4(b"44")), &b"44"[..], false),
            (node_ip(IpNumber::IPV6, &pod_ipv6(b"64")), &b"64"[..], true),
            (node6_ip(IpNumber::IPV4, &pod_ipv4(b"46")), &b"46"[..], false),
            (node6_ip(IpNumber::IPV6, &pod_ipv6(b"66")), &b"66"[..], true),
        ];
        for (frame, payload, inner_v6) in &cases {
            let s = decode(LinkType::ETHERNET, frame).unwrap();
            assert_eq!(s.payload, *payload);
            assert_eq!(s.src.is_ipv6(), *inner_v6);
            let t = s.tunnel.unwrap();
            assert_eq!((t.kind, t.vni), (TunnelKind::IpInIp, None));
        }
        assert_eq!(cases[0].0.len(), 14 + 20 + 20 + 20 + 2);
    }

    #[test]
    fn nested_tunnels_keep_the_outermost_and_are_bounded() {
        // VXLAN inside IP-in-IP: the node-level tunnel is the IP-in-IP one
        let vx = node_udp(50000, 4789, &cat(&vxlan_hdr(42), &pod_frame(b"deep")));
        let frame = node_ip(IpNumber::IPV4, &vx[14..]);
        let s = decode(LinkType::ETHERNET, &frame).unwrap();
        assert_eq!(s.payload, b"deep");
        assert_eq!(s.tunnel.unwrap().kind, TunnelKind::IpInIp);

        let mut pkt = pod_ipv4(b"x");
        for _ in 0..MAX_TUNNEL_DEPTH {
            pkt = node_ip(IpNumber::IPV4, &pkt)[14..].to_vec();
        }
        assert_eq!(decode(LinkType::RAW, &pkt).unwrap().payload, b"x");
        pkt = node_ip(IpNumber::IPV4, &pkt)[14..].to_vec();
        assert_eq!(decode(LinkType::RAW, &pkt).unwrap_err(), Skip::Malformed);
    }

    #[test]
    fn snaplen_cut_inside_the_tunnel_keeps_the_inner_wire_length() {
        let frame = node_udp(50000, 4789, &cat(&vxlan_hdr(42), &pod_frame(b"hello world")));
        let s = decode(LinkType::ETHERNET, &frame[..frame.len() - 6]).unwrap();
        assert_eq!((s.payload, s.wire_len), (&b"hello"[..], 11));
    }

    #[test]
    fn non_tcp_inside_a_tunnel_is_not_tcp() {
        let mut udp = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(POD_A, POD_B, 64)
            .udp(5353, 53)
            .write(&mut udp, b"dns")
            .unwrap();
        let frame = node_udp(50000, 4789, &cat(&vxlan_hdr(42), &udp));
        assert_eq!(decode(LinkType::ETHERNET, &frame).unwrap_err(), Skip::NotTcp);
        // ARP inside VXLAN
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&MAC_A);
        arp.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&[0; 20]);
        let frame = node_udp(50000, 4789, &cat(&vxlan_hdr(42), &arp));
        assert_eq!(decode(LinkType::ETHERNET, &frame).unwrap_err(), Skip::NotTcp);
    }

    #[test]
    fn outer_fragments_are_not_opened() {
        let mut v = Vec::new();
        let mut h = etherparse::Ipv4Header::new(0, 64, IpNumber::UDP, NODE_A, NODE_B).unwrap();
        h.more_fragments = true;
        let body = cat(
            &[0xc3, 0x50, 0x12, 0xb5, 0, 100, 0, 0],
            &cat(&vxlan_hdr(1), &pod_frame(b"frag")),
        );
        h.set_payload_len(body.len()).unwrap();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ip(etherparse::IpHeaders::Ipv4(h, Default::default()))
            .write(&mut v, IpNumber::UDP, &body)
            .unwrap();
        assert_eq!(decode(LinkType::ETHERNET, &v).unwrap_err(), Skip::Fragment);
    }

    fn wireguard_msg(message: u8, len: usize) -> Vec<u8> {
        let mut m = vec![message, 0, 0, 0];
        m.extend((4..len).map(|i| (i * 7) as u8));
        m
    }

    #[test]
    fn wireguard_is_node_level_encryption() {
        let frame = node_udp(51820, 51820, &wireguard_msg(4, 96));
        let n = node_encrypted(decode_packet(LinkType::ETHERNET, &frame));
        assert_eq!(n.kind, NodeEncryption::WireGuard { message: 4 });
        assert_eq!(n.kind.name(), "wireguard");
        assert_eq!((n.src, n.dst), (ip("10.98.0.1"), ip("10.98.0.2")));
        assert_eq!((n.sport, n.dport, n.wire_len, n.tunnel), (51820, 51820, 96, None));
        // decode() stays TCP-only
        assert_eq!(decode(LinkType::ETHERNET, &frame).unwrap_err(), Skip::NotTcp);

        // a handshake initiation on a port of its own
        let frame = node_udp(40000, 31000, &wireguard_msg(1, 148));
        let n = node_encrypted(decode_packet(LinkType::ETHERNET, &frame));
        assert_eq!(n.kind, NodeEncryption::WireGuard { message: 1 });
        // transport data on an unknown port is too weak a signal
        let frame = node_udp(40000, 31000, &wireguard_msg(4, 96));
        assert_eq!(decode_packet(LinkType::ETHERNET, &frame).unwrap_err(), Skip::NotTcp);
        // cut by the snap length: still recognised from the UDP length
        let frame = node_udp(51820, 51820, &wireguard_msg(4, 1440));
        let n = node_encrypted(decode_packet(LinkType::ETHERNET, &frame[..96]));
        assert_eq!(n.wire_len, 1440);
        // WireGuard inside VXLAN keeps the tunnel
        let mut wg = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(POD_A, POD_B, 64)
            .udp(51820, 51820)
            .write(&mut wg, &wireguard_msg(2, 92))
            .unwrap();
        let frame = node_udp(50000, 4789, &cat(&vxlan_hdr(3), &wg));
        let n = node_encrypted(decode_packet(LinkType::ETHERNET, &frame));
        assert_eq!(n.src, ip("10.244.1.5"));
        assert_eq!(n.tunnel.unwrap().kind, TunnelKind::Vxlan);
    }

    #[test]
    fn esp_in_ip_and_in_udp_is_node_level_encryption() {
        let esp = cat(&[0xc0, 0x01, 0x02, 0x03, 0, 0, 0, 9], &[0x5a; 40]);
        let n = node_encrypted(decode_packet(
            LinkType::ETHERNET,
            &node_ip(IpNumber::ENCAPSULATING_SECURITY_PAYLOAD, &esp),
        ));
        assert_eq!(
            n.kind,
            NodeEncryption::Esp {
                spi: 0xc0010203,
                udp: false
            }
        );
        assert_eq!(n.kind.name(), "ipsec-esp");
        assert_eq!((n.sport, n.dport, n.wire_len), (0, 0, 48));

        let n = node_encrypted(decode_packet(
            LinkType::ETHERNET,
            &node6_ip(IpNumber::ENCAPSULATING_SECURITY_PAYLOAD, &esp),
        ));
        assert!(n.src.is_ipv6());

        let n = node_encrypted(decode_packet(LinkType::ETHERNET, &node_udp(4500, 4500, &esp)));
        assert_eq!(
            n.kind,
            NodeEncryption::Esp {
                spi: 0xc0010203,
                udp: true
            }
        );
        assert_eq!((n.sport, n.dport), (4500, 4500));
        // IKE on 4500 (non-ESP marker) is not ESP
        let ike = cat(&[0; 4], &esp);
        assert_eq!(
            decode_packet(LinkType::ETHERNET, &node_udp(4500, 4500, &ike)).unwrap_err(),
            Skip::NotTcp
        );
        // an ESP header cut short
        assert_eq!(
            decode_packet(
                LinkType::ETHERNET,
                &node_ip(IpNumber::ENCAPSULATING_SECURITY_PAYLOAD, &esp[..5])
            )
            .unwrap_err(),
            Skip::Malformed
        );
    }

    #[test]
    fn truncated_and_garbage_tunnel_payloads_are_not_a_panic() {
        let junk: Vec<u8> = (0..200u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let mut frames = vec![
            node_udp(50000, 4789, &cat(&vxlan_hdr(42), &pod_frame(b"hello"))),
            node_udp(50000, 6081, &cat(&geneve_hdr(1, 0x6558, &[0; 8]), &pod_frame(b"hello"))),
            node_udp(50000, 6081, &cat(&geneve_hdr(1, 0x0800, &[]), &pod_ipv4(b"hello"))),
            node_ip(IpNumber::IPV4, &pod_ipv4(b"hello")),
            node6_ip(IpNumber::IPV6, &pod_ipv6(b"hello")),
            node_udp(51820, 51820, &wireguard_msg(1, 148)),
            node_ip(IpNumber::ENCAPSULATING_SECURITY_PAYLOAD, &[1; 40]),
        ];
        for n in 0..junk.len() {
            frames.push(node_udp(50000, 4789, &cat(&vxlan_hdr(1), &junk[..n])));
            frames.push(node_udp(50000, 6081, &cat(&geneve_hdr(1, 0x6558, &[]), &junk[..n])));
            frames.push(node_udp(50000, 6081, &cat(&geneve_hdr(1, 0x86dd, &[]), &junk[..n])));
            frames.push(node_udp(50000, 6081, &junk[..n]));
            frames.push(node_ip(IpNumber::IPV4, &junk[..n]));
            frames.push(node_ip(IpNumber::IPV6, &junk[..n]));
            frames.push(node_ip(IpNumber::ENCAPSULATING_SECURITY_PAYLOAD, &junk[..n]));
            frames.push(node_udp(51820, 51820, &junk[..n]));
        }
        for frame in &frames {
            for cut in 0..=frame.len() {
                let _ = decode_packet(LinkType::ETHERNET, &frame[..cut]);
            }
            // a lying outer length: inner headers say more than the outer packet holds
            let mut lie = frame.clone();
            if lie.len() > 17 {
                lie[16] = 0xff;
                lie[17] = 0xff;
                let _ = decode_packet(LinkType::ETHERNET, &lie);
            }
        }
    }
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;
    use crate::pipeline::source::CaptureReader;

    /// Every Ethernet frame of every bundled capture, and every cut of each frame: the fast
    /// path gives exactly what the general decoder gives.
    #[test]
    fn fast_path_agrees_with_etherparse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
        let mut checked = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let name = path.to_string_lossy().into_owned();
            if !(name.ends_with(".pcap") || name.ends_with(".pcapng")) {
                continue;
            }
            let mut r = CaptureReader::open(&name).unwrap();
            while let Some(p) = r.next_packet().unwrap() {
                if p.link != LinkType::ETHERNET {
                    continue;
                }
                for cut in [
                    p.data.len(),
                    p.data.len().saturating_sub(7),
                    60.min(p.data.len()),
                    40.min(p.data.len()),
                ] {
                    let frame = &p.data[..cut];
                    if !matches!(ethernet_tcp_fast(frame), Fast::General) {
                        let fast = decode_packet(LinkType::ETHERNET, frame);
                        let slow = decode_packet_general(LinkType::ETHERNET, frame);
                        assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{name}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 1000, "only {checked} frames took the fast path");
    }
}
