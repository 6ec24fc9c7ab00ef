//! A run's output folder: one CSV per chain in Stateline's column layout, streamed as the run
//! goes, and truncated back to a checkpoint's lengths on resume.
//!
//! Columns: one per dimension (`x0`, `x1`, …), then `energy`, `sigma`, `beta`, `accepted`
//! (0/1) and `swap_type` (0 no attempt, 1 accepted, 2 rejected), with a header row.
//! Numbers are written in their shortest round-trip form (`ryu`, several times faster than
//! `format!` at this), so they read back to the exact binary values and two runs that computed
//! the same values write the same bytes.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use ganger_core::mcmc::sampler::Row;

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

    /// Creates `dir` if needed and a fresh file with a header per chain.
    pub fn create(dir: &Path, n_chains: usize, n_dims: usize) -> Result<ChainFiles, OutputError> {
        create_output_dir(dir)?;
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

/// The columns after the dimensions, in order.
const TAIL_COLUMNS: [&str; 5] = ["energy", "sigma", "beta", "accepted", "swap_type"];

/// What the header and first row of a chain file say, read without the rest of the file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChainHead {
    /// Dimensions (`x0`, `x1`, …) in the header.
    pub n_dims: usize,
    /// `beta` of the first row (1 for a cold chain); `None` while the file has no complete row.
    pub first_beta: Option<f64>,
}

/// Reads the header and the first row of a chain file, e.g. to find the cold chains cheaply.
pub fn read_chain_head(path: &Path) -> Result<ChainHead, OutputError> {
    let mut reader = ChainReader::open(path)?;
    let first_beta = reader.next_row()?.then_some(reader.beta);
    Ok(ChainHead {
        n_dims: reader.n_dims,
        first_beta,
    })
}

/// Reads every dimension of a chain file back, column by column (`states[dimension][step]`).
///
/// A final line without its newline is what a killed run leaves behind: it is kept if it is a
/// whole row and ignored otherwise. Any other malformed line is an error naming the line.
pub fn read_chain(path: &Path) -> Result<Vec<Vec<f64>>, OutputError> {
    let mut reader = ChainReader::open(path)?;
    let mut states = vec![Vec::new(); reader.n_dims];
    while reader.next_row()? {
        for (column, &x) in states.iter_mut().zip(&reader.values) {
            column.push(x);
        }
    }
    Ok(states)
}

/// Reads the dimensions of a chain file back, for the summary; the file must have `n_dims`.
pub fn read_states(path: &Path, n_dims: usize) -> Result<Vec<Vec<f64>>, OutputError> {
    Ok(read_columns(path, n_dims, 0, true)?.states)
}

/// What [`read_columns`] reads of a chain file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChainColumns {
    /// `states[dimension][row]`, if asked for (empty otherwise).
    pub states: Vec<Vec<f64>>,
    /// The energy of each row.
    pub energy: Vec<f64>,
    /// The inverse temperature of each row.
    pub beta: Vec<f64>,
}

/// Reads the rows of a chain file from row `skip` on (row k is the state after step k + 1):
/// energies and inverse temperatures, and the states if `states`. The file must have `n_dims`.
pub fn read_columns(
    path: &Path,
    n_dims: usize,
    skip: u64,
    states: bool,
) -> Result<ChainColumns, OutputError> {
    let mut columns = ChainColumns {
        states: vec![Vec::new(); if states { n_dims } else { 0 }],
        ..ChainColumns::default()
    };
    for_each_row(path, n_dims, skip, |state, energy, beta| {
        for (column, &x) in columns.states.iter_mut().zip(state) {
            column.push(x);
        }
        columns.energy.push(energy);
        columns.beta.push(beta);
    })?;
    Ok(columns)
}

/// Calls `each(state, energy, beta)` for every row of a chain file from row `skip` on (row k
/// is the state after step k + 1), holding one row at a time. The file must have `n_dims`.
pub fn for_each_row(
    path: &Path,
    n_dims: usize,
    skip: u64,
    mut each: impl FnMut(&[f64], f64, f64),
) -> Result<(), OutputError> {
    let mut reader = ChainReader::open(path)?;
    if reader.n_dims != n_dims {
        return Err(malformed(
            path,
            1,
            format!("has {} dimensions, expected {n_dims}", reader.n_dims),
        ));
    }
    let mut row = 0u64;
    while reader.next_row()? {
        row += 1;
        if row > skip {
            each(&reader.values, reader.energy, reader.beta);
        }
    }
    Ok(())
}

