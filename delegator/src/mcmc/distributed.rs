//! Evaluating rounds on workers: one open job per likelihood term, extended every round.
//!
//! Each round splits its points into a few units per term (job type `mcmc/LIKELIHOOD/TERM`,
//! payload `[term, n_terms, [[x…], …]]`: PROTOCOL.md, MCMC units), about two per worker slot so
//! that every worker has work and a cheap likelihood does not pay the engine's per-unit cost per
//! point. It waits for every outcome and sums each point's terms in term order. The sum's order
//! is fixed, so the energies are bitwise the same as an in-process run's, whichever workers
//! answered and in whatever order.

use std::time::Instant;

use tracing::warn;

use ganger_core::mcmc::likelihood::{
    encode_points, job_type_name, read_energies, unit_payload_with,
};
use ganger_core::mcmc::sampler::Sampler;

use super::run::{McmcError, RoundEvaluator};
use super::speculation::SpeculationTuner;
use crate::{Delegator, Job, JobOptions};

/// Rounds between two looks at how many worker slots there are.
const SLOTS_EVERY: u64 = 64;

/// Evaluates rounds on the delegator's workers.
#[derive(Debug)]
pub struct OnWorkers<'a> {
    delegator: &'a Delegator,
    jobs: Vec<Job<f64>>,
    /// The first term's job type.
    job_type: String,
    /// Units added to each term's job so far: the index of this round's first unit.
    submitted: u64,
    failed_units: u64,
    /// Worker slots serving the run's job types, as last seen.
    slots: usize,
    rounds: u64,
    tuner: SpeculationTuner,
    /// Points per chain and round when fixed by the caller instead of tuned.
    fixed: Option<usize>,
    /// When the last round ended.
    round_started: Option<Instant>,
    /// This round's points per unit: unit `i` holds points `bounds[i]..bounds[i + 1]`.
    bounds: Vec<usize>,
}

impl<'a> OnWorkers<'a> {
    /// Opens one job per term of the likelihood called `likelihood`.
    pub fn new(
        delegator: &'a Delegator,
        likelihood: &str,
        n_terms: usize,
    ) -> Result<OnWorkers<'a>, McmcError> {
        let jobs = (0..n_terms)
            .map(|term| delegator.open(&job_type_name(likelihood, term), JobOptions::default()))
            .collect::<Result<_, _>>()
            .map_err(|e| McmcError::Evaluation(e.to_string()))?;
        Ok(OnWorkers {
            delegator,
            jobs,
            job_type: job_type_name(likelihood, 0),
            submitted: 0,
            failed_units: 0,
            slots: 1,
            rounds: 0,
            tuner: SpeculationTuner::new(),
            fixed: None,
            round_started: None,
            bounds: Vec::new(),
        })
    }

    /// Units whose evaluation failed on every attempt (their proposals were rejected).
    pub fn failed_units(&self) -> u64 {
        self.failed_units
    }

    /// Fixes how many points per chain each round carries (1: no speculation) instead of
    /// letting measurement choose; `None` goes back to measuring. The output is the same
    /// either way, only the speed differs.
    pub fn set_speculation(&mut self, points: Option<usize>) {
        self.fixed = points;
    }

    /// Counts the slots of the workers that serve this run's first job type.
    fn refresh_slots(&mut self) {
        let Ok(stats) = self.delegator.stats() else {
            return;
        };
        let job_type = &self.job_type;
        let slots: u64 = stats
            .workers
            .iter()
            .filter(|w| {
                w.job_types
                    .iter()
                    .any(|t| ganger_core::protocol::job_type_matches(t, job_type))
            })
            .map(|w| u64::from(w.slots))
            .sum();
        self.slots = (slots as usize).max(1);
    }
}

impl RoundEvaluator for OnWorkers<'_> {
    fn speculation(&mut self, steps: usize) -> usize {
        let now = Instant::now();
        let points = match self.round_started {
            Some(started) => self
                .tuner
                .record(steps, now.duration_since(started).as_secs_f64()),
            None => self.tuner.points(),
        };
        self.round_started = Some(now);
        self.fixed.unwrap_or(points)
    }

    fn evaluate(&mut self, sampler: &Sampler) -> Result<Vec<f64>, McmcError> {
        let points: Vec<&[f64]> = sampler.points().collect();
        self.evaluate_list(&points)
    }

    fn evaluate_points(&mut self, points: &[Vec<f64>]) -> Result<Vec<f64>, McmcError> {
        let points: Vec<&[f64]> = points.iter().map(Vec::as_slice).collect();
        self.evaluate_list(&points)
    }
}

impl OnWorkers<'_> {
    /// Evaluates `points` on the workers: each term's units, summed in term order.
    fn evaluate_list(&mut self, points: &[&[f64]]) -> Result<Vec<f64>, McmcError> {
        if self.rounds % SLOTS_EVERY == 0 {
            self.refresh_slots();
        }
        self.rounds += 1;
        let n_terms = self.jobs.len();
        let n_points = points.len();
        if n_points == 0 {
            // Every proposal of the round fell outside the bounds: nothing to evaluate.
            return Ok(Vec::new());
        }
        let n_units = n_points.clamp(1, 2 * self.slots);
        self.bounds.clear();
        self.bounds
            .extend((0..=n_units).map(|i| i * n_points / n_units));
        // Every term evaluates the same points: encode them once.
        let encoded: Vec<Vec<u8>> = self
            .bounds
            .windows(2)
            .map(|w| encode_points(points[w[0]..w[1]].iter().copied()))
            .collect();
        for (term, job) in self.jobs.iter().enumerate() {
            let payloads = encoded
                .iter()
                .map(|points| unit_payload_with(term, n_terms, points))
                .collect();
            job.extend(payloads)
                .map_err(|e| McmcError::Evaluation(e.to_string()))?;
        }
        let first = self.submitted;
        self.submitted += n_units as u64;
        let mut terms = vec![f64::NAN; n_terms * n_points];
        for (job, values) in self
            .jobs
            .iter_mut()
            .zip(terms.chunks_exact_mut(n_points.max(1)))
        {
            for _ in 0..n_units {
                let outcome = job
                    .next_raw()
                    .ok_or_else(|| McmcError::Evaluation("the delegator stopped".into()))?;
                let unit = (outcome.index - first) as usize;
                let values = &mut values[self.bounds[unit]..self.bounds[unit + 1]];
                let decoded = match outcome.result {
                    Ok(bytes) => read_energies(&bytes, values),
                    Err(failure) => Err(failure.to_string()),
                };
                if let Err(error) = decoded {
                    // Impossible states for this run: the proposals are rejected and counted.
                    if self.failed_units == 0 {
                        warn!("an MCMC unit failed (its proposals are rejected; later failures are only counted): {error}");
                    }
                    self.failed_units += 1;
                    values.fill(f64::NAN);
                }
            }
        }
        // The same summation, in the same order, as in-process evaluation.
        Ok((0..n_points)
            .map(|point| {
                (0..n_terms)
                    .map(|term| terms[term * n_points + point])
                    .sum()
            })
            .collect())
    }
}
