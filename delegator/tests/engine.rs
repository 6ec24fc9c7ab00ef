//! The engine end to end: a delegator in this process, real `ganger-worker` processes, real
//! sockets on 127.0.0.1, real signals.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use ganger_cluster::{Job, JobOptions, UnitError};

/// Checks a job of `square` over 0..n: every index exactly once, each the right square.
fn assert_all_squares(job: Job<i64>, n: usize) {
    let mut seen = vec![false; n];
    for (index, result) in job {
        let index = index as usize;
        assert!(!seen[index], "unit {index} delivered twice");
        seen[index] = true;
        let value = index as i64;
        assert_eq!(result, Ok(value * value), "unit {index}");
    }
    let missing = seen.iter().filter(|s| !**s).count();
    assert_eq!(missing, 0, "{missing} units never delivered");
}

#[test]
fn hundred_thousand_units_through_three_workers_arrive_exactly_once_and_correct() {
    let delegator = start_delegator(test_config());
    let endpoint = delegator.local_endpoint();
    let _workers: Vec<_> = (0..3)
        .map(|_| WorkerProcess::spawn(&endpoint, &["--threads", "1"]))
        .collect();
    let n = 100_000;
    let job = delegator
        .submit::<_, i64>("square", 0..n as i64, JobOptions::default())
        .unwrap();
    assert_all_squares(job, n);
    let stats = delegator.stats().unwrap();
    assert_eq!(stats.counters.completed, n as u64);
    assert_eq!(stats.counters.failed, 0);
    let busy = stats.workers.iter().filter(|w| w.units_done > 0).count();
    assert!(busy >= 2, "work spread over workers: {:?}", stats.workers);
}

#[test]
fn kill_9_of_a_worker_mid_batch_loses_nothing() {
    let delegator = start_delegator(test_config());
    let endpoint = delegator.local_endpoint();
    let mut workers: Vec<_> = (0..3)
        .map(|_| WorkerProcess::spawn(&endpoint, &["--threads", "1"]))
        .collect();
    // 3,000 units of 1 ms each: long enough to kill a worker while it holds leased units.
    let n = 3_000;
    let job = delegator
        .submit::<_, u64>(
            "spin",
            std::iter::repeat_n(1000u64, n),
            JobOptions::default(),
        )
        .unwrap();
    let stats = wait_for(
        &delegator,
        Duration::from_secs(60),
        "the victim to hold units",
        |s| s.counters.completed > 300 && s.workers.iter().filter(|w| w.in_flight > 0).count() == 3,
    );
    assert_eq!(stats.workers.len(), 3);
    workers[0].signal(libc::SIGKILL);
    assert_eq!(workers[0].wait(), None, "killed by a signal");
    let mut seen = vec![false; n];
    for (index, result) in job {
        assert!(
            !std::mem::replace(&mut seen[index as usize], true),
            "unit {index} twice"
        );
        assert_eq!(result, Ok(1000));
    }
    assert!(seen.iter().all(|s| *s));
    let stats = delegator.stats().unwrap();
    assert!(
        stats.counters.requeued > 0,
        "the victim's units were requeued: {stats:#?}"
    );
    assert_eq!(stats.workers.len(), 2);
}

#[test]
fn a_worker_started_before_the_delegator_joins_when_it_comes_up() {
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let mut worker = WorkerProcess::spawn(&endpoint, &["--threads", "1"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(worker.is_running(), "the worker waits for its delegator");
    let mut config = test_config();
    config.bind = endpoint;
    let delegator = start_delegator(config);
    let job = delegator
        .submit::<_, i64>("square", 0..1000i64, JobOptions::default())
        .unwrap();
    assert_all_squares(job, 1000);
}

#[test]
fn a_worker_survives_a_delegator_restart() {
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let mut config = test_config();
    config.bind = endpoint.clone();
    let mut worker = WorkerProcess::spawn(&endpoint, &["--threads", "1"]);
    let first = start_delegator(config.clone());
    let job = first
        .submit::<_, i64>("square", 0..500i64, JobOptions::default())
        .unwrap();
    assert_all_squares(job, 500);
    first.shutdown();
    assert!(worker.is_running());
    let second = start_delegator(config);
    let job = second
        .submit::<_, i64>("square", 0..500i64, JobOptions::default())
        .unwrap();
    assert_all_squares(job, 500);
    assert!(worker.is_running());
    assert_eq!(second.stats().unwrap().workers.len(), 1);
}

#[test]
fn sigterm_hands_back_unstarted_units_without_waiting_for_a_timeout() {
    // Heartbeats and timeouts of ten minutes: only the goodbye can move units in time.
    let mut config = test_config();
    config.scheduler.heartbeat_ms = 600_000;
    config.scheduler.timeout_ms = 1_200_000;
    let delegator = start_delegator(config);
    let endpoint = delegator.local_endpoint();
    let leaving = WorkerProcess::spawn(&endpoint, &["--threads", "2", "--name", "leaving"]);
    // 40 units of 50 ms: the worker holds running units and queued ones.
    let job = delegator
        .submit::<_, u64>(
            "sleep",
            std::iter::repeat_n(50_000u64, 40),
            JobOptions::default(),
        )
        .unwrap();
    wait_for(
        &delegator,
        Duration::from_secs(30),
        "units queued at the worker",
        |s| s.workers.iter().any(|w| w.in_flight > 2),
    );
    leaving.signal(libc::SIGTERM);
    let stats = wait_for(&delegator, Duration::from_secs(30), "the goodbye", |s| {
        s.counters.requeued > 0
    });
    assert_eq!(stats.counters.timeouts, 0);
    let _staying = WorkerProcess::spawn(&endpoint, &["--threads", "2", "--name", "staying"]);
    let results: Vec<_> = job.map(|(_, r)| r).collect();
    assert_eq!(results.len(), 40);
    assert!(results.iter().all(|r| r == &Ok(50_000)));
    assert_eq!(delegator.stats().unwrap().counters.timeouts, 0);
}

#[test]
fn a_panicking_task_fails_only_its_units_after_the_retry_limit() {
    let delegator = start_delegator(test_config());
    let endpoint = delegator.local_endpoint();
    let mut workers: Vec<_> = (0..2)
        .map(|_| WorkerProcess::spawn(&endpoint, &["--threads", "1"]))
        .collect();
    // Both registered first: retries go to the other worker, and both must survive.
    wait_for(&delegator, Duration::from_secs(30), "two workers", |s| {
        s.workers.len() == 2
    });
    let results = delegator
        .submit::<_, i64>("panic-if-odd", 0..200i64, JobOptions::default())
        .unwrap()
        .collect_ordered()
        .unwrap();
    for (i, result) in results.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(result, &Ok(i as i64));
        } else {
            let Err(UnitError::Failed(failure)) = result else {
                panic!("unit {i}: {result:?}")
            };
            assert_eq!(failure.errors.len(), 3, "unit {i}: {failure}");
            for error in &failure.errors {
                assert!(error.contains(&format!("input {i} is odd")), "{error}");
            }
        }
    }
    let stats = delegator.stats().unwrap();
    assert_eq!(stats.counters.failed, 100);
    assert_eq!(stats.counters.retried, 200);
    assert!(workers.iter_mut().all(|w| w.is_running()), "no worker died");
    assert_eq!(stats.workers.len(), 2);
}

