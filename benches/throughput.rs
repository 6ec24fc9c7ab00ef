//! `cargo bench --bench throughput`
//!
//! End-to-end throughput of ganger against a raw ZeroMQ baseline, side by side in one process
//! and one run.
//!
//! - **Raw ZeroMQ baseline**: a ROUTER echo server on its own thread and a DEALER client on
//!   loopback TCP that keeps exactly 100 single-frame 8-byte messages in flight; reported as
//!   round trips per second over a fixed window after a short warm-up.
//! - **ganger**: a [`ganger::LocalCluster`] with 2 in-process workers of 1 thread each, serving
//!   only the built-in `noop` task, runs jobs of trivial units with the batching fixed at 1, 16
//!   and 256 units per batch, then adaptive ([`Batching::default`]). Each setting gets its own
//!   cluster and warm-up jobs, growing until one takes 250 ms (so the workers are registered
//!   and adaptive batching has a rate estimate); the job size is then scaled from the last
//!   warm-up's rate to take about 2 s. A measurement is the time from `submit` until every
//!   outcome has been received by iterating the `Job`.
//! - **Interleaved**: each of 3 repetitions measures the baseline, then every setting; a
//!   setting's ratio to the baseline is taken within each repetition, and medians are printed
//!   with their range, so that the machine's drift moves both sides of a ratio alike.
//! - **ganger with a secret**: unbatched (fixed batch 1) and batched (adaptive) again, with a
//!   cluster secret on both sides, so every frame after the handshake is sealed
//!   (ChaCha20-Poly1305); reported as the ratio encrypted / plain within each repetition.
//!
//! `cargo bench --bench throughput -- --test` runs every measurement once with tiny sizes, so
//! CI can check that the bench still works in a few seconds. `-- NAME` runs the settings whose
//! names contain NAME.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use ganger::cluster::Secret;
use ganger::cluster::{Batching, SchedulerConfig};
use ganger::{DelegatorConfig, JobOptions, LocalCluster, Registry};

/// The same allocator as the `ganger-delegator` and `ganger-worker` binaries.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Messages the baseline client keeps in flight.
const IN_FLIGHT: usize = 100;
/// Size of each baseline message, bytes.
const MESSAGE_BYTES: usize = 8;
/// In-process workers of each ganger cluster.
const WORKERS: usize = 2;
/// Evaluation threads per worker.
const THREADS_PER_WORKER: usize = 1;

/// Sizes and durations of one run of the bench.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Baseline warm-up before the measurement window.
    baseline_warmup: Duration,
    /// Baseline measurement window.
    baseline_window: Duration,
    /// Units in each cluster's first warm-up job.
    warmup_units: u64,
    /// Warm-up jobs grow until one takes at least this long (its rate sizes the measurements).
    warmup_min: Duration,
    /// How long one ganger measurement should take; `None` measures `min_units` units.
    target: Option<Duration>,
    /// Fewest units in one ganger measurement.
    min_units: u64,
    /// Most units in one ganger measurement (bounds memory: every unit is queued at submit).
    max_units: u64,
    /// Measurements per setting; the median is reported.
    repetitions: usize,
}

impl Plan {
    /// The full run: ~2 s per measurement, median of 3.
    fn full() -> Self {
        Plan {
            baseline_warmup: Duration::from_millis(300),
            baseline_window: Duration::from_secs(2),
            warmup_units: 10_000,
            warmup_min: Duration::from_millis(250),
            target: Some(Duration::from_secs(2)),
            min_units: 10_000,
            max_units: 10_000_000,
            repetitions: 3,
        }
    }

    /// The smoke test behind `--test`: tiny sizes, one repetition.
    fn smoke() -> Self {
        Plan {
            baseline_warmup: Duration::from_millis(20),
            baseline_window: Duration::from_millis(100),
            warmup_units: 1_000,
            warmup_min: Duration::ZERO,
            target: None,
            min_units: 1_000,
            max_units: 1_000,
            repetitions: 1,
        }
    }

    /// Units for one measurement, given the rate (units/s) the warm-up achieved.
    fn units_for(&self, warmup_rate: f64) -> u64 {
        match self.target {
            None => self.min_units,
            Some(target) => {
                let units = (warmup_rate * target.as_secs_f64()) as u64;
                // Round to a readable figure.
                let units = units.clamp(self.min_units, self.max_units);
                units / 10_000 * 10_000
            }
        }
    }
}

