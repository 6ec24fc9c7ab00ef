//! The Marathon apps in `marathon/` and its `deploy.sh`, taken the way Marathon would take them:
//! checked against Marathon's draft-4 JSON Schema and the rules it enforces beyond it (the
//! reference in `shared/marathon/`, beside the repository), run as Marathon would run them (an
//! app's `args` with exactly its `env`, its health check through `sh -c`), and sent by
//! `deploy.sh` to a stand-in Marathon on 127.0.0.1.

mod common;
#[path = "marathon/rules.rs"]
mod rules;
#[path = "marathon/stand_in.rs"]
mod stand_in;
#[path = "marathon/tasks.rs"]
mod tasks;

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{run_trials, start_delegator, test_config, trial, wait_for};
use ganger_cluster::JobOptions;
use rules::{Rule, DEFAULT_OFFERED_PORTS};
use serde_json::{json, Value};
use stand_in::{Request, StandIn};
use tasks::{api_state, http_get, DelegatorTask, Task};

/// The app files, each with the id `deploy.sh` sends it under.
const APPS: [(&str, &str); 2] = [
    ("delegator.json", "/ganger-delegator"),
    ("marathon-sample.json", "/ganger-workers"),
];
/// What `deploy.sh` fills in, and what the tests fill in for it.
const HOST_PLACEHOLDER: &str = "DELEGATOR_HOST";
const IMAGE_PLACEHOLDER: &str = "REGISTRY/ganger:TAG";
const HOST: &str = "node7.example.net";
const IMAGE: &str = "registry.example.net:5000/ganger:1.0";

// ---------------------------------------------------------------------------------------------
// The definitions against Marathon's schema and rules.

fn every_app_in_marathon_passes_marathons_json_schema_as_draft_4() {
    let Some(validator) = schema_validator() else {
        return;
    };
    let files = app_files();
    for (name, _) in APPS {
        assert!(
            files.iter().any(|f| f.ends_with(name)),
            "{name} is missing from marathon/"
        );
    }
    for file in files {
        let app = read_json(&file);
        let errors: Vec<String> = validator
            .iter_errors(&app)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
    }
}

fn every_app_in_marathon_keeps_the_rules_marathon_enforces_beyond_the_schema() {
    let offered = documented_offered_ports();
    for file in app_files() {
        let violations = rules::check(&read_json(&file), &offered);
        assert!(
            violations.is_empty(),
            "{}:\n{}",
            file.display(),
            lines(&violations)
        );
    }
}

fn the_sample_marathon_refuses_is_refused_by_the_schema_and_by_the_rules() {
    let Some(reference_readme) = reference("README.md") else {
        return;
    };
    let readme = std::fs::read_to_string(reference_readme).unwrap();
    let marker = "Sample that Marathon 1.x would refuse";
    let after = &readme[readme
        .find(marker)
        .expect("the README shows the refused sample")..];
    // The sample is the code span that holds a JSON object.
    let start = after.find("`{").expect("the sample in backticks") + 1;
    let sample = &after[start..start + after[start..].find('`').unwrap()];
    let sample: Value = serde_json::from_str(sample).expect("the refused sample is JSON");

    assert!(!schema_validator()
        .expect("the reference was found above")
        .is_valid(&sample));
    let violations = rules::check(&sample, &[DEFAULT_OFFERED_PORTS]);
    for (rule, field) in [
        (Rule::NumbersAreNumbers, "`instances`"),
        (Rule::NumbersAreNumbers, "`cpus`"),
        (Rule::MemNotMemory, "`memory`"),
        // It also leaves out portDefinitions, so Marathon would reserve a port it never uses.
        (Rule::PortsDeclared, "portDefinitions"),
    ] {
        assert!(
            violations
                .iter()
                .any(|v| v.rule == rule && v.detail.contains(field)),
            "no {rule} violation naming {field}:\n{}",
            lines(&violations)
        );
    }
}

