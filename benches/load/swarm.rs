//! The load bench's swarm process (`--role swarm`): many simulated workers, DEALER sockets
//! speaking the protocol by hand, served from one `zmq::poll` loop.

use std::collections::VecDeque;
use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use ganger::core::protocol::{self, Hello, Message, Results, UnitResultRef};

use super::{CAPACITY, HEARTBEAT_MS};

/// One simulated worker: a DEALER speaking the protocol by hand.
struct Simulated {
    socket: zmq::Socket,
    hello: Vec<u8>,
    welcomed: bool,
    last_sent: Instant,
    outbox: VecDeque<Vec<u8>>,
}

/// What a swarm counts, read by its reporting thread.
#[derive(Default)]
struct SwarmCounters {
    heartbeats_sent: AtomicU64,
    heartbeats_received: AtomicU64,
    units: AtomicU64,
}

pub(super) fn swarm_role(endpoint: &str, count: usize, name: &str) -> Result<()> {
    let counters = Arc::new(SwarmCounters::default());
    let reporter = counters.clone();
    thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.map(|l| l.trim() == "report").unwrap_or(false) {
                println!(
                    "report {} {} {}",
                    reporter.heartbeats_sent.load(Ordering::Relaxed),
                    reporter.heartbeats_received.load(Ordering::Relaxed),
                    reporter.units.load(Ordering::Relaxed)
                );
            }
        }
        // The conductor is gone: so is the swarm.
        std::process::exit(0);
    });
    let context = zmq::Context::new();
    let mut workers = Vec::with_capacity(count);
    for i in 0..count {
        let socket = context.socket(zmq::DEALER)?;
        socket.set_immediate(true)?;
        socket.set_sndhwm(0)?;
        socket.set_rcvhwm(0)?;
        socket.set_linger(0)?;
        socket.connect(endpoint)?;
        let mut hello = Vec::new();
        protocol::encode(
            &Message::Hello(Hello {
                protocol: protocol::PROTOCOL_VERSION,
                name: format!("{name}-{i}"),
                host: "load".into(),
                job_types: vec!["echo".into(), "hold".into()],
                slots: 1,
                prefetch: (CAPACITY - 1) as u32,
                nonce: None,
            }),
            &mut hello,
        );
        workers.push(Simulated {
            socket,
            hello: hello.clone(),
            welcomed: false,
            last_sent: Instant::now() - Duration::from_secs(10),
            outbox: VecDeque::from([hello]),
        });
    }
    let mut readable = Vec::with_capacity(count);
    loop {
        readable.clear();
        {
            let mut items: Vec<zmq::PollItem<'_>> = workers
                .iter()
                .map(|w| w.socket.as_poll_item(zmq::POLLIN))
                .collect();
            zmq::poll(&mut items, 20)?;
            readable.extend(
                items
                    .iter()
                    .enumerate()
                    .filter(|(_, item)| item.is_readable())
                    .map(|(i, _)| i),
            );
        }
        for &i in &readable {
            serve(&mut workers[i], &counters)?;
        }
        for worker in &mut workers {
            tend(worker, &counters);
        }
    }
}

/// Reads and answers everything waiting on one simulated worker's socket.
fn serve(worker: &mut Simulated, counters: &SwarmCounters) -> Result<()> {
    while let Ok(frame) = worker.socket.recv_bytes(zmq::DONTWAIT) {
        match protocol::decode(&frame) {
            Ok(Message::Welcome(_)) => worker.welcomed = true,
            Ok(Message::Reset(_)) => {
                worker.welcomed = false;
                worker.outbox.push_back(worker.hello.clone());
            }
            Ok(Message::Heartbeat) => {
                counters.heartbeats_received.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Message::Work(work)) if worker.welcomed => {
                let started = Instant::now();
                let results: Vec<UnitResultRef<'_>> = work
                    .units
                    .iter()
                    .filter(|unit| unit.job_type == "echo")
                    .map(|unit| UnitResultRef {
                        id: unit.id,
                        outcome: Ok(unit.payload),
                    })
                    .collect();
                if results.is_empty() {
                    continue;
                }
                counters
                    .units
                    .fetch_add(results.len() as u64, Ordering::Relaxed);
                let mut frame = Vec::new();
                protocol::encode(
                    &Message::Results(Results {
                        batch: work.batch,
                        elapsed_us: started.elapsed().as_micros().max(1) as u64,
                        results,
                    }),
                    &mut frame,
                );
                worker.outbox.push_back(frame);
            }
            Ok(Message::Reject(reject)) => bail!("rejected: {}", reject.reason),
            _ => {}
        }
    }
    Ok(())
}

/// Sends what is waiting, a heartbeat when idle, and a repeated hello while unanswered.
fn tend(worker: &mut Simulated, counters: &SwarmCounters) {
    let idle = worker.last_sent.elapsed();
    if worker.outbox.is_empty() {
        if !worker.welcomed && idle >= Duration::from_secs(1) {
            worker.outbox.push_back(worker.hello.clone());
        } else if worker.welcomed && idle >= Duration::from_millis(HEARTBEAT_MS) {
            let mut frame = Vec::with_capacity(16);
            protocol::encode(&Message::Heartbeat, &mut frame);
            worker.outbox.push_back(frame);
            counters.heartbeats_sent.fetch_add(1, Ordering::Relaxed);
        }
    }
    while let Some(frame) = worker.outbox.front() {
        // Not yet connected (IMMEDIATE): try again on a later turn.
        if worker.socket.send(&frame[..], zmq::DONTWAIT).is_err() {
            return;
        }
        worker.outbox.pop_front();
        worker.last_sent = Instant::now();
    }
}
