//! Correlated Gaussian targets for the statistical tests, with what is known about them
//! exactly: their moments truncated to a box by quadrature (2-D) or by rejection sampling from
//! the untruncated Gaussian (any dimension), and how far an estimated covariance is from theirs.

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

/// A Gaussian with mean `mean` and covariance `covariance` (row-major).
pub struct Gaussian {
    pub mean: Vec<f64>,
    pub covariance: Vec<f64>,
    /// Lower Cholesky factor of the covariance.
    lower: Vec<f64>,
}

impl Gaussian {
    pub fn new(mean: Vec<f64>, covariance: Vec<f64>) -> Gaussian {
        let d = mean.len();
        let lower = super::super::adaptation::cholesky(&covariance, d).expect("positive definite");
        Gaussian {
            mean,
            covariance,
            lower,
        }
    }

    /// Standard deviations `sd` and correlation `rho^|i - j|` between coordinates i and j.
    pub fn ar1(mean: Vec<f64>, sd: &[f64], rho: f64) -> Gaussian {
        let d = sd.len();
        let covariance = (0..d * d)
            .map(|k| {
                let (i, j) = (k / d, k % d);
                sd[i] * sd[j] * rho.powi((i as i32 - j as i32).abs())
            })
            .collect();
        Gaussian::new(mean, covariance)
    }

    pub fn dims(&self) -> usize {
        self.mean.len()
    }

    /// `½ (x − μ)ᵀ Σ⁻¹ (x − μ)`, by forward substitution.
    pub fn energy(&self, x: &[f64]) -> f64 {
        let d = self.dims();
        let mut w = vec![0.0; d];
        for i in 0..d {
            let sum: f64 = (0..i).map(|k| self.lower[i * d + k] * w[k]).sum();
            w[i] = (x[i] - self.mean[i] - sum) / self.lower[i * d + i];
        }
        0.5 * w.iter().map(|v| v * v).sum::<f64>()
    }

    /// Exact draws from the Gaussian truncated to the box `[min, max]`: draws from the whole
    /// Gaussian, keeping those inside, until there are `n`.
    pub fn truncated_draws(&self, min: &[f64], max: &[f64], n: usize, seed: u64) -> Vec<Vec<f64>> {
        let d = self.dims();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut kept = Vec::with_capacity(n);
        let mut z = vec![0.0; d];
        while kept.len() < n {
            for v in z.iter_mut() {
                *v = StandardNormal.sample(&mut rng);
            }
            let x: Vec<f64> = (0..d)
                .map(|i| self.mean[i] + (0..=i).map(|k| self.lower[i * d + k] * z[k]).sum::<f64>())
                .collect();
            if x.iter()
                .zip(min.iter().zip(max))
                .all(|(x, (lo, hi))| lo <= x && x <= hi)
            {
                kept.push(x);
            }
        }
        kept
    }

    /// The eigenvalues of `Σ^{-1/2} C Σ^{-1/2}`: how many times wider `covariance` C is than
    /// this Gaussian's along each of its principal directions relative to Σ (1 everywhere when
    /// they are equal).
    pub fn relative_eigenvalues(&self, covariance: &[f64]) -> Vec<f64> {
        let d = self.dims();
        // M = L⁻¹ C L⁻ᵀ, by solving L Y = C, then L Mᵀ = Yᵀ.
        let solve = |b: &[f64]| -> Vec<f64> {
            let mut y = vec![0.0; d * d];
            for col in 0..d {
                for i in 0..d {
                    let sum: f64 = (0..i).map(|k| self.lower[i * d + k] * y[k * d + col]).sum();
                    y[i * d + col] = (b[i * d + col] - sum) / self.lower[i * d + i];
                }
            }
            y
        };
        let y = solve(covariance);
        let yt: Vec<f64> = (0..d * d).map(|k| y[(k % d) * d + k / d]).collect();
        let m = solve(&yt);
        symmetric_eigenvalues(m, d)
    }
}