fn mutated_copies_of_the_apps_are_refused_with_the_rule_named() {
    let workers = read_json(&marathon_dir().join("marathon-sample.json"));
    let delegator = read_json(&marathon_dir().join("delegator.json"));
    let (w, d) = (&workers, &delegator);

    refused(w, Rule::Id, "uppercase id", |a| {
        a["id"] = json!("/Ganger-Workers")
    });
    refused(w, Rule::Id, "a leading dash", |a| {
        a["id"] = json!("/ganger/-workers")
    });
    refused(w, Rule::Id, "ending in tasks", |a| {
        a["id"] = json!("/ganger/tasks")
    });
    refused(w, Rule::CmdXorArgs, "cmd and args", |a| {
        a["cmd"] = json!("ganger-worker")
    });
    refused(w, Rule::CmdXorArgs, "nothing to run", |a| {
        remove(a, "args");
        remove(a, "container");
    });
    refused(w, Rule::NumbersAreNumbers, "instances string", |a| {
        a["instances"] = json!("4")
    });
    refused(w, Rule::NumbersAreNumbers, "cpus string", |a| {
        a["cpus"] = json!("2")
    });
    refused(d, Rule::NumbersAreNumbers, "mem string", |a| {
        a["mem"] = json!("1024")
    });
    refused(w, Rule::MemNotMemory, "memory, not mem", |a| {
        a["memory"] = remove(a, "mem");
    });
    refused(w, Rule::CpusMinimum, "cpus 0.0005", |a| {
        a["cpus"] = json!(0.0005)
    });
    refused(w, Rule::EnvStrings, "env number", |a| {
        a["env"]["GANGER_THREADS"] = json!(2)
    });
    refused(w, Rule::Networks, "host and bridge", |a| {
        a["networks"] = json!([{"mode": "host"}, {"mode": "container/bridge"}]);
    });
    refused(w, Rule::Networks, "unnamed container network", |a| {
        a["networks"] = json!([{"mode": "container"}]);
    });
    refused(d, Rule::DeprecatedNetworking, "docker.network", |a| {
        a["container"]["docker"]["network"] = json!("BRIDGE");
    });
    refused(w, Rule::DeprecatedNetworking, "ports", |a| {
        a["ports"] = json!([0])
    });
    refused(
        w,
        Rule::PortsDeclared,
        "host without portDefinitions",
        |a| {
            remove(a, "portDefinitions");
        },
    );
    refused(d, Rule::PortsDeclared, "bridge without portMappings", |a| {
        remove(&mut a["container"], "portMappings");
    });
    refused(d, Rule::PortsDeclared, "bridge with portDefinitions", |a| {
        a["portDefinitions"] = json!([]);
    });
    refused(d, Rule::FixedHostPortOffered, "hostPort 8080", |a| {
        a["container"]["portMappings"][1]["hostPort"] = json!(8080);
    });
    refused(d, Rule::PortNames, "uppercase port name", |a| {
        a["container"]["portMappings"][1]["name"] = json!("HTTP");
    });
    refused(d, Rule::PortNames, "port name twice", |a| {
        a["container"]["portMappings"][1]["name"] = json!("zmq");
    });
    refused(d, Rule::HealthCheckKind, "HTTP check", |a| {
        a["healthChecks"][0]["protocol"] = json!("HTTP");
    });
    refused(d, Rule::HealthCheckKind, "no protocol (HTTP)", |a| {
        remove(&mut a["healthChecks"][0], "protocol");
    });
    refused(w, Rule::HealthCheckKind, "TCP check", |a| {
        a["healthChecks"] = json!([{"protocol": "TCP"}]);
    });
    refused(d, Rule::HealthCheckPortIndex, "portIndex 2", |a| {
        a["healthChecks"][0]["portIndex"] = json!(2);
    });
    refused(w, Rule::HealthCheckPortIndex, "MESOS_TCP, no ports", |a| {
        a["healthChecks"] = json!([{"protocol": "MESOS_TCP"}]);
    });
    refused(w, Rule::CommandCheckShape, "bare command string", |a| {
        a["healthChecks"][0]["command"] = json!("ganger-worker status");
    });
    refused(w, Rule::CommandCheckShape, "COMMAND with path", |a| {
        a["healthChecks"][0]["path"] = json!("/healthz");
    });
    refused(w, Rule::CommandCheckShape, "COMMAND with portIndex", |a| {
        a["healthChecks"][0]["portIndex"] = json!(0);
    });
    for (what, constraint) in [
        ("UNIQUE with a value", json!(["hostname", "UNIQUE", "1"])),
        ("MAX_PER without a value", json!(["hostname", "MAX_PER"])),
        ("MAX_PER with a word", json!(["hostname", "MAX_PER", "two"])),
        ("CLUSTER without a value", json!(["hostname", "CLUSTER"])),
        ("LIKE without a value", json!(["hostname", "LIKE"])),
        ("an unknown operator", json!(["hostname", "NEAR", "x"])),
    ] {
        refused(w, Rule::ConstraintArity, what, |a| {
            a["constraints"] = json!([constraint]);
        });
    }
    refused(
        d,
        Rule::FixedPortUpgradeStrategy,
        "minimumHealthCapacity 1",
        |a| {
            a["upgradeStrategy"]["minimumHealthCapacity"] = json!(1);
        },
    );
    refused(
        d,
        Rule::FixedPortUpgradeStrategy,
        "no upgradeStrategy",
        |a| {
            remove(a, "upgradeStrategy");
        },
    );
    refused(
        w,
        Rule::UnreachableOrdering,
        "inactive after expunge",
        |a| {
            a["unreachableStrategy"] =
                json!({"inactiveAfterSeconds": 300, "expungeAfterSeconds": 60});
        },
    );
}

