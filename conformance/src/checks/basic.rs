//! Checks of a session's content: hello, handshake, version mismatch, results, batching, credit.

use std::time::{Duration, Instant};

use ganger_core::protocol::secure::Handshake;
use ganger_core::protocol::{job_type_matches, Hello, Message, Reject, Welcome, PROTOCOL_VERSION};

use super::{
    capacity, drive, patient_welcome, quiet, register_patiently, str_payload, warn_unmeasured, Ctx,
    Unit,
};
use crate::peer::{Incoming, Msg, FIRST_HELLO};
use crate::{REQUIRED_JOB_TYPES, SLOTS};

/// How long a worker may take to say hello again when nobody answers (§4 step 1 says about a
/// second; this leaves room for a loaded machine).
const HELLO_RETRY_LIMIT: Duration = Duration::from_secs(5);
/// How long to wait for answers before giving up on a worker.
const PATIENCE: Duration = Duration::from_secs(15);
/// The id of a unit sent before the welcome, which must never be answered.
const EARLY_UNIT: u64 = 777;

/// `hello`: the first frame is a valid hello, and it is said again while unanswered.
pub(super) fn hello(ctx: &mut Ctx<'_>) -> Result<(), String> {
    let peer = ctx.start()?;
    let secured = peer.secured();
    let (first, _) = peer.expect_hello(FIRST_HELLO)?;
    judge_hello(&first, secured)?;
    let (again, _) = peer
        .expect_hello(HELLO_RETRY_LIMIT)
        .map_err(|e| format!("no hello retry while unanswered (§4 step 1): {e}"))?;
    judge_hello(&again, secured)?;
    if secured && again.nonce == first.nonce {
        return Err(
            "the repeated hello reuses the first one's nonce; each hello needs 32 new \
                    random bytes (§10.2 step 1)"
                .into(),
        );
    }
    Ok(())
}

fn judge_hello(hello: &Hello, secured: bool) -> Result<(), String> {
    let quoted = || {
        Msg::Hello {
            hello: hello.clone(),
            frame: Vec::new(),
        }
        .describe()
    };
    if hello.protocol != PROTOCOL_VERSION {
        return Err(format!(
            "hello says protocol {}, this suite speaks {PROTOCOL_VERSION}: {}",
            hello.protocol,
            quoted()
        ));
    }
    if hello.name.is_empty() {
        return Err(format!("hello has an empty name: {}", quoted()));
    }
    for required in REQUIRED_JOB_TYPES {
        if !hello
            .job_types
            .iter()
            .any(|t| job_type_matches(t, required))
        {
            return Err(format!(
                "hello's job_types do not cover `{required}`: {}",
                quoted()
            ));
        }
    }
    if hello.slots != SLOTS {
        return Err(format!(
            "hello advertises slots {} but GANGER_THREADS={SLOTS}: {}",
            hello.slots,
            quoted()
        ));
    }
    match (secured, hello.nonce) {
        (true, None) => Err(format!(
            "GANGER_SECRET is set but hello has no nonce (§10.2 step 1): {}",
            quoted()
        )),
        (false, Some(_)) => Err(format!(
            "no secret was given but hello carries a nonce (§3 hello): {}",
            quoted()
        )),
        _ => Ok(()),
    }
}

/// `handshake`: a welcome is accepted (secured: after a correct proof to the latest hello's
/// challenge, a stale challenge being ignored), and the worker then serves work.
pub(super) fn handshake(ctx: &mut Ctx<'_>) -> Result<(), String> {
    let peer = ctx.start()?;
    // Work before the welcome belongs to a registration the delegator has dropped (§4 step 3);
    // with a secret it is also plaintext, which the worker must refuse (§10.2).
    let early = Unit::noop(EARLY_UNIT, vec![0x07]);
    if !peer.secured() {
        let (hello, frame) = peer.expect_hello(FIRST_HELLO)?;
        peer.send_work(std::slice::from_ref(&early));
        peer.register_hello(hello, frame, patient_welcome())?;
        peer.heartbeat_every = Some(Duration::from_millis(200));
        return round_trip(peer);
    }
    let (first, first_frame) = peer.expect_hello(FIRST_HELLO)?;
    let (second, second_frame) = peer
        .expect_hello(HELLO_RETRY_LIMIT)
        .map_err(|e| format!("no hello retry while unanswered (§4 step 1): {e}"))?;
    peer.send_work(std::slice::from_ref(&early));
    let first_nonce = first.nonce.ok_or("the first hello has no nonce")?;
    // A challenge to the first hello: the worker has said hello since, so it must ignore it.
    let nonce_delegator = [7u8; 32];
    let stale = Handshake::new(&first_frame, &first_nonce, &nonce_delegator);
    peer.send_plain(&Message::Challenge(ganger_core::protocol::Challenge {
        nonce: nonce_delegator,
        hello_digest: stale.hello_digest(),
    }));
    peer.handshake(second, second_frame, &[stale])?;
    peer.send(&Message::Welcome(patient_welcome()));
    peer.heartbeat_every = Some(Duration::from_millis(200));
    round_trip(peer)
}

