//! What the bench harnesses that start ganger's programs share.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{ensure, Context as _, Result};

/// The folder of the release binaries beside this bench (`target/release`), with
/// `ganger-delegator` and `ganger-worker` built first if stale, once per bench process: a stale
/// binary would measure old code.
pub fn release_binaries() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the bench runs from target/PROFILE/deps")?
        .to_path_buf();
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "ganger-delegator"])
        .args(["-p", "ganger-worker", "--bins"])
        .status()
        .context("running cargo to build the binaries")?;
    ensure!(status.success(), "building the binaries failed");
    Ok(dir)
}
