//! What the delegator is doing, in one place. The engine poller (every half second) and the
//! MCMC driver (every second) write it; the HTTP API (`/api/status`, `/metrics`, `/healthz`, the
//! dashboard) and the terminal read it. Reading never waits for the engine: a slow or stuck
//! engine shows as stale data and a failing `/healthz`, not as hung requests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use ganger_cluster::metrics::EngineMetrics;
use ganger_cluster::{Stats, StatsHandle};
use ganger_mcmc::{ChainStatus, McmcStatus, Observer};

use crate::periodic::Periodic;

/// Points kept in each time series; older halves are thinned out, so a series always spans the
/// whole run.
const HISTORY_POINTS: usize = 720;

/// The engine counts as alive while its last reply is younger than this.
const ENGINE_STALE_AFTER: Duration = Duration::from_secs(10);

/// How often the poller asks the engine for its state.
const POLL_EVERY: Duration = Duration::from_millis(500);

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
    /// Seconds since then.
    pub elapsed_secs: f64,
    /// Progress, rate and ETA.
    pub progress: ProgressStatus,
    /// `[elapsed seconds, rate]` over the run, in the progress's rate unit.
    pub throughput: Vec<[f64; 2]>,
    /// Whether the engine answered within the last 10 seconds (true when the run has no engine).
    pub engine_alive: bool,
    /// Registered workers.
    pub workers: Vec<WorkerStatus>,
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
    /// Recent rate: units/s, or samples/s over all chains for MCMC.
    pub rate: f64,
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
}

/// Units waiting for one job type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueStatus {
    /// The job type.
    pub job_type: String,
    /// Units queued.
    pub depth: u64,
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

/// Prints a console text (a table) without tearing a progress bar.
pub type Printer = Box<dyn Fn(&str) + Send>;

/// The shared status. Cheap to clone; see the module documentation.
#[derive(Clone)]
pub struct StatusBoard {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StatusBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusBoard").finish_non_exhaustive()
    }
}

struct Shared {
    state: Mutex<State>,
    printer: Mutex<Option<Printer>>,
    started: Instant,
    started_unix_ms: u64,
}

struct State {
    kind: RunKind,
    name: String,
    run_state: RunState,
    progress: ProgressStatus,
    /// Samples per step counted in the rate (the chains, for MCMC).
    per_step: u64,
    /// Units (and failed units) a resumed job found done, added to the engine's counters.
    already_done: (u64, u64),
    engine: Option<(Instant, Stats)>,
    has_engine: bool,
    metrics: Option<EngineMetrics>,
    throughput: VecDeque<[f64; 2]>,
    rhat_history: VecDeque<[f64; 2]>,
    last_sample: Option<(Instant, u64)>,
    mcmc: Option<McmcStatus>,
}

impl Default for StatusBoard {
    fn default() -> Self {
        StatusBoard::new()
    }
}

impl StatusBoard {
    /// An idle board.
    pub fn new() -> StatusBoard {
        let started_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        StatusBoard {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    kind: RunKind::Idle,
                    name: String::new(),
                    run_state: RunState::Running,
                    progress: ProgressStatus {
                        unit: "units".into(),
                        rate_unit: "units/s".into(),
                        ..ProgressStatus::default()
                    },
                    per_step: 1,
                    already_done: (0, 0),
                    engine: None,
                    has_engine: false,
                    metrics: None,
                    throughput: VecDeque::new(),
                    rhat_history: VecDeque::new(),
                    last_sample: None,
                    mcmc: None,
                }),
                printer: Mutex::new(None),
                started: Instant::now(),
                started_unix_ms,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain data; keep serving it.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Declares what runs: a job of units (`total` of them, if known) or an MCMC run of
    /// `total` steps per chain over `chains` chains.
    pub fn begin(&self, kind: RunKind, name: &str, total: u64, chains: u64) {
        let mut state = self.state();
        state.kind = kind;
        state.name = name.to_owned();
        state.run_state = RunState::Running;
        state.progress.total = total;
        let (unit, rate_unit, per_step) = match kind {
            RunKind::Mcmc => ("steps", "samples/s", chains.max(1)),
            _ => ("units", "units/s", 1),
        };
        state.progress.unit = unit.into();
        state.progress.rate_unit = rate_unit.into();
        state.per_step = per_step;
    }

