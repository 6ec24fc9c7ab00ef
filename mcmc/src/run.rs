//! Driving a sampler to the end of a run: evaluate each round (in this process or on workers),
//! write the rows, print the console table, checkpoint, and write `summary.json`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ganger_core::mcmc::config::{McmcConfig, SwapScheme};
use ganger_core::mcmc::embedded;
use ganger_core::mcmc::likelihood::Likelihood;
use ganger_core::mcmc::sampler::{Row, Sampler, SamplerSettings, Swaps, SAMPLER_VERSION};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::digest::LiveDigests;
use super::observer::{Console, Observer};
use super::output::{create_output_dir, write_atomically, ChainFiles, ChainWriter, OutputError};
use super::summary;
use super::table::Table;
use ganger_cluster::lock::{LockError, OutputLock};

/// How often a run publishes its state to the status board.
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

/// Evaluates a sampler's requests, in this process or on workers, and completes them.
pub trait Evaluator {
    /// Evaluates some of `sampler`'s pending requests and completes them (see
    /// `Sampler::complete_chain`); returns the rows that became final, possibly none while
    /// results are still coming in, or once `stop` is set while it waits.
    fn advance(&mut self, sampler: &mut Sampler, stop: &AtomicBool) -> Result<Vec<Row>, McmcError>;

    /// Evaluates points outside the run's requests (the prior draws of the evidence): one
    /// energy per point, in order; [`McmcError::Stopped`] if `stop` is set while it waits.
    fn evaluate_points(
        &mut self,
        points: &[Vec<f64>],
        stop: &AtomicBool,
    ) -> Result<Vec<f64>, McmcError>;

    /// The run is about to do something slow (a checkpoint, the summary): let go of anything
    /// that needs this thread to keep turning (the engine on loan). The next call takes it
    /// back.
    fn pause(&mut self) {}
}

/// Evaluates in this process, every pending point at once (rayon across chains and terms once
/// that is costly).
pub struct InProcess<L> {
    likelihood: L,
    parallel: bool,
    /// Smoothed wall time of a round's evaluation, microseconds.
    round_micros: f64,
}

impl<L: Likelihood> InProcess<L> {
    /// Evaluates with `likelihood`.
    pub fn new(likelihood: L) -> Self {
        InProcess {
            likelihood,
            parallel: false,
            round_micros: 0.0,
        }
    }
}

impl<L: Likelihood> Evaluator for InProcess<L> {
    fn advance(
        &mut self,
        sampler: &mut Sampler,
        _stop: &AtomicBool,
    ) -> Result<Vec<Row>, McmcError> {
        let energies = self.evaluate(sampler);
        Ok(sampler.complete(&energies))
    }

    fn evaluate_points(
        &mut self,
        points: &[Vec<f64>],
        _stop: &AtomicBool,
    ) -> Result<Vec<f64>, McmcError> {
        use rayon::prelude::*;
        let likelihood = &self.likelihood;
        let n_terms = likelihood.n_job_types();
        // Terms added in term order, as a round's are.
        Ok(points
            .par_iter()
            .map(|x| (0..n_terms).map(|j| likelihood.energy(j, x)).sum())
            .collect())
    }
}

impl<L: Likelihood> InProcess<L> {
    fn evaluate(&mut self, sampler: &Sampler) -> Vec<f64> {
        let started = Instant::now();
        let energies = embedded::evaluate_round(sampler, &self.likelihood, self.parallel);
        // Smoothed, with hysteresis: one round slowed by the scheduler must not switch a cheap
        // likelihood to threads for good, where each round would pay their hand-offs.
        let micros = started.elapsed().as_secs_f64() * 1e6;
        self.round_micros = 0.9 * self.round_micros + 0.1 * micros;
        if !self.parallel && self.round_micros > 200.0 {
            self.parallel = true;
        } else if self.parallel && self.round_micros < 50.0 {
            self.parallel = false;
        }
        energies
    }
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone, PartialEq)]
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

