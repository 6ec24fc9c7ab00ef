//! The delegator's event loop: the one thread that owns the ROUTER socket.
//!
//! Socket: ROUTER, bound by this loop to the configured endpoint, owned by the engine thread
//! for its whole life except while the whole engine is lent to a client's thread ([`loan`]:
//! one owner at a time), closed (after a short linger to flush farewells) when the loop
//! returns.
//! The loop sleeps in `zmq::poll` on the ROUTER and on a wake pipe, and on each turn:
//! reads every waiting frame and feeds it to the [`Scheduler`], takes [`Command`]s from
//! [`Delegator`](crate::Delegator) handles, lets the scheduler tick and fill, and carries out
//! its actions (send work, heartbeats and resets; deliver outcomes to jobs).
//! A monitor on the ROUTER (see [`monitor`]) turns a closed connection into probes that notice
//! a dead worker within milliseconds rather than at its heartbeat timeout.

mod auth;
mod connections;
mod dispatch;
mod loan;
mod monitor;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use ganger_core::protocol::secure::NONCE_LEN;
use ganger_core::protocol::{self, Message};
use ganger_transport::frames::{self, Incoming, SendError};
use ganger_transport::{RateLimited, WakeReceiver};
use rustc_hash::FxHashMap;
use tracing::warn;

use crate::budget::QueueBudget;
use crate::metrics::EngineMetrics;
use crate::scheduler::{Action, BatchId, JobId, Millis, Outcome, Scheduler, Unit, WorkerId};
use crate::shared::JobShared;
use crate::{ConnectionCounts, DelegatorConfig, Stats};

#[cfg(any(test, feature = "harness"))]
pub(crate) use auth::Gate;
pub(crate) use dispatch::{Dispatch, Outbox, Turn};
pub use loan::EngineLoan;
pub(crate) use loan::{lend, wakes_needed};

pub(crate) use monitor::Monitor;

/// Requests from [`Delegator`](crate::Delegator) handles to the loop.
pub(crate) enum Command {
    Submit {
        job_type: String,
        priority: i32,
        group: Option<String>,
        shared: Arc<JobShared>,
        outcomes_tx: Sender<Vec<Outcome>>,
        reply_tx: Sender<JobId>,
    },
    Extend {
        job: JobId,
        units: Vec<Unit>,
    },
    Seal {
        job: JobId,
    },
    Cancel {
        job: JobId,
    },
    Stats {
        reply_tx: Sender<Stats>,
    },
    /// Lend the engine to the thread waiting on `to` at the end of this turn; it comes back
    /// on `back` (see [`EngineLoan`]).
    Lend {
        to: Sender<Engine>,
        back: Receiver<Engine>,
    },
    Shutdown,
}

/// Frames read per turn before the loop looks at commands and timers again.
const MAX_FRAMES_PER_TURN: usize = 4096;
/// How often the loop logs job types that no worker serves.
const UNSERVED_LOG_INTERVAL: Duration = Duration::from_secs(10);

pub(crate) struct Engine {
    socket: zmq::Socket,
    monitor: Monitor,
    probes: monitor::ProbeSchedule,
    wake_rx: WakeReceiver,
    commands_rx: Receiver<Command>,
    scheduler: Scheduler,
    config: DelegatorConfig,
    started: Instant,
    /// When this turn of the loop started: one clock read for every batch sent or answered in
    /// it (round trips are logged to the histogram's resolution, far coarser).
    turn_started: Instant,
    jobs: HashMap<JobId, (Sender<Vec<Outcome>>, Arc<JobShared>)>,
    /// The gate, the peer table and the dropped-frame counters: what a frame does.
    dispatch: Dispatch,
    /// Rate limit of the connection cap's warnings.
    warn_limit: RateLimited,
    last_unserved_log: Instant,
    metrics: EngineMetrics,
    /// When each batch in flight was sent, for its round trip.
    sent_at: FxHashMap<BatchId, Instant>,
    /// Producers' back-pressure, told after each turn how much is queued.
    budget: Arc<QueueBudget>,
    /// Payload bytes read from `Extend` commands, ever.
    taken_in: u64,
    /// Accepted connections whose peers have not registered, capped and timed.
    connections: connections::Connections,
    /// How often the scheduler ticks, and when it ticks next.
    tick: Duration,
    next_tick: Instant,
    /// A `Shutdown` was taken (or every handle dropped): no more turns.
    stopped: bool,
    /// Out on loan now (a lend asked of a lent engine is refused).
    lent: bool,
    /// A loan asked for in this turn, carried out when it ends.
    loan: Option<(Sender<Engine>, Receiver<Engine>)>,
}

