//! The harness's side of the wire: an [`Outbox`] that records what the delegator sends, and
//! the simulated workers' sessions (handshake, sealing, opening what comes back).
//!
//! Every frame the delegator sends is read back as its worker would read it, and checked:
//! it decodes; with a session it is sealed and opens in order; with a secret configured a
//! `welcome` or `work` never travels in plaintext; a `challenge` echoes the digest of the
//! `hello` it answers.

use std::collections::HashSet;

use ganger_core::protocol::secure::{self, Channel, Handshake, Secret, Side, NONCE_LEN};
use ganger_core::protocol::{self, Auth, Message};
use ganger_transport::frames::SendError;

use crate::engine::Outbox;

/// Sealed frames a peer keeps for replays.
const KEPT_FRAMES: usize = 16;

/// What the delegator sent, in order, and a deterministic nonce source.
#[derive(Default)]
pub(super) struct Recorder {
    sent: Vec<([u8; 2], Vec<u8>)>,
    nonces: u64,
    /// Routing ids whose connection is gone: sends to them fail, as the ROUTER's do.
    gone: HashSet<[u8; 2]>,
}

impl Outbox for Recorder {
    fn send(&mut self, peer: &[u8], frame: Vec<u8>) -> Result<(), SendError> {
        let Ok(id) = <[u8; 2]>::try_from(peer) else {
            return Err(SendError::Unreachable);
        };
        if self.gone.contains(&id) {
            return Err(SendError::Unreachable);
        }
        self.sent.push((id, frame));
        Ok(())
    }

    fn nonce(&mut self, nonce: &mut [u8; NONCE_LEN]) -> Result<(), String> {
        self.nonces += 1;
        nonce.fill(0xd1);
        nonce[..8].copy_from_slice(&self.nonces.to_le_bytes());
        Ok(())
    }
}

impl Recorder {
    /// Takes what was sent since the last call, by routing id.
    pub(super) fn take(&mut self) -> Vec<([u8; 2], Vec<u8>)> {
        std::mem::take(&mut self.sent)
    }

    /// The connection under this routing id closed.
    pub(super) fn disconnect(&mut self, id: &[u8; 2]) {
        self.gone.insert(*id);
    }
}

/// One simulated worker's view of its session.
#[derive(Default)]
pub(super) struct Session {
    /// The `hello` frame it sent last, with its nonce.
    hello: Option<(Vec<u8>, [u8; NONCE_LEN])>,
    /// The delegator's nonce from the `challenge` to that hello.
    challenge: Option<[u8; NONCE_LEN]>,
    /// Keys once it sent a genuine proof.
    channel: Option<Channel>,
    /// Whether its last proof was genuine (and so whether it may be registered); cleared by a
    /// forged proof, a new hello, or a challenge to a hello not its own.
    pub(super) proved: bool,
    /// Its last sealed frames, for replays.
    kept: Vec<Vec<u8>>,
    /// `hello`s it sent, for nonces.
    hellos: u64,
    /// How many times its connection was lost (the second byte of its routing id).
    pub(super) connection: u8,
}

impl Session {
    /// A `hello` frame; it carries a fresh nonce when the harness has a secret.
    pub(super) fn hello(&mut self, message: protocol::Hello, peer: u8, secret: bool) -> Vec<u8> {
        let mut hello = message;
        self.hellos += 1;
        let mut nonce = [peer; NONCE_LEN];
        nonce[..8].copy_from_slice(&self.hellos.to_le_bytes());
        hello.nonce = secret.then_some(nonce);
        let mut frame = Vec::new();
        protocol::encode(&Message::Hello(hello), &mut frame);
        // Starting over: the old session and proof no longer count.
        *self = Session {
            hello: Some((frame.clone(), nonce)),
            hellos: self.hellos,
            connection: self.connection,
            ..Session::default()
        };
        frame
    }

