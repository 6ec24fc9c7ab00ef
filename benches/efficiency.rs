//! `cargo bench --bench efficiency`
//!
//! Parallel efficiency of distributed MCMC on an expensive likelihood: how busy the worker slots
//! are. The likelihood sleeps (10 ms per term, fixed, or log-normal with σ = 0.5 and the same
//! mean, each point's cost a function of the point so that a re-evaluation costs the same), so
//! the CPU is never the limit; efficiency is evaluations per second over what the slots could
//! do, `slots / mean cost`. Two layouts, each served by worker processes of this bench's own
//! binary (`--role worker`):
//!
//! - Stateline's demo: 2 stacks × 5 temperatures × 3 job types (30 units per step) on 8 slots
//!   (4 processes × 2 threads);
//! - wide: 8 stacks × 8 temperatures × 3 job types (192 units per step) on 64 slots
//!   (8 processes × 8 threads).
//!
//! It also prints the evaluations beyond one per chain step and term (speculation's waste).
//! Repetitions are interleaved (every layout and cost once, then again); figures are medians
//! with their range. `-- --test` runs a tiny version once (CI); `--reps N` sets the repetitions
//! (default 3); `--steps N` the steps per chain (default 300).

mod common;

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use common::median_range;
use ganger::mcmc::{
    run_with_status, ConfigFormat, Existing, Likelihood, McmcConfig, OnWorkers, Silent,
};
use ganger::{Delegator, DelegatorConfig, Registry, Worker, WorkerConfig};

/// The allocator of the `ganger-delegator` and `ganger-worker` binaries.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long a term takes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cost {
    Fixed,
    LogNormal,
}

impl Cost {
    fn name(self) -> &'static str {
        match self {
            Cost::Fixed => "fixed",
            Cost::LogNormal => "lognormal",
        }
    }

    fn parse(name: &str) -> Result<Cost> {
        match name {
            "fixed" => Ok(Cost::Fixed),
            "lognormal" => Ok(Cost::LogNormal),
            other => bail!("unknown cost {other}"),
        }
    }
}

/// A Gaussian likelihood whose every term sleeps first.
struct Sleepy {
    terms: usize,
    cost: Cost,
    mean: Duration,
}

impl Likelihood for Sleepy {
    fn n_job_types(&self) -> usize {
        self.terms
    }

