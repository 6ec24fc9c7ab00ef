//! The wire protocol between a delegator and its workers, and its MessagePack codec.
//!
//! Every ZeroMQ frame carries exactly one message: a MessagePack map whose `"type"` key names
//! the message and whose other keys are its fields.
//! Decoding never panics on bytes from a peer: it returns a [`DecodeError`].
//! Unknown keys are skipped so that later protocol revisions can add optional fields.
//! `PROTOCOL.md` at the repository root is the normative description, with byte-level examples.

mod decode;
mod encode;
pub mod secure;
#[cfg(test)]
mod tests;

pub use decode::{decode, peek_work, DecodeError, WorkHeader};
pub use encode::{encode, result_size_bound, ResultsEncoder, WorkEncoder};

/// Whether a job type a worker declared in its [`Hello`] covers `job_type`: equal, or the
/// declared one ends in `*` and `job_type` starts with what precedes it (`mcmc/gaussian/*`
/// covers `mcmc/gaussian/0`, `mcmc/gaussian/1`, …). Since version 1.
pub fn job_type_matches(declared: &str, job_type: &str) -> bool {
    match declared.strip_suffix('*') {
        Some(prefix) => job_type.starts_with(prefix),
        None => declared == job_type,
    }
}

/// The protocol version this build speaks; a [`Hello`] with another version is rejected.
pub const PROTOCOL_VERSION: u32 = 2;

/// One protocol message, borrowing byte and string fields from the frame it was decoded from.
#[derive(Debug, Clone, PartialEq)]
pub enum Message<'a> {
    /// Worker → delegator, first message of a session (since version 1).
    Hello(Hello),
    /// Delegator → worker, accepts a [`Hello`] (since version 1).
    Welcome(Welcome),
    /// Delegator → peer, refuses a peer for good (since version 1).
    Reject(Reject),
    /// Delegator → worker: "I do not know you (any more); drop my work and say hello again"
    /// (since version 1).
    Reset(Reset),
    /// Delegator → worker, a batch of units to evaluate (since version 1).
    Work(Work<'a>),
    /// Worker → delegator, outcomes of some or all units of one batch (since version 1).
    Results(Results<'a>),
    /// Either way, sent when the sender has sent nothing else for a heartbeat interval
    /// (since version 1).
    Heartbeat,
    /// Worker → delegator: the worker is leaving and hands back units it will not start
    /// (since version 1).
    Goodbye(Goodbye),
    /// Delegator → worker, answers a [`Hello`] that carries a nonce with the delegator's own
    /// (since version 2).
    Challenge(Challenge),
    /// Worker → delegator, proves knowledge of the cluster secret (since version 2).
    Auth(Auth),
}

impl Message<'_> {
    /// The value of the message's `"type"` key.
    pub fn type_name(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Welcome(_) => "welcome",
            Message::Reject(_) => "reject",
            Message::Reset(_) => "reset",
            Message::Work(_) => "work",
            Message::Results(_) => "results",
            Message::Heartbeat => "heartbeat",
            Message::Goodbye(_) => "goodbye",
            Message::Challenge(_) => "challenge",
            Message::Auth(_) => "auth",
        }
    }
}

/// A worker introducing itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The protocol version the worker speaks.
    pub protocol: u32,
    /// A human-readable worker name, for logs and status pages.
    pub name: String,
    /// The host the worker runs on, for logs and status pages.
    pub host: String,
    /// The job types (task names) this worker evaluates.
    pub job_types: Vec<String>,
    /// How many units the worker evaluates at once (its threads), at least 1.
    pub slots: u32,
    /// How many units beyond `slots` the worker accepts queued, so that it never waits for work.
    /// The delegator never has more than `slots + prefetch` units out at this worker.
    pub prefetch: u32,
    /// 32 random bytes from a worker that holds the cluster secret and asks to authenticate
    /// (since version 2); `None` for a plaintext session.
    pub nonce: Option<[u8; secure::NONCE_LEN]>,
}

impl Hello {
    /// The most units the delegator may have leased to this worker at once.
    pub fn capacity(&self) -> u64 {
        u64::from(self.slots.max(1)) + u64::from(self.prefetch)
    }
}

/// The delegator's acceptance of a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The id the delegator knows this worker by in logs and status.
    pub worker_id: u64,
    /// Send a [`Message::Heartbeat`] after this many milliseconds without sending anything.
    pub heartbeat_ms: u64,
    /// A peer silent for this many milliseconds is considered gone.
    pub timeout_ms: u64,
    /// The largest frame, in bytes, the delegator accepts; larger results must be split.
    pub max_frame: u64,
}

/// A refusal: the peer should not retry with the same settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Why, in words meant for a person reading the worker's log.
    pub reason: String,
    /// The protocol version the delegator speaks.
    pub protocol: u32,
}

/// A request to start the session over with a fresh [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reset {
    /// Why, for the worker's log.
    pub reason: String,
}

/// A batch of units leased to one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work<'a> {
    /// The batch id, echoed in [`Results`].
    pub batch: u64,
    /// The units, in no particular order.
    pub units: Vec<UnitRef<'a>>,
}

/// One unit of work as it travels on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitRef<'a> {
    /// Unique id of the unit within the delegator's run.
    pub id: u64,
    /// The job type (task name) that evaluates it.
    pub job_type: &'a str,
    /// The task's input, opaque to the engine.
    pub payload: &'a [u8],
}

/// Outcomes of units from one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Results<'a> {
    /// The batch the units belong to.
    pub batch: u64,
    /// Wall-clock microseconds the worker spent evaluating these units (for adaptive batching).
    pub elapsed_us: u64,
    /// One entry per unit; a batch may be answered in several `Results` messages.
    pub results: Vec<UnitResultRef<'a>>,
}

/// The outcome of one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitResultRef<'a> {
    /// The unit's id.
    pub id: u64,
    /// The task's output payload, or an error message.
    pub outcome: Result<&'a [u8], &'a str>,
}

/// A worker's farewell.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Goodbye {
    /// Ids of leased units the worker has not started and hands back.
    pub returned: Vec<u64>,
}

/// The delegator's half of the handshake's randomness (since version 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// 32 random bytes.
    pub nonce: [u8; secure::NONCE_LEN],
    /// SHA-256 of the `hello` frame this answers, so that a worker that said hello twice
    /// answers only the challenge to its latest one.
    pub hello_digest: [u8; 32],
}

/// The worker's proof that it knows the cluster secret (since version 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// HMAC-SHA256 over the handshake; see [`secure::Handshake::proof`].
    pub proof: [u8; secure::PROOF_LEN],
}
