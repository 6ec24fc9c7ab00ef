//! What the posterior plots draw besides the draws themselves: the highest-density interval
//! and each chain's autocorrelation.

use super::autocovariance::mean_autocovariance;
use super::descriptive::sorted_copy;
use super::draws::{Draws, MIN_DRAWS};

/// The highest-density interval holding `prob` of `draws`: the narrowest interval between two
/// draws that contains `ceil(prob × n)` of them. ArviZ's `hdi` (default `prob` 0.94) spans one
/// draw more when `prob × n` is a whole number; for the thousands of draws a posterior has, the
/// two agree to well within the interval's Monte Carlo error.
///
/// `None` when there are no draws, a draw is NaN, or `prob` is not in (0, 1].
pub fn hdi(draws: &[f64], prob: f64) -> Option<(f64, f64)> {
    if draws.is_empty() || draws.iter().any(|x| x.is_nan()) || !(prob > 0.0 && prob <= 1.0) {
        return None;
    }
    let sorted = sorted_copy(draws);
    let n = sorted.len();
    // The interval spans `inside` draws, so its ends are `inside - 1` places apart.
    let inside = ((prob * n as f64).ceil() as usize).clamp(1, n);
    let gap = inside - 1;
    let start = (0..n - gap)
        .min_by(|&a, &b| (sorted[a + gap] - sorted[a]).total_cmp(&(sorted[b + gap] - sorted[b])))
        .unwrap_or(0);
    Some((sorted[start], sorted[start + gap]))
}

/// Lags up to which [`autocorrelation`] sums directly, O(n × lags), rather than by FFT,
/// O(n log n) with a large constant: at a million draws the sum is the faster below about this.
const DIRECT_LAGS: usize = 128;

/// The autocorrelation of one chain at lags `0..=max_lag` (fewer when the chain is shorter):
/// its autocovariance about its own mean with the 1/n normalisation, over its variance, as
/// ArviZ's `autocorr`. Summed directly for a few lags, by FFT for many.
///
/// Empty when the chain has fewer than 4 draws or a non-finite one; all ones for a constant
/// chain, which is as correlated with itself as a chain can be.
pub fn autocorrelation(chain: &[f64], max_lag: usize) -> Vec<f64> {
    if chain.len() < MIN_DRAWS || chain.iter().any(|x| !x.is_finite()) {
        return Vec::new();
    }
    let lags = chain.len().min(max_lag.saturating_add(1));
    let acov = if lags <= DIRECT_LAGS {
        direct_autocovariance(chain, lags)
    } else {
        let Some(draws) = Draws::new(&[chain]) else {
            return Vec::new();
        };
        let mut acov = mean_autocovariance(&draws);
        acov.truncate(lags);
        acov
    };
    if acov[0] <= 0.0 {
        return vec![1.0; lags];
    }
    acov.iter().map(|c| c / acov[0]).collect()
}

