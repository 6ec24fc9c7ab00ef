//! The scheduler's settings and their defaults.

use super::Batching;

/// Scheduler settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// Heartbeat interval, milliseconds; default 1000.
    pub heartbeat_ms: u64,
    /// A worker silent for this long is dropped and its units requeued, milliseconds; default 5000.
    pub timeout_ms: u64,
    /// Evaluations of a unit that may fail before it is reported failed; default 3.
    pub max_attempts: u32,
    /// How many units go in one batch; default adaptive.
    pub batching: Batching,
    /// Most units in one batch; default 65536.
    pub max_batch_units: u32,
    /// Most payload bytes in one batch (keeps frames under the size limit); default 4 MiB, a
    /// quarter of the default `max_frame`.
    pub max_batch_bytes: usize,
    /// Work to keep queued at each worker beyond what its slots are running, milliseconds;
    /// default 2 (a refill's round trip, with room to spare; a worker always holds at least
    /// two batches, which is what keeps trivial units flowing).
    pub in_flight_ms: u64,
    /// The largest frame the delegator accepts, bytes (told to workers); default 16 MiB.
    pub max_frame: u64,
    /// Most workers registered at once; a `hello` beyond it is rejected; default 10,000.
    pub max_workers: usize,
    /// Most payload bytes of units queued but not yet leased, across jobs; producers wait
    /// (back-pressure) while more would be queued, bytes; default 1 GiB.
    pub max_queued_bytes: u64,
    /// Re-issue a unit that has run this many times its usual time (and at least 50 ms) to a
    /// worker with an idle slot when nothing else is queued, and take whichever result comes
    /// first; default off. Safe only for tasks whose output is a function of their input and
    /// that have no side effects (a likelihood term: yes; a task that writes a file or sends
    /// a message: no): the slow copy still runs to its end.
    pub straggler_factor: Option<f64>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            heartbeat_ms: 1000,
            timeout_ms: 5000,
            max_attempts: 3,
            batching: Batching::default(),
            max_batch_units: 65_536,
            max_batch_bytes: 4 << 20,
            in_flight_ms: 2,
            max_frame: 16 << 20,
            max_workers: 10_000,
            max_queued_bytes: 1 << 30,
            straggler_factor: None,
        }
    }
}
