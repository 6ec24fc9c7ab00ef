//! `ganger-cluster`: the library a Rust program embeds to farm work out. Its [`Delegator`] binds
//! a ROUTER socket, leases work units to the workers that dial in, and hands each unit's outcome
//! back exactly once.
//!
//! Start a [`Delegator`], point workers at its [`endpoint`](Delegator::endpoint), and
//! [`submit`](Delegator::submit) jobs: a task name and an iterator of serde-serialisable inputs.
//! The returned [`Job`] yields `(index, result)` in completion order, or
//! [`collect_ordered`](Job::collect_ordered) gathers results in input order.
//!
//! ```no_run
//! use ganger_cluster::{Delegator, DelegatorConfig, JobOptions};
//!
//! # fn main() -> Result<(), ganger_cluster::Error> {
//! let delegator = Delegator::start(DelegatorConfig {
//!     bind: "tcp://127.0.0.1:5555".into(),
//!     ..DelegatorConfig::default()
//! })?;
//! // Workers connect with: ganger-worker --connect tcp://127.0.0.1:5555
//! let job = delegator.submit::<_, i64>("square", 0..1000i64, JobOptions::default())?;
//! let squares = job.collect_ordered()?;
//! assert_eq!(squares[12], Ok(144));
//! # Ok(())
//! # }
//! ```
//!
//! The crate's parts: [`scheduler`] decides (a state machine, no I/O); the engine thread owns
//! the socket and carries out the scheduler's decisions (a client that waits on its own
//! outcomes, such as the MCMC driver, can borrow the engine with [`Delegator::lend_engine`]
//! and run its loop on its own thread); [`local`] starts worker processes on this machine;
//! [`lock`] keeps two runs out of one output folder; [`metrics`] holds the engine's
//! histograms. It has no HTTP server, plotting or terminal code: `ganger-observe` reads what
//! [`Delegator::stats_handle`] and [`Delegator::metrics`] publish.

mod budget;
mod engine;
#[cfg(any(test, feature = "harness"))]
pub mod harness;
mod job;
pub mod local;
pub mod lock;
pub mod metrics;
pub mod scheduler;
mod shared;

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use ganger_core::payload::{self, Payload, PayloadError};
pub use ganger_core::protocol::secure::Secret;
use ganger_transport::{wake_pair, Waker};
use serde::de::DeserializeOwned;
use serde::Serialize;

use budget::QueueBudget;
pub use engine::EngineLoan;
use engine::{Command, Engine};
pub use job::{next_raw_of_any, AnyOutcome, Job, Progress, UnitError};
pub use scheduler::{Batching, Counters, SchedulerConfig, UnitFailure, WorkerInfo};
use shared::JobShared;

/// What can go wrong running a delegator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The endpoint could not be bound (in use, bad address, no permission).
    #[error("cannot bind {endpoint}: {source}")]
    Bind {
        /// The endpoint as given.
        endpoint: String,
        /// ZeroMQ's reason.
        source: zmq::Error,
    },
    /// Creating or configuring the socket failed.
    #[error("zmq: {0}")]
    Socket(#[from] zmq::Error),
    /// The wake pipe or the engine thread could not be created.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// An input could not be encoded as a payload.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The engine thread has stopped; the delegator can take no more requests.
    #[error("the delegator has stopped")]
    Stopped,
    /// A non-loopback address without a secret and without the explicit opt-out.
    #[error(
        "refusing to bind {endpoint} without a cluster secret: anyone who can reach it could \
         take work units or send false results; give a secret (--secret-file or GANGER_SECRET; \
         `ganger-delegator secret` makes one) or pass --insecure (GANGER_INSECURE=true)"
    )]
    InsecureBind {
        /// The endpoint as given.
        endpoint: String,
    },
    /// The delegator stopped before the job finished.
    #[error("the job ended with {missing} unit(s) without an outcome")]
    Incomplete {
        /// Units that have no outcome.
        missing: u64,
    },
}

/// The name of the engine's thread (what `/proc` and profilers show).
pub const ENGINE_THREAD: &str = "ganger-engine";

/// Bytes beyond `max_frame` that the transport still reads before it cuts a peer off: room to
/// answer a slightly oversized frame with a `reject` naming the limit.
pub const FRAME_CAP_MARGIN: u64 = 64 << 10;

