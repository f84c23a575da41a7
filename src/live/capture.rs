//! Stage 1 for live traffic: an AF_PACKET socket on an interface ([`afpacket`]), optionally
//! inside another network namespace, feeding the same engine as capture files.
//!
//! The capture runs on a thread of its own: that thread enters the namespace (see [`netns`]),
//! opens the interface, attaches the BPF filter in the kernel and hands each packet to a
//! [`PacketSink`]. It wakes at least every [`POLL_MS`] to notice Ctrl-C, SIGTERM, `--duration`
//! and `--count`, so stopping is prompt and the `-w` file is always complete.
//!
//! A filter is a tcpdump expression compiled here with libpcap for the interface's link type
//! (builds with the `libpcap` feature), or a program compiled elsewhere (the plugin, for the
//! static agent), which must have been compiled for the interface's link type.

use crate::live::afpacket::{self, OpenError, Ring, MAX_SNAPLEN};
use crate::live::netns::{self, NetnsError, NetnsTarget};
use crate::live::savefile::Savefile;
use crate::pipeline::filter::{self, CompiledFilter, FilterError};
use crate::pipeline::record::CaptureStats;
pub use crate::pipeline::runner::{Captured, PacketSink};
use crate::pipeline::source::LinkType;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long the capture waits for a packet before the stop conditions are checked again.
pub const POLL_MS: i32 = 100;

#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub interface: String,
    pub netns: Option<NetnsTarget>,
    /// A tcpdump expression, compiled for the interface's link type.
    pub filter: Option<String>,
    /// A program compiled elsewhere (`--bpf-program`); used instead of `filter`.
    pub program: Option<CompiledFilter>,
    pub snaplen: i32,
    pub promisc: bool,
    pub duration: Option<Duration>,
    pub count: Option<u64>,
    pub write: Option<PathBuf>,
    /// Kernel buffer in bytes; larger survives bursts without drops.
    pub buffer_size: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("no interface '{interface}' {place}; interfaces there: {available}")]
    NoInterface {
        interface: String,
        place: String,
        available: String,
    },
    #[error("cannot capture on '{interface}' {place}: {message}{hint}")]
    Open {
        interface: String,
        place: String,
        message: String,
        hint: &'static str,
    },
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error(
        "--bpf-program was compiled for link type {program}, but '{interface}' {place} gives {interface_link}: \
         compile it for {interface_link} (`tcpdump -ddd -y {name} EXPR`, or let `kubectl mtlscope sniff -f` do it)"
    )]
    ProgramLink {
        interface: String,
        place: String,
        program: LinkType,
        interface_link: LinkType,
        name: String,
    },
    #[error("-w {path}: {message}")]
    Write { path: String, message: String },
    #[error("reading from '{interface}': {message}")]
    Read { interface: String, message: String },
}

const CAPTURE_HINT: &str = " (capturing needs CAP_NET_RAW, and CAP_NET_ADMIN for some interfaces: run as root, or `sudo setcap cap_net_raw,cap_net_admin=eip $(command -v mtlscope)`)";

fn place(netns: &Option<NetnsTarget>) -> String {
    match netns {
        None => "in this network namespace".into(),
        Some(t) => format!("in network namespace {}", t.path().display()),
    }
}

/// Capture until stopped or until reading breaks off (the interface went away). Blocks the
/// calling thread; the capture itself runs on a new thread. `Err` only when it could not start.
pub fn run(
    opts: &LiveOptions,
    stop: &AtomicBool,
    sink: &mut dyn PacketSink,
) -> Result<Captured<CaptureError>, CaptureError> {
    // Fail on a missing namespace before starting anything.
    let ns_file = opts
        .netns
        .as_ref()
        .map(|t| t.open().map(|f| (f, t.path())))
        .transpose()?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                if let Some((file, path)) = &ns_file {
                    netns::enter(file, path)?;
                }
                capture_here(opts, stop, sink)
            })
            .join()
            .unwrap_or_else(|_| {
                Err(CaptureError::Read {
                    interface: opts.interface.clone(),
                    message: "the capture thread panicked".into(),
                })
            })
    })
}

