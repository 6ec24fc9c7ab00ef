//! The worker's own state for health checks: a snapshot the session loop keeps current and any
//! thread can read, without touching the socket.
//!
//! The session thread writes what it knows into a [`StatusHandle`] as things happen (a welcome,
//! a reset, a failed unit) and once per turn (counters, "still alive"); a turn comes at least
//! every 100 ms however idle the worker is. Readers call [`StatusHandle::snapshot`] for a
//! [`WorkerStatus`], which serializes to the JSON of `ganger-worker --status-file`, and
//! [`WorkerStatus::health`] says whether a health check should pass.
//! Times are kept as [`Instant`]s and turned into wall-clock Unix milliseconds only in a
//! snapshot, so the session loop never reads the wall clock.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::exec::{ExecStatus, Stats as ExecStats};

/// Where a worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    /// Not registered: saying hello until a delegator welcomes it (also after a reset, a
    /// silent delegator or a delegator shutdown).
    Connecting,
    /// Welcomed by a delegator and serving it.
    Connected,
    /// Asked to stop: handing back unstarted units and finishing running ones.
    Stopping,
    /// [`Worker::run`](crate::Worker::run) has returned; nothing will change any more.
    Stopped,
}

impl fmt::Display for WorkerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorkerState::Connecting => "connecting",
            WorkerState::Connected => "connected",
            WorkerState::Stopping => "stopping",
            WorkerState::Stopped => "stopped",
        })
    }
}

/// A worker's status at one moment; the JSON written by `ganger-worker --status-file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// Where the worker is in its life.
    pub state: WorkerState,
    /// The delegator endpoint it connects to.
    pub endpoint: String,
    /// The name it gives the delegator.
    pub name: String,
    /// The host name it gives the delegator.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The id the delegator assigned in its last welcome; `None` while not registered.
    pub worker_id: Option<u64>,
    /// Registrations with a delegator so far.
    pub sessions: u64,
    /// Units evaluated (successfully or not).
    pub units_done: u64,
    /// Units whose task failed or panicked.
    pub unit_errors: u64,
    /// The last problem: a failed unit's error, a rejection, a reset, a silent delegator,
    /// a frame that could not be decoded; `None` if there has been none.
    pub last_error: Option<String>,
    /// When `last_error` happened, Unix milliseconds.
    pub last_error_unix_ms: Option<u64>,
    /// When the last frame from the delegator arrived, Unix milliseconds; `None` if never.
    pub last_heard_unix_ms: Option<u64>,
    /// When the session loop last updated the status, Unix milliseconds. It does so at least
    /// every 100 ms while it runs, so an old value means the worker is dead or stuck.
    pub updated_unix_ms: u64,
    /// The program copies of `ganger-worker --exec`; absent for a worker without them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecStatus>,
}

/// The verdict of a health check on a [`WorkerStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Connected to a delegator, and the status is recent.
    Healthy,
    /// The status is recent (or final) but the worker is not registered with a delegator.
    NotConnected(WorkerState),
    /// The status was last updated longer ago than allowed: the worker is gone or stuck.
    Stale {
        /// How long ago it was updated.
        age: Duration,
        /// The most allowed.
        max_age: Duration,
    },
}

impl Health {
    /// Whether the check passes.
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Healthy => f.write_str("ok"),
            Health::NotConnected(state) => write!(f, "failing: not connected (state {state})"),
            Health::Stale { age, max_age } => write!(
                f,
                "failing: stale (updated {:.1} s ago, limit {:.1} s)",
                age.as_secs_f64(),
                max_age.as_secs_f64()
            ),
        }
    }
}

impl WorkerStatus {
    /// How long before `now` the status was last updated (zero if the clock says it is in the
    /// future, as it may after a clock step).
    pub fn age(&self, now: SystemTime) -> Duration {
        let updated = UNIX_EPOCH + Duration::from_millis(self.updated_unix_ms);
        now.duration_since(updated).unwrap_or(Duration::ZERO)
    }

    /// Whether a health check at `now` passes: connected, and updated within `max_age`.
    ///
    /// A stopped worker is reported as not connected however old its status, since it will
    /// never be updated again; otherwise staleness wins, because the state of a dead worker's
    /// last snapshot says nothing about the present.
    pub fn health(&self, now: SystemTime, max_age: Duration) -> Health {
        if self.state == WorkerState::Stopped {
            return Health::NotConnected(self.state);
        }
        let age = self.age(now);
        if age > max_age {
            Health::Stale { age, max_age }
        } else if self.state != WorkerState::Connected {
            Health::NotConnected(self.state)
        } else {
            Health::Healthy
        }
    }
}

/// Reads a running worker's status from any thread; cheap to clone.
///
/// Obtained from [`Worker::status_handle`](crate::Worker::status_handle) before the worker
/// runs; it stays usable after the worker has stopped (the state is then
/// [`WorkerState::Stopped`]).
#[derive(Debug, Clone)]
pub struct StatusHandle {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    board: Mutex<Board>,
    /// Notified whenever `Board::changes` grows.
    changed: Condvar,
}

impl StatusHandle {
    /// The status now.
    pub fn snapshot(&self) -> WorkerStatus {
        self.lock().snapshot(Instant::now(), SystemTime::now())
    }

