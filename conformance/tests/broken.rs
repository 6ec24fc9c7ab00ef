//! The suite can fail: a small worker written here, correct but for one deliberate defect per
//! mode, is run through the suite, and the check that enforces the broken rule must fail (and
//! the others it is run with must pass, so the failure is the defect's and not the worker's).
//!
//! The worker runs as a real process: this test binary started again with
//! `BROKEN_WORKER_MODE` set, running only `broken_worker_entry`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ganger_conformance::Options;
use ganger_core::protocol::{
    self, Goodbye, Hello, Message, Results, UnitResultRef, PROTOCOL_VERSION,
};
use ganger_core::task::Registry;

const MODE_VAR: &str = "BROKEN_WORKER_MODE";

/// Runs the suite's `checks` against the worker in `mode`.
fn suite(mode: &str, checks: &[&str]) -> ganger_conformance::Report {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut options = Options::new([
        exe.to_string_lossy().into_owned(),
        "--exact".into(),
        "broken_worker_entry".into(),
        "--nocapture".into(),
        "--test-threads=1".into(),
    ]);
    options.env = vec![(MODE_VAR.into(), mode.into())];
    options.checks = checks.iter().map(|s| s.to_string()).collect();
    let report = ganger_conformance::run(&options);
    print!("mode {mode}:\n{report}");
    report
}

fn assert_fails(report: &ganger_conformance::Report, check: &str, quoting: &str) {
    let outcome = &report.check(check).expect("the check ran").outcome;
    match outcome {
        Err(why) => assert!(
            why.contains(quoting),
            "{check} failed, but not for `{quoting}`: {why}"
        ),
        Ok(()) => panic!("{check} passed against a worker that breaks it"),
    }
}

fn assert_passes(report: &ganger_conformance::Report, check: &str) {
    let outcome = &report.check(check).expect("the check ran").outcome;
    assert!(outcome.is_ok(), "{check} should pass: {outcome:?}");
}

#[test]
fn the_small_worker_passes_what_it_does_not_break() {
    let report = suite(
        "correct",
        &[
            "hello",
            "handshake",
            "results",
            "heartbeat",
            "credit",
            "reset",
            "goodbye",
        ],
    );
    assert!(report.passed(), "{report}");
}

#[test]
fn a_unit_answered_twice_fails_results() {
    let report = suite("double", &["results", "hello"]);
    assert_fails(&report, "results", "answered twice");
    assert_passes(&report, "hello");
}

#[test]
fn evaluating_on_the_io_thread_fails_heartbeat() {
    let report = suite("no-heartbeat-while-busy", &["heartbeat", "results"]);
    assert_fails(&report, "heartbeat", "must heartbeat while");
    assert_passes(&report, "results");
}

#[test]
fn running_every_unit_at_once_fails_credit() {
    let report = suite("unlimited", &["credit", "results"]);
    assert_fails(&report, "credit", "runs more units than its slots");
    assert_passes(&report, "results");
}

#[test]
fn finishing_everything_before_saying_goodbye_fails_goodbye() {
    let report = suite("goodbye-late", &["goodbye"]);
    assert_fails(
        &report,
        "goodbye",
        "started units it should have handed back",
    );
}

#[test]
fn answering_old_units_after_a_reset_fails_reset() {
    let report = suite("keeps-units-after-reset", &["reset", "malformed"]);
    assert_fails(&report, "reset", "answered after the new hello");
    assert_passes(&report, "malformed");
}

#[test]
fn obeying_a_reset_that_crossed_the_hello_fails_reset() {
    let report = suite("obeys-a-reset-that-crossed-its-hello", &["reset"]);
    assert_fails(&report, "reset", "acted on a reset that crossed its hello");
}

#[test]
fn answering_work_sent_before_the_welcome_fails_handshake() {
    let report = suite("answers-work-before-its-welcome", &["handshake"]);
    assert_fails(&report, "handshake", "a result for unit 777");
}

#[test]
fn dying_on_a_garbage_frame_fails_malformed() {
    let report = suite("dies-on-garbage", &["malformed", "results"]);
    assert_fails(
        &report,
        "malformed",
        "after garbage bytes from the suite: the worker exited",
    );
    assert_passes(&report, "results");
}

#[test]
fn starting_work_that_crossed_the_goodbye_fails_goodbye() {
    let report = suite("starts-late-work", &["goodbye"]);
    assert_fails(
        &report,
        "goodbye",
        "started units it should have handed back",
    );
}

#[test]
fn a_wrong_slots_count_fails_hello() {
    let report = suite("wrong-slots", &["hello"]);
    assert_fails(&report, "hello", "slots 3");
}

