//! What the bench harnesses share: the release binaries they start, and how they print a
//! figure measured several times.

// Each bench uses its own part of this module.
#![allow(dead_code)]

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

/// `median [low – high]` with `digits` decimals, or the one value.
pub fn median_range(values: &[f64], digits: usize) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    if sorted.len() == 1 {
        return format!("{median:.digits$}");
    }
    format!(
        "{median:.digits$} [{:.digits$} – {:.digits$}]",
        sorted[0],
        sorted[sorted.len() - 1]
    )
}
