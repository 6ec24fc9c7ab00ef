//! `ganger-delegator mcmc`: a Stateline-compatible parallel-tempering run from a config file.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Args;
use ganger_core::mcmc::config::McmcConfig;
use ganger_core::mcmc::likelihood::Builtin;
use ganger_delegator::mcmc::{self, InProcess};
use signal_hook::consts::{SIGINT, SIGTERM};
use tracing::info;

use crate::Common;

/// Arguments of `mcmc`.
#[derive(Debug, Args)]
pub(crate) struct McmcArgs {
    /// The run's configuration: Stateline's JSON keys, or the same keys in TOML.
    #[arg(long, env = "GANGER_CONFIG")]
    config: PathBuf,
    /// Continue from the output folder's last checkpoint (after a crash or kill).
    #[arg(long, env = "GANGER_RESUME")]
    resume: bool,
}

pub(crate) fn run(common: &Common, args: &McmcArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let config = McmcConfig::from_file_contents(&text, &args.config)?;
    if common.local_workers == 0 {
        bail!(
            "evaluating on remote workers is not available yet for `mcmc`: \
             use --local-workers N to evaluate the built-in likelihood `{}` in this process",
            config.likelihood.name()
        );
    }
    let builtin = Builtin::from_name(config.likelihood.name())
        .with_context(|| format!("no built-in likelihood `{}`", config.likelihood.name()))?;
    // Embedded: the local workers are evaluation threads of this process.
    rayon::ThreadPoolBuilder::new()
        .num_threads(common.local_workers)
        .build_global()
        .context("cannot start the evaluation threads")?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    info!(
        config = %args.config.display(),
        chains = config.n_chains(),
        steps = config.samples_per_chain(),
        likelihood = builtin.name(),
        "mcmc run starting"
    );
    let mut evaluator = InProcess::new(builtin.split(config.n_job_types as usize));
    let report = mcmc::run(&config, &mut evaluator, args.resume, &stop)?;
    info!(
        steps = report.steps,
        chain_steps_per_sec = format!("{:.0}", report.steps_per_sec),
        output = %config.output_path,
        "mcmc run {}",
        if report.complete { "done" } else { "stopped" }
    );
    if !report.complete {
        bail!(
            "stopped at step {} of {}; continue with --resume",
            report.steps,
            config.samples_per_chain()
        );
    }
    Ok(())
}