    /// Marks the run done or stopped.
    pub fn end(&self, run_state: RunState) {
        let mut state = self.state();
        state.run_state = run_state;
        state.progress.eta_secs = None;
    }

    /// Sets the progress of a job of units.
    pub fn set_progress(&self, done: u64, failed: u64, total: u64) {
        let mut state = self.state();
        state.progress.done = done;
        state.progress.failed = failed;
        state.progress.total = total;
    }

    /// Declares units a resumed job found done (`failed` of them failed): they count in its
    /// progress on top of what the engine reports.
    pub fn set_already_done(&self, done: u64, failed: u64) {
        let mut state = self.state();
        state.already_done = (done, failed);
        state.progress.done = done;
        state.progress.failed = failed;
    }

    /// Takes an MCMC driver's latest status.
    pub fn publish_mcmc(&self, mut mcmc: McmcStatus) {
        let mut state = self.state();
        state.progress.done = mcmc.step;
        state.progress.total = mcmc.total_steps;
        if let Some(rhat) = mcmc.convergence.max_rhat {
            push_thinned(&mut state.rhat_history, [mcmc.step as f64, rhat]);
        }
        mcmc.rhat_history = state.rhat_history.iter().copied().collect();
        state.mcmc = Some(mcmc);
    }

    /// Takes the engine's latest state (see [`StatusBoard::spawn_poller`]); for a job of units,
    /// its counters are the progress.
    pub fn publish_engine(&self, stats: Stats) {
        let mut state = self.state();
        if state.kind == RunKind::Run {
            let c = &stats.counters;
            let (already, already_failed) = state.already_done;
            state.progress.done = already + c.completed + c.failed;
            state.progress.failed = already_failed + c.failed;
            state.progress.total = already + c.submitted;
        }
        state.has_engine = true;
        state.engine = Some((Instant::now(), stats));
    }

    /// Lets `/metrics` include the engine's histograms.
    pub fn attach_metrics(&self, metrics: EngineMetrics) {
        self.state().metrics = Some(metrics);
    }

    /// Records a point of the throughput series and refreshes the rate and ETA; the poller
    /// calls it every second, and so may anyone else.
    pub fn sample_rate(&self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.shared.started).as_secs_f64();
        let mut state = self.state();
        let done = state.progress.done;
        if let Some((then, before)) = state.last_sample {
            let seconds = now.duration_since(then).as_secs_f64();
            if seconds > 0.0 {
                let steps_per_sec = done.saturating_sub(before) as f64 / seconds;
                let rate = steps_per_sec * state.per_step as f64;
                state.progress.rate = rate;
                let left = state.progress.total.saturating_sub(done) as f64;
                state.progress.eta_secs = (steps_per_sec > 0.0
                    && state.run_state == RunState::Running)
                    .then(|| left / steps_per_sec);
                push_thinned(&mut state.throughput, [elapsed, rate]);
            }
        }
        state.last_sample = Some((now, done));
    }

    /// Whether the loop driving the run is alive: the engine answered recently (a run without
    /// an engine, such as an embedded MCMC run, is alive while its process is).
    pub fn alive(&self) -> bool {
        let state = self.state();
        !state.has_engine
            || state
                .engine
                .as_ref()
                .is_some_and(|(at, _)| at.elapsed() < ENGINE_STALE_AFTER)
    }

    /// The whole status.
    pub fn snapshot(&self) -> Status {
        let alive = self.alive();
        let state = self.state();
        let mut progress = state.progress.clone();
        progress.fraction = if progress.total > 0 {
            (progress.done as f64 / progress.total as f64).min(1.0)
        } else {
            0.0
        };
        let (workers, queues, counters) = match &state.engine {
            Some((_, stats)) => engine_parts(stats),
            None => Default::default(),
        };
        let round_trips = state
            .metrics
            .as_ref()
            .map(|m| {
                let (batches, total) = m.round_trips();
                RoundTripStatus {
                    batches,
                    mean_secs: if batches > 0 {
                        total / batches as f64
                    } else {
                        0.0
                    },
                }
            })
            .unwrap_or_default();
        Status {
            kind: state.kind,
            name: state.name.clone(),
            state: state.run_state,
            started_unix_ms: self.shared.started_unix_ms,
            elapsed_secs: self.shared.started.elapsed().as_secs_f64(),
            progress,
            throughput: state.throughput.iter().copied().collect(),
            engine_alive: alive,
            workers,
            queues,
            counters,
            round_trips,
            mcmc: state.mcmc.clone(),
        }
    }

    /// Prometheus metrics in the OpenMetrics text format. See the README's "Metrics".
    pub fn metrics_text(&self) -> String {
        let mut registry = Registry::default();
        if let Some(metrics) = &self.state().metrics {
            metrics.register(&mut registry);
        }
        registry.register_collector(Box::new(StatusCollector(self.snapshot())));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }

    /// Prints a console text through the installed printer, or to stderr.
    pub fn print(&self, text: &str) {
        let printer = self
            .shared
            .printer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match printer.as_ref() {
            Some(print) => print(text),
            None => eprint!("{text}"),
        }
    }

    /// Routes [`StatusBoard::print`] through `printer` (a progress bar's, say).
    pub fn set_printer(&self, printer: Printer) {
        *self
            .shared
            .printer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(printer);
    }

    /// Starts a thread that asks the engine for its state twice a second and samples the rate
    /// every second, until the returned handle is dropped or the engine stops.
    pub fn spawn_poller(&self, stats: StatsHandle) -> Poller {
        let board = self.clone();
        let mut last_rate = Instant::now();
        let periodic = Periodic::spawn("ganger-status", POLL_EVERY, move |last| {
            if last {
                return false;
            }
            match stats.stats() {
                Ok(snapshot) => board.publish_engine(snapshot),
                Err(_) => return false,
            }
            // An MCMC run samples its own rate, as it publishes its progress.
            if last_rate.elapsed() >= Duration::from_secs(1) && board.state().kind == RunKind::Run {
                last_rate = Instant::now();
                board.sample_rate();
            }
            true
        });
        Poller {
            _periodic: periodic.ok(),
        }
    }
}

