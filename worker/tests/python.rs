//! The Python worker package's own tests (`worker/python/tests`, unittest), run by cargo: its
//! unit tests and its end-to-end tests against the real `ganger-delegator` built here.
//!
//! Reported as ignored, naming what is missing, when `python3` or one of the modules `zmq`,
//! `msgpack`, `cryptography` is, unless `GANGER_REQUIRE_PYTHON=1` (set by CI) makes the
//! absence a failure.

use std::path::Path;
use std::process::Command;

mod common;
use common::{python_trial, repository_root, WORKER};

fn main() -> std::process::ExitCode {
    common::run_trials(vec![python_trial(
        "the_python_worker_packages_unittests_pass",
        &["zmq", "msgpack", "cryptography"],
        the_python_worker_packages_unittests_pass,
    )])
}

fn the_python_worker_packages_unittests_pass() {
    let bin_dir = Path::new(WORKER)
        .parent()
        .expect("the worker binary has a folder");
    build_delegator(bin_dir);
    let root = repository_root();
    let output = Command::new("python3")
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            "worker/python/tests",
            "-v",
        ])
        .current_dir(&root)
        .env("GANGER_BIN_DIR", bin_dir)
        .env("PYTHONPATH", root.join("worker/python"))
        .output()
        .expect("python3 runs");
    // unittest reports on stderr; printed here so that `cargo test` shows it on failure.
    println!("{}", String::from_utf8_lossy(&output.stdout));
    println!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "the Python worker's tests failed ({}); their report is above",
        output.status
    );
}

/// Builds `ganger-delegator` beside the worker binary cargo built for this test (cargo builds
/// only this package's binaries for its tests), in the same profile.
fn build_delegator(bin_dir: &Path) {
    let mut build = Command::new(env!("CARGO"));
    build.args([
        "build",
        "--quiet",
        "-p",
        "ganger-delegator",
        "--bin",
        "ganger-delegator",
    ]);
    if bin_dir.ends_with("release") {
        build.arg("--release");
    }
    let status = build
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building ganger-delegator failed");
    assert!(
        bin_dir.join("ganger-delegator").exists(),
        "ganger-delegator is not in {} after the build",
        bin_dir.display()
    );
}
