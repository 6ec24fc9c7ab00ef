//! The status board's state changes, time conversion and health verdicts, with made-up clocks.

use super::*;

fn board(t0: Instant) -> Board {
    Board::new("tcp://127.0.0.1:5555", "node7-42", "node7", t0)
}

/// A wall clock reading paired with `t0`: 2024-11-21T22:25:02Z.
const WALL_MS: u64 = 1_732_227_902_000;

fn wall_at(t0: Instant, now: Instant) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(WALL_MS) + now.duration_since(t0)
}

fn status(state: WorkerState, updated_unix_ms: u64) -> WorkerStatus {
    let t0 = Instant::now();
    let mut status = board(t0).snapshot(t0, wall_at(t0, t0));
    status.state = state;
    status.updated_unix_ms = updated_unix_ms;
    status
}

#[test]
fn a_new_board_is_connecting_with_no_worker_id() {
    let t0 = Instant::now();
    let status = board(t0).snapshot(t0, wall_at(t0, t0));
    assert_eq!(status.state, WorkerState::Connecting);
    assert_eq!(status.worker_id, None);
    assert_eq!(status.endpoint, "tcp://127.0.0.1:5555");
    assert_eq!(status.pid, std::process::id());
    assert_eq!(status.last_heard_unix_ms, None);
    assert_eq!(status.last_error, None);
    assert_eq!(status.updated_unix_ms, WALL_MS);
}

#[test]
fn a_welcome_connects_and_a_reset_forgets_the_worker_id() {
    let t0 = Instant::now();
    let mut board = board(t0);
    board.welcomed(7);
    assert_eq!(board.changes, 2, "state and worker id");
    let status = board.snapshot(t0, wall_at(t0, t0));
    assert_eq!(
        (status.state, status.worker_id),
        (WorkerState::Connected, Some(7))
    );

    // A repeated hello answered with the same id changes nothing; a new id is a change.
    board.welcomed(7);
    assert_eq!(board.changes, 2);
    board.welcomed(8);
    assert_eq!(board.changes, 3);

    board.connecting();
    assert_eq!(board.changes, 5, "state and worker id");
    let status = board.snapshot(t0, wall_at(t0, t0));
    assert_eq!(
        (status.state, status.worker_id),
        (WorkerState::Connecting, None)
    );
}

#[test]
fn stopping_keeps_the_worker_id_and_outlasts_late_welcomes_and_resets() {
    let t0 = Instant::now();
    let mut board = board(t0);
    board.welcomed(3);
    board.stopping();
    assert_eq!(board.state, WorkerState::Stopping);
    assert_eq!(board.worker_id, Some(3));
    // A welcome answering an earlier hello arrives after the stop request.
    board.welcomed(4);
    assert_eq!(board.state, WorkerState::Stopping);
    assert_eq!(board.worker_id, Some(4));
    board.connecting();
    assert_eq!(board.state, WorkerState::Stopping);
    assert_eq!(board.worker_id, None);
    board.stopped();
    board.stopping();
    assert_eq!(board.state, WorkerState::Stopped);
}

#[test]
fn snapshot_times_are_the_wall_clock_at_the_moment_of_each_event() {
    let t0 = Instant::now();
    let mut board = board(t0);
    board.last_heard = Some(t0 + Duration::from_millis(250));
    board.error(
        "unit 9: square: integer overflow",
        t0 + Duration::from_millis(400),
    );
    board.updated = t0 + Duration::from_millis(1_000);
    let now = t0 + Duration::from_millis(1_500);
    let status = board.snapshot(now, wall_at(t0, now));
    assert_eq!(status.last_heard_unix_ms, Some(WALL_MS + 250));
    assert_eq!(status.last_error_unix_ms, Some(WALL_MS + 400));
    assert_eq!(
        status.last_error.as_deref(),
        Some("unit 9: square: integer overflow")
    );
    assert_eq!(status.updated_unix_ms, WALL_MS + 1_000);
}

#[test]
fn a_recent_connected_status_is_healthy() {
    let now = UNIX_EPOCH + Duration::from_millis(WALL_MS + 900);
    let health = status(WorkerState::Connected, WALL_MS).health(now, Duration::from_secs(1));
    assert_eq!(health, Health::Healthy);
    assert!(health.is_healthy());
}

#[test]
fn an_old_status_is_stale_whatever_its_state() {
    let now = UNIX_EPOCH + Duration::from_millis(WALL_MS + 1_100);
    for state in [
        WorkerState::Connected,
        WorkerState::Connecting,
        WorkerState::Stopping,
    ] {
        let health = status(state, WALL_MS).health(now, Duration::from_secs(1));
        assert_eq!(
            health,
            Health::Stale {
                age: Duration::from_millis(1_100),
                max_age: Duration::from_secs(1)
            },
            "{state}"
        );
        assert!(!health.is_healthy());
    }
}

#[test]
fn a_recent_status_that_is_not_connected_fails() {
    let now = UNIX_EPOCH + Duration::from_millis(WALL_MS + 10);
    for state in [WorkerState::Connecting, WorkerState::Stopping] {
        let health = status(state, WALL_MS).health(now, Duration::from_secs(10));
        assert_eq!(health, Health::NotConnected(state));
    }
}

#[test]
fn a_stopped_worker_is_reported_stopped_not_stale() {
    let now = UNIX_EPOCH + Duration::from_millis(WALL_MS + 3_600_000);
    let health = status(WorkerState::Stopped, WALL_MS).health(now, Duration::from_secs(10));
    assert_eq!(health, Health::NotConnected(WorkerState::Stopped));
}

#[test]
fn a_status_from_the_future_has_age_zero() {
    // The wall clock was stepped back after the worker wrote its status.
    let now = UNIX_EPOCH + Duration::from_millis(WALL_MS - 5_000);
    let status = status(WorkerState::Connected, WALL_MS);
    assert_eq!(status.age(now), Duration::ZERO);
    assert!(status.health(now, Duration::from_secs(1)).is_healthy());
}

#[test]
fn the_json_names_states_in_lowercase_and_reads_back() {
    let t0 = Instant::now();
    let mut board = board(t0);
    board.welcomed(12);
    let status = board.snapshot(t0, wall_at(t0, t0));
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["state"], "connected");
    assert_eq!(json["worker_id"], 12);
    assert_eq!(json["last_error"], serde_json::Value::Null);
    let back: WorkerStatus = serde_json::from_value(json).unwrap();
    assert_eq!(back, status);
}

#[test]
fn updates_count_state_changes_and_waiters_see_them() {
    let t0 = Instant::now();
    let handle = StatusHandle::new(board(t0));
    assert_eq!(handle.changes(), 0);
    handle.update(|board| board.units_done += 5);
    assert_eq!(handle.changes(), 0, "counters are not state changes");
    assert_eq!(handle.wait_for_change(0, Duration::ZERO), 0);
    handle.update(|board| board.welcomed(1));
    // Already past `seen`: returns without waiting.
    assert_eq!(handle.wait_for_change(0, Duration::from_secs(3600)), 2);
    let status = handle.snapshot();
    assert_eq!(status.units_done, 5);
    assert_eq!(status.state, WorkerState::Connected);
}
