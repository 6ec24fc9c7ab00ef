//! Security-layer tests: round trips, every way a sealed frame is refused, the proof, and the
//! known-answer bytes of `PROTOCOL.md` §10.

use super::*;
use crate::protocol::{encode, Hello, Message};

const SECRET: &[u8] = b"ganger example secret 0123456789";

fn secret() -> Secret {
    Secret::new(SECRET).unwrap()
}

fn nonce(first: u8) -> [u8; NONCE_LEN] {
    std::array::from_fn(|i| first + i as u8)
}

/// The `hello` of the worked example in PROTOCOL.md §10.
fn example_hello() -> Vec<u8> {
    let mut frame = Vec::new();
    encode(
        &Message::Hello(Hello {
            protocol: 2,
            name: "w-1".into(),
            host: "node7".into(),
            job_types: vec!["square".into()],
            slots: 1,
            prefetch: 1,
            nonce: Some(nonce(0x00)),
        }),
        &mut frame,
    );
    frame
}

fn example_handshake() -> Handshake {
    Handshake::new(&example_hello(), &nonce(0x00), &nonce(0x20))
}

fn heartbeat() -> Vec<u8> {
    let mut frame = Vec::new();
    encode(&Message::Heartbeat, &mut frame);
    frame
}

#[test]
fn sealed_frames_round_trip_both_ways() {
    let handshake = example_handshake();
    let mut worker = handshake.channel(&secret(), Side::Worker);
    let mut delegator = handshake.channel(&secret(), Side::Delegator);
    for i in 0..3u8 {
        let message = vec![i; 100 * usize::from(i)];
        let frame = worker.sealer.seal(&message);
        assert!(is_sealed(&frame));
        assert_eq!(frame.len(), message.len() + SEAL_OVERHEAD);
        assert_eq!(delegator.opener.open(&frame).unwrap(), message);
        let back = delegator.sealer.seal(&message);
        assert_eq!(worker.opener.open(&back).unwrap(), message);
    }
}

#[test]
fn the_two_directions_use_different_keys() {
    let handshake = example_handshake();
    let mut worker = handshake.channel(&secret(), Side::Worker);
    // A frame reflected back to its sender must not open: it was sealed for the other side.
    let frame = worker.sealer.seal(&heartbeat());
    assert_eq!(worker.opener.open(&frame), Err(OpenError::Forged));
}

#[test]
fn tampered_frames_are_refused_and_do_not_advance_the_counter() {
    let handshake = example_handshake();
    let mut worker = handshake.channel(&secret(), Side::Worker);
    let mut delegator = handshake.channel(&secret(), Side::Delegator);
    let frame = worker.sealer.seal(&heartbeat());
    for position in [9, frame.len() - 1] {
        let mut tampered = frame.clone();
        tampered[position] ^= 1;
        assert_eq!(delegator.opener.open(&tampered), Err(OpenError::Forged));
    }
    // A flipped counter byte changes the nonce, so it fails authentication too.
    let mut recounted = frame.clone();
    recounted[8] ^= 0x40;
    assert_eq!(delegator.opener.open(&recounted), Err(OpenError::Forged));
    // None of those moved the counter: the genuine frame still opens.
    assert_eq!(delegator.opener.open(&frame).unwrap(), heartbeat());
}

#[test]
fn a_wrong_key_is_refused() {
    let handshake = example_handshake();
    let other = Secret::new(b"another secret, as long as it is").unwrap();
    let mut worker = handshake.channel(&other, Side::Worker);
    let mut delegator = handshake.channel(&secret(), Side::Delegator);
    let frame = worker.sealer.seal(&heartbeat());
    assert_eq!(delegator.opener.open(&frame), Err(OpenError::Forged));
    // Different nonces give different keys under the same secret.
    let mut elsewhere = Handshake::new(&example_hello(), &nonce(0x00), &nonce(0x21))
        .channel(&secret(), Side::Worker);
    let frame = elsewhere.sealer.seal(&heartbeat());
    assert_eq!(delegator.opener.open(&frame), Err(OpenError::Forged));
}

#[test]
fn replayed_and_reordered_counters_are_refused() {
    let handshake = example_handshake();
    let mut worker = handshake.channel(&secret(), Side::Worker);
    let mut delegator = handshake.channel(&secret(), Side::Delegator);
    let first = worker.sealer.seal(b"\x80");
    let second = worker.sealer.seal(b"\x80");
    let third = worker.sealer.seal(b"\x80");
    assert!(delegator.opener.open(&first).is_ok());
    assert_eq!(
        delegator.opener.open(&first),
        Err(OpenError::Replayed {
            counter: 0,
            last: 0
        })
    );
    // Skipping ahead is allowed (a frame lost on the way), going back is not.
    assert!(delegator.opener.open(&third).is_ok());
    assert_eq!(
        delegator.opener.open(&second),
        Err(OpenError::Replayed {
            counter: 1,
            last: 2
        })
    );
    assert_eq!(
        OpenError::Replayed {
            counter: 1,
            last: 2
        }
        .kind(),
        "replayed"
    );
}

