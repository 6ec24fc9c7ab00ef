//! `cargo bench --bench death`
//!
//! How fast the delegator notices a dead worker: the time from `kill -9` of a `ganger-worker`
//! process holding leased units to the delegator having requeued them, with a heartbeat of 60 s
//! and a timeout of 120 s (so only the closed connection can tell it in time). Each trial has a
//! fresh delegator in this process and one worker process; the requeue is seen by polling the
//! delegator's stats every millisecond, so figures are up to about 1 ms late.
//!
//! Prints the median, the fastest and the slowest of 9 trials (`-- --test`: 2 trials, for CI).

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use ganger::cluster::SchedulerConfig;
use ganger::{Delegator, DelegatorConfig, JobOptions};

/// Polls the stats until `condition` holds; an error after `limit`.
fn wait_for(
    delegator: &Delegator,
    limit: Duration,
    what: &str,
    condition: impl Fn(&ganger::cluster::Stats) -> bool,
) -> Result<ganger::cluster::Stats> {
    let deadline = Instant::now() + limit;
    loop {
        let stats = delegator.stats()?;
        if condition(&stats) {
            return Ok(stats);
        }
        if Instant::now() > deadline {
            bail!("gave up waiting for {what} after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One trial: milliseconds from `kill -9` to the requeue of the victim's units.
fn trial(worker: &std::path::Path) -> Result<f64> {
    let delegator = Delegator::start(DelegatorConfig {
        bind: "tcp://127.0.0.1:0".into(),
        scheduler: SchedulerConfig {
            heartbeat_ms: 60_000,
            timeout_ms: 120_000,
            ..SchedulerConfig::default()
        },
        ..DelegatorConfig::default()
    })?;
    let mut victim = std::process::Command::new(worker)
        .args(["--connect", &delegator.local_endpoint(), "--threads", "1"])
        .env("GANGER_LOG", "error")
        .spawn()
        .with_context(|| format!("starting {}", worker.display()))?;
    // 20 units of a second each: the victim is certain to hold some when it dies.
    let _job = delegator.submit::<_, u64>(
        "sleep",
        std::iter::repeat_n(1_000_000u64, 20),
        JobOptions::default(),
    )?;
    let limit = Duration::from_secs(30);
    wait_for(&delegator, limit, "the worker to hold units", |s| {
        s.workers.iter().any(|w| w.in_flight > 0)
    })?;
    let killed = Instant::now();
    // SAFETY: kill(2) on our own child with a valid signal number.
    unsafe { libc::kill(victim.id() as i32, libc::SIGKILL) };
    let stats = wait_for(&delegator, limit, "the requeue", |s| {
        s.counters.requeued > 0
    })?;
    let elapsed = killed.elapsed().as_secs_f64() * 1e3;
    victim.wait()?;
    anyhow::ensure!(
        stats.counters.disconnects == 1 && stats.counters.timeouts == 0,
        "the loss was not noticed as a disconnect: {:?}",
        stats.counters
    );
    delegator.shutdown();
    Ok(elapsed)
}

fn main() -> Result<()> {
    let test = std::env::args().any(|a| a == "--test");
    let trials = if test { 2 } else { 9 };
    let worker = common::release_binaries()?.join("ganger-worker");
    let mut times = (0..trials)
        .map(|_| trial(&worker))
        .collect::<Result<Vec<f64>>>()?;
    times.sort_by(f64::total_cmp);
    println!("kill -9 of a worker holding units to their requeue (heartbeat 60 s, timeout 120 s), {trials} trials");
    println!("| median ms | fastest ms | slowest ms |");
    println!("|---:|---:|---:|");
    println!(
        "| {:.1} | {:.1} | {:.1} |",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
    Ok(())
}
