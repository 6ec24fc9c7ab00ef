//! A worker that has not reached its delegator says so, every few seconds, with the address
//! and the likely cause, instead of printing nothing: the real `ganger-worker` on 127.0.0.1.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;
use common::WORKER;

/// Starts a worker dialling `endpoint` and returns it with the lines of its stderr.
fn worker(endpoint: &str) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(WORKER)
        .args(["--connect", endpoint, "--threads", "1"])
        .env("GANGER_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("worker starts");
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, lines_rx)
}

/// The first line containing `wanted` within 30 s (the note comes every 5 s).
fn line_with(lines: &mpsc::Receiver<String>, wanted: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(wanted) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no line with {wanted:?} in 30 s; it said: {seen:#?}");
}

#[test]
fn a_worker_with_no_delegator_to_connect_to_says_so_with_the_address() {
    // A port that was free a moment ago: nothing listens there.
    let endpoint = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("tcp://{}", listener.local_addr().unwrap())
    };
    let (mut child, lines) = worker(&endpoint);
    let line = line_with(&lines, "waiting for the delegator: no connection yet");
    assert!(line.contains(&format!("connect={endpoint}")), "{line}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_worker_whose_hello_goes_unanswered_says_so() {
    // A ROUTER that takes the connection and never answers (as a delegator with another
    // secret, or another program, would).
    let context = zmq::Context::new();
    let router = context.socket(zmq::ROUTER).unwrap();
    router.bind("tcp://127.0.0.1:0").unwrap();
    let endpoint = router.get_last_endpoint().unwrap().unwrap();
    let (mut child, lines) = worker(&endpoint);
    let line = line_with(&lines, "the delegator has not answered the hello");
    assert!(line.contains(&format!("connect={endpoint}")), "{line}");
    let _ = child.kill();
    let _ = child.wait();
}
