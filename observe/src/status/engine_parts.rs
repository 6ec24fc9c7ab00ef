//! The engine's [`Stats`] turned into the parts of a [`Status`](super::Status) that describe
//! the cluster: workers, queues and counters.

use std::collections::HashMap;

use ganger_cluster::Stats;

use super::{CountersStatus, QueueStatus, WorkerStatus};

/// A worker's units done in the stats the board last sampled, when the engine took them, and
/// its rate since the sample before.
#[derive(Debug, Clone, Copy)]
pub(super) struct WorkerMark {
    /// The engine's clock when it took those stats, milliseconds.
    at_ms: u64,
    units_done: u64,
    rate: Option<f64>,
}

/// Samples each worker's rate from its units done since `marks` last saw it, over the engine's
/// own time between the two stats (the board samples on its clock, the stats arrive on the
/// poller's); forgets the workers that left. Stats already sampled change nothing.
pub(super) fn sample_worker_rates(stats: &Stats, marks: &mut HashMap<u64, WorkerMark>) {
    marks.retain(|id, _| stats.workers.iter().any(|w| w.id == *id));
    for w in &stats.workers {
        let previous = marks.get(&w.id).copied();
        if previous.is_some_and(|mark| mark.at_ms >= stats.now) {
            continue;
        }
        let rate = previous.map(|mark| {
            let seconds = (stats.now - mark.at_ms) as f64 / 1000.0;
            w.units_done.saturating_sub(mark.units_done) as f64 / seconds
        });
        marks.insert(
            w.id,
            WorkerMark {
                at_ms: stats.now,
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
