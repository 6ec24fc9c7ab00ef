//! The checks, and what they share: units with known answers and a driver that keeps work
//! outstanding within the worker's credit and verifies every answer.

mod basic;
mod goodbye;
mod lifecycle;

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use ganger_core::payload;
use ganger_core::protocol::Welcome;

use crate::peer::{quote_bytes, Incoming, Msg, Peer};
use crate::Options;

/// One check: a name, the section of PROTOCOL.md it enforces, and the conversation.
pub(crate) struct Check {
    pub name: &'static str,
    pub section: &'static str,
    pub summary: &'static str,
    run: fn(&mut Ctx<'_>) -> Result<(), String>,
}

/// Every check, in the order they run (the long ones first, so parallel runs end together).
pub(crate) const ALL: &[Check] = &[
    Check {
        name: "goodbye",
        section: "§3 goodbye, §4 step 8",
        summary: "SIGTERM: goodbye hands back unstarted units, running ones are answered, exit 0",
        run: goodbye::goodbye,
    },
    Check {
        name: "heartbeat",
        section: "§3 heartbeat, §4 step 4",
        summary: "heartbeats while idle and during a 3 s unit, never silent past timeout_ms / 2",
        run: lifecycle::heartbeat,
    },
    Check {
        name: "reconnect",
        section: "§1, §4 step 5, §7",
        summary: "a ROUTER closed and bound again on the same port gets a hello and is served",
        run: lifecycle::reconnect,
    },
    Check {
        name: "hello",
        section: "§3 hello, §4 step 1",
        summary: "a valid first hello (protocol 2, job types, slots), said again if unanswered",
        run: basic::hello,
    },
    Check {
        name: "handshake",
        section: "§4 step 2, §10.2",
        summary: "welcome accepted; secured: correct proof, stale challenge ignored, sealed work",
        run: basic::handshake,
    },
    Check {
        name: "version-mismatch",
        section: "§3 reject, §9",
        summary: "after a reject naming protocol 99 the worker exits non-zero, sending only hellos",
        run: basic::version_mismatch,
    },
    Check {
        name: "results",
        section: "§3 work, §3 results",
        summary: "every unit of all three job types answered once, correctly, in its batch",
        run: basic::results,
    },
    Check {
        name: "batching",
        section: "§3 results, §3 welcome max_frame, §10.3",
        summary: "500 trivial units in fewer messages; a work frame over max_frame accepted; results frames within max_frame",
        run: basic::batching,
    },
    Check {
        name: "credit",
        section: "§3 hello (credit)",
        summary: "served at slots + prefetch outstanding; never more than slots units at once",
        run: basic::credit,
    },
    Check {
        name: "silence",
        section: "§3 welcome timeout_ms, §4 step 5",
        summary: "a silent delegator gets a new hello after about timeout_ms",
        run: lifecycle::silence,
    },
    Check {
        name: "reset",
        section: "§3 reset, §4 step 6",
        summary: "reset: a new hello, and old units are not answered in the new session",
        run: lifecycle::reset,
    },
    Check {
        name: "malformed",
        section: "§2, §7, §10.3",
        summary: "garbage, non-map, unknown type, forged seal: dropped; later work still served",
        run: lifecycle::malformed,
    },
];

/// Runs one check against a fresh worker; a panic in the check is its failure.
pub(crate) fn run_one(check: &Check, options: &Options) -> (Result<(), String>, Vec<String>) {
    let mut ctx = Ctx {
        options,
        name: check.name,
        peer: None,
    };
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| (check.run)(&mut ctx)))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!(
                "the check itself panicked (a bug in the suite): {what}"
            ))
        });
    let mut warnings = Vec::new();
    let outcome = match ctx.peer.take() {
        Some(mut peer) => {
            warnings = std::mem::take(&mut peer.warnings);
            let outcome = outcome.map_err(|why| {
                let status = match peer.exited() {
                    Some(status) => format!("the worker has exited ({status})"),
                    None => "the worker is still running".into(),
                };
                let tail = peer.output_tail();
                if tail.is_empty() {
                    format!("{why} [{status}; it printed nothing]")
                } else {
                    format!("{why} [{status}; the tail of its output:\n{tail}\n]")
                }
            });
            drop(peer);
            outcome
        }
        None => outcome,
    };
    (outcome, warnings)
}