/// Checks that `app` changed by `mutate` breaks `rule`, and that the message names it.
fn refused(app: &Value, rule: Rule, what: &str, mutate: impl FnOnce(&mut Value)) {
    let mut app = app.clone();
    mutate(&mut app);
    let violations = rules::check(&app, &documented_offered_ports());
    let named = violations
        .iter()
        .find(|v| v.rule == rule)
        .unwrap_or_else(|| panic!("{what}: no {rule} violation:\n{}", lines(&violations)));
    assert!(named.to_string().starts_with(&rule.to_string()), "{named}");
}

/// Removes `key` from the object `value` and returns what it held.
fn remove(value: &mut Value, key: &str) -> Value {
    value
        .as_object_mut()
        .and_then(|o| o.remove(key))
        .unwrap_or_else(|| panic!("no {key} to remove"))
}

fn the_schema_alone_refuses_some_mutations_the_rules_also_catch() {
    // The schema and the rules overlap; both refusing keeps either from rotting unnoticed.
    let Some(validator) = schema_validator() else {
        return;
    };
    let workers = read_json(&marathon_dir().join("marathon-sample.json"));
    let mut mutated = workers.clone();
    mutated["instances"] = json!("4");
    assert!(!validator.is_valid(&mutated), "instances as a string");
    let mut mutated = workers.clone();
    mutated["cmd"] = json!("ganger-worker");
    assert!(!validator.is_valid(&mutated), "cmd and args both");
    let mut mutated = workers.clone();
    mutated["memory"] = json!(512);
    assert!(!validator.is_valid(&mutated), "memory");
}

fn the_delegators_fixed_host_port_is_refused_on_an_agent_offering_only_the_default_range() {
    // delegator.json passes only because marathon/README.md tells operators to offer the port.
    let delegator = read_json(&marathon_dir().join("delegator.json"));
    let violations = rules::check(&delegator, &[DEFAULT_OFFERED_PORTS]);
    assert!(
        violations
            .iter()
            .any(|v| v.rule == Rule::FixedHostPortOffered && v.detail.contains("5555")),
        "{}",
        lines(&violations)
    );
}

