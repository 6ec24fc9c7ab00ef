//! What the engine and a job handle share: the job's counters, which the engine writes as
//! outcomes arrive and the handle reads for its progress.
//!
//! It lives apart from both so that the engine need not know the handle (the handle sends the
//! engine commands; the engine only fills these counters and a channel).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::scheduler::Outcome;

/// Counters shared between the engine (which writes them) and the job handle.
#[derive(Debug, Default)]
pub(crate) struct JobShared {
    pub(crate) total: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) finished: AtomicBool,
}

impl JobShared {
    pub(crate) fn record(&self, outcomes: &[Outcome]) {
        let failed = outcomes.iter().filter(|o| o.result.is_err()).count() as u64;
        self.failed.fetch_add(failed, Ordering::Relaxed);
        self.completed
            .fetch_add(outcomes.len() as u64 - failed, Ordering::Relaxed);
    }
}
