//! Apps run the way Marathon would run them: an app's `args` after the image's `tini --`
//! entrypoint (tini only execs them) with exactly the app's `env`, the binaries cargo built on
//! PATH where the image has them, and its health checks run as Mesos runs them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::worker_bin;
use crate::{read_json, string_array, HOST_PLACEHOLDER};

/// PATH inside the image, with the binaries cargo built where the image has them.
fn image_path() -> OsString {
    let bin = worker_bin();
    let mut path = bin.parent().unwrap().as_os_str().to_owned();
    path.push(":/usr/local/bin:/usr/bin:/bin");
    path
}

/// The cluster secret the tests put where the apps' `GANGER_SECRET_FILE` volume comes from
/// (the agents' `/etc/ganger/cluster.secret`).
pub const TEST_SECRET: &str = "a cluster secret for the Marathon tests";

/// Writes [`TEST_SECRET`] to a file in `dir`, standing in for the agent's host path.
fn secret_file(dir: &Path) -> String {
    let path = dir.join("cluster.secret");
    std::fs::write(&path, TEST_SECRET).unwrap();
    path.display().to_string()
}

/// The app's `env`, with each of `replace` (name, value) put in place of the app's value.
fn app_env(app: &Value, replace: &[(&str, String)]) -> Vec<(String, String)> {
    let env = app["env"].as_object().expect("the app has an env");
    for (name, _) in replace {
        assert!(env.contains_key(*name), "the app's env has no {name}");
    }
    env.iter()
        .map(|(name, value)| {
            let value = replace
                .iter()
                .find(|(n, _)| n == name)
                .map_or_else(|| value.as_str().unwrap().to_owned(), |(_, v)| v.clone());
            (name.clone(), value)
        })
        .collect()
}

/// The app's `args` as Marathon's Docker containerizer runs them after the image's
/// `tini --` entrypoint (tini only execs them), with exactly `env` plus the image's PATH.
fn app_command(args: &[String], env: &[(String, String)], workdir: &Path, log: &Path) -> Command {
    let mut command = Command::new(&args[0]);
    command
        .args(&args[1..])
        .env_clear()
        .envs(env.iter().map(|(n, v)| (n, v)))
        .env("PATH", image_path())
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    command
}

/// A running task of the workers' app; killed when dropped.
pub struct Task {
    pub child: Child,
    env: Vec<(String, String)>,
    status_file: PathBuf,
    log: PathBuf,
}

impl Task {
    /// Starts one instance of `app` against `endpoint` (`tcp://127.0.0.1:PORT`, standing in for
    /// `DELEGATOR_HOST:5555`), keeping its status file in `dir` (a container's own /tmp).
    pub fn worker(app: &Value, endpoint: &str, dir: &Path) -> Task {
        std::fs::create_dir_all(dir).unwrap();
        let connect = app["env"]["GANGER_CONNECT"].as_str().unwrap();
        let placeholder = format!("{HOST_PLACEHOLDER}:5555");
        assert!(connect.contains(&placeholder), "{connect}");
        let local = endpoint.strip_prefix("tcp://").unwrap();
        let status_file = dir.join("ganger-worker.json");
        let env = app_env(
            app,
            &[
                ("GANGER_CONNECT", connect.replace(&placeholder, local)),
                ("GANGER_STATUS_FILE", status_file.display().to_string()),
                ("GANGER_SECRET_FILE", secret_file(dir)),
            ],
        );
        let args: Vec<String> = string_array(&app["args"])
            .into_iter()
            .map(String::from)
            .collect();
        let log = dir.join("stderr.log");
        let child = app_command(&args, &env, dir, &log)
            .spawn()
            .expect("the worker app's args start");
        Task {
            child,
            env,
            status_file,
            log,
        }
    }

