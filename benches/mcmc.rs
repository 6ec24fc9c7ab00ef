//! `cargo bench --bench mcmc`
//!
//! MCMC throughput on Stateline's demo configuration: 4 dimensions, 3 job types, 2 stacks × 5
//! temperatures, the trivial Gaussian likelihood. In one run it measures:
//!
//! - **sampler alone**: the sampler's own cost per chain step (propose, decide, adapt, swap),
//!   with a likelihood that costs nothing and no output;
//! - **embedded**: chain steps per second of a whole run evaluated in this process, with the
//!   chain files written and synced (the final `summary.json` is timed separately);
//! - **distributed**: samples per second summed over all chains, each round's 30 likelihood
//!   terms evaluated by 2 workers (1 thread each) over ZeroMQ on loopback; with worker
//!   processes, also with the messaging threads on one CPU as `--spawn-workers` places them.
//!
//! Medians of 3 runs. `cargo bench --bench mcmc -- distributed` runs the measurements whose
//! names contain `distributed`; `cargo bench --bench mcmc -- --test` runs tiny sizes once, for CI.

mod common;

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context as _, Result};
use common::median_range;
use ganger::mcmc::{run, Builtin, Existing, InProcess, McmcConfig, OnWorkers, Sampler};
use ganger::{Delegator, DelegatorConfig, Registry, Worker, WorkerConfig};
use ganger_transport::affinity;

/// The allocator of the `ganger-delegator` and `ganger-worker` binaries.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Stateline's demo configuration with `samples` cold samples over the two stacks.
fn demo_config(samples: u64, output: &std::path::Path) -> Result<McmcConfig> {
    let text = format!(
        r#"{{"nJobTypes": 3, "nStacks": 2, "nTemperatures": 5, "nSamplesTotal": {samples},
            "min": [-10, -10, -10, -10], "max": [10, 10, 10, 10], "swapInterval": 10,
            "optimalAcceptRate": 0.24, "optimalSwapRate": 0.24, "outputPath": "{}",
            "loggingRateSec": 3600, "checkpointIntervalSec": 0}}"#,
        output.display()
    );
    Ok(McmcConfig::from_file_contents(
        &text,
        "bench.json".as_ref(),
    )?)
}

/// Nanoseconds per chain step of the sampler alone.
fn sampler_alone(steps: u64) -> Result<f64> {
    let config = demo_config(2 * steps, std::path::Path::new("unused"))?;
    let mut sampler = Sampler::new(ganger::mcmc::sampler_settings(&config));
    let mut energies = vec![0.0; sampler.n_chains()];
    sampler.complete(&energies);
    let started = Instant::now();
    for _ in 0..steps {
        // A flat likelihood: every proposal inside the bounds is accepted, the most work per
        // step. Those outside are not offered, so a round may have fewer points than chains.
        energies.resize(sampler.n_points(), 0.0);
        std::hint::black_box(sampler.complete(&energies));
    }
    Ok(started.elapsed().as_secs_f64() * 1e9 / (steps * sampler.n_chains() as u64) as f64)
}

/// Chain steps per second of an embedded run, and the seconds its summary took.
fn embedded(steps: u64) -> Result<(f64, f64)> {
    let output = std::env::temp_dir().join(format!("ganger-bench-mcmc-{}", std::process::id()));
    let config = demo_config(2 * steps, &output)?;
    let stop = AtomicBool::new(false);
    let mut evaluator = InProcess::new(Builtin::Gaussian.split(3));
    let report = run(&config, &mut evaluator, Existing::Overwrite, &stop)?;
    std::fs::remove_dir_all(&output).ok();
    Ok((report.steps_per_sec, report.summary_seconds))
}

/// Where the 2 workers of a distributed run live.
#[derive(Clone, Copy)]
enum Workers {
    /// Threads of this process (`ganger::Worker`).
    InProcess,
    /// `ganger-worker` processes.
    Processes,
    /// `ganger-worker` processes whose messaging threads share the CPU of the delegator's,
    /// as `ganger-delegator --spawn-workers` places them (ARCHITECTURE.md, "Local workers
    /// share a CPU for messages").
    PinnedProcesses,
}

/// Samples per second over all chains with 2 workers of 1 thread evaluating the terms, and
/// chains speculating as far as measurement says pays (`speculate`) or not at all, driven in
/// lockstep rounds (the driver before chains moved on their own) or not.
fn distributed(steps: u64, workers: Workers, speculate: bool, lockstep: bool) -> Result<f64> {
    if matches!(workers, Workers::PinnedProcesses) {
        // On a thread of its own, so that its pin ends with it; the delegator's libzmq
        // threads end with the delegator.
        return std::thread::scope(|scope| {
            scope
                .spawn(|| distributed_here(steps, workers, speculate, lockstep))
                .join()
                .map_err(|_| anyhow::anyhow!("the pinned run panicked"))?
        });
    }
    distributed_here(steps, workers, speculate, lockstep)
}

