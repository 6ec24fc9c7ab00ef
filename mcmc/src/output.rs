//! A run's output folder: one CSV per chain in Stateline's column layout, streamed as the run
//! goes, and truncated back to a checkpoint's lengths on resume.
//!
//! Columns: one per dimension (named by the config's `names`, else `x0`, `x1`, …), then `energy`, `sigma`, `beta`, `accepted`
//! (0/1) and `swap_type` (0 no attempt, 1 accepted, 2 rejected), with a header row.
//! Numbers are written in their shortest round-trip form (`ryu`, several times faster than
//! `format!` at this), so they read back to the exact binary values and two runs that computed
//! the same values write the same bytes.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ganger_core::mcmc::config::RESERVED_NAMES;
use ganger_core::mcmc::sampler::Row;

pub use self::read::{
    for_each_row, read_chain, read_chain_head, read_columns, read_states, ChainColumns, ChainHead,
};
pub use self::writer::ChainWriter;

mod read;
#[cfg(test)]
mod tests;
mod writer;

/// An I/O failure, with the file it concerns.
#[derive(Debug)]
pub struct OutputError {
    /// The file or folder.
    pub path: PathBuf,
    /// What went wrong.
    pub source: std::io::Error,
}

impl std::fmt::Display for OutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

/// The message already says what `source` says, so it is not offered again as a cause: an
/// error chain printed whole (anyhow's `{:#}`) would repeat it.
impl std::error::Error for OutputError {}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError + '_ {
    move |source| OutputError {
        path: path.to_owned(),
        source,
    }
}

/// The open chain files of a run.
pub struct ChainFiles {
    paths: Vec<PathBuf>,
    writers: Vec<BufWriter<File>>,
    line: Vec<u8>,
    floats: ryu::Buffer,
}

impl std::fmt::Debug for ChainFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainFiles")
            .field("paths", &self.paths)
            .finish()
    }
}

impl ChainFiles {
    /// The file of chain `chain` in `dir`.
    pub fn path(dir: &Path, chain: usize) -> PathBuf {
        dir.join(format!("{chain}.csv"))
    }

    /// Creates `dir` if needed and a fresh file with a header per chain, whose first columns
    /// are `names` (one per dimension; see [`McmcConfig::dim_names`]).
    ///
    /// [`McmcConfig::dim_names`]: ganger_core::mcmc::config::McmcConfig::dim_names
    pub fn create(
        dir: &Path,
        n_chains: usize,
        names: &[String],
    ) -> Result<ChainFiles, OutputError> {
        create_output_dir(dir)?;
        let mut header: String = names.iter().map(|name| format!("{name},")).collect();
        header.push_str(&RESERVED_NAMES.join(","));
        header.push('\n');
        let mut files = ChainFiles {
            paths: Vec::with_capacity(n_chains),
            writers: Vec::with_capacity(n_chains),
            line: Vec::new(),
            floats: ryu::Buffer::new(),
        };
        for chain in 0..n_chains {
            let path = Self::path(dir, chain);
            let mut file = File::create(&path).map_err(at(&path))?;
            file.write_all(header.as_bytes()).map_err(at(&path))?;
            files.writers.push(BufWriter::with_capacity(1 << 16, file));
            files.paths.push(path);
        }
        Ok(files)
    }

    /// Reopens the chain files of an interrupted run, cut back to the lengths a checkpoint
    /// recorded (rows written after it would otherwise appear twice).
    pub fn resume(dir: &Path, lengths: &[u64]) -> Result<ChainFiles, OutputError> {
        let mut files = ChainFiles {
            paths: Vec::with_capacity(lengths.len()),
            writers: Vec::with_capacity(lengths.len()),
            line: Vec::new(),
            floats: ryu::Buffer::new(),
        };
        for (chain, &length) in lengths.iter().enumerate() {
            let path = Self::path(dir, chain);
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(at(&path))?;
            let actual = file.metadata().map_err(at(&path))?.len();
            if actual < length {
                return Err(OutputError {
                    path,
                    source: std::io::Error::other(format!(
                        "holds {actual} bytes but the checkpoint recorded {length}: it was changed after the checkpoint"
                    )),
                });
            }
            file.set_len(length).map_err(at(&path))?;
            let mut writer = BufWriter::with_capacity(1 << 16, file);
            use std::io::Seek;
            writer.seek(std::io::SeekFrom::End(0)).map_err(at(&path))?;
            files.writers.push(writer);
            files.paths.push(path);
        }
        Ok(files)
    }

    /// Appends one step's rows.
    pub fn write(&mut self, rows: &[Row]) -> Result<(), OutputError> {
        for row in rows {
            self.line.clear();
            for &x in row
                .state
                .iter()
                .chain([row.energy, row.sigma, row.beta].iter())
            {
                self.line
                    .extend_from_slice(self.floats.format(x).as_bytes());
                self.line.push(b',');
            }
            self.line.extend_from_slice(&[
                b'0' + u8::from(row.accepted),
                b',',
                b'0' + row.swap_type as u8,
                b'\n',
            ]);
            let path = &self.paths[row.chain];
            self.writers[row.chain]
                .write_all(&self.line)
                .map_err(at(path))?;
        }
        Ok(())
    }

    /// Flushes every file to the kernel and returns their lengths.
    pub fn flush(&mut self) -> Result<Vec<u64>, OutputError> {
        let mut lengths = Vec::with_capacity(self.writers.len());
        for (writer, path) in self.writers.iter_mut().zip(&self.paths) {
            writer.flush().map_err(at(path))?;
            lengths.push(writer.get_ref().metadata().map_err(at(path))?.len());
        }
        Ok(lengths)
    }

    /// Flushes and fsyncs every file, so a checkpoint never points past what is on disk.
    pub fn sync(&mut self) -> Result<Vec<u64>, OutputError> {
        let lengths = self.flush()?;
        for (writer, path) in self.writers.iter_mut().zip(&self.paths) {
            writer.get_ref().sync_data().map_err(at(path))?;
        }
        Ok(lengths)
    }
}

/// Creates the output folder, saying so when that is what failed: `File exists` alone does not
/// tell that a file stands where the folder should be.
pub fn create_output_dir(dir: &Path) -> Result<(), OutputError> {
    let failed = |e: std::io::Error| OutputError {
        path: dir.to_owned(),
        source: std::io::Error::new(e.kind(), format!("cannot create the output folder: {e}")),
    };
    if std::fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
        return Err(failed(std::io::Error::other(
            "a file of that name is in the way",
        )));
    }
    std::fs::create_dir_all(dir).map_err(failed)
}

/// Writes `bytes` to `path` through `path` + `.tmp`: written, synced, renamed into place, and
/// the folder synced, so that a crash at any moment leaves the old file or the new one, never
/// a part of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    let temporary = PathBuf::from(name);
    File::create(&temporary)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .map_err(at(&temporary))?;
    std::fs::rename(&temporary, path).map_err(at(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Fsyncs a folder, so that the files created or renamed in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<(), OutputError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}