/// The broken worker's `main`, when this binary was started as one.
#[test]
fn broken_worker_entry() {
    if let Ok(mode) = std::env::var(MODE_VAR) {
        let code = broken_worker(&mode);
        std::process::exit(code);
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigterm(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// A plaintext worker, simple on purpose: the I/O loop owns the DEALER; units run on threads
/// of their own, at most `slots` at once (unless the mode says otherwise).
fn broken_worker(mode: &str) -> i32 {
    // SAFETY: installs an async-signal-safe handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_sigterm as *const () as libc::sighandler_t);
    }
    let connect = std::env::var("GANGER_CONNECT").expect("GANGER_CONNECT");
    let slots: u32 = std::env::var("GANGER_THREADS").map_or(2, |t| t.parse().unwrap_or(2));
    let context = zmq::Context::new();
    let socket = context.socket(zmq::DEALER).expect("a DEALER");
    socket.set_immediate(true).expect("immediate");
    socket.set_linger(2000).expect("linger");
    socket.connect(&connect).expect("connect");
    let registry = std::sync::Arc::new(Registry::with_builtins());
    let send = |message: &Message<'_>| {
        let mut frame = Vec::new();
        protocol::encode(message, &mut frame);
        let _ = socket.send(frame, 0);
    };
    let hello = Message::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        name: "broken".into(),
        host: String::new(),
        job_types: vec!["noop".into(), "sleep".into(), "panic-if-odd".into()],
        slots: if mode == "wrong-slots" {
            slots + 1
        } else {
            slots
        },
        prefetch: 64,
        nonce: None,
    });
    // (generation, batch, unit id, outcome): answers from before a reset are dropped.
    type Done = (u64, u64, u64, Result<Vec<u8>, String>);
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let mut generation = 0u64;
    let mut queue: VecDeque<(u64, u64, String, Vec<u8>)> = VecDeque::new();
    let mut running = 0usize;
    let mut welcome = None;
    let mut hello_at = Instant::now() - Duration::from_secs(10);
    let mut last_sent = Instant::now();
    let mut stopping = false;
    loop {
        if STOP.load(Ordering::SeqCst) && !stopping {
            stopping = true;
            if mode != "goodbye-late" {
                let returned = queue.drain(..).map(|(_, id, ..)| id).collect();
                send(&Message::Goodbye(Goodbye { returned }));
            }
        }
        if stopping && queue.is_empty() && running == 0 {
            if mode == "goodbye-late" {
                send(&Message::Goodbye(Goodbye::default()));
            }
            return 0;
        }
        if welcome.is_none() && hello_at.elapsed() > Duration::from_secs(1) && !stopping {
            send(&hello);
            hello_at = Instant::now();
            last_sent = hello_at;
        }
        let limit = if mode == "unlimited" {
            usize::MAX
        } else {
            slots as usize
        };
        while running < limit {
            let Some((batch, id, job_type, payload)) = queue.pop_front() else {
                break;
            };
            if mode == "no-heartbeat-while-busy" {
                let _ = done_tx.send((generation, batch, id, registry.run(&job_type, &payload)));
                running += 1;
                continue;
            }
            let registry = registry.clone();
            let done_tx = done_tx.clone();
            running += 1;
            std::thread::spawn(move || {
                let _ = done_tx.send((generation, batch, id, registry.run(&job_type, &payload)));
            });
        }
        while let Ok((done_generation, batch, id, outcome)) = done_rx.try_recv() {
            if done_generation != generation {
                continue;
            }
            running -= 1;
            let result = UnitResultRef {
                id,
                outcome: outcome.as_deref().map_err(String::as_str),
            };
            let copies = if mode == "double" { 2 } else { 1 };
            send(&Message::Results(Results {
                batch,
                elapsed_us: 1,
                results: vec![result; copies],
            }));
            last_sent = Instant::now();
        }
        if let Some(heartbeat_ms) = welcome {
            if last_sent.elapsed() >= Duration::from_millis(heartbeat_ms) {
                send(&Message::Heartbeat);
                last_sent = Instant::now();
            }
        }
        let mut items = [socket.as_poll_item(zmq::POLLIN)];
        let _ = zmq::poll(&mut items, 10);
        while let Ok(frame) = socket.recv_bytes(zmq::DONTWAIT) {
            match protocol::decode(&frame) {
                Ok(Message::Welcome(w)) => welcome = Some(w.heartbeat_ms),
                Ok(Message::Work(work)) if stopping && mode != "starts-late-work" => {
                    let returned = work.units.iter().map(|u| u.id).collect();
                    send(&Message::Goodbye(Goodbye { returned }));
                }
                Ok(Message::Work(work))
                    if welcome.is_some() || mode == "answers-work-before-its-welcome" =>
                {
                    for unit in work.units {
                        let entry = (
                            work.batch,
                            unit.id,
                            unit.job_type.to_string(),
                            unit.payload.to_vec(),
                        );
                        queue.push_back(entry);
                    }
                }
                // Between its hello and the welcome a reset answers something older: ignored.
                Ok(Message::Reset(_))
                    if welcome.is_none() && mode != "obeys-a-reset-that-crossed-its-hello" => {}
                Ok(Message::Reset(_)) => {
                    welcome = None;
                    // At once, before reading further: a welcome right behind the reset then
                    // finds this hello already sent.
                    send(&hello);
                    hello_at = Instant::now();
                    if mode != "keeps-units-after-reset" {
                        queue.clear();
                        generation += 1;
                        running = 0;
                    }
                }
                Ok(Message::Reject(_)) => return 2,
                Err(_) if mode == "dies-on-garbage" => return 1,
                _ => {}
            }
        }
    }
}