/// [`distributed`] on the calling thread.
fn distributed_here(steps: u64, workers: Workers, speculate: bool, lockstep: bool) -> Result<f64> {
    let output = std::env::temp_dir().join(format!("ganger-bench-mcmc-d-{}", std::process::id()));
    let config = demo_config(2 * steps, &output)?;
    // Pinned before the delegator starts its engine and libzmq's threads, which then start
    // pinned; the workers start from a free thread and pin their own messaging threads.
    let pinned = match (workers, affinity::current_cpu()) {
        (Workers::PinnedProcesses, Some(cpu)) => Some((cpu, affinity::pin_current(cpu)?)),
        _ => None,
    };
    let delegator = Delegator::start(DelegatorConfig {
        bind: "tcp://127.0.0.1:0".into(),
        ..DelegatorConfig::default()
    })?;
    let mut threads = Vec::new();
    let mut processes = Vec::new();
    for i in 0..2 {
        match workers {
            Workers::InProcess => {
                let mut worker_config = WorkerConfig::new(delegator.local_endpoint());
                worker_config.threads = 1;
                worker_config.name = format!("bench-{i}");
                let worker = Worker::new(worker_config, Registry::with_builtins())?;
                threads.push((
                    worker.shutdown_handle(),
                    std::thread::spawn(move || worker.run()),
                ));
            }
            Workers::Processes | Workers::PinnedProcesses => {
                let mut command =
                    std::process::Command::new(common::release_binaries()?.join("ganger-worker"));
                command
                    .args(["--connect", &delegator.local_endpoint(), "--threads", "1"])
                    .env("GANGER_LOG", "warn");
                let child = match &pinned {
                    Some((cpu, free)) => {
                        command.args(["--messaging-cpu", &cpu.to_string()]);
                        affinity::with_cpus(free, || command.spawn())?
                    }
                    None => command.spawn()?,
                };
                processes.push(child);
            }
        }
    }
    let stop = AtomicBool::new(false);
    let mut evaluator = OnWorkers::new(&delegator, "gaussian", 3)?;
    if !speculate {
        evaluator.set_speculation(Some(1));
    }

    evaluator.set_lockstep(lockstep);
    let report = run(&config, &mut evaluator, Existing::Overwrite, &stop)?;

    for (shutdown, _) in &threads {
        shutdown.request();
    }
    for (_, handle) in threads {
        handle.join().ok().context("a worker thread panicked")??;
    }
    for mut process in processes {
        // SIGTERM: the worker says goodbye and exits.
        unsafe { libc::kill(process.id() as i32, libc::SIGTERM) };
        process.wait()?;
    }
    std::fs::remove_dir_all(&output).ok();
    Ok(report.steps_per_sec)
}

/// The median of three measurements.
fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let test = args.iter().any(|a| a == "--test");
    // Any other argument that is not a flag picks measurements by name.
    let picked: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    let wanted = |name: &str| picked.is_empty() || picked.iter().any(|p| name.contains(p));
    let (repeats, scale) = if test { (1, 1) } else { (3, 100) };
    println!("MCMC on Stateline's demo (4 dims, 3 job types, 2 stacks x 5 temperatures), median of {repeats}");
    println!("| measurement | value |");
    println!("|---|---:|");
    if wanted("sampler") {
        let sampler: Vec<f64> = (0..repeats)
            .map(|_| sampler_alone(2_000 * scale))
            .collect::<Result<_>>()?;
        println!(
            "| sampler alone, ns per chain step | {:.0} |",
            median(sampler)
        );
    }
    if wanted("embedded") {
        let embedded_runs: Vec<(f64, f64)> = (0..repeats)
            .map(|_| embedded(1_000 * scale))
            .collect::<Result<_>>()?;
        println!(
            "| embedded, chain steps/s with chain files written | {:.0} |",
            median(embedded_runs.iter().map(|r| r.0).collect())
        );
        println!(
            "| embedded, seconds for the final summary.json | {:.2} |",
            median(embedded_runs.iter().map(|r| r.1).collect())
        );
    }
    // Interleaved: lockstep, then chains on their own, then again; each row a median with its
    // range, and the ratio of each repetition's pair.
    let variants = [
        (
            "distributed, lockstep rounds (2 worker processes x 1 thread)",
            Workers::Processes,
            true,
            true,
        ),
        (
            "distributed (2 worker processes x 1 thread)",
            Workers::Processes,
            true,
            false,
        ),
        (
            "distributed, messages on one CPU as with --spawn-workers (2 worker processes x 1 thread)",
            Workers::PinnedProcesses,
            true,
            false,
        ),
        (
            "distributed (2 in-process workers x 1 thread)",
            Workers::InProcess,
            true,
            false,
        ),
        (
            "distributed without speculation (2 in-process workers x 1 thread)",
            Workers::InProcess,
            false,
            false,
        ),
    ];
    let chosen: Vec<_> = variants.iter().filter(|v| wanted(v.0)).collect();
    let mut rates = vec![Vec::new(); chosen.len()];
    for _ in 0..repeats {
        for (i, &&(_, workers, speculate, lockstep)) in chosen.iter().enumerate() {
            rates[i].push(distributed(200 * scale / 2, workers, speculate, lockstep)?);
        }
    }
    for (i, variant) in chosen.iter().enumerate() {
        println!(
            "| {}, samples/s over all chains | {} |",
            variant.0,
            median_range(&rates[i], 0)
        );
    }
    let free = chosen
        .iter()
        .position(|v| matches!(v.1, Workers::Processes) && !v.3);
    let pinned = chosen
        .iter()
        .position(|v| matches!(v.1, Workers::PinnedProcesses));
    if let (Some(free), Some(pinned)) = (free, pinned) {
        let ratios: Vec<f64> = rates[pinned]
            .iter()
            .zip(&rates[free])
            .map(|(a, b)| a / b)
            .collect();
        println!(
            "| messages on one CPU ÷ on any (worker processes) | {} |",
            median_range(&ratios, 2)
        );
    }
    if chosen.len() >= 2 && chosen[0].3 && !chosen[1].3 {
        let ratios: Vec<f64> = rates[1].iter().zip(&rates[0]).map(|(a, b)| a / b).collect();
        println!(
            "| chains on their own ÷ lockstep rounds (worker processes) | {} |",
            median_range(&ratios, 2)
        );
    }
    Ok(())
}
