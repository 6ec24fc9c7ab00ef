//! Run with: `cargo run --release --example plate_rotation`
//!
//! A geophysical inversion with the embedded parallel-tempering sampler: recover a tectonic
//! plate's finite rotation (Euler pole latitude and longitude, rotation angle, all in degrees)
//! from the noisy horizontal displacements of 60 sites on the plate. The data are synthetic and
//! deterministic: a seeded xorshift generator scatters the sites over latitudes 20..55° and
//! longitudes −120..−70°, each site is rotated about the true pole by Rodrigues' formula, and its
//! east and north displacement (km on a 6371 km Earth) gets Gaussian noise of σ = 2 km.
//!
//! The likelihood factorises over data subsets: the sites are split into four regions (the
//! north-west, north-east, south-west and south-east quarters of the plate), and job type `j`
//! returns the negative log-likelihood of region `j` alone (its sum of squared residuals over
//! 2σ²). The sampler adds the four terms. Here `ganger::mcmc::run_embedded` evaluates them on
//! this process's threads; on a cluster the same terms would be served by workers as job types,
//! one unit per term per proposed state: `ganger-delegator mcmc` runs distributed with the
//! built-in likelihoods, and custom likelihood workers, in any language, speak PROTOCOL.md's
//! MCMC units (§5).
//!
//! The pole of a finite rotation has a mirror: (lat, lon, angle) and (−lat, lon + 180°, −angle)
//! are the same rotation. Restricting the angle to be ≥ 0 keeps only one of them.
//!
//! After the run the example reads the cold chains' CSV files, drops the adaptation phase,
//! prints the posterior of each parameter beside the truth, and fails if the truth lies more
//! than 5 posterior sd from the mean or if any R-hat exceeds 1.1.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use ganger::mcmc::{diagnostics, run_embedded, FnLikelihood, McmcConfig};

/// Earth's mean radius, in km.
const EARTH_RADIUS_KM: f64 = 6371.0;
/// Standard deviation of the noise on each displacement component, in km.
const NOISE_KM: f64 = 2.0;
/// Number of sites.
const N_SITES: usize = 60;
/// Number of job types: the regions the sites are split into.
const N_REGIONS: usize = 4;
/// The true rotation: pole latitude, pole longitude, angle (degrees).
const TRUTH: [f64; 3] = [48.0, -72.0, 2.3];
/// Parameter names, in the order of the sampler's coordinates.
const NAMES: [&str; 3] = ["pole lat (°)", "pole lon (°)", "angle (°)"];
/// Where the run writes its chains and summary, relative to the current directory.
const OUTPUT: &str = "plate-rotation-output";
/// Chains per stack.
const N_TEMPERATURES: usize = 4;
/// Independent stacks.
const N_STACKS: usize = 2;
/// Steps each chain makes.
const STEPS_PER_CHAIN: u64 = 40_000;
/// Steps of adaptation, dropped from the posterior summary as burn-in.
const ADAPTATION_STEPS: u64 = 20_000;

/// A seeded xorshift64* generator with Box–Muller normals: enough for synthetic data.
struct Rng {
    state: u64,
    spare: Option<f64>,
}

impl Rng {
    /// A generator whose stream is fixed by `seed`.
    fn new(seed: u64) -> Rng {
        Rng {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            spare: None,
        }
    }

    /// A uniform draw in [0, 1).
    fn uniform(&mut self) -> f64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform draw in [low, high).
    fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform()
    }

    /// A standard normal draw (Box–Muller, the second value of each pair kept for next time).
    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = 1.0 - self.uniform(); // in (0, 1]: the logarithm stays finite
        let u2 = self.uniform();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        self.spare = Some(radius * angle.sin());
        radius * angle.cos()
    }
}

