//! `cargo bench --bench sampler_quality`
//!
//! How good ganger's sampler is, beside emcee (Foreman-Mackey et al.'s affine-invariant
//! ensemble sampler, the stretch move), on targets with exact answers: correlated Gaussians of
//! 2, 10 and 20 dimensions with scales from 0.1 to 10, a twisted Gaussian (banana), a bimodal
//! mixture with unequal weights, and Gaussians truncated by the box with their mass against
//! its walls (see `sampler_quality/targets.rs`). For each target and sampler it prints:
//!
//! - the largest bias of a coordinate's mean, in Monte Carlo standard errors (the MCSE from the
//!   draws' ESS, combined with the reference's own error where that is a rejection sample);
//! - the smallest bulk ESS over the coordinates, per second of the whole run and per likelihood
//!   evaluation (only points inside the box count, for both);
//! - for the mixture, the weight of the heavier mode (exactly 0.7).
//!
//! Fairness: both samplers run on the same single core (this process pins itself, ganger's
//! writer thread included, and emcee's Python process inherits the pin; rayon and numpy get one
//! thread), start uniformly in the box, get the same number of likelihood evaluations (emcee
//! 32 walkers, or 2d + 2, for as many steps as that takes), discard the first half of their
//! steps (ganger's adaptation phase and burn-in; emcee's burn-in), and have their diagnostics
//! computed by the same code (ganger's `diagnostics`, which matches ArviZ: emcee's walkers are
//! its chains, ganger's stacks are). emcee evaluates its log probability vectorised with numpy
//! over the walkers, its fastest form; ganger evaluates a Rust closure in process, as an
//! embedded user would, writing its chain files and summary as every run does. Per evaluation
//! is the comparison that carries over to expensive likelihoods.
//!
//! Repetitions are interleaved (emcee, ganger, emcee, …) with a new seed each; figures are
//! medians with their range. emcee comes from pip: the bench installs `emcee` and `numpy` if
//! `python3` lacks them and says so when it cannot, then measures ganger alone.
//! `-- --test` runs tiny sizes once (CI); `-- NAME` runs the targets whose names contain NAME;
//! `--reps N` sets the repetitions (default 3).

mod common;

#[path = "sampler_quality/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use common::median_range;
use ganger::mcmc::output::{read_columns, ChainFiles};
use ganger::mcmc::{
    diagnostics, run_with_status, Existing, FnLikelihood, InProcess, McmcConfig, Silent,
};
use targets::Target;

/// What one run of a sampler gave: its draws after the burn-in and what they cost.
struct Draws {
    /// `chains[chain][dimension][draw]`.
    chains: Vec<Vec<Vec<f64>>>,
    seconds: f64,
    evaluations: u64,
}

/// What the draws say about the sampler.
struct Quality {
    max_abs_bias: f64,
    min_ess: f64,
    ess_per_second: f64,
    ess_per_evaluation: f64,
    weight: Option<(f64, f64)>,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let test = args.iter().any(|a| a == "--test");
    let reps = match args.iter().position(|a| a == "--reps") {
        Some(i) => args.get(i + 1).context("--reps N")?.parse()?,
        None if test => 1,
        None => 3,
    };
    let filter = args
        .iter()
        .find(|a| !a.starts_with("--") && a.parse::<usize>().is_err())
        .cloned();
    pin_to_one_core()?;
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let emcee = emcee_available(test);
    let scale = if test { 0.02 } else { 1.0 };
    let scratch = std::env::temp_dir().join(format!("ganger-quality-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    println!(
        "| target | d | sampler | max abs bias / MCSE | min bulk ESS | ESS/s | ESS per 1000 evaluations | weight of x0 > 0 |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---|");
    let mut ratios = Vec::new();
    for target in targets::suite(scale) {
        if filter
            .as_ref()
            .is_some_and(|f| !target.name.contains(f.as_str()))
        {
            continue;
        }
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for rep in 0..reps {
            let seed = 1000 + rep as u64;
            if let Some(python) = &emcee {
                let draws = run_emcee(python, &target, seed, &scratch)?;
                theirs.push(assess(&target, &draws));
            }
            let draws = run_ganger(&target, seed, &scratch)?;
            ours.push(assess(&target, &draws));
        }
        print_rows(&target, "ganger", &ours);
        if !theirs.is_empty() {
            print_rows(&target, "emcee", &theirs);
            ratios.push((target.name, target.unimodal(), ours, theirs));
        }
    }
    std::fs::remove_dir_all(&scratch).ok();
    if !ratios.is_empty() {
        println!("\n| target | ESS/s ganger ÷ emcee | ESS per evaluation ganger ÷ emcee |");
        println!("|---|---:|---:|");
        for (name, _, ours, theirs) in &ratios {
            let per_second: Vec<f64> = ours
                .iter()
                .zip(theirs)
                .map(|(o, t)| o.ess_per_second / t.ess_per_second)
                .collect();
            let per_evaluation: Vec<f64> = ours
                .iter()
                .zip(theirs)
                .map(|(o, t)| o.ess_per_evaluation / t.ess_per_evaluation)
                .collect();
            println!(
                "| {name} | {} | {} |",
                median_range(&per_second, 2),
                median_range(&per_evaluation, 2)
            );
        }
    }
    Ok(())
}

/// Pins this process (and every thread and child it starts from now on) to its last CPU.
fn pin_to_one_core() -> Result<()> {
    // SAFETY: `cpu_set_t` is plain data; the calls only read and write the set given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) != 0 {
            bail!("sched_getaffinity: {}", std::io::Error::last_os_error());
        }
        let last = (0..libc::CPU_SETSIZE as usize)
            .rev()
            .find(|&cpu| libc::CPU_ISSET(cpu, &set))
            .context("no CPU in this process's affinity set")?;
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(last, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
            bail!("sched_setaffinity: {}", std::io::Error::last_os_error());
        }
        println!("pinned to CPU {last} (ganger, its writer thread and emcee's process alike)\n");
    }
    Ok(())
}

