//! The rules Marathon 1.5+ enforces at `POST /v2/apps` beyond its JSON Schema, as
//! `shared/marathon/README.md` lists them, one check per rule; every violation names its rule,
//! so a failing test says which one an app definition breaks.

use std::collections::HashSet;
use std::fmt;
use std::ops::RangeInclusive;

use serde_json::{Map, Value};

/// The host ports a Mesos agent offers when it is not told otherwise.
pub const DEFAULT_OFFERED_PORTS: RangeInclusive<u64> = 31_000..=32_000;

/// A rule of the README, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Slash-separated segments of `[a-z0-9.-]`, no leading or trailing `-`, and the last
    /// segment not `restart`, `tasks` or `versions`.
    Id,
    /// `cmd` or `args`, never both; nothing at all only with a container.
    CmdXorArgs,
    /// `instances`, `cpus`, `mem` (and `disk`, `gpus`) are JSON numbers.
    NumbersAreNumbers,
    /// `mem`, not `memory`.
    MemNotMemory,
    /// `cpus` ≥ 0.001.
    CpusMinimum,
    /// `env` values are strings (or secret references).
    EnvStrings,
    /// One host network, one container/bridge network, or named container networks.
    Networks,
    /// `container.docker.network`, `container.docker.portMappings`, `ipAddress` and `ports`
    /// are deprecated and not mixed with `networks`.
    DeprecatedNetworking,
    /// `portDefinitions` with host networking, `container.portMappings` otherwise, present
    /// (`[]` for none) and not the other way round.
    PortsDeclared,
    /// A fixed host port lies in a range the agent offers.
    FixedHostPortOffered,
    /// Port names are unique and lowercase.
    PortNames,
    /// `MESOS_HTTP`, `MESOS_HTTPS`, `MESOS_TCP` or `COMMAND`, not the deprecated `HTTP`,
    /// `HTTPS` or `TCP` (the default when `protocol` is left out).
    HealthCheckKind,
    /// A health check's `portIndex` points at an existing port.
    HealthCheckPortIndex,
    /// A `COMMAND` check has `"command": {"value": "..."}` and no `path`, `port` or `portIndex`.
    CommandCheckShape,
    /// `[field, operator]` or `[field, operator, value]` with the arity the operator takes.
    ConstraintArity,
    /// A single instance owning a fixed host port upgrades with
    /// `{"minimumHealthCapacity": 0, "maximumOverCapacity": 0}`.
    FixedPortUpgradeStrategy,
    /// `unreachableStrategy.inactiveAfterSeconds` ≤ `expungeAfterSeconds`.
    UnreachableOrdering,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::Id => "id format",
            Rule::CmdXorArgs => "cmd xor args",
            Rule::NumbersAreNumbers => "numbers are numbers",
            Rule::MemNotMemory => "mem, not memory",
            Rule::CpusMinimum => "cpus >= 0.001",
            Rule::EnvStrings => "env values are strings",
            Rule::Networks => "networks",
            Rule::DeprecatedNetworking => "deprecated networking fields",
            Rule::PortsDeclared => "ports declared ([] for none)",
            Rule::FixedHostPortOffered => "fixed hostPort in the offered range",
            Rule::PortNames => "port names unique and lowercase",
            Rule::HealthCheckKind => "health check kind",
            Rule::HealthCheckPortIndex => "health check portIndex",
            Rule::CommandCheckShape => "COMMAND check shape",
            Rule::ConstraintArity => "constraint arity",
            Rule::FixedPortUpgradeStrategy => "single instance with a fixed host port",
            Rule::UnreachableOrdering => "unreachableStrategy ordering",
        })
    }
}

/// One broken rule and what in the app breaks it.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub rule: Rule,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

/// Every rule `app` breaks, for agents that offer the host ports `offered_ports`.
pub fn check(app: &Value, offered_ports: &[RangeInclusive<u64>]) -> Vec<Violation> {
    let mut found = Found::default();
    let Some(app) = app.as_object() else {
        found.add(Rule::Id, "the app definition is not a JSON object");
        return found.0;
    };
    check_id(app, &mut found);
    check_what_to_run(app, &mut found);
    check_resources(app, &mut found);
    check_env(app, &mut found);
    let networking = check_networks(app, &mut found);
    let ports = check_ports(app, networking, offered_ports, &mut found);
    check_health_checks(app, ports.count, &mut found);
    check_constraints(app, &mut found);
    check_upgrade_strategy(app, &ports, &mut found);
    check_unreachable_strategy(app, &mut found);
    found.0
}

/// Violations found so far.
#[derive(Default)]
struct Found(Vec<Violation>);

impl Found {
    fn add(&mut self, rule: Rule, detail: impl Into<String>) {
        self.0.push(Violation {
            rule,
            detail: detail.into(),
        });
    }
}

