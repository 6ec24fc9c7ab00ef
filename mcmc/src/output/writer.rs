//! The writer thread: the sampler hands its rows over and goes on while they are formatted and
//! written.

use std::path::PathBuf;

use ganger_core::mcmc::sampler::Row;

use super::{ChainFiles, OutputError};

/// Chain files written by a thread of their own, so that formatting numbers (the costliest part
/// of a cheap run) overlaps with sampling. Rows go over in batches; [`ChainWriter::sync`] waits
/// for everything sent so far to reach the disk.
#[derive(Debug)]
pub struct ChainWriter {
    pending: Vec<ganger_core::mcmc::sampler::Row>,
    /// Set by the writer thread when a write fails, so that the run stops at once rather than
    /// at its next checkpoint.
    failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
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
        let (requests_tx, requests_rx) = crossbeam_channel::bounded::<WriterRequest>(4);
        let failed_flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread_failed_flag = failed_flag.clone();
        let thread = std::thread::Builder::new()
            .name("ganger-chain-writer".into())
            .spawn(move || {
                let mut failed: Option<OutputError> = None;
                let mut ever_failed = false;
                for request in requests_rx {
                    match request {
                        WriterRequest::Rows(rows) => {
                            if failed.is_none() {
                                failed = files.write(&rows).err();
                                if failed.is_some() {
                                    ever_failed = true;
                                    thread_failed_flag
                                        .store(true, std::sync::atomic::Ordering::SeqCst);
                                }
                            }
                        }
                        WriterRequest::Sync(reply_tx) => {
                            let result = match failed.take() {
                                Some(error) => Err(error),
                                None => files.sync(),
                            };
                            ever_failed |= result.is_err();
                            let _ = reply_tx.send(result);
                        }
                    }
                }
                // Dropping a BufWriter would flush and swallow the error. A run syncs before
                // it ends, so this only writes rows after the last checkpoint of a run that
                // stopped on another error (a resume cuts them off anyway); still, say so if
                // it fails. A write error was reported already.
                if ever_failed {
                    return;
                }
                if let Err(e) = files.flush() {
                    tracing::warn!("rows after the last checkpoint not written: {e}");
                }
            })
            .expect("the writer thread starts");
        ChainWriter {
            pending: Vec::with_capacity(WRITER_BATCH_ROWS),
            failed: failed_flag,
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

    /// Whether the writer thread is behind (its queue is full), so that the next write may
    /// wait for the disk.
    pub fn is_backed_up(&self) -> bool {
        self.requests_tx.as_ref().is_some_and(|tx| tx.is_full())
    }

    /// Whether a write has failed since the last [`sync`](ChainWriter::sync) (which reports it).
    pub fn has_failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::SeqCst)
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
        let result = reply_rx.recv().map_err(|_| gone())?;
        self.failed
            .store(false, std::sync::atomic::Ordering::SeqCst);
        result
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
