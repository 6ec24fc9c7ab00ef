//! Marathon's app definitions turned into the `docker run` a Mesos agent's Docker containerizer
//! amounts to, field by field. A field this does not know fails the translation: a new field
//! in `marathon/*.json` must be understood here before the test passes.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::{
    config_of, docker, give_to_image_user, image, make_secret, status, step, unique, wait_healthy,
    Cleanup,
};

/// What the test changes of an app to run it on one machine: its placeholders filled in (as
/// `deploy.sh` does), host paths moved under the test's folder, and fixed host ports moved to
/// free ones (with the addresses that name them).
pub struct Site<'a> {
    /// The image for `REGISTRY/ganger:TAG`.
    pub image: &'a str,
    /// The address for `DELEGATOR_HOST`.
    pub delegator_host: &'a str,
    /// Prefix for every `hostPath`.
    pub host_root: &'a std::path::Path,
    /// Fixed host ports and the free ports that replace them.
    pub ports: &'a [(u64, u16)],
    /// The Docker network a `container/bridge` app joins.
    pub bridge: &'a str,
}

/// Fields that steer Marathon's scheduling or its handling of failures across agents, which one
/// `docker run` on one machine has no counterpart for; read and left out.
const SCHEDULING: [&str; 8] = [
    "id",
    "instances",
    "constraints",
    "upgradeStrategy",
    "unreachableStrategy",
    "backoffSeconds",
    "backoffFactor",
    "maxLaunchDelaySeconds",
];

/// The arguments of `docker run` (after `run`) for one instance of `app` named `name`; panics,
/// naming it, at any field it does not know.
pub fn docker_run_args(app: &Value, name: &str, site: &Site) -> Vec<String> {
    let app = object(app, "the app");
    let mut args: Vec<String> = vec!["-d".into(), "--name".into(), name.into()];
    let mut image = None;
    let mut command = Vec::new();
    let mut port_mappings: Vec<(u16, Option<u16>)> = Vec::new();
    for (key, value) in app {
        match key.as_str() {
            key if SCHEDULING.contains(&key) => {}
            "cpus" => args.extend(["--cpus".into(), number(value).to_string()]),
            "mem" => args.extend(["--memory".into(), format!("{}m", number(value))]),
            "disk" => assert_eq!(number(value), 0.0, "disk: only 0 (no disk limit) is known"),
            "container" => {
                image = Some(container(value, site, &mut args, &mut port_mappings));
            }
            "networks" => {
                let networks = value.as_array().expect("networks: an array");
                assert_eq!(networks.len(), 1, "networks: one network");
                let network = object(&networks[0], "a network");
                for (field, mode) in network {
                    assert_eq!(field, "mode", "networks[0].{field} is not known");
                    match mode.as_str() {
                        Some("host") => args.extend(["--network".into(), "host".into()]),
                        Some("container/bridge") => {
                            args.extend(["--network".into(), site.bridge.into()])
                        }
                        other => panic!("networks[0].mode {other:?} is not known"),
                    }
                }
            }
            "portDefinitions" => assert!(
                value.as_array().is_some_and(Vec::is_empty),
                "portDefinitions: only an empty list (no ports) is known"
            ),
            "args" => {
                command = strings(value, "args")
                    .into_iter()
                    .map(|arg| fill(&arg, site))
                    .collect()
            }
            "env" => {
                for (variable, value) in object(value, "env") {
                    let value = fill(value.as_str().expect("env values are strings"), site);
                    args.extend(["-e".into(), format!("{variable}={value}")]);
                }
            }
            "healthChecks" => {
                let checks = value.as_array().expect("healthChecks: an array");
                assert_eq!(checks.len(), 1, "healthChecks: one check");
                health_check(&checks[0], &port_mappings, &mut args);
            }
            "taskKillGracePeriodSeconds" => {
                args.extend(["--stop-timeout".into(), number(value).to_string()])
            }
            "labels" => {
                for (label, value) in object(value, "labels") {
                    let value = value.as_str().expect("labels are strings");
                    args.extend(["--label".into(), format!("{label}={value}")]);
                }
            }
            other => panic!("the app's field {other} is not known to the translation"),
        }
    }
    args.push(image.expect("an app with a Docker container"));
    args.extend(command);
    args
}