/// The unit vector (Earth-centred, Earth-fixed) at latitude `lat` and longitude `lon`, degrees.
fn unit_vector(lat: f64, lon: f64) -> [f64; 3] {
    let (lat, lon) = (lat.to_radians(), lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

/// The cross product `a × b`.
fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// The dot product `a · b`.
fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// `v` rotated by `angle` radians about the unit axis `k` (Rodrigues' formula).
fn rotate(v: [f64; 3], k: [f64; 3], angle: f64) -> [f64; 3] {
    let (sin, cos) = angle.sin_cos();
    let k_cross_v = cross(k, v);
    let k_dot_v = dot(k, v);
    std::array::from_fn(|i| v[i] * cos + k_cross_v[i] * sin + k[i] * k_dot_v * (1.0 - cos))
}

/// A site on the plate: where it is and which region (job type) its data belong to.
struct Site {
    /// Unit position vector.
    position: [f64; 3],
    /// Local east unit vector.
    east: [f64; 3],
    /// Local north unit vector.
    north: [f64; 3],
    /// Region index, `0..N_REGIONS`.
    region: usize,
}

impl Site {
    /// The site at latitude `lat`, longitude `lon` (degrees), in region `region`.
    fn new(lat: f64, lon: f64, region: usize) -> Site {
        let (phi, lambda) = (lat.to_radians(), lon.to_radians());
        Site {
            position: unit_vector(lat, lon),
            east: [-lambda.sin(), lambda.cos(), 0.0],
            north: [
                -phi.sin() * lambda.cos(),
                -phi.sin() * lambda.sin(),
                phi.cos(),
            ],
            region,
        }
    }

    /// The site's (east, north) displacement in km under the rotation `x` = [lat, lon, angle]
    /// (degrees): the horizontal components of the difference between rotated and original
    /// positions.
    fn displacement(&self, x: &[f64]) -> [f64; 2] {
        let axis = unit_vector(x[0], x[1]);
        let moved = rotate(self.position, axis, x[2].to_radians());
        let delta: [f64; 3] =
            std::array::from_fn(|i| (moved[i] - self.position[i]) * EARTH_RADIUS_KM);
        [dot(delta, self.east), dot(delta, self.north)]
    }
}

/// Scatters the sites over the plate, assigns each to its quarter of the plate, and returns
/// them with their noisy observed (east, north) displacements in km.
fn synthesize(seed: u64) -> Vec<(Site, [f64; 2])> {
    let mut rng = Rng::new(seed);
    (0..N_SITES)
        .map(|_| {
            let lat = rng.between(20.0, 55.0);
            let lon = rng.between(-120.0, -70.0);
            let region = 2 * usize::from(lat < 37.5) + usize::from(lon >= -95.0);
            let site = Site::new(lat, lon, region);
            let clean = site.displacement(&TRUTH);
            let observed = [
                clean[0] + NOISE_KM * rng.normal(),
                clean[1] + NOISE_KM * rng.normal(),
            ];
            (site, observed)
        })
        .collect()
}

/// The run's configuration, as the JSON a user would put in a config file.
fn config_json() -> String {
    format!(
        r#"{{
  "nJobTypes": {N_REGIONS},
  "nStacks": {N_STACKS},
  "nTemperatures": {N_TEMPERATURES},
  "nSamplesTotal": {samples},
  "min": [-90, -180, 0],
  "max": [90, 180, 10],
  "adaptationSteps": {ADAPTATION_STEPS},
  "outputPath": "{OUTPUT}",
  "loggingRateSec": 5,
  "checkpointIntervalSec": 0,
  "seed": 7,
  "names": {names}
}}"#,
        samples = STEPS_PER_CHAIN * N_STACKS as u64,
        names = serde_json::to_string(&NAMES).expect("names serialise"),
    )
}

