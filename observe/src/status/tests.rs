//! The board's unit tests: progress, rates, metrics and series, without an engine.

use super::*;
use ganger_cluster::scheduler::{Counters, WorkerInfo};
use ganger_cluster::DroppedFrames;
use ganger_mcmc::{ChainStatus, ConvergenceStatus};

fn stats(completed: u64) -> Stats {
    Stats {
        counters: Counters {
            submitted: 100,
            completed,
            failed: 1,
            ..Counters::default()
        },
        dropped: DroppedFrames {
            malformed: 2,
            unauthenticated: 3,
            replayed: 1,
            ..DroppedFrames::default()
        },
        connections: ganger_cluster::ConnectionCounts {
            pending: 1,
            refused: 4,
            expired: 2,
        },
        queued_bytes: 0,
        workers: vec![WorkerInfo {
            id: 7,
            name: "w7".into(),
            host: "h".into(),
            job_types: vec!["square".into()],
            slots: 4,
            in_flight: 3,
            units_done: completed,
            errors: 1,
            last_seen: 900,
            registered: 500,
            // Half of 4 slots' 500 ms.
            busy_us: 1_000_000,
            last_errors: vec!["square expects a number, got the string \"seven\"".into()],
        }],
        queue_depths: vec![("square".into(), 42), ("sqaure".into(), 5)],
        unserved: vec![("sqaure".into(), 5)],
        open_jobs: 1,
        now: 1000,
    }
}

#[test]
fn a_job_of_units_shows_its_counters_as_progress() {
    let board = StatusBoard::new();
    board.begin(RunKind::Run, "square", 0, 1);
    board.publish_engine(stats(49));
    let s = board.snapshot();
    assert_eq!(
        (s.progress.done, s.progress.total, s.progress.failed),
        (50, 100, 1)
    );
    assert_eq!(s.progress.fraction, 0.5);
    assert_eq!(s.workers[0].last_heartbeat_ms_ago, 100);
    assert_eq!(s.queues[0].depth, 42);
    assert!(s.queues[0].served);
    assert_eq!(
        (s.queues[1].job_type.as_str(), s.queues[1].served),
        ("sqaure", false)
    );
    assert_eq!(s.counters.dropped_frames, 6);
    assert_eq!(s.counters.unauthenticated_frames, 4);
    assert_eq!(s.counters.connections_cut, 6);
    assert!(s.engine_alive);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["kind"], "run");
    assert_eq!(json["workers"][0]["job_types"][0], "square");
    assert_eq!(
        json["workers"][0]["last_errors"][0],
        "square expects a number, got the string \"seven\""
    );
    // The errors outlive the worker and the engine.
    board.engine_stopped();
    let s = board.snapshot();
    assert!(s.workers.is_empty());
    assert_eq!(s.unit_errors.len(), 1);
    assert_eq!((s.unit_errors[0].id, s.unit_errors[0].errors), (7, 1));
    assert!(s.unit_errors[0].last[0].starts_with("square expects a number"));
}

#[test]
fn each_workers_rate_is_its_units_over_the_engines_time_between_samples() {
    let board = StatusBoard::new();
    board.begin(RunKind::Run, "square", 0, 1);
    board.publish_engine(stats(49));
    board.sample_rate();
    assert_eq!(board.snapshot().workers[0].units_per_sec, None);
    // 100 more units in the engine's next 200 ms.
    let later = |completed| Stats {
        now: 1200,
        ..stats(completed)
    };
    board.publish_engine(later(149));
    // Not sampled yet: the rate waits for the board's clock, not for each publication.
    assert_eq!(board.snapshot().workers[0].units_per_sec, None);
    board.sample_rate();
    assert_eq!(board.snapshot().workers[0].units_per_sec, Some(500.0));
    // Sampled again before new stats arrive: the same stats say nothing new.
    board.sample_rate();
    assert_eq!(board.snapshot().workers[0].units_per_sec, Some(500.0));
}

