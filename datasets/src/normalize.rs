//! Turning a model's output into a prediction and scoring it against the target, either the way
//! FinLoRA's evaluation code does it or strictly.
//!
//! * [`NormalizeMode::FinLoraV1`] reproduces FinLoRA v1 (`test/general_fin/*.py`, `test/xbrl.py`):
//!   sentiment `change_target` (any "positive" -> positive, else any "negative" -> negative,
//!   else neutral, so garbage counts as neutral), headline `'yes' in x.lower()` then `'no'`, NER
//!   organization / person / location with the `person -> "negative"` slip applied to both sides
//!   (harmless, as in FinLoRA), and for FiNER and XBRL "ground truth contained in the last line".
//! * [`NormalizeMode::FinLoraV2`] reproduces FinLoRA v2 (`test/test_dataset.py`): the text after
//!   the last `Answer:`; for classification the label found earliest in the lowercased output wins;
//!   for free-text tasks the lowercased target must be contained in the lowercased output.
//! * [`NormalizeMode::Strict`]: the earliest label named as a whole word (case-insensitive); no
//!   label is no prediction and counts as wrong. Free-text answers must equal the target exactly
//!   (first non-empty line, outer whitespace and a trailing period dropped, inner runs of spaces
//!   collapsed).
//!
//! Every function takes the generated continuation only, not the prompt. Where FinLoRA splits
//! the whole decoded text on `Answer:`, the equivalent cut is applied to the continuation.

use serde::{Deserialize, Serialize};

use crate::task::{Task, TaskKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormalizeMode {
    FinLoraV1,
    FinLoraV2,
    Strict,
}

/// One scored output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Judgement {
    /// The predicted class; for FinLoRA's free-text scoring the target when it was found and the
    /// raw answer otherwise (FinLoRA's `response` list, which its weighted F1 is computed on).
    pub prediction: Option<String>,
    /// The target as the mode compares it (after `change_target` in v1, lowercased in v2).
    pub reference: String,
    pub correct: bool,
}

/// Scores `output` against `target`. `labels` is the candidate set for classification (the
/// task's labels; FinLoRA v2 uses the distinct targets of the evaluated file); ignored by v1
/// sentiment / headline / NER and by free-text tasks.
pub fn judge(task: Task, mode: NormalizeMode, labels: &[&str], output: &str, target: &str) -> Judgement {
    let kind = task.kind();
    match (mode, kind) {
        (NormalizeMode::FinLoraV1, TaskKind::Sentiment) => {
            let answer = before_answer_cue(output, "Answer:");
            same_rule(Some(change_target(answer)), Some(change_target(target)))
        }
        (NormalizeMode::FinLoraV1, TaskKind::YesNo) => {
            let answer = before_answer_cue(output, "Answer: ");
            same_rule(finlora_yes_no(answer), finlora_yes_no(target))
        }
        (NormalizeMode::FinLoraV1, TaskKind::EntityType) => {
            let answer = before_answer_cue(output, "Answer: ");
            same_rule(finlora_entity(answer), finlora_entity(target))
        }
        (NormalizeMode::FinLoraV1, TaskKind::Tagging | TaskKind::Extraction) => {
            let last_line = output.rsplit('\n').next().unwrap_or("").trim();
            contained(last_line, target, last_line.contains(target))
        }
        (NormalizeMode::FinLoraV2, TaskKind::Tagging | TaskKind::Extraction) => {
            let answer = after_last_answer_cue(output);
            contained(answer, target, answer.to_lowercase().contains(&target.to_lowercase()))
        }
        (NormalizeMode::FinLoraV2, _) => {
            let answer = after_last_answer_cue(output).to_lowercase();
            let lowered: Vec<String> = labels.iter().map(|label| label.to_lowercase()).collect();
            let candidates: Vec<&str> = lowered.iter().map(String::as_str).collect();
            let prediction = earliest_label(&answer, &candidates, false).map(str::to_string);
            let reference = target.to_lowercase();
            let correct = prediction.as_deref() == Some(reference.as_str());
            Judgement { prediction, reference, correct }
        }
        (NormalizeMode::Strict, TaskKind::Extraction) => {
            let prediction = strict_free_text(after_last_answer_cue(output));
            let reference = strict_free_text(target).unwrap_or_default();
            let correct = prediction.as_deref() == Some(reference.as_str());
            Judgement { prediction, reference, correct }
        }
        (NormalizeMode::Strict, _) => {
            let answer = after_last_answer_cue(output);
            let prediction = earliest_label(answer, labels, true).map(str::to_string);
            let reference = labels
                .iter()
                .find(|label| label.eq_ignore_ascii_case(target.trim()))
                .map_or_else(|| target.trim().to_string(), |label| label.to_string());
            let correct = prediction.as_deref() == Some(reference.as_str());
            Judgement { prediction, reference, correct }
        }
    }
}

