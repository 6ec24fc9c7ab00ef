//! Protocol version 2's security layer: the cluster secret, the handshake's proof, session keys
//! and sealed frames. Pure functions only: the caller supplies every random nonce.
//!
//! A worker that holds the secret sends a `hello` with a nonce; the delegator answers with a
//! `challenge` carrying its own; the worker answers with an `auth` whose proof is an HMAC over
//! both nonces and the exact `hello` frame, under a key derived from the secret. From then on
//! every frame is a *sealed frame*: `0xc1` ‖ 8-byte big-endian counter ‖ ChaCha20-Poly1305
//! ciphertext and tag of a version-1 message, under a per-direction session key derived with
//! HKDF-SHA256 from the secret and both nonces. `PROTOCOL.md` §10 is the normative text.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

#[cfg(test)]
mod tests;

/// Length of each side's handshake nonce, bytes.
pub const NONCE_LEN: usize = 32;
/// Length of the worker's proof (an HMAC-SHA256), bytes.
pub const PROOF_LEN: usize = 32;
/// The shortest acceptable secret, bytes, after trimming surrounding whitespace.
pub const MIN_SECRET_LEN: usize = 16;
/// First byte of every sealed frame: a byte MessagePack never uses, so a sealed frame can never
/// be mistaken for a message.
pub const SEALED_MARKER: u8 = 0xc1;
/// Bytes a sealed frame adds to its message: marker, counter, and the 16-byte tag.
pub const SEAL_OVERHEAD: usize = 1 + COUNTER_LEN + TAG_LEN;
/// HKDF `info` of the key that signs the worker's proof (salt empty).
pub const PROOF_KEY_LABEL: &[u8] = b"ganger/2 proof key";
/// First bytes of the message the worker's proof is an HMAC of.
pub const PROOF_LABEL: &[u8] = b"ganger/2 worker proof";
/// First bytes of the HKDF `info` of the session keys (then SHA-256 of the `hello` frame).
pub const SESSION_LABEL: &[u8] = b"ganger/2 session keys";

const COUNTER_LEN: usize = 8;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + COUNTER_LEN;

/// Whether a frame is sealed (starts with [`SEALED_MARKER`]) rather than a plain message.
pub fn is_sealed(frame: &[u8]) -> bool {
    frame.first() == Some(&SEALED_MARKER)
}

/// Lower-case hex of `bytes`: the printable form `ganger-delegator secret` gives a secret.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Fewer than [`MIN_SECRET_LEN`] bytes after trimming surrounding whitespace.
    #[error(
        "the secret is {len} bytes long after trimming whitespace; it must be at least \
         {MIN_SECRET_LEN} (`ganger-delegator secret` makes a good one)"
    )]
    TooShort {
        /// Its length after trimming.
        len: usize,
    },
}

