//! `cargo bench --bench load` (or `-- --workers 1000 --processes 4`)
//!
//! One delegator against many simulated workers: what the delegator costs idle and under load,
//! what heartbeats cost, and how fast a dead worker's units are requeued.
//!
//! The bench runs as several processes of this same binary, so that the delegator's CPU time and
//! memory can be read from `/proc` on its own:
//!
//! - **delegator** (`--role delegator`): a [`ganger::Delegator`] on a loopback port, driven by
//!   one-line commands on its standard input (submit a job, hold units, report when units are
//!   requeued).
//! - **swarms** (`--role swarm`): each connects many DEALER sockets (simulated workers) and
//!   serves them all from one `zmq::poll` loop, speaking the protocol of `PROTOCOL.md` directly
//!   with `ganger::core::protocol`: `echo` units are answered at once, `hold` units never are
//!   (they stand for work in progress when a worker is killed).
//! - **the conductor** (no `--role`): starts the others, measures, prints the table.
//!
//! Measurements, in order:
//! 1. delegator CPU (share of one core) and resident memory with no worker, over a window;
//! 2. the same with every worker connected and idle: the difference is the cost of heartbeats,
//!    and the swarms count the heartbeats that crossed the wire;
//! 3. under load: a job of trivial `echo` units over all workers, CPU and memory while it runs;
//! 4. death: every worker holds `hold` units; single-worker processes are killed with SIGKILL
//!    one at a time, then a whole swarm process. The delegator reports when its requeue counter
//!    has grown by the victims' units, against the wall-clock time of the kill (both processes
//!    read the same system clock). Median over the single-worker kills.
//!
//! `cargo bench --bench load -- --test` does all of it with 20 workers and short windows.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context as _, Result};

#[path = "load/delegator.rs"]
mod delegator;
#[path = "load/swarm.rs"]
mod swarm;

use delegator::delegator_role;
use swarm::swarm_role;

/// The same allocator as the `ganger-delegator` binary, whose memory we mean to measure.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The delegator's heartbeat interval in the bench, milliseconds (the default).
const HEARTBEAT_MS: u64 = 1000;
/// Units each simulated worker holds at once: `slots` 1 plus `prefetch` 63.
const CAPACITY: u64 = 64;
/// Single-worker processes killed one at a time for the death measurement.
const SINGLE_KILLS: usize = 5;

/// Sizes of one run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Simulated workers, over all swarm processes.
    workers: usize,
    /// Swarm processes they are spread over.
    processes: usize,
    /// Idle measurement window.
    idle_window: Duration,
    /// Units in the load job.
    load_units: u64,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match value_of(&args, "--role").as_deref() {
        Some("delegator") => return delegator_role(),
        Some("swarm") => {
            let endpoint = value_of(&args, "--endpoint").context("--endpoint is required")?;
            let count = parse(&args, "--count")?.unwrap_or(1);
            let name = value_of(&args, "--name").unwrap_or_else(|| "swarm".into());
            return swarm_role(&endpoint, count, &name);
        }
        Some(other) => bail!("unknown --role {other}"),
        None => {}
    }
    let plan = if args.iter().any(|a| a == "--test") {
        Plan {
            workers: 20,
            processes: 2,
            idle_window: Duration::from_secs(1),
            load_units: 20_000,
        }
    } else {
        Plan {
            workers: parse(&args, "--workers")?.unwrap_or(1000),
            processes: parse(&args, "--processes")?.unwrap_or(4),
            idle_window: Duration::from_secs(10),
            load_units: 2_000_000,
        }
    };
    ensure!(
        plan.processes >= 2,
        "--processes must be at least 2 (one is killed)"
    );
    conduct(plan)
}

// ---------------------------------------------------------------------------------------------
// The conductor.

