//! docker-compose.yml, for `docker compose up` and `docker stack deploy`: its commands and
//! variables are ones the binaries take, workers dial the delegator's service on the port it
//! binds, and the ports and volume match the image.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use crate::help::{check_command_line, delegator_ports, port_of, Help};
use crate::image::WORKDIR;
use crate::{dockerfile, read};

const FILE: &str = "docker-compose.yml";

fn compose() -> Value {
    serde_yaml_ng::from_str(&read(FILE)).unwrap_or_else(|e| panic!("{FILE}: {e}"))
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("{FILE}: no service {name}"))
}

/// A list of strings (exec form only: a string would go through a shell).
pub fn strings(value: &Value, what: &str) -> Vec<String> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("{what} is a list (exec form): {value:?}"))
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => panic!("{what}: {other:?} is not a string"),
        })
        .collect()
}

/// A scalar as text, as Compose and Kubernetes read numbers and booleans into variables.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("{other:?} is not a scalar"),
    }
}

/// The container's environment: the image's `ENV`, then the service's `environment`.
fn environment(service: &Value) -> BTreeMap<String, String> {
    let mut env = dockerfile().runtime().env();
    match &service["environment"] {
        Value::Null => {}
        Value::Mapping(map) => {
            for (name, value) in map {
                env.insert(text(name), text(value));
            }
        }
        Value::Sequence(list) => {
            for pair in list {
                let pair = text(pair);
                let (name, value) = pair.split_once('=').unwrap_or((&pair, ""));
                env.insert(name.to_owned(), value.to_owned());
            }
        }
        other => panic!("{FILE}: environment {other:?}"),
    }
    env
}

/// Seconds of a Compose duration such as `40s`, `1m30s` or `500ms`.
pub fn duration_secs(text: &str) -> f64 {
    let mut total = 0.0;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match (c, chars.peek()) {
            ('m', Some('s')) => {
                chars.next();
                0.001
            }
            ('h', _) => 3600.0,
            ('m', _) => 60.0,
            ('s', _) => 1.0,
            _ => panic!("not a duration: {text}"),
        };
        total += number.parse::<f64>().expect("a number") * unit;
        number.clear();
    }
    assert!(number.is_empty(), "a duration needs a unit: {text}");
    total
}

/// The worker's grace period after SIGTERM, seconds, as `env` sets it or by default.
pub fn worker_grace_secs(env: &BTreeMap<String, String>) -> f64 {
    let default = Help::of("ganger-worker", &[])
        .expect("the worker's help")
        .entry("--grace-secs")
        .and_then(|e| e.default.clone())
        .expect("--grace-secs has a default");
    env.get("GANGER_GRACE_SECS")
        .unwrap_or(&default)
        .parse()
        .expect("seconds")
}

/// The container ports a service publishes.
fn published_container_ports(service: &Value) -> Vec<u16> {
    let Some(ports) = service["ports"].as_sequence() else {
        return Vec::new();
    };
    ports
        .iter()
        .map(|port| match port {
            Value::Mapping(_) => text(&port["target"]).parse().expect("a port"),
            short => {
                let short = text(short);
                let container = short.rsplit(':').next().expect("a port");
                container
                    .split('/')
                    .next()
                    .unwrap()
                    .parse()
                    .expect("a port")
            }
        })
        .collect()
}

#[test]
fn the_services_run_commands_the_binaries_accept_with_variables_they_read() {
    let compose = compose();
    let version = text(&compose["version"]);
    assert!(
        version.starts_with("3."),
        "docker stack deploy reads 3.x: {version}"
    );
    let expected = [
        (
            "delegator",
            "ganger-delegator",
            ["ganger-delegator", "probe"],
        ),
        ("worker", "ganger-worker", ["ganger-worker", "status"]),
    ];
    let image = text(&service(&compose, "delegator")["image"]);
    for (name, program, check) in expected {
        let service = service(&compose, name);
        assert_eq!(text(&service["image"]), image, "one image for both");
        let env = environment(service);
        let what = format!("{FILE}: services.{name}");
        let command = strings(&service["command"], &format!("{what}.command"));
        assert_eq!(command[0], program, "{what}");
        let set: BTreeMap<String, String> = service["environment"]
            .as_mapping()
            .map_or(BTreeMap::new(), |m| {
                m.iter().map(|(k, v)| (text(k), text(v))).collect()
            });
        check_command_line(&command, &env, &set, &format!("{what}.command"));
        let test = strings(
            &service["healthcheck"]["test"],
            &format!("{what}.healthcheck"),
        );
        assert_eq!(
            test[0], "CMD",
            "{what}.healthcheck runs a command, not a shell"
        );
        assert_eq!(test[1..], check, "{what}.healthcheck");
        check_command_line(
            &test[1..],
            &env,
            &BTreeMap::new(),
            &format!("{what}.healthcheck"),
        );
    }
}

#[test]
fn workers_dial_the_delegator_service_on_the_port_it_binds_and_publishes() {
    let compose = compose();
    let delegator = service(&compose, "delegator");
    let command = strings(&delegator["command"], "command");
    let (bind, http) = delegator_ports(&command, &environment(delegator));
    let mut published = published_container_ports(delegator);
    published.sort_unstable();
    assert_eq!(published, [bind, http], "{FILE}: services.delegator.ports");

    let worker = service(&compose, "worker");
    assert!(worker["ports"].is_null(), "workers dial out: no ports");
    let connect = environment(worker)
        .get("GANGER_CONNECT")
        .cloned()
        .expect("GANGER_CONNECT");
    let host = connect
        .strip_prefix("tcp://")
        .and_then(|rest| rest.rsplit_once(':'))
        .map(|(host, _)| host)
        .unwrap_or_else(|| panic!("GANGER_CONNECT={connect}: tcp://HOST:PORT"));
    assert_eq!(host, "delegator", "the delegator's service name");
    assert_eq!(port_of(&connect), bind, "the port the delegator binds");
}

#[test]
fn one_delegator_keeps_its_output_and_workers_get_time_to_finish_their_units() {
    let compose = compose();
    let delegator = service(&compose, "delegator");
    assert_eq!(delegator["deploy"]["replicas"].as_u64(), Some(1));
    assert!(
        delegator["deploy"]["placement"].is_mapping(),
        "deploy.placement"
    );
    assert!(
        delegator["deploy"]["restart_policy"]["condition"].is_string(),
        "deploy.restart_policy"
    );
    assert_eq!(dockerfile().runtime().workdir(), WORKDIR);
    let volumes = strings(&delegator["volumes"], "volumes");
    let volume = volumes
        .iter()
        .find_map(|v| v.strip_suffix(&format!(":{WORKDIR}")))
        .unwrap_or_else(|| panic!("{FILE}: a volume at {WORKDIR}: {volumes:?}"));
    assert!(
        compose["volumes"].get(volume).is_some(),
        "{FILE}: volume {volume} is declared"
    );

    let worker = service(&compose, "worker");
    assert!(worker["deploy"]["replicas"]
        .as_u64()
        .is_some_and(|n| n >= 1));
    let grace = worker_grace_secs(&environment(worker));
    let stop = duration_secs(&text(&worker["stop_grace_period"]));
    assert!(
        stop > grace,
        "{FILE}: stop_grace_period {stop} s must exceed the worker's grace of {grace} s"
    );
}

#[test]
fn compose_durations_are_read_in_seconds() {
    assert_eq!(duration_secs("40s"), 40.0);
    assert_eq!(duration_secs("1m30s"), 90.0);
    assert_eq!(duration_secs("500ms"), 0.5);
}
