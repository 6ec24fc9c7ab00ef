//! Evaluating rounds on workers: one open job per likelihood term, extended every round.
//!
//! Each round adds one unit per chain to each term's job (job type `mcmc/LIKELIHOOD/TERM`,
//! payload `[term, n_terms, x]`), waits for every outcome, and sums each chain's terms in term
//! order. The sum's order is fixed, so the energies are bitwise the same as an in-process run's,
//! whichever workers answered and in whatever order.

use ganger_core::mcmc::likelihood::{job_type_name, unit_payload};
use ganger_core::mcmc::sampler::Sampler;
use ganger_core::payload;

use super::run::{McmcError, RoundEvaluator};
use crate::{Delegator, Job, JobOptions};

/// Evaluates rounds on the delegator's workers.
#[derive(Debug)]
pub struct OnWorkers {
    jobs: Vec<Job<f64>>,
    /// Units added to each term's job so far: the index of this round's first unit.
    submitted: u64,
    failed_units: u64,
}

impl OnWorkers {
    /// Opens one job per term of the likelihood called `likelihood`.
    pub fn new(
        delegator: &Delegator,
        likelihood: &str,
        n_terms: usize,
    ) -> Result<OnWorkers, McmcError> {
        let jobs = (0..n_terms)
            .map(|term| delegator.open(&job_type_name(likelihood, term), JobOptions::default()))
            .collect::<Result<_, _>>()
            .map_err(|e| McmcError::Evaluation(e.to_string()))?;
        Ok(OnWorkers {
            jobs,
            submitted: 0,
            failed_units: 0,
        })
    }

    /// Units whose evaluation failed on every attempt (their proposals were rejected).
    pub fn failed_units(&self) -> u64 {
        self.failed_units
    }
}

/// Steps per chain a round carries: a round trip through the engine costs far more than a
/// trivial likelihood, and a swap every 10 steps bounds the useful depth anyway.
const LOOKAHEAD: usize = 10;

impl RoundEvaluator for OnWorkers {
    fn lookahead(&self) -> usize {
        LOOKAHEAD
    }

    fn evaluate(&mut self, sampler: &Sampler) -> Result<Vec<f64>, McmcError> {
        let n_terms = self.jobs.len();
        let n_points = sampler.n_points();
        for (term, job) in self.jobs.iter().enumerate() {
            let payloads = sampler
                .points()
                .map(|x| unit_payload(term, n_terms, x))
                .collect();
            job.extend(payloads)
                .map_err(|e| McmcError::Evaluation(e.to_string()))?;
        }
        let first = self.submitted;
        self.submitted += n_points as u64;
        let mut terms = vec![vec![f64::NAN; n_points]; n_terms];
        for (job, values) in self.jobs.iter_mut().zip(&mut terms) {
            for _ in 0..n_points {
                let outcome = job
                    .next_raw()
                    .ok_or_else(|| McmcError::Evaluation("the delegator stopped".into()))?;
                let point = (outcome.index - first) as usize;
                values[point] = match outcome.result {
                    Ok(bytes) => payload::from_bytes(&bytes).unwrap_or(f64::NAN),
                    // An impossible state for this run: the proposal is rejected and counted.
                    Err(_) => {
                        self.failed_units += 1;
                        f64::NAN
                    }
                };
            }
        }
        // The same summation, in the same order, as in-process evaluation.
        Ok((0..n_points)
            .map(|point| terms.iter().map(|values| values[point]).sum())
            .collect())
    }
}
