//! What the summary needs of each chain, in memory that does not grow with the run: every row
//! streams through exact running moments, and at most [`KEPT`] rows are kept, evenly spaced
//! over all of them, for what needs the draws themselves (quantiles, R-hat, ESS).
//!
//! Built from the rows as the run writes them ([`LiveDigests`]) when the run started afresh,
//! or else read back from the chain files ([`digest`]). Both give the same bits: a chain file
//! holds each value's shortest representation, which parses back to the same `f64`.

use std::path::Path;

use ganger_core::mcmc::sampler::Row;

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

impl ChainDigest {
    /// An empty digest, with state columns only if `states`.
    fn new(n_dims: usize, states: bool) -> ChainDigest {
        let width = if states { n_dims } else { 0 };
        ChainDigest {
            states: Thinned::new(width, KEPT),
            moments: vec![Running::default(); width],
            energies: Thinned::new(1, KEPT),
        }
    }

    /// Takes the row of step `step` (1-based), one after the burn-in.
    fn push(&mut self, step: u64, state: &[f64], energy: f64, fixed_from: u64) {
        if !self.moments.is_empty() {
            self.states.push(state);
            for (moments, &x) in self.moments.iter_mut().zip(state) {
                moments.push(x);
            }
        }
        if step > fixed_from {
            self.energies.push(&[energy]);
        }
    }
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
    let mut digest = ChainDigest::new(n_dims, states);
    let mut step = burn_in;
    for_each_row(path, n_dims, burn_in, |state, energy, _| {
        step += 1;
        digest.push(step, state, energy, fixed_from);
    })?;
    Ok(digest)
}

/// Every chain's digest, built from the rows of a run that started at step 0 as it writes
/// them, for the draws after `burn_in` and energies after `fixed_from`; the summary then
/// reads no chain file back.
#[derive(Debug, Clone)]
pub struct LiveDigests {
    burn_in: u64,
    fixed_from: u64,
    /// Rows seen per chain.
    steps: Vec<u64>,
    digests: Vec<ChainDigest>,
}

impl LiveDigests {
    /// Digests of `n_chains` chains of `n_dims` dimensions, states kept for the cold ones
    /// (every `n_temperatures`-th, from chain 0).
    pub fn new(
        n_chains: usize,
        n_temperatures: usize,
        n_dims: usize,
        burn_in: u64,
        fixed_from: u64,
    ) -> LiveDigests {
        LiveDigests {
            burn_in,
            fixed_from,
            steps: vec![0; n_chains],
            digests: (0..n_chains)
                .map(|c| ChainDigest::new(n_dims, c % n_temperatures.max(1) == 0))
                .collect(),
        }
    }

    /// Takes rows in the order the run writes them (each chain's in step order).
    pub fn observe(&mut self, rows: &[Row]) {
        for row in rows {
            let step = &mut self.steps[row.chain];
            *step += 1;
            if *step > self.burn_in {
                self.digests[row.chain].push(*step, &row.state, row.energy, self.fixed_from);
            }
        }
    }

    /// The digests, if they cover the draws after `burn_in` and the energies after
    /// `fixed_from` of chains `steps` long; otherwise (the run ended elsewhere than planned)
    /// `None`, and the chain files must be read back.
    pub fn finish(self, burn_in: u64, fixed_from: u64, steps: u64) -> Option<Vec<ChainDigest>> {
        let matches = self.burn_in == burn_in
            && self.fixed_from == fixed_from
            && self.steps.iter().all(|&s| s == steps);
        matches.then_some(self.digests)
    }
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

    /// The digests built from the rows as written equal, bit for bit, those read back from
    /// the chain files, kept rows past the cap (thinned) and energies after adaptation alike.
    #[test]
    fn live_digests_equal_the_chain_files_read_back() {
        use super::super::output::ChainFiles;
        use ganger_core::mcmc::sampler::SwapType;

        let dir = std::env::temp_dir().join(format!("ganger-digest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (n_chains, n_temps, n_dims, steps) = (4, 2, 3, KEPT as u64 + 5_000);
        let (burn_in, fixed_from) = (1_000, 3_000);
        let names: Vec<String> = (0..n_dims).map(|d| format!("x{d}")).collect();
        let mut files = ChainFiles::create(&dir, n_chains, &names).unwrap();
        let mut live = LiveDigests::new(n_chains, n_temps, n_dims, burn_in, fixed_from);
        // Values with long decimal expansions, tiny and huge: what a shortest repr must keep.
        let value = |chain: usize, step: u64, k: usize| {
            let t = (step as f64 * 0.618_033_988_749 + chain as f64 + k as f64 * 0.1).sin();
            t * 10f64.powi((step % 7) as i32 * 40 - 120)
        };
        for step in 1..=steps {
            let rows: Vec<Row> = (0..n_chains)
                .map(|chain| Row {
                    chain,
                    state: (0..n_dims).map(|k| value(chain, step, k)).collect(),
                    energy: value(chain, step, 9).abs() / 3.0,
                    sigma: 0.5,
                    beta: 1.0,
                    accepted: step % 3 == 0,
                    swap_type: SwapType::Reject,
                })
                .collect();
            files.write(&rows).unwrap();
            live.observe(&rows);
        }
        files.flush().unwrap();
        assert!(live
            .clone()
            .finish(burn_in, fixed_from, steps + 1)
            .is_none());
        assert!(live
            .clone()
            .finish(burn_in + 1, fixed_from, steps)
            .is_none());
        let live = live.finish(burn_in, fixed_from, steps).unwrap();
        for (chain, live) in live.iter().enumerate() {
            let path = ChainFiles::path(&dir, chain);
            let read = digest(&path, n_dims, burn_in, fixed_from, chain % n_temps == 0).unwrap();
            let bits = |columns: &[Vec<f64>]| -> Vec<Vec<u64>> {
                columns
                    .iter()
                    .map(|c| c.iter().map(|x| x.to_bits()).collect())
                    .collect()
            };
            assert_eq!(bits(&live.states.columns), bits(&read.states.columns));
            assert_eq!(live.states.stride, read.states.stride);
            assert_eq!(bits(&live.energies.columns), bits(&read.energies.columns));
            let moments = |d: &ChainDigest| -> Vec<(u64, u64, u64)> {
                d.moments
                    .iter()
                    .map(|m| (m.n, m.mean.to_bits(), m.sd().to_bits()))
                    .collect()
            };
            assert_eq!(moments(live), moments(&read));
            if chain % n_temps == 0 {
                assert_eq!(
                    live.states.stride, 2,
                    "past the cap, the states were thinned"
                );
                assert_eq!(live.moments[0].n, steps - burn_in);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
