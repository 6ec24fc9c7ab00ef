//! The worker's I/O loop: the one thread that owns the DEALER socket.
//!
//! Socket: DEALER, connected (never bound) by this loop to the delegator's endpoint, owned by
//! the session thread for its whole life, closed when [`Session::run`] returns (lingering up to
//! the grace period so that final results and the goodbye get out).
//! ZeroMQ reconnects on its own with exponential backoff; the session re-registers whenever the
//! delegator asks (`Reset`) or falls silent past its timeout. Evaluation happens on the rayon
//! pool, so heartbeats go out however long a unit runs; only a group of at most
//! [`INLINE_MAX_UNITS`] units measured to take under [`INLINE_US`] in all runs on this thread,
//! where the pool's two hand-offs (a wake-up each way) would cost more than the work, and what
//! is left of it once that time is spent goes to the pool.
//! It also keeps the worker's [`StatusHandle`] current: at once on each event, and its counters
//! and liveness once per turn (a turn comes at least every 100 ms).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use ganger_core::protocol::secure as secure_frames;
use ganger_core::protocol::{self, Goodbye, Hello, Message, Welcome, PROTOCOL_VERSION};
use ganger_transport::frames::{self, SendError};
use ganger_transport::{wake, RateLimited, WakeReceiver};
use tracing::{debug, info, warn};

use crate::compute::{Batch, Evaluator, Finished};
use crate::secure::Security;
use crate::status::StatusHandle;
use crate::{Error, ShutdownState, Summary, Worker, WorkerConfig};

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
}

/// A group of batches expected to take less than this many microseconds is evaluated on the
/// session thread: handing it to the pool and its results back costs two thread wake-ups.
const INLINE_US: f64 = 25.0;

/// ... and holds at most this many units (a unit of a job type not measured yet may be slow).
const INLINE_MAX_UNITS: usize = 64;

/// The last measured time of a unit on one thread, microseconds.
fn unit_us(cell: &AtomicU64) -> f64 {
    f64::from_bits(cell.load(Ordering::Relaxed))
}

