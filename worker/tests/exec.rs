//! `ganger-worker --exec`, end to end: a delegator in this process, real `ganger-worker`
//! processes running real programs (Python scripts) on stdin/stdout, real sockets on
//! 127.0.0.1, real signals and `kill -9`.
//!
//! The programs are Python: a test is reported as ignored, naming what is missing, when
//! `python3` (or, for the MessagePack framing, its `msgpack` module) is, unless
//! `GANGER_REQUIRE_PYTHON=1` makes that a failure. Every wait polls until a condition holds and gives up only after a
//! generous deadline (a guard against hangs, not a timing assertion).

use std::path::Path;
use std::process::{Command, Stdio};

use ganger_cluster::{Delegator, DelegatorConfig, JobOptions, SchedulerConfig, UnitError};
use ganger_worker::WorkerStatus;

mod common;
use common::{
    path_str, poll, python_trial, repository_root, trial, TempDir, WorkerProcess, WORKER,
};

fn main() -> std::process::ExitCode {
    common::run_trials(vec![
        python_trial(
            "the_conformance_child_gives_correct_results_in_json_and_stops_on_sigterm",
            &[],
            the_conformance_child_gives_correct_results_in_json_and_stops_on_sigterm,
        ),
        python_trial(
            "the_conformance_child_gives_correct_results_in_msgpack_and_stops_on_sigterm",
            &["msgpack"],
            the_conformance_child_gives_correct_results_in_msgpack_and_stops_on_sigterm,
        ),
        python_trial(
            "the_example_likelihood_evaluates_mcmc_units",
            &[],
            the_example_likelihood_evaluates_mcmc_units,
        ),
        python_trial(
            "a_program_that_crashes_on_a_unit_is_restarted_and_the_unit_retried",
            &[],
            a_program_that_crashes_on_a_unit_is_restarted_and_the_unit_retried,
        ),
        python_trial(
            "a_program_that_exits_while_idle_is_restarted",
            &[],
            a_program_that_exits_while_idle_is_restarted,
        ),
        python_trial(
            "a_poison_unit_fails_naming_the_exit_status_and_the_rest_succeed",
            &[],
            a_poison_unit_fails_naming_the_exit_status_and_the_rest_succeed,
        ),
        python_trial(
            "a_hanging_program_is_killed_and_restarted_after_the_timeout",
            &[],
            a_hanging_program_is_killed_and_restarted_after_the_timeout,
        ),
        python_trial(
            "killing_the_worker_leaves_no_program_behind",
            &[],
            killing_the_worker_leaves_no_program_behind,
        ),
        trial(
            "a_command_that_cannot_start_is_an_error_naming_it",
            None,
            a_command_that_cannot_start_is_an_error_naming_it,
        ),
    ])
}

/// The conformance child in the JSON framing: correct results, a graceful stop on SIGTERM.
fn the_conformance_child_gives_correct_results_in_json_and_stops_on_sigterm() {
    conformance_child("json");
}

/// The same in the MessagePack framing.
fn the_conformance_child_gives_correct_results_in_msgpack_and_stops_on_sigterm() {
    conformance_child("msgpack");
}

fn conformance_child(framing: &str) {
    let dir = TempDir::new("exec", &format!("conformance-{framing}"));
    let file = dir.0.join("worker.json");
    let delegator = start_delegator(3);
    let child = repository_root().join("examples/exec/conformance_child.py");
    let command = format!("python3 {} --framing {framing}", child.display());
    let mut worker = exec_worker(
        &delegator.local_endpoint(),
        &command,
        &[
            "--exec-framing",
            framing,
            "--job-types",
            "noop,sleep,panic-if-odd",
            "--status-file",
            path_str(&file),
        ],
    );
    let n = 200;
    let outcomes = delegator
        .submit::<_, i64>("panic-if-odd", 0..n, JobOptions::default())
        .unwrap()
        .collect_ordered()
        .unwrap();
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Ok(value) => assert!(i % 2 == 0 && *value == i as i64, "{i}: {value}"),
            Err(UnitError::Failed(failure)) => {
                assert!(i % 2 == 1, "{i}: {failure}");
                assert!(failure.to_string().contains(&format!("input {i} is odd")));
            }
            Err(e) => panic!("{i}: {e}"),
        }
    }
    let inputs: Vec<(String, Vec<f64>)> = (0..50)
        .map(|i| (format!("unit {i}\n"), vec![i as f64 + 0.5, -1e300]))
        .collect();
    let echoed = delegator
        .submit::<_, (String, Vec<f64>)>("noop", inputs.clone(), JobOptions::default())
        .unwrap()
        .collect_ordered()
        .unwrap();
    let echoed: Vec<_> = echoed.into_iter().map(Result::unwrap).collect();
    assert_eq!(echoed, inputs);
    let slept = delegator
        .submit::<_, u64>("sleep", [1000u64, 20_000, 0], JobOptions::default())
        .unwrap()
        .collect_ordered()
        .unwrap();
    assert_eq!(
        slept.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        [1000, 20_000, 0]
    );

    let status = poll("the status to count every unit", || {
        let status = read_json(&file)?;
        (status.units_done >= n + 53).then_some(status)
    });
    let exec = status.exec.expect("an exec worker reports its programs");
    assert_eq!(
        (exec.programs_running, exec.restarts, exec.crashes),
        (2, 0, 0)
    );
    let programs = descendants(worker.0.id());
    assert!(programs.len() >= 2, "{programs:?}");

    worker.signal(libc::SIGTERM);
    assert_eq!(worker.wait(), Some(0), "{framing}: a graceful stop");
    poll("the programs to be gone", || {
        programs.iter().all(|&pid| !alive(pid)).then_some(())
    });
}

