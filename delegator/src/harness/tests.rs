//! Property tests: arbitrary interleavings of peer messages, time and client steps never panic
//! the scheduler nor break its invariants, and nothing submitted is ever lost.

use proptest::prelude::*;

use super::{Harness, Step};
use crate::scheduler::SchedulerConfig;

const PEERS: u8 = 4;

fn peer() -> impl Strategy<Value = u8> {
    0..PEERS
}

/// Ids near the ones the scheduler hands out (job 1..4, small indices) and far off.
fn unit_id() -> impl Strategy<Value = u64> {
    prop_oneof![
        (1u64..5, 0u64..40).prop_map(|(job, index)| (job << crate::scheduler::INDEX_BITS) | index),
        any::<u64>(),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (peer(), any::<bool>(), 0u8..16, prop_oneof![Just(0u32), 1u32..8, Just(u32::MAX)],
              prop_oneof![0u32..4, Just(u32::MAX)])
            .prop_map(|(peer, ok, job_types, slots, prefetch)| Step::Hello {
                peer,
                // Mostly the right version, so that sessions get going.
                right_version: ok || job_types % 4 != 0,
                job_types,
                slots,
                prefetch,
            }),
        8 => (peer(), any::<u16>(), any::<u16>(), any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(peer, pick, count, fail, duplicate, resend)| Step::Answer {
                peer, pick, count, fail, duplicate, resend,
            }),
        1 => (peer(), prop_oneof![0u64..20, any::<u64>()],
              prop::collection::vec(unit_id(), 0..4), any::<bool>())
            .prop_map(|(peer, batch, ids, fail)| Step::BogusResults { peer, batch, ids, fail }),
        2 => peer().prop_map(|peer| Step::Heartbeat { peer }),
        1 => (peer(), 0u8..4, prop::collection::vec(unit_id(), 0..3))
            .prop_map(|(peer, every, bogus)| Step::Goodbye { peer, every, bogus }),
        1 => peer().prop_map(|peer| Step::Disconnect { peer }),
        2 => prop_oneof![0u32..200, 400u32..2000].prop_map(|ms| Step::Advance { ms }),
        2 => (0u8..3, -2i8..3, 0u8..30, prop_oneof![Just(0u8), 1u8..64], any::<bool>())
            .prop_map(|(job_type, priority, units, payload_len, seal)| Step::Submit {
                job_type, priority, units, payload_len, seal,
            }),
        1 => (any::<u8>(), 0u8..20).prop_map(|(pick, units)| Step::Extend { pick, units }),
        1 => any::<u8>().prop_map(|pick| Step::Seal { pick }),
        1 => any::<u8>().prop_map(|pick| Step::Cancel { pick }),
        1 => (peer(), prop::collection::vec(any::<u8>(), 0..24))
            .prop_map(|(peer, bytes)| Step::Frame { peer, bytes }),
    ]
}

fn config() -> impl Strategy<Value = SchedulerConfig> {
    (
        1u32..4,
        1u32..10,
        1usize..4,
        prop_oneof![Just(None), Just(Some(1.5))],
    )
        .prop_map(
            |(max_attempts, max_batch_units, max_workers, straggler_factor)| SchedulerConfig {
                heartbeat_ms: 100,
                timeout_ms: 500,
                max_attempts,
                max_batch_units,
                max_workers,
                max_frame: 512,
                // Re-issuing stragglers leases units twice; nothing may be lost or delivered twice.
                straggler_factor,
                ..SchedulerConfig::default()
            },
        )
}

fn run(config: SchedulerConfig, steps: &[Step]) -> Result<Harness, TestCaseError> {
    let mut harness = Harness::new(config, usize::from(PEERS));
    for (i, step) in steps.iter().enumerate() {
        harness
            .step(step)
            .map_err(|e| TestCaseError::fail(format!("after step {i} {step:?}: {e}")))?;
    }
    harness
        .finish()
        .map_err(|e| TestCaseError::fail(format!("draining: {e}")))?;
    Ok(harness)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_sessions_keep_the_invariants_and_lose_nothing(
        config in config(),
        steps in prop::collection::vec(step(), 0..80),
    ) {
        run(config, &steps)?;
    }
}

/// The property test must reach the states it claims to cover; a strategy that never leases,
/// retries or refuses would pass vacuously.
#[test]
fn sessions_reach_leases_retries_timeouts_and_refusals() {
    let config = SchedulerConfig {
        heartbeat_ms: 100,
        timeout_ms: 500,
        max_attempts: 3,
        max_batch_units: 4,
        max_workers: 2,
        ..SchedulerConfig::default()
    };
    let hello = |peer| Step::Hello {
        peer,
        right_version: true,
        job_types: 0b111,
        slots: 2,
        prefetch: 2,
    };
    let answer = |peer, fail| Step::Answer {
        peer,
        pick: 0,
        // Batches hold 2 units here: answer both.
        count: 2,
        fail,
        duplicate: true,
        resend: true,
    };
    let steps = [
        Step::Submit {
            job_type: 2,
            priority: 0,
            units: 20,
            payload_len: 8,
            seal: true,
        },
        hello(0),
        hello(1),
        hello(2),
        answer(0, true),
        answer(1, false),
        Step::Advance { ms: 400 },
        Step::Heartbeat { peer: 0 },
        Step::Advance { ms: 400 },
    ];
    let harness = run(config, &steps).unwrap();
    let counters = harness.scheduler().counters();
    assert_eq!(counters.workers_refused, 1, "{counters:?}");
    assert_eq!(harness.dropped().rejected, 1);
    assert!(counters.retried > 0, "{counters:?}");
    assert!(counters.duplicates > 0, "{counters:?}");
    assert!(counters.timeouts > 0, "{counters:?}");
    assert!(counters.requeued > 0, "{counters:?}");
    assert_eq!(counters.completed + counters.failed, 20);
}
