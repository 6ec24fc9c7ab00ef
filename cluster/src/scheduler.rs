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

mod batching;
mod done;
mod queue;
mod stragglers;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};

use rustc_hash::FxHashMap;

use ganger_core::payload::Payload;
use ganger_core::protocol::{
    job_type_matches, Goodbye, Hello, Results, Welcome, WorkEncoder, PROTOCOL_VERSION,
};

pub use batching::Batching;
use batching::Rate;
use done::DoneSet;
use queue::UnitQueue;

/// Identifies a registered worker for the lifetime of its registration.
pub type WorkerId = u64;
/// Identifies a job.
pub type JobId = u32;
/// Identifies a batch of units leased to one worker.
pub type BatchId = u64;
/// Logical time in milliseconds, supplied by the caller.
pub type Millis = u64;

/// The least work, in milliseconds of a worker's slots, that a share of the queue holds when
/// there is that much (see [`Scheduler::fill`]): a message carrying less would cost more than
/// its units.
const MIN_SHARE_MS: f64 = 0.5;

/// A unit id is its job id in the high bits and its index within the job in the low ones.
pub const INDEX_BITS: u32 = 40;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;

/// The unit id of input `index` of `job`.
pub fn unit_id(job: JobId, index: u64) -> u64 {
    (u64::from(job) << INDEX_BITS) | (index & INDEX_MASK)
}

/// Units for `payloads`, numbered from index `first` of `job`.
pub fn numbered_units(
    job: JobId,
    first: u64,
    payloads: impl IntoIterator<Item = Payload>,
) -> Vec<Unit> {
    payloads
        .into_iter()
        .zip(first..)
        .map(|(payload, index)| Unit {
            id: unit_id(job, index),
            payload,
        })
        .collect()
}

/// The job and index a unit id stands for.
pub fn split_unit_id(id: u64) -> (JobId, u64) {
    ((id >> INDEX_BITS) as JobId, id & INDEX_MASK)
}

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

/// A unit waiting in a queue or leased to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// See [`unit_id`].
    pub id: u64,
    /// The task's input.
    pub payload: Payload,
}

/// Why a unit was given up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFailure {
    /// The error of every attempt, oldest first.
    pub errors: Vec<String>,
}

impl std::fmt::Display for UnitFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failed {} time(s): ", self.errors.len())?;
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "[{}] {error}", i + 1)?;
        }
        Ok(())
    }
}

/// The outcome of one unit, as delivered to its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The unit's index within its job (the position of its input).
    pub index: u64,
    /// The task's output, or why the unit failed.
    pub result: Result<Payload, UnitFailure>,
}

/// What the scheduler asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send batch `batch` (encode it with [`Scheduler::encode_work`]) to `worker`.
    SendWork {
        /// The destination.
        worker: WorkerId,
        /// The batch.
        batch: BatchId,
    },
    /// Send a heartbeat to `worker`.
    SendHeartbeat(WorkerId),
    /// The worker is no longer registered: forget its address, and tell it `Reset` if it may
    /// still be listening.
    Forget {
        /// The worker.
        worker: WorkerId,
        /// Why, for the log and the `Reset` message.
        reason: String,
    },
    /// Hand these outcomes to the job's owner.
    Deliver {
        /// The job.
        job: JobId,
        /// Outcomes, each unit's exactly once over the job's life.
        outcomes: Vec<Outcome>,
    },
    /// Every unit of this sealed job has an outcome; it has been forgotten.
    JobDone(JobId),
}

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
#[derive(Debug, Clone, PartialEq)]
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
}

impl WorkerInfo {
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

/// What adaptive batching measures a worker's speed for: a job type, or a batch group (ids from
/// here up), whose job types travel together and count as one kind of work.
const GROUP_KINDS: u32 = 1 << 31;

#[derive(Debug)]
struct Worker {
    info: WorkerInfo,
    serves: Vec<bool>,
    capacity: u64,
    last_sent: Millis,
    leaving: bool,
    rates: HashMap<u32, Rate>,
}

#[derive(Debug)]
struct Job {
    priority: i32,
    job_type: u32,
    /// Its batch group, if any.
    group: Option<u32>,
    /// Units submitted so far; indices run from 0 to this.
    total: u64,
    sealed: bool,
    resolved: u64,
    done: DoneSet,
    queue: UnitQueue,
    retry: VecDeque<Unit>,
}

impl Job {
    /// What its units' speed is measured as: its batch group, or else its job type.
    fn kind(&self) -> u32 {
        self.group.unwrap_or(self.job_type)
    }
}

#[derive(Debug)]
struct Lease {
    worker: WorkerId,
    /// The kind of work its time measures (a job type or a batch group).
    kind: u32,
    /// Each unit's job type, by position.
    types: Vec<u32>,
    /// When it was sent.
    sent_at: Millis,
    units: Vec<Option<Unit>>,
    /// Total payload size, to size the work frame in one allocation.
    payload_bytes: usize,
    outstanding: usize,
    /// Where the next result is expected: workers answer in order, so lookups are O(1).
    cursor: usize,
}

#[derive(Debug, Default)]
struct RetryState {
    errors: Vec<String>,
    tried: Vec<WorkerId>,
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

