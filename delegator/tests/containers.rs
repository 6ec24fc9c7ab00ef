//! The image built from the repository's Dockerfile, run as users run it: its contract (user,
//! demo, health checks) and the repository's docker-compose.yml with a delegator and three
//! workers, broken while it runs.
//!
//! Needs a Docker engine and the image, named by `GANGER_IMAGE` (`.ci/run` builds it with
//! `deploy/base-images` and `docker build`); without them the tests are reported as ignored,
//! and with `GANGER_REQUIRE_DOCKER` set they fail instead. Every container, network and volume
//! is the test's own, named after its process, and removed at the end.

mod common;
#[path = "containers/compose.rs"]
mod compose;
#[path = "containers/marathon.rs"]
mod marathon;
#[path = "containers/swarm.rs"]
mod swarm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{delegator_command, trial};

fn main() -> std::process::ExitCode {
    let tests: [(&str, fn()); 5] = [
        (
            "the_image_runs_its_demo_as_uid_10001_and_both_roles_turn_healthy",
            the_image_runs_its_demo_as_uid_10001_and_both_roles_turn_healthy,
        ),
        (
            "compose_output_is_byte_identical_through_killed_workers_and_a_killed_delegator",
            compose::compose_output_is_byte_identical_through_killed_workers_and_a_killed_delegator,
        ),
        (
            "workers_started_first_join_by_name_and_a_job_survives_a_crashed_worker",
            workers_started_first_join_by_name_and_a_job_survives_a_crashed_worker,
        ),
        (
            "the_marathon_apps_run_as_docker_run_finish_a_run_and_turn_healthy",
            marathon::the_marathon_apps_run_as_docker_run_finish_a_run_and_turn_healthy,
        ),
        (
            "a_swarm_stack_scaled_up_and_down_mid_run_writes_the_same_chains",
            swarm::a_swarm_stack_scaled_up_and_down_mid_run_writes_the_same_chains,
        ),
    ];
    let missing = missing_prerequisite();
    let trials = tests
        .into_iter()
        .map(|(name, test)| trial(name, missing.clone(), test))
        .collect();
    // One at a time: the Swarm test turns this engine into a swarm node for its duration, and
    // the others measure progress against a machine they do not share.
    let mut arguments = libtest_mimic::Arguments::from_args();
    arguments.test_threads = Some(1);
    libtest_mimic::run(&arguments, trials).exit_code()
}

/// What this machine lacks for these tests, unless `GANGER_REQUIRE_DOCKER` says it must not.
fn missing_prerequisite() -> Option<String> {
    if std::env::var_os("GANGER_REQUIRE_DOCKER").is_some() {
        return None;
    }
    let engine = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !engine {
        return Some("a Docker engine".into());
    }
    if std::env::var_os("GANGER_IMAGE").is_none() {
        return Some("GANGER_IMAGE (an image built by docker build)".into());
    }
    None
}

fn image() -> String {
    std::env::var("GANGER_IMAGE").expect("GANGER_IMAGE names the image under test")
}

/// Runs `program args`, failing the test with its output unless it succeeds.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    check(program, args, &output);
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn check(program: &str, args: &[&str], output: &Output) {
    assert!(
        output.status.success(),
        "{program} {}: {}\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn docker(args: &[&str]) -> String {
    run("docker", args)
}

/// A name no other test run uses: containers, networks and volumes are named after it.
fn unique(what: &str) -> String {
    format!("ganger-test-{what}-{}", std::process::id())
}

/// Removes the containers and the network it names when dropped.
struct Cleanup {
    containers: Vec<String>,
    network: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for container in &self.containers {
            let _ = Command::new("docker")
                .args(["rm", "-f", "-v", container])
                .output();
        }
        if let Some(network) = &self.network {
            let _ = Command::new("docker")
                .args(["network", "rm", network])
                .output();
        }
    }
}

