//! Decoding MessagePack frames into messages, without trusting a single byte.
//!
//! Strings and byte strings are borrowed from the frame, so decoding a batch of units allocates
//! only the vector that holds them.
//! Container lengths from the wire are never used to pre-allocate more than the frame could hold.

use rmp::Marker;

use super::{
    Auth, Challenge, Goodbye, Hello, Message, Reject, Reset, Results, UnitRef, UnitResultRef,
    Welcome, Work,
};

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame ended in the middle of a value.
    #[error("frame is truncated")]
    Truncated,
    /// The frame holds bytes after the message.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// A value had another MessagePack type than the field requires.
    #[error("field `{field}`: expected {expected}")]
    WrongType {
        /// The field (or `message` for the top level).
        field: &'static str,
        /// What was expected there.
        expected: &'static str,
    },
    /// A string was not valid UTF-8.
    #[error("field `{0}`: string is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// A field the message type requires is absent.
    #[error("message `{message}` lacks field `{field}`")]
    MissingField {
        /// The message type.
        message: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// The `type` key names no message this version knows.
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    /// Values nested deeper than any message needs.
    #[error("values nested more than {MAX_DEPTH} deep")]
    TooDeep,
}

impl DecodeError {
    /// A short stable name for counting dropped frames by cause.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::UnknownType(_) => "unknown_type",
            _ => "malformed",
        }
    }
}

/// Unknown fields may hold nested values; anything deeper than this is garbage.
const MAX_DEPTH: u32 = 32;

/// Decodes one frame into a message that borrows from it.
pub fn decode(frame: &[u8]) -> Result<Message<'_>, DecodeError> {
    let mut reader = Reader { rest: frame };
    let message = reader.message()?;
    if !reader.rest.is_empty() {
        return Err(DecodeError::TrailingBytes(reader.rest.len()));
    }
    Ok(message)
}

/// The batch id and unit count of a `work` frame, read without decoding its units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkHeader {
    /// The batch id.
    pub batch: u64,
    /// How many units the frame says it holds.
    pub n_units: u32,
}

/// Reads a frame far enough to tell whether it is `work` and, if so, its batch and unit count.
///
/// Returns `Ok(None)` for any other message type. The units themselves are not checked: when
/// `units` is the last key (as ganger's encoder writes it) they are not even read, which lets a
/// worker's I/O thread queue a batch in constant time and leave decoding to the pool.
pub fn peek_work(frame: &[u8]) -> Result<Option<WorkHeader>, DecodeError> {
    let mut reader = Reader { rest: frame };
    let n_fields = reader.map_len("message")?;
    let (mut type_name, mut batch, mut n_units) = (None, None, None);
    for i in 0..n_fields {
        match reader.str("key")? {
            "type" => type_name = Some(reader.str("type")?),
            "batch" => batch = Some(reader.uint("batch")?),
            "units" => {
                let n = reader.array_len("units")?;
                n_units = Some(n);
                if i + 1 == n_fields {
                    break;
                }
                reader.skip_n(u64::from(n), 1)?;
            }
            _ => reader.skip(0)?,
        }
    }
    match type_name {
        Some("work") => Ok(Some(WorkHeader {
            batch: need(batch, "work", "batch")?,
            n_units: need(n_units, "work", "units")?,
        })),
        Some(_) => Ok(None),
        None => Err(DecodeError::MissingField {
            message: "message",
            field: "type",
        }),
    }
}

