//! TLS key logs (the NSS key log format that `SSLKEYLOGFILE`, `openssl s_client -keylogfile`,
//! Go's `KeyLogWriter` and Envoy's `key_log` write, and that a pcapng Decryption Secrets Block
//! carries): the TLS 1.3 handshake traffic secrets by ClientHello random, for the TLS inspector
//! to decrypt the encrypted handshake with (docs/keylogs.md).
//!
//! Only `CLIENT_HANDSHAKE_TRAFFIC_SECRET` and `SERVER_HANDSHAKE_TRAFFIC_SECRET` are kept: the
//! application traffic secrets and the TLS 1.2 master secrets are read (a line that does not
//! parse is named, whatever its label) but never stored, so that nothing here can decrypt
//! application data. Secrets are never printed: not in warnings, not in `Debug`.
//!
//! Memory: one entry per connection of the log, [`ENTRY_BYTES`] bytes each in the map, about 150
//! with its spare room (a key log of 100,000 lines, five lines per TLS 1.3 connection, is 20,000
//! entries: about 3 MB).
//! A key log given with `follow` (a live capture, whose clients write their key log as they
//! connect) is read again from where it stopped when a ClientHello random is not found.

use rustc_hash::FxHashMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

/// Longest secret kept: SHA-384's 48 bytes (TLS_AES_256_GCM_SHA384).
const MAX_SECRET: usize = 48;
/// Warnings kept (the first ones); the rest are counted.
const MAX_WARNINGS: usize = 50;

/// Bytes one ClientHello random takes in the map (key, value, hashbrown's control byte).
pub const ENTRY_BYTES: usize = std::mem::size_of::<([u8; 32], Entry)>() + 1;

/// One traffic secret: its length is the cipher suite's hash length (32 or 48).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Secret {
    len: u8,
    bytes: [u8; MAX_SECRET],
}

impl Secret {
    pub fn new(b: &[u8]) -> Option<Secret> {
        if b.len() != 32 && b.len() != MAX_SECRET {
            return None;
        }
        let mut bytes = [0; MAX_SECRET];
        bytes[..b.len()].copy_from_slice(b);
        Some(Secret {
            len: b.len() as u8,
            bytes,
        })
    }

    /// The secret's bytes (for the key schedule only).
    pub fn expose(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.len)
    }
}

/// The TLS 1.3 handshake traffic secrets of one connection, as far as the log has them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entry {
    pub client: Option<Secret>,
    pub server: Option<Secret>,
}

/// One file (or `follow`ed file) read into the log, with where it stopped.
struct Followed {
    path: PathBuf,
    /// Bytes read so far; only whole lines are consumed.
    offset: u64,
    /// Lines read so far, for the warnings' line numbers.
    line: u64,
}

/// The key logs of a run: every file given and every Decryption Secrets Block read.
#[derive(Default)]
pub struct KeyLog {
    map: RwLock<FxHashMap<[u8; 32], Entry>>,
    followed: Mutex<Vec<Followed>>,
    warnings: Mutex<Warnings>,
}

#[derive(Default)]
struct Warnings {
    kept: Vec<String>,
    more: u64,
}

impl std::fmt::Debug for KeyLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLog")
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

/// Why a key log file could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("--keylog-file {}: cannot read the key log: {source} (give an NSS key log file, as SSLKEYLOGFILE writes it)", path.display())]
pub struct KeyLogError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

impl KeyLog {
    pub fn new() -> KeyLog {
        KeyLog::default()
    }

    /// Read a key log file. `follow`: read it again from where it stopped when a random is
    /// not found (a live capture, while clients keep writing it).
    pub fn load_file(&self, path: &Path, follow: bool) -> Result<(), KeyLogError> {
        let mut f = Followed {
            path: path.to_path_buf(),
            offset: 0,
            line: 0,
        };
        self.read_more(&mut f).map_err(|source| KeyLogError {
            path: path.to_path_buf(),
            source,
        })?;
        if follow {
            lock(&self.followed).push(f);
        }
        Ok(())
    }

    /// Add the lines of a Decryption Secrets Block; `source` names it in warnings.
    pub fn add_text(&self, source: &str, text: &[u8]) {
        let mut line = 0;
        self.add_lines(source, text, &mut line);
    }

    /// The secrets of the connection whose ClientHello has this random.
    pub fn lookup(&self, random: &[u8; 32]) -> Option<Entry> {
        if let Some(e) = read(&self.map).get(random) {
            return Some(*e);
        }
        let mut followed = lock(&self.followed);
        if followed.is_empty() {
            return None;
        }
        for f in followed.iter_mut() {
            if let Err(e) = self.read_more(f) {
                self.warn(format!("{}: cannot read the key log again: {e}", f.path.display()));
            }
        }
        drop(followed);
        read(&self.map).get(random).copied()
    }

