//! Evaluating a sampler's rounds in this process, with rayon across chains and job types.
//!
//! The caller decides when threads pay off and owns what happens to each step's rows (writing
//! files, printing tables), so this stays free of I/O; the delegator's `mcmc::InProcess` drives
//! it with the same output a distributed run writes.

use rayon::prelude::*;

use super::likelihood::Likelihood;
use super::sampler::Sampler;

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
