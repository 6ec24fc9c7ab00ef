//! What the worker's integration tests share: the worker binary and a process handle for it,
//! the repository root, the Python probe with its `GANGER_REQUIRE_PYTHON` rule, polling with a
//! deadline, and temporary folders.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `ganger-worker` binary cargo built for these tests.
pub const WORKER: &str = env!("CARGO_BIN_EXE_ganger-worker");

/// How long a wait may take before the test gives up: a guard against hangs, not a timing
/// assertion.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The repository's root folder (the worker crate is `worker/` in it).
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("worker/ is inside the repository")
        .to_path_buf()
}

/// What keeps `python3` from importing `modules` (none: from running at all), if anything.
pub fn python_lacks(modules: &[&str]) -> Option<String> {
    let script = if modules.is_empty() {
        "pass".to_string()
    } else {
        format!("import {}", modules.join(", "))
    };
    match Command::new("python3").args(["-c", &script]).output() {
        Ok(out) if out.status.success() => None,
        Ok(_) if modules.is_empty() => Some("python3".into()),
        Ok(_) => Some(format!("python3 with {}", modules.join(", "))),
        Err(_) => Some("python3".into()),
    }
}

/// A test of a file with a harness of its own (libtest-mimic: libtest cannot ignore a test at
/// run time), run as libtest runs a `#[test]` (a panic fails it); when `missing` names what
/// this machine lacks, reported as ignored instead, its kind naming it. The same as the
/// delegator's tests' `common::trial`.
#[allow(dead_code)]
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

/// [`trial`] for a test that runs Python: when `python3` cannot import `modules`, it is
/// reported as ignored, its kind naming what is missing (`pip install -r
/// .ci/python-requirements.txt`); with `GANGER_REQUIRE_PYTHON=1` (set by CI) it fails instead.
#[allow(dead_code)]
pub fn python_trial(name: &str, modules: &[&str], test: fn()) -> libtest_mimic::Trial {
    let missing = python_lacks(modules);
    match missing {
        Some(missing) if std::env::var("GANGER_REQUIRE_PYTHON").is_ok_and(|v| v == "1") => {
            libtest_mimic::Trial::test(name, move || {
                Err(format!("GANGER_REQUIRE_PYTHON=1 but this machine lacks {missing}").into())
            })
        }
        missing => trial(name, missing, test),
    }
}

/// Runs `trials` as libtest would, with its arguments (filters, `--nocapture`, ...).
#[allow(dead_code)]
pub fn run_trials(trials: Vec<libtest_mimic::Trial>) -> std::process::ExitCode {
    libtest_mimic::run(&libtest_mimic::Arguments::from_args(), trials).exit_code()
}

/// Calls `attempt` until it returns something; panics after [`DEADLINE`].
pub fn poll<T>(what: &str, mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(done) = attempt() {
            return done;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A temporary path as the `&str` a command line wants.
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// A fresh directory under the system's temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `ganger-worker-{suite}-{test}-{pid}`, emptied if it exists.
    pub fn new(suite: &str, test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "ganger-worker-{suite}-{test}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `ganger-worker` process, killed when dropped.
pub struct WorkerProcess(pub Child);

impl WorkerProcess {
    /// `ganger-worker --connect ENDPOINT --threads THREADS ARGS…` with `env` added, logging
    /// warnings only.
    pub fn spawn(
        endpoint: &str,
        threads: usize,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> WorkerProcess {
        let child = Command::new(WORKER)
            .args(["--connect", endpoint, "--threads", &threads.to_string()])
            .args(args)
            .envs(env.iter().copied())
            .env("GANGER_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("worker starts");
        WorkerProcess(child)
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child with a valid signal number.
        assert_eq!(unsafe { libc::kill(self.0.id() as i32, signal) }, 0);
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        self.0.try_wait().expect("wait works").is_none()
    }

    /// Waits for the process to exit and returns its exit code (`None` if killed by a signal).
    pub fn wait(&mut self) -> Option<i32> {
        self.0.wait().expect("wait works").code()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
