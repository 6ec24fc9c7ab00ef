//! The deployment files against the binaries they deploy, without a container engine.
//!
//! The `Dockerfile`, `docker-compose.yml` and `deploy/kubernetes/*.yaml` name programs, flags,
//! environment variables, paths and ports; the Marathon files rely on the image's contract too.
//! These tests read those files and hold each name to what the workspace builds and what the
//! binaries' `--help` says they accept, and run the image's health check against real
//! processes. What needs the image's release build is ignored unless asked for: `.ci/run` sets
//! `GANGER_IMAGE_BUILD` and runs it (see `image_build`).

#[path = "../common/mod.rs"]
mod common;
mod compose;
mod dockerfile;
mod help;
mod image;
mod image_build;
mod kubernetes;
mod settings;

use std::path::{Path, PathBuf};

use dockerfile::Dockerfile;

/// The repository root, where the deployment files live.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the delegator crate sits in the workspace")
        .to_owned()
}

/// A file of the repository as text.
pub fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The repository's Dockerfile, parsed.
pub fn dockerfile() -> Dockerfile {
    Dockerfile::parse(&read("Dockerfile"))
}

/// A fresh temporary folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ganger-deploy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    dir
}