/// An MCMC run publishes here: its chains and convergence, its rate, and its console texts
/// through the printer.
impl Observer for StatusBoard {
    fn begin(&self, name: &str, total_steps: u64, chains: u64) {
        StatusBoard::begin(self, RunKind::Mcmc, name, total_steps, chains);
    }

    fn publish(&self, status: McmcStatus) {
        self.publish_mcmc(status);
    }

    fn tick(&self) {
        self.sample_rate();
    }

    fn print(&self, text: &str) {
        StatusBoard::print(self, text);
    }

    fn end(&self, complete: bool) {
        StatusBoard::end(
            self,
            if complete {
                RunState::Done
            } else {
                RunState::Stopped
            },
        );
    }
}

/// The status poller's thread; dropping this stops it at once.
#[derive(Debug)]
pub struct Poller {
    _periodic: Option<Periodic>,
}

/// Appends to a series, halving it (every other point) when full.
fn push_thinned(series: &mut VecDeque<[f64; 2]>, point: [f64; 2]) {
    if series.len() >= HISTORY_POINTS {
        let kept: VecDeque<[f64; 2]> = series.iter().copied().step_by(2).collect();
        *series = kept;
    }
    series.push_back(point);
}

fn engine_parts(stats: &Stats) -> (Vec<WorkerStatus>, Vec<QueueStatus>, CountersStatus) {
    let workers = stats
        .workers
        .iter()
        .map(|w| WorkerStatus {
            id: w.id,
            name: w.name.clone(),
            host: w.host.clone(),
            job_types: w.job_types.clone(),
            slots: w.slots,
            in_flight: w.in_flight,
            last_heartbeat_ms_ago: stats.now.saturating_sub(w.last_seen),
            units_done: w.units_done,
            errors: w.errors,
            utilisation: w.utilisation(stats.now),
        })
        .collect();
    let queues = stats
        .queue_depths
        .iter()
        .map(|(job_type, depth)| QueueStatus {
            job_type: job_type.clone(),
            depth: *depth,
        })
        .collect();
    let d = &stats.dropped;
    let counters = CountersStatus {
        units: stats.counters.clone(),
        dropped_frames: d.malformed
            + d.unknown_type
            + d.oversize
            + d.rejected
            + d.unregistered
            + d.unexpected
            + d.unauthenticated
            + d.replayed
            + d.bad_seal,
        unauthenticated_frames: d.unauthenticated + d.replayed + d.bad_seal,
        queued_bytes: stats.queued_bytes,
        connections_cut: stats.connections.refused + stats.connections.expired,
    };
    (workers, queues, counters)
}

