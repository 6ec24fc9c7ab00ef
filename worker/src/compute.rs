//! The hot loop: evaluating batches on the rayon pool and encoding their results.
//!
//! Runs on pool threads, never on the session thread, so that the session keeps heartbeating
//! however long a unit takes. Each finished batch is handed back over a channel as ready-to-send
//! frames, split so that no frame exceeds the delegator's size limit.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;
use ganger_core::protocol::{self, result_size_bound, Message, ResultsEncoder};
use ganger_core::task::{Registry, TaskResult};
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

/// A batch's encoded results.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) generation: u64,
    pub(crate) n_units: usize,
    pub(crate) errors: usize,
    pub(crate) frames: Vec<Vec<u8>>,
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
        group.into_par_iter().for_each(|batch| {
            let finished = self.evaluate(batch);
            // The session may have ended; then nobody needs these results.
            let _ = self.finished_tx.send(finished);
            self.waker.wake();
        });
    }

    fn evaluate(&self, batch: Batch) -> Finished {
        let Ok(Message::Work(work)) = protocol::decode(&batch.frame) else {
            // The session thread decoded this frame before queueing it.
            unreachable!("a queued batch is a valid work message");
        };
        let started = Instant::now();
        let outcomes: Vec<TaskResult> = work
            .units
            .par_iter()
            .map(|unit| self.registry.run(unit.job_type, unit.payload))
            .collect();
        let elapsed_us = started.elapsed().as_micros() as u64;
        let ids: Vec<u64> = work.units.iter().map(|u| u.id).collect();
        let errors = outcomes.iter().filter(|o| o.is_err()).count();
        Finished {
            generation: batch.generation,
            n_units: batch.n_units,
            errors,
            frames: encode_results(batch.batch, elapsed_us, &ids, outcomes, self.max_frame),
        }
    }
}

fn as_ref(outcome: &TaskResult) -> Result<&[u8], &str> {
    outcome.as_ref().map(Vec::as_slice).map_err(String::as_str)
}

/// Room kept in each frame for the message's own fields.
const FRAME_OVERHEAD: usize = 64;

/// Encodes outcomes into as few `Results` frames as the size limit allows.
/// An output too large for any frame is replaced by an error saying so.
pub(crate) fn encode_results(
    batch: u64,
    elapsed_us: u64,
    ids: &[u64],
    mut outcomes: Vec<TaskResult>,
    max_frame: usize,
) -> Vec<Vec<u8>> {
    let budget = max_frame.saturating_sub(FRAME_OVERHEAD).max(1024);
    for outcome in &mut outcomes {
        if let Ok(output) = outcome {
            if result_size_bound(Ok(output)) > budget {
                *outcome = Err(format!(
                    "output of {} bytes exceeds the delegator's frame limit of {max_frame} bytes",
                    output.len()
                ));
            }
        }
    }
    let mut frames = Vec::new();
    let mut start = 0;
    while start < outcomes.len() {
        let mut end = start;
        let mut size = 0;
        while end < outcomes.len() {
            let next = result_size_bound(as_ref(&outcomes[end]));
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
        for i in start..end {
            encoder.result(ids[i], as_ref(&outcomes[i]));
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
    fn results_are_split_to_fit_the_frame_limit() {
        let ids: Vec<u64> = (0..10).collect();
        let outcomes: Vec<TaskResult> = (0..10).map(|_| Ok(vec![0u8; 500])).collect();
        let frames = encode_results(3, 99, &ids, outcomes, 2048);
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
        let frames = encode_results(1, 1, &[7], vec![Ok(vec![0u8; 5000])], 2048);
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
