//! Frames to the delegator: queued in order, sealed once the session is authenticated, and
//! sent as the socket takes them.

use std::time::Instant;

use ganger_core::protocol::{self, Message};
use ganger_transport::frames::{self, SendError};
use tracing::debug;

use crate::secure::Security;

use super::Session;

impl Session {
    pub(super) fn queue(&mut self, message: &Message<'_>) {
        let mut frame = Vec::with_capacity(32);
        protocol::encode(message, &mut frame);
        let frame = self.seal(frame);
        self.outbox.push_back(frame);
        self.flush();
    }

    /// Queues a handshake message, never sealed.
    pub(super) fn send_plain(&mut self, message: Message<'_>) {
        let mut frame = Vec::with_capacity(64);
        protocol::encode(&message, &mut frame);
        self.outbox.push_back(frame);
        self.flush();
    }

    /// Seals a frame if the session is authenticated. Frames enter the outbox in the order
    /// they leave, so their counters increase on the wire.
    pub(super) fn seal(&mut self, frame: Vec<u8>) -> Vec<u8> {
        match self.security.as_mut().and_then(Security::channel) {
            Some(channel) => channel.sealer.seal(&frame),
            None => frame,
        }
    }

    pub(super) fn flush(&mut self) {
        while let Some(frame) = self.outbox.pop_front() {
            match frames::send_body(&self.socket, &frame[..]) {
                Ok(()) => self.last_sent = Instant::now(),
                Err(SendError::WouldBlock) => {
                    self.outbox.push_front(frame);
                    return;
                }
                Err(e) => {
                    debug!("send failed: {e}");
                    return;
                }
            }
        }
    }
}
