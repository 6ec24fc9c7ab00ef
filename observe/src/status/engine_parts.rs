//! The engine's [`Stats`] turned into the parts of a [`Status`](super::Status) that describe
//! the cluster: workers, queues and counters.

use ganger_cluster::Stats;

use super::{CountersStatus, QueueStatus, WorkerStatus};

pub(super) fn engine_parts(stats: &Stats) -> (Vec<WorkerStatus>, Vec<QueueStatus>, CountersStatus) {
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
