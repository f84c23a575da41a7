//! Packets from capture files and standard input: legacy pcap and pcapng, either of them
//! optionally gzip-compressed.
//!
//! The reader owns one large buffer and frames records itself rather than driving pcap-parser's
//! streaming readers: those turn every I/O failure into a bare `ReadError` (so "corrupt deflate
//! stream" or "Input/output error" would be lost) and do not tell at which byte a record
//! started, which is what a truncation message needs. Framing is the easy part: a legacy pcap
//! record is a 16-byte header and its data, and every pcapng block starts with its type and
//! length.
//!
//! Measured on a 500 MB capture in the page cache: pcap as fast as `cat`, pcapng about 1.3x;
//! pcap-parser's streaming readers took about 1.5x and 1.7x.
//!
//! Memory: one buffer of `BUF_SIZE` bytes, grown only while a record larger than that arrives
//! and never beyond `MAX_RECORD`. Nothing is allocated per packet; a packet's bytes are
//! borrowed from the buffer until the next call. Pipes, gzip files and files larger than two
//! chunks (named, or as standard input) are read on a thread of its own (`read_ahead.rs`) when
//! there are two cores: then four buffers of `AHEAD_CHUNK` + `HEADROOM` bytes (4.3 MiB), passed between the
//! threads and reused (one grown for a record longer than `HEADROOM` cut by a chunk boundary
//! is kept at up to twice that size).
//!
//! This file is the reader: its buffer, `fill`, and the order in which a record's bytes are
//! asked for. What the bytes mean is in leaf modules beside it, which know nothing of the
//! reader: `pcap.rs` (legacy file and record headers), `pcapng.rs` (blocks, sections,
//! interfaces), `time.rs` (timestamps to nanoseconds, saturating), `link_type.rs`
//! ([`LinkType`]), `error.rs` ([`SourceError`], [`Position`], [`Corrupt`]) and `bytes.rs`.

mod bytes;
mod error;
mod link_type;
mod pcap;
mod pcapng;
mod read_ahead;
mod time;

use std::fmt;
use std::fs::File;
use std::io::{self, Cursor, Read};

use flate2::read::MultiGzDecoder;

pub use self::error::{Corrupt, ParseFailure, Position, SourceError};
pub use self::link_type::LinkType;
use self::pcap::{PcapLayout, PcapMagic};
use self::pcapng::{BlockError, Section};
use self::read_ahead::{Handover, ReadAhead, HEADROOM};

/// Size of each read. It must fit the CPU's L2 cache with room to spare: the kernel copies the
/// page cache into it, and the records are framed and decoded right after, from L2 if it fits.
/// With 1 MiB on a core with 512 KiB of L2 (the 2026-12-03 bench machine), the first load of
/// every record header missed: the reader's code took 4.2-6.0% of the perf samples of a run on
/// the bench capture, most of them on that one load, and 2.3-3.0% with 256 KiB; CPU time was
/// 261.6 ms (median of 9 alternating runs) against 253.6 ms for 256 KiB, 250.7 ms for 128 KiB
/// and 253.5 ms for 512 KiB. Reads stay large enough that their count (2,400 for the 618 MB
/// capture) costs nothing measurable.
/// (On the 2026-11-22 machine 1 MiB had measured fastest of 128 KiB to 4 MiB.)
const BUF_SIZE: usize = 256 << 10;

/// Largest record or block we agree to buffer. Real packets are at most a few hundred KiB (GSO
/// on loopback); anything bigger is a corrupt length field, and failing beats allocating
/// gigabytes because of one.
const MAX_RECORD: usize = 256 << 20;

/// Size of each read of the read-ahead thread. The L2 argument of [`BUF_SIZE`] does not hold
/// there: another core copies the bytes in, so they reach this one from L3 whatever the size,
/// and what larger chunks save is hand-overs between the threads (each one a futex wake-up).
/// On the bench capture (21 alternating runs, `analyze -o jsonl`, `cat` 0.064 s), 256 KiB took
/// 0.129 s, 1 MiB 0.121 s and 4 MiB 0.146 s (medians); 512 KiB and 2 MiB (11 runs) 0.123 s and
/// 0.122 s against 0.118 s for 1 MiB.
const AHEAD_CHUNK: usize = 1 << 20;

/// One captured packet, borrowed from the reader until its next call.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Nanoseconds since the Unix epoch, clamped to `0..=u64::MAX`. pcapng Simple Packet Blocks
    /// carry no timestamp and get the previous packet's.
    pub ts_ns: u64,
    /// Link type of the interface this packet was captured on (per packet: a merged pcapng
    /// can mix Ethernet, Linux cooked and raw IP interfaces).
    pub link: LinkType,
    /// The captured bytes; shorter than `orig_len` when the snap length cut the packet.
    pub data: &'a [u8],
    /// Length of the packet on the wire.
    pub orig_len: u32,
    /// TLS key log lines from the pcapng Decryption Secrets Blocks just before this packet
    /// (usually empty): they apply to it and the packets after it.
    pub secrets: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Pcap(PcapLayout),
    PcapNg,
}

/// Location of the packet just framed, as indices into the buffer: keeps the framing code free
/// of borrows so that `next_packet` can mark the reader done on error.
struct Framed {
    ts_ns: u64,
    link: LinkType,
    lo: usize,
    hi: usize,
    orig_len: u32,
}

/// Reads packets from a pcap or pcapng capture, plain or gzip-compressed, from a file or any
/// byte stream.
pub struct CaptureReader {
    name: String,
    input: Box<dyn Read + Send>,
    gzip: bool,
    len_hint: Option<u64>,
    /// `buf[start..end]` is read but not yet consumed.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Capture offset of `buf[0]`, wrapping: a chunk of the read-ahead thread starts
    /// `HEADROOM` bytes before its data, which can be before the capture's first byte.
    base: u64,
    eof: bool,
    done: bool,
    format: Format,
    /// pcapng state; unused for legacy pcap.
    ng: Section,
    /// The thread that reads `input` once it is started; `input` is then empty.
    ahead: Option<ReadAhead>,
}

