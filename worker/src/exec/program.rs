//! One running copy of the user's program: started through `/bin/sh -c` in a process group of
//! its own, fed requests on stdin by a writer thread, read on stdout by a reader thread, and
//! killed with its whole group.
//!
//! Copies are started by one long-lived thread ([`Spawner`]) because Linux's parent-death
//! signal fires when the *thread* that forked a child ends, not the process: a copy started
//! from a pool thread would be killed when that thread went away.

use std::io::{BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::framing::{Framing, ReadError};

/// What the reader thread saw on the program's stdout.
#[derive(Debug)]
pub(crate) enum ReadEvent {
    /// One message.
    Message(Vec<u8>),
    /// Stdout closed (`None`), or could not be read on (the reason).
    Closed(Option<ReadError>),
}

/// A running copy.
#[derive(Debug)]
pub(crate) struct Program {
    child: Child,
    /// Requests for the writer thread; dropping it closes the program's stdin.
    requests_tx: Option<Sender<Vec<u8>>>,
    pub(crate) events_rx: Receiver<ReadEvent>,
    pub(crate) started: Instant,
    /// Whether it has answered a request: one that has is not dying at start.
    pub(crate) answered: bool,
}

impl Program {
    /// The program's process id, which is also its process group's id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Hands a request to the writer thread. A program that no longer reads is found out by
    /// its reply never coming (or its stdout closing), not here.
    pub(crate) fn send(&self, request: Vec<u8>) {
        if let Some(requests_tx) = &self.requests_tx {
            let _ = requests_tx.send(request);
        }
    }

    /// How the program ended, if it has, without reaping it (so that its process group cannot
    /// be reused before [`Program::kill`]).
    pub(crate) fn exit_status(&self) -> Option<String> {
        // SAFETY: waitid on our own child with a zeroed siginfo_t it fills in; WNOWAIT leaves
        // the child waitable.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            if libc::waitid(libc::P_PID, self.pid() as libc::id_t, &mut info, flags) != 0 {
                return None;
            }
            if info.si_pid() == 0 {
                return None;
            }
            let status = info.si_status();
            Some(match info.si_code {
                libc::CLD_EXITED => format!("exited with status {status}"),
                _ => format!("was killed by signal {status}{}", signal_name(status)),
            })
        }
    }

    /// Waits up to `patience` for the program to end by itself and says how it did.
    pub(crate) fn wait_for_exit(&self, patience: Duration) -> Option<String> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills the program's whole process group (what `sh` started too) and reaps it.
    pub(crate) fn kill(self) {
        drop(self);
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        self.requests_tx = None;
        kill_group(self.pid());
        let _ = self.child.wait();
    }
}

/// SIGKILLs a process group; the group id is the pid of its leader, our child.
pub(crate) fn kill_group(pid: u32) {
    // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
    unsafe {
        libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGINT => " (SIGINT)",
        libc::SIGPIPE => " (SIGPIPE)",
        libc::SIGBUS => " (SIGBUS)",
        libc::SIGFPE => " (SIGFPE)",
        _ => "",
    }
}

/// A request to start a copy, answered on `reply_tx`.
struct SpawnRequest {
    command: String,
    framing: Framing,
    reply_tx: Sender<std::io::Result<Program>>,
}

/// The thread that starts every copy (see the module's documentation for why one thread).
#[derive(Debug, Clone)]
pub(crate) struct Spawner {
    requests_tx: Sender<SpawnRequest>,
}

impl std::fmt::Debug for SpawnRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpawnRequest")
            .field("command", &self.command)
            .finish()
    }
}

impl Spawner {
    /// Starts the thread; it ends when every `Spawner` clone is dropped.
    pub(crate) fn start() -> std::io::Result<Spawner> {
        let (requests_tx, requests_rx) = crossbeam_channel::unbounded::<SpawnRequest>();
        std::thread::Builder::new()
            .name("ganger-exec-spawner".into())
            .spawn(move || {
                for request in requests_rx {
                    let _ = request
                        .reply_tx
                        .send(spawn(&request.command, request.framing));
                }
            })?;
        Ok(Spawner { requests_tx })
    }

