//! Likelihoods factorised into job types, and the built-in ones.
//!
//! A state's energy (negative log-likelihood) is the sum of one term per job type; each term
//! can be evaluated by a different worker. Built-in likelihoods serve the demo, the tests and
//! the benchmarks, on any number of job types (each term is an equal share of the whole).

use std::fmt;

/// The engine job type of term `term` of the likelihood called `likelihood` in a distributed
/// run: `mcmc/LIKELIHOOD/TERM`. Workers declare `mcmc/LIKELIHOOD/*` to serve every term, or
/// individual terms to serve some.
pub fn job_type_name(likelihood: &str, term: usize) -> String {
    format!("mcmc/{likelihood}/{term}")
}

/// The payload of one term's evaluation at `x`: MessagePack `[term, n_terms, [x0, x1, …]]`
/// with the coordinates as 64-bit floats. The output is the term's energy as a float.
pub fn unit_payload(term: usize, n_terms: usize, x: &[f64]) -> crate::payload::Payload {
    crate::payload::to_payload(&(term as u32, n_terms as u32, x))
        .expect("integers and floats always encode")
}

/// A negative log-likelihood split into `n_job_types` terms.
pub trait Likelihood: Send + Sync {
    /// Number of terms.
    fn n_job_types(&self) -> usize;

    /// Term `job_type` of the energy at `x` (NaN or infinity make the state impossible).
    fn energy(&self, job_type: usize, x: &[f64]) -> f64;
}

/// A likelihood from a closure `(job_type, x) -> energy term`.
pub struct FnLikelihood<F> {
    n_job_types: usize,
    function: F,
}

impl<F> FnLikelihood<F>
where
    F: Fn(usize, &[f64]) -> f64 + Send + Sync,
{
    /// Wraps `function`, which is called with job types `0..n_job_types`.
    pub fn new(n_job_types: usize, function: F) -> Self {
        FnLikelihood {
            n_job_types,
            function,
        }
    }
}

impl<F> fmt::Debug for FnLikelihood<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnLikelihood")
            .field("n_job_types", &self.n_job_types)
            .finish()
    }
}

impl<F> Likelihood for FnLikelihood<F>
where
    F: Fn(usize, &[f64]) -> f64 + Send + Sync,
{
    fn n_job_types(&self) -> usize {
        self.n_job_types
    }

    fn energy(&self, job_type: usize, x: &[f64]) -> f64 {
        (self.function)(job_type, x)
    }
}

/// The built-in likelihoods, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// Stateline's demo: an isotropic standard Gaussian centred at the origin.
    Gaussian,
    /// Two Gaussian modes of sd 0.5 at x0 = −5 and x0 = +5 (other coordinates 0), weights
    /// 0.3 and 0.7: tempering is needed to move between them.
    Bimodal,
    /// The Rosenbrock banana, `Σ 100 (x[i+1] − x[i]²)² + (1 − x[i])²`, scaled by 1/20 so that
    /// its curved ridge is well inside the usual bounds.
    Rosenbrock,
}

/// Names accepted by [`Builtin::from_name`], with what each is.
pub const BUILTIN_LIKELIHOODS: &[(&str, &str)] = &[
    (
        "gaussian",
        "standard Gaussian at the origin (Stateline's demo)",
    ),
    (
        "bimodal",
        "two modes at x0 = -5 and +5, weights 0.3 and 0.7",
    ),
    ("rosenbrock", "the Rosenbrock banana, scaled by 1/20"),
];

impl Builtin {
    /// The built-in called `name`, if any.
    pub fn from_name(name: &str) -> Option<Builtin> {
        match name {
            "gaussian" => Some(Builtin::Gaussian),
            "bimodal" => Some(Builtin::Bimodal),
            "rosenbrock" => Some(Builtin::Rosenbrock),
            _ => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Gaussian => "gaussian",
            Builtin::Bimodal => "bimodal",
            Builtin::Rosenbrock => "rosenbrock",
        }
    }

    /// The whole energy at `x`.
    pub fn total_energy(self, x: &[f64]) -> f64 {
        match self {
            Builtin::Gaussian => 0.5 * x.iter().map(|v| v * v).sum::<f64>(),
            Builtin::Bimodal => {
                let sd: f64 = 0.5;
                let rest: f64 = x[1..].iter().map(|v| 0.5 * (v / sd).powi(2)).sum();
                let left = 0.3f64.ln() - 0.5 * ((x[0] + 5.0) / sd).powi(2);
                let right = 0.7f64.ln() - 0.5 * ((x[0] - 5.0) / sd).powi(2);
                let high = left.max(right);
                rest - (high + ((left - high).exp() + (right - high).exp()).ln())
            }
            Builtin::Rosenbrock => {
                x.windows(2)
                    .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
                    .sum::<f64>()
                    / 20.0
            }
        }
    }

    /// This built-in split into `n_job_types` equal terms.
    pub fn split(self, n_job_types: usize) -> SplitBuiltin {
        SplitBuiltin {
            builtin: self,
            n_job_types: n_job_types.max(1),
        }
    }
}

/// A built-in likelihood whose every term is `1 / n_job_types` of the whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitBuiltin {
    builtin: Builtin,
    n_job_types: usize,
}

impl Likelihood for SplitBuiltin {
    fn n_job_types(&self) -> usize {
        self.n_job_types
    }

    fn energy(&self, _job_type: usize, x: &[f64]) -> f64 {
        self.builtin.total_energy(x) / self.n_job_types as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_terms_add_up_to_the_whole() {
        for builtin in [Builtin::Gaussian, Builtin::Bimodal, Builtin::Rosenbrock] {
            let x = [0.3, -1.2, 2.0];
            let split = builtin.split(3);
            let sum: f64 = (0..3).map(|j| split.energy(j, &x)).sum();
            assert!(
                (sum - builtin.total_energy(&x)).abs() < 1e-12,
                "{builtin:?}"
            );
            assert_eq!(Builtin::from_name(builtin.name()), Some(builtin));
        }
        assert_eq!(Builtin::Gaussian.total_energy(&[0.0, 0.0]), 0.0);
        assert_eq!(Builtin::Rosenbrock.total_energy(&[1.0, 1.0, 1.0]), 0.0);
        // The bimodal energy is lowest at the heavier mode.
        assert!(
            Builtin::Bimodal.total_energy(&[5.0, 0.0])
                < Builtin::Bimodal.total_energy(&[-5.0, 0.0])
        );
        let f = FnLikelihood::new(2, |j, x: &[f64]| j as f64 + x[0]);
        assert_eq!(f.energy(1, &[2.0]), 3.0);
    }
}
