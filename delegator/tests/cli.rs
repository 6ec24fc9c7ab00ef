//! The `ganger-delegator run` command as a user runs it: JSON lines in, JSON lines out,
//! local worker processes, exit status.

mod common;

use common::*;
use serde_json::Value;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ganger-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> std::process::Output {
    delegator_command()
        .args(args)
        .arg("--worker-bin")
        .arg(worker_bin())
        .env("GANGER_LOG", "warn")
        .output()
        .expect("delegator runs")
}

#[test]
fn run_maps_a_task_over_json_lines_and_tags_each_result_with_its_index() {
    let dir = temp_dir("jsonl");
    let input = dir.join("inputs.jsonl");
    std::fs::write(&input, "3\n\n-4\n2.5\n\"seven\"\n").unwrap();
    let output = dir.join("out/results.jsonl");
    let result = run(&[
        "run",
        "--task",
        "square",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--ordered",
        "--local-workers",
        "2",
        "--worker-threads",
        "1",
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let lines: Vec<Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0], serde_json::json!({"index": 0, "output": 9}));
    assert_eq!(lines[1], serde_json::json!({"index": 1, "output": 16}));
    assert_eq!(lines[2], serde_json::json!({"index": 2, "output": 6.25}));
    assert_eq!(lines[3]["index"], 3);
    let error = lines[3]["error"]
        .as_str()
        .expect("a failed unit is reported, not skipped");
    assert!(error.contains("failed 3 time(s)"), "{error}");
    // In the user's words, not the decoder's.
    assert!(
        error.contains("square expects a number, got the string \"seven\""),
        "{error}"
    );
}

#[test]
fn run_over_a_range_writes_every_index_once() {
    let dir = temp_dir("range");
    let output = dir.join("results.jsonl");
    let result = run(&[
        "run",
        "--task",
        "square",
        "--range",
        "20000",
        "--output",
        output.to_str().unwrap(),
        "--local-workers",
        "2",
        "--worker-threads",
        "1",
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let mut seen = vec![false; 20000];
    for line in std::fs::read_to_string(&output).unwrap().lines() {
        let value: Value = serde_json::from_str(line).unwrap();
        let index = value["index"].as_u64().unwrap() as usize;
        assert!(!std::mem::replace(&mut seen[index], true));
        assert_eq!(value["output"].as_u64().unwrap(), (index * index) as u64);
    }
    assert!(seen.iter().all(|s| *s));
}

/// The image sets `GANGER_STATUS_FILE` for worker containers; local workers started by a
/// delegator in such a container must not all write (and then claim) that one file.
#[test]
fn local_workers_do_not_inherit_the_status_file() {
    let dir = temp_dir("status-file");
    let status_file = dir.join("ganger-worker.json");
    let result = delegator_command()
        .args(["run", "--task", "square", "--range", "100", "--output"])
        .arg(dir.join("results.jsonl"))
        .args([
            "--local-workers",
            "2",
            "--worker-threads",
            "1",
            "--worker-bin",
        ])
        .arg(worker_bin())
        .env("GANGER_LOG", "warn")
        .env("GANGER_STATUS_FILE", &status_file)
        .output()
        .expect("delegator runs");
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(
        !status_file.exists(),
        "a local worker wrote {}",
        status_file.display()
    );
}

#[test]
fn a_malformed_input_file_is_named_with_its_line() {
    let dir = temp_dir("bad");
    let input = dir.join("inputs.jsonl");
    std::fs::write(&input, "1\n2\n{oops\n").unwrap();
    let result = run(&[
        "run",
        "--task",
        "square",
        "--input",
        input.to_str().unwrap(),
    ]);
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("inputs.jsonl:3: not a JSON value"),
        "{stderr}"
    );
}

#[test]
fn bad_settings_are_rejected_with_the_flag_named() {
    let result = run(&[
        "run",
        "--task",
        "noop",
        "--range",
        "1",
        "--timeout-ms",
        "100",
        "--heartbeat-ms",
        "500",
    ]);
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("--timeout-ms (100) must exceed --heartbeat-ms (500)"),
        "{stderr}"
    );
}

#[test]
fn logs_are_json_lines_for_log_shippers_and_end_with_the_final_progress() {
    let dir = temp_dir("json-log");
    let output = dir.join("results.jsonl");
    let result = delegator_command()
        .args([
            "run",
            "--task",
            "square",
            "--range",
            "2000",
            "--local-workers",
            "1",
        ])
        .args(["--worker-threads", "1", "--log-format", "json", "--output"])
        .arg(&output)
        .arg("--worker-bin")
        .arg(worker_bin())
        .env("GANGER_LOG", "info")
        .output()
        .expect("delegator runs");
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    // Not a terminal: no progress bar, but a progress line with the final figures.
    let progress = lines
        .iter()
        .rev()
        .find(|l| l["fields"]["message"] == "progress")
        .unwrap_or_else(|| panic!("no progress line in {stderr}"));
    assert_eq!(progress["fields"]["done"], 2000, "{progress}");
    assert_eq!(progress["fields"]["total"], 2000, "{progress}");
    assert_eq!(progress["fields"]["percent"], "100.0", "{progress}");
}

