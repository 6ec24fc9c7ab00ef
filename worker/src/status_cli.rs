//! Health checks from the command line: `--status-file` keeps a JSON snapshot of the worker's
//! status on disk, and `ganger-worker status` reads it back and says whether the worker is
//! healthy, for a Docker `HEALTHCHECK` or a Kubernetes exec probe.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use ganger_transport::RateLimited;
use ganger_worker::{StatusHandle, WorkerState, WorkerStatus};

/// How often the status file is rewritten when nothing changes. The session loop refreshes the
/// status at least every 100 ms, so a file this old plus a little means the worker is gone.
pub const WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// Exit status of `status` when the worker is connected and its status recent.
pub const HEALTHY: i32 = 0;
/// Exit status of `status` when the worker is not connected, stopped, or its status stale.
pub const UNHEALTHY: i32 = 1;
/// Exit status of `status` when the status file cannot be read.
pub const UNREADABLE: i32 = 2;

/// `ganger-worker status`: check a running worker's health from its status file.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The file the worker writes with `--status-file`.
    #[arg(long, env = "GANGER_STATUS_FILE")]
    status_file: PathBuf,
    /// Fail if the worker has not updated the file for this long, seconds (it does so about
    /// once a second).
    #[arg(long, env = "GANGER_STATUS_MAX_AGE_SECS", default_value_t = 10.0)]
    max_age_secs: f64,
}

/// Reads the status file, prints it one `key: value` per line, and returns the exit status:
/// [`HEALTHY`], [`UNHEALTHY`] or [`UNREADABLE`].
pub fn check(args: &StatusArgs) -> i32 {
    let max_age = match Duration::try_from_secs_f64(args.max_age_secs) {
        Ok(max_age) => max_age,
        Err(e) => {
            eprintln!(
                "ganger-worker status: --max-age-secs {}: {e}",
                args.max_age_secs
            );
            return UNREADABLE;
        }
    };
    let status = match read(&args.status_file) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("ganger-worker status: {e:#}");
            return UNREADABLE;
        }
    };
    let now = SystemTime::now();
    let health = status.health(now, max_age);
    print!("{}", describe(&status, now));
    println!("health: {health}");
    if health.is_healthy() {
        HEALTHY
    } else {
        UNHEALTHY
    }
}

/// Keeps a worker's status file current on a thread of its own, which never touches the
/// worker's socket: about once a second, at once on every state change, and a last time when
/// the worker has stopped.
#[derive(Debug)]
pub struct StatusWriter {
    thread: JoinHandle<anyhow::Result<()>>,
}

impl StatusWriter {
    /// Writes the first snapshot before returning, so that a path that cannot be written is
    /// reported at start-up, then keeps writing on a thread.
    pub fn start(path: PathBuf, status: StatusHandle) -> anyhow::Result<StatusWriter> {
        write_atomically(&path, &status.snapshot())
            .with_context(|| format!("--status-file {}", path.display()))?;
        let thread = std::thread::Builder::new()
            .name("status-file".into())
            .spawn(move || keep_writing(&path, &status))
            .context("cannot start the status-file thread")?;
        Ok(StatusWriter { thread })
    }

    /// Waits until the final snapshot (state `stopped`) is written; call once the worker's
    /// `run` has returned. Returns the error of that last write, if any.
    pub fn finish(self) -> anyhow::Result<()> {
        match self.thread.join() {
            Ok(result) => result,
            Err(_) => anyhow::bail!("the status-file thread panicked"),
        }
    }
}

/// Writes until a snapshot with state `stopped` has been written; returns that write's result.
fn keep_writing(path: &Path, status: &StatusHandle) -> anyhow::Result<()> {
    // A full disk must not fill the log as well.
    let mut warn_limit = RateLimited::new(Duration::from_secs(60));
    let mut seen = status.changes();
    loop {
        let snapshot = status.snapshot();
        let written = write_atomically(path, &snapshot);
        if snapshot.state == WorkerState::Stopped {
            return written;
        }
        if let Err(e) = written {
            if let Some(suppressed) = warn_limit.allow(Instant::now()) {
                tracing::warn!(suppressed, "{e:#}");
            }
        }
        seen = status.wait_for_change(seen, WRITE_INTERVAL);
    }
}

/// Writes the status to a temporary file beside `path` and renames it into place, so that a
/// reader sees either the previous snapshot or this one, never a part.
/// Not synced to disk: after a machine crash the worker is gone and the file means nothing.
fn write_atomically(path: &Path, status: &WorkerStatus) -> anyhow::Result<()> {
    let file_name = path
        .file_name()
        .with_context(|| format!("status file {} names no file", path.display()))?;
    let mut temporary_name = OsString::from(".");
    temporary_name.push(file_name);
    temporary_name.push(format!(".{}.tmp", std::process::id()));
    let temporary = path.with_file_name(temporary_name);
    let mut json = serde_json::to_vec_pretty(status).context("cannot encode the status")?;
    json.push(b'\n');
    std::fs::write(&temporary, &json)
        .with_context(|| format!("cannot write status file {}", temporary.display()))?;
    std::fs::rename(&temporary, path).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        anyhow::anyhow!(
            "cannot move {} to status file {}: {e}",
            temporary.display(),
            path.display()
        )
    })
}

