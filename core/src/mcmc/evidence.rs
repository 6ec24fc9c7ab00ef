//! The evidence (marginal likelihood) of a tempered run, by stepping stones between its
//! temperatures (Xie, Lewis, Fan, Kuo & Chen 2011, "Improving marginal likelihood estimation for
//! Bayesian phylogenetic model selection", *Systematic Biology* 60(2)).
//!
//! The prior is the box `[min, max]` with uniform density, Stateline's implicit prior, so
//! `Z = ∫_box exp(−E(x)) dx / volume(box)`, where `E` is the energy the likelihood returns (its
//! negative log; constants the likelihood drops are missing from `log Z` too, and where the
//! energy is infinite or NaN the likelihood is 0). With `Z(β) = ∫_box exp(−β E) dx / volume`,
//! `Z(0) = 1` and `Z(1) = Z`, and for two inverse temperatures `b < a`,
//! `Z(a) / Z(b) = E_b[exp(−(a − b) E)]`, the mean under the hotter target. The first stone,
//! from the prior to the hottest chain, is a mean over independent draws from the prior itself
//! (uniform in the box, evaluated for the purpose: [`prior_points`]); its weights lie in
//! `[0, 1]`, so it stays exact and finite-variance even where the energy blows up, which the
//! reciprocal mean under the hottest chain would not. The others use the chains' draws.
//!
//! Each ratio's standard error comes from the Monte Carlo standard error of its mean (ESS-based,
//! over the stacks' chains; plain for the independent prior draws) by the delta method; the
//! segments' errors are added in quadrature, as though the temperatures' chains were
//! independent (swaps correlate them a little).

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

/// Estimates `log Z` from the energies drawn at each inverse temperature, `energies[t]` holding
/// one slice per stack of the chain at `betas[t]` (coldest, 1, first; every slice of one length,
/// at least 4), and the energies of independent draws from the prior, `prior` (at least 2).
/// `None` if `betas` does not start at 1 or the draws are too few.
pub fn stepping_stone(betas: &[f64], energies: &[Vec<&[f64]>], prior: &[f64]) -> Option<Evidence> {
    if betas.first() != Some(&1.0) || betas.len() != energies.len() {
        return None;
    }
    let n = betas.len();
    let mut segments = Vec::with_capacity(n);
    let mut first = prior_segment(prior, betas[n - 1])?;
    first.beta_to = betas[n - 1];
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

/// `n` points drawn uniformly in the box `[min, max]` from a stream of their own (seeded by
/// `seed`, 2¹⁹² draws away from every stream the sampler uses), for the first stepping stone.
pub fn prior_points(min: &[f64], max: &[f64], n: usize, seed: u64) -> Vec<Vec<f64>> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    rng.long_jump();
    (0..n)
        .map(|_| {
            min.iter()
                .zip(max)
                .map(|(&lo, &hi)| rng.random_range(lo..hi))
                .collect()
        })
        .collect()
}

