//! What an MCMC run tells whoever watches it: an [`Observer`] is handed the run's start and
//! end, its [`McmcStatus`] about once a second, and the console texts (the chain table, the
//! summary) to print.
//!
//! The driver only publishes; a status board, a dashboard or a test reads. [`Console`] prints
//! the texts to stderr and keeps nothing; [`Silent`] does not even print.

use ganger_core::mcmc::tempering::LadderReport;
use serde::{Deserialize, Serialize};

/// Receives what a run publishes. Every method but [`print`](Observer::print) does nothing
/// unless implemented; `print` writes to stderr.
pub trait Observer: Sync {
    /// The run starts: `total_steps` steps per chain over `chains` chains, written to the
    /// output folder `name`.
    fn begin(&self, name: &str, total_steps: u64, chains: u64) {
        let _ = (name, total_steps, chains);
    }

    /// The run's latest chains and convergence: at its start, about once a second while it
    /// runs, and at its end.
    fn publish(&self, status: McmcStatus) {
        let _ = status;
    }

    /// A second has passed since the last tick while the run samples (for a rate).
    fn tick(&self) {}

    /// A console text to show whole: the chain table every `loggingRateSec`.
    fn print(&self, text: &str) {
        eprint!("{text}");
    }

    /// The run's posterior, ladder, evidence and warnings, laid out as a table: once, at the
    /// end of a complete run (also in [`RunReport::summary`](crate::RunReport::summary) and
    /// `summary.json`). Nothing unless implemented.
    fn summary(&self, text: &str) {
        let _ = text;
    }

    /// The run ended: `complete` if it reached its last step and its summary is written,
    /// otherwise stopped early (it can be resumed).
    fn end(&self, complete: bool) {
        let _ = complete;
    }
}

/// The observer of a run nobody watches: texts, the summary among them, go to stderr.
#[derive(Debug, Clone, Copy, Default)]
pub struct Console;

impl Observer for Console {
    fn summary(&self, text: &str) {
        eprint!("{text}");
    }
}

/// An observer that keeps and prints nothing (a benchmark's or an embedding program's run).
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Observer for Silent {
    fn print(&self, _text: &str) {}
}

/// An MCMC run's chains and convergence, published by its driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct McmcStatus {
    /// Steps every chain has taken.
    pub step: u64,
    /// Steps per chain of the whole run.
    pub total_steps: u64,
    /// Stacks.
    pub n_stacks: usize,
    /// Temperatures per stack.
    pub n_temperatures: usize,
    /// Dimensions.
    pub n_dims: usize,
    /// The dimensions' names (the config's `names`, else `x0`, `x1`, …).
    #[serde(default)]
    pub names: Vec<String>,
    /// Stateline's table, a row per chain.
    pub chains: Vec<ChainStatus>,
    /// Per temperature tier, over all stacks.
    pub tiers: Vec<TierStatus>,
    /// Steps of each chain the diagnostics leave out (`burnIn`).
    pub burn_in: u64,
    /// The cold chains' draws after the burn-in.
    pub convergence: ConvergenceStatus,
    /// What should not be trusted yet (convergence, ladder), one sentence each.
    pub warnings: Vec<String>,
    /// The ladder's diagnosis (none with a single temperature).
    pub ladder: Option<LadderReport>,
    /// Round trips (cold → hot → cold) per stack.
    pub round_trips: Vec<u64>,
    /// Proposals rejected for a NaN or infinite energy, all chains.
    pub invalid_proposals: u64,
    /// Proposals outside the bounds (rejected without evaluation), all chains.
    pub out_of_bounds_proposals: u64,
    /// `[step, max R-hat]` over the run: kept by the status board, which fills it in from
    /// each status it is given (the driver sends it empty).
    pub rhat_history: Vec<[f64; 2]>,
    /// Each cold chain's samples, thinned to at most a few hundred points.
    pub traces: Vec<TraceStatus>,
}

/// One chain's row of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainStatus {
    /// Chain index: `stack * n_temperatures + temperature`.
    pub id: usize,
    /// Steps taken.
    pub length: u64,
    /// Lowest energy seen.
    pub min_energy: f64,
    /// Energy now.
    pub current_energy: f64,
    /// Proposal scale.
    pub sigma: f64,
    /// Acceptance rate since the last table.
    pub accept_rate: f64,
    /// Acceptance rate over the run.
    pub global_accept_rate: f64,
    /// Inverse temperature.
    pub beta: f64,
    /// Swap acceptance with the next hotter chain since the last table (none attempted: null).
    pub swap_rate: Option<f64>,
    /// The same over the run.
    pub global_swap_rate: Option<f64>,
}

/// One temperature tier over all stacks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierStatus {
    /// Temperature index (0: cold).
    pub tier: usize,
    /// Inverse temperature.
    pub beta: f64,
    /// Acceptance rate over the run.
    pub accept_rate: f64,
    /// Swap acceptance with the next hotter tier over the run (the hottest has none).
    pub swap_rate: Option<f64>,
}

/// Convergence of the cold chains over their draws after the burn-in, thinned to a bounded
/// number: every `stride`-th step from `from_step` on. The thinned draws' bulk ESS is the full
/// draws' or the number kept, whichever is smaller, so it says truly whether ESS passes 400.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ConvergenceStatus {
    /// Samples per chain the diagnostics use.
    pub window: usize,
    /// The first step they cover (after the burn-in); 0 while the burn-in lasts.
    pub from_step: u64,
    /// Steps between two samples used.
    pub stride: u64,
    /// Largest rank-normalised split R-hat over the dimensions.
    pub max_rhat: Option<f64>,
    /// Smallest bulk ESS over the dimensions.
    pub min_ess_bulk: Option<f64>,
    /// R-hat per dimension.
    pub rhat: Vec<Option<f64>>,
    /// Bulk ESS per dimension.
    pub ess_bulk: Vec<Option<f64>>,
    /// Per dimension, the posterior of the same draws (pooled over the cold chains): what the
    /// dashboard shows live; `summary.json` has every draw's at the end.
    #[serde(default)]
    pub posterior: Vec<PosteriorStatus>,
}

/// One dimension's posterior over the live window's draws (`null` where not finite).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PosteriorStatus {
    /// Mean.
    pub mean: Option<f64>,
    /// Standard deviation (n − 1 denominator).
    pub sd: Option<f64>,
    /// 5 % quantile.
    pub q05: Option<f64>,
    /// Median.
    pub q50: Option<f64>,
    /// 95 % quantile.
    pub q95: Option<f64>,
}

/// A cold chain's thinned samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceStatus {
    /// The chain.
    pub chain: usize,
    /// The step of each point.
    pub steps: Vec<u64>,
    /// Per dimension, the value at each point.
    pub values: Vec<Vec<f64>>,
}
