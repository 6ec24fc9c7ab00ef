//! Every setting of both binaries is an environment variable, shown in `--help`, and each
//! variable is in the one table of docs/deploying.md with its flag and default.

use std::collections::{BTreeMap, BTreeSet};

use crate::help::{Help, BINARIES};
use crate::read;

/// Read by both binaries but not flags: the log filter, and the cluster secret itself (a value
/// on a command line would be visible to every local user).
const NOT_FLAGS: [&str; 2] = ["GANGER_LOG", "GANGER_SECRET"];

/// One option or argument of one command: `ganger-delegator mcmc --config` reads
/// `GANGER_CONFIG`.
#[derive(Debug)]
struct Setting {
    /// `ganger-delegator --bind`, `ganger-delegator mcmc --config`,
    /// `ganger-delegator plot OUTPUT_DIR`: how the table's flag column names it.
    command_line: String,
    variable: Option<String>,
    default: Option<String>,
}

/// Every option and argument of both binaries and their subcommands, each once: options every
/// subcommand inherits are listed under the binary alone.
fn all_settings() -> Vec<Setting> {
    let mut settings = Vec::new();
    for binary in BINARIES {
        let top = Help::of(binary, &[]).expect("--help works");
        // A global option shows in every subcommand's help as it does in the binary's; an
        // option of a subcommand that shares a name (`ganger-worker status --status-file`)
        // says something of its own.
        let inherited: BTreeSet<(String, String)> = top
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.description.clone()))
            .collect();
        let mut commands = vec![(String::new(), top)];
        for subcommand in commands[0].1.subcommands.clone() {
            let help = Help::of(binary, std::slice::from_ref(&subcommand))
                .unwrap_or_else(|e| panic!("{binary} {subcommand} --help: {e}"));
            commands.push((subcommand, help));
        }
        for (subcommand, help) in commands {
            for entry in help.entries {
                if ["--help", "--version"].contains(&entry.name.as_str())
                    || (!subcommand.is_empty()
                        && inherited.contains(&(entry.name.clone(), entry.description.clone())))
                {
                    continue;
                }
                let command_line = [binary, &subcommand, &entry.name]
                    .iter()
                    .filter(|w| !w.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ");
                settings.push(Setting {
                    command_line,
                    variable: entry.env,
                    default: entry.default,
                });
            }
        }
    }
    settings
}

/// Every variable either binary reads.
pub fn all_variables() -> BTreeSet<String> {
    all_settings()
        .into_iter()
        .filter_map(|s| s.variable)
        .chain(NOT_FLAGS.map(str::to_owned))
        .collect()
}

/// A row of docs/deploying.md's settings table.
#[derive(Debug)]
struct Row {
    flags: String,
    default: String,
}

/// The one table whose header is `| variable | flag | default | meaning |`, by variable.
fn settings_table() -> BTreeMap<String, Row> {
    let text = read("docs/deploying.md");
    let header = "| variable | flag | default | meaning |";
    assert_eq!(
        text.lines().filter(|l| l.trim() == header).count(),
        1,
        "docs/deploying.md has one settings table, headed {header}"
    );
    let mut rows = BTreeMap::new();
    let lines = text.lines().skip_while(|l| l.trim() != header).skip(2);
    for line in lines.take_while(|l| l.trim_start().starts_with('|')) {
        let cells: Vec<&str> = line.trim().trim_matches('|').split(" | ").collect();
        assert_eq!(cells.len(), 4, "four cells: {line}");
        let variable = cells[0].trim().trim_matches('`').to_owned();
        assert!(variable.starts_with("GANGER_"), "{line}");
        let row = Row {
            flags: cells[1].replace('`', ""),
            default: cells[2].replace('`', ""),
        };
        assert!(
            rows.insert(variable.clone(), row).is_none(),
            "{variable} has two rows"
        );
    }
    rows
}

#[test]
fn every_option_and_argument_of_both_binaries_has_a_ganger_variable() {
    let settings = all_settings();
    assert!(settings.len() > 30, "{settings:?}");
    let missing: Vec<&str> = settings
        .iter()
        .filter(|s| {
            !s.variable
                .as_ref()
                .is_some_and(|v| v.starts_with("GANGER_"))
        })
        .map(|s| s.command_line.as_str())
        .collect();
    assert!(missing.is_empty(), "no GANGER_* variable: {missing:?}");
    for required in [
        "ganger-delegator probe --url",
        "ganger-delegator plot OUTPUT_DIR",
        "ganger-worker status --status-file",
    ] {
        assert!(
            settings.iter().any(|s| s.command_line == required),
            "{required} not found in the help"
        );
    }
}

#[test]
fn the_deploying_guide_lists_every_variable_with_its_flag_and_default() {
    let table = settings_table();
    for setting in all_settings() {
        let variable = setting.variable.expect("checked by the test above");
        let row = table
            .get(&variable)
            .unwrap_or_else(|| panic!("docs/deploying.md: no row for {variable}"));
        assert!(
            row.flags.contains(&setting.command_line),
            "docs/deploying.md: the row of {variable} names `{}` in its flag column: {}",
            setting.command_line,
            row.flags
        );
        if let Some(default) = setting.default {
            assert!(
                row.default.contains(&default),
                "docs/deploying.md: the default of {variable} is {default}, not {}",
                row.default
            );
        }
    }
    let known = all_variables();
    let stale: Vec<&String> = table.keys().filter(|v| !known.contains(*v)).collect();
    assert!(
        stale.is_empty(),
        "docs/deploying.md lists variables no binary reads: {stale:?}"
    );
}
