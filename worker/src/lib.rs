//! `ganger-worker`: a stateless worker that dials a delegator and evaluates batches of units.
//!
//! A [`Worker`] connects (never binds), says hello with the job types its [`Registry`] serves,
//! and evaluates each batch on a rayon pool, sending results back in batches.
//! It reconnects forever with backoff, re-registers when the delegator restarts, turns a panic in
//! a task into that unit's error, and on [`Shutdown::request`] hands back the units it has not
//! started before leaving. Killing it at any moment loses nothing: the delegator requeues.
//! [`Worker::status_handle`] reads its state (connecting, connected, stopping, stopped), its
//! counters and its last error from any thread, for health checks.
//! With an [`exec::ExecBridge`], units go to copies of a program in any language over
//! stdin/stdout instead of Rust tasks (`ganger-worker --exec`).
//!
//! ```no_run
//! use ganger_worker::{Registry, Worker, WorkerConfig};
//!
//! # fn main() -> Result<(), ganger_worker::Error> {
//! let mut registry = Registry::with_builtins();
//! registry.register("cube", |x: f64| x * x * x);
//! let worker = Worker::new(WorkerConfig::new("tcp://127.0.0.1:5555"), registry)?;
//! let stop = worker.shutdown_handle();
//! let status = worker.status_handle();
//! std::thread::spawn(move || {
//!     std::thread::sleep(std::time::Duration::from_secs(60));
//!     println!("after a minute: {:?}", status.snapshot().state);
//!     stop.request();
//! });
//! let summary = worker.run()?;
//! println!("evaluated {} units", summary.units_done);
//! # Ok(())
//! # }
//! ```

mod compute;
pub mod exec;
mod secure;
mod session;
mod status;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use ganger_core::protocol::secure::Secret;
pub use ganger_core::task::{Registry, Task, TaskResult};
use ganger_transport::{wake_pair, WakeReceiver, Waker};

use session::Session;
use status::Board;
pub use status::{Health, StatusHandle, WorkerState, WorkerStatus};

/// What can stop a worker with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The delegator refused this worker; retrying with the same settings would not help.
    #[error("rejected by the delegator (which speaks protocol {delegator_protocol}): {reason}")]
    Rejected {
        /// The delegator's reason.
        reason: String,
        /// The protocol version the delegator speaks.
        delegator_protocol: u32,
    },
    /// The endpoint is not a valid ZeroMQ endpoint.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint as given.
        endpoint: String,
        /// ZeroMQ's reason.
        source: zmq::Error,
    },
    /// Creating or configuring the socket failed.
    #[error("zmq: {0}")]
    Socket(#[from] zmq::Error),
    /// The thread pool or wake pipe could not be created.
    #[error("cannot start: {0}")]
    Start(String),
    /// The configuration asks for something impossible.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// A `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Worker settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// The delegator's endpoint, e.g. `tcp://delegator.example:5555`.
    pub connect: String,
    /// Name shown in the delegator's logs; default `HOST-PID`.
    pub name: String,
    /// Host name reported to the delegator; default this machine's.
    pub host: String,
    /// Evaluation threads (the slots advertised); default all cores.
    pub threads: usize,
    /// Units accepted beyond `threads` so the pool never waits for work; default 65536.
    /// The delegator additionally keeps only about 20 ms of work queued per worker.
    pub prefetch: u32,
    /// Serve only these job types (default: every task in the registry).
    pub job_types: Option<Vec<String>>,
    /// After a stop request, how long to finish running units before leaving; default 30 s.
    pub grace: Duration,
    /// Initial reconnect interval; doubles up to `reconnect_max`; default 100 ms.
    pub reconnect: Duration,
    /// Longest reconnect interval; default 5 s.
    pub reconnect_max: Duration,
    /// The cluster secret; default none. With one, the worker proves it knows it, works only
    /// for a delegator that proves the same, and every frame after the handshake is encrypted
    /// (protocol version 2).
    pub secret: Option<Secret>,
    /// Keep the thread that runs the worker and libzmq's threads on this CPU, leaving the
    /// evaluation pool free; default none (see `ganger_transport::affinity`). For workers on
    /// the delegator's machine, on the delegator's CPU: a cheap unit's round trip then wakes
    /// no idle CPU. Groups of units measured under 25 µs run on the pinned thread too.
    pub messaging_cpu: Option<usize>,
}

impl WorkerConfig {
    /// Defaults for a worker connecting to `connect`.
    pub fn new(connect: impl Into<String>) -> Self {
        let host = hostname();
        WorkerConfig {
            connect: connect.into(),
            name: format!("{host}-{}", std::process::id()),
            host,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            prefetch: 65_536,
            job_types: None,
            grace: Duration::from_secs(30),
            reconnect: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            secret: None,
            messaging_cpu: None,
        }
    }

    /// Checks the settings against the registry and returns the job types to serve.
    pub fn validate(&self, registry: &Registry) -> Result<Vec<String>> {
        if self.threads == 0 {
            return Err(Error::Config("threads must be at least 1".into()));
        }
        let job_types = match &self.job_types {
            None => registry.job_types(),
            Some(wanted) => {
                if let Some(missing) = wanted.iter().find(|t| registry.get(t).is_none()) {
                    return Err(Error::Config(format!(
                        "job type `{missing}` is not a task of this worker (it has: {})",
                        registry.job_types().join(", ")
                    )));
                }
                wanted.clone()
            }
        };
        if job_types.is_empty() {
            return Err(Error::Config("the worker serves no job types".into()));
        }
        Ok(job_types)
    }
}

