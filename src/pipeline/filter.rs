//! tcpdump filter expressions (`tcp port 443 and host 10.0.0.5`) applied to packets of any
//! link type, and compiled BPF programs in `tcpdump -ddd` text for the kernel.
//!
//! libpcap compiles the expression into a BPF program; a program is specific to a link type
//! (where the IP header starts depends on it), and one capture can mix link types, so a program
//! is compiled per link type the first time a packet of that type shows up, on a dead pcap
//! handle, and kept. libpcap's interpreter (`pcap_offline_filter`) then runs it on each packet.
//!
//! libpcap is the cargo feature `libpcap` (on by default). The static agent is built without it
//! (Debian's libpcap.a needs dbus and systemd): there an expression is refused with a message
//! that says so, and the agent takes a [`CompiledFilter`] that the plugin compiled instead
//! (`--bpf-program`), which live capture attaches to its socket (SO_ATTACH_FILTER).
//!
//! Limitation: the pcap crate runs a program with the packet's wire length set to the captured
//! length, so `len`, `greater` and `less` compare against the captured length. They differ only
//! for packets cut by the snap length.

use std::fmt;

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
    /// This build has no libpcap to compile expressions with (the static agent).
    #[error(
        "filter '{expr}': this mtlscope was built without libpcap (the static agent), so it cannot compile \
         filter expressions; compile it where libpcap is (`tcpdump -ddd -y EN10MB '{expr}'`) and give the \
         program to `mtlscope agent --bpf-program` with --bpf-link-type (`kubectl mtlscope sniff -f` does), \
         or use a build with the `libpcap` feature"
    )]
    NoLibpcap { expr: String },
}

/// libpcap's refusal to compile an expression for a link type, shown in libpcap's own words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CompileError(String);

/// One BPF instruction, as `tcpdump -ddd` prints it: opcode, jump if true, jump if false, `k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// The kernel's limit on a socket filter's length (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

/// A compiled classic BPF program and the link type it was compiled for: where a program reads
/// the IP header depends on the link type, so it is only valid on an interface of that type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledFilter {
    pub link: LinkType,
    pub insns: Vec<BpfInsn>,
}

/// A `--bpf-program` text that is not a BPF program.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--bpf-program: {0} (expected `tcpdump -ddd` output: the instruction count, then one 'code jt jf k' per instruction, separated by commas or newlines)")]
pub struct ProgramTextError(String);

impl CompiledFilter {
    /// Reads `tcpdump -ddd` output, with its lines separated by newlines or commas (as
    /// iptables' bpf match takes it): `4,40 0 0 12,21 0 1 2048,6 0 0 262144,6 0 0 0`.
    pub fn parse(text: &str, link: LinkType) -> Result<CompiledFilter, ProgramTextError> {
        let mut parts = text.split([',', '\n']).map(str::trim).filter(|p| !p.is_empty());
        let count = parts.next().ok_or_else(|| ProgramTextError("empty program".into()))?;
        let count: usize = count
            .parse()
            .map_err(|_| ProgramTextError(format!("the instruction count '{count}' is not a number")))?;
        if count == 0 || count > MAX_INSNS {
            return Err(ProgramTextError(format!(
                "{count} instructions: a program has 1 to {MAX_INSNS}"
            )));
        }
        let mut insns = Vec::with_capacity(count);
        for (n, part) in parts.enumerate() {
            let fields: Vec<&str> = part.split_whitespace().collect();
            let bad = || {
                ProgramTextError(format!(
                    "instruction {} '{part}' is not 'code jt jf k' in decimal",
                    n + 1
                ))
            };
            let [code, jt, jf, k] = fields[..] else {
                return Err(bad());
            };
            insns.push(BpfInsn {
                code: code.parse().map_err(|_| bad())?,
                jt: jt.parse().map_err(|_| bad())?,
                jf: jf.parse().map_err(|_| bad())?,
                k: k.parse().map_err(|_| bad())?,
            });
        }
        if insns.len() != count {
            return Err(ProgramTextError(format!(
                "the count says {count} instructions, {} follow",
                insns.len()
            )));
        }
        Ok(CompiledFilter { link, insns })
    }

