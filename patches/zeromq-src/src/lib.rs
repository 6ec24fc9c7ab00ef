//! libzmq for `zmq-sys`, with one fix: a ROUTER never gives a peer a routing id already in use.
//!
//! libzmq (4.3.4 and 4.3.5 alike) gives a peer that sends no routing id an id of a zero byte
//! and a counter, without looking whether another peer already holds that id. A peer may
//! choose its own id, so a stranger that takes the id the next worker will get makes libzmq's
//! `add_out_pipe` fail an assertion and abort the whole process when that worker connects;
//! the counter starts at glibc's unseeded `random()` value, so the ids are known in advance.
//! The fix draws the next counter value until the id is free: one loop in
//! `router_t::identify_peer`.
//!
//! How: `zmq-sys`'s build script calls [`Build::build`], which has crates.io's `zeromq-src`
//! 0.3.6 compile libzmq 4.3.5 as usual, through a compiler wrapper that compiles a patched copy
//! of `src/router.cpp` in place of the original (same flags, same include paths) and leaves
//! every other file alone. The wrapper checks that the patch applied, and the build fails
//! if it did not, so a libzmq whose source moved can never be linked unpatched.
//!
//! Only the calls `zmq-sys` makes are offered.

use std::path::{Path, PathBuf};

/// The line of `identify_peer` that draws an automatic id (the only one at this indentation).
const DRAW: &str = "            put_uint32 (buf + 1, _next_integral_routing_id++);";

/// What replaces it: draw again while the id is held by a peer that chose it.
const DRAW_UNTIL_FREE: &str =
    "            do { put_uint32 (buf + 1, _next_integral_routing_id++); \
     routing_id.set (buf, sizeof buf); } while (lookup_out_pipe (routing_id));";

/// Where libsodium is: accepted for `zmq-sys`'s signature; it passes `None` (no CURVE).
#[derive(Debug, Clone)]
pub struct LibLocation {
    include_dir: PathBuf,
    lib_dir: PathBuf,
}

impl LibLocation {
    /// A library in `lib_dir` with its headers in `include_dir`.
    pub fn new(lib_dir: impl Into<PathBuf>, include_dir: impl Into<PathBuf>) -> Self {
        LibLocation {
            include_dir: include_dir.into(),
            lib_dir: lib_dir.into(),
        }
    }

    /// The headers' directory.
    pub fn include_dir(&self) -> &Path {
        &self.include_dir
    }

    /// The library's directory.
    pub fn lib_dir(&self) -> &Path {
        &self.lib_dir
    }
}

/// A build of libzmq, as `zeromq_src::Build` offers it.
#[derive(Debug, Default)]
pub struct Build {
    libsodium: Option<LibLocation>,
}

impl Build {
    /// A build with libzmq's defaults (no draft API, no libsodium).
    pub fn new() -> Self {
        Build::default()
    }

    /// Links libsodium from `maybe` (enabling CURVE), or builds without it.
    pub fn with_libsodium(&mut self, maybe: Option<LibLocation>) -> &mut Self {
        self.libsodium = maybe;
        self
    }

    /// Compiles and links the patched libzmq; call from a build script.
    pub fn build(&mut self) {
        let out_dir =
            PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR: run from a build script"));
        let patch_dir = out_dir.join("ganger-router-patch");
        std::fs::create_dir_all(&patch_dir).expect("creating the patch directory");
        let marker = patch_dir.join("applied");
        let _ = std::fs::remove_file(&marker);

        let target = std::env::var("TARGET").expect("TARGET: run from a build script");
        let (variable, compiler) = compiler_variable(&target);
        let wrapper = patch_dir.join("cxx");
        write_wrapper(&wrapper, &compiler, &patch_dir, &target);
        let previous = std::env::var_os(&variable);
        std::env::set_var(&variable, &wrapper);

        let mut upstream = upstream::Build::new();
        upstream.with_libsodium(
            self.libsodium
                .as_ref()
                .map(|l| upstream::LibLocation::new(l.lib_dir(), l.include_dir())),
        );
        upstream.build();

        match previous {
            Some(value) => std::env::set_var(&variable, value),
            None => std::env::remove_var(&variable),
        }
        assert!(
            marker.exists(),
            "libzmq was compiled without ganger's router fix: src/router.cpp was not seen, or \
             the line `{}` was not in it (see patches/zeromq-src/src/lib.rs)",
            DRAW.trim()
        );
        println!("cargo:rerun-if-env-changed={variable}");
    }
}

