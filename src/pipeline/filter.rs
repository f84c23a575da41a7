//! tcpdump filter expressions (`tcp port 443 and host 10.0.0.5`) applied to packets of any
//! link type.
//!
//! libpcap compiles the expression into a BPF program; a program is specific to a link type
//! (where the IP header starts depends on it), and one capture can mix link types, so a program
//! is compiled per link type the first time a packet of that type shows up, on a dead pcap
//! handle, and kept. libpcap's interpreter (`pcap_offline_filter`) then runs it on each packet.
//!
//! Limitation: the pcap crate runs a program with the packet's wire length set to the captured
//! length, so `len`, `greater` and `less` compare against the captured length. They differ only
//! for packets cut by the snap length.

use std::borrow::Cow;
use std::fmt;

use pcap::{BpfProgram, Capture, Linktype};

use crate::pipeline::source::LinkType;

/// Why a filter cannot be used. The libpcap reason is part of the message rather than a
/// `#[source]`, so an error chain printed with `{:#}` does not say it twice.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The expression is not valid tcpdump filter syntax (checked for Ethernet).
    #[error("invalid filter '{expr}': {reason}")]
    Invalid { expr: String, reason: CompileError },
    /// The expression is valid but libpcap cannot apply it to this link type, for example
    /// `ether host` on raw IP packets or any filter on NFLOG.
    #[error("filter '{expr}' cannot be applied to link type {link}: {reason}")]
    Unsupported {
        expr: String,
        link: LinkType,
        reason: CompileError,
    },
}

/// libpcap's refusal to compile an expression for a link type, shown in libpcap's own words.
#[derive(Debug, thiserror::Error)]
#[error("{}", libpcap_text(.0))]
pub struct CompileError(pcap::Error);

/// libpcap's text, minus a prefix that adds nothing after "invalid filter".
fn libpcap_text(e: &pcap::Error) -> Cow<'_, str> {
    match e {
        pcap::Error::PcapError(text) => {
            Cow::Borrowed(text.strip_prefix("can't parse filter expression: ").unwrap_or(text))
        }
        other => Cow::Owned(other.to_string()),
    }
}

/// A tcpdump filter expression with its compiled programs, one per link type seen so far.
pub struct PacketFilter {
    expr: String,
    /// Link types seen so far; `None` when the expression does not compile for that type.
    /// A handful of entries at most, so a linear scan beats hashing.
    programs: Vec<(LinkType, Option<BpfProgram>)>,
    /// Index of the entry used last: consecutive packets almost always share a link type.
    last: usize,
}

impl fmt::Debug for PacketFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let links: Vec<LinkType> = self.programs.iter().map(|(link, _)| *link).collect();
        f.debug_struct("PacketFilter")
            .field("expr", &self.expr)
            .field("links", &links)
            .finish()
    }
}

impl PacketFilter {
    /// Compiles the expression for Ethernet so that a typo fails before any file is read.
    pub fn new(expr: &str) -> Result<PacketFilter, FilterError> {
        let program = compile(expr, LinkType::ETHERNET).map_err(|reason| FilterError::Invalid {
            expr: expr.to_string(),
            reason,
        })?;
        Ok(PacketFilter {
            expr: expr.to_string(),
            programs: vec![(LinkType::ETHERNET, Some(program))],
            last: 0,
        })
    }

    /// The expression as given.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// Whether the packet matches. For a link type the expression cannot be compiled for, the
    /// first packet of that type returns the error and later ones do not match.
    ///
    /// `orig_len` is accepted for the day the pcap crate can pass it; see the module comment.
    pub fn matches(&mut self, link: LinkType, data: &[u8], orig_len: u32) -> Result<bool, FilterError> {
        let _ = orig_len;
        let index = match self.programs.get(self.last) {
            Some((cached, _)) if *cached == link => self.last,
            _ => match self.programs.iter().position(|(cached, _)| *cached == link) {
                Some(found) => found,
                None => return self.first_of_link(link, data),
            },
        };
        self.last = index;
        Ok(match self.programs.get(index) {
            Some((_, Some(program))) => program.filter(data),
            _ => false,
        })
    }

    #[cold]
    fn first_of_link(&mut self, link: LinkType, data: &[u8]) -> Result<bool, FilterError> {
        self.last = self.programs.len();
        match compile(&self.expr, link) {
            Ok(program) => {
                let matched = program.filter(data);
                self.programs.push((link, Some(program)));
                Ok(matched)
            }
            Err(reason) => {
                self.programs.push((link, None));
                Err(FilterError::Unsupported {
                    expr: self.expr.clone(),
                    link,
                    reason,
                })
            }
        }
    }
}

fn compile(expr: &str, link: LinkType) -> Result<BpfProgram, CompileError> {
    Capture::dead(Linktype(dlt_for(link)))
        .and_then(|capture| capture.compile(expr, true))
        .map_err(CompileError)
}

