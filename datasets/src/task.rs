//! The task registry: every task the paper trains and evaluates on, with FinLoRA's instruction,
//! label set and evaluation budget declared once.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A financial task. Names (`Task::name`, serde) are the snake_case ones used on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Fpb,
    FiqaSa,
    Tfns,
    Nwgi,
    Headline,
    Ner,
    Finer,
    /// FiNER questions made from the running text of inline XBRL filings, one entity per prompt.
    FinerTagging,
    /// The same questions in FinLoRA's batched form: four per prompt, answers comma-joined.
    FinerBatched,
    XbrlTags,
    XbrlValues,
    XbrlFormulaConstruction,
    XbrlFormulaCalculation,
}

/// Whether answers come from a closed label set or are free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// Sentiment-style classification (fpb, fiqa_sa, tfns, nwgi).
    Sentiment,
    /// Yes/No questions (headline).
    YesNo,
    /// Entity type (ner).
    EntityType,
    /// One tag out of FiNER-139's tag list (finer).
    Tagging,
    /// Free-text XBRL answers (tags, values, formulas).
    Extraction,
}

/// How NWGI's seven ChatGPT labels are presented and scored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NwgiMapping {
    /// FinGPT's `nwgi.py`: strong/moderately X -> X, mildly X -> neutral; 3-class prompt.
    FinGpt3,
    /// What FinLoRA effectively scores: the 7-label prompt and target, but `change_target` turns
    /// any "...positive" into positive and any "...negative" into negative (mildly X -> X).
    #[default]
    FinLoraPolarity,
    /// All seven labels, prompt and scoring.
    Seven,
}

/// Which TFNS label to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TfnsLabels {
    /// The dataset card's meaning: 0 bearish -> negative, 1 bullish -> positive, 2 neutral.
    #[default]
    Correct,
    /// FinLoRA's swapped mapping (0 -> negative, 1 -> neutral, 2 -> positive), `label_finlora`.
    FinLora,
}

pub const SENTIMENT_LABELS: &[&str] = &["negative", "neutral", "positive"];
pub const NWGI_LABELS: &[&str] = &[
    "strong negative",
    "moderately negative",
    "mildly negative",
    "neutral",
    "mildly positive",
    "moderately positive",
    "strong positive",
];
pub const HEADLINE_LABELS: &[&str] = &["Yes", "No"];
pub const NER_LABELS: &[&str] = &["person", "organization", "location"];

/// FinLoRA's FPB / FiQA (headline) / NWGI-FinGPT instruction.
pub const NEWS_SENTIMENT_INSTRUCTION: &str =
    "What is the sentiment of this news? Please choose an answer from {negative/neutral/positive}.";
/// FinLoRA's TFNS / FiQA (post) instruction.
pub const TWEET_SENTIMENT_INSTRUCTION: &str =
    "What is the sentiment of this tweet? Please choose an answer from {negative/neutral/positive}.";
/// FinLoRA's NWGI instruction; the trailing space is FinLoRA's.
pub const NWGI_INSTRUCTION: &str = "What is the sentiment of this news? Please choose an answer from {strong negative/moderately negative/mildly negative/neutral/mildly positive/moderately positive/strong positive}. ";

impl NwgiMapping {
    /// Maps a raw 7-level label to the label scored under this mapping; `None` for an unknown label.
    pub fn map(self, raw: &str) -> Option<&'static str> {
        let seven = NWGI_LABELS.iter().copied().find(|label| *label == raw)?;
        Some(match self {
            NwgiMapping::Seven => seven,
            NwgiMapping::FinLoraPolarity => polarity(seven),
            NwgiMapping::FinGpt3 if seven.starts_with("mildly") => "neutral",
            NwgiMapping::FinGpt3 => polarity(seven),
        })
    }

    /// The labels predictions are scored against.
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            NwgiMapping::Seven => NWGI_LABELS,
            NwgiMapping::FinGpt3 | NwgiMapping::FinLoraPolarity => SENTIMENT_LABELS,
        }
    }

    /// The instruction shown to the model.
    pub fn instruction(self) -> &'static str {
        match self {
            NwgiMapping::FinGpt3 => NEWS_SENTIMENT_INSTRUCTION,
            NwgiMapping::FinLoraPolarity | NwgiMapping::Seven => NWGI_INSTRUCTION,
        }
    }
}