/// How the app's tasks are networked, from `networks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Networking {
    Host,
    Bridge,
    Container,
}

/// The ports the app declares.
struct Ports {
    /// How many, for `portIndex`.
    count: usize,
    /// The host ports fixed in advance (not 0, not left to Marathon).
    fixed_host_ports: Vec<u64>,
}

fn check_id(app: &Map<String, Value>, found: &mut Found) {
    let Some(id) = app.get("id").and_then(Value::as_str) else {
        found.add(Rule::Id, "`id` is missing or not a string");
        return;
    };
    let segments: Vec<&str> = id.strip_prefix('/').unwrap_or(id).split('/').collect();
    for segment in &segments {
        let allowed =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
        if segment.is_empty()
            || !segment.chars().all(allowed)
            || segment.starts_with('-')
            || segment.ends_with('-')
            || segment.chars().all(|c| c == '.')
        {
            found.add(
                Rule::Id,
                format!("segment {segment:?} of id {id:?} is not lowercase letters, digits, '-' and '.' without a leading or trailing '-'"),
            );
        }
    }
    let last = segments.last().copied().unwrap_or_default();
    if ["restart", "tasks", "versions"].contains(&last) {
        found.add(
            Rule::Id,
            format!("id {id:?} ends in {last:?}, which Marathon reserves"),
        );
    }
}

fn check_what_to_run(app: &Map<String, Value>, found: &mut Found) {
    match (app.get("cmd"), app.get("args")) {
        (Some(_), Some(_)) => found.add(Rule::CmdXorArgs, "both `cmd` and `args` are given"),
        (None, None) if !app.contains_key("container") => {
            found.add(Rule::CmdXorArgs, "neither `cmd`, `args` nor a container")
        }
        (Some(cmd), None) if cmd.as_str().is_none_or(str::is_empty) => {
            found.add(Rule::CmdXorArgs, "`cmd` is not a non-empty string")
        }
        (None, Some(args)) => {
            let strings = args
                .as_array()
                .is_some_and(|args| args.iter().all(Value::is_string));
            if !strings {
                found.add(Rule::CmdXorArgs, "`args` is not an array of strings");
            }
        }
        _ => {}
    }
}

fn check_resources(app: &Map<String, Value>, found: &mut Found) {
    for key in ["instances", "cpus", "mem", "disk", "gpus"] {
        if let Some(value) = app.get(key) {
            if !value.is_number() {
                found.add(
                    Rule::NumbersAreNumbers,
                    format!("`{key}` is {value}, not a JSON number"),
                );
            }
        }
    }
    if let Some(value) = app.get("memory") {
        found.add(
            Rule::MemNotMemory,
            format!("`memory` ({value}) is not a field; the memory in MiB is `mem`"),
        );
    }
    if let Some(cpus) = app.get("cpus").and_then(Value::as_f64) {
        if cpus < 0.001 {
            found.add(Rule::CpusMinimum, format!("`cpus` is {cpus}, below 0.001"));
        }
    }
}

fn check_env(app: &Map<String, Value>, found: &mut Found) {
    let Some(env) = app.get("env") else { return };
    let Some(env) = env.as_object() else {
        found.add(Rule::EnvStrings, "`env` is not an object");
        return;
    };
    for (name, value) in env {
        let secret = value
            .as_object()
            .is_some_and(|o| o.len() == 1 && o.get("secret").is_some_and(Value::is_string));
        if !value.is_string() && !secret {
            found.add(
                Rule::EnvStrings,
                format!(
                    "env {name} is {value}, not a string (write \"{}\")",
                    unquoted(value)
                ),
            );
        }
    }
}

/// Checks `networks` and the deprecated fields; returns the networking mode, host when
/// `networks` is left out (Marathon's default) or broken.
fn check_networks(app: &Map<String, Value>, found: &mut Found) -> Networking {
    let docker = app
        .get("container")
        .and_then(|c| c.get("docker"))
        .and_then(Value::as_object);
    let deprecated = [
        (
            "container.docker.network",
            docker.and_then(|d| d.get("network")),
        ),
        (
            "container.docker.portMappings",
            docker.and_then(|d| d.get("portMappings")),
        ),
        ("ipAddress", app.get("ipAddress")),
        ("ports", app.get("ports")),
    ];
    for (field, value) in deprecated {
        if value.is_some() {
            let how = if app.contains_key("networks") {
                "must not be mixed with `networks`"
            } else {
                "is deprecated since Marathon 1.5: use `networks` and `container.portMappings`"
            };
            found.add(Rule::DeprecatedNetworking, format!("`{field}` {how}"));
        }
    }
    let Some(networks) = app.get("networks") else {
        return Networking::Host;
    };
    let Some(networks) = networks.as_array() else {
        found.add(Rule::Networks, "`networks` is not an array");
        return Networking::Host;
    };
    let modes: Vec<(&str, bool)> = networks
        .iter()
        .map(|n| {
            let mode = n.get("mode").and_then(Value::as_str).unwrap_or("container");
            (mode, n.get("name").is_some_and(Value::is_string))
        })
        .collect();
    match modes.as_slice() {
        [("host", _)] => Networking::Host,
        [("container/bridge", _)] => Networking::Bridge,
        [_, ..]
            if modes
                .iter()
                .all(|&(mode, named)| mode == "container" && named) =>
        {
            Networking::Container
        }
        _ => {
            found.add(
                Rule::Networks,
                format!("networks {modes:?} (mode, named) are not one host, one container/bridge, or named container networks"),
            );
            Networking::Host
        }
    }
}

