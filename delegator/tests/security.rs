//! Protocol version 2 with real processes and sockets: authenticated workers run the job;
//! workers with the wrong secret or none, and a raw DEALER that skips, forges or replays the
//! handshake, get no unit and are counted; the secret stays out of the logs; the bind policy and
//! `ganger-delegator secret` behave as documented.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ganger_cluster::{Delegator, DelegatorConfig, JobOptions};
use ganger_core::protocol::secure::{self, Channel, Handshake, Secret, Side};
use ganger_core::protocol::{self, Auth, Hello, Message, PROTOCOL_VERSION};

const SECRET: &str = "9c4952faf9aea30c5cb631cd05f4e9254ee68e711c840067aa326ed8d09202a8";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ganger-security-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_secret(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("secret");
    std::fs::write(&path, format!("{text}\n")).unwrap();
    path
}

fn secure_config() -> DelegatorConfig {
    DelegatorConfig {
        secret: Some(Secret::new(SECRET.as_bytes()).unwrap()),
        ..test_config()
    }
}

fn encode(message: &Message<'_>) -> Vec<u8> {
    let mut frame = Vec::new();
    protocol::encode(message, &mut frame);
    frame
}

/// A DEALER speaking the protocol by hand, to do what a real worker never would.
struct RawPeer {
    socket: zmq::Socket,
    _context: zmq::Context,
    channel: Option<Channel>,
}

impl RawPeer {
    fn connect(endpoint: &str) -> RawPeer {
        let context = zmq::Context::new();
        let socket = context.socket(zmq::DEALER).unwrap();
        socket.set_rcvtimeo(10_000).unwrap();
        socket.set_linger(0).unwrap();
        socket.connect(endpoint).unwrap();
        RawPeer {
            socket,
            _context: context,
            channel: None,
        }
    }

    fn send(&self, frame: &[u8]) {
        self.socket.send(frame, 0).unwrap();
    }

    /// The next frame, raw.
    fn recv(&self) -> Vec<u8> {
        self.socket.recv_bytes(0).expect("the delegator answers")
    }

    /// The next frame's type and reason, opening it if sealed.
    fn answer(&mut self) -> (String, String) {
        let mut frame = self.recv();
        if secure::is_sealed(&frame) {
            let channel = self
                .channel
                .as_mut()
                .expect("a sealed frame needs a session");
            frame = channel
                .opener
                .open(&frame)
                .expect("the delegator's frame opens");
        }
        match protocol::decode(&frame).expect("the answer decodes") {
            Message::Reject(reject) => ("reject".into(), reject.reason),
            Message::Reset(reset) => ("reset".into(), reset.reason),
            other => (other.type_name().into(), String::new()),
        }
    }

    /// Sends a hello (with a fixed nonce if `nonce`) serving only a job type nobody submits.
    fn hello(&self, nonce: Option<[u8; 32]>) -> Vec<u8> {
        let frame = encode(&Message::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            name: "raw".into(),
            host: "test".into(),
            job_types: vec!["served-by-nobody".into()],
            slots: 1,
            prefetch: 0,
            nonce,
        }));
        self.send(&frame);
        frame
    }

    /// Shakes hands with `secret`, up to and including the delegator's sealed welcome.
    fn authenticate(&mut self, secret: &Secret) -> (String, String) {
        let nonce = [7u8; 32];
        let hello = self.hello(Some(nonce));
        let Message::Challenge(challenge) = protocol::decode(&self.recv()).unwrap() else {
            panic!("expected a challenge");
        };
        let handshake = Handshake::new(&hello, &nonce, &challenge.nonce);
        self.send(&encode(&Message::Auth(Auth {
            proof: handshake.proof(secret),
        })));
        self.channel = Some(handshake.channel(secret, Side::Worker));
        self.answer()
    }

    fn seal(&mut self, message: &Message<'_>) -> Vec<u8> {
        let channel = self.channel.as_mut().expect("a session");
        channel.sealer.seal(&encode(message))
    }
}

fn results_frame() -> Vec<u8> {
    encode(&Message::Results(protocol::Results {
        batch: 1,
        elapsed_us: 1,
        results: vec![protocol::UnitResultRef {
            id: 0,
            outcome: Ok(b"\x2a"),
        }],
    }))
}

