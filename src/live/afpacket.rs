//! An AF_PACKET socket with a TPACKET_V3 receive ring: live capture straight from the kernel,
//! with no libpcap at run time, so that the agent links statically.
//!
//! The kernel writes packets into blocks of a ring shared with this process (mmap) and hands a
//! block over when it is full or when [`RETIRE_MS`] has passed; [`Ring::read_block`] walks the
//! packets of the block it was handed and gives the block back. This is what libpcap does on
//! Linux, with the same choices: non-promiscuous unless asked, a buffer of `--buffer-size`
//! bytes in blocks of 256 KiB, nanosecond timestamps, the kernel's drop counter (`tp_drops`).
//!
//! Link types as libpcap gives them: Ethernet and loopback interfaces give Ethernet frames, as
//! the packet socket reads them (a VLAN tag that the driver took off is put back, as libpcap
//! does); interfaces without a link header (tun, WireGuard) give raw IP; `any` and other
//! interfaces give Linux cooked (SLL) frames, whose 16-byte header is built from the address the
//! kernel gives with each packet. A kernel filter on a cooked socket sees the packet from its
//! network header on, so a program compiled for SLL is moved by [`fix_cooked`].
//!
//! The only `unsafe` code of the crate is here: system calls on the socket, the mapping of the
//! ring, and reading the ring's headers, whose layout is the kernel's ABI
//! (linux/if_packet.h). Each block is read only while its status says the process owns it.
#![allow(unsafe_code)]

use crate::pipeline::filter::BpfInsn;
use crate::pipeline::source::LinkType;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// A block the kernel has not filled is handed over after this long.
pub const RETIRE_MS: u32 = 10;
/// Bytes of a ring block: room for the largest packet (a 64 KiB GSO packet, or a snap length of
/// 256 KiB) with its headers, as libpcap sizes them.
const BLOCK_SIZE: usize = 256 << 10;
/// The largest snap length, libpcap's MAXIMUM_SNAPLEN.
pub const MAX_SNAPLEN: u32 = 262_144;

const ETH_P_ALL: u16 = 0x0003;
const TPACKET_V3: libc::c_int = 2;
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;
const ARPHRD_NONE: u16 = 0xfffe;
/// sll_pkttype of a packet this host sent.
const PACKET_OUTGOING: u8 = 4;
/// Bytes of a Linux cooked (SLL) header.
const SLL_HDR_LEN: u32 = 16;
/// Where the `sockaddr_ll` of a packet is in its frame: TPACKET_ALIGN(sizeof(tpacket3_hdr)).
const SOCKADDR_LL_OFFSET: usize = 48;

/// A packet from the ring: its timestamp, its length on the wire and the bytes kept.
pub struct Packet<'a> {
    pub ts_ns: u64,
    pub len: u32,
    pub data: &'a [u8],
}

/// Why a socket could not be opened; the capture turns it into a message naming the
/// interface and the namespace.
#[derive(Debug)]
pub enum OpenError {
    /// No interface of that name where the socket was opened.
    NoInterface,
    Os {
        what: &'static str,
        cause: io::Error,
    },
}

fn os(what: &'static str) -> impl FnOnce(io::Error) -> OpenError {
    move |cause| OpenError::Os { what, cause }
}

/// The kernel's counters since the socket was opened.
#[derive(Debug, Default, Clone, Copy)]
pub struct RingStats {
    /// Packets the kernel passed the filter, whether or not there was room for them.
    pub received: u64,
    /// Packets the kernel dropped because the ring was full (`tp_drops`).
    pub dropped: u64,
}

pub struct Ring {
    fd: OwnedFd,
    map: *mut u8,
    block_nr: usize,
    /// The next block to read.
    current: usize,
    ifindex: i32,
    /// The loopback interface's index: a packet sent on it is received on it too, so (as
    /// libpcap does) its outgoing copy is skipped.
    loopback: Option<i32>,
    link: LinkType,
    cooked: bool,
    snaplen: u32,
    stats: RingStats,
    /// The packet with a header put back (VLAN) or built (SLL).
    scratch: Vec<u8>,
}

