//! Keeping a process's messaging threads on one CPU.
//!
//! A cheap unit's round trip is a chain of thread wake-ups: the application's thread and
//! libzmq's I/O thread on each side, over loopback between local processes. When the woken
//! thread last ran on another CPU that has gone idle, waking it means waking that CPU first,
//! which on a virtual machine costs tens of microseconds; a round trip crosses six such
//! wake-ups. Threads that only hand messages to each other lose nothing by sharing one CPU,
//! and then every wake-up is a switch on a CPU already awake (the MCMC demo with 2 local
//! workers: 1.5 × faster, `benches/RESULTS.md`).
//!
//! A thread starts with its creator's CPUs, so the way to pin a loop and libzmq's threads is
//! to pin the loop's thread before it creates its ZeroMQ context ([`pin_current`]): libzmq
//! starts its I/O and reaper threads with the first socket, pinned from birth. Whatever should
//! stay free (an evaluation pool, child processes) is started with the CPUs [`pin_current`]
//! returned ([`set_current`] in a pool's start handler, [`with_cpus`] for a spawn).
//!
//! Linux only (`sched_setaffinity`); elsewhere these report
//! [`std::io::ErrorKind::Unsupported`] and change nothing.

/// The CPU the calling thread is running on, if the system says.
pub fn current_cpu() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: no arguments; returns -1 on failure.
        let cpu = unsafe { libc::sched_getcpu() };
        usize::try_from(cpu).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Pins the calling thread to `cpu`; returns the CPUs it could use before, for what must
/// stay free. Threads it starts from now on inherit the pin.
pub fn pin_current(cpu: usize) -> std::io::Result<Vec<usize>> {
    let before = allowed_cpus(0)?;
    set_current(&[cpu])?;
    Ok(before)
}

/// Lets the calling thread run on `cpus` (and only those).
pub fn set_current(cpus: &[usize]) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        set(0, cpus)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpus;
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

/// Runs `f` on a thread of its own that may use `cpus`: for starting threads or processes
/// from a pinned thread that must not inherit its pin.
pub fn with_cpus<T: Send>(cpus: &[usize], f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // Failing, the thread keeps its creator's CPUs: slower at worst.
                let _ = set_current(cpus);
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The CPUs thread `tid` (0: the calling thread) may run on.
pub fn allowed_cpus(tid: i32) -> std::io::Result<Vec<usize>> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; the size passed is its own.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set)
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            // SAFETY: `cpu` is below CPU_SETSIZE.
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = tid;
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

#[cfg(target_os = "linux")]
fn set(tid: i32, cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; every CPU set is below CPU_SETSIZE;
    // the size passed is the set's own.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            if cpu >= libc::CPU_SETSIZE as usize {
                return Err(std::io::ErrorKind::InvalidInput.into());
            }
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The thread id, by system call (glibc's `gettid` wrapper needs glibc 2.30).
    fn tid() -> i32 {
        // SAFETY: no arguments.
        unsafe { libc::syscall(libc::SYS_gettid) as i32 }
    }

    /// This process's threads named `prefix…`, with the CPUs each may use.
    fn named(prefix: &str) -> Vec<(String, Vec<usize>)> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter_map(|task| {
                let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
                let tid: i32 = task.file_name().to_str()?.parse().ok()?;
                let name = name.trim().to_owned();
                name.starts_with(prefix)
                    .then(|| allowed_cpus(tid).ok().map(|cpus| (name, cpus)))
                    .flatten()
            })
            .collect()
    }

    /// A context created on a pinned thread starts libzmq's threads pinned (they are named
    /// `ZMQbg/…`, the build defines `ZMQ_HAVE_PTHREAD_SETNAME_2`); threads started through
    /// `with_cpus` and threads started before are free.
    #[test]
    fn libzmqs_threads_inherit_the_pin_and_nothing_else_does() {
        let free = allowed_cpus(0).unwrap();
        let cpu = *free.last().unwrap();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let bystander = std::thread::spawn(move || {
            tid_tx.send(tid()).unwrap();
            let _ = stop_rx.recv();
        });
        let bystander_tid = tid_rx.recv().unwrap();
        std::thread::Builder::new()
            .name("pinned-loop".into())
            .spawn(move || {
                let before = pin_current(cpu).unwrap();
                assert_eq!(before, free);
                assert_eq!(allowed_cpus(0).unwrap(), vec![cpu]);
                assert_eq!(current_cpu(), Some(cpu));
                let context = zmq::Context::new();
                let socket = context.socket(zmq::DEALER).unwrap();
                // libzmq's threads name themselves once running: wait for two of them on
                // `cpu` (other tests' contexts in this process may add free ones).
                let limit = std::time::Instant::now() + std::time::Duration::from_secs(10);
                loop {
                    let threads = named("ZMQbg/");
                    if threads
                        .iter()
                        .filter(|(_, cpus)| *cpus == vec![cpu])
                        .count()
                        >= 2
                    {
                        break;
                    }
                    assert!(
                        std::time::Instant::now() < limit,
                        "libzmq's threads: {threads:?}"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                let spawned = with_cpus(&before, || allowed_cpus(0).unwrap());
                assert_eq!(spawned, before);
                assert_eq!(allowed_cpus(bystander_tid).unwrap(), before);
                drop(socket);
            })
            .unwrap()
            .join()
            .unwrap();
        stop_tx.send(()).unwrap();
        bystander.join().unwrap();
    }
}
