//! `ganger-delegator mcmc`: a Stateline-compatible parallel-tempering run from a config file.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use ganger_core::mcmc::config::McmcConfig;
use ganger_core::mcmc::likelihood::{Builtin, BUILTIN_LIKELIHOODS};
use ganger_mcmc::{self as mcmc, InProcess, OnWorkers};
use signal_hook::consts::{SIGINT, SIGTERM};
use tracing::info;

use crate::shell::{command_with, this_command, thousands};
use crate::watch::Watch;
use crate::Common;

/// What `mcmc --help` says after the flags: the built-in likelihoods, and examples.
pub(crate) const AFTER_HELP: &str = "\
Built-in likelihoods (\"likelihood\" in the config; every ganger-worker serves them):
  gaussian    standard Gaussian at the origin (Stateline's demo; the default)
  bimodal     two modes at x0 = -5 and +5, weights 0.3 and 0.7
  rosenbrock  the Rosenbrock banana, scaled by 1/20

Examples:
  ganger-delegator mcmc --config examples/stateline-demo.json --local-workers 2
  ganger-delegator mcmc --config run.json --resume      # after a crash, a kill or Ctrl-C
  ganger-delegator mcmc --config run.json --spawn-workers 2   # and remote workers may join";

/// Arguments of `mcmc`.
#[derive(Debug, Args)]
pub(crate) struct McmcArgs {
    /// The run's configuration: Stateline's JSON keys, or the same keys in TOML.
    #[arg(long, env = "GANGER_CONFIG")]
    config: PathBuf,
    /// Continue from the output folder's last checkpoint (after a crash or kill).
    #[arg(long, env = "GANGER_RESUME")]
    resume: bool,
    /// Start afresh even if the output folder holds a run's files, replacing its chain files,
    /// checkpoint and summary (without it, or --resume, such a folder is refused).
    #[arg(long, env = "GANGER_OVERWRITE", conflicts_with = "resume")]
    overwrite: bool,
    /// Without --local-workers: start this many ganger-worker processes on this machine too
    /// (remote workers may join as well).
    #[arg(long, env = "GANGER_SPAWN_WORKERS", default_value_t = 0)]
    spawn_workers: usize,
}

impl McmcArgs {
    /// What to do with an output folder that holds a run's files.
    fn existing(&self) -> mcmc::Existing {
        if self.resume {
            mcmc::Existing::Resume
        } else if self.overwrite {
            mcmc::Existing::Overwrite
        } else {
            mcmc::Existing::Refuse
        }
    }
}

pub(crate) fn run(common: &Common, args: &McmcArgs, watch: &mut Watch) -> anyhow::Result<()> {
    let started = Instant::now();
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let config = McmcConfig::from_file_contents(&text, &args.config)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let likelihood = config.likelihood.as_str();
    // Local evaluation, in this process or in spawned `ganger-worker`s, knows only the built-ins.
    let local = common.local_workers > 0 || args.spawn_workers > 0;
    let builtin = Builtin::from_name(likelihood);
    if local && builtin.is_none() {
        let names: Vec<_> = BUILTIN_LIKELIHOODS.iter().map(|(n, _)| *n).collect();
        bail!(
            "{}: key `likelihood`: \"{likelihood}\" is not built in, and {} evaluate only {}; leave them out and start workers that serve mcmc/{likelihood}/*",
            args.config.display(),
            if common.local_workers > 0 { "--local-workers" } else { "--spawn-workers" },
            names.join(", ")
        );
    }
    let n_terms = config.n_job_types as usize;
    info!(
        config = %args.config.display(),
        chains = config.n_chains(),
        steps = config.samples_per_chain(),
        likelihood,
        "mcmc run starting"
    );
    let report = if common.local_workers > 0 {
        // Embedded: the local workers are evaluation threads of this process.
        let builtin = builtin.context("checked above")?;
        rayon::ThreadPoolBuilder::new()
            .num_threads(common.local_workers)
            .build_global()
            .context("cannot start the evaluation threads")?;
        watch.board.set_in_process(common.local_workers);
        let mut evaluator = InProcess::new(builtin.split(n_terms));
        mcmc::run_with_status(
            &config,
            &mut evaluator,
            args.existing(),
            &stop,
            &watch.board,
        )?
    } else {
        // Distributed: workers anywhere serve `mcmc/LIKELIHOOD/*` (or single terms).
        let (delegator, _workers) = common.start_delegator(args.spawn_workers, watch)?;
        info!(endpoint = %delegator.endpoint(), job_types = %format!("mcmc/{likelihood}/0..{n_terms}"), "waiting for workers");
        let mut evaluator = OnWorkers::new(&delegator, likelihood, n_terms)?;
        mcmc::run_with_status(
            &config,
            &mut evaluator,
            args.existing(),
            &stop,
            &watch.board,
        )?
    };
    watch.finish_console();
    if let Some(summary) = &report.summary {
        // The run's result, on stdout: the logs and the live table went to stderr.
        let mut out = std::io::stdout().lock();
        write!(out, "{}", mcmc::summary::render(summary))?;
        write!(
            out,
            "{}",
            closing_lines(&config, &report, started.elapsed(), args.resume)
        )?;
        out.flush()?;
    }
    info!(
        steps = report.steps,
        chain_steps_per_sec = format!("{:.0}", report.steps_per_sec),
        output = %config.output_path,
        "mcmc run {}",
        if report.complete { "done" } else { "stopped" }
    );
    if common.keep_serving && report.complete {
        info!("run done; serving until SIGTERM (--keep-serving)");
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    if !report.complete {
        bail!(
            "interrupted at step {} of {}; resume with: {}",
            report.steps,
            config.samples_per_chain(),
            this_command(&["--overwrite"], Some("--resume"))
        );
    }
    Ok(())
}

/// What a finished run says after its posterior: how long it took, where its files are, and
/// how to plot them.
/// A resumed run's rate and time are this process's part of it.
fn closing_lines(
    config: &McmcConfig,
    report: &mcmc::RunReport,
    wall: Duration,
    resumed: bool,
) -> String {
    let chains = config.n_chains() as u64;
    format!(
        "finished {} steps × {} chains: {} samples/s while sampling{}; {:.2} s in all, {:.2} s \
         of it the summary\n\
         output: {}\n\
         plot:   {}\n",
        thousands(report.steps),
        chains,
        thousands(report.steps_per_sec.round() as u64),
        if resumed {
            " (this process's part)"
        } else {
            ""
        },
        wall.as_secs_f64(),
        report.summary_seconds,
        config.output_path,
        command_with(&["plot", &config.output_path]),
    )
}
