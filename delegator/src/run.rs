//! `ganger-delegator run`: job chunks from the command line.
//!
//! Inputs are JSON lines (one JSON value per non-blank line, the n-th value being input n) or a
//! range of integers; each output line is `{"index": n, "output": VALUE}` or
//! `{"index": n, "error": "MESSAGE"}`, in completion order unless `--ordered`.
//!
//! An output file is also the run's journal (see [`journal`]): after a crash or `kill -9`, the
//! same command with `--resume` evaluates only the inputs without a result.

mod journal;
mod unserved;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use ganger_cluster::scheduler::Outcome;
use ganger_cluster::{Job, JobOptions};
use ganger_core::payload::{self, Payload};
use serde_json::Value;
use signal_hook::consts::{SIGINT, SIGTERM};
use tracing::{info, warn};

use crate::shell::this_command;
use crate::watch::Watch;
use crate::Common;
use ganger_observe::status::{RunKind, RunState};
use journal::{Journal, RunIdentity};
use unserved::Unserved;

/// What `run --help` says after the flags: the tasks every `ganger-worker` serves, and
/// examples.
pub(crate) const AFTER_HELP: &str = "\
Built-in tasks (every ganger-worker serves them):
  square        a number -> its square (an integer overflow is a unit error)
  sleep         microseconds -> the input, after sleeping that long
  spin          microseconds -> the input, after busy-waiting that long
  noop          anything -> the input, unchanged
  panic-if-odd  an integer -> itself; panics on odd ones (to try out retries)
Other tasks: register them in a Rust worker, or serve them from any program with
ganger-worker --exec (README, \"Any language\").

Examples:
  ganger-delegator run --task square --range 1000 --local-workers 2
  ganger-delegator run --task spin --input work.jsonl --output results.jsonl --resume
  ganger-delegator run --task square --range 1000000   # and on other machines:
  ganger-worker --connect tcp://HOST:5555";

/// Arguments of `run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The task (job type) to evaluate each input with.
    #[arg(long, env = "GANGER_TASK")]
    task: String,
    /// JSON-lines file of inputs (`-` for standard input).
    #[arg(
        long,
        env = "GANGER_INPUT",
        conflicts_with = "range",
        required_unless_present = "range"
    )]
    input: Option<PathBuf>,
    /// Use the integers 0..N as inputs instead of a file.
    #[arg(long, env = "GANGER_RANGE")]
    range: Option<u64>,
    /// Where to write result lines (`-` for standard output).
    #[arg(long, env = "GANGER_OUTPUT", default_value = "-")]
    output: PathBuf,
    /// Write results in input order (buffers them all) instead of completion order.
    #[arg(long, env = "GANGER_ORDERED")]
    ordered: bool,
    /// Job priority; higher runs first when several jobs share the workers.
    #[arg(long, env = "GANGER_PRIORITY", default_value_t = 0)]
    priority: i32,
    /// Continue an interrupted run writing to the same --output file: inputs whose results it
    /// holds are not evaluated again (from the beginning if there are none).
    #[arg(long, env = "GANGER_RESUME")]
    resume: bool,
    /// Start afresh even if --output holds results, replacing them (without it, or --resume,
    /// such an output is refused).
    #[arg(long, env = "GANGER_OVERWRITE", conflicts_with = "resume")]
    overwrite: bool,
    /// Fail if workers are connected but none serves --task for this long, seconds (0: wait
    /// for one forever). With only --local-workers, none other can come: it fails as soon as
    /// they are all connected.
    #[arg(long, env = "GANGER_UNSERVED_TIMEOUT_SECS", default_value_t = 60)]
    unserved_timeout_secs: u64,
}

