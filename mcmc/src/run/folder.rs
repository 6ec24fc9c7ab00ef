//! A run's own files in its output folder, beside the chain files: the checkpoint, the
//! recorded configuration (`ganger-run.json`) and the lock; and the checks that keep a resume
//! from continuing another run.

use std::path::{Path, PathBuf};

use ganger_core::mcmc::config::McmcConfig;
use ganger_core::mcmc::sampler::{Sampler, SamplerSettings, SAMPLER_VERSION};
use serde::{Deserialize, Serialize};

use super::McmcError;
use crate::output::{write_atomically, ChainFiles, ChainWriter, OutputError};

/// What a checkpoint holds: enough to continue as if never interrupted.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Checkpoint {
    /// [`SAMPLER_VERSION`] of the sampler that wrote it (absent before version 2).
    #[serde(default)]
    pub(super) version: u32,
    pub(super) sampler: Sampler,
    /// The evidence's prior draws' energies, once a finished run has evaluated them.
    #[serde(default)]
    pub(super) prior: Option<Vec<f64>>,
    /// Byte length of each chain file when the sampler was at this step.
    pub(super) lengths: Vec<u64>,
}

/// Removes `path` if it exists.
pub(super) fn remove_if_present(path: &Path) -> Result<(), McmcError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(OutputError {
            path: path.to_owned(),
            source,
        }
        .into()),
    }
}

/// The lock file a run holds in its output folder (see [`ganger_cluster::lock`]).
pub const LOCK_FILE: &str = ".ganger.lock";

/// The first file in `dir` that a fresh run of `n_chains` chains would replace, if any: a
/// chain file, the checkpoint, the summary or the recorded configuration.
pub(super) fn run_file_in(dir: &Path, n_chains: usize) -> Option<PathBuf> {
    let named = [
        checkpoint_path(dir),
        dir.join("summary.json"),
        run_config_path(dir),
    ];
    (0..n_chains)
        .map(|chain| ChainFiles::path(dir, chain))
        .chain(named)
        .find(|path| std::fs::metadata(path).is_ok())
}

/// The checkpoint file of a run writing to `dir`.
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.msgpack")
}

/// The file in a run's output folder that records its configuration, every default filled in
/// (the same keys as a config file, but `outputPath`, which is the folder itself): what produced
/// the chain files beside it, and the burn-in that `ganger-delegator plot` leaves out.
pub fn run_config_path(dir: &Path) -> PathBuf {
    dir.join("ganger-run.json")
}

/// The configuration recorded in the output folder `dir`, if there is a readable one.
pub fn read_run_config(dir: &Path) -> Option<McmcConfig> {
    let path = run_config_path(dir);
    let text = std::fs::read_to_string(&path).ok()?;
    McmcConfig::parse(
        &text,
        &path.display().to_string(),
        ganger_core::mcmc::config::ConfigFormat::Json,
    )
    .ok()
}

/// `config` as `ganger-run.json` records it: every key but `outputPath` (the folder is where
/// the file is: naming it would make two copies of one run differ).
fn recorded_form(config: &McmcConfig) -> Result<serde_json::Value, serde_json::Error> {
    let mut value = serde_json::to_value(config)?;
    if let Some(object) = value.as_object_mut() {
        object.remove("outputPath");
    }
    Ok(value)
}

/// Config keys that a resumed run may change: they cannot change its output.
pub const CHANGEABLE_ON_RESUME: [&str; 2] = ["loggingRateSec", "checkpointIntervalSec"];