/// Every field any message can carry; which ones are required depends on `type`.
#[derive(Default)]
struct Fields<'a> {
    type_name: Option<&'a str>,
    protocol: Option<u64>,
    name: Option<&'a str>,
    host: Option<&'a str>,
    job_types: Option<Vec<&'a str>>,
    slots: Option<u64>,
    prefetch: Option<u64>,
    worker_id: Option<u64>,
    heartbeat_ms: Option<u64>,
    timeout_ms: Option<u64>,
    max_frame: Option<u64>,
    reason: Option<&'a str>,
    batch: Option<u64>,
    elapsed_us: Option<u64>,
    units: Option<Vec<UnitRef<'a>>>,
    results: Option<Vec<UnitResultRef<'a>>>,
    returned: Option<Vec<u64>>,
    nonce: Option<[u8; 32]>,
    proof: Option<[u8; 32]>,
    hello_digest: Option<[u8; 32]>,
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn message(&mut self) -> Result<Message<'a>, DecodeError> {
        let n_fields = self.map_len("message")?;
        let mut fields = Fields::default();
        for _ in 0..n_fields {
            let key = self.str("key")?;
            self.field(key, &mut fields)?;
        }
        build(fields)
    }

    fn field(&mut self, key: &str, f: &mut Fields<'a>) -> Result<(), DecodeError> {
        match key {
            "type" => f.type_name = Some(self.str("type")?),
            "protocol" => f.protocol = Some(self.uint("protocol")?),
            "name" => f.name = Some(self.str("name")?),
            "host" => f.host = Some(self.str("host")?),
            "job_types" => {
                let n = self.array_len("job_types")?;
                let mut job_types = Vec::with_capacity(self.cap(n));
                for _ in 0..n {
                    job_types.push(self.str("job_types")?);
                }
                f.job_types = Some(job_types);
            }
            "slots" => f.slots = Some(self.uint("slots")?),
            "prefetch" => f.prefetch = Some(self.uint("prefetch")?),
            "worker_id" => f.worker_id = Some(self.uint("worker_id")?),
            "heartbeat_ms" => f.heartbeat_ms = Some(self.uint("heartbeat_ms")?),
            "timeout_ms" => f.timeout_ms = Some(self.uint("timeout_ms")?),
            "max_frame" => f.max_frame = Some(self.uint("max_frame")?),
            "reason" => f.reason = Some(self.str("reason")?),
            "batch" => f.batch = Some(self.uint("batch")?),
            "elapsed_us" => f.elapsed_us = Some(self.uint("elapsed_us")?),
            "units" => f.units = Some(self.units()?),
            "results" => f.results = Some(self.results()?),
            "returned" => {
                let n = self.array_len("returned")?;
                let mut returned = Vec::with_capacity(self.cap(n));
                for _ in 0..n {
                    returned.push(self.uint("returned")?);
                }
                f.returned = Some(returned);
            }
            "nonce" => f.nonce = Some(self.bin32("nonce")?),
            "proof" => f.proof = Some(self.bin32("proof")?),
            "hello_digest" => f.hello_digest = Some(self.bin32("hello_digest")?),
            _ => self.skip(0)?,
        }
        Ok(())
    }

    fn units(&mut self) -> Result<Vec<UnitRef<'a>>, DecodeError> {
        let n = self.array_len("units")?;
        let mut units = Vec::with_capacity(self.cap(n));
        // The units of a batch nearly always share a job type: validate its UTF-8 once.
        let mut last_type: (&[u8], &'a str) = (&[], "");
        for _ in 0..n {
            if self.array_len("units")? != 3 {
                return Err(wrong("units", "[id, job_type, payload] arrays"));
            }
            let id = self.uint("units")?;
            let type_bytes = self.str_bytes("units")?;
            let job_type = if type_bytes == last_type.0 {
                last_type.1
            } else {
                let job_type = std::str::from_utf8(type_bytes)
                    .map_err(|_| DecodeError::InvalidUtf8("units"))?;
                last_type = (type_bytes, job_type);
                job_type
            };
            units.push(UnitRef {
                id,
                job_type,
                payload: self.bin("units")?,
            });
        }
        Ok(units)
    }

    fn results(&mut self) -> Result<Vec<UnitResultRef<'a>>, DecodeError> {
        let n = self.array_len("results")?;
        let mut results = Vec::with_capacity(self.cap(n));
        for _ in 0..n {
            if self.array_len("results")? != 3 {
                return Err(wrong("results", "[id, ok, output_or_error] arrays"));
            }
            let id = self.uint("results")?;
            let outcome = if self.bool("results")? {
                Ok(self.bin("results")?)
            } else {
                Err(self.str("results")?)
            };
            results.push(UnitResultRef { id, outcome });
        }
        Ok(results)
    }

    /// Pre-allocation bound: every element takes at least one byte of what is left.
    fn cap(&self, n: u32) -> usize {
        (n as usize).min(self.rest.len())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn marker(&mut self) -> Result<Marker, DecodeError> {
        Ok(Marker::from_u8(self.take(1)?[0]))
    }

    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// The next byte, if it satisfies `test`, consumed. Fast paths for the common one-byte
    /// encodings (small integers, short strings, short arrays) use it to skip the general match.
    #[inline]
    fn byte_if(&mut self, test: impl Fn(u8) -> bool) -> Option<u8> {
        match self.rest.split_first() {
            Some((&b, tail)) if test(b) => {
                self.rest = tail;
                Some(b)
            }
            _ => None,
        }
    }

    fn uint(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        if let Some(b) = self.byte_if(|b| b < 0x80) {
            return Ok(b.into());
        }
        match self.marker()? {
            Marker::FixPos(v) => Ok(v.into()),
            Marker::U8 => self.be(1),
            Marker::U16 => self.be(2),
            Marker::U32 => self.be(4),
            Marker::U64 => self.be(8),
            // Some encoders write small non-negative numbers as signed integers.
            Marker::I8 => non_negative(self.be(1)? as u8 as i8 as i64, field),
            Marker::I16 => non_negative(self.be(2)? as u16 as i16 as i64, field),
            Marker::I32 => non_negative(self.be(4)? as u32 as i32 as i64, field),
            Marker::I64 => non_negative(self.be(8)? as i64, field),
            _ => Err(wrong(field, "an unsigned integer")),
        }
    }

    fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.marker()? {
            Marker::True => Ok(true),
            Marker::False => Ok(false),
            _ => Err(wrong(field, "a boolean")),
        }
    }

    fn str(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let bytes = self.str_bytes(field)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8(field))
    }

    /// A string's bytes, not yet checked to be UTF-8.
    fn str_bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if let Some(b) = self.byte_if(|b| b & 0xe0 == 0xa0) {
            return self.take(usize::from(b & 0x1f));
        }
        let len = match self.marker()? {
            Marker::FixStr(n) => n.into(),
            Marker::Str8 => self.be(1)?,
            Marker::Str16 => self.be(2)?,
            Marker::Str32 => self.be(4)?,
            _ => return Err(wrong(field, "a string")),
        };
        self.take(len as usize)
    }

    fn bin(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.byte_if(|b| b == 0xc4).is_some() {
            let len = self.be(1)?;
            return self.take(len as usize);
        }
        let len = match self.marker()? {
            Marker::Bin8 => self.be(1)?,
            Marker::Bin16 => self.be(2)?,
            Marker::Bin32 => self.be(4)?,
            // Encoders without a binary type (old msgpack libraries) send payloads as raw strings.
            Marker::FixStr(n) => n.into(),
            Marker::Str8 => self.be(1)?,
            Marker::Str16 => self.be(2)?,
            Marker::Str32 => self.be(4)?,
            _ => return Err(wrong(field, "binary data")),
        };
        self.take(len as usize)
    }

    /// A byte string of exactly 32 bytes (nonces and proofs).
    fn bin32(&mut self, field: &'static str) -> Result<[u8; 32], DecodeError> {
        self.bin(field)?
            .try_into()
            .map_err(|_| wrong(field, "binary data of 32 bytes"))
    }

    fn array_len(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        if let Some(b) = self.byte_if(|b| b & 0xf0 == 0x90) {
            return Ok(u32::from(b & 0x0f));
        }
        match self.marker()? {
            Marker::FixArray(n) => Ok(n.into()),
            Marker::Array16 => Ok(self.be(2)? as u32),
            Marker::Array32 => Ok(self.be(4)? as u32),
            _ => Err(wrong(field, "an array")),
        }
    }

    fn map_len(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        match self.marker()? {
            Marker::FixMap(n) => Ok(n.into()),
            Marker::Map16 => Ok(self.be(2)? as u32),
            Marker::Map32 => Ok(self.be(4)? as u32),
            _ => Err(wrong(field, "a map")),
        }
    }

    /// Skips one value of any type (an unknown field's).
    fn skip(&mut self, depth: u32) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let skip_bytes = match self.marker()? {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
                0
            }
            Marker::Reserved => return Err(wrong("value", "a valid MessagePack marker")),
            Marker::U8 | Marker::I8 => 1,
            Marker::U16 | Marker::I16 => 2,
            Marker::U32 | Marker::I32 | Marker::F32 => 4,
            Marker::U64 | Marker::I64 | Marker::F64 => 8,
            Marker::FixStr(n) => n.into(),
            Marker::Str8 | Marker::Bin8 => self.be(1)?,
            Marker::Str16 | Marker::Bin16 => self.be(2)?,
            Marker::Str32 | Marker::Bin32 => self.be(4)?,
            Marker::FixExt1 => 2,
            Marker::FixExt2 => 3,
            Marker::FixExt4 => 5,
            Marker::FixExt8 => 9,
            Marker::FixExt16 => 17,
            Marker::Ext8 => self.be(1)? + 1,
            Marker::Ext16 => self.be(2)? + 1,
            Marker::Ext32 => self.be(4)? + 1,
            Marker::FixArray(n) => return self.skip_n(n.into(), depth),
            Marker::Array16 => {
                let n = self.be(2)?;
                return self.skip_n(n, depth);
            }
            Marker::Array32 => {
                let n = self.be(4)?;
                return self.skip_n(n, depth);
            }
            Marker::FixMap(n) => return self.skip_n(2 * u64::from(n), depth),
            Marker::Map16 => {
                let n = self.be(2)?;
                return self.skip_n(2 * n, depth);
            }
            Marker::Map32 => {
                let n = self.be(4)?;
                return self.skip_n(2 * n, depth);
            }
        };
        self.take(skip_bytes as usize).map(|_| ())
    }

    fn skip_n(&mut self, n: u64, depth: u32) -> Result<(), DecodeError> {
        for _ in 0..n {
            self.skip(depth + 1)?;
        }
        Ok(())
    }
}

