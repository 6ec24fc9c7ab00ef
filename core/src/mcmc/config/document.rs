//! Turning a file's raw entries into a [`McmcConfig`]: each known key read with its expected
//! type, unknown keys rejected with a suggestion, absent optional keys given their defaults.

use super::suggest::did_you_mean;
use super::syntax::Raw;
use super::{ConfigError, McmcConfig, SwapScheme, KEYS};

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

/// A parsed document's entries under their known key names, taken one by one as the config is
/// built.
pub(super) struct Document<'a> {
    file: &'a str,
    entries: Vec<(&'static str, Raw)>,
}

impl<'a> Document<'a> {
    /// Rejects the first unknown key, in document order.
    pub(super) fn new(file: &'a str, entries: Vec<(String, Raw)>) -> Result<Self, ConfigError> {
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

    fn strings(&mut self, key: &'static str) -> Result<Option<Vec<String>>, ConfigError> {
        const EXPECTED: &str = "an array of strings";
        match self.take(key) {
            None => Ok(None),
            Some(Raw::Array(values)) => values
                .into_iter()
                .enumerate()
                .map(|(i, raw)| match raw {
                    Raw::Str(s) => Ok(s),
                    other => Err(self.wrong_type(
                        key,
                        EXPECTED,
                        format!("{} at index {i}", other.describe()),
                    )),
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
    pub(super) fn into_config(mut self) -> Result<McmcConfig, ConfigError> {
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
            names: self.strings("names")?,
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
