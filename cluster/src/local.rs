//! Local worker processes: the embedded default, where the delegator starts its own workers.
//!
//! Each is a real `ganger-worker` process connected over loopback, so it behaves exactly like a
//! remote one (and can be killed like one). The children die with the delegator: they get
//! SIGTERM when [`LocalWorkers`] is dropped, and the kernel sends them SIGTERM if the delegator
//! dies first (Linux parent-death signal).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where to find the worker binary and how to start each copy.
#[derive(Debug, Clone)]
pub struct LocalWorkerSpec {
    /// The `ganger-worker` executable.
    pub program: PathBuf,
    /// Endpoint the workers connect to.
    pub connect: String,
    /// Threads per worker.
    pub threads: usize,
    /// Extra arguments for each worker.
    pub extra_args: Vec<String>,
    /// The cluster secret, passed in each worker's environment (`GANGER_SECRET`), never on its
    /// command line (which any local user can read).
    pub secret: Option<ganger_core::protocol::secure::Secret>,
    /// The CPUs each worker may use from its start; default the spawning thread's (which, if
    /// that thread is pinned, would pin the whole worker).
    pub cpus: Option<Vec<usize>>,
    /// The workers' log filter (`GANGER_LOG`); default this process's environment's.
    pub log_filter: Option<String>,
}

/// Running local worker processes; dropping this stops them.
#[derive(Debug)]
pub struct LocalWorkers {
    children: Vec<Child>,
}

impl LocalWorkers {
    /// Starts `n` workers.
    pub fn spawn(n: usize, spec: &LocalWorkerSpec) -> std::io::Result<LocalWorkers> {
        let mut workers = LocalWorkers {
            children: Vec::with_capacity(n),
        };
        for i in 0..n {
            let mut command = Command::new(&spec.program);
            command
                .arg("--connect")
                .arg(&spec.connect)
                .arg("--threads")
                .arg(spec.threads.to_string())
                .arg("--name")
                .arg(format!("local-{i}"))
                .args(&spec.extra_args)
                // A status file names one worker; several sharing the delegator's would
                // overwrite each other's and could make a delegator container's health check
                // judge its local workers instead of the delegator (the image sets this variable
                // for worker containers).
                .env_remove("GANGER_STATUS_FILE")
                // The worker takes its secret one way only: the one given here.
                .env_remove("GANGER_SECRET_FILE")
                .env_remove("GANGER_SECRET")
                .stdin(Stdio::null());
            if let Some(filter) = &spec.log_filter {
                command.env("GANGER_LOG", filter);
            }
            if let Some(secret) = &spec.secret {
                use std::os::unix::ffi::OsStrExt as _;
                command.env(
                    "GANGER_SECRET",
                    std::ffi::OsStr::from_bytes(secret.expose()),
                );
            }
            prepare_child(&mut command, spec.cpus.as_deref())?;
            workers.children.push(command.spawn()?);
        }
        Ok(workers)
    }

    /// Process ids of the workers, in start order.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Asks every worker to stop (SIGTERM) and waits up to `grace` before killing the rest.
    pub fn stop(&mut self, grace: Duration) {
        for child in &self.children {
            terminate(child.id());
        }
        let deadline = Instant::now() + grace;
        for child in &mut self.children {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
        self.children.clear();
    }
}

impl Drop for LocalWorkers {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Finds `ganger-worker`: next to the running executable first (an installed pair, or cargo's
/// target directory), then on `PATH`.
pub fn find_worker_binary() -> Option<PathBuf> {
    let name = "ganger-worker";
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)));
    if let Some(path) = beside.filter(|p| p.is_file()) {
        return Some(path);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| is_executable(p))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn terminate(pid: u32) {
    // SAFETY: kill(2) with a pid we spawned and a valid signal number has no memory effects.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

/// In the child, before it runs the worker: it dies with this thread's process (SIGTERM), and
/// may use `cpus` if given.
#[cfg(target_os = "linux")]
fn prepare_child(command: &mut Command, cpus: Option<&[usize]>) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    // Built here: between fork and exec only async-signal-safe calls are allowed.
    let set = match cpus {
        None => None,
        Some(cpus) => {
            // SAFETY: a zeroed cpu_set_t is a valid empty set; each CPU is checked below
            // CPU_SETSIZE before it is set.
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            for &cpu in cpus {
                if cpu >= libc::CPU_SETSIZE as usize {
                    return Err(std::io::ErrorKind::InvalidInput.into());
                }
                unsafe { libc::CPU_SET(cpu, &mut set) };
            }
            Some(set)
        }
    };
    // SAFETY: prctl and sched_setaffinity are system calls, async-signal-safe, which is all
    // pre_exec requires; `set` is a plain value owned by the closure.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(set) = &set {
                // Failing, the worker keeps the spawning thread's CPUs: slower, not wrong.
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set);
            }
            Ok(())
        });
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn prepare_child(_command: &mut Command, _cpus: Option<&[usize]>) -> std::io::Result<()> {
    Ok(())
}
