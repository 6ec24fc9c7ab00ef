//! Evaluating a sampler's rounds in this process, with rayon across chains and job types.
//!
//! The caller decides when threads pay off and owns what happens to each step's rows (writing
//! files, printing tables), so this stays free of I/O; `ganger_mcmc::InProcess` drives
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
        // Every (chain, term) pair is its own task; each chain's terms are then added in term
        // order, the same order as the serial path and the distributed driver.
        let terms: Vec<f64> = (0..points.len() * n_job_types)
            .into_par_iter()
            .map(|i| likelihood.energy(i % n_job_types, points[i / n_job_types]))
            .collect();
        terms
            .chunks(n_job_types.max(1))
            .map(|t| t.iter().sum())
            .collect()
    } else {
        points.iter().map(|x| energy(x)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcmc::likelihood::Builtin;
    use crate::mcmc::sampler::{SamplerSettings, Swaps};

    #[test]
    fn threads_give_bitwise_the_same_energies_as_one() {
        let sampler = Sampler::new(SamplerSettings {
            min: vec![-3.0; 5],
            max: vec![3.0; 5],
            n_stacks: 3,
            n_temperatures: 4,
            swap_interval: 10,
            optimal_accept_rate: 0.24,
            optimal_swap_rate: 0.24,
            swaps: Swaps::Classic,
            max_temperature: 100.0,
            adaptation_steps: 100,
            initial: None,
            seed: 3,
        });
        let likelihood = Builtin::Rosenbrock.split(7);
        let serial = evaluate_round(&sampler, &likelihood, false);
        let parallel = evaluate_round(&sampler, &likelihood, true);
        assert_eq!(serial.len(), 12);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&serial), bits(&parallel));
    }
}
