//! A stranger who picks its ZeroMQ routing id cannot bring the delegator down.
//!
//! libzmq gives a peer that sends no routing id of its own an id of a zero byte and a counter,
//! and the counter starts at the same value in every process (glibc's unseeded `random()`). A
//! peer that connects first with the id the next worker would get used to make libzmq abort the
//! delegator when that worker connected, and again after every restart, since the stranger's
//! socket reconnects with the same id. These tests claim the ids of the next workers, then
//! start real workers and a real delegator process, restart it, and check that every result
//! arrives once.

mod common;
mod faults;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use faults::TempDir;

/// The first value of glibc's `random()` without a seed: where libzmq's counter starts.
const UNSEEDED_RANDOM: u32 = 0x6b8b_4567;

/// DEALER sockets holding the ids libzmq would give the next `n` peers without an id.
struct Squatters {
    _sockets: Vec<zmq::Socket>,
    _context: zmq::Context,
}

impl Squatters {
    fn connect(endpoint: &str, n: u32) -> Squatters {
        let context = zmq::Context::new();
        let sockets = (0..n)
            .map(|k| {
                let socket = context.socket(zmq::DEALER).unwrap();
                let mut id = vec![0u8];
                id.extend_from_slice(&UNSEEDED_RANDOM.wrapping_add(k).to_be_bytes());
                socket.set_identity(&id).unwrap();
                socket.set_linger(0).unwrap();
                socket.set_reconnect_ivl(50).unwrap();
                socket.connect(endpoint).unwrap();
                socket
            })
            .collect();
        Squatters {
            _sockets: sockets,
            _context: context,
        }
    }
}

fn start_run(endpoint: &str, output: &Path, resume: bool) -> Child {
    let mut command = delegator_command();
    command
        .args([
            "run", "--task", "sleep", "--range", "3000", "--bind", endpoint,
        ])
        .arg("--output")
        .arg(output)
        .args(["--heartbeat-ms", "200", "--timeout-ms", "2000"])
        .env("GANGER_LOG", "warn")
        .stdin(Stdio::null());
    if resume {
        command.arg("--resume");
    }
    command.spawn().expect("the delegator starts")
}

/// The indices in a results file, each checked to appear once.
fn indices(output: &Path) -> BTreeSet<u64> {
    let text = std::fs::read_to_string(output).unwrap_or_default();
    let mut seen = BTreeSet::new();
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let index = value["index"].as_u64().expect("an index");
        assert!(seen.insert(index), "index {index} twice in {output:?}");
    }
    seen
}

#[test]
fn peers_squatting_the_next_routing_ids_neither_crash_the_delegator_nor_a_restarted_one() {
    let dir = TempDir::new("routing-ids");
    let output = dir.join("out.jsonl");
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());

    let mut delegator = start_run(&endpoint, &output, false);
    std::thread::sleep(Duration::from_millis(300));
    let _squatters = Squatters::connect(&endpoint, 16);
    std::thread::sleep(Duration::from_millis(500));

    // Workers connect one at a time, as the attack needs: each would get a squatted id.
    let mut workers = Vec::new();
    for _ in 0..4 {
        workers.push(WorkerProcess::spawn(&endpoint, &["--threads", "1"]));
        std::thread::sleep(Duration::from_millis(400));
        if let Some(status) = delegator.try_wait().unwrap() {
            panic!("the delegator exited when a worker connected: {status}");
        }
    }
    // Let some results land, then kill it and restart it while the squatters reconnect.
    let deadline = Instant::now() + Duration::from_secs(60);
    while indices(&output).len() < 200 {
        assert!(Instant::now() < deadline, "no results arrived");
        if let Some(status) = delegator.try_wait().unwrap() {
            panic!("the delegator exited during the run: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    delegator.kill().unwrap();
    delegator.wait().unwrap();

    let mut restarted = start_run(&endpoint, &output, true);
    let status = wait_with_limit(&mut restarted, Duration::from_secs(120));
    assert!(status.success(), "the restarted delegator failed: {status}");
    assert_eq!(indices(&output), (0..3000).collect::<BTreeSet<u64>>());
}
