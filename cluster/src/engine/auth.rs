//! The engine's gate for protocol version 2: the handshake, sealed frames, and what an
//! unauthenticated peer gets (nothing).
//!
//! Invariant: with a secret configured, no message from a peer reaches the scheduler until
//! that peer's proof has checked out; a peer's `hello` is kept here, pending, and handed to the
//! scheduler only then. Every frame after the `welcome` is sealed both ways (the engine's
//! `send` seals whenever the peer has a session). The crypto itself is in
//! `ganger_core::protocol::secure`; this module only keeps the per-peer state.

use std::collections::{HashMap, HashSet, VecDeque};

use ganger_core::protocol::secure::{self, Channel, Handshake, Secret, Side, NONCE_LEN};
use ganger_core::protocol::{self, Challenge, Message, Reset};
use ganger_transport::frames::{hex, Incoming};
use tracing::{debug, warn};

use super::dispatch::{Dispatch, Turn};
use crate::scheduler::{Millis, WorkerId};

/// Handshakes in progress at once; beyond it the oldest is forgotten, so a flood of hellos
/// cannot grow memory without bound (a genuine worker forgotten this way says hello again).
const MAX_PENDING: usize = 1024;
/// Rejected routing ids remembered so that what they send next is dropped unanswered.
const MAX_SHUNNED: usize = 4096;

/// What the gate sends a worker without a secret.
pub(crate) const NEEDS_SECRET: &str = "this delegator requires authentication: give the worker \
     the cluster secret (--secret-file or GANGER_SECRET)";
/// What the gate sends a worker with a secret when the delegator has none.
pub(crate) const HAS_NO_SECRET: &str = "the worker offers authentication but this delegator has \
     no secret: give the delegator the same cluster secret (--secret-file or GANGER_SECRET), or \
     remove it from the worker";

/// Per-peer security state, owned by the engine.
pub(crate) struct Gate {
    secret: Option<Secret>,
    pending: HashMap<Vec<u8>, Pending>,
    sessions: HashMap<Vec<u8>, Channel>,
    shunned: HashSet<Vec<u8>>,
    shunned_order: VecDeque<Vec<u8>>,
    pending_timeout: Millis,
}

/// A `hello` whose proof has not come yet.
struct Pending {
    hello_frame: Vec<u8>,
    nonce_worker: [u8; NONCE_LEN],
    nonce_delegator: [u8; NONCE_LEN],
    since: Millis,
}

impl Gate {
    /// `pending_timeout` in milliseconds: how long a handshake may wait for its proof.
    pub(crate) fn new(secret: Option<Secret>, pending_timeout: Millis) -> Gate {
        Gate {
            secret,
            pending: HashMap::new(),
            sessions: HashMap::new(),
            shunned: HashSet::new(),
            shunned_order: VecDeque::new(),
            pending_timeout,
        }
    }

    /// Whether frames must pass through [`Dispatch::guarded`].
    pub(crate) fn guards(&self, frame: &[u8]) -> bool {
        self.secret.is_some() || secure::is_sealed(frame)
    }

    /// Whether a plaintext `hello` with a nonce must be refused (this delegator has no secret).
    pub(crate) fn refuses_nonce(&self) -> bool {
        self.secret.is_none()
    }

    /// Seals `frame` if the peer has a session; plaintext otherwise.
    pub(crate) fn outgoing(&mut self, peer: &[u8], frame: Vec<u8>) -> Vec<u8> {
        match self.sessions.get_mut(peer) {
            Some(channel) => channel.sealer.seal(&frame),
            None => frame,
        }
    }

    /// Forgets a peer's session (after its last, sealed, frame has been sent).
    pub(crate) fn forget(&mut self, peer: &[u8]) {
        self.sessions.remove(peer);
        self.pending.remove(peer);
    }

    /// Drops handshakes older than the timeout.
    pub(crate) fn expire(&mut self, now: Millis) -> usize {
        let timeout = self.pending_timeout;
        let before = self.pending.len();
        self.pending
            .retain(|_, p| now.saturating_sub(p.since) < timeout);
        before - self.pending.len()
    }

