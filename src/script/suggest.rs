//! "Did you mean …?": the known name closest to a misspelt one, for warnings and errors about
//! handler kinds, reply fields and `wx.*` names.

/// Edits between two short names: insertions, deletions, substitutions and swaps of two
/// neighbouring characters (`titel` is one edit from `title`), each counting one (the
/// optimal string alignment distance).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Whether `distance` edits away is within a typo's reach of a word of `len` characters.
pub fn within_typo(distance: usize, len: usize) -> bool {
    distance <= 1.max(len / 3)
}

/// The candidate closest to `word` (case-insensitive), if one is within a typo's reach; ties
/// go to the candidate listed first.
pub fn closest<I, S>(word: &str, candidates: I) -> Option<S>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let lower = word.to_lowercase();
    let mut best: Option<(usize, S)> = None;
    for candidate in candidates {
        let distance = edit_distance(&lower, &candidate.as_ref().to_lowercase());
        if best.as_ref().is_none_or(|(d, _)| distance < *d) {
            best = Some((distance, candidate));
        }
    }
    best.filter(|(d, _)| within_typo(*d, lower.chars().count()))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_name_within_a_typo() {
        assert_eq!(edit_distance("replay", "reply"), 1);
        assert_eq!(edit_distance("titel", "title"), 1);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(closest("txt", ["image", "text", "voice"]), Some("text"));
        assert_eq!(closest("titel", ["title", "description"]), Some("title"));
        assert_eq!(closest("hologram", ["text", "image"]), None);
    }
}
