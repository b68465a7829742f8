//! A small discriminative learner for the candidate ranking: multinomial logistic regression over
//! sparse features of a mention (the words right before and after the number, nearby words by
//! distance, the unit cue, the number's shape), trained on the tagged examples.
//!
//! Naive Bayes (in `candidates.rs`) counts every context word independently, so a sentence's many
//! shared words ("credit", "facility", "million") swamp the two words that decide the tag ("up to
//! $", "bear interest at"). Weights learned jointly on the examples let those few words win; the
//! naive Bayes score stays for the tags the examples never show and as a prior.

use std::collections::HashMap;

use super::super::mentions::{Mention, UnitCue};

/// How the learner trains.
#[derive(Debug, Clone, Copy)]
pub struct LearnerConfig {
    /// Passes over the examples.
    pub n_epochs: usize,
    /// Step size of the first pass; pass `e` uses `learning_rate / (1 + e)`.
    pub learning_rate: f64,
    /// L2 penalty per update, which keeps rare features from deciding alone.
    pub l2: f64,
    /// Seed of the example order, so the same examples always give the same weights.
    pub seed: u64,
}

impl Default for LearnerConfig {
    fn default() -> Self {
        Self { n_epochs: 20, learning_rate: 8.0, l2: 1e-4, seed: 0x5eed_f1e7 }
    }
}

/// Content words this close to the number (in words) get their own near feature.
const NEAR_WORDS: usize = 3;
/// Content words farther than this from the number are left out of the window features.
const WINDOW_WORDS: usize = 12;

const STOP_WORDS: [&str; 30] = [
    "the", "a", "an", "of", "to", "in", "and", "or", "for", "on", "at", "by", "with", "as", "is", "was",
    "were", "be", "been", "are", "that", "which", "this", "its", "it", "our", "we", "from", "has", "have",
];

/// Value of each kind of feature before the vector is scaled to unit length: the words right at
/// the number and those in its window count fully, bigrams and the rest of the sentence half
/// (chosen by 5-fold cross-validation on FiNER's train split; weighting the adjacent words up did
/// worse there).
const ADJACENT_WEIGHT: f64 = 1.0;
const NEAR_WEIGHT: f64 = 1.0;
const WINDOW_WEIGHT: f64 = 1.0;
const BIGRAM_WEIGHT: f64 = 0.5;
const SENTENCE_WEIGHT: f64 = 0.5;

/// The features of `mention` in `sentence` with their values, each name once.
pub fn features(sentence: &str, mention: &Mention) -> Vec<(String, f64)> {
    let before = tokens(sentence.get(..mention.start).unwrap_or(""));
    let after = tokens(sentence.get(mention.end..).unwrap_or(""));
    let adjacent = ADJACENT_WEIGHT;
    let mut features: Vec<(String, f64)> = vec![
        (format!("unit={:?}", mention.unit), adjacent),
        (format!("shape={}", number_shape(mention)), adjacent),
    ];
    let previous: Vec<&str> = before.iter().rev().take(3).map(String::as_str).collect();
    let next: Vec<&str> = after.iter().take(3).map(String::as_str).collect();
    let at = |words: &[&str], idx: usize| words.get(idx).copied().unwrap_or("<edge>").to_string();
    for name in [
        format!("prev1={}", at(&previous, 0)),
        format!("prev2={} {}", at(&previous, 1), at(&previous, 0)),
        format!("prev3={} {} {}", at(&previous, 2), at(&previous, 1), at(&previous, 0)),
        format!("next1={}", at(&next, 0)),
        format!("next2={} {}", at(&next, 0), at(&next, 1)),
        format!("around={} _ {}", at(&previous, 0), at(&next, 0)),
    ] {
        features.push((name, adjacent));
    }

    let content_before: Vec<&String> = before.iter().rev().filter(|word| is_content(word)).collect();
    let content_after: Vec<&String> = after.iter().filter(|word| is_content(word)).collect();
    for (side, words) in [("b", &content_before), ("a", &content_after)] {
        let window: Vec<&&String> = words.iter().take(WINDOW_WORDS).collect();
        for (distance, word) in window.iter().enumerate() {
            features.push((format!("w={word}"), WINDOW_WEIGHT));
            if distance < NEAR_WORDS {
                features.push((format!("near{side}={word}"), NEAR_WEIGHT));
            }
        }
        for pair in window.windows(2) {
            let (closer, farther) = (pair[0], pair[1]);
            let name =
                if side == "b" { format!("bi={farther} {closer}") } else { format!("bi={closer} {farther}") };
            features.push((name, BIGRAM_WEIGHT));
        }
    }
    for word in before.iter().chain(&after).filter(|word| is_content(word)) {
        features.push((format!("s={word}"), SENTENCE_WEIGHT));
    }
    // One value per name: the largest of its occurrences.
    features.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    features.dedup_by(|later, earlier| later.0 == earlier.0);
    features.retain(|(_, value)| *value > 0.0);
    let norm = features.iter().map(|(_, value)| value * value).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    for (_, value) in &mut features {
        *value /= norm;
    }
    features
}

