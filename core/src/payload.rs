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