/// Encodes a status snapshot as metrics at scrape time.
#[derive(Debug)]
struct StatusCollector(Status);

impl StatusCollector {
    fn counter(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: u64,
    ) -> Result<(), std::fmt::Error> {
        let metric = ConstCounter::new(value);
        metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
    }

    fn gauge(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: f64,
    ) -> Result<(), std::fmt::Error> {
        let metric = ConstGauge::new(value);
        metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
    }

    /// A gauge with one labelled series per `(label value, value)`.
    fn gauges(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        label: &'static str,
        series: impl IntoIterator<Item = (String, f64)>,
    ) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (key, value) in series {
            let labels = [(label, key)];
            ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Collector for StatusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let c = &s.counters.units;
        let e = &mut encoder;
        for (name, help, value) in [
            ("ganger_units_submitted", "Units submitted", c.submitted),
            (
                "ganger_units_completed",
                "Units delivered with an output",
                c.completed,
            ),
            (
                "ganger_units_failed",
                "Units delivered as failed after their last attempt",
                c.failed,
            ),
            (
                "ganger_units_retried",
                "Failed evaluations that were retried",
                c.retried,
            ),
            (
                "ganger_units_requeued",
                "Units taken back from workers that left, queued again",
                c.requeued,
            ),
            (
                "ganger_results_duplicate",
                "Late results for units already resolved, dropped",
                c.duplicates,
            ),
            ("ganger_batches_sent", "Batches sent to workers", c.batches),
            (
                "ganger_units_reissued",
                "Units of slow leases given to a second worker (--straggler-factor)",
                c.reissued,
            ),
            (
                "ganger_worker_timeouts",
                "Workers dropped after falling silent",
                c.timeouts,
            ),
            (
                "ganger_frames_dropped",
                "Frames from peers dropped as bad input",
                s.counters.dropped_frames,
            ),
            (
                "ganger_frames_unauthenticated",
                "Frames dropped because their peer had not authenticated, or replayed or forged",
                s.counters.unauthenticated_frames,
            ),
            (
                "ganger_connections_cut",
                "Connections cut before their peer registered (too many pending, or too slow)",
                s.counters.connections_cut,
            ),
        ] {
            Self::counter(e, name, help, value)?;
        }
        Self::gauge(
            e,
            "ganger_up",
            "1 while the engine loop answers",
            f64::from(u8::from(s.engine_alive)),
        )?;
        Self::gauge(
            e,
            "ganger_workers_connected",
            "Registered workers",
            s.workers.len() as f64,
        )?;
        let slots: u64 = s.workers.iter().map(|w| u64::from(w.slots)).sum();
        Self::gauge(
            e,
            "ganger_worker_slots",
            "Units the registered workers evaluate at once",
            slots as f64,
        )?;
        Self::gauge(
            e,
            "ganger_queued_bytes",
            "Payload bytes of units queued but not yet leased",
            s.counters.queued_bytes as f64,
        )?;
        let in_flight: u64 = s.workers.iter().map(|w| w.in_flight).sum();
        Self::gauge(
            e,
            "ganger_units_in_flight",
            "Units leased to workers now",
            in_flight as f64,
        )?;
        Self::gauges(
            e,
            "ganger_worker_utilisation",
            "Share of a worker's slot time spent evaluating since it registered, per worker",
            "worker",
            s.workers
                .iter()
                .map(|w| (format!("{}-{}", w.id, w.name), w.utilisation)),
        )?;
        Self::gauges(
            e,
            "ganger_queue_depth",
            "Units waiting, per job type",
            "job_type",
            s.queues
                .iter()
                .map(|q| (q.job_type.clone(), q.depth as f64)),
        )?;
        Self::gauge(
            e,
            "ganger_progress_done",
            "Units resolved, or steps per chain for MCMC",
            s.progress.done as f64,
        )?;
        Self::gauge(
            e,
            "ganger_progress_total",
            "Units submitted, or steps per chain of the MCMC run",
            s.progress.total as f64,
        )?;
        Self::gauge(
            e,
            "ganger_progress_rate",
            "Recent units/s, or samples/s over all chains for MCMC",
            s.progress.rate,
        )?;
        let Some(m) = &s.mcmc else {
            return Ok(());
        };
        let chains = m.chains.len() as u64;
        Self::counter(
            e,
            "ganger_mcmc_samples",
            "Samples over all chains",
            m.step * chains,
        )?;
        Self::gauge(
            e,
            "ganger_mcmc_step",
            "Steps every chain has taken",
            m.step as f64,
        )?;
        Self::counter(
            e,
            "ganger_mcmc_invalid_proposals",
            "Proposals rejected for a NaN or infinite energy",
            m.invalid_proposals,
        )?;
        let chain_series = |f: fn(&ChainStatus) -> Option<f64>| {
            m.chains
                .iter()
                .filter_map(move |c| f(c).map(|v| (c.id.to_string(), v)))
        };
        Self::gauges(
            e,
            "ganger_mcmc_accept_rate",
            "Acceptance rate over the run, per chain",
            "chain",
            chain_series(|c| Some(c.global_accept_rate)),
        )?;
        Self::gauges(
            e,
            "ganger_mcmc_swap_rate",
            "Swap acceptance with the next hotter chain over the run, per chain",
            "chain",
            chain_series(|c| c.global_swap_rate),
        )?;
        Self::gauges(
            e,
            "ganger_mcmc_beta",
            "Inverse temperature, per chain",
            "chain",
            chain_series(|c| Some(c.beta)),
        )?;
        Self::gauges(
            e,
            "ganger_mcmc_round_trips",
            "Replica round trips (cold, hot, cold), per stack",
            "stack",
            m.round_trips
                .iter()
                .enumerate()
                .map(|(i, r)| (i.to_string(), *r as f64)),
        )?;
        if let Some(rhat) = m.convergence.max_rhat {
            Self::gauge(
                e,
                "ganger_mcmc_rhat_max",
                "Largest rank-normalised split R-hat of the cold chains' draws after the burn-in",
                rhat,
            )?;
        }
        Self::gauges(
            e,
            "ganger_mcmc_rhat",
            "Rank-normalised split R-hat of the cold chains' draws after the burn-in, per dimension",
            "dim",
            m.convergence
                .rhat
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.map(|r| (i.to_string(), r))),
        )?;
        if let Some(ess) = m.convergence.min_ess_bulk {
            Self::gauge(
                e,
                "ganger_mcmc_ess_bulk_min",
                "Smallest bulk ESS of the cold chains' draws after the burn-in",
                ess,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ganger_cluster::scheduler::{Counters, WorkerInfo};
    use ganger_cluster::DroppedFrames;
    use ganger_mcmc::ConvergenceStatus;

    fn stats(completed: u64) -> Stats {
        Stats {
            counters: Counters {
                submitted: 100,
                completed,
                failed: 1,
                ..Counters::default()
            },
            dropped: DroppedFrames {
                malformed: 2,
                unauthenticated: 3,
                replayed: 1,
                ..DroppedFrames::default()
            },
            connections: ganger_cluster::ConnectionCounts {
                pending: 1,
                refused: 4,
                expired: 2,
            },
            queued_bytes: 0,
            workers: vec![WorkerInfo {
                id: 7,
                name: "w7".into(),
                host: "h".into(),
                job_types: vec!["square".into()],
                slots: 4,
                in_flight: 3,
                units_done: completed,
                errors: 1,
                last_seen: 900,
                registered: 500,
                // Half of 4 slots' 500 ms.
                busy_us: 1_000_000,
            }],
            queue_depths: vec![("square".into(), 42)],
            open_jobs: 1,
            now: 1000,
        }
    }

    #[test]
    fn a_job_of_units_shows_its_counters_as_progress() {
        let board = StatusBoard::new();
        board.begin(RunKind::Run, "square", 0, 1);
        board.publish_engine(stats(49));
        let s = board.snapshot();
        assert_eq!(
            (s.progress.done, s.progress.total, s.progress.failed),
            (50, 100, 1)
        );
        assert_eq!(s.progress.fraction, 0.5);
        assert_eq!(s.workers[0].last_heartbeat_ms_ago, 100);
        assert_eq!(s.queues[0].depth, 42);
        assert_eq!(s.counters.dropped_frames, 6);
        assert_eq!(s.counters.unauthenticated_frames, 4);
        assert_eq!(s.counters.connections_cut, 6);
        assert!(s.engine_alive);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["kind"], "run");
        assert_eq!(json["workers"][0]["job_types"][0], "square");
    }

    #[test]
    fn a_resumed_job_counts_the_units_it_found_done() {
        let board = StatusBoard::new();
        board.begin(RunKind::Run, "square", 1000, 1);
        board.set_already_done(900, 3);
        assert_eq!(board.snapshot().progress.done, 900);
        // The engine has 100 units of its own, 50 of them done and 1 failed.
        board.publish_engine(stats(49));
        let s = board.snapshot();
        assert_eq!(
            (s.progress.done, s.progress.total, s.progress.failed),
            (950, 1000, 4)
        );
    }

    #[test]
    fn rates_and_etas_come_from_the_progress_between_samples() {
        let board = StatusBoard::new();
        board.begin(RunKind::Mcmc, "demo.json", 1000, 10);
        board.publish_mcmc(McmcStatus {
            step: 100,
            total_steps: 1000,
            ..McmcStatus::default()
        });
        board.sample_rate();
        std::thread::sleep(Duration::from_millis(20));
        board.publish_mcmc(McmcStatus {
            step: 200,
            total_steps: 1000,
            ..McmcStatus::default()
        });
        board.sample_rate();
        let s = board.snapshot();
        assert_eq!(s.throughput.len(), 1);
        // 100 steps of 10 chains in at least 20 ms: at most 50,000 samples/s, and the ETA is
        // the 800 steps left at the same pace.
        assert!(
            s.progress.rate > 0.0 && s.progress.rate <= 50_000.0,
            "{}",
            s.progress.rate
        );
        let eta = s.progress.eta_secs.unwrap();
        assert!(
            (eta - 800.0 / (s.progress.rate / 10.0)).abs() < 1e-6 * eta,
            "{eta}"
        );
        board.end(RunState::Done);
        assert_eq!(board.snapshot().progress.eta_secs, None);
    }

    #[test]
    fn metrics_are_openmetrics_text_with_every_documented_family() {
        let board = StatusBoard::new();
        board.begin(RunKind::Mcmc, "demo.json", 1000, 2);
        board.attach_metrics(EngineMetrics::default());
        board.publish_engine(stats(10));
        board.publish_mcmc(McmcStatus {
            step: 5,
            total_steps: 1000,
            chains: vec![
                ChainStatus {
                    id: 0,
                    length: 5,
                    min_energy: 1.0,
                    current_energy: 2.0,
                    sigma: 0.5,
                    accept_rate: 0.2,
                    global_accept_rate: 0.25,
                    beta: 1.0,
                    swap_rate: None,
                    global_swap_rate: Some(0.5),
                };
                2
            ],
            convergence: ConvergenceStatus {
                max_rhat: Some(1.01),
                rhat: vec![Some(1.01)],
                ..ConvergenceStatus::default()
            },
            round_trips: vec![3],
            ..McmcStatus::default()
        });
        let text = board.metrics_text();
        for line in [
            "ganger_units_submitted_total 100",
            "ganger_units_completed_total 10",
            "ganger_workers_connected 1.0",
            "ganger_worker_slots 4.0",
            "ganger_worker_utilisation{worker=\"7-w7\"} 0.5",
            "ganger_queue_depth{job_type=\"square\"} 42.0",
            "ganger_mcmc_samples_total 10",
            "ganger_mcmc_accept_rate{chain=\"0\"} 0.25",
            "ganger_mcmc_rhat_max 1.01",
            "ganger_mcmc_round_trips{stack=\"0\"} 3.0",
            "ganger_batch_round_trip_seconds_count 0",
            "# TYPE ganger_batch_units histogram",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in:\n{text}"
            );
        }
    }

    #[test]
    fn series_are_thinned_not_cut() {
        let mut series = VecDeque::new();
        for i in 0..10_000 {
            push_thinned(&mut series, [i as f64, 0.0]);
        }
        assert!(series.len() <= HISTORY_POINTS);
        assert_eq!(series[0][0], 0.0, "the start of the run stays");
        assert_eq!(series.back().unwrap()[0], 9999.0);
    }
}