/// The variable `cc` takes the C++ compiler from for `target` (the first one set, in `cc`'s
/// order, or `CXX_<target>` when none is), and the compiler it names.
fn compiler_variable(target: &str) -> (String, String) {
    let underscored = target.replace('-', "_");
    let kind = if std::env::var("HOST").ok().as_deref() == Some(target) {
        "HOST"
    } else {
        "TARGET"
    };
    let candidates = [
        format!("CXX_{target}"),
        format!("CXX_{underscored}"),
        format!("{kind}_CXX"),
        "CXX".to_string(),
    ];
    for name in &candidates {
        if let Ok(value) = std::env::var(name) {
            if !value.is_empty() {
                return (name.clone(), value);
            }
        }
    }
    (candidates[0].clone(), "c++".to_string())
}

/// A POSIX shell script that runs `compiler` with the same arguments, a patched copy of
/// `src/router.cpp` in place of the original.
fn write_wrapper(wrapper: &Path, compiler: &str, patch_dir: &Path, target: &str) {
    let defines = platform_defines(target);
    let patched = patch_dir.join("router.cpp");
    let marker = patch_dir.join("applied");
    let script = format!(
        r#"#!/bin/sh
# Written by ganger's zeromq-src stand-in: compiles libzmq, src/router.cpp patched.
n=$#
i=0
while [ "$i" -lt "$n" ]; do
    arg=$1
    shift
    case $arg in
    */src/router.cpp)
        sed 's/^{draw}$/{replacement}/' "$arg" > '{patched}' || exit 1
        if [ "$(grep -c 'while (lookup_out_pipe (routing_id))' '{patched}')" != 1 ]; then
            echo "ganger: the router fix does not apply to $arg" >&2
            exit 1
        fi
        : > '{marker}'
        arg='{patched}'
        ;;
    esac
    set -- "$@" "$arg"
    i=$((i + 1))
done
exec {compiler} {defines} "$@"
"#,
        draw = sed_escape(DRAW),
        replacement = sed_escape(DRAW_UNTIL_FREE),
        patched = patched.display(),
        marker = marker.display(),
        defines = defines.join(" "),
    );
    std::fs::write(wrapper, script).expect("writing the compiler wrapper");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(wrapper, std::fs::Permissions::from_mode(0o755))
            .expect("making the compiler wrapper executable");
    }
}

/// What libzmq's own CMake build detects on `target` and `zeromq-src` does not define, and we
/// want: on Linux, `pthread_setname_np`, so that libzmq's threads carry their names
/// (`ZMQbg/IO/0`, `ZMQbg/Reaper`) in profiles and `/proc`.
///
/// Not `ZMQ_HAVE_EVENTFD`, although it made each mailbox signal cheaper (a socketpair send was
/// 12 % of the MCMC driver's thread): with it, `delegator/tests/hostile_load.rs` saw the
/// delegator grow by 61 and 83 MB in 2 of 6 floods of strangers, over its 51 MB ceiling, and
/// that was not understood in time. See benches/RESULTS.md.
fn platform_defines(target: &str) -> &'static [&'static str] {
    if target.contains("linux") {
        &["-DZMQ_HAVE_PTHREAD_SETNAME_2"]
    } else {
        &[]
    }
}

/// `text` as a literal in a `sed` basic regular expression and replacement between `/`s.
fn sed_escape(text: &str) -> String {
    let mut escaped = String::new();
    for c in text.chars() {
        if matches!(c, '\\' | '/' | '.' | '*' | '[' | ']' | '^' | '$' | '&') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