    /// Runs the app's COMMAND health check as Mesos does: `sh -c VALUE` in the task's
    /// environment. Returns its exit code and output.
    pub fn health_check(&self, app: &Value) -> (i32, String) {
        let check = &app["healthChecks"][0];
        assert_eq!(check["protocol"], "COMMAND");
        let command = check["command"]["value"].as_str().unwrap();
        let output = Command::new("sh")
            .arg("-c")
            .arg(command)
            .env_clear()
            .envs(self.env.iter().map(|(n, v)| (n, v)))
            .env("PATH", image_path())
            .output()
            .expect("sh runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().expect("the check exits"), text)
    }

    /// Runs the health check until `done(code)`; panics after `limit`.
    pub fn await_health(
        &self,
        app: &Value,
        limit: Duration,
        done: impl Fn(i32) -> bool,
    ) -> (i32, String) {
        let deadline = Instant::now() + limit;
        loop {
            let (code, output) = self.health_check(app);
            if done(code) {
                return (code, output);
            }
            assert!(
                Instant::now() < deadline,
                "health check still exits {code}:\n{output}\nworker log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn status(&self) -> Value {
        read_json(&self.status_file)
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running task of the delegator's app; killed when dropped.
pub struct DelegatorTask {
    child: Child,
    /// The endpoint workers connect to, `tcp://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The HTTP server's address, `127.0.0.1:PORT`.
    pub http: String,
    log: PathBuf,
}

impl DelegatorTask {
    /// Starts `app`'s args and env with its volume at `volume` and its working directory
    /// there. Tests never listen on every interface: the binds are moved to free loopback
    /// ports, which the delegator writes to files (where Marathon would report mapped ports).
    pub fn start(app: &Value, volume: &Path, scratch: &Path) -> DelegatorTask {
        let container_path = app["container"]["volumes"][0]["containerPath"]
            .as_str()
            .unwrap();
        let args: Vec<String> = string_array(&app["args"])
            .into_iter()
            .map(|arg| match arg.strip_prefix(container_path) {
                Some(rest) if rest.starts_with('/') => format!("{}{rest}", volume.display()),
                _ => arg.to_owned(),
            })
            .collect();
        let endpoint_file = scratch.join("endpoint");
        let http_file = scratch.join("http-address");
        let _ = std::fs::remove_file(&endpoint_file);
        let _ = std::fs::remove_file(&http_file);
        let mut env = app_env(
            app,
            &[
                ("GANGER_BIND", "tcp://127.0.0.1:0".into()),
                ("GANGER_HTTP", "127.0.0.1:0".into()),
                ("GANGER_SECRET_FILE", secret_file(scratch)),
            ],
        );
        env.push((
            "GANGER_ENDPOINT_FILE".into(),
            endpoint_file.display().to_string(),
        ));
        env.push((
            "GANGER_HTTP_ADDRESS_FILE".into(),
            http_file.display().to_string(),
        ));
        let log = scratch.join("delegator.log");
        let child = app_command(&args, &env, volume, &log)
            .spawn()
            .expect("the delegator app's args start");
        let mut task = DelegatorTask {
            child,
            endpoint: String::new(),
            http: String::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let endpoint = std::fs::read_to_string(&endpoint_file).unwrap_or_default();
            let http = std::fs::read_to_string(&http_file).unwrap_or_default();
            if !endpoint.is_empty() && !http.is_empty() {
                task.endpoint = ganger_transport::local_endpoint(endpoint.trim());
                task.http = http.trim().to_owned();
                return task;
            }
            assert!(task.is_running(), "the delegator exited:\n{}", task.log());
            assert!(Instant::now() < deadline, "no endpoint:\n{}", task.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM, then a clean exit within `grace`.
    pub fn terminate_within(&mut self, grace: Duration) {
        // SAFETY: kill(2) on our own child with a valid signal number.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) },
            0
        );
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status}:\n{}", self.log());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still running {grace:?} after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for DelegatorTask {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// [`http_get`](crate::common::http_get) with the body trimmed.
pub fn http_get(address: &str, path: &str) -> (u16, String) {
    let (code, body) = crate::common::http_get(address, path);
    (code, body.trim().to_owned())
}

/// `state` of `/api/status`: `running`, `done` or `stopped`.
pub fn api_state(address: &str) -> String {
    let (code, body) = http_get(address, "/api/status");
    assert_eq!(code, 200, "{body}");
    let status: Value = serde_json::from_str(&body).unwrap();
    status["state"].as_str().unwrap().to_owned()
}
