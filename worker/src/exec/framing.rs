//! The exec bridge's framings (PROTOCOL.md §11): how a request goes to a program's stdin and
//! how its reply comes back on stdout, in MessagePack or JSON lines, with no I/O of their own
//! beyond reading one message from a reader.
//!
//! In the JSON framing a payload (a MessagePack value) is converted to JSON on the way in and
//! the reply's JSON back to MessagePack on the way out, keeping map order, integers as
//! integers, and every other number as a 64-bit float. What JSON cannot carry (bin, ext,
//! non-string map keys, NaN and infinities) fails the unit with a message saying why.

use std::fmt::Write as _;
use std::io::{self, BufRead, Read};

use rmp::Marker;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// The largest message either side may send, bytes: the delegator's default frame limit.
/// A longer length prefix (or line) is a protocol breach.
pub const MAX_MESSAGE: usize = 64 << 20;

/// Nesting depth of a payload beyond which the JSON framing refuses to convert it (a guard
/// against stack exhaustion, far beyond any real input).
const MAX_DEPTH: usize = 256;

/// How the bridge and a program frame their messages on stdin/stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// A 4-byte big-endian length, then that many bytes of one MessagePack map.
    #[default]
    MessagePack,
    /// One JSON object per `\n`-terminated line; payloads converted to and from JSON.
    Json,
}

impl std::str::FromStr for Framing {
    type Err = String;

    fn from_str(name: &str) -> Result<Framing, String> {
        match name {
            "msgpack" => Ok(Framing::MessagePack),
            "json" => Ok(Framing::Json),
            other => Err(format!(
                "unknown framing `{other}`: use `msgpack` or `json`"
            )),
        }
    }
}

impl std::fmt::Display for Framing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Framing::MessagePack => "msgpack",
            Framing::Json => "json",
        })
    }
}

/// A program's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The request's id, echoed.
    pub id: u64,
    /// The output payload (MessagePack), or the program's error message.
    pub outcome: Result<Vec<u8>, String>,
}

/// Why a message could not be read from a program's stdout.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The pipe failed.
    #[error("reading the program's stdout failed: {0}")]
    Io(#[from] io::Error),
    /// The length prefix (or a line) exceeds [`MAX_MESSAGE`].
    #[error("the program sent a message of {len} bytes, over the limit of {MAX_MESSAGE}")]
    TooLarge {
        /// The announced (or so far read) length.
        len: usize,
    },
    /// Stdout closed in the middle of a message.
    #[error("the program's stdout closed in the middle of a message")]
    Truncated,
}

impl Framing {
    /// Appends the request for one unit to `out`. `Err` (only in the JSON framing) says why the
    /// payload cannot be sent; the unit fails with it and no program sees it.
    pub fn encode_request(
        self,
        id: u64,
        job_type: &str,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        match self {
            Framing::MessagePack => {
                let start = out.len();
                out.extend_from_slice(&[0; 4]);
                // Writing into a Vec cannot fail.
                let _ = rmp::encode::write_map_len(out, 3);
                let _ = rmp::encode::write_str(out, "id");
                let _ = rmp::encode::write_uint(out, id);
                let _ = rmp::encode::write_str(out, "job_type");
                let _ = rmp::encode::write_str(out, job_type);
                let _ = rmp::encode::write_str(out, "payload");
                let _ = rmp::encode::write_bin(out, payload);
                let len = (out.len() - start - 4) as u32;
                out[start..start + 4].copy_from_slice(&len.to_be_bytes());
                Ok(())
            }
            Framing::Json => {
                let input = msgpack_to_json(payload)?;
                let mut line = String::with_capacity(input.len() + job_type.len() + 48);
                let _ = write!(line, "{{\"id\":{id},\"job_type\":");
                push_json_string(&mut line, job_type);
                line.push_str(",\"input\":");
                line.push_str(&input);
                line.push_str("}\n");
                out.extend_from_slice(line.as_bytes());
                Ok(())
            }
        }
    }