fn polarity(label: &'static str) -> &'static str {
    if label.ends_with("positive") {
        "positive"
    } else if label.ends_with("negative") {
        "negative"
    } else {
        "neutral"
    }
}

impl Task {
    pub const ALL: [Task; 13] = [
        Task::Fpb,
        Task::FiqaSa,
        Task::Tfns,
        Task::Nwgi,
        Task::Headline,
        Task::Ner,
        Task::Finer,
        Task::FinerTagging,
        Task::FinerBatched,
        Task::XbrlTags,
        Task::XbrlValues,
        Task::XbrlFormulaConstruction,
        Task::XbrlFormulaCalculation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Task::Fpb => "fpb",
            Task::FiqaSa => "fiqa_sa",
            Task::Tfns => "tfns",
            Task::Nwgi => "nwgi",
            Task::Headline => "headline",
            Task::Ner => "ner",
            Task::Finer => "finer",
            Task::FinerTagging => "finer_tagging",
            Task::FinerBatched => "finer_batched",
            Task::XbrlTags => "xbrl_tags",
            Task::XbrlValues => "xbrl_values",
            Task::XbrlFormulaConstruction => "xbrl_formula_construction",
            Task::XbrlFormulaCalculation => "xbrl_formula_calculation",
        }
    }

    pub fn kind(self) -> TaskKind {
        match self {
            Task::Fpb | Task::FiqaSa | Task::Tfns | Task::Nwgi => TaskKind::Sentiment,
            Task::Headline => TaskKind::YesNo,
            Task::Ner => TaskKind::EntityType,
            Task::Finer | Task::FinerTagging | Task::FinerBatched => TaskKind::Tagging,
            Task::XbrlTags
            | Task::XbrlValues
            | Task::XbrlFormulaConstruction
            | Task::XbrlFormulaCalculation => TaskKind::Extraction,
        }
    }

    /// The closed label set answers are scored against, `None` for free-text tasks and for
    /// FiNER, whose 139 tags are read from `finer/tag_set.txt` ([`crate::DataDir::finer_tags`]).
    pub fn labels(self, nwgi: NwgiMapping) -> Option<&'static [&'static str]> {
        match self {
            Task::Fpb | Task::FiqaSa | Task::Tfns => Some(SENTIMENT_LABELS),
            Task::Nwgi => Some(nwgi.labels()),
            Task::Headline => Some(HEADLINE_LABELS),
            Task::Ner => Some(NER_LABELS),
            _ => None,
        }
    }

    /// The instruction when it is the same for every row; headline, ner, the xbrl tasks and the
    /// FiNER tasks carry theirs per row (generated ones from [`crate::finer_prompt`]), FiQA picks by the row's format ([`fiqa_instruction`]).
    pub fn fixed_instruction(self, nwgi: NwgiMapping) -> Option<&'static str> {
        match self {
            Task::Fpb => Some(NEWS_SENTIMENT_INSTRUCTION),
            Task::Tfns => Some(TWEET_SENTIMENT_INSTRUCTION),
            Task::Nwgi => Some(nwgi.instruction()),
            _ => None,
        }
    }

    /// FinLoRA v2's `max_new_token_dict` budget at evaluation.
    pub fn max_new_tokens(self) -> usize {
        match self {
            Task::Fpb | Task::FiqaSa | Task::Tfns | Task::Nwgi | Task::Headline | Task::Ner => 10,
            Task::XbrlTags | Task::XbrlValues => 20,
            Task::XbrlFormulaConstruction | Task::XbrlFormulaCalculation => 30,
            Task::Finer | Task::FinerTagging | Task::FinerBatched => 100,
        }
    }

    /// The value of the `task` field in `xbrl_extraction/{train,test}.jsonl` for xbrl tasks.
    pub fn xbrl_file_task(self) -> Option<&'static str> {
        match self {
            Task::XbrlTags => Some("tag_extraction"),
            Task::XbrlValues => Some("value_extraction"),
            Task::XbrlFormulaConstruction => Some("formula_construction"),
            Task::XbrlFormulaCalculation => Some("formula_calculation"),
            _ => None,
        }
    }
}

/// Every task name, comma-separated, for error messages.
pub(crate) fn known_names() -> String {
    Task::ALL.iter().map(|task| task.name()).collect::<Vec<_>>().join(", ")
}

/// FinLoRA's FiQA instruction: "this tweet" for posts, "this news" for headlines.
pub fn fiqa_instruction(format: &str) -> &'static str {
    if format == "post" {
        TWEET_SENTIMENT_INSTRUCTION
    } else {
        NEWS_SENTIMENT_INSTRUCTION
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Task {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Task::ALL
            .into_iter()
            .find(|task| task.name() == name)
            .ok_or_else(|| Error::UnknownTask(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_from_str_and_serde() {
        for task in Task::ALL {
            assert_eq!(task.name().parse::<Task>().ok(), Some(task));
            assert_eq!(serde_json::to_string(&task).ok(), Some(format!("\"{}\"", task.name())));
        }
        let error = "fpbx".parse::<Task>().err().map(|error| error.to_string());
        assert_eq!(
            error.as_deref().map(|message| message.ends_with("xbrl_formula_calculation)")),
            Some(true)
        );
    }
}