fn the_apps_agree_on_ports_paths_and_placeholders() {
    let workers = read_json(&marathon_dir().join("marathon-sample.json"));
    let delegator = read_json(&marathon_dir().join("delegator.json"));
    for (app, binary) in [
        (&workers, "ganger-worker"),
        (&delegator, "ganger-delegator"),
    ] {
        assert_eq!(app["container"]["docker"]["image"], IMAGE_PLACEHOLDER);
        assert_eq!(
            app["args"][0], binary,
            "args run our binary through the image's tini"
        );
        assert!(
            app.get("cmd").is_none(),
            "cmd would replace the tini entrypoint"
        );
    }
    // Workers dial the delegator's fixed host port, which maps to the port it binds.
    let connect = workers["env"]["GANGER_CONNECT"].as_str().unwrap();
    let worker_port = port_of(
        connect
            .strip_prefix(&format!("tcp://{HOST_PLACEHOLDER}:"))
            .unwrap(),
    );
    let mappings = delegator["container"]["portMappings"].as_array().unwrap();
    let zmq = mappings
        .iter()
        .find(|m| m["hostPort"] == json!(worker_port))
        .expect("a port mapping with the host port workers dial");
    let bind = delegator["env"]["GANGER_BIND"].as_str().unwrap();
    assert_eq!(zmq["containerPort"], json!(port_of(bind)));
    // The health check asks the HTTP server where it listens.
    let check = &delegator["healthChecks"][0];
    assert_eq!(check["path"], "/healthz");
    let http = &mappings[check["portIndex"].as_u64().unwrap() as usize];
    let http_address = delegator["env"]["GANGER_HTTP"].as_str().unwrap();
    assert_eq!(http["containerPort"], json!(port_of(http_address)));
    // The config the delegator reads is on its volume, and the delegator runs on the host
    // workers dial.
    let volume = delegator["container"]["volumes"][0]["containerPath"]
        .as_str()
        .unwrap();
    let args: Vec<&str> = string_array(&delegator["args"]);
    let config = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    assert!(
        config.starts_with(&format!("{volume}/")),
        "{config} not on {volume}"
    );
    assert_eq!(
        delegator["constraints"],
        json!([["hostname", "CLUSTER", HOST_PLACEHOLDER]])
    );
    // The workers' check reads the status file their env points the worker at.
    let command = workers["healthChecks"][0]["command"]["value"]
        .as_str()
        .unwrap();
    assert!(command.starts_with("ganger-worker status"), "{command}");
    assert!(workers["env"]["GANGER_STATUS_FILE"].is_string());
    // Both apps read the cluster secret from the same file on their agent, mounted read-only
    // where their GANGER_SECRET_FILE points.
    let mut host_paths = Vec::new();
    for app in [&workers, &delegator] {
        let path = app["env"]["GANGER_SECRET_FILE"].as_str().unwrap();
        let volume = app["container"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["containerPath"] == path)
            .unwrap_or_else(|| panic!("no volume at {path}"));
        assert_eq!(volume["mode"], "RO");
        host_paths.push(volume["hostPath"].clone());
    }
    assert_eq!(host_paths[0], host_paths[1]);
}

// ---------------------------------------------------------------------------------------------
// The apps run the way Marathon would run them.

fn workers_launched_as_marathon_would_do_a_job_and_are_healthy_only_while_connected() {
    let app = read_json(&marathon_dir().join("marathon-sample.json"));
    let scratch = scratch_dir("workers");
    let delegator = start_delegator(ganger_cluster::DelegatorConfig {
        secret: Some(ganger_cluster::Secret::new(tasks::TEST_SECRET.as_bytes()).unwrap()),
        ..test_config()
    });
    let endpoint = delegator.local_endpoint();
    let mut tasks: Vec<Task> = (0..2)
        .map(|i| Task::worker(&app, &endpoint, &scratch.join(format!("task-{i}"))))
        .collect();

    let stats = wait_for(&delegator, Duration::from_secs(30), "both workers", |s| {
        s.workers.len() == 2
    });
    let threads: u32 = app["env"]["GANGER_THREADS"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for task in &tasks {
        let pid = task.child.id();
        let registered = stats
            .workers
            .iter()
            .find(|w| w.name.ends_with(&format!("-{pid}")))
            .unwrap_or_else(|| panic!("worker {pid} not registered: {:?}", stats.workers));
        assert_eq!(
            registered.slots, threads,
            "GANGER_THREADS from the app's env"
        );
    }

    let n = 2_000i64;
    let job = delegator
        .submit::<_, i64>("square", 0..n, JobOptions::default())
        .unwrap();
    let results = job.collect_ordered().unwrap();
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result, &Ok(i as i64 * i as i64), "unit {i}");
    }
    // The status files the health check reads count the same units.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let done: u64 = tasks
            .iter()
            .map(|t| t.status()["units_done"].as_u64().unwrap())
            .sum();
        if done == n as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status files count {done} of {n} units"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    for task in &tasks {
        let (code, output) = task.health_check(&app);
        assert_eq!(code, 0, "healthy while connected:\n{output}");
        assert!(output.contains("state: connected"), "{output}");
    }

    delegator.shutdown();
    for task in &mut tasks {
        let (code, output) = task.await_health(&app, Duration::from_secs(20), |code| code != 0);
        assert_eq!(
            code, 1,
            "unhealthy, not unreadable, once the delegator is gone:\n{output}"
        );
        assert!(output.contains("state: connecting"), "{output}");
        assert!(
            task.is_running(),
            "the worker keeps retrying:\n{}",
            task.log()
        );
    }
}

