//! What the scheduler shows of itself: counters, registered workers and queue depths, for
//! logs, status pages and tests.

use std::collections::HashMap;

use super::{Millis, Scheduler, WorkerId};

/// Counters for logs, status pages and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    /// Units submitted.
    pub submitted: u64,
    /// Units delivered with an output.
    pub completed: u64,
    /// Units delivered as failed after their last attempt.
    pub failed: u64,
    /// Unit evaluations that failed and were retried.
    pub retried: u64,
    /// Units taken back from workers that left or fell silent, and queued again.
    pub requeued: u64,
    /// Results for units already resolved, dropped.
    pub duplicates: u64,
    /// Results for leases that had ended but whose unit was still open, accepted.
    pub late_accepted: u64,
    /// Batches sent.
    pub batches: u64,
    /// Workers lost to a timeout.
    pub timeouts: u64,
    /// Hellos refused because `max_workers` workers were registered.
    #[serde(default)]
    pub workers_refused: u64,
    /// Workers lost because their connection closed (a send to them found no peer).
    #[serde(default)]
    pub disconnects: u64,
    /// Units of slow leases given to a second worker (see `SchedulerConfig::straggler_factor`).
    #[serde(default)]
    pub reissued: u64,
}

/// A registered worker, as the status API shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerInfo {
    /// Its id.
    pub id: WorkerId,
    /// The name it gave.
    pub name: String,
    /// The host it gave.
    pub host: String,
    /// The job types it serves.
    pub job_types: Vec<String>,
    /// Units it evaluates at once.
    pub slots: u32,
    /// Units leased to it now.
    pub in_flight: u64,
    /// Units it has returned results for.
    pub units_done: u64,
    /// Units it returned errors for.
    pub errors: u64,
    /// When it was last heard from.
    pub last_seen: Millis,
    /// When it registered.
    pub registered: Millis,
    /// Evaluation time its results reported, summed, microseconds: its slots' busy time.
    pub busy_us: u64,
    /// The last errors its units failed with, oldest first: at most [`LAST_ERRORS`], each cut
    /// to [`ERROR_CHARS`] characters (what an operator needs to see why a worker fails).
    pub last_errors: Vec<String>,
}

/// Errors kept per worker in [`WorkerInfo::last_errors`].
pub const LAST_ERRORS: usize = 3;
/// Characters kept of each error in [`WorkerInfo::last_errors`].
pub const ERROR_CHARS: usize = 300;

impl WorkerInfo {
    /// Remembers `error` as the newest of [`last_errors`](Self::last_errors).
    pub fn note_error(&mut self, error: &str) {
        if self.last_errors.len() == LAST_ERRORS {
            self.last_errors.remove(0);
        }
        let mut kept: String = error.chars().take(ERROR_CHARS).collect();
        if kept.len() < error.len() {
            kept.push('…');
        }
        self.last_errors.push(kept);
    }

    /// The share of its slots' time spent evaluating since it registered, up to `now` (0 to
    /// 1; what its results report, so a worker that reports no times shows 0).
    pub fn utilisation(&self, now: Millis) -> f64 {
        let capacity_us =
            now.saturating_sub(self.registered) as f64 * 1000.0 * f64::from(self.slots);
        if capacity_us <= 0.0 {
            return 0.0;
        }
        (self.busy_us as f64 / capacity_us).min(1.0)
    }
}

impl Scheduler {
    /// Counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Registered workers.
    pub fn workers(&self) -> impl Iterator<Item = &WorkerInfo> {
        self.worker_order
            .iter()
            .filter_map(|id| self.workers.get(id).map(|w| &w.info))
    }

    /// Queued units per job type that no registered worker serves, sorted by job type.
    pub fn unserved(&self) -> Vec<(String, u64)> {
        let mut waiting: HashMap<u32, u64> = HashMap::new();
        for job in self.jobs.values() {
            let served = self
                .workers
                .values()
                .any(|w| w.serves[job.job_type as usize]);
            let queued = (job.queue.len() + job.retry.len()) as u64;
            if !served && queued > 0 {
                *waiting.entry(job.job_type).or_default() += queued;
            }
        }
        let mut waiting: Vec<_> = waiting
            .into_iter()
            .map(|(t, n)| (self.job_types[t as usize].clone(), n))
            .collect();
        waiting.sort();
        waiting
    }

    /// Units queued (not leased) per job type.
    pub fn queue_depths(&self) -> Vec<(String, u64)> {
        let mut depths = vec![0u64; self.job_types.len()];
        for job in self.jobs.values() {
            depths[job.job_type as usize] += (job.queue.len() + job.retry.len()) as u64;
        }
        self.job_types.iter().cloned().zip(depths).collect()
    }

    /// Number of jobs not yet done.
    pub fn open_jobs(&self) -> usize {
        self.jobs.len()
    }

    /// Payload bytes of the units queued and not leased, across jobs (units resolved while
    /// queued, by a late result, count until they are skipped at the front of the queue).
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_keeps_its_last_errors_cut_to_size() {
        let mut info = WorkerInfo::default();
        for i in 0..5 {
            info.note_error(&format!("error {i}"));
        }
        assert_eq!(info.last_errors, ["error 2", "error 3", "error 4"]);
        let long = "é".repeat(ERROR_CHARS + 10);
        info.note_error(&long);
        let kept = info.last_errors.last().unwrap();
        assert_eq!(kept.chars().count(), ERROR_CHARS + 1);
        assert!(kept.ends_with('…'));
        info.note_error("short");
        assert_eq!(info.last_errors.last().unwrap(), "short");
    }
}
