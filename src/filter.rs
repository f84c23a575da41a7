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

use std::fmt;

use pcap::{BpfProgram, Capture, Linktype};

use crate::source::LinkType;

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The expression is not valid tcpdump filter syntax (checked for Ethernet).
    #[error("invalid filter '{expr}': {reason}")]
    Invalid { expr: String, reason: String },
    /// The expression is valid but libpcap cannot apply it to this link type, for example
    /// `ether host` on raw IP packets or any filter on NFLOG.
    #[error("filter '{expr}' cannot be applied to {link} packets: {reason}")]
    Unsupported {
        expr: String,
        link: LinkType,
        reason: String,
    },
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
    pub fn matches(
        &mut self,
        link: LinkType,
        data: &[u8],
        orig_len: u32,
    ) -> Result<bool, FilterError> {
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

fn compile(expr: &str, link: LinkType) -> Result<BpfProgram, String> {
    let compiled =
        Capture::dead(Linktype(dlt_for(link))).and_then(|capture| capture.compile(expr, true));
    compiled.map_err(|e| match e {
        // libpcap's own text, minus a prefix that adds nothing after "invalid filter".
        pcap::Error::PcapError(text) => text
            .strip_prefix("can't parse filter expression: ")
            .unwrap_or(&text)
            .to_string(),
        other => other.to_string(),
    })
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
