//! The journal of a `run` whose output is a file: completed results, fsynced in groups, so that
//! a delegator restarted with `--resume` evaluates only what is missing and the output holds
//! each result once.
//!
//! Files, for `--output OUT`:
//! - `OUT.run.json`: which run this is (task, input count, SHA-256 of the inputs), written
//!   atomically before any work is submitted; `--resume` refuses a journal of another run.
//! - the journal proper: `OUT` itself in completion order, or `OUT.journal` with `--ordered`
//!   (whose `OUT` is written in input order at the end, through a temporary file and a rename).
//!
//! Result lines are appended and fsynced at least every [`SYNC_EVERY`] and at the end.
//! A crash loses at most the unsynced tail, which a resumed run recomputes; a torn last line is
//! cut off before appending.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use ganger_cluster::lock::{lock_path_beside, OutputLock};
use ganger_core::payload::Payload;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::info;

/// Results are fsynced at least this often while a run goes on (and always at its end).
pub(crate) const SYNC_EVERY: Duration = Duration::from_secs(1);

/// What the `.run.json` sidecar says: the run a journal belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunIdentity {
    /// The task evaluated.
    pub task: String,
    /// How many inputs the run has.
    pub inputs: u64,
    /// SHA-256 of the inputs' payloads, each prefixed with its length, in hexadecimal.
    pub inputs_sha256: String,
}

