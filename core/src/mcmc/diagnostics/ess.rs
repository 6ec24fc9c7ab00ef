//! Effective sample size (raw, bulk and tail) and the Monte Carlo standard error built on it.

use super::autocovariance::mean_autocovariance;
use super::descriptive::{mean, quantile_of_sorted, sd, sorted_copy, variance};
use super::draws::Draws;
use super::TAIL_PROBABILITIES;

/// Draws whose range is below this are treated as constant by [`ess`]; it is numpy's
/// `finfo(float64).resolution`, which ArviZ uses for the same test.
const CONSTANT_RANGE: f64 = 1e-15;

/// Effective sample size of the chains exactly as given (not split, not rank-normalised):
/// Geyer's initial monotone sequence estimator applied to the autocorrelation computed from the
/// autocovariance averaged across chains, as in ArviZ's `_ess` (`ess(method="identity")`).
///
/// The autocovariances come from a zero-padded radix-2 FFT, so this is O(n log n) in the chain
/// length. Constant draws give the number of draws; NaN for the inputs listed in the module
/// documentation.
pub fn ess(chains: &[&[f64]]) -> f64 {
    match Draws::new(chains) {
        Some(draws) => ess_of(&draws),
        None => f64::NAN,
    }
}

/// Bulk effective sample size: [`ess`] of the rank-normalised split chains (see
/// [`rank_normalized_split_rhat`](super::rank_normalized_split_rhat)). ArviZ's
/// `ess(method="bulk")`.
///
/// NaN for the inputs listed in the module documentation.
pub fn ess_bulk(chains: &[&[f64]]) -> f64 {
    match Draws::new(chains) {
        Some(draws) => ess_of(&draws.split().rank_normalized()),
        None => f64::NAN,
    }
}

/// Tail effective sample size: the smaller of the [`ess`] of the split chains of the indicators
/// I(x ≤ q05) and I(x ≤ q95), where q05 and q95 are the 5% and 95%
/// [`quantile`](super::quantile)s of all draws. ArviZ's `ess(method="tail")`.
///
/// NaN for the inputs listed in the module documentation.
pub fn ess_tail(chains: &[&[f64]]) -> f64 {
    match Draws::new(chains) {
        Some(draws) => tail_ess_of(&draws, &sorted_copy(&draws.values)),
        None => f64::NAN,
    }
}

/// Monte Carlo standard error of the mean: the standard deviation of all draws over the square
/// root of the [`ess`] of the raw (not rank-normalised) split chains. ArviZ's
/// `mcse(method="mean")`.
///
/// NaN for the inputs listed in the module documentation.
pub fn mcse_mean(chains: &[&[f64]]) -> f64 {
    match Draws::new(chains) {
        Some(draws) => sd(&draws.values) / ess_of(&draws.split()).sqrt(),
        None => f64::NAN,
    }
}

/// Tail ESS of `draws` (not split) given the same values sorted.
pub(super) fn tail_ess_of(draws: &Draws, sorted: &[f64]) -> f64 {
    let [low, high] = TAIL_PROBABILITIES.map(|p| {
        // ArviZ takes these from scipy's `mquantiles`, the same type-7 definition as numpy's but
        // interpolated as (1 − g)·a + g·b, which can round an ulp below a tied pair a = b and
        // so drop the tie from the indicator; numpy's form keeps ties exact, as R does.
        let q = quantile_of_sorted(sorted, p);
        ess_of(&draws.map(|x| if x <= q { 1.0 } else { 0.0 }).split())
    });
    // Python's `min(low, high)`, as ArviZ.
    if high < low {
        high
    } else {
        low
    }
}

/// ArviZ's `_ess` on a matrix of at least 2 draws per chain: Geyer's initial monotone sequence
/// estimator of the integrated autocorrelation time from the autocovariance averaged across
/// chains (Vehtari et al. 2021, section 3.2).
pub(super) fn ess_of(draws: &Draws) -> f64 {
    let total = draws.values.len() as f64;
    let (min, max) = draws
        .values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    // Constant draws carry no autocorrelation to estimate; ArviZ calls them fully efficient.
    if max - min < CONSTANT_RANGE {
        return total;
    }
    let n = draws.draws;
    let nf = n as f64;
    let acov = mean_autocovariance(draws);
    let chain_means: Vec<f64> = (0..draws.chains).map(|c| mean(draws.chain(c))).collect();
    let mean_var = acov[0] * nf / (nf - 1.0);
    let mut var_plus = mean_var * (nf - 1.0) / nf;
    if draws.chains > 1 {
        var_plus += variance(&chain_means);
    }
    let rho_at = |lag: usize| 1.0 - (mean_var - acov[lag]) / var_plus;

    let mut rho = vec![0.0; n];
    let mut rho_even = 1.0;
    rho[0] = rho_even;
    let mut rho_odd = rho_at(1);
    rho[1] = rho_odd;
    // Geyer's initial positive sequence: sum autocorrelations in (even, odd) pairs while the
    // pair sums stay positive, beyond which they are mostly noise.
    let mut t = 1;
    while t + 3 < n && rho_even + rho_odd > 0.0 {
        rho_even = rho_at(t + 1);
        rho_odd = rho_at(t + 2);
        if rho_even + rho_odd >= 0.0 {
            rho[t + 1] = rho_even;
            rho[t + 2] = rho_odd;
        }
        t += 2;
    }
    // ArviZ's `max_t = t - 2` is −1 when the loop never ran, so index by `last = max_t + 1`.
    let last = t - 1;
    // Keeping the last positive even lag improves the estimate (as ArviZ and Stan do).
    if rho_even > 0.0 {
        rho[last] = rho_even;
    }
    // Geyer's initial monotone sequence: pair sums must not increase.
    let mut t = 1;
    while t + 3 <= last {
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t] {
            rho[t + 1] = (rho[t - 1] + rho[t]) / 2.0;
            rho[t + 2] = rho[t + 1];
        }
        t += 2;
    }
    if rho.iter().any(|r| r.is_nan()) {
        return f64::NAN;
    }
    let tau = -1.0 + 2.0 * rho[..last].iter().sum::<f64>() + rho[last];
    // Antithetic chains can drive tau towards 0; ArviZ caps ESS at N·log10(N) this way (with
    // Python's `max`, which keeps a NaN `tau`).
    let floor = 1.0 / total.log10();
    let tau = if floor > tau { floor } else { tau };
    total / tau
}
