//! Job lifecycle: submitting a job, adding its units, grouping, sealing, cancelling, and
//! forgetting it once every unit has an outcome.

use std::collections::VecDeque;

use ganger_core::payload::Payload;
use ganger_core::protocol::job_type_matches;

use super::done::DoneSet;
use super::queue::UnitQueue;
use super::unit::payload_bytes;
use super::{numbered_units, split_unit_id, unit_id, Action, JobId, Scheduler, Unit};

/// What adaptive batching measures a worker's speed for: a job type, or a batch group (ids from
/// here up), whose job types travel together and count as one kind of work.
const GROUP_KINDS: u32 = 1 << 31;

#[derive(Debug)]
pub(super) struct Job {
    pub(super) priority: i32,
    pub(super) job_type: u32,
    /// Its batch group, if any.
    pub(super) group: Option<u32>,
    /// Units submitted so far; indices run from 0 to this.
    pub(super) total: u64,
    pub(super) sealed: bool,
    pub(super) resolved: u64,
    pub(super) done: DoneSet,
    pub(super) queue: UnitQueue,
    pub(super) retry: VecDeque<Unit>,
}

impl Job {
    /// What its units' speed is measured as: its batch group, or else its job type.
    pub(super) fn kind(&self) -> u32 {
        self.group.unwrap_or(self.job_type)
    }

    /// Payload bytes of the units in its queues.
    fn queued_bytes(&self) -> u64 {
        self.queue.payload_bytes() + payload_bytes(&self.retry)
    }

    pub(super) fn is_done(&self, index: u64) -> bool {
        self.done.contains(index)
    }
}

impl Scheduler {
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

    pub(super) fn finish_if_done(&mut self, job: JobId) {
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
}
