//! A list kept by the thousand per open connection but empty in nearly all of them (alerts,
//! problems, TLS 1.3 flight lengths): one pointer until its first element.

use serde::Serialize;

/// A list that is empty for most connections (alerts, problems, encrypted flight lengths):
/// one pointer instead of a vector's three words until the first element arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
// Boxed on purpose: one pointer instead of a vector's three words while empty.
#[allow(clippy::box_collection)]
pub struct RareList<T>(Option<Box<Vec<T>>>);

impl<T> Default for RareList<T> {
    fn default() -> Self {
        RareList(None)
    }
}

impl<T> std::ops::Deref for RareList<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl<T> RareList<T> {
    pub fn push(&mut self, v: T) {
        self.0.get_or_insert_with(Box::default).push(v);
    }

    pub fn as_slice(&self) -> &[T] {
        self
    }
}

impl<T: Serialize> Serialize for RareList<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}
