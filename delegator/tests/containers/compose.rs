//! The repository's docker-compose.yml, a delegator and three workers, broken while it runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{
    assert_restarted, chain_files, check, config, copy_out, crash, docker, give_to_image_user,
    image, make_secret, reference_run, status, step, unique,
};

/// The compose project of one test: the repository's docker-compose.yml, an override that
/// gives the delegator the test's config, and a secret, in a folder of the test's own.
struct Project {
    dir: PathBuf,
    name: String,
    compose: Vec<String>,
}

impl Project {
    fn new(dir: PathBuf, name: String) -> Project {
        // Docker's plugin where it has one, else the standalone tool: users have either.
        let plugin = Command::new("docker")
            .args(["compose", "version"])
            .output()
            .is_ok_and(|o| o.status.success());
        let compose = if plugin {
            vec!["docker".into(), "compose".into()]
        } else {
            vec!["docker-compose".into()]
        };
        Project { dir, name, compose }
    }

    /// `compose -p NAME -f docker-compose.yml -f override.yml ARGS`, in the project's folder,
    /// not yet run.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.compose[0]);
        command
            .args(&self.compose[1..])
            .args(["-p", &self.name])
            .args(["-f", "docker-compose.yml", "-f", "override.yml"])
            .args(args)
            .current_dir(&self.dir)
            .env("GANGER_IMAGE", image())
            // Published on loopback only, on ports Docker picks.
            .env("GANGER_PUBLISH_ADDRESS", "127.0.0.1")
            .env("GANGER_PORT", "")
            .env("GANGER_HTTP_PORT", "")
            .stdin(Stdio::null());
        command
    }

    /// Runs compose with `args`, failing the test unless it succeeds; returns its stdout.
    fn compose(&self, args: &[&str]) -> String {
        let output = self.command(args).output().expect("compose runs");
        check(&self.compose.join(" "), args, &output);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The containers of `service`, by id.
    fn containers(&self, service: &str) -> Vec<String> {
        self.compose(&["ps", "-q", service])
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.command(&["down", "-v", "--timeout", "1"]).output();
    }
}

pub fn compose_output_is_byte_identical_through_killed_workers_and_a_killed_delegator() {
    let dir = std::env::temp_dir().join(unique("compose"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::copy(
        repository.join("docker-compose.yml"),
        dir.join("docker-compose.yml"),
    )
    .unwrap();
    std::fs::write(dir.join("run.json"), config("out")).unwrap();
    std::fs::write(
        dir.join("override.yml"),
        "version: \"3.8\"\nservices:\n  delegator:\n    command: [\"ganger-delegator\", \"mcmc\", \
         \"--config\", \"/config/run.json\"]\n    volumes:\n      - ./run.json:/config/run.json:ro\n",
    )
    .unwrap();
    // The secret, owned by the image's user as docs/deploying.md says to make it (Compose
    // mounts it as it is); one who may not give files away lets everyone read this test's.
    let secret = dir.join("ganger.secret");
    make_secret(&secret);
    give_to_image_user(&secret);

    // The reference: the same config on this machine, evaluated in-process.
    let reference = reference_run(&dir);

    let project = Project::new(dir.clone(), unique("compose").replace('-', ""));
    project.compose(&["up", "-d", "--scale", "worker=3"]);
    let delegator = project.containers("delegator").remove(0);
    let workers = project.containers("worker");
    assert_eq!(workers.len(), 3);
    let http = project.compose(&["port", "delegator", "8080"]);
    assert!(http.starts_with("127.0.0.1:"), "published on {http}");

    // Faults at a third and at two thirds of the run: a worker crashes, then the delegator.
    let total_steps = 300_000;
    let wait_for = |fraction: f64| {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some((done, state)) = step(&http) {
                if done as f64 >= fraction * total_steps as f64 || state != "running" {
                    return (done, state);
                }
            }
            assert!(
                Instant::now() < deadline,
                "the run did not reach {fraction} of its steps"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let (at, state) = wait_for(0.3);
    assert_eq!(
        state, "running",
        "the run ended before the faults (step {at})"
    );
    crash(&workers[0]);
    // Then another worker is cut off for longer than the delegator's 5 s heartbeat timeout:
    // its units go to the others, and it joins again once reconnected.
    let (at, state) = wait_for(0.4);
    assert_eq!(
        state, "running",
        "the run ended before the partition (step {at})"
    );
    let network = docker(&[
        "inspect",
        "-f",
        "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}",
        &workers[1],
    ]);
    docker(&["network", "disconnect", &network, &workers[1]]);
    std::thread::sleep(Duration::from_secs(8));
    docker(&["network", "connect", &network, &workers[1]]);
    let timeouts = status(&http).map(|s| s["counters"]["timeouts"].clone());
    assert!(
        timeouts
            .as_ref()
            .and_then(|t| t.as_u64())
            .is_some_and(|t| t >= 1),
        "the cut-off worker was never timed out: {timeouts:?}"
    );
    let (at, state) = wait_for(0.6);
    assert_eq!(
        state, "running",
        "the run ended before the delegator's crash (step {at})"
    );
    crash(&delegator);
    // It comes back (restart: on-failure), resumes from its checkpoint in the volume, and ends.
    // Restarted, it is published on a port Docker picks anew.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        // While the container restarts it has no published port, and compose says so by
        // failing: no answer yet.
        let port = project.command(&["port", "delegator", "8080"]).output();
        let http = port
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        if let Some((_, state)) = step(&http) {
            if state == "done" {
                break;
            }
            assert_eq!(state, "running", "the resumed run stopped");
        }
        assert!(Instant::now() < deadline, "the run never finished");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_restarted(&workers[0], "worker");
    assert_restarted(&delegator, "delegator");

    let copied = copy_out(&delegator, "/data/out", &dir.join("from-volume"));
    let (ours, theirs) = (chain_files(&copied), chain_files(&reference));
    assert_eq!(ours.len(), 8, "one file per chain");
    assert_eq!(
        ours.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        theirs.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for ((name, a), (_, b)) in ours.iter().zip(&theirs) {
        assert!(a == b, "{name} differs from the local run's");
    }
    drop(project);
    let _ = std::fs::remove_dir_all(&dir);
}
