//! What went wrong reading one input, without stopping the run: the runner collects one
//! [`InputError`] per input that could not be read completely, the summary carries them
//! ([`InputErrors`]) and the command line prints them. Each names the file and, where known,
//! the byte offset; the connections read before it are still reported.
//!
//! A leaf module: the record (the summary) and the runner both use it, and it uses only the
//! source and the filter, whose errors it wraps.

use crate::pipeline::filter::FilterError;
use crate::pipeline::source::{LinkType, SourceError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;

/// Why an input was not read completely. The message is one line and starts with the file.
///
/// `Clone` because the summary that carries it is: the wrapped errors hold an `io::Error`,
/// which is not, so they are shared.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InputError {
    /// The source could not open, read or parse the input: an open or read error, a corrupt or
    /// truncated gzip stream, not a capture, a truncated or corrupt header, record or block.
    /// Reading stopped there.
    #[error(transparent)]
    Source(Arc<SourceError>),
    /// The decoder does not handle this link type: its packets were skipped, the others read.
    #[error(
        "{file}: link type {} ({}) at byte {offset} is not supported; its packets were skipped \
         (supported: Ethernet, Linux cooked v1/v2, BSD loopback, raw IP)",
        link.0,
        link.name()
    )]
    UnsupportedLink {
        /// The input as given on the command line.
        file: String,
        /// Where the first packet of that link type starts.
        offset: u64,
        link: LinkType,
    },
    /// The filter expression does not apply to a link type in the input (`ether host` on raw
    /// IP): those packets were skipped, the others read.
    #[error("{file}: {filter}")]
    Filter {
        /// The input as given on the command line.
        file: String,
        /// Where the first packet of that link type starts.
        offset: u64,
        filter: Arc<FilterError>,
    },
    /// A live capture broke off (its interface went away, the pod was deleted): the
    /// connections seen until then are reported. A capture that could not start is not an
    /// input error; it stops the command.
    #[error("capture on '{interface}' stopped early: {error}; the connections seen until then are reported")]
    Capture {
        interface: String,
        error: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// An error another mtlscope reported as text (an agent in a helper pod, through its JSON
    /// summary): only its message crossed the wire.
    #[error("{0}")]
    Relayed(String),
}

impl InputError {
    /// The input the error is about, as given (`<stdin>` for standard input once it was
    /// opened); `None` for a live capture and a relayed error.
    pub fn file(&self) -> Option<&str> {
        match self {
            InputError::Source(e) => Some(e.file()),
            InputError::UnsupportedLink { file, .. } | InputError::Filter { file, .. } => Some(file),
            InputError::Capture { .. } | InputError::Relayed(_) => None,
        }
    }

    /// The byte offset the error is about, where known (not for a file that could not be
    /// opened, nor for a live capture or a relayed error). For gzip input it counts
    /// decompressed bytes.
    pub fn offset(&self) -> Option<u64> {
        match self {
            InputError::Source(e) => e.position().map(|p| p.offset),
            InputError::UnsupportedLink { offset, .. } | InputError::Filter { offset, .. } => Some(*offset),
            InputError::Capture { .. } | InputError::Relayed(_) => None,
        }
    }
}

impl From<SourceError> for InputError {
    fn from(e: SourceError) -> Self {
        InputError::Source(Arc::new(e))
    }
}

/// A message another process reported (see [`InputError::Relayed`]).
impl From<String> for InputError {
    fn from(message: String) -> Self {
        InputError::Relayed(message)
    }
}

/// The input errors of a run, in the order they happened; at most one per input.
///
/// Serialized as a list of their messages (`"errors": ["a.pcap: truncated at byte 24: ..."]`),
/// the JSON schema of docs/json.md.
#[derive(Debug, Clone, Default)]
pub struct InputErrors(Vec<InputError>);

impl InputErrors {
    pub fn push(&mut self, e: impl Into<InputError>) {
        self.0.push(e.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, InputError> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a InputErrors {
    type Item = &'a InputError;
    type IntoIter = std::slice::Iter<'a, InputError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<InputError> for InputErrors {
    fn from_iter<I: IntoIterator<Item = InputError>>(iter: I) -> Self {
        InputErrors(iter.into_iter().collect())
    }
}

impl<T: Into<InputError>> Extend<T> for InputErrors {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        self.0.extend(iter.into_iter().map(Into::into));
    }
}

/// Read back from another process's summary (the agent's, in the kubectl plugin): only the
/// messages travel, so each becomes [`InputError::Relayed`].
impl<'de> Deserialize<'de> for InputErrors {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<String>::deserialize(d)?
            .into_iter()
            .map(InputError::Relayed)
            .collect())
    }
}

impl Serialize for InputErrors {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|e| e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::source::{CaptureReader, Position};

    #[test]
    fn serializes_as_the_messages() {
        let mut errors = InputErrors::default();
        errors.push(InputError::UnsupportedLink {
            file: "a.pcap".into(),
            offset: 24,
            link: LinkType::IEEE802_11,
        });
        errors.push("pod/x: gone".to_string());
        assert_eq!(
            serde_json::to_value(&errors).unwrap(),
            serde_json::json!([
                "a.pcap: link type 105 (IEEE802_11) at byte 24 is not supported; its packets were skipped \
                 (supported: Ethernet, Linux cooked v1/v2, BSD loopback, raw IP)",
                "pod/x: gone"
            ])
        );
    }

    #[test]
    fn a_source_error_keeps_its_message_file_and_offset() {
        let cut = b"\xd4\xc3\xb2\xa1\x02\x00".to_vec();
        let e = CaptureReader::from_read("cut.pcap", Box::new(std::io::Cursor::new(cut))).unwrap_err();
        let text = e.to_string();
        let at = e.position();
        let e = InputError::from(e);
        assert_eq!(e.to_string(), text);
        assert_eq!(e.file(), Some("cut.pcap"));
        assert_eq!(e.offset(), at.map(|p: Position| p.offset));
    }
}