/// What a check works with: the options and, once started, its one worker.
pub(crate) struct Ctx<'o> {
    options: &'o Options,
    name: &'static str,
    peer: Option<Peer>,
}

impl Ctx<'_> {
    /// Binds the ROUTER and starts the worker.
    fn start(&mut self) -> Result<&mut Peer, String> {
        let peer = Peer::start(self.options, self.name)?;
        Ok(self.peer.insert(peer))
    }
}

/// A welcome for checks that do not probe timing: heartbeats every 200 ms both ways, and a
/// timeout long enough that a loaded machine never trips it.
fn patient_welcome() -> Welcome {
    Welcome {
        worker_id: 0,
        heartbeat_ms: 200,
        timeout_ms: 10_000,
        max_frame: 64 << 20,
    }
}

/// Registers the worker with a patient welcome and heartbeats it from then on.
fn register_patiently(peer: &mut Peer) -> Result<ganger_core::protocol::Hello, String> {
    let hello = peer.register(patient_welcome())?;
    peer.heartbeat_every = Some(Duration::from_millis(200));
    Ok(hello)
}

/// The most units the suite may have outstanding at a worker (§3 credit), capped at 1000.
fn capacity(hello: &ganger_core::protocol::Hello) -> usize {
    hello.capacity().min(1000) as usize
}

/// A unit with a known answer.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub id: u64,
    pub job_type: &'static str,
    pub payload: Vec<u8>,
    expect: Expect,
}

#[derive(Debug, Clone)]
enum Expect {
    Bytes(Vec<u8>),
    Int(i64),
    Failure,
}

impl Unit {
    fn noop(id: u64, payload: Vec<u8>) -> Unit {
        Unit {
            id,
            job_type: "noop",
            expect: Expect::Bytes(payload.clone()),
            payload,
        }
    }

    fn sleep(id: u64, micros: u64) -> Unit {
        Unit {
            id,
            job_type: "sleep",
            payload: payload::to_bytes(&micros).unwrap_or_default(),
            expect: Expect::Int(micros as i64),
        }
    }

    fn parity(id: u64, n: i64) -> Unit {
        Unit {
            id,
            job_type: "panic-if-odd",
            payload: payload::to_bytes(&n).unwrap_or_default(),
            expect: if n % 2 == 0 {
                Expect::Int(n)
            } else {
                Expect::Failure
            },
        }
    }

    /// Why `outcome` is not this unit's answer, if it is not.
    fn judge(&self, outcome: &Result<Vec<u8>, String>) -> Result<(), String> {
        let wrong = |what: String| {
            Err(format!(
                "unit {} ({} of {}): {what}",
                self.id,
                self.job_type,
                quote_bytes(&self.payload)
            ))
        };
        match (&self.expect, outcome) {
            (Expect::Bytes(want), Ok(got)) if want == got => Ok(()),
            (Expect::Bytes(want), Ok(got)) => wrong(format!(
                "output {} but noop returns its payload {}",
                quote_bytes(got),
                quote_bytes(want)
            )),
            (Expect::Int(want), Ok(got)) => match payload::from_bytes::<i64>(got) {
                Ok(n) if n == *want => Ok(()),
                _ => wrong(format!(
                    "output {} but the MessagePack integer {want} was due",
                    quote_bytes(got)
                )),
            },
            (Expect::Failure, Err(_)) => Ok(()),
            (Expect::Failure, Ok(got)) => wrong(format!(
                "succeeded with {} but an odd input must fail as [id, false, message]",
                quote_bytes(got)
            )),
            (_, Err(message)) => wrong(format!("failed with {message:?} but should succeed")),
        }
    }
}

/// The MessagePack encoding of the string `text`.
fn str_payload(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 5);
    rmp::encode::write_str(&mut out, text).unwrap_or_default();
    out
}

/// What [`drive`] saw.
#[derive(Debug, Default)]
struct Driven {
    /// Every `results` message: when it came, its frame size, its batch and unit count.
    messages: Vec<(Instant, usize, u64, usize)>,
    /// When each unit's answer arrived, in arrival order.
    answered: Vec<(u64, Instant)>,
    /// When each batch was sent (taken just before the send).
    sent: HashMap<u64, Instant>,
    /// Messages with `elapsed_us` 0.
    unmeasured: usize,
}