    /// ClientHello randoms with at least one handshake secret.
    pub fn len(&self) -> usize {
        read(&self.map).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The warnings so far (lines skipped), and how many more there were; emptied.
    pub fn take_warnings(&self) -> (Vec<String>, u64) {
        let mut w = lock(&self.warnings);
        let more = std::mem::take(&mut w.more);
        (std::mem::take(&mut w.kept), more)
    }

    fn warn(&self, w: String) {
        let mut ws = lock(&self.warnings);
        if ws.kept.len() < MAX_WARNINGS {
            ws.kept.push(w);
        } else {
            ws.more += 1;
        }
    }

    /// The whole lines added to `f` since it was last read.
    fn read_more(&self, f: &mut Followed) -> std::io::Result<()> {
        let mut file = std::fs::File::open(&f.path)?;
        if file.metadata()?.len() <= f.offset {
            return Ok(());
        }
        file.seek(SeekFrom::Start(f.offset))?;
        // Line by line: a large key log is never held whole.
        let mut r = BufReader::new(file);
        let source = f.path.display().to_string();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = r.read_until(b'\n', &mut line)?;
            // A line being written (no newline yet) is read next time.
            if n == 0 || line.last() != Some(&b'\n') {
                return Ok(());
            }
            self.add_lines(&source, &line[..n - 1], &mut f.line);
            f.offset += n as u64;
        }
    }

