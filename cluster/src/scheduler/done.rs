//! Which units of a job have an outcome, in memory that does not grow with the job.
//!
//! A bit per unit, but the leading words whose every unit is done are dropped and counted:
//! a job extended for as long as a run lasts (an MCMC run's term jobs) resolves its units
//! nearly in order, so only the few words around the units still open are kept.

use std::collections::VecDeque;

/// The set of done unit indices of one job.
#[derive(Debug, Default)]
pub(super) struct DoneSet {
    /// Words before `words[0]`, all of whose units are done.
    dropped: u64,
    words: VecDeque<u64>,
}

impl DoneSet {
    /// Makes room for indices below `total`.
    pub(super) fn cover(&mut self, total: u64) {
        let needed = total.div_ceil(64);
        while self.dropped + (self.words.len() as u64) < needed {
            self.words.push_back(0);
        }
    }

    pub(super) fn contains(&self, index: u64) -> bool {
        let word = index / 64;
        match word.checked_sub(self.dropped) {
            None => true,
            Some(k) => self
                .words
                .get(k as usize)
                .is_some_and(|w| w & (1 << (index % 64)) != 0),
        }
    }

    /// Marks `index` done (it must be covered and not yet done).
    pub(super) fn insert(&mut self, index: u64) {
        let k = (index / 64 - self.dropped) as usize;
        self.words[k] |= 1 << (index % 64);
        while self.words.front() == Some(&u64::MAX) {
            self.words.pop_front();
            self.dropped += 1;
        }
    }

    /// Units done, for the invariant checks.
    #[cfg(any(test, feature = "harness"))]
    pub(super) fn count(&self) -> u64 {
        self.dropped * 64
            + self
                .words
                .iter()
                .map(|w| u64::from(w.count_ones()))
                .sum::<u64>()
    }

    /// Indices covered, for the invariant checks.
    #[cfg(any(test, feature = "harness"))]
    pub(super) fn covered(&self) -> u64 {
        (self.dropped + self.words.len() as u64) * 64
    }

    /// Words kept in memory.
    #[cfg(test)]
    pub(super) fn words_kept(&self) -> usize {
        self.words.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_units_in_order_leave_only_the_open_edge_in_memory() {
        let mut done = DoneSet::default();
        done.cover(1_000_000);
        // Resolved in order, one unit lagging behind by up to 500.
        for index in 0..1_000_000u64 {
            if index >= 500 {
                done.insert(index - 500);
            }
            assert!(done.words_kept() <= 1_000_000 / 64 + 1);
        }
        assert!(done.contains(0) && done.contains(999_499) && !done.contains(999_500));
        assert_eq!(done.count(), 999_500);
        assert!(done.words_kept() <= 1_000_000 / 64 - 999_000 / 64 + 1);
        assert_eq!(done.covered(), 1_000_000u64.div_ceil(64) * 64);
        // Out of order: a hole keeps its word and all after it.
        let mut holes = DoneSet::default();
        holes.cover(1000);
        for index in (0..1000).filter(|&i| i != 70) {
            holes.insert(index);
        }
        assert!(!holes.contains(70) && holes.contains(69) && holes.contains(999));
        assert_eq!(holes.words_kept(), 1000usize.div_ceil(64) - 1);
        holes.insert(70);
        assert_eq!(holes.words_kept(), 1, "the last word is not full");
    }
}
