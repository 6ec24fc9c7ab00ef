//! Multipart framing: one protocol message per ZeroMQ message part.
//!
//! A ROUTER socket prefixes each message with the sending peer's routing id; a DEALER sends and
//! receives the bare body. A peer that sends more than one body part is misbehaving: the extra
//! parts are drained and counted so that the caller can drop the message.

use std::fmt::Write as _;

/// A message received on a ROUTER socket.
#[derive(Debug)]
pub struct Incoming {
    /// The peer's routing id.
    pub peer: Vec<u8>,
    /// The first body part (empty if the peer sent none).
    pub body: zmq::Message,
    /// How many body parts the peer sent; anything but 1 is a protocol violation.
    pub parts: usize,
}

impl Incoming {
    /// The peer's routing id and network address, for log lines.
    pub fn peer_name(&mut self) -> String {
        let address = self.body.gets("Peer-Address").unwrap_or("?").to_owned();
        format!("{}@{address}", hex(&self.peer))
    }
}

/// Why a send did not go through.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The peer's queue is full (or, for a DEALER, there is no connection yet).
    #[error("the peer's send queue is full or not connected")]
    WouldBlock,
    /// A ROUTER with mandatory routing knows no peer of that id: it disconnected.
    #[error("the peer is no longer connected")]
    Unreachable,
    /// Any other ZeroMQ error.
    #[error("zmq: {0}")]
    Other(zmq::Error),
}

impl From<zmq::Error> for SendError {
    fn from(e: zmq::Error) -> Self {
        match e {
            zmq::Error::EAGAIN => SendError::WouldBlock,
            zmq::Error::EHOSTUNREACH => SendError::Unreachable,
            other => SendError::Other(other),
        }
    }
}

/// Receives one routed message without blocking; `Ok(None)` when none is waiting.
pub fn recv_routed(socket: &zmq::Socket) -> Result<Option<Incoming>, zmq::Error> {
    let mut peer = zmq::Message::new();
    match socket.recv(&mut peer, zmq::DONTWAIT) {
        Ok(()) => {}
        Err(zmq::Error::EAGAIN) => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut body = zmq::Message::new();
    let mut parts = 0;
    if peer.get_more() {
        // The rest of a multipart message is delivered atomically with its first part.
        socket.recv(&mut body, 0)?;
        parts = 1 + drain_more(socket, body.get_more())?;
    }
    Ok(Some(Incoming {
        peer: peer.to_vec(),
        body,
        parts,
    }))
}

/// Receives one message on a DEALER without blocking: the first part and the number of parts.
pub fn recv_body(socket: &zmq::Socket) -> Result<Option<(zmq::Message, usize)>, zmq::Error> {
    let mut body = zmq::Message::new();
    match socket.recv(&mut body, zmq::DONTWAIT) {
        Ok(()) => {}
        Err(zmq::Error::EAGAIN) => return Ok(None),
        Err(e) => return Err(e),
    }
    let parts = 1 + drain_more(socket, body.get_more())?;
    Ok(Some((body, parts)))
}

/// Reads and discards the remaining parts of a multipart message; returns how many there were.
fn drain_more(socket: &zmq::Socket, mut more: bool) -> Result<usize, zmq::Error> {
    let mut extra = zmq::Message::new();
    let mut parts = 0;
    while more {
        socket.recv(&mut extra, 0)?;
        parts += 1;
        more = extra.get_more();
    }
    Ok(parts)
}

/// Sends `body` to the peer `peer` on a ROUTER without blocking.
pub fn send_routed(
    socket: &zmq::Socket,
    peer: &[u8],
    body: impl Into<zmq::Message>,
) -> Result<(), SendError> {
    socket.send(peer, zmq::SNDMORE | zmq::DONTWAIT)?;
    socket.send(body.into(), zmq::DONTWAIT)?;
    Ok(())
}

/// Sends `body` on a DEALER without blocking.
pub fn send_body(socket: &zmq::Socket, body: impl Into<zmq::Message>) -> Result<(), SendError> {
    socket.send(body.into(), zmq::DONTWAIT)?;
    Ok(())
}

/// Lower-case hex, for routing ids in logs.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