/// The socket, started with its filter.
fn open(opts: &LiveOptions, snaplen: u32) -> Result<Ring, CaptureError> {
    let where_ = place(&opts.netns);
    let open_error = |e: OpenError| match e {
        OpenError::NoInterface => CaptureError::NoInterface {
            interface: opts.interface.clone(),
            place: where_.clone(),
            available: afpacket::interface_names().join(", "),
        },
        OpenError::Os { what, cause } => CaptureError::Open {
            interface: opts.interface.clone(),
            place: where_.clone(),
            hint: match cause.raw_os_error() {
                Some(libc::EPERM | libc::EACCES) => CAPTURE_HINT,
                _ => "",
            },
            message: format!("{what}: {cause}"),
        },
    };
    let buffer = usize::try_from(opts.buffer_size).unwrap_or(32 << 20);
    let mut ring = Ring::open(&opts.interface, snaplen, buffer).map_err(open_error)?;
    let link = ring.link();
    let program = match (&opts.program, &opts.filter) {
        (Some(p), _) if p.link != link => {
            return Err(CaptureError::ProgramLink {
                interface: opts.interface.clone(),
                place: where_.clone(),
                program: p.link,
                interface_link: link,
                name: tcpdump_name(link),
            })
        }
        (Some(p), _) => Some(p.clone()),
        (None, Some(expr)) => Some(filter::compile(expr, link)?),
        (None, None) => None,
    };
    ring.start(program.as_ref().map(|p| &p.insns[..]), opts.promisc)
        .map_err(open_error)?;
    Ok(ring)
}

fn capture_here(
    opts: &LiveOptions,
    stop: &AtomicBool,
    sink: &mut dyn PacketSink,
) -> Result<Captured<CaptureError>, CaptureError> {
    // 0 or less (and anything over the maximum) is the maximum, as for libpcap.
    let snaplen = u32::try_from(opts.snaplen)
        .ok()
        .filter(|&s| s > 0 && s <= MAX_SNAPLEN)
        .unwrap_or(MAX_SNAPLEN);
    let drops_before = interface_drops(&opts.interface);
    let mut ring = open(opts, snaplen)?;
    let link = ring.link();
    let mut snap = SnapWarning::default();
    let mtu = afpacket::interface_mtu(&opts.interface);
    snap.warn(mtu.and_then(|mtu| snap_below_mtu(opts.snaplen, &opts.interface, mtu, link)));
    let write_error = |path: &PathBuf, e: std::io::Error| CaptureError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut save = match &opts.write {
        Some(path) => Some(Savefile::create(path, link, snaplen).map_err(|e| write_error(path, e))?),
        None => None,
    };
    sink.started();
    let started = Instant::now();
    let deadline = opts.duration.map(|d| started + d);
    let mut packets: u64 = 0;
    let mut last_tick = Instant::now();
    let mut broke_off = None;
    let mut write_failed = None;
    loop {
        if stop.load(Ordering::Relaxed)
            || deadline.is_some_and(|d| Instant::now() >= d)
            || opts.count.is_some_and(|c| packets >= c)
        {
            break;
        }
        match ring.wait(POLL_MS as u16) {
            Ok(true) => {
                ring.read_block(&mut |p| {
                    packets += 1;
                    snap.warn(packet_cut(opts.snaplen, p.data.len() as u32, p.len));
                    if let Some(s) = save.as_mut() {
                        if let Err(e) = s.write(p.ts_ns, p.len, p.data) {
                            // Nothing more goes to a file that failed; the capture goes on.
                            write_failed = Some(e);
                            save = None;
                        }
                    }
                    sink.packet(p.ts_ns, link, p.data);
                    opts.count.is_none_or(|c| packets < c) && !stop.load(Ordering::Relaxed)
                });
            }
            Ok(false) => {}
            // The interface went away (a deleted pod's veth) or the socket failed: what was
            // captured so far is still reported, with this error.
            Err(e) => {
                broke_off = Some(CaptureError::Read {
                    interface: opts.interface.clone(),
                    message: e.to_string(),
                });
                break;
            }
        }
        if last_tick.elapsed() >= Duration::from_millis(POLL_MS as u64) {
            last_tick = Instant::now();
            // The -w file may be a pipe someone reads live (the agent's pcap stream).
            if let Some(Err(e)) = save.as_mut().map(Savefile::flush) {
                write_failed = Some(e);
                save = None;
            }
            sink.kernel_drops(ring.stats().dropped);
            sink.tick();
        }
    }
    let stat = ring.stats();
    if let Some(Err(e)) = save.as_mut().map(Savefile::flush) {
        write_failed = Some(e);
    }
    if let (Some(e), Some(path)) = (write_failed, &opts.write) {
        broke_off.get_or_insert(write_error(path, e));
    }
    let if_dropped = match (drops_before, interface_drops(&opts.interface)) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => 0,
    };
    let stats = CaptureStats {
        interface: opts.interface.clone(),
        netns: opts.netns.as_ref().map(|t| t.path().display().to_string()),
        packets,
        received: u32::try_from(stat.received).unwrap_or(u32::MAX),
        dropped: u32::try_from(stat.dropped).unwrap_or(u32::MAX),
        if_dropped: u32::try_from(if_dropped).unwrap_or(u32::MAX),
        written: opts.write.as_ref().map(|p| p.display().to_string()),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok(Captured { stats, broke_off })
}

