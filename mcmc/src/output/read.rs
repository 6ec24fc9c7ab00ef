//! Chain files read back: whole, by columns, row by row, or only the header and first row.
//! Every line is checked, and the cut-off last line a killed run leaves is tolerated.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use super::{at, OutputError};

use ganger_core::mcmc::config::RESERVED_NAMES as TAIL_COLUMNS;

/// What the header and first row of a chain file say, read without the rest of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainHead {
    /// Dimensions in the header.
    pub n_dims: usize,
    /// Their names (the config's `names`, else `x0`, `x1`, …).
    pub names: Vec<String>,
    /// `beta` of the first row (1 for a cold chain); `None` while the file has no complete row.
    pub first_beta: Option<f64>,
}

/// Reads the header and the first row of a chain file, e.g. to find the cold chains cheaply.
pub fn read_chain_head(path: &Path) -> Result<ChainHead, OutputError> {
    let mut reader = ChainReader::open(path)?;
    let first_beta = reader.next_row()?.then_some(reader.beta);
    Ok(ChainHead {
        n_dims: reader.n_dims,
        names: reader.names.clone(),
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
    if reader.next_row()? {
        // Room for the rows the file's size suggests, from the first row's length (a little
        // over, since rows vary): growing a column of a million values copies it some twenty
        // times, and each copy faults in fresh pages.
        let file_bytes = std::fs::metadata(path).map_or(0, |m| m.len());
        let rows = file_bytes / (reader.line.len() as u64 + 1).max(1);
        let room = usize::try_from(rows + rows / 8).unwrap_or(0);
        for (column, &x) in states.iter_mut().zip(&reader.values) {
            column.reserve(room);
            column.push(x);
        }
    }
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
    /// The dimensions' names, from the header.
    names: Vec<String>,
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
            names: Vec::new(),
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
        reader.names = parse_header(&header).ok_or_else(|| {
            malformed(
                path,
                1,
                format!(
                    "header `{header}` is not the dimensions' names followed by {}",
                    TAIL_COLUMNS.join(",")
                ),
            )
        })?;
        reader.n_dims = reader.names.len();
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
        match parse_row(&self.line, &self.names, &mut self.values) {
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
fn parse_header(header: &str) -> Option<Vec<String>> {
    let names: Vec<&str> = header.split(',').collect();
    let n_dims = names.len().checked_sub(TAIL_COLUMNS.len())?;
    // At least one dimension, each named once, as every config writes them.
    let dims_ok = n_dims > 0
        && names[..n_dims].iter().enumerate().all(|(i, name)| {
            !name.is_empty() && !TAIL_COLUMNS.contains(name) && !names[..i].contains(name)
        });
    (dims_ok && names[n_dims..] == TAIL_COLUMNS).then(|| {
        names[..n_dims]
            .iter()
            .map(|&name| name.to_owned())
            .collect()
    })
}

/// Parses one row, its dimensions into `values`, checking every field; returns its energy and
/// beta.
fn parse_row(line: &[u8], names: &[String], values: &mut Vec<f64>) -> Result<(f64, f64), String> {
    let n_dims = names.len();
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
                None => names[column].clone(),
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