    /// Counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Takes the actions accumulated since the last call.
    pub fn drain_actions(&mut self) -> std::vec::Drain<'_, Action> {
        self.actions.drain(..)
    }

    /// Registers a worker, or says why not (the reason goes into a `Reject`).
    pub fn hello(&mut self, now: Millis, hello: &Hello) -> Result<Welcome, String> {
        if hello.protocol != PROTOCOL_VERSION {
            return Err(format!(
                "protocol version mismatch: worker speaks version {}, this delegator speaks version {}",
                hello.protocol, PROTOCOL_VERSION
            ));
        }
        if hello.job_types.is_empty() {
            return Err("the worker serves no job types".to_owned());
        }
        if self.workers.len() >= self.config.max_workers {
            self.counters.workers_refused += 1;
            return Err(format!(
                "worker limit reached: {} workers are registered, the most this delegator \
                 accepts (--max-workers)",
                self.workers.len()
            ));
        }
        let id = self.next_worker;
        self.next_worker += 1;
        let serves = self
            .job_types
            .iter()
            .map(|name| hello.job_types.iter().any(|d| job_type_matches(d, name)))
            .collect();
        self.workers.insert(
            id,
            Worker {
                info: WorkerInfo {
                    id,
                    name: hello.name.clone(),
                    host: hello.host.clone(),
                    job_types: hello.job_types.clone(),
                    slots: hello.slots.max(1),
                    in_flight: 0,
                    units_done: 0,
                    errors: 0,
                    last_seen: now,
                    registered: now,
                    busy_us: 0,
                },
                serves,
                capacity: hello.capacity(),
                last_sent: now,
                leaving: false,
                rates: HashMap::new(),
            },
        );
        self.worker_order.push(id);
        Ok(Welcome {
            worker_id: id,
            heartbeat_ms: self.config.heartbeat_ms,
            timeout_ms: self.config.timeout_ms,
            max_frame: self.config.max_frame,
        })
    }

    /// Whether `worker` is registered.
    pub fn has_worker(&self, worker: WorkerId) -> bool {
        self.workers.contains_key(&worker)
    }

    /// Notes that `worker` sent something (any message keeps it alive).
    pub fn heard_from(&mut self, now: Millis, worker: WorkerId) {
        if let Some(w) = self.workers.get_mut(&worker) {
            w.info.last_seen = now;
        }
    }

    /// Takes results from `worker`.
    pub fn results(&mut self, now: Millis, worker: WorkerId, results: &Results<'_>) {
        self.heard_from(now, worker);
        let mut deliveries = Deliveries::expecting(results.results.len());
        // Only the lease's holder may take it out of the table: results naming another
        // worker's batch are late or bogus, and must not end that worker's lease.
        let mut lease = match self.leases.get(&results.batch) {
            Some(l) if l.worker == worker => self.leases.remove(&results.batch),
            _ => None,
        };
        let (mut answered, mut errors) = (0u64, 0u64);
        for result in &results.results {
            let taken = lease.as_mut().and_then(|l| l.take(result.id));
            let Some(unit) = taken else {
                self.late_result(result.id, result.outcome, &mut deliveries);
                continue;
            };
            answered += 1;
            match result.outcome {
                Ok(output) => {
                    self.resolve(unit.id, Ok(Payload::from_slice(output)), &mut deliveries)
                }
                Err(error) => {
                    errors += 1;
                    self.unit_failed(worker, unit, error, &mut deliveries)
                }
            }
        }
        if let Some(w) = self.workers.get_mut(&worker) {
            w.info.in_flight -= answered;
            w.info.units_done += answered;
            w.info.errors += errors;
            w.info.busy_us += results.elapsed_us;
            if let Some(lease) = &lease {
                w.rates
                    .entry(lease.kind)
                    .or_default()
                    .observe(answered, results.elapsed_us);
            }
        }
        if let Some(lease) = lease.filter(|l| l.outstanding > 0) {
            self.leases.insert(results.batch, lease);
        }
        self.flush_deliveries(deliveries);
        self.forget_if_drained(worker);
    }

    /// Takes a worker's farewell: its returned units are queued again at once.
    pub fn goodbye(&mut self, now: Millis, worker: WorkerId, goodbye: &Goodbye) {
        self.heard_from(now, worker);
        let Some(w) = self.workers.get_mut(&worker) else {
            return;
        };
        w.leaving = true;
        let returned: HashSet<u64> = goodbye.returned.iter().copied().collect();
        let mut units = Vec::new();
        self.leases.retain(|_, lease| {
            if lease.worker == worker {
                units.extend(lease.take_all(|id| returned.contains(&id)));
            }
            lease.outstanding > 0
        });
        // Handed back, whether requeued or left to another copy.
        let n = units.len() as u64;
        self.leave_to_other_copies(&mut units);
        self.counters.requeued += units.len() as u64;
        self.requeue(units);
        if let Some(w) = self.workers.get_mut(&worker) {
            w.info.in_flight -= n;
        }
        self.forget_if_drained(worker);
    }

