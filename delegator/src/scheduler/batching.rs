//! Batch sizing: how many units go in one message, and how many a worker may hold.
//!
//! Adaptive batching measures each worker's throughput per job type from the `elapsed_us` its
//! results report, and sizes batches so that one carries about `target_ms` of that worker's work:
//! trivial units travel by the thousand, slow ones one at a time.

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
            Batching::Adaptive { target_ms } => match rate {
                None => slots.clamp(1, max_units),
                Some(rate) => {
                    let units = rate.units_per_sec * target_ms / 1000.0;
                    (units.ceil() as u64).clamp(1, u64::from(max_units)) as u32
                }
            },
        }
    }

    /// Most units to have leased to a worker at once (before its advertised capacity caps it):
    /// enough that it never waits for the next batch, not so many that it hoards slow units.
    pub(super) fn in_flight_limit(
        &self,
        rate: Option<Rate>,
        batch_size: u32,
        slots: u32,
        in_flight_ms: u64,
    ) -> u64 {
        let pipelined = 2 * u64::from(batch_size.max(slots));
        let by_time = rate.map_or(0, |r| {
            (r.units_per_sec * in_flight_ms as f64 / 1000.0) as u64
        });
        pipelined.max(by_time)
    }
}

/// A worker's measured throughput on one job type.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct Rate {
    pub(super) units_per_sec: f64,
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