impl fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureReader")
            .field("name", &self.name)
            .field("gzip", &self.gzip)
            .field("offset", &self.offset())
            .field("format", &self.format)
            .field("interfaces", &self.ng.interfaces())
            .finish_non_exhaustive()
    }
}

impl CaptureReader {
    /// Opens a capture file; `-` means standard input. gzip compression is recognised by its
    /// magic number, not the file name.
    pub fn open(path: &str) -> Result<CaptureReader, SourceError> {
        if path == "-" {
            let mut reader = CaptureReader::from_read("<stdin>", Box::new(io::stdin()))?;
            reader.read_ahead(stdin_file_len());
            return Ok(reader);
        }
        let open_error = |source| SourceError::Open {
            file: path.to_string(),
            source,
        };
        let file = File::open(path).map_err(open_error)?;
        let meta = file.metadata().map_err(open_error)?;
        if meta.is_dir() {
            return Err(open_error(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            )));
        }
        let len_hint = meta.is_file().then_some(meta.len());
        let mut reader = CaptureReader::with_hint(path, Box::new(file), len_hint)?;
        reader.read_ahead(len_hint);
        Ok(reader)
    }

    /// Reads a capture from any byte stream; `name` is used in error messages.
    pub fn from_read(name: &str, r: Box<dyn Read + Send>) -> Result<CaptureReader, SourceError> {
        CaptureReader::with_hint(name, r, None)
    }

    fn with_hint(name: &str, input: Box<dyn Read + Send>, len_hint: Option<u64>) -> Result<CaptureReader, SourceError> {
        CaptureReader::with_buffer(name, input, len_hint, BUF_SIZE)
    }

    /// [`Self::with_hint`] with a first buffer of `size` bytes (small ones in tests).
    fn with_buffer(
        name: &str,
        input: Box<dyn Read + Send>,
        len_hint: Option<u64>,
        size: usize,
    ) -> Result<CaptureReader, SourceError> {
        let mut reader = CaptureReader {
            name: name.to_string(),
            input,
            gzip: false,
            len_hint,
            buf: vec![0; size.max(1)],
            start: 0,
            end: 0,
            base: 0,
            eof: false,
            done: false,
            format: Format::PcapNg,
            ng: Section::default(),
            ahead: None,
        };
        reader.fill(2)?;
        if reader.available().starts_with(&[0x1f, 0x8b]) {
            reader.start_gunzip();
        }
        reader.detect_format()?;
        Ok(reader)
    }

    /// Moves the reading (and gzip's inflating) to a thread of its own, a few chunks ahead
    /// (`read_ahead.rs`), when this process may run on two cores or more. On the bench capture
    /// in the page cache (614 MB, 2 cores), `analyze -o jsonl` took 0.133 s instead of 0.175 s
    /// (median of 21 alternating runs; `cat` 0.081 s); pinned to one core (`taskset -c 0`) it
    /// took 0.174 s instead of 0.158 s, as the two threads then take turns, hence the check.
    ///
    /// `file_len` is the input's size when it is a regular file. A file fills whole chunks; a
    /// file of two chunks or less is not worth the thread, unless it is gzip, which can inflate
    /// to a large capture. Anything else (a pipe) hands over each read as it comes.
    fn read_ahead(&mut self, file_len: Option<u64>) {
        let handover = match file_len {
            None => Handover::EachRead,
            Some(len) if len > 2 * AHEAD_CHUNK as u64 || self.gzip => Handover::Full,
            Some(_) => return,
        };
        if crate::pipeline::beside::second_core() {
            self.read_ahead_in(HEADROOM, AHEAD_CHUNK, handover);
        }
    }

    /// [`Self::read_ahead`] with chunks of `chunk` bytes after `headroom` free ones (small ones
    /// in tests, so that tiny captures cross many chunk boundaries).
    fn read_ahead_in(&mut self, headroom: usize, chunk: usize, handover: Handover) {
        if self.ahead.is_some() || self.eof {
            return;
        }
        let input = std::mem::replace(&mut self.input, Box::new(io::empty()));
        match ReadAhead::spawn(input, headroom, chunk, handover) {
            Ok(ahead) => self.ahead = Some(ahead),
            Err(input) => self.input = input,
        }
    }

    /// Replaces the input with a decompressor that first sees the bytes already buffered.
    fn start_gunzip(&mut self) {
        let head = self.available().to_vec();
        let rest = std::mem::replace(&mut self.input, Box::new(io::empty()));
        self.input = Box::new(MultiGzDecoder::new(Cursor::new(head).chain(rest)));
        self.gzip = true;
        // The file size says nothing about the decompressed size that `offset` counts.
        self.len_hint = None;
        self.start = 0;
        self.end = 0;
        self.eof = false;
    }

    fn detect_format(&mut self) -> Result<(), SourceError> {
        self.fill(4)?;
        let head = self.available();
        let magic: [u8; 4] = match head.get(..4).and_then(|m| m.try_into().ok()) {
            Some(m) => m,
            None => {
                return Err(SourceError::NotACapture {
                    file: self.name.clone(),
                    at: self.position(),
                    start: head.to_vec(),
                })
            }
        };
        if let Some(magic) = PcapMagic::from_bytes(magic) {
            if !self.fill(pcap::FILE_HEADER)? {
                return Err(self.truncated("pcap file header", pcap::FILE_HEADER));
            }
            self.format = Format::Pcap(magic.layout(self.available()));
            self.start += pcap::FILE_HEADER;
            return Ok(());
        }
        if pcapng::starts_section(&magic) {
            self.format = Format::PcapNg;
            return Ok(());
        }
        Err(SourceError::NotACapture {
            file: self.name.clone(),
            at: self.position(),
            start: magic.to_vec(),
        })
    }

    /// Next packet, or `Ok(None)` at the clean end of the capture. After an error the reader
    /// is done and returns `Ok(None)`.
    ///
    /// `#[inline]` for the common case, a legacy pcap record that is already in the buffer
    /// (all but one record per read): its header is read and the packet handed out without a
    /// call; everything else (reads, pcapng, the end, errors) is [`Self::next_packet_slow`].
    /// On the bench capture (callgrind, docs/performance.md) the reader's lines went from 56 M
    /// to 31 M instructions for its 666,736 records (with the 256 KiB buffer).
    #[inline]
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, SourceError> {
        if let (Format::Pcap(layout), false) = (self.format, self.done) {
            if let Some(f) = self.buffered_pcap(layout) {
                return Ok(Some(self.packet(&f)));
            }
        }
        self.next_packet_slow()
    }

    /// The packet of a framed record, borrowed from the buffer.
    #[inline]
    fn packet(&self, f: &Framed) -> Packet<'_> {
        Packet {
            ts_ns: f.ts_ns,
            link: f.link,
            data: self.buf.get(f.lo..f.hi).unwrap_or_default(),
            orig_len: f.orig_len,
            secrets: &self.ng.secrets,
        }
    }

    /// The next legacy pcap record when all of it is buffered and its length is acceptable;
    /// `None` leaves everything else (a read, a record too large, the end) to
    /// [`Self::next_pcap`], which then frames the same record.
    #[inline]
    fn buffered_pcap(&mut self, layout: PcapLayout) -> Option<Framed> {
        let header = layout.record_header;
        let head = self.available();
        if head.len() < header {
            return None;
        }
        let rec = layout.record(head);
        let caplen = usize::try_from(rec.caplen).ok()?;
        if caplen > MAX_RECORD - header || head.len() - header < caplen {
            return None;
        }
        let lo = self.start + header;
        self.start = lo + caplen;
        Some(Framed {
            ts_ns: rec.ts_ns,
            link: layout.link,
            lo,
            hi: lo + caplen,
            orig_len: rec.orig_len,
        })
    }

    #[inline(never)]
    fn next_packet_slow(&mut self) -> Result<Option<Packet<'_>>, SourceError> {
        if self.done {
            return Ok(None);
        }
        // Handed out with the packet they preceded.
        self.ng.secrets.clear();
        let framed = match self.format {
            Format::Pcap(layout) => self.next_pcap(layout),
            Format::PcapNg => self.next_pcapng(),
        };
        match framed {
            Ok(Some(f)) => Ok(Some(self.packet(&f))),
            Ok(None) => {
                self.done = true;
                Ok(None)
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }

    /// The name used in error messages: the path, or `<stdin>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes of (decompressed) capture consumed so far.
    pub fn offset(&self) -> u64 {
        self.base.wrapping_add(self.start as u64)
    }

    /// Total size of the input when known (an uncompressed regular file), for progress bars.
    pub fn len_hint(&self) -> Option<u64> {
        self.len_hint
    }

    fn next_pcap(&mut self, layout: PcapLayout) -> Result<Option<Framed>, SourceError> {
        let header = layout.record_header;
        if !self.fill(header)? {
            if self.available().is_empty() {
                return Ok(None);
            }
            return Err(self.truncated("packet record header", header));
        }
        let rec = layout.record(self.available());
        let caplen = usize::try_from(rec.caplen).unwrap_or(usize::MAX);
        if caplen > MAX_RECORD - header {
            return Err(self.corrupt(Corrupt::RecordTooLarge {
                caplen: rec.caplen,
                limit: MAX_RECORD,
            }));
        }
        let total = header + caplen;
        if !self.fill(total)? {
            return Err(self.truncated("packet record", total));
        }
        let lo = self.start + header;
        self.start += total;
        Ok(Some(Framed {
            ts_ns: rec.ts_ns,
            link: layout.link,
            lo,
            hi: lo + caplen,
            orig_len: rec.orig_len,
        }))
    }

    fn next_pcapng(&mut self) -> Result<Option<Framed>, SourceError> {
        loop {
            if !self.fill(8)? {
                if self.available().is_empty() {
                    return Ok(None);
                }
                return Err(self.truncated("pcapng block header", 8));
            }
            if pcapng::starts_section(self.available()) && !self.fill(12)? {
                return Err(self.truncated("pcapng section header", 12));
            }
            // The buffer's fields rather than `available()`, so that `self.ng` can be borrowed
            // mutably beside them.
            let head = self.buf.get(self.start..self.end).unwrap_or_default();
            let header = self.ng.header(head).map_err(|c| self.corrupt(c))?;
            let len = usize::try_from(header.len).unwrap_or(usize::MAX);
            if len > MAX_RECORD {
                return Err(self.corrupt(Corrupt::BlockTooLarge {
                    len: header.len,
                    limit: MAX_RECORD,
                }));
            }
            if !self.fill(len)? {
                return Err(self.truncated("pcapng block", len));
            }
            let block = self.buf.get(self.start..self.start + len).unwrap_or_default();
            let packet = self.ng.block(header, block).map_err(|e| self.block_error(e))?;
            let block_start = self.start;
            self.start += len;
            if let Some(p) = packet {
                return Ok(Some(Framed {
                    ts_ns: p.ts_ns,
                    link: p.link,
                    lo: block_start + p.lo,
                    hi: block_start + p.hi,
                    orig_len: p.orig_len,
                }));
            }
        }
    }

    #[inline]
    fn available(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    fn position(&self) -> Position {
        Position {
            offset: self.offset(),
            decompressed: self.gzip,
        }
    }

    fn truncated(&self, what: &'static str, needed: usize) -> SourceError {
        SourceError::Truncated {
            file: self.name.clone(),
            at: self.position(),
            what,
            needed: needed as u64,
            left: self.available().len() as u64,
        }
    }

    fn corrupt(&self, reason: Corrupt) -> SourceError {
        SourceError::Corrupt {
            file: self.name.clone(),
            at: self.position(),
            reason,
        }
    }

    fn block_error(&self, e: BlockError) -> SourceError {
        match e {
            BlockError::Corrupt(reason) => self.corrupt(reason),
            BlockError::UnknownInterface { interface, described } => SourceError::UnknownInterface {
                file: self.name.clone(),
                at: self.position(),
                interface,
                described,
            },
        }
    }

    /// Makes at least `need` bytes available at `start`; `Ok(false)` when the input ends
    /// first. `need` must not exceed `MAX_RECORD`.
    #[inline]
    fn fill(&mut self, need: usize) -> Result<bool, SourceError> {
        if self.end - self.start >= need {
            return Ok(true);
        }
        self.fill_slow(need)
    }

    fn fill_slow(&mut self, need: usize) -> Result<bool, SourceError> {
        if self.ahead.is_some() {
            return self.fill_ahead(need);
        }
        self.compact();
        while self.end < need {
            if self.eof {
                return Ok(false);
            }
            if self.end == self.buf.len() {
                // Grow only as data arrives, so a corrupt length field in a short file costs
                // nothing; doubling keeps the copies of a huge record few.
                let grown = need.min(self.buf.len().saturating_mul(2)).max(self.end + 1);
                self.buf.resize(grown, 0);
            }
            let space = self.buf.get_mut(self.end..).unwrap_or_default();
            match self.input.read(space) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(self.read_error(source)),
            }
        }
        Ok(true)
    }

    /// [`Self::fill_slow`] from the read-ahead thread's chunks: the unconsumed tail goes in
    /// front of the next chunk's data (its headroom), and that chunk becomes the buffer. A tail
    /// longer than the headroom (a record larger than it, cut by the boundary) stays, and the
    /// chunk's data is appended to it instead.
    fn fill_ahead(&mut self, need: usize) -> Result<bool, SourceError> {
        while self.end - self.start < need {
            if self.eof {
                return Ok(false);
            }
            let Some(ahead) = self.ahead.as_mut() else {
                return Ok(false);
            };
            let chunk = match ahead.next() {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    self.eof = true;
                    continue;
                }
                Err(source) => return Err(self.read_error(source)),
            };
            let tail = self.end - self.start;
            let replaced = if tail <= chunk.lo {
                let mut buf = chunk.buf;
                let lo = chunk.lo - tail;
                if let (Some(to), Some(from)) = (buf.get_mut(lo..chunk.lo), self.buf.get(self.start..self.end)) {
                    to.copy_from_slice(from);
                }
                // buf[lo] is the byte that was at buf[start] before.
                self.base = self.base.wrapping_add(self.start as u64).wrapping_sub(lo as u64);
                self.start = lo;
                self.end = chunk.end;
                std::mem::replace(&mut self.buf, buf)
            } else {
                self.compact();
                self.buf.truncate(self.end);
                self.buf
                    .extend_from_slice(chunk.buf.get(chunk.lo..chunk.end).unwrap_or_default());
                self.end = self.buf.len();
                chunk.buf
            };
            // Every buffer goes back, whatever its size: the thread keeps a fixed number.
            if let Some(ahead) = self.ahead.as_ref() {
                ahead.recycle(replaced);
            }
        }
        Ok(true)
    }

    /// Keep the unconsumed tail (less than one record) at the front of a buffer of our own, so
    /// each read can use the whole buffer.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.base = self.base.wrapping_add(self.start as u64);
            self.end -= self.start;
            self.start = 0;
        }
    }

    fn read_error(&self, source: io::Error) -> SourceError {
        let file = self.name.clone();
        let at = Position {
            offset: self.base.wrapping_add(self.end as u64),
            decompressed: self.gzip,
        };
        if self.gzip {
            SourceError::Gzip { file, at, source }
        } else {
            SourceError::Read { file, at, source }
        }
    }
}

