//! The sampler-quality bench's targets, each with exact answers: its energy, its box, the mean
//! of each coordinate (closed form, or rejection sampling from the untruncated Gaussian where
//! the box cuts it), and how ganger is configured for it.

use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde_json::{json, Value};

/// What a target's density is.
pub enum Kind {
    /// A Gaussian with this mean and lower Cholesky factor of its covariance.
    Gaussian { mean: Vec<f64>, lower: Vec<f64> },
    /// Haario's twisted Gaussian: x0 ~ N(0, sd0²), x1 − b (x0² − sd0²) ~ N(0, 1), the rest
    /// N(0, 1).
    Banana { b: f64, sd0: f64 },
    /// Modes at x0 = each centre with these weights, sd `sd` in every coordinate.
    Mixture {
        weights: Vec<f64>,
        centres: Vec<f64>,
        sd: f64,
    },
}

/// How ganger samples a target.
pub struct GangerSetup {
    pub stacks: usize,
    pub temperatures: usize,
    pub max_temperature: f64,
    /// Steps per chain, the first half adaptation and burn-in.
    pub steps: u64,
}

/// A target and its exact answers.
pub struct Target {
    pub name: &'static str,
    pub kind: Kind,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    /// The exact mean of each coordinate ...
    pub mean: Vec<f64>,
    /// ... and its own standard error (0 where it is known in closed form).
    pub mean_se: Vec<f64>,
    /// The weight of the mode at positive x0, for mixtures.
    pub weight: Option<f64>,
    pub ganger: GangerSetup,
}

impl Target {
    pub fn dims(&self) -> usize {
        self.min.len()
    }

    pub fn unimodal(&self) -> bool {
        self.weight.is_none()
    }

    /// The energy, `−log` of the density up to a constant.
    pub fn energy(&self, x: &[f64]) -> f64 {
        match &self.kind {
            Kind::Gaussian { mean, lower } => {
                let d = mean.len();
                let mut w = [0.0; 64];
                let mut sum = 0.0;
                for i in 0..d {
                    let dot: f64 = (0..i).map(|k| lower[i * d + k] * w[k]).sum();
                    w[i] = (x[i] - mean[i] - dot) / lower[i * d + i];
                    sum += w[i] * w[i];
                }
                0.5 * sum
            }
            Kind::Banana { b, sd0 } => {
                let twisted = x[1] - b * (x[0] * x[0] - sd0 * sd0);
                let rest: f64 = x[2..].iter().map(|v| v * v).sum();
                0.5 * ((x[0] / sd0).powi(2) + twisted * twisted + rest)
            }
            Kind::Mixture {
                weights,
                centres,
                sd,
            } => {
                let rest: f64 = x[1..].iter().map(|v| 0.5 * (v / sd).powi(2)).sum();
                let modes: Vec<f64> = weights
                    .iter()
                    .zip(centres)
                    .map(|(w, c)| w.ln() - 0.5 * ((x[0] - c) / sd).powi(2))
                    .collect();
                let high = modes.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                rest - (high + modes.iter().map(|m| (m - high).exp()).sum::<f64>().ln())
            }
        }
    }

    /// The target as `emcee_runner.py` reads it.
    pub fn emcee_spec(&self) -> Value {
        match &self.kind {
            Kind::Gaussian { mean, lower } => {
                json!({ "kind": "gaussian", "mean": mean, "precision": precision(lower, mean.len()) })
            }
            Kind::Banana { b, sd0 } => json!({ "kind": "banana", "b": b, "sd0": sd0 }),
            Kind::Mixture {
                weights,
                centres,
                sd,
            } => json!({ "kind": "mixture", "weights": weights, "centres": centres, "sd": sd }),
        }
    }
}

