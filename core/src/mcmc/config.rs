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

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Every key a config file may contain, in the order the documentation lists them.
///
/// Stateline's keys come first; ganger's own follow.
pub const KEYS: [&str; 22] = [
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
];

// Defaults for the optional keys; each is also stated on its field.
const DEFAULT_SWAP_INTERVAL: u64 = 10;
// Stateline's README: "we usually use 0.234" (Roberts, Gelman & Gilks 1997), and "a reasonable
// heuristic is to set [the swap rate] equal to the optimal accept rate".
const DEFAULT_OPTIMAL_ACCEPT_RATE: f64 = 0.234;
const DEFAULT_OPTIMAL_SWAP_RATE: f64 = 0.234;
const DEFAULT_OUTPUT_PATH: &str = "output";
const DEFAULT_LOGGING_RATE_SEC: f64 = 1.0;
const DEFAULT_SEED: u64 = 42;
const DEFAULT_CHECKPOINT_INTERVAL_SEC: f64 = 10.0;
const DEFAULT_MAX_TEMPERATURE: f64 = 1000.0;
// The prior step's weights lie in [0, 1]: a thousand draws put its error well below the ladder's.
const DEFAULT_EVIDENCE_DRAWS: u64 = 1024;
const MAX_EVIDENCE_DRAWS: u64 = 1_000_000;

/// The syntax a config file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    /// JSON, as Stateline's config files are.
    Json,
    /// TOML, with the same keys as the JSON form.
    Toml,
}

impl ConfigFormat {
    /// The format a file's extension names (`.json` or `.toml`, any case), if it names one.
    pub fn from_path(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?;
        if extension.eq_ignore_ascii_case("json") {
            Some(Self::Json)
        } else if extension.eq_ignore_ascii_case("toml") {
            Some(Self::Toml)
        } else {
            None
        }
    }
}

impl fmt::Display for ConfigFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "JSON",
            Self::Toml => "TOML",
        })
    }
}

/// How the sampler schedules replica-exchange (swap) attempts between adjacent temperatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwapScheme {
    /// Stateline's scheme: every `swapInterval` steps, attempt a swap between each adjacent
    /// pair, from the hottest pair down to the coldest. Config value `"classic"`.
    Classic,
    /// Non-reversible parallel tempering (Syed et al. 2021, "deterministic even-odd"): swap
    /// attempts alternate between the even and the odd adjacent pairs, so a state that moves up
    /// or down the ladder keeps moving in that direction instead of diffusing; round trips take
    /// O(N) instead of O(N²) attempts for N temperatures. Config value `"nonreversible"`.
    NonReversible,
}

impl SwapScheme {
    /// Every scheme, in the order error messages list them.
    pub const ALL: [SwapScheme; 2] = [SwapScheme::Classic, SwapScheme::NonReversible];