/// The size of standard input when it is a regular file (`mtlscope analyze - < capture.pcap`),
/// which is then read ahead like any file rather than a read at a time like a pipe.
fn stdin_file_len() -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let meta = io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map(File::from)
            .and_then(|f| f.metadata());
        meta.ok().filter(|m| m.is_file()).map(|m| m.len())
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod test_captures;

#[cfg(test)]
mod tests {
    use super::test_captures::*;
    use super::*;

    use std::io::Cursor;

    #[test]
    fn packet_larger_than_the_buffer() {
        let big: Vec<u8> = (0..3 * BUF_SIZE + 7).map(|i| i as u8).collect();
        let bytes = pcap_file(
            0xa1b2_c3d4,
            false,
            1,
            &[
                Rec {
                    sec: 1,
                    frac: 0,
                    data: b"small",
                    orig: 5,
                },
                Rec {
                    sec: 2,
                    frac: 0,
                    data: &big,
                    orig: big.len() as u32,
                },
                Rec {
                    sec: 3,
                    frac: 0,
                    data: b"after",
                    orig: 5,
                },
            ],
        );
        let (packets, err) = read_bytes(bytes);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(packets.len(), 3);
        assert_eq!(packets[1].data, big);
        assert_eq!(packets[2].data, b"after");
    }

