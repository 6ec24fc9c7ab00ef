//! Convergence diagnostics for MCMC draws: rank-normalised split-R-hat, bulk and tail effective
//! sample size, Monte Carlo standard error and per-parameter summaries.
//!
//! The definitions are those of Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021),
//! "Rank-normalization, folding, and localization: an improved R-hat for assessing convergence of
//! MCMC", *Bayesian Analysis* 16(2), as computed by ArviZ and the `posterior` R package; the tests
//! check them against ArviZ to 1e-6 relative.
//!
//! Every diagnostic takes one scalar parameter's draws as a slice of chains (`&[&[f64]]`), each
//! chain in draw order. Rather than panicking, a diagnostic returns NaN when it is undefined for
//! its input:
//!
//! - there are no chains, the chains differ in length, or a chain has fewer than 4 draws
//!   (ArviZ's minimum; splitting would leave fewer than 2 draws per half);
//! - a draw is NaN or infinite (as `posterior` does; ArviZ only checks for NaN);
//! - for R-hat, all draws are equal (0 / 0 between- over within-chain variance, as in ArviZ);
//!   chains that are each constant but differ from one another give +∞ instead.
//!
//! Unlike ArviZ, which returns NaN for R-hat of a single chain, R-hat of one chain is computed:
//! splitting it in halves gives two chains to compare, as the paper and `posterior` do.
//! Constant draws have an ESS equal to the number of draws, as in ArviZ.

use serde::{Deserialize, Serialize};

use self::descriptive::{quantile_of_sorted, sorted_copy};
use self::draws::Draws;
use self::ess::{ess_of, tail_ess_of};
use self::rhat::rank_rhat_of;

pub use self::descriptive::{mean, quantile, sd};
pub use self::ess::{ess, ess_bulk, ess_tail, mcse_mean};
pub use self::interval::{autocorrelation, hdi};
pub use self::normal::inverse_normal_cdf;
pub use self::rhat::{rank_normalized_split_rhat, split_rhat};

mod autocovariance;
mod descriptive;
mod draws;
mod ess;
mod interval;
mod normal;
mod rhat;

/// Probabilities of the quantiles that [`ess_tail`] checks, and of [`Summary::q05`] /
/// [`Summary::q95`].
const TAIL_PROBABILITIES: [f64; 2] = [0.05, 0.95];

/// Summary statistics and convergence diagnostics of one scalar parameter over several chains.
///
/// `mean`, `sd` and the quantiles pool the draws of every chain; the diagnostics are NaN where
/// the module documentation says they are undefined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Mean of all draws.
    pub mean: f64,
    /// Sample standard deviation (n − 1 denominator) of all draws.
    pub sd: f64,
    /// 5% quantile of all draws (linear interpolation, see [`quantile`]).
    pub q05: f64,
    /// 25% quantile of all draws.
    pub q25: f64,
    /// Median of all draws.
    pub q50: f64,
    /// 75% quantile of all draws.
    pub q75: f64,
    /// 95% quantile of all draws.
    pub q95: f64,
    /// Rank-normalised split-R-hat, see [`rank_normalized_split_rhat`].
    pub rhat: f64,
    /// Bulk effective sample size, see [`ess_bulk`].
    pub ess_bulk: f64,
    /// Tail effective sample size, see [`ess_tail`].
    pub ess_tail: f64,
    /// Monte Carlo standard error of the mean, see [`mcse_mean`].
    pub mcse_mean: f64,
}

/// Every statistic of [`Summary`] for one parameter over several chains.
///
/// Equivalent to calling [`mean`], [`sd`], [`quantile`], [`rank_normalized_split_rhat`],
/// [`ess_bulk`], [`ess_tail`] and [`mcse_mean`] separately, but sorts and rank-normalises only
/// once. The mean, sd and quantiles are computed even where the diagnostics are NaN (for
/// example for chains of unequal length).
pub fn summarize(chains: &[&[f64]]) -> Summary {
    let pooled: Vec<f64> = chains.iter().flat_map(|c| c.iter().copied()).collect();
    let has_nan = pooled.iter().any(|x| x.is_nan());
    let sorted = sorted_copy(&pooled);
    let q = |p: f64| {
        if sorted.is_empty() || has_nan {
            f64::NAN
        } else {
            quantile_of_sorted(&sorted, p)
        }
    };
    let (rhat, ess_bulk, ess_tail, mcse_mean) = match Draws::new(chains) {
        Some(draws) => {
            let split = draws.split();
            let normalized = split.rank_normalized();
            (
                rank_rhat_of(&split, &normalized),
                ess_of(&normalized),
                // `sorted` holds the same values as `draws`: chain order does not matter.
                tail_ess_of(&draws, &sorted),
                sd(&pooled) / ess_of(&split).sqrt(),
            )
        }
        None => (f64::NAN, f64::NAN, f64::NAN, f64::NAN),
    };
    Summary {
        mean: mean(&pooled),
        sd: sd(&pooled),
        q05: q(TAIL_PROBABILITIES[0]),
        q25: q(0.25),
        q50: q(0.5),
        q75: q(0.75),
        q95: q(TAIL_PROBABILITIES[1]),
        rhat,
        ess_bulk,
        ess_tail,
        mcse_mean,
    }
}

#[cfg(test)]
mod tests;
