//! deploy/kubernetes/*.yaml: every document is named, containers run the image's programs with
//! flags and variables they accept (and keep its tini entrypoint), probes point at ports the
//! containers declare, and the Service the workers dial reaches the delegator's bind port.

use std::collections::BTreeMap;

use serde::Deserialize as _;
use serde_yaml_ng::Value;

use crate::compose::{strings, text, worker_grace_secs};
use crate::help::{check_command_line, delegator_ports, port_of};
use crate::image::{USER, WORKDIR};
use crate::{dockerfile, repo_root};

const FOLDER: &str = "deploy/kubernetes";

/// One YAML document and the file it came from.
struct Document {
    file: String,
    value: Value,
}

impl Document {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    fn what(&self) -> String {
        format!("{}: {} {}", self.file, self.kind(), self.name())
    }

    fn is_workload(&self) -> bool {
        ["Deployment", "StatefulSet"].contains(&self.kind())
    }

    fn pod(&self) -> &Value {
        &self.value["spec"]["template"]["spec"]
    }

    fn containers(&self) -> &[Value] {
        self.pod()["containers"]
            .as_sequence()
            .map_or(&[], |c| c.as_slice())
    }

    /// Whether the Service `selector` picks this workload's pods.
    fn selected_by(&self, selector: &Value) -> bool {
        let labels = &self.value["spec"]["template"]["metadata"]["labels"];
        selector
            .as_mapping()
            .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }
}

/// Every document of every file in the folder.
fn documents() -> Vec<Document> {
    let folder = repo_root().join(FOLDER);
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut documents = Vec::new();
    for path in files {
        let file = format!("{FOLDER}/{}", path.file_name().unwrap().to_string_lossy());
        let text = std::fs::read_to_string(&path).expect("readable");
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(document).unwrap_or_else(|e| panic!("{file}: {e}"));
            if !value.is_null() {
                documents.push(Document {
                    file: file.clone(),
                    value,
                });
            }
        }
    }
    documents
}

/// The container's environment: the image's `ENV`, then the container's `env` (a variable
/// from `valueFrom` counts with an empty value).
fn environment(container: &Value) -> BTreeMap<String, String> {
    let mut env = dockerfile().runtime().env();
    for variable in container["env"].as_sequence().into_iter().flatten() {
        let name = text(&variable["name"]);
        let value = variable.get("value").map(text).unwrap_or_default();
        env.insert(name, value);
    }
    env
}

fn args(container: &Value) -> Vec<String> {
    strings(&container["args"], "args")
}

/// The container port a probe's or Service's port refers to, by name or number.
fn resolve_port(container: &Value, port: &Value) -> Option<u16> {
    let ports = container["ports"].as_sequence()?;
    ports.iter().find_map(|p| {
        let number = p["containerPort"].as_u64()? as u16;
        let matches = match port {
            Value::String(name) => p["name"].as_str() == Some(name),
            Value::Number(n) => n.as_u64() == Some(u64::from(number)),
            _ => false,
        };
        matches.then_some(number)
    })
}

/// The probes of a container, by kind.
fn probes(container: &Value) -> Vec<(&'static str, &Value)> {
    ["readinessProbe", "livenessProbe", "startupProbe"]
        .into_iter()
        .filter_map(|kind| container.get(kind).map(|p| (kind, p)))
        .collect()
}

/// The workload whose containers run `program`, and that container.
fn running<'a>(documents: &'a [Document], program: &str) -> Vec<(&'a Document, &'a Value)> {
    documents
        .iter()
        .filter(|d| d.is_workload())
        .flat_map(|d| d.containers().iter().map(move |c| (d, c)))
        .filter(|(_, c)| args(c).first().map(String::as_str) == Some(program))
        .collect()
}

#[test]
fn every_document_is_named_and_every_workload_selects_its_own_pods() {
    let documents = documents();
    let files: Vec<&str> = documents.iter().map(|d| d.file.as_str()).collect();
    for expected in ["delegator.yaml", "workers.yaml"] {
        let path = format!("{FOLDER}/{expected}");
        assert!(files.contains(&path.as_str()), "{path} is missing");
    }
    let mut seen = BTreeMap::new();
    for document in &documents {
        let what = document.what();
        assert!(
            document.value["apiVersion"].is_string(),
            "{what}: apiVersion"
        );
        assert!(
            !document.kind().is_empty() && !document.name().is_empty(),
            "{what}"
        );
        assert!(
            seen.insert((document.kind(), document.name()), ())
                .is_none(),
            "{what} twice"
        );
    }
    let claims: Vec<&str> = documents
        .iter()
        .filter(|d| d.kind() == "PersistentVolumeClaim")
        .map(Document::name)
        .collect();
    for workload in documents.iter().filter(|d| d.is_workload()) {
        let what = workload.what();
        assert!(
            workload.selected_by(&workload.value["spec"]["selector"]["matchLabels"]),
            "{what}: selector.matchLabels must match the pod template's labels"
        );
        let volumes: Vec<&Value> = workload.pod()["volumes"]
            .as_sequence()
            .map_or(Vec::new(), |v| v.iter().collect());
        for container in workload.containers() {
            for mount in container["volumeMounts"]
                .as_sequence()
                .into_iter()
                .flatten()
            {
                let name = &mount["name"];
                let volume = volumes
                    .iter()
                    .find(|v| &v["name"] == name)
                    .unwrap_or_else(|| panic!("{what}: no volume {name:?}"));
                if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() {
                    assert!(claims.contains(&claim), "{what}: no claim {claim}");
                }
            }
        }
    }
}

