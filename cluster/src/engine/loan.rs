//! Lending the engine to the thread that waits on it.
//!
//! A client that does nothing but submit and wait for outcomes (the MCMC driver on a cheap
//! likelihood) pays two thread wake-ups per round trip to talk to the engine thread: one for
//! the engine to see its units, one for the client to see their outcomes. Lent the engine, it
//! runs the loop's turns itself while it waits, so a result read from the socket is in its
//! hands without a hand-off. The socket still has one owner at a time: the engine thread
//! sends the whole [`Engine`] over a channel and blocks until it comes back.
//!
//! While the loan lasts, the borrowing thread must not wait on the engine in any other way
//! (`Delegator::stats`, a full queue budget): nobody else would run the turn it waits for.
//! Other threads' commands are served on the borrower's turns, so it must turn often, and give
//! the engine back before anything slow (a checkpoint, the summary).
//!
//! The borrower's own commands need no wake-up: the engine is not sleeping in another thread
//! but waiting for this one's next turn, which looks at queued commands before it sleeps.
//! [`wakes_needed`] tells a client whether the engine it is about to command is lent to the
//! calling thread (saving a write to the wake pipe and its two reads per round trip).

use std::cell::Cell;
use std::marker::PhantomData;
use std::time::Duration;

use crossbeam_channel::Sender;
use ganger_transport::Waker;

use super::{Command, Engine};
use crate::Stats;

/// The engine, borrowed by this thread until dropped ([`Delegator::lend_engine`]).
///
/// While it lasts, the thread runs the engine's loop itself with [`turn`](Self::turn), and
/// must not wait on the engine in any other way: nobody else would run the turn it waits for.
/// So on that thread, no `Delegator::stats` (use [`stats`](Self::stats)), no `submit`, `open`
/// or `submit_payloads` (they wait for the engine's reply: open jobs before borrowing), no
/// blocking `Job::extend` or iteration of a `Job` (use `Job::try_extend` and
/// `Job::try_next_raw` between turns). Other threads' commands are served on its
/// turns, so it must turn often, and drop the loan before anything slow.
///
/// [`Delegator::lend_engine`]: crate::Delegator::lend_engine
pub struct EngineLoan<'a> {
    engine: Option<Engine>,
    /// Inside a turn: if the loan is dropped now, the turn panicked and the engine's state
    /// may be half-updated, so it is dropped (the delegator stops) instead of going back.
    turning: bool,
    back: Sender<Engine>,
    /// The engine's [`Waker::id`], marked lent to this thread while the loan lasts.
    lent_id: usize,
    /// Borrowed from a running delegator, which cannot stop meanwhile.
    _delegator: PhantomData<&'a crate::Delegator>,
    /// Stays on the thread that borrowed it: that thread is marked as holding the engine
    /// (`LENT_HERE`), and the mark is cleared where the loan drops.
    _not_send: PhantomData<*const ()>,
}

impl std::fmt::Debug for EngineLoan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineLoan").finish_non_exhaustive()
    }
}

thread_local! {
    /// The [`Waker::id`] of the engine lent to this thread, 0 for none.
    static LENT_HERE: Cell<usize> = const { Cell::new(0) };
}

/// Whether a command for the engine `waker` wakes must wake it: false when that engine is lent
/// to the calling thread, whose next turn takes queued commands without sleeping first.
pub(crate) fn wakes_needed(waker: &Waker) -> bool {
    LENT_HERE.get() != waker.id()
}