// The ring is owned by one thread at a time; the raw pointer is only its mapping.
unsafe impl Send for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `map` is the mapping made in `open`, of this length, and nothing borrows it
        // past `read_block`.
        unsafe { libc::munmap(self.map.cast(), self.block_nr * BLOCK_SIZE) };
    }
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a `T` of the size given, which the kernel only reads.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn packet_socket(kind: libc::c_int) -> io::Result<OwnedFd> {
    // Protocol 0: nothing is received until `bind` names the interface and ETH_P_ALL, so no
    // packet of another interface slips in first.
    // SAFETY: a plain system call; the descriptor it returns is owned here.
    let fd = cvt(unsafe { libc::socket(libc::AF_PACKET, kind | libc::SOCK_CLOEXEC, 0) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An `ifreq` naming `interface`; `None` when the name does not fit (so no interface has it).
fn ifreq(interface: &str) -> Option<libc::ifreq> {
    // SAFETY: `ifreq` is plain data, valid when zeroed.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = interface.as_bytes();
    if name.is_empty() || name.len() >= req.ifr_name.len() || name.contains(&0) {
        return None;
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    Some(req)
}

fn ioctl(fd: &OwnedFd, request: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: the interface ioctls read and write one `ifreq`. The request's type differs
    // between libc flavours (c_ulong on glibc, c_int on musl).
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), request as _, req as *mut libc::ifreq) }).map(drop)
}

/// The interface's index and hardware type (ARPHRD_*), in this thread's network namespace.
fn interface_info(fd: &OwnedFd, interface: &str) -> Result<(i32, u16), OpenError> {
    let mut req = ifreq(interface).ok_or(OpenError::NoInterface)?;
    match ioctl(fd, libc::SIOCGIFINDEX, &mut req) {
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Err(OpenError::NoInterface),
        other => other.map_err(os("finding the interface"))?,
    }
    // SAFETY: SIOCGIFINDEX filled the index member of the union.
    let index = unsafe { req.ifr_ifru.ifru_ifindex };
    ioctl(fd, libc::SIOCGIFHWADDR, &mut req).map_err(os("reading the interface's type"))?;
    // SAFETY: SIOCGIFHWADDR filled the address member; its family is the ARPHRD type.
    let hatype = unsafe { req.ifr_ifru.ifru_hwaddr.sa_family };
    Ok((index, hatype))
}

/// The interface's MTU in this thread's network namespace.
pub fn interface_mtu(interface: &str) -> Option<u32> {
    let fd = packet_socket(libc::SOCK_RAW).ok()?;
    let mut req = ifreq(interface)?;
    ioctl(&fd, libc::SIOCGIFMTU, &mut req).ok()?;
    // SAFETY: SIOCGIFMTU filled the MTU member.
    u32::try_from(unsafe { req.ifr_ifru.ifru_mtu }).ok()
}

