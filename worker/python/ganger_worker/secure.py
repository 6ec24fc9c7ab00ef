"""The cluster secret of PROTOCOL.md §10: the handshake's proof, the session keys, sealed frames.

SHA-256 and HMAC come from the standard library and HKDF (RFC 5869) is the few lines below;
only ChaCha20-Poly1305 needs ``cryptography``, imported when a secret is actually used, so a
worker without a secret runs on pyzmq and msgpack alone.
"""

import hashlib
import hmac
import os

#: The byte that starts every sealed frame (MessagePack never uses it).
SEALED = 0xC1
#: Bytes a sealed frame adds to the message it carries: marker, counter, tag.
SEAL_OVERHEAD = 1 + 8 + 16
#: The fewest bytes a trimmed secret may have.
MIN_SECRET_LEN = 16

_WHITESPACE = b" \t\r\n\x0c"
_PROOF_KEY_INFO = b"ganger/2 proof key"
_PROOF_LABEL = b"ganger/2 worker proof"
_SESSION_INFO = b"ganger/2 session keys"


class SecretError(ValueError):
    """A secret that is too short once trimmed, or the ``secure`` extra is missing."""


class OpenError(ValueError):
    """A sealed frame that was refused; ``kind`` is ``"replayed"``, ``"bad_seal"`` or ``"short"``."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def trim_secret(raw):
    """Returns the secret §10.1 makes of ``raw`` (bytes or str): surrounding whitespace trimmed,
    at least 16 bytes left. Raises :class:`SecretError` otherwise; the message never holds it."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    secret = bytes(raw).strip(_WHITESPACE)
    if len(secret) < MIN_SECRET_LEN:
        raise SecretError(
            f"the secret has {len(secret)} bytes once trimmed; at least {MIN_SECRET_LEN} are needed "
            "(`ganger-delegator secret` makes one)"
        )
    return secret


def hkdf_sha256(ikm, salt, info, length):
    """HKDF-SHA256 (RFC 5869): extract with ``salt`` (32 zero bytes if empty), expand to ``length``."""
    if not salt:
        salt = bytes(32)
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm = b""
    block = b""
    counter = 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def proof(secret, hello_digest, worker_nonce, delegator_nonce):
    """The worker's proof of §10.2 step 3."""
    proof_key = hkdf_sha256(secret, b"", _PROOF_KEY_INFO, 32)
    message = _PROOF_LABEL + hello_digest + worker_nonce + delegator_nonce
    return hmac.new(proof_key, message, hashlib.sha256).digest()


def session_keys(secret, hello_digest, worker_nonce, delegator_nonce):
    """``(key_to_delegator, key_to_worker)`` of §10.2 step 5."""
    okm = hkdf_sha256(secret, worker_nonce + delegator_nonce, _SESSION_INFO + hello_digest, 64)
    return okm[:32], okm[32:]


def is_sealed(frame):
    """Whether a frame is sealed (starts with 0xc1) rather than a plaintext message."""
    return len(frame) > 0 and frame[0] == SEALED


def _aead(key):
    try:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    except ImportError as e:
        raise SecretError(
            "a cluster secret needs the `cryptography` package: pip install './worker/python[secure]'"
        ) from e
    return ChaCha20Poly1305(key)


def require_crypto():
    """Raises :class:`SecretError` at start-up if ChaCha20-Poly1305 is unavailable."""
    _aead(bytes(32))


def _nonce(counter):
    return bytes(4) + counter.to_bytes(8, "big")


class Sealer:
    """Seals one direction's frames: counter from 0, plus one per frame."""

    def __init__(self, key):
        self._aead = _aead(key)
        self.counter = 0

    def seal(self, message):
        """The sealed frame carrying ``message`` (bytes)."""
        counter = self.counter
        self.counter += 1
        header = bytes([SEALED]) + counter.to_bytes(8, "big")
        return header + self._aead.encrypt(_nonce(counter), bytes(message), None)


class Opener:
    """Opens one direction's frames, refusing replays and forgeries (§10.3)."""

    def __init__(self, key):
        self._aead = _aead(key)
        self.last = None

    def open(self, frame):
        """The message inside ``frame``; raises :class:`OpenError` for a refused frame."""
        if len(frame) < SEAL_OVERHEAD or frame[0] != SEALED:
            raise OpenError("short", f"a sealed frame of {len(frame)} bytes is too short")
        counter = int.from_bytes(frame[1:9], "big")
        if self.last is not None and counter <= self.last:
            raise OpenError("replayed", f"a replayed or reordered frame (counter {counter})")
        from cryptography.exceptions import InvalidTag

        try:
            message = self._aead.decrypt(_nonce(counter), bytes(frame[9:]), None)
        except InvalidTag:
            raise OpenError("bad_seal", "a sealed frame whose tag does not check out") from None
        # Only an authentic frame advances the counter, so a forgery cannot block later ones.
        self.last = counter
        return message


class Security:
    """The worker's side of the handshake and, once it is done, its session's sealer and opener."""

    def __init__(self, secret):
        self.secret = secret
        self.worker_nonce = None
        self.hello_digest = None
        self.sealer = None
        self.opener = None

    def nonce(self):
        """A fresh 32-byte nonce for the next hello (forgets any earlier session)."""
        self.end_session()
        self.worker_nonce = os.urandom(32)
        return self.worker_nonce

    def said_hello(self, frame):
        """Remembers the exact bytes of the hello just sent."""
        self.hello_digest = hashlib.sha256(frame).digest()

    def answer(self, challenge_nonce, hello_digest):
        """The ``proof`` answering a challenge to our latest hello, or None for a stale one."""
        if self.hello_digest is None or self.worker_nonce is None:
            return None
        if not isinstance(hello_digest, bytes) or not hmac.compare_digest(hello_digest, self.hello_digest):
            return None
        if not isinstance(challenge_nonce, bytes) or len(challenge_nonce) != 32:
            return None
        to_delegator, to_worker = session_keys(
            self.secret, self.hello_digest, self.worker_nonce, challenge_nonce
        )
        self.sealer = Sealer(to_delegator)
        self.opener = Opener(to_worker)
        return proof(self.secret, self.hello_digest, self.worker_nonce, challenge_nonce)

    @property
    def has_session(self):
        """Whether session keys are derived (the auth was sent)."""
        return self.sealer is not None

    def end_session(self):
        """Forgets the session keys (a reset, silence, a new hello)."""
        self.sealer = None
        self.opener = None