/// `log Z(beta) − log Z(0)` from independent prior draws: `log mean exp(−beta E)`, with the
/// plain standard error of a mean of independent weights.
fn prior_segment(prior: &[f64], beta: f64) -> Option<Segment> {
    let exponents: Vec<f64> = prior
        .iter()
        .map(|&e| {
            if e.is_finite() {
                -beta * e
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect();
    let shift = exponents
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .reduce(f64::max)?;
    let weights: Vec<f64> = exponents.iter().map(|v| (v - shift).exp()).collect();
    let n = weights.len() as f64;
    let mean = diagnostics::mean(&weights);
    let standard_error = diagnostics::sd(&weights) / n.sqrt() / mean;
    if !(mean > 0.0 && standard_error.is_finite()) {
        return None;
    }
    let sum_squares: f64 = weights.iter().map(|w| w * w).sum();
    Some(Segment {
        beta_from: 0.0,
        beta_to: beta,
        log_ratio: shift + mean.ln(),
        standard_error,
        weight_efficiency: (n * mean).powi(2) / sum_squares / n,
    })
}

/// `log mean exp(c · E)` over the chains' draws (c < 0), with its standard error, as a segment
/// whose temperatures the caller fills in.
fn log_mean_exp(chains: &[&[f64]], c: f64) -> Option<Segment> {
    let shift = chains
        .iter()
        .flat_map(|chain| chain.iter())
        .map(|e| c * e)
        .filter(|v| v.is_finite())
        .reduce(f64::max)?;
    // A non-finite energy is an impossible state: weight 0 (c is negative here).
    let weights: Vec<Vec<f64>> = chains
        .iter()
        .map(|chain| {
            chain
                .iter()
                .map(|e| {
                    if e.is_finite() {
                        (c * e - shift).exp()
                    } else {
                        0.0
                    }
                })
                .collect()
        })
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

    /// Energies of exact draws from `exp(−β x²/2)` on `[lo, hi]`, by rejection from the
    /// normal; and where `x > cut`, the energy is infinite (the state impossible).
    struct Target {
        lo: f64,
        hi: f64,
        cut: f64,
    }

    impl Target {
        fn energy(&self, x: f64) -> f64 {
            if x > self.cut {
                f64::INFINITY
            } else {
                0.5 * x * x
            }
        }

        fn tempered(&self, beta: f64, n: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<f64> {
            let mut energies = Vec::with_capacity(n);
            while energies.len() < n {
                let x: f64 = rng.sample::<f64, _>(StandardNormal) / beta.sqrt();
                if self.lo <= x && x <= self.hi.min(self.cut) {
                    energies.push(self.energy(x));
                }
            }
            energies
        }

        /// `log Z` with the uniform prior on `[lo, hi]`, by Simpson's rule.
        fn exact_log_z(&self) -> f64 {
            let n = 20_000;
            let top = self.hi.min(self.cut);
            let h = (top - self.lo) / n as f64;
            let sum: f64 = (0..=n)
                .map(|i| {
                    let x = self.lo + i as f64 * h;
                    let weight = if i == 0 || i == n {
                        1.0
                    } else {
                        [2.0, 4.0][i % 2]
                    };
                    weight * (-0.5 * x * x).exp()
                })
                .sum();
            (sum * h / 3.0 / (self.hi - self.lo)).ln()
        }
    }

    #[test]
    fn stepping_stones_recover_the_evidence_of_exact_tempered_draws() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let targets = [
            // Well inside the box, cut by it at 1 sd, and impossible on half of it.
            Target {
                lo: -10.0,
                hi: 10.0,
                cut: f64::INFINITY,
            },
            Target {
                lo: -1.0,
                hi: 1.0,
                cut: f64::INFINITY,
            },
            Target {
                lo: -10.0,
                hi: 10.0,
                cut: 0.0,
            },
        ];
        for target in targets {
            let betas = [1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001];
            let draws: Vec<Vec<Vec<f64>>> = betas
                .iter()
                .map(|&b| {
                    (0..2)
                        .map(|_| target.tempered(b, 20_000, &mut rng))
                        .collect()
                })
                .collect();
            let energies: Vec<Vec<&[f64]>> = draws
                .iter()
                .map(|stacks| stacks.iter().map(Vec::as_slice).collect())
                .collect();
            let prior: Vec<f64> = prior_points(&[target.lo], &[target.hi], 4096, 9)
                .iter()
                .map(|x| target.energy(x[0]))
                .collect();
            let evidence = stepping_stone(&betas, &energies, &prior).unwrap();
            let exact = target.exact_log_z();
            assert!(
                (evidence.log_z - exact).abs() < 4.0 * evidence.standard_error,
                "box [{}, {}] cut at {}: {} ± {} but exactly {exact}",
                target.lo,
                target.hi,
                target.cut,
                evidence.log_z,
                evidence.standard_error
            );
            assert!(evidence.standard_error < 0.02, "{evidence:?}");
            assert_eq!(evidence.segments.len(), betas.len());
            assert_eq!(evidence.segments[0].beta_from, 0.0);
            assert_eq!(evidence.segments.last().unwrap().beta_to, 1.0);
            assert!(evidence.segments[1..]
                .iter()
                .all(|s| s.weight_efficiency > 0.2));
        }
    }

    #[test]
    fn prior_points_fill_the_box_from_a_stream_of_their_own() {
        let points = prior_points(&[-1.0, 10.0], &[1.0, 20.0], 1000, 42);
        assert_eq!(points, prior_points(&[-1.0, 10.0], &[1.0, 20.0], 1000, 42));
        assert_ne!(points, prior_points(&[-1.0, 10.0], &[1.0, 20.0], 1000, 43));
        assert!(points
            .iter()
            .all(|x| (-1.0..1.0).contains(&x[0]) && (10.0..20.0).contains(&x[1])));
        let mean = points.iter().map(|x| x[1]).sum::<f64>() / 1000.0;
        // Uniform on [10, 20]: sd 2.89, so the mean of 1000 is within 0.37 of 15 at 4 sd.
        assert!((mean - 15.0).abs() < 0.37, "{mean}");
    }

    #[test]
    fn no_estimate_without_a_cold_chain_or_draws() {
        let e = [1.0, 2.0, 3.0, 4.0];
        let prior = [1.0, 2.0, 3.0];
        assert!(stepping_stone(&[0.5, 0.1], &[vec![&e[..]], vec![&e[..]]], &prior).is_none());
        assert!(stepping_stone(&[1.0, 0.1], &[vec![&e[..2]], vec![&e[..2]]], &prior).is_none());
        assert!(stepping_stone(&[1.0, 0.1], &[vec![&e[..]], vec![&e[..]]], &[]).is_none());
        let impossible = [f64::INFINITY, f64::NAN];
        assert!(stepping_stone(&[1.0], &[vec![&e[..]]], &impossible).is_none());
        assert!(stepping_stone(&[1.0, 0.1], &[vec![&e[..]], vec![&e[..]]], &prior).is_some());
    }
}
