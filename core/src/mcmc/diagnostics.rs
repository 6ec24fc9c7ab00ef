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

/// Fewest draws per chain for which any diagnostic is defined (ArviZ's `min_draws`).
const MIN_DRAWS: usize = 4;

/// Draws whose range is below this are treated as constant by [`ess`]; it is numpy's
/// `finfo(float64).resolution`, which ArviZ uses for the same test.
const CONSTANT_RANGE: f64 = 1e-15;

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

/// Mean of `xs`; NaN when `xs` is empty.
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample standard deviation of `xs` with the n − 1 denominator; NaN with fewer than 2 values.
pub fn sd(xs: &[f64]) -> f64 {
    variance(xs).sqrt()
}

/// The `p` quantile of `xs` by linear interpolation between order statistics: numpy's default
/// (`method="linear"`, R's type 7), i.e. position `(n − 1)·p` in the sorted values.
///
/// `xs` may be sorted or not: sorted input is used as it is, anything else is sorted into a
/// copy. NaN when `xs` is empty or holds a NaN, or `p` is outside `[0, 1]`.
pub fn quantile(sorted_or_unsorted: &[f64], p: f64) -> f64 {
    if sorted_or_unsorted.is_empty()
        || !(0.0..=1.0).contains(&p)
        || sorted_or_unsorted.iter().any(|x| x.is_nan())
    {
        return f64::NAN;
    }
    if sorted_or_unsorted.windows(2).all(|w| w[0] <= w[1]) {
        quantile_of_sorted(sorted_or_unsorted, p)
    } else {
        quantile_of_sorted(&sorted_copy(sorted_or_unsorted), p)
    }
}

/// The standard normal distribution's quantile function Φ⁻¹(p).
///
/// Wichura's algorithm AS 241 (PPND16, Applied Statistics 37(3), 1988), accurate to about 1 part
/// in 10¹⁶ over the whole range; it is what R's `qnorm` and Python's
/// `statistics.NormalDist.inv_cdf` use. Returns −∞ at 0, +∞ at 1 and NaN outside `[0, 1]`.
// The coefficients are kept digit for digit as published so they can be checked against the
// paper, although f64 cannot hold them all.
#[allow(clippy::excessive_precision)]
pub fn inverse_normal_cdf(p: f64) -> f64 {
    // Rational approximations for |p − 0.5| <= 0.425, in r = 0.180625 − q².
    const A: [f64; 8] = [
        3.387132872796366608,
        1.3314166789178437745e2,
        1.9715909503065514427e3,
        1.3731693765509461125e4,
        4.5921953931549871457e4,
        6.7265770927008700853e4,
        3.3430575583588128105e4,
        2.5090809287301226727e3,
    ];
    const B: [f64; 8] = [
        1.0,
        4.2313330701600911252e1,
        6.871870074920579083e2,
        5.3941960214247511077e3,
        2.1213794301586595867e4,
        3.930789580009271061e4,
        2.8729085735721942674e4,
        5.226495278852854561e3,
    ];
    // For the tails with r = sqrt(−ln(min(p, 1 − p))) <= 5, in r − 1.6.
    const C: [f64; 8] = [
        1.42343711074968357734,
        4.6303378461565452959,
        5.7694972214606914055,
        3.64784832476320460504,
        1.27045825245236838258,
        2.4178072517745061177e-1,
        2.27238449892691845833e-2,
        7.7454501427834140764e-4,
    ];
    const D: [f64; 8] = [
        1.0,
        2.05319162663775882187,
        1.6763848301838038494,
        6.8976733498510000455e-1,
        1.4810397642748007459e-1,
        1.51986665636164571966e-2,
        5.475938084995344946e-4,
        1.05075007164441684324e-9,
    ];
    // For the far tails, r > 5 (p below about 1.4e-11), in r − 5.
    const E: [f64; 8] = [
        6.6579046435011037772,
        5.4637849111641143699,
        1.7848265399172913358,
        2.9656057182850489123e-1,
        2.6532189526576123093e-2,
        1.2426609473880784386e-3,
        2.71155556874348757815e-5,
        2.01033439929228813265e-7,
    ];
    const F: [f64; 8] = [
        1.0,
        5.9983220655588793769e-1,
        1.3692988092273580531e-1,
        1.48753612908506148525e-2,
        7.868691311456132591e-4,
        1.8463183175100546818e-5,
        1.4215117583164458887e-7,
        2.04426310338993978564e-15,
    ];
    // Horner's rule; coefficients are in increasing powers.
    fn poly(coefficients: &[f64; 8], x: f64) -> f64 {
        coefficients.iter().rev().fold(0.0, |acc, &c| acc * x + c)
    }

    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180_625 - q * q;
        return q * poly(&A, r) / poly(&B, r);
    }
    // Work with the smaller tail probability so that 1 − p does not lose digits.
    let r = (-(if q < 0.0 { p } else { 1.0 - p }).ln()).sqrt();
    let x = if r <= 5.0 {
        poly(&C, r - 1.6) / poly(&D, r - 1.6)
    } else {
        poly(&E, r - 5.0) / poly(&F, r - 5.0)
    };
    if q < 0.0 {
        -x
    } else {
        x
    }
}

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

