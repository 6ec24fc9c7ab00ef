//! Checks of a session's life: heartbeats, silence, reset, malformed frames, goodbye,
//! reconnection.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ganger_core::protocol::{Message, Reset, Welcome};

use super::{capacity, drive, patient_welcome, register_patiently, warn_unmeasured, Ctx, Unit};
use crate::peer::{Incoming, Msg, Peer};

/// How long to wait for answers before giving up on a worker.
pub(super) const PATIENCE: Duration = Duration::from_secs(15);

/// `heartbeat`: with `heartbeat_ms` 100 and `timeout_ms` 2000, the worker is never silent for
/// more than `timeout_ms / 2`, idle or running a 3 s unit, and the unit is answered.
pub(super) fn heartbeat(ctx: &mut Ctx<'_>) -> Result<(), String> {
    let welcome = Welcome {
        heartbeat_ms: 100,
        timeout_ms: 2000,
        ..patient_welcome()
    };
    let limit = Duration::from_millis(welcome.timeout_ms / 2);
    let peer = ctx.start()?;
    peer.register(welcome)?;
    let welcomed = Instant::now();
    peer.heartbeat_every = Some(Duration::from_millis(100));

    let mut last = welcomed;
    let mut heartbeats = 0;
    while last.duration_since(welcomed) < Duration::from_millis(1500) {
        let incoming = peer.recv(limit).ok_or_else(|| {
            format!(
                "idle after the welcome, the worker was silent for {} ms (heartbeat_ms 100, \
                 timeout_ms 2000: §3 heartbeat)",
                limit.as_millis()
            )
        })?;
        match incoming.msg {
            Msg::Heartbeat => heartbeats += 1,
            other => return Err(format!("idle, the worker sent {}", other.describe())),
        }
        last = incoming.at;
    }
    if heartbeats == 0 {
        return Err("no heartbeat while idle".into());
    }

    let unit = Unit::sleep(1, 3_000_000);
    let batch = peer.send_work(std::slice::from_ref(&unit));
    let sent = Instant::now();
    loop {
        let incoming = peer.recv(limit).ok_or_else(|| {
            format!(
                "{} ms after a 3 s unit was sent, the worker had been silent for {} ms: it must \
                 heartbeat while it evaluates (§3 heartbeat)",
                sent.elapsed().as_millis(),
                limit.as_millis()
            )
        })?;
        match incoming.msg {
            Msg::Heartbeat => {}
            Msg::Results(results) if results.batch == batch && results.results.len() == 1 => {
                unit.judge(&results.results[0].1)?;
                if results.results[0].0 != unit.id {
                    return Err(format!(
                        "expected the answer to unit 1, received {}",
                        Msg::Results(results).describe()
                    ));
                }
                return Ok(());
            }
            other => {
                return Err(format!(
                    "during a 3 s unit the worker sent {}",
                    other.describe()
                ))
            }
        }
        if sent.elapsed() > PATIENCE {
            return Err("the 3 s unit was not answered within 15 s".into());
        }
    }
}

/// `silence`: a delegator that stops talking after the welcome gets a new hello after about
/// `timeout_ms` (§4 step 5), not much sooner.
pub(super) fn silence(ctx: &mut Ctx<'_>) -> Result<(), String> {
    const TIMEOUT_MS: u64 = 1000;
    let peer = ctx.start()?;
    peer.register(Welcome {
        heartbeat_ms: 100,
        timeout_ms: TIMEOUT_MS,
        ..patient_welcome()
    })?;
    let welcomed = Instant::now();
    // The suite stays silent from here: no heartbeats.
    peer.heartbeat_every = None;
    let limit = Duration::from_millis(TIMEOUT_MS) + Duration::from_secs(5);
    loop {
        let left = limit.saturating_sub(welcomed.elapsed());
        let Some(incoming) = peer.recv(left) else {
            return Err(format!(
                "the suite has been silent for {} s after a welcome with timeout_ms {TIMEOUT_MS}, \
                 and the worker has not said hello again (§4 step 5)",
                limit.as_secs_f64()
            ));
        };
        match incoming.msg {
            Msg::Heartbeat => {}
            Msg::Hello { .. } => {
                let after = incoming.at.duration_since(welcomed);
                // The worker's clock starts when it reads the welcome, after the suite sent it,
                // so a hello before half the timeout is the worker giving up too early.
                if after < Duration::from_millis(TIMEOUT_MS / 2) {
                    return Err(format!(
                        "the worker said hello again {} ms after the welcome, long before \
                         timeout_ms {TIMEOUT_MS}",
                        after.as_millis()
                    ));
                }
                return Ok(());
            }
            other => {
                return Err(format!(
                    "while the suite was silent the worker sent {}",
                    other.describe()
                ))
            }
        }
    }
}

