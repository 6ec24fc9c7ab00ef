//! Hundreds of strangers, each trying to make the delegator buffer the largest frame it can,
//! hold it to a stated ceiling while a real job finishes: the delegator keeps at most
//! `--max-pending-connections` unregistered connections, each for at most
//! `--pending-connection-ms`, and each can hold at most `--max-frame-bytes` + 64 KiB.

mod common;
mod faults;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use faults::TempDir;

const MAX_FRAME: u64 = 1 << 20;
const MAX_PENDING: u64 = 16;
const HOSTILE: usize = 300;

/// A ZMTP 3.0 greeting for the NULL mechanism, then a READY command from a DEALER.
fn zmtp_handshake() -> Vec<u8> {
    let mut bytes = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 3, 0];
    let mut mechanism = b"NULL".to_vec();
    mechanism.resize(20, 0);
    bytes.extend_from_slice(&mechanism);
    bytes.push(0); // as-server
    bytes.extend_from_slice(&[0; 31]);
    let mut ready = vec![5];
    ready.extend_from_slice(b"READY");
    ready.push(11);
    ready.extend_from_slice(b"Socket-Type");
    ready.extend_from_slice(&6u32.to_be_bytes());
    ready.extend_from_slice(b"DEALER");
    bytes.push(0x04);
    bytes.push(ready.len() as u8);
    bytes.extend_from_slice(&ready);
    bytes
}

/// One stranger: connects, announces a frame just under the transport's cap, sends all of it
/// but its last byte, and waits to be cut off; then does it again, until `stop`.
fn stranger(address: String, stop: Arc<AtomicBool>, cut: Arc<AtomicU64>) {
    let size = MAX_FRAME + (64 << 10) - 1;
    let chunk = vec![0x55u8; 64 << 10];
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = TcpStream::connect(&address) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let mut header = zmtp_handshake();
        header.push(0x02);
        header.extend_from_slice(&size.to_be_bytes());
        if stream.write_all(&header).is_err() {
            continue;
        }
        let mut left = size - 1;
        while left > 0 && !stop.load(Ordering::Relaxed) {
            let n = left.min(chunk.len() as u64) as usize;
            match stream.write(&chunk[..n]) {
                Ok(0) | Err(_) => break,
                Ok(written) => left -= written as u64,
            }
        }
        // Hold the frame open until the delegator cuts the connection.
        let mut buffer = [0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            match stream.read(&mut buffer) {
                Ok(0) => {
                    cut.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => {
                    cut.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

/// The process's peak resident set, from /proc, in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
fn hundreds_of_strangers_sending_huge_frames_stay_under_the_ceiling_while_a_job_finishes() {
    let dir = TempDir::new("hostile-load");
    let output = dir.join("out.jsonl");
    let log = dir.join("delegator.log");
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let mut delegator = delegator_command()
        .args([
            "run", "--task", "sleep", "--range", "4000", "--bind", &endpoint,
        ])
        .arg("--output")
        .arg(&output)
        .args(["--max-frame-bytes", &MAX_FRAME.to_string()])
        .args(["--max-pending-connections", &MAX_PENDING.to_string()])
        .args(["--pending-connection-ms", "1000"])
        .env("GANGER_LOG", "info")
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the delegator starts");
    let pid = delegator.id();
    let _workers: Vec<_> = (0..2)
        .map(|_| WorkerProcess::spawn(&endpoint, &["--threads", "1"]))
        .collect();
    // The workers register before the flood (new workers may be refused during one).
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&output)
        .unwrap_or_default()
        .lines()
        .count()
        < 50
    {
        assert!(Instant::now() < deadline, "the workers never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    let baseline = peak_rss(pid).expect("the delegator's memory");

    let stop = Arc::new(AtomicBool::new(false));
    let cut = Arc::new(AtomicU64::new(0));
    let strangers: Vec<_> = (0..HOSTILE)
        .map(|_| {
            let (address, stop, cut) = (format!("127.0.0.1:{port}"), stop.clone(), cut.clone());
            std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || stranger(address, stop, cut))
                .unwrap()
        })
        .collect();

    let mut peak = baseline;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = delegator.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not finish under the flood"
        );
        if let Some(rss) = peak_rss(pid) {
            peak = peak.max(rss);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    stop.store(true, Ordering::Relaxed);
    for stranger in strangers {
        stranger.join().unwrap();
    }
    assert!(
        status.success(),
        "the delegator failed under the flood: {status}"
    );
    let lines = std::fs::read_to_string(&output).unwrap();
    let mut indices: Vec<u64> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    indices.sort_unstable();
    assert_eq!(
        indices,
        (0..4000).collect::<Vec<u64>>(),
        "every result once"
    );
    // The workers' own connections were never cut: each registered once.
    let log = std::fs::read_to_string(&log).unwrap();
    let registrations = log.matches("worker registered").count();
    assert_eq!(
        registrations, 2,
        "the workers were cut and registered again:\n{log}"
    );
    assert!(
        cut.load(Ordering::Relaxed) >= HOSTILE as u64,
        "the strangers were not cut off: {}",
        cut.load(Ordering::Relaxed)
    );
    // The stated ceiling: what pending connections can hold, above the working memory, with
    // room for libzmq's and the allocator's per-connection overhead.
    let ceiling = MAX_PENDING * (MAX_FRAME + (64 << 10)) + (32 << 20);
    let grew = peak.saturating_sub(baseline);
    eprintln!(
        "peak RSS {:.1} MB, {:.1} MB above the {:.1} MB before the flood (ceiling {:.1} MB); \
         {} connections cut",
        peak as f64 / 1e6,
        grew as f64 / 1e6,
        baseline as f64 / 1e6,
        ceiling as f64 / 1e6,
        cut.load(Ordering::Relaxed)
    );
    assert!(
        grew <= ceiling,
        "the flood grew the delegator by {grew} bytes, over {ceiling}"
    );
}
