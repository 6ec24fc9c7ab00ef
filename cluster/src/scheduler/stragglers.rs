//! Re-issuing stragglers: a unit that has run far longer than usual goes to a second worker
//! with an idle slot, and whichever result comes first counts (the other is a duplicate).
//! Off unless `SchedulerConfig::straggler_factor` is set, since the slow copy still runs.

use super::{Millis, Scheduler, Unit, WorkerId};
use crate::scheduler::Action;

/// A lease younger than this is never a straggler's, whatever its units usually cost.
const MIN_STRAGGLER_MS: u64 = 50;

impl Scheduler {
    /// Gives each idle slot a copy of a unit of the oldest lease that has overrun, for job types
    /// with nothing queued (`queued`: units queued and workers serving, per job type).
    pub(super) fn reissue_stragglers(&mut self, now: Millis, queued: &[(u64, u64)]) {
        let Some(factor) = self.config.straggler_factor else {
            return;
        };
        let idle: Vec<(WorkerId, u64)> = self
            .worker_order
            .iter()
            .filter_map(|id| self.workers.get(id))
            .filter(|w| !w.leaving && w.info.in_flight < u64::from(w.info.slots))
            .map(|w| (w.info.id, u64::from(w.info.slots) - w.info.in_flight))
            .collect();
        for (worker, mut free) in idle {
            while free > 0 {
                let Some((batch, ids)) = self.straggler_for(worker, now, factor, queued) else {
                    break;
                };
                let lease = &self.leases[&batch];
                let (units, types): (Vec<Option<Unit>>, Vec<u32>) = lease
                    .units
                    .iter()
                    .zip(&lease.types)
                    .filter_map(|(u, &t)| u.as_ref().map(|u| (u, t)))
                    .filter(|(u, _)| ids.contains(&u.id))
                    .take(free as usize)
                    .map(|(u, t)| (Some(u.clone()), t))
                    .unzip();
                if units.is_empty() {
                    break;
                }
                let kind = lease.kind;
                let n = units.len();
                let payload_bytes = units.iter().flatten().map(|u| u.payload.len()).sum();
                for unit in units.iter().flatten() {
                    self.reissued.insert(unit.id);
                }
                let copy = self.open_lease(worker, (kind, types), now, units, payload_bytes);
                if let Some(w) = self.workers.get_mut(&worker) {
                    w.last_sent = now;
                }
                self.counters.reissued += n as u64;
                self.counters.batches += 1;
                self.actions.push(Action::SendWork {
                    worker,
                    batch: copy,
                });
                free -= n as u64;
            }
        }
    }

    /// The oldest lease on another worker that `worker` serves, whose job types have nothing
    /// queued, that has run `factor` times its usual time, with units not yet re-issued: its
    /// batch and those units.
    fn straggler_for(
        &self,
        worker: WorkerId,
        now: Millis,
        factor: f64,
        queued: &[(u64, u64)],
    ) -> Option<(u64, Vec<u64>)> {
        let w = self.workers.get(&worker)?;
        let mut best: Option<(Millis, u64, Vec<u64>)> = None;
        for (&batch, lease) in &self.leases {
            let servable = lease
                .types
                .iter()
                .all(|&t| w.serves[t as usize] && queued[t as usize].0 == 0);
            if lease.worker == worker || !servable {
                continue;
            }
            let Some(holder) = self.workers.get(&lease.worker) else {
                continue;
            };
            // How long the lease should take: its units over the holder's slots, each at the
            // holder's usual speed (unknown speed: never a straggler).
            let Some(rate) = holder.rates.get(&lease.kind) else {
                continue;
            };
            if rate.units_per_sec <= 0.0 {
                continue;
            }
            let waves = (lease.units.len() as f64 / f64::from(holder.info.slots)).ceil();
            let usual_ms = waves * 1000.0 / rate.units_per_sec;
            let age = now.saturating_sub(lease.sent_at);
            if (age as f64) < factor * usual_ms || age < MIN_STRAGGLER_MS {
                continue;
            }
            let ids: Vec<u64> = lease
                .units
                .iter()
                .flatten()
                .map(|u| u.id)
                .filter(|id| !self.reissued.contains(id))
                .collect();
            if ids.is_empty() {
                continue;
            }
            if best
                .as_ref()
                .is_none_or(|(sent, _, _)| lease.sent_at < *sent)
            {
                best = Some((lease.sent_at, batch, ids));
            }
        }
        best.map(|(_, batch, ids)| (batch, ids))
    }
}
