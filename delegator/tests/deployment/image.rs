//! The Dockerfile's contract: what it builds, what it copies where, and that its commands and
//! health check are ones the binaries accept and that work, for a delegator container and for a
//! worker container.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ganger_core::mcmc::config::McmcConfig;

use crate::common::{delegator_bin, delegator_command, free_port, start_delegator, test_config};
use crate::dockerfile::{command_of, Dockerfile, Stage};
use crate::help::{check_command_line, delegator_ports, BINARIES};
use crate::{dockerfile, read, repo_root, settings, temp_dir};

/// What the Compose, Kubernetes and Marathon files rely on. Changing one of these changes the
/// contract: change those files with it.
pub const BIN_DIR: &str = "/usr/local/bin/";
pub const DEMO_CONFIG: &str = "/opt/ganger/stateline-demo.json";
pub const USER: &str = "10001:10001";
pub const WORKDIR: &str = "/data";
pub const STATUS_FILE: &str = "/tmp/ganger-worker.json";
pub const ENTRYPOINT: [&str; 2] = ["/usr/bin/tini", "--"];

/// `cargo metadata` for this machine's platform, with the lock file as it is: it fails if
/// Cargo.lock is not current, as `cargo build --locked` in the image would.
pub fn cargo_metadata() -> serde_json::Value {
    let cargo = env!("CARGO");
    let rustc = Path::new(cargo).with_file_name("rustc");
    let rustc = if rustc.exists() {
        rustc
    } else {
        PathBuf::from("rustc")
    };
    let version = Command::new(&rustc)
        .arg("-vV")
        .output()
        .expect("rustc runs");
    let version = String::from_utf8_lossy(&version.stdout);
    let host = version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc names its host");
    let output = Command::new(cargo)
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .args(["--filter-platform", host, "--manifest-path"])
        .arg(repo_root().join("Cargo.toml"))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo metadata --locked: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata is JSON")
}

/// The names of the binaries the workspace's members build.
pub fn workspace_binaries(metadata: &serde_json::Value) -> BTreeSet<String> {
    let members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(id)))
        .flat_map(|p| p["targets"].as_array().expect("targets").iter())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .map(|t| t["name"].as_str().expect("a target name").to_owned())
        .collect()
}

/// `(major, minor)` of a version such as `1.85` or `1.85.0`.
fn minor_version(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor),
        _ => panic!("not a version: {version}"),
    }
}

/// The `COPY` instructions of the runtime stage that take from the build context, as
/// (destination, source in the context).
pub fn context_copies(file: &Dockerfile) -> Vec<(String, String)> {
    let mut copies = Vec::new();
    for copy in file.runtime().all("COPY") {
        if copy.flag("from").is_some() {
            continue;
        }
        let (sources, destination) = copy.copy_paths();
        assert_eq!(sources.len(), 1, "line {}: one file per COPY", copy.line);
        copies.push((destination, sources[0].clone()));
    }
    copies
}

/// The binaries the runtime stage copies from the build stage, as paths in the build stage.
pub fn copied_binaries(file: &Dockerfile) -> Vec<String> {
    let mut sources = Vec::new();
    for copy in file.runtime().all("COPY") {
        if copy.flag("from") == Some("build") {
            let (from, destination) = copy.copy_paths();
            assert_eq!(destination, BIN_DIR, "line {}", copy.line);
            sources.extend(from);
        }
    }
    sources
}

/// The health check's command, as Docker runs it.
pub fn healthcheck(stage: &Stage) -> Vec<String> {
    let instruction = stage.last("HEALTHCHECK");
    let command = instruction
        .rest
        .strip_prefix("CMD")
        .unwrap_or_else(|| panic!("line {}: HEALTHCHECK CMD …", instruction.line));
    command_of(command)
}

/// The image's `ENV`, with the status file moved into `dir` (a container has its own /tmp).
pub fn container_env(file: &Dockerfile, dir: &Path) -> BTreeMap<String, String> {
    let mut env = file.runtime().env();
    let status_file = env
        .get_mut("GANGER_STATUS_FILE")
        .expect("GANGER_STATUS_FILE");
    *status_file = dir.join("ganger-worker.json").display().to_string();
    env
}