    /// The scheme's name in a config file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::NonReversible => "nonreversible",
        }
    }
}

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

    /// Checks that the values are consistent (the checks [`parse`](Self::parse) makes after
    /// reading the keys); errors name the file as `(unnamed config)`. Use it on a config that
    /// was built or edited in code, or restored from a checkpoint.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_as("(unnamed config)")
    }

    /// [`validate`](Self::validate), naming `file` in error messages.
    pub fn validate_as(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: String| {
            Err(ConfigError::Invalid {
                file: file.to_owned(),
                key,
                reason,
            })
        };

        if self.n_job_types == 0 {
            return invalid(
                "nJobTypes",
                "must be at least 1, found 0: every state is evaluated as at least one job".into(),
            );
        }
        if self.n_stacks == 0 {
            return invalid(
                "nStacks",
                "must be at least 1, found 0: the sampler needs at least one stack of chains"
                    .into(),
            );
        }
        if self.n_temperatures == 0 {
            return invalid(
                "nTemperatures",
                "must be at least 1, found 0: each stack needs at least one chain".into(),
            );
        }
        if self.n_stacks.checked_mul(self.n_temperatures).is_none() {
            return invalid(
                "nTemperatures",
                format!(
                    "{} stacks of {} temperatures is more chains than this machine can count",
                    self.n_stacks, self.n_temperatures
                ),
            );
        }
        // Stateline counts samples of the cold chains over all stacks (see the field's docs),
        // so fewer samples than stacks leaves some stack's cold chain with nothing to produce.
        if self.n_samples_total < self.n_stacks as u64 {
            return invalid(
                "nSamplesTotal",
                format!(
                    "{} is fewer than `nStacks` = {}: nSamplesTotal counts the cold-chain \
                     samples of all stacks together, so each stack needs at least one",
                    self.n_samples_total, self.n_stacks
                ),
            );
        }

        self.validate_bounds(file)?;

        if self.swap_interval == 0 {
            return invalid(
                "swapInterval",
                "must be at least 1 step between swap attempts, found 0".into(),
            );
        }
        for (key, rate) in [
            ("optimalAcceptRate", self.optimal_accept_rate),
            ("optimalSwapRate", self.optimal_swap_rate),
        ] {
            // Written so that NaN fails too.
            if !(rate > 0.0 && rate < 1.0) {
                return invalid(
                    key,
                    format!("must be a rate strictly between 0 and 1, found {rate}"),
                );
            }
        }
        if self.output_path.is_empty() {
            return invalid(
                "outputPath",
                "must name a folder, found an empty string".into(),
            );
        }
        if !(self.logging_rate_sec > 0.0 && self.logging_rate_sec.is_finite()) {
            return invalid(
                "loggingRateSec",
                format!(
                    "must be a positive number of seconds, found {}",
                    self.logging_rate_sec
                ),
            );
        }
        if let Some(timeout) = self.heartbeat_timeout_sec {
            if !(timeout > 0.0 && timeout.is_finite()) {
                return invalid(
                    "heartbeatTimeoutSec",
                    format!("must be a positive number of seconds, found {timeout}"),
                );
            }
        }
        if !(self.checkpoint_interval_sec >= 0.0 && self.checkpoint_interval_sec.is_finite()) {
            return invalid(
                "checkpointIntervalSec",
                format!(
                    "must be a number of seconds ≥ 0 (0 disables checkpoints), found {}",
                    self.checkpoint_interval_sec
                ),
            );
        }
        if !(self.max_temperature >= 1.0 && self.max_temperature.is_finite()) {
            return invalid(
                "maxTemperature",
                format!(
                    "must be a finite temperature ≥ 1 (the cold chain's), found {}",
                    self.max_temperature
                ),
            );
        }
        // A ladder from 1 to 1 puts every chain at the same temperature, which makes tempering
        // pointless and leaves temperature adaptation no spacing to scale.
        if self.n_temperatures > 1 && self.max_temperature == 1.0 {
            return invalid(
                "maxTemperature",
                format!(
                    "must be above 1 when `nTemperatures` is {}, found 1: every chain would \
                     run at the same temperature",
                    self.n_temperatures
                ),
            );
        }
        if self.adaptation_steps > self.samples_per_chain() {
            return invalid(
                "adaptationSteps",
                format!(
                    "{} is more than the {} steps each chain makes (nSamplesTotal {} / nStacks \
                     {}): no sample would be drawn after adaptation ends",
                    self.adaptation_steps,
                    self.samples_per_chain(),
                    self.n_samples_total,
                    self.n_stacks
                ),
            );
        }
        if self.evidence_draws > MAX_EVIDENCE_DRAWS {
            return invalid(
                "evidenceDraws",
                format!(
                    "{} is more than {MAX_EVIDENCE_DRAWS} (each draw is a likelihood evaluation \
                     and a point held in memory)",
                    self.evidence_draws
                ),
            );
        }
        if self.burn_in >= self.samples_per_chain() {
            return invalid(
                "burnIn",
                format!(
                    "{} leaves no draws: each chain makes {} steps (nSamplesTotal {} / nStacks \
                     {}), and the summary covers those after the burn-in",
                    self.burn_in,
                    self.samples_per_chain(),
                    self.n_samples_total,
                    self.n_stacks
                ),
            );
        }
        Ok(())
    }

    /// The checks on `min`, `max` and `initial`.
    fn validate_bounds(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: String| {
            Err(ConfigError::Invalid {
                file: file.to_owned(),
                key,
                reason,
            })
        };
        if self.min.len() != self.max.len() {
            return invalid(
                "min",
                format!(
                    "has {} entries but `max` has {}",
                    self.min.len(),
                    self.max.len()
                ),
            );
        }
        if self.min.is_empty() {
            return invalid(
                "min",
                "is empty: `min` and `max` need one entry per dimension, at least one".into(),
            );
        }
        for (key, values) in [("min", &self.min), ("max", &self.max)] {
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return invalid(
                    key,
                    format!("entry {i} is {}: bounds must be finite numbers", values[i]),
                );
            }
        }
        for (i, (lo, hi)) in self.min.iter().zip(&self.max).enumerate() {
            if lo >= hi {
                return invalid(
                    "min",
                    format!("entry {i} ({lo}) is not below entry {i} of `max` ({hi})"),
                );
            }
        }
        match &self.initial {
            None if self.use_initial => invalid(
                "initial",
                "is required because `useInitial` is true, but it is absent".into(),
            ),
            None => Ok(()),
            Some(initial) => {
                if initial.len() != self.min.len() {
                    return invalid(
                        "initial",
                        format!(
                            "has {} entries but `min` and `max` have {}",
                            initial.len(),
                            self.min.len()
                        ),
                    );
                }
                for (i, x) in initial.iter().enumerate() {
                    // Written so that NaN fails too.
                    if !(*x >= self.min[i] && *x <= self.max[i]) {
                        return invalid(
                            "initial",
                            format!(
                                "entry {i} ({x}) is outside [{}, {}], the bounds `min` and \
                                 `max` give for it",
                                self.min[i], self.max[i]
                            ),
                        );
                    }
                }
                Ok(())
            }
        }
    }

    /// The number of parameters: the length of `min` (and of `max`).
    pub fn n_dims(&self) -> usize {
        self.min.len()
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

/// Why a config could not be parsed or is inconsistent. Every message names the file, and every
/// message about a value names its key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The text is not valid JSON or TOML (or, for JSON, its top level is not an object, or a
    /// key appears twice).
    #[error(
        "config {file}: {}invalid {format}: {message}{}",
        location_prefix(.location),
        guessed_note(.guessed)
    )]
    Syntax {
        /// The file the text came from.
        file: String,
        /// The syntax the text was parsed as.
        format: ConfigFormat,
        /// The one-based line and column of the error, when the parser reports one.
        location: Option<(usize, usize)>,
        /// The parser's message.
        message: String,
        /// The format was a guess: the file's extension is neither `.json` nor `.toml`.
        guessed: bool,
    },
    /// A key that is not one of [`KEYS`].
    #[error(
        "config {file}: unknown key `{key}`{}; the known keys are {}",
        suggestion_note(.suggestion),
        KEYS.join(", ")
    )]
    UnknownKey {
        /// The file the key is in.
        file: String,
        /// The unknown key.
        key: String,
        /// The known key closest to it, if one is close enough to be a likely typo.
        suggestion: Option<&'static str>,
    },
    /// A required key is absent.
    #[error("config {file}: missing required key `{key}` ({meaning})")]
    MissingKey {
        /// The file the key is missing from.
        file: String,
        /// The missing key.
        key: &'static str,
        /// What the key sets.
        meaning: &'static str,
    },
    /// A key's value has the wrong type (a string where a number belongs, say).
    #[error("config {file}: key `{key}`: expected {expected}, found {found}")]
    WrongType {
        /// The file the key is in.
        file: String,
        /// The key.
        key: &'static str,
        /// The type the key takes.
        expected: &'static str,
        /// A description of the value found.
        found: String,
    },
    /// A key's value has the right type but is out of range or inconsistent with another key.
    #[error("config {file}: key `{key}`: {reason}")]
    Invalid {
        /// The file the key is in.
        file: String,
        /// The key.
        key: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
}

