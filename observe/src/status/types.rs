//! The status as `/api/status` serves it: plain serialisable data, the shape of the JSON that
//! the dashboard, the terminal and scripts read.

use serde::{Deserialize, Serialize};

use ganger_mcmc::McmcStatus;

/// What kind of work the delegator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// Nothing yet.
    Idle,
    /// A job of units (`ganger-delegator run`).
    Run,
    /// An MCMC run.
    Mcmc,
}

/// Where the run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Working.
    Running,
    /// Finished.
    Done,
    /// Stopped before the end (it can be resumed, for MCMC).
    Stopped,
}

/// The whole status, as `/api/status` serves it. See the README's "Watching a run".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// What runs.
    pub kind: RunKind,
    /// The task or config file.
    pub name: String,
    /// Running, done or stopped.
    pub state: RunState,
    /// When the delegator started, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// Seconds since then; once the run has ended, until it ended.
    pub elapsed_secs: f64,
    /// Seconds the run took, from its start to its end; none while it runs.
    #[serde(default)]
    pub run_secs: Option<f64>,
    /// Progress, rate and ETA.
    pub progress: ProgressStatus,
    /// `[elapsed seconds, rate]` over the run, in the progress's rate unit.
    pub throughput: Vec<[f64; 2]>,
    /// Whether nothing is stuck: the engine answered within the last 10 seconds, or the run has
    /// none or has ended (an engine that stops while its run goes on has failed).
    pub engine_alive: bool,
    /// The engine has stopped (its run is over); its workers are gone with it.
    #[serde(default)]
    pub engine_stopped: bool,
    /// Registered workers.
    pub workers: Vec<WorkerStatus>,
    /// Threads of this process that evaluate instead of workers (an MCMC run with
    /// `--local-workers`); none when workers evaluate.
    #[serde(default)]
    pub in_process_threads: Option<usize>,
    /// The last errors of the workers whose units failed during the run (the newest 20 by
    /// worker id); kept after the worker leaves and after the run ends, so a finished run still
    /// says why.
    #[serde(default)]
    pub unit_errors: Vec<WorkerErrors>,
    /// Units waiting, per job type.
    pub queues: Vec<QueueStatus>,
    /// The engine's unit counters.
    pub counters: CountersStatus,
    /// Round trips of batches: how many, and their mean in seconds.
    pub round_trips: RoundTripStatus,
    /// For MCMC runs: chains, tiers and convergence.
    pub mcmc: Option<McmcStatus>,
}

/// Progress of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ProgressStatus {
    /// Units resolved, or steps every chain has taken.
    pub done: u64,
    /// Units submitted, or steps per chain of the whole run.
    pub total: u64,
    /// Units failed (included in `done`).
    pub failed: u64,
    /// `units` or `steps`.
    pub unit: String,
    /// `done / total` (0 when nothing is known).
    pub fraction: f64,
    /// Recent rate: units/s, or samples/s over all chains for MCMC; once the run has ended,
    /// its mean rate.
    pub rate: f64,
    /// Mean rate since the run started (this process's part of it, for a resumed run).
    #[serde(default)]
    pub mean_rate: f64,
    /// What `rate` counts: `units/s` or `samples/s`.
    pub rate_unit: String,
    /// Seconds to go at the recent rate, when it is known.
    pub eta_secs: Option<f64>,
}

/// A registered worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// Its id at this delegator.
    pub id: u64,
    /// The name it gave.
    pub name: String,
    /// The host it gave.
    pub host: String,
    /// Job types it serves.
    pub job_types: Vec<String>,
    /// Units it evaluates at once.
    pub slots: u32,
    /// Units leased to it now.
    pub in_flight: u64,
    /// Milliseconds since it was last heard from (heartbeat or results).
    pub last_heartbeat_ms_ago: u64,
    /// Units it returned.
    pub units_done: u64,
    /// Units it returned errors for.
    pub errors: u64,
    /// The share of its slots' time spent evaluating since it registered, 0 to 1, from the
    /// evaluation times its results report.
    #[serde(default)]
    pub utilisation: f64,
    /// Units it returned per second over the board's last sampling interval (about a
    /// second); none until it has been sampled twice.
    #[serde(default)]
    pub units_per_sec: Option<f64>,
    /// The last errors its units failed with, oldest first (at most 3, each cut to 300
    /// characters).
    #[serde(default)]
    pub last_errors: Vec<String>,
}

/// A worker's last unit errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerErrors {
    /// Its id at this delegator.
    pub id: u64,
    /// The name it gave.
    pub name: String,
    /// Units it returned errors for.
    pub errors: u64,
    /// Its last errors, oldest first (at most 3, each cut to 300 characters).
    pub last: Vec<String>,
}

/// Units waiting for one job type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueStatus {
    /// The job type.
    pub job_type: String,
    /// Units queued.
    pub depth: u64,
    /// Whether a registered worker serves it (false: its units wait for one that does).
    #[serde(default = "served_by_default")]
    pub served: bool,
}

fn served_by_default() -> bool {
    true
}

/// The engine's unit counters, and frames dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CountersStatus {
    /// The [`Counters`](ganger_cluster::Counters), field by field.
    #[serde(flatten)]
    pub units: ganger_cluster::Counters,
    /// Frames from peers dropped as bad input, all causes.
    pub dropped_frames: u64,
    /// Payload bytes of units queued but not yet leased (a gauge, capped by
    /// `--max-queued-bytes`).
    #[serde(default)]
    pub queued_bytes: u64,
    /// Of those, frames from peers that had not authenticated, and sealed frames replayed or
    /// failing authentication (protocol version 2, with a secret).
    #[serde(default)]
    pub unauthenticated_frames: u64,
    /// Connections cut before their peer registered: beyond `--max-pending-connections`, or
    /// past `--pending-connection-ms`.
    #[serde(default)]
    pub connections_cut: u64,
}

/// Batch round trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RoundTripStatus {
    /// Batches whose results came back.
    pub batches: u64,
    /// Their mean round trip, seconds.
    pub mean_secs: f64,
}