    /// Reads one message (without its length prefix or newline) from a program's stdout;
    /// `Ok(None)` when stdout closed between messages.
    pub fn read_message(self, reader: &mut impl BufRead) -> Result<Option<Vec<u8>>, ReadError> {
        match self {
            Framing::MessagePack => {
                let mut prefix = [0u8; 4];
                let mut filled = 0;
                while filled < 4 {
                    match reader.read(&mut prefix[filled..]) {
                        Ok(0) if filled == 0 => return Ok(None),
                        Ok(0) => return Err(ReadError::Truncated),
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                let len = u32::from_be_bytes(prefix) as usize;
                if len > MAX_MESSAGE {
                    return Err(ReadError::TooLarge { len });
                }
                let mut message = vec![0; len];
                reader
                    .read_exact(&mut message)
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::UnexpectedEof => ReadError::Truncated,
                        _ => ReadError::Io(e),
                    })?;
                Ok(Some(message))
            }
            Framing::Json => {
                let mut line = Vec::new();
                // One byte past the limit tells a line that is too long from one that fits.
                let read = reader
                    .take(MAX_MESSAGE as u64 + 1)
                    .read_until(b'\n', &mut line)?;
                if read == 0 {
                    return Ok(None);
                }
                if line.last() != Some(&b'\n') {
                    return Err(if line.len() > MAX_MESSAGE {
                        ReadError::TooLarge { len: line.len() }
                    } else {
                        ReadError::Truncated
                    });
                }
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Ok(Some(line))
            }
        }
    }

    /// Decodes a reply read by [`Framing::read_message`]; `Err` describes the breach.
    pub fn decode_reply(self, message: &[u8]) -> Result<Reply, String> {
        match self {
            Framing::MessagePack => decode_msgpack_reply(message),
            Framing::Json => decode_json_reply(message),
        }
    }
}

/// The MessagePack framing's reply, as the program sends it.
#[derive(Deserialize)]
struct MsgpackReply {
    id: u64,
    ok: bool,
    #[serde(default)]
    output: Option<Bytes>,
    #[serde(default)]
    error: Option<String>,
}

/// A `bin` (or, for old MessagePack libraries, a `str`) as bytes.
struct Bytes(Vec<u8>);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        struct BytesVisitor;
        impl Visitor<'_> for BytesVisitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bin")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
                Ok(Bytes(v.as_bytes().to_vec()))
            }
        }
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

fn decode_msgpack_reply(message: &[u8]) -> Result<Reply, String> {
    let mut rest = message;
    let mut deserializer = rmp_serde::Deserializer::new(&mut rest);
    let reply = MsgpackReply::deserialize(&mut deserializer)
        .map_err(|e| format!("the reply is not a valid MessagePack reply map: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} bytes follow the reply's map", rest.len()));
    }
    let outcome = match (reply.ok, reply.output, reply.error) {
        (true, Some(output), _) => Ok(output.0),
        (true, None, _) => return Err("a reply with `ok: true` has no `output`".into()),
        (false, _, Some(error)) => Err(error),
        (false, _, None) => return Err("a reply with `ok: false` has no `error`".into()),
    };
    Ok(Reply {
        id: reply.id,
        outcome,
    })
}

fn decode_json_reply(line: &[u8]) -> Result<Reply, String> {
    let reply: JsonReply = serde_json::from_slice(line)
        .map_err(|e| format!("the reply line is not a valid JSON reply object: {e}"))?;
    let outcome = match (reply.output, reply.error) {
        (Some(output), None) => {
            let mut packed = Vec::new();
            output.pack(&mut packed);
            Ok(packed)
        }
        (None, Some(error)) => Err(error),
        (Some(_), Some(_)) => return Err("a reply has both `output` and `error`".into()),
        (None, None) => return Err("a reply has neither `output` nor `error`".into()),
    };
    Ok(Reply {
        id: reply.id,
        outcome,
    })
}

/// The JSON framing's reply. `output: null` is an output (MessagePack nil), so its presence is
/// tracked apart from its value.
#[derive(Deserialize)]
struct JsonReply {
    id: u64,
    #[serde(default, deserialize_with = "present")]
    output: Option<Json>,
    #[serde(default)]
    error: Option<String>,
}