    /// Drops a worker (it disconnected or broke the protocol) and requeues its units.
    pub fn worker_lost(&mut self, worker: WorkerId, reason: &str) {
        let Some(w) = self.workers.remove(&worker) else {
            return;
        };
        self.worker_order.retain(|&id| id != worker);
        if w.info.in_flight > 0 {
            let mut units = Vec::new();
            self.leases.retain(|_, lease| {
                if lease.worker == worker {
                    units.extend(lease.units.drain(..).flatten());
                    return false;
                }
                true
            });
            self.leave_to_other_copies(&mut units);
            self.counters.requeued += units.len() as u64;
            self.requeue(units);
        }
        self.actions.push(Action::Forget {
            worker,
            reason: reason.to_owned(),
        });
    }

    /// Drops a worker whose connection closed (its process died or it disconnected) and
    /// requeues its units; counted in [`Counters::disconnects`].
    pub fn worker_disconnected(&mut self, worker: WorkerId) {
        if self.workers.contains_key(&worker) {
            self.counters.disconnects += 1;
            self.worker_lost(worker, "connection closed");
        }
    }

    /// Expires silent workers and schedules heartbeats to idle ones.
    pub fn tick(&mut self, now: Millis) {
        let mut expired = Vec::new();
        for (&id, w) in &mut self.workers {
            if now.saturating_sub(w.info.last_seen) > self.config.timeout_ms {
                expired.push(id);
            } else if now.saturating_sub(w.last_sent) >= self.config.heartbeat_ms {
                w.last_sent = now;
                self.actions.push(Action::SendHeartbeat(id));
            }
        }
        for id in expired {
            self.counters.timeouts += 1;
            let reason = format!("silent for more than {} ms", self.config.timeout_ms);
            self.worker_lost(id, &reason);
        }
    }

    /// Submits a job of `job_type` with the given priority (higher runs first).
    /// Units are added with [`Scheduler::extend`]; the job ends once [`Scheduler::seal`]ed and
    /// every unit has an outcome.
    pub fn submit(&mut self, job_type: &str, priority: i32) -> JobId {
        let id = self.next_job;
        self.next_job += 1;
        let job_type = self.intern(job_type);
        self.jobs.insert(
            id,
            Job {
                priority,
                job_type,
                group: None,
                total: 0,
                sealed: false,
                resolved: 0,
                done: DoneSet::default(),
                queue: UnitQueue::default(),
                retry: VecDeque::new(),
            },
        );
        let position = self
            .job_order
            .partition_point(|other| self.jobs.get(other).is_some_and(|o| o.priority >= priority));
        self.job_order.insert(position, id);
        id
    }

    /// Puts `job` in the batch group `group`: a worker that serves several job types of one
    /// group gets their units in the same `work` message, and adaptive batching measures the
    /// group's units as one kind of work. For jobs of the same priority whose units cost about
    /// the same and are wanted together, such as the terms of one likelihood, which then cost
    /// one round trip instead of one per term. Call it before adding units.
    pub fn set_group(&mut self, job: JobId, group: &str) {
        let next = GROUP_KINDS + self.groups.len() as u32;
        let id = *self.groups.entry(group.to_owned()).or_insert(next);
        if let Some(job) = self.jobs.get_mut(&job) {
            job.group = Some(id);
        }
    }

    /// Adds inputs to an open job; returns false if the job is unknown or sealed.
    pub fn extend(&mut self, job: JobId, payloads: impl IntoIterator<Item = Payload>) -> bool {
        let Some(j) = self.jobs.get(&job) else {
            return false;
        };
        let units = numbered_units(job, j.total, payloads);
        self.extend_units(job, units)
    }

    /// Adds inputs already numbered with [`numbered_units`] from the job's current total, so that
    /// a caller can do that work on its own thread; returns false if the job is unknown or
    /// sealed, or the numbering does not continue the job's.
    pub fn extend_units(&mut self, job: JobId, units: Vec<Unit>) -> bool {
        let Some(j) = self.jobs.get_mut(&job).filter(|j| !j.sealed) else {
            return false;
        };
        let before = j.total;
        if units.first().is_some_and(|u| u.id != unit_id(job, before)) {
            return false;
        }
        j.total += units.len() as u64;
        self.queued_bytes += payload_bytes(&units);
        j.queue.push_back(units);
        j.done.cover(j.total);
        self.counters.submitted += j.total - before;
        true
    }

    /// Declares that a job will get no more units.
    pub fn seal(&mut self, job: JobId) {
        if let Some(j) = self.jobs.get_mut(&job) {
            j.sealed = true;
        }
        self.finish_if_done(job);
    }

    /// Abandons a job: its queued units are dropped and results for it are ignored.
    pub fn cancel(&mut self, job: JobId) {
        if let Some(j) = self.jobs.remove(&job) {
            self.queued_bytes -= j.queued_bytes();
            self.job_order.retain(|&id| id != job);
            self.retries.retain(|&id, _| split_unit_id(id).0 != job);
        }
    }