/// Effective sample size of the chains exactly as given (not split, not rank-normalised):
/// Geyer's initial monotone sequence estimator applied to the autocorrelation computed from the
/// autocovariance averaged across chains, as in ArviZ's `_ess` (`ess(method="identity")`).
///
/// The autocovariances come from a zero-padded radix-2 FFT, so this is O(n log n) in the chain
/// length. Constant draws give the number of draws; NaN for the inputs listed in the module
/// documentation.
pub fn ess(chains: &[&[f64]]) -> f64 {
    match Draws::new(chains) {
        Some(draws) => ess_of(&draws),
        None => f64::NAN,
    }
}

/// Bulk effective sample size: [`ess`] of the rank-normalised split chains (see
/// [`rank_normalized_split_rhat`]). ArviZ's `ess(method="bulk")`.
///
/// NaN for the inputs listed in the module documentation.
pub fn ess_bulk(chains: &[&[f64]]) -> f64 {
    match Draws::new(chains) {
        Some(draws) => ess_of(&draws.split().rank_normalized()),
        None => f64::NAN,
    }
}

/// Tail effective sample size: the smaller of the [`ess`] of the split chains of the indicators
/// I(x ≤ q05) and I(x ≤ q95), where q05 and q95 are the 5% and 95% [`quantile`]s of all draws.
/// ArviZ's `ess(method="tail")`.
///
/// NaN for the inputs listed in the module documentation.
pub fn ess_tail(chains: &[&[f64]]) -> f64 {
    match Draws::new(chains) {
        Some(draws) => tail_ess_of(&draws, &sorted_copy(&draws.values)),
        None => f64::NAN,
    }
}

