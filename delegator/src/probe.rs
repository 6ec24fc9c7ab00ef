//! `ganger-delegator probe`: a health check for a delegator, for Docker's `HEALTHCHECK` and
//! anything else that judges a container by a command's exit status.
//!
//! It GETs the delegator's `/healthz` with the standard library alone (a container image need
//! not ship curl) and exits 0 on `200`, 1 otherwise with one line saying why. It starts no HTTP
//! server and no progress display: it only asks the one that is running.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;

use crate::Common;

/// The URL probed when neither `--url` nor `--http` says otherwise: the delegator's default HTTP
/// port on this machine.
const DEFAULT_URL: &str = "http://127.0.0.1:8080/healthz";

/// Most of a response read; the status line and the first line of the body are all it needs.
const MAX_RESPONSE_BYTES: u64 = 16 * 1024;

/// Arguments of `probe`.
#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {
    /// The URL to GET; healthy if it answers 200 [default: http://127.0.0.1:8080/healthz, or
    /// /healthz on this machine at the port of --http when that is set].
    #[arg(long, env = "GANGER_PROBE_URL")]
    url: Option<String>,
    /// Give up after this long, seconds: connecting, sending and reading the answer together.
    #[arg(long, env = "GANGER_PROBE_TIMEOUT_SECS", default_value_t = 3.0)]
    timeout_secs: f64,
}

/// Probes the URL and prints its status line; an error is anything but a `200` answer.
pub(crate) fn run(common: &Common, args: &ProbeArgs) -> anyhow::Result<()> {
    let url = match &args.url {
        Some(url) => url.clone(),
        None => default_url(common.http.as_deref())?,
    };
    let timeout = Duration::try_from_secs_f64(args.timeout_secs)
        .ok()
        .filter(|t| !t.is_zero())
        .with_context(|| {
            format!(
                "--timeout-secs {}: must be a positive number of seconds",
                args.timeout_secs
            )
        })?;
    let target = Target::parse(&url)?;
    let response = get(&target, timeout).with_context(|| url.clone())?;
    let answer = Answer::parse(&response).with_context(|| format!("{url}: not an HTTP answer"))?;
    if answer.code != 200 {
        bail!("{url} answered {}", answer.describe());
    }
    println!("{url}: {}", answer.describe());
    Ok(())
}

/// `/healthz` on this machine at the port `--http` binds, or [`DEFAULT_URL`]: a probe run in the
/// delegator's container sees the same `GANGER_HTTP` as the delegator.
fn default_url(http: Option<&str>) -> anyhow::Result<String> {
    let Some(address) = http else {
        return Ok(DEFAULT_URL.to_owned());
    };
    if address == "none" {
        bail!("the delegator's HTTP server is off (--http none): nothing to probe; pass --url");
    }
    let Ok(mut socket) = address.parse::<SocketAddr>() else {
        // A host name, as `--http localhost:8080` allows.
        return Ok(format!("http://{address}/healthz"));
    };
    if socket.port() == 0 {
        bail!(
            "--http {address} lets the system choose the port: pass --url with the bound one (--http-address-file writes it)"
        );
    }
    if socket.ip().is_unspecified() {
        let loopback: std::net::IpAddr = match socket {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        socket.set_ip(loopback);
    }
    Ok(format!("http://{socket}/healthz"))
}

/// Where an `http://` URL points.
#[derive(Debug, PartialEq)]
struct Target {
    /// Host as written, for the `Host` header (IPv6 addresses keep their brackets).
    host: String,
    port: u16,
    /// Path and query, at least `/`.
    path: String,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Target> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("{url}: only http:// URLs can be probed");
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_owned()),
            Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
            None => (rest, "/".to_owned()),
        };
        // The port follows the last colon, unless that colon is inside an IPv6 address.
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                let port = port
                    .parse()
                    .with_context(|| format!("{url}: port `{port}` is not a number"))?;
                (host, port)
            }
            _ => (authority, 80),
        };
        if host.is_empty() || host.contains('@') {
            bail!("{url}: expected http://HOST[:PORT]/PATH");
        }
        Ok(Target {
            host: host.to_owned(),
            port,
            path,
        })
    }

    fn addresses(&self) -> std::io::Result<Vec<SocketAddr>> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        Ok((host, self.port).to_socket_addrs()?.collect())
    }
}

/// Sends a `GET` and returns the start of the answer, all within `timeout`.
fn get(target: &Target, timeout: Duration) -> anyhow::Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let addresses = target.addresses().context("cannot resolve the host")?;
    let mut stream = connect(&addresses, deadline)?;
    stream.set_write_timeout(Some(remaining(deadline)?))?;
    // HTTP/1.0: the server closes the connection after its answer, which ends the read below.
    // One write, so that a server reading one segment sees the whole request.
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}:{}\r\nUser-Agent: ganger-probe\r\nConnection: close\r\n\r\n",
        target.path, target.host, target.port
    );
    stream
        .write_all(request.as_bytes())
        .context("cannot send the request")?;
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    while (response.len() as u64) < MAX_RESPONSE_BYTES {
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => bail!("no complete answer within {timeout:?}"),
            // A server that closes without reading all of the request resets the connection;
            // what it sent before that still counts.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !response.is_empty() => {
                break
            }
            Err(e) => return Err(e).context("cannot read the answer"),
        }
    }
    Ok(response)
}

