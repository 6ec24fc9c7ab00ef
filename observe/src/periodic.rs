//! A background thread that does something every period and stops the moment its handle is
//! dropped, rather than after whatever is left of its sleep.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};

/// A thread calling a closure at once and then every period, until this handle is dropped.
///
/// Dropping it wakes the thread at once, lets it make one last call, and joins it: a run that
/// ends does not wait out the rest of a period (a status poller sleeping half a second used to
/// hold a finished run that long).
#[derive(Debug)]
pub struct Periodic {
    stop_tx: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Periodic {
    /// Spawns the thread `name`, calling `step(last)` at once and then every `period`.
    ///
    /// `last` is true on the final call, made when the handle is dropped; `step` returning
    /// false ends the thread early.
    pub fn spawn(
        name: &str,
        period: Duration,
        mut step: impl FnMut(bool) -> bool + Send + 'static,
    ) -> std::io::Result<Periodic> {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut last = false;
                while step(last) && !last {
                    // Nothing is ever sent: the handle's drop disconnects the channel.
                    last = !matches!(stop_rx.recv_timeout(period), Err(RecvTimeoutError::Timeout));
                }
            })?;
        Ok(Periodic {
            stop_tx: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Periodic {
    fn drop(&mut self) {
        drop(self.stop_tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use super::*;

    #[test]
    fn dropping_wakes_the_thread_for_one_last_call_without_waiting_out_the_period() {
        let calls: Arc<Mutex<Vec<bool>>> = Arc::default();
        let seen = calls.clone();
        let periodic = Periodic::spawn("test-periodic", Duration::from_secs(3600), move |last| {
            seen.lock().unwrap().push(last);
            true
        })
        .unwrap();
        // The first call is made at once.
        let deadline = Instant::now() + Duration::from_secs(60);
        while calls.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "no first call");
            std::thread::yield_now();
        }
        // With an hour's period, a drop that returns within the minute woke the thread (a
        // guard against waiting out the period, not a measure of speed).
        let (dropped_tx, dropped_rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            drop(periodic);
            let _ = dropped_tx.send(());
        });
        assert!(
            dropped_rx.recv_timeout(Duration::from_secs(60)).is_ok(),
            "the drop waited out the period"
        );
        assert_eq!(*calls.lock().unwrap(), vec![false, true]);
    }

    #[test]
    fn a_step_returning_false_ends_the_thread_and_the_drop_still_joins() {
        let calls: Arc<Mutex<u32>> = Arc::default();
        let seen = calls.clone();
        let periodic = Periodic::spawn("test-periodic", Duration::from_millis(1), move |_| {
            let mut n = seen.lock().unwrap();
            *n += 1;
            *n < 3
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while *calls.lock().unwrap() < 3 {
            assert!(Instant::now() < deadline, "fewer than 3 calls");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(periodic);
        assert_eq!(*calls.lock().unwrap(), 3);
    }
}