/// Frames read per turn before the loop looks at results and timers again.
const MAX_FRAMES_PER_TURN: usize = 1024;
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

    fn read_frames(&mut self) -> Result<(), Error> {
        for _ in 0..MAX_FRAMES_PER_TURN {
            let (frame, parts) = match frames::recv_body(&self.socket) {
                Ok(Some(received)) => received,
                Ok(None) => return Ok(()),
                Err(e) => {
                    warn!("receive failed: {e}");
                    return Ok(());
                }
            };
            self.last_received = Instant::now();
            self.last_heard = Some(self.last_received);
            if parts != 1 {
                self.malformed(&format!("expected 1 frame, got {parts}"));
                continue;
            }
            let frame = match self.unseal(frame) {
                Ok(frame) => frame,
                Err(reason) => {
                    self.malformed(&reason);
                    continue;
                }
            };
            self.handle_frame(frame)?;
        }
        Ok(())
    }

    fn handle_frame(&mut self, frame: zmq::Message) -> Result<(), Error> {
        // Work is the hot path: queue it on its header alone; the pool decodes the units.
        match protocol::peek_work(&frame) {
            Ok(Some(header)) if self.stopping_since.is_none() => {
                if matches!(self.state, State::Ready(_)) {
                    self.pending.push_back(Batch {
                        generation: self.generation,
                        batch: header.batch,
                        n_units: header.n_units as usize,
                        frame,
                    });
                }
                // Work before a welcome belongs to an earlier registration, already requeued.
                return Ok(());
            }
            Err(e) => {
                self.malformed(&e.to_string());
                return Ok(());
            }
            _ => {}
        }
        let message = match protocol::decode(&frame) {
            Ok(message) => message,
            Err(e) => {
                self.malformed(&e.to_string());
                return Ok(());
            }
        };
        match message {
            Message::Challenge(challenge) => {
                let answered = match &mut self.security {
                    Some(security) if matches!(self.state, State::Connecting { .. }) => {
                        security.answer(&challenge)
                    }
                    _ => None,
                };
                match answered {
                    // Plaintext: the delegator opens sealed frames only once the proof is in.
                    Some(auth) => {
                        self.send_plain(auth);
                        // The welcome is on its way: do not say hello again too soon.
                        self.state = State::Connecting {
                            hello_sent: Some(Instant::now()),
                        };
                    }
                    None => debug!("ignoring a challenge to an earlier hello"),
                }
            }
            Message::Welcome(welcome) => {
                info!(
                    worker_id = welcome.worker_id,
                    authenticated = self.security.is_some(),
                    "registered with the delegator"
                );
                // A sealed frame is a little longer than the message it carries.
                let overhead = if self.security.is_some() {
                    secure_frames::SEAL_OVERHEAD as u64
                } else {
                    0
                };
                self.evaluator.max_frame = welcome
                    .max_frame
                    .saturating_sub(overhead)
                    .min(usize::MAX as u64) as usize;
                // The welcome was heard: say so in the same update, so that a status file
                // never names a worker id without when the delegator was last heard.
                let heard = self.last_heard;
                self.status.update(|board| {
                    board.welcomed(welcome.worker_id);
                    board.last_heard = heard;
                });
                self.state = State::Ready(welcome);
                self.summary.sessions += 1;
            }
            Message::Work(work) => {
                // Sent before the delegator read our goodbye: hand it straight back.
                let returned = work.units.iter().map(|u| u.id).collect();
                self.queue(&Message::Goodbye(Goodbye { returned }));
            }
            Message::Heartbeat => {}
            Message::Reset(reset) => {
                if matches!(
                    self.state,
                    State::Connecting {
                        hello_sent: Some(_)
                    }
                ) {
                    // ZeroMQ keeps order, so a reset arriving after our hello answers something
                    // we sent before it: the hello has already started a new session.
                    debug!(reason = %reset.reason, "ignoring a reset that predates our hello");
                } else {
                    info!(reason = %reset.reason, "delegator asked to register again");
                    let problem = format!("reset by the delegator: {}", reset.reason);
                    self.status
                        .update(|board| board.error(problem, Instant::now()));
                    self.restart_session();
                }
            }
            Message::Reject(reject) => {
                return Err(Error::Rejected {
                    reason: reject.reason,
                    delegator_protocol: reject.protocol,
                });
            }
            other => self.malformed(&format!("unexpected `{}` message", other.type_name())),
        }
        Ok(())
    }

    fn malformed(&mut self, reason: &str) {
        self.summary.dropped_frames += 1;
        let problem = format!("dropped a frame from the delegator: {reason}");
        self.status
            .update(|board| board.error(problem, Instant::now()));
        if let Some(suppressed) = self.warn_limit.allow(Instant::now()) {
            warn!(suppressed, "dropped a frame from the delegator: {reason}");
        }
    }

    fn collect_finished(&mut self) {
        while let Ok(finished) = self.finished_rx.try_recv() {
            if !self.take_finished(finished) {
                return;
            }
        }
    }

    /// Queues a finished chunk's results; false if the session had to start over.
    fn take_finished(&mut self, finished: Finished) -> bool {
        if finished.generation != self.generation {
            return true;
        }
        if finished.malformed {
            // Its units can be neither evaluated nor named; registering again makes the
            // delegator requeue everything this worker held.
            self.malformed("a work frame's units could not be decoded");
            self.restart_session();
            return false;
        }
        self.running_units -= finished.n_units;
        self.summary.units_done += finished.n_units as u64;
        self.summary.unit_errors += finished.errors as u64;
        if let Some(problem) = finished.last_error {
            self.status
                .update(|board| board.error(problem, Instant::now()));
        }
        for frame in finished.frames {
            let frame = self.seal(frame);
            self.outbox.push_back(frame);
        }
        true
    }

    fn timers(&mut self) {
        let now = Instant::now();
        match &self.state {
            State::Connecting { hello_sent } => {
                if hello_sent.is_none_or(|at| now.duration_since(at) >= HELLO_RETRY)
                    && self.stopping_since.is_none()
                {
                    self.say_hello(now);
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

    /// Hands queued batches to the pool while it has idle threads.
    fn dispatch(&mut self) {
        let threads = self.config.threads;
        while self.running_units < threads && !self.pending.is_empty() {
            // Slow units go out a slot's worth at a time; trivial ones in big gulps, so that a
            // stream of one-unit batches does not cost a pool hand-off each.
            let greedy = unit_us(&self.unit_us) / (threads as f64) < 50.0;
            let want = if greedy {
                threads.max(4096)
            } else {
                threads - self.running_units
            };
            let mut group = Vec::new();
            let mut units = 0;
            while let Some(batch) = self.pending.front() {
                if !group.is_empty() && units + batch.n_units > want {
                    break;
                }
                units += batch.n_units;
                group.extend(self.pending.pop_front());
            }
            self.running_units += units;
            if greedy
                && units <= INLINE_MAX_UNITS
                && units as f64 * unit_us(&self.unit_us) < INLINE_US
            {
                // A few microseconds of work: cheaper here than two hand-offs through the pool.
                // What is left once they are spent (a costlier unit than measured) goes on.
                match self.evaluate_here(group) {
                    None => return,
                    Some(rest) => group = rest,
                }
            }
            if !group.is_empty() {
                self.spawn_group(group);
            }
        }
    }

    /// Evaluates batches of `group` on this thread while they stay within [`INLINE_US`];
    /// returns those not started (`None` if the session had to start over).
    fn evaluate_here(&mut self, group: Vec<Batch>) -> Option<Vec<Batch>> {
        let started = Instant::now();
        let mut done = 0;
        let mut group = group.into_iter();
        for batch in group.by_ref() {
            done += batch.n_units;
            let finished = self.evaluator.evaluate_here(&batch);
            if !self.take_finished(finished) {
                return None;
            }
            if started.elapsed().as_secs_f64() * 1e6 >= INLINE_US {
                break;
            }
        }
        let per_unit = started.elapsed().as_secs_f64() * 1e6 / done.max(1) as f64;
        self.unit_us.store(per_unit.to_bits(), Ordering::Relaxed);
        Some(group.collect())
    }

    /// Hands a group to the pool; it records what a unit cost on one thread.
    fn spawn_group(&mut self, group: Vec<Batch>) {
        let units: usize = group.iter().map(|b| b.n_units).sum();
        let parallel = units.clamp(1, self.config.threads);
        let evaluator = self.evaluator.clone();
        let unit_us = self.unit_us.clone();
        self.pool.spawn(move || {
            // From when the pool starts it: the wait for a pool thread to wake is no part of a
            // unit's cost, and counting it would keep cheap units off the session thread.
            let started = Instant::now();
            evaluator.run_group(group);
            // Wall time × threads used ÷ units: a unit's cost on one thread (an upper bound),
            // which is what evaluating on the session thread would take.
            let per_unit =
                started.elapsed().as_secs_f64() * 1e6 * parallel as f64 / units.max(1) as f64;
            unit_us.store(per_unit.to_bits(), Ordering::Relaxed);
        });
    }

    fn queue(&mut self, message: &Message<'_>) {
        let mut frame = Vec::with_capacity(32);
        protocol::encode(message, &mut frame);
        let frame = self.seal(frame);
        self.outbox.push_back(frame);
        self.flush();
    }

    /// Queues a handshake message, never sealed.
    fn send_plain(&mut self, message: Message<'_>) {
        let mut frame = Vec::with_capacity(64);
        protocol::encode(&message, &mut frame);
        self.outbox.push_back(frame);
        self.flush();
    }

    /// Seals a frame if the session is authenticated. Frames enter the outbox in the order
    /// they leave, so their counters increase on the wire.
    fn seal(&mut self, frame: Vec<u8>) -> Vec<u8> {
        match self.security.as_mut().and_then(Security::channel) {
            Some(channel) => channel.sealer.seal(&frame),
            None => frame,
        }
    }

    /// Opens a sealed frame, and refuses what this worker must not accept: with a secret,
    /// plaintext other than `challenge`, `reset` and `reject` (the delegator cannot seal for a
    /// routing id it does not know, and the handshake is plaintext); without one, any sealed
    /// frame.
    fn unseal(&mut self, frame: zmq::Message) -> Result<zmq::Message, String> {
        let sealed = secure_frames::is_sealed(&frame);
        match (&mut self.security, sealed) {
            (None, false) => Ok(frame),
            (None, true) => Err("a sealed frame, but this worker has no secret".into()),
            (Some(security), true) => match security.channel() {
                Some(channel) => channel
                    .opener
                    .open(&frame)
                    .map(zmq::Message::from)
                    .map_err(|e| e.to_string()),
                None => Err("a sealed frame before the handshake".into()),
            },
            (Some(_), false) => match protocol::decode(&frame) {
                Ok(Message::Challenge(_) | Message::Reset(_) | Message::Reject(_)) => Ok(frame),
                Ok(other) => Err(format!(
                    "a plaintext `{}` refused: this worker has a secret and accepts only an \
                     authenticated delegator",
                    other.type_name()
                )),
                Err(e) => Err(e.to_string()),
            },
        }
    }

    fn flush(&mut self) {
        while let Some(frame) = self.outbox.pop_front() {
            match frames::send_body(&self.socket, &frame[..]) {
                Ok(()) => self.last_sent = Instant::now(),
                Err(SendError::WouldBlock) => {
                    self.outbox.push_front(frame);
                    return;
                }
                Err(e) => {
                    debug!("send failed: {e}");
                    return;
                }
            }
        }
    }
}