fn conduct(plan: Plan) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find this bench's executable")?;
    let mut delegator = Peer::spawn(Command::new(&exe).args(["--role", "delegator"]))?;
    let endpoint = delegator.expect("endpoint")?.remove(0);
    let pid = delegator.child.id();
    println!(
        "load: {} simulated workers in {} processes, heartbeat {HEARTBEAT_MS} ms",
        plan.workers, plan.processes
    );

    let idle_empty = sample(pid, plan.idle_window)?;

    let started = Instant::now();
    let per_process = plan.workers.div_ceil(plan.processes);
    let mut swarms = Vec::new();
    for (i, count) in split(plan.workers, plan.processes).into_iter().enumerate() {
        swarms.push(Peer::spawn(&mut swarm_command(
            &exe,
            &endpoint,
            count,
            &format!("s{i}"),
        ))?)
    }
    wait_for_workers(&mut delegator, plan.workers)?;
    let connect_time = started.elapsed();

    let before = heartbeats(&mut swarms)?;
    let idle_full = sample(pid, plan.idle_window)?;
    let after = heartbeats(&mut swarms)?;
    let heartbeat_rate = (after - before) as f64 / plan.idle_window.as_secs_f64();

    let load_start = cpu_ticks(pid)?;
    let reply = delegator.ask(&format!("job {}", plan.load_units), "done")?;
    let load_secs: f64 = reply[0].parse()?;
    let load_cpu = ticks_to_secs(cpu_ticks(pid)? - load_start) / load_secs;
    let load_rss = rss_bytes(pid)?;

    // Death: fill every worker with units that are never answered, then kill workers.
    let mut singles = Vec::new();
    for i in 0..SINGLE_KILLS {
        singles.push(Peer::spawn(&mut swarm_command(
            &exe,
            &endpoint,
            1,
            &format!("one{i}"),
        ))?);
    }
    let total_workers = plan.workers + SINGLE_KILLS;
    wait_for_workers(&mut delegator, total_workers)?;
    let held = total_workers as u64 * CAPACITY;
    let leased: u64 = delegator.ask(&format!("hold {held}"), "leased")?[0].parse()?;
    let mut single_ms = Vec::new();
    let mut single_units = 0;
    for (i, mut victim) in singles.into_iter().enumerate() {
        let (units, ms) = time_requeue(&mut delegator, &mut victim, &format!("one{i}"))?;
        single_units = units;
        single_ms.push(ms);
    }
    let swarm_index = swarms.len() - 1;
    let mut victim = swarms.pop().expect("at least two swarms");
    let swarm_victims = split(plan.workers, plan.processes)[swarm_index];
    let (swarm_units, swarm_ms) =
        time_requeue(&mut delegator, &mut victim, &format!("s{swarm_index}"))?;

    delegator.send("quit")?;
    delegator.child.wait().ok();
    drop(swarms);

    let table = [
        (
            "idle, no workers".to_owned(),
            format!("{:.1} % of a core", 100.0 * idle_empty.cpu),
            mib(idle_empty.rss),
        ),
        (
            format!("idle, {} workers", plan.workers),
            format!("{:.1} % of a core", 100.0 * idle_full.cpu),
            mib(idle_full.rss),
        ),
        (
            format!("load, {} echo units", plan.load_units),
            format!(
                "{:.0} % of a core, {:.0} units/s",
                100.0 * load_cpu,
                plan.load_units as f64 / load_secs
            ),
            mib(load_rss),
        ),
    ];
    println!("load: {:<28} {:<34} resident", "delegator", "CPU");
    for (what, cpu, rss) in table {
        println!("load: {what:<28} {cpu:<34} {rss}");
    }
    println!(
        "load: connecting {} workers took {:.2} s ({per_process} per process)",
        plan.workers,
        connect_time.as_secs_f64()
    );
    println!(
        "load: heartbeats: {heartbeat_rate:.0} per second crossed the wire while idle; they cost \
         {:.2} % of a core ({:.1} µs of delegator CPU per heartbeat)",
        100.0 * (idle_full.cpu - idle_empty.cpu),
        1e6 * (idle_full.cpu - idle_empty.cpu).max(0.0) / heartbeat_rate.max(1.0)
    );
    single_ms.sort_by(f64::total_cmp);
    println!("load: {leased} units of a job that never finishes leased before the kills");
    println!(
        "load: kill -9 of one worker holding {single_units} units: requeued after {} ms \
         (median {:.1} ms of {SINGLE_KILLS})",
        single_ms
            .iter()
            .map(|ms| format!("{ms:.1}"))
            .collect::<Vec<_>>()
            .join(", "),
        single_ms[single_ms.len() / 2]
    );
    println!(
        "load: kill -9 of a process with {swarm_victims} workers: all {swarm_units} units \
         requeued after {swarm_ms:.1} ms"
    );
    Ok(())
}

