//! Waking a loop that sleeps in `zmq::poll` from another thread.
//!
//! A ZeroMQ socket may only be used by the thread that owns it, so other threads hand their
//! requests over a channel and then write one byte to a Unix socket pair whose read end the
//! loop polls next to its ZeroMQ socket. A flag keeps it to one byte per wake-up, however many
//! requests are queued.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The sending half: cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct Waker {
    shared: Arc<Shared>,
}

/// The receiving half, owned by the loop that polls it.
#[derive(Debug)]
pub struct WakeReceiver {
    reader: UnixStream,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    writer: UnixStream,
    pending: AtomicBool,
}

/// Creates a connected waker and receiver.
pub fn wake_pair() -> std::io::Result<(Waker, WakeReceiver)> {
    let (reader, writer) = UnixStream::pair()?;
    reader.set_nonblocking(true)?;
    writer.set_nonblocking(true)?;
    let shared = Arc::new(Shared {
        writer,
        pending: AtomicBool::new(false),
    });
    Ok((
        Waker {
            shared: shared.clone(),
        },
        WakeReceiver { reader, shared },
    ))
}

impl Waker {
    /// Identifies the loop this waker wakes: equal for every clone of one waker, distinct
    /// between wakers alive at the same time.
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }

    /// Wakes the loop; call after queueing whatever it should look at.
    pub fn wake(&self) {
        if !self.shared.pending.swap(true, Ordering::SeqCst) {
            // A full pipe already holds a wake-up, and a closed one means the loop is gone:
            // neither needs handling.
            let _ = (&self.shared.writer).write(&[1]);
        }
    }
}

impl WakeReceiver {
    /// The descriptor to poll for readability.
    pub fn fd(&self) -> RawFd {
        self.reader.as_raw_fd()
    }

    /// Clears pending wake-ups; call before draining the queues they announce.
    ///
    /// The pipe is emptied before the flag is cleared: clearing first would let a wake-up that
    /// lands in between write a byte that this read then swallows, leaving the flag set with no
    /// byte in the pipe, and every later wake-up would be skipped.
    pub fn drain(&mut self) {
        let mut buf = [0u8; 64];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        self.shared.pending.store(false, Ordering::SeqCst);
    }
}

/// Sleeps until `socket` has one of `events`, the waker fires, or `timeout` passes.
/// Returns the socket's ready events and whether the loop was woken (a signal interrupting
/// the wait counts as a wake-up, so the loop re-reads its flags).
pub fn poll(
    socket: &zmq::Socket,
    events: zmq::PollEvents,
    wake_rx: &WakeReceiver,
    timeout: std::time::Duration,
) -> (zmq::PollEvents, bool) {
    let mut items = [
        socket.as_poll_item(events),
        zmq::PollItem::from_fd(wake_rx.fd(), zmq::POLLIN),
    ];
    match zmq::poll(&mut items, timeout.as_millis().min(i64::MAX as u128) as i64) {
        Ok(_) => (items[0].get_revents(), items[1].is_readable()),
        Err(zmq::Error::EINTR) => (zmq::PollEvents::empty(), true),
        Err(e) => {
            tracing::warn!("poll failed: {e}");
            (events, true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a wake-up racing with `drain` must never leave the flag set with an empty
    /// pipe, or the loop sleeps through every later wake-up. A producer wakes after each item; the
    /// consumer must see every item promptly, never by waiting out its poll timeout.
    #[test]
    fn no_wake_up_is_lost_when_racing_with_drain() {
        let (waker, mut receiver) = wake_pair().unwrap();
        let (items_tx, items_rx) = crossbeam_channel::unbounded();
        let n = 20_000;
        let producer = std::thread::spawn(move || {
            for i in 0..n {
                items_tx.send(i).unwrap();
                waker.wake();
            }
        });
        let mut received = 0;
        let mut timeouts = 0;
        while received < n {
            let mut items = [zmq::PollItem::from_fd(receiver.fd(), zmq::POLLIN)];
            // A lost wake-up shows as a poll that times out while items wait in the channel.
            if zmq::poll(&mut items, 5_000).unwrap() == 0 && !items_rx.is_empty() {
                timeouts += 1;
            }
            receiver.drain();
            received += items_rx.try_iter().count();
        }
        producer.join().unwrap();
        assert_eq!(timeouts, 0, "wake-ups were lost");
    }

    #[test]
    fn a_wake_makes_the_fd_readable_once() {
        let (waker, mut receiver) = wake_pair().unwrap();
        let readable = |r: &WakeReceiver| {
            let mut items = [zmq::PollItem::from_fd(r.fd(), zmq::POLLIN)];
            zmq::poll(&mut items, 0).unwrap() == 1
        };
        assert!(!readable(&receiver));
        waker.wake();
        waker.clone().wake();
        assert!(readable(&receiver));
        receiver.drain();
        assert!(!readable(&receiver));
        std::thread::spawn(move || waker.wake()).join().unwrap();
        assert!(readable(&receiver));
    }
}
