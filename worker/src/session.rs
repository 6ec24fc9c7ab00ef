//! The worker's I/O loop: the one thread that owns the DEALER socket.
//!
//! Socket: DEALER, connected (never bound) by this loop to the delegator's endpoint, owned by
//! the session thread for its whole life, closed when [`Session::run`] returns (lingering up to
//! the grace period so that final results and the goodbye get out).
//! ZeroMQ reconnects on its own with exponential backoff; the session re-registers whenever the
//! delegator asks (`Reset`) or falls silent past its timeout. Evaluation happens on the rayon
//! pool, so heartbeats go out however long a unit runs; only a group of at most
//! [`INLINE_MAX_UNITS`](dispatch::INLINE_MAX_UNITS) units measured to take under
//! [`INLINE_US`](dispatch::INLINE_US) in all runs on this thread, where the pool's two hand-offs
//! (a wake-up each way) would cost more than the work, and what is left of it once that time is
//! spent goes to the pool.
//! It also keeps the worker's [`StatusHandle`] current: at once on each event, and its counters
//! and liveness once per turn (a turn comes at least every 100 ms).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use ganger_core::protocol::{self, Goodbye, Hello, Message, Welcome, PROTOCOL_VERSION};
use ganger_transport::frames::{self, SendError};
use ganger_transport::{wake, RateLimited, WakeReceiver};
use tracing::{info, warn};

use crate::compute::{Batch, Evaluator, Finished};
use crate::secure::Security;
use crate::status::StatusHandle;
use crate::{Error, ShutdownState, Summary, Worker, WorkerConfig};

mod dispatch;
mod inbound;
mod outbound;

/// Where the session is in its handshake.
#[derive(Debug)]
enum State {
    /// Hello not yet answered (sent at the given time, if at all).
    Connecting { hello_sent: Option<Instant> },
    /// Registered.
    Ready(Welcome),
}

pub(crate) struct Session {
    socket: zmq::Socket,
    config: WorkerConfig,
    job_types: Vec<String>,
    pool: rayon::ThreadPool,
    evaluator: Evaluator,
    finished_rx: Receiver<Finished>,
    wake_rx: WakeReceiver,
    shutdown: Arc<ShutdownState>,
    state: State,
    generation: u64,
    pending: VecDeque<Batch>,
    running_units: usize,
    /// Wall time per unit of the last group, microseconds (f64 bits, written by pool threads):
    /// decides how greedily to group batches.
    unit_us: Arc<AtomicU64>,
    outbox: VecDeque<Vec<u8>>,
    last_sent: Instant,
    last_received: Instant,
    /// When a frame last arrived (unlike `last_received`, not reset by a new session).
    last_heard: Option<Instant>,
    stopping_since: Option<Instant>,
    summary: Summary,
    warn_limit: RateLimited,
    status: StatusHandle,
    /// The handshake and session keys, when the worker has a secret.
    security: Option<Security>,
    /// Since when this worker has been trying to register, and when it last said so.
    connecting_since: Instant,
    last_waiting_note: Instant,
}

/// How often a worker that has not reached its delegator says so.
const WAITING_NOTE_EVERY: Duration = Duration::from_secs(5);

/// How long to wait for a `Welcome` before saying hello again.
const HELLO_RETRY: Duration = Duration::from_secs(1);