/// Waits until `container`'s health check says `healthy`; fails on `unhealthy` or after 2
/// minutes.
fn wait_healthy(container: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let health = docker(&["inspect", "-f", "{{.State.Health.Status}}", container]);
        match health.as_str() {
            "healthy" => return,
            "unhealthy" => panic!(
                "{container} is unhealthy: {}",
                docker(&["inspect", "-f", "{{json .State.Health}}", container])
            ),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "{container} still {health}: {}",
            docker(&["inspect", "-f", "{{json .State.Health}}", container])
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn the_image_runs_its_demo_as_uid_10001_and_both_roles_turn_healthy() {
    let image = image();
    let size: u64 = docker(&["image", "inspect", "-f", "{{.Size}}", &image])
        .parse()
        .unwrap();
    println!("image {image}: {:.0} MB", size as f64 / 1e6);
    assert_eq!(docker(&["run", "--rm", &image, "id", "-u"]), "10001");
    for binary in ["ganger-delegator", "ganger-worker"] {
        let version = docker(&["run", "--rm", &image, binary, "--version"]);
        assert!(version.starts_with(binary), "{version}");
    }
    // `docker run IMAGE` runs the demo to its end, the posterior on stdout.
    let demo = docker(&["run", "--rm", &image]);
    assert!(
        demo.contains("finished 100,000 steps × 10 chains") && demo.contains("ESS bulk"),
        "{demo}"
    );

    // A delegator and a worker on a network of their own, each judged by the image's one
    // health check.
    let network = unique("health");
    let delegator = unique("health-delegator");
    let worker = unique("health-worker");
    let _cleanup = Cleanup {
        containers: vec![worker.clone(), delegator.clone()],
        network: Some(network.clone()),
    };
    docker(&["network", "create", &network]);
    docker(&[
        "run",
        "-d",
        "--name",
        &delegator,
        "--network",
        &network,
        "-e",
        "GANGER_INSECURE=true",
        "-e",
        "GANGER_KEEP_SERVING=true",
        &image,
        "ganger-delegator",
        "run",
        "--task",
        "sleep",
        "--range",
        "100000",
    ]);
    docker(&[
        "run",
        "-d",
        "--name",
        &worker,
        "--network",
        &network,
        "-e",
        &format!("GANGER_CONNECT=tcp://{delegator}:5555"),
        &image,
        "ganger-worker",
    ]);
    wait_healthy(&delegator);
    wait_healthy(&worker);
}

/// The test's MCMC config, writing to `output`: long enough (several seconds here) for faults
/// to land mid-run, with checkpoints every 200 ms.
fn config(output: &str) -> String {
    config_of(output, 600_000)
}

/// [`config`] with `samples` cold samples over its 2 stacks.
fn config_of(output: &str, samples: u64) -> String {
    format!(
        r#"{{"nJobTypes": 3, "nStacks": 2, "nTemperatures": 4, "nSamplesTotal": {samples},
            "min": [-10, -10, -10], "max": [10, 10, 10], "loggingRateSec": 5,
            "checkpointIntervalSec": 0.2, "seed": 11, "outputPath": "{output}"}}"#
    )
}

/// The chain files of an output folder, by name.
fn chain_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "csv"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// The run's step and state from the delegator's API at `address`, once it answers.
fn step(address: &str) -> Option<(u64, String)> {
    let status = status(address)?;
    Some((
        status["progress"]["done"].as_u64()?,
        status["state"].as_str()?.to_owned(),
    ))
}

