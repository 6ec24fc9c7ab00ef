//! Reading a chain file back for the summary in memory that does not grow with the run: every
//! row streams through exact running moments, and at most [`KEPT`] rows are kept, evenly
//! spaced over all of them, for what needs the draws themselves (quantiles, R-hat, ESS).

use std::path::Path;

use super::output::{for_each_row, OutputError};

/// Rows kept per chain at most; a run with fewer draws after its burn-in keeps them all.
pub const KEPT: usize = 1 << 16;

/// Columns of rows kept at every `stride`-th row (counted from 0), at most `cap` of them: when
/// full, every other row goes and the stride doubles. Chains with as many rows keep the same
/// rows, so their kept draws line up.
#[derive(Debug, Clone)]
pub struct Thinned {
    cap: usize,
    /// Every how many rows one is kept.
    pub stride: u64,
    seen: u64,
    /// `columns[c][k]`: column `c` of the `k`-th kept row.
    pub columns: Vec<Vec<f64>>,
}

impl Thinned {
    /// Columns for `width` values a row, at most `cap` rows.
    pub fn new(width: usize, cap: usize) -> Thinned {
        Thinned {
            cap: cap.max(2),
            stride: 1,
            seen: 0,
            columns: vec![Vec::new(); width],
        }
    }

    /// Offers the next row.
    pub fn push(&mut self, row: &[f64]) {
        let index = self.seen;
        self.seen += 1;
        if index % self.stride != 0 {
            return;
        }
        for (column, &x) in self.columns.iter_mut().zip(row) {
            column.push(x);
        }
        if self.columns.first().is_some_and(|c| c.len() > self.cap) {
            for column in &mut self.columns {
                let mut k = 0;
                column.retain(|_| {
                    k += 1;
                    (k - 1) % 2 == 0
                });
            }
            self.stride *= 2;
        }
    }
}

/// Mean and variance of every row of a column, exactly, in one pass (Welford).
#[derive(Debug, Clone, Copy, Default)]
pub struct Running {
    /// Values seen.
    pub n: u64,
    /// Their mean.
    pub mean: f64,
    m2: f64,
}

impl Running {
    fn push(&mut self, x: f64) {
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// Adds another column's values.
    pub fn merge(&mut self, other: &Running) {
        if other.n == 0 {
            return;
        }
        let n = self.n + other.n;
        let delta = other.mean - self.mean;
        self.m2 += other.m2 + delta * delta * self.n as f64 * other.n as f64 / n as f64;
        self.mean += delta * other.n as f64 / n as f64;
        self.n = n;
    }

    /// Sample standard deviation (n − 1 denominator).
    pub fn sd(&self) -> f64 {
        if self.n < 2 {
            return f64::NAN;
        }
        (self.m2 / (self.n - 1) as f64).sqrt()
    }
}

/// What the summary needs of one chain file.
#[derive(Debug, Clone)]
pub struct ChainDigest {
    /// The states after the burn-in, thinned (no columns unless asked for).
    pub states: Thinned,
    /// Exact moments of each dimension after the burn-in (none unless states were asked for).
    pub moments: Vec<Running>,
    /// The energies after `fixed_from`, thinned.
    pub energies: Thinned,
}

/// Streams a chain file's rows after `burn_in` (keeping states only if `states`), and its
/// energies after `fixed_from` (≥ `burn_in`).
pub fn digest(
    path: &Path,
    n_dims: usize,
    burn_in: u64,
    fixed_from: u64,
    states: bool,
) -> Result<ChainDigest, OutputError> {
    let width = if states { n_dims } else { 0 };
    let mut digest = ChainDigest {
        states: Thinned::new(width, KEPT),
        moments: vec![Running::default(); width],
        energies: Thinned::new(1, KEPT),
    };
    let mut step = burn_in;
    for_each_row(path, n_dims, burn_in, |state, energy, _| {
        step += 1;
        if states {
            digest.states.push(state);
            for (moments, &x) in digest.moments.iter_mut().zip(state) {
                moments.push(x);
            }
        }
        if step > fixed_from {
            digest.energies.push(&[energy]);
        }
    })?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_evenly_spaced_rows_and_never_more_than_the_cap() {
        let mut thinned = Thinned::new(2, 8);
        for i in 0..100u32 {
            thinned.push(&[f64::from(i), -f64::from(i)]);
        }
        assert!(thinned.columns[0].len() <= 8);
        assert_eq!(thinned.stride, 16);
        let expected: Vec<f64> = (0..100).step_by(16).map(f64::from).collect();
        assert_eq!(thinned.columns[0], expected);
        assert_eq!(thinned.columns[1][2], -32.0);
        // Below the cap nothing is dropped.
        let mut all = Thinned::new(1, 8);
        (0..8).for_each(|i| all.push(&[f64::from(i)]));
        assert_eq!((all.stride, all.columns[0].len()), (1, 8));
    }

    #[test]
    fn running_moments_match_two_passes_and_merge() {
        let xs: Vec<f64> = (0..1000)
            .map(|i| (f64::from(i) * 0.37).sin() * 5.0 + 2.0)
            .collect();
        let mean = xs.iter().sum::<f64>() / 1000.0;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 999.0).sqrt();
        let (mut a, mut b) = (Running::default(), Running::default());
        xs[..300].iter().for_each(|&x| a.push(x));
        xs[300..].iter().for_each(|&x| b.push(x));
        a.merge(&b);
        assert!((a.mean - mean).abs() < 1e-12 && (a.sd() - sd).abs() < 1e-12);
        assert_eq!(a.n, 1000);
    }
}
