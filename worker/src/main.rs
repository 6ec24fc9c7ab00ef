//! `ganger-worker`: connect to a delegator and evaluate units with the built-in tasks, or with
//! copies of any program over stdin/stdout (`--exec`, PROTOCOL.md §11).
//!
//! Every flag can also be set through the environment variable shown in `--help`, which is how
//! containers are usually configured. Exit status: 0 after a requested stop (SIGTERM, Ctrl-C),
//! 2 if the delegator rejected the worker, 1 on any other error.
//!
//! `ganger-worker status --status-file PATH` is the health check of a worker started with
//! `--status-file PATH`: exit status 0 if it is connected and recent, 1 if not, 2 if the file
//! cannot be read.

mod status_cli;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ganger_core::task::BUILTIN_TASKS;
use ganger_worker::exec::{ExecBridge, ExecConfig, Framing};
use ganger_worker::{Error, Registry, Worker, WorkerConfig};
use signal_hook::consts::{SIGINT, SIGTERM};
use status_cli::{StatusArgs, StatusWriter};

/// Batches come and go as buffers of hundreds of kilobytes; glibc hands such buffers back to
/// the kernel on free and page-faults them in again, mimalloc keeps and reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Evaluate work units for a ganger delegator.
#[derive(Debug, Parser)]
#[command(
    version,
    max_term_width = 100,
    about,
    after_help = builtin_help(),
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: Args,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the health of a worker started with --status-file (for HEALTHCHECK and probes).
    ///
    /// Prints the status one `key: value` per line. Exit status: 0 if the worker is connected
    /// and the file is recent, 1 if not (stale, connecting, stopping or stopped), 2 if the file
    /// cannot be read.
    Status(StatusArgs),
}

/// The worker's settings.
#[derive(Debug, clap::Args)]
struct Args {
    /// Delegator endpoint to connect to.
    #[arg(long, env = "GANGER_CONNECT", default_value = "tcp://127.0.0.1:5555")]
    connect: String,
    /// Evaluation threads [default: all cores].
    #[arg(long, env = "GANGER_THREADS")]
    threads: Option<usize>,
    /// Worker name in the delegator's logs [default: HOST-PID].
    #[arg(long, env = "GANGER_NAME")]
    name: Option<String>,
    /// Units accepted beyond the threads, so evaluation never waits for the network.
    #[arg(long, env = "GANGER_PREFETCH", default_value_t = 65_536)]
    prefetch: u32,
    /// Serve only these job types (comma-separated) [default: all built-in tasks]; with
    /// --exec, the job types the program serves (required; patterns ending in `*` allowed).
    #[arg(long, env = "GANGER_JOB_TYPES", value_delimiter = ',')]
    job_types: Option<Vec<String>>,
    /// Evaluate units with copies of this program instead of the built-in tasks: one copy per
    /// thread, run by `/bin/sh -c`, talking over stdin/stdout (PROTOCOL.md §11).
    #[arg(long, env = "GANGER_EXEC")]
    exec: Option<String>,
    /// The framing on the --exec program's stdin/stdout: `msgpack` (length-prefixed
    /// MessagePack) or `json` (one JSON object per line).
    #[arg(long, env = "GANGER_EXEC_FRAMING", default_value = "msgpack")]
    exec_framing: Framing,
    /// Times a unit is retried on a fresh copy of the --exec program after the copy crashed
    /// on it, before the unit fails.
    #[arg(long, env = "GANGER_EXEC_RETRIES", default_value_t = 1)]
    exec_retries: u32,
    /// Fail a unit that runs longer than this, seconds, killing and restarting its --exec
    /// program [default: none].
    #[arg(long, env = "GANGER_EXEC_TIMEOUT_SECS")]
    exec_timeout_secs: Option<f64>,
    /// Seconds to finish running units after SIGTERM before leaving anyway.
    #[arg(long, env = "GANGER_GRACE_SECS", default_value_t = 30.0)]
    grace_secs: f64,
    /// Longest reconnect back-off, seconds.
    #[arg(long, env = "GANGER_RECONNECT_MAX_SECS", default_value_t = 5.0)]
    reconnect_max_secs: f64,
    /// Log format: `text` or `json`.
    #[arg(long, env = "GANGER_LOG_FORMAT", default_value = "text")]
    log_format: String,
    /// Keep the worker's status in this file as JSON, for health checks (`ganger-worker
    /// status`): rewritten about once a second and on every state change.
    #[arg(long, env = "GANGER_STATUS_FILE")]
    status_file: Option<PathBuf>,
    /// File holding the cluster secret the delegator was given: the worker proves it knows it
    /// and every frame is encrypted [default: the value of the variable GANGER_SECRET, else
    /// none].
    #[arg(long, env = "GANGER_SECRET_FILE")]
    secret_file: Option<PathBuf>,
    /// Keep the threads that pass messages (not the evaluation threads) on this CPU: for a
    /// worker on the delegator's machine, the delegator's CPU (`--spawn-workers` does this).
    #[arg(long, env = "GANGER_MESSAGING_CPU")]
    messaging_cpu: Option<usize>,
}