    fn add_lines(&self, source: &str, text: &[u8], line: &mut u64) {
        let mut added = Vec::new();
        for l in text.split(|&b| b == b'\n') {
            *line += 1;
            match parse_line(l) {
                Ok(Some(x)) => added.push(x),
                Ok(None) => {}
                Err(why) => self.warn(format!("{source}:{line}: {why}; line skipped")),
            }
        }
        if added.is_empty() {
            return;
        }
        let mut map = write(&self.map);
        for (random, side, secret) in added {
            let e = map.entry(random).or_default();
            match side {
                Label::ClientHandshake => e.client = Some(secret),
                Label::ServerHandshake => e.server = Some(secret),
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    ClientHandshake,
    ServerHandshake,
}

/// Labels of the NSS key log format that are read but not kept.
const OTHER_LABELS: [&str; 7] = [
    "CLIENT_RANDOM",
    "CLIENT_EARLY_TRAFFIC_SECRET",
    "EARLY_EXPORTER_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
    "EXPORTER_SECRET",
    "ECH_SECRET",
];

/// One line: a handshake secret to keep, nothing to keep (a comment, a blank line, another
/// label), or why it does not parse — never quoting the line, which holds a secret.
fn parse_line(l: &[u8]) -> Result<Option<([u8; 32], Label, Secret)>, String> {
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    let text = std::str::from_utf8(l).map_err(|_| "not text".to_string())?;
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let mut words = text.split_ascii_whitespace();
    let (Some(label), Some(random), Some(secret), None) = (words.next(), words.next(), words.next(), words.next())
    else {
        return Err("not LABEL CLIENT_RANDOM SECRET (three words)".into());
    };
    let keep = match label {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => Some(Label::ClientHandshake),
        "SERVER_HANDSHAKE_TRAFFIC_SECRET" => Some(Label::ServerHandshake),
        // RSA <first 8 bytes of the encrypted pre-master secret> <pre-master secret>.
        "RSA" => None,
        l if OTHER_LABELS.contains(&l) => None,
        _ => return Err(format!("unknown label {}", printable(label))),
    };
    let random_bytes = hex(random).ok_or("the client random is not hexadecimal")?;
    let secret_bytes = hex(secret).ok_or("the secret is not hexadecimal")?;
    let Some(keep) = keep else {
        if label != "RSA" && random_bytes.len() != 32 {
            return Err(format!("the client random is {} bytes, not 32", random_bytes.len()));
        }
        return Ok(None);
    };
    let random: [u8; 32] = random_bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("the client random is {} bytes, not 32", random_bytes.len()))?;
    let secret = Secret::new(&secret_bytes)
        .ok_or_else(|| format!("the {label} is {} bytes, not 32 or 48", secret_bytes.len()))?;
    Ok(Some((random, keep, secret)))
}

/// A label as text for a warning: at most 40 printable characters.
fn printable(s: &str) -> String {
    s.chars()
        .take(40)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            let d = |c: u8| (c as char).to_digit(16);
            Some((d(p[0])? * 16 + d(p[1])?) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(label: &str, random: u8, secret_len: usize) -> String {
        format!(
            "{label} {} {}\n",
            format!("{random:02x}").repeat(32),
            "ab".repeat(secret_len)
        )
    }

    #[test]
    fn handshake_secrets_are_kept_by_random_and_others_are_not() {
        let k = KeyLog::new();
        let mut text = String::from("# SSL/TLS secrets log file\n\n");
        text += &line("CLIENT_HANDSHAKE_TRAFFIC_SECRET", 1, 32);
        text += &line("SERVER_HANDSHAKE_TRAFFIC_SECRET", 1, 32);
        text += &line("CLIENT_TRAFFIC_SECRET_0", 1, 32);
        text += &line("SERVER_HANDSHAKE_TRAFFIC_SECRET", 2, 48);
        text += &line("CLIENT_RANDOM", 3, 48);
        k.add_text("t", text.as_bytes());
        assert_eq!(k.len(), 2);
        let e = k.lookup(&[1; 32]).unwrap();
        assert_eq!(e.client.unwrap().expose(), [0xab; 32]);
        assert!(k.lookup(&[2; 32]).unwrap().client.is_none());
        assert_eq!(k.lookup(&[2; 32]).unwrap().server.unwrap().expose().len(), 48);
        assert!(k.lookup(&[3; 32]).is_none());
        assert_eq!(k.take_warnings(), (vec![], 0));
    }

    #[test]
    fn bad_lines_are_named_by_line_number_without_their_secret() {
        let k = KeyLog::new();
        let mut text = line("CLIENT_HANDSHAKE_TRAFFIC_SECRET", 1, 32);
        text += "CLIENT_HANDSHAKE_TRAFFIC_SECRET 0102 c0ffee\n";
        text += "SERVER_HANDSHAKE_TRAFFIC_SECRET zz c0ffee\n";
        text += &line("SERVER_HANDSHAKE_TRAFFIC_SECRET", 4, 20);
        text += "FOO 00 11\n";
        text += "CLIENT_HANDSHAKE_TRAFFIC_SECRET\n";
        k.add_text("keys.log", text.as_bytes());
        let (w, more) = k.take_warnings();
        assert_eq!(more, 0);
        assert_eq!(
            w,
            [
                "keys.log:2: the client random is 2 bytes, not 32; line skipped",
                "keys.log:3: the client random is not hexadecimal; line skipped",
                "keys.log:4: the SERVER_HANDSHAKE_TRAFFIC_SECRET is 20 bytes, not 32 or 48; line skipped",
                "keys.log:5: unknown label FOO; line skipped",
                "keys.log:6: not LABEL CLIENT_RANDOM SECRET (three words); line skipped",
            ]
        );
        assert!(w.iter().all(|w| !w.contains("c0ffee") && !w.contains("abab")));
        assert_eq!(k.len(), 1);
        assert!(!format!("{:?}", k.lookup(&[1; 32])).contains("ab"));
    }

    #[test]
    fn a_followed_file_is_read_again_on_a_miss() {
        let dir = std::env::temp_dir().join(format!("mtlscope-keylog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("follow.log");
        std::fs::write(&path, line("CLIENT_HANDSHAKE_TRAFFIC_SECRET", 1, 32)).unwrap();
        let k = KeyLog::new();
        k.load_file(&path, true).unwrap();
        assert!(k.lookup(&[5; 32]).is_none());
        // A line half written is read once it is whole.
        let mut more = line("CLIENT_HANDSHAKE_TRAFFIC_SECRET", 1, 32);
        more += &line("SERVER_HANDSHAKE_TRAFFIC_SECRET", 5, 32);
        let partial = &line("SERVER_HANDSHAKE_TRAFFIC_SECRET", 6, 32)[..20];
        more += partial;
        std::fs::write(&path, &more).unwrap();
        assert!(k.lookup(&[5; 32]).is_some());
        assert!(k.lookup(&[6; 32]).is_none());
        assert_eq!(k.take_warnings(), (vec![], 0));
        std::fs::remove_dir_all(&dir).unwrap();
        let e = KeyLog::new().load_file(&path, false).unwrap_err().to_string();
        assert!(e.starts_with("--keylog-file ") && e.contains("follow.log"), "{e}");
    }

    #[test]
    fn an_entry_is_small() {
        // docs/keylogs.md says so.
        assert_eq!(ENTRY_BYTES, 133);
    }
}
