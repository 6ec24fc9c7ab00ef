//! Sampler tests: determinism, checkpoint round trips, and statistics on targets with known
//! answers, with tolerances from batch-means Monte Carlo standard errors.

use super::*;
use crate::mcmc::diagnostics;

pub(super) fn settings(
    d: usize,
    n_stacks: usize,
    n_temperatures: usize,
    swaps: Swaps,
) -> SamplerSettings {
    SamplerSettings {
        min: vec![-10.0; d],
        max: vec![10.0; d],
        n_stacks,
        n_temperatures,
        swap_interval: 10,
        optimal_accept_rate: 0.24,
        optimal_swap_rate: 0.24,
        swaps,
        max_temperature: 1000.0,
        adaptation_steps: 5_000,
        initial: None,
        seed: 7,
    }
}

/// Runs `steps` steps, evaluating points in reverse chain order (the sampler must not care).
pub(super) fn run(sampler: &mut Sampler, energy: &dyn Fn(&[f64]) -> f64, steps: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    let target = sampler.step() + steps;
    sampler.set_horizon(target);
    while sampler.step() < target {
        let points: Vec<Vec<f64>> = sampler.points().map(<[f64]>::to_vec).collect();
        let bounds = sampler.settings().min.iter().zip(&sampler.settings().max);
        for (point, (lo, hi)) in points.iter().flatten().zip(bounds.cycle()) {
            assert!(
                lo <= point && point <= hi,
                "{point} outside [{lo}, {hi}] was evaluated"
            );
        }
        let mut energies = vec![0.0; points.len()];
        for i in (0..points.len()).rev() {
            energies[i] = energy(&points[i]);
        }
        rows.extend(sampler.complete(&energies));
    }
    rows
}

pub(super) fn gaussian(x: &[f64]) -> f64 {
    // Means 1, -2, 0.5; standard deviations 1, 0.5, 2.
    let mu = [1.0, -2.0, 0.5];
    let sd = [1.0, 0.5, 2.0];
    x.iter()
        .zip(mu.iter().zip(&sd))
        .map(|(x, (m, s))| 0.5 * ((x - m) / s).powi(2))
        .sum()
}

/// Mean and its Monte Carlo standard error by non-overlapping batch means.
fn mean_and_mcse(xs: &[f64]) -> (f64, f64) {
    let n_batches = 40;
    let size = xs.len() / n_batches;
    let batch_means: Vec<f64> = xs
        .chunks_exact(size)
        .map(|b| b.iter().sum::<f64>() / size as f64)
        .collect();
    let mean = batch_means.iter().sum::<f64>() / batch_means.len() as f64;
    let var = batch_means.iter().map(|m| (m - mean).powi(2)).sum::<f64>()
        / (batch_means.len() as f64 - 1.0);
    (mean, (var / batch_means.len() as f64).sqrt())
}