#[test]
fn units_reach_only_workers_that_serve_their_job_type() {
    let delegator = start_delegator(test_config());
    let endpoint = delegator.local_endpoint();
    let _squarer = WorkerProcess::spawn(&endpoint, &["--job-types", "square", "--name", "squarer"]);
    let _echoer = WorkerProcess::spawn(&endpoint, &["--job-types", "noop", "--name", "echoer"]);
    let squares = delegator
        .submit::<_, i64>("square", 0..3000i64, JobOptions::default())
        .unwrap();
    let echoes = delegator
        .submit::<_, u64>("noop", 0..2000u64, JobOptions::default())
        .unwrap();
    assert_all_squares(squares, 3000);
    assert_eq!(echoes.count(), 2000);
    let stats = delegator.stats().unwrap();
    let done: HashMap<_, _> = stats
        .workers
        .iter()
        .map(|w| (w.name.clone(), w.units_done))
        .collect();
    assert_eq!(done["squarer"], 3000);
    assert_eq!(done["echoer"], 2000);
}

#[test]
fn higher_priority_jobs_finish_first_on_a_shared_worker() {
    let delegator = start_delegator(test_config());
    let endpoint = delegator.local_endpoint();
    // Submit both before any worker exists, so the priority alone decides.
    let low = delegator
        .submit::<_, u64>(
            "spin",
            std::iter::repeat_n(200u64, 500),
            JobOptions {
                priority: 0,
                ..JobOptions::default()
            },
        )
        .unwrap();
    let high = delegator
        .submit::<_, u64>(
            "spin",
            std::iter::repeat_n(200u64, 500),
            JobOptions {
                priority: 10,
                ..JobOptions::default()
            },
        )
        .unwrap();
    let _worker = WorkerProcess::spawn(&endpoint, &["--threads", "1"]);
    assert_eq!(high.count(), 500);
    let low_done = low.progress().done();
    assert!(
        low_done < 500,
        "low-priority job already finished: {low_done}"
    );
    assert_eq!(low.count(), 500);
}

/// A worker evaluates trivial units on its session thread (no pool hand-off); a unit far
/// slower than those before it then holds that thread past the heartbeat timeout. Nothing may
/// be lost or doubled: the delegator requeues what the silent worker held, and the slow unit
/// runs again on the pool.
#[test]
fn a_slow_unit_among_trivial_ones_loses_nothing_even_past_the_heartbeat_timeout() {
    let delegator = start_delegator(test_config());
    let endpoint = delegator.local_endpoint();
    let _worker = WorkerProcess::spawn(&endpoint, &["--threads", "1"]);
    // 2.5 s: past the test config's 2 s timeout.
    let inputs: Vec<u64> = (0..6_000u64)
        .map(|i| if i == 4_000 { 2_500_000 } else { 0 })
        .collect();
    let job = delegator
        .submit::<_, u64>("sleep", inputs.clone(), JobOptions::default())
        .unwrap();
    let mut seen = vec![false; inputs.len()];
    for (index, result) in job {
        let index = index as usize;
        assert!(!seen[index], "unit {index} delivered twice");
        seen[index] = true;
        assert_eq!(result, Ok(inputs[index]), "unit {index}");
    }
    assert!(seen.iter().all(|&s| s), "some units never delivered");
}

#[test]
fn an_mcmc_evaluation_that_stops_leaves_the_engine_serving() {
    use ganger_mcmc::{Evaluator, McmcError, OnWorkers};
    use std::sync::atomic::AtomicBool;
    let delegator = start_delegator(test_config());
    let mut evaluator = OnWorkers::new(&delegator, "gaussian", 3).unwrap();
    // No worker serves it, so it waits, borrowing the engine, until told to stop.
    let stopped = evaluator.evaluate_points(&[vec![0.0; 4]], &AtomicBool::new(true));
    assert!(matches!(stopped, Err(McmcError::Stopped)), "{stopped:?}");
    // The evaluator is still alive; the engine must be back on its own thread.
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = delegator.stats_handle();
    std::thread::spawn(move || tx.send(handle.stats().is_ok()));
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(true));
    drop(evaluator);
}
