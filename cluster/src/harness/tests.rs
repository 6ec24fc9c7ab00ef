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
        2 => (0u8..3, -2i8..3, 0u8..30, prop_oneof![Just(0u8), 1u8..64], any::<bool>(), any::<bool>())
            .prop_map(|(job_type, priority, units, payload_len, seal, grouped)| Step::Submit {
                job_type, priority, units, payload_len, seal, grouped,
            }),
        1 => (any::<u8>(), 0u8..20).prop_map(|(pick, units)| Step::Extend { pick, units }),
        1 => any::<u8>().prop_map(|pick| Step::Seal { pick }),
        1 => any::<u8>().prop_map(|pick| Step::Cancel { pick }),
        1 => (peer(), prop::collection::vec(any::<u8>(), 0..24))
            .prop_map(|(peer, bytes)| Step::Frame { peer, bytes }),
        3 => (peer(), prop::bool::weighted(0.1))
            .prop_map(|(peer, forge)| Step::Auth { peer, forge }),
        1 => (peer(), any::<u16>(), any::<bool>())
            .prop_map(|(peer, pick, tamper)| Step::Replay { peer, pick, tamper }),
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

const SECRET: &[u8] = b"a cluster secret of the harness, 32+ bytes";

fn run(config: SchedulerConfig, steps: &[Step]) -> Result<Harness, TestCaseError> {
    drive(Harness::new(config, usize::from(PEERS)), steps)
}

fn run_with_secret(config: SchedulerConfig, steps: &[Step]) -> Result<Harness, TestCaseError> {
    drive(
        Harness::with_secret(config, usize::from(PEERS), SECRET),
        steps,
    )
}

fn drive(mut harness: Harness, steps: &[Step]) -> Result<Harness, TestCaseError> {
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

    #[test]
    fn arbitrary_sessions_through_the_authentication_gate_keep_the_invariants(
        config in config(),
        steps in prop::collection::vec(step(), 0..80),
    ) {
        run_with_secret(config, &steps)?;
    }
}

/// A well-formed `hello` serving every job type with 2 slots and 2 of prefetch.
fn hello(peer: u8) -> Step {
    Step::Hello {
        peer,
        right_version: true,
        job_types: 0b111,
        slots: 2,
        prefetch: 2,
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
            grouped: false,
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

/// With a secret, the gate's paths are reached: genuine and forged proofs, sealed sessions,
/// replayed and tampered frames, plaintext inside a session, a hello without a nonce.
#[test]
fn sessions_through_the_gate_reach_proofs_forgeries_replays_and_tampering() {
    let config = SchedulerConfig {
        heartbeat_ms: 100,
        timeout_ms: 500,
        max_batch_units: 4,
        ..SchedulerConfig::default()
    };
    let auth = |peer, forge| Step::Auth { peer, forge };
    let answer = |peer| Step::Answer {
        peer,
        pick: 0,
        count: 2,
        fail: false,
        duplicate: false,
        resend: false,
    };
    let mut heartbeat = Vec::new();
    ganger_core::protocol::encode(&ganger_core::protocol::Message::Heartbeat, &mut heartbeat);
    let mut harness = Harness::with_secret(config, usize::from(PEERS), SECRET);
    let mut step = |step: Step| {
        harness
            .step(&step)
            .unwrap_or_else(|e| panic!("after {step:?}: {e}"));
        (
            harness.scheduler().workers().count(),
            harness.dropped().clone(),
        )
    };
    step(Step::Submit {
        job_type: 2,
        priority: 0,
        units: 12,
        payload_len: 8,
        seal: true,
        grouped: false,
    });
    assert_eq!(step(hello(0)).0, 0, "registered before its proof");
    assert_eq!(step(auth(0, false)).0, 1);
    step(hello(1));
    let (workers, dropped) = step(auth(1, true));
    assert_eq!((workers, dropped.unauthenticated), (1, 1), "{dropped:?}");
    step(answer(0));
    step(Step::Heartbeat { peer: 0 });
    let (workers, dropped) = step(Step::Replay {
        peer: 0,
        pick: 0,
        tamper: false,
    });
    assert_eq!(
        (workers, dropped.replayed),
        (0, 1),
        "a replay ends the session"
    );
    step(hello(2));
    step(auth(2, false));
    step(Step::Heartbeat { peer: 2 });
    let (workers, dropped) = step(Step::Replay {
        peer: 2,
        pick: 0,
        tamper: true,
    });
    assert_eq!((workers, dropped.bad_seal), (0, 1), "{dropped:?}");
    step(hello(3));
    assert_eq!(step(auth(3, false)).0, 1);
    let (workers, dropped) = step(Step::Frame {
        peer: 3,
        bytes: heartbeat,
    });
    assert_eq!(
        (workers, dropped.unauthenticated),
        (0, 2),
        "plaintext in a session"
    );
    let mut plain_hello = Harness::new(SchedulerConfig::default(), 1);
    plain_hello.step(&hello(0)).unwrap();
    assert_eq!(plain_hello.scheduler().workers().count(), 1);
    harness.finish().unwrap();
    assert_eq!(harness.scheduler().counters().completed, 12);
}

/// Found by the property test through the gate: a registered worker's second, plaintext `auth`
/// got a reset but stayed registered, so work went on being leased to a worker that had
/// started over. It now ends the session like any plaintext inside one.
#[test]
fn a_second_auth_inside_a_sealed_session_ends_the_registration() {
    let mut harness = Harness::with_secret(SchedulerConfig::default(), 1, SECRET);
    let hello = Step::Hello {
        peer: 0,
        right_version: true,
        job_types: 1,
        slots: 1,
        prefetch: 0,
    };
    for step in [
        hello,
        Step::Auth {
            peer: 0,
            forge: false,
        },
    ] {
        harness.step(&step).unwrap();
    }
    assert_eq!(harness.scheduler().workers().count(), 1);
    harness
        .step(&Step::Auth {
            peer: 0,
            forge: false,
        })
        .unwrap();
    assert_eq!(harness.scheduler().workers().count(), 0);
    assert_eq!(harness.dropped().unauthenticated, 1);
}

/// A handshake not finished within the timeout is forgotten: a proof that comes later finds
/// nothing to prove and registers nobody; one within it does.
#[test]
fn a_proof_after_the_handshake_timeout_registers_nobody() {
    let config = SchedulerConfig {
        heartbeat_ms: 100,
        timeout_ms: 500,
        ..SchedulerConfig::default()
    };
    let mut harness = Harness::with_secret(config, 2, SECRET);
    let auth = |peer| Step::Auth { peer, forge: false };
    for step in [hello(0), Step::Advance { ms: 400 }, auth(0)] {
        harness.step(&step).unwrap();
    }
    assert_eq!(harness.scheduler().workers().count(), 1);
    let advance = Step::Advance { ms: 300 };
    let heartbeat = Step::Heartbeat { peer: 0 };
    for step in [hello(1), advance.clone(), heartbeat, advance, auth(1)] {
        harness.step(&step).unwrap();
    }
    assert_eq!(harness.scheduler().workers().count(), 1);
    assert_eq!(harness.dropped().unauthenticated, 1);
}
