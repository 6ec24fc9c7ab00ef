//! The consistency checks every config passes, whether parsed from a file, built in code or
//! restored from a checkpoint.

use super::{ConfigError, McmcConfig, MAX_NAME_CHARS, RESERVED_NAMES};

const MAX_EVIDENCE_DRAWS: u64 = 1_000_000;

impl McmcConfig {
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
        self.validate_names(file)?;

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

    /// The checks on `names`: one usable, distinct name per dimension.
    fn validate_names(&self, file: &str) -> Result<(), ConfigError> {
        let Some(names) = &self.names else {
            return Ok(());
        };
        let invalid = |reason: String| {
            Err(ConfigError::Invalid {
                file: file.to_owned(),
                key: "names",
                reason,
            })
        };
        if names.len() != self.min.len() {
            return invalid(format!(
                "has {} entries but `min` and `max` have {}: one name per dimension",
                names.len(),
                self.min.len()
            ));
        }
        for (i, name) in names.iter().enumerate() {
            let problem = if name.is_empty() {
                Some("is empty".to_owned())
            } else if name.chars().count() > MAX_NAME_CHARS {
                Some(format!("is longer than {MAX_NAME_CHARS} characters"))
            } else if let Some(c) = name
                .chars()
                .find(|c| matches!(c, ',' | '"') || c.is_control())
            {
                Some(format!(
                    "contains {c:?}: the chain files are CSV, so names hold no commas, quotes \
                     or control characters"
                ))
            } else if name.trim() != name {
                Some("starts or ends with white space".to_owned())
            } else if RESERVED_NAMES.contains(&name.as_str()) {
                Some(format!(
                    "is a column the chain files already have ({})",
                    RESERVED_NAMES.join(", ")
                ))
            } else {
                names[..i]
                    .iter()
                    .position(|other| other == name)
                    .map(|j| format!("repeats entry {j}"))
            };
            if let Some(problem) = problem {
                return invalid(format!("entry {i} ({name:?}) {problem}"));
            }
        }
        Ok(())
    }
}
