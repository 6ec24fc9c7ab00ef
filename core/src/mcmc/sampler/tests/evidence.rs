//! The evidence of tempered runs against closed forms, and the ladder's diagnosis.

use super::{run, settings};
use crate::mcmc::evidence::{prior_points, stepping_stone};
use crate::mcmc::sampler::{Row, Sampler, Swaps};
use crate::mcmc::tempering;

/// `log Z` of `exp(−Σ ((x − μ) / σ)² / 2)` on a box with the uniform prior: a product of 1-D
/// integrals, each by Simpson's rule.
fn exact_log_z(mu: &[f64], sd: &[f64], min: &[f64], max: &[f64]) -> f64 {
    let n = 20_000;
    (0..mu.len())
        .map(|i| {
            let h = (max[i] - min[i]) / n as f64;
            let sum: f64 = (0..=n)
                .map(|k| {
                    let x = min[i] + k as f64 * h;
                    let weight = if k == 0 || k == n {
                        1.0
                    } else {
                        [2.0, 4.0][k % 2]
                    };
                    weight * (-0.5 * ((x - mu[i]) / sd[i]).powi(2)).exp()
                })
                .sum();
            (sum * h / 3.0 / (max[i] - min[i])).ln()
        })
        .sum()
}

/// Energies of each temperature's chains after `burn_in` steps: `[tier][stack]`.
fn energies(rows: &[Row], n_stacks: usize, n_temps: usize, burn_in: usize) -> Vec<Vec<Vec<f64>>> {
    (0..n_temps)
        .map(|t| {
            (0..n_stacks)
                .map(|s| {
                    rows.iter()
                        .filter(|r| r.chain == s * n_temps + t)
                        .skip(burn_in)
                        .map(|r| r.energy)
                        .collect()
                })
                .collect()
        })
        .collect()
}

#[test]
fn the_evidence_of_a_gaussian_inside_the_box_and_cut_by_it_is_recovered() {
    let mu = [1.0, -2.0, 0.5];
    let sd = [1.0, 0.5, 2.0];
    let energy =
        |x: &[f64]| -> f64 { (0..3).map(|i| 0.5 * ((x[i] - mu[i]) / sd[i]).powi(2)).sum() };
    let boxes = [
        (vec![-10.0; 3], vec![10.0; 3]),
        (vec![1.0, -10.0, -1.0], vec![10.0, -2.0, 10.0]),
    ];
    for (min, max) in boxes {
        let (n_stacks, n_temps) = (2, 10);
        let mut s = settings(3, n_stacks, n_temps, Swaps::NonReversible);
        (s.min, s.max) = (min.clone(), max.clone());
        s.max_temperature = 1e5;
        s.adaptation_steps = 3_000;
        let mut sampler = Sampler::new(s);
        let rows = run(&mut sampler, &energy, 3_000 + 15_000);
        let draws = energies(&rows, n_stacks, n_temps, 3_000);
        let views: Vec<Vec<&[f64]>> = draws
            .iter()
            .map(|stacks| stacks.iter().map(Vec::as_slice).collect())
            .collect();
        let prior: Vec<f64> = prior_points(&min, &max, 2048, 3)
            .iter()
            .map(|x| energy(x))
            .collect();
        let evidence = stepping_stone(sampler.betas(), &views, &prior).unwrap();
        let exact = exact_log_z(&mu, &sd, &min, &max);
        assert!(
            (evidence.log_z - exact).abs() < 4.0 * evidence.standard_error,
            "box {min:?}..{max:?}: log Z {} ± {}, exactly {exact}",
            evidence.log_z,
            evidence.standard_error
        );
        assert!(evidence.standard_error < 0.1, "{evidence:?}");

        // A ladder this dense swaps well, and the two estimates of its barrier agree.
        let rates = sampler.fixed_ladder_swaps().rates();
        let pooled: Vec<Vec<f64>> = draws.iter().map(|stacks| stacks.concat()).collect();
        let pooled: Vec<&[f64]> = pooled.iter().map(Vec::as_slice).collect();
        let report = tempering::diagnose(sampler.betas(), &rates, Some(&pooled));
        assert!(report.warning.is_none(), "{report:?}");
        let from_energies = report.barrier_from_energies.unwrap();
        assert!(
            (report.barrier_from_swaps - from_energies).abs() < 0.25 * from_energies,
            "{report:?}"
        );
    }
}