/// `pcap_open_dead` takes the platform's DLT_ value, which differs from the LINKTYPE_ value
/// stored in files for a few historical link types (libpcap's `linktype_to_dlt`).
fn dlt_for(link: LinkType) -> i32 {
    match link.0 {
        100 => 11, // ATM_RFC1483
        101 if cfg!(target_os = "openbsd") => 14,
        101 => 12, // RAW
        108 if cfg!(target_os = "openbsd") => 12,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4 + TCP from 10.0.0.1:40000 to 10.0.0.2:`dport`, with `payload` bytes of data.
    fn ipv4_tcp(dport: u16, payload: usize) -> Vec<u8> {
        let total = (20 + 20 + payload) as u16;
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend(40000u16.to_be_bytes());
        p.extend(dport.to_be_bytes());
        p.extend([0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend(std::iter::repeat_n(0x17, payload));
        p
    }

    fn ethernet(ip: &[u8]) -> Vec<u8> {
        let mut p = vec![0, 0x11, 0x22, 0x33, 0x44, 0x55, 0, 0x66, 0x77, 0x88, 0x99, 0xaa, 8, 0];
        p.extend(ip);
        p
    }

    fn linux_sll2(ip: &[u8]) -> Vec<u8> {
        let mut p = vec![
            8, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0, 0,
        ];
        p.extend(ip);
        p
    }

    fn bsd_null(ip: &[u8]) -> Vec<u8> {
        let mut p = 2u32.to_ne_bytes().to_vec();
        p.extend(ip);
        p
    }

    #[test]
    fn invalid_expression_fails_up_front() {
        let err = PacketFilter::new("tcp prot 443").unwrap_err();
        assert_eq!(err.to_string(), "invalid filter 'tcp prot 443': syntax error");
        let err = PacketFilter::new("host 1.2.3.4.5").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid filter 'host 1.2.3.4.5': unknown host '1.2.3.4.5'"
        );
        assert!(PacketFilter::new("tcp port 443\0").is_err());
    }

    #[test]
    fn same_expression_on_every_link_type() {
        let mut filter = PacketFilter::new("tcp port 443 and host 10.0.0.2").unwrap();
        for dport in [443, 80] {
            let ip = ipv4_tcp(dport, 10);
            let want = dport == 443;
            let cases = [
                (LinkType::ETHERNET, ethernet(&ip)),
                (LinkType::RAW, ip.clone()),
                (LinkType::IPV4, ip.clone()),
                (LinkType::LINUX_SLL2, linux_sll2(&ip)),
                (LinkType::NULL, bsd_null(&ip)),
                (LinkType::ETHERNET, ethernet(&ip)),
            ];
            for (link, packet) in cases {
                let got = filter.matches(link, &packet, packet.len() as u32).unwrap();
                assert_eq!(got, want, "{link} port {dport}");
            }
        }
        assert_eq!(filter.expr(), "tcp port 443 and host 10.0.0.2");
    }

    #[test]
    fn short_and_empty_packets_do_not_match() {
        let mut filter = PacketFilter::new("tcp port 443").unwrap();
        let packet = ethernet(&ipv4_tcp(443, 0));
        // The destination port ends at byte 38; bytes the program does not load may be missing.
        for cut in 0..=packet.len() {
            let got = filter.matches(LinkType::ETHERNET, &packet[..cut], 1500);
            assert_eq!(got.unwrap(), cut >= 38, "cut {cut}");
        }
        assert!(filter.matches(LinkType::ETHERNET, &packet, 54).unwrap());
    }

    #[test]
    fn link_type_the_expression_cannot_handle_errors_once() {
        let mut filter = PacketFilter::new("ether host 00:11:22:33:44:55").unwrap();
        let ip = ipv4_tcp(443, 0);
        let err = filter.matches(LinkType::RAW, &ip, 40).unwrap_err();
        assert_eq!(
            err.to_string(),
            "filter 'ether host 00:11:22:33:44:55' cannot be applied to link type RAW (101): \
             ethernet addresses supported only on ethernet/FDDI/token ring/802.11/ATM LANE/Fibre Channel"
        );
        assert!(!filter.matches(LinkType::RAW, &ip, 40).unwrap());
        assert!(filter.matches(LinkType::ETHERNET, &ethernet(&ip), 54).unwrap());

        let mut filter = PacketFilter::new("tcp").unwrap();
        let err = filter.matches(LinkType::NFLOG, &[0; 8], 8).unwrap_err();
        assert_eq!(
            err.to_string(),
            "filter 'tcp' cannot be applied to link type NFLOG (239): NFLOG link-layer type filtering not implemented"
        );
        assert!(!filter.matches(LinkType::NFLOG, &[0; 8], 8).unwrap());
        let err = filter.matches(LinkType(4242), &[0; 8], 8).unwrap_err();
        assert_eq!(
            err.to_string(),
            "filter 'tcp' cannot be applied to link type 4242: unknown data link type 4242 (min 104, max 289)"
        );
    }

    #[test]
    fn length_primitives_see_the_captured_length() {
        let mut filter = PacketFilter::new("greater 100").unwrap();
        let packet = ethernet(&ipv4_tcp(443, 0));
        // 54 bytes captured of a 1500-byte packet: the documented limitation.
        assert!(!filter.matches(LinkType::ETHERNET, &packet, 1500).unwrap());
    }
}
