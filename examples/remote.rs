//! Run with: `cargo run --release --example remote`
//!
//! A delegator and remote workers with a custom Rust task. With no arguments this program is the
//! delegator: it binds an endpoint (default `tcp://127.0.0.1:5555`, or the first argument), starts
//! two copies of itself as worker processes, and counts the primes below ten million in chunks.
//! On a cluster, start the workers yourself instead, on any host that can reach the delegator:
//!
//! ```sh
//! export GANGER_SECRET=$(ganger-delegator secret)    # the same value on every host
//! cargo run --release --example remote -- tcp://0.0.0.0:5555 --no-local-workers   # on the delegator host
//! cargo run --release --example remote -- worker tcp://DELEGATOR_HOST:5555         # on each worker host
//! ```
//!
//! Both sides read the cluster secret from `GANGER_SECRET` when it is set (the delegator refuses a
//! non-loopback bind without one); the local workers inherit it.

use std::process::{Child, Command};

use anyhow::Context as _;
use ganger::cluster::Secret;
use ganger::{Delegator, DelegatorConfig, JobOptions, Registry, Worker, WorkerConfig};

/// The cluster secret from `GANGER_SECRET`, if set.
fn secret() -> anyhow::Result<Option<Secret>> {
    match std::env::var("GANGER_SECRET") {
        Ok(value) => Ok(Some(
            Secret::new(value.as_bytes()).context("GANGER_SECRET")?,
        )),
        Err(_) => Ok(None),
    }
}

/// Primes in `[from, to)` by trial division: deliberately CPU-bound.
fn count_primes((from, to): (u64, u64)) -> u64 {
    (from..to)
        .filter(|&n| n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
        .count() as u64
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register("count-primes", count_primes);
    registry
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("worker") {
        let endpoint = args.get(1).context("usage: remote worker ENDPOINT")?;
        let mut config = WorkerConfig::new(endpoint.as_str());
        config.secret = secret()?;
        let worker = Worker::new(config, registry())?;
        let summary = worker.run()?;
        println!("worker done: {} units", summary.units_done);
        return Ok(());
    }
    let bind = args
        .first()
        .cloned()
        .unwrap_or("tcp://127.0.0.1:5555".into());
    let delegator = Delegator::start(DelegatorConfig {
        bind: bind.clone(),
        secret: secret()?,
        ..DelegatorConfig::default()
    })
    .with_context(|| format!("cannot bind {bind}"))?;
    println!("delegator on {}", delegator.endpoint());
    let mut workers: Vec<Child> = Vec::new();
    if !args.iter().any(|a| a == "--no-local-workers") {
        let me = std::env::current_exe()?;
        for _ in 0..2 {
            workers.push(
                Command::new(&me)
                    .args(["worker", &delegator.local_endpoint()])
                    .spawn()?,
            );
        }
    }
    let chunk = 100_000u64;
    let ranges = (0..100).map(|i| (i * chunk, (i + 1) * chunk));
    let job = delegator.submit::<_, u64>("count-primes", ranges, JobOptions::default())?;
    let mut total = 0;
    for (_, result) in job {
        total += result?;
    }
    println!("{total} primes below {}", 100 * chunk);
    assert_eq!(total, 664_579);
    for worker in &mut workers {
        // SAFETY: kill(2) on our own child with a valid signal number.
        unsafe { libc::kill(worker.id() as i32, libc::SIGTERM) };
        worker.wait()?;
    }
    Ok(())
}