    #[test]
    fn large_record_length_in_a_short_file_is_truncation() {
        let mut bytes = pcap_file(0xa1b2_c3d4, false, 1, &[]);
        bytes.extend(u32b(1, false));
        bytes.extend(u32b(0, false));
        bytes.extend(u32b(200 << 20, false));
        bytes.extend(u32b(200 << 20, false));
        bytes.extend([0; 100]);
        let mut r = reader(bytes).unwrap();
        let err = r.next_packet().unwrap_err();
        assert_eq!(
            err.to_string(),
            "test.pcap: truncated at byte 24: packet record needs 209715216 bytes, 116 left"
        );
        assert_eq!(r.buf.len(), BUF_SIZE, "the buffer grows only with data");
    }

    #[test]
    fn corrupt_record_length_fails_without_allocating() {
        let mut bytes = pcap_file(
            0xa1b2_c3d4,
            false,
            1,
            &[Rec {
                sec: 1,
                frac: 0,
                data: b"ok",
                orig: 2,
            }],
        );
        bytes.extend(u32b(1, false));
        bytes.extend(u32b(0, false));
        bytes.extend(u32b(0xffff_fff0, false));
        bytes.extend(u32b(0xffff_fff0, false));
        let (packets, err) = read_bytes(bytes);
        assert_eq!(packets.len(), 1);
        assert_eq!(
            err.unwrap().to_string(),
            "test.pcap: corrupt pcap record at byte 42: captured length 4294967280 is larger than the 256 MiB limit"
        );
    }