/// Refuses to resume the run recorded in `dir` with a `config` that would change its output:
/// any key but [`CHANGEABLE_ON_RESUME`] differing from the recorded one, named with both values.
pub(super) fn check_same_run(dir: &Path, config: &McmcConfig) -> Result<(), McmcError> {
    let path = run_config_path(dir);
    let Ok(bytes) = std::fs::read(&path) else {
        // A folder from before the configuration was recorded: the checkpoint's checks apply.
        return Ok(());
    };
    let refuse = |reason: String| McmcError::Checkpoint {
        path: path.clone(),
        reason,
    };
    let recorded: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| refuse(format!("cannot resume: unreadable ({e})")))?;
    let this = recorded_form(config).map_err(|e| refuse(e.to_string()))?;
    let empty = serde_json::Map::new();
    let (old, new) = (
        recorded.as_object().unwrap_or(&empty),
        this.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        if CHANGEABLE_ON_RESUME.contains(&key.as_str()) || old.get(key) == new.get(key) {
            continue;
        }
        let show = |v: Option<&serde_json::Value>| v.map_or("absent".to_owned(), |v| v.to_string());
        return Err(refuse(format!(
            "cannot resume: key `{key}` was {} for this run and is {} now, which would change its output; resume with the run's configuration, or start afresh with --overwrite (only {} may change on resume)",
            show(old.get(key)),
            show(new.get(key)),
            CHANGEABLE_ON_RESUME.join(" and ")
        )));
    }
    Ok(())
}

pub(super) fn write_run_config(dir: &Path, config: &McmcConfig) -> Result<(), McmcError> {
    let path = run_config_path(dir);
    let unwritable = |e: serde_json::Error| McmcError::Checkpoint {
        path: path.clone(),
        reason: e.to_string(),
    };
    let value = recorded_form(config).map_err(unwritable)?;
    let mut text = serde_json::to_string_pretty(&value).map_err(unwritable)?;
    text.push('\n');
    // Atomically: a crash mid-write must not leave a record that refuses every resume.
    write_atomically(&path, text.as_bytes())?;
    Ok(())
}

pub(super) fn load_checkpoint(
    path: &Path,
    settings: &SamplerSettings,
) -> Option<Result<Checkpoint, McmcError>> {
    let invalid = |reason: String| McmcError::Checkpoint {
        path: path.to_owned(),
        reason,
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        // An unreadable checkpoint must not pass for none: starting over would empty the chains.
        Err(e) => return Some(Err(invalid(format!("cannot read it: {e}")))),
    };
    /// Read first, so that a checkpoint of another sampler gets a clear refusal rather than a
    /// decoding error about a field.
    #[derive(Deserialize)]
    struct Version {
        #[serde(default)]
        version: u32,
    }
    let version = match rmp_serde::from_slice::<Version>(&bytes) {
        Ok(v) => v.version.max(1),
        Err(e) => return Some(Err(invalid(format!("unreadable: {e}")))),
    };
    if version != SAMPLER_VERSION {
        return Some(Err(invalid(format!(
            "it was written by sampler version {version} and this ganger samples with version \
             {SAMPLER_VERSION} (exact bounds, adaptation that forgets the start), which cannot \
             continue it; finish the run with the ganger that started it, or start afresh \
             without --resume"
        ))));
    }
    Some(
        rmp_serde::from_slice::<Checkpoint>(&bytes)
            .map_err(|e| invalid(format!("unreadable: {e}")))
            .and_then(|checkpoint| {
                if checkpoint.sampler.settings() == settings {
                    Ok(checkpoint)
                } else {
                    Err(invalid(
                        "it was written by a run with another configuration; remove it or use that configuration".into(),
                    ))
                }
            }),
    )
}

/// Writes the checkpoint next to its final name, syncs it, then renames it into place, so that
/// a crash at any moment leaves either the old checkpoint or the new one.
pub(super) fn save_checkpoint(
    path: &Path,
    sampler: &Sampler,
    prior: Option<&[f64]>,
    files: &mut ChainWriter,
) -> Result<(), McmcError> {
    let lengths = files.sync()?;
    let checkpoint = Checkpoint {
        version: SAMPLER_VERSION,
        sampler: sampler.clone(),
        lengths,
        prior: prior.map(<[f64]>::to_vec),
    };
    let bytes = rmp_serde::to_vec_named(&checkpoint).map_err(|e| McmcError::Checkpoint {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    // Its folder is synced too: the rename, and the chain files' own entries, survive a crash.
    write_atomically(path, &bytes)?;
    Ok(())
}
