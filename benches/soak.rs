//! `cargo bench --bench soak -- --minutes 10`
//!
//! The soak harness: for the given time, MCMC runs and job-chunk runs back to back, each on the
//! release `ganger-delegator` binary with 3 `ganger-worker` processes on 127.0.0.1, while faults
//! are injected at random every 0.1–0.6 s: `kill -9` of a worker (replaced at once), SIGSTOP of
//! a worker past the heartbeat timeout then SIGCONT, and (MCMC only) `kill -9` of the delegator
//! followed by `mcmc --resume` on the same port. Every run's output is compared with a
//! fault-free reference of the same seed (MCMC: every chain file and the summary byte for byte;
//! job chunks: the sorted result lines, so each index once with the reference's output).
//!
//! Prints the counts: runs, kills, stops, delegator kills, requeues (from each delegator's
//! `/metrics`, polled), mismatches; exits non-zero on any mismatch. `-- --seed N` replays a
//! fault schedule; `-- --test` does one tiny run of each kind, for CI.

mod common;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Heartbeat and timeout of the runs, milliseconds: short, so stops outlast the timeout.
const HEARTBEAT_MS: &str = "200";
const TIMEOUT_MS: u64 = 1_000;
/// The longest a run may take before the harness calls it hung.
const RUN_LIMIT: Duration = Duration::from_secs(600);

#[derive(Default, Debug)]
struct Totals {
    mcmc_runs: u64,
    chunk_runs: u64,
    worker_kills: u64,
    stops: u64,
    delegator_kills: u64,
    requeues: u64,
    mismatches: u64,
}

/// What a run computes, with its fault-free reference.
enum Kind {
    /// An MCMC run of this config (its output folder is `output`), against `reference`.
    Mcmc {
        config: PathBuf,
        output: PathBuf,
        reference: PathBuf,
    },
    /// A job-chunk run of the `sleep` task over `input`, against `reference`'s lines.
    Chunks {
        input: PathBuf,
        output: PathBuf,
        reference: PathBuf,
    },
}

struct Binaries {
    delegator: PathBuf,
    worker: PathBuf,
}

/// The release binaries, built first if stale.
fn binaries() -> Result<Binaries> {
    let dir = common::release_binaries()?;
    Ok(Binaries {
        delegator: dir.join("ganger-delegator"),
        worker: dir.join("ganger-worker"),
    })
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `ganger_units_requeued` from a delegator's `/metrics`, if it answers.
fn requeued(http: &str) -> Option<u64> {
    let mut stream = std::net::TcpStream::connect(http).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {http}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.lines()
        .find(|l| l.starts_with("ganger_units_requeued"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on our own child with a valid signal number.
    unsafe { libc::kill(child.id() as i32, signal) };
}

fn mcmc_config(dir: &Path, name: &str, output: &Path, samples: u64) -> Result<PathBuf> {
    let path = dir.join(name);
    let text = format!(
        r#"{{"nJobTypes": 3, "nStacks": 2, "nTemperatures": 3, "nSamplesTotal": {samples},
            "min": [-10, -10, -10, -10], "max": [10, 10, 10, 10], "swapInterval": 10,
            "optimalAcceptRate": 0.24, "optimalSwapRate": 0.24, "outputPath": "{}",
            "loggingRateSec": 3600, "checkpointIntervalSec": 0.05}}"#,
        output.display()
    );
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The chain files and summary of an MCMC output folder, sorted by name.
fn mcmc_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "csv" || e == "json") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            files.push((name, std::fs::read(&path)?));
        }
    }
    files.sort();
    Ok(files)
}

/// The result lines of a job-chunk run, sorted (so equal to the reference's only if each index
/// appears once with the same output).
fn chunk_lines(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    Ok(lines)
}

fn matches(kind: &Kind) -> Result<bool> {
    Ok(match kind {
        Kind::Mcmc {
            output, reference, ..
        } => mcmc_files(output)? == mcmc_files(reference)?,
        Kind::Chunks {
            output, reference, ..
        } => chunk_lines(output)? == chunk_lines(reference)?,
    })
}

struct Run<'a> {
    binaries: &'a Binaries,
    kind: &'a Kind,
    endpoint: String,
    http: String,
    log: PathBuf,
}

