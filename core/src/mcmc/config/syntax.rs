//! Reading JSON or TOML text into raw top-level entries, before any key is interpreted, so
//! that both syntaxes reach the key checks in the same form and syntax errors name a position.

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::ConfigError;

/// The syntax a config file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    /// JSON, as Stateline's config files are.
    Json,
    /// TOML, with the same keys as the JSON form.
    Toml,
}

impl ConfigFormat {
    /// The format a file's extension names (`.json` or `.toml`, any case), if it names one.
    pub fn from_path(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?;
        if extension.eq_ignore_ascii_case("json") {
            Some(Self::Json)
        } else if extension.eq_ignore_ascii_case("toml") {
            Some(Self::Toml)
        } else {
            None
        }
    }
}

impl fmt::Display for ConfigFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "JSON",
            Self::Toml => "TOML",
        })
    }
}

/// A value as read from either syntax, before it is checked against its key.
#[derive(Debug)]
pub(super) enum Raw {
    /// Any integer either syntax can hold (JSON's reach u64::MAX, TOML's i64::MIN).
    Int(i128),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Raw>),
    /// A value no key takes (null, a table, a date-time), by its description.
    Other(&'static str),
}

impl Raw {
    fn from_json(value: serde_json::Value) -> Self {
        use serde_json::Value;
        match value {
            Value::Null => Self::Other("null"),
            Value::Bool(b) => Self::Bool(b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Self::Int(u.into())
                } else if let Some(i) = n.as_i64() {
                    Self::Int(i.into())
                } else {
                    Self::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => Self::Str(s),
            Value::Array(values) => Self::Array(values.into_iter().map(Self::from_json).collect()),
            Value::Object(_) => Self::Other("an object"),
        }
    }

    fn from_toml(value: toml::Value) -> Self {
        use toml::Value;
        match value {
            Value::String(s) => Self::Str(s),
            Value::Integer(i) => Self::Int(i.into()),
            Value::Float(f) => Self::Float(f),
            Value::Boolean(b) => Self::Bool(b),
            Value::Datetime(_) => Self::Other("a date-time"),
            Value::Array(values) => Self::Array(values.into_iter().map(Self::from_toml).collect()),
            Value::Table(_) => Self::Other("a table"),
        }
    }

    /// The value as an error message shows it after "found".
    pub(super) fn describe(&self) -> String {
        match self {
            Self::Int(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Bool(b) => b.to_string(),
            Self::Str(s) => format!("the string {s:?}"),
            Self::Array(_) => "an array".into(),
            Self::Other(what) => (*what).into(),
        }
    }

    pub(super) fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::Int(i) => Some(i as f64),
            Self::Float(f) => Some(f),
            _ => None,
        }
    }
}

/// The top-level keys of a JSON object in document order, rejecting a repeated key (which
/// `serde_json::Value` would silently resolve to the last one).
struct JsonEntries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for JsonEntries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;

        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = JsonEntries;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of configuration keys")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonEntries, A::Error> {
                let mut entries: Vec<(String, serde_json::Value)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format_args!("key `{key}` appears twice")));
                    }
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(JsonEntries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor)
    }
}

pub(super) fn json_entries(
    text: &str,
    file: &str,
    guessed: bool,
) -> Result<Vec<(String, Raw)>, ConfigError> {
    match serde_json::from_str::<JsonEntries>(text) {
        Ok(JsonEntries(entries)) => Ok(entries
            .into_iter()
            .map(|(key, value)| (key, Raw::from_json(value)))
            .collect()),
        Err(error) => {
            let (line, column) = (error.line(), error.column());
            // serde_json appends the position to its message; it is reported separately.
            let message = error.to_string();
            let suffix = format!(" at line {line} column {column}");
            let message = message.strip_suffix(&suffix).unwrap_or(&message).to_owned();
            Err(ConfigError::Syntax {
                file: file.to_owned(),
                format: ConfigFormat::Json,
                // serde_json reports column 0 for an error before the first character.
                location: (line > 0).then_some((line, column.max(1))),
                message,
                guessed,
            })
        }
    }
}

pub(super) fn toml_entries(text: &str, file: &str) -> Result<Vec<(String, Raw)>, ConfigError> {
    match toml::from_str::<toml::Table>(text) {
        Ok(table) => Ok(table
            .into_iter()
            .map(|(key, value)| (key, Raw::from_toml(value)))
            .collect()),
        Err(error) => Err(ConfigError::Syntax {
            file: file.to_owned(),
            format: ConfigFormat::Toml,
            location: error.span().map(|span| line_and_column(text, span.start)),
            // toml's messages may span lines ("invalid string\nexpected ..."); keep one line.
            message: error
                .message()
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
            guessed: false,
        }),
    }
}

/// The one-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}
