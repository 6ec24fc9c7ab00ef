//! R-hat: whether the chains agree with one another, classic and rank-normalised.

use super::descriptive::{mean, median, variance};
use super::draws::Draws;

/// Classic split-R-hat (Gelman et al., BDA3) on the raw draws: each chain is split into halves
/// (dropping the middle draw of an odd-length chain) and the halves' between- and within-chain
/// variances are compared. ArviZ's `rhat(method="split")`.
///
/// NaN for the inputs listed in the module documentation.
pub fn split_rhat(chains: &[&[f64]]) -> f64 {
    match Draws::new(chains) {
        Some(draws) => rhat_of(&draws.split()),
        None => f64::NAN,
    }
}

/// Rank-normalised split-R-hat (Vehtari et al. 2021): the larger of the split-R-hat of the
/// rank-normalised split chains (which checks the bulk) and that of the rank-normalised split
/// chains folded about their median (which checks the tails). ArviZ's `rhat(method="rank")`.
///
/// Rank normalisation replaces each draw, pooled over all split chains (S draws in total), by
/// Φ⁻¹((r − 3/8) / (S + 1/4)) where r is its rank, ties taking the average of their ranks.
/// Values above 1.01 suggest the chains have not converged. NaN for the inputs listed in the
/// module documentation.
pub fn rank_normalized_split_rhat(chains: &[&[f64]]) -> f64 {
    match Draws::new(chains) {
        Some(draws) => {
            let split = draws.split();
            rank_rhat_of(&split, &split.rank_normalized())
        }
        None => f64::NAN,
    }
}

/// Split-R-hat from the split chains (already split; at least 2 chains of at least 2 draws):
/// sqrt(((B / W) + n − 1) / n) with B = n·var(chain means) and W = mean(chain variances).
fn rhat_of(split: &Draws) -> f64 {
    let n = split.draws as f64;
    let mut chain_means = Vec::with_capacity(split.chains);
    let mut within = 0.0;
    for c in 0..split.chains {
        let chain = split.chain(c);
        chain_means.push(mean(chain));
        within += variance(chain);
    }
    within /= split.chains as f64;
    let between = n * variance(&chain_means);
    ((between / within + n - 1.0) / n).sqrt()
}

/// Rank-normalised split-R-hat from the split chains and their rank normalisation.
pub(super) fn rank_rhat_of(split: &Draws, normalized: &Draws) -> f64 {
    let bulk = rhat_of(normalized);
    // Folding about the median turns spread in the tails into location, which bulk R-hat sees.
    let median = median(&split.values);
    let tail = rhat_of(&split.map(|x| (x - median).abs()).rank_normalized());
    // Python's `max(bulk, tail)`, which keeps `bulk` unless `tail` is larger (so NaN in `bulk`
    // wins), as ArviZ does.
    if tail > bulk {
        tail
    } else {
        bulk
    }
}