/// The example likelihood (examples/exec/likelihood.py) answers MCMC units (PROTOCOL.md §5)
/// through the JSON framing: each term is an equal share of a standard Gaussian's energy.
fn the_example_likelihood_evaluates_mcmc_units() {
    use ganger_core::mcmc::likelihood::unit_payload;
    let delegator = start_delegator(1);
    let example = repository_root().join("examples/exec/likelihood.py");
    let _worker = exec_worker(
        &delegator.local_endpoint(),
        &format!("python3 {}", example.display()),
        &[
            "--exec-framing",
            "json",
            "--job-types",
            "mcmc/py-gaussian/*",
        ],
    );
    let points = [[3.0, 4.0], [0.5, -1.0], [0.0, 0.0]];
    let n_terms = 2;
    for term in 0..n_terms {
        let payloads = (0..20).map(|_| unit_payload(term, n_terms, points.iter().map(|x| &x[..])));
        let energies = delegator
            .submit_payloads::<Vec<f64>>(
                &format!("mcmc/py-gaussian/{term}"),
                payloads,
                JobOptions::default(),
            )
            .unwrap()
            .collect_ordered()
            .unwrap();
        for energies in energies {
            assert_eq!(energies.unwrap(), [6.25, 0.3125, 0.0]);
        }
    }
}

/// A program that exits on inputs ending in 3, once per input (it remembers in a file), then
/// answers them: every unit is retried on a fresh copy locally, and none fails.
fn a_program_that_crashes_on_a_unit_is_restarted_and_the_unit_retried() {
    let dir = TempDir::new("exec", "crash-once");
    let file = dir.0.join("worker.json");
    let program = dir.0.join("crash_once.py");
    std::fs::write(
        &program,
        format!(
            r#"import json, os, sys
for line in sys.stdin:
    request = json.loads(line)
    n = request["input"]
    marker = os.path.join({dir:?}, "crashed-%d" % n)
    if n % 10 == 3 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)
    print(json.dumps({{"id": request["id"], "output": n * n}}), flush=True)
"#,
            dir = path_str(&dir.0)
        ),
    )
    .unwrap();
    let delegator = start_delegator(3);
    let command = format!("python3 {}", program.display());
    let _worker = exec_worker(
        &delegator.local_endpoint(),
        &command,
        &[
            "--exec-framing",
            "json",
            "--job-types",
            "square",
            "--status-file",
            path_str(&file),
        ],
    );
    let n = 60i64;
    let squares = delegator
        .submit::<_, i64>("square", 0..n, JobOptions::default())
        .unwrap()
        .collect_ordered()
        .unwrap();
    let squares: Vec<i64> = squares.into_iter().map(Result::unwrap).collect();
    assert_eq!(squares, (0..n).map(|i| i * i).collect::<Vec<_>>());
    let crashes = 6;
    let status = poll("the status to count the crashes", || {
        let status = read_json(&file)?;
        (status.units_done >= n as u64
            && status.exec.as_ref()?.programs_running == 2
            && status.exec.as_ref()?.crashes >= crashes)
            .then_some(status)
    });
    assert_eq!(
        status.unit_errors, 0,
        "retried locally, not failed: {status:?}"
    );
    let exec = status.exec.unwrap();
    assert_eq!(exec.crashes, crashes, "{exec:?}");
    assert_eq!(exec.restarts, crashes, "{exec:?}");
    let reason = exec.last_restart_reason.unwrap();
    assert!(reason.contains("exited with status 3"), "{reason}");
    let last_error = status.last_error.unwrap();
    assert!(last_error.contains("exited with status 3"), "{last_error}");
}

