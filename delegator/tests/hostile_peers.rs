//! A raw ZeroMQ client misbehaving next to real workers: it gets the documented reaction each
//! time, and the job the real workers run is untouched.

mod common;

use std::time::Duration;

use common::*;
use ganger_cluster::JobOptions;
use ganger_core::protocol::{self, Hello, Message, PROTOCOL_VERSION};

struct RawClient {
    socket: zmq::Socket,
    _context: zmq::Context,
}

impl RawClient {
    fn connect(endpoint: &str) -> RawClient {
        let context = zmq::Context::new();
        let socket = context.socket(zmq::DEALER).unwrap();
        socket.set_rcvtimeo(10_000).unwrap();
        socket.set_linger(0).unwrap();
        socket.connect(endpoint).unwrap();
        RawClient {
            socket,
            _context: context,
        }
    }

    /// Sends raw frames as one message and returns the decoded reply's type and text.
    fn exchange(&self, frames: &[&[u8]]) -> (String, String) {
        self.socket.send_multipart(frames, 0).unwrap();
        let reply = self.socket.recv_bytes(0).expect("the delegator answers");
        match protocol::decode(&reply).expect("the reply decodes") {
            Message::Reject(reject) => ("reject".into(), reject.reason),
            Message::Reset(reset) => ("reset".into(), reset.reason),
            other => (other.type_name().into(), String::new()),
        }
    }
}

fn encode(message: &Message<'_>) -> Vec<u8> {
    let mut frame = Vec::new();
    protocol::encode(message, &mut frame);
    frame
}

#[test]
fn garbage_wrong_versions_and_oversize_frames_are_answered_dropped_and_counted() {
    let mut config = test_config();
    config.scheduler.max_frame = 64 * 1024;
    config.scheduler.max_batch_bytes = 16 * 1024;
    let delegator = start_delegator(config);
    let endpoint = delegator.local_endpoint();
    let _workers: Vec<_> = (0..2)
        .map(|_| WorkerProcess::spawn(&endpoint, &["--threads", "1"]))
        .collect();
    let n = 20_000u64;
    let job = delegator
        .submit::<_, u64>(
            "spin",
            std::iter::repeat_n(20u64, n as usize),
            JobOptions::default(),
        )
        .unwrap();

    let client = RawClient::connect(&endpoint);
    let (kind, reason) = client.exchange(&[b"\xc0\xff garbage"]);
    assert_eq!(kind, "reject");
    assert!(reason.contains("expected a map"), "{reason}");

    // 0xc1 (never MessagePack) starts a sealed frame: with no session here, the answer is a
    // plaintext reset, so that a worker whose connection was re-established shakes hands again.
    let (kind, reason) = client.exchange(&[b"\xc1\xff garbage"]);
    assert_eq!(kind, "reset");
    assert!(reason.contains("unknown session"), "{reason}");

    let (kind, reason) = client.exchange(&[b"\x81\xa4type\xa5shout"]);
    assert_eq!(kind, "reject");
    assert!(reason.contains("unknown message type `shout`"), "{reason}");

    let hello = encode(&Message::Hello(Hello {
        protocol: 99,
        name: "time-traveller".into(),
        host: "future".into(),
        job_types: vec!["square".into()],
        slots: 1,
        prefetch: 0,
        nonce: None,
    }));
    let (kind, reason) = client.exchange(&[&hello]);
    assert_eq!(kind, "reject");
    assert!(
        reason.contains("version 99") && reason.contains(&format!("version {PROTOCOL_VERSION}")),
        "{reason}"
    );

    let oversize = vec![0x90u8; 100 * 1024];
    let (kind, reason) = client.exchange(&[&oversize]);
    assert_eq!(kind, "reject");
    assert!(
        reason.contains("exceeds the limit of 65536 bytes"),
        "{reason}"
    );

    let (kind, reason) = client.exchange(&[b"\x81\xa4type\xa9heartbeat", b"extra part"]);
    assert_eq!(kind, "reject");
    assert!(reason.contains("expected 1 body frame, got 2"), "{reason}");

    let heartbeat = encode(&Message::Heartbeat);
    let (kind, reason) = client.exchange(&[&heartbeat]);
    assert_eq!(kind, "reset");
    assert!(reason.contains("send hello first"), "{reason}");

    let mut delivered = 0;
    for (_, result) in job {
        assert_eq!(result, Ok(20));
        delivered += 1;
    }
    assert_eq!(delivered, n);
    let stats = delegator.stats().unwrap();
    assert_eq!(stats.dropped.malformed, 2, "{:?}", stats.dropped);
    assert_eq!(stats.dropped.unknown_type, 1);
    assert_eq!(stats.dropped.rejected, 1);
    assert_eq!(stats.dropped.oversize, 1);
    assert_eq!(stats.dropped.unregistered, 1);
    assert_eq!(
        stats.workers.len(),
        2,
        "the real workers were not disturbed"
    );
    assert_eq!(stats.counters.requeued, 0);
}

#[test]
fn a_frame_far_over_the_limit_is_cut_off_by_the_transport() {
    let mut config = test_config();
    config.scheduler.max_frame = 16 * 1024;
    let delegator = start_delegator(config);
    let client = RawClient::connect(&delegator.local_endpoint());
    client.socket.set_rcvtimeo(500).unwrap();
    // Four times the limit and more: libzmq drops the connection before buffering it all.
    let huge = vec![0u8; 1 << 20];
    client.socket.send(&huge[..], 0).unwrap();
    assert!(
        client.socket.recv_bytes(0).is_err(),
        "no answer to a frame that was never read"
    );
    std::thread::sleep(Duration::from_millis(100));
    let stats = delegator.stats().unwrap();
    assert_eq!(stats.dropped.oversize, 0);
    assert_eq!(stats.dropped.malformed, 0);
}

fn hello(name: &str) -> Vec<u8> {
    encode(&Message::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        name: name.into(),
        host: "test".into(),
        job_types: vec!["square".into()],
        slots: 1,
        prefetch: 0,
        nonce: None,
    }))
}

/// Regression: a second hello on the same connection used to leave the new registration
/// without an address, so every later message was answered with `reset`.
#[test]
fn a_second_hello_from_a_registered_worker_registers_it_cleanly_again() {
    let delegator = start_delegator(test_config());
    let client = RawClient::connect(&delegator.local_endpoint());
    assert_eq!(client.exchange(&[&hello("first")]).0, "welcome");
    assert_eq!(client.exchange(&[&hello("second")]).0, "welcome");
    // Still registered: a heartbeat is not answered with a reset.
    client.socket.set_rcvtimeo(300).unwrap();
    client.socket.send(encode(&Message::Heartbeat), 0).unwrap();
    let stats = wait_for(&delegator, Duration::from_secs(10), "the heartbeat", |s| {
        s.workers.len() == 1
    });
    assert_eq!(stats.workers[0].name, "second");
    assert_eq!(stats.dropped.unregistered, 0);
    // The delegator's own heartbeats arrive (one per 200 ms); a reset must not.
    for _ in 0..3 {
        let reply = client
            .socket
            .recv_bytes(0)
            .expect("the delegator heartbeats");
        let message = protocol::decode(&reply).unwrap();
        assert_eq!(message, Message::Heartbeat);
    }
}
