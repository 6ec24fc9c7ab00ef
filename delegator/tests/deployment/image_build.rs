//! The image as `docker build` makes it, checked on the build's own output: `.ci/run` copies the
//! build context as Docker sends it (`.ci/docker-context`), puts beside it the binaries the
//! image's build stage made (`docker cp` from that stage), and sets `GANGER_IMAGE_BUILD` to that
//! folder. These tests are marked ignored, so that `cargo test` reports them as not run; `.ci/run`
//! runs them with `--include-ignored`, and without the variable they fail saying what it needs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::free_port;
use crate::dockerfile::command_of;
use crate::image::{container_env, context_copies, copied_binaries, run_healthcheck, BIN_DIR};
use crate::{dockerfile, temp_dir};

/// Debian packages in every Debian image, which the binaries may link against without the
/// Dockerfile installing them: libc6 (glibc) and libgcc-s1 (unwinding).
const IN_EVERY_DEBIAN_IMAGE: [&str; 2] = ["libc6", "libgcc-s1"];

/// Why these tests are ignored unless asked for.
const NEEDS: &str =
    "needs GANGER_IMAGE_BUILD: the image's build context with its release binaries (.ci/run)";

/// The context folder with the image's release binaries, which `.ci/run` names.
fn build_dir() -> PathBuf {
    match std::env::var_os("GANGER_IMAGE_BUILD") {
        Some(dir) => PathBuf::from(dir),
        None => panic!("{NEEDS}"),
    }
}

/// A path of the build stage (under its WORKDIR) in the context folder.
fn in_build(dir: &Path, path: &str) -> PathBuf {
    let workdir = format!("{}/", dockerfile().stage("build").workdir());
    let relative = path
        .strip_prefix(&workdir)
        .unwrap_or_else(|| panic!("{path} is not under the build stage's {workdir}"));
    dir.join(relative)
}

/// The Debian package a shared library comes from, for the libraries a Rust binary may need.
fn package_of(library: &str) -> Option<&'static str> {
    let glibc = [
        "libc.so.6",
        "libm.so.6",
        "libdl.so.2",
        "librt.so.1",
        "libpthread.so.0",
    ];
    match library {
        l if glibc.contains(&l) || l.starts_with("ld-linux") => Some("libc6"),
        "libgcc_s.so.1" => Some("libgcc-s1"),
        "libstdc++.so.6" => Some("libstdc++6"),
        _ => None,
    }
}

/// The shared libraries an ELF file needs, from `readelf -d`.
fn needed_libraries(binary: &Path) -> Vec<String> {
    let output = Command::new("readelf")
        .arg("-d")
        .arg(binary)
        .output()
        .expect("readelf (binutils) runs");
    assert!(output.status.success(), "readelf -d {}", binary.display());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once("[")?.1.trim_end_matches(']').to_owned()))
        .collect()
}

#[test]
#[ignore = "needs GANGER_IMAGE_BUILD (.ci/run sets it)"]
fn the_release_binaries_are_where_the_image_copies_them_from_and_link_only_what_it_has() {
    let dir = build_dir();
    let file = dockerfile();
    let installed: BTreeSet<String> = file
        .runtime()
        .apt_packages()
        .iter()
        .map(|p| p.split('=').next().expect("a name").to_owned())
        .chain(IN_EVERY_DEBIAN_IMAGE.map(str::to_owned))
        .collect();
    for source in copied_binaries(&file) {
        let binary = in_build(&dir, &source);
        let metadata = std::fs::metadata(&binary)
            .unwrap_or_else(|e| panic!("{source}: {} {e}", binary.display()));
        use std::os::unix::fs::PermissionsExt as _;
        assert!(metadata.permissions().mode() & 0o111 != 0, "{source} runs");
        for library in needed_libraries(&binary) {
            let package = package_of(&library)
                .unwrap_or_else(|| panic!("{source} needs {library}: which package has it?"));
            assert!(
                installed.contains(package),
                "{source} needs {library} from {package}, which the runtime stage does not install"
            );
        }
    }
}