fn the_delegator_app_runs_as_marathon_would_serves_its_health_check_and_resumes_after_a_restart() {
    let app = read_json(&marathon_dir().join("delegator.json"));
    let workers_app = read_json(&marathon_dir().join("marathon-sample.json"));
    let scratch = scratch_dir("delegator");
    // The host path Marathon mounts at the volume's containerPath, the image's WORKDIR.
    let volume = scratch.join("volume");
    std::fs::create_dir_all(&volume).unwrap();
    std::fs::write(volume.join("config.json"), SMALL_MCMC_CONFIG).unwrap();

    let mut delegator = DelegatorTask::start(&app, &volume, &scratch);
    let check = &app["healthChecks"][0];
    let path = check["path"].as_str().unwrap();
    assert_eq!(http_get(&delegator.http, path), (200, "ok".to_owned()));

    let mut worker = Task::worker(&workers_app, &delegator.endpoint, &scratch.join("worker"));
    let summary = volume.join("output/summary.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !summary.exists() {
        assert!(
            Instant::now() < deadline,
            "the run never finished:\n{}",
            delegator.log()
        );
        assert!(
            delegator.is_running(),
            "the delegator exited:\n{}",
            delegator.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let chain = std::fs::read(volume.join("output/0.csv")).unwrap();
    // --keep-serving: the finished run stays up and healthy, so Marathon does not restart it.
    assert_eq!(api_state(&delegator.http), "done");
    assert_eq!(http_get(&delegator.http, path).0, 200);
    assert!(delegator.is_running());

    // Marathon kills with SIGTERM and waits taskKillGracePeriodSeconds before SIGKILL.
    let grace = app["taskKillGracePeriodSeconds"].as_u64().unwrap();
    delegator.terminate_within(Duration::from_secs(grace));
    worker.child.kill().unwrap();
    worker.child.wait().unwrap();

    // Restarted with the same args and no worker: --resume finds the finished run's checkpoint
    // and is done at once; a run starting over could not move without workers.
    let mut restarted = DelegatorTask::start(&app, &volume, &scratch);
    let deadline = Instant::now() + Duration::from_secs(30);
    while api_state(&restarted.http) != "done" {
        assert!(
            Instant::now() < deadline,
            "the restarted delegator did not resume the finished run:\n{}",
            restarted.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(std::fs::read(volume.join("output/0.csv")).unwrap(), chain);
    restarted.terminate_within(Duration::from_secs(grace));
}

/// A run of a few seconds on one worker; `outputPath` is relative, so it lands on the volume.
const SMALL_MCMC_CONFIG: &str = r#"{
  "nJobTypes": 3,
  "nStacks": 2,
  "nTemperatures": 3,
  "nSamplesTotal": 2000,
  "min": [-10, -10],
  "max": [10, 10],
  "outputPath": "output",
  "checkpointIntervalSec": 1
}"#;

// ---------------------------------------------------------------------------------------------
// deploy.sh against a stand-in Marathon.

fn deploy_sh_creates_both_apps_delegator_first_with_the_placeholders_filled_in() {
    let marathon = StandIn::start(|request| match request.method.as_str() {
        "GET" => (
            404,
            json!({"message": format!("App '{}' does not exist", &request.path[8..])}).to_string(),
        ),
        _ => (
            201,
            json!({"deployments": [{"id": "5ed4c0c5"}]}).to_string(),
        ),
    });
    let output = deploy_sh(Some(&marathon.url), &["both"]);
    assert!(output.status.success(), "{}", describe(&output));
    let requests = marathon.requests();
    let summary: Vec<(&str, &str)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("GET", "/v2/apps/ganger-delegator"),
            ("POST", "/v2/apps"),
            ("GET", "/v2/apps/ganger-workers"),
            ("POST", "/v2/apps"),
        ]
    );
    assert_sent(&requests[1], "delegator.json");
    assert_sent(&requests[3], "marathon-sample.json");
}

fn deploy_sh_updates_an_app_marathon_already_has_with_put() {
    let marathon = StandIn::start(|request| match request.method.as_str() {
        "GET" => (
            200,
            json!({"app": {"id": "/ganger-workers", "instances": 4}}).to_string(),
        ),
        _ => (
            200,
            json!({"version": "2024-11-21T22:25:02.123Z", "deploymentId": "5ed4c0c5"}).to_string(),
        ),
    });
    let output = deploy_sh(Some(&marathon.url), &["workers"]);
    assert!(output.status.success(), "{}", describe(&output));
    let requests = marathon.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("GET", "/v2/apps/ganger-workers")
    );
    assert_eq!(
        (requests[1].method.as_str(), requests[1].path.as_str()),
        ("PUT", "/v2/apps/ganger-workers")
    );
    assert_sent(&requests[1], "marathon-sample.json");
}

