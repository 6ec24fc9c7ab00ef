//! Keeping a process's messaging threads on one CPU.
//!
//! A cheap unit's round trip is a chain of thread wake-ups: the application's thread and
//! libzmq's I/O thread on each side, over loopback between local processes. When the woken
//! thread last ran on another CPU that has gone idle, waking it means waking that CPU first,
//! which on a virtual machine costs tens of microseconds; a round trip crosses six such
//! wake-ups. Threads that only hand messages to each other lose nothing by sharing one CPU,
//! and then every wake-up is a switch on a CPU already awake (the MCMC demo with 2 local
//! workers: 1.5 × faster, `benches/RESULTS.md`). Evaluation stays on threads that are not
//! pinned (the worker's pool), so expensive units still spread over every CPU.
//!
//! Linux only (`sched_setaffinity` on a thread id); elsewhere pinning reports
//! [`std::io::ErrorKind::Unsupported`] and changes nothing.

/// The name prefix libzmq gives its I/O and reaper threads (`ZMQbg/IO/0`, `ZMQbg/Reaper`).
pub const LIBZMQ_THREADS: &str = "ZMQbg/";

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

/// Pins the calling thread, and every thread of this process whose name starts with one of
/// `prefixes`, to `cpu`; returns how many threads were pinned. A thread that ends meanwhile
/// is skipped.
pub fn pin_messaging(cpu: usize, prefixes: &[&str]) -> std::io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        let mut pinned = 0;
        pin(0, cpu)?;
        pinned += 1;
        // SAFETY: no arguments.
        let me = unsafe { libc::gettid() };
        for entry in std::fs::read_dir("/proc/self/task")? {
            let entry = entry?;
            let Some(tid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if tid == me {
                continue;
            }
            let Ok(name) = std::fs::read_to_string(entry.path().join("comm")) else {
                continue;
            };
            if prefixes.iter().any(|p| name.trim_end().starts_with(p)) && pin(tid, cpu).is_ok() {
                pinned += 1;
            }
        }
        Ok(pinned)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (cpu, prefixes);
        Err(std::io::ErrorKind::Unsupported.into())
    }
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
fn pin(tid: i32, cpu: usize) -> std::io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::ErrorKind::InvalidInput.into());
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; `cpu` is below CPU_SETSIZE; the size
    // passed is the set's own.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
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

    /// libzmq's threads carry their names (the build defines `ZMQ_HAVE_PTHREAD_SETNAME_2`),
    /// and pinning moves them and the caller, and no other thread.
    #[test]
    fn pins_the_caller_and_libzmqs_threads_only() {
        let before = allowed_cpus(0).unwrap();
        let cpu = *before.last().unwrap();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let bystander = std::thread::Builder::new()
            .name("bystander".into())
            .spawn(move || {
                // SAFETY: no arguments.
                tid_tx.send(unsafe { libc::gettid() }).unwrap();
                std::thread::park();
            })
            .unwrap();
        let bystander_tid = tid_rx.recv().unwrap();
        let context = zmq::Context::new();
        let socket = context.socket(zmq::DEALER).unwrap();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let pinned = pin_messaging(cpu, &[LIBZMQ_THREADS]).unwrap();
                    // This thread, the I/O thread and the reaper.
                    assert!(
                        pinned >= 3,
                        "pinned {pinned} threads: libzmq's are unnamed?"
                    );
                    assert_eq!(allowed_cpus(0).unwrap(), vec![cpu]);
                    assert_eq!(current_cpu(), Some(cpu));
                })
                .join()
                .unwrap();
        });
        assert_eq!(allowed_cpus(bystander_tid).unwrap(), before);
        assert_eq!(allowed_cpus(0).unwrap(), before);
        bystander.thread().unpark();
        bystander.join().unwrap();
        drop(socket);
    }
}
