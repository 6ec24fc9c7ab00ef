//! Where both binaries find the cluster secret: `--secret-file PATH` or the variable
//! `GANGER_SECRET` (the value itself), never both.

use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use ganger_core::protocol::secure::{to_hex, Secret, SecretError};

/// The variable that holds the secret itself.
pub const SECRET_ENV: &str = "GANGER_SECRET";

/// Why no secret could be read. Messages name the file or variable, never the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretSourceError {
    /// The file could not be read.
    #[error("cannot read the secret file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        reason: std::io::Error,
    },
    /// The file's contents are not an acceptable secret.
    #[error("the secret file {path}: {reason}")]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// The reason.
        reason: SecretError,
    },
    /// The variable's value is not an acceptable secret.
    #[error("the variable {SECRET_ENV}: {0}")]
    InvalidEnv(SecretError),
    /// Both sources are set; which one is meant cannot be guessed.
    #[error(
        "the secret is given twice, by --secret-file {0} and by {SECRET_ENV}: give it one way"
    )]
    Both(PathBuf),
    /// The secret could not be written.
    #[error("cannot write the secret to {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The reason.
        reason: std::io::Error,
    },
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Random(getrandom::Error),
}

/// The secret from `file` or from `GANGER_SECRET`; `None` if neither is set.
pub fn load(file: Option<&Path>) -> Result<Option<Secret>, SecretSourceError> {
    let from_env = std::env::var_os(SECRET_ENV).filter(|value| !value.is_empty());
    match (file, from_env) {
        (Some(path), Some(_)) => Err(SecretSourceError::Both(path.to_owned())),
        (Some(path), None) => {
            let bytes = zeroize::Zeroizing::new(std::fs::read(path).map_err(|reason| {
                SecretSourceError::Read {
                    path: path.to_owned(),
                    reason,
                }
            })?);
            Secret::new(&bytes)
                .map(Some)
                .map_err(|reason| SecretSourceError::InvalidFile {
                    path: path.to_owned(),
                    reason,
                })
        }
        (None, Some(value)) => Secret::new(value.as_bytes())
            .map(Some)
            .map_err(SecretSourceError::InvalidEnv),
        (None, None) => Ok(None),
    }
}

/// A fresh secret's printable form: 32 bytes from the operating system as 64 hex digits.
pub fn generate() -> Result<String, SecretSourceError> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut bytes[..]).map_err(SecretSourceError::Random)?;
    Ok(to_hex(&bytes[..]))
}

/// Writes `text` and a newline to a new file at `path`, readable by its owner only (mode
/// 0600); refuses to overwrite an existing file.
pub fn write_new(path: &Path, text: &str) -> Result<(), SecretSourceError> {
    use std::io::Write as _;
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    };
    write().map_err(|reason| SecretSourceError::Write {
        path: path.to_owned(),
        reason,
    })
}