/// The container's image, volumes and port mappings as `docker run` flags; returns the image.
fn container(
    value: &Value,
    site: &Site,
    args: &mut Vec<String>,
    port_mappings: &mut Vec<(u16, Option<u16>)>,
) -> String {
    let mut image = None;
    for (key, value) in object(value, "container") {
        match key.as_str() {
            "type" => assert_eq!(value, "DOCKER", "container.type: only DOCKER is known"),
            "docker" => {
                for (field, value) in object(value, "container.docker") {
                    match field.as_str() {
                        "image" => {
                            let placeholder = value.as_str().expect("an image name");
                            assert_eq!(
                                placeholder, "REGISTRY/ganger:TAG",
                                "container.docker.image"
                            );
                            image = Some(site.image.to_owned());
                        }
                        // The image is local: there is nothing to pull.
                        "forcePullImage" => assert_eq!(value, false, "forcePullImage"),
                        other => panic!("container.docker.{other} is not known"),
                    }
                }
            }
            "volumes" => {
                for volume in value.as_array().expect("container.volumes: an array") {
                    let volume = object(volume, "a volume");
                    let mut mount = (None, None, None);
                    for (field, value) in volume {
                        let text = value.as_str().expect("volume fields are strings");
                        match field.as_str() {
                            "containerPath" => mount.0 = Some(text.to_owned()),
                            "hostPath" => mount.1 = Some(text.to_owned()),
                            "mode" => mount.2 = Some(text.to_owned()),
                            other => panic!("container.volumes[].{other} is not known"),
                        }
                    }
                    let (Some(inside), Some(host), Some(mode)) = mount else {
                        panic!("a volume needs containerPath, hostPath and mode")
                    };
                    let host = site.host_root.join(host.trim_start_matches('/'));
                    let mode = match mode.as_str() {
                        "RO" => "ro",
                        "RW" => "rw",
                        other => panic!("volume mode {other} is not known"),
                    };
                    args.extend(["-v".into(), format!("{}:{inside}:{mode}", host.display())]);
                }
            }
            "portMappings" => {
                for mapping in value.as_array().expect("container.portMappings: an array") {
                    let mut container_port = None;
                    let mut host_port = None;
                    for (field, value) in object(mapping, "a port mapping") {
                        match field.as_str() {
                            "name" => {}
                            "protocol" => assert_eq!(value, "tcp", "only tcp ports are known"),
                            "containerPort" => container_port = Some(number(value) as u16),
                            "hostPort" => host_port = Some(number(value) as u64),
                            other => panic!("container.portMappings[].{other} is not known"),
                        }
                    }
                    let container_port = container_port.expect("a containerPort");
                    // Host port 0 is any free port; a fixed one moves to the site's free port.
                    let host_port = match host_port.unwrap_or(0) {
                        0 => None,
                        fixed => Some(
                            site.ports
                                .iter()
                                .find(|(port, _)| *port == fixed)
                                .unwrap_or_else(|| panic!("no free port stands in for {fixed}"))
                                .1,
                        ),
                    };
                    let published = host_port.map_or(String::new(), |p| p.to_string());
                    args.extend([
                        "-p".into(),
                        format!("127.0.0.1:{published}:{container_port}"),
                    ]);
                    port_mappings.push((container_port, host_port));
                }
            }
            other => panic!("container.{other} is not known"),
        }
    }
    image.expect("container.docker.image")
}

/// A Marathon health check as Docker's: a `COMMAND` runs as it is, a `MESOS_HTTP` check asks
/// the container's own port (`portIndex` into the port mappings) for `path`.
fn health_check(check: &Value, port_mappings: &[(u16, Option<u16>)], args: &mut Vec<String>) {
    let check = object(check, "a health check");
    let mut command = None;
    let (mut path, mut port_index) = (None, None);
    for (field, value) in check {
        let seconds = || format!("{}s", number(value));
        match field.as_str() {
            "protocol" => {}
            "command" => {
                let (key, value) = object(value, "command").iter().next().expect("a command");
                assert_eq!(key, "value", "command.{key} is not known");
                command = Some(value.as_str().expect("a command line").to_owned());
            }
            "path" => path = Some(value.as_str().expect("a path").to_owned()),
            "portIndex" => port_index = Some(number(value) as usize),
            "gracePeriodSeconds" => args.extend(["--health-start-period".into(), seconds()]),
            "intervalSeconds" => args.extend(["--health-interval".into(), seconds()]),
            "timeoutSeconds" => args.extend(["--health-timeout".into(), seconds()]),
            "maxConsecutiveFailures" => {
                args.extend(["--health-retries".into(), number(value).to_string()])
            }
            // Marathon waits this long before the first check; Docker's start period covers it.
            "delaySeconds" => {}
            other => panic!("healthChecks[].{other} is not known"),
        }
    }
    let command = match check["protocol"].as_str() {
        Some("COMMAND") => command.expect("a COMMAND check's command"),
        Some("MESOS_HTTP") => {
            let (container_port, _) = port_mappings[port_index.expect("a portIndex")];
            format!(
                "ganger-delegator probe --url http://127.0.0.1:{container_port}{}",
                path.expect("a MESOS_HTTP check's path")
            )
        }
        other => panic!("health check protocol {other:?} is not known"),
    };
    args.extend(["--health-cmd".into(), command]);
}