/// A `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Delegator settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DelegatorConfig {
    /// ZeroMQ endpoint to bind; default `tcp://*:5555`. Port 0 picks a free port
    /// (read it back with [`Delegator::endpoint`]).
    pub bind: String,
    /// Scheduling settings (heartbeats, retries, batching, frame limit).
    pub scheduler: SchedulerConfig,
    /// The cluster secret; default none. With one, workers must prove they know it and every
    /// frame after the handshake is encrypted and authenticated (protocol version 2).
    pub secret: Option<Secret>,
    /// Allow binding a non-loopback address without a secret (anyone who reaches it could
    /// take work or send false results); default false. Warns at start-up.
    pub insecure: bool,
    /// Connections whose peer has not registered (with a secret: not proved it knows it) held
    /// at once; one beyond is cut as soon as it is accepted. Default 64. Each can hold at most
    /// the transport's frame cap (`max_frame` + 64 KiB) in the delegator's memory.
    pub max_pending_connections: usize,
    /// Milliseconds a connection may stay unregistered before it is cut; default 10,000.
    pub pending_connection_ms: u64,
}

impl Default for DelegatorConfig {
    fn default() -> Self {
        DelegatorConfig {
            bind: "tcp://*:5555".into(),
            scheduler: SchedulerConfig::default(),
            secret: None,
            insecure: false,
            max_pending_connections: 64,
            pending_connection_ms: 10_000,
        }
    }
}

impl DelegatorConfig {
    /// Refuses a non-loopback bind without a secret unless [`insecure`](Self::insecure) is set
    /// (then it warns). Loopback (`127.0.0.0/8`, `localhost`, `[::1]`), `ipc://` and
    /// `inproc://` endpoints need no secret.
    pub fn check_bind_policy(&self) -> Result<()> {
        if self.secret.is_some() || is_local_endpoint(&self.bind) {
            return Ok(());
        }
        if !self.insecure {
            return Err(Error::InsecureBind {
                endpoint: self.bind.clone(),
            });
        }
        tracing::warn!(
            endpoint = %self.bind,
            "binding a non-loopback address without a secret (--insecure): anyone who can reach \
             it can take work units or send false results"
        );
        Ok(())
    }
}

/// Whether an endpoint can only be reached from this machine.
pub fn is_local_endpoint(endpoint: &str) -> bool {
    if endpoint.starts_with("ipc://") || endpoint.starts_with("inproc://") {
        return true;
    }
    let Some(address) = endpoint.strip_prefix("tcp://") else {
        return false;
    };
    // ZeroMQ's `tcp://[interface;]host:port`: what is bound is the part before the port.
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Options of one job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobOptions {
    /// Higher-priority jobs' units are leased first; default 0.
    pub priority: i32,
    /// Jobs of one batch group share `work` messages: a worker serving several of their job
    /// types gets their units together, and adaptive batching measures them as one kind of
    /// work (so give a group only jobs of one priority whose units cost about the same, such
    /// as the terms of one likelihood, which then cost one round trip instead of one per
    /// term); default none.
    pub group: Option<String>,
}

/// Frames dropped because they broke the protocol, by cause.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DroppedFrames {
    /// Not decodable, or not exactly one body frame.
    pub malformed: u64,
    /// A `type` this version does not know.
    pub unknown_type: u64,
    /// Over the frame size limit.
    pub oversize: u64,
    /// Hellos refused (wrong protocol version, no job types).
    pub rejected: u64,
    /// Messages from peers that had not said hello (answered with `Reset`).
    pub unregistered: u64,
    /// Delegator-to-worker message types sent by a worker.
    pub unexpected: u64,
    /// Frames from peers that had not authenticated (or plaintext inside a sealed session),
    /// hellos without a nonce, and failed proofs, when a secret is configured (since version 2).
    pub unauthenticated: u64,
    /// Sealed frames whose counter was not above the last one accepted (since version 2).
    pub replayed: u64,
    /// Sealed frames that failed authentication: tampered, forged, or truncated (since
    /// version 2).
    pub bad_seal: u64,
}

