//! Unit payloads: the MessagePack encoding of a task's typed input and output.
//!
//! Payloads are opaque bytes on the wire; by convention ganger's own APIs encode them with
//! `rmp-serde` (structs as maps with field names), which any MessagePack library can read.

use serde::de::DeserializeOwned;
use serde::Serialize;

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

/// Decodes a payload into a `T`.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, PayloadError> {
    Ok(rmp_serde::from_slice(bytes)?)
}
