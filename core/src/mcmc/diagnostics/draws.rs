//! One parameter's draws in the shape every diagnostic works on, with the input checks that
//! decide when a diagnostic is undefined and the splitting and rank normalisation they share.

use super::normal::inverse_normal_cdf;

/// Fewest draws per chain for which any diagnostic is defined (ArviZ's `min_draws`).
pub(super) const MIN_DRAWS: usize = 4;

/// One parameter's draws as a dense chain-major matrix of `chains` rows of `draws` columns.
pub(super) struct Draws {
    pub(super) values: Vec<f64>,
    pub(super) chains: usize,
    pub(super) draws: usize,
}

impl Draws {
    /// Copies `chains` into a matrix, or `None` when the diagnostics are undefined for them.
    pub(super) fn new(chains: &[&[f64]]) -> Option<Self> {
        let draws = chains.first()?.len();
        let valid = draws >= MIN_DRAWS
            && chains
                .iter()
                .all(|c| c.len() == draws && c.iter().all(|x| x.is_finite()));
        valid.then(|| Self {
            values: chains.concat(),
            chains: chains.len(),
            draws,
        })
    }

    pub(super) fn chain(&self, c: usize) -> &[f64] {
        &self.values[c * self.draws..(c + 1) * self.draws]
    }

    /// Each chain split into its first and last halves, the first halves first (ArviZ's
    /// order); an odd-length chain loses its middle draw so both halves have equal length.
    pub(super) fn split(&self) -> Self {
        let half = self.draws / 2;
        let mut values = Vec::with_capacity(2 * half * self.chains);
        for c in 0..self.chains {
            values.extend_from_slice(&self.chain(c)[..half]);
        }
        for c in 0..self.chains {
            values.extend_from_slice(&self.chain(c)[self.draws - half..]);
        }
        Self {
            values,
            chains: 2 * self.chains,
            draws: half,
        }
    }

    /// The same shape with `f` applied to every draw.
    pub(super) fn map(&self, f: impl Fn(f64) -> f64) -> Self {
        Self {
            values: self.values.iter().map(|&x| f(x)).collect(),
            chains: self.chains,
            draws: self.draws,
        }
    }

    /// Rank normalisation over all draws pooled (Vehtari et al. 2021, eq. 14): the normal
    /// scores Φ⁻¹((r − 3/8) / (S + 1/4)) of the average-tie ranks r (Blom's offset).
    pub(super) fn rank_normalized(&self) -> Self {
        let ranks = average_ranks(&self.values);
        let total = self.values.len() as f64;
        Self {
            values: ranks
                .into_iter()
                .map(|r| inverse_normal_cdf((r - 0.375) / (total + 0.25)))
                .collect(),
            chains: self.chains,
            draws: self.draws,
        }
    }
}

/// 1-based ranks of `xs` with ties given the average of the ranks they span (scipy's
/// `rankdata(method="average")`). `xs` is NaN-free.
fn average_ranks(xs: &[f64]) -> Vec<f64> {
    let mut order: Vec<(f64, usize)> = xs.iter().copied().zip(0..).collect();
    order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut ranks = vec![0.0; xs.len()];
    let mut start = 0;
    while start < order.len() {
        // `==` rather than `total_cmp` so that −0.0 and 0.0 (adjacent after sorting) tie.
        let end = start
            + order[start..]
                .iter()
                .take_while(|(x, _)| *x == order[start].0)
                .count();
        // Positions start..end hold ranks start + 1 ..= end.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &(_, i) in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}
