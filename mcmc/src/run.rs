//! Driving a sampler to the end of a run: evaluate each round (in this process or on workers),
//! write the rows, print the console table, checkpoint, and write `summary.json`.

mod folder;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ganger_cluster::lock::{LockError, OutputLock};
use ganger_core::mcmc::config::{McmcConfig, SwapScheme};
use ganger_core::mcmc::sampler::{Sampler, SamplerSettings, Swaps};
use tracing::info;

use crate::digest::LiveDigests;
pub use crate::evaluator::{Evaluator, InProcess};
use crate::observer::{Console, Observer};
use crate::output::{create_output_dir, ChainFiles, ChainWriter, OutputError};
use crate::summary;
use crate::table::Table;
use folder::{
    check_same_run, load_checkpoint, remove_if_present, run_file_in, save_checkpoint,
    write_run_config,
};
pub use folder::{
    checkpoint_path, read_run_config, run_config_path, CHANGEABLE_ON_RESUME, LOCK_FILE,
};

/// How often a run publishes its state to its observer.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Why a run stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum McmcError {
    /// Writing or reading the output folder failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The checkpoint could not be read or belongs to another configuration.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Evaluating a round failed (the engine stopped).
    #[error("evaluation failed: {0}")]
    Evaluation(String),
    /// The run was asked to stop while it waited for evaluations.
    #[error("stopped while waiting for evaluations")]
    Stopped,
    /// Another run writes to the same output folder.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// The output folder holds a run's files and the run was asked neither to resume nor to
    /// overwrite them.
    #[error(
        "{} already holds a run's results ({}); continue it with --resume, or replace it with --overwrite",
        .dir.display(),
        .file.display()
    )]
    OutputExists {
        /// The output folder.
        dir: PathBuf,
        /// The first of its files the run would replace.
        file: PathBuf,
    },
}

/// What a run does with an output folder that already holds a run's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse to start ([`McmcError::OutputExists`]): no result is replaced unasked.
    Refuse,
    /// Continue from the folder's last checkpoint; without one, start from the beginning if
    /// the folder holds no chain files, else refuse.
    Resume,
    /// Start afresh, replacing the folder's chain files, checkpoint and summary.
    Overwrite,
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Steps each chain took.
    pub steps: u64,
    /// Whether the run reached its end (false if stopped early).
    pub complete: bool,
    /// Chain steps per second over this process's part of the run, with the chain files
    /// written and synced (the final summary excluded).
    pub steps_per_sec: f64,
    /// Seconds spent on the final table and `summary.json`.
    pub summary_seconds: f64,
    /// What `summary.json` holds (the posterior, diagnostics, ladder and evidence), for a
    /// complete run; [`summary::render`] lays it out as a table.
    pub summary: Option<summary::RunSummary>,
}

/// The sampler settings a configuration asks for.
pub fn sampler_settings(config: &McmcConfig) -> SamplerSettings {
    SamplerSettings {
        min: config.min.clone(),
        max: config.max.clone(),
        n_stacks: config.n_stacks,
        n_temperatures: config.n_temperatures,
        swap_interval: config.swap_interval,
        optimal_accept_rate: config.optimal_accept_rate,
        optimal_swap_rate: config.optimal_swap_rate,
        swaps: match config.swap_scheme {
            SwapScheme::Classic => Swaps::Classic,
            SwapScheme::NonReversible => Swaps::NonReversible,
        },
        max_temperature: config.max_temperature,
        adaptation_steps: config.adaptation_steps,
        initial: if config.use_initial {
            config.initial.clone()
        } else {
            None
        },
        seed: config.seed,
    }
}

/// Runs `config` to its end, evaluating with `evaluator`; continues from the last checkpoint if
/// `existing` is [`Existing::Resume`] and one exists. Stops early (cleanly, with a checkpoint)
/// once `stop` is set. The console table and, at the end, the posterior go to stderr; the
/// posterior is also written to `summary.json` and returned in the report
/// ([`RunReport::summary`]).
pub fn run(
    config: &McmcConfig,
    evaluator: &mut dyn Evaluator,
    existing: Existing,
    stop: &AtomicBool,
) -> Result<RunReport, McmcError> {
    run_with_status(config, evaluator, existing, stop, &Console)
}

