//! What can stop reading a capture ([`SourceError`]), where in the input it happened
//! ([`Position`]), and why a header, record or block is corrupt ([`Corrupt`]). Every message is
//! one line naming the file and the byte, as DESIGN.md's "Bad input" asks.

use std::fmt;
use std::io;

use pcap_parser::nom::error::ErrorKind;
use pcap_parser::PcapError;

/// Where in the input an error applies. For gzip input the offset counts decompressed bytes,
/// which is what a user finds after `gunzip`, so the message says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub offset: u64,
    pub decompressed: bool,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.decompressed {
            write!(f, "byte {} of the decompressed data", self.offset)
        } else {
            write!(f, "byte {}", self.offset)
        }
    }
}

/// Everything that can stop reading a capture. Each message is one line naming the file and,
/// once reading has started, the byte where the problem is; packets before that byte have
/// already been delivered.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file could not be opened.
    #[error("{file}: {}", io_text(source))]
    Open {
        file: String,
        #[source]
        source: io::Error,
    },
    /// Reading failed part way (I/O error).
    #[error("{file}: read error at {at}: {}", io_text(source))]
    Read {
        file: String,
        at: Position,
        #[source]
        source: io::Error,
    },
    /// The gzip stream is corrupt or ends early.
    #[error("{file}: gzip data is corrupt or truncated at {at}: {}", io_text(source))]
    Gzip {
        file: String,
        at: Position,
        #[source]
        source: io::Error,
    },
    /// The input starts with neither a pcap nor a pcapng magic number.
    #[error("{file}: not a pcap or pcapng file{} ({})",
        if at.decompressed { " after gzip decompression" } else { "" },
        describe_start(start))]
    NotACapture {
        file: String,
        at: Position,
        /// The first bytes of the input (at most 4), empty for an empty input.
        start: Vec<u8>,
    },
    /// The input ends inside a header, record or block.
    #[error("{file}: truncated at {at}: {what} needs {needed} bytes, {left} left")]
    Truncated {
        file: String,
        at: Position,
        what: &'static str,
        needed: u64,
        left: u64,
    },
    /// A header, record or block breaks the format's rules.
    #[error("{file}: corrupt {} at {at}: {reason}", reason.what())]
    Corrupt {
        file: String,
        at: Position,
        /// Not a `#[source]`: the message already says it, and `{:#}` would say it twice.
        reason: Corrupt,
    },
    /// A pcapng packet names an interface its section never described.
    #[error("{file}: packet at {at} refers to interface {interface}, but {}", described_text(*described))]
    UnknownInterface {
        file: String,
        at: Position,
        interface: u32,
        described: usize,
    },
}

impl SourceError {
    /// The file name as given (`<stdin>` for standard input).
    pub fn file(&self) -> &str {
        match self {
            SourceError::Open { file, .. }
            | SourceError::Read { file, .. }
            | SourceError::Gzip { file, .. }
            | SourceError::NotACapture { file, .. }
            | SourceError::Truncated { file, .. }
            | SourceError::Corrupt { file, .. }
            | SourceError::UnknownInterface { file, .. } => file,
        }
    }

    /// Where the problem is, or `None` when the file could not be opened at all.
    pub fn position(&self) -> Option<Position> {
        match self {
            SourceError::Open { .. } => None,
            SourceError::Read { at, .. }
            | SourceError::Gzip { at, .. }
            | SourceError::NotACapture { at, .. }
            | SourceError::Truncated { at, .. }
            | SourceError::Corrupt { at, .. }
            | SourceError::UnknownInterface { at, .. } => Some(*at),
        }
    }
}

