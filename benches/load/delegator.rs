//! The load bench's delegator process (`--role delegator`): a delegator on a loopback port,
//! driven by one-line commands on its standard input.

use std::io::{BufRead, Write};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use ganger::cluster::SchedulerConfig;
use ganger::{Delegator, DelegatorConfig, Job, JobOptions};

use super::{unix_nanos, HEARTBEAT_MS};

pub(super) fn delegator_role() -> Result<()> {
    let delegator = Delegator::start(DelegatorConfig {
        bind: "tcp://127.0.0.1:0".into(),
        scheduler: SchedulerConfig {
            heartbeat_ms: HEARTBEAT_MS,
            ..SchedulerConfig::default()
        },
        ..DelegatorConfig::default()
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "endpoint {}", delegator.local_endpoint())?;
    out.flush()?;
    // Held so that their units stay leased until the end.
    let mut held: Vec<Job<u64>> = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["workers"] => writeln!(out, "workers {}", delegator.stats()?.workers.len())?,
            ["job", n] => {
                let n: u64 = n.parse()?;
                let started = Instant::now();
                let job: Job<u64> = delegator.submit("echo", 0..n, JobOptions::default())?;
                let mut done = 0u64;
                for (_, outcome) in job {
                    outcome?;
                    done += 1;
                }
                ensure!(done == n, "the load job delivered {done} of {n} units");
                writeln!(out, "done {}", started.elapsed().as_secs_f64())?;
            }
            ["hold", n] => {
                let n: u64 = n.parse()?;
                held.push(delegator.submit("hold", 0..n, JobOptions::default())?);
                // Leased once the count stops growing: how many units an unmeasured job type
                // gets at each worker is the scheduler's choice.
                let (mut leased, mut since) = (0, Instant::now());
                while leased == 0 || since.elapsed() < Duration::from_millis(500) {
                    let now: u64 = delegator.stats()?.workers.iter().map(|w| w.in_flight).sum();
                    if now != leased {
                        (leased, since) = (now, Instant::now());
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                writeln!(out, "leased {leased}")?;
            }
            ["watch", name] => {
                let stats = delegator.stats()?;
                let prefix = format!("{name}-");
                let units: u64 = stats
                    .workers
                    .iter()
                    .filter(|w| w.name.starts_with(&prefix))
                    .map(|w| w.in_flight)
                    .sum();
                let base = stats.counters.requeued;
                writeln!(out, "watching {units}")?;
                out.flush()?;
                let deadline = Instant::now() + Duration::from_secs(60);
                while delegator.stats()?.counters.requeued < base + units {
                    ensure!(Instant::now() < deadline, "units were not requeued in 60 s");
                    // Not faster: each look copies the table of 1,000 workers on the engine thread.
                    thread::sleep(Duration::from_millis(2));
                }
                writeln!(out, "requeued {}", unix_nanos())?;
            }
            ["quit"] => break,
            _ => bail!("unknown command `{line}`"),
        }
        out.flush()?;
    }
    drop(held);
    delegator.shutdown();
    Ok(())
}
