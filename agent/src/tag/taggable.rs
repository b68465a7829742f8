//! Whether a filer would tag a number at all. Most numbers in a 10-K's running text carry no tag
//! ("within 120 days", "about 164,000 employees"); a proposal for one of those is a tag nobody
//! asked for. Inline filings say which numbers their filer tagged, so the filings a ranking
//! learns from (`--learn-from`) also teach a two-class logistic regression, over the ranking's
//! own features, of tagged against untagged numbers.

use super::candidates::learner::{features, Learner, LearnerConfig};
use super::mentions::Mention;
use super::share;

/// A number in a filing's running text and whether its filer tagged it (with any tag).
#[derive(Debug, Clone)]
pub struct TaggedOrNot {
    pub sentence: String,
    pub mention: Mention,
    pub tagged: bool,
}

/// The learned chance that a number is tagged.
#[derive(Debug, Clone)]
pub struct Taggability {
    learner: Learner,
}

impl Taggability {
    /// Learns from `numbers`; `None` unless they hold both tagged and untagged numbers.
    pub fn learn(numbers: &[TaggedOrNot]) -> Option<Self> {
        let n_tagged = numbers.iter().filter(|number| number.tagged).count();
        if n_tagged == 0 || n_tagged == numbers.len() {
            return None;
        }
        let examples: Vec<(Vec<(String, f64)>, usize)> = numbers
            .iter()
            .map(|number| (features(&number.sentence, &number.mention), usize::from(number.tagged)))
            .collect();
        Some(Taggability { learner: Learner::train(&examples, 2, &LearnerConfig::default()) })
    }

    /// The probability that the filer would tag `mention` in `sentence`.
    pub fn probability(&self, sentence: &str, mention: &Mention) -> f64 {
        self.learner.log_probabilities(&features(sentence, mention))[1].exp()
    }
}

/// Counts of "would be tagged" (probability at least one half) against a filing's own tags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaggedCounts {
    pub true_positive: usize,
    pub false_positive: usize,
    pub false_negative: usize,
    pub true_negative: usize,
}

impl TaggedCounts {
    pub fn add(&mut self, probability: f64, tagged: bool) {
        match (probability >= 0.5, tagged) {
            (true, true) => self.true_positive += 1,
            (true, false) => self.false_positive += 1,
            (false, true) => self.false_negative += 1,
            (false, false) => self.true_negative += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.true_positive + self.false_positive + self.false_negative + self.true_negative
    }

    pub fn accuracy(&self) -> f64 {
        share(self.true_positive + self.true_negative, self.total())
    }

    pub fn precision(&self) -> f64 {
        share(self.true_positive, self.true_positive + self.false_positive)
    }

    pub fn recall(&self) -> f64 {
        share(self.true_positive, self.true_positive + self.false_negative)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tag::mentions::mention_of;

    fn number(sentence: &str, span: &str, tagged: bool) -> TaggedOrNot {
        TaggedOrNot {
            sentence: sentence.to_string(),
            mention: mention_of(sentence, span).expect("span"),
            tagged,
        }
    }

    #[test]
    fn learns_which_numbers_filers_tag() {
        let mut numbers = Vec::new();
        for amount in ["1.2", "3.4", "5.6", "7.8"] {
            numbers.push(number(&format!("Total net sales were $ {amount} billion ."), amount, true));
            numbers.push(number(
                &format!("The company had about {amount} thousand employees ."),
                amount,
                false,
            ));
        }
        assert!(Taggability::learn(&numbers[..1]).is_none(), "one class is nothing to learn");
        let taggability = Taggability::learn(&numbers).expect("both classes");
        let sales = number("Total net sales were $ 9.9 billion .", "9.9", true);
        let staff = number("The company had about 9.9 thousand employees .", "9.9", false);
        assert!(taggability.probability(&sales.sentence, &sales.mention) > 0.8);
        assert!(taggability.probability(&staff.sentence, &staff.mention) < 0.2);

        let mut counts = TaggedCounts::default();
        counts.add(0.9, true);
        counts.add(0.7, false);
        counts.add(0.2, true);
        counts.add(0.1, false);
        assert_eq!(
            (counts.total(), counts.accuracy(), counts.precision(), counts.recall()),
            (4, 0.5, 0.5, 0.5)
        );
    }
}
