//! Batch sizing: how many units go in one message, and how many a worker may hold.
//!
//! Adaptive batching measures how fast each worker evaluates units of each job type on one
//! slot, from the `elapsed_us` its results report (the time their units took where they ran:
//! one chunk on one thread for ganger's workers), and sizes batches so that one carries about
//! `target_ms` of work for all the worker's slots: trivial units travel by the thousand, slow
//! ones a slot's worth at a time. A worker holds what its slots are running plus about
//! `in_flight_ms` more, or two batches, whichever is more: enough that it never waits for work,
//! so little that an expensive unit is never stuck behind another on a busy worker while a slot
//! elsewhere is free.

/// How the scheduler sizes batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Batching {
    /// Size batches to carry about `target_ms` milliseconds of work each (the default: 5 ms).
    Adaptive {
        /// Work per batch, milliseconds.
        target_ms: f64,
    },
    /// Always this many units per batch (when that many are queued).
    Fixed(u32),
}

impl Default for Batching {
    fn default() -> Self {
        Batching::Adaptive { target_ms: 5.0 }
    }
}

impl Batching {
    /// Units in the next batch for a worker with `slots` slots and measured `rate`.
    pub(super) fn batch_size(&self, rate: Option<Rate>, slots: u32, max_units: u32) -> u32 {
        match *self {
            Batching::Fixed(n) => n.clamp(1, max_units),
            // Before a measurement, one unit per slot: a slow task must not be over-committed.
            // Batches at most double from the largest so far (a slow start): the first units'
            // speed says little about the rest, which may cost far more.
            Batching::Adaptive { target_ms } => match rate {
                None => slots.clamp(1, max_units),
                Some(rate) => {
                    let units = rate.units_per_sec * f64::from(slots) * target_ms / 1000.0;
                    let ramp = 2 * u64::from(rate.largest_batch.max(slots));
                    (units.ceil() as u64).clamp(1, u64::from(max_units).min(ramp)) as u32
                }
            },
        }
    }

    /// Most units to have leased to a worker at once (before its advertised capacity caps it):
    /// what its slots run plus as much again or `in_flight_ms` of work if more, or two batches;
    /// with adaptive batching and no measurement yet, what its slots run.
    pub(super) fn in_flight_limit(
        &self,
        rate: Option<Rate>,
        batch_size: u32,
        slots: u32,
        in_flight_ms: u64,
    ) -> u64 {
        let slots = u64::from(slots);
        let two_batches = 2 * u64::from(batch_size);
        let queued =
            |rate: Rate| (rate.units_per_sec * slots as f64 * in_flight_ms as f64 / 1000.0) as u64;
        match (self, rate) {
            (Batching::Fixed(_), rate) => two_batches.max(2 * slots).max(rate.map_or(0, queued)),
            (Batching::Adaptive { .. }, None) => slots.max(u64::from(batch_size)),
            // One unit waiting for each slot at least: when units of equal cost all finish at
            // once, every slot starts its next one without waiting for the delegator.
            // Time-based, but no faster than batches grow: the first units' speed may not last.
            (Batching::Adaptive { .. }, Some(rate)) => {
                let ramp = 2 * u64::from(rate.largest_batch).max(slots);
                two_batches.max(slots + queued(rate).min(ramp).max(slots))
            }
        }
    }

    /// Whether batches are cut to a share of the queue (adaptive batching) or keep the size
    /// asked for (fixed).
    pub(super) fn shares_the_queue(&self) -> bool {
        matches!(self, Batching::Adaptive { .. })
    }
}

/// A worker's measured speed on one job type: units per second on one slot; and the largest
/// batch of that type it has been sent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct Rate {
    pub(super) units_per_sec: f64,
    pub(super) largest_batch: u32,
}

impl Rate {
    /// Folds in a batch of `n` units that took `elapsed_us` (exponentially weighted, so the
    /// estimate follows a task whose cost drifts).
    pub(super) fn observe(&mut self, n: u64, elapsed_us: u64) {
        // A worker that does not report its time gives no sample.
        if n == 0 || elapsed_us == 0 {
            return;
        }
        let sample = n as f64 * 1e6 / elapsed_us as f64;
        self.units_per_sec = if self.units_per_sec == 0.0 {
            sample
        } else {
            0.7 * self.units_per_sec + 0.3 * sample
        };
    }
}