/// `reset`: after a `reset` the worker says hello again, and does not answer the previous
/// session's units in the new one.
///
/// Criterion: answers that arrive before the new hello are accepted (ZeroMQ keeps the worker's
/// order, so they left before it started its new session, and the delegator's rule for such
/// late answers applies, §6); no answer to an old unit may arrive after the new hello, checked
/// until the old units would long have finished.
pub(super) fn reset(ctx: &mut Ctx<'_>) -> Result<(), String> {
    const SLEEP: Duration = Duration::from_millis(600);
    let peer = ctx.start()?;
    let hello = register_patiently(peer)?;
    let credit = capacity(&hello);
    drive(
        peer,
        vec![Unit::noop(1, vec![1]), Unit::parity(2, 2)],
        2,
        credit,
        PATIENCE,
    )
    .map_err(|e| format!("before the reset: {e}"))?;
    let slots = hello.slots.max(1) as u64;
    let mut old: HashSet<u64> = HashSet::new();
    for i in 0..slots.min(credit as u64) {
        let unit = Unit::sleep(100 + i, SLEEP.as_micros() as u64);
        peer.send_work(std::slice::from_ref(&unit));
        old.insert(unit.id);
    }
    let queued: Vec<Unit> = (0..4).map(|i| Unit::noop(200 + i, vec![i as u8])).collect();
    if (slots as usize + queued.len()) <= credit {
        old.extend(queued.iter().map(|u| u.id));
        peer.send_work(&queued);
    }
    // Long enough for the worker to have started the sleeps.
    let _ = wait_heartbeats(peer, Duration::from_millis(200))?;
    peer.send(&Message::Reset(Reset {
        reason: "conformance suite: reset".into(),
    }));
    let reset_at = Instant::now();
    peer.heartbeat_every = None;
    let (hello, frame) = loop {
        let Some(incoming) = peer.recv(Duration::from_secs(10)) else {
            return Err("no hello within 10 s of a reset (§3 reset)".into());
        };
        match incoming.msg {
            Msg::Hello { hello, frame } => break (hello, frame),
            // Sent before the worker read the reset: acceptable.
            Msg::Results(_) | Msg::Heartbeat => {}
            other => {
                return Err(format!(
                    "after the reset the worker sent {}",
                    other.describe()
                ))
            }
        }
    };
    // A reset that crossed the new hello answers something sent before it: ignored (§3 reset's
    // first rule). A worker that acts on it says hello yet again, which fails below.
    peer.send_plain(&Message::Reset(Reset {
        reason: "conformance suite: a reset that crossed your hello".into(),
    }));
    peer.register_hello(hello, frame, patient_welcome())?;
    peer.heartbeat_every = Some(Duration::from_millis(200));
    let fresh = Unit::noop(300, vec![0x93, 3, 0, 0]);
    let batch = peer.send_work(std::slice::from_ref(&fresh));
    let mut fresh_answered = false;
    let watch_until = reset_at + SLEEP * 3;
    while !fresh_answered || Instant::now() < watch_until {
        let Some(incoming) = peer.recv(PATIENCE) else {
            return Err("the first unit of the new session was not answered within 15 s".into());
        };
        match incoming.msg {
            Msg::Heartbeat => {}
            Msg::Results(results) => {
                for (id, outcome) in &results.results {
                    if old.contains(id) {
                        return Err(format!(
                            "unit {id} of the session before the reset was answered after the \
                             new hello (§3 reset: drop every unit held): {}",
                            Msg::Results(results.clone()).describe()
                        ));
                    }
                    if *id != fresh.id || results.batch != batch || fresh_answered {
                        return Err(format!(
                            "unexpected answer in the new session: {}",
                            Msg::Results(results.clone()).describe()
                        ));
                    }
                    fresh.judge(outcome)?;
                    fresh_answered = true;
                }
            }
            Msg::Hello { .. } => {
                return Err(
                    "the worker said hello again after its welcome: it acted on a reset \
                            that crossed its hello (§3 reset: ignore one that arrives between \
                            the hello and the welcome), or retried a hello that was answered \
                            at once"
                        .into(),
                )
            }
            other => {
                return Err(format!(
                    "in the session after the reset the worker sent {}",
                    other.describe()
                ))
            }
        }
    }
    Ok(())
}

