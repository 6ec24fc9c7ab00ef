//! Back-pressure on producers: a cap on the payload bytes of units queued but not yet leased.
//!
//! Producers ([`Job::extend`](crate::Job::extend), and through it every `submit`) take room in
//! the budget before they hand a chunk of units to the engine, and wait while there is none.
//! The engine, which owns the queues, publishes after each turn how many bytes it has taken in
//! and how many are still queued; leasing and cancelling units shrinks the queue and wakes the
//! waiting producers.
//!
//! What counts is `sent − taken_in + queued`: bytes handed over but not yet read by the engine,
//! plus bytes in its queues (units requeued from a lost worker count again).
//! A chunk is admitted when it fits under the cap, or when nothing at all is queued, so that a
//! chunk larger than the whole cap still goes through instead of waiting forever.
//! The engine never waits on a producer and the outcome channels are unbounded, so a client that
//! submits and then reads results on the same thread waits only for workers to take units.

use std::sync::{Condvar, Mutex, MutexGuard};

use crate::Error;

/// The shared budget. See the module documentation.
#[derive(Debug)]
pub(crate) struct QueueBudget {
    cap: u64,
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Bytes producers have handed to the engine, ever.
    sent: u64,
    /// Of those, bytes the engine has read, as of its last report.
    taken_in: u64,
    /// Bytes in the engine's queues, as of its last report.
    queued: u64,
    /// The engine has stopped: nobody will free room any more.
    closed: bool,
}

impl State {
    fn used(&self) -> u64 {
        self.sent - self.taken_in + self.queued
    }
}

impl QueueBudget {
    /// A budget of `cap` bytes.
    pub(crate) fn new(cap: u64) -> Self {
        QueueBudget {
            cap,
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
        }
    }

    /// Takes room for `bytes`, waiting while the queue is too full; [`Error::Stopped`] if the
    /// engine stops meanwhile.
    pub(crate) fn acquire(&self, bytes: u64) -> Result<(), Error> {
        let mut state = self.lock();
        loop {
            if self.take(&mut state, bytes)? {
                return Ok(());
            }
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Takes room for `bytes` if there is some now; false if the queue is too full.
    pub(crate) fn try_acquire(&self, bytes: u64) -> Result<bool, Error> {
        self.take(&mut self.lock(), bytes)
    }

    fn take(&self, state: &mut State, bytes: u64) -> Result<bool, Error> {
        if state.closed {
            return Err(Error::Stopped);
        }
        let used = state.used();
        let room = used == 0 || used.saturating_add(bytes) <= self.cap;
        if room {
            state.sent += bytes;
        }
        Ok(room)
    }

    /// The engine's report: `taken_in` bytes read from producers in all, `queued` bytes queued
    /// now. Wakes waiting producers if room was freed.
    pub(crate) fn report(&self, taken_in: u64, queued: u64) {
        let mut state = self.lock();
        if state.taken_in == taken_in && state.queued == queued {
            return;
        }
        let before = state.used();
        state.taken_in = taken_in;
        state.queued = queued;
        if state.used() < before {
            self.freed.notify_all();
        }
    }

    /// The engine has stopped: waiting and future producers get [`Error::Stopped`].
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.freed.notify_all();
    }

    /// Bytes counted against the cap now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        self.lock().used()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few counters, consistent after every statement: a panic elsewhere
        // cannot leave it half-updated.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn producers_wait_at_the_cap_and_resume_as_the_queue_drains() {
        let budget = Arc::new(QueueBudget::new(100));
        budget.acquire(60).unwrap();
        budget.acquire(40).unwrap();
        assert_eq!(budget.used(), 100);
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        let producer = {
            let budget = budget.clone();
            std::thread::spawn(move || {
                let result = budget.acquire(30);
                done_tx.send(result.is_ok()).unwrap();
            })
        };
        assert!(
            done_rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "admitted over the cap"
        );
        // The engine read both chunks and leased 20 bytes' worth: still no room for 30.
        budget.report(100, 80);
        assert!(done_rx.recv_timeout(Duration::from_millis(200)).is_err());
        // It leased 30 more: room.
        budget.report(100, 50);
        assert!(done_rx.recv_timeout(Duration::from_secs(10)).unwrap());
        producer.join().unwrap();
        assert_eq!(budget.used(), 80);
    }

    #[test]
    fn a_chunk_larger_than_the_cap_goes_through_an_empty_queue() {
        let budget = QueueBudget::new(10);
        budget.acquire(1000).unwrap();
        assert_eq!(budget.used(), 1000);
        budget.report(1000, 0);
        assert_eq!(budget.used(), 0);
        budget.acquire(1000).unwrap();
    }

    #[test]
    fn closing_releases_waiting_producers_with_an_error() {
        let budget = Arc::new(QueueBudget::new(10));
        budget.acquire(10).unwrap();
        let producer = {
            let budget = budget.clone();
            std::thread::spawn(move || budget.acquire(5))
        };
        budget.close();
        assert!(matches!(producer.join().unwrap(), Err(Error::Stopped)));
        assert!(matches!(budget.acquire(1), Err(Error::Stopped)));
    }
}