#[test]
fn a_resumed_job_counts_the_units_it_found_done() {
    let board = StatusBoard::new();
    board.begin(RunKind::Run, "square", 1000, 1);
    board.set_already_done(900, 3);
    assert_eq!(board.snapshot().progress.done, 900);
    // The engine has 100 units of its own, 50 of them done and 1 failed.
    board.publish_engine(stats(49));
    let s = board.snapshot();
    assert_eq!(
        (s.progress.done, s.progress.total, s.progress.failed),
        (950, 1000, 4)
    );
}

#[test]
fn rates_and_etas_come_from_the_progress_between_samples() {
    let board = StatusBoard::new();
    board.begin(RunKind::Mcmc, "demo.json", 1000, 10);
    board.publish_mcmc(McmcStatus {
        step: 100,
        total_steps: 1000,
        ..McmcStatus::default()
    });
    board.sample_rate();
    std::thread::sleep(Duration::from_millis(20));
    board.publish_mcmc(McmcStatus {
        step: 200,
        total_steps: 1000,
        ..McmcStatus::default()
    });
    board.sample_rate();
    let s = board.snapshot();
    assert_eq!(s.throughput.len(), 1);
    // 100 steps of 10 chains in at least 20 ms: at most 50,000 samples/s, and the ETA is
    // the 800 steps left at the same pace.
    assert!(
        s.progress.rate > 0.0 && s.progress.rate <= 50_000.0,
        "{}",
        s.progress.rate
    );
    let eta = s.progress.eta_secs.unwrap();
    assert!(
        (eta - 800.0 / (s.progress.rate / 10.0)).abs() < 1e-6 * eta,
        "{eta}"
    );
    board.end(RunState::Done);
    assert_eq!(board.snapshot().progress.eta_secs, None);
}

#[test]
fn metrics_are_openmetrics_text_with_every_documented_family() {
    let board = StatusBoard::new();
    board.begin(RunKind::Mcmc, "demo.json", 1000, 2);
    board.attach_metrics(EngineMetrics::default());
    board.publish_engine(stats(10));
    board.publish_mcmc(McmcStatus {
        step: 5,
        total_steps: 1000,
        chains: vec![
            ChainStatus {
                id: 0,
                length: 5,
                min_energy: 1.0,
                current_energy: 2.0,
                sigma: 0.5,
                accept_rate: 0.2,
                global_accept_rate: 0.25,
                beta: 1.0,
                swap_rate: None,
                global_swap_rate: Some(0.5),
            };
            2
        ],
        convergence: ConvergenceStatus {
            max_rhat: Some(1.01),
            rhat: vec![Some(1.01)],
            ..ConvergenceStatus::default()
        },
        round_trips: vec![3],
        ..McmcStatus::default()
    });
    let text = board.metrics_text();
    for line in [
        "ganger_units_submitted_total 100",
        "ganger_units_completed_total 10",
        "ganger_workers_connected 1.0",
        "ganger_worker_slots 4.0",
        "ganger_worker_utilisation{worker=\"7-w7\"} 0.5",
        "ganger_queue_depth{job_type=\"square\"} 42.0",
        "ganger_mcmc_samples_total 10",
        "ganger_mcmc_accept_rate{chain=\"0\"} 0.25",
        "ganger_mcmc_rhat_max 1.01",
        "ganger_mcmc_round_trips{stack=\"0\"} 3.0",
        "ganger_batch_round_trip_seconds_count 0",
        "# TYPE ganger_batch_units histogram",
        "# EOF",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    }
}

#[test]
fn series_are_thinned_not_cut() {
    let mut series = VecDeque::new();
    for i in 0..10_000 {
        push_thinned(&mut series, [i as f64, 0.0]);
    }
    assert!(series.len() <= HISTORY_POINTS);
    assert_eq!(series[0][0], 0.0, "the start of the run stays");
    assert_eq!(series.back().unwrap()[0], 9999.0);
}

#[test]
fn unit_errors_keep_the_newest_workers_only() {
    let board = StatusBoard::new();
    board.begin(RunKind::Run, "square", 0, 1);
    // A worker restarted after each crash comes back under a new id, 25 times.
    for id in 0..25 {
        let mut s = stats(0);
        s.workers[0].id = id;
        board.publish_engine(s);
    }
    let kept: Vec<u64> = board.snapshot().unit_errors.iter().map(|w| w.id).collect();
    assert_eq!(kept, (5..25).collect::<Vec<u64>>());
}
