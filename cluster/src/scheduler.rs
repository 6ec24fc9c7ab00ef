//! The scheduler: which unit goes to which worker, and what happens when things go wrong.
//!
//! A plain state machine with no sockets, threads or clocks.
//! The delegator's event loop feeds it events (a worker said hello, results arrived, a job was
//! submitted) stamped with a logical time in milliseconds, calls [`Scheduler::tick`] and
//! [`Scheduler::fill`], and carries out the [`Action`]s it drains from it.
//!
//! Invariants:
//! - a unit is leased to at most one worker at a time, and its outcome is delivered at most once
//!   (late or duplicate results are counted and dropped);
//! - a worker never holds more leased units than the capacity it advertised;
//! - the units of a worker that leaves, falls silent or misbehaves go back to the front of their
//!   job's queue without costing them an attempt;
//! - a unit whose task fails is retried, on another worker when one serves its job type, until it
//!   has failed `max_attempts` times, and is then delivered as failed with every error message.

mod action;
mod batching;
mod config;
mod done;
mod fill;
mod ids;
#[cfg(any(test, feature = "harness"))]
mod invariants;
mod jobs;
mod lease;
mod queue;
mod results;
mod stats;
mod stragglers;
#[cfg(test)]
mod tests;
mod unit;
mod workers;

use std::collections::{HashMap, HashSet};

use rustc_hash::FxHashMap;

pub use action::Action;
pub use batching::Batching;
pub use config::SchedulerConfig;
pub use ids::{
    numbered_units, split_unit_id, unit_id, BatchId, JobId, Millis, WorkerId, INDEX_BITS,
};
pub use stats::{Counters, WorkerInfo};
pub use unit::{Outcome, Unit, UnitFailure};

use jobs::Job;
use lease::Lease;
use results::RetryState;
use workers::Worker;

/// The scheduler. See the module documentation.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    job_types: Vec<String>,
    job_type_ids: HashMap<String, u32>,
    workers: FxHashMap<WorkerId, Worker>,
    /// Worker ids in registration order, for round-robin filling.
    worker_order: Vec<WorkerId>,
    next_worker: WorkerId,
    jobs: FxHashMap<JobId, Job>,
    /// Job ids by priority (highest first), then submission order.
    job_order: Vec<JobId>,
    next_job: JobId,
    leases: FxHashMap<BatchId, Lease>,
    next_batch: BatchId,
    retries: FxHashMap<u64, RetryState>,
    actions: Vec<Action>,
    counters: Counters,
    /// Payload bytes of units queued but not leased, across jobs: the memory a producer's
    /// back-pressure bounds.
    queued_bytes: u64,
    /// Where the next fill starts its passes over the workers.
    fill_start: usize,
    /// Units leased a second time, as stragglers, and not yet resolved.
    reissued: HashSet<u64>,
    /// Batch groups by name (see [`Scheduler::set_group`]).
    groups: HashMap<String, u32>,
}

impl Scheduler {
    /// A scheduler with no workers and no jobs.
    pub fn new(config: SchedulerConfig) -> Self {
        Scheduler {
            config,
            job_types: Vec::new(),
            job_type_ids: HashMap::new(),
            workers: FxHashMap::default(),
            worker_order: Vec::new(),
            next_worker: 1,
            jobs: FxHashMap::default(),
            job_order: Vec::new(),
            next_job: 1,
            leases: FxHashMap::default(),
            next_batch: 1,
            retries: FxHashMap::default(),
            actions: Vec::new(),
            counters: Counters::default(),
            queued_bytes: 0,
            fill_start: 0,
            reissued: HashSet::new(),
            groups: HashMap::new(),
        }
    }

    /// The settings this scheduler runs with.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Takes the actions accumulated since the last call.
    pub fn drain_actions(&mut self) -> std::vec::Drain<'_, Action> {
        self.actions.drain(..)
    }
}
