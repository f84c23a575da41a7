//! What the decoder makes of a frame: a TCP segment ([`TcpSegment`]) or a packet of node-level
//! encryption ([`Packet`]), or why it is neither ([`Skip`]). Flows, reassembly and the report
//! read these. A segment borrows its payload from the frame; nothing here allocates.

use std::net::IpAddr;

use super::tunnel::{NodeEncrypted, Tunnel};
use crate::pipeline::source::LinkType;

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
    /// Bytes of the frame the capture kept. When the snap length cut the packet (`payload`
    /// shorter than `wire_len`), this is the snap length, which the evidence names.
    pub frame_len: u32,
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
