//! Durable `for` loops: the iterable becomes a saveable iterator when the loop starts,
//! either an integer range saved as its bounds or the collected remaining items.

use std::cell::Cell;
use std::collections::VecDeque;
use std::ops::{Range, RangeFrom, RangeInclusive};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Saveable, SlotCodec};

/// The saveable iterator of a durable `for` loop, whose items are what must be saveable:
/// a loop's check names its items' type, not the iterator's.
pub trait LoopIter: Sized {
    /// The loop's items.
    type Item;
    /// The iterator's codec, given that its items can be saved.
    fn codec() -> SlotCodec<Self>
    where
        Self::Item: Saveable;
}

impl<T> LoopIter for DurableItems<T> {
    type Item = T;
    fn codec() -> SlotCodec<Self>
    where
        T: Saveable,
    {
        SlotCodec::new()
    }
}

impl<I: RangeInt> LoopIter for DurableRange<I> {
    type Item = I;
    fn codec() -> SlotCodec<Self>
    where
        I: Saveable,
    {
        SlotCodec::new()
    }
}

/// The iterable of a durable `for` loop, before it becomes a saveable iterator.
///
/// `(&ForSource::new(expr)).durable_iter()` picks [`ViaRange`] for integer ranges (saved
/// as their bounds, never materialised) and [`ViaCollect`] for everything else (the
/// items are collected when the loop starts, so they can be saved).
pub struct ForSource<T>(Cell<Option<T>>);

impl<T> ForSource<T> {
    /// Wraps the iterable.
    pub fn new(iterable: T) -> Self {
        ForSource(Cell::new(Some(iterable)))
    }

    fn take(&self) -> T {
        match self.0.take() {
            Some(v) => v,
            None => panic!("durable: internal error: a loop source was used twice"),
        }
    }
}

/// Integer types a durable range loop can count with.
pub trait RangeInt: Copy + PartialOrd + Serialize + DeserializeOwned {
    /// `self + 1`, or `None` at the type's maximum.
    fn successor(self) -> Option<Self>;
}

macro_rules! range_int {
    ($($t:ty)*) => {$(
        impl RangeInt for $t {
            fn successor(self) -> Option<Self> {
                self.checked_add(1)
            }
        }
    )*};
}
range_int!(i8 i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize);

/// A range loop's saved position.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DurableRange<I> {
    next: Option<I>,
    end: Option<I>,
    inclusive: bool,
}

impl<I: RangeInt> Iterator for DurableRange<I> {
    type Item = I;
    fn next(&mut self) -> Option<I> {
        let current = self.next?;
        let in_range = match self.end {
            None => true,
            Some(end) if self.inclusive => current <= end,
            Some(end) => current < end,
        };
        if !in_range {
            self.next = None;
            return None;
        }
        self.next = current.successor();
        if self.inclusive && self.end == Some(current) {
            self.next = None;
        }
        Some(current)
    }
}

/// Picks the range representation (higher priority: matches without autoref).
pub trait ViaRange {
    /// The saveable iterator.
    type Iter;
    /// Converts the loop source.
    fn durable_iter(&self) -> Self::Iter;
}

impl<I: RangeInt> ViaRange for ForSource<Range<I>> {
    type Iter = DurableRange<I>;
    fn durable_iter(&self) -> DurableRange<I> {
        let r = self.take();
        DurableRange {
            next: Some(r.start),
            end: Some(r.end),
            inclusive: false,
        }
    }
}

impl<I: RangeInt> ViaRange for ForSource<RangeInclusive<I>> {
    type Iter = DurableRange<I>;
    fn durable_iter(&self) -> DurableRange<I> {
        let r = self.take();
        let (start, end) = r.into_inner();
        DurableRange {
            next: Some(start),
            end: Some(end),
            inclusive: true,
        }
    }
}

impl<I: RangeInt> ViaRange for ForSource<RangeFrom<I>> {
    type Iter = DurableRange<I>;
    fn durable_iter(&self) -> DurableRange<I> {
        DurableRange {
            next: Some(self.take().start),
            end: None,
            inclusive: false,
        }
    }
}

/// A collected loop's remaining items.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DurableItems<T>(VecDeque<T>);

impl<T> Iterator for DurableItems<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.0.pop_front()
    }
}

/// Picks the collecting representation (lower priority: needs autoref).
pub trait ViaCollect {
    /// The saveable iterator.
    type Iter;
    /// Converts the loop source.
    fn durable_iter(&self) -> Self::Iter;
}

impl<T: IntoIterator> ViaCollect for &ForSource<T> {
    type Iter = DurableItems<T::Item>;
    fn durable_iter(&self) -> DurableItems<T::Item> {
        DurableItems(self.take().into_iter().collect())
    }
}

#[cfg(test)]
// The explicit borrows are the autoref-specialization trick under test.
#[allow(clippy::needless_borrow, clippy::reversed_empty_ranges)]
mod tests {
    use super::*;

    fn via<T>(src: ForSource<T>) -> Vec<String>
    where
        for<'a> &'a ForSource<T>: ViaCollect,
        for<'a> <&'a ForSource<T> as ViaCollect>::Iter: Iterator,
        for<'a> <<&'a ForSource<T> as ViaCollect>::Iter as Iterator>::Item: std::fmt::Debug,
    {
        (&src).durable_iter().map(|x| format!("{x:?}")).collect()
    }

    #[test]
    fn ranges_are_saved_as_bounds_and_iterate_like_std() {
        let it = (&ForSource::new(2u8..5)).durable_iter();
        assert_eq!(it.collect::<Vec<_>>(), vec![2, 3, 4]);
        let it = (&ForSource::new(250u8..=255)).durable_iter();
        assert_eq!(it.collect::<Vec<_>>(), vec![250, 251, 252, 253, 254, 255]);
        let it = (&ForSource::new(5i32..=4)).durable_iter();
        assert_eq!(it.count(), 0);
        let mut it = (&ForSource::new(7u64..)).durable_iter();
        assert_eq!(it.next(), Some(7));
        // A range saved in the middle resumes where it stopped.
        let bytes = serde_json::to_vec(&it).unwrap();
        let resumed: DurableRange<u64> = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(resumed.take(2).collect::<Vec<_>>(), vec![8, 9]);
    }

    #[test]
    fn inclusive_range_ending_at_max_stops_after_resume() {
        let mut it = (&ForSource::new(254u8..=255)).durable_iter();
        assert_eq!(it.next(), Some(254));
        assert_eq!(it.next(), Some(255));
        let bytes = serde_json::to_vec(&it).unwrap();
        let mut resumed: DurableRange<u8> = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(resumed.next(), None);
    }

    #[test]
    fn other_iterables_are_collected() {
        assert_eq!(via(ForSource::new(vec!["a", "b"])), vec!["\"a\"", "\"b\""]);
    }
}
