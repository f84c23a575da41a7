//! The two ends of a connection, and a pair of values, one per end.
//!
//! A flow's key puts the smaller endpoint first (`flows::FlowKey`), and a
//! direction is named by the end that sends in it: [`Side::Lo`] is the smaller endpoint's
//! direction, [`Side::Hi`] the other. Which side is the client is a fact learnt later (SYN,
//! ClientHello, port), so it is stored as a `Side` next to the values, never baked into their
//! order. Leaf module: every stage uses it, it uses nothing.

use std::ops::{Index, IndexMut};

/// One end of a flow, in flow-key order; also the direction that end sends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The smaller endpoint of the key.
    Lo = 0,
    /// The larger endpoint of the key.
    Hi = 1,
}

impl Side {
    /// Both sides, in key order.
    pub const BOTH: [Side; 2] = [Side::Lo, Side::Hi];

    /// The other end (the receiver of this side's direction).
    #[inline]
    pub fn other(self) -> Side {
        match self {
            Side::Lo => Side::Hi,
            Side::Hi => Side::Lo,
        }
    }

    /// 0 for `Lo`, 1 for `Hi`: the number reports and problem texts print for a direction.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One value per side, indexed by [`Side`]; as cheap as the `[T; 2]` it wraps (the index is the
/// enum's discriminant, 0 or 1, so there is no bounds check to pay).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PerSide<T>([T; 2]);

impl<T> PerSide<T> {
    #[inline]
    pub const fn new(lo: T, hi: T) -> Self {
        PerSide([lo, hi])
    }

    /// The values in key order (`Lo` first).
    #[inline]
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    /// The values in key order, mutably.
    #[inline]
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, T> {
        self.0.iter_mut()
    }

    /// A pair of references to the values, sides kept.
    #[inline]
    pub fn each_ref(&self) -> PerSide<&T> {
        PerSide(self.0.each_ref())
    }

    /// A pair of `f` applied to each value, sides kept.
    #[inline]
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> PerSide<U> {
        PerSide(self.0.map(f))
    }
}

impl<T> From<[T; 2]> for PerSide<T> {
    /// `[lo, hi]`.
    #[inline]
    fn from(pair: [T; 2]) -> Self {
        PerSide(pair)
    }
}

impl<'a, T> IntoIterator for &'a PerSide<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    /// The values in key order.
    #[inline]
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T> Index<Side> for PerSide<T> {
    type Output = T;

    #[inline]
    fn index(&self, side: Side) -> &T {
        &self.0[side as usize]
    }
}

impl<T> IndexMut<Side> for PerSide<T> {
    #[inline]
    fn index_mut(&mut self, side: Side) -> &mut T {
        &mut self.0[side as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_swaps_and_index_follows_key_order() {
        assert_eq!(Side::Lo.other(), Side::Hi);
        assert_eq!(Side::Hi.other(), Side::Lo);
        let mut p = PerSide::new('a', 'b');
        assert_eq!((p[Side::Lo], p[Side::Hi]), ('a', 'b'));
        p[Side::Hi] = 'c';
        assert_eq!(p.iter().collect::<String>(), "ac");
        assert_eq!(Side::BOTH.map(Side::index), [0, 1]);
    }
}
