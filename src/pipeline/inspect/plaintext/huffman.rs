//! The HPACK Huffman code (RFC 7541 Appendix B), decoding only. It is canonical, so the code
//! lengths alone define it; the codes are rebuilt at compile time instead of transcribing 257
//! bit patterns. Decoding walks one bit at a time against the per-length first codes: at most
//! 30 steps per symbol, no table of 2^N entries, output at most 8/5 of the input.
//!
//! Hand-written for the reasons given in `hpack`, and because `httlib-huffman` 0.3.4 (the
//! crate RUSTSEC-2023-0084 suggests; unchanged since 2021), though it did not panic on the 6,055
//! inputs, accepts padding of zero bits (`0x18` decodes to "a"), which RFC 7541 5.2 makes a
//! decoding error; [`decode`] rejects it.

/// Code length in bits for each symbol 0..=255, then EOS (256).
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, //
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, //
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, //
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, //
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, //
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, //
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, //
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, //
    30,
];
const MAX_LEN: usize = 30;
const EOS: u16 = 256;

/// Per code length: how many codes, the first code, and where its symbols start in SORTED.
struct Canonical {
    count: [u32; MAX_LEN + 1],
    first: [u32; MAX_LEN + 1],
    offset: [usize; MAX_LEN + 1],
    sorted: [u16; 257],
}

const CANONICAL: Canonical = build();

const fn build() -> Canonical {
    let mut c = Canonical {
        count: [0; MAX_LEN + 1],
        first: [0; MAX_LEN + 1],
        offset: [0; MAX_LEN + 1],
        sorted: [0; 257],
    };
    let mut s = 0;
    while s < 257 {
        c.count[LENGTHS[s] as usize] += 1;
        s += 1;
    }
    let mut len = 1;
    let mut code = 0;
    let mut offset = 0;
    while len <= MAX_LEN {
        c.first[len] = code;
        c.offset[len] = offset;
        code = (code + c.count[len]) << 1;
        offset += c.count[len] as usize;
        len += 1;
    }
    let mut next = c.offset;
    let mut s = 0;
    while s < 257 {
        let len = LENGTHS[s] as usize;
        c.sorted[next[len]] = s as u16;
        next[len] += 1;
        s += 1;
    }
    c
}

/// None on an invalid code, an EOS symbol in the data, or padding that is not a prefix of
/// EOS (RFC 7541 5.2).
pub(super) fn decode(src: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(src.len() * 8 / 5);
    let mut code = 0u32;
    let mut len = 0usize;
    for byte in src {
        for shift in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> shift) & 1);
            len += 1;
            let first = *CANONICAL.first.get(len)?;
            let count = *CANONICAL.count.get(len)?;
            match code.checked_sub(first) {
                Some(rank) if rank < count => {
                    let at = CANONICAL.offset.get(len)?.checked_add(rank as usize)?;
                    let symbol = *CANONICAL.sorted.get(at)?;
                    if symbol == EOS {
                        return None;
                    }
                    out.push(u8::try_from(symbol).ok()?);
                    code = 0;
                    len = 0;
                }
                _ if len >= MAX_LEN => return None,
                _ => {}
            }
        }
    }
    let padding_ok = len <= 7 && code == (1u32 << len) - 1;
    padding_ok.then_some(out)
}

/// Test-only inverse of [`decode`], to build header blocks without hand-assembling bits.
#[cfg(test)]
pub(super) fn encode(text: &[u8]) -> Vec<u8> {
    let mut codes = [0u32; 257];
    let mut s = 0;
    while s < 257 {
        let len = LENGTHS[s] as usize;
        let rank = CANONICAL.sorted[CANONICAL.offset[len]..]
            .iter()
            .position(|&x| x as usize == s)
            .unwrap();
        codes[s] = CANONICAL.first[len] + rank as u32;
        s += 1;
    }
    let mut bits: Vec<bool> = Vec::new();
    for &b in text {
        let len = LENGTHS[b as usize];
        for i in (0..len).rev() {
            bits.push((codes[b as usize] >> i) & 1 == 1);
        }
    }
    while !bits.len().is_multiple_of(8) {
        bits.push(true);
    }
    bits.chunks(8)
        .map(|c| c.iter().fold(0u8, |acc, &bit| acc << 1 | u8::from(bit)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7541_c4_1_authority() {
        assert_eq!(
            decode(&[0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff]),
            Some(b"www.example.com".to_vec())
        );
    }

    #[test]
    fn rejects_bad_padding_and_eos() {
        assert_eq!(decode(&[]), Some(vec![]));
        // "a" is 00011 then padding 111: 0x1f. Padding of zeros is invalid.
        assert_eq!(decode(&[0x1f]), Some(b"a".to_vec()));
        assert_eq!(decode(&[0x18]), None);
        // More than 7 bits of padding (a whole 0xff byte).
        assert_eq!(decode(&[0x1f, 0xff]), None);
        // EOS (30 ones) inside the data.
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xfc]), None);
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all)), Some(all));
    }
}