    // ---- gzip ----

    #[test]
    fn gzip_is_detected_by_magic() {
        let plain = pcap_file(
            0xa1b2_3c4d,
            true,
            1,
            &[Rec {
                sec: 5,
                frac: 6,
                data: b"gz",
                orig: 2,
            }],
        );
        let (packets, err) = read_bytes(gzip(&plain));
        assert!(err.is_none(), "{err:?}");
        assert_eq!(packets, [pkt(5 * SEC + 6, LinkType::ETHERNET, b"gz", 2)]);

        let mut ng = shb(false);
        ng.extend(idb(false, 1, 0, &[]));
        ng.extend(epb(false, 0, 1, b"first member", 12));
        let mut second = epb(false, 0, 2, b"second member", 13);
        second.extend(epb(false, 0, 3, b"third", 5));
        // Concatenated gzip members form one stream (`cat a.gz b.gz`).
        let mut bytes = gzip(&ng);
        bytes.extend(gzip(&second));
        let mut r = reader(bytes).unwrap();
        assert_eq!(r.len_hint(), None);
        let (packets, err) = read_all(&mut r);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(packets.len(), 3);
        assert_eq!(packets[2].data, b"third");
    }

    #[test]
    fn gzip_of_something_else() {
        let (_, err) = read_bytes(gzip(b"hello world"));
        assert_eq!(
            err.unwrap().to_string(),
            "test.pcap: not a pcap or pcapng file after gzip decompression (starts with 68 65 6c 6c)"
        );
    }

    // ---- bad input ----

    #[test]
    fn not_a_capture() {
        let cases: [(&[u8], &str); 4] = [
            (b"", "test.pcap: not a pcap or pcapng file (it is empty)"),
            (
                b"PK\x03\x04rest of a zip",
                "test.pcap: not a pcap or pcapng file (starts with 50 4b 03 04)",
            ),
            (
                b"GET / HTTP/1.1\r\n",
                "test.pcap: not a pcap or pcapng file (starts with 47 45 54 20)",
            ),
            (b"\xd4", "test.pcap: not a pcap or pcapng file (starts with d4)"),
        ];
        for (bytes, want) in cases {
            let err = reader(bytes.to_vec()).unwrap_err();
            assert_eq!(err.to_string(), want);
            assert_eq!(err.position().map(|p| p.offset), Some(0));
        }
    }

    #[test]
    fn open_errors_name_the_file() {
        let err = CaptureReader::open("/nonexistent/missing.pcap").unwrap_err();
        assert_eq!(err.to_string(), "/nonexistent/missing.pcap: No such file or directory");
        assert_eq!(err.position(), None);
        let dir = std::env::temp_dir();
        let dir = dir.to_str().unwrap();
        let err = CaptureReader::open(dir).unwrap_err();
        assert_eq!(err.to_string(), format!("{dir}: is a directory"));
    }

