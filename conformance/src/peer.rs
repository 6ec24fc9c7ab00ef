//! The delegator's side of one conversation: a ROUTER on 127.0.0.1, one worker process under
//! test, and the handshake and sealed frames of PROTOCOL.md §10.
//!
//! Socket: ROUTER, bound by [`Peer::start`] on `tcp://127.0.0.1:0` (or rebound on the same port
//! by [`Peer::rebind`]), owned by the thread running one check, closed with linger 0 when the
//! peer is dropped. The worker process is SIGKILLed and reaped on drop, whatever the check did.

use std::collections::VecDeque;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ganger_core::protocol::secure::{self, Channel, Handshake, Secret, Side, NONCE_LEN};
use ganger_core::protocol::{self, Challenge, Hello, Message, Welcome, WorkEncoder};

use message::decode_owned;
pub(crate) use message::{quote_bytes, Incoming, Msg, ResultsMsg};

use crate::Options;

mod message;

/// Bytes of the worker's output kept for failure messages.
const OUTPUT_TAIL: usize = 16 * 1024;
/// How long a worker may take to say its first hello (process start-up included).
pub(crate) const FIRST_HELLO: Duration = Duration::from_secs(15);

/// One conversation with one worker process.
pub(crate) struct Peer {
    context: zmq::Context,
    router: zmq::Socket,
    /// The ROUTER's endpoint, as the worker was told it.
    pub endpoint: String,
    child: Child,
    output: Arc<Mutex<VecDeque<u8>>>,
    secret: Option<Secret>,
    routing_id: Option<Vec<u8>>,
    channel: Option<Channel>,
    /// Heartbeat the worker every so often while waiting (after a welcome); `None`: stay silent.
    pub heartbeat_every: Option<Duration>,
    last_sent: Instant,
    next_batch: u64,
    next_worker_id: u64,
    /// Things worth reporting that do not fail the check.
    pub warnings: Vec<String>,
    /// The latest hello received, whoever consumed it, and how many have come.
    pub last_hello: Option<(Hello, Vec<u8>)>,
    /// How many hellos have come.
    pub hellos: u64,
}