/// Runs the baseline and every ganger setting, interleaved, then prints the table.
fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|arg| arg == "--test");
    let plan = if smoke { Plan::smoke() } else { Plan::full() };
    // Other arguments that are not flags pick settings by name.
    let picked: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();

    // The secret's settings sit beside the plain ones so that drift in the machine's load
    // affects both sides of each ratio alike.
    let settings = [
        ("fixed batch 1", Batching::Fixed(1), false),
        ("fixed batch 1 + secret", Batching::Fixed(1), true),
        ("fixed batch 16", Batching::Fixed(16), false),
        ("fixed batch 256", Batching::Fixed(256), false),
        ("adaptive (default)", Batching::default(), false),
        ("adaptive + secret", Batching::default(), true),
    ];
    // Every cluster is started and warmed up first; then each repetition measures the raw
    // baseline and every setting in turn, so that each ratio compares measurements taken
    // moments apart.
    let settings: Vec<_> = settings
        .into_iter()
        .filter(|(name, _, _)| picked.is_empty() || picked.iter().any(|p| name.contains(p)))
        .collect();
    let mut clusters = Vec::with_capacity(settings.len());
    for (name, batching, secure) in settings.iter().copied() {
        let cluster = start_cluster(batching, secure).with_context(|| format!("ganger, {name}"))?;
        let warmup_rate = warm_up(&cluster, &plan).with_context(|| format!("ganger, {name}"))?;
        clusters.push((name, plan.units_for(warmup_rate), cluster));
    }
    let mut baseline = Vec::with_capacity(plan.repetitions);
    let mut rates = vec![Vec::with_capacity(plan.repetitions); settings.len()];
    for _ in 0..plan.repetitions {
        baseline.push(zmq_baseline(&plan).context("raw ZeroMQ baseline")?);
        for (i, (name, units, cluster)) in clusters.iter().enumerate() {
            rates[i].push(run_job(cluster, *units).with_context(|| format!("ganger, {name}"))?);
        }
    }
    let ratio =
        |i: usize| -> Vec<f64> { rates[i].iter().zip(&baseline).map(|(r, b)| r / b).collect() };

    println!(
        "raw ZeroMQ baseline: ROUTER echo + DEALER, {IN_FLIGHT} x {MESSAGE_BYTES}-byte messages in flight, {:.1} s windows",
        plan.baseline_window.as_secs_f64()
    );
    println!(
        "ganger: LocalCluster, {WORKERS} workers x {THREADS_PER_WORKER} thread, `noop` units; {} repetitions interleaved (baseline, every setting, baseline, ...): medians [lowest – highest]",
        plan.repetitions
    );
    println!();
    println!("| setting | units/job | units/s | ÷ raw ZeroMQ round trips/s, same repetition |");
    println!("|---|---:|---:|---:|");
    println!(
        "| raw ZeroMQ (round trips/s) | - | {} | 1 |",
        spread(&baseline, thousands)
    );
    for (i, (name, units, _)) in clusters.iter().enumerate() {
        println!(
            "| {name} | {units} | {} | {} |",
            spread(&rates[i], thousands),
            spread(&ratio(i), |r| format!("{r:.3}"))
        );
    }
    println!();
    println!("cost of encryption (with a secret ÷ without, same repetition):");
    let index = |name: &str| clusters.iter().position(|(n, _, _)| *n == name);
    for (plain, sealed, what) in [
        (
            "fixed batch 1",
            "fixed batch 1 + secret",
            "unbatched (batch 1)",
        ),
        (
            "adaptive (default)",
            "adaptive + secret",
            "batched (adaptive)",
        ),
    ] {
        let (Some(plain), Some(sealed)) = (index(plain), index(sealed)) else {
            continue;
        };
        let each: Vec<f64> = rates[sealed]
            .iter()
            .zip(&rates[plain])
            .map(|(s, p)| s / p)
            .collect();
        println!("  {what}: {}", spread(&each, |r| format!("{r:.3}")));
    }
    Ok(())
}

/// `median [lowest – highest]` of `values`, each formatted by `show`; the one value alone.
fn spread(values: &[f64], show: impl Fn(f64) -> String) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    if sorted.len() == 1 {
        return show(median);
    }
    format!(
        "{} [{} – {}]",
        show(median),
        show(sorted[0]),
        show(sorted[sorted.len() - 1])
    )
}

/// Measures ZeroMQ round trips per second: a DEALER keeping [`IN_FLIGHT`] messages in flight
/// against a ROUTER echo server on its own thread, over loopback TCP.
fn zmq_baseline(plan: &Plan) -> Result<f64> {
    let context = zmq::Context::new();
    let router = context.socket(zmq::ROUTER)?;
    router.set_linger(0)?;
    router.bind("tcp://127.0.0.1:0")?;
    let endpoint = router
        .get_last_endpoint()?
        .map_err(|_| anyhow::anyhow!("the bound endpoint is not UTF-8"))?;
    let server = thread::Builder::new()
        .name("zmq-echo".into())
        .spawn(move || echo_server(router))?;

    let dealer = context.socket(zmq::DEALER)?;
    dealer.set_linger(0)?;
    dealer.connect(&endpoint)?;
    let result = drive_dealer(&dealer, plan);
    // A zero-length frame tells the server to stop (sent even if the measurement failed).
    let stop = dealer.send(&[][..], 0);
    let served = server
        .join()
        .map_err(|_| anyhow::anyhow!("the echo server panicked"))?;
    served.context("echo server")?;
    stop?;
    result
}