fn is_content(word: &str) -> bool {
    word.chars().any(char::is_alphabetic) && !STOP_WORDS.contains(&word)
}

/// Lowercase, lightly stemmed tokens of `text`; numbers become `<num>`, `%` and `$` are tokens.
fn tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for piece in text.split_whitespace() {
        let mut word = String::new();
        for ch in piece.chars() {
            if ch == '%' || ch == '$' {
                flush(&mut word, &mut tokens);
                tokens.push(ch.to_string());
            } else if ch.is_alphanumeric()
                || ((ch == '.' || ch == ',') && word.starts_with(|c: char| c.is_ascii_digit()))
            {
                word.extend(ch.to_lowercase());
            } else {
                flush(&mut word, &mut tokens);
            }
        }
        flush(&mut word, &mut tokens);
    }
    tokens
}

fn flush(word: &mut String, tokens: &mut Vec<String>) {
    let word = std::mem::take(word);
    let word = word.trim_end_matches(['.', ',']);
    if word.is_empty() {
        return;
    }
    if word.starts_with(|c: char| c.is_ascii_digit()) {
        tokens.push("<num>".to_string());
    } else {
        tokens.push(stem(word));
    }
}

/// A crude stem so `notes`/`note` and `rates`/`rate` meet.
fn stem(word: &str) -> String {
    let word = word.strip_suffix("ies").map(|stem| format!("{stem}y")).unwrap_or_else(|| word.to_string());
    match word.strip_suffix('s') {
        Some(stem) if stem.len() > 2 && !stem.ends_with('s') => stem.to_string(),
        _ => word,
    }
}

/// The number's shape: its unit-free kind, how many decimals it has and its magnitude, which tell
/// a rate (`5.25`) from a count (`3`) from an amount (`500`, `1,250.0`) or a year-like `2025`.
fn number_shape(mention: &Mention) -> String {
    let digits: String = mention.span.chars().filter(|c| c.is_ascii_digit() || *c == '.').collect();
    let (integer, decimals) = digits.split_once('.').unwrap_or((&digits, ""));
    let integer: f64 = integer.parse().unwrap_or(0.0);
    let magnitude = match integer {
        x if x < 1.0 => "lt1",
        x if x < 10.0 => "lt10",
        x if x < 100.0 => "lt100",
        x if x < 1000.0 => "lt1000",
        x if (1990.0..=2060.0).contains(&x) && decimals.is_empty() && mention.unit == UnitCue::Plain => {
            "yearlike"
        }
        _ => "big",
    };
    format!("{magnitude}.d{}", decimals.len().min(3))
}

