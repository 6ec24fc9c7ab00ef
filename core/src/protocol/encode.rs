//! Encoding messages into MessagePack frames.
//!
//! The hot messages ([`Message::Work`] and [`Message::Results`]) also have streaming encoders so
//! that a delegator or worker can write units straight from its own data structures.

use super::{Goodbye, Hello, Message, Reject, Reset, Results, Welcome, Work};

/// Appends the encoding of `message` to `out`.
pub fn encode(message: &Message<'_>, out: &mut Vec<u8>) {
    match message {
        Message::Hello(hello) => encode_hello(hello, out),
        Message::Welcome(welcome) => encode_welcome(welcome, out),
        Message::Reject(reject) => encode_reject(reject, out),
        Message::Reset(reset) => encode_reset(reset, out),
        Message::Work(work) => encode_work(work, out),
        Message::Results(results) => encode_results(results, out),
        Message::Heartbeat => {
            map_len(out, 1);
            type_key(out, "heartbeat");
        }
        Message::Goodbye(goodbye) => encode_goodbye(goodbye, out),
        Message::Challenge(challenge) => {
            map_len(out, 3);
            type_key(out, "challenge");
            str(out, "nonce");
            bin(out, &challenge.nonce);
            str(out, "hello_digest");
            bin(out, &challenge.hello_digest);
        }
        Message::Auth(auth) => {
            map_len(out, 2);
            type_key(out, "auth");
            str(out, "proof");
            bin(out, &auth.proof);
        }
    }
}

/// Writes a [`Message::Work`] unit by unit, without building a [`Work`] first.
///
/// The number of units must be known up front; [`WorkEncoder::finish`] checks it was kept.
#[derive(Debug)]
pub struct WorkEncoder<'o> {
    out: &'o mut Vec<u8>,
    remaining: u32,
}

impl<'o> WorkEncoder<'o> {
    /// Starts a work message for `batch` that will hold exactly `n_units` units.
    pub fn new(out: &'o mut Vec<u8>, batch: u64, n_units: u32) -> Self {
        map_len(out, 3);
        type_key(out, "work");
        str(out, "batch");
        uint(out, batch);
        str(out, "units");
        array_len(out, n_units);
        WorkEncoder {
            out,
            remaining: n_units,
        }
    }

    /// Appends one unit.
    pub fn unit(&mut self, id: u64, job_type: &str, payload: &[u8]) {
        debug_assert!(self.remaining > 0, "more units than announced");
        self.remaining = self.remaining.saturating_sub(1);
        array_len(self.out, 3);
        uint(self.out, id);
        str(self.out, job_type);
        bin(self.out, payload);
    }

    /// Ends the message; returns false if fewer units were written than announced
    /// (the frame would then be malformed and must not be sent).
    pub fn finish(self) -> bool {
        self.remaining == 0
    }
}

/// Writes a [`Message::Results`] outcome by outcome.
#[derive(Debug)]
pub struct ResultsEncoder<'o> {
    out: &'o mut Vec<u8>,
    remaining: u32,
}

impl<'o> ResultsEncoder<'o> {
    /// Starts a results message for `batch` that will hold exactly `n_results` outcomes.
    pub fn new(out: &'o mut Vec<u8>, batch: u64, elapsed_us: u64, n_results: u32) -> Self {
        map_len(out, 4);
        type_key(out, "results");
        str(out, "batch");
        uint(out, batch);
        str(out, "elapsed_us");
        uint(out, elapsed_us);
        str(out, "results");
        array_len(out, n_results);
        ResultsEncoder {
            out,
            remaining: n_results,
        }
    }

    /// Appends one outcome.
    pub fn result(&mut self, id: u64, outcome: Result<&[u8], &str>) {
        debug_assert!(self.remaining > 0, "more results than announced");
        self.remaining = self.remaining.saturating_sub(1);
        array_len(self.out, 3);
        uint(self.out, id);
        match outcome {
            Ok(output) => {
                bool(self.out, true);
                bin(self.out, output);
            }
            Err(message) => {
                bool(self.out, false);
                str(self.out, message);
            }
        }
    }

    /// Ends the message; returns false if fewer outcomes were written than announced.
    pub fn finish(self) -> bool {
        self.remaining == 0
    }
}

/// The number of bytes [`ResultsEncoder::result`] writes for one outcome, at most.
pub fn result_size_bound(outcome: Result<&[u8], &str>) -> usize {
    let len = match outcome {
        Ok(bytes) => bytes.len(),
        Err(message) => message.len(),
    };
    1 + 9 + 1 + 5 + len
}

