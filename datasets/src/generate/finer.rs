//! FiNER tagging questions from the running text of inline XBRL filings: the gold tag is the
//! filing's own `ix:nonFraction` name, the entity its number as written, in FinLoRA's single and
//! batched (four questions a prompt) forms.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::narrative::NarrativeFact;
use super::questions::GeneratedRow;
use super::source::SourceFiling;
use crate::finer_prompt::{batched_prompt, batched_target, finer_question, single_prompt, FINER_BATCH_SIZE};
use crate::task::Task;

/// FinLoRA asks about the first three tagged numbers of a sentence.
pub const MAX_ENTITIES_PER_SENTENCE: usize = 3;

/// Which gold tags make questions, and so which options the prompt lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinerTagSet {
    /// FiNER-139's tags (us-gaap local names), listed in this order in every prompt.
    Finer139(Vec<String>),
    /// Every us-gaap concept; the prompt lists the tags that occur in the generated questions,
    /// sorted, since the whole taxonomy would not fit a prompt.
    UsGaap,
}

impl FinerTagSet {
    fn admits(&self, tag: &str) -> bool {
        match self {
            FinerTagSet::Finer139(tags) => tags.iter().any(|known| known == tag),
            FinerTagSet::UsGaap => true,
        }
    }
}

/// One question: a number in a sentence and its gold tag (us-gaap local name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinerEntity {
    pub tag: String,
    pub span: String,
    pub sentence: String,
}

/// The questions of one filing, in document order: us-gaap narrative facts in the tag set whose
/// span reads back (through its format, scale and sign) to a fact of the filing, at most
/// [`MAX_ENTITIES_PER_SENTENCE`] per sentence.
pub fn filing_entities(
    filing: &SourceFiling,
    facts: &[NarrativeFact],
    tag_set: &FinerTagSet,
) -> Vec<FinerEntity> {
    let known: HashSet<(String, &str, &str)> = filing
        .doc
        .facts
        .iter()
        .filter_map(|fact| Some((fact.concept.prefixed(), fact.context_ref.as_str(), fact.value.as_deref()?)))
        .collect();
    let mut per_sentence: HashMap<&str, usize> = HashMap::new();
    let mut entities = Vec::new();
    for fact in facts {
        let Some(tag) = fact.concept.strip_prefix("us-gaap:") else { continue };
        if !tag_set.admits(tag) {
            continue;
        }
        let Some(value) = fact.value() else { continue };
        if !known.contains(&(fact.concept.clone(), fact.context_ref.as_str(), value.as_str())) {
            continue;
        }
        let n_asked = per_sentence.entry(fact.sentence.as_str()).or_default();
        if *n_asked >= MAX_ENTITIES_PER_SENTENCE {
            continue;
        }
        *n_asked += 1;
        entities.push(FinerEntity {
            tag: tag.to_string(),
            span: fact.span.clone(),
            sentence: fact.sentence.clone(),
        });
    }
    entities
}

/// The tag options a prompt lists.
pub fn tag_options<'e>(
    tag_set: &FinerTagSet,
    entities: impl IntoIterator<Item = &'e FinerEntity>,
) -> Vec<String> {
    match tag_set {
        FinerTagSet::Finer139(tags) => tags.clone(),
        FinerTagSet::UsGaap => {
            let tags: BTreeSet<&str> = entities.into_iter().map(|entity| entity.tag.as_str()).collect();
            tags.into_iter().map(str::to_string).collect()
        }
    }
}

/// The rows of `tasks` (finer_tagging, finer_batched) for one filing's entities.
pub fn finer_rows(
    filing: &FilingKey,
    entities: &[FinerEntity],
    options: &[String],
    tasks: &[Task],
) -> Vec<GeneratedRow> {
    let row = |task: Task, context: String, target: String| GeneratedRow {
        context,
        target,
        doc_path: filing.doc_path.clone(),
        task,
        ticker: filing.ticker.clone(),
        fiscal_year: filing.fiscal_year,
    };
    let mut rows = Vec::new();
    if tasks.contains(&Task::FinerTagging) {
        for entity in entities {
            let prompt = single_prompt(options, &entity.span, &entity.sentence);
            rows.push(row(Task::FinerTagging, prompt, entity.tag.clone()));
        }
    }
    if tasks.contains(&Task::FinerBatched) {
        for batch in entities.chunks(FINER_BATCH_SIZE) {
            let questions: Vec<String> =
                batch.iter().map(|entity| finer_question(&entity.span, &entity.sentence)).collect();
            let answers: Vec<&str> = batch.iter().map(|entity| entity.tag.as_str()).collect();
            rows.push(row(Task::FinerBatched, batched_prompt(options, &questions), batched_target(&answers)));
        }
    }
    rows
}

/// One filing's FiNER questions, with the filing they come from.
pub type FilingEntities = (FilingKey, Vec<FinerEntity>);

/// What a row needs to name its filing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilingKey {
    pub doc_path: String,
    pub ticker: String,
    pub fiscal_year: i32,
}

impl From<&SourceFiling> for FilingKey {
    fn from(filing: &SourceFiling) -> Self {
        FilingKey {
            doc_path: filing.doc_path.clone(),
            ticker: filing.ticker.clone(),
            fiscal_year: filing.fiscal_year,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(tag: &str, span: &str) -> FinerEntity {
        FinerEntity { tag: tag.into(), span: span.into(), sentence: format!("s {span}") }
    }

    #[test]
    fn batches_four_questions_with_answers_in_order() {
        let entities: Vec<FinerEntity> =
            (0..6).map(|idx| entity(&format!("T{idx}"), &idx.to_string())).collect();
        let key = FilingKey { doc_path: "a/b.htm".into(), ticker: "A".into(), fiscal_year: 2022 };
        let options = tag_options(&FinerTagSet::UsGaap, &entities);
        let rows = finer_rows(&key, &entities, &options, &[Task::FinerBatched, Task::FinerTagging]);
        let batched: Vec<&str> =
            rows.iter().filter(|row| row.task == Task::FinerBatched).map(|row| row.target.as_str()).collect();
        assert_eq!(batched, ["T0,T1,T2,T3", "T4,T5"]);
        assert_eq!(rows.iter().filter(|row| row.task == Task::FinerTagging).count(), 6);
        assert_eq!(options, ["T0", "T1", "T2", "T3", "T4", "T5"]);
    }
}
