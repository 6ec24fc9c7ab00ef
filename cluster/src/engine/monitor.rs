//! Fast death notice: a ZeroMQ monitor on the ROUTER, and the probe schedule it drives.
//!
//! When a worker's process dies its kernel closes the TCP connection, and libzmq reports
//! `DISCONNECTED` on the ROUTER's monitor at once. The event names a file descriptor, not a
//! routing id, so the engine cannot tell which worker it was; instead it probes every registered
//! worker with a heartbeat at a few short delays. Once the ROUTER has processed the closed
//! pipe it forgets that peer, and the mandatory send to it fails with `EHOSTUNREACH`: the engine
//! then drops the worker and requeues its units, long before a heartbeat timeout. Live workers
//! ignore the extra heartbeats. A silent partition closes no connection; the heartbeat timeout
//! still catches it.
//!
//! Socket: PAIR, connected by the engine thread to the `inproc://` endpoint that libzmq's monitor
//! of the ROUTER binds (in [`Monitor::attach`], on the delegator's context). It is owned by the
//! engine thread and polled in the same `zmq::poll` as the ROUTER and the wake pipe. It closes
//! with linger 0 when the engine returns, just before the ROUTER and the context.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use ganger_transport::WakeReceiver;
use tracing::warn;

use crate::scheduler::Millis;

/// Delays after a disconnect event at which registered workers are probed, milliseconds.
/// The first probe usually comes too early (libzmq hands the closed pipe to the ROUTER a moment
/// after it reports the event); the later ones cover a busy engine or I/O thread, all within the
/// 200 ms in which a dead worker's units are to be requeued.
pub(crate) const PROBE_DELAYS_MS: [Millis; 6] = [0, 5, 20, 50, 100, 175];

/// When to probe registered workers next: a socket-free state machine in logical milliseconds.
#[derive(Debug, Default)]
pub(crate) struct ProbeSchedule {
    due: BTreeSet<Millis>,
}

impl ProbeSchedule {
    /// A connection closed at `now`: probe at each of [`PROBE_DELAYS_MS`] after it.
    pub(crate) fn disconnected(&mut self, now: Millis) {
        self.due
            .extend(PROBE_DELAYS_MS.iter().map(|delay| now + delay));
    }

    /// The earliest pending probe, if any.
    pub(crate) fn next_due(&self) -> Option<Millis> {
        self.due.first().copied()
    }

    /// True if a probe is due at `now`; every probe due by then is consumed (one probe of every
    /// worker serves them all).
    pub(crate) fn take_due(&mut self, now: Millis) -> bool {
        let later = self.due.split_off(&(now + 1));
        let due = !self.due.is_empty();
        self.due = later;
        due
    }
}

/// The receiving end of the ROUTER's monitor.
pub(crate) struct Monitor {
    socket: zmq::Socket,
}

impl Monitor {
    /// Starts monitoring `router` for closed connections; the PAIR end lives on `context`.
    pub(crate) fn attach(context: &zmq::Context, router: &zmq::Socket) -> zmq::Result<Monitor> {
        // Unique per delegator, in case several share a context one day.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let endpoint = format!(
            "inproc://ganger-router-monitor-{}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let events = zmq::SocketEvent::DISCONNECTED.to_raw() | zmq::SocketEvent::ACCEPTED.to_raw();
        router.monitor(&endpoint, i32::from(events))?;
        let socket = context.socket(zmq::PAIR)?;
        socket.set_linger(0)?;
        // No limit: an event dropped under a flood of connections would leave one uncounted.
        socket.set_rcvhwm(0)?;
        socket.connect(&endpoint)?;
        Ok(Monitor { socket })
    }

    /// Reads every waiting event, in order.
    pub(crate) fn read_events(&self) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            match self.socket.recv_multipart(zmq::DONTWAIT) {
                Ok(parts) => {
                    let event = match parts.first().and_then(|p| event_of(p)) {
                        Some((e, fd)) if e == zmq::SocketEvent::ACCEPTED.to_raw() => {
                            Event::Accepted(fd as i32)
                        }
                        Some((e, fd)) if e == zmq::SocketEvent::DISCONNECTED.to_raw() => {
                            Event::Disconnected(fd as i32)
                        }
                        _ => continue,
                    };
                    events.push(event);
                }
                Err(zmq::Error::EAGAIN) => return events,
                Err(e) => {
                    warn!("reading the ROUTER's monitor failed: {e}");
                    return events;
                }
            }
        }
    }
}

