//! Evaluation: batches handed to the pool or, when tiny, evaluated on the session thread, and
//! their results taken back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::compute::{Batch, Finished};

use super::Session;

/// A group of batches expected to take less than this many microseconds is evaluated on the
/// session thread: handing it to the pool and its results back costs two thread wake-ups.
pub(super) const INLINE_US: f64 = 25.0;

/// ... and holds at most this many units (a unit of a job type not measured yet may be slow).
pub(super) const INLINE_MAX_UNITS: usize = 64;

/// The last measured time of a unit on one thread, microseconds.
fn unit_us(cell: &AtomicU64) -> f64 {
    f64::from_bits(cell.load(Ordering::Relaxed))
}

impl Session {
    /// Hands queued batches to the pool while it has idle threads.
    pub(super) fn dispatch(&mut self) {
        let threads = self.config.threads;
        while self.running_units < threads && !self.pending.is_empty() {
            // Slow units go out a slot's worth at a time; trivial ones in big gulps, so that a
            // stream of one-unit batches does not cost a pool hand-off each.
            let greedy = unit_us(&self.unit_us) / (threads as f64) < 50.0;
            let want = if greedy {
                threads.max(4096)
            } else {
                threads - self.running_units
            };
            let mut group = Vec::new();
            let mut units = 0;
            while let Some(batch) = self.pending.front() {
                if !group.is_empty() && units + batch.n_units > want {
                    break;
                }
                units += batch.n_units;
                group.extend(self.pending.pop_front());
            }
            self.running_units += units;
            if greedy
                && units <= INLINE_MAX_UNITS
                && units as f64 * unit_us(&self.unit_us) < INLINE_US
            {
                // A few microseconds of work: cheaper here than two hand-offs through the pool.
                // What is left once they are spent (a costlier unit than measured) goes on.
                match self.evaluate_here(group) {
                    None => return,
                    Some(rest) => group = rest,
                }
            }
            if !group.is_empty() {
                self.spawn_group(group);
            }
        }
    }

    /// Evaluates batches of `group` on this thread while they stay within [`INLINE_US`];
    /// returns those not started (`None` if the session had to start over).
    fn evaluate_here(&mut self, group: Vec<Batch>) -> Option<Vec<Batch>> {
        let started = Instant::now();
        let mut done = 0;
        let mut group = group.into_iter();
        for batch in group.by_ref() {
            done += batch.n_units;
            let finished = self.evaluator.evaluate_here(&batch);
            if !self.take_finished(finished) {
                return None;
            }
            if started.elapsed().as_secs_f64() * 1e6 >= INLINE_US {
                break;
            }
        }
        let per_unit = started.elapsed().as_secs_f64() * 1e6 / done.max(1) as f64;
        self.unit_us.store(per_unit.to_bits(), Ordering::Relaxed);
        Some(group.collect())
    }

    /// Hands a group to the pool; it records what a unit cost on one thread.
    fn spawn_group(&mut self, group: Vec<Batch>) {
        let units: usize = group.iter().map(|b| b.n_units).sum();
        let parallel = units.clamp(1, self.config.threads);
        let evaluator = self.evaluator.clone();
        let unit_us = self.unit_us.clone();
        self.pool.spawn(move || {
            // From when the pool starts it: the wait for a pool thread to wake is no part of a
            // unit's cost, and counting it would keep cheap units off the session thread.
            let started = Instant::now();
            evaluator.run_group(group);
            // Wall time × threads used ÷ units: a unit's cost on one thread (an upper bound),
            // which is what evaluating on the session thread would take.
            let per_unit =
                started.elapsed().as_secs_f64() * 1e6 * parallel as f64 / units.max(1) as f64;
            unit_us.store(per_unit.to_bits(), Ordering::Relaxed);
        });
    }

    pub(super) fn collect_finished(&mut self) {
        while let Ok(finished) = self.finished_rx.try_recv() {
            if !self.take_finished(finished) {
                return;
            }
        }
    }

    /// Queues a finished chunk's results; false if the session had to start over.
    fn take_finished(&mut self, finished: Finished) -> bool {
        if finished.generation != self.generation {
            return true;
        }
        if finished.malformed {
            // Its units can be neither evaluated nor named; registering again makes the
            // delegator requeue everything this worker held.
            self.malformed("a work frame's units could not be decoded");
            self.restart_session();
            return false;
        }
        self.running_units -= finished.n_units;
        self.summary.units_done += finished.n_units as u64;
        self.summary.unit_errors += finished.errors as u64;
        if let Some(problem) = finished.last_error {
            self.status
                .update(|board| board.error(problem, Instant::now()));
        }
        for frame in finished.frames {
            let frame = self.seal(frame);
            self.outbox.push_back(frame);
        }
        true
    }
}