fn worker_with(endpoint: &str, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = Command::new(worker_bin());
    command
        .arg("--connect")
        .arg(endpoint)
        .args(["--threads", "1"])
        .args(args)
        .env_remove("GANGER_SECRET")
        .env_remove("GANGER_SECRET_FILE")
        .env("GANGER_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// Runs a worker that must be turned away: its exit status and stderr.
fn turned_away(endpoint: &str, env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let child = worker_with(endpoint, env, args).spawn().unwrap();
    let pid = child.id() as i32;
    // A guard against a hang, not a timing assertion: a rejected worker exits at once.
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        // SAFETY: kill(2) on a pid we spawned; harmless if it has already been reaped.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    let output = child.wait_with_output().unwrap();
    drop(killer);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_job_runs_on_authenticated_workers_and_impostors_get_nothing() {
    let delegator = start_delegator(secure_config());
    let endpoint = delegator.local_endpoint();
    let dir = temp_dir("impostors");
    let secret_file = write_secret(&dir, SECRET);

    // A worker with another secret, and one with none, are rejected and exit with status 2.
    let wrong = "another secret that is long enough";
    let (code, stderr) = turned_away(&endpoint, &[("GANGER_SECRET", wrong)], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(
        !stderr.contains(wrong),
        "the worker logged its secret: {stderr}"
    );
    let (code, stderr) = turned_away(&endpoint, &[], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("requires authentication"), "{stderr}");
    assert!(stderr.contains("GANGER_SECRET"), "{stderr}");

    // A raw peer skipping the handshake: results before any hello, sealed garbage.
    let mut skipper = RawPeer::connect(&endpoint);
    skipper.send(&results_frame());
    assert_eq!(skipper.answer().0, "reset");
    let mut garbage = vec![secure::SEALED_MARKER];
    garbage.extend_from_slice(&[0x5a; 40]);
    skipper.send(&garbage);
    assert_eq!(skipper.answer().0, "reset");
    // A hello without a nonce is refused, naming what to do.
    skipper.hello(None);
    let (kind, reason) = skipper.answer();
    assert_eq!(kind, "reject");
    assert!(
        reason.contains("--secret-file or GANGER_SECRET"),
        "{reason}"
    );

    // A raw peer that says hello and then, instead of a proof, sends results: dropped unanswered
    // while pending; then a forged proof is rejected.
    let mut forger = RawPeer::connect(&endpoint);
    forger.hello(Some([1; 32]));
    assert!(matches!(
        protocol::decode(&forger.recv()).unwrap(),
        Message::Challenge(_)
    ));
    forger.send(&results_frame());
    forger.send(&encode(&Message::Auth(Auth { proof: [0; 32] })));
    let (kind, reason) = forger.answer();
    assert_eq!(
        (kind.as_str(), reason.as_str()),
        ("reject", "authentication failed")
    );

    // A raw peer that knows the secret registers, and replays a captured sealed frame: on its own
    // connection the replay is counted and the worker dropped; on another connection (no
    // session there) it gets a plaintext reset.
    let secret = Secret::new(SECRET.as_bytes()).unwrap();
    let mut insider = RawPeer::connect(&endpoint);
    assert_eq!(insider.authenticate(&secret).0, "welcome");
    let captured = insider.seal(&Message::Heartbeat);
    insider.send(&captured);
    insider.send(&captured);
    let (kind, _) = loop {
        let answer = insider.answer();
        if answer.0 != "heartbeat" {
            break answer;
        }
    };
    assert_eq!(kind, "reset", "a replay ends the session");
    let mut replayer = RawPeer::connect(&endpoint);
    replayer.send(&captured);
    let (kind, reason) = replayer.answer();
    assert_eq!(kind, "reset", "{reason}");

    // Only now the genuine worker: every unit must be its.
    let _good = WorkerProcess::spawn(
        &endpoint,
        &[
            "--threads",
            "2",
            "--name",
            "good",
            "--secret-file",
            secret_file.to_str().unwrap(),
        ],
    );
    let n = 5_000i64;
    let job = delegator
        .submit::<_, i64>("square", 0..n, JobOptions::default())
        .unwrap();
    let squares = job.collect_ordered().unwrap();
    for (i, square) in squares.iter().enumerate() {
        assert_eq!(square.as_ref().ok(), Some(&(i as i64 * i as i64)));
    }
    let stats = delegator.stats().unwrap();
    assert_eq!(stats.counters.completed, n as u64);
    let good: Vec<_> = stats.workers.iter().filter(|w| w.name == "good").collect();
    assert_eq!(good.len(), 1, "{stats:#?}");
    assert_eq!(good[0].units_done, n as u64, "{stats:#?}");
    assert!(
        stats.workers.iter().all(|w| w.name == "good"),
        "only the genuine worker is registered: {stats:#?}"
    );
    // Counted: wrong proof (worker and forger), no nonce (worker and skipper), results before
    // hello, sealed garbage, results while pending, the replay on another connection.
    assert!(stats.dropped.unauthenticated >= 8, "{:#?}", stats.dropped);
    assert_eq!(stats.dropped.replayed, 1, "{:#?}", stats.dropped);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_worker_with_a_secret_refuses_a_delegator_without_one() {
    let delegator = start_delegator(test_config());
    let (code, stderr) = turned_away(
        &delegator.local_endpoint(),
        &[("GANGER_SECRET", SECRET)],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("this delegator has no secret"), "{stderr}");
    assert_eq!(delegator.stats().unwrap().workers.len(), 0);
}

#[test]
fn the_secret_never_appears_in_the_logs() {
    let dir = temp_dir("logs");
    let secret_file = write_secret(&dir, SECRET);
    let output = delegator_command()
        .args([
            "run",
            "--task",
            "square",
            "--range",
            "300",
            "--local-workers",
            "1",
        ])
        .args(["--log-format", "json", "--output"])
        .arg(dir.join("out.jsonl"))
        .arg("--secret-file")
        .arg(&secret_file)
        .env_remove("GANGER_SECRET")
        .env("GANGER_LOG", "debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let out = std::fs::read_to_string(dir.join("out.jsonl")).unwrap();
    assert_eq!(out.lines().count(), 300);
    // Both processes' debug logs are here (the local worker shares the delegator's stderr),
    // and the handshake did happen.
    assert!(stderr.contains("worker authenticated"), "{stderr}");
    assert!(stderr.contains("\"authenticated\":true"), "{stderr}");
    assert!(!stderr.contains(SECRET), "the secret was logged");
    assert!(
        !stderr.contains(&SECRET[..16]),
        "part of the secret was logged"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn binding_a_non_loopback_address_needs_a_secret_or_insecure() {
    let dir = temp_dir("bind");
    let output = delegator_command()
        .args([
            "run",
            "--task",
            "square",
            "--range",
            "10",
            "--bind",
            "tcp://0.0.0.0:0",
        ])
        .env_remove("GANGER_SECRET")
        .env_remove("GANGER_SECRET_FILE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--insecure"), "{stderr}");
    assert!(stderr.contains("tcp://0.0.0.0:0"), "{stderr}");

    // With --insecure it binds, warns, and a plaintext worker over loopback runs the job.
    let endpoint_file = dir.join("endpoint");
    let delegator = delegator_command()
        .args(["run", "--task", "square", "--range", "10", "--insecure"])
        .args(["--bind", "tcp://0.0.0.0:0", "--endpoint-file"])
        .arg(&endpoint_file)
        .arg("--output")
        .arg(dir.join("out.jsonl"))
        .env_remove("GANGER_SECRET")
        .env_remove("GANGER_SECRET_FILE")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let endpoint = loop {
        if let Ok(endpoint) = std::fs::read_to_string(&endpoint_file) {
            if !endpoint.is_empty() {
                break endpoint;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the delegator never wrote its endpoint"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let port = endpoint.rsplit(':').next().unwrap().trim();
    let _worker = WorkerProcess::spawn(&format!("tcp://127.0.0.1:{port}"), &["--threads", "1"]);
    let output = delegator.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("without a secret (--insecure)"), "{stderr}");
    let out = std::fs::read_to_string(dir.join("out.jsonl")).unwrap();
    assert_eq!(out.lines().count(), 10);

    // The library gives the same refusal as a typed error.
    let refused = Delegator::start(DelegatorConfig {
        bind: "tcp://0.0.0.0:0".into(),
        ..DelegatorConfig::default()
    });
    assert!(matches!(
        refused,
        Err(ganger_cluster::Error::InsecureBind { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn local_workers_without_a_configured_secret_use_one_made_for_the_run() {
    let dir = temp_dir("local");
    let output = delegator_command()
        .args([
            "run",
            "--task",
            "square",
            "--range",
            "500",
            "--local-workers",
            "2",
        ])
        .arg("--output")
        .arg(dir.join("out.jsonl"))
        .env_remove("GANGER_SECRET")
        .env_remove("GANGER_SECRET_FILE")
        // Both lines are details of a local run, logged at debug.
        .env("GANGER_LOG", "debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("made for this run"), "{stderr}");
    assert!(stderr.contains("worker authenticated"), "{stderr}");
    let out = std::fs::read_to_string(dir.join("out.jsonl")).unwrap();
    assert_eq!(out.lines().count(), 500);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_secret_subcommand_prints_hex_and_writes_a_private_file_once() {
    let print = || {
        let output = delegator_command().arg("secret").output().unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    let (first, second) = (print(), print());
    for secret in [&first, &second] {
        let secret = secret.strip_suffix('\n').expect("one line");
        assert_eq!(secret.len(), 64, "{secret}");
        assert!(secret
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
    assert_ne!(first, second, "two secrets are not the same");

    let dir = temp_dir("subcommand");
    let path = dir.join("cluster.secret");
    let output = delegator_command()
        .args(["secret", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(output.stdout.is_empty(), "written, not printed");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written.trim().len(), 64);
    let output = delegator_command()
        .args(["secret", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        written,
        "not overwritten"
    );

    // A short secret is refused naming the file; one given twice is refused too.
    let short = write_secret(&dir, "too short");
    let output = delegator_command()
        .args(["run", "--task", "square", "--range", "1", "--secret-file"])
        .arg(&short)
        .env_remove("GANGER_SECRET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains(short.to_str().unwrap()) && stderr.contains("at least 16"),
        "{stderr}"
    );
    let output = delegator_command()
        .args(["run", "--task", "square", "--range", "1", "--secret-file"])
        .arg(&path)
        .env("GANGER_SECRET", "short")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("given twice"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn assert_all_squares(delegator: &Delegator, n: i64) {
    let job = delegator
        .submit::<_, i64>("square", 0..n, JobOptions::default())
        .unwrap();
    for (i, square) in job.collect_ordered().unwrap().into_iter().enumerate() {
        assert_eq!(square, Ok(i as i64 * i as i64), "unit {i}");
    }
}

/// A restarted delegator has no sessions: the worker's sealed frames get a plaintext reset and
/// it shakes hands again. Killing an authenticated worker mid-job loses nothing either.
#[test]
fn authenticated_workers_survive_a_delegator_restart_and_kill_9_loses_nothing() {
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let config = DelegatorConfig {
        bind: endpoint.clone(),
        ..secure_config()
    };
    let secret_env = ("GANGER_SECRET", SECRET);
    let mut steady = worker_with(&endpoint, &[secret_env], &["--name", "steady"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = start_delegator(config.clone());
    assert_all_squares(&first, 500);
    first.shutdown();
    let second = start_delegator(config);
    assert_all_squares(&second, 500);
    assert_eq!(second.stats().unwrap().workers.len(), 1);

    // Slow units, so that the doomed worker holds some when it is killed.
    let mut doomed = worker_with(&endpoint, &[secret_env], &["--name", "doomed"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let n = 200u64;
    let job = second
        .submit::<_, u64>(
            "sleep",
            std::iter::repeat_n(5_000u64, n as usize),
            JobOptions::default(),
        )
        .unwrap();
    wait_for(
        &second,
        Duration::from_secs(30),
        "units at the doomed worker",
        |s| {
            s.workers
                .iter()
                .any(|w| w.name == "doomed" && w.in_flight > 0)
        },
    );
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    let outcomes = job.collect_ordered().unwrap();
    assert_eq!(outcomes.len(), n as usize);
    let stats = second.stats().unwrap();
    assert_eq!(stats.counters.completed, 500 + n);
    assert!(outcomes.iter().all(|o| o == &Ok(5_000)));
    assert!(stats.counters.requeued > 0, "{:#?}", stats.counters);
    let _ = steady.kill();
    let _ = steady.wait();
}

#[test]
fn only_loopback_ipc_and_inproc_endpoints_count_as_local() {
    use ganger_cluster::is_local_endpoint;
    for local in [
        "tcp://127.0.0.1:5555",
        "tcp://127.3.2.1:0",
        "tcp://localhost:5555",
        "tcp://[::1]:5555",
        "ipc:///tmp/ganger.ipc",
        "inproc://ganger",
    ] {
        assert!(is_local_endpoint(local), "{local}");
    }
    for remote in [
        "tcp://*:5555",
        "tcp://0.0.0.0:5555",
        "tcp://[::]:5555",
        "tcp://10.0.0.7:5555",
        "tcp://eth0:5555",
        "tcp://delegator.example:5555",
    ] {
        assert!(!is_local_endpoint(remote), "{remote}");
    }
}