/// `io::Error` text without Rust's " (os error 2)" suffix, which means nothing to a user.
fn io_text(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

fn describe_start(start: &[u8]) -> String {
    if start.is_empty() {
        return "it is empty".to_string();
    }
    let hex: Vec<String> = start.iter().map(|b| format!("{b:02x}")).collect();
    format!("starts with {}", hex.join(" "))
}

fn described_text(described: usize) -> String {
    match described {
        0 => "no interface is described".to_string(),
        1 => "only 1 is described".to_string(),
        n => format!("only {n} are described"),
    }
}

/// Why a header, record or block is corrupt: the rule it breaks, with the values that break it.
#[derive(Debug, thiserror::Error)]
pub enum Corrupt {
    /// A legacy pcap record longer than the reader agrees to buffer (`limit` bytes).
    #[error("captured length {caplen} is larger than the {} MiB limit", limit >> 20)]
    RecordTooLarge { caplen: u32, limit: usize },
    /// A pcapng Section Header Block whose byte-order magic is neither byte order.
    #[error("byte-order magic {magic:08x} is neither 1a2b3c4d nor 4d3c2b1a")]
    ByteOrder { magic: u32 },
    #[error("version {major}.{minor} is not supported (only 1.x is)")]
    Version { major: u16, minor: u16 },
    /// pcap-parser refused the Section Header Block.
    #[error("section header: {0}")]
    SectionHeader(ParseFailure),
    /// A pcapng block length that is not a multiple of 4 of at least 12.
    #[error("block length {len} is not a multiple of 4 of at least 12")]
    BlockLength { len: u32 },
    /// A pcapng block longer than the reader agrees to buffer (`limit` bytes).
    #[error("block length {len} is larger than the {} MiB limit", limit >> 20)]
    BlockTooLarge { len: u32, limit: usize },
    /// The length at the end of a pcapng block differs from the one at its start.
    #[error("length fields disagree: {start} at the start, {end} at the end")]
    LengthMismatch { start: u32, end: u32 },
    /// An Enhanced or obsolete Packet Block too short for its fixed fields.
    #[error("packet block of {len} bytes is shorter than its {fixed}-byte fixed part")]
    PacketBlockTooShort { len: usize, fixed: usize },
    #[error("captured length {caplen} does not fit in a block of {len} bytes")]
    CaptureBeyondBlock { caplen: u32, len: usize },
    #[error("simple packet block of {len} bytes is shorter than {fixed}")]
    SimpleBlockTooShort { len: usize, fixed: usize },
    /// pcap-parser refused the Interface Description Block.
    #[error("interface description: {0}")]
    InterfaceDescription(ParseFailure),
    #[error("if_tsresol {tsresol:#04x} is not a usable time resolution")]
    TimeResolution { tsresol: u8 },
}

impl Corrupt {
    /// What is corrupt, for the message: "pcap record", "pcapng section header" or "pcapng
    /// block".
    pub fn what(&self) -> &'static str {
        match self {
            Corrupt::RecordTooLarge { .. } => "pcap record",
            Corrupt::ByteOrder { .. } | Corrupt::Version { .. } | Corrupt::SectionHeader(_) => "pcapng section header",
            Corrupt::BlockLength { .. }
            | Corrupt::BlockTooLarge { .. }
            | Corrupt::LengthMismatch { .. }
            | Corrupt::PacketBlockTooShort { .. }
            | Corrupt::CaptureBeyondBlock { .. }
            | Corrupt::SimpleBlockTooShort { .. }
            | Corrupt::InterfaceDescription(_)
            | Corrupt::TimeResolution { .. } => "pcapng block",
        }
    }
}

/// Why pcap-parser refused a block, without the input bytes its own error carries (its
/// `Display` would dump the whole block).
#[derive(Debug, thiserror::Error)]
pub enum ParseFailure {
    #[error("fields run past the end of the block")]
    Incomplete,
    #[error("malformed ({})", .0.description())]
    Nom(ErrorKind),
    /// pcap-parser's other errors, which its block parsers do not return today.
    #[error("malformed ({0:?})")]
    Other(PcapError<()>),
}

impl From<pcap_parser::nom::Err<PcapError<&[u8]>>> for ParseFailure {
    fn from(e: pcap_parser::nom::Err<PcapError<&[u8]>>) -> ParseFailure {
        let e = match e {
            pcap_parser::nom::Err::Incomplete(_) => return ParseFailure::Incomplete,
            pcap_parser::nom::Err::Error(e) | pcap_parser::nom::Err::Failure(e) => e,
        };
        ParseFailure::Other(match e {
            PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => return ParseFailure::Nom(kind),
            PcapError::Eof => PcapError::Eof,
            PcapError::BufferTooSmall => PcapError::BufferTooSmall,
            PcapError::UnexpectedEof => PcapError::UnexpectedEof,
            PcapError::ReadError => PcapError::ReadError,
            PcapError::Incomplete(n) => PcapError::Incomplete(n),
            PcapError::HeaderNotRecognized => PcapError::HeaderNotRecognized,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reasons pcap-parser failures turn into, as the messages have always said them.
    #[test]
    fn parse_failure_messages() {
        let cases: [(pcap_parser::nom::Err<PcapError<&[u8]>>, &str); 4] = [
            (
                pcap_parser::nom::Err::Incomplete(pcap_parser::nom::Needed::Unknown),
                "fields run past the end of the block",
            ),
            (
                pcap_parser::nom::Err::Error(PcapError::NomError(&[1, 2][..], ErrorKind::Verify)),
                "malformed (predicate verification)",
            ),
            (
                pcap_parser::nom::Err::Failure(PcapError::OwnedNomError(vec![1], ErrorKind::Eof)),
                "malformed (End of file)",
            ),
            (
                pcap_parser::nom::Err::Error(PcapError::Incomplete(5)),
                "malformed (Incomplete(5))",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(ParseFailure::from(e).to_string(), want);
        }
        let shb = Corrupt::SectionHeader(ParseFailure::Incomplete);
        assert_eq!(shb.what(), "pcapng section header");
        assert_eq!(shb.to_string(), "section header: fields run past the end of the block");
        let error = SourceError::Corrupt {
            file: "a.pcapng".to_string(),
            at: Position {
                offset: 28,
                decompressed: true,
            },
            reason: Corrupt::TimeResolution { tsresol: 0x14 },
        };
        assert_eq!(
            error.to_string(),
            "a.pcapng: corrupt pcapng block at byte 28 of the decompressed data: \
             if_tsresol 0x14 is not a usable time resolution"
        );
    }
}