    /// An `auth` frame answering the challenge (with a wrong proof if `forge`); a made-up one
    /// without a challenge.
    pub(super) fn auth(&mut self, secret: Option<&Secret>, forge: bool) -> Vec<u8> {
        let mut proof = [0x5a; 32];
        // A challenge is answered once; another `auth` is made up.
        if let (Some(secret), Some((hello, nonce)), Some(challenge)) =
            (secret, &self.hello, self.challenge.take())
        {
            let handshake = Handshake::new(hello, nonce, &challenge);
            proof = handshake.proof(secret);
            if forge {
                proof[0] ^= 1;
                self.channel = None;
                self.proved = false;
            } else {
                self.channel = Some(handshake.channel(secret, Side::Worker));
                self.proved = true;
            }
        }
        let mut frame = Vec::new();
        protocol::encode(&Message::Auth(Auth { proof }), &mut frame);
        frame
    }

    /// Seals a message's frame if the session has keys; keeps sealed frames for replays.
    pub(super) fn outgoing(&mut self, frame: Vec<u8>) -> Vec<u8> {
        let Some(channel) = &mut self.channel else {
            return frame;
        };
        let sealed = channel.sealer.seal(&frame);
        if self.kept.len() == KEPT_FRAMES {
            self.kept.remove(0);
        }
        self.kept.push(sealed.clone());
        sealed
    }

    /// One of the sealed frames sent earlier; if `tamper`, a fresh sealed heartbeat with one
    /// byte changed instead (a changed old frame would fail as a replay before its tag).
    pub(super) fn replay(&mut self, pick: u16, tamper: bool) -> Option<Vec<u8>> {
        if tamper {
            let mut heartbeat = Vec::new();
            protocol::encode(&Message::Heartbeat, &mut heartbeat);
            let mut frame = self.channel.as_mut()?.sealer.seal(&heartbeat);
            // In the second half (counter, ciphertext, tag): the header stays recognisable.
            let at = frame.len() - 1 - usize::from(pick) % (frame.len() / 2);
            frame[at] ^= 0x80;
            return Some(frame);
        }
        if self.kept.is_empty() {
            return None;
        }
        Some(self.kept[usize::from(pick) % self.kept.len()].clone())
    }

    /// The delegator ended the session (reset, reject): the worker starts over.
    pub(super) fn reset(&mut self) {
        *self = Session {
            hellos: self.hellos,
            connection: self.connection,
            ..Session::default()
        };
    }

    /// The connection is gone: the worker starts over on a new one, with a new routing id.
    pub(super) fn lost(&mut self) {
        self.reset();
        self.connection = self.connection.wrapping_add(1);
    }

    /// Reads a frame from the delegator as the worker would; an error is a broken promise.
    pub(super) fn incoming(&mut self, frame: &[u8], secret: bool) -> Result<(), String> {
        let opened;
        let plain = if secure::is_sealed(frame) {
            let channel = self
                .channel
                .as_mut()
                .ok_or("a sealed frame to a worker without a session")?;
            opened = channel
                .opener
                .open(frame)
                .map_err(|e| format!("the worker cannot open a frame sealed for it: {e}"))?;
            &opened[..]
        } else {
            frame
        };
        let message = protocol::decode(plain)
            .map_err(|e| format!("the delegator sent an undecodable frame: {e}"))?;
        let sealed = secure::is_sealed(frame);
        match message {
            Message::Welcome(_) | Message::Work(_) if secret && !sealed => {
                return Err(format!(
                    "a `{}` in plaintext with a secret configured",
                    message.type_name()
                ));
            }
            Message::Challenge(challenge) => {
                let (hello, nonce) = self
                    .hello
                    .as_ref()
                    .ok_or("a challenge to a worker that sent no hello")?;
                let expected = Handshake::new(hello, nonce, &challenge.nonce).hello_digest();
                if challenge.hello_digest != expected {
                    // The delegator answers the hello it holds: a raw frame may have replaced ours.
                    self.hello = None;
                    self.proved = false;
                }
                self.challenge = Some(challenge.nonce);
            }
            Message::Reset(_) | Message::Reject(_) => self.reset(),
            _ => {}
        }
        Ok(())
    }
}
