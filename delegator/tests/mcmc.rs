//! `ganger-delegator mcmc` as a user runs it: Stateline configs, output files, determinism
//! across thread counts, and byte-identical resumption after `kill -9`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{delegator_command, resume_command, run_in_shell};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ganger-mcmc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small Stateline-style config writing to `output`.
fn config(dir: &Path, name: &str, output: &Path, samples_total: u64, extra: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            r#"{{
  "nJobTypes": 3,
  "nStacks": 2,
  "nTemperatures": 3,
  "nSamplesTotal": {samples_total},
  "min": [-10, -10, -10, -10],
  "max": [10, 10, 10, 10],
  "swapInterval": 10,
  "optimalAcceptRate": 0.24,
  "optimalSwapRate": 0.24,
  "outputPath": "{}",
  "loggingRateSec": 0.5,
  "useInitial": false,
  "initial": [0, 0, 0, 0]{extra}
}}"#,
            output.display()
        ),
    )
    .unwrap();
    path
}

fn mcmc(config: &Path, args: &[&str]) -> std::process::Output {
    delegator_command()
        .arg("mcmc")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("GANGER_LOG", "warn")
        .output()
        .expect("delegator runs")
}

fn read_outputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv" || e == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn assert_same_outputs(a: &Path, b: &Path) {
    let (left, right) = (read_outputs(a), read_outputs(b));
    assert_eq!(
        left.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        right.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for ((name, x), (_, y)) in left.iter().zip(&right) {
        assert!(
            x == y,
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

#[test]
fn a_stateline_config_runs_embedded_and_writes_chains_and_a_summary() {
    let dir = temp_dir("demo");
    let output = dir.join("out");
    let config = config(&dir, "demo.json", &output, 4000, "");
    let result = mcmc(&config, &["--local-workers", "2"]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    // nSamplesTotal counts cold samples over the stacks: 2000 steps per chain.
    for chain in 0..6 {
        let text = std::fs::read_to_string(output.join(format!("{chain}.csv"))).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("x0,x1,x2,x3,energy,sigma,beta,accepted,swap_type")
        );
        assert_eq!(lines.count(), 2000, "chain {chain}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(output.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["chains"].as_array().unwrap().len(), 6);
    let dims = summary["dimensions"].as_array().unwrap();
    assert_eq!(dims.len(), 4);
    for dim in dims {
        for key in [
            "mean",
            "sd",
            "q05",
            "q50",
            "q95",
            "rhat",
            "ess_bulk",
            "ess_tail",
            "mcse_mean",
        ] {
            assert!(dim[key].is_number(), "{key} in {dim}");
        }
    }
    // The console table went to stderr, the result to stdout: the posterior table, one row per
    // dimension with summary.json's numbers, then the time taken and how to plot.
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("GlbSwapRt") && stderr.contains("R-hat"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("ESS bulk"),
        "the posterior went to stderr: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        stdout.contains("ESS bulk") && stdout.contains("MCSE"),
        "{stdout}"
    );
    for dim in dims {
        let name = dim["name"].as_str().unwrap();
        let row: Vec<&str> = stdout
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|words| words.first() == Some(&name))
            .unwrap_or_else(|| panic!("no row for {name} in {stdout}"));
        let printed: f64 = row[1].parse().unwrap();
        let mean = dim["mean"].as_f64().unwrap();
        assert!(
            (printed - mean).abs() <= 0.5e-4,
            "{name}: {printed} against {mean}"
        );
    }
    assert!(
        stdout.contains("finished 2,000 steps × 6 chains: ") && stdout.contains(" s in all, "),
        "{stdout}"
    );
    let plot_line = stdout
        .lines()
        .find(|line| line.starts_with("plot:"))
        .unwrap_or_else(|| panic!("no plot command in {stdout}"));
    assert!(
        plot_line.contains(" plot ") && plot_line.contains(output.to_str().unwrap()),
        "{plot_line}"
    );
}

#[test]
fn the_same_seed_gives_identical_files_with_one_or_two_threads() {
    let dir = temp_dir("threads");
    let (one, two) = (dir.join("one"), dir.join("two"));
    let first = mcmc(
        &config(&dir, "one.json", &one, 3000, ""),
        &["--local-workers", "1"],
    );
    let second = mcmc(
        &config(&dir, "two.json", &two, 3000, ""),
        &["--local-workers", "2"],
    );
    assert!(first.status.success() && second.status.success());
    assert_same_outputs(&one, &two);
}

/// Waits until the run writing to `output` has written its first checkpoint; fails after 60 s.
fn wait_for_checkpoint(output: &Path) {
    let checkpoint = output.join("checkpoint.msgpack");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !checkpoint.exists() {
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn kill_9_then_resume_writes_exactly_what_an_uninterrupted_run_writes() {
    let dir = temp_dir("resume");
    let (whole, interrupted) = (dir.join("whole"), dir.join("interrupted"));
    let checkpoints = ",\n  \"checkpointIntervalSec\": 0.05";
    let samples = 40_000;
    let uninterrupted = mcmc(
        &config(&dir, "whole.json", &whole, samples, checkpoints),
        &["--local-workers", "1"],
    );
    assert!(uninterrupted.status.success());

    let config = config(&dir, "interrupted.json", &interrupted, samples, checkpoints);
    let mut child = delegator_command()
        .args(["mcmc", "--local-workers", "1", "--config"])
        .arg(&config)
        .env("GANGER_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it has checkpointed at least once, mid-run.
    wait_for_checkpoint(&interrupted);
    std::thread::sleep(Duration::from_millis(120));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !interrupted.join("summary.json").exists(),
        "the run finished before it could be killed; make it longer"
    );
    let resumed = mcmc(&config, &["--local-workers", "1", "--resume"]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_same_outputs(&whole, &interrupted);
}

#[test]
fn an_interrupted_run_prints_the_command_that_resumes_it_and_that_command_finishes_it() {
    let dir = temp_dir("interrupt");
    let (whole, interrupted) = (dir.join("whole"), dir.join("interrupted"));
    let checkpoints = ",\n  \"checkpointIntervalSec\": 0.05";
    let samples = 40_000;
    let uninterrupted = mcmc(
        &config(&dir, "whole.json", &whole, samples, checkpoints),
        &["--local-workers", "1"],
    );
    assert!(uninterrupted.status.success());
    let config = config(&dir, "interrupted.json", &interrupted, samples, checkpoints);
    let child = delegator_command()
        .args(["mcmc", "--local-workers", "1", "--overwrite", "--config"])
        .arg(&config)
        .env("GANGER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_checkpoint(&interrupted);
    // SAFETY: kill(2) on our own child with a valid signal number.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let result = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    let command = resume_command(&stderr);
    assert!(
        command.ends_with("--resume") && !command.contains("--overwrite"),
        "{command}"
    );
    run_in_shell(command);
    assert_same_outputs(&whole, &interrupted);
}

#[test]
fn bad_configs_are_rejected_naming_the_key_and_the_file() {
    let dir = temp_dir("bad");
    let path = dir.join("bad.json");
    std::fs::write(&path, r#"{"nJobTypes": 1, "nStacks": 0, "nTemperatures": 2, "nSamplesTotal": 10, "min": [0], "max": [1]}"#).unwrap();
    let result = mcmc(&path, &["--local-workers", "1"]);
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("bad.json") && stderr.contains("nStacks"),
        "{stderr}"
    );

    std::fs::write(&path, r#"{"nJobTypes": 1, "nStack": 1, "nTemperatures": 2, "nSamplesTotal": 10, "min": [0], "max": [1]}"#).unwrap();
    let stderr =
        String::from_utf8_lossy(&mcmc(&path, &["--local-workers", "1"]).stderr).into_owned();
    assert!(
        stderr.contains("unknown key `nStack`") && stderr.contains("nStacks"),
        "{stderr}"
    );

    // Any likelihood name is fine for remote workers, but local evaluation knows only built-ins.
    std::fs::write(&path, r#"{"nJobTypes": 1, "nStacks": 1, "nTemperatures": 2, "nSamplesTotal": 10, "min": [0], "max": [1], "likelihood": "plates"}"#).unwrap();
    let result = mcmc(&path, &["--local-workers", "1"]);
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("bad.json: key `likelihood`: \"plates\" is not built in")
            && stderr.contains("mcmc/plates/*"),
        "{stderr}"
    );
}

/// Starts `mcmc` on a free loopback port and returns it with its endpoint.
// The caller waits for the returned child; clippy cannot see past the return.
#[allow(clippy::zombie_processes)]
fn distributed(config: &Path, dir: &Path) -> (std::process::Child, String) {
    let endpoint_file = dir.join(format!(
        "{}.endpoint",
        config.file_stem().unwrap().to_string_lossy()
    ));
    let mut child = delegator_command()
        .args([
            "mcmc",
            "--bind",
            "tcp://127.0.0.1:0",
            "--heartbeat-ms",
            "200",
            "--timeout-ms",
            "2000",
        ])
        .arg("--endpoint-file")
        .arg(&endpoint_file)
        .arg("--config")
        .arg(config)
        .env("GANGER_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(endpoint) = std::fs::read_to_string(&endpoint_file) {
            if !endpoint.is_empty() {
                return (child, ganger_transport::local_endpoint(&endpoint));
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the delegator never wrote its endpoint");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn distributed_runs_write_the_embedded_runs_files_whatever_the_workers_do() {
    let dir = temp_dir("distributed");
    let samples = 4000;
    let embedded = dir.join("embedded");
    assert!(mcmc(
        &config(&dir, "embedded.json", &embedded, samples, ""),
        &["--local-workers", "2"]
    )
    .status
    .success());

    // One worker.
    let one = dir.join("one");
    let (mut delegator, endpoint) = distributed(&config(&dir, "one.json", &one, samples, ""), &dir);
    let _worker = common::WorkerProcess::spawn(&endpoint, &["--threads", "1"]);
    assert!(delegator.wait().unwrap().success());
    assert_same_outputs(&embedded, &one);

    // Three workers, one of them killed with -9 mid-run.
    let three = dir.join("three");
    let (mut delegator, endpoint) =
        distributed(&config(&dir, "three.json", &three, samples, ""), &dir);
    let mut workers: Vec<_> = (0..3)
        .map(|_| common::WorkerProcess::spawn(&endpoint, &["--threads", "1"]))
        .collect();
    let first_rows = three.join("0.csv");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&first_rows).map_or(0, |m| m.len()) < 20_000 {
        assert!(Instant::now() < deadline, "the run made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !three.join("summary.json").exists(),
        "the run ended before the kill"
    );
    workers[0].signal(libc::SIGKILL);
    assert_eq!(workers[0].wait(), None, "killed by the signal");
    assert!(delegator.wait().unwrap().success());
    assert_same_outputs(&embedded, &three);
}

/// The mean of column `dim` of the cold chains' rows after `burn_in`, read from the files.
fn cold_mean_after(
    output: &Path,
    n_stacks: usize,
    n_temps: usize,
    dim: usize,
    burn_in: usize,
) -> f64 {
    let mut values = Vec::new();
    for stack in 0..n_stacks {
        let text =
            std::fs::read_to_string(output.join(format!("{}.csv", stack * n_temps))).unwrap();
        for line in text.lines().skip(1 + burn_in) {
            values.push(line.split(',').nth(dim).unwrap().parse::<f64>().unwrap());
        }
    }
    values.iter().sum::<f64>() / values.len() as f64
}

#[test]
fn the_summary_covers_the_draws_after_the_burn_in_and_reports_the_ladder_and_evidence() {
    let dir = temp_dir("burn-in");
    let output = dir.join("out");
    let config = config(&dir, "run.json", &output, 4000, ",\n  \"burnIn\": 500");
    let result = mcmc(&config, &["--local-workers", "2"]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(output.join("summary.json")).unwrap())
            .unwrap();
    let draws = &summary["draws"];
    assert_eq!(draws["burn_in"], 500);
    assert_eq!(draws["first_step"], 501);
    assert_eq!(draws["last_step"], 2000);
    assert_eq!(draws["per_chain"], 1500);
    assert_eq!(draws["adaptation_steps"], 1000);
    for dim in 0..4 {
        let expected = cold_mean_after(&output, 2, 3, dim, 500);
        let mean = summary["dimensions"][dim]["mean"].as_f64().unwrap();
        assert!(
            (mean - expected).abs() < 1e-12,
            "x{dim}: {mean} vs {expected}"
        );
        assert_ne!(
            mean,
            cold_mean_after(&output, 2, 3, dim, 0),
            "the burn-in counted"
        );
    }
    let ladder = &summary["ladder"];
    assert!(
        ladder["barrier_from_swaps"].as_f64().unwrap() > 0.0,
        "{ladder}"
    );
    assert!(
        ladder["barrier_from_energies"].as_f64().unwrap() > 0.0,
        "{ladder}"
    );
    assert_eq!(ladder["swap_rates"].as_array().unwrap().len(), 2);
    // A 4-D standard Gaussian in [-10, 10]^4 with the box as its prior: log Z = 4 ln(√(2π) / 20).
    let evidence = &summary["evidence"];
    let (log_z, se) = (
        evidence["log_z"].as_f64().unwrap(),
        evidence["standard_error"].as_f64().unwrap(),
    );
    let exact = 4.0 * ((2.0 * std::f64::consts::PI).sqrt() / 20.0).ln();
    assert!(
        se > 0.0 && (log_z - exact).abs() < 5.0 * se + 0.05,
        "{log_z} ± {se} vs {exact}"
    );
    assert!(evidence["prior"]
        .as_str()
        .unwrap()
        .contains("uniform on the box"));
    // The result on stdout shows the posterior table, the ladder and the evidence.
    let stdout = String::from_utf8_lossy(&result.stdout);
    for part in [
        "posterior: 2 cold chain(s), steps 501-2000",
        "ladder: swap rates",
        "evidence: log Z =",
    ] {
        assert!(stdout.contains(part), "{part} missing from\n{stdout}");
    }
    // The run records its configuration, defaults filled in, beside its files.
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(output.join("ganger-run.json")).unwrap())
            .unwrap();
    assert_eq!(recorded["burnIn"], 500);
    assert_eq!(recorded["adaptationSteps"], 1000);
}

#[test]
fn a_sparse_ladder_and_too_few_draws_are_warned_about_in_the_summary_and_the_result() {
    let dir = temp_dir("warnings");
    let output = dir.join("out");
    // Two temperatures a million apart never swap, and 300 draws per chain after the burn-in
    // give nowhere near 400 ESS.
    let extra = ",\n  \"nTemperatures\": 2,\n  \"maxTemperature\": 1e6";
    let config = config(&dir, "run.json", &output, 1200, "")
        .to_string_lossy()
        .into_owned();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("  \"nTemperatures\": 3,\n", "");
    std::fs::write(&config, text.replace("\n}", &format!("{extra}\n}}"))).unwrap();
    let result = mcmc(Path::new(&config), &["--local-workers", "1"]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(output.join("summary.json")).unwrap())
            .unwrap();
    let warnings: Vec<&str> = summary["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("bulk ESS below 400 for x0")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("temperatures 0 and 1 swap only")
                && w.contains("temperatures (nTemperatures)")),
        "{warnings:?}"
    );
    let stdout = String::from_utf8_lossy(&result.stdout);
    for warning in warnings {
        assert!(
            stdout.contains(&format!("WARNING: {warning}")),
            "{warning} not printed"
        );
    }
}

#[test]
fn a_checkpoint_of_the_previous_sampler_is_refused_with_a_clear_message() {
    let dir = temp_dir("old-checkpoint");
    let output = dir.join("out");
    std::fs::create_dir_all(&output).unwrap();
    // A version-1 checkpoint carried no version: a MessagePack map {"lengths": []} stands in.
    let mut old = vec![0x81, 0xa7];
    old.extend_from_slice(b"lengths");
    old.push(0x90);
    std::fs::write(output.join("checkpoint.msgpack"), &old).unwrap();
    std::fs::write(
        output.join("0.csv"),
        "x0,x1,x2,x3,energy,sigma,beta,accepted,swap_type\n",
    )
    .unwrap();
    let config = config(&dir, "run.json", &output, 400, "");
    let result = mcmc(&config, &["--local-workers", "1", "--resume"]);
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("checkpoint.msgpack")
            && stderr.contains("written by sampler version 1")
            && stderr.contains("version 2"),
        "{stderr}"
    );
    // Nothing was touched.
    assert_eq!(
        std::fs::read(output.join("checkpoint.msgpack")).unwrap(),
        old
    );
    assert_eq!(
        std::fs::read_to_string(output.join("0.csv")).unwrap(),
        "x0,x1,x2,x3,energy,sigma,beta,accepted,swap_type\n"
    );
}

#[test]
fn sigterm_stops_a_run_waiting_for_workers_with_a_checkpoint() {
    let dir = temp_dir("no-workers");
    let output = dir.join("out");
    let (mut delegator, _endpoint) =
        distributed(&config(&dir, "lonely.json", &output, 4000, ""), &dir);
    // No worker ever comes: the run waits for its first evaluations.
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill(2) on our own child with a valid signal number.
    assert_eq!(
        unsafe { libc::kill(delegator.id() as i32, libc::SIGTERM) },
        0
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = delegator.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still waiting 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        status.code(),
        Some(1),
        "a stopped run is not a finished one"
    );
    assert!(output.join("checkpoint.msgpack").exists());
}