    /// Leases queued units to workers with spare capacity: in passes of one batch per worker,
    /// each batch at most a share of what is queued of its job type (half of an even split
    /// between the workers that serve it), so that no worker swallows work others could start,
    /// and the shares shrink as the queue drains (guided self-scheduling), which balances units
    /// of uneven cost. Each fill starts its passes one worker further on.
    pub fn fill(&mut self, now: Millis) {
        let n = self.worker_order.len();
        if n == 0 {
            return;
        }
        let mut queued = self.queued_per_type();
        let start = self.fill_start % n;
        self.fill_start = self.fill_start.wrapping_add(1);
        loop {
            let mut sent = false;
            for k in 0..n {
                let worker = self.worker_order[(start + k) % n];
                if let Some(batch) = self.next_batch_for(worker, &mut queued, now) {
                    self.counters.batches += 1;
                    if let Some(w) = self.workers.get_mut(&worker) {
                        w.last_sent = now;
                    }
                    self.actions.push(Action::SendWork { worker, batch });
                    sent = true;
                }
            }
            if !sent {
                break;
            }
        }
        if self.config.straggler_factor.is_some() {
            self.reissue_stragglers(now, &queued);
        }
    }

    /// Per job type: units queued, and workers that serve it and are not leaving.
    fn queued_per_type(&self) -> Vec<(u64, u64)> {
        let mut counts = vec![(0u64, 0u64); self.job_types.len()];
        for job in self.jobs.values() {
            counts[job.job_type as usize].0 += (job.queue.len() + job.retry.len()) as u64;
        }
        for w in self.workers.values().filter(|w| !w.leaving) {
            for (t, &serves) in w.serves.iter().enumerate() {
                if serves && counts[t].0 > 0 {
                    counts[t].1 += 1;
                }
            }
        }
        counts
    }

    /// Units of batch `batch` still outstanding (0 if there is no such lease).
    pub fn batch_len(&self, batch: BatchId) -> usize {
        self.leases.get(&batch).map_or(0, |l| l.outstanding)
    }

    /// Encodes batch `batch` as a `Work` message into `out`; false if there is no such lease.
    pub fn encode_work(&self, batch: BatchId, out: &mut Vec<u8>) -> bool {
        let Some(lease) = self.leases.get(&batch) else {
            return false;
        };
        let longest = lease
            .types
            .iter()
            .map(|&t| self.job_types[t as usize].len())
            .max()
            .unwrap_or(0);
        // Per unit: array marker, id (at most 9 bytes), job type, bin header (at most 5 bytes).
        out.reserve(32 + lease.outstanding * (16 + longest) + lease.payload_bytes);
        let mut encoder = WorkEncoder::new(out, batch, lease.outstanding as u32);
        for (unit, &t) in lease.units.iter().zip(&lease.types) {
            if let Some(unit) = unit {
                encoder.unit(unit.id, &self.job_types[t as usize], &unit.payload);
            }
        }
        encoder.finish()
    }

    /// The ids of the units currently leased in `batch`.
    pub fn lease_units(&self, batch: BatchId) -> Vec<u64> {
        self.leases.get(&batch).map_or_else(Vec::new, |lease| {
            lease.units.iter().flatten().map(|u| u.id).collect()
        })
    }

    /// The worker holding `batch`, if it is still leased.
    pub fn lease_worker(&self, batch: BatchId) -> Option<WorkerId> {
        self.leases.get(&batch).map(|lease| lease.worker)
    }

    /// Registered workers.
    pub fn workers(&self) -> impl Iterator<Item = &WorkerInfo> {
        self.worker_order
            .iter()
            .filter_map(|id| self.workers.get(id).map(|w| &w.info))
    }

    /// Queued units per job type that no registered worker serves, for the log.
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

    /// Failed attempts recorded for the open unit `id` (0 if none or resolved).
    #[doc(hidden)]
    pub fn attempts(&self, id: u64) -> usize {
        self.retries.get(&id).map_or(0, |r| r.errors.len())
    }

    /// Batches currently leased, by id.
    #[doc(hidden)]
    pub fn leased_batches(&self) -> Vec<BatchId> {
        let mut batches: Vec<BatchId> = self.leases.keys().copied().collect();
        batches.sort_unstable();
        batches
    }

