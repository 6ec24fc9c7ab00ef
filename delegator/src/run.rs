//! `ganger-delegator run`: job chunks from the command line.
//!
//! Inputs are JSON lines (one JSON value per non-blank line, the n-th value being input n) or a
//! range of integers; each output line is `{"index": n, "output": VALUE}` or
//! `{"index": n, "error": "MESSAGE"}`, in completion order unless `--ordered`.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use ganger_core::payload::{self, Payload};
use ganger_delegator::scheduler::Outcome;
use ganger_delegator::{Job, JobOptions};
use serde_json::Value;
use signal_hook::consts::{SIGINT, SIGTERM};
use tracing::info;

use crate::watch::Watch;
use crate::Common;
use ganger_delegator::status::{RunKind, RunState};

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
}

pub(crate) fn run(common: &Common, args: &RunArgs, watch: &mut Watch) -> anyhow::Result<()> {
    let payloads = read_inputs(args)?;
    watch
        .board
        .begin(RunKind::Run, &args.task, payloads.len() as u64, 1);
    // The workers are declared after the delegator so that they stop first, saying goodbye.
    let (delegator, _workers) = common.start_delegator(common.local_workers, watch)?;
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register(signal, interrupted.clone())?;
    }
    let total = payloads.len() as u64;
    let started = Instant::now();
    let job: Job<Value> = delegator.submit_payloads(
        &args.task,
        payloads,
        JobOptions {
            priority: args.priority,
        },
    )?;
    let mut sink = open_output(&args.output)?;
    let (completed, failed) = write_outcomes(job, args.ordered, &mut sink, &interrupted)?;
    sink.flush().context("cannot write the output")?;
    watch.board.set_progress(completed + failed, failed, total);
    watch.board.end(if interrupted.load(Ordering::SeqCst) {
        RunState::Stopped
    } else {
        RunState::Done
    });
    watch.finish_console();
    let seconds = started.elapsed().as_secs_f64();
    info!(
        units = total,
        completed,
        failed,
        seconds = format!("{seconds:.3}"),
        units_per_sec = format!("{:.0}", total as f64 / seconds.max(1e-9)),
        "job done"
    );
    if interrupted.load(Ordering::SeqCst) {
        bail!("interrupted after {} of {total} units", completed + failed);
    }
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

fn open_output(path: &Path) -> anyhow::Result<Box<dyn Write>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufWriter::new(std::io::stdout())));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    }
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(Box::new(BufWriter::new(file)))
}

/// Writes every outcome; returns (completed, failed).
fn write_outcomes(
    mut job: Job<Value>,
    ordered: bool,
    sink: &mut dyn Write,
    interrupted: &AtomicBool,
) -> anyhow::Result<(u64, u64)> {
    let mut held: Vec<Option<Outcome>> = Vec::new();
    let mut next_in_order = 0usize;
    let (mut completed, mut failed) = (0u64, 0u64);
    loop {
        if interrupted.load(Ordering::SeqCst) {
            break;
        }
        let outcome = match job.next_raw_timeout(Duration::from_millis(200)) {
            Ok(Some(outcome)) => outcome,
            Ok(None) => break,
            Err(()) => {
                continue;
            }
        };
        if outcome.result.is_ok() {
            completed += 1;
        } else {
            failed += 1;
        }
        if !ordered {
            write_line(sink, &outcome)?;
        } else {
            let index = outcome.index as usize;
            if held.len() <= index {
                held.resize_with(index + 1, || None);
            }
            held[index] = Some(outcome);
            while let Some(Some(outcome)) = held.get_mut(next_in_order).map(Option::take) {
                write_line(sink, &outcome)?;
                next_in_order += 1;
            }
        }
    }
    Ok((completed, failed))
}

fn write_line(sink: &mut dyn Write, outcome: &Outcome) -> anyhow::Result<()> {
    let line = match &outcome.result {
        Ok(bytes) => {
            let output: Value = payload::from_bytes(bytes)
                .unwrap_or_else(|e| Value::String(format!("<undecodable output: {e}>")));
            serde_json::json!({ "index": outcome.index, "output": output })
        }
        Err(failure) => serde_json::json!({ "index": outcome.index, "error": failure.to_string() }),
    };
    serde_json::to_writer(&mut *sink, &line)?;
    sink.write_all(b"\n").context("cannot write the output")?;
    Ok(())
}
