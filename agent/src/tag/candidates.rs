//! Candidate tags for a mention, ranked without the model: a multinomial naive Bayes over the
//! words around the number and its unit cue, and, once tagged examples are learned, a logistic
//! regression over the words at the number ([`learner`]) on top of it.
//!
//! Each tag starts from the words of its name and standard label (`DebtInstrumentFaceAmount`,
//! "Debt Instrument, Face Amount") and a unit it can hold, read off its name (a `...Percentage`
//! holds a percent, a `...PerShare...` money per share); tagged example sentences (FiNER's train
//! split, `--examples`) add the words that actually surround each tag's numbers and train the
//! learner. The model then only has to choose among the few tags this ranking puts first.

pub mod learner;

use std::collections::{HashMap, HashSet};

use taxonomy::Catalogue;

use super::mentions::{Mention, UnitCue};
use learner::{features, Learner, LearnerConfig};

/// Pseudo-count of each word of a tag's name and label, against one count per example word.
const NAME_WORD_WEIGHT: f64 = 2.0;
/// Pseudo-count of the unit a tag's name implies.
const NAME_UNIT_WEIGHT: f64 = 3.0;
/// Additive smoothing of word and unit probabilities.
const SMOOTHING: f64 = 0.1;
/// Words this close to the number (in words) count fully; farther ones count less.
const NEAR_WORDS: usize = 6;
const MID_WORDS: usize = 15;
/// Once examples are learned, the ranking is the learner's log-probability plus this share of
/// the naive Bayes score: naive Bayes sums a log-probability per context word, so its scale
/// grows with the sentence and would drown the learner at full weight; a tenth of it still
/// breaks the learner's near-ties and carries the name and unit fit (cross-validated on FiNER's
/// train split: 0.05 to 0.2 do about the same, 0 and 1 worse).
const NAIVE_BAYES_WEIGHT: f64 = 0.1;
/// The learner's log-probability for a tag no example shows: below what it gives a seen tag in
/// practice, so such tags come after the learned ones (3 of FiNER-139's tags are not in its
/// train split; with `--full-taxonomy` most tags are unseen and ranked by naive Bayes among
/// themselves).
const UNSEEN_TAG_LOG_PROB: f64 = -8.0;

const STOP_WORDS: [&str; 34] = [
    "the", "a", "an", "of", "to", "in", "and", "or", "for", "on", "at", "by", "with", "as", "is", "was",
    "were", "be", "been", "are", "that", "which", "this", "its", "it", "our", "we", "from", "has", "have",
    "had", "s", "such", "other",
];

/// One tag the ranking can propose.
#[derive(Debug, Clone)]
struct TagProfile {
    name: String,
    word_counts: HashMap<String, f64>,
    total_words: f64,
    unit_counts: [f64; UNIT_CUES.len()],
    n_examples: f64,
}

const UNIT_CUES: [UnitCue; 6] = [
    UnitCue::Money,
    UnitCue::MoneyPerShare,
    UnitCue::Percent,
    UnitCue::Shares,
    UnitCue::Duration,
    UnitCue::Plain,
];

fn unit_index(unit: UnitCue) -> usize {
    UNIT_CUES.iter().position(|&cue| cue == unit).unwrap_or(UNIT_CUES.len() - 1)
}

/// A tagged example: a mention in its sentence and its tag.
#[derive(Debug, Clone)]
pub struct TaggedExample {
    pub sentence: String,
    pub mention: Mention,
    pub tag: String,
}

/// The tags a mention can get, with what is known of each.
#[derive(Debug, Clone)]
pub struct TagSet {
    tags: Vec<TagProfile>,
    positions: HashMap<String, usize>,
    vocabulary: HashSet<String>,
    n_examples: f64,
    /// Features and tag of every example learned, to retrain `learner` when more come.
    learned: Vec<(Vec<(String, f64)>, usize)>,
    learner: Option<TrainedLearner>,
}

/// The learner and which tags its classes are: only tags with examples get a class, so a
/// `--full-taxonomy` set of thousands of tags costs no more than FiNER-139's.
#[derive(Debug, Clone)]
struct TrainedLearner {
    learner: Learner,
    class_of_tag: Vec<Option<usize>>,
}

