//! The delegator's limits with real sockets and processes on 127.0.0.1: a worker beyond
//! `max_workers` is rejected while the registered ones keep working, and a producer faster than
//! the workers is held at `max_queued_bytes` and then loses nothing.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ganger_cluster::JobOptions;
use ganger_core::payload::Payload;
use ganger_core::protocol::{self, Hello, Message, PROTOCOL_VERSION};

/// A raw DEALER saying hello; returns the reply's type and text.
fn raw_hello(endpoint: &str) -> (String, String) {
    let context = zmq::Context::new();
    let socket = context.socket(zmq::DEALER).unwrap();
    socket.set_rcvtimeo(10_000).unwrap();
    socket.set_linger(0).unwrap();
    socket.connect(endpoint).unwrap();
    let mut frame = Vec::new();
    protocol::encode(
        &Message::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            name: "one-too-many".into(),
            host: "test".into(),
            job_types: vec!["square".into()],
            slots: 1,
            prefetch: 1,
            nonce: None,
        }),
        &mut frame,
    );
    socket.send(frame, 0).unwrap();
    let reply = socket.recv_bytes(0).expect("the delegator answers");
    match protocol::decode(&reply).expect("the reply decodes") {
        Message::Reject(reject) => ("reject".into(), reject.reason),
        other => (other.type_name().into(), String::new()),
    }
}

#[test]
fn a_hello_beyond_max_workers_is_rejected_and_the_registered_workers_keep_working() {
    let mut config = test_config();
    config.scheduler.max_workers = 2;
    let delegator = start_delegator(config);
    let endpoint = delegator.local_endpoint();
    let _workers: Vec<_> = (0..2)
        .map(|_| WorkerProcess::spawn(&endpoint, &["--threads", "1"]))
        .collect();
    let before = wait_for(&delegator, Duration::from_secs(30), "2 workers", |s| {
        s.workers.len() == 2
    });

    let (kind, reason) = raw_hello(&endpoint);
    assert_eq!(kind, "reject");
    assert!(reason.contains("worker limit reached"), "{reason}");
    assert!(reason.contains("--max-workers"), "{reason}");

    // A real worker process beyond the limit is refused too, and gives up.
    let mut third = WorkerProcess::spawn(&endpoint, &["--threads", "1"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while third.is_running() {
        assert!(
            Instant::now() < deadline,
            "the refused worker keeps running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ne!(
        third.wait(),
        Some(0),
        "a refused worker exits with an error"
    );

    let stats = delegator.stats().unwrap();
    assert_eq!(stats.counters.workers_refused, 2, "{stats:#?}");
    assert_eq!(stats.dropped.rejected, 2, "{stats:#?}");
    let ids = |s: &ganger_cluster::Stats| s.workers.iter().map(|w| w.id).collect::<Vec<_>>();
    assert_eq!(
        ids(&stats),
        ids(&before),
        "the registered workers are unaffected"
    );

    let job = delegator
        .submit::<_, i64>("square", 0..500i64, JobOptions::default())
        .unwrap();
    let squares = job.collect_ordered().unwrap();
    assert_eq!(squares.len(), 500);
    for (i, square) in squares.into_iter().enumerate() {
        assert_eq!(square, Ok((i * i) as i64));
    }
}

#[test]
fn a_producer_faster_than_the_workers_is_held_at_the_queue_cap_and_loses_nothing() {
    // Units of 64 bytes, streamed in chunks of 4096 (256 KiB): the cap holds two chunks, and
    // the job is 10 times the cap.
    const UNIT_BYTES: usize = 64;
    const CAP: u64 = 1 << 19;
    let n = 10 * CAP as usize / UNIT_BYTES;
    let mut config = test_config();
    config.scheduler.max_queued_bytes = CAP;
    let delegator = Arc::new(start_delegator(config));
    let payload = |index: usize| {
        let mut bytes = vec![0xa5; UNIT_BYTES];
        bytes[..8].copy_from_slice(&(index as u64).to_le_bytes());
        Payload::from_slice(&bytes)
    };
    let producer = {
        let delegator = delegator.clone();
        std::thread::spawn(move || {
            delegator
                .submit_payloads::<Vec<u8>>("noop", (0..n).map(payload), JobOptions::default())
                .expect("submit")
        })
    };

    // No worker yet: the producer fills the queue up to the cap and waits there.
    let stats = wait_for(&delegator, Duration::from_secs(30), "a full queue", |s| {
        s.queued_bytes > CAP / 2
    });
    let mut highest = stats.queued_bytes;
    for _ in 0..20 {
        let stats = delegator.stats().unwrap();
        highest = highest.max(stats.queued_bytes);
        assert!(!producer.is_finished(), "the producer was not held back");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(highest <= CAP, "{highest} bytes queued, cap {CAP}");
    assert!(stats.counters.submitted < n as u64, "{stats:#?}");

    // A worker drains the queue; the producer resumes, and stays under the cap meanwhile.
    let _worker = WorkerProcess::spawn(&delegator.local_endpoint(), &["--threads", "2"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !producer.is_finished() {
        let stats = delegator.stats().unwrap();
        highest = highest.max(stats.queued_bytes);
        assert!(
            Instant::now() < deadline,
            "the producer never finished: {stats:#?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(highest <= CAP, "{highest} bytes queued, cap {CAP}");
    let mut job = producer.join().unwrap();

    let mut seen = vec![false; n];
    while let Some(outcome) = job.next_raw() {
        let index = outcome.index as usize;
        assert!(!seen[index], "unit {index} delivered twice");
        seen[index] = true;
        let output = outcome.result.expect("noop succeeds");
        assert_eq!(output, payload(index), "unit {index} came back changed");
    }
    let missing = seen.iter().filter(|s| !**s).count();
    assert_eq!(missing, 0, "{missing} units lost");
    let stats = delegator.stats().unwrap();
    assert_eq!(stats.queued_bytes, 0, "{stats:#?}");
    assert_eq!(stats.counters.completed, n as u64);
}