/// A copy that exits while it holds no unit is noticed and replaced, and the status says so.
fn a_program_that_exits_while_idle_is_restarted() {
    let dir = TempDir::new("exec", "idle-exit");
    let file = dir.0.join("worker.json");
    let program = dir.0.join("quit.py");
    std::fs::write(
        &program,
        r#"import json, sys
for line in sys.stdin:
    request = json.loads(line)
    print(json.dumps({"id": request["id"], "output": request["input"]}), flush=True)
    if request["input"] == "quit":
        sys.exit(4)
"#,
    )
    .unwrap();
    let delegator = start_delegator(1);
    let _worker = exec_worker(
        &delegator.local_endpoint(),
        &format!("python3 {}", program.display()),
        &[
            "--exec-framing",
            "json",
            "--job-types",
            "echo",
            "--status-file",
            path_str(&file),
        ],
    );
    let echoed = delegator
        .submit::<_, String>("echo", ["quit".to_owned()], JobOptions::default())
        .unwrap()
        .collect_ordered()
        .unwrap();
    assert_eq!(echoed[0].as_deref().unwrap(), "quit");
    let status = poll("the idle exit to be noticed and the copy replaced", || {
        let status = read_json(&file)?;
        let exec = status.exec.as_ref()?;
        (exec.crashes == 1 && exec.programs_running == 2).then_some(status)
    });
    let exec = status.exec.unwrap();
    assert_eq!(exec.restarts, 1, "{exec:?}");
    let reason = exec.last_restart_reason.unwrap();
    assert!(
        reason.contains("exited with status 4 while idle"),
        "{reason}"
    );
    assert_eq!(status.unit_errors, 0);
}

/// A program that always dies on one input: that unit fails naming the exit status, once the
/// local retry and the delegator's attempts are used up; every other unit succeeds.
fn a_poison_unit_fails_naming_the_exit_status_and_the_rest_succeed() {
    let dir = TempDir::new("exec", "poison");
    let program = dir.0.join("poison.py");
    std::fs::write(
        &program,
        r#"import json, os, sys
for line in sys.stdin:
    request = json.loads(line)
    if request["input"] == 13:
        os._exit(7)
    print(json.dumps({"id": request["id"], "output": request["input"]}), flush=True)
"#,
    )
    .unwrap();
    let delegator = start_delegator(2);
    let command = format!("python3 {}", program.display());
    let _worker = exec_worker(
        &delegator.local_endpoint(),
        &command,
        &["--exec-framing", "json", "--job-types", "echo"],
    );
    let outcomes = delegator
        .submit::<_, i64>("echo", 0..40i64, JobOptions::default())
        .unwrap()
        .collect_ordered()
        .unwrap();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(value) => assert_eq!(value, i as i64),
            Err(UnitError::Failed(failure)) => {
                assert_eq!(i, 13, "{failure}");
                assert_eq!(
                    failure.errors.len(),
                    2,
                    "the delegator's attempts: {failure}"
                );
                for error in &failure.errors {
                    assert!(error.contains("exited with status 7"), "{error}");
                    assert!(error.contains("2 attempts on this worker"), "{error}");
                }
            }
            Err(e) => panic!("{i}: {e}"),
        }
    }
}

/// A program that hangs on one input, with a timeout: the unit fails saying so, the copy is
/// killed (its pid is gone) and replaced, and the status shows the timeout and the restart.
fn a_hanging_program_is_killed_and_restarted_after_the_timeout() {
    let dir = TempDir::new("exec", "hang");
    let file = dir.0.join("worker.json");
    let program = dir.0.join("hang.py");
    let pid_file = dir.0.join("hung.pid");
    std::fs::write(
        &program,
        format!(
            r#"import json, os, sys, time
for line in sys.stdin:
    request = json.loads(line)
    if request["input"] == 5:
        with open({pid_file:?}, "a") as f:
            f.write("%d\n" % os.getpid())
        time.sleep(3600)
    print(json.dumps({{"id": request["id"], "output": request["input"]}}), flush=True)
"#,
            pid_file = path_str(&pid_file)
        ),
    )
    .unwrap();
    let delegator = start_delegator(1);
    let command = format!("python3 {}", program.display());
    let _worker = exec_worker(
        &delegator.local_endpoint(),
        &command,
        &[
            "--exec-framing",
            "json",
            "--job-types",
            "echo",
            "--exec-timeout-secs",
            "1",
            "--status-file",
            path_str(&file),
        ],
    );
    let outcomes = delegator
        .submit::<_, i64>("echo", 0..10i64, JobOptions::default())
        .unwrap()
        .collect_ordered()
        .unwrap();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(value) => assert_eq!(value, i as i64),
            Err(UnitError::Failed(failure)) => {
                assert_eq!(i, 5, "{failure}");
                assert!(
                    failure.to_string().contains("timed out after 1 s"),
                    "{failure}"
                );
            }
            Err(e) => panic!("{i}: {e}"),
        }
    }
    let hung: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    poll("the hung program to be killed", || {
        (!alive(hung)).then_some(())
    });
    let status = poll("the status to show the timeout", || {
        let status = read_json(&file)?;
        let exec = status.exec.as_ref()?;
        (exec.timeouts == 1 && exec.programs_running == 2).then_some(status)
    });
    let exec = status.exec.unwrap();
    assert_eq!(exec.restarts, 1, "{exec:?}");
    assert!(
        exec.last_restart_reason
            .as_deref()
            .unwrap()
            .contains("timed out"),
        "{exec:?}"
    );
    assert!(status.last_error.unwrap().contains("timed out"));
    let check = Command::new(WORKER)
        .args(["status", "--status-file", path_str(&file)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.contains("exec_timeouts: 1\n"), "{text}");
    assert!(text.contains("exec_programs_running: 2\n"), "{text}");
}

