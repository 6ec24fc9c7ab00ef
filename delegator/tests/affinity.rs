//! Local workers' messaging threads share the delegator's CPU; evaluation threads do not.
//!
//! Read from `/proc` while a real `ganger-delegator run --local-workers 2` runs: which CPUs
//! each thread of the delegator and of its worker processes may use.

mod common;

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use common::*;

/// A process's threads: each one's name and the CPUs it may run on (`0-1`, `1`, ...).
type Threads = Vec<(String, String)>;

/// Each thread of process `pid`.
fn threads(pid: u32) -> Threads {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
            let status = std::fs::read_to_string(task.path().join("status")).ok()?;
            let cpus = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
                .trim()
                .to_owned();
            Some((name.trim().to_owned(), cpus))
        })
        .collect()
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    // The parent is the second field after the parenthesised name.
                    let after = &stat[stat.rfind(')')? + 1..];
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Starts a job of about 2 s on 2 local workers of 1 thread.
fn start(dir: &Path, extra: &[&str]) -> Child {
    delegator_command()
        .args(["run", "--task", "sleep", "--range", "3000", "--output"])
        .arg(dir.join("results.jsonl"))
        .args([
            "--local-workers",
            "2",
            "--worker-threads",
            "1",
            "--http",
            "none",
        ])
        .args(extra)
        .arg("--worker-bin")
        .arg(worker_bin())
        .env("GANGER_LOG", "warn")
        .spawn()
        .expect("delegator starts")
}

/// The threads of the delegator and of its 2 workers, once `done` says the snapshot is
/// complete (panics after 20 s, a guard against hangs).
fn snapshot(
    delegator: &Child,
    done: impl Fn(&[(String, String)], &[Threads]) -> bool,
) -> (Threads, Vec<Threads>) {
    let mut found = (Vec::new(), Vec::new());
    wait_until(Duration::from_secs(20), "the threads sought", || {
        let own = threads(delegator.id());
        let workers: Vec<Threads> = children(delegator.id()).into_iter().map(threads).collect();
        let ready = workers.len() == 2 && done(&own, &workers);
        found = (own, workers);
        ready
    });
    found
}

/// Whether every worker is up: its I/O thread and its evaluation thread exist.
fn workers_up(workers: &[Threads]) -> bool {
    workers.iter().all(|w| {
        w.iter().any(|(n, _)| n == "ganger-eval-0")
            && w.iter().any(|(n, _)| n.starts_with("ZMQbg/IO"))
    })
}

fn cpus_of<'a>(threads: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    threads
        .iter()
        .filter(|(n, _)| n.starts_with(name))
        .map(|(_, c)| c.as_str())
        .collect()
}

fn local_workers_pass_messages_on_the_delegators_cpu_and_evaluate_anywhere() {
    let all = threads(std::process::id())[0].1.clone();
    let dir = std::env::temp_dir().join(format!("ganger-affinity-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let mut delegator = start(&dir, &[]);
    // Until every thread expected pinned is (names appear once threads run), all on the CPU
    // of the delegator's I/O thread, and each worker's evaluation thread is there.
    let on = |threads: &[(String, String)], name: &str, cpus: &str, n: usize| {
        let found = cpus_of(threads, name);
        found.len() == n && found.iter().all(|c| *c == cpus)
    };
    let (own, workers) = snapshot(&delegator, |own, workers| {
        let Some(cpu) = cpus_of(own, "ZMQbg/IO").first().map(|c| c.to_string()) else {
            return false;
        };
        cpu != all
            && on(own, "ZMQbg/", &cpu, 2)
            && on(own, "ganger-engine", &cpu, 1)
            && workers
                .iter()
                .all(|w| on(w, "ZMQbg/", &cpu, 2) && on(w, "ganger-eval", &all, 1))
    });
    let cpu = cpus_of(&own, "ZMQbg/IO")[0].to_owned();
    // The same, asserted with the threads in the message.
    for name in ["ZMQbg/Reaper", "ganger-engine"] {
        assert_eq!(cpus_of(&own, name), vec![cpu.as_str()], "{name} in {own:?}");
    }
    for worker in &workers {
        assert_eq!(
            cpus_of(worker, "ZMQbg/"),
            vec![cpu.as_str(); 2],
            "{worker:?}"
        );
        assert_eq!(
            cpus_of(worker, "ganger-eval"),
            vec![all.as_str()],
            "{worker:?}"
        );
    }
    assert!(wait_with_limit(&mut delegator, Duration::from_secs(120)).success());
    let results = std::fs::read_to_string(dir.join("results.jsonl")).unwrap();
    assert_eq!(results.lines().count(), 3000);

    // Asked not to, nothing is ever pinned, from the workers' start to the run's end.
    std::fs::remove_file(dir.join("results.jsonl")).unwrap();
    let mut delegator = start(&dir, &["--no-pin-messaging"]);
    let (_, workers) = snapshot(&delegator, |_, workers| workers_up(workers));
    assert!(
        workers
            .iter()
            .all(|w| w.iter().all(|(_, cpus)| *cpus == all)),
        "{workers:?}"
    );
    let mut looks = 0;
    while delegator.try_wait().unwrap().is_none() {
        let own = threads(delegator.id());
        let workers: Vec<_> = children(delegator.id()).into_iter().map(threads).collect();
        for process in std::iter::once(&own).chain(&workers) {
            assert!(
                process.iter().all(|(_, cpus)| *cpus == all),
                "pinned although asked not to: {process:?}"
            );
        }
        looks += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(looks > 1, "the run ended before it could be watched");
    assert!(delegator.wait().unwrap().success());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// On one CPU, pinning cannot be told from not pinning, and only Linux pins: elsewhere the test
/// is reported as ignored, saying why.
fn main() -> std::process::ExitCode {
    run_trials(vec![trial(
        "local_workers_pass_messages_on_the_delegators_cpu_and_evaluate_anywhere",
        two_cpus_lacking(),
        local_workers_pass_messages_on_the_delegators_cpu_and_evaluate_anywhere,
    )])
}

fn two_cpus_lacking() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some("Linux (threads' CPUs are read from /proc)".to_owned());
    }
    (std::thread::available_parallelism().map_or(1, |n| n.get()) < 2)
        .then(|| "two CPUs (pinning cannot be told from not pinning on one)".to_owned())
}