/// The autocovariance of `chain` about its mean at lags `0..lags`, with the 1/n normalisation,
/// summed term by term.
fn direct_autocovariance(chain: &[f64], lags: usize) -> Vec<f64> {
    let n = chain.len();
    let mean = chain.iter().sum::<f64>() / n as f64;
    let centred: Vec<f64> = chain.iter().map(|x| x - mean).collect();
    (0..lags)
        .map(|lag| {
            let sum: f64 = centred[..n - lag]
                .iter()
                .zip(&centred[lag..])
                .map(|(a, b)| a * b)
                .sum();
            sum / n as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::normal::inverse_normal_cdf;
    use super::*;

    /// `n` draws at the quantiles `(i + ½) / n` of the distribution whose quantile function is
    /// `quantile`: a sample whose HDI converges to the exact one at rate 1/n.
    fn quantile_grid(n: usize, quantile: impl Fn(f64) -> f64) -> Vec<f64> {
        (0..n)
            .map(|i| quantile((i as f64 + 0.5) / n as f64))
            .collect()
    }

    #[test]
    fn the_hdi_of_a_normal_is_its_central_interval() {
        let draws = quantile_grid(100_000, inverse_normal_cdf);
        let (lo, hi) = hdi(&draws, 0.94).unwrap();
        // Φ⁻¹(0.97) = 1.880794: the 94 % HDI of a symmetric unimodal density is central.
        assert!((lo + 1.880_794).abs() < 1e-3, "{lo}");
        assert!((hi - 1.880_794).abs() < 1e-3, "{hi}");
    }

    #[test]
    fn the_hdi_of_a_density_piled_against_its_bound_starts_at_the_bound() {
        // Exponential(1): the densest 94 % is [0, −ln 0.06], not the central [q3%, q97%].
        let draws = quantile_grid(100_000, |p| -(1.0 - p).ln());
        let (lo, hi) = hdi(&draws, 0.94).unwrap();
        assert!(lo < 1e-4, "{lo}");
        assert!((hi - 2.813_411).abs() < 2e-3, "{hi}");
        // Unordered input gives the same interval.
        let mut shuffled = draws.clone();
        shuffled.reverse();
        shuffled.swap(0, 50_000);
        assert_eq!(hdi(&shuffled, 0.94), Some((lo, hi)));
    }

    #[test]
    fn the_hdi_of_degenerate_input() {
        assert_eq!(hdi(&[], 0.94), None);
        assert_eq!(hdi(&[1.0, f64::NAN], 0.94), None);
        assert_eq!(hdi(&[1.0, 2.0], 0.0), None);
        assert_eq!(hdi(&[1.0, 2.0], 1.5), None);
        assert_eq!(hdi(&[3.0], 0.94), Some((3.0, 3.0)));
        assert_eq!(hdi(&[5.0, 1.0, 2.0], 1.0), Some((1.0, 5.0)));
    }

    #[test]
    fn the_autocorrelation_of_an_ar1_chain_is_phi_to_the_lag() {
        // x_t = φ x_{t−1} + ε_t has autocorrelation φ^k at lag k, whatever the noise's law.
        let (phi, n) = (0.9, 200_000);
        let mut state: u32 = 12_345;
        let mut x = 0.0;
        let chain: Vec<f64> = (0..n)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                x = phi * x + (f64::from(state >> 8) / 16_777_216.0 - 0.5);
                x
            })
            .collect();
        let rho = autocorrelation(&chain, 40);
        assert_eq!(rho.len(), 41);
        assert_eq!(rho[0], 1.0);
        // Bartlett's bound on the sampling sd of an AR(1)'s autocorrelation at any lag.
        let sd = ((1.0 + phi * phi) / (1.0 - phi * phi) / n as f64).sqrt();
        for (k, r) in rho.iter().enumerate() {
            let expected = phi.powi(k as i32);
            assert!(
                (r - expected).abs() < 5.0 * sd,
                "lag {k}: {r} vs {expected}"
            );
        }
    }

    #[test]
    fn the_direct_sum_and_the_fft_give_the_same_autocorrelation() {
        let chain: Vec<f64> = (0..5000)
            .map(|t| (t as f64 * 0.37).sin() + (t as f64 * 0.011).cos() * 2.0)
            .collect();
        let direct = autocorrelation(&chain, DIRECT_LAGS - 1);
        let by_fft = autocorrelation(&chain, 4 * DIRECT_LAGS);
        assert_eq!(direct.len(), DIRECT_LAGS);
        for (lag, (a, b)) in direct.iter().zip(&by_fft).enumerate() {
            assert!((a - b).abs() < 1e-12, "lag {lag}: {a} vs {b}");
        }
    }

    #[test]
    fn the_autocorrelation_of_short_constant_or_broken_chains() {
        assert!(autocorrelation(&[1.0, 2.0, 3.0], 5).is_empty());
        assert!(autocorrelation(&[1.0, 2.0, f64::INFINITY, 3.0], 5).is_empty());
        assert_eq!(autocorrelation(&[2.0; 10], 3), vec![1.0; 4]);
        // Fewer lags than asked when the chain is short.
        assert_eq!(autocorrelation(&[1.0, -1.0, 1.0, -1.0, 1.0], 100).len(), 5);
    }
}
