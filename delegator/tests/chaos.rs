//! Faults, sustained: workers killed with `kill -9` again and again, stopped past the heartbeat
//! timeout and continued, partitioned from the delegator; each run must still write exactly
//! what a fault-free run with the same seed writes. Real processes, real sockets on 127.0.0.1
//! (or on veth addresses the partition test creates), real signals.
//!
//! The chaos itself is driven by a seeded generator; the seed is printed (set `GANGER_CHAOS_SEED`
//! to replay one).

mod common;
mod faults;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use faults::*;
use ganger_cluster::{Job, JobOptions, Secret};

fn a_killed_worker_is_noticed_by_its_closed_connection_not_a_timeout() {
    // Heartbeats and timeouts of minutes: only the closed connection can move units in time.
    let mut config = test_config();
    config.scheduler.heartbeat_ms = 60_000;
    config.scheduler.timeout_ms = 120_000;
    let delegator = start_delegator(config);
    let endpoint = delegator.local_endpoint();
    let mut victim = WorkerProcess::spawn(&endpoint, &["--threads", "1", "--name", "victim"]);
    let _survivor = WorkerProcess::spawn(&endpoint, &["--threads", "1", "--name", "survivor"]);
    wait_for(&delegator, Duration::from_secs(30), "two workers", |s| {
        s.workers.len() == 2
    });
    let n = 400;
    let job = delegator
        .submit::<_, u64>(
            "sleep",
            std::iter::repeat_n(5_000u64, n),
            JobOptions::default(),
        )
        .unwrap();
    wait_for(
        &delegator,
        Duration::from_secs(30),
        "the victim to hold units",
        |s| {
            s.workers
                .iter()
                .any(|w| w.name == "victim" && w.in_flight > 0)
        },
    );
    victim.signal(libc::SIGKILL);
    assert_eq!(victim.wait(), None, "killed by the signal");
    let stats = wait_for(
        &delegator,
        Duration::from_secs(30),
        "the victim's units to be requeued",
        |s| s.counters.requeued > 0,
    );
    assert_eq!(stats.counters.disconnects, 1, "{stats:#?}");
    assert_eq!(stats.counters.timeouts, 0, "{stats:#?}");
    assert_eq!(stats.workers.len(), 1);
    let mut seen = vec![false; n];
    for (index, result) in job {
        assert!(
            !std::mem::replace(&mut seen[index as usize], true),
            "unit {index} twice"
        );
        assert_eq!(result, Ok(5_000));
    }
    assert!(seen.iter().all(|s| *s), "every unit delivered");
    let stats = delegator.stats().unwrap();
    assert_eq!(stats.counters.timeouts, 0, "{stats:#?}");
    assert_eq!(stats.counters.completed, n as u64);
}

/// A small Stateline-style MCMC config writing to `output` (the seed is the config's default).
fn mcmc_config(dir: &TempDir, name: &str, output: &Path, samples: u64) -> PathBuf {
    let path = dir.join(name);
    let text = format!(
        r#"{{"nJobTypes": 3, "nStacks": 2, "nTemperatures": 3, "nSamplesTotal": {samples},
            "min": [-10, -10, -10, -10], "max": [10, 10, 10, 10], "swapInterval": 10,
            "optimalAcceptRate": 0.24, "optimalSwapRate": 0.24, "outputPath": "{}",
            "loggingRateSec": 0.5, "useInitial": false, "initial": [0, 0, 0, 0]}}"#,
        output.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The fault-free run's files, byte for byte, and among them its summary (the run finished).
fn assert_same_as_fault_free(reference: &Path, chaotic: &Path) {
    let names: Vec<String> = mcmc_outputs(reference).into_keys().collect();
    assert!(names.iter().any(|n| n == "summary.json"), "{names:?}");
    assert_same_mcmc_outputs(reference, chaotic);
}