/// The name `tcpdump -y` knows a link type by.
fn tcpdump_name(link: LinkType) -> String {
    match link {
        LinkType::ETHERNET => "EN10MB".into(),
        other => other.name(),
    }
}

/// The packets the interface dropped on receive so far (the `drop` column of
/// /proc/net/dev), in the network namespace of the calling thread; `None` for `any`.
fn interface_drops(interface: &str) -> Option<u64> {
    let dev = std::fs::read_to_string("/proc/thread-self/net/dev").ok()?;
    dev_drops(&dev, interface)
}

fn dev_drops(dev: &str, interface: &str) -> Option<u64> {
    dev.lines().find_map(|line| {
        let (name, counters) = line.split_once(':')?;
        // Receive: bytes packets errs drop ...
        (name.trim() == interface).then(|| counters.split_whitespace().nth(3)?.parse().ok())?
    })
}

/// Says once, on standard error, that the snap length cuts packets: a handshake in cut packets
/// cannot be read, and the verdicts of those connections say why.
#[derive(Default)]
struct SnapWarning {
    warned: bool,
}

impl SnapWarning {
    fn warn(&mut self, warning: Option<String>) {
        if let Some(w) = warning.filter(|_| !self.warned) {
            self.warned = true;
            eprintln!("mtlscope: warning: {w}");
        }
    }
}

/// Bytes of link-layer header in front of the IP packet, for the link types live capture gives.
fn link_header(link: LinkType) -> u32 {
    match link {
        LinkType::ETHERNET => 14,
        LinkType::LINUX_SLL => 16,
        LinkType::LINUX_SLL2 => 20,
        LinkType::NULL | LinkType::LOOP => 4,
        _ => 0,
    }
}

/// The snap length set is shorter than a full-size packet of the interface.
fn snap_below_mtu(snaplen: i32, interface: &str, mtu: u32, link: LinkType) -> Option<String> {
    let full = mtu.saturating_add(link_header(link));
    // libpcap takes 0 or less (and anything over its maximum) as its maximum, 262144.
    let snaplen = u32::try_from(snaplen).ok().filter(|&s| s > 0)?;
    (snaplen < full).then(|| {
        format!(
            "snap length {snaplen} is below a full packet on {interface} ({mtu} MTU + {} bytes of link header): \
             longer packets are cut, and TLS handshakes in them cannot be read",
            link_header(link)
        )
    })
}

/// A packet arrived cut by the snap length.
fn packet_cut(snaplen: i32, caplen: u32, len: u32) -> Option<String> {
    (caplen < len).then(|| {
        format!(
            "packets are cut by the snap length ({snaplen}): one of {len} bytes was kept to {caplen}; \
             TLS handshakes in cut packets cannot be read (raise -s/--snaplen)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snap_length_warnings() {
        let w = snap_below_mtu(96, "eth0", 1500, LinkType::ETHERNET).unwrap();
        assert!(
            w.contains("snap length 96 is below a full packet on eth0 (1500 MTU + 14"),
            "{w}"
        );
        assert_eq!(snap_below_mtu(1514, "eth0", 1500, LinkType::ETHERNET), None);
        assert_eq!(snap_below_mtu(0, "eth0", 1500, LinkType::ETHERNET), None);
        assert!(snap_below_mtu(65535, "lo", 65536, LinkType::ETHERNET).is_some());
        assert!(packet_cut(96, 96, 1514)
            .unwrap()
            .contains("one of 1514 bytes was kept to 96"));
        assert_eq!(packet_cut(262_144, 1514, 1514), None);
        let mut once = SnapWarning::default();
        once.warn(None);
        assert!(!once.warned);
        once.warn(packet_cut(96, 96, 200));
        assert!(once.warned);
    }

    #[test]
    fn interface_drops_are_read_from_proc_net_dev() {
        let dev = "Inter-|   Receive                                                |  Transmit\n \
                   face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets\n    \
                   lo: 1000      10    0    0    0     0          0         0     1000      10\n  \
                   veth0: 5000      50    1    7    0     0          0         0     2000      20\n";
        assert_eq!(dev_drops(dev, "veth0"), Some(7));
        assert_eq!(dev_drops(dev, "lo"), Some(0));
        assert_eq!(dev_drops(dev, "eth9"), None);
        assert!(interface_drops("lo").is_some());
        assert_eq!(interface_drops("any"), None);
    }
}
