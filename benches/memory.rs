//! `cargo bench --bench memory`
//!
//! The delegator's peak memory (resident set) does not grow with the length of a run: the demo
//! (`examples/stateline-demo.json`, 2 stacks × 5 temperatures, 4 dimensions) run by the
//! release `ganger-delegator` for 1× and 10× a length, embedded (`--local-workers 2`, 1× =
//! twice the demo's 200,000 samples) and distributed (`--spawn-workers 2 --worker-threads 1`,
//! 1× = the demo's), each run's peak RSS read from the kernel when it exits (`wait4`; the
//! spawned workers are other processes and not counted). The summary keeps at most 65,536
//! draws per chain, which the embedded 1× already exceeds: beyond that, nothing grows.
//! Runs are interleaved (1×, 10×, 1×, …); figures are medians with their range.
//! `-- --test` runs tiny sizes once (CI); `--reps N` sets the repetitions (default 1: the 10×
//! distributed run takes about two minutes).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _, Result};
use common::median_range;

/// Cold-chain samples of the demo, over both stacks.
const DEMO_SAMPLES: u64 = 200_000;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let test = args.iter().any(|a| a == "--test");
    let reps: usize = match args.iter().position(|a| a == "--reps") {
        Some(i) => args.get(i + 1).context("--reps N")?.parse()?,
        None => 1,
    };
    let binaries = common::release_binaries()?;
    let delegator = binaries.join("ganger-delegator");
    let scratch = std::env::temp_dir().join(format!("ganger-memory-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    println!("Peak RSS of ganger-delegator running the demo at 1x and 10x a length\n");
    println!(
        "| evaluation | 1x, samples | peak RSS at 1x, MB | peak RSS at 10x, MB | 10x − 1x, MB |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, flags, base) in [
        (
            "embedded (--local-workers 2)",
            &["--local-workers", "2"][..],
            2 * DEMO_SAMPLES,
        ),
        (
            "distributed (--spawn-workers 2 --worker-threads 1)",
            &["--spawn-workers", "2", "--worker-threads", "1"][..],
            DEMO_SAMPLES,
        ),
    ] {
        let base = if test { 2_000 } else { base };
        let (mut short, mut long) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            short.push(peak_rss_mb(&delegator, flags, base, &scratch)?);
            long.push(peak_rss_mb(&delegator, flags, 10 * base, &scratch)?);
        }
        let growth: Vec<f64> = long.iter().zip(&short).map(|(l, s)| l - s).collect();
        println!(
            "| {name} | {base} | {} | {} | {} |",
            median_range(&short, 1),
            median_range(&long, 1),
            median_range(&growth, 1)
        );
    }
    std::fs::remove_dir_all(&scratch).ok();
    Ok(())
}

/// Runs the demo with `samples` cold samples and returns the delegator's peak RSS, MB.
fn peak_rss_mb(delegator: &Path, flags: &[&str], samples: u64, scratch: &Path) -> Result<f64> {
    let output = scratch.join("output");
    let _ = std::fs::remove_dir_all(&output);
    let demo = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/stateline-demo.json"),
    )?;
    let mut config: serde_json::Value = serde_json::from_str(&demo)?;
    config["nSamplesTotal"] = samples.into();
    config["outputPath"] = output.display().to_string().into();
    config["loggingRateSec"] = 3600.into();
    let config_path = scratch.join("demo.json");
    std::fs::write(&config_path, config.to_string())?;
    let child = Command::new(delegator)
        .args(["mcmc", "--config"])
        .arg(&config_path)
        .args(flags)
        .args(["--http", "none", "--bind", "tcp://127.0.0.1:0"])
        .env("GANGER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting ganger-delegator")?;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let rusage = unsafe {
        let mut rusage: libc::rusage = std::mem::zeroed();
        if libc::wait4(child.id() as i32, &mut status, 0, &mut rusage) < 0 {
            bail!("wait4: {}", std::io::Error::last_os_error());
        }
        rusage
    };
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("ganger-delegator failed on {samples} samples (status {status})");
    }
    // Linux reports ru_maxrss in kilobytes.
    Ok(rusage.ru_maxrss as f64 / 1024.0)
}
