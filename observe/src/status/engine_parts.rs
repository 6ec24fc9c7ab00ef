//! The engine's [`Stats`] turned into the parts of a [`Status`](super::Status) that describe
//! the cluster: workers, queues and counters.

use std::collections::HashMap;
use std::time::Instant;

use ganger_cluster::Stats;

use super::{CountersStatus, QueueStatus, WorkerStatus};

/// A worker's units done when the board last sampled, and its rate since the sample before.
#[derive(Debug, Clone, Copy)]
pub(super) struct WorkerMark {
    at: Instant,
    units_done: u64,
    rate: Option<f64>,
}

/// Samples each worker's rate from its units done since `marks` last saw it; forgets the
/// workers that left.
pub(super) fn sample_worker_rates(
    stats: &Stats,
    now: Instant,
    marks: &mut HashMap<u64, WorkerMark>,
) {
    marks.retain(|id, _| stats.workers.iter().any(|w| w.id == *id));
    for w in &stats.workers {
        let rate = marks.get(&w.id).and_then(|mark| {
            let seconds = now.duration_since(mark.at).as_secs_f64();
            (seconds > 0.0).then(|| w.units_done.saturating_sub(mark.units_done) as f64 / seconds)
        });
        marks.insert(
            w.id,
            WorkerMark {
                at: now,
                units_done: w.units_done,
                rate,
            },
        );
    }
}

pub(super) fn engine_parts(
    stats: &Stats,
    marks: &HashMap<u64, WorkerMark>,
) -> (Vec<WorkerStatus>, Vec<QueueStatus>, CountersStatus) {
    let workers = stats
        .workers
        .iter()
        .map(|w| WorkerStatus {
            id: w.id,
            name: w.name.clone(),
            host: w.host.clone(),
            job_types: w.job_types.clone(),
            slots: w.slots,
            in_flight: w.in_flight,
            last_heartbeat_ms_ago: stats.now.saturating_sub(w.last_seen),
            units_done: w.units_done,
            errors: w.errors,
            utilisation: w.utilisation(stats.now),
            units_per_sec: marks.get(&w.id).and_then(|mark| mark.rate),
            last_errors: w.last_errors.clone(),
        })
        .collect();
    let queues = stats
        .queue_depths
        .iter()
        .map(|(job_type, depth)| QueueStatus {
            job_type: job_type.clone(),
            depth: *depth,
            served: !stats
                .unserved
                .iter()
                .any(|(unserved, _)| unserved == job_type),
        })
        .collect();
    let d = &stats.dropped;
    let counters = CountersStatus {
        units: stats.counters.clone(),
        dropped_frames: d.malformed
            + d.unknown_type
            + d.oversize
            + d.rejected
            + d.unregistered
            + d.unexpected
            + d.unauthenticated
            + d.replayed
            + d.bad_seal,
        unauthenticated_frames: d.unauthenticated + d.replayed + d.bad_seal,
        queued_bytes: stats.queued_bytes,
        connections_cut: stats.connections.refused + stats.connections.expired,
    };
    (workers, queues, counters)
}
