//! Targets truncated by the bounds and proposals adapted to scales over two orders of
//! magnitude: the sampler's answers against exact ones, within 4 Monte Carlo standard errors.

use super::gaussian::{moments_by_quadrature, Gaussian};
use super::{run, settings};
use crate::mcmc::diagnostics;
use crate::mcmc::sampler::{Row, Sampler, SamplerSettings, Swaps};

/// Each stack's cold-chain values of `f(state)` after `burn_in` steps, one series per stack.
fn cold_series(
    rows: &[Row],
    settings: &SamplerSettings,
    burn_in: usize,
    f: impl Fn(&[f64]) -> f64,
) -> Vec<Vec<f64>> {
    (0..settings.n_stacks)
        .map(|s| {
            rows.iter()
                .filter(|r| r.chain == s * settings.n_temperatures)
                .skip(burn_in)
                .map(|r| f(&r.state))
                .collect()
        })
        .collect()
}

/// Checks that the mean of `f` over the cold chains is `expected` within 4 standard errors:
/// the chains' MCSE (from their ESS) and the reference's own, `reference_se`.
fn assert_expectation(series: &[Vec<f64>], expected: f64, reference_se: f64, what: &str) {
    let views: Vec<&[f64]> = series.iter().map(Vec::as_slice).collect();
    let estimate = diagnostics::mean(&series.concat());
    let mcse = diagnostics::mcse_mean(&views);
    let tolerance = 4.0 * (mcse * mcse + reference_se * reference_se).sqrt();
    assert!(
        (estimate - expected).abs() < tolerance,
        "{what}: {estimate} but exactly {expected} (MCSE {mcse}, z = {:.1})",
        (estimate - expected) / tolerance * 4.0
    );
}

#[test]
fn a_correlated_gaussian_pressed_against_two_walls_is_sampled_without_bias() {
    // The case reflection got wrong by 34 standard errors: sd 1, correlation 0.95, truncated
    // to [-0.5, 10]², so most of the mass sits in the corner at (-0.5, -0.5).
    let target = Gaussian::ar1(vec![0.0, 0.0], &[1.0, 1.0], 0.95);
    let exact = moments_by_quadrature(|x| target.energy(x), -0.5, 10.0, 600);
    let mut s = settings(2, 4, 1, Swaps::NonReversible);
    (s.min, s.max) = (vec![-0.5; 2], vec![10.0; 2]);
    s.adaptation_steps = 4_000;
    let mut sampler = Sampler::new(s.clone());
    let rows = run(&mut sampler, &|x| target.energy(x), 4_000 + 30_000);
    for (dim, (mean, sd)) in exact.into_iter().enumerate() {
        let values = cold_series(&rows, &s, 4_000, |x| x[dim]);
        assert_expectation(&values, mean, 0.0, &format!("mean of x{dim}"));
        let squares = cold_series(&rows, &s, 4_000, |x| (x[dim] - mean).powi(2));
        assert_expectation(&squares, sd * sd, 0.0, &format!("variance of x{dim}"));
    }
    let out = sampler.chain_stats(0).out_of_bounds;
    assert!(
        out > 1_000,
        "the walls were hardly met: {out} proposals outside"
    );
}

#[test]
fn a_tempered_5d_gaussian_cut_by_walls_on_both_sides_is_sampled_without_bias() {
    let target = Gaussian::ar1(
        vec![0.0, 0.5, -1.0, 2.0, 0.0],
        &[1.0, 0.5, 2.0, 1.0, 0.3],
        0.7,
    );
    let min = vec![-0.3, 0.0, -10.0, -10.0, -0.2];
    let max = vec![10.0, 10.0, 0.0, 1.5, 10.0];
    let reference = target.truncated_draws(&min, &max, 200_000, 11);
    let mut s = settings(5, 3, 3, Swaps::NonReversible);
    (s.min, s.max) = (min, max);
    s.max_temperature = 20.0;
    s.adaptation_steps = 4_000;
    let mut sampler = Sampler::new(s.clone());
    let rows = run(&mut sampler, &|x| target.energy(x), 4_000 + 30_000);
    for dim in 0..5 {
        let column: Vec<f64> = reference.iter().map(|x| x[dim]).collect();
        let (mean, sd) = (diagnostics::mean(&column), diagnostics::sd(&column));
        let n = column.len() as f64;
        let values = cold_series(&rows, &s, 4_000, |x| x[dim]);
        assert_expectation(&values, mean, sd / n.sqrt(), &format!("mean of x{dim}"));
        let squares: Vec<f64> = column.iter().map(|x| (x - mean).powi(2)).collect();
        let variance = diagnostics::mean(&squares);
        let squares_se = diagnostics::sd(&squares) / n.sqrt();
        let chains = cold_series(&rows, &s, 4_000, |x| (x[dim] - mean).powi(2));
        assert_expectation(
            &chains,
            variance,
            squares_se,
            &format!("variance of x{dim}"),
        );
    }
}

#[test]
fn proposals_adapt_to_scales_over_two_orders_of_magnitude_and_forget_the_start() {
    // Standard deviations from 0.1 to 10, correlation 0.9^|i-j|, chains started uniformly in
    // bounds 5 sd wide for the widest coordinate and 500 sd for the narrowest; 10 dimensions on
    // 4 stacks, and 20 on a single chain, whose windows hold the fewest independent draws.
    for (d, n_stacks, steps) in [(10, 4, 20_000), (20, 1, 40_000)] {
        let sd: Vec<f64> = (0..d)
            .map(|i| 10f64.powf(-1.0 + 2.0 * i as f64 / (d - 1) as f64))
            .collect();
        let target = Gaussian::ar1(vec![0.0; d], &sd, 0.9);
        let mut s = settings(d, n_stacks, 1, Swaps::NonReversible);
        (s.min, s.max) = (vec![-50.0; d], vec![50.0; d]);
        s.adaptation_steps = steps;
        let mut sampler = Sampler::new(s);
        run(&mut sampler, &|x| target.energy(x), steps);
        let mut ratios = target.relative_eigenvalues(sampler.proposal_covariance(0));
        ratios.sort_by(f64::total_cmp);
        assert!(
            ratios[0] > 1.0 / 1.5 && ratios[d - 1] < 1.5,
            "{d}-D: the proposal covariance is off the target's by factors {ratios:?}"
        );
    }
}
