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

/// The payload of one term's evaluation at several points: MessagePack
/// `[term, n_terms, [[x0, x1, …], …]]` with the coordinates as 64-bit floats. The output is an
/// array of the term's energies, one 64-bit float per point, in order (see [`write_energies`]).
pub fn unit_payload<'a>(
    term: usize,
    n_terms: usize,
    points: impl ExactSizeIterator<Item = &'a [f64]>,
) -> crate::payload::Payload {
    unit_payload_with(term, n_terms, &encode_points(points))
}

/// The points part of [`unit_payload`], `[[x0, x1, …], …]`: a round encodes its points once and
/// hands the bytes to every term's unit through [`unit_payload_with`].
pub fn encode_points<'a>(points: impl ExactSizeIterator<Item = &'a [f64]>) -> Vec<u8> {
    use rmp::encode::{write_array_len, write_f64};
    let mut out = Vec::new();
    // Writing to memory cannot fail.
    let _ = write_array_len(&mut out, points.len() as u32);
    for x in points {
        let _ = write_array_len(&mut out, x.len() as u32);
        for &v in x {
            let _ = write_f64(&mut out, v);
        }
    }
    out
}

/// [`unit_payload`] from points already encoded by [`encode_points`].
pub fn unit_payload_with(term: usize, n_terms: usize, points: &[u8]) -> crate::payload::Payload {
    use rmp::encode::{write_array_len, write_uint};
    let mut out = crate::payload::Payload::with_capacity(12 + points.len());
    let _ = write_array_len(&mut out, 3);
    let _ = write_uint(&mut out, term as u64);
    let _ = write_uint(&mut out, n_terms as u64);
    out.extend_from_slice(points);
    out
}

/// A decoded MCMC unit: which term, of how many, at which points.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    /// The term (job type index).
    pub term: usize,
    /// Number of terms the likelihood has.
    pub n_terms: usize,
    /// Coordinates of each point, point after point (`n_points × dims`).
    pub coordinates: Vec<f64>,
    /// Dimensions of every point.
    pub dims: usize,
}

impl Unit {
    /// Decodes a [`unit_payload`], saying what is wrong with one that is not.
    pub fn decode(mut input: &[u8]) -> Result<Unit, String> {
        use rmp::decode::{read_array_len, read_f64, read_int};
        let bad = |what: &str| format!("not an MCMC unit [term, n_terms, [[x…], …]]: {what}");
        let r = &mut input;
        if read_array_len(r).map_err(|e| bad(&e.to_string()))? != 3 {
            return Err(bad("expected an array of 3"));
        }
        let term: u32 = read_int(r).map_err(|e| bad(&format!("term: {e}")))?;
        let n_terms: u32 = read_int(r).map_err(|e| bad(&format!("n_terms: {e}")))?;
        if term >= n_terms {
            return Err(bad(&format!("term {term} of {n_terms}")));
        }
        let n_points = read_array_len(r).map_err(|e| bad(&format!("points: {e}")))? as usize;
        // Every coordinate takes 9 bytes: never reserve more than the input could hold.
        let mut coordinates = Vec::with_capacity(r.len() / 9);
        let mut dims = None;
        for _ in 0..n_points {
            let d = read_array_len(r).map_err(|e| bad(&format!("point: {e}")))? as usize;
            if *dims.get_or_insert(d) != d {
                return Err(bad("points of different dimensions"));
            }
            for _ in 0..d {
                coordinates.push(read_f64(r).map_err(|e| bad(&format!("coordinate: {e}")))?);
            }
        }
        if !r.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(Unit {
            term: term as usize,
            n_terms: n_terms as usize,
            coordinates,
            dims: dims.unwrap_or(0),
        })
    }

    /// The points, in order.
    pub fn points(&self) -> impl Iterator<Item = &[f64]> {
        // A unit of 0-dimensional points has no coordinates to chunk.
        self.coordinates.chunks_exact(self.dims.max(1))
    }

    /// Evaluates the unit with `energy(term, n_terms, x)` and appends the energies' encoding to
    /// `output`.
    pub fn evaluate(&self, energy: impl Fn(usize, usize, &[f64]) -> f64, output: &mut Vec<u8>) {
        let energies = self.points().map(|x| energy(self.term, self.n_terms, x));
        write_energies(output, self.coordinates.len() / self.dims.max(1), energies);
    }
}

/// Appends a unit's output: a MessagePack array of `n` 64-bit floats.
pub fn write_energies(output: &mut Vec<u8>, n: usize, energies: impl Iterator<Item = f64>) {
    let _ = rmp::encode::write_array_len(output, n as u32);
    for e in energies {
        let _ = rmp::encode::write_f64(output, e);
    }
}

/// Decodes a unit's output into `energies`, which must be exactly as long.
pub fn read_energies(mut bytes: &[u8], energies: &mut [f64]) -> Result<(), String> {
    let r = &mut bytes;
    let n = rmp::decode::read_array_len(r).map_err(|e| format!("energies: {e}"))? as usize;
    if n != energies.len() {
        return Err(format!("{n} energies for {} points", energies.len()));
    }
    for e in energies.iter_mut() {
        // Any number will do: an integer energy from a worker in another language is fine.
        *e = read_number(r).ok_or("energies: not a number")?;
    }
    if !r.is_empty() {
        return Err("energies: trailing bytes".into());
    }
    Ok(())
}

/// Reads one MessagePack number (float or integer) as an `f64`.
fn read_number(r: &mut &[u8]) -> Option<f64> {
    match r.first()? {
        0xcb => rmp::decode::read_f64(r).ok(),
        0xca => rmp::decode::read_f32(r).ok().map(f64::from),
        _ => rmp::decode::read_int::<i64, _>(r).ok().map(|v| v as f64),
    }
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
