//! Fuzz target: sequences of frames from several peers, interleaved with time passing and client
//! steps, through the delegator's own dispatch (with or without a cluster secret, so through the
//! authentication gate); the scheduler's invariants, the gate's promise and what every worker
//! reads back are checked after every step, and at the end one good worker must drain every job
//! with nothing lost.
#![no_main]

use arbitrary::Arbitrary;
use ganger_cluster::harness::{Harness, Step};
use ganger_cluster::SchedulerConfig;
use libfuzzer_sys::fuzz_target;

/// A step as the fuzzer spells it; raw frames are the point, the structured steps get the
/// session into states (leases, retries, timeouts) that random bytes alone rarely reach.
#[derive(Debug, Arbitrary)]
enum Input {
    Frame {
        peer: u8,
        bytes: Vec<u8>,
    },
    Hello {
        peer: u8,
        right_version: bool,
        job_types: u8,
        slots: u8,
        prefetch: u32,
    },
    Answer {
        peer: u8,
        pick: u16,
        count: u16,
        fail: bool,
        duplicate: bool,
        resend: bool,
    },
    BogusResults {
        peer: u8,
        batch: u64,
        ids: Vec<u64>,
        fail: bool,
    },
    Heartbeat {
        peer: u8,
    },
    Goodbye {
        peer: u8,
        every: u8,
        bogus: Vec<u64>,
    },
    Disconnect {
        peer: u8,
    },
    Advance {
        ms: u16,
    },
    Submit {
        job_type: u8,
        priority: i8,
        units: u8,
        payload_len: u8,
        seal: bool,
        grouped: bool,
    },
    Extend {
        pick: u8,
        units: u8,
    },
    Seal {
        pick: u8,
    },
    Cancel {
        pick: u8,
    },
    Auth {
        peer: u8,
        forge: bool,
    },
    Replay {
        peer: u8,
        pick: u16,
        tamper: bool,
    },
}

/// A session: the delegator with a secret (every peer shakes hands) or without.
#[derive(Debug, Arbitrary)]
struct Session {
    secret: bool,
    steps: Vec<Input>,
}

impl From<Input> for Step {
    fn from(input: Input) -> Step {
        match input {
            Input::Frame { peer, bytes } => Step::Frame { peer, bytes },
            Input::Hello {
                peer,
                right_version,
                job_types,
                slots,
                prefetch,
            } => Step::Hello {
                peer,
                right_version,
                job_types,
                slots: u32::from(slots),
                prefetch,
            },
            Input::Answer {
                peer,
                pick,
                count,
                fail,
                duplicate,
                resend,
            } => Step::Answer {
                peer,
                pick,
                count,
                fail,
                duplicate,
                resend,
            },
            Input::BogusResults {
                peer,
                batch,
                ids,
                fail,
            } => Step::BogusResults {
                peer,
                batch,
                ids,
                fail,
            },
            Input::Heartbeat { peer } => Step::Heartbeat { peer },
            Input::Goodbye { peer, every, bogus } => Step::Goodbye { peer, every, bogus },
            Input::Disconnect { peer } => Step::Disconnect { peer },
            Input::Advance { ms } => Step::Advance { ms: u32::from(ms) },
            Input::Submit {
                job_type,
                priority,
                units,
                payload_len,
                seal,
                grouped,
            } => Step::Submit {
                job_type,
                priority,
                units,
                payload_len,
                seal,
                grouped,
            },
            Input::Extend { pick, units } => Step::Extend { pick, units },
            Input::Seal { pick } => Step::Seal { pick },
            Input::Cancel { pick } => Step::Cancel { pick },
            Input::Auth { peer, forge } => Step::Auth { peer, forge },
            Input::Replay { peer, pick, tamper } => Step::Replay { peer, pick, tamper },
        }
    }
}

fuzz_target!(|session: Session| {
    // Small limits so that the fuzzer reaches them: frames of 4 KiB, batches of 8, 3 workers.
    let config = SchedulerConfig {
        heartbeat_ms: 100,
        timeout_ms: 500,
        max_attempts: 2,
        max_batch_units: 8,
        max_frame: 4096,
        max_workers: 3,
        ..SchedulerConfig::default()
    };
    let mut harness = if session.secret {
        Harness::with_secret(config, 4, b"the fuzz target's cluster secret, 32 bytes+")
    } else {
        Harness::new(config, 4)
    };
    for input in session.steps.into_iter().take(256) {
        let step = Step::from(input);
        if let Err(broken) = harness.step(&step) {
            panic!("invariant broken after {step:?}: {broken}");
        }
    }
    if let Err(broken) = harness.finish() {
        panic!("draining failed: {broken}");
    }
});