fn location_prefix(location: &Option<(usize, usize)>) -> String {
    match location {
        Some((line, column)) => format!("line {line}, column {column}: "),
        None => String::new(),
    }
}

fn guessed_note(guessed: &bool) -> &'static str {
    if *guessed {
        " (read as JSON because the file name ends in neither .json nor .toml)"
    } else {
        ""
    }
}

fn suggestion_note(suggestion: &Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean `{s}`?)"))
}

/// A value as read from either syntax, before it is checked against its key.
#[derive(Debug)]
enum Raw {
    /// Any integer either syntax can hold (JSON's reach u64::MAX, TOML's i64::MIN).
    Int(i128),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Raw>),
    /// A value no key takes (null, a table, a date-time), by its description.
    Other(&'static str),
}

impl Raw {
    fn from_json(value: serde_json::Value) -> Self {
        use serde_json::Value;
        match value {
            Value::Null => Self::Other("null"),
            Value::Bool(b) => Self::Bool(b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Self::Int(u.into())
                } else if let Some(i) = n.as_i64() {
                    Self::Int(i.into())
                } else {
                    Self::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => Self::Str(s),
            Value::Array(values) => Self::Array(values.into_iter().map(Self::from_json).collect()),
            Value::Object(_) => Self::Other("an object"),
        }
    }

    fn from_toml(value: toml::Value) -> Self {
        use toml::Value;
        match value {
            Value::String(s) => Self::Str(s),
            Value::Integer(i) => Self::Int(i.into()),
            Value::Float(f) => Self::Float(f),
            Value::Boolean(b) => Self::Bool(b),
            Value::Datetime(_) => Self::Other("a date-time"),
            Value::Array(values) => Self::Array(values.into_iter().map(Self::from_toml).collect()),
            Value::Table(_) => Self::Other("a table"),
        }
    }

    /// The value as an error message shows it after "found".
    fn describe(&self) -> String {
        match self {
            Self::Int(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Bool(b) => b.to_string(),
            Self::Str(s) => format!("the string {s:?}"),
            Self::Array(_) => "an array".into(),
            Self::Other(what) => (*what).into(),
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::Int(i) => Some(i as f64),
            Self::Float(f) => Some(f),
            _ => None,
        }
    }
}

/// The top-level keys of a JSON object in document order, rejecting a repeated key (which
/// `serde_json::Value` would silently resolve to the last one).
struct JsonEntries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for JsonEntries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;

        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = JsonEntries;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of configuration keys")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonEntries, A::Error> {
                let mut entries: Vec<(String, serde_json::Value)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format_args!("key `{key}` appears twice")));
                    }
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(JsonEntries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor)
    }
}

