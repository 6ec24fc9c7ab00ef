//! The steps a simulated session is made of.

#[cfg(doc)]
use super::JOB_TYPES;

/// One step of a simulated session. Selectors (`pick`) choose among what exists at the time
/// (modulo its count), so that arbitrary values mostly hit real batches, units and jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Raw bytes from a peer, through the size limit and the decoder.
    Frame {
        /// The sending peer.
        peer: u8,
        /// The frame.
        bytes: Vec<u8>,
    },
    /// A `hello` frame.
    Hello {
        /// The sending peer.
        peer: u8,
        /// Speak the right protocol version, or another one.
        right_version: bool,
        /// Bit i set: serve `JOB_TYPES[i]`; bit 3: serve the wildcard `mcmc/*`; 0: none.
        job_types: u8,
        /// Slots advertised (0 is odd but legal).
        slots: u32,
        /// Prefetch advertised (may be huge).
        prefetch: u32,
    },
    /// A `results` frame for a batch currently leased (to this peer or, wrongly, to another).
    Answer {
        /// The sending peer.
        peer: u8,
        /// Which leased batch.
        pick: u16,
        /// How many of its outstanding units to answer (modulo their count + 1).
        count: u16,
        /// Answer with errors instead of outputs.
        fail: bool,
        /// Repeat the first answered unit in the same message.
        duplicate: bool,
        /// Send it twice.
        resend: bool,
    },
    /// A `results` frame with made-up ids: late, bogus or foreign.
    BogusResults {
        /// The sending peer.
        peer: u8,
        /// The batch named.
        batch: u64,
        /// The unit ids named.
        ids: Vec<u64>,
        /// Answer with errors instead of outputs.
        fail: bool,
    },
    /// A `heartbeat` frame.
    Heartbeat {
        /// The sending peer.
        peer: u8,
    },
    /// A `goodbye` frame returning some of the peer's leased units and some made-up ids.
    Goodbye {
        /// The sending peer.
        peer: u8,
        /// Every how-many-th leased unit to return (0: none).
        every: u8,
        /// Made-up ids returned as well.
        bogus: Vec<u64>,
    },
    /// The peer's connection is gone (what the engine does on an unreachable peer).
    Disconnect {
        /// The peer.
        peer: u8,
    },
    /// Time passes, then the scheduler ticks (expiring silent workers).
    Advance {
        /// Milliseconds.
        ms: u32,
    },
    /// A client submits a job.
    Submit {
        /// Index into [`JOB_TYPES`] (modulo).
        job_type: u8,
        /// Priority.
        priority: i8,
        /// Units in its first chunk.
        units: u8,
        /// Payload bytes per unit.
        payload_len: u8,
        /// Seal it at once.
        seal: bool,
        /// Put it in the batch group `"g"` (`Scheduler::set_group`).
        grouped: bool,
    },
    /// A client adds units to an open job.
    Extend {
        /// Which job.
        pick: u8,
        /// Units.
        units: u8,
    },
    /// A client seals a job.
    Seal {
        /// Which job.
        pick: u8,
    },
    /// A client drops a job before it finishes.
    Cancel {
        /// Which job.
        pick: u8,
    },
    /// An `auth` frame: the proof for the peer's last `hello` and the challenge to it (wrong
    /// if `forge`), or a made-up one if there is none (or the harness has no secret).
    Auth {
        /// The sending peer.
        peer: u8,
        /// Send a wrong proof.
        forge: bool,
    },
    /// One of the peer's earlier sealed frames again, or a fresh one tampered with (nothing if
    /// the peer has no session or sent nothing sealed).
    Replay {
        /// The sending peer.
        peer: u8,
        /// Which of its last sealed frames (and which byte to change).
        pick: u16,
        /// Send a fresh sealed heartbeat with one byte changed instead.
        tamper: bool,
    },
}
