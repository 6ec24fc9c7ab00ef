//! Filling workers: which queued units go to which worker, in batches of what size.

use std::collections::VecDeque;

use super::batching::Rate;
use super::jobs::Job;
use super::{split_unit_id, Action, BatchId, Millis, Scheduler, Unit, WorkerId};

/// The least work, in milliseconds of a worker's slots, that a share of the queue holds when
/// there is that much (see [`Scheduler::fill`]): a message carrying less would cost more than
/// its units.
const MIN_SHARE_MS: f64 = 0.5;

impl Scheduler {
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
}

/// Whether `job` may share a batch led by a job of `mates`, `(group, priority)` (any job when
/// the lead has no group).
fn is_mate(job: &Job, mates: Option<(u32, i32)>) -> bool {
    mates.is_none_or(|(group, priority)| job.group == Some(group) && job.priority == priority)
}
