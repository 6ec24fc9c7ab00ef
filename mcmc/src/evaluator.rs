//! How a run's requests get their energies: the [`Evaluator`] trait, and [`InProcess`], which
//! evaluates them in this process (`OnWorkers`, on a cluster, is in `distributed.rs`).

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use ganger_core::mcmc::embedded;
use ganger_core::mcmc::likelihood::Likelihood;
use ganger_core::mcmc::sampler::{Row, Sampler};

use crate::run::McmcError;

/// Evaluates a sampler's requests, in this process or on workers, and completes them.
pub trait Evaluator {
    /// Evaluates some of `sampler`'s pending requests and completes them (see
    /// `Sampler::complete_chain`); returns the rows that became final, possibly none while
    /// results are still coming in, or once `stop` is set while it waits.
    fn advance(&mut self, sampler: &mut Sampler, stop: &AtomicBool) -> Result<Vec<Row>, McmcError>;

    /// Evaluates points outside the run's requests (the prior draws of the evidence): one
    /// energy per point, in order; [`McmcError::Stopped`] if `stop` is set while it waits.
    fn evaluate_points(
        &mut self,
        points: &[Vec<f64>],
        stop: &AtomicBool,
    ) -> Result<Vec<f64>, McmcError>;

    /// The run is about to do something slow (a checkpoint, the summary): let go of anything
    /// that needs this thread to keep turning (the engine on loan). The next call takes it
    /// back.
    fn pause(&mut self) {}
}

/// Evaluates in this process, every pending point at once (rayon across chains and terms once
/// that is costly).
pub struct InProcess<L> {
    likelihood: L,
    parallel: bool,
    /// Smoothed wall time of a round's evaluation, microseconds.
    round_micros: f64,
}

impl<L: Likelihood> InProcess<L> {
    /// Evaluates with `likelihood`.
    pub fn new(likelihood: L) -> Self {
        InProcess {
            likelihood,
            parallel: false,
            round_micros: 0.0,
        }
    }
}

impl<L: Likelihood> Evaluator for InProcess<L> {
    fn advance(
        &mut self,
        sampler: &mut Sampler,
        _stop: &AtomicBool,
    ) -> Result<Vec<Row>, McmcError> {
        let energies = self.evaluate(sampler);
        Ok(sampler.complete(&energies))
    }

    fn evaluate_points(
        &mut self,
        points: &[Vec<f64>],
        _stop: &AtomicBool,
    ) -> Result<Vec<f64>, McmcError> {
        use rayon::prelude::*;
        let likelihood = &self.likelihood;
        let n_terms = likelihood.n_job_types();
        // Terms added in term order, as a round's are.
        Ok(points
            .par_iter()
            .map(|x| (0..n_terms).map(|j| likelihood.energy(j, x)).sum())
            .collect())
    }
}

impl<L: Likelihood> InProcess<L> {
    fn evaluate(&mut self, sampler: &Sampler) -> Vec<f64> {
        let started = Instant::now();
        let energies = embedded::evaluate_round(sampler, &self.likelihood, self.parallel);
        // Smoothed, with hysteresis: one round slowed by the scheduler must not switch a cheap
        // likelihood to threads for good, where each round would pay their hand-offs.
        let micros = started.elapsed().as_secs_f64() * 1e6;
        self.round_micros = 0.9 * self.round_micros + 0.1 * micros;
        if !self.parallel && self.round_micros > 200.0 {
            self.parallel = true;
        } else if self.parallel && self.round_micros < 50.0 {
            self.parallel = false;
        }
        energies
    }
}