/// `malformed`: after garbage, a non-map value, a map with an unknown type, a work message
/// missing its fields, a truncated map and (secured) a forged sealed frame, each followed by
/// work, the worker stays up and answers that work correctly.
///
/// The protocol does not say how a worker treats a bad frame from the delegator; ganger's drops
/// it and keeps its session. Saying hello again instead is accepted with a warning: the
/// delegator then requeues what the worker held, so nothing is lost, and a worker cannot tell a
/// garbled `work` from other garbage. What fails: exiting, falling silent, answering wrongly, or
/// answering the old session's units in the new one.
pub(super) fn malformed(ctx: &mut Ctx<'_>) -> Result<(), String> {
    let peer = ctx.start()?;
    let hello = peer.register(malformed_welcome())?;
    peer.heartbeat_every = Some(Duration::from_millis(200));
    let credit = capacity(&hello);
    let mut bad: Vec<(&str, Vec<u8>)> = vec![
        ("garbage bytes", b"\xde\xad\xbe\xef garbage".to_vec()),
        (
            "[1, 2, 3], MessagePack but not a map",
            b"\x93\x01\x02\x03".to_vec(),
        ),
        (
            "{type: frobnicate, x: 1}, an unknown message type",
            b"\x82\xa4type\xaafrobnicate\xa1x\x01".to_vec(),
        ),
        (
            "{type: work} without batch or units",
            b"\x81\xa4type\xa4work".to_vec(),
        ),
        ("a map cut short", b"\x83\xa4type\xa4work\xa5batch".to_vec()),
    ];
    if peer.secured() {
        // A forged frame with a counter far ahead: a worker that advanced its counter before
        // checking the tag would refuse every genuine frame after it.
        let mut forged = vec![0xc1];
        forged.extend_from_slice(&(1u64 << 40).to_be_bytes());
        forged.extend_from_slice(&[0x5a; 40]);
        bad.push(("a forged sealed frame (counter 2^40, a wrong tag)", forged));
    }
    // One at a time, each followed by work, so that a failure names the frame that caused it.
    for (i, (what, frame)) in bad.into_iter().enumerate() {
        if frame.first() == Some(&0xc1) {
            peer.send_raw(&frame);
        } else {
            peer.send_bytes(frame.clone());
            if peer.secured() {
                // The same in plaintext, which a worker with a secret must refuse too.
                peer.send_raw(&frame);
            }
        }
        let hellos = peer.hellos;
        let base = 100 * i as u64;
        let why = |e: String| format!("after {what} from the suite: {e}");
        match drive(peer, varied_units(base, i as u8), 4, credit, PATIENCE) {
            Ok(driven) => warn_unmeasured(peer, &driven),
            Err(e) if peer.hellos == hellos => return Err(why(e)),
            Err(_) => {
                // It registered again: the delegator requeues what it held, nothing is lost.
                // Acceptable, but then it must serve the new session, and only that.
                let (hello, frame) = peer.last_hello.clone().ok_or("a hello went missing")?;
                peer.register_hello(hello, frame, malformed_welcome())
                    .map_err(why)?;
                drive(peer, varied_units(base + 50, i as u8), 4, credit, PATIENCE)
                    .map_err(|e| why(format!("in the session it started by saying hello: {e}")))?;
                peer.warnings.push(format!(
                    "after {what} the worker said hello again (the delegator requeues what it \
                     held); dropping the frame and keeping the session is what ganger's worker \
                     does"
                ));
            }
        }
    }
    if let Some(status) = peer.exited() {
        return Err(format!(
            "the worker exited ({status}) after malformed frames"
        ));
    }
    Ok(())
}

