//! Stage 1 for live traffic: libpcap on an interface, optionally inside another network
//! namespace, feeding the same engine as capture files.
//!
//! The capture runs on a thread of its own: that thread enters the namespace (see [`netns`]),
//! opens the interface, applies the BPF filter in the kernel and hands each packet to a
//! [`PacketSink`]. It wakes at least every [`POLL_MS`] to notice Ctrl-C, SIGTERM, `--duration`
//! and `--count`, so stopping is prompt and the `-w` file is always complete.

use crate::live::netns::{self, NetnsError, NetnsTarget};
use crate::pipeline::record::CaptureStats;
pub use crate::pipeline::runner::{Captured, PacketSink};
use crate::pipeline::source::LinkType;
#[cfg(unix)]
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
#[cfg(unix)]
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long the capture waits for a packet before the stop conditions are checked again.
pub const POLL_MS: i32 = 100;

#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub interface: String,
    pub netns: Option<NetnsTarget>,
    pub filter: Option<String>,
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
    #[error("invalid filter '{expr}': {message}")]
    Filter { expr: String, message: String },
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

fn capture_here(
    opts: &LiveOptions,
    stop: &AtomicBool,
    sink: &mut dyn PacketSink,
) -> Result<Captured<CaptureError>, CaptureError> {
    let where_ = place(&opts.netns);
    let devices = pcap::Device::list().map_err(|e| open_error(opts, &where_, e))?;
    if !devices.iter().any(|d| d.name == opts.interface) {
        let mut names: Vec<String> = devices.into_iter().map(|d| d.name).collect();
        names.sort();
        return Err(CaptureError::NoInterface {
            interface: opts.interface.clone(),
            place: where_,
            available: names.join(", "),
        });
    }
    let mut cap = pcap::Capture::from_device(opts.interface.as_str())
        .and_then(|c| {
            c.promisc(opts.promisc)
                .snaplen(opts.snaplen)
                .timeout(POLL_MS)
                .immediate_mode(true)
                .buffer_size(opts.buffer_size)
                .precision(pcap::Precision::Nano)
                .open()
        })
        .and_then(|c| c.setnonblock())
        .map_err(|e| open_error(opts, &where_, e))?;
    if let Some(expr) = &opts.filter {
        cap.filter(expr, true).map_err(|e| CaptureError::Filter {
            expr: expr.clone(),
            message: e.to_string(),
        })?;
    }
    let link = LinkType(cap.get_datalink().0);
    let mut snap = SnapWarning::default();
    // /sys/class/net shows the namespace sysfs was mounted in, not the one this thread entered.
    let mtu = opts.netns.is_none().then(|| interface_mtu(&opts.interface)).flatten();
    snap.warn(mtu.and_then(|mtu| snap_below_mtu(opts.snaplen, &opts.interface, mtu, link)));
    let mut save = match &opts.write {
        Some(path) => Some(cap.savefile(path).map_err(|e| CaptureError::Write {
            path: path.display().to_string(),
            message: e.to_string(),
        })?),
        None => None,
    };
    let started = Instant::now();
    let deadline = opts.duration.map(|d| started + d);
    let mut packets: u64 = 0;
    let mut last_tick = Instant::now();
    let mut broke_off = None;
    loop {
        if stop.load(Ordering::Relaxed)
            || deadline.is_some_and(|d| Instant::now() >= d)
            || opts.count.is_some_and(|c| packets >= c)
        {
            break;
        }
        match cap.next_packet() {
            Ok(p) => {
                packets += 1;
                snap.warn(packet_cut(opts.snaplen, p.header.caplen, p.header.len));
                if let Some(s) = save.as_mut() {
                    s.write(&p);
                }
                let ts = &p.header.ts;
                // With nanosecond precision libpcap puts nanoseconds in tv_usec.
                let ts_ns = (ts.tv_sec as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(ts.tv_usec as u64);
                sink.packet(ts_ns, link, p.data);
            }
            // Non-blocking: nothing to read now. Wait on the descriptor ourselves, because in
            // immediate mode libpcap's own read never returns on its timeout (Linux, TPACKET_V3).
            Err(pcap::Error::TimeoutExpired) => {
                #[cfg(unix)]
                {
                    let mut fds = [PollFd::new(cap.as_fd(), PollFlags::POLLIN)];
                    let _ = poll(&mut fds, PollTimeout::from(POLL_MS as u16));
                }
                // Npcap has no descriptor to poll: wait as long as poll would at most.
                #[cfg(not(unix))]
                std::thread::sleep(std::time::Duration::from_millis(POLL_MS as u64));
            }
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
            if let Some(s) = save.as_mut() {
                let _ = s.flush();
            }
            sink.tick();
        }
    }
    let stat = cap.stats().unwrap_or(pcap::Stat {
        received: 0,
        dropped: 0,
        if_dropped: 0,
    });
    if let Some(mut s) = save {
        if let Err(e) = s.flush() {
            broke_off.get_or_insert(CaptureError::Write {
                path: opts.write.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                message: e.to_string(),
            });
        }
    }
    let stats = CaptureStats {
        interface: opts.interface.clone(),
        netns: opts.netns.as_ref().map(|t| t.path().display().to_string()),
        packets,
        received: stat.received,
        dropped: stat.dropped,
        if_dropped: stat.if_dropped,
        written: opts.write.as_ref().map(|p| p.display().to_string()),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok(Captured { stats, broke_off })
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

/// The interface's MTU, from sysfs (Linux); `None` for `any` or when it cannot be read.
fn interface_mtu(interface: &str) -> Option<u32> {
    if interface.is_empty() || interface.contains('/') || interface.starts_with('.') {
        return None;
    }
    std::fs::read_to_string(format!("/sys/class/net/{interface}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
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

fn open_error(opts: &LiveOptions, place: &str, e: pcap::Error) -> CaptureError {
    let message = e.to_string();
    let lower = message.to_lowercase();
    let denied = lower.contains("permission") || lower.contains("not permitted");
    CaptureError::Open {
        interface: opts.interface.clone(),
        place: place.to_string(),
        message,
        hint: if denied { CAPTURE_HINT } else { "" },
    }
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
    fn mtu_is_read_only_for_plain_interface_names() {
        assert_eq!(interface_mtu("../../../etc/passwd"), None);
        assert_eq!(interface_mtu(""), None);
        if std::path::Path::new("/sys/class/net/lo/mtu").exists() {
            assert!(interface_mtu("lo").is_some_and(|m| m > 0));
        }
    }
}
