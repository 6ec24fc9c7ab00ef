//! Job handles: what [`Delegator::submit`](crate::Delegator::submit) returns.
//!
//! A [`Job`] yields `(index, result)` pairs in completion order as the engine delivers them;
//! [`Job::collect_ordered`] gathers them in input order instead.
//! Dropping an unfinished job cancels it.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use ganger_core::payload::{self, Payload};
use ganger_transport::Waker;
use serde::de::DeserializeOwned;

use crate::budget::QueueBudget;
use crate::engine::{self, Command};
use crate::scheduler::{self, JobId, Outcome, UnitFailure};
use crate::shared::JobShared;
use crate::Error;

/// Why a unit of a job produced no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Every attempt at the unit failed.
    #[error("{0}")]
    Failed(UnitFailure),
    /// The task's output could not be decoded as the job's output type.
    #[error("cannot decode the output: {0}")]
    Decode(String),
}

/// Progress counts of a job, as the engine has delivered them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Units submitted.
    pub total: u64,
    /// Units that produced an output.
    pub completed: u64,
    /// Units given up on after their last attempt.
    pub failed: u64,
}

impl Progress {
    /// Units with an outcome, either way.
    pub fn done(&self) -> u64 {
        self.completed + self.failed
    }
}

/// A submitted job. Iterate it for `(index, result)` in completion order.
pub struct Job<O> {
    id: JobId,
    outcomes_rx: Receiver<Vec<Outcome>>,
    buffered: VecDeque<Outcome>,
    shared: Arc<JobShared>,
    commands_tx: Sender<Command>,
    waker: Waker,
    budget: Arc<QueueBudget>,
    _output: PhantomData<fn() -> O>,
}

impl<O> std::fmt::Debug for Job<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("progress", &self.progress())
            .finish()
    }
}

impl<O> Job<O> {
    /// The job's id in logs and status.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// Counts so far; they advance while the job runs, whether or not it is being iterated.
    pub fn progress(&self) -> Progress {
        Progress {
            total: self.shared.total.load(Ordering::Relaxed),
            completed: self.shared.completed.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
        }
    }
}

impl<O> Job<O> {
    /// Adds inputs to an open job (see [`Delegator::open`](crate::Delegator::open)); they are
    /// numbered after the ones already added, here on the caller's thread.
    ///
    /// Waits while the delegator's queue holds
    /// [`max_queued_bytes`](crate::SchedulerConfig::max_queued_bytes) of units not yet leased
    /// (back-pressure), until workers take enough of them; a chunk larger than the whole cap
    /// waits for an empty queue.
    pub fn extend(&self, payloads: Vec<Payload>) -> Result<(), Error> {
        if payloads.is_empty() {
            return Ok(());
        }
        let bytes = payloads.iter().map(|p| p.len() as u64).sum();
        self.budget.acquire(bytes)?;
        self.send_units(payloads)
    }

    /// [`Job::extend`] without waiting: gives the inputs back if the queue has no room for
    /// them now. For a thread that cannot wait on the engine (it has it on loan).
    pub fn try_extend(&self, payloads: Vec<Payload>) -> Result<Option<Vec<Payload>>, Error> {
        let bytes = payloads.iter().map(|p| p.len() as u64).sum();
        if !payloads.is_empty() && !self.budget.try_acquire(bytes)? {
            return Ok(Some(payloads));
        }
        self.send_units(payloads).map(|()| None)
    }

    fn send_units(&self, payloads: Vec<Payload>) -> Result<(), Error> {
        if payloads.is_empty() {
            return Ok(());
        }
        let n = payloads.len() as u64;
        let first = self.shared.total.fetch_add(n, Ordering::Relaxed);
        let units = scheduler::numbered_units(self.id, first, payloads);
        self.command(Command::Extend {
            job: self.id,
            units,
        })
    }

    /// Declares that no more inputs will come: the job ends once every unit has an outcome.
    pub fn seal(&self) -> Result<(), Error> {
        self.command(Command::Seal { job: self.id })
    }

    fn command(&self, command: Command) -> Result<(), Error> {
        self.commands_tx.send(command).map_err(|_| Error::Stopped)?;
        if engine::wakes_needed(&self.waker) {
            self.waker.wake();
        }
        Ok(())
    }
}

impl<O: DeserializeOwned> Job<O> {
    pub(crate) fn new(
        id: JobId,
        outcomes_rx: Receiver<Vec<Outcome>>,
        shared: Arc<JobShared>,
        commands_tx: Sender<Command>,
        waker: Waker,
        budget: Arc<QueueBudget>,
    ) -> Self {
        Job {
            id,
            outcomes_rx,
            buffered: VecDeque::new(),
            shared,
            commands_tx,
            waker,
            budget,
            _output: PhantomData,
        }
    }