    fn shun(&mut self, peer: &[u8]) {
        self.pending.remove(peer);
        self.sessions.remove(peer);
        if self.shunned.insert(peer.to_vec()) {
            self.shunned_order.push_back(peer.to_vec());
            if self.shunned_order.len() > MAX_SHUNNED {
                if let Some(oldest) = self.shunned_order.pop_front() {
                    self.shunned.remove(&oldest);
                }
            }
        }
    }

    fn make_room(&mut self, now: Millis) {
        if self.pending.len() < MAX_PENDING {
            return;
        }
        self.expire(now);
        if self.pending.len() >= MAX_PENDING {
            let oldest = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.since)
                .map(|(peer, _)| peer.clone());
            if let Some(peer) = oldest {
                self.pending.remove(&peer);
            }
        }
    }
}

impl Dispatch {
    /// Handles a frame when a secret is configured or the frame is sealed.
    pub(super) fn guarded(
        &mut self,
        turn: &mut Turn<'_>,
        mut incoming: Incoming,
        worker: Option<WorkerId>,
    ) {
        let peer = incoming.peer.clone();
        if self.gate.shunned.contains(&peer) {
            self.dropped.unauthenticated += 1;
            return;
        }
        if secure::is_sealed(&incoming.body) {
            return self.sealed(turn, &mut incoming, worker);
        }
        let message = match protocol::decode(&incoming.body) {
            Ok(message) => message,
            Err(e) => {
                self.gate.pending.remove(&peer);
                return self.drop_frame(turn, &mut incoming, worker, e.kind(), e.to_string());
            }
        };
        match message {
            Message::Hello(hello) => {
                if let Some(old) = worker {
                    // The same connection starting over (after a reset or silence): its old
                    // registration and session end here, whatever the new proof turns out to be.
                    self.unregister(turn.scheduler, &peer, old);
                    self.gate.forget(&peer);
                }
                if hello.protocol != protocol::PROTOCOL_VERSION {
                    let reason = format!(
                        "protocol version mismatch: worker speaks version {}, this delegator \
                         speaks version {}",
                        hello.protocol,
                        protocol::PROTOCOL_VERSION
                    );
                    self.dropped.rejected += 1;
                    return self.refuse(turn, &mut incoming, reason, false);
                }
                let Some(nonce_worker) = hello.nonce else {
                    return self.refuse(turn, &mut incoming, NEEDS_SECRET.to_owned(), true);
                };
                let mut nonce_delegator = [0u8; NONCE_LEN];
                if let Err(e) = turn.out.nonce(&mut nonce_delegator) {
                    warn!("no randomness for a handshake, dropping the hello: {e}");
                    return;
                }
                self.gate.make_room(turn.now);
                self.gate.pending.insert(
                    peer.clone(),
                    Pending {
                        hello_frame: incoming.body.to_vec(),
                        nonce_worker,
                        nonce_delegator,
                        since: turn.now,
                    },
                );
                debug!(peer = %hex(&peer), "challenging a worker");
                let challenge = Challenge {
                    nonce: nonce_delegator,
                    hello_digest: Handshake::new(&incoming.body, &nonce_worker, &nonce_delegator)
                        .hello_digest(),
                };
                self.send(turn, &peer, &Message::Challenge(challenge));
            }
            Message::Auth(auth) => {
                let Some(pending) = self.gate.pending.remove(&peer) else {
                    self.dropped.unauthenticated += 1;
                    if let Some(worker) = worker {
                        // Plaintext inside its sealed session: the session ends, as for any
                        // other plaintext message (a reset alone would leave it registered).
                        self.warn_unauthenticated(&mut incoming, "auth");
                        let reason = "sent a plaintext message in a sealed session";
                        return turn.scheduler.worker_lost(worker, reason);
                    }
                    let reason = "unknown handshake: send hello first".to_owned();
                    return self.send(turn, &peer, &Message::Reset(Reset { reason }));
                };
                let secret = self.gate.secret.as_ref().expect("pending implies a secret");
                let handshake = Handshake::new(
                    &pending.hello_frame,
                    &pending.nonce_worker,
                    &pending.nonce_delegator,
                );
                if !handshake.verify(secret, &auth.proof) {
                    return self.refuse(
                        turn,
                        &mut incoming,
                        "authentication failed".to_owned(),
                        true,
                    );
                }
                let channel = handshake.channel(secret, Side::Delegator);
                self.gate.sessions.insert(peer.clone(), channel);
                // Only now does the scheduler see the hello; the welcome goes out sealed.
                let hello = protocol::decode(&pending.hello_frame)
                    .expect("a pending hello was decoded once already");
                debug!(peer = %incoming.peer_name(), "worker authenticated");
                if let Some(reason) = self.message(turn, &peer, None, hello) {
                    warn!(peer = %incoming.peer_name(), "rejected a worker: {reason}");
                }
                if self.worker_of(&peer).is_none() {
                    self.gate.forget(&peer);
                }
            }
            other => {
                // Plaintext from a peer with a session, or before its proof: never scheduled.
                let what = other.type_name();
                self.dropped.unauthenticated += 1;
                self.warn_unauthenticated(&mut incoming, what);
                if let Some(worker) = worker {
                    turn.scheduler
                        .worker_lost(worker, "sent a plaintext message in a sealed session");
                } else if !self.gate.pending.contains_key(&peer) {
                    let reason = "unknown worker: send hello first".to_owned();
                    self.send(turn, &peer, &Message::Reset(Reset { reason }));
                }
            }
        }
    }

