//! `finagent tag`: proposes a us-gaap tag for each number in a filing's running text.
//!
//! [`document`] turns a filing into sentences with numeric [`mentions`]; [`candidates`] ranks the
//! tag set for each mention from the words around it (names, labels, and tagged examples when
//! given); [`scorer`] lets the model weigh the first few as continuations of FinLoRA's FiNER
//! prompt; [`Tagger`] combines both into a tag, a confidence and the runners-up. [`setup`] builds
//! the tag sets `finagent tag` and `finagent serve` share; [`TaggedMention`] is what both print.

pub mod calibration;
pub mod candidates;
pub mod document;
pub mod mentions;
pub mod scorer;
pub mod setup;
pub mod taggable;

use std::path::Path;

use anyhow::{Context as _, Result};
use datasets::finer_prompt::single_prompt;
use serde::{Deserialize, Serialize};

use candidates::{TagSet, TaggedExample};
use mentions::{mention_of, Mention, UnitCue};
use scorer::ModelScorer;

/// How ranking and model are combined.
#[derive(Debug, Clone, Copy)]
pub struct TaggerConfig {
    /// Tags from the ranking that the prompt lists and the model scores.
    pub n_candidates: usize,
    /// Weight of the model's mean token log-likelihood against the ranking's log-probability.
    pub model_weight: f64,
    /// The shortlist's scores are divided by this before the softmax that gives the confidences;
    /// it never changes which tag is proposed.
    pub temperature: f64,
}

impl Default for TaggerConfig {
    fn default() -> Self {
        Self { n_candidates: 5, model_weight: 1.0, temperature: DEFAULT_TEMPERATURE }
    }
}

/// The confidence temperature: the one with the lowest Brier score on the ranking's 5-fold
/// cross-validated proposals for FiNER's train split (`finagent tag --finer train.jsonl --folds 5`
/// prints it), where the confidences at temperature 1 were overconfident (docs/tag.md,
/// "Confidence").
pub const DEFAULT_TEMPERATURE: f64 = 1.59;

/// A proposed tag and how sure the tagger is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoredTag {
    /// us-gaap local name.
    pub tag: String,
    /// Share of the probability among the scored candidates.
    pub confidence: f64,
}

/// The tag proposed for one mention and the next candidates, best first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Proposal {
    pub best: ScoredTag,
    pub runners_up: Vec<ScoredTag>,
    /// Every shortlisted tag's combined score before the temperature, best first: what
    /// calibration refits the confidences from.
    #[serde(skip)]
    pub scores: Vec<f64>,
}

/// One tagged mention: a JSON line of `finagent tag`, an element of `finagent serve`'s
/// `POST /tag` response.
#[derive(Debug, Serialize)]
pub struct TaggedMention<'a> {
    pub sentence: &'a str,
    pub span: &'a str,
    /// Byte range of `span` in `sentence`.
    pub start: usize,
    pub end: usize,
    pub value: Option<&'a str>,
    pub unit: UnitCue,
    pub tag: &'a str,
    pub confidence: f64,
    /// The next two candidates, best first.
    pub candidates: &'a [ScoredTag],
    /// The chance that a filer would tag this number at all, learned from the `--learn-from`
    /// filings' tagged and untagged numbers; absent without them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taggable: Option<f64>,
    /// The filing's (or FiNER row's) own tag, when scoring against it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gold: Option<&'a str>,
}

impl<'a> TaggedMention<'a> {
    pub fn new(
        sentence: &'a str,
        mention: &'a Mention,
        proposal: &'a Proposal,
        gold: Option<&'a str>,
    ) -> Self {
        TaggedMention {
            sentence,
            span: &mention.span,
            start: mention.start,
            end: mention.end,
            value: mention.value.as_deref(),
            unit: mention.unit,
            tag: &proposal.best.tag,
            confidence: proposal.best.confidence,
            candidates: &proposal.runners_up,
            taggable: None,
            gold,
        }
    }
}

/// Ranks tags for mentions, with the model when one is given.
pub struct Tagger<'a> {
    pub tags: &'a TagSet,
    pub model: Option<ModelScorer<'a>>,
    pub config: TaggerConfig,
}