    /// The next raw outcome (output bytes undecoded), blocking until one arrives;
    /// `None` once every unit has been yielded.
    pub fn next_raw(&mut self) -> Option<Outcome> {
        loop {
            if let Some(outcome) = self.buffered.pop_front() {
                return Some(outcome);
            }
            // The engine drops the sender once every outcome has been sent.
            self.buffered = self.outcomes_rx.recv().ok()?.into();
        }
    }

    /// Like [`Job::next_raw`] but waits at most `timeout`: `Err(())` if nothing arrived in time,
    /// `Ok(None)` once every unit has been yielded.
    #[allow(clippy::result_unit_err)]
    pub fn next_raw_timeout(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<Option<Outcome>, ()> {
        if let Some(outcome) = self.buffered.pop_front() {
            return Ok(Some(outcome));
        }
        match self.outcomes_rx.recv_timeout(timeout) {
            Ok(outcomes) => {
                self.buffered = outcomes.into();
                self.buffered.pop_front().map(Some).ok_or(())
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(()),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Ok(None),
        }
    }

    /// The next raw outcome if one has arrived, without waiting.
    pub fn try_next_raw(&mut self) -> Option<Outcome> {
        if self.buffered.is_empty() {
            self.buffered = self.outcomes_rx.try_recv().ok()?.into();
        }
        self.buffered.pop_front()
    }

    /// Waits for every outcome and returns them in input order.
    ///
    /// Fails with [`Error::Incomplete`] if the delegator stopped before the job finished.
    pub fn collect_ordered(mut self) -> Result<Vec<Result<O, UnitError>>, Error> {
        let mut slots: Vec<Option<Result<O, UnitError>>> = Vec::new();
        while let Some(outcome) = self.next_raw() {
            let index = outcome.index as usize;
            if slots.len() <= index {
                slots.resize_with(index + 1, || None);
            }
            slots[index] = Some(decode(outcome.result));
        }
        let total = self.progress().total as usize;
        slots.resize_with(total.max(slots.len()), || None);
        let missing = slots.iter().filter(|slot| slot.is_none()).count() as u64;
        if missing > 0 {
            return Err(Error::Incomplete { missing });
        }
        Ok(slots.into_iter().flatten().collect())
    }
}

/// What [`next_raw_of_any`] found.
#[derive(Debug)]
pub enum AnyOutcome {
    /// An outcome of the job at this index.
    Outcome(usize, Outcome),
    /// Nothing arrived within the time allowed.
    TimedOut,
    /// Every job has yielded all its outcomes (or the delegator stopped).
    Finished,
}

/// The next raw outcome of whichever of `jobs` has one first, with that job's index: at once if
/// one has arrived, else waiting at most `timeout` for the first to arrive.
pub fn next_raw_of_any<O: DeserializeOwned>(
    jobs: &mut [Job<O>],
    timeout: std::time::Duration,
) -> AnyOutcome {
    for (i, job) in jobs.iter_mut().enumerate() {
        if let Some(outcome) = job.try_next_raw() {
            return AnyOutcome::Outcome(i, outcome);
        }
    }
    let deadline = std::time::Instant::now() + timeout;
    let mut open: Vec<usize> = (0..jobs.len()).collect();
    while !open.is_empty() {
        let mut select = crossbeam_channel::Select::new();
        for &i in &open {
            select.recv(&jobs[i].outcomes_rx);
        }
        let Ok(operation) = select.select_deadline(deadline) else {
            return AnyOutcome::TimedOut;
        };
        let ready = open[operation.index()];
        match operation.recv(&jobs[ready].outcomes_rx) {
            Ok(outcomes) => {
                let job = &mut jobs[ready];
                job.buffered = outcomes.into();
                if let Some(outcome) = job.buffered.pop_front() {
                    return AnyOutcome::Outcome(ready, outcome);
                }
            }
            // This job has delivered everything; wait on the others.
            Err(_) => open.retain(|&i| i != ready),
        }
    }
    AnyOutcome::Finished
}

impl<O: DeserializeOwned> Iterator for Job<O> {
    type Item = (u64, Result<O, UnitError>);

    fn next(&mut self) -> Option<Self::Item> {
        let outcome = self.next_raw()?;
        Some((outcome.index, decode(outcome.result)))
    }
}

impl<O> Drop for Job<O> {
    fn drop(&mut self) {
        if !self.shared.finished.load(Ordering::SeqCst) {
            let _ = self.commands_tx.send(Command::Cancel { job: self.id });
            self.waker.wake();
        }
    }
}

fn decode<O: DeserializeOwned>(result: Result<Payload, UnitFailure>) -> Result<O, UnitError> {
    let bytes = result.map_err(UnitError::Failed)?;
    payload::from_bytes(&bytes).map_err(|e| UnitError::Decode(e.to_string()))
}
