//! The sampler's configuration: Stateline's JSON config file (same keys, same meaning) plus
//! ganger's own keys, parsed from JSON or TOML text and validated with messages that name the
//! file and the offending key.
//!
//! Core does no I/O: the caller reads the file and hands its text to [`McmcConfig::parse`] or
//! [`McmcConfig::from_file_contents`]; the file name is used only in error messages.
//!
//! ```
//! use ganger_core::mcmc::config::{ConfigFormat, McmcConfig};
//!
//! let text = r#"{ "nJobTypes": 1, "nStacks": 2, "nTemperatures": 4, "nSamplesTotal": 20000,
//!                 "min": [-5, -5], "max": [5, 5] }"#;
//! let config = McmcConfig::parse(text, "demo.json", ConfigFormat::Json).unwrap();
//! assert_eq!(config.n_chains(), 8);
//! assert_eq!(config.samples_per_chain(), 10_000);
//!
//! let error = McmcConfig::parse("nStack = 2", "run.toml", ConfigFormat::Toml).unwrap_err();
//! assert!(error.to_string().contains("unknown key `nStack` (did you mean `nStacks`?)"));
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use self::document::Document;
use self::syntax::{json_entries, toml_entries};

pub use self::error::ConfigError;
pub use self::swap_scheme::SwapScheme;
pub use self::syntax::ConfigFormat;

mod document;
mod error;
mod suggest;
mod swap_scheme;
mod syntax;
mod validate;

/// Every key a config file may contain, in the order the documentation lists them.
///
/// Stateline's keys come first; ganger's own follow.
pub const KEYS: [&str; 23] = [
    "nJobTypes",
    "nStacks",
    "nTemperatures",
    "nSamplesTotal",
    "min",
    "max",
    "swapInterval",
    "optimalAcceptRate",
    "optimalSwapRate",
    "outputPath",
    "loggingRateSec",
    "useInitial",
    "initial",
    "heartbeatTimeoutSec",
    "seed",
    "swapScheme",
    "checkpointIntervalSec",
    "likelihood",
    "maxTemperature",
    "adaptationSteps",
    "burnIn",
    "evidenceDraws",
    "names",
];

/// The columns every chain file has after the parameters, in order; no parameter may be named
/// after one of them.
pub const RESERVED_NAMES: [&str; 5] = ["energy", "sigma", "beta", "accepted", "swap_type"];

/// The longest parameter name `names` accepts, in characters: a name is a table's row label.
pub const MAX_NAME_CHARS: usize = 64;

