//! Finding the longest phrase of a list inside a question, on whole words.

use std::cmp::Reverse;

use crate::concept::label_words;

/// How specific a match is: words, characters, then earlier position first.
type Specificity = (usize, usize, Reverse<usize>);

/// The value of the most specific phrase that occurs in `text` as a run of whole words
/// (case-insensitive): more words win, then more characters, then the earlier occurrence.
pub(crate) fn best_match<T: Copy>(
    text: &str,
    phrases: impl IntoIterator<Item = (&'static str, T)>,
) -> Option<T> {
    let words = label_words(text);
    let mut best: Option<(Specificity, T)> = None;
    for (phrase, value) in phrases {
        let phrase_words = label_words(phrase);
        if phrase_words.is_empty() || phrase_words.len() > words.len() {
            continue;
        }
        let Some(position) = words.windows(phrase_words.len()).position(|window| window == phrase_words)
        else {
            continue;
        };
        let score = (phrase_words.len(), phrase.len(), Reverse(position));
        if best.as_ref().is_none_or(|(best_score, _)| score > *best_score) {
            best = Some((score, value));
        }
    }
    best.map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHRASES: [(&str, u8); 4] = [("income", 1), ("net income", 2), ("income tax", 3), ("eps", 4)];

    #[test]
    fn longest_phrase_wins() {
        assert_eq!(best_match("What was Apple's NET income in 2022?", PHRASES), Some(2));
        assert_eq!(best_match("income tax paid", PHRASES), Some(3));
        assert_eq!(best_match("other income", PHRASES), Some(1));
    }

    #[test]
    fn whole_words_only() {
        assert_eq!(best_match("incomes and steps", PHRASES), None);
        assert_eq!(best_match("EPS, diluted", PHRASES), Some(4));
        assert_eq!(best_match("", PHRASES), None);
    }

    #[test]
    fn earlier_occurrence_breaks_ties() {
        assert_eq!(best_match("net income and income tax", PHRASES), Some(2));
        assert_eq!(best_match("income tax and net income", PHRASES), Some(3));
    }
}
