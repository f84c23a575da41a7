//! Bounds on the YAML files mtlscope reads (`check --rules`, `--policy-from`, `policy explain
//! --from`), checked before the YAML parser sees them.
//!
//! serde_norway (libyaml underneath) has no size or depth option, and its scanner takes
//! quadratic time in the nesting of flow collections: 100 KB of `[` took 17 s, 1 MB of `{`
//! minutes, before its recursion limit (128) answered. So a file is read at most to a size
//! limit ([`read_bounded`]), and [`check_nesting`] measures its nesting in one linear pass,
//! refusing more than [`MAX_DEPTH`] levels.
//!
//! The pass knows enough YAML to not count brackets in comments, quoted scalars, block scalars
//! (`|`, `>`) or block-context plain scalars (`key: a[b`). Block nesting is counted as the
//! stack of indentation columns plus the compact `- `/`? ` indicators of a line (`- - - x`). It
//! may count a level more than the parser would (a plain scalar continued on a more indented
//! line), never fewer for the constructs that nest.

use std::io::Read;
use std::path::Path;

/// The deepest nesting (block indentation levels plus open `[`/`{`) a file may have.
pub const MAX_DEPTH: usize = 64;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
}

/// The text of `path`, refused past `limit` bytes without reading further.
pub fn read_bounded(path: &Path, limit: u64) -> Result<String, ReadError> {
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(text)
}

/// Where nesting went past [`MAX_DEPTH`]; line and column are 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: nested more than {MAX_DEPTH} levels deep (the limit)")]
pub struct TooDeep {
    pub line: usize,
    pub column: usize,
}

fn is_blank(b: Option<&u8>) -> bool {
    matches!(b, None | Some(b' ' | b'\t' | b'\r' | b'\n'))
}