/// `text` with `deploy.sh`'s placeholder filled in, and the delegator's fixed ports, where an
/// address names them on its host, moved to the site's free ones.
fn fill(text: &str, site: &Site) -> String {
    let mut text = text.to_owned();
    for (fixed, free) in site.ports {
        text = text.replace(
            &format!("DELEGATOR_HOST:{fixed}"),
            &format!("DELEGATOR_HOST:{free}"),
        );
    }
    text.replace("DELEGATOR_HOST", site.delegator_host)
}

fn object<'a>(value: &'a Value, what: &str) -> &'a Map<String, Value> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("{what}: an object"))
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{value}: a number"))
}

fn strings(value: &Value, what: &str) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{what}: an array"))
        .iter()
        .map(|v| v.as_str().expect("strings").to_owned())
        .collect()
}

pub fn the_marathon_apps_run_as_docker_run_finish_a_run_and_turn_healthy() {
    let read = |name: &str| -> serde_json::Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../marathon")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    };
    let (delegator_app, workers_app) = (read("delegator.json"), read("marathon-sample.json"));
    let dir = std::env::temp_dir().join(unique("marathon"));
    let _ = std::fs::remove_dir_all(&dir);
    // The agent's files, as marathon/README.md says to prepare them: the delegator's folder
    // with the run's config, owned by the image's user, and the cluster secret.
    let data = dir.join("var/lib/ganger");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("config.json"), config_of("output", 1_000_000)).unwrap();
    let secret = dir.join("etc/ganger/cluster.secret");
    std::fs::create_dir_all(secret.parent().unwrap()).unwrap();
    make_secret(&secret);
    for path in [&data, &data.join("config.json"), &secret] {
        give_to_image_user(path);
    }

    let network = unique("marathon");
    let delegator = unique("marathon-delegator");
    let n_workers = workers_app["instances"].as_u64().unwrap() as usize;
    let workers: Vec<String> = (0..n_workers)
        .map(|i| unique(&format!("marathon-worker-{i}")))
        .collect();
    let _cleanup = Cleanup {
        containers: workers.iter().cloned().chain([delegator.clone()]).collect(),
        network: Some(network.clone()),
    };
    docker(&["network", "create", &network]);
    let zmq_port = super::common::free_port();
    let image = image();
    let site = Site {
        image: &image,
        delegator_host: "127.0.0.1",
        host_root: &dir,
        ports: &[(5555, zmq_port)],
        bridge: &network,
    };
    let run_app = |app: &serde_json::Value, name: &str| {
        let mut args = vec!["run".to_owned()];
        args.extend(docker_run_args(app, name, &site));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args);
    };
    run_app(&delegator_app, &delegator);
    for worker in &workers {
        run_app(&workers_app, worker);
    }
    // Healthy while the run goes on (half a million steps: long enough for the checks, every
    // 10 s): the delegator answers /healthz, every worker is connected. (Once an MCMC run is
    // over the delegator lets its workers go, and their checks fail.)
    wait_healthy(&delegator);
    for worker in &workers {
        wait_healthy(worker);
    }
    let http = docker(&["port", &delegator, "8080/tcp"]);
    let running = status(&http).expect("the delegator answers");
    assert_eq!(
        running["state"], "running",
        "the run ended before the checks: {running}"
    );
    assert_eq!(
        running["workers"].as_array().unwrap().len(),
        n_workers,
        "{running}"
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some((_, state)) = step(&http) {
            if state == "done" {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the run never finished");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        data.join("output/summary.json").exists(),
        "no summary in the host path"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
