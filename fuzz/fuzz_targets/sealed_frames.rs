//! Fuzz target: a session's sealed frames (protocol version 2) as an attacker could shape them.
//!
//! A sealer and an opener share a session key. Each step either seals a genuine message and
//! delivers it, delivers arbitrary bytes, replays an earlier frame, or delivers a copy of an
//! earlier frame with one byte changed. The opener must accept exactly the genuine frames, in
//! order, with their messages intact, and refuse everything else without panicking; whatever it
//! accepts then goes to the decoder, which must not panic either.
#![no_main]

use arbitrary::Arbitrary;
use ganger_core::protocol::decode;
use ganger_core::protocol::secure::{Opener, Sealer};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Step {
    /// A message sealed by the genuine sender, delivered at once.
    Genuine(Vec<u8>),
    /// Bytes from anyone, delivered as a frame.
    Forged(Vec<u8>),
    /// An earlier frame delivered again.
    Replay(u8),
    /// An earlier frame with the byte at `position` XORed with `mask` (non-zero).
    Tamper { frame: u8, position: u16, mask: u8 },
}

const KEY: [u8; 32] = [0x42; 32];

fuzz_target!(|steps: Vec<Step>| {
    let mut sealer = Sealer::new(&KEY);
    let mut opener = Opener::new(&KEY);
    let mut sent: Vec<Vec<u8>> = Vec::new();
    for step in steps.into_iter().take(64) {
        match step {
            Step::Genuine(message) => {
                let frame = sealer.seal(&message);
                let opened = opener.open(&frame).expect("a genuine frame in order opens");
                assert_eq!(opened, message, "a genuine frame opened to another message");
                let _ = decode(&opened);
                sent.push(frame);
            }
            Step::Forged(bytes) => {
                // Forging a tag without the key is the one thing that must never work here.
                assert!(opener.open(&bytes).is_err(), "a forged frame opened");
            }
            Step::Replay(index) => {
                if let Some(frame) = pick(&sent, index) {
                    assert!(opener.open(frame).is_err(), "a replayed frame opened");
                }
            }
            Step::Tamper {
                frame,
                position,
                mask,
            } => {
                if let Some(frame) = pick(&sent, frame) {
                    let mut tampered = frame.clone();
                    let position = usize::from(position) % tampered.len();
                    tampered[position] ^= mask.max(1);
                    assert!(opener.open(&tampered).is_err(), "a tampered frame opened");
                }
            }
        }
    }
});

fn pick(frames: &[Vec<u8>], index: u8) -> Option<&Vec<u8>> {
    (!frames.is_empty()).then(|| &frames[usize::from(index) % frames.len()])
}
