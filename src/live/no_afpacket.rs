//! [`super::afpacket`] where there is no AF_PACKET (the plugin for macOS and Windows, which
//! captures in the cluster through its agent and reads capture files, never on a local
//! interface): the same names, and opening a capture says so. A [`Ring`] cannot exist here, so
//! its methods are never reached.

use crate::pipeline::filter::BpfInsn;
use crate::pipeline::source::LinkType;
use std::io;

pub const MAX_SNAPLEN: u32 = 262_144;

pub struct Packet<'a> {
    pub ts_ns: u64,
    pub len: u32,
    pub data: &'a [u8],
}

#[derive(Debug)]
pub enum OpenError {
    NoInterface,
    Os { what: &'static str, cause: io::Error },
}

#[derive(Debug, Default, Clone, Copy)]
pub struct RingStats {
    pub received: u64,
    pub dropped: u64,
}

enum Never {}

pub struct Ring(Never);

pub fn interface_mtu(_interface: &str) -> Option<u32> {
    None
}

pub fn interface_names() -> Vec<String> {
    Vec::new()
}

impl Ring {
    pub fn open(_interface: &str, _snaplen: u32, _buffer_size: usize) -> Result<Ring, OpenError> {
        Err(OpenError::Os {
            what: "opening a packet socket",
            cause: io::Error::new(
                io::ErrorKind::Unsupported,
                "live capture needs Linux's AF_PACKET; here, capture in the cluster with `kubectl mtlscope sniff` \
                 or read a capture file (tcpdump -w, Wireshark)",
            ),
        })
    }

    pub fn start(&mut self, _filter: Option<&[BpfInsn]>, _promisc: bool) -> Result<(), OpenError> {
        match self.0 {}
    }

    pub fn link(&self) -> LinkType {
        match self.0 {}
    }

    pub fn wait(&mut self, _timeout_ms: u16) -> io::Result<bool> {
        match self.0 {}
    }

    pub fn read_block(&mut self, _each: &mut dyn FnMut(Packet<'_>) -> bool) -> bool {
        match self.0 {}
    }

    pub fn stats(&mut self) -> RingStats {
        match self.0 {}
    }
}