/// The delegator's `/api/status` at `address`, once it answers. Docker's port forwarder
/// accepts connections while nothing listens behind it (a delegator starting or restarting),
/// and closes them: no answer yet, rather than a failure.
fn status(address: &str) -> Option<serde_json::Value> {
    use std::io::{Read as _, Write as _};
    let mut stream =
        std::net::TcpStream::connect_timeout(&address.parse().ok()?, Duration::from_secs(2))
            .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /api/status HTTP/1.0\r\nHost: {address}\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// Kills `container`'s main process with SIGKILL from the host, as a crash would. (Docker
/// counts `docker kill` as a deliberate stop and never restarts after it.)
fn crash(container: &str) {
    let pid = docker(&["inspect", "-f", "{{.State.Pid}}", container]);
    let pid: i32 = pid.parse().unwrap();
    assert!(pid > 0, "{container} is not running");
    // SAFETY: kill sends a signal; the pid is the container's init process.
    let killed = unsafe { libc::kill(pid, libc::SIGKILL) } == 0;
    assert!(
        killed,
        "cannot kill {container}'s process {pid} (run by the image's uid 10001): {}; the \
         crash tests need to run as root, as .ci/run does",
        std::io::Error::last_os_error()
    );
}

/// Asserts that Docker restarted `container` (the `what`) after a crash.
fn assert_restarted(container: &str, what: &str) {
    // Docker waits a moment before it restarts a container.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let restarts: u64 = docker(&["inspect", "-f", "{{.RestartCount}}", container])
            .parse()
            .unwrap();
        if restarts >= 1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the crashed {what} was not restarted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Copies `path` out of `container` (running or not) to `to`; returns `to`.
fn copy_out(container: &str, path: &str, to: &Path) -> PathBuf {
    docker(&["cp", &format!("{container}:{path}"), to.to_str().unwrap()]);
    to.to_owned()
}

fn workers_started_first_join_by_name_and_a_job_survives_a_crashed_worker() {
    let image = image();
    let dir = std::env::temp_dir().join(unique("job"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // 6,000 units of 3 ms each: about 5 s on two workers of two slots.
    let n_units = 6000;
    std::fs::write(dir.join("inputs.jsonl"), "3000\n".repeat(n_units)).unwrap();
    let network = unique("job");
    let delegator = unique("job-delegator");
    let workers = [unique("job-worker-1"), unique("job-worker-2")];
    let _cleanup = Cleanup {
        containers: [delegator.clone()]
            .into_iter()
            .chain(workers.iter().cloned())
            .collect(),
        network: Some(network.clone()),
    };
    docker(&["network", "create", &network]);
    // The workers come first: the delegator's name does not resolve yet, and they keep trying.
    for worker in &workers {
        docker(&[
            "run",
            "-d",
            "--name",
            worker,
            "--network",
            &network,
            "--restart",
            "on-failure",
            "-e",
            &format!("GANGER_CONNECT=tcp://{delegator}:5555"),
            &image,
            "ganger-worker",
        ]);
    }
    std::thread::sleep(Duration::from_secs(3));
    for worker in &workers {
        assert_eq!(
            docker(&["inspect", "-f", "{{.State.Status}}", worker]),
            "running",
            "{worker} gave up before its delegator came"
        );
    }
    let mount = format!("{}:/in:ro", dir.display());
    docker(&[
        "run",
        "-d",
        "--name",
        &delegator,
        "--network",
        &network,
        "-v",
        &mount,
        "-e",
        "GANGER_INSECURE=true",
        &image,
        "ganger-delegator",
        "run",
        "--task",
        "sleep",
        "--input",
        "/in/inputs.jsonl",
        "--output",
        "/data/results.jsonl",
    ]);
    // A third of the way in, one worker crashes; Docker restarts it and it joins again.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let lines = Command::new("docker")
            .args([
                "exec",
                &delegator,
                "sh",
                "-c",
                "wc -l < /data/results.jsonl",
            ])
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<usize>()
                    .ok()
            });
        if let Some(lines) = lines.filter(|&n| n >= n_units / 3) {
            assert!(lines < n_units, "the job was over before the crash");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no third of the results: {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    crash(&workers[0]);
    assert_eq!(docker(&["wait", &delegator]), "0", "the delegator failed");
    assert_restarted(&workers[0], "worker");

    let results = copy_out(
        &delegator,
        "/data/results.jsonl",
        &dir.join("results.jsonl"),
    );
    let mut seen = vec![0u32; n_units];
    for line in std::fs::read_to_string(&results).unwrap().lines() {
        let result: serde_json::Value = serde_json::from_str(line).unwrap();
        let index = result["index"].as_u64().unwrap_or_else(|| panic!("{line}"));
        assert_eq!(result["output"], 3000, "{line}");
        seen[index as usize] += 1;
    }
    let wrong: Vec<(usize, u32)> = seen
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, n)| n != 1)
        .collect();
    assert!(wrong.is_empty(), "(input, results) not once: {wrong:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes a new cluster secret to `path` with `ganger-delegator secret`.
fn make_secret(path: &Path) {
    let made = delegator_command()
        .args(["secret", "--out"])
        .arg(path)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
}

/// Runs [`config`] on this machine, evaluated in-process, into `dir/reference`: what every
/// cluster must write the same bytes as.
fn reference_run(dir: &Path) -> PathBuf {
    let reference = dir.join("reference");
    std::fs::write(
        dir.join("reference.json"),
        config(reference.to_str().unwrap()),
    )
    .unwrap();
    let local = delegator_command()
        .args(["mcmc", "--local-workers", "2", "--config"])
        .arg(dir.join("reference.json"))
        .env("GANGER_LOG", "warn")
        .output()
        .unwrap();
    assert!(local.status.success(), "{local:?}");
    reference
}

/// Gives `path` to the image's user (uid 10001), or, where this user may not give files away,
/// lets everyone read and write it.
fn give_to_image_user(path: &Path) {
    let chown = Command::new("chown")
        .arg("10001:10001")
        .arg(path)
        .output()
        .unwrap();
    if !chown.status.success() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = if path.is_dir() { 0o777 } else { 0o666 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}
