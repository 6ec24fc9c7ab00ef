//! The hot loop: evaluating batches on the rayon pool and encoding their results.
//!
//! Runs on pool threads, so that the session keeps heartbeating however long a unit takes;
//! only a group measured to take a few microseconds runs on the session thread
//! ([`Evaluator::evaluate_here`]), where the two hand-offs to and from the pool would cost more
//! than the work. Each finished chunk of a batch is handed back over a channel as ready-to-send
//! frames, split so that no frame exceeds the delegator's size limit.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;
use ganger_core::protocol::{self, result_size_bound, Message, ResultsEncoder, UnitRef};
use ganger_core::task::{no_such_task, run_caught, Registry, Task};
use ganger_transport::Waker;
use rayon::prelude::*;

/// A batch waiting to be evaluated.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Session generation the batch belongs to; results of an older one are discarded.
    pub(crate) generation: u64,
    /// The batch id from the `Work` message.
    pub(crate) batch: u64,
    /// Number of units in it.
    pub(crate) n_units: usize,
    /// The `Work` frame itself, decoded again on the pool thread (decoding borrows from it).
    pub(crate) frame: zmq::Message,
}

/// The encoded results of a chunk of a batch (or a batch that could not be decoded).
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) generation: u64,
    pub(crate) n_units: usize,
    pub(crate) errors: usize,
    /// The last failed unit's error, for the worker's status.
    pub(crate) last_error: Option<String>,
    pub(crate) frames: Vec<Vec<u8>>,
    /// The frame's header was fine but its units did not decode.
    pub(crate) malformed: bool,
}

/// What the pool threads need to evaluate and report.
#[derive(Clone)]
pub(crate) struct Evaluator {
    pub(crate) registry: Arc<Registry>,
    pub(crate) finished_tx: Sender<Finished>,
    pub(crate) waker: Waker,
    pub(crate) max_frame: usize,
}

impl Evaluator {
    /// Evaluates a group of batches, in parallel across and within them.
    pub(crate) fn run_group(&self, group: Vec<Batch>) {
        group.into_par_iter().for_each(|batch| self.evaluate(batch));
    }

    /// Evaluates a batch in chunks across the pool, handing each chunk's results back as soon
    /// as the chunk is done: a unit's result never waits for slower units of its batch, and
    /// each results frame reports the time its own units took on their thread.
    pub(crate) fn evaluate(&self, batch: Batch) {
        let Ok(Message::Work(work)) = protocol::decode(&batch.frame) else {
            return self.hand_back(malformed(&batch));
        };
        let chunk = chunk_size(work.units.len(), rayon::current_num_threads());
        if work.units.len() <= chunk {
            // One chunk: no need to go through rayon's scheduler at all.
            self.hand_back(self.finish_chunk(&batch, &work.units));
        } else {
            work.units
                .par_chunks(chunk)
                .for_each(|units| self.hand_back(self.finish_chunk(&batch, units)));
        }
    }

    /// Evaluates a batch on the calling thread, in one chunk, and returns its results (the
    /// session's own path for trivial units: no pool, no channel, no wake-up).
    pub(crate) fn evaluate_here(&self, batch: &Batch) -> Finished {
        match protocol::decode(&batch.frame) {
            Ok(Message::Work(work)) => self.finish_chunk(batch, &work.units),
            _ => malformed(batch),
        }
    }

    fn hand_back(&self, finished: Finished) {
        // The session may have ended; then nobody needs these results.
        let _ = self.finished_tx.send(finished);
        self.waker.wake();
    }