/// The parallel-tempering sampler's configuration.
///
/// The keys are Stateline's, spelt as Stateline spells them (camelCase, in JSON and TOML alike,
/// and in the serde form that checkpoints store), followed by ganger's own. Every optional key's
/// default is resolved at parse time, so the struct holds the values the run actually uses.
///
/// A *stack* is one independent parallel-tempering ladder of `nTemperatures` chains; stacks
/// never swap with each other, so that comparing them diagnoses convergence. Temperatures `T`
/// are ≥ 1 and a chain at temperature `T` targets the density raised to `β = 1/T`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McmcConfig {
    /// `nJobTypes` (required, ≥ 1): the number of terms the likelihood factorises into; each
    /// state is evaluated as this many units (job types `0..nJobTypes`) whose negative
    /// log-likelihoods are summed.
    pub n_job_types: u32,
    /// `nStacks` (required, ≥ 1): the number of independent stacks of chains.
    pub n_stacks: usize,
    /// `nTemperatures` (required, ≥ 1): the number of chains, one per temperature, in each stack.
    pub n_temperatures: usize,
    /// `nSamplesTotal` (required, ≥ `nStacks`): the run's length in samples, read as Stateline's
    /// server reads it: the number of states produced by the *coldest* chains, summed over all
    /// stacks (its README: "the total number of samples *from all stacks*"; its loop counts a
    /// sample only when a chain with `id % nTemperatures == 0` steps). So each stack's cold
    /// chain contributes `nSamplesTotal / nStacks` samples, and every chain, hot or cold, makes
    /// that many steps: see [`samples_per_chain`](Self::samples_per_chain).
    pub n_samples_total: u64,
    /// `min` (required): the lower bound of each parameter (the number of entries is the
    /// number of dimensions); finite, and below the matching entry of `max`.
    pub min: Vec<f64>,
    /// `max` (required): the upper bound of each parameter; as many entries as `min`, finite.
    pub max: Vec<f64>,
    /// `swapInterval` (default 10, in steps, ≥ 1): how many steps each chain makes between
    /// swap attempts. Larger is cheaper; smaller mixes states between temperatures faster.
    pub swap_interval: u64,
    /// `optimalAcceptRate` (default 0.234, a fraction in (0, 1)): the Metropolis acceptance
    /// rate that proposal-width adaptation aims each chain at.
    pub optimal_accept_rate: f64,
    /// `optimalSwapRate` (default 0.234, a fraction in (0, 1)): the swap acceptance rate
    /// between adjacent temperatures that temperature adaptation aims at.
    pub optimal_swap_rate: f64,
    /// `outputPath` (default `"output"`, non-empty): the folder the samples are written to,
    /// relative to the working directory; created if absent.
    pub output_path: String,
    /// `loggingRateSec` (default 1, in seconds, > 0): the interval between the console tables
    /// of chain energies, accept rates and swap rates.
    pub logging_rate_sec: f64,
    /// `useInitial` (default `false`): start every chain at `initial` instead of at a random
    /// point within the bounds. Requires `initial`.
    pub use_initial: bool,
    /// `initial` (optional; required when `useInitial` is true): the starting point, one entry
    /// per dimension, each within `[min, max]`. Checked whenever present, even if unused,
    /// because a stale `initial` usually means the bounds changed under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<Vec<f64>>,
    /// `heartbeatTimeoutSec` (optional, in seconds, > 0): Stateline's worker-silence timeout,
    /// accepted so Stateline config files parse unchanged. Absent means the delegator's own
    /// heartbeat setting applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout_sec: Option<f64>,
    /// `seed` (ganger; default 42): the seed of every random stream in the sampler, so a run is
    /// reproducible.
    pub seed: u64,
    /// `swapScheme` (ganger; default `"nonreversible"`): `"classic"` or `"nonreversible"`;
    /// see [`SwapScheme`].
    pub swap_scheme: SwapScheme,
    /// `checkpointIntervalSec` (ganger; default 10, in seconds, ≥ 0): the interval between
    /// checkpoints of the sampler's state; 0 disables checkpointing.
    pub checkpoint_interval_sec: f64,
    /// `likelihood` (ganger; default `"gaussian"`): the likelihood's name. Workers serve its
    /// terms as the job types `mcmc/NAME/TERM`. Built-in likelihoods (`"gaussian"`,
    /// `"bimodal"`, `"rosenbrock"`; see [`Builtin`](super::likelihood::Builtin)) can also be
    /// evaluated in-process; any other name is served by workers that bring their own. Letters,
    /// digits, `_`, `-` and `.` only.
    pub likelihood: String,
    /// `maxTemperature` (ganger; default 1000, ≥ 1, and > 1 when `nTemperatures` > 1): the
    /// hottest temperature of the initial ladder, which is geometric from 1 to this value (see
    /// [`initial_temperatures`](Self::initial_temperatures)); adaptation moves the temperatures
    /// afterwards. The hottest chain's β starts at 1/`maxTemperature`.
    pub max_temperature: f64,
    /// `adaptationSteps` (ganger; in steps per chain, at most
    /// [`samples_per_chain`](Self::samples_per_chain); default half of it): how many steps
    /// the diminishing adaptation of proposal widths and temperatures lasts; after it the
    /// chains are plain (non-adaptive) Markov chains. 0 disables adaptation.
    pub adaptation_steps: u64,
    /// `burnIn` (ganger; in steps per chain, below [`samples_per_chain`](Self::samples_per_chain);
    /// default `adaptationSteps`, or one step fewer than the run when adaptation lasts all of
    /// it): the steps of each chain that the posterior summary, its diagnostics, the dashboard's
    /// convergence figures and the plots leave out. The chain files keep every step.
    pub burn_in: u64,
    /// `evidenceDraws` (ganger; default 1024; 0 turns the evidence off): points drawn
    /// uniformly in the bounds and evaluated at the end of a run with 2 or more temperatures,
    /// for the evidence's step from the prior to the hottest chain. They cost that many extra
    /// likelihood evaluations.
    pub evidence_draws: u64,
    /// `names` (ganger; optional, one entry per dimension): what to call the parameters in the
    /// chain files' header, the posterior summary, the dashboard and the plots. Each is
    /// non-empty, unique, at most 64 characters, without commas, quotes or control characters,
    /// and none is one of the chain files' own columns (`energy`, `sigma`, `beta`, `accepted`,
    /// `swap_type`). Absent means `x0`, `x1`, …; see [`dim_names`](Self::dim_names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
}