/// Runs the image's health check as Docker would, with `bin_dir` standing in for
/// /usr/local/bin and only `env` in the environment.
pub fn run_healthcheck(bin_dir: &Path, env: &BTreeMap<String, String>) -> Output {
    let argv = healthcheck(dockerfile().runtime());
    Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .envs(env)
        .output()
        .expect("the health check runs")
}

/// Polls the health check until it passes; panics with its last output after `limit`.
pub fn wait_until_healthy(bin_dir: &Path, env: &BTreeMap<String, String>, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let output = run_healthcheck(bin_dir, env);
        if output.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never healthy; last: {:?}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The shell words of each `ganger-*` command in a health-check script.
fn commands_in_script(script: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for word in script.split_whitespace() {
        let ends = word.ends_with(';');
        let word = word.trim_end_matches(';');
        if ["||", "&&", "|", "{", "}", ""].contains(&word) {
            commands.push(std::mem::take(&mut current));
            continue;
        }
        current.push(word.to_owned());
        if ends {
            commands.push(std::mem::take(&mut current));
        }
    }
    commands.push(current);
    commands
        .into_iter()
        .filter(|c| c.first().is_some_and(|p| p.starts_with("ganger-")))
        .collect()
}

/// A process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_build_stage_runs_exactly_cargo_build_release_locked() {
    let file = dockerfile();
    let build = file.stage("build");
    assert!(
        build.from.starts_with("rust:") && build.from.ends_with("-slim-bookworm"),
        "the official Rust image, on the runtime's Debian: {}",
        build.from
    );
    let cargo: Vec<_> = build
        .all("RUN")
        .into_iter()
        .filter(|run| run.rest.contains("cargo"))
        .collect();
    assert_eq!(cargo.len(), 1, "{cargo:?}");
    assert_eq!(cargo[0].rest, "cargo build --release --locked");
    let copies = build.all("COPY");
    assert_eq!(copies.len(), 1);
    assert_eq!(
        copies[0].copy_paths(),
        (vec![".".to_owned()], ".".to_owned()),
        "the whole context (.dockerignore decides) goes to the build"
    );
    assert!(copies[0].line < cargo[0].line);
}

#[test]
fn the_lock_file_is_current_and_the_build_image_rust_is_new_enough() {
    let metadata = cargo_metadata();
    let file = dockerfile();
    let tag = file
        .stage("build")
        .from
        .trim_start_matches("rust:")
        .to_owned();
    let image_rust = minor_version(tag.split('-').next().expect("a version tag"));
    let packages = metadata["packages"].as_array().expect("packages");
    let too_new: Vec<String> = packages
        .iter()
        .filter_map(|p| {
            let wanted = p["rust_version"].as_str()?;
            (minor_version(wanted) > image_rust).then(|| format!("{} needs {wanted}", p["name"]))
        })
        .collect();
    assert!(
        too_new.is_empty(),
        "{} is too old: {too_new:?}",
        file.stage("build").from
    );
}

/// Binaries the workspace builds that the image deliberately leaves out: tools for developers
/// of workers, not programs a cluster runs.
pub const NOT_SHIPPED: [&str; 1] = ["ganger-conformance"];

#[test]
fn every_binary_the_workspace_builds_is_copied_from_the_release_build() {
    let metadata = cargo_metadata();
    let mut built = workspace_binaries(&metadata);
    for tool in NOT_SHIPPED {
        assert!(
            built.remove(tool),
            "{tool} is no longer built: drop it from NOT_SHIPPED"
        );
    }
    let file = dockerfile();
    let release = format!("{}/target/release/", file.stage("build").workdir());
    let copied: BTreeSet<String> = copied_binaries(&file)
        .iter()
        .map(|source| {
            source
                .strip_prefix(&release)
                .unwrap_or_else(|| panic!("{source} is not in {release}"))
                .to_owned()
        })
        .collect();
    assert_eq!(copied, built, "binaries copied vs built");
    let expected: BTreeSet<String> = BINARIES.iter().map(|b| b.to_string()).collect();
    assert_eq!(copied, expected);
}