impl Tagger<'_> {
    /// The ranking's first `n_candidates` tags for `mention`, best first, with the ranking's
    /// log-probabilities among them.
    pub fn shortlist(&self, sentence: &str, mention: &Mention) -> (Vec<String>, Vec<f64>) {
        let ranked = self.tags.rank(sentence, mention);
        let shortlist: Vec<(usize, f64)> = ranked.into_iter().take(self.config.n_candidates.max(1)).collect();
        let names = shortlist.iter().map(|&(idx, _)| self.tags.name(idx).to_string()).collect();
        (names, log_softmax(&shortlist.iter().map(|&(_, score)| score).collect::<Vec<_>>()))
    }

    /// The prompt the model weighs `names` with: FinLoRA's single-question FiNER prompt listing
    /// them as the options, in alphabetical order rather than the ranking's, so that the prompt
    /// does not tell the model which candidate the ranking prefers (an adapter trained on ranked
    /// lists learns to pick the first). A tag adapter is trained on exactly these prompts
    /// (`finagent tag --finer ROWS --folds K --rerank-rows FILE`).
    pub fn prompt(names: &[String], sentence: &str, mention: &Mention) -> String {
        let mut options = names.to_vec();
        options.sort_unstable();
        single_prompt(&options, &mention.span, sentence)
    }

    /// The best tag for `mention` in `sentence` and the two after it.
    pub fn propose(&self, sentence: &str, mention: &Mention) -> Result<Proposal> {
        let (names, ranking_log_probs) = self.shortlist(sentence, mention);
        let combined: Vec<f64> = match &self.model {
            Some(model) if names.len() > 1 => {
                let model_scores = model.score(&Self::prompt(&names, sentence, mention), &names)?;
                ranking_log_probs
                    .iter()
                    .zip(&model_scores)
                    .map(|(ranking, model)| ranking + self.config.model_weight * model)
                    .collect()
            }
            _ => ranking_log_probs,
        };
        let temperature = self.config.temperature;
        let tempered: Vec<f64> = combined.iter().map(|score| score / temperature).collect();
        let confidences: Vec<f64> = log_softmax(&tempered).into_iter().map(f64::exp).collect();
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_by(|&a, &b| combined[b].total_cmp(&combined[a]).then(a.cmp(&b)));
        let scores = order.iter().map(|&idx| combined[idx]).collect();
        let mut scored =
            order.into_iter().map(|idx| ScoredTag { tag: names[idx].clone(), confidence: confidences[idx] });
        let best = scored.next().context("the tag set is empty")?;
        Ok(Proposal { best, runners_up: scored.take(2).collect(), scores })
    }
}

fn log_softmax(scores: &[f64]) -> Vec<f64> {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let log_sum = scores.iter().map(|&x| (x - max).exp()).sum::<f64>().ln() + max;
    scores.iter().map(|&x| x - log_sum).collect()
}

/// One FiNER question: a sentence, the number in it and its gold tag.
#[derive(Debug, Clone, Deserialize)]
pub struct FinerRow {
    pub text: String,
    pub entity: String,
    pub label: String,
}

/// Reads FiNER rows (`{text, entity, label}` JSON lines) from `path`.
pub fn read_finer_rows(path: &Path) -> Result<Vec<FinerRow>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read FiNER rows {}", path.display()))?;
    let mut rows = Vec::new();
    for (line_idx, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: FinerRow = serde_json::from_str(line).with_context(|| {
            format!("{} line {} is not a FiNER row {{text, entity, label}}", path.display(), line_idx + 1)
        })?;
        rows.push(row);
    }
    Ok(rows)
}

/// FiNER rows as tagged examples; rows whose entity is not a token of their sentence are left out.
pub fn finer_examples(rows: &[FinerRow]) -> Vec<TaggedExample> {
    rows.iter()
        .filter_map(|row| {
            let mention = mention_of(&row.text, &row.entity)?;
            Some(TaggedExample { sentence: row.text.clone(), mention, tag: row.label.clone() })
        })
        .collect()
}

/// Counts of proposals against gold tags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Accuracy {
    /// Mentions with a gold tag in the tag set: the ones a proposal can get right.
    pub n_scored: usize,
    pub n_correct: usize,
    /// Correct tag among the best and the two runners-up.
    pub n_correct_top3: usize,
    /// Mentions whose gold tag is outside the tag set (or not us-gaap).
    pub n_outside_tag_set: usize,
}

impl Accuracy {
    /// Counts one proposal against `gold` (a us-gaap local name).
    pub fn add(&mut self, tags: &TagSet, gold: &str, proposal: &Proposal) {
        if !tags.contains(gold) {
            self.n_outside_tag_set += 1;
            return;
        }
        self.n_scored += 1;
        if proposal.best.tag == gold {
            self.n_correct += 1;
        }
        if proposal.best.tag == gold || proposal.runners_up.iter().any(|scored| scored.tag == gold) {
            self.n_correct_top3 += 1;
        }
    }

    pub fn fraction(&self) -> f64 {
        share(self.n_correct, self.n_scored)
    }

    pub fn top3_fraction(&self) -> f64 {
        share(self.n_correct_top3, self.n_scored)
    }
}

/// `part / whole`, 0 when `whole` is 0.
pub(crate) fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_does_not_reveal_the_ranking_order() {
        let sentence = "Revenue was $ 5.2 million in 2022 .";
        let mention = mention_of(sentence, "5.2").unwrap();
        let ranked: Vec<String> =
            ["Revenues", "CostOfRevenue", "AssetImpairmentCharges"].map(String::from).into();
        let mut reversed = ranked.clone();
        reversed.reverse();
        let prompt = Tagger::prompt(&ranked, sentence, &mention);
        assert_eq!(prompt, Tagger::prompt(&reversed, sentence, &mention));
        let first = prompt.find("AssetImpairmentCharges").unwrap();
        assert!(first < prompt.find("CostOfRevenue").unwrap() && first < prompt.find("Revenues").unwrap());
    }
}