/// A snapshot of the delegator's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Unit counters.
    pub counters: Counters,
    /// Frames dropped, by cause.
    pub dropped: DroppedFrames,
    /// Registered workers.
    pub workers: Vec<WorkerInfo>,
    /// Units queued per job type.
    pub queue_depths: Vec<(String, u64)>,
    /// Units queued per job type that no registered worker serves (a task misspelt, or its
    /// workers not yet come).
    pub unserved: Vec<(String, u64)>,
    /// Payload bytes of the units queued and not leased, across jobs (capped by
    /// [`SchedulerConfig::max_queued_bytes`]).
    pub queued_bytes: u64,
    /// Jobs not yet finished.
    pub open_jobs: usize,
    /// The engine's clock when the snapshot was taken (milliseconds since it started), the
    /// reference for [`WorkerInfo::last_seen`].
    pub now: scheduler::Millis,
    /// Connections whose peers have not registered: held now, and cut since the start.
    pub connections: ConnectionCounts,
}

/// Connections whose peers have not registered (see
/// [`DelegatorConfig::max_pending_connections`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    /// Held now.
    pub pending: u64,
    /// Cut as soon as they were accepted, because the most allowed were pending.
    pub refused: u64,
    /// Cut because their peer did not register within the deadline.
    pub expired: u64,
}

/// Units per command when streaming a job's inputs to the engine.
const SUBMIT_CHUNK: usize = 4096;

/// A running delegator: a handle to its engine thread. Dropping it stops the engine.
#[derive(Debug)]
pub struct Delegator {
    endpoint: String,
    commands_tx: Sender<Command>,
    waker: Waker,
    metrics: metrics::EngineMetrics,
    budget: Arc<QueueBudget>,
    engine: Option<JoinHandle<()>>,
}

/// Asks a running delegator for [`Stats`] from any thread; cheap to clone.
#[derive(Debug, Clone)]
pub struct StatsHandle {
    commands_tx: Sender<Command>,
    waker: Waker,
}

impl StatsHandle {
    /// A snapshot of the delegator's state, taken by its engine thread: a reply proves the
    /// engine's loop is alive. [`Error::Stopped`] once it has stopped.
    pub fn stats(&self) -> Result<Stats> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        self.commands_tx
            .send(Command::Stats { reply_tx })
            .map_err(|_| Error::Stopped)?;
        self.waker.wake();
        reply_rx.recv().map_err(|_| Error::Stopped)
    }
}

impl Delegator {
    /// Binds the endpoint and starts the engine thread.
    pub fn start(config: DelegatorConfig) -> Result<Delegator> {
        config.check_bind_policy()?;
        let context = zmq::Context::new();
        let socket = context.socket(zmq::ROUTER)?;
        // Sends to a departed peer fail loudly (EHOSTUNREACH) instead of vanishing.
        socket.set_router_mandatory(true)?;
        // Credit flow bounds what is queued per worker; ZeroMQ's own limit would only drop work.
        socket.set_sndhwm(0)?;
        socket.set_rcvhwm(0)?;
        // Frames over the limit are answered with Reject; beyond it and 64 KiB more, libzmq cuts
        // the peer off before buffering the frame. This cap is what one connection can hold in
        // memory: unregistered ones are few and short-lived (`engine::connections`).
        let hard_limit = config
            .scheduler
            .max_frame
            .saturating_add(FRAME_CAP_MARGIN)
            .min(i64::MAX as u64);
        socket.set_maxmsgsize(hard_limit as i64)?;
        socket.set_linger(0)?;
        // Before binding, so that no connection is accepted unseen.
        let monitor = engine::Monitor::attach(&context, &socket)?;
        socket.bind(&config.bind).map_err(|source| Error::Bind {
            endpoint: config.bind.clone(),
            source,
        })?;
        let endpoint = socket
            .get_last_endpoint()?
            .unwrap_or_else(|_| config.bind.clone());
        let (waker, wake_rx) = wake_pair()?;
        let (commands_tx, commands_rx) = crossbeam_channel::unbounded();
        let metrics = metrics::EngineMetrics::default();
        let budget = Arc::new(QueueBudget::new(config.scheduler.max_queued_bytes));
        let engine = Engine::new(
            socket,
            monitor,
            wake_rx,
            commands_rx,
            config,
            metrics.clone(),
            budget.clone(),
        );
        let handle = std::thread::Builder::new()
            .name(ENGINE_THREAD.into())
            .spawn(move || {
                // The context must outlive the socket the engine owns.
                let _context = context;
                engine.run();
            })?;
        tracing::info!(%endpoint, "delegator listening");
        Ok(Delegator {
            endpoint,
            commands_tx,
            waker,
            metrics,
            budget,
            engine: Some(handle),
        })
    }