#[test]
fn the_demo_config_is_copied_from_the_repository_and_parses() {
    let copies = context_copies(&dockerfile());
    let (_, source) = copies
        .iter()
        .find(|(destination, _)| destination == DEMO_CONFIG)
        .unwrap_or_else(|| panic!("nothing is copied to {DEMO_CONFIG}: {copies:?}"));
    let text = read(source);
    let config = McmcConfig::from_file_contents(&text, Path::new(source))
        .unwrap_or_else(|e| panic!("{source}: {e}"));
    let output = Path::new(&config.output_path);
    assert!(
        output.is_relative() && !output.components().any(|c| c.as_os_str() == ".."),
        "{source}: outputPath {} must stay under the working directory ({WORKDIR})",
        config.output_path
    );
    for (_, source) in &copies {
        assert!(repo_root().join(source).is_file(), "{source} is missing");
    }
}

#[test]
fn the_runtime_stage_keeps_the_contract_the_deployment_files_rely_on() {
    let file = dockerfile();
    let runtime = file.runtime();
    assert_eq!(runtime.from, "debian:bookworm-slim");
    assert_eq!(runtime.last("USER").rest, USER);
    let (uid, gid) = USER.split_once(':').expect("uid:gid");
    assert_eq!(uid, gid, "useradd --user-group gives the group the same id");
    let creates_user = runtime.all("RUN").iter().any(|run| {
        run.rest
            .contains(&format!("useradd --uid {uid} --user-group"))
            && run.rest.contains(" ganger")
    });
    assert!(creates_user, "a RUN creates user ganger with uid {uid}");
    assert_eq!(runtime.workdir(), WORKDIR);
    assert!(runtime
        .last("VOLUME")
        .rest
        .contains(&format!("\"{WORKDIR}\"")));
    assert_eq!(runtime.env()["GANGER_STATUS_FILE"], STATUS_FILE);
    assert_eq!(command_of(&runtime.last("ENTRYPOINT").rest), ENTRYPOINT);
    let packages = runtime.apt_packages();
    assert!(
        packages.iter().any(|p| p.starts_with("tini=")),
        "the runtime installs tini (pinned): {packages:?}"
    );
    let exposed: BTreeSet<u16> = runtime
        .last("EXPOSE")
        .rest
        .split_whitespace()
        .map(|p| p.parse().expect("a port"))
        .collect();
    let (bind, http) = delegator_ports(&[], &BTreeMap::new());
    assert_eq!(exposed, BTreeSet::from([bind, http]));
}

#[test]
fn the_image_commands_are_ones_the_binaries_accept() {
    let file = dockerfile();
    let runtime = file.runtime();
    let env = runtime.env();
    let cmd = command_of(&runtime.last("CMD").rest);
    assert_eq!(cmd[0], "ganger-delegator", "docker run IMAGE runs the demo");
    check_command_line(&cmd, &env, &BTreeMap::new(), "CMD");
    let config = cmd
        .iter()
        .position(|a| a == "--config")
        .map(|at| cmd[at + 1].as_str());
    assert_eq!(config, Some(DEMO_CONFIG));

    let known = settings::all_variables();
    for name in env.keys() {
        assert!(known.contains(name), "ENV {name} is read by neither binary");
    }

    let argv = healthcheck(runtime);
    assert_eq!(argv[..2], ["/bin/sh", "-c"], "{argv:?}");
    let commands = commands_in_script(&argv[2]);
    let programs: Vec<&str> = commands.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(programs, ["ganger-worker", "ganger-delegator"], "{argv:?}");
    for command in &commands {
        check_command_line(command, &env, &BTreeMap::new(), "HEALTHCHECK");
    }
    let timeout = runtime
        .last("HEALTHCHECK")
        .flag("timeout")
        .expect("--timeout");
    let timeout: f64 = timeout.trim_end_matches('s').parse().expect("seconds");
    assert!(timeout > 3.0, "room for the probe's own 3 s timeout");
}

#[test]
fn dockerignore_keeps_build_output_and_history_out_of_the_context() {
    let text = read(".dockerignore");
    let patterns: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["target/", ".git"] {
        assert!(patterns.contains(&needed), "{needed} in {patterns:?}");
    }
}

