//! What the worker sends, as the suite keeps it: decoded, owned, and quotable in a verdict.

use std::time::Instant;

use ganger_core::protocol::secure;
use ganger_core::protocol::{self, Hello, Message};

/// A frame from the worker, decoded (and opened, when sealed).
#[derive(Debug, Clone)]
pub(crate) struct Incoming {
    /// When the suite read it.
    pub at: Instant,
    /// Its size on the wire (the sealed frame's, when sealed).
    pub size: usize,
    /// Whether it came sealed.
    pub sealed: bool,
    /// What it said.
    pub msg: Msg,
}

/// A worker's message, owned.
#[derive(Debug, Clone)]
pub(crate) enum Msg {
    Hello {
        hello: Hello,
        frame: Vec<u8>,
    },
    Auth([u8; 32]),
    Results(ResultsMsg),
    Heartbeat,
    Goodbye(Vec<u64>),
    /// A valid message a worker never sends (its type).
    Unexpected(&'static str),
    /// A frame that breaks the protocol, and how.
    Invalid(String),
}

/// An owned `results` message.
#[derive(Debug, Clone)]
pub(crate) struct ResultsMsg {
    pub batch: u64,
    pub elapsed_us: u64,
    pub results: Vec<(u64, Result<Vec<u8>, String>)>,
}

impl Msg {
    /// A short quotation for failure messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Msg::Hello { hello, .. } => format!(
                "hello {{protocol: {}, name: {:?}, job_types: {:?}, slots: {}, prefetch: {}, \
                 nonce: {}}}",
                hello.protocol,
                hello.name,
                hello.job_types,
                hello.slots,
                hello.prefetch,
                if hello.nonce.is_some() {
                    "32 bytes"
                } else {
                    "none"
                }
            ),
            Msg::Auth(_) => "auth".into(),
            Msg::Results(r) => {
                let shown: Vec<String> = r
                    .results
                    .iter()
                    .take(4)
                    .map(|(id, outcome)| match outcome {
                        Ok(out) => format!("[{id}, true, {}]", quote_bytes(out)),
                        Err(e) => format!("[{id}, false, {e:?}]"),
                    })
                    .collect();
                let more = r.results.len().saturating_sub(4);
                format!(
                    "results {{batch: {}, elapsed_us: {}, results: [{}{}]}}",
                    r.batch,
                    r.elapsed_us,
                    shown.join(", "),
                    if more > 0 {
                        format!(", … {more} more")
                    } else {
                        String::new()
                    }
                )
            }
            Msg::Heartbeat => "heartbeat".into(),
            Msg::Goodbye(ids) => format!("goodbye {{returned: {ids:?}}}"),
            Msg::Unexpected(kind) => format!("a `{kind}` message (a worker never sends one)"),
            Msg::Invalid(why) => format!("an invalid frame ({why})"),
        }
    }
}

/// Hex of at most 24 bytes, for quoting payloads.
pub(crate) fn quote_bytes(bytes: &[u8]) -> String {
    let shown = secure::to_hex(&bytes[..bytes.len().min(24)]);
    if bytes.len() > 24 {
        format!("<{} bytes: {shown}…>", bytes.len())
    } else {
        format!("<{shown}>")
    }
}

/// Decodes a (plaintext) frame into what the checks look at; never fails, as a frame that
/// breaks the protocol is itself a [`Msg::Invalid`].
pub(super) fn decode_owned(frame: &[u8]) -> Msg {
    match protocol::decode(frame) {
        Ok(Message::Hello(hello)) => Msg::Hello {
            hello,
            frame: frame.to_vec(),
        },
        Ok(Message::Auth(auth)) => Msg::Auth(auth.proof),
        Ok(Message::Results(results)) => Msg::Results(ResultsMsg {
            batch: results.batch,
            elapsed_us: results.elapsed_us,
            results: results
                .results
                .iter()
                .map(|r| (r.id, r.outcome.map(<[u8]>::to_vec).map_err(str::to_string)))
                .collect(),
        }),
        Ok(Message::Heartbeat) => Msg::Heartbeat,
        Ok(Message::Goodbye(goodbye)) => Msg::Goodbye(goodbye.returned),
        Ok(other) => Msg::Unexpected(other.type_name()),
        Err(e) => Msg::Invalid(format!("{e}: {}", quote_bytes(frame))),
    }
}
