//! The exec bridge: a worker whose units are evaluated by copies of a program in any language,
//! talking over stdin/stdout (`ganger-worker --exec "CMD ARGS"`; PROTOCOL.md §11).
//!
//! An [`ExecBridge`] keeps one copy of the program per evaluation thread, each evaluating one
//! unit at a time. A copy that exits (or closes stdout, or breaks the framing) is restarted
//! and its unit retried on the fresh copy, up to [`ExecConfig::retries`] times before the unit
//! fails naming how the program ended; with [`ExecConfig::timeout`] a copy that runs one unit
//! too long is killed with its process group, restarted, and the unit failed. A copy that keeps
//! dying right after starting is restarted with a back-off (100 ms doubling to 5 s).
//! [`ExecBridge::registry`] serves the program's job types to a [`Worker`](crate::Worker), and
//! [`Worker::watch_exec`](crate::Worker::watch_exec) puts the bridge's counters into the
//! worker's status.
//!
//! Copies never outlive the worker: they are killed when the bridge is dropped or shut down,
//! and the kernel kills them (parent-death signal) if the worker process dies, even by SIGKILL;
//! what a copy started itself sees EOF on stdin and must exit.

mod framing;
mod program;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use ganger_core::task::{Registry, Task};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

pub use framing::{msgpack_to_json, Framing, ReadError, Reply, MAX_MESSAGE};
use program::{Program, ReadEvent, Spawner};

/// How long after starting every copy the bridge waits to see whether one exits at once (a
/// command that does not exist, a program that cannot import its libraries), so that
/// [`ExecBridge::start`] can report it instead of a restart loop.
pub const STARTUP_CHECK: Duration = Duration::from_millis(500);
/// A copy that exits sooner than this after starting, without having answered a request,
/// counts as dying at start: its restart is delayed, by a back-off that grows while it keeps
/// doing so.
const SHORT_LIFE: Duration = Duration::from_secs(1);
/// The first restart delay of a copy that dies at start; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest restart delay.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a copy that closed its stdout gets to exit by itself before it is killed (so that
/// its own exit status, not the kill, is what the unit's error names).
const EXIT_PATIENCE: Duration = Duration::from_secs(1);
/// How often the monitor looks for idle copies that exited, and restarts the missing ones.
const MONITOR_INTERVAL: Duration = Duration::from_millis(100);

/// Why an exec bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The settings are unusable.
    #[error("invalid --exec settings: {0}")]
    Config(String),
    /// `/bin/sh` (or a thread) could not be started.
    #[error("cannot start the --exec program `{command}`: {source}")]
    Spawn {
        /// The command as given.
        command: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A copy ended right after starting.
    #[error(
        "the --exec program `{command}` {status} right after starting (its error, if it printed \
         one, is on stderr above)"
    )]
    FirstStart {
        /// The command as given.
        command: String,
        /// How it ended, e.g. `exited with status 127`.
        status: String,
    },
}

/// An exec bridge's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecConfig {
    /// The command line, run by `/bin/sh -c`.
    pub command: String,
    /// The framing on stdin/stdout; default MessagePack.
    pub framing: Framing,
    /// Copies of the program kept running; one unit at a time each. Use the worker's threads.
    pub copies: usize,
    /// Job types the program serves (patterns ending in `*` allowed); at least one.
    pub job_types: Vec<String>,
    /// Local retries of a unit whose copy crashed (or broke the framing) on it; then the unit
    /// fails and the delegator's own retries take over. Default 1.
    pub retries: u32,
    /// A unit running longer fails and its copy is killed and restarted; default none.
    pub timeout: Option<Duration>,
}

