//! Connections that have not authenticated: how many are held, and for how long.
//!
//! Until a peer registers (with a secret: until it has proved it knows it), the delegator owes it
//! nothing, yet libzmq buffers whatever it sends, up to the transport's frame cap per connection.
//! The ROUTER's monitor reports each accepted connection with its file descriptor; a peer's
//! messages carry the descriptor of the connection they came on (`__fd`), so the engine can
//! tell registered workers' connections from the rest. At most `max_pending` unregistered
//! connections are held: one beyond that is cut as soon as it is accepted, and one still
//! unregistered after `deadline_ms` is cut then. Cutting is `shutdown(2)` on the descriptor,
//! which libzmq sees as the peer going away: it frees the connection's buffers and closes it.
//! The memory strangers can hold is therefore at most `max_pending` × the frame cap.
//!
//! [`Connections`] is the socket-free state machine, in logical milliseconds; the engine feeds
//! it the monitor's events and acts on what it returns.

use std::collections::{BTreeSet, HashMap, HashSet};

use tracing::warn;

use super::{monitor, Engine};
use crate::scheduler::Millis;

/// A connection's file descriptor, as libzmq reports it.
pub(crate) type Fd = i32;

/// The accepted connections, by whether their peer has registered.
#[derive(Debug)]
pub(crate) struct Connections {
    max_pending: usize,
    deadline_ms: Millis,
    /// Unregistered connections and when each was accepted.
    pending: HashMap<Fd, Millis>,
    /// The same, ordered by acceptance, for the deadline.
    by_age: BTreeSet<(Millis, Fd)>,
    /// Connections whose peer registered.
    registered: HashSet<Fd>,
    /// Connections cut and not yet reported closed.
    cut: HashSet<Fd>,
    /// Connections cut because `max_pending` others were waiting, ever.
    pub(crate) refused: u64,
    /// Connections cut because their peer did not register in time, ever.
    pub(crate) expired: u64,
}

impl Connections {
    /// Holds at most `max_pending` unregistered connections, each for at most `deadline_ms`.
    pub(crate) fn new(max_pending: usize, deadline_ms: Millis) -> Self {
        Connections {
            max_pending,
            deadline_ms,
            pending: HashMap::new(),
            by_age: BTreeSet::new(),
            registered: HashSet::new(),
            cut: HashSet::new(),
            refused: 0,
            expired: 0,
        }
    }

    /// A connection was accepted at `now`; returns true if it is to be cut at once.
    ///
    /// A descriptor is reused only after its connection closed, and the monitor reports the
    /// close first, so a descriptor still registered here means the peer's `hello` was read
    /// before the monitor's report of its connection: that report is ignored.
    pub(crate) fn accepted(&mut self, fd: Fd, now: Millis) -> bool {
        if self.registered.contains(&fd) {
            return false;
        }
        if let Some(at) = self.pending.remove(&fd) {
            self.by_age.remove(&(at, fd));
        }
        if self.pending.len() >= self.max_pending {
            self.refused += 1;
            self.cut.insert(fd);
            return true;
        }
        self.pending.insert(fd, now);
        self.by_age.insert((now, fd));
        false
    }

    /// The peer on `fd` registered: its connection is held for as long as it lasts (also when
    /// the monitor's report of it comes later).
    pub(crate) fn registered(&mut self, fd: Fd) {
        if let Some(at) = self.pending.remove(&fd) {
            self.by_age.remove(&(at, fd));
        }
        self.registered.insert(fd);
    }

    /// The connection on `fd` closed; returns false if it was a stranger's (pending or cut),
    /// true if it was a registered worker's or one this state never heard of.
    pub(crate) fn closed(&mut self, fd: Fd) -> bool {
        let stranger = self.cut.remove(&fd)
            | self.pending.remove(&fd).is_some_and(|at| {
                self.by_age.remove(&(at, fd));
                true
            });
        self.registered.remove(&fd);
        !stranger
    }

    /// Whether the connection on `fd` is held but its peer has not registered.
    #[cfg(test)]
    pub(crate) fn is_pending(&self, fd: Fd) -> bool {
        self.pending.contains_key(&fd)
    }

    /// The unregistered connections whose deadline has passed at `now`, to be cut; they are
    /// forgotten (the monitor's close event follows).
    pub(crate) fn expired(&mut self, now: Millis) -> Vec<Fd> {
        let mut cut = Vec::new();
        while let Some(&(at, fd)) = self.by_age.first() {
            if now < at + self.deadline_ms {
                break;
            }
            self.by_age.remove(&(at, fd));
            self.pending.remove(&fd);
            self.cut.insert(fd);
            cut.push(fd);
        }
        self.expired += cut.len() as u64;
        cut
    }

    /// When the oldest unregistered connection's deadline passes.
    pub(crate) fn next_deadline(&self) -> Option<Millis> {
        self.by_age.first().map(|&(at, _)| at + self.deadline_ms)
    }

