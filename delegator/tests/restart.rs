//! Delegator restarts: `kill -9` of a real `ganger-delegator` mid-run, then the same command with
//! `--resume`, for job chunks and for MCMC, while external `ganger-worker`s stay up and rejoin
//! the new delegator. Each scenario's output equals a fault-free run's.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    assert_same_mcmc_outputs, delegator_command, fault_free_mcmc, mcmc_config, wait_until,
    wait_with_limit, worker_bin, WorkerProcess,
};
use rand::{Rng, SeedableRng};
use serde_json::Value;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ganger-restart-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A seed for the moments of the kills: `GANGER_TEST_SEED` to replay a failure, else the clock.
fn seed() -> u64 {
    let seed = std::env::var("GANGER_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill moments seeded with GANGER_TEST_SEED={seed}");
    seed
}

/// Inputs of a job that takes a few seconds on one two-thread worker: `sleep` returns its input,
/// so every output tells which input it belongs to. 1 to 3 ms each: the worker runs even a
/// small batch on both threads, so the run takes about n ms.
fn sleep_inputs(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("inputs.jsonl");
    let text: String = (0..n)
        .map(|i| format!("{}\n", 1000 + (i * 7) % 2000))
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// Each result line of `path` as index → line, checking that no index appears twice.
fn results_by_index(path: &Path) -> BTreeMap<u64, Value> {
    let mut results = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let index = value["index"].as_u64().expect("an index");
        assert!(
            results.insert(index, value).is_none(),
            "index {index} appears twice in {}",
            path.display()
        );
    }
    results
}

/// Whole lines in `path` so far.
fn lines_in(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

/// The `job done` log line's fields from a JSON log.
fn job_done_fields(stderr: &str) -> Value {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == "job done")
        .unwrap_or_else(|| panic!("no `job done` line in {stderr}"))["fields"]
        .clone()
}

