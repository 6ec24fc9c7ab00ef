//! One delegator per output: an exclusive advisory lock held for as long as a run writes.
//!
//! The lock is `flock(2)` on a small file beside the output (`out.jsonl.lock` for a results file,
//! `.ganger.lock` inside an MCMC output folder) that says who holds it. The kernel drops the lock
//! when its holder exits, however it exits, so a killed run never leaves a stale lock; the file
//! itself stays (an unheld lock file means nothing). Advisory: it keeps out other ganger runs,
//! which all take it, not other programs.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

/// Why an output could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run holds the lock: it writes to the same output now.
    #[error(
        "{output} is being written by another run ({holder}); wait for it to finish or choose another output (lock: {lock})",
        output = .output.display(),
        lock = .lock.display()
    )]
    Held {
        /// The output that is locked.
        output: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// What the lock file says about its holder, or "holder unknown".
        holder: String,
    },
    /// The lock file could not be created, locked or written.
    #[error("cannot lock {output} through {lock}: {source}", output = .output.display(), lock = .lock.display())]
    Io {
        /// The output to be locked.
        output: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// An exclusive lock on an output, released when dropped (or when the process exits).
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
    _file: File,
}

impl OutputLock {
    /// Locks `output` through the lock file `lock`, or fails at once if another run holds it.
    pub fn acquire(output: &Path, lock: &Path) -> Result<OutputLock, LockError> {
        let io = |source| LockError::Io {
            output: output.to_owned(),
            lock: lock.to_owned(),
            source,
        };
        use std::os::unix::fs::OpenOptionsExt as _;
        // Never through a symbolic link: locking writes the file, and a planted link would
        // have it write whatever it points to.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .open(lock)
            .map_err(io)?;
        if !file.metadata().map_err(io)?.is_file() {
            return Err(io(std::io::Error::other("not a regular file")));
        }
        // SAFETY: flock(2) on a descriptor this function owns; no memory is shared.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io(error));
            }
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(LockError::Held {
                output: output.to_owned(),
                lock: lock.to_owned(),
                holder: if holder.is_empty() {
                    "holder unknown".to_owned()
                } else {
                    holder.to_owned()
                },
            });
        }
        let holder = format!(
            "pid {} on {}, since {} (Unix seconds)",
            std::process::id(),
            host_name(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        );
        // Written over the old text, then cut to length: never empty to a reader.
        file.rewind().map_err(io)?;
        file.write_all(holder.as_bytes()).map_err(io)?;
        file.set_len(holder.len() as u64).map_err(io)?;
        Ok(OutputLock {
            path: lock.to_owned(),
            _file: file,
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The lock file of a results file: `out.jsonl` → `out.jsonl.lock`.
pub fn lock_path_beside(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    output.with_file_name(name)
}

/// This machine's name, for telling a lock's holder apart from a run on another machine
/// writing to a shared folder.
fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname(2) writes at most `len` bytes into the buffer we own.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if result != 0 {
        return "an unknown host".to_owned();
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ganger-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_second_lock_fails_naming_the_holder_until_the_first_is_dropped() {
        let dir = dir("twice");
        let output = dir.join("out.jsonl");
        let lock = lock_path_beside(&output);
        assert_eq!(lock, dir.join("out.jsonl.lock"));
        let first = OutputLock::acquire(&output, &lock).expect("the first lock");
        // flock locks belong to open file descriptions: a second open in this process conflicts.
        let error = OutputLock::acquire(&output, &lock).expect_err("the second lock fails");
        let text = error.to_string();
        assert!(
            text.contains("out.jsonl is being written by another run"),
            "{text}"
        );
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        OutputLock::acquire(&output, &lock).expect("free again once the first is dropped");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lock_file_that_is_a_symbolic_link_is_refused_and_its_target_untouched() {
        let dir = dir("symlink");
        let output = dir.join("out.jsonl");
        let precious = dir.join("precious.txt");
        std::fs::write(&precious, "keep me").unwrap();
        std::os::unix::fs::symlink(&precious, lock_path_beside(&output)).unwrap();
        let error = OutputLock::acquire(&output, &lock_path_beside(&output))
            .expect_err("a link is refused");
        assert!(matches!(error, LockError::Io { .. }), "{error}");
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
