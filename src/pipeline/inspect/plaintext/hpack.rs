//! Just enough HPACK (RFC 7541) to read the first header block of a connection: [`Fields`]
//! yields its fields in order and stops at the first one it cannot decode. The dynamic table is
//! empty at that point, so the first block can be decoded on its own; later blocks could not be
//! without following the whole connection. Which fields matter, and what is kept of them, is
//! `http2`'s business: nothing here knows HTTP.
//!
//! Hand-written rather than a crate, measured 2026-12-03 on 6,055 inputs (every prefix of three
//! blocks, RFC 7541 C.3.1 and C.4.1 among them, and 2,000 three-byte corruptions of each):
//! - `hpack` 0.3.0: unmaintained (RUSTSEC-2023-0084); panics on 6 inputs, the one byte `0x3f`
//!   among them (RUSTSEC-2023-0085). Its fork `fluke-hpack` 0.3.1: the same 6 panics.
//! - `httlib-hpack` 0.1.3 (unchanged since 2021): panics on 56 (it indexes past a cut integer).
//! - `loona-hpack` 0.4.3: no panic. Without a table limit it decodes the same fields as this
//!   decoder on 100,070 inputs (25,000 corruptions of each of four blocks), but then the peer
//!   sets the table size; with the limit at our `MAX_TABLE_SIZE` it stops at an oversized size
//!   update where this decoder caps it and reads on, and 470 of those inputs would report less.
//!   The crate has not changed since that panic fix (2024-11), its repository calls itself
//!   experimental, and it brings `tracing` for what is here ~140 lines of code.
//! - `h2`'s decoder is private (hyperium/h2#735: the maintainers declined to expose it).
//!
//! This one is bounded by construction: integers stop after 4 continuation bytes, the dynamic
//! table at `MAX_TABLE_SIZE`, the input at the inspector's 512-byte head, and every index is
//! checked (`get`, `checked_add`). The `plaintext` fuzz target has run it 62.7 million times
//! without a crash (fuzz/README.md), and `every_prefix_and_corruption_is_panic_free` in
//! `mod.rs` runs it on every test build.

use super::huffman;

/// One header field: name, value.
pub(super) type Field = (Vec<u8>, Vec<u8>);

/// The fields of one header block, decoded front to back. Ends at the end of the block or at
/// the first representation that is cut or malformed, and stays ended.
pub(super) struct Fields<'a> {
    block: &'a [u8],
    pos: usize,
    table: DynamicTable,
}

impl<'a> Fields<'a> {
    /// Decodes `block` as the first header block of a connection (empty dynamic table).
    pub(super) fn new(block: &'a [u8]) -> Self {
        Fields {
            block,
            pos: 0,
            table: DynamicTable::new(),
        }
    }
}

impl Iterator for Fields<'_> {
    type Item = Field;

    fn next(&mut self) -> Option<Field> {
        while self.pos < self.block.len() {
            let Some((field, next)) = next_field(self.block, self.pos, &mut self.table) else {
                self.pos = self.block.len();
                return None;
            };
            self.pos = next;
            if field.is_some() {
                return field;
            }
        }
        None
    }
}

/// One representation starting at `pos`: `Some((None, next))` for a table size update.
fn next_field(block: &[u8], pos: usize, table: &mut DynamicTable) -> Option<(Option<Field>, usize)> {
    let first = *block.get(pos)?;
    if first & 0x80 != 0 {
        let (index, pos) = integer(block, pos, 7)?;
        return Some((Some(table.get(index)?), pos));
    }
    if first & 0xe0 == 0x20 {
        let (size, pos) = integer(block, pos, 5)?;
        table.set_max_size(size);
        return Some((None, pos));
    }
    // 01xxxxxx: literal with incremental indexing; 0000xxxx / 0001xxxx: without / never.
    let indexing = first & 0x40 != 0;
    let (name_index, pos) = integer(block, pos, if indexing { 6 } else { 4 })?;
    let (name, pos) = if name_index == 0 {
        string(block, pos)?
    } else {
        (table.get(name_index)?.0, pos)
    };
    let (value, pos) = string(block, pos)?;
    if indexing {
        table.insert(name.clone(), value.clone());
    }
    Some((Some((name, value)), pos))
}

/// RFC 7541 5.1 prefix integer. Values are capped well below overflow: nothing in a header
/// block legitimately needs more than a few megabytes.
fn integer(data: &[u8], pos: usize, prefix_bits: u32) -> Option<(usize, usize)> {
    let mask = (1u8 << prefix_bits) - 1;
    let mut value = usize::from(*data.get(pos)? & mask);
    let mut pos = pos + 1;
    if value < usize::from(mask) {
        return Some((value, pos));
    }
    let mut shift = 0u32;
    loop {
        let b = *data.get(pos)?;
        pos += 1;
        value = value.checked_add(usize::from(b & 0x7f).checked_shl(shift)?)?;
        if b & 0x80 == 0 {
            return Some((value, pos));
        }
        shift += 7;
        if shift > 21 {
            return None;
        }
    }
}