/// Asks the engine thread for its engine; `None` if it has stopped or is lent already.
pub(crate) fn lend<'a>(commands_tx: &Sender<Command>, waker: &Waker) -> Option<EngineLoan<'a>> {
    if LENT_HERE.get() == waker.id() {
        // Lent to this very thread: only its own turns could answer the request, and it would
        // be waiting for the answer instead of turning.
        return None;
    }
    let (to, from_engine) = crossbeam_channel::bounded(1);
    let (back, to_engine) = crossbeam_channel::bounded(1);
    commands_tx
        .send(Command::Lend {
            to,
            back: to_engine,
        })
        .ok()?;
    waker.wake();
    let engine = from_engine.recv().ok()?;
    // A thread holds at most one loan at a time: `OnWorkers` keeps one, and a second loan of
    // the same engine is refused (above on this thread, by the engine on any other).
    LENT_HERE.set(waker.id());
    Some(EngineLoan {
        engine: Some(engine),
        turning: false,
        back,
        lent_id: waker.id(),
        _delegator: PhantomData,
        _not_send: PhantomData,
    })
}

impl EngineLoan<'_> {
    /// Runs one turn of the engine's loop, waiting at most `wait` for something to happen;
    /// false once the engine has stopped.
    pub fn turn(&mut self, wait: Duration) -> bool {
        let engine = self.engine.as_mut().expect("held until dropped");
        self.turning = true;
        let going = engine.turn(wait.as_millis().min(i64::MAX as u128) as i64);
        self.turning = false;
        going
    }

    /// What `Delegator::stats` would return, without waiting on a turn.
    pub fn stats(&self) -> Stats {
        self.engine.as_ref().expect("held until dropped").stats()
    }
}