/// A chain file read line by line, checking each row.
struct ChainReader<'a> {
    path: &'a Path,
    reader: BufReader<File>,
    n_dims: usize,
    /// The current line's number, counting the header as line 1.
    line_number: usize,
    line: Vec<u8>,
    /// The current row's dimensions.
    values: Vec<f64>,
    /// The current row's energy.
    energy: f64,
    /// The current row's inverse temperature.
    beta: f64,
}

impl<'a> ChainReader<'a> {
    fn open(path: &'a Path) -> Result<ChainReader<'a>, OutputError> {
        let file = File::open(path).map_err(at(path))?;
        let mut reader = ChainReader {
            path,
            reader: BufReader::with_capacity(1 << 16, file),
            n_dims: 0,
            line_number: 0,
            line: Vec::new(),
            values: Vec::new(),
            energy: f64::NAN,
            beta: f64::NAN,
        };
        reader.read_line()?;
        if reader.line.is_empty() {
            return Err(malformed(path, 1, "empty file, expected a header".into()));
        }
        let header = String::from_utf8_lossy(&reader.line).into_owned();
        reader.n_dims = parse_header(&header).ok_or_else(|| {
            malformed(
                path,
                1,
                format!(
                    "header `{header}` is not x0,x1,…,{}",
                    TAIL_COLUMNS.join(",")
                ),
            )
        })?;
        Ok(reader)
    }

    /// Reads the next line into `self.line` without its line ending; returns whether it had
    /// one (false for a cut-off final line, and at the end of the file with `self.line` empty).
    fn read_line(&mut self) -> Result<bool, OutputError> {
        use std::io::BufRead;
        self.line.clear();
        self.reader
            .read_until(b'\n', &mut self.line)
            .map_err(at(self.path))?;
        self.line_number += 1;
        let complete = self.line.last() == Some(&b'\n');
        if complete {
            self.line.pop();
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
        }
        Ok(complete)
    }

    /// Parses the next row (its dimensions into `self.values`); false at the end of the file.
    fn next_row(&mut self) -> Result<bool, OutputError> {
        let complete = self.read_line()?;
        if self.line.is_empty() && !complete {
            return Ok(false);
        }
        match parse_row(&self.line, self.n_dims, &mut self.values) {
            Ok((energy, beta)) => {
                (self.energy, self.beta) = (energy, beta);
                Ok(true)
            }
            // A run killed mid-write leaves a cut-off last line.
            Err(_) if !complete => Ok(false),
            Err(reason) => Err(malformed(self.path, self.line_number, reason)),
        }
    }
}

/// The number of dimensions a header names, if it is a chain file's header.
fn parse_header(header: &str) -> Option<usize> {
    let names: Vec<&str> = header.split(',').collect();
    let n_dims = names.len().checked_sub(TAIL_COLUMNS.len())?;
    let dims_ok = names[..n_dims]
        .iter()
        .enumerate()
        .all(|(i, name)| name.strip_prefix('x') == Some(&i.to_string()));
    (dims_ok && names[n_dims..] == TAIL_COLUMNS).then_some(n_dims)
}

/// Parses one row, its dimensions into `values`, checking every field; returns its energy and
/// beta.
fn parse_row(line: &[u8], n_dims: usize, values: &mut Vec<f64>) -> Result<(f64, f64), String> {
    let line = std::str::from_utf8(line).map_err(|_| "not UTF-8 text".to_string())?;
    let n_fields = line.split(',').count();
    if n_fields != n_dims + TAIL_COLUMNS.len() {
        return Err(format!(
            "expected {} fields, found {n_fields}",
            n_dims + TAIL_COLUMNS.len()
        ));
    }
    values.clear();
    let (mut energy, mut beta) = (f64::NAN, f64::NAN);
    let mut fields = line.split(',');
    for (column, field) in fields.by_ref().take(n_dims + 3).enumerate() {
        let value = field.parse::<f64>().map_err(|_| {
            let name = match column.checked_sub(n_dims) {
                Some(tail) => TAIL_COLUMNS[tail].to_string(),
                None => format!("x{column}"),
            };
            format!("{name} is `{field}`, not a number")
        })?;
        match column.checked_sub(n_dims) {
            None => values.push(value),
            Some(0) => energy = value,
            Some(2) => beta = value,
            Some(_) => {}
        }
    }
    for (name, allowed) in [("accepted", "01"), ("swap_type", "012")] {
        let field = fields.next().unwrap_or_default();
        if field.len() != 1 || !allowed.contains(field) {
            return Err(format!("{name} is `{field}`, expected one of {allowed}"));
        }
    }
    Ok((energy, beta))
}

fn malformed(path: &Path, line: usize, reason: String) -> OutputError {
    OutputError {
        path: path.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("line {line}: {reason}"),
        ),
    }
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