/// The names of the interfaces in this thread's network namespace, sorted, with `any`.
pub fn interface_names() -> Vec<String> {
    let mut names: Vec<String> = nix::net::if_::if_nameindex()
        .map(|list| list.iter().map(|i| i.name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.push("any".into());
    names.sort();
    names.dedup();
    names
}

impl Ring {
    /// Opens a capture on `interface` (`any`: all of them) in this thread's network namespace,
    /// with a ring of `buffer_size` bytes; it receives nothing until [`Ring::start`].
    pub fn open(interface: &str, snaplen: u32, buffer_size: usize) -> Result<Ring, OpenError> {
        let probe = packet_socket(libc::SOCK_RAW).map_err(os("opening a packet socket"))?;
        let (ifindex, link, cooked, loopback) = if interface == "any" {
            let lo = interface_info(&probe, "lo").ok().filter(|&(_, t)| t == ARPHRD_LOOPBACK);
            (0, LinkType::LINUX_SLL, true, lo.map(|(index, _)| index))
        } else {
            let (index, hatype) = interface_info(&probe, interface)?;
            let (link, cooked) = match hatype {
                ARPHRD_ETHER | ARPHRD_LOOPBACK => (LinkType::ETHERNET, false),
                ARPHRD_NONE => (LinkType::RAW, false),
                _ => (LinkType::LINUX_SLL, true),
            };
            (index, link, cooked, (hatype == ARPHRD_LOOPBACK).then_some(index))
        };
        let fd = if cooked {
            packet_socket(libc::SOCK_DGRAM).map_err(os("opening a packet socket"))?
        } else {
            probe
        };
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &TPACKET_V3).map_err(os("asking for TPACKET_V3"))?;
        let block_nr = buffer_size.div_ceil(BLOCK_SIZE).max(2);
        let req = libc::tpacket_req3 {
            tp_block_size: BLOCK_SIZE as u32,
            tp_block_nr: block_nr as u32,
            // In TPACKET_V3 frames are only the unit the kernel counts the ring in.
            tp_frame_size: BLOCK_SIZE as u32,
            tp_frame_nr: block_nr as u32,
            tp_retire_blk_tov: RETIRE_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req).map_err(os("setting up the capture buffer"))?;
        // SAFETY: maps the ring the kernel just made for this socket, at an address it picks.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                block_nr * BLOCK_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(os("mapping the capture buffer")(io::Error::last_os_error()));
        }
        Ok(Ring {
            fd,
            map: map.cast(),
            block_nr,
            current: 0,
            ifindex,
            loopback,
            link,
            cooked,
            snaplen: snaplen.clamp(1, MAX_SNAPLEN),
            stats: RingStats::default(),
            scratch: Vec::new(),
        })
    }

    /// Starts receiving: attaches `filter`, if any, turns on promiscuous mode if asked, then
    /// binds to the interface, so no packet arrives before the filter is in place.
    pub fn start(&mut self, filter: Option<&[BpfInsn]>, promisc: bool) -> Result<(), OpenError> {
        if let Some(insns) = filter {
            self.attach(insns).map_err(os("attaching the filter"))?;
        }
        if promisc && self.ifindex > 0 {
            // SAFETY: plain data, valid when zeroed.
            let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
            mreq.mr_ifindex = self.ifindex;
            mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
            setsockopt(&self.fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
                .map_err(os("turning on promiscuous mode"))?;
        }
        // SAFETY: plain data, valid when zeroed.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ALL.to_be();
        addr.sll_ifindex = self.ifindex;
        // SAFETY: `addr` is a sockaddr_ll of the size given.
        cvt(unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENODEV) => OpenError::NoInterface,
            _ => os("binding to the interface")(e),
        })?;
        Ok(())
    }

    /// The link type of the packets this ring gives.
    pub fn link(&self) -> LinkType {
        self.link
    }

    fn attach(&self, insns: &[BpfInsn]) -> io::Result<()> {
        let mut filter: Vec<libc::sock_filter> = insns
            .iter()
            .map(|i| libc::sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect();
        // `ret #K` keeps K bytes: the snap length asked here, not the one compiled in.
        for i in filter.iter_mut().filter(|i| i.code == BPF_RET_K && i.k > 0) {
            i.k = self.snaplen;
        }
        if self.cooked {
            fix_cooked(&mut filter).map_err(|k| {
                io::Error::other(format!(
                    "the program reads byte {k} of the cooked header, which the kernel does not have"
                ))
            })?;
        }
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_mut_ptr(),
        };
        setsockopt(&self.fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
    }

    /// Waits up to `timeout_ms` for the kernel to hand over a block. `Ok(false)` on timeout;
    /// an error when the socket failed, e.g. the interface went down or was deleted.
    pub fn wait(&mut self, timeout_ms: u16) -> io::Result<bool> {
        if self.ready() {
            return Ok(true);
        }
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(timeout_ms)) {
            Ok(_) => {}
            Err(nix::Error::EINTR) => return Ok(self.ready()),
            Err(e) => return Err(e.into()),
        }
        let events = fds[0].revents().unwrap_or(PollFlags::empty());
        if events.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL) {
            // Blocks the kernel handed over before the error are still read first.
            if self.ready() {
                return Ok(true);
            }
            return Err(self.socket_error());
        }
        Ok(self.ready())
    }

    fn socket_error(&self) -> io::Error {
        let mut err: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: SO_ERROR writes one int.
        let ret = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        match (ret, err) {
            (0, libc::ENETDOWN) => io::Error::other("the interface went down or was deleted"),
            (0, 0) => io::Error::other("the packet socket was closed"),
            (0, e) => io::Error::from_raw_os_error(e),
            _ => io::Error::last_os_error(),
        }
    }

    fn block(&self, n: usize) -> *mut u8 {
        // SAFETY: n < block_nr, so the address is inside the mapping.
        unsafe { self.map.add(n * BLOCK_SIZE) }
    }

    /// The status word of the current block, which the kernel and this process hand back and forth.
    fn status(&self) -> &AtomicU32 {
        // SAFETY: block_status is the u32 at offset 8 of the block descriptor, 4-aligned
        // (blocks are page-aligned), and lives as long as the mapping.
        unsafe { &*self.block(self.current).add(8).cast::<AtomicU32>() }
    }

    fn ready(&self) -> bool {
        self.status().load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// Gives each packet of the block the kernel handed over (if any) to `each`, until it
    /// returns `false`; then hands the block back. Returns whether there was a block.
    pub fn read_block(&mut self, each: &mut dyn FnMut(Packet<'_>) -> bool) -> bool {
        if !self.ready() {
            return false;
        }
        // SAFETY: the status says the kernel handed this block over (Acquire: its contents
        // are visible), and it does not write the block until the status is set back below.
        let block = unsafe { std::slice::from_raw_parts(self.block(self.current), BLOCK_SIZE) };
        let num_pkts = read_u32(block, 12).unwrap_or(0);
        let mut offset = read_u32(block, 16).unwrap_or(0) as usize;
        for _ in 0..num_pkts {
            let Some(frame) = block.get(offset..) else { break };
            let Some(next) = self.packet(frame, each) else { break };
            if next == 0 {
                break;
            }
            offset += next as usize;
        }
        self.status().store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.current = (self.current + 1) % self.block_nr;
        true
    }

    /// Hands one packet to `each`; the offset of the next one, 0 when `each` wants no more.
    fn packet(&mut self, frame: &[u8], each: &mut dyn FnMut(Packet<'_>) -> bool) -> Option<u32> {
        let next = read_u32(frame, 0)?;
        let ts_ns = u64::from(read_u32(frame, 4)?) * 1_000_000_000 + u64::from(read_u32(frame, 8)?);
        let snap = read_u32(frame, 12)?;
        let len = read_u32(frame, 16)?;
        let status = read_u32(frame, 20)?;
        let mac = usize::from(read_u16(frame, 24)?);
        let vlan_tci = read_u32(frame, 32)?;
        let vlan_tpid = read_u16(frame, 36)?;
        let bytes = frame.get(mac..mac + snap as usize)?;
        let sll = frame.get(SOCKADDR_LL_OFFSET..SOCKADDR_LL_OFFSET + 20)?;
        let sll_ifindex = i32::from_ne_bytes(sll[4..8].try_into().ok()?);
        if sll[10] == PACKET_OUTGOING && self.loopback == Some(sll_ifindex) {
            return Some(next);
        }
        let data: &[u8] = if self.cooked {
            self.scratch.clear();
            // pkttype, hatype, halen, 8 bytes of address, protocol: libpcap's SLL header.
            self.scratch.extend_from_slice(&u16::from(sll[10]).to_be_bytes());
            self.scratch
                .extend_from_slice(&u16::from_ne_bytes([sll[8], sll[9]]).to_be_bytes());
            self.scratch.extend_from_slice(&u16::from(sll[11]).to_be_bytes());
            self.scratch.extend_from_slice(&sll[12..20]);
            self.scratch.extend_from_slice(&sll[2..4]);
            self.scratch.extend_from_slice(bytes);
            &self.scratch
        } else if status & libc::TP_STATUS_VLAN_VALID != 0 && self.link == LinkType::ETHERNET && bytes.len() >= 12 {
            let tpid = match status & libc::TP_STATUS_VLAN_TPID_VALID {
                0 => 0x8100,
                _ => vlan_tpid,
            };
            self.scratch.clear();
            self.scratch.extend_from_slice(&bytes[..12]);
            self.scratch.extend_from_slice(&tpid.to_be_bytes());
            self.scratch.extend_from_slice(&(vlan_tci as u16).to_be_bytes());
            self.scratch.extend_from_slice(&bytes[12..]);
            &self.scratch
        } else {
            bytes
        };
        let extra = (data.len() - bytes.len()) as u32;
        let kept = data.len().min(self.snaplen as usize);
        let more = each(Packet {
            ts_ns,
            len: len.saturating_add(extra),
            data: &data[..kept],
        });
        Some(if more { next } else { 0 })
    }

    /// The kernel's counters so far (the kernel resets them on each read; they add up here).
    pub fn stats(&mut self) -> RingStats {
        // SAFETY: plain data, valid when zeroed.
        let mut st: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: PACKET_STATISTICS writes at most `len` bytes of a tpacket_stats_v3.
        let ret = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if ret == 0 {
            // The kernel's tp_packets already counts the drops.
            self.stats.received += u64::from(st.tp_packets);
            self.stats.dropped += u64::from(st.tp_drops);
        }
        self.stats
    }
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

const BPF_LD: u16 = 0x00;
const BPF_LDX: u16 = 0x01;
const BPF_ABS: u16 = 0x20;
const BPF_IND: u16 = 0x40;
const BPF_MSH: u16 = 0xa0;
/// BPF_RET | BPF_K: return a constant.
const BPF_RET_K: u16 = 0x06;
const SKF_AD_OFF: u32 = (-0x1000i32) as u32;
const SKF_AD_PROTOCOL: u32 = 0;
const SKF_AD_PKTTYPE: u32 = 4;

/// A program compiled for Linux cooked (SLL) frames, moved to what the kernel filter of a
/// cooked socket sees (the packet from its network header): loads past the 16-byte header move
/// back by 16, and the header's packet type and protocol become the kernel's ancillary loads,
/// as libpcap's `fix_offset` does. `Err(k)`: the program reads byte `k` of the header, which
/// the kernel has no ancillary load for.
pub fn fix_cooked(filter: &mut [libc::sock_filter]) -> Result<(), u32> {
    for insn in filter {
        let class = insn.code & 0x07;
        let mode = insn.code & 0xe0;
        if (class == BPF_LD || class == BPF_LDX) && matches!(mode, BPF_ABS | BPF_IND | BPF_MSH) {
            insn.k = match insn.k {
                k if k >= SLL_HDR_LEN => k - SLL_HDR_LEN,
                0 => SKF_AD_OFF + SKF_AD_PKTTYPE,
                14 => SKF_AD_OFF + SKF_AD_PROTOCOL,
                k => return Err(k),
            };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insn(code: u16, k: u32) -> libc::sock_filter {
        libc::sock_filter { code, jt: 0, jf: 0, k }
    }

    #[test]
    fn cooked_programs_move_to_the_network_header() {
        // ldh [14] (protocol); ldb [16+9] (IP protocol); ldxb 4*([16]&0xf); ldh [x+18]; ret #262144
        let mut p = [
            insn(0x28, 14),
            insn(0x30, 25),
            insn(0xb1, 16),
            insn(0x48, 18),
            insn(0x06, 262_144),
        ];
        fix_cooked(&mut p).unwrap();
        let ks: Vec<u32> = p.iter().map(|i| i.k).collect();
        assert_eq!(ks, [SKF_AD_OFF, 9, 0, 2, 262_144]);
        let mut p = [insn(0x30, 0)];
        fix_cooked(&mut p).unwrap();
        assert_eq!(p[0].k, SKF_AD_OFF + SKF_AD_PKTTYPE);
        // The link-layer address, bytes 6..14 of the header: no ancillary load has it.
        assert_eq!(fix_cooked(&mut [insn(0x20, 6)]), Err(6));
    }

    #[test]
    fn interface_names_include_loopback_and_any() {
        let names = interface_names();
        assert!(
            names.contains(&"lo".to_string()) && names.contains(&"any".to_string()),
            "{names:?}"
        );
        assert_eq!(ifreq(&"x".repeat(16)).map(|_| ()), None);
        assert_eq!(ifreq("lo\0").map(|_| ()), None);
    }
}
