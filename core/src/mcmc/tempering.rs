//! How well a temperature ladder works, and what would make it work: the global communication
//! barrier Λ of Syed, Bouchard-Côté, Deligiannidis & Doucet (2021), "Non-reversible parallel
//! tempering: a scalable highly parallel MCMC scheme", *JRSS B* 84(2).
//!
//! Λ measures how hard it is for a state to travel from the hottest temperature to the coldest.
//! Estimated by the sum of the adjacent pairs' swap rejection rates, it is accurate while those
//! rates are moderate, but it cannot exceed `nTemperatures − 1`: with rates near 0 the ladder
//! is too sparse for the rates to say how far apart the temperatures are. The local barrier
//! `λ(β) = ½ E_β|E₁ − E₂|` can also be estimated from the energies drawn at each temperature,
//! `λ(β) ≈ sd_β(E) / √π` when the energy is roughly Gaussian, and integrated over the ladder,
//! between and across the temperatures (see [`barrier_from_energies`]), which gives Λ however
//! sparse the ladder is. Non-reversible tempering needs about `2Λ + 1`
//! temperatures; a round trip then takes about `2 + 2Λ` swap attempts.

use serde::{Deserialize, Serialize};

/// Below this swap acceptance rate, a pair of neighbours barely exchanges states.
pub const LOW_SWAP_RATE: f64 = 0.05;

/// A ladder's diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LadderReport {
    /// Inverse temperatures, coldest first.
    pub betas: Vec<f64>,
    /// Swap acceptance rate of each adjacent pair, coldest pair first (`None`: never tried).
    pub swap_rates: Vec<Option<f64>>,
    /// Λ from the swap rejection rates (a lower bound when rates are near 0).
    pub barrier_from_swaps: f64,
    /// Λ from the energies' spread at each temperature, when known.
    pub barrier_from_energies: Option<f64>,
    /// The temperatures the ladder would need: `2Λ + 1` with the larger estimate of Λ.
    pub suggested_temperatures: usize,
    /// What is wrong with the ladder, in words, if anything.
    pub warning: Option<String>,
}

/// The global communication barrier from the adjacent pairs' swap acceptance rates (pairs
/// never tried count as rejecting half the time).
pub fn barrier_from_swap_rates(rates: &[Option<f64>]) -> f64 {
    rates.iter().map(|r| 1.0 - r.unwrap_or(0.5)).sum()
}

/// Grid points per e-fold of β at which the local barrier is estimated between temperatures.
const GRID_PER_E_FOLD: f64 = 4.0;

/// Below this share of effective draws, reweighted draws do not estimate a temperature's
/// energy spread.
const MIN_WEIGHT_EFFICIENCY: f64 = 0.05;

/// The global communication barrier between the ladder's hottest and coldest temperature from
/// the energies drawn at each (`energies[t]` at `betas[t]`, coldest first).
///
/// The local barrier `λ(β) = sd_β(E) / √π` is estimated on a grid of β between each pair of
/// neighbours by reweighting the draws of whichever neighbour's importance weights are the more
/// even (weights `exp(−(β − β_t) E)`), and `β λ(β)` is integrated along log β by the trapezoidal
/// rule; where neither neighbour's draws reach a β, `β λ(β)` is interpolated as a power of β.
/// So a ladder too sparse for its swap rates to say anything still gets an estimate. A few
/// thousand draws per temperature are plenty.
pub fn barrier_from_energies(betas: &[f64], energies: &[&[f64]]) -> f64 {
    let mut total = 0.0;
    for t in 0..betas.len().saturating_sub(1) {
        let (high, low) = (betas[t], betas[t + 1]);
        let span = (high / low).ln();
        let points = ((span * GRID_PER_E_FOLD).ceil() as usize).clamp(2, 1000);
        let density = |j: usize| -> Option<f64> {
            let beta = low * (span * j as f64 / points as f64).exp();
            let from_cold = reweighted_sd(beta, high, energies[t]);
            let from_hot = reweighted_sd(beta, low, energies[t + 1]);
            let (sd, efficiency) = if from_cold.1 >= from_hot.1 {
                from_cold
            } else {
                from_hot
            };
            (efficiency >= MIN_WEIGHT_EFFICIENCY && sd > 0.0)
                .then(|| beta * sd / std::f64::consts::PI.sqrt())
        };
        let values = fill_gaps((0..=points).map(density).collect());
        let step = span / points as f64;
        total += step * values.windows(2).map(|w| 0.5 * (w[0] + w[1])).sum::<f64>();
    }
    total
}