    #[test]
    fn open_a_file_gives_a_length_hint() {
        let bytes = pcap_file(
            0xa1b2_c3d4,
            false,
            1,
            &[Rec {
                sec: 1,
                frac: 2,
                data: b"file",
                orig: 4,
            }],
        );
        let path = std::env::temp_dir().join(format!("mtlscope-source-test-{}.pcap", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let mut r = CaptureReader::open(path.to_str().unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(r.len_hint(), Some(bytes.len() as u64));
        assert_eq!(r.name(), path.to_str().unwrap());
        assert_eq!(read_all(&mut r).0.len(), 1);
    }

    #[test]
    fn truncation_messages() {
        let bytes = pcap_file(
            0xa1b2_c3d4,
            false,
            1,
            &[Rec {
                sec: 1,
                frac: 2,
                data: &[7; 100],
                orig: 100,
            }],
        );
        let (_, err) = read_bytes(bytes[..100].to_vec());
        assert_eq!(
            err.unwrap().to_string(),
            "test.pcap: truncated at byte 24: packet record needs 116 bytes, 76 left"
        );
        let (_, err) = read_bytes(bytes[..30].to_vec());
        assert_eq!(
            err.unwrap().to_string(),
            "test.pcap: truncated at byte 24: packet record header needs 16 bytes, 6 left"
        );
        let (_, err) = read_bytes(bytes[..10].to_vec());
        assert_eq!(
            err.unwrap().to_string(),
            "test.pcap: truncated at byte 0: pcap file header needs 24 bytes, 10 left"
        );
        let (_, err) = read_bytes(gzip(&bytes[..100]));
        assert_eq!(
            err.unwrap().to_string(),
            "test.pcap: truncated at byte 24 of the decompressed data: packet record needs 116 bytes, 76 left"
        );
    }

    /// Record boundaries of a test file, to know what a cut at each byte must produce.
    fn check_every_cut(bytes: &[u8], boundaries: &[usize]) {
        let header_end = boundaries[0];
        for cut in 0..=bytes.len() {
            let (packets, err) = read_bytes(bytes[..cut].to_vec());
            let complete = boundaries[1..].iter().filter(|&&b| b <= cut).count();
            let last_boundary = boundaries.iter().copied().filter(|&b| b <= cut).max();
            if cut < header_end {
                let err = err.expect("a cut header is an error");
                assert_eq!(err.position().unwrap().offset, 0, "cut {cut}: {err}");
                continue;
            }
            assert_eq!(packets.len(), complete, "cut {cut}");
            if last_boundary == Some(cut) {
                assert!(err.is_none(), "cut {cut} at a boundary must be clean: {err:?}");
            } else {
                let err = err.expect("a cut record is an error");
                assert!(matches!(err, SourceError::Truncated { .. }), "cut {cut}: {err}");
                assert_eq!(
                    err.position().unwrap().offset,
                    last_boundary.unwrap() as u64,
                    "cut {cut}"
                );
            }
        }
    }

    #[test]
    fn truncated_at_every_byte_pcap() {
        let recs = [
            Rec {
                sec: 1,
                frac: 1,
                data: b"one",
                orig: 3,
            },
            Rec {
                sec: 2,
                frac: 2,
                data: b"",
                orig: 0,
            },
            Rec {
                sec: 3,
                frac: 3,
                data: b"three",
                orig: 5,
            },
        ];
        let bytes = pcap_file(0xa1b2_c3d4, true, 1, &recs);
        check_every_cut(&bytes, &[24, 43, 59, 80]);
    }

    #[test]
    fn truncated_at_every_byte_pcapng() {
        let mut bytes = shb(false);
        let mut boundaries = vec![0, bytes.len()];
        for b in [
            idb(false, 1, 0, &[option(9, &[9], false)]),
            epb(false, 0, 1, b"one", 3),
            block(5, &[0; 12], false),
            spb(false, b"two", 3),
            epb(false, 0, 3, b"three", 5),
        ] {
            bytes.extend(b);
            boundaries.push(bytes.len());
        }
        // Packets only come from packet blocks; count those ends instead of every block end.
        let packet_ends = [boundaries[3], boundaries[5], boundaries[6]];
        for cut in 0..=bytes.len() {
            let (packets, err) = read_bytes(bytes[..cut].to_vec());
            assert_eq!(
                packets.len(),
                packet_ends.iter().filter(|&&e| e <= cut).count(),
                "cut {cut}"
            );
            let start = boundaries.iter().copied().filter(|&b| b <= cut).max().unwrap();
            if cut == 0 {
                assert!(matches!(err, Some(SourceError::NotACapture { .. })));
            } else if cut < 4 {
                assert_eq!(err.unwrap().position().unwrap().offset, 0);
            } else if start == cut {
                assert!(err.is_none(), "cut {cut}: {err:?}");
            } else {
                let err = err.expect("a cut block is an error");
                assert!(matches!(err, SourceError::Truncated { .. }), "cut {cut}: {err}");
                assert_eq!(err.position().unwrap().offset, start as u64, "cut {cut}");
            }
        }
    }

    #[test]
    fn truncated_gzip_never_panics() {
        let recs: Vec<Vec<u8>> = (0..20).map(|i| vec![i as u8; 40 + i]).collect();
        let recs: Vec<Rec<'_>> = recs
            .iter()
            .map(|d| Rec {
                sec: 1,
                frac: 1,
                data: d,
                orig: d.len() as u32,
            })
            .collect();
        let gz = gzip(&pcap_file(0xa1b2_c3d4, false, 1, &recs));
        for cut in 0..gz.len() {
            let (packets, err) = read_bytes(gz[..cut].to_vec());
            // A cut in the last bytes can leave every packet readable; the missing trailer is
            // still reported.
            assert!(packets.len() <= recs.len());
            let err = err.expect("a cut gzip stream is an error");
            assert!(err.position().is_some(), "cut {cut}: {err}");
        }
        assert_eq!(read_bytes(gz).0.len(), recs.len());
    }

    /// A reader that hands out one byte at a time, as a slow pipe might.
    struct Trickle(Cursor<Vec<u8>>);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let one = buf.len().min(1);
            self.0.read(&mut buf[..one])
        }
    }

    #[test]
    fn short_reads_give_the_same_packets() {
        let mut bytes = shb(false);
        bytes.extend(idb(false, 1, 0, &[]));
        for i in 0..50u8 {
            bytes.extend(epb(false, 0, u64::from(i), &vec![i; usize::from(i)], u32::from(i)));
        }
        let whole = read_bytes(bytes.clone());
        let mut r = CaptureReader::from_read("t", Box::new(Trickle(Cursor::new(bytes.clone())))).unwrap();
        assert_eq!(read_all(&mut r).0, whole.0);
        assert_eq!(whole.0.len(), 50);
        // Through the read-ahead thread, which hands over each one-byte read as it comes, or
        // gathers them into full chunks.
        for handover in [Handover::EachRead, Handover::Full] {
            let ahead = read_ahead(Box::new(Trickle(Cursor::new(bytes.clone()))), 4, 64, handover);
            assert_same(&whole, &ahead, 4, 64);
        }
    }

    struct Failing;

    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("device on fire"))
        }
    }

    #[test]
    fn read_errors_keep_their_text() {
        let head = pcap_file(0xa1b2_c3d4, false, 1, &[]);
        let input = Cursor::new(head).chain(Failing);
        let mut r = CaptureReader::from_read("t.pcap", Box::new(input)).unwrap();
        let err = r.next_packet().unwrap_err();
        assert_eq!(err.to_string(), "t.pcap: read error at byte 24: device on fire");
        // The same from the read-ahead thread, after packets that crossed chunks.
        let data = [7u8; 100];
        let recs = vec![
            Rec {
                sec: 1,
                frac: 0,
                data: &data,
                orig: 100,
            };
            5
        ];
        let head = pcap_file(0xa1b2_c3d4, false, 1, &recs);
        for handover in [Handover::EachRead, Handover::Full] {
            let (packets, err) = read_ahead(Box::new(Cursor::new(head.clone()).chain(Failing)), 8, 32, handover);
            assert_eq!(packets.len(), 5, "{handover:?}");
            assert_eq!(
                err.unwrap().to_string(),
                "test.pcap: read error at byte 604: device on fire",
                "{handover:?}"
            );
        }
    }

    /// `open` reads a capture larger than two buffers on the read-ahead thread, with records
    /// that straddle its chunks: shorter than the headroom, longer than it, longer than a chunk.
    /// Packets, offsets and the truncation error at a cut must be those of the direct reader.
    #[test]
    fn open_reads_large_files_ahead() {
        let sizes = [
            60,
            1514,
            HEADROOM - 3,
            200,
            HEADROOM + 1,
            9000,
            AHEAD_CHUNK + 5,
            54,
            3 * AHEAD_CHUNK,
        ];
        let datas: Vec<Vec<u8>> = (0..60).map(|i| vec![i as u8; sizes[i % sizes.len()]]).collect();
        let recs: Vec<Rec<'_>> = datas
            .iter()
            .enumerate()
            .map(|(i, d)| Rec {
                sec: i as u32,
                frac: 0,
                data: d,
                orig: d.len() as u32,
            })
            .collect();
        let bytes = pcap_file(0xa1b2_c3d4, false, 1, &recs);
        assert!(bytes.len() > 10 * AHEAD_CHUNK);
        let path = std::env::temp_dir().join(format!("mtlscope-read-ahead-{}.pcap", std::process::id()));
        for cut in [bytes.len(), bytes.len() - 1, bytes.len() / 2 + 3] {
            let cut_bytes = bytes.get(..cut).unwrap();
            std::fs::write(&path, cut_bytes).unwrap();
            let mut r = CaptureReader::open(path.to_str().unwrap()).unwrap();
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            assert_eq!(
                r.ahead.is_some(),
                cores >= 2,
                "a large file is read ahead on {cores} cores"
            );
            let (ahead, offsets, err) = drain(&mut r);
            let name = path.to_str().unwrap();
            let mut d = CaptureReader::from_read(name, Box::new(Cursor::new(cut_bytes.to_vec()))).unwrap();
            let (direct, direct_offsets, direct_err) = drain(&mut d);
            assert_eq!(ahead, direct, "cut {cut}");
            assert_eq!(offsets, direct_offsets, "cut {cut}");
            assert_eq!(err, direct_err, "cut {cut}");
            assert_eq!(err.is_some(), cut != bytes.len(), "cut {cut}: {err:?}");
        }
        // gzip, inflated on the thread, even from a file smaller than two chunks.
        let packed = gzip(&bytes);
        assert!(packed.len() < 2 * AHEAD_CHUNK, "{} bytes", packed.len());
        std::fs::write(&path, &packed).unwrap();
        let mut r = CaptureReader::open(path.to_str().unwrap()).unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(r.ahead.is_some(), cores >= 2, "gzip is read ahead on {cores} cores");
        let ahead = drain(&mut r);
        let mut d = CaptureReader::from_read("t", Box::new(Cursor::new(packed))).unwrap();
        assert!(
            ahead == drain(&mut d),
            "gzip read ahead differs from gzip read directly"
        );
        assert_eq!(ahead.0.len(), 60);
        std::fs::remove_file(&path).unwrap();
    }

    /// An endless capture that says when it is dropped, which only the thread that reads it
    /// can do.
    struct Endless {
        /// A capture of one record, whose record repeats for ever after it.
        file: Vec<u8>,
        at: usize,
        dropped: std::sync::mpsc::Sender<()>,
    }

    impl Endless {
        fn new(dropped: std::sync::mpsc::Sender<()>) -> Endless {
            let rec = Rec {
                sec: 1,
                frac: 0,
                data: &[9; 40],
                orig: 40,
            };
            let file = pcap_file(0xa1b2_c3d4, false, 1, &[rec]);
            Endless { file, at: 0, dropped }
        }
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            // The 24-byte file header, then the record again and again.
            let rec = self.file.len() - 24;
            for b in buf.iter_mut() {
                let i = if self.at < 24 {
                    self.at
                } else {
                    24 + (self.at - 24) % rec
                };
                *b = self.file[i];
                self.at += 1;
            }
            Ok(buf.len())
        }
    }

    impl Drop for Endless {
        fn drop(&mut self) {
            let _ = self.dropped.send(());
        }
    }

    /// A reader that stops before the end of its input (`check` failing fast, a closed output)
    /// ends the read-ahead thread with it, whether that thread waits to hand a chunk over or for
    /// a buffer, and in both hand-over modes.
    #[test]
    fn dropping_the_reader_ends_the_thread() {
        for handover in [Handover::EachRead, Handover::Full] {
            for taken in [0, 3, 5000] {
                let (tx, rx) = std::sync::mpsc::channel();
                let input = Endless::new(tx);
                let mut r = CaptureReader::with_buffer("t", Box::new(input), None, 256).unwrap();
                r.read_ahead_in(64, 256, handover);
                assert!(r.ahead.is_some());
                for _ in 0..taken {
                    assert_eq!(r.next_packet().unwrap().unwrap().data, &[9; 40]);
                }
                drop(r);
                let ended = rx.recv_timeout(std::time::Duration::from_secs(10));
                assert!(
                    ended.is_ok(),
                    "{handover:?} after {taken} packets: the thread still runs"
                );
            }
        }
    }

    /// Every packet's bytes, the offset after each, and the error's text that ended reading.
    fn drain(r: &mut CaptureReader) -> (Vec<Vec<u8>>, Vec<u64>, Option<String>) {
        let mut packets = Vec::new();
        let mut offsets = Vec::new();
        let err = loop {
            match r.next_packet() {
                Ok(Some(p)) => packets.push(p.data.to_vec()),
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            }
            offsets.push(r.offset());
        };
        (packets, offsets, err)
    }

    /// Flips bytes of valid captures pseudo-randomly: every outcome is fine except a panic or
    /// a hang.
    #[test]
    fn mutated_captures_never_panic() {
        let mut ng = shb(false);
        ng.extend(idb(false, 1, 0, &[option(9, &[9], false)]));
        ng.extend(epb(false, 0, 1, b"packet one", 10));
        ng.extend(spb(false, b"simple", 6));
        ng.extend(obsolete_pb(false, 0, 2, b"old"));
        ng.extend(shb(true));
        ng.extend(idb(true, 101, 0, &[]));
        ng.extend(epb(true, 0, 3, b"packet two", 10));
        let legacy = pcap_file(
            0xa1b2_c3d4,
            false,
            1,
            &[Rec {
                sec: 1,
                frac: 2,
                data: b"abcdef",
                orig: 6,
            }],
        );
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for base in [ng, legacy] {
            for _ in 0..3000 {
                let mut bytes = base.clone();
                for _ in 0..3 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let at = (seed % bytes.len() as u64) as usize;
                    bytes[at] = (seed >> 32) as u8;
                }
                let (packets, _) = read_bytes(bytes);
                assert!(packets.len() <= 4);
            }
        }
    }

    // ---- real captures ----

    /// `shared/` beside the checkout, as in tests/conformance.rs (absent on GitHub's runners).
    const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/public");

    /// Packet counts and link types from `tcpdump -r` (the gzip file through `zcat`).
    const CORPUS_FILES: [(&str, usize, LinkType); 24] = [
        ("zeek__CVE-2015-3194.pcap", 15, LinkType::ETHERNET),
        ("zeek__certificate-request-failed.pcap", 12, LinkType::ETHERNET),
        ("zeek__chrome-1250-tls-x25519-kyber.pcap", 15, LinkType::ETHERNET),
        ("zeek__client-certificate.pcap", 31, LinkType::ETHERNET),
        ("zeek__ftp-auth-tls.pcap", 84, LinkType::ETHERNET),
        ("zeek__globus-url-copy.pcap", 61, LinkType::ETHERNET),
        ("zeek__hrr.pcap", 19, LinkType::ETHERNET),
        ("zeek__imap-starttls.pcap", 32, LinkType::ETHERNET),
        ("zeek__irc-starttls.pcap", 20, LinkType::LINUX_SLL),
        ("zeek__ldap-starttls.pcap", 28, LinkType::ETHERNET),
        ("zeek__ml-dsa-44-cert.pcap", 5, LinkType::RAW),
        ("zeek__mysql-encrypted.pcap", 18, LinkType::ETHERNET),
        ("zeek__openjdk-25.0.2-zeek.org.pcap", 6, LinkType::LINUX_SLL2),
        ("zeek__pop3-starttls.pcap", 33, LinkType::NULL),
        ("zeek__psql-aws-ssl-require.pcap", 30, LinkType::ETHERNET),
        ("zeek__smtp-starttls.pcap", 37, LinkType::ETHERNET),
        ("zeek__tls-1.2-handshake-failure.pcap", 11, LinkType::ETHERNET),
        ("zeek__tls-1.2-stream-keylog.pcap", 237, LinkType::ETHERNET),
        ("zeek__tls-fragmented-handshake.pcap.gz", 416, LinkType::ETHERNET),
        ("zeek__tls1.2.pcap", 22, LinkType::ETHERNET),
        ("zeek__tls13_psk_succesfull.pcap", 20, LinkType::ETHERNET),
        ("zeek__tls13_wolfssl.pcap", 21, LinkType::ETHERNET),
        ("zeek__webrtc-stun.pcap", 14, LinkType::ETHERNET),
        ("zeek__xmpp-dialback-starttls.pcap", 37, LinkType::ETHERNET),
    ];

    #[test]
    fn corpus_packet_counts_match_tcpdump() {
        for (name, count, link) in CORPUS_FILES {
            let path = format!("{CORPUS}/{name}");
            if !std::path::Path::new(&path).exists() {
                eprintln!("SKIP: {path} not found; this test needs shared/ beside the checkout");
                continue;
            }
            let mut r = CaptureReader::open(&path).unwrap();
            let (packets, err) = read_all(&mut r);
            assert!(err.is_none(), "{err:?}");
            assert_eq!(packets.len(), count, "{name}");
            assert!(packets.iter().all(|p| p.link == link), "{name}");
            assert!(packets.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns), "{name}");
        }
    }

    /// Writes the corpus's packets into one pcapng with an interface per source file (mixed
    /// link types, as `mergecap` produces and libpcap refuses), in alternating byte orders
    /// across two sections, and checks every packet comes back unchanged.
    #[test]
    fn corpus_merged_into_pcapng_round_trips() {
        let mut expected = Vec::new();
        let mut sections = [Vec::new(), Vec::new()];
        for (i, (name, _, _)) in CORPUS_FILES.iter().enumerate() {
            let path = format!("{CORPUS}/{name}");
            if !std::path::Path::new(&path).exists() {
                eprintln!("SKIP: {path} not found; this test needs shared/ beside the checkout");
                continue;
            }
            let mut r = CaptureReader::open(&path).unwrap();
            let (packets, _) = read_all(&mut r);
            let half = i % 2;
            let be = half == 1;
            let section = &mut sections[half];
            let if_id = section.len() as u32;
            section.push((packets[0].link, packets, if_id, be));
        }
        let mut bytes = Vec::new();
        for section in &sections {
            let Some(&(_, _, _, be)) = section.first() else {
                continue;
            };
            bytes.extend(shb(be));
            for (link, _, _, _) in section {
                bytes.extend(idb(be, link.0 as u16, 262_144, &[option(9, &[9], be)]));
            }
            for (_, packets, if_id, _) in section {
                for p in packets {
                    bytes.extend(epb(be, *if_id, p.ts_ns, &p.data, p.orig_len));
                    expected.push(pkt(p.ts_ns, p.link, &p.data, p.orig_len));
                }
            }
        }
        let (packets, err) = read_bytes(bytes);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(packets, expected);
    }
}
