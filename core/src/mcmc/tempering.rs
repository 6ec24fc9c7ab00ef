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
//! which gives Λ however sparse the ladder is. Non-reversible tempering needs about `2Λ + 1`
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

/// The global communication barrier between the ladder's hottest and coldest temperature from
/// the standard deviation of the energy at each (`sd[t]` at `betas[t]`): `λ(β) = sd / √π`,
/// integrated between neighbours as the power law of β through their two values. That is exact
/// both where the target is a Gaussian (`λ ∝ 1/β`) and where it is flattened against the
/// bounds (`λ` constant), so the estimate does not depend on how far apart the temperatures are.
pub fn barrier_from_energy_spread(betas: &[f64], sd: &[f64]) -> f64 {
    let local = |t: usize| sd[t] / std::f64::consts::PI.sqrt();
    (0..betas.len().saturating_sub(1))
        .map(|t| {
            let (high, low) = (betas[t], betas[t + 1]);
            let (at_high, at_low) = (local(t), local(t + 1));
            let log_span = (high / low).ln();
            if at_high <= 0.0 || at_low <= 0.0 {
                // A constant energy somewhere: no barrier to speak of, take the trapezoid.
                return (high - low) * 0.5 * (at_high + at_low);
            }
            // λ(β) = at_high · (β / high)^p; its integral from low to high.
            let p = (at_low / at_high).ln() / -log_span;
            let q = p + 1.0;
            if q.abs() < 1e-9 {
                at_high * high * log_span
            } else {
                at_high * high / q * (1.0 - (low / high).powf(q))
            }
        })
        .sum()
}

/// Diagnoses a ladder from its swap rates and, if known, the energies' standard deviation at
/// each temperature.
pub fn diagnose(
    betas: &[f64],
    swap_rates: &[Option<f64>],
    energy_sd: Option<&[f64]>,
) -> LadderReport {
    let from_swaps = barrier_from_swap_rates(swap_rates);
    let from_energies = energy_sd
        .filter(|sd| sd.len() == betas.len() && sd.iter().all(|s| s.is_finite()))
        .map(|sd| barrier_from_energy_spread(betas, sd));
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

    /// For a d-dimensional standard Gaussian, the energy at β has sd √(d/2) / β, so
    /// Λ = √(d / 2π) · ln(β_max / β_min) exactly, however the ladder is spaced.
    #[test]
    fn the_energy_estimate_integrates_a_gaussians_barrier_exactly() {
        let d = 10.0;
        for betas in [vec![1.0, 0.1, 0.01, 0.001], vec![1.0, 0.5, 0.001]] {
            let sd: Vec<f64> = betas.iter().map(|b| (d / 2.0f64).sqrt() / b).collect();
            let exact = (d / (2.0 * std::f64::consts::PI)).sqrt() * 1000f64.ln();
            let estimate = barrier_from_energy_spread(&betas, &sd);
            assert!((estimate - exact).abs() < 1e-9, "{estimate} vs {exact}");
        }
    }

    #[test]
    fn a_sparse_ladder_is_diagnosed_with_a_suggestion() {
        // The 10-D target: 4 temperatures up to 1000, swaps accepted 0.1-0.4 %.
        let betas = [1.0, 0.1, 0.01, 0.001];
        let rates = [Some(0.004), Some(0.001), Some(0.002)];
        let sd: Vec<f64> = betas.iter().map(|b| 5f64.sqrt() / b).collect();
        let report = diagnose(&betas, &rates, Some(&sd));
        assert!((report.barrier_from_swaps - 2.993).abs() < 1e-9);
        assert!((report.barrier_from_energies.unwrap() - 8.71).abs() < 0.01);
        assert_eq!(report.suggested_temperatures, 19);
        let warning = report.warning.unwrap();
        assert!(
            warning.contains("temperatures 1 and 2 swap only 0.1 %"),
            "{warning}"
        );
        assert!(warning.contains("about 19 temperatures"), "{warning}");
        // A healthy ladder: no warning, and the swap estimate when it is the larger.
        let report = diagnose(&betas, &[Some(0.6), Some(0.5), Some(0.55)], None);
        assert!(report.warning.is_none());
        assert!((report.barrier_from_swaps - 1.35).abs() < 1e-9);
        assert_eq!(report.suggested_temperatures, 4);
    }
}
