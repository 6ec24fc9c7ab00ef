//! What the binaries accept, read from their `--help`: the options and arguments of each
//! command with their environment variables and defaults, and whether a command line of a
//! deployment file is one they take.

use std::collections::BTreeMap;
use std::process::Command;

use crate::common::{delegator_bin, worker_bin};

/// The two programs of the image.
pub const BINARIES: [&str; 2] = ["ganger-delegator", "ganger-worker"];

/// One option (`--bind`) or argument (`<OUTPUT_DIR>`) of a command's help.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `--bind`, `-h, --help` shortened to `--help`, or `OUTPUT_DIR` for an argument.
    pub name: String,
    /// The `GANGER_*` variable shown as `[env: …]`.
    pub env: Option<String>,
    /// The default clap shows after the variable, as `[default: …]`.
    pub default: Option<String>,
    /// The whole description, on one line.
    pub description: String,
    /// Whether it takes a value (`--bind <BIND>`), or is a yes/no flag (`--keep-serving`).
    pub takes_value: bool,
}

/// The parsed `--help` of one command line.
#[derive(Debug)]
pub struct Help {
    /// The first `Usage:` line, after `Usage:`.
    pub usage: String,
    pub entries: Vec<Entry>,
    /// The subcommands listed under `Commands:` (without `help`).
    pub subcommands: Vec<String>,
}

impl Help {
    /// The help of `program args --help`; `Err` with clap's message if the arguments are not
    /// ones the program takes. Clap parses arguments in order and stops at `--help`, so every
    /// flag and value before it has been checked.
    pub fn of(program: &str, args: &[String]) -> Result<Help, String> {
        let output = Command::new(binary_path(program))
            .args(args)
            .arg("--help")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .output()
            .expect("the binary runs");
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        Ok(Help::parse(&String::from_utf8_lossy(&output.stdout)))
    }

    /// The entry for `--name` or argument `NAME`.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Options the usage line requires, e.g. `--config` for `mcmc`; `<COMMAND>` if a subcommand
    /// is required.
    pub fn required(&self) -> Vec<String> {
        let mut depth = 0;
        let mut required = Vec::new();
        for word in self.usage.split_whitespace() {
            let opens = word.matches('[').count() as i32;
            let closes = word.matches(']').count() as i32;
            if depth == 0 && opens == 0 && (word.starts_with("--") || word == "<COMMAND>") {
                required.push(word.to_owned());
            }
            depth += opens - closes;
        }
        required
    }

    fn parse(text: &str) -> Help {
        let usage = text
            .lines()
            .find_map(|l| l.strip_prefix("Usage: "))
            .expect("a Usage: line")
            .to_owned();
        let mut entries: Vec<(String, bool, String)> = Vec::new();
        let mut subcommands = Vec::new();
        let mut section = "";
        // Options come under `Options:`, `Arguments:` or a heading of their own (`Limits:`);
        // a section is one of options once an entry starts it, which prose after the options
        // (`Examples:`) never does.
        let mut options = false;
        for line in text.lines() {
            if !line.starts_with(' ') && line.ends_with(':') {
                section = line;
                options = false;
                continue;
            }
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            match section {
                "Commands:" if indent == 2 => {
                    let name = trimmed.split_whitespace().next().unwrap_or_default();
                    if name != "help" {
                        subcommands.push(name.to_owned());
                    }
                }
                // Entries start at two spaces (`-h, --help`, `<OUTPUT_DIR>`) or six (`--bind`, in
                // line with long names that have a short one); descriptions are indented more.
                "Commands:" | "" => {}
                _ if indent <= 6 && (trimmed.starts_with('-') || trimmed.starts_with('<')) => {
                    options = true;
                    let (head, description) = split_head(trimmed);
                    entries.push((entry_name(head), head.contains('<'), description.to_owned()));
                }
                _ if options && !trimmed.is_empty() => {
                    if let Some((_, _, description)) = entries.last_mut() {
                        // Clap puts a description beside the name or below it, as widths allow.
                        if !description.is_empty() {
                            description.push(' ');
                        }
                        description.push_str(trimmed);
                    }
                }
                _ => {}
            }
        }
        let entries = entries
            .into_iter()
            .map(|(name, takes_value, description)| {
                let env = bracketed(&description, "[env: ").map(|e| {
                    e.split_once('=')
                        .map_or(e.as_str(), |(name, _)| name)
                        .to_owned()
                });
                // Clap puts its default after the variable; one written in the text comes before.
                let after_env = description
                    .find("[env: ")
                    .map_or("", |at| &description[at..]);
                let default = bracketed(after_env, "[default: ");
                Entry {
                    name,
                    env,
                    default,
                    description,
                    takes_value,
                }
            })
            .collect();
        Help {
            usage,
            entries,
            subcommands,
        }
    }
}

