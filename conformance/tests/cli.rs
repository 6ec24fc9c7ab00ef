//! The `ganger-conformance` command line: listing, refusing bad flags with one clear line, and
//! its exit status and output when a worker cannot even start.

use std::process::{Command, Output};

const SUITE: &str = env!("CARGO_BIN_EXE_ganger-conformance");

fn suite(args: &[&str]) -> Output {
    Command::new(SUITE)
        .args(args)
        .output()
        .expect("the suite runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn list_names_every_check_with_its_section() {
    let out = suite(&["--list"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    for check in ganger_conformance::checks() {
        let line = stdout
            .lines()
            .find(|line| line.split_whitespace().next() == Some(check.name))
            .unwrap_or_else(|| panic!("{} is not listed:\n{stdout}", check.name));
        assert!(line.contains(check.section), "{line}");
    }
    assert_eq!(stdout.lines().count(), ganger_conformance::checks().len());
}

#[test]
fn an_unknown_check_is_refused_naming_it() {
    let out = suite(&["--check", "helo", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("unknown check `helo`"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn no_worker_command_is_refused() {
    let out = suite(&[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("no worker command"), "{out:?}");
}

#[test]
fn a_worker_that_cannot_start_or_exits_at_once_fails_with_the_reason() {
    let out = suite(&[
        "--check",
        "hello",
        "--check",
        "results",
        "--",
        "/nonexistent/worker",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("FAIL hello: cannot start the worker `/nonexistent/worker`"),
        "{stdout}"
    );
    assert!(stdout.contains("0 of 2 checks passed"), "{stdout}");

    let script = "echo 'ImportError: no module named zmq' >&2; exit 3";
    let out = suite(&["--check", "hello", "--", "sh", "-c", script]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("FAIL hello: the worker exited (exit status: 3) without a hello"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ImportError: no module named zmq"),
        "the output's tail: {stdout}"
    );
}