impl RunIdentity {
    /// The identity of a run of `task` over `payloads`.
    pub fn of(task: &str, payloads: &[Payload]) -> RunIdentity {
        let mut hasher = Sha256::new();
        for payload in payloads {
            hasher.update((payload.len() as u64).to_le_bytes());
            hasher.update(payload);
        }
        let digest = hasher.finalize();
        RunIdentity {
            task: task.to_owned(),
            inputs: payloads.len() as u64,
            inputs_sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// The results a previous attempt of this run left, by input index.
#[derive(Debug, Default)]
pub(crate) struct Done {
    /// Whether each input has a result.
    pub has: Vec<bool>,
    /// With `--ordered`, the result line of each input already done (without its newline);
    /// empty otherwise (those lines are in the output already).
    pub lines: Vec<Option<String>>,
    /// How many inputs are done.
    pub count: u64,
    /// How many of the done inputs failed.
    pub failed: u64,
}

impl Done {
    fn new(n_inputs: u64, keep_lines: bool) -> Done {
        Done {
            has: vec![false; n_inputs as usize],
            lines: if keep_lines {
                vec![None; n_inputs as usize]
            } else {
                Vec::new()
            },
            count: 0,
            failed: 0,
        }
    }
}

/// An open journal: result lines go in, fsynced in groups.
#[derive(Debug)]
pub(crate) struct Journal {
    /// Held while the run writes: one run per output.
    _lock: OutputLock,
    output: PathBuf,
    /// The file appended to: the output itself, or `OUT.journal` when ordered.
    path: PathBuf,
    writer: BufWriter<File>,
    ordered: bool,
    last_sync: Instant,
    unsynced: bool,
}

/// The sidecar naming the run an output belongs to.
pub(crate) fn identity_path(output: &Path) -> PathBuf {
    with_suffix(output, ".run.json")
}

/// The file completed results are appended to.
pub(crate) fn journal_path(output: &Path, ordered: bool) -> PathBuf {
    if ordered {
        with_suffix(output, ".journal")
    } else {
        output.to_owned()
    }
}

impl Journal {
    /// Opens the journal of the run `identity` writing to `output`, before any work is
    /// submitted (so that an unwritable path is an error at once). With `resume`, reads what a
    /// previous attempt completed (a torn last line is cut off); otherwise, or when there is no
    /// previous attempt, starts empty.
    ///
    /// Takes the output's lock first (a second run on it fails at once), and refuses an output
    /// that already holds results unless `resume` or `overwrite`.
    pub fn open(
        output: &Path,
        ordered: bool,
        identity: &RunIdentity,
        resume: bool,
        overwrite: bool,
    ) -> anyhow::Result<(Journal, Done)> {
        if let Some(dir) = parent(output) {
            if std::fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
                bail!(
                    "cannot create the folder {}: a file of that name is in the way",
                    dir.display()
                );
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the folder {}", dir.display()))?;
        }
        let lock = OutputLock::acquire(output, &lock_path_beside(output))?;
        let path = journal_path(output, ordered);
        let sidecar = identity_path(output);
        if !resume && !overwrite {
            for existing in [output, path.as_path()] {
                if std::fs::metadata(existing).is_ok_and(|m| m.len() > 0) {
                    bail!(
                        "{} already holds results; continue that run with --resume, or replace them with --overwrite",
                        existing.display()
                    );
                }
            }
        }
        let previous = if resume {
            read_previous(output, ordered, identity)?
        } else {
            None
        };
        let (file, done) = match previous {
            Some((source, done, valid_length)) => {
                info!(
                    done = done.count,
                    total = identity.inputs,
                    journal = %source.display(),
                    "resuming: {} of {} results already written",
                    done.count,
                    identity.inputs
                );
                let file = if source == path {
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .with_context(|| format!("cannot open {}", path.display()))?;
                    // Cut a torn last line so that appended lines start on a line of their own.
                    file.set_len(valid_length)
                        .with_context(|| format!("cannot truncate {}", path.display()))?;
                    file
                } else {
                    // An ordered run that had finished: its output holds everything, and the
                    // journal starts empty beside it.
                    create(&path)?
                };
                (file, done)
            }
            None => {
                if resume {
                    info!(
                        "no previous results for {}: starting from the beginning",
                        output.display()
                    );
                }
                // A stale ordered output would pass for this run's once the sidecar is written.
                if ordered {
                    remove_if_present(output)?;
                }
                let file = create(&path)?;
                sync_folder(&path)?;
                write_atomically(&sidecar, &serde_json::to_vec_pretty(identity)?)?;
                (file, Done::new(identity.inputs, ordered))
            }
        };
        let mut writer = BufWriter::with_capacity(1 << 16, file);
        use std::io::Seek;
        writer
            .seek(std::io::SeekFrom::End(0))
            .with_context(|| format!("cannot write {}", path.display()))?;
        let journal = Journal {
            _lock: lock,
            output: output.to_owned(),
            path,
            writer,
            ordered,
            last_sync: Instant::now(),
            unsynced: false,
        };
        Ok((journal, done))
    }

    /// Appends one result line (without its newline).
    pub fn append(&mut self, line: &str) -> anyhow::Result<()> {
        self.writer
            .write_all(line.as_bytes())
            .and_then(|()| self.writer.write_all(b"\n"))
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.unsynced = true;
        Ok(())
    }

    /// Fsyncs what was appended if the last sync is [`SYNC_EVERY`] old.
    pub fn sync_if_due(&mut self) -> anyhow::Result<()> {
        if self.unsynced && self.last_sync.elapsed() >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    /// Flushes and fsyncs everything appended so far.
    pub fn sync(&mut self) -> anyhow::Result<()> {
        self.writer
            .flush()
            .and_then(|()| self.writer.get_ref().sync_data())
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.last_sync = Instant::now();
        self.unsynced = false;
        Ok(())
    }

    /// Ends a finished run: syncs, and for an ordered run writes the output in input order
    /// (`lines[i]` is input i's result line) and removes the journal.
    pub fn finish(mut self, lines: &[Option<String>]) -> anyhow::Result<()> {
        self.sync()?;
        if !self.ordered {
            return Ok(());
        }
        let mut text = String::new();
        for line in lines.iter().flatten() {
            text.push_str(line);
            text.push('\n');
        }
        write_atomically(&self.output, text.as_bytes())?;
        drop(self.writer);
        std::fs::remove_file(&self.path)
            .with_context(|| format!("cannot remove {}", self.path.display()))?;
        sync_folder(&self.path)
    }
}

/// What a previous attempt left: the file its results are in, the results, and the length of
/// that file's whole lines. `None` if there was no previous attempt.
fn read_previous(
    output: &Path,
    ordered: bool,
    identity: &RunIdentity,
) -> anyhow::Result<Option<(PathBuf, Done, u64)>> {
    let sidecar = identity_path(output);
    let journal = journal_path(output, ordered);
    // An ordered run that finished has no journal left but its whole output.
    let source = if ordered && !journal.exists() && output.exists() {
        output.to_owned()
    } else {
        journal
    };
    let recorded = match std::fs::read(&sidecar) {
        Ok(bytes) => serde_json::from_slice::<RunIdentity>(&bytes)
            .with_context(|| format!("cannot resume: {} is unreadable", sidecar.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::metadata(&source).is_ok_and(|m| m.len() > 0) {
                bail!(
                    "cannot resume: {} exists but {} does not, so it cannot be told to be this run's; replace it with --overwrite instead of --resume, or remove it",
                    source.display(),
                    sidecar.display()
                );
            }
            return Ok(None);
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {}", sidecar.display()));
        }
    };
    if &recorded != identity {
        bail!(
            "cannot resume: {} belongs to another run (task {}, {} inputs, SHA-256 {}), not this one (task {}, {} inputs, SHA-256 {}); run with --overwrite to replace it and {}, or give that run's task and inputs",
            sidecar.display(),
            recorded.task,
            recorded.inputs,
            recorded.inputs_sha256,
            identity.task,
            identity.inputs,
            identity.inputs_sha256,
            source.display()
        );
    }
    let bytes = match std::fs::read(&source) {
        Ok(bytes) => bytes,
        // Killed between writing the sidecar and the first result.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", source.display())),
    };
    let (done, valid_length) = parse_results(&bytes, identity.inputs, ordered, &source)?;
    Ok(Some((source, done, valid_length)))
}

/// Reads result lines; returns them and the byte length of the lines kept. The last line is
/// dropped if it is cut off or unreadable (what a crash mid-write leaves); any other bad line
/// is an error naming it.
fn parse_results(
    bytes: &[u8],
    n_inputs: u64,
    keep_lines: bool,
    path: &Path,
) -> anyhow::Result<(Done, u64)> {
    let mut done = Done::new(n_inputs, keep_lines);
    let mut offset = 0usize;
    let mut line_number = 0usize;
    while offset < bytes.len() {
        line_number += 1;
        let end = bytes[offset..].iter().position(|&b| b == b'\n');
        let (line, next) = match end {
            Some(end) => (&bytes[offset..offset + end], offset + end + 1),
            None => (&bytes[offset..], bytes.len()),
        };
        let is_last = next >= bytes.len();
        match parse_line(line, n_inputs) {
            Ok(_) if end.is_none() => break,
            Ok((index, failed)) => {
                if std::mem::replace(&mut done.has[index], true) {
                    bail!(
                        "{}:{line_number}: index {index} appears a second time",
                        path.display()
                    );
                }
                if keep_lines {
                    done.lines[index] = Some(String::from_utf8_lossy(line).into_owned());
                }
                done.count += 1;
                done.failed += u64::from(failed);
            }
            Err(_) if is_last => break,
            Err(reason) => bail!("{}:{line_number}: {reason}", path.display()),
        }
        offset = next;
    }
    Ok((done, offset as u64))
}

/// A result line's index and whether it is a failure.
fn parse_line(line: &[u8], n_inputs: u64) -> Result<(usize, bool), String> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("not a result line: {e}"))?;
    let index = value
        .get("index")
        .and_then(serde_json::Value::as_u64)
        .ok_or("a result line without an index")?;
    if index >= n_inputs {
        return Err(format!("index {index} is beyond the {n_inputs} inputs"));
    }
    let failed = value.get("error").is_some();
    if !failed && value.get("output").is_none() {
        return Err("a result line with neither output nor error".into());
    }
    Ok((index as usize, failed))
}

fn create(path: &Path) -> anyhow::Result<File> {
    File::create(path).with_context(|| format!("cannot create {}", path.display()))
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Writes `bytes` to a temporary file beside `path`, fsyncs it, renames it into place and
/// fsyncs the folder: a crash leaves the old file or the new one, never a part.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = with_suffix(path, ".tmp");
    let mut file = create(&temporary)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| {
        format!(
            "cannot rename {} to {}",
            temporary.display(),
            path.display()
        )
    })?;
    sync_folder(path)
}

/// Fsyncs the folder holding `path`, so that a file created or renamed there survives a crash.
fn sync_folder(path: &Path) -> anyhow::Result<()> {
    let dir = parent(path).unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("cannot sync the folder {}", dir.display()))
}

fn parent(path: &Path) -> Option<&Path> {
    path.parent().filter(|d| !d.as_os_str().is_empty())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> PathBuf {
        PathBuf::from("results.jsonl")
    }

    #[test]
    fn a_torn_or_unreadable_last_line_is_dropped_and_the_rest_kept() {
        let text =
            b"{\"index\":1,\"output\":1}\n{\"index\":0,\"error\":\"boom\"}\n{\"index\":2,\"out";
        let (done, length) = parse_results(text, 3, true, &path()).unwrap();
        assert_eq!((done.count, done.failed), (2, 1));
        assert_eq!(done.has, [true, true, false]);
        assert!(done.lines[0].is_some() && done.lines[1].is_some() && done.lines[2].is_none());
        assert_eq!(length as usize, text.len() - b"{\"index\":2,\"out".len());
        // A whole last line without its newline is still cut: the next append must start a line.
        let (done, length) =
            parse_results(b"{\"index\":0,\"output\":0}", 1, true, &path()).unwrap();
        assert_eq!((done.count, length), (0, 0));
        // Zeros where an unsynced tail was (as some file systems leave after a power cut).
        let (done, _) =
            parse_results(b"{\"index\":0,\"output\":0}\n\0\0\0\n", 2, false, &path()).unwrap();
        assert_eq!(done.count, 1);
    }

    #[test]
    fn a_bad_line_before_the_end_or_a_repeated_index_is_an_error_naming_the_line() {
        let message = parse_results(
            b"{\"index\":0,\"output\":0}\noops\n{\"index\":1,\"output\":1}\n",
            2,
            false,
            &path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            message.starts_with("results.jsonl:2: not a result line"),
            "{message}"
        );
        let message = parse_results(
            b"{\"index\":0,\"output\":0}\n{\"index\":0,\"output\":0}\n{\"index\":1,\"output\":1}\n",
            2,
            false,
            &path(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(message, "results.jsonl:2: index 0 appears a second time");
        let message = parse_results(
            b"{\"index\":5,\"output\":0}\n{\"index\":1,\"output\":1}\n",
            2,
            false,
            &path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            message.contains(":1: index 5 is beyond the 2 inputs"),
            "{message}"
        );
    }

    #[test]
    fn the_identity_tells_inputs_apart_even_when_their_bytes_concatenate_alike() {
        let a = RunIdentity::of("square", &[b"12".to_vec().into(), b"3".to_vec().into()]);
        let b = RunIdentity::of("square", &[b"1".to_vec().into(), b"23".to_vec().into()]);
        assert_ne!(a.inputs_sha256, b.inputs_sha256);
        assert_eq!(
            a,
            RunIdentity::of("square", &[b"12".to_vec().into(), b"3".to_vec().into()])
        );
        assert_eq!(a.inputs_sha256.len(), 64);
    }
}
