//! One namespace per connection. A connection between two pods of the node crosses both their
//! namespaces, so both captures see every one of its packets, each ring delivering them when
//! its block fills or times out. Fed both copies, the engine could close the connection on one
//! namespace's packets and open it again on the other's, late, counting it twice (measured: 73
//! of 2,182 connections among 50 namespaces, before this). So each capture learns its own
//! addresses from inside its namespace, all captures share them here, and a packet between two
//! captured namespaces is fed from the server's side only (see [`Own::feeds`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How often a capture reads its namespace's addresses again (a pod's do not change; a
/// namespace outside a cluster may get one later).
pub const REFRESH: Duration = Duration::from_secs(5);

/// The addresses of every running capture, by the capture that has them.
#[derive(Debug, Default)]
pub struct Peers {
    owner: RwLock<HashMap<IpAddr, u64>>,
}

impl Peers {
    fn replace(&self, capture: u64, old: &[IpAddr], new: &[IpAddr]) {
        let mut owner = self.owner.write().unwrap_or_else(|e| e.into_inner());
        for ip in old {
            if owner.get(ip) == Some(&capture) {
                owner.remove(ip);
            }
        }
        for ip in new {
            owner.insert(*ip, capture);
        }
    }

    fn owner(&self, ip: &IpAddr) -> Option<u64> {
        self.owner.read().unwrap_or_else(|e| e.into_inner()).get(ip).copied()
    }
}

/// One capture's side of it: its own addresses and the shared table.
#[derive(Debug)]
pub struct Own {
    peers: Arc<Peers>,
    /// Unique per capture (the monitor's generation counter).
    capture: u64,
    ips: Vec<IpAddr>,
    read_at: Option<Instant>,
}

impl Own {
    pub fn new(peers: Arc<Peers>, capture: u64) -> Own {
        Own {
            peers,
            capture,
            ips: Vec::new(),
            read_at: None,
        }
    }

    /// Read this namespace's addresses if never read or `REFRESH` old. Call it on the capture's
    /// thread, which is inside the namespace.
    pub fn refresh(&mut self) {
        if self.read_at.is_some_and(|t| t.elapsed() < REFRESH) {
            return;
        }
        self.read_at = Some(Instant::now());
        let ips = namespace_addresses();
        if ips != self.ips {
            self.peers.replace(self.capture, &self.ips, &ips);
            self.ips = ips;
        }
    }

    /// Should this capture feed a packet between `a` and `b` (address and port) to the engine?
    /// When one end is this namespace's and the other another captured namespace's, only the
    /// server's side feeds it: the end with the lower port (a listening port is below the
    /// ephemeral range), the lower address on equal ports. Decided on addresses and ports
    /// alone, so every packet of a connection gets the same answer. The server's side, not
    /// just either: a client that dialled a Service IP sees that IP, translated to the pod's
    /// only in the host's namespace, so only the server's namespace sees the pod-to-pod
    /// connection at all.
    pub fn feeds(&self, a: (IpAddr, u16), b: (IpAddr, u16)) -> bool {
        let (mine, theirs) = if self.ips.contains(&a.0) {
            (a, b)
        } else if self.ips.contains(&b.0) {
            (b, a)
        } else {
            return true;
        };
        match self.peers.owner(&theirs.0) {
            Some(c) if c != self.capture => (mine.1, mine.0) < (theirs.1, theirs.0),
            _ => true,
        }
    }
}

impl Drop for Own {
    fn drop(&mut self) {
        self.peers.replace(self.capture, &self.ips, &[]);
    }
}

/// The addresses of the calling thread's network namespace, without loopback and link-local
/// ones (no connection between pods uses them).
fn namespace_addresses() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = Vec::new();
    #[cfg(target_os = "linux")]
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(addr) = a.address else { continue };
            let ip = if let Some(v4) = addr.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                IpAddr::V6(v6.ip())
            } else {
                continue;
            };
            let link_local = match ip {
                IpAddr::V4(v4) => v4.is_link_local(),
                IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
            };
            if !ip.is_loopback() && !link_local && !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    ips.sort();
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(peers: &Arc<Peers>, capture: u64, ips: &[&str]) -> Own {
        let mut o = Own::new(peers.clone(), capture);
        let ips: Vec<IpAddr> = ips.iter().map(|s| s.parse().unwrap()).collect();
        peers.replace(capture, &[], &ips);
        o.ips = ips;
        o.read_at = Some(Instant::now());
        o
    }

    #[test]
    fn a_packet_between_two_captured_namespaces_is_fed_once_from_the_servers_side() {
        let peers = Arc::new(Peers::default());
        let a = own(&peers, 1, &["10.0.0.1"]);
        let b = own(&peers, 2, &["10.0.0.2"]);
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        // 10.0.0.1:40000 -> 10.0.0.2:8080, both directions: only the server's (b) feeds it.
        let (client, server) = ((ip("10.0.0.1"), 40000), (ip("10.0.0.2"), 8080));
        assert!(b.feeds(client, server) && b.feeds(server, client));
        assert!(!a.feeds(client, server) && !a.feeds(server, client));
        // Equal ports: the lower address.
        let (x, y) = ((ip("10.0.0.1"), 7000), (ip("10.0.0.2"), 7000));
        assert!(a.feeds(x, y) && !b.feeds(x, y));
        // To an address no capture has (a Service IP, outside): each namespace feeds its own.
        let out = (ip("192.0.2.9"), 443);
        assert!(a.feeds(client, out) && b.feeds(out, server));
        // The server's capture goes: the client's feeds from then on.
        drop(b);
        assert!(a.feeds(client, server));
    }

    #[test]
    fn this_threads_namespace_has_addresses_without_loopback() {
        let ips = namespace_addresses();
        assert!(ips.iter().all(|ip| !ip.is_loopback()), "{ips:?}");
    }
}
