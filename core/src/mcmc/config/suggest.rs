//! "Did you mean" hints for a misspelt key or value, by edit distance.

/// The candidate `word` is most likely a typo of, if any is close: edit distance at most a
/// third of the word's length (and at least 2), ignoring case, `_` and `-` so that `nstacks`,
/// `n_stacks` and `n-stacks` all find `nStacks`.
pub(super) fn did_you_mean(word: &str, candidates: &[&'static str]) -> Option<&'static str> {
    fn normalise(s: &str) -> Vec<char> {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    }
    let word = normalise(word);
    let limit = (word.len() / 3).max(2);
    candidates
        .iter()
        .map(|c| (edit_distance(&word, &normalise(c)), *c))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// The Levenshtein distance: the fewest single-character insertions, deletions and
/// substitutions that turn `a` into `b`.
pub(super) fn edit_distance(a: &[char], b: &[char]) -> usize {
    // One row of the dynamic-programming table at a time: row[j] is the distance between the
    // prefix of `a` read so far and the first j characters of `b`.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}