fn encode_hello(hello: &Hello, out: &mut Vec<u8>) {
    map_len(out, if hello.nonce.is_some() { 8 } else { 7 });
    type_key(out, "hello");
    str(out, "protocol");
    uint(out, hello.protocol.into());
    str(out, "name");
    str(out, &hello.name);
    str(out, "host");
    str(out, &hello.host);
    str(out, "job_types");
    array_len(out, len32(hello.job_types.len()));
    for job_type in &hello.job_types {
        str(out, job_type);
    }
    str(out, "slots");
    uint(out, hello.slots.into());
    str(out, "prefetch");
    uint(out, hello.prefetch.into());
    if let Some(nonce) = &hello.nonce {
        str(out, "nonce");
        bin(out, nonce);
    }
}

fn encode_welcome(welcome: &Welcome, out: &mut Vec<u8>) {
    map_len(out, 5);
    type_key(out, "welcome");
    str(out, "worker_id");
    uint(out, welcome.worker_id);
    str(out, "heartbeat_ms");
    uint(out, welcome.heartbeat_ms);
    str(out, "timeout_ms");
    uint(out, welcome.timeout_ms);
    str(out, "max_frame");
    uint(out, welcome.max_frame);
}

fn encode_reject(reject: &Reject, out: &mut Vec<u8>) {
    map_len(out, 3);
    type_key(out, "reject");
    str(out, "reason");
    str(out, &reject.reason);
    str(out, "protocol");
    uint(out, reject.protocol.into());
}

fn encode_reset(reset: &Reset, out: &mut Vec<u8>) {
    map_len(out, 2);
    type_key(out, "reset");
    str(out, "reason");
    str(out, &reset.reason);
}

fn encode_work(work: &Work<'_>, out: &mut Vec<u8>) {
    let mut encoder = WorkEncoder::new(out, work.batch, len32(work.units.len()));
    for unit in &work.units {
        encoder.unit(unit.id, unit.job_type, unit.payload);
    }
    encoder.finish();
}

fn encode_results(results: &Results<'_>, out: &mut Vec<u8>) {
    let mut encoder = ResultsEncoder::new(
        out,
        results.batch,
        results.elapsed_us,
        len32(results.results.len()),
    );
    for result in &results.results {
        encoder.result(result.id, result.outcome);
    }
    encoder.finish();
}

fn encode_goodbye(goodbye: &Goodbye, out: &mut Vec<u8>) {
    map_len(out, 2);
    type_key(out, "goodbye");
    str(out, "returned");
    array_len(out, len32(goodbye.returned.len()));
    for &id in &goodbye.returned {
        uint(out, id);
    }
}

/// MessagePack lengths are 32-bit; nothing ganger builds comes near that.
fn len32(len: usize) -> u32 {
    u32::try_from(len).expect("a MessagePack container holds at most u32::MAX items")
}

// The writers below target a Vec<u8>, whose io::Write never fails, so their errors are unreachable.

fn type_key(out: &mut Vec<u8>, name: &str) {
    str(out, "type");
    str(out, name);
}

fn map_len(out: &mut Vec<u8>, len: u32) {
    let _ = rmp::encode::write_map_len(out, len);
}

// The one-byte forms (small integers, short arrays and strings, short binaries) are written
// directly: they are what every unit of a batch consists of.

fn array_len(out: &mut Vec<u8>, len: u32) {
    if len < 16 {
        out.push(0x90 | len as u8);
    } else {
        let _ = rmp::encode::write_array_len(out, len);
    }
}

fn uint(out: &mut Vec<u8>, value: u64) {
    if value < 0x80 {
        out.push(value as u8);
    } else {
        let _ = rmp::encode::write_uint(out, value);
    }
}

fn bool(out: &mut Vec<u8>, value: bool) {
    let _ = rmp::encode::write_bool(out, value);
}

fn str(out: &mut Vec<u8>, value: &str) {
    if value.len() < 32 {
        out.push(0xa0 | value.len() as u8);
        out.extend_from_slice(value.as_bytes());
    } else {
        let _ = rmp::encode::write_str(out, value);
    }
}

fn bin(out: &mut Vec<u8>, value: &[u8]) {
    if value.len() < 256 {
        out.extend_from_slice(&[0xc4, value.len() as u8]);
        out.extend_from_slice(value);
    } else {
        let _ = rmp::encode::write_bin(out, value);
    }
}
