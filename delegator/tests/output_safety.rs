//! No run destroys results it was not asked to replace, and no two runs write one output.

mod common;
mod faults;

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use common::*;
use faults::TempDir;

fn delegator(args: &[&str], dir: &Path) -> Output {
    delegator_command()
        .args(args)
        .current_dir(dir)
        .env("GANGER_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("the delegator runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts that a run was refused with a message naming each of `names`.
fn assert_refused(output: &Output, what: &str, names: &[&str]) {
    assert!(!output.status.success(), "{what}");
    let message = stderr(output);
    for expected in names {
        assert!(
            message.contains(expected),
            "{expected} missing in: {message}"
        );
    }
}

/// Starts a run that waits for workers that never come (it binds a loopback port and has
/// none), so it holds its output until killed.
fn start_waiting(args: &[&str], dir: &Path) -> Child {
    delegator_command()
        .args(args)
        .args(["--bind", "tcp://127.0.0.1:0"])
        .current_dir(dir)
        .env("GANGER_LOG", "warn")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the delegator starts")
}

#[test]
fn a_rerun_without_resume_or_overwrite_keeps_the_results_and_says_how_to_go_on() {
    let dir = TempDir::new("rerun");
    let run = |range: &str, extra: &[&str]| {
        let mut args = vec!["run", "--task", "square", "--range", range];
        args.extend(["--output", "r.jsonl", "--local-workers", "1"]);
        args.extend(extra);
        delegator(&args, &dir.0)
    };
    assert!(run("5", &[]).status.success());
    let before = std::fs::read(dir.join("r.jsonl")).unwrap();
    assert_eq!(before.iter().filter(|&&b| b == b'\n').count(), 5);

    assert_refused(
        &run("2", &[]),
        "a second run replaced the results",
        &["r.jsonl", "--resume", "--overwrite"],
    );
    assert_eq!(std::fs::read(dir.join("r.jsonl")).unwrap(), before);

    let replaced = run("2", &["--overwrite"]);
    assert!(replaced.status.success(), "{}", stderr(&replaced));
    let after = std::fs::read_to_string(dir.join("r.jsonl")).unwrap();
    assert_eq!(after.lines().count(), 2, "{after}");
}

#[test]
fn an_mcmc_folder_with_results_is_refused_unless_resumed_or_overwritten() {
    let dir = TempDir::new("mcmc-rerun");
    let config = mcmc_config(&dir.0, "run.json", &dir.join("out"), 2000);
    let config = config.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["mcmc", "--config", config, "--local-workers", "1"];
        args.extend(extra);
        delegator(&args, &dir.0)
    };
    assert!(run(&[]).status.success());
    let before = mcmc_outputs(&dir.join("out"));

    assert_refused(
        &run(&[]),
        "a second run replaced the chains",
        &["out", "--resume", "--overwrite"],
    );
    assert_eq!(mcmc_outputs(&dir.join("out")), before);

    let replaced = run(&["--overwrite"]);
    assert!(replaced.status.success(), "{}", stderr(&replaced));
    // Same seed, same config: the replacement is the same run again.
    assert_eq!(mcmc_outputs(&dir.join("out")), before);
}

#[test]
fn a_second_run_on_a_locked_output_fails_at_once_naming_the_path_and_the_holder() {
    let dir = TempDir::new("locked");
    let output = dir.join("out.jsonl");
    let mut first = start_waiting(
        &[
            "run",
            "--task",
            "sleep",
            "--range",
            "10",
            "--output",
            "out.jsonl",
        ],
        &dir.0,
    );
    wait_until(Duration::from_secs(30), "the first run's lock", || {
        std::fs::read_to_string(dir.join("out.jsonl.lock")).is_ok_and(|t| t.contains("pid"))
    });
    for extra in [&[][..], &["--resume"][..], &["--overwrite"][..]] {
        let mut args = vec!["run", "--task", "sleep", "--range", "10"];
        args.extend(["--output", "out.jsonl", "--local-workers", "1"]);
        args.extend(extra);
        // The full path of the output contains its name: naming the output is what counts.
        assert_refused(
            &delegator(&args, &dir.0),
            &format!("{extra:?}: two runs on one output"),
            &[
                "being written by another run",
                &format!("pid {}", first.id()),
                "out.jsonl",
            ],
        );
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // The kernel dropped the lock with its holder: the run can go on.
    let resumed = delegator(
        &[
            "run",
            "--task",
            "sleep",
            "--range",
            "10",
            "--output",
            "out.jsonl",
            "--resume",
            "--local-workers",
            "1",
        ],
        &dir.0,
    );
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(
        std::fs::read_to_string(&output).unwrap().lines().count(),
        10
    );

    // The same for an MCMC output folder.
    let config = mcmc_config(&dir.0, "run.json", &dir.join("chains"), 2000);
    let config = config.to_str().unwrap();
    let mut first = start_waiting(&["mcmc", "--config", config], &dir.0);
    wait_until(Duration::from_secs(30), "the MCMC run's lock", || {
        std::fs::read_to_string(dir.join("chains").join(".ganger.lock"))
            .is_ok_and(|t| t.contains("pid"))
    });
    let second = delegator(
        &[
            "mcmc",
            "--config",
            config,
            "--resume",
            "--local-workers",
            "1",
        ],
        &dir.0,
    );
    assert_refused(
        &second,
        "two runs on one folder",
        &[
            "being written by another run",
            &format!("pid {}", first.id()),
        ],
    );
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn resuming_with_a_config_that_changes_the_output_is_refused_naming_the_key() {
    let dir = TempDir::new("changed-model");
    let config = mcmc_config(&dir.0, "run.json", &dir.join("out"), 2000);
    let text = std::fs::read_to_string(&config).unwrap();
    let run = |text: &str| {
        std::fs::write(&config, text).unwrap();
        let args = [
            "mcmc",
            "--config",
            config.to_str().unwrap(),
            "--local-workers",
            "1",
            "--resume",
        ];
        delegator(&args, &dir.0)
    };
    assert!(run(&text).status.success());
    let before = mcmc_outputs(&dir.join("out"));
    let with = |key: &str, value: &str| {
        text.replacen(
            "\"nJobTypes\": 2,",
            &format!("\"nJobTypes\": 2,\n  \"{key}\": {value},"),
            1,
        )
    };
    for (changed, key, shown) in [
        (
            with("likelihood", "\"bimodal\""),
            "likelihood",
            "\"bimodal\"",
        ),
        (
            text.replace("\"nJobTypes\": 2", "\"nJobTypes\": 3"),
            "nJobTypes",
            "3",
        ),
        (
            text.replace("[10, 10, 10]", "[10, 10, 11]"),
            "max",
            "[10.0,10.0,11.0]",
        ),
        (with("burnIn", "7"), "burnIn", "7"),
    ] {
        let refused = run(&changed);
        assert!(
            !refused.status.success(),
            "{key}: resumed with a changed model"
        );
        let message = stderr(&refused);
        assert!(
            message.contains(&format!("key `{key}`")),
            "{key}: {message}"
        );
        assert!(
            message.contains(shown),
            "{key}: {shown} missing in {message}"
        );
        assert_eq!(mcmc_outputs(&dir.join("out")), before, "{key}");
    }
    // What cannot change the output may change.
    let calmer = text.replace("\"loggingRateSec\": 10", "\"loggingRateSec\": 30");
    let resumed = run(&calmer);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let mut after = mcmc_outputs(&dir.join("out"));
    let mut expected = before;
    // ganger-run.json records the configuration it ran with last.
    after.remove("ganger-run.json");
    expected.remove("ganger-run.json");
    assert_eq!(after, expected);
}