    /// The program as `tcpdump -ddd` prints it, with commas for newlines: one shell word.
    pub fn text(&self) -> String {
        let mut s = self.insns.len().to_string();
        for i in &self.insns {
            s.push_str(&format!(",{} {} {} {}", i.code, i.jt, i.jf, i.k));
        }
        s
    }
}

/// Compiles an expression for the kernel of a capture on `link` (what `tcpdump -ddd -y` does).
pub fn compile(expr: &str, link: LinkType) -> Result<CompiledFilter, FilterError> {
    imp::compile(expr, link).map(|insns| CompiledFilter { link, insns })
}

/// A tcpdump filter expression with its compiled programs, one per link type seen so far.
pub struct PacketFilter {
    expr: String,
    /// Link types seen so far; `None` when the expression does not compile for that type.
    /// A handful of entries at most, so a linear scan beats hashing.
    programs: Vec<(LinkType, Option<imp::Program>)>,
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
        let program = imp::Program::new(expr, LinkType::ETHERNET).map_err(|e| e.invalid(expr))?;
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
            Some((_, Some(program))) => program.matches(data),
            _ => false,
        })
    }

    #[cold]
    fn first_of_link(&mut self, link: LinkType, data: &[u8]) -> Result<bool, FilterError> {
        self.last = self.programs.len();
        match imp::Program::new(&self.expr, link) {
            Ok(program) => {
                let matched = program.matches(data);
                self.programs.push((link, Some(program)));
                Ok(matched)
            }
            Err(e) => {
                self.programs.push((link, None));
                Err(e.unsupported(&self.expr, link))
            }
        }
    }
}

/// Why libpcap (or its absence) did not give a program.
enum Refusal {
    #[cfg_attr(not(feature = "libpcap"), allow(dead_code))]
    Libpcap(CompileError),
    #[cfg(not(feature = "libpcap"))]
    NoLibpcap,
}

impl Refusal {
    fn invalid(self, expr: &str) -> FilterError {
        match self {
            Refusal::Libpcap(reason) => FilterError::Invalid {
                expr: expr.to_string(),
                reason,
            },
            #[cfg(not(feature = "libpcap"))]
            Refusal::NoLibpcap => FilterError::NoLibpcap { expr: expr.to_string() },
        }
    }

    fn unsupported(self, expr: &str, link: LinkType) -> FilterError {
        match self {
            Refusal::Libpcap(reason) => FilterError::Unsupported {
                expr: expr.to_string(),
                link,
                reason,
            },
            #[cfg(not(feature = "libpcap"))]
            Refusal::NoLibpcap => FilterError::NoLibpcap { expr: expr.to_string() },
        }
    }
}

#[cfg(feature = "libpcap")]
mod imp {
    use super::{BpfInsn, CompileError, CompiledFilter, FilterError, Refusal};
    use crate::pipeline::source::LinkType;
    use pcap::{BpfProgram, Capture, Linktype};

    pub(super) struct Program(BpfProgram);

    impl Program {
        pub(super) fn new(expr: &str, link: LinkType) -> Result<Program, Refusal> {
            Capture::dead(Linktype(dlt_for(link)))
                .and_then(|capture| capture.compile(expr, true))
                .map(Program)
                .map_err(|e| Refusal::Libpcap(CompileError(libpcap_text(&e))))
        }

        pub(super) fn matches(&self, data: &[u8]) -> bool {
            self.0.filter(data)
        }
    }

    pub(super) fn compile(expr: &str, link: LinkType) -> Result<Vec<BpfInsn>, FilterError> {
        // Invalid syntax is said as such; a valid expression libpcap cannot apply to `link` as that.
        Program::new(expr, LinkType::ETHERNET).map_err(|e| e.invalid(expr))?;
        let program = Program::new(expr, link).map_err(|e| e.unsupported(expr, link))?;
        // The pcap crate shows an instruction only as `tcpdump -ddd` does: read that text.
        let insns = program.0.get_instructions();
        let mut text = insns.len().to_string();
        for insn in insns {
            text.push_str(&format!(",{insn}"));
        }
        CompiledFilter::parse(&text, link)
            .map(|p| p.insns)
            .map_err(|e| FilterError::Unsupported {
                expr: expr.to_string(),
                link,
                reason: CompileError(format!("libpcap gave a program mtlscope cannot read: {e}")),
            })
    }