fn same_rule(prediction: Option<&str>, reference: Option<&str>) -> Judgement {
    let correct = prediction.is_some() && prediction == reference;
    Judgement {
        prediction: prediction.map(str::to_string),
        reference: reference.unwrap_or_default().to_string(),
        correct,
    }
}

fn contained(answer: &str, target: &str, correct: bool) -> Judgement {
    let prediction = if correct { target } else { answer };
    Judgement { prediction: Some(prediction.to_string()), reference: target.to_string(), correct }
}

/// FinGPT / FinLoRA v1 `change_target`.
pub fn change_target(text: &str) -> &'static str {
    if text.contains("positive") || text.contains("Positive") {
        "positive"
    } else if text.contains("negative") || text.contains("Negative") {
        "negative"
    } else {
        "neutral"
    }
}

/// FinLoRA v1 headline rule; `None` where FinLoRA yields `''`.
pub fn finlora_yes_no(text: &str) -> Option<&'static str> {
    let lowered = text.to_lowercase();
    if lowered.contains("yes") {
        Some("Yes")
    } else if lowered.contains("no") {
        Some("No")
    } else {
        None
    }
}

/// FinLoRA v1 NER rule, including its `person -> "negative"` slip; `None` where it yields `''`.
pub fn finlora_entity(text: &str) -> Option<&'static str> {
    if text.contains("organization") {
        Some("organization")
    } else if text.contains("person") {
        Some("negative")
    } else if text.contains("location") {
        Some("location")
    } else {
        None
    }
}

/// The label occurring first in `text`; a tie at the same position goes to the longer label.
/// With `whole_word`, a match must not touch a letter or digit on either side and case is ignored.
pub fn earliest_label<'a>(text: &str, labels: &[&'a str], whole_word: bool) -> Option<&'a str> {
    let haystack = if whole_word { text.to_lowercase() } else { text.to_string() };
    let mut best: Option<(usize, &'a str)> = None;
    for &label in labels {
        let needle = if whole_word { label.to_lowercase() } else { label.to_string() };
        let Some(position) = first_match(&haystack, &needle, whole_word) else { continue };
        let better = match best {
            None => true,
            Some((best_position, best_label)) => {
                position < best_position || (position == best_position && label.len() > best_label.len())
            }
        };
        if better {
            best = Some((position, label));
        }
    }
    best.map(|(_, label)| label)
}

fn first_match(haystack: &str, needle: &str, whole_word: bool) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    let mut start = 0;
    while let Some(offset) = haystack[start..].find(needle) {
        let position = start + offset;
        let end = position + needle.len();
        let before_ok = haystack[..position].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after_ok = haystack[end..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        if !whole_word || (before_ok && after_ok) {
            return Some(position);
        }
        start = position + haystack[position..].chars().next().map_or(1, char::len_utf8);
    }
    None
}

/// FinLoRA v1 takes `split("Answer:")[1]` of the whole text: in the continuation, everything
/// before a repeated cue.
fn before_answer_cue<'a>(output: &'a str, cue: &str) -> &'a str {
    output.split(cue).next().unwrap_or(output)
}

/// FinLoRA v2: the text after the last `Answer:`, stripped.
fn after_last_answer_cue(output: &str) -> &str {
    output.rsplit("Answer:").next().unwrap_or(output).trim()
}

fn strict_free_text(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|line| !line.is_empty())?;
    let line = line.strip_suffix('.').unwrap_or(line).trim();
    let collapsed = line.split_whitespace().collect::<Vec<_>>().join(" ");
    (!collapsed.is_empty()).then_some(collapsed)
}
