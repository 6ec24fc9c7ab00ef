//! The scheduler's ids (of workers, jobs, batches and units) and its logical time.

use ganger_core::payload::Payload;

use super::Unit;

/// Identifies a registered worker for the lifetime of its registration.
pub type WorkerId = u64;
/// Identifies a job.
pub type JobId = u32;
/// Identifies a batch of units leased to one worker.
pub type BatchId = u64;
/// Logical time in milliseconds, supplied by the caller.
pub type Millis = u64;

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
