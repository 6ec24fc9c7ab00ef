//! Fuzz target: arbitrary bytes into the frame decoder, and a round trip of whatever decodes.
#![no_main]

use ganger_core::protocol::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    // Decoding must never panic; an error is a fine answer to garbage.
    let Ok(message) = decode(frame) else {
        return;
    };
    // Whatever decodes must survive a round trip unchanged. The bytes may differ (payloads sent
    // as strings come back as bin, integers in their shortest form), the message may not.
    let mut again = Vec::new();
    encode(&message, &mut again);
    let decoded = decode(&again).expect("a re-encoded message decodes");
    assert_eq!(decoded, message, "round trip changed the message");
});