/// Multinomial logistic regression over named sparse binary features.
#[derive(Debug, Clone, Default)]
pub struct Learner {
    feature_ids: HashMap<String, usize>,
    /// Weights, `n_features x n_classes`, row by feature.
    weights: Vec<f64>,
    n_classes: usize,
}

impl Learner {
    /// Trains on `examples`: each a feature list and a class in `0..n_classes`.
    pub fn train(examples: &[(Vec<(String, f64)>, usize)], n_classes: usize, config: &LearnerConfig) -> Self {
        let mut feature_ids: HashMap<String, usize> = HashMap::new();
        let encoded: Vec<(Vec<(usize, f64)>, usize)> = examples
            .iter()
            .filter(|(_, class)| *class < n_classes)
            .map(|(features, class)| {
                let ids = features
                    .iter()
                    .map(|(name, value)| {
                        let next_id = feature_ids.len();
                        (*feature_ids.entry(name.clone()).or_insert(next_id), *value)
                    })
                    .collect();
                (ids, *class)
            })
            .collect();
        let mut learner =
            Learner { weights: vec![0.0; feature_ids.len() * n_classes], feature_ids, n_classes };
        let mut order: Vec<usize> = (0..encoded.len()).collect();
        let mut rng_state = config.seed | 1;
        for epoch in 0..config.n_epochs {
            shuffle(&mut order, &mut rng_state);
            let step = config.learning_rate / (1.0 + epoch as f64);
            for &example_idx in &order {
                let (ids, class) = &encoded[example_idx];
                learner.update(ids, *class, step, config.l2);
            }
        }
        learner
    }

    fn logits_of(&self, features: &[(usize, f64)]) -> Vec<f64> {
        let mut logits = vec![0.0; self.n_classes];
        for &(id, value) in features {
            let row = &self.weights[id * self.n_classes..(id + 1) * self.n_classes];
            for (logit, weight) in logits.iter_mut().zip(row) {
                *logit += weight * value;
            }
        }
        logits
    }

    /// One step of gradient descent on the example's cross-entropy plus the L2 penalty of the
    /// weights it touches.
    fn update(&mut self, features: &[(usize, f64)], class: usize, step: f64, l2: f64) {
        let probabilities = softmax(&self.logits_of(features));
        for &(id, value) in features {
            let row = &mut self.weights[id * self.n_classes..(id + 1) * self.n_classes];
            for (class_idx, weight) in row.iter_mut().enumerate() {
                let target = if class_idx == class { 1.0 } else { 0.0 };
                let gradient = (probabilities[class_idx] - target) * value + l2 * *weight;
                *weight -= step * gradient;
            }
        }
    }

    /// Log-probability of each class for `features`; features never seen in training are ignored.
    pub fn log_probabilities(&self, features: &[(String, f64)]) -> Vec<f64> {
        let known: Vec<(usize, f64)> = features
            .iter()
            .filter_map(|(name, value)| self.feature_ids.get(name).map(|&id| (id, *value)))
            .collect();
        softmax(&self.logits_of(&known)).into_iter().map(|p| p.max(f64::MIN_POSITIVE).ln()).collect()
    }
}

fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits.iter().map(|x| (x - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|x| x / sum).collect()
}