    /// How many state changes (state or worker id) there have been so far.
    pub fn changes(&self) -> u64 {
        self.lock().changes
    }

    /// Blocks until there have been more than `seen` state changes, or `timeout` has passed;
    /// returns the number of changes so far. For a writer that saves the status periodically
    /// and at once on every change.
    pub fn wait_for_change(&self, seen: u64, timeout: Duration) -> u64 {
        let board = self.lock();
        let (board, _) = self
            .shared
            .changed
            .wait_timeout_while(board, timeout, |board| board.changes <= seen)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        board.changes
    }

    pub(crate) fn new(board: Board) -> StatusHandle {
        StatusHandle {
            shared: Arc::new(Shared {
                board: Mutex::new(board),
                changed: Condvar::new(),
            }),
        }
    }

    /// Applies `change` to the board, waking waiters if the state changed.
    pub(crate) fn update(&self, change: impl FnOnce(&mut Board)) {
        let mut board = self.lock();
        let before = board.changes;
        change(&mut board);
        if board.changes != before {
            self.shared.changed.notify_all();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Board> {
        // The board is plain data that every update leaves consistent; a panic elsewhere while
        // holding the lock must not take health reporting down with it.
        self.shared
            .board
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What the session loop knows about itself, in monotonic time.
#[derive(Debug, Clone)]
pub(crate) struct Board {
    state: WorkerState,
    endpoint: String,
    name: String,
    host: String,
    pid: u32,
    worker_id: Option<u64>,
    pub(crate) sessions: u64,
    pub(crate) units_done: u64,
    pub(crate) unit_errors: u64,
    last_error: Option<(String, Instant)>,
    pub(crate) last_heard: Option<Instant>,
    pub(crate) updated: Instant,
    /// Counts changes of `state` or `worker_id`.
    changes: u64,
    /// The exec bridge's counters, read at each snapshot.
    pub(crate) exec: Option<Arc<ExecStats>>,
}

impl Board {
    /// A worker about to connect to `endpoint`.
    pub(crate) fn new(endpoint: &str, name: &str, host: &str, now: Instant) -> Board {
        Board {
            state: WorkerState::Connecting,
            endpoint: endpoint.to_owned(),
            name: name.to_owned(),
            host: host.to_owned(),
            pid: std::process::id(),
            worker_id: None,
            sessions: 0,
            units_done: 0,
            unit_errors: 0,
            last_error: None,
            last_heard: None,
            updated: now,
            changes: 0,
            exec: None,
        }
    }

    /// Registered under `worker_id` (a repeated welcome may bring a new id).
    pub(crate) fn welcomed(&mut self, worker_id: u64) {
        if self.state == WorkerState::Connecting {
            self.set_state(WorkerState::Connected);
        }
        if self.worker_id != Some(worker_id) {
            self.worker_id = Some(worker_id);
            self.changes += 1;
        }
    }

    /// Registering again; the old worker id means nothing to the delegator any more.
    pub(crate) fn connecting(&mut self) {
        if self.state == WorkerState::Connected {
            self.set_state(WorkerState::Connecting);
        }
        if self.worker_id.take().is_some() {
            self.changes += 1;
        }
    }

    /// Leaving: the worker id is kept, since the delegator still knows it until it is gone.
    pub(crate) fn stopping(&mut self) {
        if self.state != WorkerState::Stopped {
            self.set_state(WorkerState::Stopping);
        }
    }

    /// Done for good.
    pub(crate) fn stopped(&mut self) {
        self.set_state(WorkerState::Stopped);
    }

    /// Records a problem, replacing the previous one.
    pub(crate) fn error(&mut self, message: impl Into<String>, now: Instant) {
        self.last_error = Some((message.into(), now));
    }

    /// The status at `now`, with times converted through the wall clock reading `wall`
    /// taken at the same moment.
    pub(crate) fn snapshot(&self, now: Instant, wall: SystemTime) -> WorkerStatus {
        let unix_ms = |at: Instant| {
            let wall_at = wall - now.saturating_duration_since(at);
            wall_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_millis().min(u64::MAX as u128) as u64)
        };
        // A crash or timeout of an exec program is a problem too; the newer one is shown.
        let exec_problem = self.exec.as_ref().and_then(|exec| exec.last_problem());
        let last_error = match (&self.last_error, exec_problem) {
            (Some(mine), Some(exec)) if exec.1 > mine.1 => Some(exec),
            (None, Some(exec)) => Some(exec),
            (mine, _) => mine.clone(),
        };
        WorkerStatus {
            state: self.state,
            endpoint: self.endpoint.clone(),
            name: self.name.clone(),
            host: self.host.clone(),
            pid: self.pid,
            worker_id: self.worker_id,
            sessions: self.sessions,
            units_done: self.units_done,
            unit_errors: self.unit_errors,
            last_error: last_error.as_ref().map(|(message, _)| message.clone()),
            last_error_unix_ms: last_error.as_ref().map(|(_, at)| unix_ms(*at)),
            last_heard_unix_ms: self.last_heard.map(unix_ms),
            updated_unix_ms: unix_ms(self.updated),
            exec: self.exec.as_ref().map(|exec| exec.status()),
        }
    }

    fn set_state(&mut self, state: WorkerState) {
        if self.state != state {
            self.state = state;
            self.changes += 1;
        }
    }
}

#[cfg(test)]
mod tests;