#[test]
fn containers_run_the_images_programs_with_flags_and_variables_they_accept() {
    let documents = documents();
    let (uid, _) = USER.split_once(':').expect("uid:gid");
    let mut images = Vec::new();
    for workload in documents.iter().filter(|d| d.is_workload()) {
        let what = workload.what();
        if let Some(user) = workload.pod()["securityContext"]["runAsUser"].as_u64() {
            assert_eq!(user.to_string(), uid, "{what}: the image's user");
        }
        for container in workload.containers() {
            images.push(text(&container["image"]));
            assert!(
                container.get("command").is_none(),
                "{what}: `command` replaces the image's tini entrypoint; use `args`"
            );
            let env = environment(container);
            let set: BTreeMap<String, String> = container["env"]
                .as_sequence()
                .into_iter()
                .flatten()
                .map(|v| {
                    (
                        text(&v["name"]),
                        v.get("value").map(text).unwrap_or_default(),
                    )
                })
                .collect();
            check_command_line(&args(container), &env, &set, &format!("{what}: args"));
            for (kind, probe) in probes(container) {
                if let Some(exec) = probe.get("exec") {
                    let command = strings(&exec["command"], kind);
                    check_command_line(
                        &command,
                        &env,
                        &BTreeMap::new(),
                        &format!("{what}: {kind}"),
                    );
                }
                if let Some(get) = probe.get("httpGet") {
                    assert!(
                        resolve_port(container, &get["port"]).is_some(),
                        "{what}: {kind} probes port {:?}, which the container does not declare",
                        get["port"]
                    );
                }
            }
        }
    }
    images.dedup();
    assert_eq!(images.len(), 1, "one image for both roles: {images:?}");
}

#[test]
fn the_delegator_is_one_pod_probed_on_its_http_port_with_its_output_at_the_workdir() {
    let documents = documents();
    let delegators = running(&documents, "ganger-delegator");
    let [(workload, container)] = delegators.as_slice() else {
        panic!("one delegator container, not {}", delegators.len());
    };
    let what = workload.what();
    assert_eq!(
        workload.value["spec"]["replicas"].as_u64(),
        Some(1),
        "{what}"
    );
    if workload.kind() == "Deployment" {
        assert_eq!(
            workload.value["spec"]["strategy"]["type"].as_str(),
            Some("Recreate"),
            "{what}: never two delegators during a rollout"
        );
    }
    let (bind, http) = delegator_ports(&args(container), &environment(container));
    for port in [bind, http] {
        assert!(
            resolve_port(container, &Value::from(port)).is_some(),
            "{what}: containerPort {port}"
        );
    }
    for kind in ["readinessProbe", "livenessProbe"] {
        let get = &container[kind]["httpGet"];
        assert_eq!(get["path"].as_str(), Some("/healthz"), "{what}: {kind}");
        assert_eq!(
            resolve_port(container, &get["port"]),
            Some(http),
            "{what}: {kind}"
        );
    }
    let mounts = container["volumeMounts"]
        .as_sequence()
        .expect("volumeMounts");
    assert!(
        mounts
            .iter()
            .any(|m| m["mountPath"].as_str() == Some(WORKDIR)),
        "{what}: a volume at {WORKDIR}, where the run's output goes"
    );
}

#[test]
fn workers_dial_a_service_that_reaches_the_delegators_bind_port() {
    let documents = documents();
    let (_, delegator) = running(&documents, "ganger-delegator")[0];
    let (bind, _) = delegator_ports(&args(delegator), &environment(delegator));
    let workers = running(&documents, "ganger-worker");
    assert!(!workers.is_empty(), "a worker workload");
    for (workload, container) in workers {
        let what = workload.what();
        let connect = environment(container)
            .get("GANGER_CONNECT")
            .cloned()
            .unwrap_or_else(|| panic!("{what}: GANGER_CONNECT"));
        let host = connect
            .strip_prefix("tcp://")
            .and_then(|rest| rest.rsplit_once(':'))
            .map(|(host, _)| host.split('.').next().unwrap_or(host))
            .unwrap_or_else(|| panic!("{what}: GANGER_CONNECT={connect}: tcp://HOST:PORT"));
        let service = documents
            .iter()
            .find(|d| d.kind() == "Service" && d.name() == host)
            .unwrap_or_else(|| panic!("{what}: dials {host}, which is no Service"));
        let port = port_of(&connect);
        let service_port = service.value["spec"]["ports"]
            .as_sequence()
            .into_iter()
            .flatten()
            .find(|p| p["port"].as_u64() == Some(u64::from(port)))
            .unwrap_or_else(|| panic!("{}: no port {port}", service.what()));
        let target = service_port
            .get("targetPort")
            .unwrap_or(&service_port["port"]);
        let reached: Vec<u16> = documents
            .iter()
            .filter(|d| d.is_workload() && d.selected_by(&service.value["spec"]["selector"]))
            .flat_map(|d| d.containers())
            .filter(|c| args(c).first().map(String::as_str) == Some("ganger-delegator"))
            .filter_map(|c| resolve_port(c, target))
            .collect();
        assert_eq!(
            reached,
            [bind],
            "{}: port {port} must reach the delegator's bind port",
            service.what()
        );

        let liveness = strings(
            &container["livenessProbe"]["exec"]["command"],
            "livenessProbe",
        );
        assert_eq!(liveness, ["ganger-worker", "status"], "{what}");
        for bound in ["requests", "limits"] {
            assert!(
                container["resources"][bound].is_mapping(),
                "{what}: resources.{bound}"
            );
        }
        let grace = worker_grace_secs(&environment(container));
        let termination = workload.pod()["terminationGracePeriodSeconds"]
            .as_f64()
            .unwrap_or(30.0);
        assert!(
            termination > grace,
            "{what}: terminationGracePeriodSeconds {termination} must exceed the worker's grace of {grace} s"
        );
    }
}