impl ExecConfig {
    /// Defaults for `command` serving `job_types` with `copies` copies.
    pub fn new(command: impl Into<String>, job_types: Vec<String>, copies: usize) -> Self {
        ExecConfig {
            command: command.into(),
            framing: Framing::default(),
            copies,
            job_types,
            retries: 1,
            timeout: None,
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ExecError> {
        if self.command.trim().is_empty() {
            return Err(ExecError::Config("the command is empty".into()));
        }
        if self.copies == 0 {
            return Err(ExecError::Config("at least one copy is needed".into()));
        }
        if self.job_types.is_empty() || self.job_types.iter().any(|t| t.trim().is_empty()) {
            return Err(ExecError::Config(
                "--job-types must name the job types the program serves".into(),
            ));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(ExecError::Config("the timeout must be positive".into()));
        }
        Ok(())
    }
}

/// The exec bridge's part of the worker's status (`exec` in the status file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStatus {
    /// The command the copies run.
    pub command: String,
    /// Copies running now.
    pub programs_running: usize,
    /// Copies started after the first ones.
    pub restarts: u64,
    /// Copies that exited (or closed stdout) on their own, holding a unit or idle.
    pub crashes: u64,
    /// Units that ran past the timeout (their copies were killed).
    pub timeouts: u64,
    /// Copies killed for breaking the framing (a malformed reply, a wrong id).
    pub breaches: u64,
    /// Why the last restart happened; `None` if there has been none.
    pub last_restart_reason: Option<String>,
}

/// Keeps copies of a program running and evaluates units on them; see the module docs.
/// Cheap to clone: clones share the copies.
#[derive(Debug, Clone)]
pub struct ExecBridge {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ExecConfig,
    copies: Vec<Mutex<Copy>>,
    /// Indices of copies no unit is using.
    idle_tx: Sender<usize>,
    idle_rx: Receiver<usize>,
    spawner: Spawner,
    /// Each running copy's pid (= process group), for a shutdown that cannot wait for locks.
    pids: Mutex<Vec<Option<u32>>>,
    stats: Arc<Stats>,
    next_id: AtomicU64,
    stopped: AtomicBool,
}

/// One slot: a running copy, or the time it may be started again.
#[derive(Debug)]
struct Copy {
    program: Option<Program>,
    /// Restart delay after a short life; zero after a healthy one.
    backoff: Duration,
    not_before: Instant,
}

/// The counters behind [`ExecStatus`], shared with the worker's status, and the last problem
/// for its `last_error`.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    state: Mutex<(ExecStatus, Option<(String, Instant)>)>,
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, (ExecStatus, Option<(String, Instant)>)> {
        lock(&self.state)
    }

    /// The counters now.
    pub(crate) fn status(&self) -> ExecStatus {
        self.lock().0.clone()
    }

    /// The last crash, timeout or breach, and when.
    pub(crate) fn last_problem(&self) -> Option<(String, Instant)> {
        self.lock().1.clone()
    }
}

/// How a copy let a unit down.
enum Failure {
    /// It exited or closed stdout: retry on a fresh copy.
    Crashed(String),
    /// It broke the framing: kill, retry on a fresh copy.
    Breach(String),
    /// It ran too long: kill, fail the unit.
    TimedOut(Duration),
}

