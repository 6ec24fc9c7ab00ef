//! Unit payloads: the MessagePack encoding of a task's typed input and output.
//!
//! Payloads are opaque bytes on the wire; by convention ganger's own APIs encode them with
//! `rmp-serde` (structs as maps with field names), which any MessagePack library can read.

use serde::de::DeserializeOwned;
use serde::Serialize;
use smallvec::SmallVec;

/// A payload as the delegator holds it: up to 16 bytes (any number, most small structs) live
/// inline, so that submitting or receiving a trivial unit allocates nothing.
pub type Payload = SmallVec<[u8; 16]>;

/// A payload that could not be encoded or decoded as the expected type.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The value could not be serialised.
    #[error("cannot encode payload: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// The bytes are not a MessagePack encoding of the expected type.
    #[error("cannot decode payload: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
}

/// Encodes `value` as a payload (MessagePack, structs as maps).
pub fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, PayloadError> {
    Ok(rmp_serde::to_vec_named(value)?)
}

/// Encodes `value` as an inline-when-small [`Payload`].
pub fn to_payload<T: Serialize + ?Sized>(value: &T) -> Result<Payload, PayloadError> {
    let mut payload = Payload::new();
    value.serialize(&mut rmp_serde::Serializer::new(&mut payload).with_struct_map())?;
    Ok(payload)
}

/// Appends the encoding of `value` to `output`.
pub fn write<T: Serialize + ?Sized>(output: &mut Vec<u8>, value: &T) -> Result<(), PayloadError> {
    Ok(value.serialize(&mut rmp_serde::Serializer::new(output).with_struct_map())?)
}

/// Decodes a payload into a `T`.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, PayloadError> {
    Ok(rmp_serde::from_slice(bytes)?)
}

/// Why `task` could not take `input` as an `I`, in the words of whoever sent it: what the task
/// expects and what it got (`square expects a number, got the string "seven"`), with the
/// decoder's detail only where the shapes match (a field missing from an object).
pub fn input_error<I>(task: &str, input: &[u8], error: &PayloadError) -> String {
    let got = describe(input);
    let expected = expected::<I>();
    // Where the kinds match, the decoder knows what is wrong (a missing field, -5 for an
    // unsigned integer, 300 for a byte).
    let same_kind = got.starts_with("an object")
        || got.starts_with("an array")
        || (expected == "an integer" && got.starts_with("the integer"));
    let detail = match error {
        PayloadError::Decode(e) if same_kind => format!(": {e}"),
        _ => String::new(),
    };
    format!("{task} expects {expected}, got {got}{detail}")
}

/// What a payload holds, said briefly: `the string "seven"`, `the integer 3`, `an array of 2
/// values`.
pub fn describe(bytes: &[u8]) -> String {
    // JSON has no NaN or infinity: read a float as itself first.
    if let Ok(x) = rmp_serde::from_slice::<f64>(bytes) {
        if !x.is_finite() {
            return format!("the number {x}");
        }
    }
    let Ok(value) = rmp_serde::from_slice::<serde_json::Value>(bytes) else {
        return if rmp_serde::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
            "MessagePack that is not plain data (binary, an extension, or a map whose keys are \
             not strings)"
                .into()
        } else {
            format!("{} bytes that are not MessagePack", bytes.len())
        };
    };
    match value {
        serde_json::Value::Null => "null".into(),
        serde_json::Value::Bool(b) => format!("{b}"),
        serde_json::Value::Number(n) if n.is_f64() => format!("the number {n}"),
        serde_json::Value::Number(n) => format!("the integer {n}"),
        serde_json::Value::String(s) => {
            let shown: String = s.chars().take(40).collect();
            let more = if shown.len() < s.len() { "…" } else { "" };
            format!("the string {:?}{more}", shown)
        }
        serde_json::Value::Array(items) => format!("an array of {} value(s)", items.len()),
        serde_json::Value::Object(fields) => {
            let keys: Vec<&str> = fields.keys().map(String::as_str).take(6).collect();
            format!(
                "an object with {} key(s) ({})",
                fields.len(),
                keys.join(", ")
            )
        }
    }
}

/// A type's name as a user would say it: `an integer`, `a number`, `a string`, else the type's
/// own name.
fn expected<I>() -> String {
    let name = std::any::type_name::<I>();
    let integers = [
        "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize",
    ];
    if integers.contains(&name) {
        "an integer".into()
    } else if name == "f32" || name == "f64" {
        "a number".into()
    } else if name == "bool" {
        "true or false".into()
    } else if name.ends_with("String") || name == "&str" {
        "a string".into()
    } else if name.starts_with("alloc::vec::Vec<") || name.starts_with('[') || name.starts_with('(')
    {
        format!("an array ({name})")
    } else {
        // `my_crate::Point` says enough as `Point`, generics and all.
        let short = name.split('<').next().unwrap_or(name);
        let base = short.rsplit("::").next().unwrap_or(short);
        format!("{}{}", base, &name[short.len()..])
    }
}

#[cfg(test)]
mod tests {
    use super::{describe, from_bytes, input_error, to_bytes};

    fn error_for<I: serde::de::DeserializeOwned, T: serde::Serialize>(value: T) -> String {
        let bytes = to_bytes(&value).unwrap();
        let error = from_bytes::<I>(&bytes).map(|_| ()).unwrap_err();
        input_error::<I>("task", &bytes, &error)
    }

    #[test]
    fn a_wrong_input_is_described_in_the_senders_words() {
        assert_eq!(
            error_for::<f64, _>("seven"),
            "task expects a number, got the string \"seven\""
        );
        assert_eq!(
            error_for::<i64, _>(2.5),
            "task expects an integer, got the number 2.5"
        );
        assert_eq!(
            error_for::<String, _>(3),
            "task expects a string, got the integer 3"
        );
        assert_eq!(
            error_for::<bool, _>(()),
            "task expects true or false, got null"
        );
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Point {
            x: f64,
            y: f64,
        }
        let error = error_for::<Point, _>(serde_json::json!({"x": 1.0}));
        assert!(
            error.starts_with("task expects Point, got an object with 1 key(s) (x): ")
                && error.contains("missing field `y`"),
            "{error}"
        );
        assert_eq!(describe(&[0xc1]), "1 bytes that are not MessagePack");
        assert_eq!(describe(&to_bytes(&f64::NAN).unwrap()), "the number NaN");
        assert_eq!(
            describe(&to_bytes(&f64::INFINITY).unwrap()),
            "the number inf"
        );
        // bin 8 of two bytes.
        assert!(describe(&[0xc4, 2, 1, 2]).starts_with("MessagePack that is not plain data"));
        let error = error_for::<u64, _>(-5);
        assert!(
            error.starts_with("task expects an integer, got the integer -5: "),
            "{error}"
        );
        assert_eq!(
            describe(&to_bytes(&vec![1, 2, 3]).unwrap()),
            "an array of 3 value(s)"
        );
    }
}