/// A delegator container: the image's environment, and the HTTP server on a free loopback port
/// standing in for 0.0.0.0:8080 (which tests must not bind).
fn delegator_container(dir: &Path) -> (Killed, BTreeMap<String, String>) {
    let mut env = container_env(&dockerfile(), dir);
    env.insert("GANGER_HTTP".into(), format!("127.0.0.1:{}", free_port()));
    let child = delegator_command()
        .args(["run", "--task", "noop", "--range", "10"])
        .args(["--bind", "tcp://127.0.0.1:0"])
        .envs(&env)
        .env("GANGER_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("the delegator starts");
    (Killed(child), env)
}

fn bin_dir() -> PathBuf {
    // Built on demand, so that the health check finds both programs side by side.
    let worker = crate::help::binary_path("ganger-worker");
    let dir = delegator_bin().parent().expect("a folder").to_owned();
    assert_eq!(worker.parent(), Some(dir.as_path()));
    dir
}

#[test]
fn the_health_check_passes_in_a_delegator_container_and_fails_once_it_stops() {
    let dir = temp_dir("health-delegator");
    let (mut delegator, env) = delegator_container(&dir);
    wait_until_healthy(&bin_dir(), &env, Duration::from_secs(30));
    delegator.0.kill().unwrap();
    delegator.0.wait().unwrap();
    let output = run_healthcheck(&bin_dir(), &env);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
}

#[test]
fn the_health_check_passes_in_a_connected_worker_container() {
    let dir = temp_dir("health-worker");
    let delegator = start_delegator(test_config());
    let env = container_env(&dockerfile(), &dir);
    let worker = Command::new(crate::help::binary_path("ganger-worker"))
        .envs(&env)
        .env("GANGER_CONNECT", delegator.endpoint())
        .env("GANGER_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("the worker starts");
    let _worker = Killed(worker);
    wait_until_healthy(&bin_dir(), &env, Duration::from_secs(30));
}

/// With host networking a worker may share its network with a delegator (Marathon's default for
/// the Mesos containerizer): the probe would then find that delegator healthy. A worker that is
/// not connected must fail all the same.
#[test]
fn a_worker_that_is_not_connected_fails_even_where_a_delegator_answers() {
    let dir = temp_dir("health-worker-alone");
    let (_delegator, delegator_env) = delegator_container(&dir.join("delegator"));
    wait_until_healthy(&bin_dir(), &delegator_env, Duration::from_secs(30));

    let mut env = container_env(&dockerfile(), &dir);
    env.insert(
        "GANGER_PROBE_URL".into(),
        format!("http://{}/healthz", delegator_env["GANGER_HTTP"]),
    );
    let closed = format!("tcp://127.0.0.1:{}", free_port());
    let worker = Command::new(crate::help::binary_path("ganger-worker"))
        .envs(&env)
        .env("GANGER_CONNECT", &closed)
        .env("GANGER_LOG", "error")
        .stdin(Stdio::null())
        .spawn()
        .expect("the worker starts");
    let _worker = Killed(worker);
    let status_file = PathBuf::from(&env["GANGER_STATUS_FILE"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !status_file.exists() {
        assert!(Instant::now() < deadline, "the worker wrote no status file");
        std::thread::sleep(Duration::from_millis(50));
    }
    let probe = Command::new(delegator_bin())
        .arg("probe")
        .env_clear()
        .envs(&env)
        .output()
        .expect("the probe runs");
    assert!(probe.status.success(), "the delegator answers: {probe:?}");
    let output = run_healthcheck(&bin_dir(), &env);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn commands_are_found_in_a_health_check_script() {
    assert_eq!(
        commands_in_script("ganger-worker status || { [ $? -eq 2 ] && ganger-delegator probe; }"),
        [
            vec!["ganger-worker", "status"],
            vec!["ganger-delegator", "probe"]
        ]
    );
    assert_eq!(
        commands_in_script("ganger-worker status --max-age-secs 5; true"),
        [vec!["ganger-worker", "status", "--max-age-secs", "5"]]
    );
}