/// The cluster secret: any bytes, at least [`MIN_SECRET_LEN`] long once surrounding
/// whitespace is trimmed (so a file written by an editor, with a final newline, works).
///
/// It is never shown by `Debug`, never sent, and wiped from memory when dropped.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Trims surrounding ASCII whitespace and checks the length.
    pub fn new(bytes: &[u8]) -> Result<Secret, SecretError> {
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort { len: trimmed.len() });
        }
        Ok(Secret(Zeroizing::new(trimmed.to_vec())))
    }

    /// The secret's bytes, to hand it to a child process (the delegator's local workers get
    /// it through their environment). Never log or send them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl PartialEq for Secret {
    /// Constant-time in the length of the shorter secret; compares only configurations.
    fn eq(&self, other: &Secret) -> bool {
        let (a, b) = (self.bytes(), other.bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for Secret {}

/// Which end of a session a [`Channel`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Seals with the worker → delegator key, opens with the other.
    Worker,
    /// Seals with the delegator → worker key, opens with the other.
    Delegator,
}

/// One handshake's public inputs: the `hello` frame as sent and both nonces.
#[derive(Debug, Clone)]
pub struct Handshake {
    hello_digest: [u8; 32],
    nonce_worker: [u8; NONCE_LEN],
    nonce_delegator: [u8; NONCE_LEN],
}

impl Handshake {
    /// `hello_frame` is the exact bytes of the `hello` frame (which holds the worker's nonce).
    pub fn new(
        hello_frame: &[u8],
        nonce_worker: &[u8; NONCE_LEN],
        nonce_delegator: &[u8; NONCE_LEN],
    ) -> Handshake {
        Handshake {
            hello_digest: Sha256::digest(hello_frame).into(),
            nonce_worker: *nonce_worker,
            nonce_delegator: *nonce_delegator,
        }
    }

    /// The worker's proof: HMAC-SHA256 keyed with HKDF-SHA256(ikm = secret, salt = empty,
    /// info = [`PROOF_KEY_LABEL`]), over [`PROOF_LABEL`] ‖ SHA-256(hello) ‖ nonce_w ‖ nonce_d.
    pub fn proof(&self, secret: &Secret) -> [u8; PROOF_LEN] {
        self.mac(secret).finalize().into_bytes().into()
    }

    /// Checks a worker's proof in constant time.
    pub fn verify(&self, secret: &Secret, proof: &[u8]) -> bool {
        self.mac(secret).verify_slice(proof).is_ok()
    }

    /// The session's sealing and opening halves for one side: the 64 bytes of
    /// HKDF-SHA256(ikm = secret, salt = nonce_w ‖ nonce_d, info = [`SESSION_LABEL`] ‖
    /// SHA-256(hello)) are the worker → delegator key, then the delegator → worker key.
    pub fn channel(&self, secret: &Secret, side: Side) -> Channel {
        let keys = self.session_keys(secret);
        let (to_delegator, to_worker) = keys.split_at(32);
        let (seal_key, open_key) = match side {
            Side::Worker => (to_delegator, to_worker),
            Side::Delegator => (to_worker, to_delegator),
        };
        Channel {
            sealer: Sealer::new(seal_key),
            opener: Opener::new(open_key),
        }
    }

    /// SHA-256 of the `hello` frame, as a `challenge` echoes it.
    pub fn hello_digest(&self) -> [u8; 32] {
        self.hello_digest
    }

    fn session_keys(&self, secret: &Secret) -> Zeroizing<[u8; 64]> {
        let mut salt = [0u8; 2 * NONCE_LEN];
        salt[..NONCE_LEN].copy_from_slice(&self.nonce_worker);
        salt[NONCE_LEN..].copy_from_slice(&self.nonce_delegator);
        let mut info = SESSION_LABEL.to_vec();
        info.extend_from_slice(&self.hello_digest);
        let mut keys = Zeroizing::new([0u8; 64]);
        Hkdf::<Sha256>::new(Some(&salt), secret.bytes())
            .expand(&info, &mut keys[..])
            .expect("64 bytes is a valid HKDF-SHA256 output length");
        keys
    }

    fn mac(&self, secret: &Secret) -> Hmac<Sha256> {
        let mut key = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(None, secret.bytes())
            .expand(PROOF_KEY_LABEL, &mut key[..])
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&key[..]).expect("HMAC takes keys of any length");
        mac.update(PROOF_LABEL);
        mac.update(&self.hello_digest);
        mac.update(&self.nonce_worker);
        mac.update(&self.nonce_delegator);
        mac
    }
}

/// Both directions of an authenticated session, for one side.
pub struct Channel {
    /// Seals what this side sends.
    pub sealer: Sealer,
    /// Opens what this side receives.
    pub opener: Opener,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("sealer", &self.sealer)
            .field("opener", &self.opener)
            .finish()
    }
}

/// Seals frames in one direction, numbering them 0, 1, 2, …
pub struct Sealer {
    cipher: LessSafeKey,
    next: u64,
}

impl Sealer {
    /// A sealer whose first frame gets counter 0.
    pub fn new(key: &[u8]) -> Sealer {
        Sealer::starting_at(key, 0)
    }

