//! Helpers for tests that run real worker processes against a real delegator on 127.0.0.1.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use ganger_cluster::{Delegator, DelegatorConfig, SchedulerConfig, Stats};

/// The delegator binary cargo built for these tests.
pub fn delegator_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ganger-delegator"))
}

/// A command running the delegator binary, with its HTTP server off: tests that want it pass
/// `--http 127.0.0.1:0` (the default would listen on every interface).
pub fn delegator_command() -> Command {
    let mut command = Command::new(delegator_bin());
    command.env("GANGER_HTTP", "none");
    command
}

/// The worker binary beside it, built on demand when only this package's tests were asked for.
pub fn worker_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    let path = delegator_bin().with_file_name("ganger-worker");
    BUILD.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "ganger-worker",
                "--bin",
                "ganger-worker",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building ganger-worker failed");
    });
    path
}

/// Fast heartbeats so that failure tests finish quickly.
pub fn test_config() -> DelegatorConfig {
    DelegatorConfig {
        bind: "tcp://127.0.0.1:0".into(),
        scheduler: SchedulerConfig {
            heartbeat_ms: 200,
            timeout_ms: 2000,
            ..SchedulerConfig::default()
        },
        ..DelegatorConfig::default()
    }
}

pub fn start_delegator(config: DelegatorConfig) -> Delegator {
    Delegator::start(config).expect("delegator starts")
}

/// A worker process that is killed when dropped.
pub struct WorkerProcess {
    pub child: Child,
}

impl WorkerProcess {
    pub fn spawn(endpoint: &str, args: &[&str]) -> WorkerProcess {
        let child = Command::new(worker_bin())
            .arg("--connect")
            .arg(endpoint)
            .args(args)
            .env("GANGER_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("worker starts");
        WorkerProcess { child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child with a valid signal number.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait works").is_none()
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        self.child.wait().expect("wait works").code()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` on the delegator's stats until it holds; panics after `limit` (a guard
/// against hangs, not a performance assertion).
pub fn wait_for(
    delegator: &Delegator,
    limit: Duration,
    what: &str,
    condition: impl Fn(&Stats) -> bool,
) -> Stats {
    let deadline = Instant::now() + limit;
    loop {
        let stats = delegator.stats().expect("stats");
        if condition(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {stats:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for a test's lifetime).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A plain HTTP/1.0 GET on a loopback server: (status code, body as sent).
#[allow(dead_code)] // Not every test binary talks HTTP.
pub fn http_get(address: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("the HTTP server accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("headers, then a body");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    (code, body.to_owned())
}

/// A small Stateline-style MCMC config at `dir/name` writing to `output`: 3 dimensions, 2 terms,
/// 2 stacks of 3 temperatures, a checkpoint every 50 ms (so that kills and full disks find one).
pub fn mcmc_config(dir: &Path, name: &str, output: &Path, samples: u64) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            r#"{{
  "nJobTypes": 2,
  "nStacks": 2,
  "nTemperatures": 3,
  "nSamplesTotal": {samples},
  "min": [-10, -10, -10],
  "max": [10, 10, 10],
  "swapInterval": 10,
  "optimalAcceptRate": 0.24,
  "optimalSwapRate": 0.24,
  "outputPath": "{}",
  "loggingRateSec": 10,
  "checkpointIntervalSec": 0.05,
  "useInitial": false,
  "initial": [0, 0, 0]
}}"#,
            output.display()
        ),
    )
    .unwrap();
    path
}

/// Runs `mcmc_config`'s run of `samples` steps, undisturbed, into `dir/reference`: what a run
/// with faults must write byte for byte.
pub fn fault_free_mcmc(dir: &Path, samples: u64) -> PathBuf {
    let reference = dir.join("reference");
    let fault_free = delegator_command()
        .args(["mcmc", "--local-workers", "1", "--config"])
        .arg(mcmc_config(dir, "reference.json", &reference, samples))
        .env("GANGER_LOG", "warn")
        .output()
        .unwrap();
    assert!(fault_free.status.success());
    reference
}

/// Every file of an MCMC output folder but the checkpoint (chains and summary), by name.
pub fn mcmc_outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv" || e == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// The same output files in both folders, byte for byte.
pub fn assert_same_mcmc_outputs(reference: &Path, actual: &Path) {
    let (expected, actual) = (mcmc_outputs(reference), mcmc_outputs(actual));
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &expected {
        assert!(
            &actual[name] == bytes,
            "{name} differs from the fault-free run's"
        );
    }
}

/// Waits for `child` to exit, killing it after `limit` (a guard against hangs).
pub fn wait_with_limit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the delegator did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls until `condition` holds; panics after `limit` (a guard against hangs).
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A test of a file with a harness of its own (libtest-mimic: libtest cannot ignore a test at
/// run time), run as libtest runs a `#[test]` (a panic fails it); when `missing` names what
/// this machine lacks, reported as ignored instead, its kind naming it.
pub fn trial(name: &str, missing: Option<String>, test: fn()) -> libtest_mimic::Trial {
    match missing {
        None => libtest_mimic::Trial::test(name, move || {
            test();
            Ok(())
        }),
        // Run anyway (--include-ignored), it fails: it cannot run here.
        Some(missing) => {
            let kind = format!("needs {missing}");
            libtest_mimic::Trial::test(name, move || {
                Err(format!("this machine lacks {missing}").into())
            })
            .with_ignored_flag(true)
            .with_kind(kind)
        }
    }
}

/// Runs `trials` as libtest would, with its arguments (filters, `--include-ignored`, ...).
pub fn run_trials(trials: Vec<libtest_mimic::Trial>) -> std::process::ExitCode {
    libtest_mimic::run(&libtest_mimic::Arguments::from_args(), trials).exit_code()
}

/// The command an interrupted run printed after `resume with: ` on its stderr.
pub fn resume_command(stderr: &str) -> &str {
    stderr
        .lines()
        .find_map(|line| line.split_once("resume with: ").map(|(_, c)| c.trim()))
        .unwrap_or_else(|| panic!("no resume command in {stderr}"))
}

/// Runs `command` exactly as printed, through `sh`, quietly and with no HTTP server; fails the
/// test unless it succeeds.
pub fn run_in_shell(command: &str) {
    let output = Command::new("sh")
        .args(["-c", command])
        .env("GANGER_LOG", "warn")
        .env("GANGER_HTTP", "none")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Text from a dumped DOM or an SVG with XML's entities decoded (what `textContent` holds).
#[allow(dead_code)] // Not every test binary reads markup.
pub fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
