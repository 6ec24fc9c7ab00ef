//! Frames from the delegator: read, opened, checked and acted on; what cannot be used is
//! counted and logged, never a panic.

use std::time::Instant;

use ganger_core::protocol::secure as secure_frames;
use ganger_core::protocol::{self, Goodbye, Message};
use ganger_transport::frames;
use tracing::{debug, info, warn};

use crate::compute::Batch;
use crate::Error;

use super::{Session, State};

/// Frames read per turn before the loop looks at results and timers again.
const MAX_FRAMES_PER_TURN: usize = 1024;

impl Session {
    pub(super) fn read_frames(&mut self) -> Result<(), Error> {
        for _ in 0..MAX_FRAMES_PER_TURN {
            let (frame, parts) = match frames::recv_body(&self.socket) {
                Ok(Some(received)) => received,
                Ok(None) => return Ok(()),
                Err(e) => {
                    warn!("receive failed: {e}");
                    return Ok(());
                }
            };
            self.last_received = Instant::now();
            self.last_heard = Some(self.last_received);
            if parts != 1 {
                self.malformed(&format!("expected 1 frame, got {parts}"));
                continue;
            }
            let frame = match self.unseal(frame) {
                Ok(frame) => frame,
                Err(reason) => {
                    self.malformed(&reason);
                    continue;
                }
            };
            self.handle_frame(frame)?;
        }
        Ok(())
    }

    fn handle_frame(&mut self, frame: zmq::Message) -> Result<(), Error> {
        // Work is the hot path: queue it on its header alone; the pool decodes the units.
        match protocol::peek_work(&frame) {
            Ok(Some(header)) if self.stopping_since.is_none() => {
                if matches!(self.state, State::Ready(_)) {
                    self.pending.push_back(Batch {
                        generation: self.generation,
                        batch: header.batch,
                        n_units: header.n_units as usize,
                        frame,
                    });
                }
                // Work before a welcome belongs to an earlier registration, already requeued.
                return Ok(());
            }
            Err(e) => {
                self.malformed(&e.to_string());
                return Ok(());
            }
            _ => {}
        }
        let message = match protocol::decode(&frame) {
            Ok(message) => message,
            Err(e) => {
                self.malformed(&e.to_string());
                return Ok(());
            }
        };
        match message {
            Message::Challenge(challenge) => {
                let answered = match &mut self.security {
                    Some(security) if matches!(self.state, State::Connecting { .. }) => {
                        security.answer(&challenge)
                    }
                    _ => None,
                };
                match answered {
                    // Plaintext: the delegator opens sealed frames only once the proof is in.
                    Some(auth) => {
                        self.send_plain(auth);
                        // The welcome is on its way: do not say hello again too soon.
                        self.state = State::Connecting {
                            hello_sent: Some(Instant::now()),
                        };
                    }
                    None => debug!("ignoring a challenge to an earlier hello"),
                }
            }
            Message::Welcome(welcome) => {
                info!(
                    worker_id = welcome.worker_id,
                    authenticated = self.security.is_some(),
                    "registered with the delegator"
                );
                // A sealed frame is a little longer than the message it carries.
                let overhead = if self.security.is_some() {
                    secure_frames::SEAL_OVERHEAD as u64
                } else {
                    0
                };
                self.evaluator.max_frame = welcome
                    .max_frame
                    .saturating_sub(overhead)
                    .min(usize::MAX as u64) as usize;
                // The welcome was heard: say so in the same update, so that a status file
                // never names a worker id without when the delegator was last heard.
                let heard = self.last_heard;
                self.status.update(|board| {
                    board.welcomed(welcome.worker_id);
                    board.last_heard = heard;
                });
                self.state = State::Ready(welcome);
                self.summary.sessions += 1;
            }
            Message::Work(work) => {
                // Sent before the delegator read our goodbye: hand it straight back.
                let returned = work.units.iter().map(|u| u.id).collect();
                self.queue(&Message::Goodbye(Goodbye { returned }));
            }
            Message::Heartbeat => {}
            Message::Reset(reset) => {
                if matches!(
                    self.state,
                    State::Connecting {
                        hello_sent: Some(_)
                    }
                ) {
                    // ZeroMQ keeps order, so a reset arriving after our hello answers something
                    // we sent before it: the hello has already started a new session.
                    debug!(reason = %reset.reason, "ignoring a reset that predates our hello");
                } else {
                    info!(reason = %reset.reason, "delegator asked to register again");
                    let problem = format!("reset by the delegator: {}", reset.reason);
                    self.status
                        .update(|board| board.error(problem, Instant::now()));
                    self.restart_session();
                }
            }
            Message::Reject(reject) => {
                return Err(Error::Rejected {
                    reason: reject.reason,
                    delegator_protocol: reject.protocol,
                });
            }
            other => self.malformed(&format!("unexpected `{}` message", other.type_name())),
        }
        Ok(())
    }

    pub(super) fn malformed(&mut self, reason: &str) {
        self.summary.dropped_frames += 1;
        let problem = format!("dropped a frame from the delegator: {reason}");
        self.status
            .update(|board| board.error(problem, Instant::now()));
        if let Some(suppressed) = self.warn_limit.allow(Instant::now()) {
            warn!(suppressed, "dropped a frame from the delegator: {reason}");
        }
    }

    /// Opens a sealed frame, and refuses what this worker must not accept: with a secret,
    /// plaintext other than `challenge`, `reset` and `reject` (the delegator cannot seal for a
    /// routing id it does not know, and the handshake is plaintext); without one, any sealed
    /// frame.
    fn unseal(&mut self, frame: zmq::Message) -> Result<zmq::Message, String> {
        let sealed = secure_frames::is_sealed(&frame);
        match (&mut self.security, sealed) {
            (None, false) => Ok(frame),
            (None, true) => Err("a sealed frame, but this worker has no secret".into()),
            (Some(security), true) => match security.channel() {
                Some(channel) => channel
                    .opener
                    .open(&frame)
                    .map(zmq::Message::from)
                    .map_err(|e| e.to_string()),
                None => Err("a sealed frame before the handshake".into()),
            },
            (Some(_), false) => match protocol::decode(&frame) {
                Ok(Message::Challenge(_) | Message::Reset(_) | Message::Reject(_)) => Ok(frame),
                Ok(other) => Err(format!(
                    "a plaintext `{}` refused: this worker has a secret and accepts only an \
                     authenticated delegator",
                    other.type_name()
                )),
                Err(e) => Err(e.to_string()),
            },
        }
    }
}
