//! Helpers for the chaos suite: seeded fault schedules, the delegator binary in the background,
//! a pool of worker processes to kill and replace, and network namespaces for partitions.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::{delegator_command, worker_bin, WorkerProcess};

/// The seed for this scenario's faults: `GANGER_CHAOS_SEED` if set (to replay a failure), else
/// fresh; printed either way, so a failing run can be replayed.
pub fn chaos_rng(scenario: &str) -> StdRng {
    let seed = std::env::var("GANGER_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            u64::from(nanos) ^ (u64::from(std::process::id()) << 32)
        });
    eprintln!("{scenario}: chaos seed {seed} (replay with GANGER_CHAOS_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

/// A scratch directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ganger-chaos-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The delegator binary running in the background, killed if dropped before it exits.
pub struct Background {
    pub child: Child,
    /// Its standard error (the progress table and warnings), shown if it fails.
    log: PathBuf,
    /// The endpoint workers on this machine connect to.
    pub endpoint: String,
}

impl Background {
    /// Starts `ganger-delegator ARGS --bind tcp://127.0.0.1:0` and waits for its endpoint.
    pub fn start(args: &[&str], dir: &Path) -> Background {
        let endpoint_file = dir.join("endpoint");
        let _ = std::fs::remove_file(&endpoint_file);
        let log = dir.join("delegator.log");
        let mut child = delegator_command()
            .args(args)
            .args(["--bind", "tcp://127.0.0.1:0"])
            .arg("--endpoint-file")
            .arg(&endpoint_file)
            .env("GANGER_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the delegator starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(endpoint) = std::fs::read_to_string(&endpoint_file) {
                if !endpoint.is_empty() {
                    let endpoint = ganger_transport::local_endpoint(&endpoint);
                    return Background {
                        child,
                        log,
                        endpoint,
                    };
                }
            }
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the delegator never wrote its endpoint");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// True once the delegator has exited; panics if it failed.
    pub fn finished(&mut self) -> bool {
        match self.child.try_wait().unwrap() {
            None => false,
            Some(status) => {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                assert!(status.success(), "the delegator failed: {status}\n{log}");
                true
            }
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Worker processes on one endpoint, killed and replaced at random.
pub struct Pool {
    endpoint: String,
    args: Vec<String>,
    pub workers: Vec<WorkerProcess>,
    /// Workers killed with SIGKILL so far.
    pub kills: u32,
}

impl Pool {
    pub fn start(endpoint: &str, n: usize, args: &[&str]) -> Pool {
        let mut pool = Pool {
            endpoint: endpoint.to_owned(),
            args: args.iter().map(|a| a.to_string()).collect(),
            workers: Vec::new(),
            kills: 0,
        };
        for _ in 0..n {
            pool.spawn();
        }
        pool
    }

    fn spawn(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.workers
            .push(WorkerProcess::spawn(&self.endpoint, &args));
    }

    /// `kill -9` of a random worker, reaped, then a fresh one in its place.
    pub fn kill_one_and_replace(&mut self, rng: &mut StdRng) {
        let victim = rng.random_range(0..self.workers.len());
        let mut victim = self.workers.swap_remove(victim);
        victim.signal(libc::SIGKILL);
        assert_eq!(victim.wait(), None, "killed by the signal");
        self.kills += 1;
        self.spawn();
    }
}

/// Kills and replaces random workers every 100–`max_gap_ms` ms until `done` says the run is
/// over; returns the number of kills. Panics after `limit`, a guard against hangs.
pub fn kill_until(
    pool: &mut Pool,
    rng: &mut StdRng,
    max_gap_ms: u64,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> u32 {
    let deadline = Instant::now() + limit;
    loop {
        let gap = Duration::from_millis(rng.random_range(100..max_gap_ms));
        let wake = Instant::now() + gap;
        while Instant::now() < wake {
            if done() {
                return pool.kills;
            }
            assert!(
                Instant::now() < deadline,
                "the run did not finish in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        pool.kill_one_and_replace(rng);
    }
}

/// A network namespace with one end of a veth pair in it, the other end in this namespace;
/// both addresses are made up here, on a /30 of 10.200.0.0/16. Removed when dropped, even after
/// a panic.
pub struct Netns {
    pub name: String,
    /// The veth end in this (the root) namespace.
    pub outer: String,
    /// The address of `outer`: the delegator binds it.
    pub outer_address: String,
}

impl Netns {
    /// What this machine lacks to make a namespace (root, `ip`), unless `GANGER_REQUIRE_NETNS=1`
    /// (set by CI), under which the test must run and fail.
    pub fn lacking() -> Option<String> {
        if std::env::var("GANGER_REQUIRE_NETNS").is_ok_and(|v| v == "1") {
            return None;
        }
        Self::why_not()
    }

    fn why_not() -> Option<String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            Some("root (for a network namespace)".to_owned())
        } else if Command::new("ip").arg("-V").output().is_err() {
            Some("`ip` (iproute2)".to_owned())
        } else {
            None
        }
    }

    /// Creates the namespace, or None where it cannot (see [`Netns::lacking`]); fails when
    /// `GANGER_REQUIRE_NETNS=1` and it cannot.
    pub fn create() -> Option<Netns> {
        if let Some(why) = Self::why_not() {
            let required = std::env::var("GANGER_REQUIRE_NETNS").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "GANGER_REQUIRE_NETNS=1 but this machine lacks {why}"
            );
            return None;
        }
        // Unique per run: names from the pid, and a /30 picked from it.
        let pid = std::process::id();
        let subnet = pid % 250 + 1;
        let netns = Netns {
            name: format!("ganger-chaos-{pid}"),
            outer: format!("gcv{pid}a"),
            outer_address: format!("10.200.{subnet}.1"),
        };
        let inner = format!("gcv{pid}b");
        let inner_address = format!("10.200.{subnet}.2/30");
        netns.ip(&["netns", "add", &netns.name]);
        netns.ip(&[
            "link",
            "add",
            &netns.outer,
            "type",
            "veth",
            "peer",
            "name",
            &inner,
        ]);
        netns.ip(&["link", "set", &inner, "netns", &netns.name]);
        let outer_cidr = format!("{}/30", netns.outer_address);
        netns.ip(&["addr", "add", &outer_cidr, "dev", &netns.outer]);
        netns.ip(&["link", "set", &netns.outer, "up"]);
        netns.ip(&[
            "-n",
            &netns.name,
            "addr",
            "add",
            &inner_address,
            "dev",
            &inner,
        ]);
        netns.ip(&["-n", &netns.name, "link", "set", &inner, "up"]);
        netns.ip(&["-n", &netns.name, "link", "set", "lo", "up"]);
        Some(netns)
    }

    /// Runs `ip ARGS`, panicking with its error output if it fails.
    pub fn ip(&self, args: &[&str]) {
        let output = Command::new("ip").args(args).output().expect("ip runs");
        assert!(
            output.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Takes the link down (`up` false) or brings it up: a silent partition and its end.
    pub fn set_link(&self, up: bool) {
        self.ip(&["link", "set", &self.outer, if up { "up" } else { "down" }]);
    }

    /// A worker process inside the namespace.
    pub fn spawn_worker(&self, endpoint: &str, args: &[&str]) -> WorkerProcess {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(worker_bin())
            .arg("--connect")
            .arg(endpoint)
            .args(args)
            .env("GANGER_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("ip netns exec starts");
        WorkerProcess { child }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes both.
        let _ = Command::new("ip")
            .args(["link", "del", &self.outer])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