impl Drop for EngineLoan<'_> {
    fn drop(&mut self) {
        if LENT_HERE.get() == self.lent_id {
            LENT_HERE.set(0);
        }
        if let Some(engine) = self.engine.take() {
            if self.turning {
                // As when the engine thread itself panics: the delegator stops, and its
                // clients see it stopped (the engine closes the queue budget as it drops).
                return;
            }
            // The engine thread waits for it; if it is gone, the engine stops here.
            let _ = self.back.send(engine);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use ganger_core::protocol::{self, Hello, Message, Results, UnitResultRef, PROTOCOL_VERSION};

    use crate::{Delegator, DelegatorConfig, JobOptions};

    fn start() -> Delegator {
        Delegator::start(DelegatorConfig {
            bind: "tcp://127.0.0.1:0".into(),
            ..DelegatorConfig::default()
        })
        .unwrap()
    }

    /// Turns `loan` until `done` says so, failing after 10 s.
    fn turn_until(
        loan: &mut super::EngineLoan<'_>,
        mut done: impl FnMut(&super::EngineLoan<'_>) -> bool,
    ) {
        let limit = Instant::now() + std::time::Duration::from_secs(10);
        while !done(loan) {
            assert!(Instant::now() < limit, "gave up after 10 s");
            assert!(loan.turn(std::time::Duration::from_millis(5)));
        }
    }

    /// A worker speaking the protocol by hand on a DEALER: hello, then echo every unit.
    struct Echo {
        socket: zmq::Socket,
        _context: zmq::Context,
    }

    impl Echo {
        fn connect(endpoint: &str) -> Echo {
            let context = zmq::Context::new();
            let socket = context.socket(zmq::DEALER).unwrap();
            socket.connect(endpoint).unwrap();
            let mut frame = Vec::new();
            protocol::encode(
                &Message::Hello(Hello {
                    protocol: PROTOCOL_VERSION,
                    name: "echo".into(),
                    host: "test".into(),
                    job_types: vec!["echo".into()],
                    slots: 1,
                    prefetch: 8,
                    nonce: None,
                }),
                &mut frame,
            );
            socket.send(frame, 0).unwrap();
            Echo {
                socket,
                _context: context,
            }
        }

        /// Answers whatever work has arrived, without waiting; the units answered.
        fn serve(&self) -> usize {
            let mut answered = 0;
            while let Ok(bytes) = self.socket.recv_bytes(zmq::DONTWAIT) {
                let Ok(Message::Work(work)) = protocol::decode(&bytes) else {
                    continue;
                };
                let results = Results {
                    batch: work.batch,
                    elapsed_us: 1,
                    results: work
                        .units
                        .iter()
                        .map(|u| UnitResultRef {
                            id: u.id,
                            outcome: Ok(u.payload),
                        })
                        .collect(),
                };
                let mut frame = Vec::new();
                protocol::encode(&Message::Results(results), &mut frame);
                self.socket.send(frame, 0).unwrap();
                answered += work.units.len();
            }
            answered
        }
    }

    #[test]
    fn a_second_loan_on_the_borrowing_thread_is_refused_not_a_deadlock() {
        let (answer_tx, answer_rx) = crossbeam_channel::bounded(1);
        // On a thread of its own, so that a deadlock fails the test instead of hanging it.
        std::thread::spawn(move || {
            let delegator = start();
            let loan = delegator
                .lend_engine()
                .expect("a running engine lends itself");
            let again = delegator.lend_engine().is_none();
            drop(loan);
            let _ = answer_tx.send(again);
            delegator.shutdown();
        });
        let refused = answer_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the second loan on the borrowing thread hung");
        assert!(refused, "the engine was lent twice to one thread");
    }

    #[test]
    fn a_borrowed_engine_serves_jobs_other_threads_and_goes_back() {
        let delegator = start();
        let worker = Echo::connect(delegator.endpoint());
        let mut job = delegator
            .submit::<u64, u64>("echo", 0..100, JobOptions::default())
            .unwrap();
        let mut loan = delegator
            .lend_engine()
            .expect("a running engine lends itself");
        turn_until(&mut loan, |loan| loan.stats().workers.len() == 1);
        std::thread::scope(|scope| {
            // Another thread's requests are answered on this thread's turns: a second loan is
            // refused, the stats come back.
            let other = scope.spawn(|| (delegator.lend_engine().is_none(), delegator.stats()));
            let mut outcomes = Vec::new();
            turn_until(&mut loan, |_| {
                worker.serve();
                while let Some(outcome) = job.try_next_raw() {
                    outcomes.push(outcome.index);
                }
                outcomes.len() == 100 && other.is_finished()
            });
            outcomes.sort_unstable();
            assert_eq!(outcomes, (0..100).collect::<Vec<u64>>());
            let (refused, stats) = other.join().unwrap();
            assert!(refused, "a lent engine was lent again");
            assert_eq!(stats.unwrap().workers.len(), 1);
        });
        drop(loan);
        // Back on its own thread: it answers without this one turning, and lends again.
        assert_eq!(delegator.stats().unwrap().counters.completed, 100);
        assert!(delegator.lend_engine().is_some());
        delegator.shutdown();
    }

    #[test]
    fn a_shutdown_taken_on_loan_stops_the_engine_when_it_goes_back() {
        let delegator = start();
        let mut loan = delegator.lend_engine().unwrap();
        delegator
            .commands_tx
            .send(super::Command::Shutdown)
            .unwrap();
        let limit = Instant::now() + std::time::Duration::from_secs(10);
        while loan.turn(std::time::Duration::from_millis(5)) {
            assert!(Instant::now() < limit, "the shutdown was never taken");
        }
        assert!(!loan.turn(std::time::Duration::ZERO));
        drop(loan);
        assert!(
            delegator.stats().is_err(),
            "the engine went on after its shutdown"
        );
    }

    /// The borrower's own commands do not wake its engine (see the module documentation), so
    /// its next turn must take them without sleeping first.
    #[test]
    fn a_borrowers_own_command_is_taken_without_a_wake_up() {
        let delegator = start();
        let job = delegator
            .open::<u64>("echo", JobOptions::default())
            .unwrap();
        let mut loan = delegator.lend_engine().unwrap();
        let engine = |loan: &super::EngineLoan<'_>| -> i64 {
            loan.engine.as_ref().unwrap().wait_ms(3_600_000)
        };
        let input = ganger_core::payload::to_payload(&7u64).unwrap();
        job.extend(vec![input]).unwrap();
        assert_eq!(engine(&loan), 0, "a queued command would wait out the poll");
        assert!(loan.turn(std::time::Duration::from_secs(3600)));
        assert_eq!(loan.stats().counters.submitted, 1);
        drop(loan);
        delegator.shutdown();
    }
}
