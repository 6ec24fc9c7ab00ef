//! What the delegator does with a frame from a peer, without a socket.
//!
//! [`Dispatch`] owns everything that decides a peer's fate: the authentication gate
//! ([`auth::Gate`]), the map between routing ids and registered workers, and the counters of
//! dropped frames. It acts on a [`Scheduler`] it is lent for the call and answers peers through
//! an [`Outbox`]: the engine's writes to the ROUTER (sealing already done here), the harness's
//! a record its simulated workers read. The engine and `crate::harness` (property tests and the
//! fuzz target) call the same code, so what is fuzzed is what runs.
//!
//! Invariants: a routing id maps to at most one worker and back (`peers` and `addresses` are
//! inverse maps of the same pairs); with a secret, no message reaches the scheduler before its
//! peer's proof checked out (see [`auth`]); every frame sent to a peer with a session is sealed.

use std::time::Instant;

use ganger_core::protocol::secure::NONCE_LEN;
use ganger_core::protocol::{self, Message, Reject, Reset};
use ganger_transport::frames::{hex, Incoming, SendError};
use ganger_transport::RateLimited;
use rustc_hash::FxHashMap;
use tracing::{debug, info, warn};

use super::auth::{self, Gate};
use crate::scheduler::{BatchId, Millis, Scheduler, WorkerId};
use crate::DroppedFrames;

/// The largest frame a peer that has not registered may send (its `hello`, or `auth`).
pub(crate) const MAX_UNREGISTERED_FRAME: usize = 64 << 10;

/// Where [`Dispatch`] sends frames and finds what it needs from outside.
pub(crate) trait Outbox {
    /// Sends one frame (already sealed where the peer has a session) to the peer.
    fn send(&mut self, peer: &[u8], frame: Vec<u8>) -> Result<(), SendError>;
    /// Fills a handshake's nonce; an error drops the `hello` it was for.
    fn nonce(&mut self, nonce: &mut [u8; NONCE_LEN]) -> Result<(), String>;
    /// Results for `batch` arrived (the engine times its round trip).
    fn answered(&mut self, _batch: BatchId) {}
}

/// The gate, the peer table and the dropped-frame counters; see the module documentation.
pub(crate) struct Dispatch {
    pub(super) gate: Gate,
    peers: FxHashMap<Vec<u8>, WorkerId>,
    addresses: FxHashMap<WorkerId, Vec<u8>>,
    pub(super) dropped: DroppedFrames,
    pub(super) warn_limit: RateLimited,
}

/// What one call works on: the scheduler, the outbox and the engine's clock.
pub(crate) struct Turn<'a> {
    /// The scheduler messages act on.
    pub(crate) scheduler: &'a mut Scheduler,
    /// Where answers go.
    pub(crate) out: &'a mut dyn Outbox,
    /// The engine's clock (milliseconds since it started).
    pub(crate) now: Millis,
}

impl Dispatch {
    pub(crate) fn new(gate: Gate) -> Dispatch {
        Dispatch {
            gate,
            peers: FxHashMap::default(),
            addresses: FxHashMap::default(),
            dropped: DroppedFrames::default(),
            warn_limit: RateLimited::new(std::time::Duration::from_secs(1)),
        }
    }

    /// The worker registered under a routing id.
    pub(crate) fn worker_of(&self, peer: &[u8]) -> Option<WorkerId> {
        self.peers.get(peer).copied()
    }

    /// Every registered worker.
    pub(crate) fn workers(&self) -> Vec<WorkerId> {
        self.addresses.keys().copied().collect()
    }

    /// Frames dropped so far, by reason.
    pub(crate) fn dropped(&self) -> &DroppedFrames {
        &self.dropped
    }

    /// Drops handshakes older than the gate's timeout.
    pub(crate) fn expire(&mut self, now: Millis) -> usize {
        self.gate.expire(now)
    }

    /// Whether `peers` and `addresses` are inverse maps, and every worker in them is the
    /// scheduler's; for tests and the harness.
    #[cfg(any(test, feature = "harness"))]
    pub(crate) fn check_peer_table(&self, scheduler: &Scheduler) -> Result<(), String> {
        let inverse = self.peers.len() == self.addresses.len()
            && self
                .peers
                .iter()
                .all(|(peer, w)| self.addresses.get(w).is_some_and(|p| p == peer));
        if !inverse {
            return Err(format!(
                "peer tables disagree: {:?} against {:?}",
                self.peers, self.addresses
            ));
        }
        match self.addresses.keys().find(|&&w| !scheduler.has_worker(w)) {
            Some(w) => Err(format!("worker {w} is mapped but the scheduler has none")),
            None => Ok(()),
        }
    }

