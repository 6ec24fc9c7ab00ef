//! A job's queue of units: the chunks they were submitted in, consumed from the front.
//!
//! Millions of units arrive in chunks of thousands; keeping the chunks as they came (instead of
//! moving every unit into one growing deque) means queueing never copies units around.

use std::collections::VecDeque;

use super::Unit;

/// Units in submission order, with requeued units in front.
#[derive(Debug, Default)]
pub(super) struct UnitQueue {
    chunks: VecDeque<std::vec::IntoIter<Unit>>,
    len: usize,
}

impl UnitQueue {
    /// Appends a chunk at the back.
    pub(super) fn push_back(&mut self, units: Vec<Unit>) {
        if !units.is_empty() {
            self.len += units.len();
            self.chunks.push_back(units.into_iter());
        }
    }

    /// Puts units back at the front, keeping their order.
    pub(super) fn push_front(&mut self, units: Vec<Unit>) {
        if !units.is_empty() {
            self.len += units.len();
            self.chunks.push_front(units.into_iter());
        }
    }

    /// Takes the first unit.
    pub(super) fn pop_front(&mut self) -> Option<Unit> {
        loop {
            let front = self.chunks.front_mut()?;
            if let Some(unit) = front.next() {
                self.len -= 1;
                return Some(unit);
            }
            self.chunks.pop_front();
        }
    }

    /// Units queued.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The queued units, front first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Unit> {
        self.chunks.iter().flat_map(|chunk| chunk.as_slice())
    }

    /// Payload bytes of the queued units.
    pub(super) fn payload_bytes(&self) -> u64 {
        super::unit::payload_bytes(self.iter())
    }

    /// Whether no unit is queued.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ganger_core::payload::Payload;

    fn units(ids: std::ops::Range<u64>) -> Vec<Unit> {
        ids.map(|id| Unit {
            id,
            payload: Payload::new(),
        })
        .collect()
    }

    #[test]
    fn keeps_submission_order_with_requeued_units_first() {
        let mut queue = UnitQueue::default();
        queue.push_back(units(0..3));
        queue.push_back(Vec::new());
        queue.push_back(units(3..5));
        assert_eq!(queue.len(), 5);
        assert_eq!(queue.pop_front().map(|u| u.id), Some(0));
        queue.push_front(units(10..12));
        let order: Vec<u64> = std::iter::from_fn(|| queue.pop_front().map(|u| u.id)).collect();
        assert_eq!(order, vec![10, 11, 1, 2, 3, 4]);
        assert!(queue.is_empty());
    }
}