impl McmcConfig {
    /// Parses and [validates](Self::validate) a config written in `format`; `file` names the
    /// text's origin in error messages and is not opened.
    ///
    /// Every key must be one of [`KEYS`]; absent optional keys take their documented defaults.
    pub fn parse(text: &str, file: &str, format: ConfigFormat) -> Result<Self, ConfigError> {
        Self::parse_as(text, file, format, false)
    }

    /// Parses a config file's contents, choosing the format by `path`'s extension: `.json` is
    /// JSON, `.toml` is TOML, anything else is read as JSON (Stateline's format) and a syntax
    /// error says so. `path` is only used to choose the format and in error messages.
    pub fn from_file_contents(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        match ConfigFormat::from_path(path) {
            Some(format) => Self::parse_as(text, &file, format, false),
            None => Self::parse_as(text, &file, ConfigFormat::Json, true),
        }
    }

    fn parse_as(
        text: &str,
        file: &str,
        format: ConfigFormat,
        guessed: bool,
    ) -> Result<Self, ConfigError> {
        let entries = match format {
            ConfigFormat::Json => json_entries(text, file, guessed)?,
            ConfigFormat::Toml => toml_entries(text, file)?,
        };
        let config = Document::new(file, entries)?.into_config()?;
        config.validate_as(file)?;
        Ok(config)
    }

    /// The number of parameters: the length of `min` (and of `max`).
    pub fn n_dims(&self) -> usize {
        self.min.len()
    }

    /// The parameters' names: `names` where given, else `x0`, `x1`, ….
    pub fn dim_names(&self) -> Vec<String> {
        match &self.names {
            Some(names) => names.clone(),
            None => (0..self.n_dims()).map(|d| format!("x{d}")).collect(),
        }
    }

    /// The number of chains: `nStacks × nTemperatures`.
    pub fn n_chains(&self) -> usize {
        self.n_stacks * self.n_temperatures
    }

    /// How many steps each chain makes: `nSamplesTotal / nStacks`, rounded up.
    ///
    /// `nSamplesTotal` counts cold-chain samples over all stacks, as Stateline does (see
    /// [`n_samples_total`](Self::n_samples_total)), so each stack's cold chain must make this
    /// many steps for the run to produce them; the hot chains of a stack step alongside it.
    /// Rounding up means a total that is not a multiple of `nStacks` yields at least, never
    /// fewer than, `nSamplesTotal` samples.
    pub fn samples_per_chain(&self) -> u64 {
        // max(1) only keeps an unvalidated config with no stacks from dividing by zero.
        self.n_samples_total.div_ceil((self.n_stacks as u64).max(1))
    }

    /// The initial temperature ladder of each stack, coldest first: `nTemperatures` values
    /// geometric from 1 to `maxTemperature` (just `[1.0]` for a single temperature). β is the
    /// reciprocal of each.
    pub fn initial_temperatures(&self) -> Vec<f64> {
        let n = self.n_temperatures;
        if n <= 1 {
            return vec![1.0; n];
        }
        let last = (n - 1) as f64;
        (0..n)
            .map(|i| {
                // Exact at both ends, where powf's rounding would be visible.
                if i == n - 1 {
                    self.max_temperature
                } else {
                    self.max_temperature.powf(i as f64 / last)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