/// Reads the first `n_dims` columns of a chain file, dropping the first `skip` rows.
fn read_columns(path: &Path, n_dims: usize, skip: usize) -> anyhow::Result<Vec<Vec<f64>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut columns = vec![Vec::new(); n_dims];
    for (number, line) in text.lines().enumerate().skip(1 + skip) {
        let mut fields = line.split(',');
        for column in &mut columns {
            let value = fields
                .next()
                .and_then(|field| field.parse::<f64>().ok())
                .with_context(|| format!("{} line {}: not a sample", path.display(), number + 1))?;
            column.push(value);
        }
    }
    Ok(columns)
}

/// Synthesizes the data, runs the sampler, and checks the posterior against the truth.
fn main() -> anyhow::Result<()> {
    let data = synthesize(2024);
    let mut regions: [Vec<(Site, [f64; 2])>; N_REGIONS] = Default::default();
    for (site, observed) in data {
        regions[site.region].push((site, observed));
    }
    let sizes: Vec<usize> = regions.iter().map(Vec::len).collect();
    println!("{N_SITES} sites in regions NW/NE/SW/SE of {sizes:?}; noise σ = {NOISE_KM} km");

    // Job type j: the negative log-likelihood of region j's displacements.
    let likelihood = FnLikelihood::new(N_REGIONS, move |region, x: &[f64]| {
        regions[region]
            .iter()
            .map(|(site, observed)| {
                let predicted = site.displacement(x);
                let east = predicted[0] - observed[0];
                let north = predicted[1] - observed[1];
                (east * east + north * north) / (2.0 * NOISE_KM * NOISE_KM)
            })
            .sum::<f64>()
    });

    let config = McmcConfig::from_file_contents(&config_json(), Path::new("plate_rotation.json"))?;
    let started = Instant::now();
    let report = run_embedded(&config, likelihood)?;
    if !report.complete {
        bail!("the run stopped after {} steps", report.steps);
    }
    println!(
        "{} steps per chain on {} chains in {:.2} s ({:.0} steps/s); output in {OUTPUT}/",
        report.steps,
        config.n_chains(),
        started.elapsed().as_secs_f64(),
        report.steps_per_sec
    );

    // The cold chain of each stack, after the adaptation phase.
    let n_dims = TRUTH.len();
    let mut cold = Vec::with_capacity(N_STACKS);
    for stack in 0..N_STACKS {
        let path = Path::new(OUTPUT).join(format!("{}.csv", stack * N_TEMPERATURES));
        cold.push(read_columns(&path, n_dims, ADAPTATION_STEPS as usize)?);
    }
    println!(
        "\n{:<13} {:>9} {:>10} {:>8} {:>21} {:>7} {:>8}",
        "parameter", "truth", "mean", "sd", "90% interval", "R-hat", "ESS"
    );
    let mut failures = Vec::new();
    for (d, (name, truth)) in NAMES.iter().zip(TRUTH).enumerate() {
        let chains: Vec<&[f64]> = cold.iter().map(|c| c[d].as_slice()).collect();
        let s = diagnostics::summarize(&chains);
        println!(
            "{name:<13} {truth:>9.3} {:>10.4} {:>8.4} [{:>9.4}, {:>9.4}] {:>7.4} {:>8.0}",
            s.mean, s.sd, s.q05, s.q95, s.rhat, s.ess_bulk
        );
        // Written so that a NaN statistic counts as a failure.
        let close = (truth - s.mean).abs() <= 5.0 * s.sd;
        if !close {
            failures.push(format!(
                "{name}: truth {truth} is {:.1} sd from the posterior mean {:.4}",
                (truth - s.mean).abs() / s.sd,
                s.mean
            ));
        }
        let converged = s.rhat <= 1.1;
        if !converged {
            failures.push(format!("{name}: R-hat {:.3} > 1.1", s.rhat));
        }
    }
    if !failures.is_empty() {
        bail!("the inversion failed:\n  {}", failures.join("\n  "));
    }
    println!("\nthe true rotation lies within the posterior; the chains agree (R-hat ≤ 1.1)");
    Ok(())
}