/// Monte Carlo standard error of the mean: the standard deviation of all draws over the square
/// root of the [`ess`] of the raw (not rank-normalised) split chains. ArviZ's
/// `mcse(method="mean")`.
///
/// NaN for the inputs listed in the module documentation.
pub fn mcse_mean(chains: &[&[f64]]) -> f64 {
    match Draws::new(chains) {
        Some(draws) => sd(&draws.values) / ess_of(&draws.split()).sqrt(),
        None => f64::NAN,
    }
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

/// One parameter's draws as a dense chain-major matrix of `chains` rows of `draws` columns.
struct Draws {
    values: Vec<f64>,
    chains: usize,
    draws: usize,
}

impl Draws {
    /// Copies `chains` into a matrix, or `None` when the diagnostics are undefined for them.
    fn new(chains: &[&[f64]]) -> Option<Self> {
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

    fn chain(&self, c: usize) -> &[f64] {
        &self.values[c * self.draws..(c + 1) * self.draws]
    }

    /// Each chain split into its first and last halves, the first halves first (ArviZ's
    /// order); an odd-length chain loses its middle draw so both halves have equal length.
    fn split(&self) -> Self {
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
    fn map(&self, f: impl Fn(f64) -> f64) -> Self {
        Self {
            values: self.values.iter().map(|&x| f(x)).collect(),
            chains: self.chains,
            draws: self.draws,
        }
    }

    /// Rank normalisation over all draws pooled (Vehtari et al. 2021, eq. 14): the normal
    /// scores Φ⁻¹((r − 3/8) / (S + 1/4)) of the average-tie ranks r (Blom's offset).
    fn rank_normalized(&self) -> Self {
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
fn rank_rhat_of(split: &Draws, normalized: &Draws) -> f64 {
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

/// Tail ESS of `draws` (not split) given the same values sorted.
fn tail_ess_of(draws: &Draws, sorted: &[f64]) -> f64 {
    let [low, high] = TAIL_PROBABILITIES.map(|p| {
        // ArviZ takes these from scipy's `mquantiles`, the same type-7 definition as numpy's but
        // interpolated as (1 − g)·a + g·b, which can round an ulp below a tied pair a = b and
        // so drop the tie from the indicator; numpy's form keeps ties exact, as R does.
        let q = quantile_of_sorted(sorted, p);
        ess_of(&draws.map(|x| if x <= q { 1.0 } else { 0.0 }).split())
    });
    // Python's `min(low, high)`, as ArviZ.
    if high < low {
        high
    } else {
        low
    }
}

/// ArviZ's `_ess` on a matrix of at least 2 draws per chain: Geyer's initial monotone sequence
/// estimator of the integrated autocorrelation time from the autocovariance averaged across
/// chains (Vehtari et al. 2021, section 3.2).
fn ess_of(draws: &Draws) -> f64 {
    let total = draws.values.len() as f64;
    let (min, max) = draws
        .values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    // Constant draws carry no autocorrelation to estimate; ArviZ calls them fully efficient.
    if max - min < CONSTANT_RANGE {
        return total;
    }
    let n = draws.draws;
    let nf = n as f64;
    let acov = mean_autocovariance(draws);
    let chain_means: Vec<f64> = (0..draws.chains).map(|c| mean(draws.chain(c))).collect();
    let mean_var = acov[0] * nf / (nf - 1.0);
    let mut var_plus = mean_var * (nf - 1.0) / nf;
    if draws.chains > 1 {
        var_plus += variance(&chain_means);
    }
    let rho_at = |lag: usize| 1.0 - (mean_var - acov[lag]) / var_plus;

    let mut rho = vec![0.0; n];
    let mut rho_even = 1.0;
    rho[0] = rho_even;
    let mut rho_odd = rho_at(1);
    rho[1] = rho_odd;
    // Geyer's initial positive sequence: sum autocorrelations in (even, odd) pairs while the
    // pair sums stay positive, beyond which they are mostly noise.
    let mut t = 1;
    while t + 3 < n && rho_even + rho_odd > 0.0 {
        rho_even = rho_at(t + 1);
        rho_odd = rho_at(t + 2);
        if rho_even + rho_odd >= 0.0 {
            rho[t + 1] = rho_even;
            rho[t + 2] = rho_odd;
        }
        t += 2;
    }
    // ArviZ's `max_t = t - 2` is −1 when the loop never ran, so index by `last = max_t + 1`.
    let last = t - 1;
    // Keeping the last positive even lag improves the estimate (as ArviZ and Stan do).
    if rho_even > 0.0 {
        rho[last] = rho_even;
    }
    // Geyer's initial monotone sequence: pair sums must not increase.
    let mut t = 1;
    while t + 3 <= last {
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t] {
            rho[t + 1] = (rho[t - 1] + rho[t]) / 2.0;
            rho[t + 2] = rho[t + 1];
        }
        t += 2;
    }
    if rho.iter().any(|r| r.is_nan()) {
        return f64::NAN;
    }
    let tau = -1.0 + 2.0 * rho[..last].iter().sum::<f64>() + rho[last];
    // Antithetic chains can drive tau towards 0; ArviZ caps ESS at N·log10(N) this way (with
    // Python's `max`, which keeps a NaN `tau`).
    let floor = 1.0 / total.log10();
    let tau = if floor > tau { floor } else { tau };
    total / tau
}

/// Autocovariance at lags 0..n, each chain about its own mean with the 1/n normalisation,
/// averaged over the chains (ArviZ's `np.mean(autocov(ary), axis=0)`).
///
/// Zero-padding to at least 2n makes the FFT's circular correlation equal the linear one. The
/// power spectra are summed before the single inverse transform, since averaging commutes with
/// it, and two real chains share each forward transform as its real and imaginary parts.
fn mean_autocovariance(draws: &Draws) -> Vec<f64> {
    let n = draws.draws;
    let size = (2 * n).next_power_of_two();
    let fft = Fft::new(size);
    let mut power = vec![0.0; size];
    let mut buffer = vec![Complex::ZERO; size];
    for first in (0..draws.chains).step_by(2) {
        buffer.fill(Complex::ZERO);
        let a = draws.chain(first);
        let a_mean = mean(a);
        for (z, &x) in buffer.iter_mut().zip(a) {
            z.re = x - a_mean;
        }
        let paired = first + 1 < draws.chains;
        if paired {
            let b = draws.chain(first + 1);
            let b_mean = mean(b);
            for (z, &x) in buffer.iter_mut().zip(b) {
                z.im = x - b_mean;
            }
        }
        fft.forward(&mut buffer);
        if paired {
            // With z = a + ib for real a, b: |A_k|² + |B_k|² = (|Z_k|² + |Z_{N−k}|²) / 2.
            for (k, p) in power.iter_mut().enumerate() {
                *p += 0.5 * (buffer[k].norm_sqr() + buffer[(size - k) % size].norm_sqr());
            }
        } else {
            for (p, z) in power.iter_mut().zip(&buffer) {
                *p += z.norm_sqr();
            }
        }
    }
    // The summed spectrum is real and even, so its forward transform is `size` times its
    // inverse transform, and real.
    for (z, &p) in buffer.iter_mut().zip(&power) {
        *z = Complex { re: p, im: 0.0 };
    }
    fft.forward(&mut buffer);
    let scale = 1.0 / (size as f64 * n as f64 * draws.chains as f64);
    buffer[..n].iter().map(|z| z.re * scale).collect()
}

/// A complex number for the FFT.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Complex {
    re: f64,
    im: f64,
}

impl Complex {
    const ZERO: Self = Self { re: 0.0, im: 0.0 };

    fn norm_sqr(self) -> f64 {
        self.re * self.re + self.im * self.im
    }

    fn mul(self, other: Self) -> Self {
        Self {
            re: self.re * other.re - self.im * other.im,
            im: self.re * other.im + self.im * other.re,
        }
    }
}

/// An in-place iterative radix-2 decimation-in-time FFT of one power-of-two size.
struct Fft {
    size: usize,
    /// e^(−2πik/size) for k < size/2, each computed directly rather than by recurrence so the
    /// rounding error does not accumulate.
    twiddles: Vec<Complex>,
}

impl Fft {
    fn new(size: usize) -> Self {
        debug_assert!(size.is_power_of_two());
        let twiddles = (0..size / 2)
            .map(|k| {
                let angle = -2.0 * std::f64::consts::PI * k as f64 / size as f64;
                let (im, re) = angle.sin_cos();
                Complex { re, im }
            })
            .collect();
        Self { size, twiddles }
    }

    /// Replaces `buffer` (of length `size`) by its discrete Fourier transform
    /// X_k = Σ_t x_t e^(−2πikt/size).
    fn forward(&self, buffer: &mut [Complex]) {
        let size = self.size;
        if size < 2 {
            return;
        }
        let bits = size.trailing_zeros();
        for i in 0..size {
            let j = i.reverse_bits() >> (usize::BITS - bits);
            if i < j {
                buffer.swap(i, j);
            }
        }
        let mut len = 2;
        while len <= size {
            let half = len / 2;
            let stride = size / len;
            for block in buffer.chunks_exact_mut(len) {
                let (lower, upper) = block.split_at_mut(half);
                for (k, (a, b)) in lower.iter_mut().zip(upper.iter_mut()).enumerate() {
                    let t = b.mul(self.twiddles[k * stride]);
                    *b = Complex {
                        re: a.re - t.re,
                        im: a.im - t.im,
                    };
                    *a = Complex {
                        re: a.re + t.re,
                        im: a.im + t.im,
                    };
                }
            }
            len *= 2;
        }
    }
}

/// Sample variance with the n − 1 denominator, two-pass like numpy; NaN with fewer than 2 values.
fn variance(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return f64::NAN;
    }
    let m = mean(xs);
    xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64
}

/// Median as numpy computes it: the middle value, or the mean of the two middle values
/// computed as (a + b) / 2. That exact form matters: folding about it must make the two middle
/// values tie exactly, as they do in ArviZ. `xs` is non-empty and NaN-free.
fn median(xs: &[f64]) -> f64 {
    let mut copy = xs.to_vec();
    let mid = copy.len() / 2;
    let (below, &mut upper, _) = copy.select_nth_unstable_by(mid, f64::total_cmp);
    if xs.len() % 2 == 1 {
        upper
    } else {
        let lower = below.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}

/// numpy's "linear" quantile of non-empty, NaN-free, ascending `sorted`.
fn quantile_of_sorted(sorted: &[f64], p: f64) -> f64 {
    let last = sorted.len() - 1;
    let position = last as f64 * p;
    let below = position.floor();
    let gamma = position - below;
    let lo = (below as usize).min(last);
    let a = sorted[lo];
    if gamma == 0.0 {
        return a;
    }
    let b = sorted[(lo + 1).min(last)];
    // numpy's `_lerp`: interpolate from the nearer end so that the result stays monotone in p.
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

/// `xs` sorted ascending (NaN last).
fn sorted_copy(xs: &[f64]) -> Vec<f64> {
    let mut sorted = xs.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    sorted
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

#[cfg(test)]
mod tests {
    // The reference values below come from ArviZ 0.23.4 (with numpy 2.4.6 and scipy 1.17.1,
    // installed with `pip install arviz`), an implementation independent of this one. Each case
    // draws its chains from an AR(1) recursion driven by a 32-bit LCG, which Python and Rust
    // compute bit for bit alike, so the arrays need not be copied. To re-derive the numbers, run
    // this with `CASES = [(name, (chains, draws, phi, offsets, seed, discrete)), ...]` taken from
    // the table (each row of `expected` is what it prints, in that order):
    //
    //     import numpy as np, arviz as az
    //     from arviz.stats.diagnostics import _rhat, _split_chains, _z_scale
    //
    //     def gen(chains, draws, phi, offsets, seed, discrete):
    //         s, out = seed, np.empty((chains, draws))
    //         for c in range(chains):
    //             x = 0.0
    //             for t in range(draws):
    //                 s = (1664525 * s + 1013904223) % 2**32
    //                 u = (s >> 8) / 16777216.0
    //                 x = phi * x + (u - 0.5)
    //                 out[c, t] = np.floor(4.0 * x) if discrete else x + offsets[c]
    //         return out
    //
    //     for name, args in CASES:
    //         x = gen(*args)
    //         if len(x) > 1:
    //             rhat, split = az.rhat(x, method="rank"), az.rhat(x, method="split")
    //         else:  # ArviZ's public rhat refuses one chain; its internals compute it
    //             s = _split_chains(x)
    //             rhat = max(_rhat(_z_scale(s)), _rhat(_z_scale(abs(s - np.median(s)))))
    //             split = _rhat(s)
    //         print(name, [float(v) for v in [rhat, split, az.ess(x, method="bulk"),
    //             az.ess(x, method="tail"), az.ess(x, method="identity"),
    //             az.mcse(x, method="mean"), np.mean(x), np.std(x, ddof=1),
    //             *np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])]])

    use super::*;

    /// Relative tolerance against the reference values (with a tiny absolute floor for zeros).
    const TOLERANCE: f64 = 1e-6;

    /// One reference case: how its chains are generated and what ArviZ computed for them.
    struct Case {
        name: &'static str,
        chains: usize,
        draws: usize,
        phi: f64,
        offsets: &'static [f64],
        seed: u32,
        discrete: bool,
        /// From the script above: `az.rhat(x, method="rank")`, `az.rhat(x, method="split")`,
        /// `az.ess(x, method="bulk")`, `az.ess(x, method="tail")`,
        /// `az.ess(x, method="identity")`, `az.mcse(x, method="mean")`, `np.mean(x)`,
        /// `np.std(x, ddof=1)` and `np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])`.
        expected: [f64; 13],
    }

    // ArviZ 0.23.4 values; see the script at the top of this module.
    const CASES: &[Case] = &[
        // Well mixed: independent draws, 4 × 200.
        Case {
            name: "mixed",
            chains: 4,
            draws: 200,
            phi: 0.0,
            offsets: &[0.0, 0.0, 0.0, 0.0],
            seed: 1,
            discrete: false,
            expected: [
                1.0034929070054268,
                1.0041611588927593,
                702.9854484193356,
                770.0323906184279,
                672.2407981318994,
                0.011198459341520427,
                0.008657290786504745,
                0.2903727707760277,
                -0.45728444755077363,
                -0.2323000580072403,
                0.005484908819198608,
                0.25046975910663605,
                0.4652649909257889,
            ],
        },
        // Strongly autocorrelated: AR(1) with phi = 0.95.
        Case {
            name: "sticky",
            chains: 4,
            draws: 200,
            phi: 0.95,
            offsets: &[0.0, 0.0, 0.0, 0.0],
            seed: 2,
            discrete: false,
            expected: [
                1.2788750669422642,
                1.3084567085031593,
                11.50239286836418,
                21.09869786239035,
                16.9601603848057,
                0.285932010327199,
                0.22266064514751022,
                0.9238277136561768,
                -1.2656336054771729,
                -0.4196632687003406,
                0.20070017712674676,
                0.7623304084765873,
                1.946163086606389,
            ],
        },
        // Chains around different means: R-hat far above 1.05.
        Case {
            name: "shifted",
            chains: 4,
            draws: 200,
            phi: 0.5,
            offsets: &[0.0, 0.0, 0.5, 1.0],
            seed: 3,
            discrete: false,
            expected: [
                1.5395162675815643,
                1.602507689476721,
                7.524906709898213,
                55.60930030357523,
                3.333626668503874,
                0.19279011702712806,
                0.35677149604594477,
                0.5127121567291264,
                -0.42914224069635964,
                -0.032760960326789934,
                0.3330782609105412,
                0.7297428790558227,
                1.2564648102146294,
            ],
        },
        // Odd chain length: splitting drops each chain's middle draw.
        Case {
            name: "odd",
            chains: 3,
            draws: 201,
            phi: 0.3,
            offsets: &[0.0, 0.0, 0.0],
            seed: 4,
            discrete: false,
            expected: [
                1.0134957098691775,
                1.012760009358643,
                282.41219854325817,
                423.37726943198294,
                286.06547530859365,
                0.01834745704004441,
                0.007963049201371659,
                0.31237624434290623,
                -0.47101303485328333,
                -0.2604199799216388,
                0.008151063358187688,
                0.2736607537507245,
                0.5169079332301212,
            ],
        },
        // Integer-valued draws: many ties in the ranks and at the quantiles.
        Case {
            name: "ties",
            chains: 4,
            draws: 200,
            phi: 0.7,
            offsets: &[0.0, 0.0, 0.0, 0.0],
            seed: 5,
            discrete: true,
            expected: [
                1.026531792293039,
                1.0263497727964597,
                119.61513295153748,
                210.7299678499286,
                118.72336409241065,
                0.14218444033867927,
                -0.655,
                1.556921644225496,
                -3.0,
                -2.0,
                -1.0,
                0.0,
                2.0,
            ],
        },
        // A single chain (R-hat from ArviZ's internals, see the script).
        Case {
            name: "one_chain",
            chains: 1,
            draws: 150,
            phi: 0.6,
            offsets: &[0.0],
            seed: 6,
            discrete: false,
            expected: [
                1.012731433233188,
                1.012799959258693,
                35.57002370038282,
                67.70267635039534,
                38.08071870143436,
                0.06290132198984423,
                0.03734447593796526,
                0.3793176057980389,
                -0.5535962710042662,
                -0.23746782911235698,
                0.016529835715754754,
                0.30630428731727594,
                0.6460451090926524,
            ],
        },
        // Tiny chains: the split halves have 2 draws, so Geyer's loop never runs.
        Case {
            name: "five",
            chains: 2,
            draws: 5,
            phi: 0.3,
            offsets: &[0.0, 0.0],
            seed: 7,
            discrete: false,
            expected: [
                0.9012144386980897,
                0.7507916457659649,
                7.224719895935548,
                7.224719895935548,
                10.0,
                0.1422315470241364,
                0.008665367702245718,
                0.3823018862722443,
                -0.5179640524715186,
                -0.29284860370010135,
                0.09037500053644179,
                0.32971563548892735,
                0.4300923062652348,
            ],
        },
        // The fewest draws for which the diagnostics are defined.
        Case {
            name: "four",
            chains: 3,
            draws: 4,
            phi: 0.3,
            offsets: &[0.0, 0.0, 0.0],
            seed: 8,
            discrete: false,
            expected: [
                1.190225210564614,
                1.3385167482871652,
                12.9501749525715,
                12.9501749525715,
                12.9501749525715,
                0.10327268265977191,
                -0.0389139783581098,
                0.3716407059942379,
                -0.4977742531895637,
                -0.35262450784444804,
                -0.06328981220722196,
                0.24747882232069968,
                0.4507244093060492,
            ],
        },
    ];

    /// The chains of `case`, exactly as the Python script's `gen` makes them.
    fn generate(case: &Case) -> Vec<Vec<f64>> {
        let mut state = case.seed;
        (0..case.chains)
            .map(|c| {
                let mut x = 0.0;
                (0..case.draws)
                    .map(|_| {
                        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        let u = f64::from(state >> 8) / 16_777_216.0;
                        x = case.phi * x + (u - 0.5);
                        if case.discrete {
                            (4.0 * x).floor()
                        } else {
                            x + case.offsets[c]
                        }
                    })
                    .collect()
            })
            .collect()
    }

    fn assert_close(actual: f64, expected: f64, what: &str) {
        let tolerance = TOLERANCE * expected.abs() + 1e-12;
        assert!(
            (actual - expected).abs() <= tolerance,
            "{what}: got {actual}, ArviZ/numpy gave {expected}"
        );
    }

    #[test]
    fn matches_arviz_and_numpy() {
        for case in CASES {
            let chains = generate(case);
            let chains: Vec<&[f64]> = chains.iter().map(Vec::as_slice).collect();
            let pooled = chains.concat();
            let [rhat, split, bulk, tail, raw, mcse, m, s, q05, q25, q50, q75, q95] = case.expected;
            let name = case.name;
            assert_close(
                rank_normalized_split_rhat(&chains),
                rhat,
                &format!("{name} rhat"),
            );
            assert_close(split_rhat(&chains), split, &format!("{name} split rhat"));
            assert_close(ess_bulk(&chains), bulk, &format!("{name} ess_bulk"));
            assert_close(ess_tail(&chains), tail, &format!("{name} ess_tail"));
            assert_close(ess(&chains), raw, &format!("{name} ess"));
            assert_close(mcse_mean(&chains), mcse, &format!("{name} mcse_mean"));
            assert_close(mean(&pooled), m, &format!("{name} mean"));
            assert_close(sd(&pooled), s, &format!("{name} sd"));
            for (p, q) in [
                (0.05, q05),
                (0.25, q25),
                (0.5, q50),
                (0.75, q75),
                (0.95, q95),
            ] {
                assert_close(quantile(&pooled, p), q, &format!("{name} quantile {p}"));
            }

            let summary = summarize(&chains);
            let fields = [
                (summary.rhat, rhat, "rhat"),
                (summary.ess_bulk, bulk, "ess_bulk"),
                (summary.ess_tail, tail, "ess_tail"),
                (summary.mcse_mean, mcse, "mcse_mean"),
                (summary.mean, m, "mean"),
                (summary.sd, s, "sd"),
                (summary.q05, q05, "q05"),
                (summary.q25, q25, "q25"),
                (summary.q50, q50, "q50"),
                (summary.q75, q75, "q75"),
                (summary.q95, q95, "q95"),
            ];
            for (actual, expected, field) in fields {
                assert_close(actual, expected, &format!("{name} summary.{field}"));
            }
        }
    }

    #[test]
    fn rank_rhat_separates_converged_from_unconverged_chains() {
        let rhat_of_case = |name: &str| {
            let case = CASES.iter().find(|c| c.name == name).unwrap();
            let chains = generate(case);
            let chains: Vec<&[f64]> = chains.iter().map(Vec::as_slice).collect();
            rank_normalized_split_rhat(&chains)
        };
        assert!(rhat_of_case("mixed") < 1.01);
        assert!(rhat_of_case("shifted") > 1.05);
        assert!(rhat_of_case("sticky") > 1.05);
    }

    #[test]
    fn inverse_normal_cdf_matches_known_quantiles() {
        // scipy.stats.norm.ppf (scipy 1.17.1), covering all three AS 241 regions.
        let known = [
            (1e-300, -37.0470962993612),
            (1e-20, -9.262340089798409),
            (1e-10, -6.361340902404056),
            (0.001, -3.090232306167813),
            (0.025, -1.9599639845400545),
            (0.05, -1.6448536269514729),
            (0.3, -0.5244005127080409),
            (0.5, 0.0),
            (0.6, 0.2533471031357997),
            (0.975, 1.959963984540054),
            (0.999, 3.090232306167813),
            (1.0 - 1e-12, 7.0344869100478356),
        ];
        for (p, z) in known {
            let got = inverse_normal_cdf(p);
            assert!(
                (got - z).abs() <= 1e-13 * z.abs().max(1.0),
                "Φ⁻¹({p}) = {got}, expected {z}"
            );
        }
        assert_eq!(inverse_normal_cdf(0.0), f64::NEG_INFINITY);
        assert_eq!(inverse_normal_cdf(1.0), f64::INFINITY);
        assert!(inverse_normal_cdf(-0.1).is_nan());
        assert!(inverse_normal_cdf(1.5).is_nan());
        assert!(inverse_normal_cdf(f64::NAN).is_nan());
    }

    /// Every diagnostic, for inputs on which they are all undefined.
    fn all_diagnostics(chains: &[&[f64]]) -> [f64; 10] {
        let s = summarize(chains);
        [
            split_rhat(chains),
            rank_normalized_split_rhat(chains),
            ess(chains),
            ess_bulk(chains),
            ess_tail(chains),
            mcse_mean(chains),
            s.rhat,
            s.ess_bulk,
            s.ess_tail,
            s.mcse_mean,
        ]
    }

    #[test]
    fn too_few_draws_give_nan() {
        let three: [&[f64]; 2] = [&[1.0, 2.0, 3.5], &[0.5, 2.5, 1.0]];
        for draws in 0..MIN_DRAWS {
            let chains: Vec<&[f64]> = three.iter().map(|c| &c[..draws.min(3)]).collect();
            assert!(
                all_diagnostics(&chains).iter().all(|d| d.is_nan()),
                "{draws} draws"
            );
        }
        assert!(all_diagnostics(&[]).iter().all(|d| d.is_nan()));
        // Mean, sd and quantiles still describe whatever draws there are.
        let s = summarize(&three);
        assert_close(s.mean, 10.5 / 6.0, "mean of 3 × 2 draws");
        assert_close(s.q50, 1.5, "median of 3 × 2 draws");
        let empty = summarize(&[]);
        assert!(empty.mean.is_nan() && empty.sd.is_nan() && empty.q50.is_nan());
    }

    #[test]
    fn unequal_or_non_finite_chains_give_nan() {
        let ragged: [&[f64]; 2] = [&[1.0, 2.0, 3.0, 4.0, 5.0], &[1.0, 2.0, 3.0, 4.0]];
        assert!(all_diagnostics(&ragged).iter().all(|d| d.is_nan()));
        assert_close(summarize(&ragged).mean, 25.0 / 9.0, "mean of ragged chains");
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let chains: [&[f64]; 2] = [&[1.0, 2.0, bad, 4.0], &[1.0, 2.0, 3.0, 4.0]];
            assert!(all_diagnostics(&chains).iter().all(|d| d.is_nan()), "{bad}");
        }
        let with_nan: [&[f64]; 1] = [&[1.0, f64::NAN, 3.0, 4.0]];
        assert!(summarize(&with_nan).q50.is_nan());
    }

    #[test]
    fn constant_draws_count_as_independent_and_leave_rhat_undefined() {
        // ArviZ 0.23.4 on np.full((4, 101), 2.5): rhat nan (both methods), ess bulk 400, tail
        // 400, identity 404, mcse mean 0.
        let chain = [2.5; 101];
        let chains = [&chain[..]; 4];
        assert!(rank_normalized_split_rhat(&chains).is_nan());
        assert!(split_rhat(&chains).is_nan());
        assert_eq!(ess_bulk(&chains), 400.0);
        assert_eq!(ess_tail(&chains), 400.0);
        assert_eq!(ess(&chains), 404.0);
        assert_eq!(mcse_mean(&chains), 0.0);
    }

    #[test]
    fn fft_autocovariance_matches_direct_sum() {
        let case = &CASES[1];
        let chains = generate(case);
        let draws = Draws::new(&chains.iter().map(Vec::as_slice).collect::<Vec<_>>()).unwrap();
        // Three chains exercise both the paired and the unpaired transform.
        let draws = Draws {
            values: draws.values[..3 * draws.draws].to_vec(),
            chains: 3,
            draws: draws.draws,
        };
        let fast = mean_autocovariance(&draws);
        let n = draws.draws;
        for lag in 0..n {
            let direct = (0..draws.chains)
                .map(|c| {
                    let chain = draws.chain(c);
                    let m = mean(chain);
                    (0..n - lag)
                        .map(|t| (chain[t] - m) * (chain[t + lag] - m))
                        .sum::<f64>()
                        / n as f64
                })
                .sum::<f64>()
                / draws.chains as f64;
            assert!((fast[lag] - direct).abs() < 1e-12, "lag {lag}");
        }
    }

    #[test]
    fn quantile_follows_numpy_linear() {
        // np.quantile([3, 1, 4, 2], p) for these p: 1.0, 2.2, 2.5, 3.55, 4.0.
        let xs = [3.0, 1.0, 4.0, 2.0];
        for (p, q) in [(0.0, 1.0), (0.4, 2.2), (0.5, 2.5), (0.85, 3.55), (1.0, 4.0)] {
            assert_close(quantile(&xs, p), q, &format!("quantile {p}"));
            assert_close(quantile(&[1.0, 2.0, 3.0, 4.0], p), q, "sorted input");
        }
        assert_eq!(quantile(&[7.0], 0.3), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
        assert!(quantile(&xs, 1.5).is_nan());
        assert!(quantile(&xs, f64::NAN).is_nan());
        assert!(quantile(&[1.0, f64::NAN], 0.5).is_nan());
    }

    #[test]
    fn mean_and_sd() {
        assert_eq!(mean(&[1.0, 2.0, 6.0]), 3.0);
        assert_eq!(sd(&[1.0, 2.0, 6.0]), 7.0f64.sqrt());
        assert!(mean(&[]).is_nan());
        assert!(sd(&[1.0]).is_nan());
    }

    #[test]
    fn summary_round_trips_through_json() {
        let chains = generate(&CASES[0]);
        let chains: Vec<&[f64]> = chains.iter().map(Vec::as_slice).collect();
        let summary = summarize(&chains);
        let json = serde_json::to_string(&summary).unwrap();
        let back: Summary = serde_json::from_str(&json).unwrap();
        // Without its `float_roundtrip` feature serde_json may parse a float an ulp off.
        let values = |s: &Summary| {
            [
                s.mean,
                s.sd,
                s.q05,
                s.q25,
                s.q50,
                s.q75,
                s.q95,
                s.rhat,
                s.ess_bulk,
                s.ess_tail,
                s.mcse_mean,
            ]
        };
        for (got, want) in values(&back).into_iter().zip(values(&summary)) {
            assert!((got - want).abs() <= 1e-15 * want.abs(), "{got} != {want}");
        }
        assert!(json.contains("\"ess_tail\":"));
    }
}