    /// How many unregistered connections are held.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// Cuts the connection on `fd`: libzmq reads end-of-stream on it and closes it.
fn cut(fd: Fd) {
    // SAFETY: shutdown(2) on a descriptor number; it neither closes nor frees it, so at worst it
    // ends a connection that has already been replaced under the same number.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

impl Engine {
    /// Reads the ROUTER's monitor and applies its events in order; probes the registered
    /// workers when one of theirs may have closed (a stranger's close probes nobody).
    pub(super) fn apply_monitor_events(&mut self) {
        let mut worker_may_have_left = false;
        for event in self.monitor.read_events() {
            match event {
                monitor::Event::Accepted(fd) => self.connection_accepted(fd),
                monitor::Event::Disconnected(fd) => {
                    worker_may_have_left |= self.connections.closed(fd);
                }
            }
        }
        if worker_may_have_left {
            self.probes.disconnected(self.now());
        }
    }

    /// The peer on `fd` registered. Events first: the report of its connection (and of the
    /// close of any earlier connection on the same descriptor) came before its hello.
    pub(super) fn connection_registered(&mut self, fd: Fd) {
        self.apply_monitor_events();
        self.connections.registered(fd);
    }

    /// Acts on a connection the ROUTER accepted.
    pub(super) fn connection_accepted(&mut self, fd: Fd) {
        if self.connections.accepted(fd, self.now()) {
            cut(fd);
            if self.warn_limit.allow(std::time::Instant::now()).is_some() {
                warn!(
                    pending = self.connections.pending(),
                    refused = self.connections.refused,
                    "cut a new connection: {} others have not registered yet (--max-pending-connections)",
                    self.connections.pending()
                );
            }
        }
    }

    /// Cuts the unregistered connections whose deadline has passed.
    pub(super) fn expire_connections(&mut self) {
        let expired = self.connections.expired(self.now());
        if expired.is_empty() {
            return;
        }
        for &fd in &expired {
            cut(fd);
        }
        if self.warn_limit.allow(std::time::Instant::now()).is_some() {
            warn!(
                cut = expired.len(),
                expired = self.connections.expired,
                "cut connections whose peers did not register within {} ms",
                self.config.pending_connection_ms
            );
        }
    }
}

/// The descriptor of the connection a message came on (libzmq's `ZMQ_SRCFD` property).
pub(super) fn fd_of(body: &mut zmq::Message) -> Option<Fd> {
    body.gets("__fd").and_then(|fd| fd.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_the_cap_new_connections_are_refused_and_registered_ones_do_not_count() {
        let mut connections = Connections::new(2, 1_000);
        assert!(!connections.accepted(10, 0));
        assert!(!connections.accepted(11, 0));
        assert!(connections.accepted(12, 0), "a third pending one is cut");
        assert_eq!(connections.refused, 1);
        connections.registered(10);
        assert!(!connections.is_pending(10));
        assert!(
            !connections.accepted(12, 1),
            "room again once one registered"
        );
        assert_eq!(connections.pending(), 2);
        connections.closed(11);
        assert!(!connections.accepted(13, 2));
    }

    #[test]
    fn unregistered_connections_are_cut_at_their_deadline_in_order() {
        let mut connections = Connections::new(10, 1_000);
        connections.accepted(5, 0);
        connections.accepted(6, 300);
        connections.accepted(7, 600);
        connections.registered(6);
        assert_eq!(connections.next_deadline(), Some(1_000));
        assert_eq!(connections.expired(999), Vec::<Fd>::new());
        assert_eq!(connections.expired(1_700), vec![5, 7]);
        assert_eq!(connections.expired, 2);
        assert_eq!(connections.next_deadline(), None);
        // A registered connection is never cut, however long it lasts.
        assert!(connections.expired(1_000_000).is_empty());
    }

    #[test]
    fn only_a_workers_close_or_an_unknown_one_calls_for_probes() {
        let mut connections = Connections::new(1, 1_000);
        connections.accepted(5, 0);
        assert!(connections.accepted(6, 0), "beyond the cap");
        assert!(!connections.closed(5), "a pending stranger");
        assert!(!connections.closed(6), "a stranger cut at once");
        assert!(!connections.accepted(7, 0));
        connections.registered(7);
        assert!(connections.closed(7), "a worker");
        assert!(connections.closed(8), "never heard of");
        connections.accepted(9, 0);
        assert_eq!(connections.expired(2_000), vec![9]);
        assert!(!connections.closed(9), "a stranger cut at its deadline");
    }

    #[test]
    fn a_closed_descriptor_reused_for_a_new_connection_starts_afresh() {
        let mut connections = Connections::new(10, 1_000);
        connections.accepted(5, 0);
        connections.registered(5);
        connections.closed(5);
        connections.accepted(5, 2_000);
        assert!(connections.is_pending(5));
        assert_eq!(connections.expired(3_000), vec![5]);
    }

    #[test]
    fn a_report_of_a_connection_whose_peer_already_registered_is_ignored() {
        let mut connections = Connections::new(1, 1_000);
        // The hello was read before the monitor's report of the connection it came on.
        connections.registered(5);
        assert!(!connections.accepted(5, 0));
        assert!(!connections.is_pending(5));
        assert!(
            connections.expired(5_000).is_empty(),
            "a worker is never cut"
        );
        assert!(!connections.accepted(6, 0), "and takes no pending slot");
    }
}
