//! Results: resolving units from what workers send back, retrying failures, and delivering
//! outcomes to their jobs exactly once.

use ganger_core::payload::Payload;
use ganger_core::protocol::Results;

use super::{
    split_unit_id, Action, JobId, Millis, Outcome, Scheduler, Unit, UnitFailure, WorkerId,
};

#[derive(Debug, Default)]
pub(super) struct RetryState {
    pub(super) errors: Vec<String>,
    pub(super) tried: Vec<WorkerId>,
}

impl Scheduler {
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
        let (mut answered, mut errors) = (0u64, Vec::new());
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
                    errors.push(error);
                    self.unit_failed(worker, unit, error, &mut deliveries)
                }
            }
        }
        if let Some(w) = self.workers.get_mut(&worker) {
            w.info.in_flight -= answered;
            w.info.units_done += answered;
            w.info.errors += errors.len() as u64;
            for error in errors {
                w.info.note_error(error);
            }
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

    /// Failed attempts recorded for the open unit `id` (0 if none or resolved).
    #[doc(hidden)]
    pub fn attempts(&self, id: u64) -> usize {
        self.retries.get(&id).map_or(0, |r| r.errors.len())
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
