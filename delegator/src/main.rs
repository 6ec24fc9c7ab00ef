//! `ganger-delegator`: run a job on workers that dial in, or on workers it starts itself.
//!
//! `ganger-delegator run --task square --range 1000000 --local-workers 2` runs a whole job on
//! this machine; drop `--local-workers` and start `ganger-worker --connect tcp://HOST:5555`
//! anywhere to use remote workers. Every flag can also be set through the environment variable
//! shown in `--help`.

mod mcmc_cli;
mod plot;
mod probe;
mod run;
mod settings;
mod shell;
mod terminal;
mod watch;

/// Batches come and go as buffers of hundreds of kilobytes; glibc hands such buffers back to
/// the kernel on free and page-faults them in again, mimalloc keeps and reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use ganger_cluster::{Batching, DelegatorConfig, SchedulerConfig};
use ganger_transport::affinity;

use settings::Common;

/// Farm work units out to ganger workers over ZeroMQ.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Map a task over inputs (JSON lines or a range of integers) and write the results as
    /// JSON lines, each tagged with its input's index.
    #[command(after_help = run::AFTER_HELP)]
    Run(run::RunArgs),
    /// Parallel-tempering MCMC from a Stateline-compatible config (JSON or TOML): chain CSVs,
    /// summary.json and checkpoints in the config's outputPath.
    #[command(after_help = mcmc_cli::AFTER_HELP)]
    Mcmc(mcmc_cli::McmcArgs),
    /// Trace, rank, autocorrelation, posterior and pair plots of an MCMC run's cold chains, as
    /// PNG and SVG, in OUTPUT_DIR/plots or --out.
    #[command(after_help = "Examples:\n  ganger-delegator plot demo-output   \
                            # PNG and SVG files in demo-output/plots\n  \
                            ganger-delegator plot demo-output --dims x0,x2 --burn-in 5000")]
    Plot(plot::PlotArgs),
    /// Check a delegator's health (for HEALTHCHECK and probes): GET its /healthz and exit 0 on
    /// 200, 1 otherwise with one line saying why.
    #[command(after_help = "Examples:\n  ganger-delegator probe                 \
                            # this machine's delegator, at --http or 127.0.0.1:8080\n  \
                            ganger-delegator probe --url http://delegator:8080/healthz")]
    Probe(probe::ProbeArgs),
    /// Make a cluster secret: 32 random bytes as 64 hex digits, printed or written to a new
    /// file readable only by its owner.
    #[command(
        after_help = "Example:\n  ganger-delegator secret --out ganger.secret   \
                            # then --secret-file ganger.secret on the delegator and every \
                            worker"
    )]
    Secret(SecretArgs),
}

/// Arguments of `secret`.
#[derive(Debug, Args)]
struct SecretArgs {
    /// Write the secret to this new file (mode 0600; an existing file is never overwritten)
    /// instead of printing it.
    #[arg(long, env = "GANGER_SECRET_OUT")]
    out: Option<std::path::PathBuf>,
}

/// `ganger-delegator secret`.
fn make_secret(args: &SecretArgs) -> anyhow::Result<()> {
    let secret = ganger_transport::secret::generate()?;
    match &args.out {
        Some(path) => ganger_transport::secret::write_new(path, &secret)?,
        None => println!("{secret}"),
    }
    Ok(())
}

impl Common {
    fn delegator_config(&self) -> anyhow::Result<DelegatorConfig> {
        anyhow::ensure!(self.heartbeat_ms > 0, "--heartbeat-ms must be positive");
        anyhow::ensure!(
            self.timeout_ms > self.heartbeat_ms,
            "--timeout-ms ({}) must exceed --heartbeat-ms ({})",
            self.timeout_ms,
            self.heartbeat_ms
        );
        anyhow::ensure!(self.max_attempts > 0, "--max-attempts must be at least 1");
        anyhow::ensure!(
            self.max_frame_bytes >= 4096,
            "--max-frame-bytes must be at least 4096"
        );
        anyhow::ensure!(
            self.max_batch_units > 0,
            "--max-batch-units must be at least 1"
        );
        anyhow::ensure!(self.max_workers > 0, "--max-workers must be at least 1");
        anyhow::ensure!(
            self.max_queued_bytes > 0,
            "--max-queued-bytes must be at least 1"
        );
        if let Some(factor) = self.straggler_factor {
            anyhow::ensure!(
                factor.is_finite() && factor > 1.0,
                "--straggler-factor must be a number above 1, found {factor}"
            );
        }
        let bind = match &self.bind {
            Some(bind) => bind.clone(),
            None if self.local_workers > 0 => "tcp://127.0.0.1:0".into(),
            None => "tcp://*:5555".into(),
        };
        Ok(DelegatorConfig {
            bind,
            scheduler: SchedulerConfig {
                heartbeat_ms: self.heartbeat_ms,
                timeout_ms: self.timeout_ms,
                max_attempts: self.max_attempts,
                batching: match self.batch_size {
                    0 => Batching::default(),
                    n => Batching::Fixed(n),
                },
                max_frame: self.max_frame_bytes,
                max_batch_bytes: (self.max_frame_bytes / 4) as usize,
                max_batch_units: self.max_batch_units,
                max_workers: self.max_workers,
                max_queued_bytes: self.max_queued_bytes,
                straggler_factor: self.straggler_factor,
                ..SchedulerConfig::default()
            },
            secret: ganger_transport::secret::load(self.secret_file.as_deref())?,
            insecure: self.insecure,
            max_pending_connections: self.max_pending_connections.max(1),
            // A deadline shorter than a handshake would cut every worker.
            pending_connection_ms: self.pending_connection_ms.max(100),
        })
    }
}