    /// One frame from a peer: the size limits, the gate, the decoder, then the scheduler.
    pub(crate) fn frame(&mut self, turn: &mut Turn<'_>, mut incoming: Incoming) {
        let worker = self.worker_of(&incoming.peer);
        if incoming.parts != 1 {
            let reason = format!("expected 1 body frame, got {}", incoming.parts);
            return self.drop_frame(turn, &mut incoming, worker, "malformed", reason);
        }
        let max_frame = turn.scheduler.config().max_frame;
        if incoming.body.len() as u64 > max_frame {
            let reason = format!(
                "frame of {} bytes exceeds the limit of {max_frame} bytes",
                incoming.body.len(),
            );
            return self.drop_frame(turn, &mut incoming, worker, "oversize", reason);
        }
        if worker.is_none() && incoming.body.len() > MAX_UNREGISTERED_FRAME {
            // A hello is kept until its handshake ends: a stranger's must be small.
            let reason = format!(
                "frame of {} bytes from an unregistered peer exceeds the limit of \
                 {MAX_UNREGISTERED_FRAME} bytes",
                incoming.body.len(),
            );
            return self.drop_frame(turn, &mut incoming, worker, "oversize", reason);
        }
        if self.gate.guards(&incoming.body) {
            return self.guarded(turn, incoming, worker);
        }
        // The decoded message borrows from the frame, so errors are resolved before acting on it.
        let outcome = match protocol::decode(&incoming.body) {
            Err(e) => Err((e.kind(), e.to_string())),
            Ok(message) => Ok(self.message(turn, &incoming.peer, worker, message)),
        };
        self.conclude(turn, &mut incoming, worker, outcome);
    }