fn present<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(deserializer).map(Some)
}

/// A JSON value that keeps its objects' key order (serde_json's own sorts them).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Appends the value as MessagePack: integers in their smallest encoding, floats as
    /// float 64.
    fn pack(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        match self {
            Json::Null => rmp::encode::write_nil(out).unwrap_or(()),
            Json::Bool(b) => rmp::encode::write_bool(out, *b).unwrap_or(()),
            Json::Unsigned(n) => {
                let _ = rmp::encode::write_uint(out, *n);
            }
            Json::Signed(n) => {
                let _ = rmp::encode::write_sint(out, *n);
            }
            Json::Float(x) => {
                let _ = rmp::encode::write_f64(out, *x);
            }
            Json::String(s) => {
                let _ = rmp::encode::write_str(out, s);
            }
            Json::Array(items) => {
                let _ = rmp::encode::write_array_len(out, items.len() as u32);
                items.iter().for_each(|item| item.pack(out));
            }
            Json::Object(entries) => {
                let _ = rmp::encode::write_map_len(out, entries.len() as u32);
                for (key, value) in entries {
                    let _ = rmp::encode::write_str(out, key);
                    value.pack(out);
                }
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Unsigned(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Signed(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(JsonSeed)?;
            entries.push((key, value));
        }
        Ok(Json::Object(entries))
    }
}

struct JsonSeed;

impl<'de> DeserializeSeed<'de> for JsonSeed {
    type Value = Json;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

/// Converts one MessagePack value (the whole payload) to JSON text, keeping map order.
pub fn msgpack_to_json(payload: &[u8]) -> Result<String, String> {
    let mut rest = payload;
    let mut json = String::with_capacity(payload.len() * 2);
    convert(&mut rest, &mut json, 0).map_err(|why| {
        format!("the payload cannot be sent to a program in the JSON framing: {why}")
    })?;
    if !rest.is_empty() {
        return Err(format!(
            "the payload cannot be sent to a program in the JSON framing: {} bytes follow its \
             MessagePack value",
            rest.len()
        ));
    }
    Ok(json)
}

fn convert(rest: &mut &[u8], json: &mut String, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("it nests deeper than {MAX_DEPTH} levels"));
    }
    let marker = rmp::decode::read_marker(rest)
        .map_err(|_| "it is not MessagePack (it ends early)".to_owned())?;
    match marker {
        Marker::Null => json.push_str("null"),
        Marker::True => json.push_str("true"),
        Marker::False => json.push_str("false"),
        Marker::FixPos(n) => {
            let _ = write!(json, "{n}");
        }
        Marker::FixNeg(n) => {
            let _ = write!(json, "{n}");
        }
        Marker::U8 => write_int(json, u64::from(take::<1>(rest)?[0])),
        Marker::U16 => write_int(json, u64::from(u16::from_be_bytes(take(rest)?))),
        Marker::U32 => write_int(json, u64::from(u32::from_be_bytes(take(rest)?))),
        Marker::U64 => write_int(json, u64::from_be_bytes(take(rest)?)),
        Marker::I8 => write_int(json, i64::from(take::<1>(rest)?[0] as i8)),
        Marker::I16 => write_int(json, i64::from(i16::from_be_bytes(take(rest)?))),
        Marker::I32 => write_int(json, i64::from(i32::from_be_bytes(take(rest)?))),
        Marker::I64 => write_int(json, i64::from_be_bytes(take(rest)?)),
        Marker::F32 => write_float(json, f64::from(f32::from_be_bytes(take(rest)?)))?,
        Marker::F64 => write_float(json, f64::from_be_bytes(take(rest)?))?,
        Marker::FixStr(len) => write_str(json, take_slice(rest, usize::from(len))?)?,
        Marker::Str8 => {
            let len = usize::from(take::<1>(rest)?[0]);
            write_str(json, take_slice(rest, len)?)?
        }
        Marker::Str16 => {
            let len = usize::from(u16::from_be_bytes(take(rest)?));
            write_str(json, take_slice(rest, len)?)?
        }
        Marker::Str32 => {
            let len = u32::from_be_bytes(take(rest)?) as usize;
            write_str(json, take_slice(rest, len)?)?
        }
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
            return Err(
                "it holds binary data (MessagePack bin), which JSON cannot carry; use \
                        --exec-framing msgpack"
                    .into(),
            )
        }
        Marker::FixExt1
        | Marker::FixExt2
        | Marker::FixExt4
        | Marker::FixExt8
        | Marker::FixExt16
        | Marker::Ext8
        | Marker::Ext16
        | Marker::Ext32 => {
            return Err("it holds a MessagePack extension type, which JSON cannot carry".into())
        }
        Marker::FixArray(len) => write_array(rest, json, usize::from(len), depth)?,
        Marker::Array16 => {
            let len = usize::from(u16::from_be_bytes(take(rest)?));
            write_array(rest, json, len, depth)?
        }
        Marker::Array32 => {
            let len = u32::from_be_bytes(take(rest)?) as usize;
            write_array(rest, json, len, depth)?
        }
        Marker::FixMap(len) => write_map(rest, json, usize::from(len), depth)?,
        Marker::Map16 => {
            let len = usize::from(u16::from_be_bytes(take(rest)?));
            write_map(rest, json, len, depth)?
        }
        Marker::Map32 => {
            let len = u32::from_be_bytes(take(rest)?) as usize;
            write_map(rest, json, len, depth)?
        }
        Marker::Reserved => return Err("it is not MessagePack (byte 0xc1)".into()),
    }
    Ok(())
}