pub(crate) fn run(common: &Common, args: &RunArgs, watch: &mut Watch) -> anyhow::Result<()> {
    let payloads = read_inputs(args)?;
    let total = payloads.len() as u64;
    // Before any worker starts: an unwritable output is an error now, not after the work.
    let mut output = Output::open(args, &payloads)?;
    // Only inputs without a result yet are submitted; `missing[i]` is the i-th one's index.
    let missing: Vec<u64> = (0..total)
        .filter(|&index| !output.has(index as usize))
        .collect();
    let payloads: Vec<Payload> = if missing.len() as u64 == total {
        payloads
    } else {
        missing
            .iter()
            .map(|&index| payloads[index as usize].clone())
            .collect()
    };
    // The workers are declared after the delegator so that they stop first, saying goodbye.
    let (delegator, _workers) = common.start_delegator(common.local_workers, watch)?;
    // After the workers' start: the run's clock and rate count the work, not the start-up.
    watch.board.begin(RunKind::Run, &args.task, total, 1);
    let (already, already_failed) = (output.already, output.already_failed);
    watch.board.set_already_done(already, already_failed);
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register(signal, interrupted.clone())?;
    }
    let started = Instant::now();
    let job: Job<Value> = delegator.submit_payloads(
        &args.task,
        payloads,
        JobOptions {
            priority: args.priority,
            ..JobOptions::default()
        },
    )?;
    // With only local workers on a loopback port, no other worker can come to serve the task.
    let only_local =
        (common.local_workers > 0 && common.bind.is_none()).then_some(common.local_workers);
    let mut unserved = Unserved::new(&args.task, args.unserved_timeout_secs, only_local);
    let (completed, failed) = write_outcomes(job, &missing, &mut output, &interrupted, |now| {
        // A stopped engine ends the job on its own; nothing to judge then.
        match delegator.stats() {
            Ok(stats) => unserved.judge(now, &stats),
            Err(_) => Ok(()),
        }
    })?;
    let done = already + completed + failed;
    // The engine may also end a job early (it stopped): that is no finished run either.
    let stopped = interrupted.load(Ordering::SeqCst) || done < total;
    let resumable = output.is_journal();
    output.finish(!stopped)?;
    // The engine's last word before the run is called over: a run shorter than the board's
    // poll would otherwise end with no counters, workers or unit errors to show.
    if let Ok(stats) = delegator.stats() {
        watch.board.publish_engine(stats);
    }
    watch
        .board
        .set_progress(done, already_failed + failed, total);
    watch.board.end(if stopped {
        RunState::Stopped
    } else {
        RunState::Done
    });
    watch.finish_console();
    let evaluated = completed + failed;
    // The time and rate the progress bar and the dashboard end with: the same everywhere.
    let snapshot = watch.board.snapshot();
    let (seconds, units_per_sec) = (
        snapshot
            .run_secs
            .unwrap_or_else(|| started.elapsed().as_secs_f64()),
        snapshot.progress.mean_rate,
    );
    if stopped {
        info!(
            units = total,
            already_done = already,
            evaluated,
            "job interrupted"
        );
        bail!(
            "interrupted after {done} of {total} units{}",
            if resumable {
                format!(
                    "; resume with: {}",
                    this_command(&["--overwrite"], Some("--resume"))
                )
            } else {
                String::new()
            }
        );
    }
    info!(
        units = total,
        already_done = already,
        evaluated,
        completed,
        failed,
        seconds = format!("{seconds:.3}"),
        units_per_sec = format!("{units_per_sec:.0}"),
        "job done"
    );
    if common.keep_serving {
        info!("job done; serving until SIGTERM (--keep-serving)");
        while !interrupted.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

fn read_inputs(args: &RunArgs) -> anyhow::Result<Vec<Payload>> {
    if let Some(n) = args.range {
        return (0..n)
            .map(|i| payload::to_payload(&i).map_err(Into::into))
            .collect();
    }
    let path = args.input.as_deref().unwrap_or(Path::new("-"));
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Box::new(BufReader::new(file))
    };
    let mut payloads = Vec::new();
    for (line_number, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a JSON value", path.display(), line_number + 1))?;
        payloads.push(payload::to_payload(&value)?);
    }
    Ok(payloads)
}

/// Where results go: a stream (standard output, a device, a pipe) or a journalled file.
struct Output {
    sink: Sink,
    ordered: bool,
    /// Whether each input has a result in the journal (empty for a stream).
    has: Vec<bool>,
    /// With `--ordered`, each input's result line once known (from a previous attempt too).
    lines: Vec<Option<String>>,
    /// The first index not yet written to an ordered stream.
    next_in_order: usize,
    /// Results a previous attempt left, and how many of those failed.
    already: u64,
    already_failed: u64,
}

enum Sink {
    Stream {
        path: PathBuf,
        writer: Box<dyn Write>,
    },
    Journal(Journal),
}