    /// A sealer whose first frame gets `counter` (for test vectors).
    pub fn starting_at(key: &[u8], counter: u64) -> Sealer {
        Sealer {
            cipher: aead_key(key),
            next: counter,
        }
    }

    /// Seals one message (a MessagePack map) into a frame.
    pub fn seal(&mut self, message: &[u8]) -> Vec<u8> {
        let mut frame = Vec::with_capacity(message.len() + SEAL_OVERHEAD);
        let counter = self.next;
        // 2⁶⁴ frames would take centuries; reusing a nonce would be far worse than stopping.
        self.next = counter
            .checked_add(1)
            .expect("a session sent 2^64 frames; its nonces are exhausted");
        frame.push(SEALED_MARKER);
        frame.extend_from_slice(&counter.to_be_bytes());
        frame.extend_from_slice(message);
        let tag = self
            .cipher
            .seal_in_place_separate_tag(aead_nonce(counter), Aad::empty(), &mut frame[HEADER_LEN..])
            .expect("ChaCha20-Poly1305 seals any message under 256 GiB");
        frame.extend_from_slice(tag.as_ref());
        frame
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("next", &self.next).finish()
    }
}

/// Why a sealed frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The frame does not start with [`SEALED_MARKER`].
    #[error("the frame is not sealed")]
    NotSealed,
    /// Shorter than a sealed empty message.
    #[error("the sealed frame is truncated")]
    Truncated,
    /// A counter not above the last one accepted: a replay or a reordering.
    #[error("sealed frame {counter} replayed or reordered (last accepted: {last})")]
    Replayed {
        /// The frame's counter.
        counter: u64,
        /// The last counter accepted.
        last: u64,
    },
    /// The tag does not check out: tampered, forged, or sealed under another key.
    #[error("the sealed frame failed authentication")]
    Forged,
}

impl OpenError {
    /// A short stable name for counting dropped frames by cause.
    pub fn kind(&self) -> &'static str {
        match self {
            OpenError::Replayed { .. } => "replayed",
            _ => "bad_seal",
        }
    }
}

/// Opens frames in one direction, accepting only increasing counters.
pub struct Opener {
    cipher: LessSafeKey,
    last: Option<u64>,
}

impl Opener {
    /// An opener that has accepted nothing yet.
    pub fn new(key: &[u8]) -> Opener {
        Opener {
            cipher: aead_key(key),
            last: None,
        }
    }

    /// Authenticates and decrypts a sealed frame into the message it carries. The counter is
    /// advanced only by a frame that authenticates, so a forgery cannot block later frames.
    pub fn open(&mut self, frame: &[u8]) -> Result<Vec<u8>, OpenError> {
        if !is_sealed(frame) {
            return Err(OpenError::NotSealed);
        }
        if frame.len() < SEAL_OVERHEAD {
            return Err(OpenError::Truncated);
        }
        let counter = u64::from_be_bytes(
            frame[1..HEADER_LEN]
                .try_into()
                .expect("the header holds 8 counter bytes"),
        );
        if let Some(last) = self.last.filter(|&last| counter <= last) {
            return Err(OpenError::Replayed { counter, last });
        }
        // Ciphertext and tag together, opened in place; the tag's bytes are cut off after.
        let mut message = frame[HEADER_LEN..].to_vec();
        let plain_len = self
            .cipher
            .open_in_place(aead_nonce(counter), Aad::empty(), &mut message)
            .map_err(|_| OpenError::Forged)?
            .len();
        message.truncate(plain_len);
        self.last = Some(counter);
        Ok(message)
    }
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener").field("last", &self.last).finish()
    }
}

/// The 12-byte AEAD nonce: 4 zero bytes ‖ the counter, big-endian.
fn aead_nonce(counter: u64) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    // Unique by construction: each direction of a session has its own key, and its counter
    // only ever increases.
    Nonce::assume_unique_for_key(nonce)
}

/// A ChaCha20-Poly1305 key from a 32-byte session key.
fn aead_key(key: &[u8]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).expect("session keys are 32 bytes"))
}