/// Fills the grid points where neither neighbour's draws reach with the power law of β through
/// the nearest points that were estimated (a straight line in log-log): exact where `β λ(β)`
/// is a power of β, as it is for a Gaussian target. The ends are always estimated.
fn fill_gaps(values: Vec<Option<f64>>) -> Vec<f64> {
    let known: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(j, v)| v.map(|v| (j, v.ln())))
        .collect();
    (0..values.len())
        .map(|j| match values[j] {
            Some(v) => v,
            None => {
                let after = known.iter().position(|&(k, _)| k > j);
                match after {
                    Some(0) => known[0].1.exp(),
                    None => known.last().map_or(0.0, |&(_, v)| v.exp()),
                    Some(i) => {
                        let ((a, va), (b, vb)) = (known[i - 1], known[i]);
                        let f = (j - a) as f64 / (b - a) as f64;
                        (va + f * (vb - va)).exp()
                    }
                }
            }
        })
        .collect()
}

/// The standard deviation of the energy at `beta` from draws at `source`, by importance
/// weights, and the weights' efficiency (Kish's ESS over the number of draws; 0 if none).
fn reweighted_sd(beta: f64, source: f64, energies: &[f64]) -> (f64, f64) {
    let shift = energies
        .iter()
        .map(|e| -(beta - source) * e)
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    if !shift.is_finite() {
        return (f64::NAN, 0.0);
    }
    let (mut w_sum, mut w_squares, mut first, mut second) = (0.0, 0.0, 0.0, 0.0);
    for &e in energies.iter().filter(|e| e.is_finite()) {
        let w = (-(beta - source) * e - shift).exp();
        w_sum += w;
        w_squares += w * w;
        first += w * e;
        second += w * e * e;
    }
    let mean = first / w_sum;
    let variance = (second / w_sum - mean * mean).max(0.0);
    let efficiency = w_sum * w_sum / w_squares / energies.len() as f64;
    (variance.sqrt(), efficiency)
}

