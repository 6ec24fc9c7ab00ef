//! `cargo bench --bench workers`
//!
//! Workers in other languages against ganger's Rust worker, side by side in one run: what a
//! unit costs through the Python package (`worker/python`) and through the exec bridge
//! (`ganger-worker --exec`, both framings), beside the Rust worker's built-in tasks.
//!
//! Every implementation runs as one worker process with `GANGER_THREADS=2`, serving the job
//! types of the conformance contract (`noop`, `sleep`), against a fresh delegator in this
//! process on a loopback ephemeral port. Two measurements each:
//! - **trivial units**: `noop` units of 8 bytes, as many as fit in about 2 s (sized from a
//!   warm-up job); units per second, the median of 3 jobs, and the ratio to the Rust worker;
//! - **slow units**: 100 `sleep` units of 20 ms; the efficiency is the ideal time (100 × 20 ms
//!   over 2 threads = 1 s) divided by the job's time, the median of 3: what the implementation
//!   adds to an expensive likelihood.
//!
//! The Python implementations need `python3` with pyzmq and msgpack; without them they are
//! skipped with a line saying so (unless `GANGER_REQUIRE_PYTHON=1`, which makes that an error).
//! `cargo bench --bench workers -- --test` runs each measurement once with tiny sizes, for CI.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use ganger::{Delegator, DelegatorConfig, JobOptions};

/// Evaluation threads (slots) of every worker under test.
const THREADS: usize = 2;
/// Slow units per measurement, and how long each sleeps.
const SLOW_UNITS: u64 = 100;
const SLOW_UNIT: Duration = Duration::from_millis(20);

/// One implementation under test: how to start it.
struct Implementation {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    needs_python: bool,
}

/// Sizes of one run of the bench.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Repetitions of each measurement (the median is reported).
    repeats: usize,
    /// Units of the first warm-up job.
    warmup_units: u64,
    /// How long a trivial-units measurement should take.
    target: Duration,
    /// Slow units per measurement.
    slow_units: u64,
}

const FULL: Plan = Plan {
    repeats: 3,
    warmup_units: 2_000,
    target: Duration::from_secs(2),
    slow_units: SLOW_UNITS,
};

const TEST: Plan = Plan {
    repeats: 1,
    warmup_units: 100,
    target: Duration::from_millis(100),
    slow_units: 4,
};

/// The figures of one implementation.
struct Figures {
    units_per_second: f64,
    slow_efficiency: f64,
}

fn main() -> Result<()> {
    let plan = if std::env::args().any(|a| a == "--test") {
        TEST
    } else {
        FULL
    };
    let bin = common::release_binaries()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python_problem = python_problem();
    if let Some(problem) = &python_problem {
        if std::env::var("GANGER_REQUIRE_PYTHON").as_deref() == Ok("1") {
            bail!("GANGER_REQUIRE_PYTHON=1 but {problem}");
        }
        println!("skipping the Python implementations: {problem}");
    }
    let mut rows: Vec<(&str, Figures)> = Vec::new();
    for implementation in implementations(&bin, root) {
        if implementation.needs_python && python_problem.is_some() {
            continue;
        }
        let figures = measure(&implementation, plan)
            .with_context(|| format!("measuring the {} worker", implementation.name))?;
        rows.push((implementation.name, figures));
    }
    let rust = rows[0].1.units_per_second;
    println!(
        "one worker process, {THREADS} threads; trivial = `noop` units of 8 bytes, slow = `sleep` units of {} ms; medians of {}",
        SLOW_UNIT.as_millis(),
        plan.repeats
    );
    println!("| worker | trivial units/s | ÷ Rust worker | slow-unit efficiency |");
    println!("|---|---:|---:|---:|");
    for (name, figures) in &rows {
        println!(
            "| {name} | {:.0} | {:.3} | {:.3} |",
            figures.units_per_second,
            figures.units_per_second / rust,
            figures.slow_efficiency
        );
    }
    Ok(())
}

/// The implementations, the Rust worker first (the others' ratios are to it).
fn implementations(bin: &Path, root: &Path) -> Vec<Implementation> {
    let worker = bin.join("ganger-worker");
    let child = root.join("examples/exec/conformance_child.py");
    let exec = |name, framing: &str| Implementation {
        name,
        program: worker.clone(),
        args: vec![
            "--exec".into(),
            format!("python3 {} --framing {framing}", child.display()),
            "--exec-framing".into(),
            framing.into(),
            "--job-types".into(),
            "noop,sleep,panic-if-odd".into(),
        ],
        env: Vec::new(),
        needs_python: framing == "msgpack",
    };
    vec![
        Implementation {
            name: "Rust (`ganger-worker`)",
            program: worker.clone(),
            args: vec!["--job-types".into(), "noop,sleep,panic-if-odd".into()],
            env: Vec::new(),
            needs_python: false,
        },
        Implementation {
            name: "Python package (`ganger_worker.run`)",
            program: "python3".into(),
            args: vec![root
                .join("worker/python/examples/conformance_worker.py")
                .display()
                .to_string()],
            env: vec![(
                "PYTHONPATH",
                root.join("worker/python").display().to_string(),
            )],
            needs_python: true,
        },
        exec("exec bridge, msgpack framing", "msgpack"),
        exec("exec bridge, JSON framing", "json"),
    ]
}