/// Refuses YAML nested deeper than [`MAX_DEPTH`], in time linear in `text`.
pub fn check_nesting(text: &str) -> Result<(), TooDeep> {
    #[derive(PartialEq)]
    enum Quote {
        No,
        Single,
        Double,
    }
    let b = text.as_bytes();
    let n = b.len();
    let (mut line, mut line_begin) = (1usize, 0usize);
    let too_deep = |line: usize, line_begin: usize, at: usize| TooDeep {
        line,
        column: text[line_begin..at].chars().count() + 1,
    };
    // Indentation columns of the open block nodes, strictly increasing.
    let mut stack: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut quote = Quote::No;
    // The indentation of a block scalar's header line: its content is indented more.
    let mut block_scalar: Option<usize> = None;
    let mut line_indent = 0usize;
    let (mut at_line_start, mut token_start, mut plain, mut after_space) = (true, true, false, false);
    let end_of_line = |i: usize| b[i..].iter().position(|&c| c == b'\n').map_or(n, |p| i + p);
    let mut i = 0;
    while i < n {
        let c = b[i];
        if c == b'\n' {
            i += 1;
            line += 1;
            line_begin = i;
            at_line_start = true;
            (token_start, plain, after_space) = (true, false, true);
            continue;
        }
        match quote {
            Quote::Double => {
                if c == b'\\' && b.get(i + 1) != Some(&b'\n') {
                    i += 1;
                } else if c == b'"' {
                    quote = Quote::No;
                }
                i += 1;
                continue;
            }
            Quote::Single => {
                if c == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 1;
                    } else {
                        quote = Quote::No;
                    }
                }
                i += 1;
                continue;
            }
            Quote::No => {}
        }
        if at_line_start {
            at_line_start = false;
            let indent = b[i..].iter().take_while(|&&c| c == b' ').count();
            let j = i + indent;
            if matches!(b.get(j), None | Some(b'\n' | b'\r' | b'#')) {
                i = end_of_line(j);
                continue;
            }
            if flow == 0 {
                if let Some(parent) = block_scalar {
                    if indent > parent {
                        i = end_of_line(j);
                        continue;
                    }
                    block_scalar = None;
                }
                let rest = &b[j..];
                if indent == 0 && rest.first() == Some(&b'%') {
                    i = end_of_line(j);
                    continue;
                }
                i = j;
                line_indent = indent;
                if indent == 0 && (rest.starts_with(b"---") || rest.starts_with(b"...")) && is_blank(rest.get(3)) {
                    stack.clear();
                    i += 3;
                    continue;
                }
                while stack.last().is_some_and(|&top| top > indent) {
                    stack.pop();
                }
                if stack.last().is_none_or(|&top| top < indent) {
                    stack.push(indent);
                }
                // Compact nesting: `- - x`, `? - x`.
                while matches!(b.get(i), Some(b'-' | b'?' | b':')) && is_blank(b.get(i + 1)) {
                    i += 1;
                    while matches!(b.get(i), Some(b' ' | b'\t')) {
                        i += 1;
                    }
                    if !matches!(b.get(i), None | Some(b'\n' | b'\r' | b'#'))
                        && stack.last().is_none_or(|&top| top < i - line_begin)
                    {
                        stack.push(i - line_begin);
                    }
                    if stack.len() > MAX_DEPTH {
                        return Err(too_deep(line, line_begin, i));
                    }
                }
                if stack.len() > MAX_DEPTH {
                    return Err(too_deep(line, line_begin, i));
                }
                (token_start, after_space) = (true, true);
                continue;
            }
            i = j;
            after_space = true;
            continue;
        }
        if matches!(c, b' ' | b'\t' | b'\r') {
            after_space = true;
            token_start |= !plain;
            i += 1;
            continue;
        }
        if c == b'#' && after_space {
            i = end_of_line(i);
            continue;
        }
        after_space = false;
        if flow > 0 {
            match c {
                b'[' | b'{' => {
                    flow += 1;
                    if stack.len() + flow > MAX_DEPTH {
                        return Err(too_deep(line, line_begin, i));
                    }
                    token_start = true;
                }
                b']' | b'}' => {
                    flow -= 1;
                    token_start = false;
                }
                b',' | b':' => token_start = true,
                b'"' if token_start => quote = Quote::Double,
                b'\'' if token_start => quote = Quote::Single,
                _ => token_start = false,
            }
        } else if plain {
            // A block plain scalar runs to the end of the line, a `: ` or a ` #`.
            if c == b':' && is_blank(b.get(i + 1)) {
                plain = false;
            }
        } else if token_start {
            match c {
                b'[' | b'{' => {
                    flow = 1;
                    if stack.len() + flow > MAX_DEPTH {
                        return Err(too_deep(line, line_begin, i));
                    }
                }
                b'"' => quote = Quote::Double,
                b'\'' => quote = Quote::Single,
                b'|' | b'>' => {
                    block_scalar = Some(line_indent);
                    i = end_of_line(i);
                    continue;
                }
                // Anchors, tags and aliases: a token of their own.
                b'&' | b'!' | b'*' => token_start = false,
                b'-' | b'?' | b':' if is_blank(b.get(i + 1)) => {}
                _ => {
                    plain = true;
                    token_start = false;
                }
            }
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(text: &str) -> bool {
        check_nesting(text).is_ok()
    }

    #[test]
    fn deep_flow_collections_are_refused_with_their_place() {
        let err = check_nesting(&format!("rules:\n  - {}", "[".repeat(1_000_000))).unwrap_err();
        // Three block levels (`rules:`, the indented line, `- `): the 62nd `[` is one too many.
        assert_eq!(err, TooDeep { line: 2, column: 66 });
        assert!(!depth_ok(&"{".repeat(1_000_000)));
        assert!(!depth_ok(&"{a: ".repeat(200_000)));
        assert!(depth_ok(&format!("{}{}", "[".repeat(60), "]".repeat(60))));
    }

    #[test]
    fn deep_block_nesting_is_refused() {
        assert!(!depth_ok(&"- ".repeat(500_000)));
        let indented: String = (0..100).map(|d| format!("{}k{d}:\n", " ".repeat(d))).collect();
        assert!(!depth_ok(&indented));
        let shallow: String = (0..60).map(|d| format!("{}k{d}:\n", " ".repeat(d))).collect();
        assert!(depth_ok(&shallow));
    }

    #[test]
    fn brackets_that_are_not_collections_do_not_count() {
        let many = "[".repeat(100);
        for text in [
            format!("a: x{many}\n"),
            format!("a: x {many}\n"),
            format!("a: '{many}'\n"),
            format!("a: \"{many}\\\"\"\n"),
            format!("a: \"x\n  {many}\"\n"),
            format!("a: 1 # {many}\n"),
            format!("# {many}\n"),
            format!("a: |\n  {many}\n  {many}\nb: [1]\n"),
            format!("- >-\n  {many}\n- c\n"),
            format!("{{\"a\": \"{many}\", \"b\": ['{many}']}}\n"),
        ] {
            assert!(depth_ok(&text), "{text}");
        }
    }

    #[test]
    fn nesting_ends_where_collections_and_documents_close() {
        let closed = "[[[[[[[[[[]]]]]]]]]]\n".repeat(20);
        assert!(depth_ok(&closed));
        let docs = format!(
            "{}---\n",
            (0..40).map(|d| format!("{}k:\n", " ".repeat(d))).collect::<String>()
        )
        .repeat(5);
        assert!(depth_ok(&docs));
    }

    #[test]
    fn read_stops_at_the_limit() {
        let dir = std::env::temp_dir().join(format!("mtlscope-bounds-{}", std::process::id()));
        std::fs::write(&dir, "x".repeat(2000)).unwrap();
        assert!(matches!(
            read_bounded(&dir, 1000),
            Err(ReadError::TooLarge { limit: 1000 })
        ));
        assert_eq!(read_bounded(&dir, 2000).unwrap().len(), 2000);
        std::fs::remove_file(&dir).unwrap();
    }
}