/// One batch of one unit of each job type, answered correctly (and, secured, sealed).
fn round_trip(peer: &mut crate::peer::Peer) -> Result<(), String> {
    let units = vec![
        Unit::noop(1, vec![0x91, 0x05]),
        Unit::sleep(2, 0),
        Unit::parity(3, 4),
    ];
    let driven = drive(peer, units, 3, 3, PATIENCE).map_err(|e| {
        format!(
            "after the welcome: {e} (unit {EARLY_UNIT} came before the welcome, in plaintext: \
             §4 step 3 and §10.2 say to ignore it)"
        )
    })?;
    warn_unmeasured(peer, &driven);
    Ok(())
}

/// `version-mismatch`: a reject naming protocol 99 ends the worker with a non-zero status.
pub(super) fn version_mismatch(ctx: &mut Ctx<'_>) -> Result<(), String> {
    let peer = ctx.start()?;
    let (hello, _) = peer.expect_hello(FIRST_HELLO)?;
    peer.send_plain(&Message::Reject(Reject {
        reason: format!(
            "protocol version mismatch: the worker speaks {}, this delegator speaks 99",
            hello.protocol
        ),
        protocol: 99,
    }));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = peer.exited() {
            return if status.success() {
                Err(format!(
                    "the worker exited with {status} after a reject; §3 wants an error status"
                ))
            } else {
                // Its output ends when it exits; give the readers a moment to reach the end.
                std::thread::sleep(Duration::from_millis(200));
                if !peer.output_tail().contains("speaks 99") {
                    peer.warnings.push(
                        "the worker's output does not quote the reject's reason (§3 reject: \
                         exit with an error that quotes it)"
                            .into(),
                    );
                }
                Ok(())
            };
        }
        if Instant::now() > deadline {
            return Err(
                "the worker still runs 10 s after a reject (§3 reject: it must exit \
                        with an error)"
                    .into(),
            );
        }
        match peer.recv(Duration::from_millis(50)) {
            None
            | Some(Incoming {
                msg: Msg::Hello { .. },
                ..
            }) => {}
            Some(other) => {
                return Err(format!(
                    "after the reject the worker sent {}; only hellos may cross it",
                    other.msg.describe()
                ))
            }
        }
    }
}

/// `results`: a batch of units of every job type, each answered once and correctly.
pub(super) fn results(ctx: &mut Ctx<'_>) -> Result<(), String> {
    let json_payloads = ctx.options.json_payloads;
    let peer = ctx.start()?;
    let hello = register_patiently(peer)?;
    let mut units = vec![
        Unit::sleep(101, 0),
        Unit::parity(102, 7),
        Unit::parity(103, 8),
        Unit::parity(104, -4),
        Unit::parity(105, 1_000_001),
        // Canonical MessagePack values: 5, nil, [1, -2, "x", [true, false], {}], {"a": 1.5},
        // a string with a quote and a newline, and a 5000-character string.
        Unit::noop(106, vec![0x05]),
        Unit::noop(107, vec![0xc0]),
        Unit::noop(108, b"\x95\x01\xfe\xa1x\x92\xc3\xc2\x80".to_vec()),
        Unit::noop(109, b"\x81\xa1a\xcb\x3f\xf8\0\0\0\0\0\0".to_vec()),
        Unit::noop(110, str_payload("h\u{e9}llo \"you\"\n")),
        Unit::noop(111, str_payload(&"ganger ".repeat(714))),
    ];
    if !json_payloads {
        // Payloads are opaque bytes (§3 work): empty, every byte value, the sealed-frame marker
        // first, 5000 bytes that are no MessagePack at all.
        units.extend([
            Unit::noop(112, Vec::new()),
            Unit::noop(113, (0..=255u8).rev().collect()),
            Unit::noop(114, vec![0xc1, 0x00, 0xff, 0x80, 0x0a, 0x0d]),
            Unit::noop(115, (0..5000u32).map(|i| (i * 7) as u8).collect()),
        ]);
    }
    let n = units.len();
    let driven = drive(peer, units, n, capacity(&hello), PATIENCE)?;
    quiet(
        peer,
        Duration::from_millis(300),
        "after every unit was answered",
    )?;
    warn_unmeasured(peer, &driven);
    Ok(())
}