/// The first address that accepts, trying each in turn until the deadline.
fn connect(addresses: &[SocketAddr], deadline: Instant) -> anyhow::Result<TcpStream> {
    let mut last_error = None;
    for address in addresses {
        match TcpStream::connect_timeout(address, remaining(deadline)?) {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = Some((address, e)),
        }
    }
    match last_error {
        Some((address, e)) if is_timeout(&e) => bail!("cannot connect to {address}: timed out"),
        Some((address, e)) => bail!("cannot connect to {address}: {e}"),
        None => bail!("the host resolves to no address"),
    }
}

fn remaining(deadline: Instant) -> anyhow::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        bail!("timed out");
    }
    Ok(left)
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

/// The parts of an HTTP answer the probe reports.
#[derive(Debug, PartialEq)]
struct Answer {
    code: u16,
    reason: String,
    /// The body's first line, shortened, if any.
    body: Option<String>,
}

impl Answer {
    fn parse(response: &[u8]) -> anyhow::Result<Answer> {
        let text = String::from_utf8_lossy(response);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status_line = head.lines().next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let (version, code) = (parts.next().unwrap_or_default(), parts.next());
        if !version.starts_with("HTTP/") {
            bail!("the answer starts with `{}`", shorten(status_line));
        }
        let code = code
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("no status code in `{}`", shorten(status_line)))?;
        let reason = parts.next().unwrap_or_default().trim().to_owned();
        let body = body
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .map(shorten);
        Ok(Answer { code, reason, body })
    }

    /// `503 Service Unavailable: the body's first line`, on one line.
    fn describe(&self) -> String {
        let mut text = self.code.to_string();
        if !self.reason.is_empty() {
            text = format!("{text} {}", self.reason);
        }
        match &self.body {
            Some(body) => format!("{text}: {body}"),
            None => text,
        }
    }
}

/// At most 200 characters of `text`, so that a stray HTML page stays one short line.
fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_port_and_path() {
        let target = |url| Target::parse(url).unwrap();
        assert_eq!(
            target("http://127.0.0.1:8080/healthz"),
            Target {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/healthz".into()
            }
        );
        assert_eq!(target("http://delegator").port, 80);
        assert_eq!(target("http://delegator").path, "/");
        assert_eq!(target("http://delegator?x=1").path, "/?x=1");
        let v6 = target("http://[::1]:9000/healthz");
        assert_eq!((v6.host.as_str(), v6.port), ("[::1]", 9000));
        assert_eq!(target("http://[::1]/").port, 80);
    }

    #[test]
    fn urls_the_probe_cannot_follow_are_rejected_with_the_url_named() {
        for url in [
            "https://127.0.0.1/healthz",
            "127.0.0.1:8080",
            "http://:8080/",
            "http://127.0.0.1:eighty/",
            "http://user@host/",
        ] {
            let error = format!("{:#}", Target::parse(url).unwrap_err());
            assert!(error.contains(url), "{error}");
        }
    }

    #[test]
    fn the_default_url_follows_the_http_setting() {
        assert_eq!(default_url(None).unwrap(), DEFAULT_URL);
        assert_eq!(
            default_url(Some("0.0.0.0:9090")).unwrap(),
            "http://127.0.0.1:9090/healthz"
        );
        assert_eq!(
            default_url(Some("[::]:9090")).unwrap(),
            "http://[::1]:9090/healthz"
        );
        assert_eq!(
            default_url(Some("10.0.0.5:8080")).unwrap(),
            "http://10.0.0.5:8080/healthz"
        );
        assert_eq!(
            default_url(Some("localhost:8080")).unwrap(),
            "http://localhost:8080/healthz"
        );
        assert!(default_url(Some("none")).is_err());
        assert!(default_url(Some("127.0.0.1:0")).is_err());
    }

    #[test]
    fn answers_give_code_reason_and_the_first_line_of_the_body() {
        let answer = Answer::parse(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 9\r\n\r\n\nstuck\nx",
        )
        .unwrap();
        assert_eq!(answer.code, 503);
        assert_eq!(answer.describe(), "503 Service Unavailable: stuck");
        let ok = Answer::parse(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        assert_eq!(ok.describe(), "200 OK");
        assert_eq!(Answer::parse(b"HTTP/1.0 204\r\n\r\n").unwrap().code, 204);
        assert!(Answer::parse(b"SSH-2.0-OpenSSH_9.2\r\n").is_err());
        assert!(Answer::parse(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(Answer::parse(b"").is_err());
    }

    #[test]
    fn a_long_body_line_is_shortened() {
        let long = "x".repeat(1000);
        let response = format!("HTTP/1.1 500 Internal Server Error\r\n\r\n{long}");
        let answer = Answer::parse(response.as_bytes()).unwrap();
        assert!(answer.describe().chars().count() < 250);
    }
}
