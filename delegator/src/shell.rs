//! What the command line writes for the user to read or paste: command lines quoted for a
//! shell (the one that resumes an interrupted run, the one that plots a finished one), and
//! counts with their thousands separated.

/// This very command line, as the shell would take it, without the arguments in `without` and
/// with `with` added if it is not there: what to type to resume.
pub(crate) fn this_command(without: &[&str], with: Option<&str>) -> String {
    let mut args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| !without.contains(&a.as_str()))
        .collect();
    if let Some(with) = with {
        if !args.iter().any(|a| a == with) {
            args.push(with.to_owned());
        }
    }
    // A flag dropped here may still be set in the environment (GANGER_OVERWRITE with
    // --resume is refused): the command says it is off.
    let unset: String = without
        .iter()
        .filter_map(|flag| flag.strip_prefix("--"))
        .map(|name| format!("GANGER_{}", name.replace('-', "_").to_uppercase()))
        .filter(|variable| std::env::var_os(variable).is_some())
        .map(|variable| format!("{variable}=false "))
        .collect();
    let command = args
        .iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    format!("{unset}{command}")
}

/// This program followed by `args`, quoted for the shell.
pub(crate) fn command_with(args: &[&str]) -> String {
    let program = std::env::args_os().next().map_or_else(
        || "ganger-delegator".into(),
        |p| p.to_string_lossy().into_owned(),
    );
    std::iter::once(program.as_str())
        .chain(args.iter().copied())
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `word` as a POSIX shell reads it back: unchanged if it holds only safe characters, else in
/// single quotes.
pub(crate) fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// `n` with a comma between each group of three digits: 1,234,567.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{shell_quote, thousands};

    #[test]
    fn thousands_are_separated_by_commas() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn shell_quoting_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("--config"), "--config");
        assert_eq!(shell_quote("/tmp/a b.json"), "'/tmp/a b.json'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