/// The cold chains' rows after each chain's first `burn_in`, chain after chain (rows of
/// different chains come in no particular order).
fn cold_rows(rows: &[Row], n_temperatures: usize, burn_in: u64, n_chains: usize) -> Vec<&Row> {
    (0..n_chains)
        .step_by(n_temperatures)
        .flat_map(|chain| {
            rows.iter()
                .filter(move |r| r.chain == chain)
                .skip(burn_in as usize)
        })
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_rows_and_another_seed_does_not() {
    let a = run(
        &mut Sampler::new(settings(3, 2, 4, Swaps::NonReversible)),
        &gaussian,
        300,
    );
    let b = run(
        &mut Sampler::new(settings(3, 2, 4, Swaps::NonReversible)),
        &gaussian,
        300,
    );
    assert!(a == b, "same seed, different rows");
    let mut other = settings(3, 2, 4, Swaps::NonReversible);
    other.seed = 8;
    let c = run(&mut Sampler::new(other), &gaussian, 300);
    assert!(a != c, "another seed, same rows");
}

#[test]
fn a_checkpointed_sampler_continues_exactly_as_the_original() {
    let mut original = Sampler::new(settings(3, 2, 3, Swaps::Classic));
    run(&mut original, &gaussian, 123);
    // Checkpoints are MessagePack: binary floats round-trip exactly.
    let saved = rmp_serde::to_vec_named(&original).unwrap();
    let mut restored: Sampler = rmp_serde::from_slice(&saved).unwrap();
    let expected = run(&mut original, &gaussian, 200);
    let resumed = run(&mut restored, &gaussian, 200);
    assert!(expected == resumed, "the restored sampler diverged");
}

#[test]
fn nan_and_infinite_energies_are_rejected_and_counted() {
    // Everything right of 0 is forbidden territory.
    let energy = |x: &[f64]| {
        if x[0] > 0.0 {
            f64::NAN
        } else {
            0.5 * (x[0] + 3.0).powi(2)
        }
    };
    let mut s = settings(1, 1, 1, Swaps::Classic);
    s.initial = Some(vec![-3.0]);
    let mut sampler = Sampler::new(s);
    let rows = run(&mut sampler, &energy, 2000);
    assert!(rows.iter().all(|r| r.state[0] <= 0.0));
    assert!(sampler.chain_stats(0).invalid > 0);
    assert!(sampler.chain_stats(0).invalid < sampler.chain_stats(0).proposals);
}

#[test]
fn the_cold_chains_recover_a_gaussians_means_and_standard_deviations() {
    let s = settings(3, 2, 4, Swaps::NonReversible);
    let n_temps = s.n_temperatures;
    let mut sampler = Sampler::new(s);
    let n_chains = sampler.n_chains();
    let burn_in = 5_000;
    let rows = run(&mut sampler, &gaussian, burn_in + 40_000);
    let cold = cold_rows(&rows, n_temps, burn_in, n_chains);
    let mu = [1.0, -2.0, 0.5];
    let sd = [1.0, 0.5, 2.0];
    for dim in 0..3 {
        // One series per stack's cold chain, as the run's summary sees them.
        let stacks: Vec<Vec<f64>> = (0..2)
            .map(|s| {
                cold.iter()
                    .filter(|r| r.chain == s * n_temps)
                    .map(|r| r.state[dim])
                    .collect()
            })
            .collect();
        let views: Vec<&[f64]> = stacks.iter().map(Vec::as_slice).collect();
        // The tolerance is the Monte Carlo error from the reported ESS: |error| < 4.5 MCSE
        // fails by chance with probability below 1e-5 per check.
        let mean = diagnostics::mean(&stacks.concat());
        let mcse = diagnostics::mcse_mean(&views);
        assert!(
            (mean - mu[dim]).abs() < 4.5 * mcse,
            "dim {dim}: mean {mean}, mcse {mcse}"
        );
        let squares: Vec<Vec<f64>> = stacks
            .iter()
            .map(|xs| xs.iter().map(|x| (x - mu[dim]).powi(2)).collect())
            .collect();
        let square_views: Vec<&[f64]> = squares.iter().map(Vec::as_slice).collect();
        let var = diagnostics::mean(&squares.concat());
        let var_mcse = diagnostics::mcse_mean(&square_views);
        let expected = sd[dim] * sd[dim];
        assert!(
            (var - expected).abs() < 4.5 * var_mcse,
            "dim {dim}: var {var} ± {var_mcse}"
        );
        assert!(
            diagnostics::rank_normalized_split_rhat(&views) < 1.05,
            "dim {dim} not converged"
        );
    }
    let stats = sampler.chain_stats(0);
    let rate = stats.accepted as f64 / stats.proposals as f64;
    assert!(
        (0.1..0.5).contains(&rate),
        "cold acceptance {rate} far from the 0.24 target"
    );
}

/// Two well-separated modes in 4 dimensions, at x0 = -5 and x0 = +5 (other coordinates 0),
/// with weights 0.3 and 0.7: a barrier of about 50 nats, and in 4 dimensions a random jump
/// practically never lands in the other mode.
fn bimodal(x: &[f64]) -> f64 {
    let sd: f64 = 0.5;
    let rest: f64 = x[1..].iter().map(|v| 0.5 * (v / sd).powi(2)).sum();
    let left = (0.3f64).ln() - 0.5 * ((x[0] + 5.0) / sd).powi(2);
    let right = (0.7f64).ln() - 0.5 * ((x[0] - 5.0) / sd).powi(2);
    // log-sum-exp, so that far from both modes the energy stays finite.
    let high = left.max(right);
    rest - (high + ((left - high).exp() + (right - high).exp()).ln())
}

fn mode_weight(n_temperatures: usize, steps: u64) -> (f64, f64) {
    let mut s = settings(4, 2, n_temperatures, Swaps::NonReversible);
    s.initial = Some(vec![-5.0, 0.0, 0.0, 0.0]);
    s.max_temperature = 200.0;
    let mut sampler = Sampler::new(s);
    let n_chains = sampler.n_chains();
    let burn_in = 2_000;
    let rows = run(&mut sampler, &bimodal, burn_in + steps);
    let right: Vec<f64> = cold_rows(&rows, n_temperatures, burn_in, n_chains)
        .iter()
        .map(|r| if r.state[0] > 0.0 { 1.0 } else { 0.0 })
        .collect();
    mean_and_mcse(&right)
}

#[test]
fn tempering_recovers_the_weights_of_separated_modes_where_a_single_chain_cannot() {
    let (weight, mcse) = mode_weight(8, 40_000);
    assert!(
        (weight - 0.7).abs() < 4.5 * mcse.max(1e-3),
        "tempered: {weight} ± {mcse}"
    );
    // Without tempering, chains started in the left mode never cross a barrier of ~50 nats.
    let (stuck, _) = mode_weight(1, 20_000);
    assert!(
        stuck < 0.01,
        "untempered chain found the other mode: {stuck}"
    );
}

/// Rows sorted by chain, keeping each chain's step order: the files a run writes.
pub(super) fn per_chain(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by_key(|r| r.chain);
    rows
}

#[test]
fn speculating_changes_nothing_but_the_rounds() {
    for swaps in [Swaps::Classic, Swaps::NonReversible] {
        let reference = per_chain(run(
            &mut Sampler::new(settings(3, 2, 4, swaps)),
            &gaussian,
            400,
        ));
        for speculation in [2, 3, 10, 64] {
            let mut sampler = Sampler::new(settings(3, 2, 4, swaps));
            sampler.set_speculation(speculation);
            sampler.set_horizon(400);
            let mut rounds = 0;
            let mut rows = Vec::new();
            while sampler.step() < 400 {
                let points: Vec<Vec<f64>> = sampler.points().map(<[f64]>::to_vec).collect();
                let energies: Vec<f64> = points.iter().map(|x| gaussian(x)).collect();
                rows.extend(sampler.complete(&energies));
                rounds += 1;
            }
            assert!(
                per_chain(rows) == reference,
                "speculation {speculation} changed the rows ({swaps:?})"
            );
            assert!(
                rounds < 400,
                "speculation {speculation} saved no round: {rounds}"
            );
        }
    }
}

mod bounds;
mod evidence;
mod gaussian;

/// Rows of a run of `steps` in two legs (horizon `first`, then `steps`), evaluating with
/// `speculation` points per chain, checkpointing and restoring the sampler at the first boundary
/// after `checkpoint_after` steps if asked.
fn legs(
    s: &SamplerSettings,
    speculation: usize,
    first: u64,
    steps: u64,
    checkpoint_after: Option<u64>,
) -> Vec<Row> {
    let energy = |x: &[f64]| gaussian(x);
    let mut sampler = Sampler::new(s.clone());
    sampler.set_speculation(speculation);
    let mut rows = Vec::new();
    let mut restored = checkpoint_after.is_none();
    for horizon in [first, steps] {
        sampler.set_horizon(horizon);
        while sampler.step() < horizon {
            let points: Vec<Vec<f64>> = sampler.points().map(<[f64]>::to_vec).collect();
            let energies: Vec<f64> = points.iter().map(|x| energy(x)).collect();
            rows.extend(sampler.complete(&energies));
            if !restored && sampler.at_boundary() && sampler.step() >= checkpoint_after.unwrap() {
                let saved = rmp_serde::to_vec_named(&sampler).unwrap();
                sampler = rmp_serde::from_slice(&saved).unwrap();
                sampler.set_horizon(horizon);
                restored = true;
            }
        }
    }
    per_chain(rows)
}

#[test]
fn speculation_and_checkpoints_change_nothing_across_windows_and_the_end_of_adaptation() {
    // Adaptation ends at step 703, off the 7-step swap grid, after covariance windows that end
    // at 130, 180, 280 and 633; the first leg stops at 500, off every grid; the target is cut
    // by the box so that trees hold proposals outside it.
    let mut s = settings(3, 2, 3, Swaps::NonReversible);
    s.adaptation_steps = 703;
    s.swap_interval = 7;
    s.min = vec![0.5, -2.2, -10.0];
    let reference = legs(&s, 1, 500, 1111, None);
    assert_eq!(reference.len(), 1111 * 6);
    for swaps in [Swaps::NonReversible, Swaps::Classic] {
        s.swaps = swaps;
        let reference = legs(&s, 1, 500, 1111, None);
        for speculation in [2, 7, 64] {
            assert!(
                legs(&s, speculation, 500, 1111, None) == reference,
                "speculation {speculation} changed the rows ({swaps:?})"
            );
        }
        for checkpoint in [140, 690, 800] {
            assert!(
                legs(&s, 3, 500, 1111, Some(checkpoint)) == reference,
                "a checkpoint after step {checkpoint} changed the rows ({swaps:?})"
            );
        }
    }
}
mod independence;
