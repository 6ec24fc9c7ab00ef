//! The repository's docker-compose.yml deployed as a stack on a single-node Swarm, its workers
//! scaled up and down mid-run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{
    chain_files, check, config, copy_out, docker, image, make_secret, reference_run, unique,
};

/// Leaves the single-node swarm the test made, removing its stack first.
struct Swarm {
    stack: String,
    made: bool,
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["stack", "rm", &self.stack])
            .output();
        // The stack's volume outlives it; it goes once its containers have.
        let volume = format!("{}_output", self.stack);
        for _ in 0..50 {
            let removed = Command::new("docker")
                .args(["volume", "rm", &volume])
                .output()
                .is_ok_and(|o| o.status.success());
            if removed {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        if self.made {
            let _ = Command::new("docker")
                .args(["swarm", "leave", "--force"])
                .output();
        }
    }
}

/// `compose` as it is where the kernel has IPVS, which a Swarm's service addresses (virtual
/// IPs) need; otherwise (a Firecracker VM's kernel, as on the project's machines) with the
/// delegator's service name resolving straight to its task (`endpoint_mode: dnsrr`) and its
/// ports published on its node (`mode: host`), as docs/deploying.md advises for such hosts.
fn without_virtual_ips(compose: &str) -> String {
    if Path::new("/proc/net/ip_vs").exists() {
        return compose.to_owned();
    }
    eprintln!(
        "no IPVS in this kernel: the stack's delegator resolves by DNS round robin, its ports \
         published on its node"
    );
    let mut file: serde_yaml_ng::Value = serde_yaml_ng::from_str(compose).unwrap();
    let delegator = &mut file["services"]["delegator"];
    delegator["deploy"]["endpoint_mode"] = "dnsrr".into();
    let ports: Vec<serde_yaml_ng::Value> = delegator["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|port| {
            let target: u16 = port
                .as_str()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let mut long = serde_yaml_ng::Mapping::new();
            long.insert("target".into(), u64::from(target).into());
            long.insert("mode".into(), "host".into());
            serde_yaml_ng::Value::Mapping(long)
        })
        .collect();
    delegator["ports"] = ports.into();
    serde_yaml_ng::to_string(&file).unwrap()
}

/// Lines in `path` inside the one running container of `service`, if it has one.
fn lines_in_service(service: &str, path: &str) -> Option<usize> {
    let ids = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={service}"),
    ]);
    let id = ids.lines().next()?;
    let output = Command::new("docker")
        .args(["exec", id, "sh", "-c", &format!("wc -l < {path}")])
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

pub fn a_swarm_stack_scaled_up_and_down_mid_run_writes_the_same_chains() {
    let state = docker(&["info", "-f", "{{.Swarm.LocalNodeState}}"]);
    let swarm = Swarm {
        stack: unique("stack").replace('-', ""),
        made: state == "inactive",
    };
    if swarm.made {
        docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    }
    let dir = std::env::temp_dir().join(unique("swarm"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let compose = std::fs::read_to_string(repository.join("docker-compose.yml")).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        without_virtual_ips(&compose),
    )
    .unwrap();
    // A Swarm has no bind mounts of relative paths: the config travels as a Swarm config.
    std::fs::write(dir.join("run.json"), config("out")).unwrap();
    std::fs::write(
        dir.join("override.yml"),
        "version: \"3.8\"\nservices:\n  delegator:\n    command: [\"ganger-delegator\", \"mcmc\", \
         \"--config\", \"/config/run.json\"]\n    configs:\n      - source: run\n        \
         target: /config/run.json\nconfigs:\n  run:\n    file: ./run.json\n",
    )
    .unwrap();
    make_secret(&dir.join("ganger.secret"));
    let reference = reference_run(&dir);

    let deploy = Command::new("docker")
        .args(["stack", "deploy", "--resolve-image", "never"])
        .args([
            "-c",
            "docker-compose.yml",
            "-c",
            "override.yml",
            &swarm.stack,
        ])
        .current_dir(&dir)
        .env("GANGER_IMAGE", image())
        // Any free port: the routing mesh publishes on every interface of the node.
        .env("GANGER_PORT", "")
        .env("GANGER_HTTP_PORT", "")
        .output()
        .unwrap();
    check("docker stack deploy", &[], &deploy);
    let delegator = format!("{}_delegator", swarm.stack);
    let worker = format!("{}_worker", swarm.stack);
    let chain = "/data/out/0.csv";
    let total_steps = 300_000;
    let wait_for = |fraction: f64| {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let rows = lines_in_service(&delegator, chain).unwrap_or(0);
            if rows as f64 >= fraction * total_steps as f64 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{chain} has {rows} rows, short of {fraction} of the run"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    // Scaled while the run goes on: each scale is seen through (every task running, the rest
    // gone) before the run has ended.
    let scale = |replicas: usize| {
        docker(&[
            "service",
            "scale",
            "--detach",
            &format!("{worker}={replicas}"),
        ]);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let running = docker(&[
                "ps",
                "-q",
                "--filter",
                &format!("label=com.docker.swarm.service.name={worker}"),
            ])
            .lines()
            .count();
            if running == replicas {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{running} of {replicas} workers after scaling"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        let rows = lines_in_service(&delegator, chain).unwrap_or(0);
        assert!(
            rows < total_steps,
            "the run ended before the scale to {replicas} took effect"
        );
    };
    wait_for(0.25);
    scale(4);
    wait_for(0.5);
    scale(1);
    // The run ends with its summary (the delegator keeps serving after it).
    let deadline = Instant::now() + Duration::from_secs(300);
    while lines_in_service(&delegator, "/data/out/summary.json").is_none() {
        assert!(Instant::now() < deadline, "the stack's run never finished");
        std::thread::sleep(Duration::from_millis(500));
    }
    let ids = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={delegator}"),
    ]);
    let copied = copy_out(
        ids.lines().next().unwrap(),
        "/data/out",
        &dir.join("from-stack"),
    );
    let (ours, theirs) = (chain_files(&copied), chain_files(&reference));
    assert_eq!(ours.len(), 8, "one file per chain");
    for ((name, a), (_, b)) in ours.iter().zip(&theirs) {
        assert!(a == b, "{name} differs from the local run's");
    }
    drop(swarm);
    let _ = std::fs::remove_dir_all(&dir);
}