#[test]
fn the_dashboard_listens_on_loopback_unless_asked_otherwise() {
    let dir = temp_dir("http-default");
    let address_file = dir.join("http-address");
    let output = delegator_command()
        .args([
            "run",
            "--task",
            "square",
            "--range",
            "3",
            "--local-workers",
            "1",
        ])
        .arg("--http-address-file")
        .arg(&address_file)
        .env_remove("GANGER_HTTP")
        .env("GANGER_LOG", "warn")
        .output()
        .expect("delegator runs");
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let address = std::fs::read_to_string(&address_file).unwrap_or_else(|_| {
        panic!("no HTTP server started on the default address (port 8080 taken?): {stderr}")
    });
    let address: std::net::SocketAddr = address.trim().parse().expect("an address");
    assert!(address.ip().is_loopback(), "the default serves {address}");
    assert_eq!(address.port(), 8080);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_task_no_local_worker_serves_fails_at_once_naming_what_they_serve() {
    let result = run(&[
        "run",
        "--task",
        "sqaure",
        "--range",
        "10",
        "--local-workers",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no connected worker serves the task `sqaure`"),
        "{stderr}"
    );
    // What the built-in worker serves, so that the misspelling shows.
    assert!(
        stderr.contains("square") && stderr.contains("sleep"),
        "{stderr}"
    );
    assert!(result.stdout.is_empty(), "results for a task nobody ran");
}

#[test]
fn where_other_workers_could_join_an_unserved_task_fails_after_its_timeout() {
    // An explicit bind: a worker serving the task could still come, so the run waits.
    let result = run(&[
        "run",
        "--task",
        "sqaure",
        "--range",
        "10",
        "--local-workers",
        "1",
        "--bind",
        "tcp://127.0.0.1:0",
        "--unserved-timeout-secs",
        "2",
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no connected worker serves the task `sqaure`")
            && stderr.contains("(--unserved-timeout-secs)"),
        "{stderr}"
    );
}

/// The help of `ganger-delegator ARGS --help`, as a user sees it.
fn help(args: &[&str]) -> String {
    let output = delegator_command()
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn each_subcommand_shows_only_the_flags_it_reads_under_headings_within_100_columns() {
    for sub in ["plot", "probe", "secret"] {
        let text = help(&[sub]);
        assert!(
            !text.contains("--bind") && !text.contains("--max-frame-bytes"),
            "{sub}:\n{text}"
        );
    }
    assert!(
        help(&["probe"]).contains("--http <HTTP>"),
        "probe reads --http"
    );
    let run = help(&["run"]);
    for heading in [
        "Cluster:",
        "Workers on this machine:",
        "Scheduling:",
        "Limits:",
        "Watching:",
    ] {
        assert!(
            run.contains(&format!("\n{heading}\n")),
            "no {heading} in:\n{run}"
        );
    }
    // The tasks a worker serves, examples, and sizes in units.
    for expected in [
        "square",
        "panic-if-odd",
        "Examples:",
        "[default: 16MiB]",
        "[default: 1GiB]",
    ] {
        assert!(run.contains(expected), "no {expected:?} in:\n{run}");
    }
    assert!(help(&["mcmc"]).contains("rosenbrock"));
    for args in [
        &[][..],
        &["run"],
        &["mcmc"],
        &["plot"],
        &["probe"],
        &["secret"],
    ] {
        for line in help(args).lines() {
            assert!(line.chars().count() <= 100, "{args:?}: {line:?}");
        }
    }
    // The flags the help leaves out are still accepted where they change nothing.
    let dir = temp_dir("plot-flags");
    let plot = delegator_command()
        .args(["plot", dir.to_str().unwrap(), "--bind", "tcp://127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&plot.stderr);
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
}

#[test]
fn sizes_take_units_and_a_wrong_unit_is_named() {
    let result = run(&[
        "run",
        "--task",
        "square",
        "--range",
        "3",
        "--local-workers",
        "1",
        "--max-frame-bytes",
        "64KiB",
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&result.stdout).lines().count(), 3);
    let result = run(&[
        "run",
        "--task",
        "square",
        "--range",
        "3",
        "--local-workers",
        "1",
        "--max-frame-bytes",
        "16MB",
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--max-frame-bytes") && stderr.contains("`MB`"),
        "{stderr}"
    );
}

#[test]
fn an_interrupted_run_prints_the_command_that_resumes_it_and_that_finishes_the_job() {
    let dir = temp_dir("interrupt");
    let input = dir.join("inputs.jsonl");
    // 600 units of 5 ms on one thread: about 3 s, interrupted well before.
    std::fs::write(&input, "5000\n".repeat(600)).unwrap();
    let output = dir.join("out.jsonl");
    let child = delegator_command()
        .args(["run", "--task", "sleep", "--input", input.to_str().unwrap()])
        .args(["--output", output.to_str().unwrap()])
        .args([
            "--local-workers",
            "1",
            "--worker-threads",
            "1",
            "--batch-size",
            "4",
        ])
        .arg("--worker-bin")
        .arg(worker_bin())
        .env("GANGER_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_to_string(&output).map_or(0, |t| t.lines().count()) < 20 {
        assert!(std::time::Instant::now() < deadline, "no results appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child with a valid signal number.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let result = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    let command = resume_command(&stderr);
    assert!(stderr.contains("interrupted after "), "{stderr}");
    run_in_shell(command);
    let mut indices: Vec<u64> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..600).collect::<Vec<u64>>(), "every result once");
}