/// One unit of each kind, ids from `base`.
fn varied_units(base: u64, tag: u8) -> Vec<Unit> {
    vec![
        Unit::noop(base + 1, vec![0x92, 0xc3, tag & 0x7f]),
        Unit::sleep(base + 2, 0),
        Unit::parity(base + 3, 5),
        Unit::parity(base + 4, 6),
    ]
}

/// A timeout far beyond the check's patience: a worker whose session a bad frame broke (a
/// forged frame that moved its replay counter, say) cannot recover through its silence timer
/// within the check, only by handling the frame right.
fn malformed_welcome() -> Welcome {
    Welcome {
        timeout_ms: 60_000,
        ..patient_welcome()
    }
}

/// Listens for `period`, keeping whatever arrives; a hello or an invalid frame is a failure.
pub(super) fn wait_heartbeats(peer: &mut Peer, period: Duration) -> Result<Vec<Incoming>, String> {
    let until = Instant::now() + period;
    let mut got = Vec::new();
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match peer.recv(left) {
            None => {}
            Some(incoming) => match &incoming.msg {
                Msg::Heartbeat | Msg::Results(_) | Msg::Goodbye(_) => got.push(incoming),
                other => {
                    return Err(format!(
                        "unexpectedly, the worker sent {}",
                        other.describe()
                    ))
                }
            },
        }
    }
    Ok(got)
}

/// `reconnect`: the ROUTER closes and a new one binds the same port a second later, as a
/// restarted delegator: the worker says hello to it (prompted by the `reset` a delegator sends
/// an unknown peer, or on its own after `timeout_ms`) and serves it.
pub(super) fn reconnect(ctx: &mut Ctx<'_>) -> Result<(), String> {
    let peer = ctx.start()?;
    let hello = peer.register(Welcome {
        timeout_ms: 3000,
        ..patient_welcome()
    })?;
    peer.heartbeat_every = Some(Duration::from_millis(200));
    let credit = capacity(&hello);
    drive(peer, vec![Unit::noop(1, vec![1])], 1, credit, PATIENCE)
        .map_err(|e| format!("before the restart: {e}"))?;
    peer.heartbeat_every = None;
    peer.rebind(Duration::from_secs(1))?;
    let restarted = Instant::now();
    let mut last_reset: Option<Instant> = None;
    let (hello, frame) = loop {
        let Some(incoming) = peer.recv(Duration::from_millis(500)) else {
            if restarted.elapsed() > PATIENCE {
                return Err(format!(
                    "no hello within {} s of the ROUTER's restart on {}",
                    PATIENCE.as_secs(),
                    peer.endpoint
                ));
            }
            continue;
        };
        match incoming.msg {
            Msg::Hello { hello, frame } => break (hello, frame),
            // What a delegator answers a peer it does not know (§7, §10.4), at most twice a
            // second so that a chatty worker does not make it a flood.
            _ => {
                if last_reset.is_none_or(|at| at.elapsed() > Duration::from_millis(500)) {
                    peer.send_plain(&Message::Reset(Reset {
                        reason: "unknown worker: send hello first".into(),
                    }));
                    last_reset = Some(Instant::now());
                }
            }
        }
    };
    peer.register_hello(hello, frame, patient_welcome())?;
    peer.heartbeat_every = Some(Duration::from_millis(200));
    let driven = drive(
        peer,
        vec![
            Unit::noop(2, vec![0x92, 2, 2]),
            Unit::sleep(3, 0),
            Unit::parity(4, 9),
        ],
        3,
        credit,
        PATIENCE,
    )
    .map_err(|e| format!("after the restart: {e}"))?;
    warn_unmeasured(peer, &driven);
    Ok(())
}