impl Common {
    /// Binds the delegator, writes its endpoint to `--endpoint-file` if asked, and starts
    /// `n_workers` worker processes on this machine (which stop when the second value drops).
    fn start_delegator(
        &self,
        n_workers: usize,
        watch: &watch::Watch,
    ) -> anyhow::Result<(
        ganger_cluster::Delegator,
        Option<ganger_cluster::local::LocalWorkers>,
    )> {
        use anyhow::Context as _;
        let mut config = self.delegator_config()?;
        if n_workers > 0 && config.secret.is_none() {
            // The embedded default needs no configured secret: the local workers get this
            // run's own, through their environment.
            let secret = ganger_transport::secret::generate()?;
            config.secret = Some(ganger_cluster::Secret::new(secret.as_bytes())?);
            tracing::debug!(
                "using a secret made for this run for the local workers: remote workers cannot \
                 join unless a secret is configured (--secret-file or GANGER_SECRET)"
            );
        }
        let secret = config.secret.clone();
        // With local workers, this thread (the MCMC driver), the engine's and libzmq's share
        // one CPU: pinned before the delegator starts them, so that they start pinned
        // (ARCHITECTURE.md, "Local workers share a CPU for messages").
        let messaging_cpu = (n_workers > 0 && !self.no_pin_messaging)
            .then(affinity::current_cpu)
            .flatten();
        let pinned = messaging_cpu.and_then(|cpu| {
            // Rayon's global pool (the summary of a resumed run) starts free, now.
            rayon::current_num_threads();
            match affinity::pin_current(cpu) {
                Ok(free) => {
                    tracing::debug!(cpu, "messaging threads pinned");
                    Some((cpu, free))
                }
                Err(e) => {
                    tracing::warn!(cpu, "cannot pin the messaging threads: {e}");
                    None
                }
            }
        });
        let delegator = ganger_cluster::Delegator::start(config)?;
        watch.attach(&delegator);
        if let Some(path) = &self.endpoint_file {
            std::fs::write(path, delegator.endpoint())
                .with_context(|| format!("cannot write the endpoint to {}", path.display()))?;
        }
        let workers = self.spawn_workers(n_workers, &delegator, secret, pinned)?;
        wait_for_workers(&delegator, n_workers);
        Ok((delegator, workers))
    }

    /// Starts `n` ganger-worker processes on this machine connected to `delegator`; with
    /// `pinned` (this thread's CPU and the CPUs it had before), their messaging threads share
    /// that CPU and the rest of each worker may use the others.
    fn spawn_workers(
        &self,
        n: usize,
        delegator: &ganger_cluster::Delegator,
        secret: Option<ganger_cluster::Secret>,
        pinned: Option<(usize, Vec<usize>)>,
    ) -> anyhow::Result<Option<ganger_cluster::local::LocalWorkers>> {
        use anyhow::Context as _;
        use ganger_cluster::local::{find_worker_binary, LocalWorkerSpec, LocalWorkers};
        if n == 0 {
            return Ok(None);
        }
        let program = match &self.worker_bin {
            Some(path) => path.clone(),
            None => find_worker_binary().context(
                "cannot find the ganger-worker executable beside this one or on PATH (set --worker-bin)",
            )?,
        };
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        // They share this process's stderr: keep one log format in it.
        let mut extra_args = vec!["--log-format".into(), self.log_format.clone()];
        if let Some((cpu, _)) = &pinned {
            extra_args.extend(["--messaging-cpu".into(), cpu.to_string()]);
        }
        let spec = LocalWorkerSpec {
            program,
            connect: delegator.local_endpoint(),
            threads: self.worker_threads.unwrap_or((cores / n).max(1)),
            extra_args,
            secret,
            cpus: pinned.map(|(_, free)| free),
            // Their handshakes and start-up would fill the terminal of a local run: warnings
            // only, unless the log filter was chosen.
            log_filter: std::env::var_os("GANGER_LOG")
                .is_none()
                .then(|| "warn".to_owned()),
        };
        tracing::debug!(n, threads = spec.threads, "starting local workers");
        let workers = LocalWorkers::spawn(n, &spec)
            .with_context(|| format!("cannot start {}", spec.program.display()))?;
        Ok(Some(workers))
    }
}