/// The suite, its runs' lengths multiplied by `scale`.
pub fn suite(scale: f64) -> Vec<Target> {
    let steps = |n: f64| ((n * scale) as u64).max(400);
    let unimodal = |n: f64| GangerSetup {
        stacks: 4,
        temperatures: 1,
        max_temperature: 1.0,
        steps: steps(n),
    };
    let spread = |d: usize| -> Vec<f64> {
        (0..d)
            .map(|i| 10f64.powf(-1.0 + 2.0 * i as f64 / (d - 1) as f64))
            .collect()
    };
    let mut targets = Vec::new();
    for (name, d, n) in [
        ("gaussian 2-D", 2, 40_000.0),
        ("gaussian 10-D", 10, 100_000.0),
        ("gaussian 20-D", 20, 200_000.0),
    ] {
        // Standard deviations 0.1 … 10, correlation 0.9^|i−j|; the box ±5 sd of the widest
        // coordinate (it cuts off less than 1e-6 of the mass).
        targets.push(Target {
            name,
            kind: gaussian(vec![0.0; d], &spread(d), 0.9),
            min: vec![-50.0; d],
            max: vec![50.0; d],
            mean: vec![0.0; d],
            mean_se: vec![0.0; d],
            weight: None,
            ganger: unimodal(n),
        });
    }
    targets.push(Target {
        name: "banana 4-D",
        kind: Kind::Banana { b: 0.03, sd0: 10.0 },
        // x0 within ±5 sd; x1 = twist + noise stays in [-3 − 5, 0.03 · 2400 + 5].
        min: vec![-50.0, -30.0, -10.0, -10.0],
        max: vec![50.0, 80.0, 10.0, 10.0],
        mean: vec![0.0; 4],
        mean_se: vec![0.0; 4],
        weight: None,
        ganger: unimodal(100_000.0),
    });
    targets.push(Target {
        name: "bimodal 4-D (0.3 / 0.7)",
        kind: Kind::Mixture {
            weights: vec![0.3, 0.7],
            centres: vec![-5.0, 5.0],
            sd: 0.5,
        },
        min: vec![-10.0; 4],
        max: vec![10.0; 4],
        mean: vec![0.3 * -5.0 + 0.7 * 5.0, 0.0, 0.0, 0.0],
        mean_se: vec![0.0; 4],
        weight: Some(0.7),
        ganger: GangerSetup {
            stacks: 4,
            temperatures: 8,
            max_temperature: 200.0,
            steps: steps(50_000.0),
        },
    });
    for (name, target, min, max, n) in [
        (
            "truncated 2-D (ρ 0.95)",
            gaussian(vec![0.0, 0.0], &[1.0, 1.0], 0.95),
            vec![-0.5; 2],
            vec![10.0; 2],
            40_000.0,
        ),
        (
            "truncated 5-D",
            gaussian(
                vec![0.0, 0.5, -1.0, 2.0, 0.0],
                &[1.0, 0.5, 2.0, 1.0, 0.3],
                0.7,
            ),
            vec![-0.3, 0.0, -10.0, -10.0, -0.2],
            vec![10.0, 10.0, 0.0, 1.5, 10.0],
            60_000.0,
        ),
    ] {
        let (mean, mean_se) = truncated_means(&target, &min, &max, 2_000_000);
        targets.push(Target {
            name,
            kind: target,
            min,
            max,
            mean,
            mean_se,
            weight: None,
            ganger: unimodal(n),
        });
    }
    targets
}

/// A Gaussian with standard deviations `sd` and correlation `rho^|i−j|`.
fn gaussian(mean: Vec<f64>, sd: &[f64], rho: f64) -> Kind {
    let d = sd.len();
    let covariance: Vec<f64> = (0..d * d)
        .map(|k| {
            let (i, j) = (k / d, k % d);
            sd[i] * sd[j] * rho.powi((i as i32 - j as i32).abs())
        })
        .collect();
    Kind::Gaussian {
        mean,
        lower: cholesky(&covariance, d),
    }
}

/// The mean of each coordinate of a Gaussian truncated to a box, with its standard error, from
/// `n` exact draws: draws of the whole Gaussian, those inside kept.
fn truncated_means(kind: &Kind, min: &[f64], max: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let Kind::Gaussian { mean, lower } = kind else {
        unreachable!("only Gaussians are truncated")
    };
    let d = mean.len();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2026);
    let (mut sum, mut squares, mut kept) = (vec![0.0; d], vec![0.0; d], 0usize);
    let mut z = vec![0.0; d];
    let mut x = vec![0.0; d];
    while kept < n {
        for v in z.iter_mut() {
            *v = rng.sample(StandardNormal);
        }
        for i in 0..d {
            x[i] = mean[i] + (0..=i).map(|k| lower[i * d + k] * z[k]).sum::<f64>();
        }
        if (0..d).all(|i| min[i] <= x[i] && x[i] <= max[i]) {
            kept += 1;
            for i in 0..d {
                sum[i] += x[i];
                squares[i] += x[i] * x[i];
            }
        }
    }
    let n = n as f64;
    let means: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let se = (0..d)
        .map(|i| ((squares[i] / n - means[i] * means[i]) / n).sqrt())
        .collect();
    (means, se)
}

fn cholesky(a: &[f64], d: usize) -> Vec<f64> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            l[i * d + j] = if i == j {
                (a[i * d + i] - sum).sqrt()
            } else {
                (a[i * d + j] - sum) / l[j * d + j]
            };
        }
    }
    l
}

/// The inverse covariance `L⁻ᵀ L⁻¹`, as rows.
fn precision(lower: &[f64], d: usize) -> Vec<Vec<f64>> {
    // Columns of L⁻¹ by forward substitution on the unit vectors.
    let mut inverse = vec![0.0; d * d];
    for col in 0..d {
        for i in 0..d {
            let unit = if i == col { 1.0 } else { 0.0 };
            let sum: f64 = (0..i)
                .map(|k| lower[i * d + k] * inverse[k * d + col])
                .sum();
            inverse[i * d + col] = (unit - sum) / lower[i * d + i];
        }
    }
    (0..d)
        .map(|i| {
            (0..d)
                .map(|j| {
                    (0..d)
                        .map(|k| inverse[k * d + i] * inverse[k * d + j])
                        .sum()
                })
                .collect()
        })
        .collect()
}