/// Sends `units` in batches of at most `batch_size`, never more than `credit` outstanding,
/// refilling as answers come, and checks every answer: right batch, right output, exactly
/// once. Gives up when nothing useful arrives for `patience`.
fn drive(
    peer: &mut Peer,
    units: Vec<Unit>,
    batch_size: usize,
    credit: usize,
    patience: Duration,
) -> Result<Driven, String> {
    let mut queue: VecDeque<Unit> = units.into();
    let mut outstanding: HashMap<u64, (u64, Unit)> = HashMap::new();
    let mut answered_ids: HashSet<u64> = HashSet::new();
    let mut driven = Driven::default();
    let mut last_progress = Instant::now();
    loop {
        while !queue.is_empty() && outstanding.len() < credit {
            let n = batch_size.min(credit - outstanding.len()).min(queue.len());
            let batch_units: Vec<Unit> = queue.drain(..n).collect();
            // Stamped before sending: the worker may receive and start the batch before
            // this thread runs again, and a lower bound must not count that time.
            let before = Instant::now();
            let batch = peer.send_work(&batch_units);
            driven.sent.insert(batch, before);
            for unit in batch_units {
                outstanding.insert(unit.id, (batch, unit));
            }
        }
        if outstanding.is_empty() {
            return Ok(driven);
        }
        let left = patience.saturating_sub(last_progress.elapsed());
        let Some(incoming) = peer.recv(left.min(Duration::from_millis(500))) else {
            if let Some(status) = peer.exited() {
                return Err(format!(
                    "the worker exited ({status}) with {} units unanswered",
                    outstanding.len()
                ));
            }
            if !left.is_zero() {
                continue;
            }
            let mut ids: Vec<u64> = outstanding.keys().copied().collect();
            ids.sort_unstable();
            ids.truncate(10);
            return Err(format!(
                "waited {} s without an answer; {} units unanswered (ids {ids:?}…)",
                patience.as_secs_f64(),
                outstanding.len()
            ));
        };
        match incoming.msg {
            Msg::Results(results) => {
                last_progress = Instant::now();
                driven.messages.push((
                    incoming.at,
                    incoming.size,
                    results.batch,
                    results.results.len(),
                ));
                if results.elapsed_us == 0 {
                    driven.unmeasured += 1;
                }
                for (id, outcome) in &results.results {
                    let Some((batch, unit)) = outstanding.remove(id) else {
                        return Err(if answered_ids.contains(id) {
                            format!(
                                "unit {id} answered twice: again in {}",
                                quote_results(&results)
                            )
                        } else {
                            format!(
                                "a result for unit {id}, which is not outstanding in this \
                                 session: {}",
                                quote_results(&results)
                            )
                        });
                    };
                    if batch != results.batch {
                        return Err(format!(
                            "unit {id} came in batch {batch} but was answered as batch {}",
                            results.batch
                        ));
                    }
                    unit.judge(outcome)?;
                    answered_ids.insert(*id);
                    driven.answered.push((*id, incoming.at));
                }
            }
            Msg::Heartbeat => {}
            other => {
                return Err(format!(
                    "while {} units were outstanding, received {}",
                    outstanding.len(),
                    other.describe()
                ))
            }
        }
    }
}

fn quote_results(results: &crate::peer::ResultsMsg) -> String {
    Msg::Results(results.clone()).describe()
}

/// Listens for `period` and fails on anything but heartbeats (a late duplicate answer, a
/// hello, …).
fn quiet(peer: &mut Peer, period: Duration, what: &str) -> Result<(), String> {
    let until = Instant::now() + period;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match peer.recv(left) {
            Some(Incoming {
                msg: Msg::Heartbeat,
                ..
            })
            | None => {}
            Some(other) => return Err(format!("{what}, received {}", other.msg.describe())),
        }
    }
    Ok(())
}

/// Warns when `results` messages carried no `elapsed_us` (adaptive batching then stays off).
fn warn_unmeasured(peer: &mut Peer, driven: &Driven) {
    if driven.unmeasured > 0 {
        peer.warnings.push(format!(
            "{} of {} results messages had elapsed_us 0 (§3: the delegator then keeps this \
             worker's batches at slots units)",
            driven.unmeasured,
            driven.messages.len()
        ));
    }
}