    /// The endpoint actually bound (with the port filled in if 0 was asked for).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The endpoint processes on this machine should connect to.
    pub fn local_endpoint(&self) -> String {
        ganger_transport::local_endpoint(&self.endpoint)
    }

    /// Submits a job: every input is encoded as a payload and evaluated by the task `job_type`;
    /// outputs are decoded as `O`.
    ///
    /// Inputs are streamed to the engine in chunks from this thread, which waits whenever
    /// [`SchedulerConfig::max_queued_bytes`] of units are queued and not yet leased (see
    /// [`Job::extend`]): a job far larger than that cap returns once workers have taken all but
    /// the last of it.
    pub fn submit<I, O>(
        &self,
        job_type: &str,
        inputs: impl IntoIterator<Item = I>,
        options: JobOptions,
    ) -> Result<Job<O>>
    where
        I: Serialize,
        O: DeserializeOwned,
    {
        let mut encode_error = None;
        let payloads = inputs
            .into_iter()
            .map_while(|input| match payload::to_payload(&input) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    encode_error = Some(e);
                    None
                }
            });
        let job = self.submit_payloads(job_type, payloads, options)?;
        match encode_error {
            Some(e) => Err(e.into()),
            None => Ok(job),
        }
    }

    /// Submits a job whose inputs are already encoded payloads.
    pub fn submit_payloads<O: DeserializeOwned>(
        &self,
        job_type: &str,
        payloads: impl IntoIterator<Item = Payload>,
        options: JobOptions,
    ) -> Result<Job<O>> {
        let job = self.open(job_type, options)?;
        let mut chunk = Vec::with_capacity(SUBMIT_CHUNK);
        for payload in payloads {
            chunk.push(payload);
            if chunk.len() == SUBMIT_CHUNK {
                job.extend(std::mem::replace(
                    &mut chunk,
                    Vec::with_capacity(SUBMIT_CHUNK),
                ))?;
            }
        }
        job.extend(chunk)?;
        job.seal()?;
        Ok(job)
    }

    /// Opens a job that takes inputs as they come ([`Job::extend`]) until [`Job::seal`]ed; the
    /// MCMC driver adds each round's evaluations to one open job per likelihood term.
    pub fn open<O: DeserializeOwned>(&self, job_type: &str, options: JobOptions) -> Result<Job<O>> {
        let shared = Arc::new(JobShared::default());
        let (outcomes_tx, outcomes_rx) = crossbeam_channel::unbounded();
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        self.command(Command::Submit {
            job_type: job_type.to_owned(),
            priority: options.priority,
            group: options.group,
            shared: shared.clone(),
            outcomes_tx,
            reply_tx,
        })?;
        let id = reply_rx.recv().map_err(|_| Error::Stopped)?;
        Ok(Job::new(
            id,
            outcomes_rx,
            shared,
            self.commands_tx.clone(),
            self.waker.clone(),
            self.budget.clone(),
        ))
    }

    /// A snapshot of counters, workers and queues.
    pub fn stats(&self) -> Result<Stats> {
        self.stats_handle().stats()
    }

    /// A handle that asks for [`Stats`] from another thread.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle {
            commands_tx: self.commands_tx.clone(),
            waker: self.waker.clone(),
        }
    }

    /// Lends the engine to this thread until the loan is dropped (see [`EngineLoan`]);
    /// `None` if it has stopped or is lent already. For a client that does nothing but submit
    /// and wait on its own outcomes (the MCMC driver): it saves two thread wake-ups per round
    /// trip.
    pub fn lend_engine(&self) -> Option<EngineLoan<'_>> {
        engine::lend(&self.commands_tx, &self.waker)
    }

    /// The histograms the engine records (batch sizes, round trips).
    pub fn metrics(&self) -> &metrics::EngineMetrics {
        &self.metrics
    }

    /// Stops the engine: registered workers are told to start over, and the socket closes.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn command(&self, command: Command) -> Result<()> {
        self.commands_tx.send(command).map_err(|_| Error::Stopped)?;
        self.waker.wake();
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(engine) = self.engine.take() {
            let _ = self.commands_tx.send(Command::Shutdown);
            self.waker.wake();
            let _ = engine.join();
        }
    }
}

impl Drop for Delegator {
    fn drop(&mut self) {
        self.stop();
    }
}