    /// Logs a rejection, or drops the frame whose decoding failed.
    pub(super) fn conclude(
        &mut self,
        turn: &mut Turn<'_>,
        incoming: &mut Incoming,
        worker: Option<WorkerId>,
        outcome: Result<Option<String>, (&'static str, String)>,
    ) {
        match outcome {
            Err((kind, reason)) => self.drop_frame(turn, incoming, worker, kind, reason),
            Ok(Some(rejection)) => {
                warn!(peer = %incoming.peer_name(), "rejected a worker: {rejection}");
            }
            Ok(None) => {}
        }
    }

    /// Acts on a decoded message; returns the reason if it rejected the peer, for the log.
    pub(super) fn message(
        &mut self,
        turn: &mut Turn<'_>,
        peer: &[u8],
        worker: Option<WorkerId>,
        message: Message<'_>,
    ) -> Option<String> {
        let now = turn.now;
        match (worker, message) {
            (Some(worker), Message::Results(results)) => {
                turn.out.answered(results.batch);
                turn.scheduler.results(now, worker, &results)
            }
            (Some(worker), Message::Heartbeat) => turn.scheduler.heard_from(now, worker),
            (Some(worker), Message::Goodbye(goodbye)) => {
                info!(
                    worker,
                    returned = goodbye.returned.len(),
                    "worker said goodbye"
                );
                turn.scheduler.goodbye(now, worker, &goodbye)
            }
            (_, Message::Hello(hello)) if hello.nonce.is_some() && self.gate.refuses_nonce() => {
                self.dropped.rejected += 1;
                let reason = auth::HAS_NO_SECRET.to_owned();
                self.send_reject(turn, peer, reason.clone());
                return Some(reason);
            }
            (registered, Message::Hello(hello)) => {
                if let Some(old) = registered {
                    // Forget the old registration now, so that the mapping made below for the
                    // new one survives the scheduler's `Forget` of the old.
                    self.unregister(turn.scheduler, peer, old);
                }
                match turn.scheduler.hello(now, &hello) {
                    Ok(welcome) => {
                        info!(
                            worker = welcome.worker_id,
                            name = %hello.name,
                            host = %hello.host,
                            job_types = ?hello.job_types,
                            slots = hello.slots,
                            "worker registered"
                        );
                        self.peers.insert(peer.to_vec(), welcome.worker_id);
                        self.addresses.insert(welcome.worker_id, peer.to_vec());
                        self.send(turn, peer, &Message::Welcome(welcome));
                    }
                    Err(reason) => {
                        self.dropped.rejected += 1;
                        self.send_reject(turn, peer, reason.clone());
                        return Some(reason);
                    }
                }
            }
            (None, Message::Heartbeat | Message::Results(_) | Message::Goodbye(_)) => {
                self.dropped.unregistered += 1;
                debug!(peer = %hex(peer), "message from an unregistered peer; asking it to register");
                let reason = "unknown worker: send hello first".to_owned();
                self.send(turn, peer, &Message::Reset(Reset { reason }));
            }
            (registered, other) => {
                // Delegator-to-worker messages have no business arriving here.
                let reason = format!("unexpected `{}` message from a worker", other.type_name());
                self.dropped.unexpected += 1;
                if let Some(worker) = registered {
                    turn.scheduler.worker_lost(worker, &reason);
                } else {
                    self.send_reject(turn, peer, reason);
                }
            }
        }
        None
    }

    /// Ends a registration the peer is replacing: the scheduler loses the worker now, and the
    /// maps forget it before its `Forget` comes back.
    pub(super) fn unregister(&mut self, scheduler: &mut Scheduler, peer: &[u8], old: WorkerId) {
        scheduler.worker_lost(old, "registered again");
        self.addresses.remove(&old);
        self.peers.remove(peer);
    }

    /// Drops a frame that broke the protocol, counts it, and warns (rate-limited).
    pub(super) fn drop_frame(
        &mut self,
        turn: &mut Turn<'_>,
        incoming: &mut Incoming,
        worker: Option<WorkerId>,
        kind: &'static str,
        reason: String,
    ) {
        match kind {
            "oversize" => self.dropped.oversize += 1,
            "unknown_type" => self.dropped.unknown_type += 1,
            _ => self.dropped.malformed += 1,
        }
        if let Some(suppressed) = self.warn_limit.allow(Instant::now()) {
            warn!(
                peer = %incoming.peer_name(),
                suppressed,
                "dropped a {kind} frame: {reason}"
            );
        }
        match worker {
            // A registered worker that breaks the protocol starts over; its units go elsewhere.
            Some(worker) => turn.scheduler.worker_lost(worker, &reason),
            None => self.send_reject(turn, &incoming.peer, reason),
        }
    }

    /// Carries out the scheduler's `Forget`: the peer is told why (unless it left), and its
    /// mapping and session end.
    pub(crate) fn forget(&mut self, out: &mut dyn Outbox, worker: WorkerId, reason: String) {
        let Some(peer) = self.addresses.remove(&worker) else {
            return;
        };
        self.peers.remove(&peer);
        if reason != "said goodbye" {
            info!(worker, "dropped worker: {reason}");
            self.send_message(out, &peer, &Message::Reset(Reset { reason }));
        } else {
            info!(worker, "worker left");
        }
        self.gate.forget(&peer);
    }

    /// Sends an encoded frame to a registered worker; one whose connection is gone is reported
    /// to the scheduler (a faster death notice than any heartbeat timeout).
    pub(crate) fn send_to(&mut self, turn: &mut Turn<'_>, worker: WorkerId, frame: Vec<u8>) {
        let Some(peer) = self.addresses.get(&worker) else {
            return;
        };
        let frame = self.gate.outgoing(peer, frame);
        match turn.out.send(peer, frame) {
            Ok(()) => {}
            Err(SendError::Unreachable) => turn.scheduler.worker_disconnected(worker),
            Err(e) => warn!(worker, "send failed: {e}"),
        }
    }

    /// Tells every registered worker to start over (they find the next delegator on their own).
    pub(crate) fn farewell(&mut self, out: &mut dyn Outbox) {
        let peers: Vec<Vec<u8>> = self.addresses.values().cloned().collect();
        for peer in peers {
            let reason = "the delegator is shutting down".to_owned();
            self.send_message(out, &peer, &Message::Reset(Reset { reason }));
        }
    }

    pub(super) fn send(&mut self, turn: &mut Turn<'_>, peer: &[u8], message: &Message<'_>) {
        self.send_message(turn.out, peer, message);
    }

    fn send_message(&mut self, out: &mut dyn Outbox, peer: &[u8], message: &Message<'_>) {
        let mut frame = Vec::with_capacity(64);
        protocol::encode(message, &mut frame);
        let frame = self.gate.outgoing(peer, frame);
        if let Err(e) = out.send(peer, frame) {
            debug!(peer = %hex(peer), "could not send {}: {e}", message.type_name());
        }
    }

    pub(super) fn send_reject(&mut self, turn: &mut Turn<'_>, peer: &[u8], reason: String) {
        let reject = Reject {
            reason,
            protocol: protocol::PROTOCOL_VERSION,
        };
        self.send(turn, peer, &Message::Reject(reject));
    }
}