#[test]
fn malformed_sealed_frames_are_refused_without_panicking() {
    let mut opener = Opener::new(&[7; 32]);
    assert_eq!(opener.open(&heartbeat()), Err(OpenError::NotSealed));
    assert_eq!(opener.open(&[]), Err(OpenError::NotSealed));
    for len in 1..SEAL_OVERHEAD {
        let mut frame = vec![0; len];
        frame[0] = SEALED_MARKER;
        assert_eq!(opener.open(&frame), Err(OpenError::Truncated));
    }
    let mut frame = vec![0; SEAL_OVERHEAD];
    frame[0] = SEALED_MARKER;
    assert_eq!(opener.open(&frame), Err(OpenError::Forged));
    // A sealed frame is never a message: 0xc1 is the one byte MessagePack never uses.
    assert!(crate::protocol::decode(&frame).is_err());
}

#[test]
fn the_proof_checks_out_only_for_the_same_secret_hello_and_nonces() {
    let handshake = example_handshake();
    let proof = handshake.proof(&secret());
    assert!(handshake.verify(&secret(), &proof));
    let other = Secret::new(b"another secret, as long as it is").unwrap();
    assert!(!handshake.verify(&other, &proof));
    assert!(
        !Handshake::new(&example_hello(), &nonce(0x00), &nonce(0x21)).verify(&secret(), &proof)
    );
    let mut other_hello = example_hello();
    *other_hello.last_mut().unwrap() ^= 1;
    assert!(!Handshake::new(&other_hello, &nonce(0x00), &nonce(0x20)).verify(&secret(), &proof));
    assert!(!handshake.verify(&secret(), &proof[..31]));
    let mut flipped = proof;
    flipped[0] ^= 1;
    assert!(!handshake.verify(&secret(), &flipped));
}

#[test]
fn secrets_are_trimmed_checked_and_never_shown() {
    assert_eq!(
        Secret::new(b"  short  \n").unwrap_err(),
        SecretError::TooShort { len: 5 }
    );
    let padded = Secret::new(b"\n  ganger example secret 0123456789 \n").unwrap();
    assert_eq!(padded, secret());
    assert_ne!(
        padded,
        Secret::new(b"ganger example secret 0123456780").unwrap()
    );
    let shown = format!("{padded:?}");
    assert!(!shown.contains("ganger example"), "{shown}");
    assert_eq!(to_hex(&[0x00, 0x9f, 0xff]), "009fff");
}

/// The worked example of PROTOCOL.md §10, byte for byte. The expected values were computed
/// independently (Python: hashlib, hmac, msgpack and `cryptography`'s ChaCha20Poly1305).
#[test]
fn known_answers_of_the_protocol_document() {
    let hello = example_hello();
    assert_eq!(to_hex(&Sha256::digest(&hello)), HELLO_SHA256);
    let handshake = example_handshake();
    assert_eq!(to_hex(&handshake.proof(&secret())), PROOF);
    let keys = handshake.session_keys(&secret());
    assert_eq!(to_hex(&keys[..32]), KEY_TO_DELEGATOR);
    assert_eq!(to_hex(&keys[32..]), KEY_TO_WORKER);
    // A heartbeat sealed by the worker as its sixth frame (counter 5).
    let mut sealer = Sealer::starting_at(&keys[..32], 5);
    let frame = sealer.seal(&heartbeat());
    assert_eq!(to_hex(&frame), SEALED_HEARTBEAT);
    let mut opener = handshake.channel(&secret(), Side::Delegator).opener;
    assert_eq!(opener.open(&frame).unwrap(), heartbeat());
}

const HELLO_SHA256: &str = "743541a4c03399226a49b7f5cf98fd5325970ced5ce7d8ed8d338ef4b796b810";
const PROOF: &str = "4f872f2b1356b1502eb8f75afe1f616e0d7c2d9e55ef5b2db6c27f067d39d058";
const KEY_TO_DELEGATOR: &str = "a47cec4312b3a546c7a6dcc4e3d930290b1b945eab7ace80c83ea701e749ae1e";
const KEY_TO_WORKER: &str = "9f4c9c14b691938841615e5987f47e478fd0a155467144792d46ef576f76a063";
const SEALED_HEARTBEAT: &str =
    "c100000000000000052bbcde13f8d1e67c0e90c081e56bd691ed0f2697415447b878ebf5db7b5df913";

#[test]
fn nonces_and_proofs_of_the_wrong_length_do_not_decode() {
    // {"type": "auth", "proof": bin of 31 bytes}
    let mut frame = b"\x82\xa4type\xa4auth\xa5proof\xc4\x1f".to_vec();
    frame.extend_from_slice(&[0; 31]);
    let error = crate::protocol::decode(&frame).unwrap_err();
    assert!(error.to_string().contains("32 bytes"), "{error}");
    // A challenge must echo the hello's digest.
    let mut frame = b"\x82\xa4type\xa9challenge\xa5nonce\xc4\x20".to_vec();
    frame.extend_from_slice(&[0; 32]);
    let error = crate::protocol::decode(&frame).unwrap_err();
    assert!(error.to_string().contains("hello_digest"), "{error}");
}