/// The path of one of the image's programs as built for the tests.
pub fn binary_path(program: &str) -> std::path::PathBuf {
    match program {
        "ganger-delegator" => delegator_bin(),
        "ganger-worker" => worker_bin(),
        other => panic!("{other} is not a program of the image"),
    }
}

/// A command line of a deployment file (a Dockerfile `CMD`, a Compose `command`, Kubernetes
/// `args`), checked against the binary it runs: the program is one of the image's, clap accepts
/// every flag and value, each required option is given or in the container's environment `env`,
/// and every `GANGER_*` variable the file itself sets (`set`) is one this command reads, a
/// yes/no flag's with `true` or `false` (all clap takes there). Returns its help.
pub fn check_command_line(
    argv: &[String],
    env: &BTreeMap<String, String>,
    set: &BTreeMap<String, String>,
    what: &str,
) -> Help {
    let program = argv
        .first()
        .unwrap_or_else(|| panic!("{what}: an empty command"));
    let program = program.strip_prefix("/usr/local/bin/").unwrap_or(program);
    assert!(
        BINARIES.contains(&program),
        "{what}: runs {program}, which is not one of the image's programs {BINARIES:?}"
    );
    let help = Help::of(program, &argv[1..])
        .unwrap_or_else(|e| panic!("{what}: `{}` is refused:\n{e}", argv.join(" ")));
    for required in help.required() {
        assert_ne!(
            required,
            "<COMMAND>",
            "{what}: `{}` names no subcommand",
            argv.join(" ")
        );
        let variable = help.entry(&required).and_then(|e| e.env.clone());
        let given = argv
            .iter()
            .any(|a| a == &required || a.starts_with(&format!("{required}=")))
            || variable.as_ref().is_some_and(|v| env.contains_key(v));
        assert!(
            given,
            "{what}: `{}` needs {required} (or {variable:?})",
            argv.join(" ")
        );
    }
    for (name, value) in set.iter().filter(|(n, _)| n.starts_with("GANGER_")) {
        if name == "GANGER_LOG" {
            continue;
        }
        let entry = help
            .entries
            .iter()
            .find(|e| e.env.as_ref() == Some(name))
            .unwrap_or_else(|| {
                panic!(
                    "{what}: sets {name}, which `{}` does not read",
                    argv.join(" ")
                )
            });
        assert!(
            entry.takes_value || ["true", "false"].contains(&value.as_str()),
            "{what}: {name}={value}: a yes/no flag's variable takes true or false"
        );
    }
    help
}

/// The port of an address or endpoint: `tcp://*:5555` → 5555, `0.0.0.0:8080` → 8080.
pub fn port_of(address: &str) -> u16 {
    address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {address}"))
}

/// The port the delegator binds for workers and the one it serves HTTP on, as set by `argv`
/// or `env`, else its defaults (read from its help).
pub fn delegator_ports(argv: &[String], env: &BTreeMap<String, String>) -> (u16, u16) {
    let help = Help::of("ganger-delegator", &[]).expect("the delegator's help");
    let setting = |flag: &str, variable: &str| {
        argv.iter()
            .position(|a| a == flag)
            .and_then(|at| argv.get(at + 1).cloned())
            .or_else(|| env.get(variable).cloned())
    };
    let bind_default = default_in_text(&help, "--bind");
    let http_default = default_in_text(&help, "--http");
    let bind = setting("--bind", "GANGER_BIND").unwrap_or(bind_default);
    let http = setting("--http", "GANGER_HTTP").unwrap_or(http_default);
    (port_of(&bind), port_of(&http))
}

/// The first address in the `[default: …]` that the description of `flag` writes itself (such
/// as `tcp://*:5555`), which clap does not know about.
fn default_in_text(help: &Help, flag: &str) -> String {
    let entry = help
        .entry(flag)
        .unwrap_or_else(|| panic!("{flag} in the delegator's help"));
    let default = bracketed(&entry.description, "[default: ")
        .unwrap_or_else(|| panic!("{flag}: no default in {:?}", entry.description));
    default
        .split([',', ' '])
        .next()
        .expect("an address")
        .to_owned()
}

/// The text between `open` and the matching `]`.
fn bracketed(text: &str, open: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(']')? + start;
    Some(text[start..end].to_owned())
}

/// `-h, --help` → `--help`; `--bind <BIND>` → `--bind`; `<OUTPUT_DIR>` → `OUTPUT_DIR`.
fn entry_name(head: &str) -> String {
    let last = head.split(", ").last().unwrap_or(head);
    let name = last.split_whitespace().next().unwrap_or(last);
    name.trim_start_matches('<')
        .trim_end_matches('>')
        .trim_end_matches("...")
        .to_owned()
}

/// An entry's first line: the head (`--bind <BIND>`) and, in the short layout, the description
/// after two spaces.
fn split_head(line: &str) -> (&str, &str) {
    match line.find("  ") {
        Some(at) => (&line[..at], line[at..].trim()),
        None => (line, ""),
    }
}