/// What a checkpoint holds: enough to continue as if never interrupted.
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    /// [`SAMPLER_VERSION`] of the sampler that wrote it (absent before version 2).
    #[serde(default)]
    version: u32,
    sampler: Sampler,
    /// The evidence's prior draws' energies, once a finished run has evaluated them.
    #[serde(default)]
    prior: Option<Vec<f64>>,
    /// Byte length of each chain file when the sampler was at this step.
    lengths: Vec<u64>,
}

/// Removes `path` if it exists.
fn remove_if_present(path: &Path) -> Result<(), McmcError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(OutputError {
            path: path.to_owned(),
            source,
        }
        .into()),
    }
}

/// The lock file a run holds in its output folder (see [`ganger_cluster::lock`]).
pub const LOCK_FILE: &str = ".ganger.lock";

/// The first file in `dir` that a fresh run of `n_chains` chains would replace, if any: a
/// chain file, the checkpoint, the summary or the recorded configuration.
fn run_file_in(dir: &Path, n_chains: usize) -> Option<PathBuf> {
    let named = [
        checkpoint_path(dir),
        dir.join("summary.json"),
        run_config_path(dir),
    ];
    (0..n_chains)
        .map(|chain| ChainFiles::path(dir, chain))
        .chain(named)
        .find(|path| std::fs::metadata(path).is_ok())
}

/// The checkpoint file of a run writing to `dir`.
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.msgpack")
}

/// The file in a run's output folder that records its configuration, every default filled in
/// (the same keys as a config file, but `outputPath`, which is the folder itself): what produced
/// the chain files beside it, and the burn-in that `ganger-delegator plot` leaves out.
pub fn run_config_path(dir: &Path) -> PathBuf {
    dir.join("ganger-run.json")
}

/// The configuration recorded in the output folder `dir`, if there is a readable one.
pub fn read_run_config(dir: &Path) -> Option<McmcConfig> {
    let path = run_config_path(dir);
    let text = std::fs::read_to_string(&path).ok()?;
    McmcConfig::parse(
        &text,
        &path.display().to_string(),
        ganger_core::mcmc::config::ConfigFormat::Json,
    )
    .ok()
}

/// `config` as `ganger-run.json` records it: every key but `outputPath` (the folder is where
/// the file is: naming it would make two copies of one run differ).
fn recorded_form(config: &McmcConfig) -> Result<serde_json::Value, serde_json::Error> {
    let mut value = serde_json::to_value(config)?;
    if let Some(object) = value.as_object_mut() {
        object.remove("outputPath");
    }
    Ok(value)
}

/// Config keys that a resumed run may change: they cannot change its output.
pub const CHANGEABLE_ON_RESUME: [&str; 2] = ["loggingRateSec", "checkpointIntervalSec"];

/// Refuses to resume the run recorded in `dir` with a `config` that would change its output:
/// any key but [`CHANGEABLE_ON_RESUME`] differing from the recorded one, named with both values.
fn check_same_run(dir: &Path, config: &McmcConfig) -> Result<(), McmcError> {
    let path = run_config_path(dir);
    let Ok(bytes) = std::fs::read(&path) else {
        // A folder from before the configuration was recorded: the checkpoint's checks apply.
        return Ok(());
    };
    let refuse = |reason: String| McmcError::Checkpoint {
        path: path.clone(),
        reason,
    };
    let recorded: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| refuse(format!("cannot resume: unreadable ({e})")))?;
    let this = recorded_form(config).map_err(|e| refuse(e.to_string()))?;
    let empty = serde_json::Map::new();
    let (old, new) = (
        recorded.as_object().unwrap_or(&empty),
        this.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        if CHANGEABLE_ON_RESUME.contains(&key.as_str()) || old.get(key) == new.get(key) {
            continue;
        }
        let show = |v: Option<&serde_json::Value>| v.map_or("absent".to_owned(), |v| v.to_string());
        return Err(refuse(format!(
            "cannot resume: key `{key}` was {} for this run and is {} now, which would change its output; resume with the run's configuration, or start afresh with --overwrite (only {} may change on resume)",
            show(old.get(key)),
            show(new.get(key)),
            CHANGEABLE_ON_RESUME.join(" and ")
        )));
    }
    Ok(())
}