    #[test]
    fn an_output_error_says_its_reason_once_when_printed_as_a_chain() {
        let path = chain_file("twice", "x0,energy,sigma,beta,accepted,swap_type\n1,2\n");
        let error = anyhow::Error::from(read_chain(&path).unwrap_err());
        let message = format!("{error:#}");
        assert_eq!(
            message,
            format!("{}: line 2: expected 6 fields, found 2", path.display())
        );
    }

    /// Writes `text` as a chain file in a fresh folder named after the test.
    fn chain_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ganger-read-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("0.csv");
        std::fs::write(&path, text).unwrap();
        path
    }

    const HEADER: &str = "x0,x1,energy,sigma,beta,accepted,swap_type\n";

    #[test]
    fn a_cut_off_last_line_is_ignored_and_a_whole_one_kept() {
        let cut = chain_file(
            "cut",
            &format!("{HEADER}1.5,2.5,0.1,0.3,1.0,1,0\n3.5,4.5,0.2,0.3,1.0,0,1\n5.5,6"),
        );
        assert_eq!(
            read_chain(&cut).unwrap(),
            vec![vec![1.5, 3.5], vec![2.5, 4.5]]
        );
        let whole = chain_file("whole", &format!("{HEADER}1.5,2.5,0.1,0.3,1.0,1,0"));
        assert_eq!(read_chain(&whole).unwrap(), vec![vec![1.5], vec![2.5]]);
        let head = read_chain_head(&whole).unwrap();
        assert_eq!(
            head,
            ChainHead {
                n_dims: 2,
                first_beta: Some(1.0)
            }
        );
    }

    #[test]
    fn a_malformed_row_is_reported_with_its_file_and_line() {
        let path = chain_file(
            "malformed",
            &format!("{HEADER}1,2,0.1,0.3,0.5,1,0\n1,oops,0.1,0.3,0.5,1,0\n1,2,0.1,0.3,0.5,1,0\n"),
        );
        let message = read_chain(&path).unwrap_err().to_string();
        assert!(
            message.starts_with(&path.display().to_string()),
            "{message}"
        );
        assert!(message.contains("line 3: x1 is `oops`"), "{message}");
        let short = chain_file("short", &format!("{HEADER}1,2,0.1,0.3,0.5,1\n"));
        let message = read_chain(&short).unwrap_err().to_string();
        assert!(
            message.contains("line 2: expected 7 fields, found 6"),
            "{message}"
        );
        let flag = chain_file("flag", &format!("{HEADER}1,2,0.1,0.3,0.5,1,7\n"));
        let message = read_chain(&flag).unwrap_err().to_string();
        assert!(message.contains("line 2: swap_type is `7`"), "{message}");
        // The first row of a hot chain is read without the rest.
        assert_eq!(read_chain_head(&path).unwrap().first_beta, Some(0.5));
    }

    #[test]
    fn a_file_without_the_chain_header_is_rejected() {
        for (name, text) in [
            ("empty", ""),
            ("foreign", "a,b,c\n1,2,3\n"),
            ("gap", "x0,x2,energy,sigma,beta,accepted,swap_type\n"),
        ] {
            let path = chain_file(name, text);
            let message = read_chain(&path).unwrap_err().to_string();
            assert!(message.contains("line 1:"), "{name}: {message}");
        }
        let empty = chain_file("no-rows", HEADER);
        assert_eq!(read_chain(&empty).unwrap(), vec![Vec::<f64>::new(); 2]);
        assert_eq!(read_chain_head(&empty).unwrap().first_beta, None);
    }
}

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