    /// Starts one copy of `command`.
    pub(crate) fn spawn(&self, command: &str, framing: Framing) -> std::io::Result<Program> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        let request = SpawnRequest {
            command: command.to_owned(),
            framing,
            reply_tx,
        };
        let gone = || std::io::Error::other("the exec spawner thread is gone");
        self.requests_tx.send(request).map_err(|_| gone())?;
        reply_rx.recv().map_err(|_| gone())?
    }
}

/// The script `sh -c` runs: a simple command is `exec`ed, so that the program itself (not a
/// shell waiting for it) is the copy, receives the parent-death signal, and reports its own
/// exit status. Anything else (`;`, pipes, `cd x && …`, `VAR=value cmd`) runs as written, and
/// what the shell starts must exit on EOF of stdin (as every program must).
pub(crate) fn shell_script(command: &str) -> String {
    const SPECIAL: &[char] = &[
        ';', '&', '|', '<', '>', '(', ')', '$', '`', '{', '}', '\n', '*', '?', '[', '~', '#',
    ];
    const KEYWORDS: &[&str] = &[
        "if", "while", "until", "for", "case", "!", "exec", "then", "do", "function",
    ];
    let first = command.split_whitespace().next().unwrap_or("");
    let simple = !command.contains(SPECIAL) && !first.contains('=') && !KEYWORDS.contains(&first);
    if simple {
        format!("exec {command}")
    } else {
        command.to_owned()
    }
}

fn spawn(command: &str, framing: Framing) -> std::io::Result<Program> {
    use std::os::unix::process::CommandExt as _;
    let mut shell = Command::new("/bin/sh");
    shell
        .arg("-c")
        .arg(shell_script(command))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Its own group, so that killing the group also kills whatever `sh` started.
        .process_group(0);
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
        unsafe {
            shell.pre_exec(move || {
                // If the worker dies, even by SIGKILL, the kernel kills the copy.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The worker died before the prctl took effect.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    let mut child = shell.spawn()?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (requests_tx, requests_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
    let (events_tx, events_rx) = crossbeam_channel::unbounded();
    let pid = child.id();
    let started = std::thread::Builder::new()
        .name(format!("ganger-exec-write-{pid}"))
        .spawn(move || write_requests(stdin, &requests_rx))
        .and_then(|_| {
            std::thread::Builder::new()
                .name(format!("ganger-exec-read-{pid}"))
                .spawn(move || read_replies(stdout, framing, &events_tx))
        });
    if let Err(e) = started {
        kill_group(pid);
        let _ = child.wait();
        return Err(e);
    }
    Ok(Program {
        child,
        requests_tx: Some(requests_tx),
        events_rx,
        started: Instant::now(),
        answered: false,
    })
}

fn write_requests(mut stdin: ChildStdin, requests_rx: &Receiver<Vec<u8>>) {
    for request in requests_rx {
        if stdin
            .write_all(&request)
            .and_then(|()| stdin.flush())
            .is_err()
        {
            // The program stopped reading; its reply never comes or its stdout closes.
            return;
        }
    }
    // The channel closed: dropping stdin gives the program EOF.
}

fn read_replies(
    stdout: std::process::ChildStdout,
    framing: Framing,
    events_tx: &Sender<ReadEvent>,
) {
    let mut reader = BufReader::with_capacity(64 << 10, stdout);
    loop {
        let event = match framing.read_message(&mut reader) {
            Ok(Some(message)) => ReadEvent::Message(message),
            Ok(None) => ReadEvent::Closed(None),
            Err(e) => ReadEvent::Closed(Some(e)),
        };
        let closed = matches!(event, ReadEvent::Closed(_));
        if events_tx.send(event).is_err() || closed {
            return;
        }
    }
}