fn deploy_sh_prints_marathons_refusal_and_exits_non_zero() {
    let marathon = StandIn::start(|request| match request.method.as_str() {
        "GET" => (
            404,
            json!({"message": "App '/ganger-delegator' does not exist"}).to_string(),
        ),
        _ => (
            422,
            json!({
                "message": "Object is not valid",
                "details": [{"path": "/instances", "errors": ["error.expected.jsnumber"]}]
            })
            .to_string(),
        ),
    });
    let output = deploy_sh(Some(&marathon.url), &["both"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{}", describe(&output));
    for needle in [
        "422",
        "Object is not valid",
        "/instances",
        "error.expected.jsnumber",
    ] {
        assert!(
            stderr.contains(needle),
            "{needle:?} missing from:\n{stderr}"
        );
    }
    // It stops at the first refusal: the workers were never sent.
    assert_eq!(marathon.requests().len(), 2, "{:#?}", marathon.requests());
}

fn deploy_sh_dry_run_prints_the_filled_in_apps_and_sends_nothing() {
    let marathon = StandIn::start(|_| (500, "{}".into()));
    let output = deploy_sh(Some(&marathon.url), &["--dry-run", "both"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(marathon.requests().is_empty(), "{:#?}", marathon.requests());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let mut printed = Vec::new();
    for line in stdout.lines() {
        if line.starts_with("# ") {
            printed.push(String::new());
        } else {
            let app = printed.last_mut().expect("a comment line before each app");
            app.push_str(line);
            app.push('\n');
        }
    }
    assert_eq!(printed.len(), 2, "{stdout}");
    for ((file, _), text) in APPS.iter().zip(&printed) {
        let sent: Value = serde_json::from_str(text).unwrap();
        assert_eq!(sent, filled_in(file), "{file}");
    }
}

fn deploy_sh_refuses_to_send_without_the_delegators_host_or_to_an_unreachable_marathon() {
    let marathon = StandIn::start(|_| (500, "{}".into()));
    let output = Command::new(marathon_dir().join("deploy.sh"))
        .arg("workers")
        .env("MARATHON_URL", &marathon.url)
        .env_remove("DELEGATOR_HOST")
        .env("GANGER_IMAGE", IMAGE)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("DELEGATOR_HOST"));

    let output = deploy_sh(
        Some(&marathon.url),
        &["--delegator-host", "node7; rm -rf /", "workers"],
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a host name"));
    assert!(marathon.requests().is_empty(), "{:#?}", marathon.requests());

    let closed = format!("http://127.0.0.1:{}", common::free_port());
    let output = deploy_sh(Some(&closed), &["workers"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot reach Marathon"),
        "{}",
        describe(&output)
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn marathon_dir() -> PathBuf {
    repository().join("marathon")
}

/// A file of Marathon's reference, kept in `shared/marathon/` beside the repository (or in the
/// folder `GANGER_MARATHON_REFERENCE` names). It is Marathon's text, not ours, so it is not in
/// the repository: where it is absent the tests that need it say so and skip, unless
/// `GANGER_REQUIRE_MARATHON_REFERENCE` is set, which makes its absence a failure.
fn reference(name: &str) -> Option<PathBuf> {
    find_reference(name, false)
}

/// What the schema tests lack of Marathon's reference, unless it is required to be there.
fn reference_lacking() -> Option<String> {
    if std::env::var_os("GANGER_REQUIRE_MARATHON_REFERENCE").is_some() {
        return None;
    }
    find_reference("AppDefinition.schema.json", true)
        .is_none()
        .then(|| {
            "Marathon's reference, at ../shared/marathon from the repository (or \
         GANGER_MARATHON_REFERENCE)"
                .to_owned()
        })
}

fn find_reference(name: &str, quiet: bool) -> Option<PathBuf> {
    let from_env = std::env::var_os("GANGER_MARATHON_REFERENCE").map(PathBuf::from);
    let beside = repository()
        .canonicalize()
        .ok()
        .into_iter()
        .flat_map(|root| {
            root.ancestors()
                .map(|dir| dir.join("shared/marathon"))
                .collect::<Vec<_>>()
        });
    let found = from_env
        .into_iter()
        .chain(beside)
        .map(|dir| dir.join(name))
        .find(|path| path.exists());
    if found.is_none() && !quiet {
        assert!(
            std::env::var_os("GANGER_REQUIRE_MARATHON_REFERENCE").is_none(),
            "Marathon's reference {name} is missing: these tests expect shared/marathon/ beside the repository, at ../shared/marathon from its root (or GANGER_MARATHON_REFERENCE)"
        );
        eprintln!("SKIPPED: Marathon's reference {name} not found (../shared/marathon or GANGER_MARATHON_REFERENCE)");
    }
    found
}

fn schema_validator() -> Option<jsonschema::Validator> {
    let schema = read_json(&reference("AppDefinition.schema.json")?);
    // Its `$schema` names no draft; Marathon validated with draft 4, so say so.
    Some(jsonschema::draft4::new(&schema).expect("Marathon's schema compiles as draft 4"))
}

/// Every `*.json` in `marathon/`.
fn app_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(marathon_dir())
        .expect("marathon/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The host ports the agent offers according to marathon/README.md's `--resources` line.
fn documented_offered_ports() -> Vec<RangeInclusive<u64>> {
    let readme = std::fs::read_to_string(marathon_dir().join("README.md")).unwrap();
    let start = readme
        .find("ports:[")
        .expect("marathon/README.md gives the agent's --resources ports:[...]")
        + "ports:[".len();
    let end = start + readme[start..].find(']').unwrap();
    readme[start..end]
        .split(',')
        .map(|range| {
            let (low, high) = range.trim().split_once('-').expect("LOW-HIGH");
            low.parse().unwrap()..=high.parse().unwrap()
        })
        .collect()
}

fn lines(violations: &[rules::Violation]) -> String {
    violations.iter().map(|v| format!("  {v}\n")).collect()
}

/// The port of `tcp://*:5555`, `0.0.0.0:8080` or `5555`.
fn port_of(address: &str) -> u64 {
    address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {address:?}"))
}

fn string_array(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ganger-marathon-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `marathon/deploy.sh` with `MARATHON_URL` (if given), the test's host and image, and no
/// proxy between it and the stand-in.
fn deploy_sh(marathon_url: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(marathon_dir().join("deploy.sh"));
    command
        .args(args)
        .env("DELEGATOR_HOST", HOST)
        .env("GANGER_IMAGE", IMAGE)
        .env("NO_PROXY", "*")
        .env("no_proxy", "*")
        .stdin(Stdio::null());
    match marathon_url {
        Some(url) => command.env("MARATHON_URL", url),
        None => command.env_remove("MARATHON_URL"),
    };
    command.output().expect("deploy.sh runs")
}

/// The app in `file` as `deploy.sh` should send it: the placeholders filled in.
fn filled_in(file: &str) -> Value {
    let text = std::fs::read_to_string(marathon_dir().join(file)).unwrap();
    assert!(
        text.contains(HOST_PLACEHOLDER) && text.contains(IMAGE_PLACEHOLDER),
        "{file}"
    );
    let text = text
        .replace(HOST_PLACEHOLDER, HOST)
        .replace(IMAGE_PLACEHOLDER, IMAGE);
    serde_json::from_str(&text).unwrap()
}

/// Checks that `request` carried `file`, filled in, as JSON.
fn assert_sent(request: &Request, file: &str) {
    assert_eq!(
        request.header("content-type"),
        Some("application/json"),
        "{file}"
    );
    let sent: Value = serde_json::from_slice(&request.body).expect("the body is JSON");
    assert_eq!(sent, filled_in(file), "{file}");
    let id = APPS.iter().find(|(f, _)| *f == file).unwrap().1;
    assert_eq!(sent["id"], id);
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The schema tests read Marathon's own reference, kept beside the repository: without it they
/// are reported as ignored, saying where it is looked for (with
/// `GANGER_REQUIRE_MARATHON_REFERENCE` set, they fail instead).
fn main() -> std::process::ExitCode {
    let reference = reference_lacking();
    run_trials(vec![
        trial("every_app_in_marathon_passes_marathons_json_schema_as_draft_4", reference.clone(), every_app_in_marathon_passes_marathons_json_schema_as_draft_4),
        trial("every_app_in_marathon_keeps_the_rules_marathon_enforces_beyond_the_schema", None, every_app_in_marathon_keeps_the_rules_marathon_enforces_beyond_the_schema),
        trial("the_sample_marathon_refuses_is_refused_by_the_schema_and_by_the_rules", reference.clone(), the_sample_marathon_refuses_is_refused_by_the_schema_and_by_the_rules),
        trial("mutated_copies_of_the_apps_are_refused_with_the_rule_named", None, mutated_copies_of_the_apps_are_refused_with_the_rule_named),
        trial("the_schema_alone_refuses_some_mutations_the_rules_also_catch", reference.clone(), the_schema_alone_refuses_some_mutations_the_rules_also_catch),
        trial("the_delegators_fixed_host_port_is_refused_on_an_agent_offering_only_the_default_range", None, the_delegators_fixed_host_port_is_refused_on_an_agent_offering_only_the_default_range),
        trial("the_apps_agree_on_ports_paths_and_placeholders", None, the_apps_agree_on_ports_paths_and_placeholders),
        trial("workers_launched_as_marathon_would_do_a_job_and_are_healthy_only_while_connected", None, workers_launched_as_marathon_would_do_a_job_and_are_healthy_only_while_connected),
        trial("the_delegator_app_runs_as_marathon_would_serves_its_health_check_and_resumes_after_a_restart", None, the_delegator_app_runs_as_marathon_would_serves_its_health_check_and_resumes_after_a_restart),
        trial("deploy_sh_creates_both_apps_delegator_first_with_the_placeholders_filled_in", None, deploy_sh_creates_both_apps_delegator_first_with_the_placeholders_filled_in),
        trial("deploy_sh_updates_an_app_marathon_already_has_with_put", None, deploy_sh_updates_an_app_marathon_already_has_with_put),
        trial("deploy_sh_prints_marathons_refusal_and_exits_non_zero", None, deploy_sh_prints_marathons_refusal_and_exits_non_zero),
        trial("deploy_sh_dry_run_prints_the_filled_in_apps_and_sends_nothing", None, deploy_sh_dry_run_prints_the_filled_in_apps_and_sends_nothing),
        trial("deploy_sh_refuses_to_send_without_the_delegators_host_or_to_an_unreachable_marathon", None, deploy_sh_refuses_to_send_without_the_delegators_host_or_to_an_unreachable_marathon),
    ])
}
