//! `ganger-delegator probe`, the health check of a delegator container, against a real
//! delegator, a closed port, and servers that answer badly or not at all.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::{delegator_bin, delegator_command, free_port};

/// A delegator serving HTTP on a free loopback port, waiting for workers that never come (so it
/// stays up), killed when dropped.
struct Delegator {
    child: Child,
    http_address: String,
}

impl Delegator {
    fn start(name: &str) -> Delegator {
        let address_file =
            std::env::temp_dir().join(format!("ganger-probe-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&address_file);
        let child = delegator_command()
            .args(["run", "--task", "noop", "--range", "10"])
            .args(["--bind", "tcp://127.0.0.1:0", "--http", "127.0.0.1:0"])
            .arg("--http-address-file")
            .arg(&address_file)
            .env("GANGER_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("the delegator starts");
        let http_address = wait_for_file(&address_file, Duration::from_secs(30));
        Delegator {
            child,
            http_address,
        }
    }
}

impl Drop for Delegator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_file(path: &Path, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.is_empty() {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "no {} yet", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `ganger-delegator probe ARGS` with no `GANGER_*` settings from the test's environment.
fn probe(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(delegator_bin());
    for (name, _) in std::env::vars() {
        if name.starts_with("GANGER_") {
            command.env_remove(name);
        }
    }
    command
        .arg("probe")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the probe runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the probe failed with exit status 1 and one line on stderr containing `expected`.
fn assert_fails_saying(output: &Output, expected: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line, not: {stderr}");
    assert!(stderr.contains(expected), "{expected:?} not in: {stderr}");
}

#[test]
fn a_running_delegator_is_healthy_by_url_by_environment_and_by_its_http_setting() {
    let delegator = Delegator::start("healthy");
    let url = format!("http://{}/healthz", delegator.http_address);

    let by_flag = probe(&["--url", &url], &[]);
    assert!(by_flag.status.success(), "{}", text(&by_flag.stderr));
    assert_eq!(text(&by_flag.stdout), format!("{url}: 200 OK: ok\n"));

    let by_environment = probe(&[], &[("GANGER_PROBE_URL", &url)]);
    assert!(
        by_environment.status.success(),
        "{}",
        text(&by_environment.stderr)
    );

    // The delegator's own setting, as a HEALTHCHECK in its container sees it.
    let by_http_setting = probe(&[], &[("GANGER_HTTP", &delegator.http_address)]);
    assert!(
        by_http_setting.status.success(),
        "{}",
        text(&by_http_setting.stderr)
    );
}

#[test]
fn a_closed_port_is_unhealthy_with_the_url_and_the_reason_named() {
    let url = format!("http://127.0.0.1:{}/healthz", free_port());
    let output = probe(&["--url", &url], &[]);
    assert_fails_saying(&output, &url);
    assert_fails_saying(&output, "cannot connect");
    assert!(output.stdout.is_empty());
}

#[test]
fn a_delegator_that_has_stopped_is_unhealthy() {
    let mut delegator = Delegator::start("stopped");
    let url = format!("http://{}/healthz", delegator.http_address);
    delegator.child.kill().unwrap();
    delegator.child.wait().unwrap();
    assert_fails_saying(&probe(&["--url", &url], &[]), "cannot connect");
}

/// The probe must ask the delegator, not start a server of its own: had it started one on the
/// port of `--http`, it would have found itself healthy.
#[test]
fn the_probe_starts_no_http_server_of_its_own() {
    let address = format!("127.0.0.1:{}", free_port());
    let output = probe(&["--http", &address], &[]);
    assert_fails_saying(&output, "cannot connect");
}

/// A server that answers every connection with `response`, once; returns its address.
fn answering(response: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            // The whole request first: closing on unread bytes would reset the connection.
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buffer[..n]),
                }
            }
            let _ = stream.write_all(response.as_bytes());
        }
    });
    address
}

#[test]
fn an_answer_other_than_200_is_unhealthy_and_quoted() {
    let address = answering(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 49\r\n\r\nthe delegator's engine has not answered for 10 s\n",
    );
    let url = format!("http://{address}/healthz");
    assert_fails_saying(
        &probe(&["--url", &url], &[]),
        "503 Service Unavailable: the delegator's engine has not answered for 10 s",
    );
}

#[test]
fn something_that_is_not_http_is_unhealthy() {
    let address = answering("SSH-2.0-OpenSSH_9.2\r\n");
    assert_fails_saying(
        &probe(&["--url", &format!("http://{address}/healthz")], &[]),
        "not an HTTP answer",
    );
}

#[test]
fn a_server_that_never_answers_fails_the_probe_within_its_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/healthz", listener.local_addr().unwrap());
    let started = Instant::now();
    let output = probe(&["--url", &url, "--timeout-secs", "0.5"], &[]);
    let took = started.elapsed();
    assert_fails_saying(&output, "no complete answer");
    // A guard against hanging, not a performance assertion.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    drop(listener);
}
