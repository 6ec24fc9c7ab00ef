//! Faults, sustained: workers killed with `kill -9` again and again, stopped past the heartbeat
//! timeout and continued, partitioned from the delegator; each run must still write exactly
//! what a fault-free run with the same seed writes. Real processes, real sockets on 127.0.0.1
//! (or on veth addresses the partition test creates), real signals.
//!
//! The chaos itself is driven by a seeded generator; the seed is printed (set `GANGER_CHAOS_SEED`
//! to replay one).

mod common;

use std::time::Duration;

use common::*;
use ganger_delegator::JobOptions;

#[test]
fn a_killed_worker_is_noticed_by_its_closed_connection_not_a_timeout() {
    // Heartbeats and timeouts of minutes: only the closed connection can move units in time.
    let mut config = test_config();
    config.scheduler.heartbeat_ms = 60_000;
    config.scheduler.timeout_ms = 120_000;
    let delegator = start_delegator(config);
    let endpoint = delegator.local_endpoint();
    let mut victim = WorkerProcess::spawn(&endpoint, &["--threads", "1", "--name", "victim"]);
    let _survivor = WorkerProcess::spawn(&endpoint, &["--threads", "1", "--name", "survivor"]);
    let n = 400;
    let job = delegator
        .submit::<_, u64>(
            "sleep",
            std::iter::repeat_n(5_000u64, n),
            JobOptions::default(),
        )
        .unwrap();
    wait_for(
        &delegator,
        Duration::from_secs(30),
        "both to hold units",
        |s| s.workers.len() == 2 && s.workers.iter().all(|w| w.in_flight > 0),
    );
    victim.signal(libc::SIGKILL);
    assert_eq!(victim.wait(), None, "killed by the signal");
    let stats = wait_for(
        &delegator,
        Duration::from_secs(30),
        "the victim's units to be requeued",
        |s| s.counters.requeued > 0,
    );
    assert_eq!(stats.counters.disconnects, 1, "{stats:#?}");
    assert_eq!(stats.counters.timeouts, 0, "{stats:#?}");
    assert_eq!(stats.workers.len(), 1);
    let mut seen = vec![false; n];
    for (index, result) in job {
        assert!(
            !std::mem::replace(&mut seen[index as usize], true),
            "unit {index} twice"
        );
        assert_eq!(result, Ok(5_000));
    }
    assert!(seen.iter().all(|s| *s), "every unit delivered");
    let stats = delegator.stats().unwrap();
    assert_eq!(stats.counters.timeouts, 0, "{stats:#?}");
    assert_eq!(stats.counters.completed, n as u64);
}