impl TagSet {
    /// A tag set from local names (`DebtInstrumentFaceAmount`), with labels from `catalogue`
    /// where it has the us-gaap concept.
    pub fn new(names: &[String], catalogue: Option<&Catalogue>) -> Self {
        let mut set = TagSet {
            tags: Vec::with_capacity(names.len()),
            positions: HashMap::new(),
            vocabulary: HashSet::new(),
            n_examples: 0.0,
            learned: Vec::new(),
            learner: None,
        };
        for name in names {
            if set.positions.contains_key(name) {
                continue;
            }
            let label = catalogue
                .and_then(|catalogue| catalogue.get_prefixed("us-gaap", name))
                .and_then(|concept| concept.standard_label.clone())
                .unwrap_or_default();
            let mut word_counts: HashMap<String, f64> = HashMap::new();
            let words: HashSet<String> =
                camel_words(name).into_iter().chain(context_words(&label)).map(|word| stem(&word)).collect();
            for word in words {
                set.vocabulary.insert(word.clone());
                *word_counts.entry(word).or_default() += NAME_WORD_WEIGHT;
            }
            let mut unit_counts = [0.0; UNIT_CUES.len()];
            unit_counts[unit_index(unit_of_name(name))] += NAME_UNIT_WEIGHT;
            let total_words = word_counts.values().sum();
            set.positions.insert(name.clone(), set.tags.len());
            set.tags.push(TagProfile {
                name: name.clone(),
                word_counts,
                total_words,
                unit_counts,
                n_examples: 0.0,
            });
        }
        set
    }

    /// Every numeric us-gaap concept of `catalogue` (no text blocks, axes, members, tables or
    /// abstracts), for `--full-taxonomy`.
    pub fn full_taxonomy(catalogue: &Catalogue) -> Self {
        const NOT_NUMERIC: [&str; 9] =
            ["TextBlock", "Axis", "Member", "Domain", "Table", "LineItems", "Abstract", "Policy", "Flag"];
        let mut names: Vec<String> = catalogue
            .iter()
            .filter(|concept| concept.prefix == "us-gaap" && concept.is_abstract != Some(true))
            .filter(|concept| !NOT_NUMERIC.iter().any(|suffix| concept.name.ends_with(suffix)))
            .map(|concept| concept.name.clone())
            .collect();
        names.sort();
        Self::new(&names, Some(catalogue))
    }