    fn energy(&self, term: usize, x: &[f64]) -> f64 {
        let factor = match self.cost {
            Cost::Fixed => 1.0,
            Cost::LogNormal => {
                // A standard normal from the point and term, so the cost is the point's own.
                let mut h = 0x9e37_79b9_7f4a_7c15u64 ^ term as u64;
                for v in x {
                    h = splitmix(h ^ v.to_bits());
                }
                let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                let z = ganger::mcmc::diagnostics::inverse_normal_cdf(u);
                let sigma = 0.5;
                (sigma * z - sigma * sigma / 2.0).exp()
            }
        };
        std::thread::sleep(self.mean.mul_f64(factor));
        0.5 * x.iter().map(|v| v * v).sum::<f64>() / self.terms as f64
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A layout of chains and the worker slots serving them.
#[derive(Debug, Clone, Copy)]
struct Layout {
    name: &'static str,
    stacks: usize,
    temperatures: usize,
    terms: usize,
    processes: usize,
    threads: usize,
}

impl Layout {
    fn slots(&self) -> usize {
        self.processes * self.threads
    }
}

const LAYOUTS: [Layout; 2] = [
    Layout {
        name: "Stateline demo, 8 slots",
        stacks: 2,
        temperatures: 5,
        terms: 3,
        processes: 4,
        threads: 2,
    },
    Layout {
        name: "8 x 8 chains, 64 slots",
        stacks: 8,
        temperatures: 8,
        terms: 3,
        processes: 8,
        threads: 8,
    },
];

/// What one run measured.
struct Measurement {
    efficiency: f64,
    evaluations_per_second: f64,
    /// Evaluations beyond one per chain step and term, as a share of all.
    wasted: f64,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if value_of(&args, "--role").as_deref() == Some("worker") {
        return worker(&args);
    }
    let test = args.iter().any(|a| a == "--test");
    let reps: usize = match value_of(&args, "--reps") {
        Some(n) => n.parse()?,
        None if test => 1,
        None => 3,
    };
    let steps: u64 = match value_of(&args, "--steps") {
        Some(n) => n.parse()?,
        None if test => 20,
        None => 300,
    };
    let mean = if test {
        Duration::from_millis(1)
    } else {
        Duration::from_millis(10)
    };
    let layouts: &[Layout] = if test { &LAYOUTS[..1] } else { &LAYOUTS };
    println!(
        "MCMC parallel efficiency: each term sleeps {} ms on average; {steps} steps per chain\n",
        mean.as_secs_f64() * 1e3
    );
    let mut results: Vec<Vec<Measurement>> = Vec::new();
    let cases: Vec<(Layout, Cost)> = layouts
        .iter()
        .flat_map(|&l| [Cost::Fixed, Cost::LogNormal].map(move |c| (l, c)))
        .collect();
    results.resize_with(cases.len(), Vec::new);
    for _ in 0..reps {
        for (i, &(layout, cost)) in cases.iter().enumerate() {
            results[i].push(measure(layout, cost, mean, steps)?);
        }
    }
    println!("| layout | cost | efficiency | evaluations/s | wasted evaluations |");
    println!("|---|---|---:|---:|---:|");
    for ((layout, cost), runs) in cases.iter().zip(&results) {
        let pick = |f: fn(&Measurement) -> f64| runs.iter().map(f).collect::<Vec<_>>();
        println!(
            "| {} | {} | {} | {} | {} |",
            layout.name,
            cost.name(),
            median_range(&pick(|m| m.efficiency), 3),
            median_range(&pick(|m| m.evaluations_per_second), 0),
            median_range(&pick(|m| 100.0 * m.wasted), 1) + " %",
        );
    }
    Ok(())
}

/// One run of `layout` with `cost`: a delegator here, workers in processes of their own.
fn measure(layout: Layout, cost: Cost, mean: Duration, steps: u64) -> Result<Measurement> {
    let delegator = Delegator::start(DelegatorConfig {
        bind: "tcp://127.0.0.1:0".into(),
        ..DelegatorConfig::default()
    })?;
    let endpoint = delegator.local_endpoint();
    let exe = std::env::current_exe()?;
    let mut workers: Vec<Child> = (0..layout.processes)
        .map(|_| {
            let mut command = Command::new(&exe);
            // The workers die with this process, whatever ends it.
            // SAFETY: prctl is async-signal-safe and touches nothing of the parent's.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            command
                .args(["--role", "worker", "--endpoint", &endpoint])
                .args(["--threads", &layout.threads.to_string()])
                .args(["--cost", cost.name(), "--terms", &layout.terms.to_string()])
                .args(["--mean-us", &mean.as_micros().to_string()])
                .stdin(Stdio::null())
                .spawn()
                .context("starting a worker process")
        })
        .collect::<Result<_>>()?;
    let outcome = run_on(&delegator, layout, steps, mean);
    for worker in &mut workers {
        let _ = worker.kill();
        let _ = worker.wait();
    }
    outcome
}

fn run_on(
    delegator: &Delegator,
    layout: Layout,
    steps: u64,
    mean: Duration,
) -> Result<Measurement> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let slots: u64 = delegator
            .stats()?
            .workers
            .iter()
            .map(|w| u64::from(w.slots))
            .sum();
        if slots as usize >= layout.slots() {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {slots} of {} slots registered", layout.slots());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = std::env::temp_dir().join(format!("ganger-efficiency-{}", std::process::id()));
    let text = serde_json::json!({
        "nJobTypes": layout.terms,
        "nStacks": layout.stacks,
        "nTemperatures": layout.temperatures,
        "nSamplesTotal": layout.stacks as u64 * steps,
        "min": [-10, -10, -10, -10],
        "max": [10, 10, 10, 10],
        "likelihood": "sleepy",
        "outputPath": output,
        "loggingRateSec": 3600,
        "checkpointIntervalSec": 0,
        "evidenceDraws": 0,
    })
    .to_string();
    let config = McmcConfig::parse(&text, "efficiency.json", ConfigFormat::Json)?;
    let mut evaluator = OnWorkers::new(delegator, "sleepy", layout.terms)?;
    let started = Instant::now();
    let report = run_with_status(
        &config,
        &mut evaluator,
        // Its own scratch folder, replaced run after run.
        Existing::Overwrite,
        &AtomicBool::new(false),
        &Silent,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&output).ok();
    if !report.complete {
        bail!("the run stopped early");
    }
    let evaluations = evaluator.points_evaluated() as f64 * layout.terms as f64;
    let chains = (layout.stacks * layout.temperatures) as f64;
    // One evaluation per term for each chain's start and each step.
    let needed = chains * (steps + 1) as f64 * layout.terms as f64;
    let per_second = evaluations / seconds;
    Ok(Measurement {
        efficiency: per_second / (layout.slots() as f64 / mean.as_secs_f64()),
        evaluations_per_second: per_second,
        wasted: (evaluations - needed).max(0.0) / evaluations,
    })
}

/// `--role worker`: serves the sleepy likelihood until killed.
fn worker(args: &[String]) -> Result<()> {
    let endpoint = value_of(args, "--endpoint").context("--endpoint")?;
    let threads: usize = value_of(args, "--threads").context("--threads")?.parse()?;
    let terms: usize = value_of(args, "--terms").context("--terms")?.parse()?;
    let cost = Cost::parse(&value_of(args, "--cost").context("--cost")?)?;
    let mean_us: u64 = value_of(args, "--mean-us").context("--mean-us")?.parse()?;
    let mut registry = Registry::new();
    registry.register_likelihood(
        "sleepy",
        Sleepy {
            terms,
            cost,
            mean: Duration::from_micros(mean_us),
        },
    );
    let mut config = WorkerConfig::new(endpoint);
    config.threads = threads;
    Worker::new(config, registry)?.run()?;
    Ok(())
}

fn value_of(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}