/// Counters of a worker's life, returned when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Units evaluated (successfully or not).
    pub units_done: u64,
    /// Units whose task failed or panicked.
    pub unit_errors: u64,
    /// Registrations with a delegator.
    pub sessions: u64,
    /// Frames from the delegator that could not be decoded, or that were refused because they
    /// were not sealed (with a secret) or did not open.
    pub dropped_frames: u64,
}

/// Asks a running worker to stop; cheap to clone, usable from any thread or signal thread.
///
/// The first request stops gracefully (hand back unstarted units, finish running ones within
/// the grace period); a second one stops at once.
#[derive(Debug, Clone)]
pub struct Shutdown {
    state: Arc<ShutdownState>,
    waker: Waker,
}

#[derive(Debug, Default)]
pub(crate) struct ShutdownState {
    pub(crate) requests: AtomicUsize,
}

impl Shutdown {
    /// Requests a stop.
    pub fn request(&self) {
        self.state.requests.fetch_add(1, Ordering::SeqCst);
        self.waker.wake();
    }
}

/// A worker ready to run.
pub struct Worker {
    pub(crate) config: WorkerConfig,
    pub(crate) registry: Arc<Registry>,
    pub(crate) job_types: Vec<String>,
    pub(crate) waker: Waker,
    pub(crate) wake_rx: WakeReceiver,
    pub(crate) shutdown: Arc<ShutdownState>,
    pub(crate) status: StatusHandle,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.config)
            .field("job_types", &self.job_types)
            .finish()
    }
}

impl Worker {
    /// Checks the configuration; nothing connects until [`Worker::run`].
    pub fn new(config: WorkerConfig, registry: Registry) -> Result<Worker> {
        let job_types = config.validate(&registry)?;
        let (waker, wake_rx) = wake_pair().map_err(|e| Error::Start(e.to_string()))?;
        let board = Board::new(&config.connect, &config.name, &config.host, Instant::now());
        Ok(Worker {
            status: StatusHandle::new(board),
            config,
            registry: Arc::new(registry),
            job_types,
            waker,
            wake_rx,
            shutdown: Arc::default(),
        })
    }

    /// A handle that stops this worker when asked.
    pub fn shutdown_handle(&self) -> Shutdown {
        Shutdown {
            state: self.shutdown.clone(),
            waker: self.waker.clone(),
        }
    }

    /// A handle that reads this worker's status from any thread, before, while and after it
    /// runs; cheap to clone, and cheap to read (one uncontended lock).
    ///
    /// The state starts as [`WorkerState::Connecting`] and ends as [`WorkerState::Stopped`]
    /// when [`Worker::run`] returns, with the error in `last_error` if it returns one.
    pub fn status_handle(&self) -> StatusHandle {
        self.status.clone()
    }

    /// Reports an exec bridge's counters (programs running, restarts, crashes, timeouts) in
    /// this worker's status, and its crashes and timeouts in `last_error`; for a worker whose
    /// registry is [`ExecBridge::registry`](exec::ExecBridge::registry).
    pub fn watch_exec(&self, bridge: &exec::ExecBridge) {
        let stats = bridge.stats();
        self.status.update(|board| board.exec = Some(stats));
    }

    /// Connects and serves until stopped or rejected; blocks the calling thread, which becomes
    /// the owner of the worker's socket.
    pub fn run(self) -> Result<Summary> {
        let status = self.status.clone();
        let result = self.serve();
        status.update(|board| {
            if let Err(e) = &result {
                board.error(e.to_string(), Instant::now());
            }
            board.stopped();
        });
        result
    }

    /// Everything `run` does but the final status; returns once the socket has closed.
    fn serve(self) -> Result<Summary> {
        // Pinned before the context exists, so that libzmq's threads start pinned; the pool
        // gets the CPUs this thread had (see `ganger_transport::affinity`).
        let free =
            self.config.messaging_cpu.and_then(
                |cpu| match ganger_transport::affinity::pin_current(cpu) {
                    Ok(free) => {
                        tracing::info!(cpu, "messaging threads pinned");
                        Some(free)
                    }
                    Err(e) => {
                        tracing::warn!(cpu, "cannot pin the messaging threads: {e}");
                        None
                    }
                },
            );
        let context = zmq::Context::new();
        let socket = context.socket(zmq::DEALER)?;
        // Queue nothing for a delegator that is not there: a restarted one must not receive
        // results meant for its predecessor, and hellos are retried instead.
        socket.set_immediate(true)?;
        socket.set_sndhwm(0)?;
        socket.set_rcvhwm(0)?;
        socket.set_linger(0)?;
        socket.set_reconnect_ivl(self.config.reconnect.as_millis() as i32)?;
        socket.set_reconnect_ivl_max(self.config.reconnect_max.as_millis() as i32)?;
        socket
            .connect(&self.config.connect)
            .map_err(|source| Error::Connect {
                endpoint: self.config.connect.clone(),
                source,
            })?;
        Session::new(self, socket, free)?.run()
    }
}

/// This machine's host name, or `unknown-host`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_owned())
}