impl Run<'_> {
    fn start_delegator(&self, resume: bool) -> Result<Child> {
        let mut command = Command::new(&self.binaries.delegator);
        match self.kind {
            Kind::Mcmc { config, .. } => {
                command.arg("mcmc").arg("--config").arg(config);
                if resume {
                    command.arg("--resume");
                }
            }
            Kind::Chunks { input, output, .. } => {
                command
                    .args(["run", "--task", "sleep", "--input"])
                    .arg(input)
                    .arg("--output")
                    .arg(output);
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        command
            .args(["--bind", &self.endpoint, "--http", &self.http])
            .args(["--heartbeat-ms", HEARTBEAT_MS])
            .args(["--timeout-ms", &TIMEOUT_MS.to_string()])
            .env("GANGER_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting ganger-delegator")
    }

    fn start_worker(&self) -> Result<Child> {
        Command::new(&self.binaries.worker)
            .args(["--connect", &self.endpoint, "--threads", "2"])
            .args(["--reconnect-max-secs", "1"])
            .env("GANGER_LOG", "error")
            .stdin(Stdio::null())
            .spawn()
            .context("starting ganger-worker")
    }

    /// Runs to the end under random faults; adds to `totals`; true if the output matched.
    fn run(&self, rng: &mut StdRng, totals: &mut Totals) -> Result<bool> {
        let started = Instant::now();
        let mut delegator = self.start_delegator(false)?;
        let mut workers = (0..3)
            .map(|_| self.start_worker())
            .collect::<Result<Vec<_>>>()?;
        // Workers stopped, by pid, with when to continue them.
        let mut stopped: Vec<(u32, Instant)> = Vec::new();
        let mut requeued_before_restarts = 0;
        let mut requeued_now = 0;
        let mut next_fault = Instant::now() + Duration::from_millis(rng.random_range(100..600));
        let mut next_metrics = Instant::now();
        let status = loop {
            if let Some(status) = delegator.try_wait()? {
                break status;
            }
            if started.elapsed() > RUN_LIMIT {
                let _ = delegator.kill();
                bail!(
                    "a run took longer than {RUN_LIMIT:?}; see {}",
                    self.log.display()
                );
            }
            let now = Instant::now();
            if now >= next_metrics {
                requeued_now = requeued(&self.http)
                    .unwrap_or(requeued_now)
                    .max(requeued_now);
                next_metrics = now + Duration::from_millis(200);
            }
            for (pid, until) in &stopped {
                if now >= *until {
                    // SAFETY: kill(2) with a valid signal on a child of ours (or a reaped pid,
                    // which at worst fails).
                    unsafe { libc::kill(*pid as i32, libc::SIGCONT) };
                }
            }
            stopped.retain(|(_, until)| now < *until);
            if now >= next_fault {
                next_fault = now + Duration::from_millis(rng.random_range(100..600));
                let roll = rng.random_range(0..100);
                let checkpointed = match self.kind {
                    // Not once the summary is written: the run may be exiting successfully.
                    Kind::Mcmc { output, .. } => {
                        output.join("checkpoint.msgpack").exists()
                            && !output.join("summary.json").exists()
                    }
                    Kind::Chunks { .. } => false,
                };
                if roll < 10 && checkpointed {
                    delegator.kill()?;
                    delegator.wait()?;
                    totals.delegator_kills += 1;
                    requeued_before_restarts += requeued_now;
                    requeued_now = 0;
                    delegator = self.start_delegator(true)?;
                } else if roll < 35 {
                    let victim = rng.random_range(0..workers.len());
                    let pid = workers[victim].id();
                    if !stopped.iter().any(|(p, _)| *p == pid) {
                        signal(&workers[victim], libc::SIGSTOP);
                        let pause = rng.random_range(TIMEOUT_MS + 200..3 * TIMEOUT_MS);
                        stopped.push((pid, now + Duration::from_millis(pause)));
                        totals.stops += 1;
                    }
                } else {
                    let victim = rng.random_range(0..workers.len());
                    let mut child = workers.swap_remove(victim);
                    // A failed kill means it already exited; either way it is reaped here.
                    let _ = child.kill();
                    child.wait()?;
                    stopped.retain(|(pid, _)| *pid != child.id());
                    totals.worker_kills += 1;
                    workers.push(self.start_worker()?);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for mut worker in workers {
            let _ = worker.kill();
            let _ = worker.wait();
        }
        totals.requeues += requeued_before_restarts + requeued_now;
        if !status.success() {
            eprintln!("a delegator failed ({status}); see {}", self.log.display());
            return Ok(false);
        }
        matches(self.kind)
    }
}

struct Args {
    minutes: f64,
    test: bool,
    seed: u64,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        minutes: 10.0,
        test: false,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--test" => args.test = true,
            "--minutes" => {
                let value = iter.next().context("--minutes needs a value")?;
                args.minutes = value
                    .parse()
                    .with_context(|| format!("--minutes: not a number: {value}"))?;
            }
            "--seed" => {
                let value = iter.next().context("--seed needs a value")?;
                args.seed = value
                    .parse()
                    .with_context(|| format!("--seed: not an integer: {value}"))?;
            }
            // cargo bench passes --bench; anything else is a mistake worth naming.
            "--bench" => {}
            other => bail!("unknown argument {other} (expected --minutes M, --seed N, --test)"),
        }
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let binaries = binaries()?;
    let dir = std::env::temp_dir().join(format!("ganger-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (samples, units) = if args.test {
        (1_000, 300)
    } else {
        (20_000, 10_000)
    };
    let length = if args.test {
        "one tiny run of each kind".to_owned()
    } else {
        format!("{} minutes", args.minutes)
    };
    println!(
        "soak: seed {} (replay with -- --seed {}), {length}, scratch {}",
        args.seed,
        args.seed,
        dir.display()
    );
    let mut rng = StdRng::seed_from_u64(args.seed);

    // The fault-free references, computed once.
    let mcmc_reference = dir.join("mcmc-reference");
    let status = Command::new(&binaries.delegator)
        .args(["mcmc", "--local-workers", "2", "--http", "none", "--config"])
        .arg(mcmc_config(
            &dir,
            "reference.json",
            &mcmc_reference,
            samples,
        )?)
        .env("GANGER_LOG", "warn")
        .stdout(Stdio::null())
        // The progress table; a failure is reported below.
        .stderr(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "the reference MCMC run failed");
    let input = dir.join("input.jsonl");
    let lines: Vec<String> = (0..units)
        .map(|i: u64| (1_000 + (i * 7_919) % 3_000).to_string())
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n")?;
    let chunks_reference = dir.join("chunks-reference.jsonl");
    let status = Command::new(&binaries.delegator)
        .args(["run", "--task", "sleep", "--local-workers", "1"])
        .args(["--worker-threads", "8", "--http", "none", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&chunks_reference)
        .env("GANGER_LOG", "warn")
        .status()?;
    anyhow::ensure!(status.success(), "the reference job-chunk run failed");

    let started = Instant::now();
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let mut totals = Totals::default();
    let mut n = 0u64;
    loop {
        let done = if args.test {
            n == 2
        } else {
            started.elapsed() >= duration
        };
        if done {
            break;
        }
        let kind = if n % 2 == 0 {
            let output = dir.join(format!("mcmc-{n}"));
            totals.mcmc_runs += 1;
            Kind::Mcmc {
                config: mcmc_config(&dir, &format!("mcmc-{n}.json"), &output, samples)?,
                output,
                reference: mcmc_reference.clone(),
            }
        } else {
            totals.chunk_runs += 1;
            Kind::Chunks {
                input: input.clone(),
                output: dir.join(format!("chunks-{n}.jsonl")),
                reference: chunks_reference.clone(),
            }
        };
        let run = Run {
            binaries: &binaries,
            kind: &kind,
            endpoint: format!("tcp://127.0.0.1:{}", free_port()?),
            http: format!("127.0.0.1:{}", free_port()?),
            log: dir.join(format!("run-{n}.log")),
        };
        if run.run(&mut rng, &mut totals)? {
            // Keep only what a mismatch needs for a post-mortem.
            match &kind {
                Kind::Mcmc { output, config, .. } => {
                    std::fs::remove_dir_all(output).ok();
                    std::fs::remove_file(config).ok();
                }
                Kind::Chunks { output, .. } => {
                    std::fs::remove_file(output).ok();
                }
            }
            std::fs::remove_file(&run.log).ok();
        } else {
            totals.mismatches += 1;
            eprintln!(
                "run {n} differs from its reference; kept in {}",
                dir.display()
            );
        }
        n += 1;
    }
    println!("| minutes | MCMC runs | job-chunk runs | worker kills | stops | delegator kills | requeued units | mismatches |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {:.1} | {} | {} | {} | {} | {} | {} | {} |",
        started.elapsed().as_secs_f64() / 60.0,
        totals.mcmc_runs,
        totals.chunk_runs,
        totals.worker_kills,
        totals.stops,
        totals.delegator_kills,
        totals.requeues,
        totals.mismatches
    );
    if totals.mismatches > 0 {
        bail!("{} runs differ from their references", totals.mismatches);
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