    fn sealed(&mut self, turn: &mut Turn<'_>, incoming: &mut Incoming, worker: Option<WorkerId>) {
        let peer = incoming.peer.clone();
        let Some(channel) = self.gate.sessions.get_mut(&peer) else {
            // A worker whose connection was re-established has a new routing id, and so no
            // session here: a plaintext reset makes it shake hands again.
            self.dropped.unauthenticated += 1;
            self.warn_unauthenticated(incoming, "sealed");
            let reason = "unknown session: send hello first".to_owned();
            return self.send(turn, &peer, &Message::Reset(Reset { reason }));
        };
        let opened = channel.opener.open(&incoming.body);
        let frame = match opened {
            Ok(frame) => frame,
            Err(e) => {
                match e.kind() {
                    "replayed" => self.dropped.replayed += 1,
                    _ => self.dropped.bad_seal += 1,
                }
                if let Some(suppressed) = self.warn_limit.allow(std::time::Instant::now()) {
                    warn!(peer = %incoming.peer_name(), suppressed, "dropped a sealed frame: {e}");
                }
                if let Some(worker) = worker {
                    turn.scheduler.worker_lost(worker, &e.to_string());
                }
                return;
            }
        };
        let outcome = match protocol::decode(&frame) {
            Err(e) => Err((e.kind(), e.to_string())),
            // The handshake's messages travel in plaintext; sealed, they are a breach.
            Ok(Message::Hello(_) | Message::Auth(_)) => Err((
                "malformed",
                "a handshake message inside a sealed frame".into(),
            )),
            Ok(message) => Ok(self.message(turn, &peer, worker, message)),
        };
        self.conclude(turn, incoming, worker, outcome);
    }

    /// Rejects a peer in plaintext and drops whatever it sends next.
    fn refuse(
        &mut self,
        turn: &mut Turn<'_>,
        incoming: &mut Incoming,
        reason: String,
        unauthenticated: bool,
    ) {
        let peer = incoming.peer.clone();
        if unauthenticated {
            self.dropped.unauthenticated += 1;
        }
        if let Some(suppressed) = self.warn_limit.allow(std::time::Instant::now()) {
            warn!(peer = %incoming.peer_name(), suppressed, "rejected a worker: {reason}");
        }
        self.gate.forget(&peer);
        self.send_reject(turn, &peer, reason);
        self.gate.shun(&peer);
    }

    fn warn_unauthenticated(&mut self, incoming: &mut Incoming, what: &str) {
        if let Some(suppressed) = self.warn_limit.allow(std::time::Instant::now()) {
            warn!(
                peer = %incoming.peer_name(),
                suppressed,
                "dropped a {what} frame from an unauthenticated peer"
            );
        }
    }
}
