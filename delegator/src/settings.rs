//! The flags every subcommand that runs work shares (`run`, `mcmc`), under headings, and how
//! sizes are written on the command line.

use clap::Args;

/// Help heading of the flags that say where the delegator listens and who may join.
const CLUSTER: &str = "Cluster";
/// Help heading of the flags for workers started on this machine.
const LOCAL: &str = "Workers on this machine";
/// Help heading of the scheduling flags.
const SCHEDULING: &str = "Scheduling";
/// Help heading of the limits that bound memory and work.
const LIMITS: &str = "Limits";
/// Help heading of the dashboard and log flags.
const WATCHING: &str = "Watching";

/// Settings shared by every subcommand.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// ZeroMQ endpoint to bind [default: tcp://*:5555, or tcp://127.0.0.1:0 (a free loopback
    /// port) when only local workers are used].
    #[arg(long, global = true,
        help_heading = CLUSTER, env = "GANGER_BIND")]
    pub(crate) bind: Option<String>,
    /// Start this many worker processes on this machine (the embedded default needs no cluster).
    #[arg(long, global = true,
        help_heading = LOCAL, env = "GANGER_LOCAL_WORKERS", default_value_t = 0)]
    pub(crate) local_workers: usize,
    /// Threads per local worker [default: cores / local workers, at least 1].
    #[arg(long, global = true,
        help_heading = LOCAL, env = "GANGER_WORKER_THREADS")]
    pub(crate) worker_threads: Option<usize>,
    /// The ganger-worker executable for local workers [default: beside this one, then PATH].
    #[arg(long, global = true,
        help_heading = LOCAL, env = "GANGER_WORKER_BIN")]
    pub(crate) worker_bin: Option<std::path::PathBuf>,
    /// Let the threads that pass messages run on any CPU. By default, with local workers, this
    /// process's and theirs share one CPU while evaluation runs on any: a cheap unit's round
    /// trip then wakes no idle CPU (1.5 x faster on the MCMC demo).
    #[arg(long, global = true,
        help_heading = LOCAL, env = "GANGER_NO_PIN_MESSAGING")]
    pub(crate) no_pin_messaging: bool,
    /// Units per batch; 0 sizes batches adaptively to about 5 ms of work each.
    #[arg(long, global = true,
        help_heading = SCHEDULING, env = "GANGER_BATCH_SIZE", default_value_t = 0)]
    pub(crate) batch_size: u32,
    /// Heartbeat interval, milliseconds.
    #[arg(
        long,
        global = true,
        help_heading = SCHEDULING,
        env = "GANGER_HEARTBEAT_MS",
        default_value_t = 1000
    )]
    pub(crate) heartbeat_ms: u64,
    /// A worker silent this long is dropped and its units requeued, milliseconds.
    #[arg(long, global = true,
        help_heading = SCHEDULING, env = "GANGER_TIMEOUT_MS", default_value_t = 5000)]
    pub(crate) timeout_ms: u64,
    /// Failed evaluations of a unit before it is reported failed.
    #[arg(long, global = true,
        help_heading = SCHEDULING, env = "GANGER_MAX_ATTEMPTS", default_value_t = 3)]
    pub(crate) max_attempts: u32,
    /// Largest frame accepted from a worker (bytes, or with a unit: 512KiB, 16MiB); also what
    /// each connection not yet registered can make the delegator hold (see
    /// --max-pending-connections).
    #[arg(long, global = true,
        help_heading = LIMITS, env = "GANGER_MAX_FRAME_BYTES", default_value = "16MiB", value_parser = parse_bytes)]
    pub(crate) max_frame_bytes: u64,
    /// Connections whose peer has not registered (with a secret: not proved it knows it) held
    /// at once; one more is cut as soon as it is accepted. Memory strangers can hold is at most
    /// this many times --max-frame-bytes (+ 64 KiB).
    #[arg(
        long,
        global = true,
        help_heading = LIMITS,
        env = "GANGER_MAX_PENDING_CONNECTIONS",
        default_value_t = 64
    )]
    pub(crate) max_pending_connections: usize,
    /// Milliseconds a connection may stay unregistered before it is cut.
    #[arg(
        long,
        global = true,
        help_heading = LIMITS,
        env = "GANGER_PENDING_CONNECTION_MS",
        default_value_t = 10_000
    )]
    pub(crate) pending_connection_ms: u64,
    /// Most units in one batch, on top of the worker's slots + prefetch and adaptive batching.
    #[arg(
        long,
        global = true,
        help_heading = LIMITS,
        env = "GANGER_MAX_BATCH_UNITS",
        default_value_t = 65_536
    )]
    pub(crate) max_batch_units: u32,
    /// Most workers registered at once; a hello beyond it gets a reject naming the limit.
    #[arg(
        long,
        global = true,
        help_heading = LIMITS,
        env = "GANGER_MAX_WORKERS",
        default_value_t = 10_000
    )]
    pub(crate) max_workers: usize,
    /// Most payload bytes of units queued but not yet leased, across jobs (a unit such as 1GiB
    /// may follow the number); submitting waits while the queue is this full.
    #[arg(long, global = true,
        help_heading = LIMITS, env = "GANGER_MAX_QUEUED_BYTES", default_value = "1GiB", value_parser = parse_bytes)]
    pub(crate) max_queued_bytes: u64,
    /// Re-issue a unit that has run this many times its usual time (and at least 50 ms) to a
    /// worker with an idle slot when nothing else waits, and take the first result. Only for
    /// tasks whose output depends on their input alone, with no side effects (likelihoods:
    /// yes); the slow copy still runs [default: off].
    #[arg(long, global = true,
        help_heading = SCHEDULING, env = "GANGER_STRAGGLER_FACTOR")]
    pub(crate) straggler_factor: Option<f64>,
    /// Keep serving after the job is done (until SIGTERM), e.g. for inspection.
    #[arg(long, global = true,
        help_heading = CLUSTER, env = "GANGER_KEEP_SERVING")]
    pub(crate) keep_serving: bool,
    /// Write the bound endpoint to this file once listening (for scripts and tests).
    #[arg(long, global = true,
        help_heading = CLUSTER, env = "GANGER_ENDPOINT_FILE")]
    pub(crate) endpoint_file: Option<std::path::PathBuf>,
    /// Log format: `text` or `json`.
    #[arg(long, global = true,
        help_heading = WATCHING, env = "GANGER_LOG_FORMAT", default_value = "text")]
    pub(crate) log_format: String,
    /// Serve the dashboard, /api/status, /metrics and /healthz on this address, or `none`;
    /// `0.0.0.0:8080` serves every interface, without authentication [default: 127.0.0.1:8080,
    /// this machine only, skipped with a warning if that port is taken].
    #[arg(long, global = true,
        help_heading = WATCHING, env = "GANGER_HTTP")]
    pub(crate) http: Option<String>,
    /// Write the HTTP server's bound address to this file (for scripts and tests).
    #[arg(long, global = true,
        help_heading = WATCHING, env = "GANGER_HTTP_ADDRESS_FILE")]
    pub(crate) http_address_file: Option<std::path::PathBuf>,
    /// File holding the cluster secret (at least 16 bytes; `ganger-delegator secret` makes
    /// one): workers must prove they know it, and every frame is encrypted [default: the value
    /// of the variable GANGER_SECRET, else none].
    #[arg(long, global = true,
        help_heading = CLUSTER, env = "GANGER_SECRET_FILE")]
    pub(crate) secret_file: Option<std::path::PathBuf>,
    /// Allow binding a non-loopback address without a secret (warns at start-up): anyone who
    /// can reach the port could take work units or send false results.
    #[arg(long, global = true,
        help_heading = CLUSTER, env = "GANGER_INSECURE")]
    pub(crate) insecure: bool,
}

/// A size in bytes: a whole number, optionally followed by `B`, `KiB`, `MiB` or `GiB` (powers
/// of 1024; `K`, `M` and `G` mean the same).
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (a whole number, then B, KiB, MiB or GiB)"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        other => {
            return Err(format!(
                "`{other}` is not a unit of size: B, KiB, MiB or GiB"
            ))
        }
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_read_as_plain_bytes_or_with_a_binary_unit() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("16MiB"), Ok(16 << 20));
        assert_eq!(parse_bytes("16 MiB"), Ok(16 << 20));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("512K"), Ok(512 << 10));
        assert_eq!(parse_bytes("7B"), Ok(7));
        assert!(parse_bytes("16MB").unwrap_err().contains("`MB`"));
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("99999999999GiB")
            .unwrap_err()
            .contains("too large"));
    }
}
