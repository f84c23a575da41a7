//! Reading the input on a thread of its own, ahead of the reader, so that the kernel's copy
//! out of the page cache (or gzip's inflating) runs beside the framing and the analysis instead
//! of between them.
//!
//! This knows nothing of captures: it moves chunks of bytes from any `Read` to whoever holds the
//! [`ReadAhead`]. Each chunk has free bytes in front of its data (the headroom, [`HEADROOM`]
//! for captures), where the reader puts the unconsumed tail of the previous chunk (a record cut
//! by the chunk boundary), so splicing costs a copy of less than one record instead of a copy of
//! the chunk.
//!
//! Memory: `IN_FLIGHT + 2` buffers of headroom + chunk bytes (one being read into, `IN_FLIGHT`
//! waiting, one with the reader), reused: a freshly allocated buffer costs a page fault per
//! 4 KiB on first touch, which is the copy's price again. The thread is thus at most
//! `IN_FLIGHT + 1` chunks ahead of the reader. A buffer the reader grew (for a record longer than
//! the headroom cut by a boundary) is kept and cut back to size if it grew to at most twice
//! that, else replaced.
//!
//! How much goes in a chunk is the caller's choice ([`Handover`]): for a pipe, whatever one
//! read returned, so that its packets reach the reader as soon as they arrive; for a file, a
//! full chunk, as a decompressor returns its output a little at a time (flate2: some 32 KiB a
//! read; handing those over one by one made the bench capture's gzip 17,500 thread switches and
//! 4% slower than inflating on the reader's own thread).
//!
//! The thread ends at the end of the input (after handing over what it read before), at the
//! first read error (handed over after the data read before it), or when the [`ReadAhead`] has
//! been dropped and it next hands a chunk over or waits for a free buffer. A thread blocked
//! reading a pipe that never ends stays blocked until the process exits; nothing waits for it.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};

/// Free bytes in front of every chunk's data: room for the tail of the previous chunk. A longer
/// tail stays where it is and the next chunk's data is appended to it instead, a copy of the
/// chunk. 72 KiB holds the largest record of a capture on loopback (MTU 65,536: 65,566 bytes
/// with the pcap record header, some 65,600 in pcapng); only GSO captures have larger ones.
pub const HEADROOM: usize = 72 << 10;

/// Chunks read ahead and not yet taken by the reader.
const IN_FLIGHT: usize = 2;

/// When the thread hands a chunk over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handover {
    /// After every read that returned data (pipes, terminals, sockets).
    EachRead,
    /// When the chunk is full, or at the end of the input or an error (files, and
    /// decompressors reading them, which never wait long for more).
    Full,
}

/// One read's worth of input: `buf[lo..end]`, with `lo` the headroom.
pub struct Chunk {
    pub buf: Vec<u8>,
    pub lo: usize,
    pub end: usize,
}

/// What the thread hands over: a chunk, the end of the input (a chunk with no data), or the
/// error of a read, after which nothing follows.
type Filled = io::Result<Chunk>;

/// The reader's end of the thread.
pub struct ReadAhead {
    full: Receiver<Filled>,
    free: Sender<Vec<u8>>,
    done: bool,
}

impl ReadAhead {
    /// Starts reading `input` on a new thread, into chunks of `chunk` bytes after `headroom`
    /// free bytes, handed over as `handover` says. When the system refuses a thread, the input
    /// comes back and the caller reads it on its own.
    pub fn spawn(
        input: Box<dyn Read + Send>,
        headroom: usize,
        chunk: usize,
        handover: Handover,
    ) -> Result<ReadAhead, Box<dyn Read + Send>> {
        let (full_tx, full) = mpsc::sync_channel(IN_FLIGHT);
        let (free, free_rx) = mpsc::channel();
        crate::pipeline::beside::spawn_taking("mtlscope-read", input, move |input| {
            run(input, headroom, headroom + chunk.max(1), handover, &full_tx, &free_rx)
        })?;
        Ok(ReadAhead {
            full,
            free,
            done: false,
        })
    }

    /// The next chunk; `Ok(None)` at the end of the input.
    pub fn next(&mut self) -> io::Result<Option<Chunk>> {
        if self.done {
            return Ok(None);
        }
        match self.full.recv() {
            Ok(Ok(c)) if c.end > c.lo => Ok(Some(c)),
            Ok(Ok(_)) => {
                self.done = true;
                Ok(None)
            }
            Ok(Err(e)) => {
                self.done = true;
                Err(e)
            }
            // The thread ended without saying why: it panicked.
            Err(_) => {
                self.done = true;
                Err(io::Error::other("the read-ahead thread stopped"))
            }
        }
    }

    /// Gives a buffer back for reuse: every chunk's, or one in its place, else the thread
    /// runs out of buffers and waits for ever.
    pub fn recycle(&self, buf: Vec<u8>) {
        // Fails only once the thread has ended, and then nobody needs it.
        let _ = self.free.send(buf);
    }
}

/// The thread: reads into `buf[lo..size]` of buffers of `size` bytes.
fn run(
    mut input: Box<dyn Read + Send>,
    lo: usize,
    size: usize,
    handover: Handover,
    full: &SyncSender<Filled>,
    free: &Receiver<Vec<u8>>,
) {
    let mut allocated = 0;
    loop {
        let mut buf = match free.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Empty) if allocated < IN_FLIGHT + 1 => {
                allocated += 1;
                vec![0; size]
            }
            Err(TryRecvError::Empty) => match free.recv() {
                Ok(b) => b,
                Err(_) => return,
            },
            Err(TryRecvError::Disconnected) => return,
        };
        // The reader's first buffer, or one it grew for a tail longer than the headroom.
        if buf.len() != size {
            if buf.capacity() <= 2 * size {
                buf.resize(size, 0);
            } else {
                buf = vec![0; size];
            }
        }
        let mut end = lo;
        // What ended the input, once something did: `Ok` its end, `Err` a read error.
        let mut last = None;
        while last.is_none() {
            match input.read(buf.get_mut(end..).unwrap_or_default()) {
                Ok(0) => last = Some(Ok(())),
                Ok(n) => {
                    end += n;
                    if handover == Handover::EachRead || end >= size {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => last = Some(Err(e)),
            }
        }
        if end > lo && full.send(Ok(Chunk { buf, lo, end })).is_err() {
            return;
        }
        match last {
            None => {}
            // The end of the input is a chunk with no data.
            Some(Ok(())) => {
                let _ = full.send(Ok(Chunk {
                    buf: Vec::new(),
                    lo: 0,
                    end: 0,
                }));
                return;
            }
            Some(Err(e)) => {
                let _ = full.send(Err(e));
                return;
            }
        }
    }
}