/// RFC 7541 5.2 string literal, Huffman-coded or raw.
fn string(data: &[u8], pos: usize) -> Option<(Vec<u8>, usize)> {
    let huffman = *data.get(pos)? & 0x80 != 0;
    let (len, pos) = integer(data, pos, 7)?;
    let end = pos.checked_add(len)?;
    let raw = data.get(pos..end)?;
    let text = if huffman { huffman::decode(raw)? } else { raw.to_vec() };
    Some((text, end))
}

const DEFAULT_TABLE_SIZE: usize = 4096;
/// Bounds memory if a peer announces an absurd table size.
const MAX_TABLE_SIZE: usize = 65_536;

/// The dynamic table of RFC 7541 section 2.3.2. Invariant: `size` is the RFC size (name +
/// value + 32 per entry) of `entries` and never exceeds `max_size`, itself at most
/// `MAX_TABLE_SIZE`.
struct DynamicTable {
    /// Newest first, as HPACK indexes it.
    entries: Vec<Field>,
    size: usize,
    max_size: usize,
}

impl DynamicTable {
    fn new() -> Self {
        DynamicTable {
            entries: Vec::new(),
            size: 0,
            max_size: DEFAULT_TABLE_SIZE,
        }
    }

    /// Index 1-61 is the static table, 62 on the dynamic one; 0 and past the end are None.
    fn get(&self, index: usize) -> Option<Field> {
        match index {
            0 => None,
            1..=61 => STATIC_TABLE
                .get(index - 1)
                .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())),
            _ => self.entries.get(index - 62).cloned(),
        }
    }

    fn set_max_size(&mut self, size: usize) {
        self.max_size = size.min(MAX_TABLE_SIZE);
        self.evict_to(self.max_size);
    }

    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = name.len() + value.len() + 32;
        if size > self.max_size {
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - size);
        self.entries.insert(0, (name, value));
        self.size += size;
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            match self.entries.pop() {
                Some((n, v)) => self.size = self.size.saturating_sub(n.len() + v.len() + 32),
                None => self.size = 0,
            }
        }
    }
}

/// RFC 7541 Appendix A.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

#[cfg(test)]
mod tests {
    use super::super::test_support::raw_literal;
    use super::*;

    fn fields(block: &[u8]) -> Vec<(String, String)> {
        Fields::new(block)
            .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn rfc7541_c4_1_request_with_huffman() {
        let block = [
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        assert_eq!(
            fields(&block),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ])
        );
    }

    #[test]
    fn dynamic_table_reference() {
        // A literal with incremental indexing, then index 62 (the newest dynamic entry).
        let mut block = vec![0x83];
        block.extend(raw_literal(0x5f, "application/grpc"));
        block.push(0x80 | 62);
        assert_eq!(
            fields(&block),
            pairs(&[
                (":method", "POST"),
                ("content-type", "application/grpc"),
                ("content-type", "application/grpc"),
            ])
        );
        // Index past the end of both tables stops decoding without panicking.
        assert_eq!(Fields::new(&[0xff, 0x7f]).count(), 0);
    }

    #[test]
    fn stops_at_the_first_bad_field_and_stays_stopped() {
        // GET, then index 0 (invalid), then POST: only GET comes out.
        let mut it = Fields::new(&[0x82, 0x80, 0x83]);
        assert_eq!(it.next(), Some((b":method".to_vec(), b"GET".to_vec())));
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
        // The crates' known panic: a size update whose integer is cut (RUSTSEC-2023-0085).
        assert_eq!(Fields::new(&[0x3f]).count(), 0);
        // A size update is no field; a huge one is capped, and the table still works.
        let mut block = vec![0x3f, 0xe1, 0xff, 0xff, 0x03];
        block.extend(raw_literal(0x40, "x"));
        block.push(1);
        block.push(b'y');
        block.push(0x80 | 62);
        assert_eq!(fields(&block), pairs(&[("x", "y"), ("x", "y")]));
    }

    #[test]
    fn table_evicts_oldest_and_stays_bounded() {
        let mut table = DynamicTable::new();
        table.set_max_size(usize::MAX);
        assert_eq!(table.max_size, MAX_TABLE_SIZE);
        for i in 0..10_000u32 {
            table.insert(i.to_be_bytes().to_vec(), vec![0; 100]);
            assert!(table.size <= MAX_TABLE_SIZE);
        }
        assert_eq!(table.get(62).map(|f| f.0), Some(9_999u32.to_be_bytes().to_vec()));
        // An entry larger than the table empties it (RFC 7541 4.4).
        table.set_max_size(64);
        table.insert(vec![0; 40], vec![]);
        assert_eq!((table.entries.len(), table.size), (0, 0));
    }

    #[test]
    fn integers() {
        // RFC 7541 C.1.2: 1337 with a 5-bit prefix.
        assert_eq!(integer(&[0x1f, 0x9a, 0x0a], 0, 5), Some((1337, 3)));
        assert_eq!(integer(&[0x0a], 0, 5), Some((10, 1)));
        assert_eq!(integer(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0x01], 0, 5), None);
        assert_eq!(integer(&[0x1f, 0x9a], 0, 5), None);
    }
}