/// `batching`: trivial units come back several to a message, and no results frame exceeds the
/// welcome's `max_frame` (the sealed frame, when secured).
pub(super) fn batching(ctx: &mut Ctx<'_>) -> Result<(), String> {
    const MAX_FRAME: u64 = 4096;
    let peer = ctx.start()?;
    let hello = peer.register(Welcome {
        max_frame: MAX_FRAME,
        ..patient_welcome()
    })?;
    peer.heartbeat_every = Some(Duration::from_millis(200));
    let credit = capacity(&hello);
    let n = 500.min(credit);
    if n < 500 {
        peer.warnings.push(format!(
            "slots + prefetch is {credit}: the batch of 500 trivial units shrank to {n}"
        ));
    }
    let units = (0..n as u64)
        .map(|i| Unit::noop(1000 + i, vec![(i % 128) as u8]))
        .collect();
    let driven = drive(peer, units, n, credit, PATIENCE)?;
    if n > 1 && driven.messages.len() >= n {
        return Err(format!(
            "{n} trivial units in one batch came back in {} results messages: no batching \
             (§3 results)",
            driven.messages.len()
        ));
    }
    // Outputs of 1000 bytes (strings), eight to a batch: no batch's answers fit one 4096-byte
    // frame.
    // This work frame is larger than max_frame itself, which a worker must accept (§3 welcome:
    // max_frame bounds what the worker sends, not what it receives); noop's output is its
    // input, so there is no other way to make outputs that must be split.
    let units = (0..32u64)
        .map(|i| Unit::noop(2000 + i, str_payload(&format!("{i:<997}"))))
        .collect();
    let driven = drive(peer, units, 8, credit.max(1), PATIENCE)?;
    if let Some((_, size, batch, count)) = driven
        .messages
        .iter()
        .find(|(_, size, ..)| *size as u64 > MAX_FRAME)
    {
        return Err(format!(
            "a results frame of {size} bytes (batch {batch}, {count} results) exceeds the \
             welcome's max_frame of {MAX_FRAME} (§3 welcome{})",
            if hello.nonce.is_some() {
                ", §10.3: the limit applies to the sealed frame"
            } else {
                ""
            }
        ));
    }
    warn_unmeasured(peer, &driven);
    Ok(())
}

/// `credit`: the worker is served with exactly its credit outstanding, and never runs more
/// than `slots` units at once.
///
/// The concurrency criterion is a lower bound, so a slow machine cannot make it fail: a
/// `sleep` unit of D takes at least D of one slot, and no unit starts before its batch was sent,
/// so with at most `slots` running at once the m-th answer cannot arrive earlier than
/// ceil(m / slots) × D after the first batch was sent. Load only delays answers.
pub(super) fn credit(ctx: &mut Ctx<'_>) -> Result<(), String> {
    const SLEEP: Duration = Duration::from_millis(200);
    let peer = ctx.start()?;
    let hello = register_patiently(peer)?;
    let credit = capacity(&hello);
    let total = (3 * credit).max(300);
    let units = (0..total as u64)
        .map(|i| Unit::noop(10_000 + i, vec![(i % 100) as u8]))
        .collect();
    let batch_size = (credit / 4).max(1);
    drive(peer, units, batch_size, credit, PATIENCE)
        .map_err(|e| format!("with {credit} units outstanding in batches of {batch_size}: {e}"))?;

    let slots = hello.slots.max(1) as usize;
    let n = 3 * slots;
    let units: Vec<Unit> = (0..n as u64)
        .map(|i| Unit::sleep(20_000 + i, SLEEP.as_micros() as u64))
        .collect();
    // One unit per batch: the worker decides alone how many run at once.
    let driven = drive(peer, units, 1, credit, PATIENCE)?;
    let first_sent = driven
        .sent
        .values()
        .min()
        .copied()
        .unwrap_or_else(Instant::now);
    for (m, (id, at)) in driven.answered.iter().enumerate() {
        let waves = (m / slots + 1) as u32;
        let earliest = SLEEP * waves;
        let took = at.duration_since(first_sent);
        if took < earliest {
            return Err(format!(
                "answer {} of {n} (unit {id}, sleep {} ms) arrived {} ms after the first batch \
                 was sent; running at most slots = {slots} at once, it cannot come before {} \
                 ms: the worker runs more units than its slots",
                m + 1,
                SLEEP.as_millis(),
                took.as_millis(),
                earliest.as_millis()
            ));
        }
    }
    Ok(())
}