fn json_entries(text: &str, file: &str, guessed: bool) -> Result<Vec<(String, Raw)>, ConfigError> {
    match serde_json::from_str::<JsonEntries>(text) {
        Ok(JsonEntries(entries)) => Ok(entries
            .into_iter()
            .map(|(key, value)| (key, Raw::from_json(value)))
            .collect()),
        Err(error) => {
            let (line, column) = (error.line(), error.column());
            // serde_json appends the position to its message; it is reported separately.
            let message = error.to_string();
            let suffix = format!(" at line {line} column {column}");
            let message = message.strip_suffix(&suffix).unwrap_or(&message).to_owned();
            Err(ConfigError::Syntax {
                file: file.to_owned(),
                format: ConfigFormat::Json,
                // serde_json reports column 0 for an error before the first character.
                location: (line > 0).then_some((line, column.max(1))),
                message,
                guessed,
            })
        }
    }
}

fn toml_entries(text: &str, file: &str) -> Result<Vec<(String, Raw)>, ConfigError> {
    match toml::from_str::<toml::Table>(text) {
        Ok(table) => Ok(table
            .into_iter()
            .map(|(key, value)| (key, Raw::from_toml(value)))
            .collect()),
        Err(error) => Err(ConfigError::Syntax {
            file: file.to_owned(),
            format: ConfigFormat::Toml,
            location: error.span().map(|span| line_and_column(text, span.start)),
            // toml's messages may span lines ("invalid string\nexpected ..."); keep one line.
            message: error
                .message()
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
            guessed: false,
        }),
    }
}

/// The one-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// A parsed document's entries under their known key names, taken one by one as the config is
/// built.
struct Document<'a> {
    file: &'a str,
    entries: Vec<(&'static str, Raw)>,
}

