//! The protocol conformance suite (`ganger-conformance`) against worker implementations: real
//! worker processes on ephemeral loopback ports, plaintext and with a cluster secret.
//!
//! Adding an implementation is two lines: a test calling [`assert_conforms`] with its command
//! line (relative to the repository root), once with `secret` false and once true, each in
//! `main`'s list. A command that runs Python is reported as ignored, naming what is missing,
//! when `python3` lacks pyzmq or msgpack (or `cryptography`, secured), unless
//! `GANGER_REQUIRE_PYTHON=1` makes that a failure. A command
//! with `--exec-framing json` gets only payloads that framing can carry (PROTOCOL.md §11.3).

use ganger_conformance::Options;

mod common;
use common::{python_trial, repository_root, trial, WORKER};

fn main() -> std::process::ExitCode {
    common::run_trials(vec![
        trial("the_rust_worker_conforms", None, the_rust_worker_conforms),
        trial(
            "the_rust_worker_conforms_with_a_secret",
            None,
            the_rust_worker_conforms_with_a_secret,
        ),
        python_trial(
            "the_python_package_conforms",
            &["zmq", "msgpack"],
            the_python_package_conforms,
        ),
        python_trial(
            "the_python_package_conforms_with_a_secret",
            &["zmq", "msgpack", "cryptography"],
            the_python_package_conforms_with_a_secret,
        ),
        // Behind the bridge, which speaks ZeroMQ and does the cryptography itself, a program
        // needs msgpack for the MessagePack framing and nothing for JSON.
        python_trial(
            "the_exec_bridge_conforms_with_msgpack_framing",
            &["msgpack"],
            the_exec_bridge_conforms_with_msgpack_framing,
        ),
        python_trial(
            "the_exec_bridge_conforms_with_json_framing",
            &[],
            the_exec_bridge_conforms_with_json_framing,
        ),
    ])
}

fn the_rust_worker_conforms() {
    assert_conforms(
        &[WORKER, "--job-types", "noop,sleep,panic-if-odd"],
        &[],
        false,
    );
}

fn the_rust_worker_conforms_with_a_secret() {
    assert_conforms(
        &[WORKER, "--job-types", "noop,sleep,panic-if-odd"],
        &[],
        true,
    );
}

const PYTHON_WORKER: &[&str] = &["python3", "worker/python/examples/conformance_worker.py"];
const PYTHON_PATH: &[(&str, &str)] = &[("PYTHONPATH", "worker/python")];

fn the_python_package_conforms() {
    assert_conforms(PYTHON_WORKER, PYTHON_PATH, false);
}

fn the_python_package_conforms_with_a_secret() {
    assert_conforms(PYTHON_WORKER, PYTHON_PATH, true);
}

/// The exec bridge around `examples/exec/conformance_child.py` in one framing.
fn exec_bridge(framing: &str) -> [String; 7] {
    [
        WORKER.to_string(),
        "--exec".into(),
        format!("python3 examples/exec/conformance_child.py --framing {framing}"),
        "--exec-framing".into(),
        framing.into(),
        "--job-types".into(),
        "noop,sleep,panic-if-odd".into(),
    ]
}

fn the_exec_bridge_conforms_with_msgpack_framing() {
    let command = exec_bridge("msgpack");
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    assert_conforms(&command, &[], false);
    assert_conforms(&command, &[], true);
}

fn the_exec_bridge_conforms_with_json_framing() {
    let command = exec_bridge("json");
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    assert_conforms(&command, &[], false);
    assert_conforms(&command, &[], true);
}

/// Runs every check against `command` (started in the repository root, with `env` added) and
/// fails with the suite's report unless all pass.
fn assert_conforms(command: &[&str], env: &[(&str, &str)], secret: bool) {
    let json_framing = command
        .windows(2)
        .any(|pair| pair == ["--exec-framing", "json"])
        || command.contains(&"--exec-framing=json");
    let mut options = Options::new(command.iter().copied());
    options.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    options.secret = secret;
    // The JSON framing carries canonical MessagePack values without `bin`, not arbitrary bytes.
    options.json_payloads = json_framing;
    options.dir = Some(repository_root());
    let report = ganger_conformance::run(&options);
    print!("{report}");
    assert!(
        report.passed(),
        "{command:?} (secret: {secret}) does not conform:\n{report}"
    );
}