    /// libpcap's text, minus a prefix that adds nothing after "invalid filter".
    fn libpcap_text(e: &pcap::Error) -> String {
        match e {
            pcap::Error::PcapError(text) => text
                .strip_prefix("can't parse filter expression: ")
                .unwrap_or(text)
                .to_string(),
            other => other.to_string(),
        }
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
}

#[cfg(not(feature = "libpcap"))]
mod imp {
    use super::{BpfInsn, FilterError, Refusal};
    use crate::pipeline::source::LinkType;

    /// Never made: without libpcap no expression compiles.
    pub(super) enum Program {}

    impl Program {
        pub(super) fn new(_expr: &str, _link: LinkType) -> Result<Program, Refusal> {
            Err(Refusal::NoLibpcap)
        }

        pub(super) fn matches(&self, _data: &[u8]) -> bool {
            match *self {}
        }
    }

    pub(super) fn compile(expr: &str, _link: LinkType) -> Result<Vec<BpfInsn>, FilterError> {
        Err(FilterError::NoLibpcap { expr: expr.to_string() })
    }
}

#[cfg(all(test, feature = "libpcap"))]
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

    #[test]
    fn compiled_programs_round_trip_as_tcpdump_ddd_text() {
        let program = compile("tcp port 443", LinkType::ETHERNET).unwrap();
        let text = program.text();
        assert!(
            text.starts_with(&format!("{},40 0 0 12,", program.insns.len())),
            "{text}"
        );
        assert_eq!(CompiledFilter::parse(&text, LinkType::ETHERNET).unwrap(), program);
        // tcpdump's own layout, one instruction per line.
        let lines = text.replace(',', "\n");
        assert_eq!(CompiledFilter::parse(&lines, LinkType::ETHERNET).unwrap(), program);
        let err = compile("tcp prot 443", LinkType::LINUX_SLL).unwrap_err();
        assert_eq!(err.to_string(), "invalid filter 'tcp prot 443': syntax error");
        assert!(matches!(
            compile("ether host 00:11:22:33:44:55", LinkType::RAW),
            Err(FilterError::Unsupported { .. })
        ));
    }
}

#[cfg(test)]
mod program_text_tests {
    use super::*;

    #[test]
    fn bad_program_text_says_what_is_wrong() {
        let err = |t: &str| CompiledFilter::parse(t, LinkType::ETHERNET).unwrap_err().0;
        assert_eq!(err(""), "empty program");
        assert_eq!(err("x,6 0 0 0"), "the instruction count 'x' is not a number");
        assert_eq!(err("0"), "0 instructions: a program has 1 to 4096");
        assert_eq!(err("2,6 0 0 0"), "the count says 2 instructions, 1 follow");
        assert_eq!(err("1,6 0 0"), "instruction 1 '6 0 0' is not 'code jt jf k' in decimal");
        assert_eq!(
            err("1,6 0 0 -1"),
            "instruction 1 '6 0 0 -1' is not 'code jt jf k' in decimal"
        );
        let p = CompiledFilter::parse(" 1, 6 0 0 262144 ,", LinkType::LINUX_SLL).unwrap();
        assert_eq!(
            p.insns,
            [BpfInsn {
                code: 6,
                jt: 0,
                jf: 0,
                k: 262_144
            }]
        );
        assert_eq!(p.text(), "1,6 0 0 262144");
    }

    #[cfg(not(feature = "libpcap"))]
    #[test]
    fn without_libpcap_an_expression_is_refused_and_says_what_to_do() {
        let e = PacketFilter::new("tcp port 443").unwrap_err().to_string();
        assert!(
            e.contains("built without libpcap") && e.contains("--bpf-program"),
            "{e}"
        );
        assert!(compile("tcp", LinkType::ETHERNET).is_err());
    }
}
