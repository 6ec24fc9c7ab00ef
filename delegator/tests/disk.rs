//! The disk under a run: an unwritable output path is an error at start, naming it, before any
//! work is handed out; a full disk mid-run stops the run cleanly with the file named, and a
//! `--resume` once space is back writes what an uninterrupted run writes.
//!
//! Full disks are real: `/dev/full` (writes fail with ENOSPC) for anyone, and, as root, a tiny
//! tmpfs mounted in a private mount namespace (`unshare -m`) that fills up mid-run.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    assert_same_mcmc_outputs, delegator_bin, delegator_command, fault_free_mcmc, mcmc_config,
    run_trials, trial, worker_bin, WorkerProcess,
};
use serde_json::Value;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ganger-disk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits for `command` to exit, killing it after `limit`: a run that waited for workers instead
/// of failing at start would hang here.
fn output_within(command: &mut Command, limit: Duration) -> (Option<i32>, String) {
    let mut child: Child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}: it did not fail at start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A `run` for external workers that never come: only an error before any work can end it.
fn run_without_workers(output: &Path) -> Command {
    let mut command = delegator_command();
    command
        .args(["run", "--task", "square", "--range", "100", "--resume"])
        .args(["--bind", "tcp://127.0.0.1:0", "--output"])
        .arg(output)
        .env("GANGER_LOG", "warn");
    command
}

fn an_unwritable_run_output_is_an_error_at_start_naming_the_path() {
    let dir = temp_dir("run-unwritable");
    let file = dir.join("a-file");
    std::fs::write(&file, "in the way\n").unwrap();
    for output in [
        file.join("results.jsonl"),
        file.join("sub/results.jsonl"),
        PathBuf::from("/proc/ganger-no-such-folder/results.jsonl"),
    ] {
        let (code, stderr) =
            output_within(&mut run_without_workers(&output), Duration::from_secs(30));
        assert_eq!(code, Some(1), "{}: {stderr}", output.display());
        let parent = output.parent().unwrap().display().to_string();
        assert!(
            stderr.contains(&format!("cannot create the folder {parent}")),
            "{}: {stderr}",
            output.display()
        );
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "in the way\n");
}

fn an_unwritable_mcmc_output_folder_is_an_error_at_start_naming_it() {
    let dir = temp_dir("mcmc-unwritable");
    let file = dir.join("a-file");
    std::fs::write(&file, "in the way\n").unwrap();
    for output in [file.clone(), file.join("chains")] {
        let config = mcmc_config(&dir, "config.json", &output, 100);
        // Distributed, with no worker: it could only end by failing before the first round.
        let (code, stderr) = output_within(
            delegator_command()
                .args(["mcmc", "--bind", "tcp://127.0.0.1:0", "--config"])
                .arg(&config)
                .env("GANGER_LOG", "warn"),
            Duration::from_secs(30),
        );
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "{}: cannot create the output folder",
                output.display()
            )),
            "{stderr}"
        );
    }
}

