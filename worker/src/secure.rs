//! The worker's half of protocol version 2's handshake, and its session keys.
//!
//! Kept apart from the session loop: the loop asks for a nonce, reports the `hello` it sent,
//! hands over a `challenge`, and seals and opens through the [`Channel`] once there is one.
//! The crypto is in `ganger_core::protocol::secure`.

use ganger_core::protocol::secure::{Channel, Handshake, Secret, Side, NONCE_LEN};
use ganger_core::protocol::{Auth, Challenge, Message};

/// A worker's secret and where its handshake stands.
pub(crate) struct Security {
    secret: Secret,
    /// The nonce of the hello being built.
    next_nonce: [u8; NONCE_LEN],
    /// The latest hello sent and its nonce, until a challenge to it comes.
    hello: Option<(Vec<u8>, [u8; NONCE_LEN])>,
    /// Session keys, from the answer to a challenge until the session ends.
    channel: Option<Channel>,
}

impl Security {
    pub(crate) fn new(secret: Secret) -> Security {
        Security {
            secret,
            next_nonce: [0; NONCE_LEN],
            hello: None,
            channel: None,
        }
    }

    /// A fresh nonce from the operating system for the next hello.
    pub(crate) fn nonce(&mut self) -> Result<[u8; NONCE_LEN], getrandom::Error> {
        getrandom::fill(&mut self.next_nonce)?;
        Ok(self.next_nonce)
    }

    /// Remembers the hello just sent (with the last [`nonce`](Self::nonce)); any earlier
    /// session is over.
    pub(crate) fn said_hello(&mut self, frame: &[u8]) {
        self.hello = Some((frame.to_vec(), self.next_nonce));
        self.channel = None;
    }

    /// The `auth` answering a challenge to the latest hello, and the session keys; `None` for a
    /// challenge to an earlier hello (the worker said hello again before it came).
    pub(crate) fn answer(&mut self, challenge: &Challenge) -> Option<Message<'static>> {
        let (frame, nonce_worker) = self.hello.as_ref()?;
        let handshake = Handshake::new(frame, nonce_worker, &challenge.nonce);
        if handshake.hello_digest() != challenge.hello_digest {
            return None;
        }
        let proof = handshake.proof(&self.secret);
        self.channel = Some(handshake.channel(&self.secret, Side::Worker));
        self.hello = None;
        Some(Message::Auth(Auth { proof }))
    }

    /// The session keys, once a challenge has been answered.
    pub(crate) fn channel(&mut self) -> Option<&mut Channel> {
        self.channel.as_mut()
    }

    /// Forgets the session keys and any handshake in progress.
    pub(crate) fn end_session(&mut self) {
        self.channel = None;
        self.hello = None;
    }
}
