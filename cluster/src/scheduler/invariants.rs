//! The scheduler's invariants (listed in its module documentation) as a check that the property
//! tests and fuzz targets run after every event.

use std::collections::{HashMap, HashSet};

use super::{split_unit_id, unit_id, Scheduler, Unit, WorkerId};

impl Scheduler {
    /// Checks the scheduler's invariants (see the module documentation); the property tests
    /// and fuzz targets call it after every event. O(units), so not for production use: built
    /// only with the `harness` feature (and for this crate's tests).
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
}