fn write_int(json: &mut String, n: impl std::fmt::Display) {
    let _ = write!(json, "{n}");
}

fn write_float(json: &mut String, x: f64) -> Result<(), String> {
    if !x.is_finite() {
        return Err(format!(
            "it holds the float {x}, which JSON cannot carry; use --exec-framing msgpack"
        ));
    }
    // serde_json writes the shortest text that reads back as the same float, with a `.0` on
    // whole numbers so that they stay floats on the way back.
    json.push_str(&serde_json::to_string(&x).map_err(|e| e.to_string())?);
    Ok(())
}

fn write_str(json: &mut String, bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "it holds a str that is not UTF-8")?;
    push_json_string(json, text);
    Ok(())
}

fn push_json_string(json: &mut String, text: &str) {
    // serde_json escapes control characters, so a string never holds a raw newline.
    json.push_str(&serde_json::to_string(text).unwrap_or_default());
}

fn write_array(
    rest: &mut &[u8],
    json: &mut String,
    len: usize,
    depth: usize,
) -> Result<(), String> {
    // Each element takes at least a byte: a length beyond what is left is a lie.
    if len > rest.len() {
        return Err("it is not MessagePack (an array longer than the payload)".into());
    }
    json.push('[');
    for i in 0..len {
        if i > 0 {
            json.push(',');
        }
        convert(rest, json, depth + 1)?;
    }
    json.push(']');
    Ok(())
}

fn write_map(rest: &mut &[u8], json: &mut String, len: usize, depth: usize) -> Result<(), String> {
    if len > rest.len() / 2 {
        return Err("it is not MessagePack (a map longer than the payload)".into());
    }
    json.push('{');
    for i in 0..len {
        if i > 0 {
            json.push(',');
        }
        let is_string_key = matches!(rest.first(), Some(0xa0..=0xbf | 0xd9 | 0xda | 0xdb));
        if !is_string_key {
            return Err(
                "it holds a map with a key that is not a string, which JSON cannot carry".into(),
            );
        }
        convert(rest, json, depth + 1)?;
        json.push(':');
        convert(rest, json, depth + 1)?;
    }
    json.push('}');
    Ok(())
}

fn take<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], String> {
    let bytes = take_slice(rest, N)?;
    let mut array = [0; N];
    array.copy_from_slice(bytes);
    Ok(array)
}

fn take_slice<'a>(rest: &mut &'a [u8], len: usize) -> Result<&'a [u8], String> {
    if rest.len() < len {
        return Err("it is not MessagePack (it ends early)".into());
    }
    let (head, tail) = rest.split_at(len);
    *rest = tail;
    Ok(head)
}