fn a_run_writing_to_dev_full_stops_with_the_file_named_and_leaves_no_worker_busy() {
    let dir = temp_dir("dev-full");
    let output = dir.join("results.jsonl");
    std::os::unix::fs::symlink("/dev/full", &output).unwrap();
    let endpoint_file = dir.join("endpoint");
    let mut delegator = delegator_command()
        .args(["run", "--task", "square", "--range", "200000", "--resume"])
        .args(["--bind", "tcp://127.0.0.1:0", "--heartbeat-ms", "200"])
        .args(["--timeout-ms", "2000", "--output"])
        .arg(&output)
        .arg("--endpoint-file")
        .arg(&endpoint_file)
        .env("GANGER_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let endpoint = loop {
        match std::fs::read_to_string(&endpoint_file) {
            Ok(endpoint) if !endpoint.is_empty() => break endpoint,
            _ => {
                assert!(Instant::now() < deadline, "no endpoint");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    let status_file = dir.join("worker.json");
    let mut worker = WorkerProcess::spawn(
        &endpoint,
        &[
            "--threads",
            "1",
            "--status-file",
            status_file.to_str().unwrap(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while delegator.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the run did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let result = delegator.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot write {}: No space left on device",
            output.display()
        )),
        "{stderr}"
    );
    // The failure came mid-run (the worker had evaluated units), and the worker, alive, is
    // back to looking for a delegator: it holds no work of the stopped run.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: Value = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or(Value::Null);
        if status["state"] == "connecting" {
            assert!(
                status["units_done"].as_u64().unwrap_or(0) > 0,
                "the run failed before any work: {status}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker still serves: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(worker.is_running());
}

// ---------------------------------------------------------------------------------------------
// A real full disk: a tmpfs that fills up, in a mount namespace of the test's own.

/// Runs `script` with `sh` in a private mount namespace with a tmpfs of `size` mounted on
/// `$MNT`; `None` (with the reason printed) where that is not possible (not root, no unshare).
fn in_tmpfs(dir: &Path, size: &str, script: &str) -> Option<std::process::Output> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a tmpfs needs root");
        return None;
    }
    // Containers may forbid new mount namespaces even to root.
    match Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .output()
    {
        Ok(probe) if probe.status.success() => {}
        Ok(probe) => {
            eprintln!(
                "skipped: no mount namespace here: {}",
                String::from_utf8_lossy(&probe.stderr).trim()
            );
            return None;
        }
        Err(e) => {
            eprintln!("skipped: cannot run unshare: {e}");
            return None;
        }
    }
    let mount_point = dir.join("mnt");
    std::fs::create_dir_all(&mount_point).unwrap();
    let full_script =
        format!("mount -t tmpfs -o size={size} ganger-test \"$MNT\" || exit 77\n{script}");
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(full_script)
        .env("MNT", &mount_point)
        .env("DIR", dir)
        .env("DELEGATOR", delegator_bin())
        .env("WORKER", worker_bin())
        .env("GANGER_HTTP", "none")
        .env("GANGER_LOG", "warn")
        .output()
        .expect("unshare ran a moment ago");
    if output.status.code() == Some(77) {
        eprintln!(
            "skipped: cannot mount a tmpfs here: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        return None;
    }
    Some(output)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Each result line of `text` as index → line, checking that no index appears twice.
fn results_by_index(text: &str) -> BTreeMap<u64, Value> {
    let mut results = BTreeMap::new();
    for line in text.lines() {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let index = value["index"].as_u64().expect("an index");
        assert!(
            results.insert(index, value).is_none(),
            "index {index} twice"
        );
    }
    results
}

fn a_run_that_fills_the_disk_stops_cleanly_and_resumes_once_there_is_room() {
    let dir = temp_dir("tmpfs-run");
    let n = 20_000;
    let reference = dir.join("reference.jsonl");
    let fault_free = delegator_command()
        .args(["run", "--task", "square", "--range", &n.to_string()])
        .args(["--local-workers", "1", "--worker-threads", "1", "--output"])
        .arg(&reference)
        .arg("--worker-bin")
        .arg(worker_bin())
        .env("GANGER_LOG", "warn")
        .output()
        .unwrap();
    assert!(fault_free.status.success());
    let run = format!(
        "\"$DELEGATOR\" run --task square --range {n} --resume --local-workers 1 --worker-threads 1 --worker-bin \"$WORKER\" --output \"$MNT/out/results.jsonl\""
    );
    // 64 KiB hold the sidecar and a part of the 400-odd KiB of results.
    let script = format!(
        "{run} 2> \"$DIR/full.log\"; echo $? > \"$DIR/full.status\"
cp -r \"$MNT/out\" \"$DIR/after-full\"
mount -o remount,size=16m \"$MNT\" || exit 1
{run} 2> \"$DIR/resume.log\"; echo $? > \"$DIR/resume.status\"
cp -r \"$MNT/out\" \"$DIR/final\""
    );
    let Some(result) = in_tmpfs(&dir, "64k", &script) else {
        return;
    };
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let full_log = read(&dir.join("full.log"));
    assert_eq!(read(&dir.join("full.status")).trim(), "1", "{full_log}");
    let mount_point = dir.join("mnt");
    assert!(
        full_log.contains(&format!(
            "cannot write {}/out/results.jsonl: No space left on device",
            mount_point.display()
        )),
        "{full_log}"
    );
    // What the full disk kept is a valid journal: whole lines (a torn last one aside), each
    // index once, each result right.
    let kept = read(&dir.join("after-full/results.jsonl"));
    let whole_lines = &kept[..kept.rfind('\n').map_or(0, |i| i + 1)];
    let kept = results_by_index(whole_lines);
    assert!(!kept.is_empty() && kept.len() < n, "{} kept", kept.len());
    let expected = results_by_index(&read(&reference));
    for (index, line) in &kept {
        assert_eq!(line, &expected[index]);
    }
    let resume_log = read(&dir.join("resume.log"));
    assert_eq!(read(&dir.join("resume.status")).trim(), "0", "{resume_log}");
    assert_eq!(
        results_by_index(&read(&dir.join("final/results.jsonl"))),
        expected
    );
}

fn an_mcmc_run_that_fills_the_disk_stops_at_its_checkpoint_and_resumes_byte_identical() {
    let dir = temp_dir("tmpfs-mcmc");
    let samples = 4000;
    let reference = fault_free_mcmc(&dir, samples);
    let config = mcmc_config(&dir, "full.json", &dir.join("mnt/chains"), samples);
    let run = format!(
        "\"$DELEGATOR\" mcmc --resume --local-workers 1 --config \"{}\"",
        config.display()
    );
    // About 2 MB of chains against 1 MiB of disk.
    let script = format!(
        "{run} 2> \"$DIR/full.log\"; echo $? > \"$DIR/full.status\"
cp -r \"$MNT/chains\" \"$DIR/after-full\"
mount -o remount,size=16m \"$MNT\" || exit 1
{run} 2> \"$DIR/resume.log\"; echo $? > \"$DIR/resume.status\"
cp -r \"$MNT/chains\" \"$DIR/final\""
    );
    let Some(result) = in_tmpfs(&dir, "1m", &script) else {
        return;
    };
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let full_log = read(&dir.join("full.log"));
    assert_eq!(read(&dir.join("full.status")).trim(), "1", "{full_log}");
    assert!(full_log.contains("No space left on device"), "{full_log}");
    assert!(
        full_log.contains(&dir.join("mnt/chains").display().to_string()),
        "the error does not name the file: {full_log}"
    );
    assert!(
        !dir.join("after-full/summary.json").exists(),
        "the run finished despite the full disk"
    );
    let resume_log = read(&dir.join("resume.log"));
    assert_eq!(read(&dir.join("resume.status")).trim(), "0", "{resume_log}");
    assert_same_mcmc_outputs(&reference, &dir.join("final"));
}

/// The full-disk tests need a tmpfs of their own: where one cannot be mounted they are
/// reported as ignored, saying why.
fn main() -> std::process::ExitCode {
    let tmpfs = tmpfs_lacking();
    run_trials(vec![
        trial(
            "an_unwritable_run_output_is_an_error_at_start_naming_the_path",
            None,
            an_unwritable_run_output_is_an_error_at_start_naming_the_path,
        ),
        trial(
            "an_unwritable_mcmc_output_folder_is_an_error_at_start_naming_it",
            None,
            an_unwritable_mcmc_output_folder_is_an_error_at_start_naming_it,
        ),
        trial(
            "a_run_writing_to_dev_full_stops_with_the_file_named_and_leaves_no_worker_busy",
            None,
            a_run_writing_to_dev_full_stops_with_the_file_named_and_leaves_no_worker_busy,
        ),
        trial(
            "a_run_that_fills_the_disk_stops_cleanly_and_resumes_once_there_is_room",
            tmpfs.clone(),
            a_run_that_fills_the_disk_stops_cleanly_and_resumes_once_there_is_room,
        ),
        trial(
            "an_mcmc_run_that_fills_the_disk_stops_at_its_checkpoint_and_resumes_byte_identical",
            tmpfs,
            an_mcmc_run_that_fills_the_disk_stops_at_its_checkpoint_and_resumes_byte_identical,
        ),
    ])
}

/// Why a tmpfs cannot be mounted in a mount namespace of the test's own here, if it cannot.
fn tmpfs_lacking() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("root (to mount a tmpfs)".into());
    }
    let mount_point =
        std::env::temp_dir().join(format!("ganger-disk-probe-{}", std::process::id()));
    std::fs::create_dir_all(&mount_point).ok()?;
    let probe = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs -o size=64k ganger-probe \"$MNT\"")
        .env("MNT", &mount_point)
        .output();
    let _ = std::fs::remove_dir(&mount_point);
    match probe {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "a mount namespace with a tmpfs ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("unshare ({e})")),
    }
}