impl Peer {
    /// Binds a ROUTER on an ephemeral loopback port and starts the worker under test.
    pub(crate) fn start(options: &Options, check: &str) -> Result<Peer, String> {
        let context = zmq::Context::new();
        let router = bind_router(&context, "tcp://127.0.0.1:0")?;
        let endpoint = router
            .get_last_endpoint()
            .map_err(|e| format!("cannot read the ROUTER's endpoint: {e}"))?
            .map_err(|_| "the ROUTER's endpoint is not UTF-8".to_string())?;
        let secret_text = if options.secret {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
            Some(secure::to_hex(&bytes))
        } else {
            None
        };
        let secret = match &secret_text {
            Some(text) => Some(Secret::new(text.as_bytes()).map_err(|e| e.to_string())?),
            None => None,
        };
        let mut command = Command::new(&options.command[0]);
        command
            .args(&options.command[1..])
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .env("GANGER_CONNECT", &endpoint)
            .env("GANGER_THREADS", crate::SLOTS.to_string())
            .env("GANGER_NAME", format!("conformance-{check}"))
            .env_remove("GANGER_SECRET_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        own_process_group(&mut command);
        if let Some(dir) = &options.dir {
            command.current_dir(dir);
        }
        match &secret_text {
            Some(text) => command.env("GANGER_SECRET", text),
            None => command.env_remove("GANGER_SECRET"),
        };
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start the worker `{}`: {e}", options.command[0]))?;
        let output = Arc::new(Mutex::new(VecDeque::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            std::thread::spawn(move || keep_tail(stream, &output));
        }
        Ok(Peer {
            context,
            router,
            endpoint,
            child,
            output,
            secret,
            routing_id: None,
            channel: None,
            heartbeat_every: None,
            last_sent: Instant::now(),
            next_batch: 1,
            next_worker_id: 1,
            warnings: Vec::new(),
            last_hello: None,
            hellos: 0,
        })
    }

    /// Whether the run is secured (a cluster secret, the handshake, sealed frames).
    pub(crate) fn secured(&self) -> bool {
        self.secret.is_some()
    }

    /// The last lines of the worker's stdout and stderr.
    pub(crate) fn output_tail(&self) -> String {
        let output = self.output.lock().unwrap_or_else(|e| e.into_inner());
        let bytes: Vec<u8> = output.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Waits up to `timeout` for one frame from the worker, heartbeating it meanwhile if
    /// [`Peer::heartbeat_every`] is set.
    pub(crate) fn recv(&mut self, timeout: Duration) -> Option<Incoming> {
        let deadline = Instant::now() + timeout;
        loop {
            self.heartbeat_if_due();
            if let Some(incoming) = self.try_recv() {
                return Some(incoming);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let wait = (deadline - now).min(Duration::from_millis(20));
            let mut items = [self.router.as_poll_item(zmq::POLLIN)];
            let _ = zmq::poll(&mut items, wait.as_millis().max(1) as i64);
        }
    }

    /// Sends `message`, sealed when a session is up.
    pub(crate) fn send(&mut self, message: &Message<'_>) {
        let mut frame = Vec::new();
        protocol::encode(message, &mut frame);
        self.send_bytes(frame);
    }

    /// Sends arbitrary bytes as a message, sealed when a session is up.
    pub(crate) fn send_bytes(&mut self, frame: Vec<u8>) {
        let frame = match &mut self.channel {
            Some(channel) => channel.sealer.seal(&frame),
            None => frame,
        };
        self.send_raw(&frame);
    }

    /// Sends `message` in plaintext whatever the session (handshake messages, `reject`, and the
    /// `reset` for a peer without a session).
    pub(crate) fn send_plain(&mut self, message: &Message<'_>) {
        let mut frame = Vec::new();
        protocol::encode(message, &mut frame);
        self.send_raw(&frame);
    }

    /// Sends `frame` exactly as given.
    pub(crate) fn send_raw(&mut self, frame: &[u8]) {
        if let Some(id) = &self.routing_id {
            let _ = self.router.send_multipart([&id[..], frame], zmq::DONTWAIT);
            self.last_sent = Instant::now();
        }
    }

    /// Sends one `work` batch and returns its batch id.
    pub(crate) fn send_work(&mut self, units: &[crate::checks::Unit]) -> u64 {
        let batch = self.next_batch;
        self.next_batch += 1;
        let mut frame = Vec::new();
        let mut encoder = WorkEncoder::new(&mut frame, batch, units.len() as u32);
        for unit in units {
            encoder.unit(unit.id, unit.job_type, &unit.payload);
        }
        encoder.finish();
        self.send_bytes(frame);
        batch
    }

    /// Waits for the worker's hello: any other message first is a failure, and so is the
    /// worker exiting.
    pub(crate) fn expect_hello(&mut self, timeout: Duration) -> Result<(Hello, Vec<u8>), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left.min(Duration::from_millis(200))) {
                Some(Incoming {
                    msg: Msg::Hello { hello, frame },
                    ..
                }) => return Ok((hello, frame)),
                Some(other) => {
                    return Err(format!(
                        "expected a hello, received {}",
                        other.msg.describe()
                    ))
                }
                None => {
                    if let Some(status) = self.exited() {
                        return Err(format!("the worker exited ({status}) without a hello"));
                    }
                    if left.is_zero() {
                        return Err(format!(
                            "waited {} s for a hello and received nothing",
                            timeout.as_secs_f64()
                        ));
                    }
                }
            }
        }
    }

    /// Waits for a hello and registers the worker with `welcome` (after the handshake, when
    /// secured). Returns the hello that was answered.
    pub(crate) fn register(&mut self, welcome: Welcome) -> Result<Hello, String> {
        let (hello, frame) = self.expect_hello(FIRST_HELLO)?;
        self.register_hello(hello, frame, welcome)
    }

    /// Registers the worker whose hello is `hello` (as the bytes `frame`).
    pub(crate) fn register_hello(
        &mut self,
        hello: Hello,
        frame: Vec<u8>,
        welcome: Welcome,
    ) -> Result<Hello, String> {
        let hello = if self.secured() {
            self.handshake(hello, frame, &[])?
        } else {
            hello
        };
        let welcome = Welcome {
            worker_id: self.next_worker_id,
            ..welcome
        };
        self.next_worker_id += 1;
        self.send(&Message::Welcome(welcome));
        Ok(hello)
    }

    /// Plays the delegator's half of §10.2 for `hello`, up to a verified proof (the session is
    /// then up: the next frames are sealed). A proof that verifies for one of the `stale`
    /// handshakes (challenges to earlier hellos) is a failure. If the worker says hello again
    /// before answering (its retry crossed the challenge), the handshake restarts with it.
    pub(crate) fn handshake(
        &mut self,
        mut hello: Hello,
        mut frame: Vec<u8>,
        stale: &[Handshake],
    ) -> Result<Hello, String> {
        let secret = self.secret.clone().ok_or("handshake without a secret")?;
        let mut stale = stale.to_vec();
        for _ in 0..5 {
            let nonce_worker = hello.nonce.ok_or_else(|| {
                format!(
                    "the worker was given GANGER_SECRET but its hello has no nonce (§10.2): {}",
                    Msg::Hello {
                        hello: hello.clone(),
                        frame: Vec::new()
                    }
                    .describe()
                )
            })?;
            let nonce_delegator = random_nonce()?;
            let handshake = Handshake::new(&frame, &nonce_worker, &nonce_delegator);
            self.send_plain(&Message::Challenge(Challenge {
                nonce: nonce_delegator,
                hello_digest: handshake.hello_digest(),
            }));
            match self.recv(Duration::from_secs(10)) {
                Some(Incoming {
                    msg: Msg::Auth(proof),
                    sealed: false,
                    ..
                }) => {
                    if handshake.verify(&secret, &proof) {
                        self.channel = Some(handshake.channel(&secret, Side::Delegator));
                        return Ok(hello);
                    }
                    if stale.iter().any(|old| old.verify(&secret, &proof)) {
                        return Err(
                            "the worker answered a challenge whose hello_digest names an \
                                    earlier hello, not its latest (§10.2 step 3)"
                                .into(),
                        );
                    }
                    return Err("the worker's auth proof is wrong (§10.2 step 3)".into());
                }
                Some(Incoming {
                    msg: Msg::Hello { hello: h, frame: f },
                    ..
                }) => {
                    stale.push(handshake);
                    (hello, frame) = (h, f);
                }
                Some(other) => {
                    return Err(format!(
                        "expected an auth after the challenge, received {}{}",
                        if other.sealed { "sealed " } else { "" },
                        other.msg.describe()
                    ))
                }
                None => return Err("waited 10 s for an auth after the challenge".into()),
            }
        }
        Err("the worker kept saying hello instead of answering the challenge".into())
    }

    /// Closes the ROUTER and binds a new one on the same endpoint (retrying while the port is
    /// still held), forgetting the worker's routing id and session, as a restarted delegator.
    pub(crate) fn rebind(&mut self, pause: Duration) -> Result<(), String> {
        let fresh = self
            .context
            .socket(zmq::ROUTER)
            .map_err(|e| e.to_string())?;
        let old = std::mem::replace(&mut self.router, fresh);
        let _ = old.set_linger(0);
        drop(old);
        self.routing_id = None;
        self.channel = None;
        std::thread::sleep(pause);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match bind_router(&self.context, &self.endpoint) {
                Ok(router) => {
                    self.router = router;
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Sends SIGTERM to the worker.
    pub(crate) fn terminate(&self) {
        // SAFETY: kill(2) with a pid this process started and has not reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }

    /// The worker's exit status, if it has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn heartbeat_if_due(&mut self) {
        if let Some(every) = self.heartbeat_every {
            if self.routing_id.is_some() && self.last_sent.elapsed() >= every {
                self.send(&Message::Heartbeat);
            }
        }
    }

    fn try_recv(&mut self) -> Option<Incoming> {
        let parts = self.router.recv_multipart(zmq::DONTWAIT).ok()?;
        let at = Instant::now();
        let mut parts = parts.into_iter();
        let id = parts.next()?;
        self.routing_id = Some(id);
        let bodies: Vec<Vec<u8>> = parts.collect();
        if bodies.len() != 1 {
            return Some(Incoming {
                at,
                size: bodies.iter().map(Vec::len).sum(),
                sealed: false,
                msg: Msg::Invalid(format!(
                    "a message of {} frames; §1 wants exactly one",
                    bodies.len()
                )),
            });
        }
        let body = bodies.into_iter().next().unwrap_or_default();
        let size = body.len();
        let sealed = secure::is_sealed(&body);
        let msg = match (&mut self.channel, sealed) {
            (Some(channel), true) => match channel.opener.open(&body) {
                Ok(plain) => decode_owned(&plain),
                Err(e) => Msg::Invalid(format!("a sealed frame that does not open: {e}")),
            },
            (None, true) => Msg::Invalid(
                "a sealed frame, but the worker has no session with this ROUTER".into(),
            ),
            (channel, false) => {
                let msg = decode_owned(&body);
                match msg {
                    // A hello starts a new session (§3 reset, §10.2): the old keys are gone.
                    Msg::Hello {
                        ref hello,
                        ref frame,
                    } => {
                        self.channel = None;
                        self.hellos += 1;
                        self.last_hello = Some((hello.clone(), frame.clone()));
                        msg
                    }
                    Msg::Auth(_) | Msg::Invalid(_) => msg,
                    _ if channel.is_some() => Msg::Invalid(format!(
                        "plaintext {} after the handshake; every frame must be sealed (§10.2)",
                        msg.describe()
                    )),
                    _ => msg,
                }
            }
        };
        Some(Incoming {
            at,
            size,
            sealed,
            msg,
        })
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // The worker leads its own process group: this also ends whatever it started (the exec
        // bridge's programs), which SIGKILL to the worker alone would orphan.
        // SAFETY: kill(2) on the group of a child this process started and has not reaped.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.router.set_linger(0);
    }
}

/// Starts the worker as the leader of a new process group, and (on Linux) has the kernel kill
/// it if the suite dies first, so that an interrupted suite leaves no worker dialling a closed
/// port for ever.
fn own_process_group(command: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    command.process_group(0);
    #[cfg(target_os = "linux")]
    // SAFETY: the closure runs between fork and exec and calls only prctl(2), which is
    // async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

fn bind_router(context: &zmq::Context, endpoint: &str) -> Result<zmq::Socket, String> {
    let router = context
        .socket(zmq::ROUTER)
        .map_err(|e| format!("cannot make a ROUTER: {e}"))?;
    router.set_linger(0).map_err(|e| e.to_string())?;
    router.set_sndhwm(0).map_err(|e| e.to_string())?;
    router.set_rcvhwm(0).map_err(|e| e.to_string())?;
    router
        .bind(endpoint)
        .map_err(|e| format!("cannot bind {endpoint}: {e}"))?;
    Ok(router)
}

fn random_nonce() -> Result<[u8; NONCE_LEN], String> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
    Ok(nonce)
}

fn keep_tail(mut stream: Box<dyn Read + Send>, output: &Mutex<VecDeque<u8>>) {
    let mut buffer = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buffer) {
        if n == 0 {
            return;
        }
        let mut output = output.lock().unwrap_or_else(|e| e.into_inner());
        output.extend(&buffer[..n]);
        while output.len() > OUTPUT_TAIL {
            output.pop_front();
        }
    }
}