impl<'a> Document<'a> {
    /// Rejects the first unknown key, in document order.
    fn new(file: &'a str, entries: Vec<(String, Raw)>) -> Result<Self, ConfigError> {
        let mut known = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            match KEYS.iter().find(|k| **k == key) {
                Some(k) => known.push((*k, value)),
                None => {
                    return Err(ConfigError::UnknownKey {
                        file: file.to_owned(),
                        suggestion: did_you_mean(&key, &KEYS),
                        key,
                    })
                }
            }
        }
        Ok(Self {
            file,
            entries: known,
        })
    }

    fn take(&mut self, key: &'static str) -> Option<Raw> {
        let i = self.entries.iter().position(|(k, _)| *k == key)?;
        Some(self.entries.swap_remove(i).1)
    }

    fn wrong_type(&self, key: &'static str, expected: &'static str, found: String) -> ConfigError {
        ConfigError::WrongType {
            file: self.file.to_owned(),
            key,
            expected,
            found,
        }
    }

    fn missing(&self, key: &'static str, meaning: &'static str) -> ConfigError {
        ConfigError::MissingKey {
            file: self.file.to_owned(),
            key,
            meaning,
        }
    }

    /// A non-negative whole number. Whole-valued floats (`2.0`, `2e5`) count too, because
    /// Stateline's JSON reader accepted them and people write sample counts that way.
    fn whole(&mut self, key: &'static str) -> Result<Option<u64>, ConfigError> {
        const EXPECTED: &str = "a whole number";
        let Some(raw) = self.take(key) else {
            return Ok(None);
        };
        let value: i128 = match raw {
            Raw::Int(i) => i,
            // 2^64 is exactly representable, so this bounds check is exact.
            Raw::Float(f) if f.fract() == 0.0 && f.abs() < 18_446_744_073_709_551_616.0 => {
                f as i128
            }
            other => return Err(self.wrong_type(key, EXPECTED, other.describe())),
        };
        u64::try_from(value)
            .map(Some)
            .map_err(|_| ConfigError::Invalid {
                file: self.file.to_owned(),
                key,
                reason: if value < 0 {
                    format!("must not be negative, found {value}")
                } else {
                    format!("{value} is too large")
                },
            })
    }

    /// A whole number that indexes memory (a count of stacks or temperatures).
    fn count(&mut self, key: &'static str) -> Result<Option<usize>, ConfigError> {
        match self.whole(key)? {
            None => Ok(None),
            Some(n) => usize::try_from(n)
                .map(Some)
                .map_err(|_| ConfigError::Invalid {
                    file: self.file.to_owned(),
                    key,
                    reason: format!("{n} is too large"),
                }),
        }
    }

    fn number(&mut self, key: &'static str) -> Result<Option<f64>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(raw) => match raw.as_f64() {
                Some(x) => Ok(Some(x)),
                None => Err(self.wrong_type(key, "a number", raw.describe())),
            },
        }
    }

    fn numbers(&mut self, key: &'static str) -> Result<Option<Vec<f64>>, ConfigError> {
        const EXPECTED: &str = "an array of numbers";
        match self.take(key) {
            None => Ok(None),
            Some(Raw::Array(values)) => values
                .iter()
                .enumerate()
                .map(|(i, raw)| {
                    raw.as_f64().ok_or_else(|| {
                        self.wrong_type(key, EXPECTED, format!("{} at index {i}", raw.describe()))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(self.wrong_type(key, EXPECTED, other.describe())),
        }
    }

    fn boolean(&mut self, key: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(Raw::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(self.wrong_type(key, "true or false", other.describe())),
        }
    }

    fn string(&mut self, key: &'static str) -> Result<Option<String>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(Raw::Str(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(key, "a string", other.describe())),
        }
    }

    /// A string that must be one of `names`, returned as its index into them.
    fn choice(
        &mut self,
        key: &'static str,
        names: &[&'static str],
    ) -> Result<Option<usize>, ConfigError> {
        let Some(value) = self.string(key)? else {
            return Ok(None);
        };
        if let Some(i) = names.iter().position(|n| *n == value) {
            return Ok(Some(i));
        }
        let listed = names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>();
        let hint = did_you_mean(&value, names)
            .map_or_else(String::new, |s| format!(" (did you mean \"{s}\"?)"));
        Err(ConfigError::Invalid {
            file: self.file.to_owned(),
            key,
            reason: format!(
                "unknown value {value:?}{hint}; expected one of {}",
                listed.join(", ")
            ),
        })
    }

    /// A name that can stand in a job type: letters, digits, `_`, `-` and `.`.
    fn likelihood_name(&mut self, key: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.string(key)? else {
            return Ok(None);
        };
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if value.is_empty() || !value.chars().all(allowed) {
            return Err(ConfigError::Invalid {
                file: self.file.to_owned(),
                key,
                reason: format!(
                    "{value:?} is not a likelihood name: use letters, digits, `_`, `-` and `.` (it becomes the job types `mcmc/NAME/TERM`)"
                ),
            });
        }
        Ok(Some(value))
    }

    /// Reads every key, applying defaults; [`McmcConfig::validate_as`] checks the values.
    fn into_config(mut self) -> Result<McmcConfig, ConfigError> {
        let n_job_types = self.whole("nJobTypes")?;
        let n_stacks = self.count("nStacks")?;
        let n_temperatures = self.count("nTemperatures")?;
        let n_samples_total = self.whole("nSamplesTotal")?;
        let min = self.numbers("min")?;
        let max = self.numbers("max")?;

        let n_job_types = n_job_types.ok_or_else(|| {
            self.missing("nJobTypes", "how many terms the likelihood factorises into")
        })?;
        let n_job_types = u32::try_from(n_job_types).map_err(|_| ConfigError::Invalid {
            file: self.file.to_owned(),
            key: "nJobTypes",
            reason: format!("{n_job_types} is too large"),
        })?;
        let n_stacks = n_stacks
            .ok_or_else(|| self.missing("nStacks", "how many independent stacks to run"))?;
        let n_temperatures = n_temperatures
            .ok_or_else(|| self.missing("nTemperatures", "how many chains each stack has"))?;
        let n_samples_total = n_samples_total.ok_or_else(|| {
            self.missing(
                "nSamplesTotal",
                "how many cold-chain samples to draw over all stacks",
            )
        })?;
        let min = min.ok_or_else(|| self.missing("min", "the lower bound of each parameter"))?;
        let max = max.ok_or_else(|| self.missing("max", "the upper bound of each parameter"))?;

        let swap_scheme_names = SwapScheme::ALL.map(SwapScheme::name);
        let mut config = McmcConfig {
            n_job_types,
            n_stacks,
            n_temperatures,
            n_samples_total,
            min,
            max,
            swap_interval: self.whole("swapInterval")?.unwrap_or(DEFAULT_SWAP_INTERVAL),
            optimal_accept_rate: self
                .number("optimalAcceptRate")?
                .unwrap_or(DEFAULT_OPTIMAL_ACCEPT_RATE),
            optimal_swap_rate: self
                .number("optimalSwapRate")?
                .unwrap_or(DEFAULT_OPTIMAL_SWAP_RATE),
            output_path: self
                .string("outputPath")?
                .unwrap_or_else(|| DEFAULT_OUTPUT_PATH.to_owned()),
            logging_rate_sec: self
                .number("loggingRateSec")?
                .unwrap_or(DEFAULT_LOGGING_RATE_SEC),
            use_initial: self.boolean("useInitial")?.unwrap_or(false),
            initial: self.numbers("initial")?,
            heartbeat_timeout_sec: self.number("heartbeatTimeoutSec")?,
            seed: self.whole("seed")?.unwrap_or(DEFAULT_SEED),
            swap_scheme: self
                .choice("swapScheme", &swap_scheme_names)?
                .map_or(SwapScheme::NonReversible, |i| SwapScheme::ALL[i]),
            checkpoint_interval_sec: self
                .number("checkpointIntervalSec")?
                .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL_SEC),
            likelihood: self
                .likelihood_name("likelihood")?
                .unwrap_or_else(|| "gaussian".into()),
            max_temperature: self
                .number("maxTemperature")?
                .unwrap_or(DEFAULT_MAX_TEMPERATURE),
            adaptation_steps: 0,
            burn_in: 0,
            evidence_draws: self
                .whole("evidenceDraws")?
                .unwrap_or(DEFAULT_EVIDENCE_DRAWS),
        };
        config.adaptation_steps = match self.whole("adaptationSteps")? {
            Some(steps) => steps,
            None => config.samples_per_chain() / 2,
        };
        config.burn_in = match self.whole("burnIn")? {
            Some(steps) => steps,
            None => config
                .adaptation_steps
                .min(config.samples_per_chain().saturating_sub(1)),
        };
        debug_assert!(self.entries.is_empty(), "a key in KEYS is never read");
        Ok(config)
    }
}

/// The candidate `word` is most likely a typo of, if any is close: edit distance at most a
/// third of the word's length (and at least 2), ignoring case, `_` and `-` so that `nstacks`,
/// `n_stacks` and `n-stacks` all find `nStacks`.
fn did_you_mean(word: &str, candidates: &[&'static str]) -> Option<&'static str> {
    fn normalise(s: &str) -> Vec<char> {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    }
    let word = normalise(word);
    let limit = (word.len() / 3).max(2);
    candidates
        .iter()
        .map(|c| (edit_distance(&word, &normalise(c)), *c))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// The Levenshtein distance: the fewest single-character insertions, deletions and
/// substitutions that turn `a` into `b`.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    // One row of the dynamic-programming table at a time: row[j] is the distance between the
    // prefix of `a` read so far and the first j characters of `b`.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests;
