//! A run's output folder: one CSV per chain in Stateline's column layout, streamed as the run
//! goes, and truncated back to a checkpoint's lengths on resume.
//!
//! Columns: one per dimension (`x0`, `x1`, …), then `energy`, `sigma`, `beta`, `accepted`
//! (0/1) and `swap_type` (0 no attempt, 1 accepted, 2 rejected), with a header row.
//! Numbers are written in their shortest round-trip form (`ryu`, several times faster than
//! `format!` at this), so they read back to the exact binary values and two runs that computed
//! the same values write the same bytes.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ganger_core::mcmc::sampler::Row;

/// An I/O failure, with the file it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct OutputError {
    /// The file or folder.
    pub path: PathBuf,
    /// What went wrong.
    pub source: std::io::Error,
}

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

    /// Creates `dir` if needed and a fresh file with a header per chain.
    pub fn create(dir: &Path, n_chains: usize, n_dims: usize) -> Result<ChainFiles, OutputError> {
        std::fs::create_dir_all(dir).map_err(at(dir))?;
        let mut header: String = (0..n_dims).map(|i| format!("x{i},")).collect();
        header.push_str("energy,sigma,beta,accepted,swap_type\n");
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

/// Reads column `columns` (dimensions) of a chain file back, for the summary.
pub fn read_states(path: &Path, n_dims: usize) -> Result<Vec<Vec<f64>>, OutputError> {
    let text = std::fs::read_to_string(path).map_err(at(path))?;
    let mut columns = vec![Vec::new(); n_dims];
    for (number, line) in text.lines().enumerate().skip(1) {
        let mut fields = line.split(',');
        for column in columns.iter_mut() {
            let value = fields
                .next()
                .and_then(|f| f.parse::<f64>().ok())
                .ok_or_else(|| OutputError {
                    path: path.to_owned(),
                    source: std::io::Error::other(format!("line {}: not a sample row", number + 1)),
                })?;
            column.push(value);
        }
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ganger_core::mcmc::sampler::SwapType;

    fn row(chain: usize, x: f64) -> Row {
        Row {
            chain,
            state: vec![x, -x],
            energy: 0.1 + x,
            sigma: 1.0 / 3.0,
            beta: 1.0,
            accepted: true,
            swap_type: SwapType::Reject,
        }
    }

    #[test]
    fn rows_round_trip_exactly_and_resume_cuts_back_to_the_checkpoint() {
        let dir = std::env::temp_dir().join(format!("ganger-output-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut files = ChainFiles::create(&dir, 2, 2).unwrap();
        files.write(&[row(0, 0.1), row(1, 1e-300)]).unwrap();
        let lengths = files.sync().unwrap();
        files.write(&[row(0, 7.0)]).unwrap();
        files.flush().unwrap();
        drop(files);
        let text = std::fs::read_to_string(ChainFiles::path(&dir, 0)).unwrap();
        assert_eq!(
            text,
            "x0,x1,energy,sigma,beta,accepted,swap_type\n\
             0.1,-0.1,0.2,0.3333333333333333,1.0,1,2\n\
             7.0,-7.0,7.1,0.3333333333333333,1.0,1,2\n"
        );
        let mut files = ChainFiles::resume(&dir, &lengths).unwrap();
        files.write(&[row(0, 2.5)]).unwrap();
        files.flush().unwrap();
        let states = read_states(&ChainFiles::path(&dir, 0), 2).unwrap();
        assert_eq!(states, vec![vec![0.1, 2.5], vec![-0.1, -2.5]]);
        let tiny = read_states(&ChainFiles::path(&dir, 1), 2).unwrap();
        assert_eq!(tiny[0][0], 1e-300);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Chain files written by a thread of their own, so that formatting numbers (the costliest part
/// of a cheap run) overlaps with sampling. Rows go over in batches; [`ChainWriter::sync`] waits
/// for everything sent so far to reach the disk.
#[derive(Debug)]
pub struct ChainWriter {
    pending: Vec<ganger_core::mcmc::sampler::Row>,
    requests_tx: Option<crossbeam_channel::Sender<WriterRequest>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

enum WriterRequest {
    Rows(Vec<Row>),
    Sync(crossbeam_channel::Sender<Result<Vec<u64>, OutputError>>),
}

/// Rows collected before a batch goes to the writer thread.
const WRITER_BATCH_ROWS: usize = 4096;

impl ChainWriter {
    /// Hands `files` to a new writer thread.
    pub fn new(mut files: ChainFiles) -> ChainWriter {
        // Bounded, so that a slow disk slows the sampler instead of filling memory.
        let (requests_tx, requests_rx) = crossbeam_channel::bounded::<WriterRequest>(64);
        let thread = std::thread::Builder::new()
            .name("ganger-chain-writer".into())
            .spawn(move || {
                let mut failed: Option<OutputError> = None;
                for request in requests_rx {
                    match request {
                        WriterRequest::Rows(rows) => {
                            if failed.is_none() {
                                failed = files.write(&rows).err();
                            }
                        }
                        WriterRequest::Sync(reply_tx) => {
                            let result = match failed.take() {
                                Some(error) => Err(error),
                                None => files.sync(),
                            };
                            let _ = reply_tx.send(result);
                        }
                    }
                }
            })
            .expect("the writer thread starts");
        ChainWriter {
            pending: Vec::with_capacity(WRITER_BATCH_ROWS),
            requests_tx: Some(requests_tx),
            thread: Some(thread),
        }
    }

    /// Queues rows for writing.
    pub fn write(&mut self, rows: Vec<Row>) {
        self.pending.extend(rows);
        if self.pending.len() >= WRITER_BATCH_ROWS {
            self.send_pending();
        }
    }

    /// Waits until every row queued so far is written and fsynced; returns the files' lengths,
    /// or the first error the writer met since the last sync.
    pub fn sync(&mut self) -> Result<Vec<u64>, OutputError> {
        self.send_pending();
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        let sent = self
            .requests_tx
            .as_ref()
            .is_some_and(|tx| tx.send(WriterRequest::Sync(reply_tx)).is_ok());
        let gone = || OutputError {
            path: PathBuf::from("<chain files>"),
            source: std::io::Error::other("the writer thread stopped"),
        };
        if !sent {
            return Err(gone());
        }
        reply_rx.recv().map_err(|_| gone())?
    }

    fn send_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let rows = std::mem::replace(&mut self.pending, Vec::with_capacity(WRITER_BATCH_ROWS));
        if let Some(tx) = &self.requests_tx {
            // A writer that stopped reports it at the next sync.
            let _ = tx.send(WriterRequest::Rows(rows));
        }
    }
}

impl Drop for ChainWriter {
    fn drop(&mut self) {
        self.send_pending();
        self.requests_tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