fn build(f: Fields<'_>) -> Result<Message<'_>, DecodeError> {
    let Some(type_name) = f.type_name else {
        return Err(DecodeError::MissingField {
            message: "message",
            field: "type",
        });
    };
    let message = match type_name {
        "hello" => {
            let m = "hello";
            Message::Hello(Hello {
                protocol: u32_field(need(f.protocol, m, "protocol")?, "protocol")?,
                name: need(f.name, m, "name")?.to_owned(),
                host: f.host.unwrap_or_default().to_owned(),
                job_types: need(f.job_types, m, "job_types")?
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                slots: u32_field(need(f.slots, m, "slots")?, "slots")?,
                prefetch: u32_field(f.prefetch.unwrap_or(0), "prefetch")?,
                nonce: f.nonce,
            })
        }
        "welcome" => {
            let m = "welcome";
            Message::Welcome(Welcome {
                worker_id: need(f.worker_id, m, "worker_id")?,
                heartbeat_ms: need(f.heartbeat_ms, m, "heartbeat_ms")?,
                timeout_ms: need(f.timeout_ms, m, "timeout_ms")?,
                max_frame: need(f.max_frame, m, "max_frame")?,
            })
        }
        "reject" => Message::Reject(Reject {
            reason: need(f.reason, "reject", "reason")?.to_owned(),
            protocol: u32_field(f.protocol.unwrap_or(0), "protocol")?,
        }),
        "reset" => Message::Reset(Reset {
            reason: f.reason.unwrap_or_default().to_owned(),
        }),
        "work" => Message::Work(Work {
            batch: need(f.batch, "work", "batch")?,
            units: need(f.units, "work", "units")?,
        }),
        "results" => Message::Results(Results {
            batch: need(f.batch, "results", "batch")?,
            elapsed_us: f.elapsed_us.unwrap_or(0),
            results: need(f.results, "results", "results")?,
        }),
        "heartbeat" => Message::Heartbeat,
        "goodbye" => Message::Goodbye(Goodbye {
            returned: f.returned.unwrap_or_default(),
        }),
        "challenge" => Message::Challenge(Challenge {
            nonce: need(f.nonce, "challenge", "nonce")?,
            hello_digest: need(f.hello_digest, "challenge", "hello_digest")?,
        }),
        "auth" => Message::Auth(Auth {
            proof: need(f.proof, "auth", "proof")?,
        }),
        other => return Err(DecodeError::UnknownType(other.to_owned())),
    };
    Ok(message)
}

fn need<T>(value: Option<T>, message: &'static str, field: &'static str) -> Result<T, DecodeError> {
    value.ok_or(DecodeError::MissingField { message, field })
}

fn u32_field(value: u64, field: &'static str) -> Result<u32, DecodeError> {
    u32::try_from(value).map_err(|_| wrong(field, "an integer below 2^32"))
}

fn non_negative(value: i64, field: &'static str) -> Result<u64, DecodeError> {
    u64::try_from(value).map_err(|_| wrong(field, "a non-negative integer"))
}

fn wrong(field: &'static str, expected: &'static str) -> DecodeError {
    DecodeError::WrongType { field, expected }
}