/// Why the Python implementations cannot run here, if they cannot.
fn python_problem() -> Option<String> {
    let output = Command::new("python3")
        .args(["-c", "import zmq, msgpack"])
        .output();
    match output {
        Err(e) => Some(format!("python3 cannot be started: {e}")),
        Ok(output) if !output.status.success() => Some(format!(
            "python3 lacks pyzmq or msgpack: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// Kills the worker process when a measurement ends, however it ends.
struct WorkerProcess(Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn measure(implementation: &Implementation, plan: Plan) -> Result<Figures> {
    let delegator = Delegator::start(DelegatorConfig {
        bind: "tcp://127.0.0.1:0".into(),
        ..DelegatorConfig::default()
    })?;
    let mut command = Command::new(&implementation.program);
    command
        .args(&implementation.args)
        .env("GANGER_CONNECT", delegator.local_endpoint())
        .env("GANGER_THREADS", THREADS.to_string())
        .env("GANGER_LOG", "warn")
        .env_remove("GANGER_SECRET")
        .env_remove("GANGER_SECRET_FILE")
        .stdin(Stdio::null());
    for (key, value) in &implementation.env {
        command.env(key, value);
    }
    let _worker = WorkerProcess(
        command
            .spawn()
            .with_context(|| format!("starting {}", implementation.program.display()))?,
    );
    // Warm-up jobs grow until one takes a quarter of the target: the worker is registered, its
    // program copies are up and adaptive batching has measured it.
    let mut units = plan.warmup_units;
    let rate = loop {
        let seconds = trivial_job(&delegator, units)?;
        if seconds >= plan.target.as_secs_f64() / 4.0 {
            break units as f64 / seconds;
        }
        units *= 4;
    };
    let units = ((rate * plan.target.as_secs_f64()) as u64).max(plan.warmup_units);
    let mut rates = (0..plan.repeats)
        .map(|_| Ok(units as f64 / trivial_job(&delegator, units)?))
        .collect::<Result<Vec<f64>>>()?;
    let ideal = plan.slow_units as f64 * SLOW_UNIT.as_secs_f64() / THREADS as f64;
    let mut efficiencies = (0..plan.repeats)
        .map(|_| Ok(ideal / slow_job(&delegator, plan.slow_units)?))
        .collect::<Result<Vec<f64>>>()?;
    delegator.shutdown();
    Ok(Figures {
        units_per_second: median(&mut rates),
        slow_efficiency: median(&mut efficiencies),
    })
}

/// Seconds from submitting `units` trivial units to the last outcome, each checked.
fn trivial_job(delegator: &Delegator, units: u64) -> Result<f64> {
    let started = Instant::now();
    let job = delegator.submit::<_, u64>("noop", 0..units, JobOptions::default())?;
    let mut seen = 0u64;
    for (index, outcome) in job {
        let output = outcome.map_err(|e| anyhow::anyhow!("noop unit {index} failed: {e}"))?;
        ensure!(output == index, "noop unit {index} came back as {output}");
        seen += 1;
    }
    ensure!(seen == units, "{seen} of {units} outcomes");
    Ok(started.elapsed().as_secs_f64())
}

/// Seconds from submitting `units` slow units to the last outcome.
fn slow_job(delegator: &Delegator, units: u64) -> Result<f64> {
    let micros = SLOW_UNIT.as_micros() as u64;
    let started = Instant::now();
    let job = delegator.submit::<_, u64>(
        "sleep",
        std::iter::repeat_n(micros, units as usize),
        JobOptions::default(),
    )?;
    let mut seen = 0u64;
    for (index, outcome) in job {
        let output = outcome.map_err(|e| anyhow::anyhow!("sleep unit {index} failed: {e}"))?;
        ensure!(output == micros, "a sleep unit came back as {output}");
        seen += 1;
    }
    ensure!(seen == units, "{seen} of {units} outcomes");
    let seconds = started.elapsed().as_secs_f64();
    // Guards against a worker that answers without sleeping.
    ensure!(
        seconds >= Duration::from_millis(1).as_secs_f64(),
        "the job took {seconds} s"
    );
    Ok(seconds)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
