//! The temperature ladder: its initial geometric spacing, its adaptation at the steps where
//! every chain meets while the run adapts, and the swap statistics of each adjacent pair.

use serde::{Deserialize, Serialize};

use super::adaptation::adaptation_rate;
use super::Swaps;

/// Swap attempts and acceptances of each adjacent pair `(t, t + 1)`, over all stacks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PairCounts {
    /// Attempts per pair, coldest pair first.
    pub attempted: Vec<u64>,
    /// Acceptances per pair.
    pub accepted: Vec<u64>,
}

impl PairCounts {
    pub(super) fn with_pairs(n: usize) -> PairCounts {
        PairCounts {
            attempted: vec![0; n],
            accepted: vec![0; n],
        }
    }

    pub(super) fn record(&mut self, pair: usize, accepted: bool) {
        self.attempted[pair] += 1;
        self.accepted[pair] += u64::from(accepted);
    }

    /// Acceptance rate of each pair, `None` where none was attempted.
    pub fn rates(&self) -> Vec<Option<f64>> {
        self.attempted
            .iter()
            .zip(&self.accepted)
            .map(|(&n, &k)| (n > 0).then(|| k as f64 / n as f64))
            .collect()
    }
}

/// Betas for temperatures geometric from 1 to `max_temperature`.
pub(super) fn geometric(n: usize, max_temperature: f64) -> Vec<f64> {
    if n == 1 {
        return vec![1.0];
    }
    (0..n)
        .map(|i| max_temperature.powf(-(i as f64) / (n - 1) as f64))
        .collect()
}

/// Moves the ladder with a shrinking step size: towards the target swap rate between
/// neighbours (classic), or towards the schedule that spreads the communication barrier evenly
/// (non-reversible: Syed et al. 2021, with the barrier's density estimated by the rejection
/// rates; the hottest beta stays put). The coldest beta stays 1.
pub(super) fn adapt(
    betas: &mut [f64],
    swaps: Swaps,
    optimal_swap_rate: f64,
    counts: &PairCounts,
    update: u64,
) {
    let gamma = adaptation_rate(update);
    let n = betas.len();
    let rates = counts.rates();
    let target_betas: Vec<f64> = match swaps {
        Swaps::Classic => {
            // Work on log temperature gaps, which keeps the ladder ordered.
            let temps: Vec<f64> = betas.iter().map(|b| 1.0 / b).collect();
            let mut t = 1.0;
            let mut target = vec![1.0];
            for i in 0..n - 1 {
                let mut log_gap = (temps[i + 1] - temps[i]).max(1e-12).ln();
                if let Some(rate) = rates[i] {
                    log_gap += rate - optimal_swap_rate;
                }
                t += log_gap.exp();
                target.push(1.0 / t);
            }
            target
        }
        Swaps::NonReversible => {
            // Cumulative barrier at each beta, then the betas at evenly spaced barrier levels.
            let mut barrier = vec![0.0];
            for i in 0..n - 1 {
                let rejection = rates[i].map_or(0.5, |r| 1.0 - r);
                barrier.push(barrier[i] + rejection.max(1e-3));
            }
            let total = barrier[n - 1];
            let log_betas: Vec<f64> = betas.iter().map(|b| b.ln()).collect();
            let mut target = vec![1.0];
            let mut segment = 0;
            for k in 1..n - 1 {
                let level = total * k as f64 / (n - 1) as f64;
                while segment < n - 2 && barrier[segment + 1] < level {
                    segment += 1;
                }
                let span = barrier[segment + 1] - barrier[segment];
                let fraction = ((level - barrier[segment]) / span).clamp(0.0, 1.0);
                let log_beta =
                    log_betas[segment] + fraction * (log_betas[segment + 1] - log_betas[segment]);
                target.push(log_beta.exp());
            }
            target.push(betas[n - 1]);
            target
        }
    };
    // Blend in log space with the shrinking step: the ladder settles, then stays put.
    for (beta, target) in betas.iter_mut().zip(&target_betas).skip(1) {
        let (old, new) = (beta.ln(), target.ln());
        *beta = (old + gamma.min(1.0) * (new - old)).exp();
    }
    for i in 1..n {
        // Keep the ladder strictly decreasing whatever the estimates said.
        betas[i] = betas[i].min(betas[i - 1] * (1.0 - 1e-9));
    }
}