impl Output {
    /// Opens `--output`: a regular file (or a new one) is journalled; anything else is a stream.
    fn open(args: &RunArgs, payloads: &[Payload]) -> anyhow::Result<Output> {
        let path = &args.output;
        let is_stream = path == Path::new("-")
            || std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_file());
        let n_inputs = if args.ordered { payloads.len() } else { 0 };
        let mut output = Output {
            sink: Sink::Stream {
                path: path.clone(),
                writer: Box::new(std::io::sink()),
            },
            ordered: args.ordered,
            has: Vec::new(),
            lines: vec![None; n_inputs],
            next_in_order: 0,
            already: 0,
            already_failed: 0,
        };
        if is_stream {
            if args.resume {
                warn!(output = %path.display(), "--resume: the output is not a regular file, so every input is evaluated");
            }
            output.sink = Sink::Stream {
                path: path.clone(),
                writer: open_stream(path)?,
            };
            return Ok(output);
        }
        let identity = RunIdentity::of(&args.task, payloads);
        let (journal, done) =
            Journal::open(path, args.ordered, &identity, args.resume, args.overwrite)?;
        output.already = done.count;
        output.already_failed = done.failed;
        output.has = done.has;
        if args.ordered {
            output.lines = done.lines;
        }
        output.sink = Sink::Journal(journal);
        Ok(output)
    }

    fn has(&self, index: usize) -> bool {
        self.has.get(index).copied().unwrap_or(false)
    }

    fn is_journal(&self) -> bool {
        matches!(self.sink, Sink::Journal(_))
    }

    /// Takes the result line of input `index`.
    fn write(&mut self, index: usize, line: String) -> anyhow::Result<()> {
        match &mut self.sink {
            Sink::Journal(journal) => {
                journal.append(&line)?;
                journal.sync_if_due()?;
                self.has[index] = true;
                if self.ordered {
                    self.lines[index] = Some(line);
                }
            }
            Sink::Stream { path, writer } if !self.ordered => {
                writeln!(writer, "{line}")
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            Sink::Stream { path, writer } => {
                if self.lines.len() <= index {
                    self.lines.resize(index + 1, None);
                }
                self.lines[index] = Some(line);
                while let Some(Some(line)) =
                    self.lines.get_mut(self.next_in_order).map(Option::take)
                {
                    writeln!(writer, "{line}")
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    self.next_in_order += 1;
                }
            }
        }
        Ok(())
    }

    /// Called while waiting for results: keeps the journal's unsynced tail short.
    fn idle(&mut self) -> anyhow::Result<()> {
        match &mut self.sink {
            Sink::Journal(journal) => journal.sync_if_due(),
            Sink::Stream { .. } => Ok(()),
        }
    }

    /// Flushes and syncs everything; once `complete`, writes an ordered output.
    fn finish(self, complete: bool) -> anyhow::Result<()> {
        match self.sink {
            Sink::Journal(mut journal) if !complete => journal.sync(),
            Sink::Journal(journal) => journal.finish(&self.lines),
            Sink::Stream { path, mut writer } => writer
                .flush()
                .with_context(|| format!("cannot write {}", path.display())),
        }
    }
}

fn open_stream(path: &Path) -> anyhow::Result<Box<dyn Write>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufWriter::new(std::io::stdout())));
    }
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    Ok(Box::new(BufWriter::new(file)))
}

/// Writes every outcome (`missing[i]` is the input index of the job's unit i); returns
/// (completed, failed). While no outcome comes, `idle` is asked about once a second whether to
/// give up.
fn write_outcomes(
    mut job: Job<Value>,
    missing: &[u64],
    output: &mut Output,
    interrupted: &AtomicBool,
    mut idle: impl FnMut(Instant) -> anyhow::Result<()>,
) -> anyhow::Result<(u64, u64)> {
    let (mut completed, mut failed) = (0u64, 0u64);
    let mut last_idle_check = Instant::now();
    loop {
        if interrupted.load(Ordering::SeqCst) {
            break;
        }
        let outcome = match job.next_raw_timeout(Duration::from_millis(200)) {
            Ok(Some(outcome)) => outcome,
            Ok(None) => break,
            Err(()) => {
                output.idle()?;
                if last_idle_check.elapsed() >= Duration::from_secs(1) {
                    last_idle_check = Instant::now();
                    idle(last_idle_check)?;
                }
                continue;
            }
        };
        if outcome.result.is_ok() {
            completed += 1;
        } else {
            failed += 1;
        }
        let index = missing[outcome.index as usize];
        output.write(index as usize, result_line(index, &outcome)?)?;
    }
    Ok((completed, failed))
}

fn result_line(index: u64, outcome: &Outcome) -> anyhow::Result<String> {
    let line = match &outcome.result {
        Ok(bytes) => {
            let output: Value = payload::from_bytes(bytes)
                .unwrap_or_else(|e| Value::String(format!("<undecodable output: {e}>")));
            serde_json::json!({ "index": index, "output": output })
        }
        Err(failure) => serde_json::json!({ "index": index, "error": failure.to_string() }),
    };
    Ok(serde_json::to_string(&line)?)
}