fn read(path: &Path) -> anyhow::Result<WorkerStatus> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read status file {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("status file {} is not a worker status", path.display()))
}

/// The status one `key: value` per line, times in UTC with how long before `now` they were.
fn describe(status: &WorkerStatus, now: SystemTime) -> String {
    let when = |unix_ms: Option<u64>| match unix_ms {
        None => "-".to_owned(),
        Some(unix_ms) => {
            let at = UNIX_EPOCH + Duration::from_millis(unix_ms);
            let ago = now.duration_since(at).unwrap_or(Duration::ZERO);
            format!("{} ({:.1} s ago)", utc(unix_ms), ago.as_secs_f64())
        }
    };
    let lines = [
        ("state", status.state.to_string()),
        ("endpoint", status.endpoint.clone()),
        ("name", status.name.clone()),
        ("host", status.host.clone()),
        ("pid", status.pid.to_string()),
        (
            "worker_id",
            status.worker_id.map_or("-".into(), |id| id.to_string()),
        ),
        ("sessions", status.sessions.to_string()),
        ("units_done", status.units_done.to_string()),
        ("unit_errors", status.unit_errors.to_string()),
        (
            "last_error",
            status.last_error.clone().unwrap_or("-".into()),
        ),
        ("last_error_at", when(status.last_error_unix_ms)),
        ("last_heard", when(status.last_heard_unix_ms)),
        ("updated", when(Some(status.updated_unix_ms))),
    ];
    let mut lines = lines.to_vec();
    if let Some(exec) = &status.exec {
        lines.extend([
            ("exec_command", exec.command.clone()),
            ("exec_programs_running", exec.programs_running.to_string()),
            ("exec_restarts", exec.restarts.to_string()),
            ("exec_crashes", exec.crashes.to_string()),
            ("exec_timeouts", exec.timeouts.to_string()),
            ("exec_breaches", exec.breaches.to_string()),
            (
                "exec_last_restart_reason",
                exec.last_restart_reason.clone().unwrap_or("-".into()),
            ),
        ]);
    }
    lines
        .iter()
        .map(|(key, value)| format!("{key}: {value}\n"))
        .collect()
}

/// Unix milliseconds as an RFC 3339 UTC time, e.g. `2024-11-21T22:25:02.123Z`.
fn utc(unix_ms: u64) -> String {
    let (days, ms_of_day) = (unix_ms / 86_400_000, unix_ms % 86_400_000);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`,
/// for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March, so that February's leap day comes last.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_match_known_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_732_227_902_123), "2024-11-21T22:25:02.123Z");
        // Leap days, including the 400-year rule and a century that is not a leap year.
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc(4_107_542_400_000 - 1), "2100-02-28T23:59:59.999Z");
        assert_eq!(utc(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn the_description_has_one_key_per_line_and_dashes_for_nothing() {
        let status = WorkerStatus {
            state: WorkerState::Connecting,
            endpoint: "tcp://127.0.0.1:5555".into(),
            name: "node7-42".into(),
            host: "node7".into(),
            pid: 42,
            worker_id: None,
            sessions: 0,
            units_done: 0,
            unit_errors: 0,
            last_error: None,
            last_error_unix_ms: None,
            last_heard_unix_ms: None,
            updated_unix_ms: 1_732_227_902_123,
            exec: None,
        };
        let now = UNIX_EPOCH + Duration::from_millis(1_732_227_903_623);
        let text = describe(&status, now);
        assert!(text.starts_with("state: connecting\n"), "{text}");
        assert!(text.contains("\nworker_id: -\n"), "{text}");
        assert!(text.contains("\nlast_heard: -\n"), "{text}");
        assert!(
            text.contains("\nupdated: 2024-11-21T22:25:02.123Z (1.5 s ago)\n"),
            "{text}"
        );
        assert!(text.lines().all(|line| line
            .split_once(": ")
            .is_some_and(|(key, _)| !key.contains(' '))));
    }

    #[test]
    fn a_written_status_reads_back_and_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("ganger-status-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("worker.json");
        let status = WorkerStatus {
            state: WorkerState::Connected,
            endpoint: "tcp://127.0.0.1:5555".into(),
            name: "w".into(),
            host: "h".into(),
            pid: 1,
            worker_id: Some(3),
            sessions: 1,
            units_done: 10,
            unit_errors: 1,
            last_error: Some("unit 4: boom".into()),
            last_error_unix_ms: Some(5),
            last_heard_unix_ms: Some(6),
            updated_unix_ms: 7,
            exec: Some(ganger_worker::exec::ExecStatus {
                command: "python3 model.py".into(),
                programs_running: 2,
                restarts: 1,
                crashes: 1,
                timeouts: 0,
                breaches: 0,
                last_restart_reason: Some("the program exited with status 3".into()),
            }),
        };
        write_atomically(&path, &status).unwrap();
        write_atomically(&path, &status).unwrap();
        assert_eq!(read(&path).unwrap(), status);
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(files.len(), 1, "{files:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_status_file_is_named_in_the_error() {
        let path = std::env::temp_dir().join("ganger-no-such-dir/worker.json");
        let error = format!("{:#}", read(&path).unwrap_err());
        assert!(error.contains(&path.display().to_string()), "{error}");
    }
}