fn builtin_help() -> String {
    let mut help = String::from("Built-in tasks:\n");
    for (name, what) in BUILTIN_TASKS {
        help.push_str(&format!("  {name:<14} {what}\n"));
    }
    help
}

fn main() {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Status(status)) => std::process::exit(status_cli::check(&status)),
        None => cli.run,
    };
    ganger_transport::logging::init(&args.log_format);
    quiet_task_panics();
    match run(args) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("ganger-worker: {e:#}");
            let rejected = e
                .downcast_ref::<Error>()
                .is_some_and(|e| matches!(e, Error::Rejected { .. }));
            std::process::exit(if rejected { 2 } else { 1 });
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut config = WorkerConfig::new(args.connect);
    if let Some(threads) = args.threads {
        config.threads = threads;
    }
    if let Some(name) = args.name {
        config.name = name;
    }
    config.prefetch = args.prefetch;
    config.messaging_cpu = args.messaging_cpu;
    config.secret = ganger_transport::secret::load(args.secret_file.as_deref())?;
    config.grace = Duration::try_from_secs_f64(args.grace_secs).context("--grace-secs")?;
    config.reconnect_max =
        Duration::try_from_secs_f64(args.reconnect_max_secs).context("--reconnect-max-secs")?;
    let bridge = match args.exec {
        Some(command) => {
            let Some(job_types) = args.job_types.clone() else {
                anyhow::bail!("--exec needs --job-types: the job types the program serves");
            };
            let mut exec = ExecConfig::new(command, job_types, config.threads);
            exec.framing = args.exec_framing;
            exec.retries = args.exec_retries;
            exec.timeout = args
                .exec_timeout_secs
                .map(Duration::try_from_secs_f64)
                .transpose()
                .context("--exec-timeout-secs")?;
            Some(ExecBridge::start(exec)?)
        }
        None => None,
    };
    config.job_types = args.job_types;
    let registry = bridge
        .as_ref()
        .map_or_else(Registry::with_builtins, ExecBridge::registry);
    let worker = Worker::new(config, registry)?;
    if let Some(bridge) = &bridge {
        worker.watch_exec(bridge);
    }
    let status_writer = match args.status_file {
        Some(path) => Some(StatusWriter::start(path, worker.status_handle())?),
        None => None,
    };
    let stop = worker.shutdown_handle();
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                stop.request();
            }
        })?;
    let result = worker.run();
    // Units still running after the grace period hold the bridge's tasks; kill the copies now.
    if let Some(bridge) = &bridge {
        bridge.shutdown();
    }
    // The worker has stopped (with or without an error): the file now says `stopped`.
    if let Some(Err(e)) = status_writer.map(StatusWriter::finish) {
        tracing::warn!("{e:#}");
    }
    let summary = result?;
    tracing::info!(
        units = summary.units_done,
        errors = summary.unit_errors,
        sessions = summary.sessions,
        "bye"
    );
    Ok(())
}

/// A panic inside a task is reported as that unit's error; printing each one (a poison unit is
/// retried) would bury the log, so evaluation threads log them at debug level instead.
fn quiet_task_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let on_eval_thread = std::thread::current()
            .name()
            .is_some_and(|name| name.starts_with("ganger-eval-"));
        if on_eval_thread {
            tracing::debug!("task panicked: {info}");
        } else {
            default(info);
        }
    }));
}