fn mcmc_output_is_byte_identical_while_workers_are_killed_again_and_again() {
    let dir = TempDir::new("mcmc");
    let samples = 6000;
    let reference = dir.join("reference");
    let status = delegator_command()
        .args(["mcmc", "--local-workers", "2", "--config"])
        .arg(mcmc_config(&dir, "reference.json", &reference, samples))
        .env("GANGER_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );

    let chaotic = dir.join("chaotic");
    let config = mcmc_config(&dir, "chaotic.json", &chaotic, samples);
    run_while_killing(
        &dir,
        "mcmc",
        &["mcmc", "--config", config.to_str().unwrap()],
        "1",
        500,
    );
    assert_same_as_fault_free(&reference, &chaotic);
}

/// Runs the delegator with `args` (and heartbeats of 200 ms, a timeout of 2 s) beside three
/// workers of `threads` threads each, killing and replacing one at random every
/// 100–`max_gap_ms` ms until the delegator finishes; the run must outlast the first kill.
fn run_while_killing(dir: &TempDir, label: &str, args: &[&str], threads: &str, max_gap_ms: u64) {
    let mut args = args.to_vec();
    args.extend(["--heartbeat-ms", "200", "--timeout-ms", "2000"]);
    let mut delegator = Background::start(&args, &dir.0);
    let mut pool = Pool::start(&delegator.endpoint, 3, &["--threads", threads]);
    let mut rng = chaos_rng(label);
    let kills = kill_until(
        &mut pool,
        &mut rng,
        max_gap_ms,
        Duration::from_secs(300),
        || delegator.finished(),
    );
    eprintln!("{label}: {kills} workers killed");
    assert!(kills > 0, "the run ended before the first kill");
}

/// Inputs for the `sleep` task: 1–4 ms each, varied so outputs tell units apart.
fn sleep_inputs(n: u64) -> Vec<u64> {
    (0..n).map(|i| 1_000 + (i * 7_919) % 3_000).collect()
}

/// The `(index, output)` lines of a `run` output file, sorted; panics on an error line or a
/// repeated index.
fn run_results(path: &Path) -> Vec<(u64, serde_json::Value)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut results: Vec<(u64, serde_json::Value)> = text
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(value.get("error").is_none(), "a unit failed: {line}");
            (value["index"].as_u64().unwrap(), value["output"].clone())
        })
        .collect();
    results.sort_by_key(|(index, _)| *index);
    for pair in results.windows(2) {
        assert_ne!(pair[0].0, pair[1].0, "index {} written twice", pair[0].0);
    }
    results
}