/// Echoes every message back to its sender until a zero-length frame arrives.
fn echo_server(router: zmq::Socket) -> Result<()> {
    let mut identity = zmq::Message::new();
    let mut body = zmq::Message::new();
    loop {
        router.recv(&mut identity, 0)?;
        ensure!(router.get_rcvmore()?, "a message without a body frame");
        router.recv(&mut body, 0)?;
        if body.is_empty() {
            return Ok(());
        }
        router.send(&*identity, zmq::SNDMORE)?;
        router.send(&*body, 0)?;
    }
}

/// Keeps [`IN_FLIGHT`] messages in flight on `dealer`, and returns the round trips per second
/// completed during the measurement window (after the warm-up), leaving none in flight.
fn drive_dealer(dealer: &zmq::Socket, plan: &Plan) -> Result<f64> {
    let mut sequence = 0u64;
    for _ in 0..IN_FLIGHT {
        sequence += 1;
        dealer.send(&sequence.to_le_bytes()[..MESSAGE_BYTES], 0)?;
    }
    let mut reply = zmq::Message::new();
    let warm_until = Instant::now() + plan.baseline_warmup;
    let mut window: Option<(Instant, Instant)> = None;
    let mut count = 0u64;
    let elapsed = loop {
        dealer.recv(&mut reply, 0)?;
        ensure!(
            reply.len() == MESSAGE_BYTES,
            "a reply of {} bytes",
            reply.len()
        );
        count += 1;
        // Checking the clock every 64 replies keeps it off the hot path.
        if count % 64 == 0 {
            let now = Instant::now();
            match window {
                None if now >= warm_until => {
                    window = Some((now, now + plan.baseline_window));
                    count = 0;
                }
                Some((start, end)) if now >= end => break now - start,
                _ => {}
            }
        }
        sequence += 1;
        dealer.send(&sequence.to_le_bytes()[..MESSAGE_BYTES], 0)?;
    };
    for _ in 1..IN_FLIGHT {
        dealer.recv(&mut reply, 0)?;
    }
    Ok(count as f64 / elapsed.as_secs_f64())
}

/// Starts a cluster with `batching`, and a secret if `secure`.
fn start_cluster(batching: Batching, secure: bool) -> Result<LocalCluster> {
    let mut registry = Registry::with_builtins();
    registry.retain(|name| name == "noop");
    let secret = match secure {
        true => Some(Secret::new(b"a throughput benchmark's secret, 32+ bytes")?),
        false => None,
    };
    let config = DelegatorConfig {
        bind: "tcp://127.0.0.1:0".into(),
        scheduler: SchedulerConfig {
            batching,
            ..Default::default()
        },
        secret,
        ..DelegatorConfig::default()
    };
    Ok(LocalCluster::with_config(
        config,
        WORKERS,
        THREADS_PER_WORKER,
        registry,
    )?)
}

/// Runs warm-up jobs, each 4 times larger than the last, until one takes at least
/// `plan.warmup_min` (or reaches `plan.max_units`); returns the last one's units per second.
fn warm_up(cluster: &LocalCluster, plan: &Plan) -> Result<f64> {
    let mut units = plan.warmup_units;
    loop {
        let rate = run_job(cluster, units)?;
        let took = Duration::from_secs_f64(units as f64 / rate);
        if took >= plan.warmup_min || units >= plan.max_units {
            return Ok(rate);
        }
        units = (units * 4).min(plan.max_units);
    }
}

/// Submits `units` `noop` units and returns units per second from submit until every outcome
/// has been received.
fn run_job(cluster: &LocalCluster, units: u64) -> Result<f64> {
    let start = Instant::now();
    let job = cluster
        .delegator()
        .submit::<_, u64>("noop", 0..units, JobOptions::default())?;
    let mut received = 0u64;
    for (index, result) in job {
        let output = result.with_context(|| format!("unit {index}"))?;
        ensure!(output == index, "unit {index} returned {output}");
        received += 1;
    }
    let elapsed = start.elapsed();
    ensure!(
        received == units,
        "received {received} outcomes for {units} units"
    );
    Ok(units as f64 / elapsed.as_secs_f64())
}

/// Formats a rate as a whole number with `_` thousands separators, e.g. `1_234_567`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push('_');
        }
        out.push(digit);
    }
    out
}