fn main() {
    return_large_buffers_to_the_kernel();
    let cli = parse_command_line();
    ganger_transport::logging::init_with_writer(&cli.common.log_format, terminal::Logs);
    let result = match &cli.command {
        // Plotting reads files and probing asks another delegator: no server, no progress
        // display (a probe must not take the port it is about to ask).
        Command::Plot(args) => plot::run(args),
        Command::Probe(args) => probe::run(&cli.common, args),
        Command::Secret(args) => make_secret(args),
        command => watch::Watch::start(&cli.common).and_then(|mut watch| match command {
            Command::Run(args) => run::run(&cli.common, args, &mut watch),
            Command::Mcmc(args) => mcmc_cli::run(&cli.common, args, &mut watch),
            Command::Plot(_) | Command::Probe(_) | Command::Secret(_) => {
                unreachable!("handled above")
            }
        }),
    };
    if let Err(e) = result {
        eprintln!("ganger-delegator: {e:#}");
        std::process::exit(1);
    }
}

/// Makes glibc's `malloc`, which libzmq allocates with, give every buffer of 1 MiB or more
/// back to the kernel when it is freed.
///
/// libzmq holds a frame being received in one buffer of the frame's announced size: a stranger
/// announcing a frame near the frame cap makes it allocate that much, until the engine cuts the
/// connection. glibc raises its mmap threshold each time it frees a large mapped buffer, after
/// which such buffers come from the heap and their pages may stay resident after `free`, so a
/// flood of strangers (tests/hostile_load.rs) sometimes left the delegator twice the memory
/// its connection cap allows (54-60 MB above its working memory in 3 of 10 runs, against
/// 28-31 MB otherwise). Set explicitly, the threshold stays where it is put: 15 runs with it
/// stayed at 24-31 MB.
/// Rust's own allocations go to mimalloc and are not affected; libzmq's buffers under 1 MiB (its
/// usual messages) come from the heap as before.
fn return_large_buffers_to_the_kernel() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Parses the command line. The help is wrapped to the terminal (at most 100 columns), and the
/// subcommands that start no delegator (`plot`, `probe`, `secret`) leave the shared flags out
/// of theirs (`probe` keeps `--http`, which it reads); they still accept them, so a flag set for
/// every subcommand breaks none.
fn parse_command_line() -> Cli {
    let mut command = Cli::command().max_term_width(100);
    let shared: Vec<clap::Arg> = command
        .get_arguments()
        .filter(|arg| arg.is_global_set())
        .cloned()
        .collect();
    for (name, keep) in [("plot", &[][..]), ("secret", &[]), ("probe", &["http"])] {
        // A subcommand's own argument of a global's id stands in for the global there (clap
        // does not propagate over it): the same flag, accepted and hidden.
        let hidden: Vec<clap::Arg> = shared
            .iter()
            .filter(|arg| !keep.contains(&arg.get_id().as_str()))
            .map(|arg| arg.clone().global(false).hide(true))
            .collect();
        command = command.mut_subcommand(name, |subcommand| subcommand.args(hidden));
    }
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
}

/// Waits until `n` workers have registered (the local ones this command started), for at most
/// a few seconds: work submitted before then would all go to the first to arrive, which with
/// units that start cheap could take far more than its share before the others are there.
fn wait_for_workers(delegator: &ganger_cluster::Delegator, n: usize) {
    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
    if n == 0 {
        return;
    }
    let deadline = std::time::Instant::now() + PATIENCE;
    while std::time::Instant::now() < deadline {
        match delegator.stats() {
            Ok(stats) if stats.workers.len() >= n => return,
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            Err(_) => return,
        }
    }
    tracing::warn!(
        workers = n,
        "the local workers did not all register within {PATIENCE:?}; starting without them"
    );
}
