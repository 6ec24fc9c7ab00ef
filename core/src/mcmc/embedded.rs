//! Evaluating a sampler's rounds in this process, with rayon across chains and job types.
//!
//! The caller owns what happens to each step's rows (writing files, printing tables), so this
//! stays free of I/O; `ganger::mcmc` wraps it with the same output a distributed run writes.

use std::time::Instant;

use rayon::prelude::*;

use super::likelihood::Likelihood;
use super::sampler::{Row, Sampler};

/// Below this much work per round, spreading it over threads costs more than it saves.
const PARALLEL_ABOVE_MICROS: u128 = 200;

/// Evaluates one round's points: each point's energy is the sum of its job types' terms.
pub fn evaluate_round(sampler: &Sampler, likelihood: &dyn Likelihood, parallel: bool) -> Vec<f64> {
    let n_job_types = likelihood.n_job_types();
    let points: Vec<&[f64]> = sampler.points().collect();
    let energy = |x: &[f64]| -> f64 { (0..n_job_types).map(|j| likelihood.energy(j, x)).sum() };
    if parallel {
        points.par_iter().map(|x| energy(x)).collect()
    } else {
        points.iter().map(|x| energy(x)).collect()
    }
}

/// Runs the sampler until it has taken `steps` steps (counting from zero, so a resumed sampler
/// takes only the rest), handing each step's rows to `sink`. Stops early, returning false, if
/// `sink` returns false.
pub fn run(
    sampler: &mut Sampler,
    likelihood: &dyn Likelihood,
    steps: u64,
    mut sink: impl FnMut(&Sampler, Vec<Row>) -> bool,
) -> bool {
    let mut parallel = false;
    while sampler.step() < steps {
        let started = Instant::now();
        let energies = evaluate_round(sampler, likelihood, parallel);
        // Cheap likelihoods run inline; as soon as a round is worth splitting, split them all.
        parallel = parallel || started.elapsed().as_micros() > PARALLEL_ABOVE_MICROS;
        let rows = sampler.complete(&energies);
        if !rows.is_empty() && !sink(sampler, rows) {
            return false;
        }
    }
    true
}