/// Fisher-Yates with xorshift64, so training needs no random-number crate and is reproducible.
fn shuffle(order: &mut [usize], state: &mut u64) {
    for idx in (1..order.len()).rev() {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let other = (*state % (idx as u64 + 1)) as usize;
        order.swap(idx, other);
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::mentions::mention_of;
    use super::*;

    fn names(sentence: &str, entity: &str) -> Vec<String> {
        let mention = mention_of(sentence, entity).expect("entity in sentence");
        features(sentence, &mention).into_iter().map(|(name, _)| name).collect()
    }

    #[test]
    fn features_name_the_words_at_the_number_and_its_shape() {
        let found = names("The notes bear interest at 5.25 % per year .", "5.25");
        for expected in [
            "prev1=at",
            "prev2=interest at",
            "prev3=bear interest at",
            "next1=%",
            "next2=% per",
            "around=at _ %",
            "unit=Percent",
            "shape=lt10.d2",
            "nearb=interest",
            "neara=per",
            "bi=bear interest",
            "s=note",
        ] {
            assert!(found.iter().any(|name| name == expected), "{expected} missing from {found:?}");
        }
        assert!(
            !found.iter().any(|name| name.contains("5.25")),
            "the number itself is no feature: {found:?}"
        );
    }

    #[test]
    fn feature_values_have_unit_length_and_names_are_unique() {
        let mention = mention_of("a dividend of $ 0.38 per share , paid on $ 12 million of shares", "0.38")
            .expect("found");
        let found = features("a dividend of $ 0.38 per share , paid on $ 12 million of shares", &mention);
        let norm: f64 = found.iter().map(|(_, value)| value * value).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-12, "norm {norm}");
        let mut sorted: Vec<&String> = found.iter().map(|(name, _)| name).collect();
        sorted.dedup();
        assert_eq!(sorted.len(), found.len());
        assert!(found.iter().any(|(name, _)| name == "prev2=of $"), "{found:?}");
        assert!(found.iter().any(|(name, _)| name == "next2=per share"), "{found:?}");
    }

    #[test]
    fn shapes_tell_rates_counts_amounts_and_years_apart() {
        let shape = |span: &str, unit| {
            number_shape(&Mention { span: span.into(), start: 0, end: span.len(), value: None, unit })
        };
        assert_eq!(shape("5.25", UnitCue::Percent), "lt10.d2");
        assert_eq!(shape("3", UnitCue::Plain), "lt10.d0");
        assert_eq!(shape("1,250.0", UnitCue::Money), "big.d1");
        assert_eq!(shape("0.3750", UnitCue::MoneyPerShare), "lt1.d3");
        assert_eq!(shape("2025", UnitCue::Plain), "yearlike.d0");
        assert_eq!(shape("2025", UnitCue::Money), "big.d0");
    }

    fn example(names: &[&str], class: usize) -> (Vec<(String, f64)>, usize) {
        let value = 1.0 / (names.len() as f64).sqrt();
        (names.iter().map(|name| (name.to_string(), value)).collect(), class)
    }

    #[test]
    fn the_learner_weighs_the_deciding_feature_over_shared_ones() {
        let mut examples = Vec::new();
        for _ in 0..5 {
            examples.push(example(&["s=credit", "s=facility", "prev2=up to"], 0));
            examples.push(example(&["s=credit", "s=facility", "prev2=amount of"], 1));
            examples.push(example(&["s=credit", "s=facility", "prev2=amount of"], 1));
        }
        let learner = Learner::train(&examples, 2, &LearnerConfig::default());
        let up_to = learner.log_probabilities(&example(&["s=credit", "s=facility", "prev2=up to"], 0).0);
        assert!(up_to[0] > (0.8f64).ln(), "up to: {up_to:?}");
        let amount = learner.log_probabilities(&example(&["s=facility", "prev2=amount of", "s=unseen"], 1).0);
        assert!(amount[1] > (0.8f64).ln(), "amount of: {amount:?}");
        // Shared words alone lean to the class seen more often with them.
        let shared = learner.log_probabilities(&example(&["s=credit", "s=facility"], 0).0);
        assert!(shared[1] > shared[0], "{shared:?}");

        let again = Learner::train(&examples, 2, &LearnerConfig::default());
        assert_eq!(learner.weights, again.weights, "training is deterministic");
    }

    #[test]
    fn shuffle_permutes() {
        let mut order: Vec<usize> = (0..50).collect();
        let mut state = 7;
        shuffle(&mut order, &mut state);
        assert_ne!(order, (0..50).collect::<Vec<_>>());
        order.sort_unstable();
        assert_eq!(order, (0..50).collect::<Vec<_>>());
    }
}
