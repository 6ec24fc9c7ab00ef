//! Leases: the batches out at workers, what they hold, and how one is sent.

use ganger_core::protocol::WorkEncoder;

use super::{BatchId, Millis, Scheduler, Unit, WorkerId};

#[derive(Debug)]
pub(super) struct Lease {
    pub(super) worker: WorkerId,
    /// The kind of work its time measures (a job type or a batch group).
    pub(super) kind: u32,
    /// Each unit's job type, by position.
    pub(super) types: Vec<u32>,
    /// When it was sent.
    pub(super) sent_at: Millis,
    pub(super) units: Vec<Option<Unit>>,
    /// Total payload size, to size the work frame in one allocation.
    pub(super) payload_bytes: usize,
    pub(super) outstanding: usize,
    /// Where the next result is expected: workers answer in order, so lookups are O(1).
    pub(super) cursor: usize,
}

impl Lease {
    /// Removes every outstanding unit whose id `pick` selects.
    pub(super) fn take_all(&mut self, pick: impl Fn(u64) -> bool) -> Vec<Unit> {
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
    pub(super) fn take(&mut self, id: u64) -> Option<Unit> {
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

impl Scheduler {
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

    /// Batches currently leased, by id.
    #[doc(hidden)]
    pub fn leased_batches(&self) -> Vec<BatchId> {
        let mut batches: Vec<BatchId> = self.leases.keys().copied().collect();
        batches.sort_unstable();
        batches
    }

    /// Leases `units` to `worker` as a new batch sent at `now`, counted in its units in flight;
    /// `kind` is what the batch's time measures, `types` each unit's job type. Returns the batch.
    pub(super) fn open_lease(
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
}
