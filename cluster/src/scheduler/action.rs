//! The actions the scheduler asks its driver to carry out: its only way of acting on the world.

use super::{BatchId, JobId, Outcome, WorkerId};

/// What the scheduler asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send batch `batch` (encode it with
    /// [`Scheduler::encode_work`](super::Scheduler::encode_work)) to `worker`.
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