    /// Checks the scheduler's invariants (see the module documentation); the property tests
    /// and fuzz targets call it after every event. O(units), so not for production use.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut seen: HashSet<u64> = HashSet::new();
        let mut in_flight: HashMap<WorkerId, u64> = HashMap::new();
        let mut leased_ids: HashSet<u64> = HashSet::new();
        for (batch, lease) in &self.leases {
            let w = self.workers.get(&lease.worker).ok_or_else(|| {
                format!("batch {batch} is leased to unknown worker {}", lease.worker)
            })?;
            let outstanding = lease.units.iter().flatten().count();
            if outstanding != lease.outstanding || outstanding == 0 {
                return Err(format!(
                    "batch {batch}: {outstanding} units outstanding, lease says {}",
                    lease.outstanding
                ));
            }
            if lease.units.len() > self.config.max_batch_units as usize {
                return Err(format!(
                    "batch {batch} has {} units, over max_batch_units {}",
                    lease.units.len(),
                    self.config.max_batch_units
                ));
            }
            if lease.types.len() != lease.units.len() {
                return Err(format!(
                    "batch {batch} has a job type for {} of its {} units",
                    lease.types.len(),
                    lease.units.len()
                ));
            }
            for (unit, &t) in lease.units.iter().zip(&lease.types) {
                if !w.serves[t as usize] {
                    return Err(format!(
                        "batch {batch} went to a worker that does not serve it"
                    ));
                }
                let owner = unit
                    .as_ref()
                    .and_then(|u| self.jobs.get(&split_unit_id(u.id).0));
                if owner.is_some_and(|job| job.job_type != t) {
                    return Err(format!(
                        "batch {batch} carries a unit under another job type"
                    ));
                }
            }
            *in_flight.entry(lease.worker).or_default() += outstanding as u64;
            for unit in lease.units.iter().flatten() {
                // A re-issued straggler is leased twice until both copies are answered.
                let (job, index) = split_unit_id(unit.id);
                let copy_allowed = self.reissued.contains(&unit.id)
                    || self.jobs.get(&job).is_none_or(|j| j.is_done(index));
                if !seen.insert(unit.id) && !copy_allowed {
                    return Err(format!("unit {:#x} is leased twice", unit.id));
                }
                leased_ids.insert(unit.id);
            }
        }
        if self.worker_order.len() != self.workers.len()
            || self
                .worker_order
                .iter()
                .any(|id| !self.workers.contains_key(id))
        {
            return Err("worker_order and workers disagree".into());
        }
        for (id, w) in &self.workers {
            let held = in_flight.get(id).copied().unwrap_or(0);
            if held != w.info.in_flight {
                return Err(format!(
                    "worker {id} holds {held} units, its in_flight says {}",
                    w.info.in_flight
                ));
            }
            if held > w.capacity {
                return Err(format!(
                    "worker {id} holds {held} units, over its capacity {}",
                    w.capacity
                ));
            }
            if w.serves.len() != self.job_types.len() {
                return Err(format!("worker {id} has a stale job type table"));
            }
        }
        if self.workers.len() > self.config.max_workers {
            return Err(format!(
                "{} workers registered, over max_workers {}",
                self.workers.len(),
                self.config.max_workers
            ));
        }
        if self.job_order.len() != self.jobs.len()
            || self.job_order.iter().any(|id| !self.jobs.contains_key(id))
        {
            return Err("job_order and jobs disagree".into());
        }
        let mut queued_bytes = 0;
        for (&job_id, job) in &self.jobs {
            let queued: Vec<&Unit> = job.queue.iter().chain(&job.retry).collect();
            if queued.len() != job.queue.len() + job.retry.len() {
                return Err(format!("job {job_id}: queue length is off"));
            }
            let mut open: HashSet<u64> = HashSet::new();
            for unit in queued {
                queued_bytes += unit.payload.len() as u64;
                let (j, index) = split_unit_id(unit.id);
                if j != job_id || index >= job.total {
                    return Err(format!("job {job_id} queues foreign unit {:#x}", unit.id));
                }
                if !seen.insert(unit.id) && !self.reissued.contains(&unit.id) {
                    return Err(format!(
                        "unit {:#x} is both queued and leased, or queued twice",
                        unit.id
                    ));
                }
                if !job.is_done(index) {
                    open.insert(index);
                }
            }
            let done = job.done.count();
            if done != job.resolved {
                return Err(format!(
                    "job {job_id}: {done} units done, resolved says {}",
                    job.resolved
                ));
            }
            if (job.total..job.done.covered()).any(|index| job.is_done(index)) {
                return Err(format!("job {job_id}: a unit past its total is done"));
            }
            for index in 0..job.total {
                if job.is_done(index) {
                    continue;
                }
                let id = unit_id(job_id, index);
                let leased = leased_ids.contains(&id);
                if leased == open.contains(&index) && !(leased && self.reissued.contains(&id)) {
                    return Err(format!(
                        "job {job_id} unit {index} is open but {}",
                        if leased {
                            "both queued and leased"
                        } else {
                            "neither queued nor leased"
                        }
                    ));
                }
            }
            if job.sealed && job.resolved == job.total {
                return Err(format!("job {job_id} is finished but still open"));
            }
        }
        if queued_bytes != self.queued_bytes {
            return Err(format!(
                "queued bytes gauge says {}, the queues hold {queued_bytes}",
                self.queued_bytes
            ));
        }
        for (&id, retry) in &self.retries {
            let (job, index) = split_unit_id(id);
            let open = self.jobs.get(&job).is_some_and(|j| !j.is_done(index));
            let n = retry.errors.len();
            if !open || n == 0 || n >= self.config.max_attempts as usize {
                return Err(format!(
                    "retry state of unit {id:#x} with {n} errors, open: {open}"
                ));
            }
        }
        Ok(())
    }

    fn intern(&mut self, job_type: &str) -> u32 {
        if let Some(&id) = self.job_type_ids.get(job_type) {
            return id;
        }
        let id = self.job_types.len() as u32;
        self.job_types.push(job_type.to_owned());
        self.job_type_ids.insert(job_type.to_owned(), id);
        for w in self.workers.values_mut() {
            w.serves.push(
                w.info
                    .job_types
                    .iter()
                    .any(|d| job_type_matches(d, job_type)),
            );
        }
        id
    }

    /// Builds the next batch for `worker`, if it has room and there is work it serves; at
    /// most its share of `queued` (units queued and workers serving, per job type), which it
    /// updates.
    fn next_batch_for(
        &mut self,
        worker: WorkerId,
        queued: &mut [(u64, u64)],
        now: Millis,
    ) -> Option<BatchId> {
        let w = self.workers.get(&worker)?;
        if w.leaving || w.info.in_flight >= w.capacity {
            return None;
        }
        let position = self.job_order.iter().position(|id| {
            self.jobs.get(id).is_some_and(|j| {
                w.serves[j.job_type as usize] && (!j.queue.is_empty() || !j.retry.is_empty())
            })
        })?;
        let lead = &self.jobs[&self.job_order[position]];
        // A group's batch takes only the group's jobs of the lead's priority, so that no unit
        // of a higher-priority job waits behind it.
        let (job_type, kind) = (lead.job_type, lead.kind());
        let mates = lead.group.map(|group| (group, lead.priority));
        let rate = w.rates.get(&kind).copied();
        let batch_size =
            self.config
                .batching
                .batch_size(rate, w.info.slots, self.config.max_batch_units);
        let limit = self.config.batching.in_flight_limit(
            rate,
            batch_size,
            w.info.slots,
            self.config.in_flight_ms,
        );
        let limit = limit.min(w.capacity);
        if w.info.in_flight >= limit {
            return None;
        }
        let room = (limit - w.info.in_flight).min(u64::from(batch_size)) as usize;
        let mut units = Vec::new();
        let mut types = Vec::new();
        let mut payload_bytes = 0;
        // The lead job's type, then, in a group, the group's other job types this worker
        // serves, each at most its share of the queue.
        let mut kinds = vec![job_type];
        if mates.is_some() {
            for id in &self.job_order[position..] {
                let Some(job) = self.jobs.get(id) else {
                    continue;
                };
                if is_mate(job, mates)
                    && w.serves[job.job_type as usize]
                    && !kinds.contains(&job.job_type)
                {
                    kinds.push(job.job_type);
                }
            }
        }
        for t in kinds {
            let share = self.share(worker, rate, queued[t as usize]);
            let take = (room - units.len()).min(share);
            if take == 0 || payload_bytes >= self.config.max_batch_bytes {
                break;
            }
            let (taken, bytes) = self.take_units(worker, t, position, take, payload_bytes, mates);
            let entry = &mut queued[t as usize].0;
            *entry = entry.saturating_sub(taken.len() as u64);
            types.resize(types.len() + taken.len(), t);
            units.extend(taken);
            payload_bytes = bytes;
        }
        if units.is_empty() {
            return None;
        }
        if let Some(w) = self.workers.get_mut(&worker) {
            if let Some(rate) = w.rates.get_mut(&kind) {
                rate.largest_batch = rate.largest_batch.max(units.len() as u32);
            }
        }
        let batch = self.open_lease(worker, (kind, types), now, units, payload_bytes);
        self.workers.contains_key(&worker).then_some(batch)
    }

    /// How many units of a job type `worker` may take in one batch, given its speed `rate` and
    /// `(units queued, workers serving)` of that type: half of an even split, never so few that
    /// the message costs more than their work; unbounded when batching does not share.
    fn share(&self, worker: WorkerId, rate: Option<Rate>, (waiting, serving): (u64, u64)) -> usize {
        if !self.config.batching.shares_the_queue() {
            return usize::MAX;
        }
        let slots = self.workers.get(&worker).map_or(1, |w| w.info.slots);
        // Never a share so small that its message costs more than its work.
        let floor = rate.map_or(1, |r| {
            (r.units_per_sec * f64::from(slots) * MIN_SHARE_MS / 1000.0) as u64
        });
        waiting.div_ceil(2 * serving.max(1)).max(floor).max(1) as usize
    }

    /// Leases `units` to `worker` as a new batch sent at `now`, counted in its units in flight;
    /// `kind` is what the batch's time measures, `types` each unit's job type. Returns the batch.
    fn open_lease(
        &mut self,
        worker: WorkerId,
        (kind, types): (u32, Vec<u32>),
        now: Millis,
        units: Vec<Option<Unit>>,
        payload_bytes: usize,
    ) -> BatchId {
        let batch = self.next_batch;
        self.next_batch += 1;
        let n = units.len();
        self.leases.insert(
            batch,
            Lease {
                worker,
                kind,
                types,
                sent_at: now,
                units,
                payload_bytes,
                outstanding: n,
                cursor: 0,
            },
        );
        if let Some(w) = self.workers.get_mut(&worker) {
            w.info.in_flight += n as u64;
        }
        batch
    }

    /// Takes up to `room` open units of `job_type` (of a group's jobs of one priority only, if
    /// `mates` names them: see [`is_mate`]) from
    /// jobs in priority order, starting at `position`, retries first, while the batch's payload,
    /// `bytes` so far, is under its limit; a retry avoids the worker it last failed on if
    /// another serves. Returns the units and the batch's payload bytes with them.
    fn take_units(
        &mut self,
        worker: WorkerId,
        job_type: u32,
        position: usize,
        room: usize,
        mut bytes: usize,
        mates: Option<(u32, i32)>,
    ) -> (Vec<Option<Unit>>, usize) {
        let other_serves = self
            .workers
            .values()
            .any(|o| o.info.id != worker && !o.leaving && o.serves[job_type as usize]);
        let mut units = Vec::with_capacity(room.min(self.config.max_batch_units as usize));
        for &job_id in &self.job_order[position..] {
            let Some(job) = self.jobs.get_mut(&job_id) else {
                continue;
            };
            if job.job_type != job_type || !is_mate(job, mates) {
                continue;
            }
            let mut skipped = VecDeque::new();
            while units.len() < room && bytes < self.config.max_batch_bytes {
                let Some(unit) = job.retry.pop_front() else {
                    break;
                };
                let avoid = other_serves
                    && self
                        .retries
                        .get(&unit.id)
                        .is_some_and(|r| r.tried.last() == Some(&worker));
                if avoid {
                    skipped.push_back(unit);
                } else {
                    bytes += unit.payload.len();
                    self.queued_bytes -= unit.payload.len() as u64;
                    units.push(Some(unit));
                }
            }
            skipped.append(&mut job.retry);
            job.retry = skipped;
            while units.len() < room && bytes < self.config.max_batch_bytes {
                let Some(unit) = job.queue.pop_front() else {
                    break;
                };
                let (_, index) = split_unit_id(unit.id);
                self.queued_bytes -= unit.payload.len() as u64;
                if job.is_done(index) {
                    continue;
                }
                bytes += unit.payload.len();
                units.push(Some(unit));
            }
            if units.len() >= room || bytes >= self.config.max_batch_bytes {
                break;
            }
        }
        (units, bytes)
    }

    /// Keeps out of `units`, taken back from a worker, the re-issued ones whose other copy is
    /// still leased: they stay with that copy (queued as well, they would be leased a third
    /// time), no longer re-issued.
    fn leave_to_other_copies(&mut self, units: &mut Vec<Unit>) {
        if self.reissued.is_empty() {
            return;
        }
        let held: HashSet<u64> = self
            .leases
            .values()
            .flat_map(|lease| lease.units.iter().flatten())
            .filter(|u| self.reissued.contains(&u.id))
            .map(|u| u.id)
            .collect();
        units.retain(|u| {
            let elsewhere = held.contains(&u.id);
            if elsewhere {
                self.reissued.remove(&u.id);
            }
            !elsewhere
        });
    }

    fn requeue(&mut self, units: Vec<Unit>) {
        let mut by_job: Vec<(JobId, Vec<Unit>)> = Vec::new();
        for unit in units {
            let (job, _) = split_unit_id(unit.id);
            match by_job.iter_mut().find(|(j, _)| *j == job) {
                Some((_, units)) => units.push(unit),
                None => by_job.push((job, vec![unit])),
            }
        }
        for (job, mut units) in by_job {
            if let Some(j) = self.jobs.get_mut(&job) {
                units.retain(|u| !j.is_done(split_unit_id(u.id).1));
                self.queued_bytes += payload_bytes(&units);
                j.queue.push_front(units);
            }
        }
    }

    fn unit_failed(
        &mut self,
        worker: WorkerId,
        unit: Unit,
        error: &str,
        deliveries: &mut Deliveries,
    ) {
        let (job, index) = split_unit_id(unit.id);
        if self.jobs.get(&job).is_none_or(|j| j.is_done(index)) {
            self.counters.duplicates += 1;
            return;
        }
        let retry = self.retries.entry(unit.id).or_default();
        retry.errors.push(error.to_owned());
        retry.tried.push(worker);
        if retry.errors.len() as u32 >= self.config.max_attempts {
            let errors = self
                .retries
                .remove(&unit.id)
                .map(|r| r.errors)
                .unwrap_or_default();
            self.resolve(unit.id, Err(UnitFailure { errors }), deliveries);
        } else if let Some(j) = self.jobs.get_mut(&job) {
            self.counters.retried += 1;
            self.queued_bytes += unit.payload.len() as u64;
            j.retry.push_back(unit);
        }
    }

    /// A result whose lease has ended: accept it if the unit is still open.
    fn late_result(&mut self, id: u64, outcome: Result<&[u8], &str>, deliveries: &mut Deliveries) {
        let (job, index) = split_unit_id(id);
        let open = self
            .jobs
            .get(&job)
            .is_some_and(|j| index < j.total && !j.is_done(index));
        match outcome {
            Ok(output) if open => {
                self.counters.late_accepted += 1;
                self.resolve(id, Ok(Payload::from_slice(output)), deliveries);
            }
            // A late error is not worth an attempt: the unit is queued or leased elsewhere.
            _ => self.counters.duplicates += 1,
        }
    }

    fn resolve(
        &mut self,
        id: u64,
        result: Result<Payload, UnitFailure>,
        deliveries: &mut Deliveries,
    ) {
        let (job_id, index) = split_unit_id(id);
        let Some(job) = self.jobs.get_mut(&job_id) else {
            self.counters.duplicates += 1;
            return;
        };
        if job.is_done(index) {
            self.counters.duplicates += 1;
            return;
        }
        job.done.insert(index);
        job.resolved += 1;
        if !self.reissued.is_empty() {
            self.reissued.remove(&id);
        }
        if result.is_ok() {
            self.counters.completed += 1;
        } else {
            self.counters.failed += 1;
        }
        if result.is_ok() && !self.retries.is_empty() {
            self.retries.remove(&id);
        }
        deliveries.push(job_id, Outcome { index, result });
    }

    fn flush_deliveries(&mut self, deliveries: Deliveries) {
        for (job, outcomes) in deliveries.by_job {
            self.actions.push(Action::Deliver { job, outcomes });
            self.finish_if_done(job);
        }
    }

    fn finish_if_done(&mut self, job: JobId) {
        if self
            .jobs
            .get(&job)
            .is_some_and(|j| j.sealed && j.resolved == j.total)
        {
            // Units resolved by a late result while queued may still sit in the queue.
            if let Some(j) = self.jobs.remove(&job) {
                self.queued_bytes -= j.queued_bytes();
            }
            self.job_order.retain(|&id| id != job);
            self.actions.push(Action::JobDone(job));
        }
    }

    fn forget_if_drained(&mut self, worker: WorkerId) {
        if self
            .workers
            .get(&worker)
            .is_some_and(|w| w.leaving && w.info.in_flight == 0)
        {
            self.worker_lost(worker, "said goodbye");
        }
    }
}