/// What the ROUTER's monitor reports, with the connection's file descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// A peer's connection was accepted.
    Accepted(i32),
    /// A connection closed.
    Disconnected(i32),
}

/// The event number and value (for these events, the descriptor) of a monitor message's first
/// frame (16-bit event, then a 32-bit value, in native byte order); None if it is not one.
fn event_of(frame: &[u8]) -> Option<(u16, u32)> {
    if frame.len() != 6 {
        return None;
    }
    let event = u16::from_ne_bytes([frame[0], frame[1]]);
    let value = u32::from_ne_bytes([frame[2], frame[3], frame[4], frame[5]]);
    Some((event, value))
}

/// What [`poll`] found ready.
#[derive(Debug)]
pub(crate) struct Ready {
    /// The ROUTER's ready events.
    pub(crate) router: zmq::PollEvents,
    /// The monitor has events.
    pub(crate) monitor: bool,
    /// The wake pipe fired (or a signal interrupted the wait).
    pub(crate) woken: bool,
}

/// Sleeps until the ROUTER is readable, the monitor has an event, the waker fires, or `timeout`
/// (milliseconds) passes.
pub(crate) fn poll(
    router: &zmq::Socket,
    monitor: &Monitor,
    wake_rx: &WakeReceiver,
    timeout_ms: i64,
) -> Ready {
    let mut items = [
        router.as_poll_item(zmq::POLLIN),
        monitor.socket.as_poll_item(zmq::POLLIN),
        zmq::PollItem::from_fd(wake_rx.fd(), zmq::POLLIN),
    ];
    match zmq::poll(&mut items, timeout_ms) {
        Ok(_) => Ready {
            router: items[0].get_revents(),
            monitor: items[1].is_readable(),
            woken: items[2].is_readable(),
        },
        Err(zmq::Error::EINTR) => Ready {
            router: zmq::PollEvents::empty(),
            monitor: false,
            woken: true,
        },
        Err(e) => {
            warn!("poll failed: {e}");
            // Look at everything rather than sleep on a poll that keeps failing.
            Ready {
                router: zmq::POLLIN,
                monitor: true,
                woken: true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disconnect_schedules_probes_at_each_delay_and_each_is_taken_once() {
        let mut probes = ProbeSchedule::default();
        assert_eq!(probes.next_due(), None);
        assert!(!probes.take_due(1_000));
        probes.disconnected(1_000);
        assert_eq!(probes.next_due(), Some(1_000));
        assert!(probes.take_due(1_000));
        assert!(!probes.take_due(1_000), "taken once");
        assert_eq!(probes.next_due(), Some(1_000 + PROBE_DELAYS_MS[1]));
        assert!(!probes.take_due(1_000 + PROBE_DELAYS_MS[1] - 1));
        // A late turn consumes every probe it is late for with one probe.
        assert!(probes.take_due(1_000 + PROBE_DELAYS_MS[2]));
        assert_eq!(probes.next_due(), Some(1_000 + PROBE_DELAYS_MS[3]));
        assert!(probes.take_due(5_000));
        assert_eq!(probes.next_due(), None);
    }

    #[test]
    fn overlapping_disconnects_merge_their_probes() {
        let mut probes = ProbeSchedule::default();
        probes.disconnected(0);
        probes.disconnected(PROBE_DELAYS_MS[1]);
        // The second disconnect's first probe coincides with the first's second.
        let mut taken = 0;
        let mut now = 0;
        while let Some(due) = probes.next_due() {
            now = now.max(due);
            assert!(probes.take_due(now));
            taken += 1;
        }
        assert_eq!(taken, 2 * PROBE_DELAYS_MS.len() - 1);
    }

    #[test]
    fn only_six_byte_frames_are_events() {
        let disconnected = zmq::SocketEvent::DISCONNECTED.to_raw();
        let mut frame = disconnected.to_ne_bytes().to_vec();
        frame.extend_from_slice(&7u32.to_ne_bytes());
        assert_eq!(event_of(&frame), Some((disconnected, 7)));
        assert_eq!(event_of(&frame[..2]), None);
        assert_eq!(event_of(b""), None);
        assert_eq!(event_of(b"tcp://127.0.0.1:5555"), None);
    }
}