    /// Evaluates one chunk of a batch and encodes its results.
    fn finish_chunk(&self, batch: &Batch, units: &[UnitRef<'_>]) -> Finished {
        let started = Instant::now();
        let part = self.evaluate_chunk(units);
        let elapsed_us = started.elapsed().as_micros() as u64;
        let outcomes: Vec<(u64, Result<&[u8], &str>)> = part
            .entries
            .iter()
            .map(|(id, result)| {
                let outcome = match result {
                    Ok(range) => Ok(&part.outputs[range.clone()]),
                    Err(message) => Err(message.as_str()),
                };
                (*id, outcome)
            })
            .collect();
        let errors = outcomes.iter().filter(|(_, o)| o.is_err()).count();
        // Only the last error is kept (for the worker's status); most chunks have none.
        let last_error = match errors {
            0 => None,
            _ => outcomes.iter().rev().find_map(|(id, outcome)| {
                outcome.err().map(|message| format!("unit {id}: {message}"))
            }),
        };
        Finished {
            generation: batch.generation,
            n_units: units.len(),
            errors,
            last_error,
            frames: encode_results(batch.batch, elapsed_us, &outcomes, self.max_frame),
            malformed: false,
        }
    }

    fn evaluate_chunk(&self, units: &[UnitRef<'_>]) -> Evaluated {
        let mut evaluated = Evaluated {
            outputs: Vec::with_capacity(16 * units.len()),
            entries: Vec::with_capacity(units.len()),
        };
        // Units of one batch nearly always share a job type: look the task up once per run.
        let mut current: Option<(&str, Option<&Arc<dyn Task>>)> = None;
        for unit in units {
            let task = match current {
                // Decoding hands out one &str per run of equal job types: compare addresses first.
                Some((job_type, task))
                    if std::ptr::eq(job_type, unit.job_type) || job_type == unit.job_type =>
                {
                    task
                }
                _ => {
                    let task = self.registry.get(unit.job_type);
                    current = Some((unit.job_type, task));
                    task
                }
            };
            let start = evaluated.outputs.len();
            let result = match task {
                Some(task) => run_caught(
                    task.as_ref(),
                    unit.job_type,
                    unit.payload,
                    &mut evaluated.outputs,
                ),
                None => Err(no_such_task(unit.job_type)),
            };
            let end = evaluated.outputs.len();
            evaluated
                .entries
                .push((unit.id, result.map(|()| start..end)));
        }
        evaluated
    }
}

/// What a batch whose units cannot be decoded reports.
fn malformed(batch: &Batch) -> Finished {
    Finished {
        generation: batch.generation,
        n_units: batch.n_units,
        errors: 0,
        last_error: None,
        frames: Vec::new(),
        malformed: true,
    }
}

/// Units per chunk of a batch of `len` units on a pool of `threads`.
///
/// A few chunks per thread balance uneven units; each chunk writes its outputs into one buffer,
/// so evaluating a unit allocates nothing unless its task does, and a chunk holds at least 64
/// units so that trivial units do not pay rayon's hand-offs. A small batch is still split once
/// per thread: a worker's first batch holds only `slots` units (adaptive batching has measured
/// nothing yet), and slow units (an exec program, an expensive likelihood) would otherwise run
/// one after another on one thread. With one thread this is what it always was.
fn chunk_size(len: usize, threads: usize) -> usize {
    let threads = threads.max(1);
    if len >= LARGE_BATCH {
        // Thousands of units to a batch are trivial ones (batches carry about 5 ms of work):
        // one chunk per thread, one results message each.
        return len.div_ceil(threads);
    }
    (len / (4 * threads)).max(64.min(len.div_ceil(threads)).max(1))
}

/// Units from which a batch is split once per thread rather than four times.
const LARGE_BATCH: usize = 4096;

/// The outcomes of a chunk of units: outputs back to back in one buffer.
struct Evaluated {
    outputs: Vec<u8>,
    entries: Vec<(u64, Result<std::ops::Range<usize>, String>)>,
}

/// Room kept in each frame for the message's own fields.
const FRAME_OVERHEAD: usize = 64;

/// Encodes outcomes into as few `Results` frames as the size limit allows.
/// An output too large for any frame is replaced by an error saying so.
pub(crate) fn encode_results(
    batch: u64,
    elapsed_us: u64,
    outcomes: &[(u64, Result<&[u8], &str>)],
    max_frame: usize,
) -> Vec<Vec<u8>> {
    let budget = max_frame.saturating_sub(FRAME_OVERHEAD).max(1024);
    let too_large: Vec<(usize, String)> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, (_, o))| result_size_bound(*o) > budget)
        .map(|(i, (_, o))| {
            let len = o.map_or(0, <[u8]>::len);
            (i, format!("output of {len} bytes exceeds the delegator's frame limit of {max_frame} bytes"))
        })
        .collect();
    // Indices in `too_large` are ascending, and it is nearly always empty.
    let outcome = |i: usize| -> Result<&[u8], &str> {
        match too_large.binary_search_by_key(&i, |(j, _)| *j) {
            Ok(k) => Err(too_large[k].1.as_str()),
            Err(_) => outcomes[i].1,
        }
    };
    let mut frames = Vec::new();
    let mut start = 0;
    while start < outcomes.len() {
        let mut end = start;
        let mut size = 0;
        while end < outcomes.len() {
            let next = result_size_bound(outcome(end));
            if end > start && size + next > budget {
                break;
            }
            size += next;
            end += 1;
        }
        let mut frame = Vec::with_capacity(size + FRAME_OVERHEAD);
        // Each frame reports its share of the time, so every frame is a fair throughput sample.
        let elapsed = (elapsed_us * (end - start) as u64 / outcomes.len() as u64).max(1);
        let mut encoder = ResultsEncoder::new(&mut frame, batch, elapsed, (end - start) as u32);
        for (i, (id, _)) in outcomes.iter().enumerate().take(end).skip(start) {
            encoder.result(*id, outcome(i));
        }
        encoder.finish();
        frames.push(frame);
        start = end;
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_batches_are_split_across_threads_and_large_ones_in_chunks_of_64_or_more() {
        // (units, threads) -> units per chunk
        let cases = [
            ((2, 2), 1),
            ((8, 2), 4),
            ((100, 2), 50),
            ((128, 2), 64),
            ((2000, 2), 250),
            ((5000, 2), 2500),
            ((0, 2), 1),
            ((40, 1), 40),
            ((64, 1), 64),
            ((2000, 1), 500),
            ((5000, 1), 5000),
        ];
        for ((len, threads), chunk) in cases {
            assert_eq!(
                chunk_size(len, threads),
                chunk,
                "{len} units, {threads} threads"
            );
        }
    }

    #[test]
    fn results_are_split_to_fit_the_frame_limit() {
        let ids: Vec<u64> = (0..10).collect();
        let output = [0u8; 500];
        let outcomes: Vec<_> = ids.iter().map(|&id| (id, Ok(&output[..]))).collect();
        let frames = encode_results(3, 99, &outcomes, 2048);
        assert!(frames.len() >= 3, "{}", frames.len());
        let mut seen = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            assert!(frame.len() <= 2048);
            let Ok(Message::Results(r)) = protocol::decode(frame) else {
                panic!()
            };
            assert_eq!(r.batch, 3);
            assert!(
                r.elapsed_us > 0 && r.elapsed_us < 99,
                "frame {i}: {}",
                r.elapsed_us
            );
            seen.extend(r.results.iter().map(|r| r.id));
        }
        assert_eq!(seen, ids);
    }

    #[test]
    fn an_output_too_large_for_any_frame_becomes_an_error() {
        let output = [0u8; 5000];
        let frames = encode_results(1, 1, &[(7, Ok(&output[..]))], 2048);
        let Ok(Message::Results(r)) = protocol::decode(&frames[0]) else {
            panic!()
        };
        let error = r.results[0].outcome.unwrap_err();
        assert!(
            error.contains("exceeds the delegator's frame limit"),
            "{error}"
        );
    }
}