/// Kills `victim` (whose workers' names start with `name`) and returns the units it held and
/// the milliseconds until the delegator had requeued them all.
fn time_requeue(delegator: &mut Peer, victim: &mut Peer, name: &str) -> Result<(u64, f64)> {
    let units: u64 = delegator.ask(&format!("watch {name}"), "watching")?[0].parse()?;
    ensure!(units > 0, "the workers of {name} held no units");
    let killed = unix_nanos();
    victim
        .child
        .kill()
        .context("cannot kill a worker process")?;
    victim.child.wait().ok();
    let reply = delegator.expect("requeued")?;
    let seen: u128 = reply[0].parse()?;
    Ok((units, seen.saturating_sub(killed) as f64 / 1e6))
}

fn wait_for_workers(delegator: &mut Peer, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let reply = delegator.ask("workers", "workers")?;
        if reply[0].parse::<usize>()? >= n {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "only {} of {n} workers registered",
            reply[0]
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Heartbeats the swarms have sent and received so far.
fn heartbeats(swarms: &mut [Peer]) -> Result<u64> {
    let mut total = 0;
    for swarm in swarms {
        let reply = swarm.ask("report", "report")?;
        total += reply[0].parse::<u64>()? + reply[1].parse::<u64>()?;
    }
    Ok(total)
}

fn swarm_command(exe: &std::path::Path, endpoint: &str, count: usize, name: &str) -> Command {
    let mut command = Command::new(exe);
    command.args(["--role", "swarm", "--endpoint", endpoint, "--name", name]);
    command.args(["--count", &count.to_string()]);
    command
}

/// `n` split into `parts` near-equal counts.
fn split(n: usize, parts: usize) -> Vec<usize> {
    (0..parts)
        .map(|i| n / parts + usize::from(i < n % parts))
        .collect()
}

/// A child process of this binary, spoken to in lines.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Peer {
    /// A bench that fails half-way leaves no process behind.
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Peer {
    fn spawn(command: &mut Command) -> Result<Peer> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start a bench process")?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        Ok(Peer {
            child,
            stdin,
            stdout,
        })
    }

    fn send(&mut self, line: &str) -> Result<()> {
        writeln!(self.stdin, "{line}").context("a bench process is gone")?;
        Ok(self.stdin.flush()?)
    }

    /// Reads lines until one starts with `word`; returns its other words.
    fn expect(&mut self, word: &str) -> Result<Vec<String>> {
        let mut line = String::new();
        loop {
            line.clear();
            ensure!(
                self.stdout.read_line(&mut line)? > 0,
                "a bench process ended while we waited for `{word}`"
            );
            let mut words = line.split_whitespace();
            if words.next() == Some(word) {
                return Ok(words.map(str::to_owned).collect());
            }
        }
    }

    fn ask(&mut self, line: &str, answer: &str) -> Result<Vec<String>> {
        self.send(line)?;
        self.expect(answer)
    }
}

/// CPU share and resident memory of a process over a window.
struct Sample {
    cpu: f64,
    rss: u64,
}

fn sample(pid: u32, window: Duration) -> Result<Sample> {
    let start = cpu_ticks(pid)?;
    let began = Instant::now();
    thread::sleep(window);
    let cpu = ticks_to_secs(cpu_ticks(pid)? - start) / began.elapsed().as_secs_f64();
    Ok(Sample {
        cpu,
        rss: rss_bytes(pid)?,
    })
}

/// User plus system CPU time of a process, in clock ticks (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let rest = &stat[stat.rfind(')').context("odd /proc stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

fn ticks_to_secs(ticks: u64) -> f64 {
    // SAFETY: sysconf reads a constant of the running system and has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks as f64 / per_second.max(1) as f64
}

fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .context("odd VmRSS")?
        .parse()?;
    Ok(kib * 1024)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

fn value_of(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

fn parse<T: std::str::FromStr>(args: &[String], flag: &str) -> Result<Option<T>> {
    value_of(args, flag)
        .map(|v| {
            v.parse()
                .ok()
                .with_context(|| format!("{flag} {v}: not a number"))
        })
        .transpose()
}