/// Like [`run`], publishing the run's progress, chains and convergence to `observer` every
/// second and printing the console table through [`Observer::print`].
pub fn run_with_status(
    config: &McmcConfig,
    evaluator: &mut dyn Evaluator,
    existing: Existing,
    stop: &AtomicBool,
    observer: &dyn Observer,
) -> Result<RunReport, McmcError> {
    let result = run_to_end(config, evaluator, existing, stop, observer);
    // However the run ended, the evaluator holds nothing the caller's delegator needs.
    evaluator.pause();
    result
}

/// [`run_with_status`] but for letting go of the evaluator's hold at the end.
fn run_to_end(
    config: &McmcConfig,
    evaluator: &mut dyn Evaluator,
    existing: Existing,
    stop: &AtomicBool,
    observer: &dyn Observer,
) -> Result<RunReport, McmcError> {
    let dir = PathBuf::from(&config.output_path);
    let settings = sampler_settings(config);
    let checkpoint = checkpoint_path(&dir);
    create_output_dir(&dir)?;
    // Held until the run returns: a second run on this folder fails at once.
    let _lock = OutputLock::acquire(&dir, &dir.join(LOCK_FILE))?;
    let resume = existing == Existing::Resume;
    if resume && checkpoint.exists() {
        check_same_run(&dir, config)?;
    }
    let (mut sampler, files, mut prior) =
        match resume.then(|| load_checkpoint(&checkpoint, &settings)) {
            Some(Some(loaded)) => {
                let loaded = loaded?;
                info!(
                    step = loaded.sampler.step(),
                    "resuming from {}",
                    checkpoint.display()
                );
                let files = ChainFiles::resume(&dir, &loaded.lengths)?;
                // Recorded again: the keys a resume may change are this run's now.
                write_run_config(&dir, config)?;
                (loaded.sampler, files, loaded.prior)
            }
            _ => {
                // Resuming a run killed before its first checkpoint starts it again: it wrote
                // nothing that starting again does not write, unless the folder holds a
                // finished run's summary or another configuration's files.
                let restartable = resume
                    && !checkpoint.exists()
                    && !dir.join("summary.json").exists()
                    && check_same_run(&dir, config).is_ok();
                if existing != Existing::Overwrite && !restartable {
                    if let Some(file) = run_file_in(&dir, config.n_chains()) {
                        return Err(McmcError::OutputExists { dir, file });
                    }
                }
                if resume {
                    info!(
                        "no checkpoint in {}: starting from the beginning",
                        dir.display()
                    );
                }
                // A previous run's checkpoint and summary would pass for this run's: gone before
                // anything of this run is written, and its configuration recorded first.
                remove_if_present(&checkpoint)?;
                remove_if_present(&dir.join("summary.json"))?;
                write_run_config(&dir, config)?;
                let files = ChainFiles::create(&dir, config.n_chains(), &config.dim_names())?;
                (Sampler::new(settings), files, None)
            }
        };
    let mut files = ChainWriter::new(files);
    let total = config.samples_per_chain();
    sampler.set_horizon(total);
    let started = Instant::now();
    let first_step = sampler.step();
    // A run from step 0 digests its rows as it writes them; a resumed one reads its files back.
    let mut live = (first_step == 0).then(|| {
        let (burn_in, fixed_from) = summary::windows(config, total);
        LiveDigests::new(
            sampler.n_chains(),
            config.n_temperatures,
            config.n_dims(),
            burn_in,
            fixed_from,
        )
    });
    let mut table = Table::new(
        &sampler,
        config.n_temperatures,
        config.burn_in,
        config.adaptation_steps,
        config.dim_names(),
    );
    observer.begin(&config.output_path, total, sampler.n_chains() as u64);
    observer.publish(table.status(&sampler, total));
    let mut last_publish = Instant::now();
    let log_every = Duration::from_secs_f64(config.logging_rate_sec.max(0.01));
    let checkpoint_every = (config.checkpoint_interval_sec > 0.0)
        .then(|| Duration::from_secs_f64(config.checkpoint_interval_sec));
    let (mut last_log, mut last_checkpoint) = (Instant::now(), Instant::now());
    while !sampler.is_finished() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if files.has_failed() {
            // A full disk or a lost file: stop now, with the last checkpoint intact.
            evaluator.pause();
            files.sync()?;
        }
        let rows = evaluator.advance(&mut sampler, stop)?;
        if rows.is_empty() {
            continue;
        }
        table.observe(&rows);
        if let Some(live) = live.as_mut() {
            live.observe(&rows);
        }
        if files.is_backed_up() {
            // A slow disk: this write may wait for it, and the engine must not wait with it.
            evaluator.pause();
        }
        files.write(rows);
        if last_log.elapsed() >= log_every {
            last_log = Instant::now();
            observer.print(&table.render(&sampler, total));
        }
        if last_publish.elapsed() >= PUBLISH_EVERY {
            last_publish = Instant::now();
            observer.publish(table.status(&sampler, total));
            observer.tick();
        }
        if sampler.at_boundary()
            && checkpoint_every.is_some_and(|every| last_checkpoint.elapsed() >= every)
        {
            last_checkpoint = Instant::now();
            evaluator.pause();
            save_checkpoint(&checkpoint, &sampler, None, &mut files)?;
        }
    }
    evaluator.pause();
    save_checkpoint(&checkpoint, &sampler, prior.as_deref(), &mut files)?;
    let sampling_seconds = started.elapsed().as_secs_f64();
    // A last table, so that even a run shorter than the logging interval shows one.
    observer.print(&table.render(&sampler, total));
    observer.publish(table.status(&sampler, total));
    let mut complete = sampler.is_finished();
    if complete && prior.is_none() {
        match prior_energies(config, evaluator, stop) {
            Ok(energies) => {
                evaluator.pause();
                // Kept with the run, so that resuming a finished run evaluates nothing again.
                save_checkpoint(&checkpoint, &sampler, Some(&energies), &mut files)?;
                prior = Some(energies);
            }
            // The summary waits for a resume; the chains are all there.
            Err(McmcError::Stopped) => complete = false,
            Err(e) => return Err(e),
        }
    }
    // The run is called over once its outputs are complete: whoever sees it done (the
    // dashboard, /healthz, a script polling the API) finds summary.json written.
    let summary = if complete {
        let prior = prior.unwrap_or_default();
        summary::summarize(&dir, config, &sampler, &prior, live).and_then(|summary| {
            summary::write(&dir, &summary)?;
            observer.summary(&summary::render(&summary));
            Ok(Some(summary))
        })
    } else {
        Ok(None)
    };
    observer.end(complete && summary.is_ok());
    let summary = summary?;
    let steps_done = (sampler.step() - first_step) * sampler.n_chains() as u64;
    Ok(RunReport {
        steps: sampler.step(),
        complete,
        steps_per_sec: steps_done as f64 / sampling_seconds.max(1e-9),
        summary_seconds: started.elapsed().as_secs_f64() - sampling_seconds,
        summary,
    })
}

/// The energies of the evidence's prior draws (none when there is no evidence to estimate).
fn prior_energies(
    config: &McmcConfig,
    evaluator: &mut dyn Evaluator,
    stop: &AtomicBool,
) -> Result<Vec<f64>, McmcError> {
    if config.n_temperatures < 2 || config.evidence_draws == 0 {
        return Ok(Vec::new());
    }
    let points = ganger_core::mcmc::evidence::prior_points(
        &config.min,
        &config.max,
        config.evidence_draws as usize,
        config.seed,
    );
    evaluator.evaluate_points(&points, stop)
}