/// `kill -9` of the worker leaves no copy behind: a simple command is exec'd and killed by the
/// parent-death signal even if it ignores EOF; what a shell script started sees EOF on stdin
/// and exits.
fn killing_the_worker_leaves_no_program_behind() {
    let dir = TempDir::new("exec", "kill");
    let stubborn = dir.0.join("stubborn.py");
    std::fs::write(
        &stubborn,
        r#"import json, sys, time
for line in sys.stdin:
    request = json.loads(line)
    print(json.dumps({"id": request["id"], "output": request["input"]}), flush=True)
time.sleep(3600)  # ignores EOF: only the parent-death signal ends it
"#,
    )
    .unwrap();
    let child = repository_root().join("examples/exec/conformance_child.py");
    let commands = [
        // Exec'd by the shell: the copy is python itself.
        (format!("python3 {}", stubborn.display()), 2),
        // `; true` keeps the shell, so python is its child and learns of the end by EOF.
        (
            format!("python3 {} --framing json; true", child.display()),
            4,
        ),
    ];
    for (command, processes) in commands {
        let delegator = start_delegator(1);
        let mut worker = exec_worker(
            &delegator.local_endpoint(),
            &command,
            &["--exec-framing", "json", "--job-types", "noop"],
        );
        let programs = poll("both copies (and their python children)", || {
            let programs = descendants(worker.0.id());
            (programs.len() >= processes).then_some(programs)
        });
        let echoed = delegator
            .submit::<_, i64>("noop", 0..10i64, JobOptions::default())
            .unwrap()
            .collect_ordered()
            .unwrap();
        assert!(echoed.iter().all(Result::is_ok), "{command}");
        worker.signal(libc::SIGKILL);
        assert_eq!(worker.wait(), None, "killed by a signal");
        poll("every program to be gone", || {
            programs.iter().all(|&pid| !alive(pid)).then_some(())
        });
    }
}

fn a_command_that_cannot_start_is_an_error_naming_it() {
    let output = Command::new(WORKER)
        .args(["--connect", "tcp://127.0.0.1:1", "--threads", "2"])
        .args([
            "--exec",
            "ganger-no-such-program --flag",
            "--job-types",
            "noop",
        ])
        .env("GANGER_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("worker runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`ganger-no-such-program --flag`"),
        "{stderr}"
    );
    assert!(stderr.contains("exited with status 127"), "{stderr}");

    let output = Command::new(WORKER)
        .args(["--connect", "tcp://127.0.0.1:1", "--exec", "cat"])
        .env_remove("GANGER_JOB_TYPES")
        .stdin(Stdio::null())
        .output()
        .expect("worker runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--exec needs --job-types"), "{stderr}");
}

/// Fast heartbeats, and `max_attempts` per test.
fn start_delegator(max_attempts: u32) -> Delegator {
    Delegator::start(DelegatorConfig {
        bind: "tcp://127.0.0.1:0".into(),
        scheduler: SchedulerConfig {
            heartbeat_ms: 200,
            timeout_ms: 5000,
            max_attempts,
            ..SchedulerConfig::default()
        },
        ..DelegatorConfig::default()
    })
    .expect("delegator starts")
}

fn read_json(file: &Path) -> Option<WorkerStatus> {
    let bytes = std::fs::read(file).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether a process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Every living descendant of `root`, from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (_, rest) = stat.rsplit_once(") ")?;
            let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found.retain(|&pid| alive(pid));
    found
}

/// A worker process with two copies of `command` (`--exec`), killed when dropped.
fn exec_worker(endpoint: &str, command: &str, args: &[&str]) -> WorkerProcess {
    let args: Vec<&str> = ["--exec", command].iter().chain(args).copied().collect();
    WorkerProcess::spawn(endpoint, 2, &args, &[])
}