/// Eigenvalues of a symmetric matrix by cyclic Jacobi rotations.
pub fn symmetric_eigenvalues(mut a: Vec<f64>, d: usize) -> Vec<f64> {
    for _sweep in 0..100 {
        let off: f64 = (0..d * d)
            .filter(|k| k / d != k % d)
            .map(|k| a[k] * a[k])
            .sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                if a[p * d + q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * a[p * d + q]);
                // signum(0) is 1: equal diagonal entries rotate by 45°.
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
            }
        }
    }
    (0..d).map(|i| a[i * d + i]).collect()
}

/// Mean and standard deviation of coordinates 0 and 1 of a 2-D density `exp(-energy)` on the
/// box `[lo, hi]²`, by Simpson's rule on an `n × n` grid (n even): the box's edges are the grid's,
/// so the truncation costs no accuracy.
pub fn moments_by_quadrature(
    energy: impl Fn(&[f64]) -> f64,
    lo: f64,
    hi: f64,
    n: usize,
) -> [(f64, f64); 2] {
    let h = (hi - lo) / n as f64;
    let weight = |i: usize| match i {
        0 => 1.0,
        i if i == n => 1.0,
        i if i % 2 == 1 => 4.0,
        _ => 2.0,
    };
    let mut sums = [0.0; 5];
    for i in 0..=n {
        for j in 0..=n {
            let x = [lo + i as f64 * h, lo + j as f64 * h];
            let w = weight(i) * weight(j) * (-energy(&x)).exp();
            for (k, term) in [1.0, x[0], x[1], x[0] * x[0], x[1] * x[1]]
                .into_iter()
                .enumerate()
            {
                sums[k] += w * term;
            }
        }
    }
    let moment = |k: usize| sums[k] / sums[0];
    [1, 2].map(|k| {
        let mean = moment(k);
        (mean, (moment(k + 2) - mean * mean).sqrt())
    })
}

#[test]
fn the_helpers_agree_with_each_other_and_with_closed_forms() {
    // Untruncated (the box holds ±8.5 sd), quadrature gives the Gaussian's own moments.
    let g = Gaussian::ar1(vec![0.5, -0.25], &[1.0, 0.5], 0.6);
    let [(m0, s0), (m1, s1)] = moments_by_quadrature(|x| g.energy(x), -9.0, 9.0, 600);
    assert!(
        (m0 - 0.5).abs() < 1e-9 && (s0 - 1.0).abs() < 1e-9,
        "{m0} {s0}"
    );
    assert!(
        (m1 + 0.25).abs() < 1e-9 && (s1 - 0.5).abs() < 1e-9,
        "{m1} {s1}"
    );
    // Truncated: rejection sampling agrees with quadrature within its own error.
    let g = Gaussian::ar1(vec![0.0, 0.0], &[1.0, 1.0], 0.95);
    let [(m0, s0), _] = moments_by_quadrature(|x| g.energy(x), -0.5, 10.0, 600);
    assert!(
        (m0 - 0.5645).abs() < 5e-4,
        "the issue's quadrature gave 0.5645: {m0}"
    );
    let draws = g.truncated_draws(&[-0.5, -0.5], &[10.0, 10.0], 40_000, 1);
    let mean = draws.iter().map(|x| x[0]).sum::<f64>() / draws.len() as f64;
    assert!((mean - m0).abs() < 4.0 * s0 / 200.0, "{mean} vs {m0}");
    // Relative eigenvalues: 1 for the Gaussian's own covariance, 4 for four times it.
    let g = Gaussian::ar1(vec![0.0; 4], &[0.1, 1.0, 3.0, 10.0], 0.9);
    for (factor, expected) in [(1.0, 1.0), (4.0, 4.0)] {
        let c: Vec<f64> = g.covariance.iter().map(|v| v * factor).collect();
        for e in g.relative_eigenvalues(&c) {
            assert!((e - expected).abs() < 1e-8, "{e}");
        }
    }
    let mut eig = symmetric_eigenvalues(vec![2.0, 1.0, 1.0, 2.0], 2);
    eig.sort_by(f64::total_cmp);
    assert!((eig[0] - 1.0).abs() < 1e-12 && (eig[1] - 3.0).abs() < 1e-12);
}