/// Diagnoses a ladder from its swap rates and, if known, energies drawn at each temperature
/// (see [`barrier_from_energies`]).
pub fn diagnose(
    betas: &[f64],
    swap_rates: &[Option<f64>],
    energies: Option<&[&[f64]]>,
) -> LadderReport {
    let from_swaps = barrier_from_swap_rates(swap_rates);
    let from_energies = energies
        .filter(|e| e.len() == betas.len() && e.iter().all(|draws| draws.len() >= 2))
        .map(|e| barrier_from_energies(betas, e))
        .filter(|b| b.is_finite());
    let barrier = from_energies.map_or(from_swaps, |e| e.max(from_swaps));
    let suggested = (2.0 * barrier).ceil() as usize + 1;
    let lowest = swap_rates
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.map(|r| (i, r)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let warning = lowest
        .filter(|(_, r)| *r < LOW_SWAP_RATE)
        .map(|(pair, rate)| {
            format!(
            "temperatures {pair} and {} swap only {:.1} % of the time, so states barely travel \
             along the ladder (communication barrier Λ ≈ {barrier:.1}): use about {suggested} \
             temperatures (nTemperatures), or a lower maxTemperature if the posterior has a \
             single mode",
            pair + 1,
            100.0 * rate
        )
        });
    LadderReport {
        betas: betas.to_vec(),
        swap_rates: swap_rates.to_vec(),
        barrier_from_swaps: from_swaps,
        barrier_from_energies: from_energies,
        suggested_temperatures: suggested,
        warning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Gamma};
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// Energies of exact draws at `beta` from a d-dimensional standard Gaussian: Gamma(d/2, 1/β).
    fn gaussian_energies(d: f64, beta: f64, n: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<f64> {
        let gamma = Gamma::new(d / 2.0, 1.0 / beta).unwrap();
        (0..n).map(|_| gamma.sample(rng)).collect()
    }

    /// For a d-dimensional standard Gaussian the energy at β has sd √(d/2) / β, so
    /// Λ = √(d / 2π) · ln(β_max / β_min), however the ladder is spaced.
    #[test]
    fn the_energy_estimate_recovers_a_gaussians_barrier_from_a_sparse_ladder() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let d = 10.0;
        for betas in [vec![1.0, 0.1, 0.01, 0.001], vec![1.0, 0.5, 0.001]] {
            let draws: Vec<Vec<f64>> = betas
                .iter()
                .map(|&b| gaussian_energies(d, b, 4000, &mut rng))
                .collect();
            let views: Vec<&[f64]> = draws.iter().map(Vec::as_slice).collect();
            let exact = (d / (2.0 * std::f64::consts::PI)).sqrt() * 1000f64.ln();
            let estimate = barrier_from_energies(&betas, &views);
            assert!(
                (estimate / exact - 1.0).abs() < 0.1,
                "{estimate} vs {exact}"
            );
        }
    }

    /// Where the box flattens the hot temperatures, a ladder of two temperatures a million
    /// apart still gets the barrier a dense ladder measures, roughly.
    #[test]
    fn the_energy_estimate_sees_the_box_between_two_distant_temperatures() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
        // x ~ N(0, 1/β) truncated to [-10, 10], E = x²/2: exact draws by rejection.
        let mut draws_at = |beta: f64| -> Vec<f64> {
            let mut energies = Vec::with_capacity(4000);
            while energies.len() < 4000 {
                let x: f64 = rng.sample::<f64, _>(rand_distr::StandardNormal) / beta.sqrt();
                if x.abs() <= 10.0 {
                    energies.push(0.5 * x * x);
                }
            }
            energies
        };
        let dense: Vec<f64> = (0..=60)
            .map(|k| 10f64.powf(-6.0 * k as f64 / 60.0))
            .collect();
        let dense_draws: Vec<Vec<f64>> = dense.iter().map(|&b| draws_at(b)).collect();
        let views: Vec<&[f64]> = dense_draws.iter().map(Vec::as_slice).collect();
        let reference = barrier_from_energies(&dense, &views);
        let sparse = [1.0, 1e-6];
        let (cold, hot) = (draws_at(1.0), draws_at(1e-6));
        let estimate = barrier_from_energies(&sparse, &[&cold, &hot]);
        assert!(reference > 1.0, "{reference}");
        assert!(
            (estimate / reference - 1.0).abs() < 0.25,
            "{estimate} vs {reference}"
        );
    }

    #[test]
    fn a_sparse_ladder_is_diagnosed_with_a_suggestion() {
        // The 10-D target: 4 temperatures up to 1000, swaps accepted 0.1-0.4 %.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let betas = [1.0, 0.1, 0.01, 0.001];
        let rates = [Some(0.004), Some(0.001), Some(0.002)];
        let draws: Vec<Vec<f64>> = betas
            .iter()
            .map(|&b| gaussian_energies(10.0, b, 4000, &mut rng))
            .collect();
        let views: Vec<&[f64]> = draws.iter().map(Vec::as_slice).collect();
        let report = diagnose(&betas, &rates, Some(&views));
        assert!((report.barrier_from_swaps - 2.993).abs() < 1e-9);
        let from_energies = report.barrier_from_energies.unwrap();
        assert!((from_energies - 8.71).abs() < 0.9, "{from_energies}");
        let expected = (2.0 * from_energies).ceil() as usize + 1;
        assert_eq!(report.suggested_temperatures, expected);
        let warning = report.warning.unwrap();
        assert!(
            warning.contains("temperatures 1 and 2 swap only 0.1 %"),
            "{warning}"
        );
        assert!(
            warning.contains(&format!("about {expected} temperatures")),
            "{warning}"
        );
        // A healthy ladder: no warning, and the swap estimate when it is the only one.
        let report = diagnose(&betas, &[Some(0.6), Some(0.5), Some(0.55)], None);
        assert!(report.warning.is_none());
        assert!((report.barrier_from_swaps - 1.35).abs() < 1e-9);
        assert_eq!(report.suggested_temperatures, 4);
    }
}
