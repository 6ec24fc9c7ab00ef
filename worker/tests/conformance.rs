//! The protocol conformance suite (`ganger-conformance`) against worker implementations: real
//! worker processes on ephemeral loopback ports, plaintext and with a cluster secret.
//!
//! Adding an implementation is two lines: a test calling [`assert_conforms`] with its command
//! line (relative to the repository root), once with `secret` false and once true. A command
//! that runs Python is skipped, saying why, when `python3` lacks pyzmq or msgpack (or
//! `cryptography`, secured), unless `GANGER_REQUIRE_PYTHON=1` makes that a failure. A command
//! with `--exec-framing json` gets only payloads that framing can carry (PROTOCOL.md §11.3).

use ganger_conformance::Options;

mod common;
use common::{python_ready, repository_root, WORKER};

#[test]
fn the_rust_worker_conforms() {
    assert_conforms(
        &[WORKER, "--job-types", "noop,sleep,panic-if-odd"],
        &[],
        false,
    );
}

#[test]
fn the_rust_worker_conforms_with_a_secret() {
    assert_conforms(
        &[WORKER, "--job-types", "noop,sleep,panic-if-odd"],
        &[],
        true,
    );
}

const PYTHON_WORKER: &[&str] = &["python3", "worker/python/examples/conformance_worker.py"];
const PYTHON_PATH: &[(&str, &str)] = &[("PYTHONPATH", "worker/python")];

#[test]
fn the_python_package_conforms() {
    assert_conforms(PYTHON_WORKER, PYTHON_PATH, false);
}

#[test]
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

#[test]
fn the_exec_bridge_conforms_with_msgpack_framing() {
    let command = exec_bridge("msgpack");
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    assert_conforms(&command, &[], false);
    assert_conforms(&command, &[], true);
}

#[test]
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
    if command.iter().any(|arg| arg.contains("python"))
        && !python_ready(&python_modules(command, json_framing, secret))
    {
        return;
    }
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

/// The Python modules a command needs: behind the exec bridge (which speaks ZeroMQ and does
/// the cryptography itself) msgpack for the MessagePack framing and nothing for JSON; the
/// Python package pyzmq and msgpack, and `cryptography` for a secret.
fn python_modules(command: &[&str], json_framing: bool, secret: bool) -> Vec<&'static str> {
    match (command.contains(&"--exec"), json_framing, secret) {
        (true, true, _) => vec![],
        (true, false, _) => vec!["msgpack"],
        (false, _, false) => vec!["zmq", "msgpack"],
        (false, _, true) => vec!["zmq", "msgpack", "cryptography"],
    }
}