/// Whether `job` may share a batch led by a job of `mates`, `(group, priority)` (any job when
/// the lead has no group).
fn is_mate(job: &Job, mates: Option<(u32, i32)>) -> bool {
    mates.is_none_or(|(group, priority)| job.group == Some(group) && job.priority == priority)
}

fn payload_bytes<'a>(units: impl IntoIterator<Item = &'a Unit>) -> u64 {
    units.into_iter().map(|u| u.payload.len() as u64).sum()
}

/// Outcomes gathered while handling one event, grouped by job (usually one job, so a short
/// vector beats a map).
#[derive(Debug, Default)]
struct Deliveries {
    by_job: Vec<(JobId, Vec<Outcome>)>,
    /// Expected outcomes, to size the first job's vector in one allocation.
    expected: usize,
}

impl Deliveries {
    fn expecting(expected: usize) -> Self {
        Deliveries {
            by_job: Vec::new(),
            expected,
        }
    }

    fn push(&mut self, job: JobId, outcome: Outcome) {
        match self.by_job.iter_mut().rev().find(|(j, _)| *j == job) {
            Some((_, outcomes)) => outcomes.push(outcome),
            None => {
                let mut outcomes = Vec::with_capacity(std::mem::take(&mut self.expected).max(1));
                outcomes.push(outcome);
                self.by_job.push((job, outcomes));
            }
        }
    }
}

impl Job {
    /// Payload bytes of the units in its queues.
    fn queued_bytes(&self) -> u64 {
        self.queue.payload_bytes() + payload_bytes(&self.retry)
    }

    fn is_done(&self, index: u64) -> bool {
        self.done.contains(index)
    }
}

impl Lease {
    /// Removes every outstanding unit whose id `pick` selects.
    fn take_all(&mut self, pick: impl Fn(u64) -> bool) -> Vec<Unit> {
        let mut taken = Vec::new();
        for slot in &mut self.units {
            if slot.as_ref().is_some_and(|u| pick(u.id)) {
                taken.extend(slot.take());
            }
        }
        self.outstanding -= taken.len();
        taken
    }

    /// Removes the unit `id` from the lease, if it is still outstanding in it.
    fn take(&mut self, id: u64) -> Option<Unit> {
        let at = if self
            .units
            .get(self.cursor)
            .and_then(Option::as_ref)
            .is_some_and(|u| u.id == id)
        {
            self.cursor
        } else {
            self.units
                .iter()
                .position(|u| u.as_ref().is_some_and(|u| u.id == id))?
        };
        let unit = self.units[at].take()?;
        self.cursor = at + 1;
        self.outstanding -= 1;
        Some(unit)
    }
}
