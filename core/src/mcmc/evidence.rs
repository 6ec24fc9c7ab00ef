//! The evidence (marginal likelihood) of a tempered run, by stepping stones between its
//! temperatures (Xie, Lewis, Fan, Kuo & Chen 2011, "Improving marginal likelihood estimation for
//! Bayesian phylogenetic model selection", *Systematic Biology* 60(2)).
//!
//! The prior is the box `[min, max]` with uniform density, Stateline's implicit prior, so
//! `Z = ∫_box exp(−E(x)) dx / volume(box)`, where `E` is the energy the likelihood returns (its
//! negative log; constants the likelihood drops are missing from `log Z` too). With
//! `Z(β) = ∫_box exp(−β E) dx / volume`, `Z(0) = 1` and `Z(1) = Z`, and for two inverse
//! temperatures `b < a`, `Z(a) / Z(b) = E_b[exp(−(a − b) E)]`, the mean under the hotter chain's
//! target. The product of these ratios along the ladder from its hottest β up to 1 gives
//! `Z / Z(β_min)`; the last factor, `Z(β_min) / Z(0) = 1 / E_{β_min}[exp(β_min E)]`, comes from
//! the hottest chain too, which is accurate when its target is close to the prior (β_min E small
//! over the draws: a high `maxTemperature`).
//!
//! Each ratio's standard error comes from the Monte Carlo standard error of its mean (ESS-based,
//! over the stacks' chains) by the delta method; the segments' errors are added in quadrature,
//! as though the temperatures' chains were independent (swaps correlate them a little).

use serde::{Deserialize, Serialize};

use super::diagnostics;

/// An estimate of `log Z`, the log evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The estimate of `log Z`.
    pub log_z: f64,
    /// Its standard error.
    pub standard_error: f64,
    /// Each step of the ladder, hottest first: `log Z(beta_to) − log Z(beta_from)`.
    pub segments: Vec<Segment>,
}

/// One step of the ladder, estimated from the draws of the chains at `beta_draws`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// The lower inverse temperature (0 for the prior).
    pub beta_from: f64,
    /// The higher inverse temperature.
    pub beta_to: f64,
    /// `log Z(beta_to) − log Z(beta_from)`.
    pub log_ratio: f64,
    /// Its standard error.
    pub standard_error: f64,
    /// Kish's effective sample size of the importance weights as a fraction of the draws: near
    /// 1 when the two temperatures' targets overlap well, near 0 when a few draws carry the
    /// estimate (then its standard error is not to be trusted either).
    pub weight_efficiency: f64,
}

/// Estimates `log Z` from the energies drawn at each inverse temperature: `energies[t]` holds
/// one slice per stack of the chain at `betas[t]` (coldest, 1, first; every slice of one length,
/// at least 4). `None` if `betas` does not start at 1, has a single temperature (the estimate
/// would be the harmonic mean of the likelihood, whose variance is usually infinite), or the
/// draws are too few.
pub fn stepping_stone(betas: &[f64], energies: &[Vec<&[f64]>]) -> Option<Evidence> {
    if betas.first() != Some(&1.0) || betas.len() != energies.len() || betas.len() < 2 {
        return None;
    }
    let n = betas.len();
    let mut segments = Vec::with_capacity(n);
    // From the prior to the hottest chain: the reciprocal of a mean under the hottest chain.
    let hottest = betas[n - 1];
    let mut first = log_mean_exp(&energies[n - 1], hottest)?;
    first.log_ratio = -first.log_ratio;
    first.beta_to = hottest;
    segments.push(first);
    for t in (0..n - 1).rev() {
        let mut segment = log_mean_exp(&energies[t + 1], -(betas[t] - betas[t + 1]))?;
        (segment.beta_from, segment.beta_to) = (betas[t + 1], betas[t]);
        segments.push(segment);
    }
    Some(Evidence {
        log_z: segments.iter().map(|s| s.log_ratio).sum(),
        standard_error: segments
            .iter()
            .map(|s| s.standard_error.powi(2))
            .sum::<f64>()
            .sqrt(),
        segments,
    })
}