/// The Python that has emcee and numpy, installing them with pip if needed (not in `--test`
/// mode); `None`, said out loud, when there is none.
fn emcee_available(test: bool) -> Option<PathBuf> {
    let python = PathBuf::from("python3");
    let has = || {
        Command::new(&python)
            .args(["-c", "import emcee, numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has() {
        return Some(python);
    }
    if !test {
        println!("emcee or numpy missing: installing them with pip");
        let installed = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "emcee", "numpy"])
            .status()
            .is_ok_and(|s| s.success());
        if installed && has() {
            return Some(python);
        }
    }
    println!(
        "emcee UNAVAILABLE (python3 -c 'import emcee, numpy' fails): measuring ganger alone\n"
    );
    None
}

/// A ganger run: `run_with_status` in this process on the target's energy, one job type.
fn run_ganger(target: &Target, seed: u64, scratch: &Path) -> Result<Draws> {
    let setup = &target.ganger;
    let output = scratch.join("ganger");
    let text = serde_json::json!({
        "nJobTypes": 1,
        "nStacks": setup.stacks,
        "nTemperatures": setup.temperatures,
        "nSamplesTotal": setup.stacks as u64 * setup.steps,
        "min": target.min,
        "max": target.max,
        "maxTemperature": setup.max_temperature.max(1.0001),
        "outputPath": output,
        "loggingRateSec": 3600,
        "checkpointIntervalSec": 0,
        "seed": seed,
    })
    .to_string();
    let config = McmcConfig::parse(
        &text,
        "sampler_quality.json",
        ganger::mcmc::ConfigFormat::Json,
    )?;
    let evaluations = AtomicU64::new(0);
    let likelihood = FnLikelihood::new(1, |_, x: &[f64]| {
        evaluations.fetch_add(1, Ordering::Relaxed);
        target.energy(x)
    });
    let started = Instant::now();
    let report = run_with_status(
        &config,
        &mut InProcess::new(likelihood),
        // Its own scratch folder, replaced run after run.
        Existing::Overwrite,
        &AtomicBool::new(false),
        &Silent,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    if !report.complete {
        bail!("the ganger run on {} stopped early", target.name);
    }
    let chains = (0..setup.stacks)
        .map(|stack| {
            let path = ChainFiles::path(&output, stack * setup.temperatures);
            Ok(read_columns(&path, target.dims(), config.burn_in, true)?.states)
        })
        .collect::<Result<Vec<_>>>()?;
    std::fs::remove_dir_all(&output).ok();
    Ok(Draws {
        chains,
        seconds,
        evaluations: evaluations.into_inner(),
    })
}

/// An emcee run with as many evaluations as ganger's, through `emcee_runner.py`.
fn run_emcee(python: &Path, target: &Target, seed: u64, scratch: &Path) -> Result<Draws> {
    let d = target.dims();
    let walkers = (2 * d + 2).max(32);
    let setup = &target.ganger;
    let budget = (setup.stacks * setup.temperatures) as u64 * setup.steps;
    let spec = serde_json::json!({
        "target": target.emcee_spec(),
        "min": target.min,
        "max": target.max,
        "walkers": walkers,
        "steps": (budget / walkers as u64).max(8),
        "seed": seed,
    });
    let spec_path = scratch.join("emcee.json");
    let chain_path = scratch.join("emcee.f64");
    std::fs::write(&spec_path, spec.to_string())?;
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/emcee_runner.py");
    let output = Command::new(python)
        .arg(&runner)
        .args([&spec_path, &chain_path])
        .env("OMP_NUM_THREADS", "1")
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        .output()
        .with_context(|| format!("cannot run {}", runner.display()))?;
    if !output.status.success() {
        bail!(
            "emcee_runner.py failed on {}: {}",
            target.name,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let steps = report["steps"].as_u64().context("steps")? as usize;
    let bytes = std::fs::read(&chain_path)?;
    let values: Vec<f64> = bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect();
    if values.len() != steps * walkers * d {
        bail!(
            "emcee wrote {} values, not {steps} × {walkers} × {d}",
            values.len()
        );
    }
    let chains = (0..walkers)
        .map(|w| {
            (0..d)
                .map(|i| {
                    (0..steps)
                        .map(|s| values[(s * walkers + w) * d + i])
                        .collect()
                })
                .collect()
        })
        .collect();
    Ok(Draws {
        chains,
        seconds: report["seconds"].as_f64().context("seconds")?,
        evaluations: report["evaluations"].as_u64().context("evaluations")?,
    })
}

/// Bias, ESS and the mixture weight of a run's draws.
fn assess(target: &Target, draws: &Draws) -> Quality {
    let mut max_abs_bias = 0.0f64;
    let mut min_ess = f64::INFINITY;
    for dim in 0..target.dims() {
        let views: Vec<&[f64]> = draws.chains.iter().map(|c| c[dim].as_slice()).collect();
        let pooled: Vec<f64> = views.concat();
        let mcse = diagnostics::mcse_mean(&views);
        let error = (mcse.powi(2) + target.mean_se[dim].powi(2)).sqrt();
        let bias = (diagnostics::mean(&pooled) - target.mean[dim]) / error;
        // A NaN bias (no error estimate) must show, not vanish in a max.
        max_abs_bias = if bias.is_nan() {
            f64::NAN
        } else {
            max_abs_bias.max(bias.abs())
        };
        min_ess = min_ess.min(diagnostics::ess_bulk(&views));
    }
    let weight = target.weight.map(|_| {
        let indicators: Vec<Vec<f64>> = draws
            .chains
            .iter()
            .map(|c| c[0].iter().map(|&x| f64::from(u8::from(x > 0.0))).collect())
            .collect();
        let views: Vec<&[f64]> = indicators.iter().map(Vec::as_slice).collect();
        (
            diagnostics::mean(&views.concat()),
            diagnostics::mcse_mean(&views),
        )
    });
    Quality {
        max_abs_bias,
        min_ess,
        ess_per_second: min_ess / draws.seconds,
        ess_per_evaluation: min_ess / draws.evaluations as f64,
        weight,
    }
}

fn print_rows(target: &Target, sampler: &str, runs: &[Quality]) {
    let pick = |f: fn(&Quality) -> f64| runs.iter().map(f).collect::<Vec<_>>();
    let bias = pick(|q| q.max_abs_bias);
    let worst_bias = bias.iter().copied().fold(0.0, f64::max);
    let weight = match runs.first().and_then(|q| q.weight) {
        None => "-".to_owned(),
        Some(_) => runs
            .iter()
            .filter_map(|q| q.weight)
            .map(|(w, se)| format!("{w:.3} ± {se:.3}"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    println!(
        "| {} | {} | {sampler} | {} (worst {worst_bias:.1}) | {} | {} | {} | {weight} |",
        target.name,
        target.dims(),
        median_range(&bias, 1),
        median_range(&pick(|q| q.min_ess), 0),
        median_range(&pick(|q| q.ess_per_second), 0),
        median_range(&pick(|q| 1000.0 * q.ess_per_evaluation), 2),
    );
}