fn write_run_config(dir: &Path, config: &McmcConfig) -> Result<(), McmcError> {
    let path = run_config_path(dir);
    let unwritable = |e: serde_json::Error| McmcError::Checkpoint {
        path: path.clone(),
        reason: e.to_string(),
    };
    let value = recorded_form(config).map_err(unwritable)?;
    let mut text = serde_json::to_string_pretty(&value).map_err(unwritable)?;
    text.push('\n');
    // Atomically: a crash mid-write must not leave a record that refuses every resume.
    write_atomically(&path, text.as_bytes())?;
    Ok(())
}

/// Runs `config` to its end, evaluating with `evaluator`; continues from the last checkpoint if
/// `resume` and one exists. Stops early (cleanly, with a checkpoint) once `stop` is set. The
/// console table goes to stderr.
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
                let files = ChainFiles::create(&dir, config.n_chains(), config.n_dims())?;
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
    observer.end(complete);
    if complete {
        let prior = prior.unwrap_or_default();
        let summary = summary::summarize(&dir, config, &sampler, &prior, live)?;
        summary::write(&dir, &summary)?;
        observer.print(&summary::render(&summary));
    }
    let steps_done = (sampler.step() - first_step) * sampler.n_chains() as u64;
    Ok(RunReport {
        steps: sampler.step(),
        complete,
        steps_per_sec: steps_done as f64 / sampling_seconds.max(1e-9),
        summary_seconds: started.elapsed().as_secs_f64() - sampling_seconds,
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

fn load_checkpoint(
    path: &Path,
    settings: &SamplerSettings,
) -> Option<Result<Checkpoint, McmcError>> {
    let invalid = |reason: String| McmcError::Checkpoint {
        path: path.to_owned(),
        reason,
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        // An unreadable checkpoint must not pass for none: starting over would empty the chains.
        Err(e) => return Some(Err(invalid(format!("cannot read it: {e}")))),
    };
    /// Read first, so that a checkpoint of another sampler gets a clear refusal rather than a
    /// decoding error about a field.
    #[derive(Deserialize)]
    struct Version {
        #[serde(default)]
        version: u32,
    }
    let version = match rmp_serde::from_slice::<Version>(&bytes) {
        Ok(v) => v.version.max(1),
        Err(e) => return Some(Err(invalid(format!("unreadable: {e}")))),
    };
    if version != SAMPLER_VERSION {
        return Some(Err(invalid(format!(
            "it was written by sampler version {version} and this ganger samples with version \
             {SAMPLER_VERSION} (exact bounds, adaptation that forgets the start), which cannot \
             continue it; finish the run with the ganger that started it, or start afresh \
             without --resume"
        ))));
    }
    Some(
        rmp_serde::from_slice::<Checkpoint>(&bytes)
            .map_err(|e| invalid(format!("unreadable: {e}")))
            .and_then(|checkpoint| {
                if checkpoint.sampler.settings() == settings {
                    Ok(checkpoint)
                } else {
                    Err(invalid(
                        "it was written by a run with another configuration; remove it or use that configuration".into(),
                    ))
                }
            }),
    )
}

/// Writes the checkpoint next to its final name, syncs it, then renames it into place, so that
/// a crash at any moment leaves either the old checkpoint or the new one.
fn save_checkpoint(
    path: &Path,
    sampler: &Sampler,
    prior: Option<&[f64]>,
    files: &mut ChainWriter,
) -> Result<(), McmcError> {
    let lengths = files.sync()?;
    let checkpoint = Checkpoint {
        version: SAMPLER_VERSION,
        sampler: sampler.clone(),
        lengths,
        prior: prior.map(<[f64]>::to_vec),
    };
    let bytes = rmp_serde::to_vec_named(&checkpoint).map_err(|e| McmcError::Checkpoint {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    // Its folder is synced too: the rename, and the chain files' own entries, survive a crash.
    write_atomically(path, &bytes)?;
    Ok(())
}
