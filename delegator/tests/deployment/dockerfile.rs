//! Just enough of a Dockerfile parser for the checks: stages, instructions with their flags,
//! exec and shell forms, continuation lines and comments as Docker reads them.

use std::collections::BTreeMap;

/// A parsed Dockerfile.
#[derive(Debug)]
pub struct Dockerfile {
    pub stages: Vec<Stage>,
}

/// One `FROM` and what follows it.
#[derive(Debug)]
pub struct Stage {
    /// The image it starts from, e.g. `debian:bookworm-slim`.
    pub from: String,
    /// The name after `AS`, if any.
    pub name: Option<String>,
    pub instructions: Vec<Instruction>,
}

/// One instruction, continuation lines joined.
#[derive(Debug, Clone)]
pub struct Instruction {
    /// Upper case: `RUN`, `COPY`, …
    pub keyword: String,
    /// Leading `--name=value` options, e.g. `--from=build`, `--interval=10s`.
    pub flags: Vec<String>,
    /// The rest, after the keyword and its flags.
    pub rest: String,
    /// 1-based line the instruction starts on, for messages.
    pub line: usize,
}

/// A command as Docker runs it: exec form as is, shell form through `/bin/sh -c`.
pub fn command_of(rest: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(rest.trim()) {
        Ok(argv) => argv,
        Err(_) => vec!["/bin/sh".into(), "-c".into(), rest.trim().to_owned()],
    }
}

impl Dockerfile {
    pub fn parse(text: &str) -> Dockerfile {
        let mut stages: Vec<Stage> = Vec::new();
        for instruction in logical_lines(text) {
            if instruction.keyword == "FROM" {
                let words: Vec<&str> = instruction.rest.split_whitespace().collect();
                let name = match words.as_slice() {
                    [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                    [_] => None,
                    _ => panic!("line {}: FROM {}", instruction.line, instruction.rest),
                };
                stages.push(Stage {
                    from: words[0].to_owned(),
                    name,
                    instructions: Vec::new(),
                });
            } else {
                stages
                    .last_mut()
                    .unwrap_or_else(|| panic!("line {}: before any FROM", instruction.line))
                    .instructions
                    .push(instruction);
            }
        }
        Dockerfile { stages }
    }

    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> &Stage {
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no stage named {name}"))
    }

    /// The last stage: the image.
    pub fn runtime(&self) -> &Stage {
        self.stages.last().expect("at least one stage")
    }
}

impl Stage {
    /// Every instruction with this keyword, in order.
    pub fn all(&self, keyword: &str) -> Vec<&Instruction> {
        self.instructions
            .iter()
            .filter(|i| i.keyword == keyword)
            .collect()
    }

    /// The one instruction with this keyword that takes effect (the last).
    pub fn last(&self, keyword: &str) -> &Instruction {
        self.all(keyword)
            .last()
            .copied()
            .unwrap_or_else(|| panic!("stage {:?} has no {keyword}", self.name))
    }

    /// `WORKDIR` in force at the end of the stage (`/` without one).
    pub fn workdir(&self) -> String {
        self.all("WORKDIR")
            .last()
            .map_or("/".to_owned(), |i| i.rest.trim().to_owned())
    }

    /// Every `ENV` setting, later ones winning.
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for instruction in self.all("ENV") {
            for pair in instruction.rest.split_whitespace() {
                let (name, value) = pair.split_once('=').unwrap_or_else(|| {
                    panic!("line {}: ENV without `=`: {pair}", instruction.line)
                });
                env.insert(name.to_owned(), value.trim_matches('"').to_owned());
            }
        }
        env
    }

    /// The package arguments of every `apt-get install` in the stage's `RUN`s, e.g.
    /// `tini=0.19.0-1*`, quotes removed.
    pub fn apt_packages(&self) -> Vec<String> {
        let mut packages = Vec::new();
        for run in self.all("RUN") {
            for command in run.rest.split("&&") {
                let words: Vec<&str> = command.split_whitespace().collect();
                if let Some(at) = words.windows(2).position(|w| w == ["apt-get", "install"]) {
                    packages.extend(
                        words[at + 2..]
                            .iter()
                            .filter(|w| !w.starts_with('-'))
                            .map(|w| w.trim_matches('"').trim_matches('\'').to_owned()),
                    );
                }
            }
        }
        packages
    }
}

impl Instruction {
    /// The value of flag `--name=value`.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .find_map(|f| f.strip_prefix(&format!("--{name}=")))
    }

    /// `COPY`'s sources and destination (exec or space-separated form).
    pub fn copy_paths(&self) -> (Vec<String>, String) {
        let mut words = match serde_json::from_str::<Vec<String>>(self.rest.trim()) {
            Ok(words) => words,
            Err(_) => self.rest.split_whitespace().map(str::to_owned).collect(),
        };
        let destination = words.pop().expect("COPY has a destination");
        assert!(
            !words.is_empty(),
            "line {}: COPY without a source",
            self.line
        );
        (words, destination)
    }
}

/// Instructions with continuation lines joined and comment lines dropped (Docker drops comment
/// lines inside a continuation too).
fn logical_lines(text: &str) -> Vec<Instruction> {
    let mut instructions = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_none()) {
            continue;
        }
        let (continues, content) = match trimmed.strip_suffix('\\') {
            Some(content) => (true, content),
            None => (false, trimmed),
        };
        let (start, mut joined) = current.take().unwrap_or((index + 1, String::new()));
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(content.trim());
        if continues {
            current = Some((start, joined));
        } else {
            instructions.push(instruction(start, &joined));
        }
    }
    if let Some((start, joined)) = current {
        instructions.push(instruction(start, &joined));
    }
    instructions
}

fn instruction(line: usize, text: &str) -> Instruction {
    let (keyword, mut rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let mut flags = Vec::new();
    loop {
        rest = rest.trim_start();
        if !rest.starts_with("--") {
            break;
        }
        let (flag, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        flags.push(flag.to_owned());
        rest = after;
    }
    Instruction {
        keyword: keyword.to_ascii_uppercase(),
        flags,
        rest: rest.trim().to_owned(),
        line,
    }
}

#[test]
fn the_parser_joins_continuations_skips_comments_and_splits_flags() {
    let file = Dockerfile::parse(
        "# syntax=docker/dockerfile:1\nFROM rust:1 AS build\nRUN a \\\n    # a comment inside\n    && b\nFROM debian\nCOPY --from=build /x /y /usr/local/bin/\nENV A=1 B=\"two\"\nHEALTHCHECK --interval=5s \\\n  CMD [\"x\", \"status\"]\nCMD x || y\n",
    );
    assert_eq!(file.stages.len(), 2);
    assert_eq!(file.stage("build").last("RUN").rest, "a && b");
    let runtime = file.runtime();
    let copy = runtime.last("COPY");
    assert_eq!(copy.flag("from"), Some("build"));
    assert_eq!(
        copy.copy_paths(),
        (vec!["/x".into(), "/y".into()], "/usr/local/bin/".into())
    );
    assert_eq!(runtime.env()["B"], "two");
    let healthcheck = runtime.last("HEALTHCHECK");
    assert_eq!(healthcheck.flag("interval"), Some("5s"));
    assert_eq!(healthcheck.rest, "CMD [\"x\", \"status\"]");
    assert_eq!(command_of("[\"x\", \"status\"]"), ["x", "status"]);
    assert_eq!(
        command_of(&runtime.last("CMD").rest),
        ["/bin/sh", "-c", "x || y"]
    );
    assert_eq!(runtime.workdir(), "/");
}