impl Engine {
    pub(crate) fn new(
        socket: zmq::Socket,
        monitor: Monitor,
        wake_rx: WakeReceiver,
        commands_rx: Receiver<Command>,
        config: DelegatorConfig,
        metrics: EngineMetrics,
        budget: Arc<QueueBudget>,
    ) -> Self {
        // A handshake may take as long as a worker may stay silent.
        let gate = auth::Gate::new(config.secret.clone(), config.scheduler.timeout_ms);
        let connections = connections::Connections::new(
            config.max_pending_connections,
            config.pending_connection_ms,
        );
        let tick = Duration::from_millis((config.scheduler.heartbeat_ms / 4).clamp(5, 250));
        Engine {
            tick,
            next_tick: Instant::now(),
            stopped: false,
            lent: false,
            loan: None,
            dispatch: Dispatch::new(gate),
            connections,
            socket,
            monitor,
            probes: monitor::ProbeSchedule::default(),
            wake_rx,
            commands_rx,
            scheduler: Scheduler::new(config.scheduler.clone()),
            config,
            started: Instant::now(),
            turn_started: Instant::now(),
            jobs: HashMap::new(),
            warn_limit: RateLimited::new(Duration::from_secs(1)),
            last_unserved_log: Instant::now(),
            metrics,
            sent_at: FxHashMap::default(),
            budget,
            taken_in: 0,
        }
    }

    /// Runs until a `Shutdown` command arrives or every handle is dropped, lending the engine
    /// to another thread when asked and waiting for it to come back.
    pub(crate) fn run(mut self) {
        loop {
            let going = self.turn(i64::MAX);
            if let Some((to, back)) = self.loan.take().filter(|_| going) {
                self.lent = true;
                self = match to.send(self) {
                    Err(returned) => returned.into_inner(),
                    Ok(()) => match back.recv() {
                        Ok(engine) => engine,
                        // The borrower dropped it (a turn panicked): the socket went with it,
                        // and the engine closed the budget as it dropped.
                        Err(_) => return,
                    },
                };
                self.lent = false;
            }
            if !going || self.stopped {
                break;
            }
        }
        self.budget.close();
        self.farewell();
    }

    /// One turn of the loop, waiting at most `max_wait_ms` (and no later than the next timer)
    /// for a frame, a command or a monitor event; false once the engine has stopped.
    pub(crate) fn turn(&mut self, max_wait_ms: i64) -> bool {
        if self.stopped {
            return false;
        }
        let timeout = self.wait_ms(max_wait_ms);
        let ready = monitor::poll(&self.socket, &self.monitor, &self.wake_rx, timeout);
        self.turn_started = Instant::now();
        // Connections before frames: a peer's hello mostly finds its connection known.
        if ready.monitor {
            self.apply_monitor_events();
        }
        self.expire_connections();
        if ready.router.contains(zmq::POLLIN) {
            self.read_frames();
        }
        if ready.woken {
            self.wake_rx.drain();
        }
        if !self.take_commands() {
            self.stopped = true;
            return false;
        }
        let now = self.now();
        if self.probes.take_due(now) {
            self.probe_workers();
        }
        if Instant::now() >= self.next_tick {
            self.scheduler.tick(now);
            // Batches whose results never came (their worker died) are not round trips.
            self.sent_at
                .retain(|_, sent| sent.elapsed() < Duration::from_secs(3600));
            self.next_tick = Instant::now() + self.tick;
            self.dispatch.expire(now);
            self.log_unserved();
        }
        self.scheduler.fill(now);
        self.carry_out_actions();
        self.budget
            .report(self.taken_in, self.scheduler.queued_bytes());
        true
    }

    /// How long the next turn may sleep in its poll: until the next tick, probe or deadline,
    /// at most `max_wait_ms`, and not at all while commands are queued.
    fn wait_ms(&self, max_wait_ms: i64) -> i64 {
        let mut timeout = (self
            .next_tick
            .saturating_duration_since(Instant::now())
            .as_millis() as i64)
            .min(max_wait_ms);
        for due in [self.probes.next_due(), self.connections.next_deadline()]
            .into_iter()
            .flatten()
        {
            timeout = timeout.min(due.saturating_sub(self.now()) as i64);
        }
        if !self.commands_rx.is_empty() {
            // Queued by a borrower, which does not wake its own engine (see `loan`).
            timeout = 0;
        }
        timeout
    }

    fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as Millis
    }

    fn read_frames(&mut self) {
        for _ in 0..MAX_FRAMES_PER_TURN {
            match frames::recv_routed(&self.socket) {
                Ok(Some(incoming)) => self.handle_frame(incoming),
                Ok(None) => return,
                Err(e) => {
                    warn!("receive failed: {e}");
                    return;
                }
            }
        }
    }

    fn handle_frame(&mut self, mut incoming: Incoming) {
        if self.dispatch.worker_of(&incoming.peer).is_some() {
            return self.dispatch_frame(incoming);
        }
        // A peer not registered yet: once it is, its connection no longer counts as pending.
        let fd = connections::fd_of(&mut incoming.body);
        let peer = incoming.peer.clone();
        self.dispatch_frame(incoming);
        if let Some(fd) = fd.filter(|_| self.dispatch.worker_of(&peer).is_some()) {
            self.connection_registered(fd);
        }
    }

    fn dispatch_frame(&mut self, incoming: Incoming) {
        self.with_dispatch(|dispatch, turn| dispatch.frame(turn, incoming));
    }

    /// Lends [`Dispatch`] a turn: the scheduler, the ROUTER as its outbox, and the clock.
    fn with_dispatch<R>(&mut self, act: impl FnOnce(&mut Dispatch, &mut Turn<'_>) -> R) -> R {
        let now = self.now();
        let mut out = Router {
            socket: &self.socket,
            sent_at: &mut self.sent_at,
            metrics: &self.metrics,
            turn_started: self.turn_started,
        };
        let mut turn = Turn {
            scheduler: &mut self.scheduler,
            out: &mut out,
            now,
        };
        act(&mut self.dispatch, &mut turn)
    }

    /// Takes every queued command; false once the loop should stop.
    fn take_commands(&mut self) -> bool {
        loop {
            match self.commands_rx.try_recv() {
                Ok(command) => {
                    if !self.take_command(command) {
                        return false;
                    }
                }
                Err(crossbeam_channel::TryRecvError::Empty) => return true,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn take_command(&mut self, command: Command) -> bool {
        match command {
            Command::Submit {
                job_type,
                priority,
                group,
                shared,
                outcomes_tx,
                reply_tx,
            } => {
                let job = self.scheduler.submit(&job_type, priority);
                if let Some(group) = group {
                    self.scheduler.set_group(job, &group);
                }
                self.jobs.insert(job, (outcomes_tx, shared));
                let _ = reply_tx.send(job);
            }
            Command::Extend { job, units } => {
                self.taken_in += units.iter().map(|u| u.payload.len() as u64).sum::<u64>();
                self.scheduler.extend_units(job, units);
            }
            Command::Seal { job } => self.scheduler.seal(job),
            Command::Cancel { job } => {
                self.scheduler.cancel(job);
                self.jobs.remove(&job);
            }
            Command::Stats { reply_tx } => {
                let _ = reply_tx.send(self.stats());
            }
            // A lent engine is not lent again: dropping `to` refuses.
            Command::Lend { to, back } if !self.lent && self.loan.is_none() => {
                self.loan = Some((to, back));
            }
            Command::Lend { .. } => {}
            Command::Shutdown => return false,
        }
        true
    }

    fn carry_out_actions(&mut self) {
        loop {
            let actions: Vec<Action> = self.scheduler.drain_actions().collect();
            if actions.is_empty() {
                return;
            }
            // A turn's outcomes for one job go to it together: one hand-off, not one per
            // results message (trivial unbatched units arrive a few hundred thousand a second).
            let mut deliveries: Vec<(JobId, Vec<Outcome>)> = Vec::new();
            for action in actions {
                match action {
                    Action::Deliver { job, mut outcomes } => {
                        match deliveries.iter_mut().find(|(j, _)| *j == job) {
                            Some((_, all)) => all.append(&mut outcomes),
                            None => deliveries.push((job, outcomes)),
                        }
                    }
                    Action::JobDone(job) => {
                        // Its last outcomes go first.
                        if let Some(at) = deliveries.iter().position(|(j, _)| *j == job) {
                            let (job, outcomes) = deliveries.swap_remove(at);
                            self.carry_out(Action::Deliver { job, outcomes });
                        }
                        self.carry_out(Action::JobDone(job));
                    }
                    other => self.carry_out(other),
                }
            }
            for (job, outcomes) in deliveries {
                self.carry_out(Action::Deliver { job, outcomes });
            }
        }
    }

    fn carry_out(&mut self, action: Action) {
        match action {
            Action::SendWork { worker, batch } => {
                let mut frame = Vec::new();
                if self.scheduler.encode_work(batch, &mut frame) {
                    let units = self.scheduler.batch_len(batch);
                    self.metrics.batch_units.observe(units as f64);
                    self.sent_at.insert(batch, self.turn_started);
                    self.send_to(worker, frame);
                }
            }
            Action::SendHeartbeat(worker) => self.send_heartbeat(worker),
            Action::Forget { worker, reason } => {
                self.with_dispatch(|dispatch, turn| dispatch.forget(turn.out, worker, reason));
            }
            Action::Deliver { job, outcomes } => {
                if let Some((outcomes_tx, shared)) = self.jobs.get(&job) {
                    shared.record(&outcomes);
                    let _ = outcomes_tx.send(outcomes);
                }
            }
            Action::JobDone(job) => {
                if let Some((_, shared)) = self.jobs.remove(&job) {
                    shared.finished.store(true, Ordering::SeqCst);
                }
            }
        }
    }

    fn send_heartbeat(&mut self, worker: WorkerId) {
        let mut frame = Vec::with_capacity(16);
        protocol::encode(&Message::Heartbeat, &mut frame);
        self.send_to(worker, frame);
    }

    /// After a connection closed: a heartbeat to every registered worker, so that a send to the
    /// one whose connection it was fails (`send_to` then drops it and requeues its units).
    fn probe_workers(&mut self) {
        for worker in self.dispatch.workers() {
            self.send_heartbeat(worker);
        }
    }

    fn send_to(&mut self, worker: WorkerId, frame: Vec<u8>) {
        self.with_dispatch(|dispatch, turn| dispatch.send_to(turn, worker, frame));
    }

    fn log_unserved(&mut self) {
        if self.last_unserved_log.elapsed() < UNSERVED_LOG_INTERVAL {
            return;
        }
        self.last_unserved_log = Instant::now();
        for (job_type, waiting) in self.scheduler.unserved() {
            warn!(
                job_type,
                waiting, "units wait: no connected worker serves this job type"
            );
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        Stats {
            counters: self.scheduler.counters().clone(),
            dropped: self.dispatch.dropped().clone(),
            workers: self.scheduler.workers().cloned().collect(),
            queue_depths: self.scheduler.queue_depths(),
            unserved: self.scheduler.unserved(),
            queued_bytes: self.scheduler.queued_bytes(),
            open_jobs: self.scheduler.open_jobs(),
            now: self.now(),
            connections: ConnectionCounts {
                pending: self.connections.pending() as u64,
                refused: self.connections.refused,
                expired: self.connections.expired,
            },
        }
    }

    /// Tells registered workers to start over (they will find the next delegator on their own).
    fn farewell(&mut self) {
        self.with_dispatch(|dispatch, turn| dispatch.farewell(turn.out));
        let _ = self.socket.set_linger(500);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // However it ends (a panic too), producers waiting for room must not wait forever.
        self.budget.close();
    }
}

/// The engine's [`Outbox`]: frames go out on the ROUTER, results time their batch's round trip.
struct Router<'a> {
    socket: &'a zmq::Socket,
    sent_at: &'a mut FxHashMap<BatchId, Instant>,
    metrics: &'a EngineMetrics,
    turn_started: Instant,
}

impl Outbox for Router<'_> {
    fn send(&mut self, peer: &[u8], frame: Vec<u8>) -> Result<(), SendError> {
        frames::send_routed(self.socket, peer, frame)
    }

    fn nonce(&mut self, nonce: &mut [u8; NONCE_LEN]) -> Result<(), String> {
        getrandom::fill(nonce).map_err(|e| e.to_string())
    }

    fn answered(&mut self, batch: BatchId) {
        if let Some(sent) = self.sent_at.remove(&batch) {
            let round_trip = self.turn_started.saturating_duration_since(sent);
            self.metrics.observe_round_trip(round_trip.as_secs_f64());
        }
    }
}
