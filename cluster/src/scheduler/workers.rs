//! The worker registry: registration, liveness (heartbeats and timeouts), departure, and
//! taking back the units of a worker that leaves so they are leased again.

use std::collections::{HashMap, HashSet};

use ganger_core::protocol::{job_type_matches, Goodbye, Hello, Welcome, PROTOCOL_VERSION};

use super::batching::Rate;
use super::unit::payload_bytes;
use super::{split_unit_id, Action, JobId, Millis, Scheduler, Unit, WorkerId, WorkerInfo};

#[derive(Debug)]
pub(super) struct Worker {
    pub(super) info: WorkerInfo,
    pub(super) serves: Vec<bool>,
    pub(super) capacity: u64,
    pub(super) last_sent: Millis,
    pub(super) leaving: bool,
    pub(super) rates: HashMap<u32, Rate>,
}

impl Scheduler {
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
                    last_errors: Vec::new(),
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
    /// requeues its units; counted in [`Counters::disconnects`](super::Counters::disconnects).
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

    pub(super) fn forget_if_drained(&mut self, worker: WorkerId) {
        if self
            .workers
            .get(&worker)
            .is_some_and(|w| w.leaving && w.info.in_flight == 0)
        {
            self.worker_lost(worker, "said goodbye");
        }
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
}