fn check_ports(
    app: &Map<String, Value>,
    networking: Networking,
    offered_ports: &[RangeInclusive<u64>],
    found: &mut Found,
) -> Ports {
    let port_mappings = app.get("container").and_then(|c| c.get("portMappings"));
    let port_definitions = app.get("portDefinitions");
    let (declared, field, other, other_field) = match networking {
        Networking::Host => (
            port_definitions,
            "portDefinitions",
            port_mappings,
            "container.portMappings",
        ),
        Networking::Bridge | Networking::Container => (
            port_mappings,
            "container.portMappings",
            port_definitions,
            "portDefinitions",
        ),
    };
    if other.is_some() {
        found.add(
            Rule::PortsDeclared,
            format!("`{other_field}` does not go with {networking:?} networking; use `{field}`"),
        );
    }
    let Some(declared) = declared else {
        let what = match networking {
            Networking::Host => "Marathon reserves a port",
            _ => "Marathon maps a port",
        };
        found.add(
            Rule::PortsDeclared,
            format!("`{field}` is left out, so {what}: write `\"{field}\": []` for none"),
        );
        return Ports {
            count: 1,
            fixed_host_ports: Vec::new(),
        };
    };
    let entries = declared.as_array().map(Vec::as_slice).unwrap_or_default();
    check_port_names(entries, field, found);
    let require_ports = app.get("requirePorts").and_then(Value::as_bool) == Some(true);
    let fixed_host_ports: Vec<u64> = entries
        .iter()
        .filter_map(|entry| match networking {
            Networking::Host if require_ports => entry.get("port").and_then(Value::as_u64),
            Networking::Host => None,
            _ => entry.get("hostPort").and_then(Value::as_u64),
        })
        .filter(|&port| port != 0)
        .collect();
    for &port in &fixed_host_ports {
        if !offered_ports.iter().any(|range| range.contains(&port)) {
            found.add(
                Rule::FixedHostPortOffered,
                format!("host port {port} is not in the agent's offered ranges {offered_ports:?}"),
            );
        }
    }
    Ports {
        count: entries.len(),
        fixed_host_ports,
    }
}

fn check_port_names(entries: &[Value], field: &str, found: &mut Found) {
    let mut seen = HashSet::new();
    for name in entries.iter().filter_map(|e| e.get("name")) {
        let Some(name) = name.as_str() else {
            found.add(
                Rule::PortNames,
                format!("a name in `{field}` is {name}, not a string"),
            );
            continue;
        };
        let lowercase = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !lowercase {
            found.add(
                Rule::PortNames,
                format!("port name {name:?} in `{field}` is not lowercase letters, digits and '-'"),
            );
        }
        if !seen.insert(name) {
            found.add(
                Rule::PortNames,
                format!("port name {name:?} appears twice in `{field}`"),
            );
        }
    }
}

fn check_health_checks(app: &Map<String, Value>, n_ports: usize, found: &mut Found) {
    let Some(checks) = app.get("healthChecks").and_then(Value::as_array) else {
        return;
    };
    for (i, check) in checks.iter().enumerate() {
        let protocol = check
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("HTTP");
        match protocol {
            "COMMAND" => check_command_check(i, check, found),
            "MESOS_HTTP" | "MESOS_HTTPS" | "MESOS_TCP" => {
                if check.get("command").is_some() {
                    found.add(
                        Rule::CommandCheckShape,
                        format!("healthChecks[{i}] ({protocol}) has a `command`; only COMMAND checks do"),
                    );
                }
                check_port_index(i, check, n_ports, found);
            }
            _ => found.add(
                Rule::HealthCheckKind,
                format!("healthChecks[{i}] is a deprecated Marathon-level {protocol} check (the default when `protocol` is left out); use MESOS_HTTP, MESOS_TCP or COMMAND"),
            ),
        }
    }
}