/// Reads the endpoint a delegator writes to `file` once listening.
fn endpoint_from(file: &Path, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(endpoint) = std::fs::read_to_string(file) {
            if !endpoint.is_empty() {
                return endpoint;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the delegator exited before listening"
        );
        assert!(
            Instant::now() < deadline,
            "no endpoint in {}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `ganger-delegator run` over `inputs` into `output` with `--resume`, bound to `bind`, for
/// external workers; its stderr is a JSON log in `log`.
fn run_command(bind: &str, inputs: &Path, output: &Path, ordered: bool, log: &Path) -> Command {
    let mut command = delegator_command();
    command
        .args(["run", "--task", "sleep", "--resume", "--bind", bind])
        .args(["--heartbeat-ms", "200", "--timeout-ms", "2000"])
        .args(["--log-format", "json", "--input"])
        .arg(inputs)
        .arg("--output")
        .arg(output)
        .env("GANGER_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    if ordered {
        command.arg("--ordered");
    }
    command
}

/// Runs a job with `--resume`, kills the delegator with -9 `kills` times at random moments
/// once results were written, restarts the same command each time, and checks the final output
/// against a fault-free run's. Returns the final output's path.
fn kill_and_resume_run(name: &str, ordered: bool, kills: usize) -> (PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let n = 3000;
    let inputs = sleep_inputs(&dir, n);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());

    // The fault-free reference, on local workers.
    let reference = dir.join("reference.jsonl");
    let mut fault_free = delegator_command()
        .args(["run", "--task", "sleep", "--local-workers", "2"])
        .args(["--worker-threads", "4", "--input"])
        .arg(&inputs)
        .arg("--output")
        .arg(&reference)
        .arg("--worker-bin")
        .arg(worker_bin())
        .args(if ordered { &["--ordered"][..] } else { &[] })
        .env("GANGER_LOG", "warn")
        .spawn()
        .unwrap();
    assert!(wait_with_limit(&mut fault_free, Duration::from_secs(120)).success());

    let output = dir.join("out/results.jsonl");
    let journal = if ordered {
        dir.join("out/results.jsonl.journal")
    } else {
        output.clone()
    };
    let endpoint_file = dir.join("endpoint");
    let first_log = dir.join("log-0");
    let mut delegator = run_command("tcp://127.0.0.1:0", &inputs, &output, ordered, &first_log)
        .arg("--endpoint-file")
        .arg(&endpoint_file)
        .spawn()
        .unwrap();
    let endpoint = endpoint_from(&endpoint_file, &mut delegator);
    // The workers outlive every delegator and must rejoin each new one on their own.
    let mut workers: Vec<WorkerProcess> = (0..1)
        .map(|_| {
            WorkerProcess::spawn(
                &endpoint,
                &["--threads", "2", "--reconnect-max-secs", "0.5"],
            )
        })
        .collect();
    let mut seen = 0;
    for kill in 0..kills {
        // At least one more whole line than before, then a random moment later.
        wait_until(Duration::from_secs(60), "results in the journal", || {
            lines_in(&journal) > seen
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
        assert!(
            delegator.try_wait().unwrap().is_none(),
            "the run finished before kill {kill}; make it longer"
        );
        delegator.kill().unwrap(); // SIGKILL
        delegator.wait().unwrap();
        seen = lines_in(&journal);
        eprintln!("kill {kill}: {seen} whole lines in {}", journal.display());
        assert!(seen < n, "everything was written before kill {kill}");
        let log = dir.join(format!("log-{}", kill + 1));
        delegator = run_command(&endpoint, &inputs, &output, ordered, &log)
            .spawn()
            .unwrap();
    }
    let status = wait_with_limit(&mut delegator, Duration::from_secs(120));
    let log = std::fs::read_to_string(dir.join(format!("log-{kills}"))).unwrap();
    assert!(status.success(), "{log}");
    for worker in &mut workers {
        assert!(worker.is_running(), "a worker did not survive the restarts");
    }

    // Every result once, equal to the fault-free run's.
    let (expected, actual) = (results_by_index(&reference), results_by_index(&output));
    assert_eq!(actual.len(), n);
    assert_eq!(actual, expected);
    // The journal was used: the last delegator evaluated only what was missing.
    let fields = job_done_fields(&log);
    let (already, evaluated) = (
        fields["already_done"].as_u64().unwrap(),
        fields["evaluated"].as_u64().unwrap(),
    );
    assert!(already > 0, "the last run found no results: {fields}");
    assert_eq!(already + evaluated, n as u64, "{fields}");
    (reference, output)
}

#[test]
fn run_killed_twice_then_resumed_writes_each_result_once_and_redoes_only_the_missing() {
    kill_and_resume_run("unordered", false, 2);
}

#[test]
fn an_ordered_run_killed_then_resumed_writes_the_fault_free_bytes() {
    let (reference, output) = kill_and_resume_run("ordered", true, 1);
    assert_eq!(
        std::fs::read(&reference).unwrap(),
        std::fs::read(&output).unwrap(),
        "the resumed ordered output differs from the fault-free one"
    );
    assert!(
        !output.with_file_name("results.jsonl.journal").exists(),
        "the journal of a finished ordered run is left behind"
    );
}

#[test]
fn resuming_with_other_inputs_is_refused_naming_the_file() {
    let dir = temp_dir("mismatch");
    let output = dir.join("results.jsonl");
    let run = |range: &str| {
        delegator_command()
            .args(["run", "--task", "square", "--range", range, "--resume"])
            .args(["--local-workers", "1", "--worker-threads", "1", "--output"])
            .arg(&output)
            .arg("--worker-bin")
            .arg(worker_bin())
            .env("GANGER_LOG", "warn")
            .output()
            .unwrap()
    };
    assert!(run("100").status.success());
    let before = std::fs::read(&output).unwrap();
    let refused = run("200");
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot resume: {}.run.json belongs to another run (task square, 100 inputs",
            output.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&output).unwrap(),
        before,
        "a refused resume changed the output"
    );
    // The same run again finds everything done and leaves the output as it was.
    let again = run("100");
    assert!(again.status.success());
    assert_eq!(std::fs::read(&output).unwrap(), before);
}

// ---------------------------------------------------------------------------------------------
// MCMC

fn mcmc_command(config: &Path, bind: &str) -> Command {
    let mut command = delegator_command();
    command
        .args(["mcmc", "--resume", "--bind", bind])
        .args(["--heartbeat-ms", "200", "--timeout-ms", "2000", "--config"])
        .arg(config)
        .env("GANGER_LOG", "warn")
        .stderr(Stdio::null());
    command
}

#[test]
fn mcmc_on_workers_killed_at_random_moments_then_resumed_writes_the_fault_free_bytes() {
    let dir = temp_dir("mcmc");
    let samples = 3000;
    let reference = fault_free_mcmc(&dir, samples);

    let output = dir.join("killed");
    let config = mcmc_config(&dir, "killed.json", &output, samples);
    let endpoint_file = dir.join("endpoint");
    let mut delegator = mcmc_command(&config, "tcp://127.0.0.1:0")
        .arg("--endpoint-file")
        .arg(&endpoint_file)
        .spawn()
        .unwrap();
    let endpoint = endpoint_from(&endpoint_file, &mut delegator);
    let mut workers: Vec<WorkerProcess> = (0..2)
        .map(|_| {
            WorkerProcess::spawn(
                &endpoint,
                &["--threads", "1", "--reconnect-max-secs", "0.5"],
            )
        })
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let checkpoint = output.join("checkpoint.msgpack");
    for kill in 0..3 {
        let written = std::fs::metadata(&checkpoint).map_or(0, |m| m.len());
        // After a checkpoint newer than the last kill's, at a random moment.
        let previous = std::fs::metadata(&checkpoint)
            .and_then(|m| m.modified())
            .ok();
        wait_until(Duration::from_secs(60), "a new checkpoint", || {
            let modified = std::fs::metadata(&checkpoint)
                .and_then(|m| m.modified())
                .ok();
            modified.is_some() && modified != previous
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(0..150)));
        if delegator.try_wait().unwrap().is_some() {
            assert!(
                kill > 0,
                "the run finished before the first kill; make it longer"
            );
            eprintln!("the run finished before kill {kill} (checkpoint of {written} bytes)");
            break;
        }
        delegator.kill().unwrap(); // SIGKILL
        delegator.wait().unwrap();
        eprintln!("kill {kill} done");
        delegator = mcmc_command(&config, &endpoint).spawn().unwrap();
    }
    assert!(wait_with_limit(&mut delegator, Duration::from_secs(180)).success());
    for worker in &mut workers {
        assert!(worker.is_running(), "a worker did not survive the restarts");
    }
    assert_same_mcmc_outputs(&reference, &output);
}