/// `log mean exp(c · E)` over the draws, with its standard error, as a segment from β = 0
/// (the caller names the temperatures).
fn log_mean_exp(chains: &[&[f64]], c: f64) -> Option<Segment> {
    let shift = chains
        .iter()
        .flat_map(|chain| chain.iter())
        .map(|e| c * e)
        .filter(|v| v.is_finite())
        .reduce(f64::max)?;
    let weights: Vec<Vec<f64>> = chains
        .iter()
        .map(|chain| chain.iter().map(|e| (c * e - shift).exp()).collect())
        .collect();
    let views: Vec<&[f64]> = weights.iter().map(Vec::as_slice).collect();
    let pooled = weights.concat();
    let mean = diagnostics::mean(&pooled);
    let mcse = diagnostics::mcse_mean(&views);
    if !(mean > 0.0 && mcse.is_finite()) {
        return None;
    }
    let sum_squares: f64 = pooled.iter().map(|w| w * w).sum();
    let n = pooled.len() as f64;
    Some(Segment {
        beta_from: 0.0,
        beta_to: 0.0,
        log_ratio: shift + mean.ln(),
        standard_error: mcse / mean,
        weight_efficiency: (n * mean).powi(2) / sum_squares / n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// Energies of exact draws from `exp(−β x²/2)` on `[-w, w]`, by rejection from the normal.
    fn tempered_draws(beta: f64, w: f64, n: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<f64> {
        let mut energies = Vec::with_capacity(n);
        while energies.len() < n {
            let x: f64 = rng.sample::<f64, _>(StandardNormal) / beta.sqrt();
            if x.abs() <= w {
                energies.push(0.5 * x * x);
            }
        }
        energies
    }

    /// `log Z` of `exp(−x²/2)` on `[-w, w]` with the uniform prior, by Simpson's rule.
    fn exact_log_z(w: f64) -> f64 {
        let n = 20_000;
        let h = 2.0 * w / n as f64;
        let sum: f64 = (0..=n)
            .map(|i| {
                let x = -w + i as f64 * h;
                let weight = if i == 0 || i == n {
                    1.0
                } else {
                    [2.0, 4.0][i % 2]
                };
                weight * (-0.5 * x * x).exp()
            })
            .sum();
        (sum * h / 3.0 / (2.0 * w)).ln()
    }

    #[test]
    fn stepping_stones_recover_the_evidence_of_exact_tempered_draws() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        // Well inside the box, and cut by it at 1 sd.
        for w in [10.0, 1.0] {
            let betas = [1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001];
            let draws: Vec<Vec<Vec<f64>>> = betas
                .iter()
                .map(|&b| {
                    (0..2)
                        .map(|_| tempered_draws(b, w, 20_000, &mut rng))
                        .collect()
                })
                .collect();
            let energies: Vec<Vec<&[f64]>> = draws
                .iter()
                .map(|stacks| stacks.iter().map(Vec::as_slice).collect())
                .collect();
            let evidence = stepping_stone(&betas, &energies).unwrap();
            let exact = exact_log_z(w);
            assert!(
                (evidence.log_z - exact).abs() < 4.0 * evidence.standard_error,
                "box ±{w}: {} ± {} but exactly {exact}",
                evidence.log_z,
                evidence.standard_error
            );
            assert!(evidence.standard_error < 0.02, "{evidence:?}");
            assert_eq!(evidence.segments.len(), betas.len());
            assert_eq!(evidence.segments[0].beta_from, 0.0);
            assert_eq!(evidence.segments.last().unwrap().beta_to, 1.0);
            assert!(evidence.segments.iter().all(|s| s.weight_efficiency > 0.2));
        }
    }

    #[test]
    fn no_estimate_without_a_cold_chain_or_draws() {
        let e = [1.0, 2.0, 3.0, 4.0];
        assert!(stepping_stone(&[0.5, 0.1], &[vec![&e[..]], vec![&e[..]]]).is_none());
        assert!(stepping_stone(&[1.0, 0.1], &[vec![&e[..2]], vec![&e[..2]]]).is_none());
        assert!(stepping_stone(&[1.0], &[vec![&e[..]]]).is_none());
        assert!(stepping_stone(&[1.0, 0.1], &[vec![&e[..]], vec![&e[..]]]).is_some());
    }
}
