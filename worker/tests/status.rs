//! The status file and `ganger-worker status`, end to end: a delegator in this process, real
//! `ganger-worker` processes, real sockets on 127.0.0.1, real signals.
//!
//! Every wait polls until a condition holds and gives up only after a generous deadline (a
//! guard against hangs, not a timing assertion).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ganger_cluster::{Delegator, DelegatorConfig, JobOptions, SchedulerConfig};
use ganger_worker::{WorkerState, WorkerStatus};

mod common;
use common::{path_str, poll, TempDir, WorkerProcess, DEADLINE, WORKER};

#[test]
fn the_status_follows_a_worker_through_work_a_delegator_shutdown_and_its_own_stop() {
    let dir = TempDir::new("status", "lifecycle");
    let file = dir.0.join("worker.json");
    let delegator = start_delegator();
    let endpoint = delegator.local_endpoint();
    let mut worker = WorkerProcess::spawn(&endpoint, 1, &["--status-file", path_str(&file)], &[]);

    let check = poll_status(&file, &[], "the worker to be healthy", |c| c.code == 0);
    assert_eq!(check.field("state"), Some("connected"), "{check}");
    assert_ne!(check.field("worker_id"), Some("-"), "{check}");
    let json = read_json(&file);
    assert_eq!(json.state, WorkerState::Connected);
    assert_eq!(json.endpoint, endpoint);
    assert_eq!(json.pid, worker.0.id());
    assert!(json.worker_id.is_some() && json.last_heard_unix_ms.is_some());

    // A container's health check runs in the worker's environment, flags and all.
    let from_env = Command::new(WORKER)
        .arg("status")
        .env("GANGER_STATUS_FILE", &file)
        .env("GANGER_CONNECT", &endpoint)
        .env("GANGER_THREADS", "1")
        .output()
        .expect("status runs");
    assert_eq!(from_env.status.code(), Some(0), "{from_env:?}");

    let n = 1000;
    let squares = delegator
        .submit::<_, i64>("square", 0..n, JobOptions::default())
        .unwrap()
        .collect_ordered()
        .unwrap();
    assert!(squares.iter().all(Result::is_ok));
    let check = poll_status(&file, &[], "units_done to reach the job's size", |c| {
        c.field("units_done") == Some("1000") && c.code == 0
    });
    assert_eq!(check.field("unit_errors"), Some("0"), "{check}");

    // The delegator's shutdown resets the worker, which keeps saying hello to nobody.
    delegator.shutdown();
    let check = poll_status(
        &file,
        &[],
        "the worker to report it is not connected",
        |c| c.code == 1,
    );
    assert_eq!(check.field("state"), Some("connecting"), "{check}");
    assert_eq!(check.field("worker_id"), Some("-"), "{check}");
    assert!(check.stdout.contains("not connected"), "{check}");
    assert!(worker.is_running(), "the worker keeps retrying");
    let before = read_json(&file).updated_unix_ms;
    poll("the status file to be refreshed while connecting", || {
        let json = read_json(&file);
        (json.updated_unix_ms > before && json.state == WorkerState::Connecting).then_some(())
    });
    assert!(worker.is_running());

    worker.signal(libc::SIGTERM);
    assert_eq!(worker.wait(), Some(0));
    let check = status(&file, &[]);
    assert_eq!(check.code, 1, "{check}");
    assert_eq!(check.field("state"), Some("stopped"), "{check}");
    assert_eq!(check.field("units_done"), Some("1000"), "{check}");
}

#[test]
fn a_killed_worker_goes_stale() {
    let dir = TempDir::new("status", "kill");
    let file = dir.0.join("worker.json");
    let delegator = start_delegator();
    let mut worker = WorkerProcess::spawn(
        &delegator.local_endpoint(),
        1,
        &[],
        &[("GANGER_STATUS_FILE", path_str(&file))],
    );
    poll_status(&file, &[], "the worker to be healthy", |c| c.code == 0);

    worker.signal(libc::SIGKILL);
    assert_eq!(worker.wait(), None, "killed by a signal");
    // Its last words said `connected`; only their age gives it away.
    let check = poll_status(
        &file,
        &["--max-age-secs", "1"],
        "the status to go stale",
        |c| c.code == 1,
    );
    assert_eq!(check.field("state"), Some("connected"), "{check}");
    assert!(check.stdout.contains("stale"), "{check}");
}

#[test]
fn a_missing_status_file_exits_2_naming_it() {
    let dir = TempDir::new("status", "missing");
    let file = dir.0.join("never-written.json");
    let check = status(&file, &[]);
    assert_eq!(check.code, 2, "{check}");
    assert!(check.stderr.contains(path_str(&file)), "{check}");
    assert!(check.stdout.is_empty(), "{check}");
}

#[test]
fn a_status_file_that_is_not_a_status_exits_2_naming_it() {
    let dir = TempDir::new("status", "garbage");
    let file = dir.0.join("worker.json");
    std::fs::write(&file, "{\"state\": \"conn").unwrap();
    let check = status(&file, &[]);
    assert_eq!(check.code, 2, "{check}");
    assert!(check.stderr.contains(path_str(&file)), "{check}");
}

#[test]
fn a_status_file_that_cannot_be_written_stops_the_worker_at_start_naming_it() {
    let dir = TempDir::new("status", "unwritable");
    let file = dir.0.join("no-such-dir").join("worker.json");
    let output = Command::new(WORKER)
        .args(["--connect", "tcp://127.0.0.1:1", "--threads", "1"])
        .args(["--status-file", path_str(&file)])
        .env("GANGER_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("worker runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(path_str(&file)), "{stderr}");
}

/// Fast heartbeats, so that a silent peer is noticed quickly.
fn start_delegator() -> Delegator {
    Delegator::start(DelegatorConfig {
        bind: "tcp://127.0.0.1:0".into(),
        scheduler: SchedulerConfig {
            heartbeat_ms: 200,
            timeout_ms: 2000,
            ..SchedulerConfig::default()
        },
        ..DelegatorConfig::default()
    })
    .expect("delegator starts")
}

/// What one run of `ganger-worker status` said.
#[derive(Debug)]
struct Check {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Check {
    /// The value of a `key: value` line.
    fn field(&self, key: &str) -> Option<&str> {
        self.stdout.lines().find_map(|line| {
            let (k, value) = line.split_once(": ")?;
            (k == key).then_some(value)
        })
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn status(file: &Path, args: &[&str]) -> Check {
    let output = Command::new(WORKER)
        .arg("status")
        .arg("--status-file")
        .arg(file)
        .args(args)
        .env_remove("GANGER_STATUS_MAX_AGE_SECS")
        .output()
        .expect("status runs");
    Check {
        code: output.status.code().expect("status exits by itself"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn read_json(file: &Path) -> WorkerStatus {
    let bytes = std::fs::read(file).expect("status file exists");
    serde_json::from_slice(&bytes).expect("status file is a status")
}

/// Runs `ganger-worker status` until its answer is accepted; panics after [`DEADLINE`] showing
/// the last answer.
fn poll_status(file: &Path, args: &[&str], what: &str, accept: impl Fn(&Check) -> bool) -> Check {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let check = status(file, args);
        if accept(&check) {
            return check;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last answer:\n{check}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
