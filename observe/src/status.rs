//! What the delegator is doing, in one place. The engine poller (every half second) and the
//! MCMC driver (every second) write it; the HTTP API (`/api/status`, `/metrics`, `/healthz`, the
//! dashboard) and the terminal read it. Reading never waits for the engine: a slow or stuck
//! engine shows as stale data and a failing `/healthz`, not as hung requests.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::registry::Registry;

use ganger_cluster::metrics::EngineMetrics;
use ganger_cluster::{Stats, StatsHandle};
use ganger_mcmc::{McmcStatus, Observer};

use crate::periodic::Periodic;

use self::engine_parts::{engine_parts, sample_worker_rates, WorkerMark};
use self::metrics::StatusCollector;

pub use self::types::{
    CountersStatus, ProgressStatus, QueueStatus, RoundTripStatus, RunKind, RunState, Status,
    WorkerErrors, WorkerStatus,
};

mod engine_parts;
mod metrics;
#[cfg(test)]
mod tests;
mod types;

/// Points kept in each time series; older halves are thinned out, so a series always spans the
/// whole run.
const HISTORY_POINTS: usize = 720;

/// The engine counts as alive while its last reply is younger than this.
const ENGINE_STALE_AFTER: Duration = Duration::from_secs(10);

/// How often the poller asks the engine for its state.
const POLL_EVERY: Duration = Duration::from_millis(500);

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

/// Workers whose unit errors the board keeps (the newest by id).
const MAX_ERROR_WORKERS: usize = 20;

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
    /// Each worker's units done at the last sample, for its rate.
    worker_marks: HashMap<u64, WorkerMark>,
    /// The last errors of each worker that had any, kept after it leaves: the newest
    /// [`MAX_ERROR_WORKERS`] workers by id.
    unit_errors: BTreeMap<u64, WorkerErrors>,
    mcmc: Option<McmcStatus>,
    /// When the run began, and how far it was then (units a resumed job found done, the step a
    /// resumed MCMC run starts from): what the mean rate counts from. The MCMC driver's first
    /// status sets the second.
    begun: Option<(Instant, Option<u64>)>,
    /// When the run ended.
    ended: Option<Instant>,
    /// The engine has stopped (the poller found it gone).
    engine_stopped: bool,
    /// Threads of this process evaluating instead of workers.
    in_process_threads: Option<usize>,
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
                    worker_marks: HashMap::new(),
                    unit_errors: BTreeMap::new(),
                    mcmc: None,
                    begun: None,
                    ended: None,
                    engine_stopped: false,
                    in_process_threads: None,
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
        let from = (kind != RunKind::Mcmc).then_some(state.progress.done);
        state.begun = Some((Instant::now(), from));
        state.ended = None;
    }

    /// Marks the run done or stopped: its clock stops, and its rate becomes its mean rate.
    pub fn end(&self, run_state: RunState) {
        let mut state = self.state();
        state.run_state = run_state;
        state.progress.eta_secs = None;
        state.ended = Some(Instant::now());
        state.progress.rate = mean_rate(&state);
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
        if let Some((_, from)) = state.begun.as_mut() {
            *from = Some(done);
        }
    }

    /// Takes an MCMC driver's latest status.
    pub fn publish_mcmc(&self, mut mcmc: McmcStatus) {
        let mut state = self.state();
        state.progress.done = mcmc.step;
        state.progress.total = mcmc.total_steps;
        if let Some((_, from @ None)) = state.begun.as_mut() {
            *from = Some(mcmc.step);
        }
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
        for w in stats.workers.iter().filter(|w| !w.last_errors.is_empty()) {
            state.unit_errors.insert(
                w.id,
                WorkerErrors {
                    id: w.id,
                    name: w.name.clone(),
                    errors: w.errors,
                    last: w.last_errors.clone(),
                },
            );
        }
        // A worker restarted after each crash comes back under a new id: keep the newest.
        while state.unit_errors.len() > MAX_ERROR_WORKERS {
            state.unit_errors.pop_first();
        }
        state.has_engine = true;
        state.engine_stopped = false;
        state.engine = Some((Instant::now(), stats));
    }

    /// The engine has stopped: nothing waits on it any more, and the workers it had are gone
    /// (its counters stay, as the run's totals).
    pub fn engine_stopped(&self) {
        let mut state = self.state();
        state.engine_stopped = true;
        if let Some((_, stats)) = state.engine.as_mut() {
            stats.workers.clear();
            stats.queue_depths.clear();
        }
    }

    /// Declares that `threads` threads of this process evaluate the run, not workers.
    pub fn set_in_process(&self, threads: usize) {
        self.state().in_process_threads = Some(threads);
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
        if state.ended.is_some() {
            // The run's series ends with it, rather than falling to zero.
            return;
        }
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
        let state = &mut *state;
        if let Some((_, stats)) = &state.engine {
            sample_worker_rates(stats, &mut state.worker_marks);
        }
    }

    /// Whether nothing is stuck: the engine answered recently, or the run needs none (an
    /// embedded MCMC run is alive while its process is) or has ended.
    pub fn alive(&self) -> bool {
        let state = self.state();
        // An engine that stops while its run goes on has failed; after the run, it may.
        !state.has_engine
            || state.ended.is_some()
            || (!state.engine_stopped
                && state
                    .engine
                    .as_ref()
                    .is_some_and(|(at, _)| at.elapsed() < ENGINE_STALE_AFTER))
    }

    /// The run's state once it has ended; none while it runs (or before it begins).
    pub fn outcome(&self) -> Option<RunState> {
        let state = self.state();
        state.ended.map(|_| state.run_state)
    }

    /// The whole status.
    pub fn snapshot(&self) -> Status {
        let alive = self.alive();
        let state = self.state();
        let mut progress = state.progress.clone();
        progress.mean_rate = mean_rate(&state);
        progress.fraction = if progress.total > 0 {
            (progress.done as f64 / progress.total as f64).min(1.0)
        } else {
            0.0
        };
        let (workers, queues, counters) = match &state.engine {
            Some((_, stats)) => engine_parts(stats, &state.worker_marks),
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
            elapsed_secs: state
                .ended
                .unwrap_or_else(Instant::now)
                .duration_since(self.shared.started)
                .as_secs_f64(),
            run_secs: run_seconds(&state).filter(|_| state.ended.is_some()),
            progress,
            throughput: state.throughput.iter().copied().collect(),
            engine_alive: alive,
            engine_stopped: state.engine_stopped,
            workers,
            in_process_threads: state.in_process_threads,
            unit_errors: state.unit_errors.values().cloned().collect(),
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

    /// Sends [`StatusBoard::print`] straight to stderr again, as before any printer was set.
    pub fn clear_printer(&self) {
        *self
            .shared
            .printer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
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
                Err(_) => {
                    board.engine_stopped();
                    return false;
                }
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

/// Seconds from the run's start to its end, or to now while it runs.
fn run_seconds(state: &State) -> Option<f64> {
    let (begun, _) = state.begun?;
    Some(
        state
            .ended
            .unwrap_or_else(Instant::now)
            .duration_since(begun)
            .as_secs_f64(),
    )
}

/// Samples (units) per second since the run began, counting only what this process did.
fn mean_rate(state: &State) -> f64 {
    let (Some(seconds), Some((_, Some(from)))) = (run_seconds(state), state.begun) else {
        return 0.0;
    };
    if seconds <= 0.0 {
        return 0.0;
    }
    state.progress.done.saturating_sub(from) as f64 * state.per_step as f64 / seconds
}
