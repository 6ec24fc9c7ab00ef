//! The errors a config file can produce, each message naming the file and, for a value, its key.

use super::{ConfigFormat, KEYS};

/// Why a config could not be parsed or is inconsistent. Every message names the file, and every
/// message about a value names its key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The text is not valid JSON or TOML (or, for JSON, its top level is not an object, or a
    /// key appears twice).
    #[error(
        "config {file}: {}invalid {format}: {message}{}",
        location_prefix(.location),
        guessed_note(.guessed)
    )]
    Syntax {
        /// The file the text came from.
        file: String,
        /// The syntax the text was parsed as.
        format: ConfigFormat,
        /// The one-based line and column of the error, when the parser reports one.
        location: Option<(usize, usize)>,
        /// The parser's message.
        message: String,
        /// The format was a guess: the file's extension is neither `.json` nor `.toml`.
        guessed: bool,
    },
    /// A key that is not one of [`KEYS`].
    #[error(
        "config {file}: unknown key `{key}`{}; the known keys are {}",
        suggestion_note(.suggestion),
        KEYS.join(", ")
    )]
    UnknownKey {
        /// The file the key is in.
        file: String,
        /// The unknown key.
        key: String,
        /// The known key closest to it, if one is close enough to be a likely typo.
        suggestion: Option<&'static str>,
    },
    /// A required key is absent.
    #[error("config {file}: missing required key `{key}` ({meaning})")]
    MissingKey {
        /// The file the key is missing from.
        file: String,
        /// The missing key.
        key: &'static str,
        /// What the key sets.
        meaning: &'static str,
    },
    /// A key's value has the wrong type (a string where a number belongs, say).
    #[error("config {file}: key `{key}`: expected {expected}, found {found}")]
    WrongType {
        /// The file the key is in.
        file: String,
        /// The key.
        key: &'static str,
        /// The type the key takes.
        expected: &'static str,
        /// A description of the value found.
        found: String,
    },
    /// A key's value has the right type but is out of range or inconsistent with another key.
    #[error("config {file}: key `{key}`: {reason}")]
    Invalid {
        /// The file the key is in.
        file: String,
        /// The key.
        key: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
}

fn location_prefix(location: &Option<(usize, usize)>) -> String {
    match location {
        Some((line, column)) => format!("line {line}, column {column}: "),
        None => String::new(),
    }
}

fn guessed_note(guessed: &bool) -> &'static str {
    if *guessed {
        " (read as JSON because the file name ends in neither .json nor .toml)"
    } else {
        ""
    }
}

fn suggestion_note(suggestion: &Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean `{s}`?)"))
}
