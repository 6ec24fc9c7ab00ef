//! A protocol conformance suite: plays the delegator's side of `PROTOCOL.md` against any worker.
//!
//! Each check binds a ROUTER on `tcp://127.0.0.1:0`, starts a fresh copy of the worker under
//! test configured only through the environment (`GANGER_CONNECT`, `GANGER_THREADS=2`,
//! `GANGER_NAME`, and `GANGER_SECRET` when secured), plays its side of one conversation, and
//! always SIGKILLs and reaps the worker at the end. A check that cannot decide within its time
//! limit fails, saying what it waited for; a failure quotes what was received and the tail of
//! the worker's output.
//!
//! ```no_run
//! use ganger_conformance::Options;
//!
//! let options = Options::new(["ganger-worker", "--job-types", "noop,sleep,panic-if-odd"]);
//! let report = ganger_conformance::run(&options);
//! print!("{report}");
//! assert!(report.passed());
//! ```
//!
//! The worker must serve `noop`, `sleep` and `panic-if-odd` with the semantics of ganger's
//! built-ins, stop gracefully on SIGTERM (exit status 0) and exit non-zero after a `reject`;
//! `README.md` in this crate has the whole contract.

mod checks;
mod peer;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Job types every worker under test serves.
pub const REQUIRED_JOB_TYPES: [&str; 3] = ["noop", "sleep", "panic-if-odd"];
/// The `GANGER_THREADS` the suite gives the worker, so the `slots` its hello must advertise.
pub const SLOTS: u32 = 2;

/// One check of the suite: its name and the part of `PROTOCOL.md` it enforces.
#[derive(Debug, Clone, Copy)]
pub struct CheckInfo {
    /// Kebab-case name, as `--check` takes it.
    pub name: &'static str,
    /// The section of `PROTOCOL.md` the check enforces.
    pub section: &'static str,
    /// What it checks, in one line.
    pub summary: &'static str,
}

/// Every check, in the order they run.
pub fn checks() -> Vec<CheckInfo> {
    checks::ALL
        .iter()
        .map(|check| CheckInfo {
            name: check.name,
            section: check.section,
            summary: check.summary,
        })
        .collect()
}

/// What to run the suite against, and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The worker's command line: program and arguments.
    pub command: Vec<String>,
    /// Extra environment for the worker (on top of the suite's own `GANGER_*` variables).
    pub env: Vec<(String, String)>,
    /// The worker's working directory [default: the suite's].
    pub dir: Option<std::path::PathBuf>,
    /// Run with a cluster secret: the handshake and sealed frames of §10.
    pub secret: bool,
    /// Send only payloads that the exec bridge's JSON framing can carry (PROTOCOL.md §11.3):
    /// canonical MessagePack values without `bin`. By default `noop` units also carry bytes
    /// that are no MessagePack at all (empty, every byte value), as §3 allows.
    pub json_payloads: bool,
    /// Names of the checks to run; empty runs them all.
    pub checks: Vec<String>,
    /// How many checks run at once (each with its own ROUTER and worker); default 3.
    pub jobs: usize,
    /// How long the worker may take to exit after SIGTERM; default 35 s (the Rust worker's
    /// grace period is 30 s).
    pub grace: Duration,
}

impl Options {
    /// Options running every check, plaintext, against `command`.
    pub fn new<I, S>(command: I) -> Options
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Options {
            command: command.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            dir: None,
            secret: false,
            json_payloads: false,
            checks: Vec::new(),
            jobs: 3,
            grace: Duration::from_secs(35),
        }
    }

    /// Checks that the command is non-empty and every named check exists.
    pub fn validate(&self) -> Result<(), Error> {
        if self.command.is_empty() {
            return Err(Error::NoCommand);
        }
        for name in &self.checks {
            if !checks::ALL.iter().any(|check| check.name == name) {
                return Err(Error::UnknownCheck(name.clone()));
            }
        }
        Ok(())
    }
}

/// Why the suite could not run at all (a check that fails is not an error: see [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No worker command was given.
    #[error("no worker command: give it after `--`")]
    NoCommand,
    /// `--check` named a check that does not exist.
    #[error("unknown check `{0}` (see --list)")]
    UnknownCheck(String),
}

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The check's name.
    pub name: &'static str,
    /// `Ok(())` if it passed, else why not (quoting what was received, and the worker's output).
    pub outcome: Result<(), String>,
    /// Things worth a look that do not fail the check (e.g. `elapsed_us` always 0).
    pub warnings: Vec<String>,
    /// How long the check took.
    pub duration: Duration,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Ok(()) => write!(f, "PASS {}", self.name)?,
            Err(why) => write!(f, "FAIL {}: {why}", self.name)?,
        }
        for warning in &self.warnings {
            write!(f, "\nWARN {}: {warning}", self.name)?;
        }
        Ok(())
    }
}

/// The outcome of a run: one [`CheckReport`] per check, in the suite's order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The checks that ran.
    pub checks: Vec<CheckReport>,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|check| check.outcome.is_ok())
    }

    /// The report of the check called `name`, if it ran.
    pub fn check(&self, name: &str) -> Option<&CheckReport> {
        self.checks.iter().find(|check| check.name == name)
    }

    /// The names of the checks that failed.
    pub fn failed(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|check| check.outcome.is_err())
            .map(|check| check.name)
            .collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            writeln!(f, "{check}")?;
        }
        let failed = self.failed();
        writeln!(
            f,
            "{} of {} checks passed{}",
            self.checks.len() - failed.len(),
            self.checks.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!("; failed: {}", failed.join(", "))
            }
        )
    }
}

/// Runs the selected checks and returns their reports (see [`run_with`] to see each as it ends).
///
/// Invalid options (see [`Options::validate`]) make every selected check fail with the reason.
pub fn run(options: &Options) -> Report {
    run_with(options, |_| {})
}

/// Runs the selected checks, calling `on_check` as each one ends (in completion order; the
/// returned [`Report`] is in the suite's order).
pub fn run_with(options: &Options, on_check: impl Fn(&CheckReport) + Sync) -> Report {
    let selected: Vec<&checks::Check> = checks::ALL
        .iter()
        .filter(|check| options.checks.is_empty() || options.checks.iter().any(|n| n == check.name))
        .collect();
    if let Err(e) = options.validate() {
        let checks = selected
            .iter()
            .map(|check| CheckReport {
                name: check.name,
                outcome: Err(e.to_string()),
                warnings: Vec::new(),
                duration: Duration::ZERO,
            })
            .collect();
        return Report { checks };
    }
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<CheckReport>>> = Mutex::new(vec![None; selected.len()]);
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.clamp(1, selected.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(check) = selected.get(i) else { break };
                let started = Instant::now();
                let (outcome, warnings) = checks::run_one(check, options);
                let report = CheckReport {
                    name: check.name,
                    outcome,
                    warnings,
                    duration: started.elapsed(),
                };
                on_check(&report);
                done.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(report);
            });
        }
    });
    let checks = done
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect();
    Report { checks }
}