impl ExecBridge {
    /// Starts every copy and checks, for [`STARTUP_CHECK`], that none exits at once.
    pub fn start(config: ExecConfig) -> Result<ExecBridge, ExecError> {
        config.validate()?;
        let spawn_error = |source| ExecError::Spawn {
            command: config.command.clone(),
            source,
        };
        let spawner = Spawner::start().map_err(spawn_error)?;
        let mut programs = Vec::with_capacity(config.copies);
        for _ in 0..config.copies {
            programs.push(
                spawner
                    .spawn(&config.command, config.framing)
                    .map_err(spawn_error)?,
            );
        }
        let deadline = Instant::now() + STARTUP_CHECK;
        while Instant::now() < deadline {
            if let Some(status) = programs.iter().find_map(Program::exit_status) {
                return Err(ExecError::FirstStart {
                    command: config.command.clone(),
                    status,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let (idle_tx, idle_rx) = crossbeam_channel::unbounded();
        let now = Instant::now();
        let pids = programs.iter().map(|p| Some(p.pid())).collect();
        let copies = programs
            .into_iter()
            .enumerate()
            .map(|(index, program)| {
                let _ = idle_tx.send(index);
                Mutex::new(Copy {
                    program: Some(program),
                    backoff: Duration::ZERO,
                    not_before: now,
                })
            })
            .collect();
        let stats = Arc::new(Stats::default());
        stats.lock().0 = ExecStatus {
            command: config.command.clone(),
            programs_running: config.copies,
            ..ExecStatus::default()
        };
        info!(command = %config.command, copies = config.copies, framing = %config.framing, "exec programs started");
        let inner = Arc::new(Inner {
            config,
            copies,
            idle_tx,
            idle_rx,
            spawner,
            pids: Mutex::new(pids),
            stats,
            next_id: AtomicU64::new(1),
            stopped: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("ganger-exec-monitor".into())
            .spawn(move || monitor(&weak))
            .map_err(|source| ExecError::Spawn {
                command: inner.config.command.clone(),
                source,
            })?;
        Ok(ExecBridge { inner })
    }

    /// A registry serving the configured job types with the program.
    pub fn registry(&self) -> Registry {
        let mut registry = Registry::new();
        for job_type in &self.inner.config.job_types {
            registry.register_raw(job_type.clone(), ExecTask(self.inner.clone()));
        }
        registry
    }

    /// The bridge's counters now.
    pub fn status(&self) -> ExecStatus {
        self.inner.stats.status()
    }

    /// The process ids of the copies running now (each also its process group's id).
    pub fn pids(&self) -> Vec<u32> {
        lock(&self.inner.pids).iter().flatten().copied().collect()
    }

    /// Kills every copy and starts no more; units still running fail. Also happens when the
    /// last clone of the bridge and of its registry's tasks is dropped.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }

    pub(crate) fn stats(&self) -> Arc<Stats> {
        self.inner.stats.clone()
    }
}

/// The task every job type of the bridge's registry maps to.
struct ExecTask(Arc<Inner>);

impl Task for ExecTask {
    fn run(&self, _input: &[u8], _output: &mut Vec<u8>) -> Result<(), String> {
        Err("the exec bridge needs each unit's job type (Task::run_unit)".into())
    }

    fn run_unit(&self, job_type: &str, input: &[u8], output: &mut Vec<u8>) -> Result<(), String> {
        self.0.evaluate(job_type, input, output)
    }
}

impl Inner {
    /// Evaluates one unit on an idle copy.
    fn evaluate(&self, job_type: &str, input: &[u8], output: &mut Vec<u8>) -> Result<(), String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut request = Vec::with_capacity(input.len() + job_type.len() + 32);
        self.config
            .framing
            .encode_request(id, job_type, input, &mut request)?;
        let index = self
            .idle_rx
            .recv()
            .map_err(|_| "the exec bridge has shut down".to_owned())?;
        let result = {
            let mut copy = lock(&self.copies[index]);
            self.evaluate_on(index, &mut copy, id, &request, output)
        };
        let _ = self.idle_tx.send(index);
        result
    }

    fn evaluate_on(
        &self,
        index: usize,
        copy: &mut Copy,
        id: u64,
        request: &[u8],
        output: &mut Vec<u8>,
    ) -> Result<(), String> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.ensure_running(index, copy)?;
            let program = copy.program.as_ref().expect("ensure_running started it");
            program.send(request.to_vec());
            let failure = match self.await_reply(program, id) {
                Ok(outcome) => {
                    if let Some(program) = copy.program.as_mut() {
                        program.answered = true;
                    }
                    let bytes = outcome?;
                    output.extend_from_slice(&bytes);
                    return Ok(());
                }
                Err(failure) => failure,
            };
            let (reason, timed_out) = match &failure {
                Failure::Crashed(how) => {
                    (format!("the program {how} while evaluating a unit"), None)
                }
                Failure::Breach(why) => {
                    (format!("the program broke the exec framing: {why}"), None)
                }
                Failure::TimedOut(after) => (
                    format!("the unit timed out after {} s", after.as_secs_f64()),
                    Some(*after),
                ),
            };
            self.retire(index, copy, &failure, &reason);
            // A hang is likely to repeat: not retried here; the delegator retries elsewhere.
            if let Some(after) = timed_out {
                return Err(format!(
                    "timed out after {} s (the program was killed and restarted)",
                    after.as_secs_f64()
                ));
            }
            if attempts > self.config.retries {
                return Err(format!(
                    "{reason} ({attempts} attempts on this worker, each on a fresh copy)"
                ));
            }
            warn!(%reason, "retrying the unit on a fresh copy of the program");
        }
    }

    /// Waits for the reply to request `id`: the unit's outcome, or how the copy failed.
    fn await_reply(&self, program: &Program, id: u64) -> Result<Result<Vec<u8>, String>, Failure> {
        let event = match self.config.timeout {
            Some(timeout) => match program.events_rx.recv_timeout(timeout) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => return Err(Failure::TimedOut(timeout)),
                Err(RecvTimeoutError::Disconnected) => ReadEvent::Closed(None),
            },
            None => program.events_rx.recv().unwrap_or(ReadEvent::Closed(None)),
        };
        match event {
            ReadEvent::Message(message) => match self.config.framing.decode_reply(&message) {
                Ok(reply) if reply.id == id => Ok(reply.outcome),
                Ok(reply) => Err(Failure::Breach(format!(
                    "a reply with id {} to request {id}",
                    reply.id
                ))),
                Err(why) => Err(Failure::Breach(why)),
            },
            ReadEvent::Closed(Some(error)) => Err(Failure::Breach(error.to_string())),
            ReadEvent::Closed(None) => Err(Failure::Crashed(
                program
                    .wait_for_exit(EXIT_PATIENCE)
                    .unwrap_or_else(|| "closed its stdout (and was killed)".into()),
            )),
        }
    }

    /// Kills a copy that failed, counts it, and starts the next one (at once unless it died
    /// young, so that a timed-out copy is replaced before the unit's failure is reported).
    fn retire(&self, index: usize, copy: &mut Copy, failure: &Failure, reason: &str) {
        // A copy that answered something is not dying at start, however young.
        let lived = copy
            .program
            .take()
            .map(|program| {
                let lived = match program.answered {
                    true => SHORT_LIFE,
                    false => program.started.elapsed(),
                };
                program.kill();
                lived
            })
            .unwrap_or_default();
        lock(&self.pids)[index] = None;
        {
            let mut state = self.stats.lock();
            let (status, problem) = &mut *state;
            status.programs_running = status.programs_running.saturating_sub(1);
            match failure {
                Failure::Crashed(_) => status.crashes += 1,
                Failure::Breach(_) => status.breaches += 1,
                Failure::TimedOut(_) => status.timeouts += 1,
            }
            *problem = Some((reason.to_owned(), Instant::now()));
        }
        self.schedule_restart(copy, lived, reason);
        let _ = self.ensure_running(index, copy);
    }

    fn schedule_restart(&self, copy: &mut Copy, lived: Duration, reason: &str) {
        copy.backoff = if lived < SHORT_LIFE {
            (copy.backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF)
        } else {
            Duration::ZERO
        };
        copy.not_before = Instant::now() + copy.backoff;
        if copy.backoff.is_zero() {
            warn!(%reason, "restarting the program");
        } else {
            warn!(
                %reason,
                lived_ms = lived.as_millis() as u64,
                "restarting the program in {} ms: it keeps dying soon after starting",
                copy.backoff.as_millis()
            );
        }
        self.stats.lock().0.last_restart_reason = Some(reason.to_owned());
    }

    /// Starts the copy if it is not running, waiting out its back-off.
    fn ensure_running(&self, index: usize, copy: &mut Copy) -> Result<(), String> {
        if copy.program.is_some() {
            return Ok(());
        }
        if self.stopped.load(Ordering::SeqCst) {
            return Err("the exec bridge has shut down".into());
        }
        let wait = copy.not_before.saturating_duration_since(Instant::now());
        std::thread::sleep(wait);
        match self
            .spawner
            .spawn(&self.config.command, self.config.framing)
        {
            Ok(program) => {
                lock(&self.pids)[index] = Some(program.pid());
                copy.program = Some(program);
                let mut state = self.stats.lock();
                state.0.programs_running += 1;
                state.0.restarts += 1;
                Ok(())
            }
            Err(e) => {
                let message = format!("cannot start the program `{}`: {e}", self.config.command);
                copy.not_before = Instant::now() + MAX_BACKOFF;
                self.stats.lock().1 = Some((message.clone(), Instant::now()));
                Err(message)
            }
        }
    }

    /// Looks at the copies no unit is using: one that exited is reaped and restarted.
    fn check_idle(&self) {
        for (index, slot) in self.copies.iter().enumerate() {
            let Ok(mut copy) = slot.try_lock() else {
                continue;
            };
            if self.stopped.load(Ordering::SeqCst) {
                return;
            }
            let exited =
                copy.program
                    .as_ref()
                    .and_then(|program| match program.events_rx.try_recv().ok() {
                        Some(ReadEvent::Message(_)) => Some("wrote to stdout unasked".to_owned()),
                        Some(ReadEvent::Closed(_)) => Some(
                            program
                                .wait_for_exit(EXIT_PATIENCE)
                                .unwrap_or_else(|| "closed its stdout".into()),
                        ),
                        None => program.exit_status(),
                    });
            if let Some(how) = exited {
                let reason = format!("the program {how} while idle");
                self.retire(index, &mut copy, &Failure::Crashed(how), &reason);
            } else if copy.program.is_none() && Instant::now() >= copy.not_before {
                let _ = self.ensure_running(index, &mut copy);
            }
        }
    }

    fn shutdown(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        for pid in lock(&self.pids).iter_mut() {
            if let Some(pid) = pid.take() {
                program::kill_group(pid);
            }
        }
        self.stats.lock().0.programs_running = 0;
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Dropping each program kills its group and reaps it.
        for slot in &self.copies {
            lock(slot).program = None;
        }
    }
}

fn monitor(inner: &Weak<Inner>) {
    loop {
        std::thread::sleep(MONITOR_INTERVAL);
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if inner.stopped.load(Ordering::SeqCst) {
            return;
        }
        inner.check_idle();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data left consistent by every update; a panicking unit must not take the bridge
    // down with it.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