fn check_command_check(i: usize, check: &Value, found: &mut Found) {
    let value = check
        .get("command")
        .and_then(Value::as_object)
        .filter(|command| command.len() == 1)
        .and_then(|command| command.get("value"))
        .and_then(Value::as_str);
    if value.is_none_or(|v| v.trim().is_empty()) {
        found.add(
            Rule::CommandCheckShape,
            format!("healthChecks[{i}] is COMMAND without `\"command\": {{\"value\": \"...\"}}`"),
        );
    }
    for key in ["path", "port", "portIndex"] {
        if check.get(key).is_some() {
            found.add(
                Rule::CommandCheckShape,
                format!("healthChecks[{i}] is COMMAND and has `{key}`"),
            );
        }
    }
}

fn check_port_index(i: usize, check: &Value, n_ports: usize, found: &mut Found) {
    if check.get("port").is_some() {
        if check.get("portIndex").is_some() {
            found.add(
                Rule::HealthCheckPortIndex,
                format!("healthChecks[{i}] has both `port` and `portIndex`"),
            );
        }
        return;
    }
    // Marathon takes portIndex 0 when neither is given.
    let index = check.get("portIndex").map_or(Some(0), Value::as_u64);
    match index {
        Some(index) if (index as usize) < n_ports => {}
        _ => found.add(
            Rule::HealthCheckPortIndex,
            format!(
                "healthChecks[{i}] portIndex {} points at no port: the app declares {n_ports}",
                check
                    .get("portIndex")
                    .map_or("0 (the default)".into(), Value::to_string)
            ),
        ),
    }
}

fn check_constraints(app: &Map<String, Value>, found: &mut Found) {
    let Some(constraints) = app.get("constraints") else {
        return;
    };
    let Some(constraints) = constraints.as_array() else {
        found.add(Rule::ConstraintArity, "`constraints` is not an array");
        return;
    };
    for constraint in constraints {
        let parts: Option<Vec<&str>> = constraint
            .as_array()
            .and_then(|parts| parts.iter().map(Value::as_str).collect());
        let Some(parts) = parts else {
            found.add(
                Rule::ConstraintArity,
                format!("constraint {constraint} is not an array of strings"),
            );
            continue;
        };
        let integer = |value: &str| value.parse::<u32>().is_ok_and(|n| n > 0);
        let fine = match parts.as_slice() {
            [_, "UNIQUE"] => true,
            [_, "MAX_PER", value] => integer(value),
            [_, "GROUP_BY"] => true,
            [_, "GROUP_BY", value] => integer(value),
            [_, "CLUSTER" | "LIKE" | "UNLIKE" | "IS", value] => !value.is_empty(),
            _ => false,
        };
        if !fine {
            found.add(
                Rule::ConstraintArity,
                format!("constraint {constraint}: UNIQUE takes no value, MAX_PER a positive integer string, GROUP_BY at most an integer string, CLUSTER, LIKE, UNLIKE and IS a value"),
            );
        }
    }
}

fn check_upgrade_strategy(app: &Map<String, Value>, ports: &Ports, found: &mut Found) {
    let instances = app.get("instances").and_then(Value::as_u64).unwrap_or(1);
    if instances != 1 || ports.fixed_host_ports.is_empty() {
        return;
    }
    let strategy = app.get("upgradeStrategy");
    let zero = |key: &str| {
        strategy
            .and_then(|s| s.get(key))
            .and_then(Value::as_f64)
            .is_some_and(|v| v == 0.0)
    };
    if !(zero("minimumHealthCapacity") && zero("maximumOverCapacity")) {
        found.add(
            Rule::FixedPortUpgradeStrategy,
            format!(
                "one instance owns host port(s) {:?}, so `upgradeStrategy` must be {{\"minimumHealthCapacity\": 0, \"maximumOverCapacity\": 0}}, not {}",
                ports.fixed_host_ports,
                strategy.map_or("left out".into(), Value::to_string)
            ),
        );
    }
}

fn check_unreachable_strategy(app: &Map<String, Value>, found: &mut Found) {
    let Some(strategy) = app.get("unreachableStrategy").and_then(Value::as_object) else {
        return;
    };
    let seconds = |key: &str| strategy.get(key).and_then(Value::as_f64);
    if let (Some(inactive), Some(expunge)) = (
        seconds("inactiveAfterSeconds"),
        seconds("expungeAfterSeconds"),
    ) {
        if inactive > expunge {
            found.add(
                Rule::UnreachableOrdering,
                format!(
                    "inactiveAfterSeconds ({inactive}) exceeds expungeAfterSeconds ({expunge})"
                ),
            );
        }
    }
}

/// A JSON value as the string it should have been: `5555` for `5555`, `abc` for `"abc"`.
fn unquoted(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