    pub fn len(&self) -> usize {
        self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    pub fn contains(&self, tag: &str) -> bool {
        self.positions.contains_key(tag)
    }

    /// The local name of tag `idx`.
    pub fn name(&self, idx: usize) -> &str {
        &self.tags[idx].name
    }

    /// Adds tagged examples to the word and unit counts; examples whose tag is not in the set
    /// are skipped. Returns how many were used.
    pub fn learn(&mut self, examples: &[TaggedExample]) -> usize {
        let mut n_used = 0;
        for example in examples {
            let Some(&idx) = self.positions.get(&example.tag) else { continue };
            n_used += 1;
            let profile = &mut self.tags[idx];
            profile.n_examples += 1.0;
            profile.unit_counts[unit_index(example.mention.unit)] += 1.0;
            for (word, weight) in weighted_context(&example.sentence, &example.mention) {
                self.vocabulary.insert(word.clone());
                *profile.word_counts.entry(word).or_default() += weight;
                profile.total_words += weight;
            }
            self.learned.push((features(&example.sentence, &example.mention), idx));
        }
        self.n_examples += n_used as f64;
        if n_used > 0 {
            self.train_learner();
        }
        n_used
    }

    /// Retrains the learner on every example learned so far.
    fn train_learner(&mut self) {
        let mut class_of_tag: Vec<Option<usize>> = vec![None; self.tags.len()];
        let mut n_classes = 0;
        let mut examples = Vec::with_capacity(self.learned.len());
        for (names, tag_idx) in &self.learned {
            let class = *class_of_tag[*tag_idx].get_or_insert_with(|| {
                n_classes += 1;
                n_classes - 1
            });
            examples.push((names.clone(), class));
        }
        let learner = Learner::train(&examples, n_classes, &LearnerConfig::default());
        self.learner = Some(TrainedLearner { learner, class_of_tag });
    }

    /// Every tag's log score for `mention` in `sentence`, best first (ties in tag-set order).
    pub fn rank(&self, sentence: &str, mention: &Mention) -> Vec<(usize, f64)> {
        let context = weighted_context(sentence, mention);
        let vocabulary = self.vocabulary.len().max(1) as f64;
        let n_tags = self.tags.len().max(1) as f64;
        let unit = unit_index(mention.unit);
        let learner_log_probs = self.learner.as_ref().map(|trained| {
            let log_probs = trained.learner.log_probabilities(&features(sentence, mention));
            (trained, log_probs)
        });
        let mut scored: Vec<(usize, f64)> = self
            .tags
            .iter()
            .enumerate()
            .map(|(idx, tag)| {
                let prior = ((tag.n_examples + 1.0) / (self.n_examples + n_tags)).ln();
                let unit_total: f64 = tag.unit_counts.iter().sum();
                let unit_score = ((tag.unit_counts[unit] + SMOOTHING) / (unit_total + SMOOTHING * 6.0)).ln();
                let denominator = tag.total_words + SMOOTHING * vocabulary;
                let word_score: f64 = context
                    .iter()
                    .map(|(word, weight)| {
                        let count = tag.word_counts.get(word).copied().unwrap_or(0.0);
                        weight * ((count + SMOOTHING) / denominator).ln()
                    })
                    .sum();
                let naive_bayes = prior + unit_score + word_score;
                let learned = match &learner_log_probs {
                    Some((trained, log_probs)) => match trained.class_of_tag[idx] {
                        Some(class) => log_probs[class],
                        None => UNSEEN_TAG_LOG_PROB,
                    },
                    None => return (idx, naive_bayes),
                };
                (idx, NAIVE_BAYES_WEIGHT * naive_bayes + learned)
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored
    }
}

/// The unit a tag's local name implies.
fn unit_of_name(name: &str) -> UnitCue {
    if name.contains("PerShare") || name.contains("ExercisePrice") || name.contains("SharePrice") {
        UnitCue::MoneyPerShare
    } else if name.contains("Percentage") || name.contains("Rate") {
        UnitCue::Percent
    } else if name.contains("NumberOfShares") || name.ends_with("Shares") || name.contains("SharesAuthorized")
    {
        UnitCue::Shares
    } else if name.contains("Period") || name.contains("UsefulLife") || name.contains("Term") {
        UnitCue::Duration
    } else if name.contains("NumberOf") || name.contains("Number") {
        UnitCue::Plain
    } else {
        UnitCue::Money
    }
}

/// The content words of `sentence` around `mention`, stemmed, each weighted by its distance
/// from the number; the number itself and other numbers are left out.
fn weighted_context(sentence: &str, mention: &Mention) -> Vec<(String, f64)> {
    let before = context_words(&sentence[..mention.start.min(sentence.len())]);
    let after = context_words(sentence.get(mention.end..).unwrap_or(""));
    let weight = |distance: usize| {
        if distance <= NEAR_WORDS {
            1.0
        } else if distance <= MID_WORDS {
            0.5
        } else {
            0.15
        }
    };
    let mut weighted = Vec::with_capacity(before.len() + after.len());
    for (distance, word) in before.iter().rev().enumerate() {
        weighted.push((stem(word), weight(distance + 1)));
    }
    for (distance, word) in after.iter().enumerate() {
        weighted.push((stem(word), weight(distance + 1)));
    }
    weighted
}

/// Lowercase words of `text` without numbers and stop words; `%` and `$` are words, as cues.
fn context_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for piece in text.split(|c: char| !(c.is_alphanumeric() || c == '%' || c == '$')) {
        let mut word = String::new();
        for ch in piece.chars() {
            if ch == '%' || ch == '$' {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                words.push(ch.to_string());
            } else {
                word.extend(ch.to_lowercase());
            }
        }
        if !word.is_empty() {
            words.push(word);
        }
    }
    words.retain(|word| !word.chars().all(|c| c.is_ascii_digit()) && !STOP_WORDS.contains(&word.as_str()));
    words
}

/// `DebtInstrumentFaceAmount` -> `debt instrument face amount`; digits end a word.
fn camel_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    for ch in name.chars() {
        if (ch.is_uppercase() || ch.is_ascii_digit()) && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        if !ch.is_ascii_digit() {
            word.extend(ch.to_lowercase());
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words.retain(|word| !STOP_WORDS.contains(&word.as_str()));
    words
}

/// A crude stem so `notes`/`note` and `rates`/`rate` meet.
fn stem(word: &str) -> String {
    let word = word.strip_suffix("ies").map(|stem| format!("{stem}y")).unwrap_or_else(|| word.to_string());
    match word.strip_suffix('s') {
        Some(stem) if stem.len() > 2 && !stem.ends_with('s') => stem.to_string(),
        _ => word,
    }
}

#[cfg(test)]
mod tests {
    use super::super::mentions::mention_of;
    use super::*;

    fn tags() -> TagSet {
        let names: Vec<String> = [
            "DebtInstrumentFaceAmount",
            "DebtInstrumentInterestRateStatedPercentage",
            "CommonStockDividendsPerShareDeclared",
            "NumberOfReportableSegments",
        ]
        .map(String::from)
        .to_vec();
        TagSet::new(&names, None)
    }

    fn best(set: &TagSet, sentence: &str, entity: &str) -> String {
        let mention = mention_of(sentence, entity).expect("entity in sentence");
        set.name(set.rank(sentence, &mention)[0].0).to_string()
    }

    #[test]
    fn names_and_units_rank_without_examples() {
        let set = tags();
        assert_eq!(
            best(&set, "The notes bear interest at 5.25 % per year", "5.25"),
            "DebtInstrumentInterestRateStatedPercentage"
        );
        assert_eq!(
            best(&set, "a dividend of $ 0.38 per share", "0.38"),
            "CommonStockDividendsPerShareDeclared"
        );
        assert_eq!(best(&set, "We have 3 reportable segments", "3"), "NumberOfReportableSegments");
        assert_eq!(
            best(&set, "issued notes with a face amount of $ 500 million", "500"),
            "DebtInstrumentFaceAmount"
        );
    }

    /// How far `tag`'s score is ahead of the best other tag's.
    fn margin(set: &TagSet, sentence: &str, entity: &str, tag: &str) -> f64 {
        let mention = mention_of(sentence, entity).expect("entity in sentence");
        let ranked = set.rank(sentence, &mention);
        let own = ranked.iter().find(|(idx, _)| set.name(*idx) == tag).map(|r| r.1).expect("tag ranked");
        let other = ranked.iter().find(|(idx, _)| set.name(*idx) != tag).map(|r| r.1).expect("another tag");
        own - other
    }

    #[test]
    fn examples_teach_words_the_names_lack() {
        let mut set = tags();
        let sentence = "we operate in 4 business lines";
        let before = margin(&set, sentence, "4", "NumberOfReportableSegments");
        let example = TaggedExample {
            sentence: "The company operates in 2 business lines".into(),
            mention: mention_of("The company operates in 2 business lines", "2").expect("found"),
            tag: "NumberOfReportableSegments".into(),
        };
        assert_eq!(set.learn(&[example]), 1);
        let after = margin(&set, sentence, "4", "NumberOfReportableSegments");
        assert!(after > before + 1.0, "margin {before} -> {after}");
        assert_eq!(best(&set, sentence, "4"), "NumberOfReportableSegments");
    }

    fn examples(rows: &[(&str, &str, &str)]) -> Vec<TaggedExample> {
        rows.iter()
            .map(|&(sentence, entity, tag)| TaggedExample {
                sentence: sentence.into(),
                mention: mention_of(sentence, entity).expect("entity in sentence"),
                tag: tag.into(),
            })
            .collect()
    }

    #[test]
    fn the_learner_tells_tags_apart_by_the_words_at_the_number() {
        let names: Vec<String> = [
            "DebtInstrumentFaceAmount",
            "LineOfCreditFacilityMaximumBorrowingCapacity",
            "NumberOfReportableSegments",
        ]
        .map(String::from)
        .to_vec();
        let mut set = TagSet::new(&names, None);
        let face = "DebtInstrumentFaceAmount";
        let capacity = "LineOfCreditFacilityMaximumBorrowingCapacity";
        let learned = set.learn(&examples(&[
            ("The credit facility allows borrowings of up to $ 250 million and the notes of $ 300 million were repaid .", "250", capacity),
            ("The credit facility allows borrowings of up to $ 250 million and the notes of $ 300 million were repaid .", "300", face),
            ("We issued notes of $ 400 million ; the credit facility permits up to $ 150 million .", "400", face),
            ("We issued notes of $ 400 million ; the credit facility permits up to $ 150 million .", "150", capacity),
            ("Under the facility the bank lends up to $ 90 million .", "90", capacity),
            ("The notes of $ 75 million bear interest .", "75", face),
        ]));
        assert_eq!(learned, 6);
        assert!(set.learner.is_some(), "learning trains the learner");
        let sentence = "The company may borrow up to $ 500 million under the credit facility , and issued notes of $ 200 million .";
        assert_eq!(best(&set, sentence, "500"), capacity);
        assert_eq!(best(&set, sentence, "200"), face);
        // A tag no example shows ranks after the learned ones (`UNSEEN_TAG_LOG_PROB`), even on
        // its own words: the learner knows only the tags it was shown.
        let segments = "We have 3 reportable segments";
        let mention = mention_of(segments, "3").expect("found");
        let order: Vec<&str> = set.rank(segments, &mention).iter().map(|&(idx, _)| set.name(idx)).collect();
        assert_eq!(order.last(), Some(&"NumberOfReportableSegments"), "{order:?}");
    }

    #[test]
    fn words_of_names() {
        assert_eq!(
            camel_words("DebtInstrumentBasisSpreadOnVariableRate1"),
            ["debt", "instrument", "basis", "spread", "variable", "rate"]
        );
        assert_eq!(stem("facilities"), "facility");
        assert_eq!(stem("notes"), "note");
    }
}