impl Session {
    /// Takes over a configured worker and its connected socket, and starts the pool, whose
    /// threads may use `free_cpus` if this thread is pinned.
    pub(crate) fn new(
        worker: Worker,
        socket: zmq::Socket,
        free_cpus: Option<Vec<usize>>,
    ) -> Result<Self, Error> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(worker.config.threads)
            .thread_name(|i| format!("ganger-eval-{i}"))
            .start_handler(move |_| {
                if let Some(cpus) = &free_cpus {
                    // Failing, the thread shares the session's CPU: slower, not wrong.
                    let _ = ganger_transport::affinity::set_current(cpus);
                }
            })
            .build()
            .map_err(|e| Error::Start(e.to_string()))?;
        let (finished_tx, finished_rx) = crossbeam_channel::unbounded();
        let evaluator = Evaluator {
            registry: worker.registry,
            finished_tx,
            waker: worker.waker,
            max_frame: 64 << 20,
        };
        let now = Instant::now();
        Ok(Session {
            socket,
            security: worker.config.secret.clone().map(Security::new),
            config: worker.config,
            job_types: worker.job_types,
            pool,
            evaluator,
            finished_rx,
            wake_rx: worker.wake_rx,
            shutdown: worker.shutdown,
            state: State::Connecting { hello_sent: None },
            generation: 0,
            pending: VecDeque::new(),
            running_units: 0,
            unit_us: Arc::new(AtomicU64::new(1000f64.to_bits())),
            outbox: VecDeque::new(),
            last_sent: now,
            last_received: now,
            last_heard: None,
            stopping_since: None,
            summary: Summary::default(),
            warn_limit: RateLimited::new(Duration::from_secs(1)),
            status: worker.status,
            connecting_since: now,
            last_waiting_note: now,
        })
    }

    pub(crate) fn run(mut self) -> Result<Summary, Error> {
        info!(connect = %self.config.connect, job_types = ?self.job_types, threads = self.config.threads, "worker starting");
        let result = self.turns();
        self.publish(Instant::now());
        let grace = self.config.grace.as_millis().min(i32::MAX as u128) as i32;
        let _ = self
            .socket
            .set_linger(if self.outbox.is_empty() { 0 } else { grace });
        result.map(|()| self.summary)
    }

    fn turns(&mut self) -> Result<(), Error> {
        loop {
            let requests = self.shutdown.requests.load(Ordering::SeqCst);
            if requests > 0 && self.stopping_since.is_none() {
                self.begin_stop();
            }
            if let Some(since) = self.stopping_since {
                let drained = self.running_units == 0 && self.outbox.is_empty();
                if drained || requests > 1 || since.elapsed() > self.config.grace {
                    info!(units_done = self.summary.units_done, "worker stopped");
                    return Ok(());
                }
            }
            let (readable, woken) = self.poll();
            if woken {
                self.wake_rx.drain();
            }
            if readable {
                self.read_frames()?;
            }
            self.collect_finished();
            self.timers();
            self.dispatch();
            self.flush();
            self.publish(Instant::now());
        }
    }

    /// Copies the counters into the status and marks it as current.
    fn publish(&self, now: Instant) {
        self.status.update(|board| {
            board.sessions = self.summary.sessions;
            board.units_done = self.summary.units_done;
            board.unit_errors = self.summary.unit_errors;
            board.last_heard = self.last_heard;
            board.updated = now;
        });
    }

    fn poll(&self) -> (bool, bool) {
        let mut events = zmq::POLLIN;
        if !self.outbox.is_empty() {
            events |= zmq::POLLOUT;
        }
        let timeout = self
            .next_timer()
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        let (ready, woken) = wake::poll(&self.socket, events, &self.wake_rx, timeout);
        // Readiness to send is acted on by `flush` every turn; only reading needs the flag.
        (ready.contains(zmq::POLLIN), woken)
    }

    fn next_timer(&self) -> Duration {
        match &self.state {
            // Until the connection is up, hellos are retried often so registration is quick.
            State::Connecting { hello_sent: None } => Duration::from_millis(10),
            State::Connecting { .. } => Duration::from_millis(100),
            State::Ready(welcome) => {
                let heartbeat = Duration::from_millis(welcome.heartbeat_ms);
                heartbeat.saturating_sub(self.last_sent.elapsed())
            }
        }
    }

    fn timers(&mut self) {
        let now = Instant::now();
        match &self.state {
            State::Connecting { hello_sent } => {
                let connected = hello_sent.is_some();
                if hello_sent.is_none_or(|at| now.duration_since(at) >= HELLO_RETRY)
                    && self.stopping_since.is_none()
                {
                    self.say_hello(now);
                }
                if now.duration_since(self.last_waiting_note) >= WAITING_NOTE_EVERY {
                    self.last_waiting_note = now;
                    self.note_waiting(connected, now);
                }
            }
            State::Ready(welcome) => {
                let timeout = Duration::from_millis(welcome.timeout_ms);
                let heartbeat = Duration::from_millis(welcome.heartbeat_ms);
                if now.duration_since(self.last_received) > timeout {
                    let silent_ms = now.duration_since(self.last_received).as_millis() as u64;
                    warn!(silent_ms, "the delegator fell silent; registering again");
                    let problem = format!("the delegator was silent for {silent_ms} ms");
                    self.status.update(|board| board.error(problem, now));
                    self.restart_session();
                } else if now.duration_since(self.last_sent) >= heartbeat && self.outbox.is_empty()
                {
                    self.queue(&Message::Heartbeat);
                }
            }
        }
    }

    /// Says, every few seconds, that the worker has not reached its delegator, and the likely
    /// reasons: otherwise a worker started before (or without) its delegator prints nothing.
    fn note_waiting(&self, connected: bool, now: Instant) {
        let waited_secs = now.duration_since(self.connecting_since).as_secs();
        let connect = &self.config.connect;
        if connected {
            warn!(
                %connect,
                waited_secs,
                "the delegator has not answered the hello (it is not reachable any more, \
                 has another cluster secret, or is not a ganger delegator?)"
            );
        } else {
            warn!(
                %connect,
                waited_secs,
                "waiting for the delegator: no connection yet (is it running, and is the \
                 address reachable from here?)"
            );
        }
    }

    fn say_hello(&mut self, now: Instant) {
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            name: self.config.name.clone(),
            host: self.config.host.clone(),
            job_types: self.job_types.clone(),
            slots: self.config.threads as u32,
            prefetch: self.config.prefetch,
            nonce: None,
        };
        let mut hello = hello;
        if let Some(security) = &mut self.security {
            match security.nonce() {
                Ok(nonce) => hello.nonce = Some(nonce),
                Err(e) => {
                    warn!("no randomness for the handshake: {e}");
                    return;
                }
            }
        }
        let mut frame = Vec::new();
        protocol::encode(&Message::Hello(hello), &mut frame);
        if let Some(security) = &mut self.security {
            security.said_hello(&frame);
        }
        // Not queued: with nobody connected the hello is simply tried again on a later turn.
        match frames::send_body(&self.socket, frame) {
            Ok(()) => {
                self.last_sent = now;
                self.state = State::Connecting {
                    hello_sent: Some(now),
                };
            }
            Err(SendError::WouldBlock) => {}
            Err(e) => {
                warn!("could not send hello: {e}");
                let problem = format!("could not send hello: {e}");
                self.status.update(|board| board.error(problem, now));
            }
        }
    }

    /// Drops everything tied to the current registration and says hello again.
    fn restart_session(&mut self) {
        self.generation += 1;
        if let Some(security) = &mut self.security {
            security.end_session();
        }
        self.pending.clear();
        self.outbox.clear();
        // Batches still running belong to the old generation; their results will be discarded.
        self.running_units = 0;
        self.state = State::Connecting { hello_sent: None };
        self.connecting_since = Instant::now();
        self.last_waiting_note = self.connecting_since;
        self.status.update(|board| board.connecting());
        self.last_received = Instant::now();
        if self.stopping_since.is_none() {
            self.say_hello(Instant::now());
        }
    }

    /// Starts leaving: hands back every unit not yet started, keeps running the rest.
    fn begin_stop(&mut self) {
        self.stopping_since = Some(Instant::now());
        self.status.update(|board| board.stopping());
        let returned: Vec<u64> = self
            .pending
            .drain(..)
            .flat_map(|batch| match protocol::decode(&batch.frame) {
                Ok(Message::Work(work)) => work.units.iter().map(|u| u.id).collect(),
                _ => Vec::new(),
            })
            .collect();
        info!(
            returned = returned.len(),
            running = self.running_units,
            "stopping: handing back units not started"
        );
        if matches!(self.state, State::Ready(_)) {
            self.queue(&Message::Goodbye(Goodbye { returned }));
        }
        self.flush();
    }
}