#[test]
#[ignore = "needs GANGER_IMAGE_BUILD (.ci/run sets it)"]
fn the_build_context_holds_what_the_runtime_stage_copies_from_it() {
    let dir = build_dir();
    for (destination, source) in context_copies(&dockerfile()) {
        assert!(
            dir.join(&source).is_file(),
            "COPY {source} {destination}: .dockerignore leaves {source} out"
        );
    }
}

/// `docker run IMAGE`: the CMD, from the working directory, with the image's environment; its
/// output lands under the working directory (the volume) and the health check passes meanwhile.
#[test]
#[ignore = "needs GANGER_IMAGE_BUILD (.ci/run sets it)"]
fn the_image_cmd_runs_the_demo_into_the_working_directory_and_is_healthy() {
    let dir = build_dir();
    let file = dockerfile();
    let runtime = file.runtime();
    let bin_dir = in_build(
        &dir,
        copied_binaries(&file)[0]
            .rsplit_once('/')
            .expect("a folder")
            .0,
    );
    let workdir = temp_dir("image-cmd");
    let mut env = container_env(&file, &workdir.join("tmp"));
    std::fs::create_dir_all(workdir.join("tmp")).unwrap();
    env.insert("GANGER_HTTP".into(), format!("127.0.0.1:{}", free_port()));
    let copies = context_copies(&file);
    let cmd: Vec<String> = command_of(&runtime.last("CMD").rest)
        .into_iter()
        .map(
            |arg| match copies.iter().find(|(destination, _)| *destination == arg) {
                Some((_, source)) => dir.join(source).display().to_string(),
                None => arg,
            },
        )
        .collect();
    let program = cmd[0].strip_prefix(BIN_DIR).unwrap_or(&cmd[0]);
    let mut demo = Command::new(bin_dir.join(program))
        .args(&cmd[1..])
        .current_dir(&workdir)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .envs(&env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo starts");
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut healthy = false;
    let status = loop {
        if let Some(status) = demo.try_wait().expect("wait works") {
            break status;
        }
        healthy = healthy || run_healthcheck(&bin_dir, &env).status.success();
        assert!(Instant::now() < deadline, "the demo takes too long");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    use std::io::Read as _;
    demo.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(healthy, "the health check never passed while the demo ran");
    let summary = workdir.join("demo-output/summary.json");
    assert!(summary.is_file(), "no {}", summary.display());
}

/// The pinned Debian packages exist in bookworm (checked on a bookworm host such as CI's), and
/// the ENTRYPOINT's program is in one the runtime stage installs.
#[test]
#[ignore = "needs GANGER_IMAGE_BUILD (.ci/run sets it)"]
fn the_pinned_packages_resolve_and_hold_the_entrypoint() {
    build_dir();
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    if !os_release.contains("VERSION_CODENAME=bookworm") {
        eprintln!("not a Debian bookworm host: the package pins are not checked here");
        return;
    }
    let file = dockerfile();
    for stage in &file.stages {
        let packages = stage.apt_packages();
        if packages.is_empty() {
            continue;
        }
        let output = Command::new("apt-get")
            .args(["install", "--simulate", "--no-install-recommends"])
            .args(&packages)
            .output()
            .expect("apt-get runs");
        assert!(
            output.status.success(),
            "{}: apt-get install {packages:?}: {}",
            stage.from,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let download = temp_dir("apt-download");
    let output = Command::new("apt-get")
        .arg("download")
        .args(file.runtime().apt_packages())
        .current_dir(&download)
        .output()
        .expect("apt-get runs");
    assert!(
        output.status.success(),
        "apt-get download: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let entrypoint = command_of(&file.runtime().last("ENTRYPOINT").rest);
    let wanted = format!(".{}", entrypoint[0]);
    let found = std::fs::read_dir(&download).unwrap().any(|deb| {
        let listing = Command::new("dpkg-deb")
            .arg("--contents")
            .arg(deb.unwrap().path())
            .output()
            .expect("dpkg-deb runs");
        String::from_utf8_lossy(&listing.stdout)
            .lines()
            .any(|l| l.split_whitespace().nth(5) == Some(wanted.as_str()))
    });
    assert!(found, "no installed package ships {}", entrypoint[0]);
}