fn job_chunks_arrive_each_once_while_workers_are_killed_again_and_again() {
    let dir = TempDir::new("run");
    let input = dir.join("input.jsonl");
    let lines: Vec<String> = sleep_inputs(6_000).iter().map(u64::to_string).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let input = input.to_str().unwrap().to_owned();

    let reference = dir.join("reference.jsonl");
    let status = delegator_command()
        .args([
            "run",
            "--task",
            "sleep",
            "--input",
            &input,
            "--local-workers",
            "1",
        ])
        .args(["--worker-threads", "8", "--output"])
        .arg(&reference)
        .env("GANGER_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );

    let chaotic = dir.join("chaotic.jsonl");
    run_while_killing(
        &dir,
        "run",
        &[
            "run",
            "--task",
            "sleep",
            "--input",
            &input,
            "--output",
            chaotic.to_str().unwrap(),
        ],
        "2",
        400,
    );
    let expected = run_results(&reference);
    assert_eq!(expected.len(), 6_000);
    assert_eq!(run_results(&chaotic), expected);
}

/// Every outcome of a job by index, each exactly once.
fn outcomes_by_index(job: Job<u64>, n: usize) -> Vec<u64> {
    let mut outputs = vec![None; n];
    for (index, result) in job {
        let slot = &mut outputs[index as usize];
        assert!(slot.is_none(), "unit {index} delivered twice");
        *slot = Some(result.expect("no unit fails"));
    }
    outputs
        .into_iter()
        .enumerate()
        .map(|(i, o)| o.unwrap_or_else(|| panic!("unit {i} never delivered")))
        .collect()
}

fn a_worker_stopped_past_its_timeout_and_continued_delivers_nothing_twice() {
    let mut config = test_config();
    config.scheduler.heartbeat_ms = 200;
    config.scheduler.timeout_ms = 1_000;
    let delegator = start_delegator(config);
    let endpoint = delegator.local_endpoint();
    let straggler = WorkerProcess::spawn(&endpoint, &["--threads", "2", "--name", "straggler"]);
    let _steady = WorkerProcess::spawn(&endpoint, &["--threads", "2", "--name", "steady"]);
    wait_for(&delegator, Duration::from_secs(30), "two workers", |s| {
        s.workers.len() == 2
    });
    let inputs = sleep_inputs(3_000);
    let n = inputs.len();
    let fault_free = delegator
        .submit::<_, u64>("sleep", inputs.clone(), JobOptions::default())
        .unwrap();
    let expected = outcomes_by_index(fault_free, n);
    let before = delegator.stats().unwrap().counters;

    let job = delegator
        .submit::<_, u64>("sleep", inputs, JobOptions::default())
        .unwrap();
    wait_for(
        &delegator,
        Duration::from_secs(30),
        "the straggler to hold units",
        |s| {
            s.counters.completed > before.completed + 200
                && s.workers
                    .iter()
                    .any(|w| w.name == "straggler" && w.in_flight > 0)
        },
    );
    straggler.signal(libc::SIGSTOP);
    wait_for(
        &delegator,
        Duration::from_secs(30),
        "the straggler's timeout",
        |s| s.counters.timeouts > before.timeouts,
    );
    // Past the timeout, with its units already requeued: it comes back with stale leases.
    std::thread::sleep(Duration::from_millis(500));
    straggler.signal(libc::SIGCONT);
    assert_eq!(outcomes_by_index(job, n), expected);
    let stats = wait_for(
        &delegator,
        Duration::from_secs(30),
        "the straggler to rejoin",
        |s| s.workers.iter().any(|w| w.name == "straggler"),
    );
    assert_eq!(stats.counters.timeouts, before.timeouts + 1, "{stats:#?}");
    assert!(stats.counters.requeued > before.requeued, "{stats:#?}");
    assert_eq!(stats.counters.completed, 2 * n as u64);
    eprintln!(
        "straggler: late results accepted {}, duplicates dropped {}, frames from the dropped \
         registration {}",
        stats.counters.late_accepted - before.late_accepted,
        stats.counters.duplicates - before.duplicates,
        stats.dropped.unregistered,
    );
}

fn a_partitioned_worker_is_dropped_at_its_timeout_and_rejoins_when_the_link_returns() {
    let Some(netns) = Netns::create() else {
        return;
    };
    // The veth address is not loopback, so the cluster is secured as a real one would be: the
    // partition is also one of an encrypted session.
    let dir = TempDir::new("partition");
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, "a cluster secret for the partition test").unwrap();
    let secret_file = secret_file.to_str().unwrap().to_owned();
    let mut config = test_config();
    config.bind = format!("tcp://{}:0", netns.outer_address);
    config.secret = Some(Secret::new(&std::fs::read(&secret_file).unwrap()).unwrap());
    config.scheduler.heartbeat_ms = 200;
    config.scheduler.timeout_ms = 1_000;
    let delegator = start_delegator(config);
    let endpoint = delegator.endpoint().to_owned();
    let _inside = netns.spawn_worker(
        &endpoint,
        &[
            "--threads",
            "2",
            "--name",
            "inside",
            "--secret-file",
            &secret_file,
        ],
    );
    wait_for(
        &delegator,
        Duration::from_secs(30),
        "the worker inside",
        |s| s.workers.len() == 1,
    );
    let inputs = sleep_inputs(3_000);
    let n = inputs.len();
    let fault_free = delegator
        .submit::<_, u64>("sleep", inputs.clone(), JobOptions::default())
        .unwrap();
    let expected = outcomes_by_index(fault_free, n);
    let _outside = WorkerProcess::spawn(
        &endpoint,
        &[
            "--threads",
            "2",
            "--name",
            "outside",
            "--secret-file",
            &secret_file,
        ],
    );
    wait_for(
        &delegator,
        Duration::from_secs(30),
        "the worker outside",
        |s| s.workers.len() == 2,
    );
    let before = delegator.stats().unwrap().counters;

    let job = delegator
        .submit::<_, u64>("sleep", inputs, JobOptions::default())
        .unwrap();
    wait_for(
        &delegator,
        Duration::from_secs(30),
        "the inside worker to hold units",
        |s| {
            s.counters.completed > before.completed + 200
                && s.workers
                    .iter()
                    .any(|w| w.name == "inside" && w.in_flight > 0)
        },
    );
    netns.set_link(false);
    let stats = wait_for(
        &delegator,
        Duration::from_secs(30),
        "the partition's timeout",
        |s| s.counters.timeouts > before.timeouts,
    );
    // Silent: no connection closed, so the heartbeat timeout (not a disconnect) noticed it.
    assert_eq!(stats.counters.disconnects, before.disconnects, "{stats:#?}");
    assert!(stats.counters.requeued > before.requeued, "{stats:#?}");
    netns.set_link(true);
    assert_eq!(outcomes_by_index(job, n), expected);
    wait_for(
        &delegator,
        Duration::from_secs(60),
        "the inside worker to rejoin",
        |s| s.workers.iter().any(|w| w.name == "inside"),
    );
}

/// The partition test needs root and `ip` for a network namespace of its own: without them it
/// is reported as ignored, saying why (with `GANGER_REQUIRE_NETNS=1`, it fails instead).
fn main() -> std::process::ExitCode {
    run_trials(vec![
        trial(
            "a_killed_worker_is_noticed_by_its_closed_connection_not_a_timeout",
            None,
            a_killed_worker_is_noticed_by_its_closed_connection_not_a_timeout,
        ),
        trial(
            "mcmc_output_is_byte_identical_while_workers_are_killed_again_and_again",
            None,
            mcmc_output_is_byte_identical_while_workers_are_killed_again_and_again,
        ),
        trial(
            "job_chunks_arrive_each_once_while_workers_are_killed_again_and_again",
            None,
            job_chunks_arrive_each_once_while_workers_are_killed_again_and_again,
        ),
        trial(
            "a_worker_stopped_past_its_timeout_and_continued_delivers_nothing_twice",
            None,
            a_worker_stopped_past_its_timeout_and_continued_delivers_nothing_twice,
        ),
        trial(
            "a_partitioned_worker_is_dropped_at_its_timeout_and_rejoins_when_the_link_returns",
            Netns::lacking(),
            a_partitioned_worker_is_dropped_at_its_timeout_and_rejoins_when_the_link_returns,
        ),
    ])
}
