//! Turning one data row into an [`Example`], per task: field names, label checks and prompts as
//! each folder's SOURCE.md describes them.

use std::collections::BTreeMap;

use crate::error::RowProblem;
use crate::example::{finlora_prompt, parse_finlora_prompt, xbrl_extraction_prompt, Example};
use crate::rows::Row;
use crate::task::{
    fiqa_instruction, NwgiMapping, Task, TfnsLabels, HEADLINE_LABELS, NER_LABELS, SENTIMENT_LABELS,
};

/// Everything a row converter needs besides the row.
#[derive(Debug, Clone)]
pub(crate) struct RowContext<'a> {
    pub task: Task,
    /// Used for ids when the row has none.
    pub file_stem: &'a str,
    pub nwgi: NwgiMapping,
    pub tfns: TfnsLabels,
    /// FiNER's 139 tags; empty for other tasks.
    pub finer_tags: &'a [String],
}

/// Opening of finagent's single-question FiNER instruction. FinLoRA (`data/process_finer.py`)
/// batches four questions after this tag list; here one entity is asked per example.
pub const FINER_INSTRUCTION_PREFIX: &str = "You are XBRL expert. Here is a list of US GAAP tags options: ";

/// FiNER's single-question instruction: FinLoRA's tag list and its question wording for one entity.
pub fn finer_instruction(tags: &[String], entity: &str) -> String {
    format!(
        "{FINER_INSTRUCTION_PREFIX}{}. What is best tag for entity \"{entity}\" in the input sentence? Provide only the tag.",
        tags.join(", ")
    )
}

/// Converts a row of the task's JSONL (or CSV) file; `Ok(None)` for rows of another task in a
/// shared file (xbrl_extraction holds four tasks).
pub(crate) fn convert_row(row: &Row, context: &RowContext) -> Result<Option<Example>, RowProblem> {
    let task = context.task;
    let mut extra = BTreeMap::new();
    let (instruction, input, target, label, group) = match task {
        Task::Fpb => {
            let text = row.str("text")?;
            let label = closed_label(row, "label", SENTIMENT_LABELS)?;
            keep(row, &mut extra, &["agreement"]);
            (
                crate::task::NEWS_SENTIMENT_INSTRUCTION.to_string(),
                text.to_string(),
                label.clone(),
                Some(label),
                text,
            )
        }
        Task::FiqaSa => {
            let text = row.str("text")?;
            let format = row.str("format")?;
            if format != "post" && format != "headline" {
                return Err(unknown("format", format));
            }
            let label = if row.has("label") {
                closed_label(row, "label", SENTIMENT_LABELS)?
            } else {
                fiqa_label(row.number("score")?).to_string()
            };
            keep(row, &mut extra, &["format", "target", "score"]);
            (fiqa_instruction(format).to_string(), text.to_string(), label.clone(), Some(label), text)
        }
        Task::Tfns => {
            let text = row.str("text")?;
            let label = tfns_label(row, context.tfns)?;
            keep(row, &mut extra, &["label_finlora", "label_name"]);
            (
                crate::task::TWEET_SENTIMENT_INSTRUCTION.to_string(),
                text.to_string(),
                label.clone(),
                Some(label),
                text,
            )
        }
        Task::Nwgi => {
            let text = row.str("text")?;
            let raw = row.str("label")?;
            let scored = context.nwgi.map(raw).ok_or_else(|| unknown("label", raw))?;
            extra.insert("label_7".to_string(), raw.to_string());
            let target = if context.nwgi == NwgiMapping::FinLoraPolarity { raw } else { scored };
            let instruction = context.nwgi.instruction().to_string();
            (instruction, text.to_string(), target.to_string(), Some(scored.to_string()), text)
        }
        Task::Headline => {
            let text = row.str("text")?;
            let instruction = row.str("instruction")?.to_string();
            let label = closed_label(row, "label", HEADLINE_LABELS)?;
            keep(row, &mut extra, &["dimension", "headline_id"]);
            let group = if row.has("headline_id") { row.str("headline_id")? } else { text };
            (instruction, text.to_string(), label.clone(), Some(label), group)
        }
        Task::Ner => {
            let text = row.str("text")?;
            let instruction = row.str("instruction")?.to_string();
            let label = closed_label(row, "label", NER_LABELS)?;
            keep(row, &mut extra, &["entity"]);
            (instruction, text.to_string(), label.clone(), Some(label), text)
        }
        Task::Finer => {
            let text = row.str("text")?;
            let entity = row.str("entity")?;
            let label = row.str("label")?;
            if !context.finer_tags.iter().any(|tag| tag == label) {
                return Err(unknown("label", label));
            }
            keep(row, &mut extra, &["entity", "batch_id", "question_index"]);
            let instruction = finer_instruction(context.finer_tags, entity);
            (instruction, text.to_string(), label.to_string(), Some(label.to_string()), text)
        }
        Task::XbrlTags | Task::XbrlValues | Task::XbrlFormulaConstruction | Task::XbrlFormulaCalculation => {
            return convert_xbrl_row(row, context, extra);
        }
        // Generated from filings only: `{context, target}` rows like FinLoRA's test files.
        Task::FinerTagging | Task::FinerBatched => return convert_context_row(row, context),
    };
    let prompt = finlora_prompt(&instruction, &input);
    Ok(Some(Example {
        id: row_id(row, context),
        task,
        instruction,
        input,
        prompt,
        target,
        label,
        group: group.to_string(),
        line: row.line,
        extra,
    }))
}

/// A FinLoRA `{context, target}` row: the prompt arrives whole.
pub(crate) fn convert_context_row(row: &Row, context: &RowContext) -> Result<Option<Example>, RowProblem> {
    let prompt = row.str("context")?.to_string();
    let target = row.text("target").ok_or_else(|| RowProblem::MissingField("target".into()))?;
    let (instruction, input) = match parse_finlora_prompt(&prompt) {
        Some((instruction, input)) => (instruction.to_string(), input.to_string()),
        None => (String::new(), String::new()),
    };
    let mut extra = BTreeMap::new();
    keep(row, &mut extra, &["doc_path", "ticker", "fiscal_year"]);
    let group = extra.get("doc_path").cloned().unwrap_or_else(|| prompt.clone());
    // A single FiNER question's answer is its class, as for the finer task.
    let label = match context.task {
        Task::FinerTagging => Some(target.clone()),
        task => task.labels(context.nwgi).map(|_| target.clone()),
    };
    Ok(Some(Example {
        id: row_id(row, context),
        task: context.task,
        instruction,
        input,
        prompt,
        target,
        label,
        group,
        line: row.line,
        extra,
    }))
}

fn convert_xbrl_row(
    row: &Row,
    context: &RowContext,
    mut extra: BTreeMap<String, String>,
) -> Result<Option<Example>, RowProblem> {
    // CSV originals hold one task per file and have no `task` column.
    if row.has("task") {
        let file_task = row.str("task")?;
        if !Task::ALL.iter().any(|task| task.xbrl_file_task() == Some(file_task)) {
            return Err(unknown("task", file_task));
        }
        if context.task.xbrl_file_task() != Some(file_task) {
            return Ok(None);
        }
    }
    let instruction = row.str("instruction")?.to_string();
    let input = row.str("input")?.to_string();
    let target = row.text("output").ok_or_else(|| RowProblem::MissingField("output".into()))?;
    keep(row, &mut extra, &["company", "year", "doc_path", "context_id"]);
    let group = extra.get("doc_path").cloned().unwrap_or_else(|| row.line.to_string());
    let prompt = xbrl_extraction_prompt(&instruction, None, &input);
    Ok(Some(Example {
        id: row_id(row, context),
        task: context.task,
        instruction,
        input,
        prompt,
        target,
        label: None,
        group,
        line: row.line,
        extra,
    }))
}

fn row_id(row: &Row, context: &RowContext) -> String {
    row.text("id").unwrap_or_else(|| format!("{}-{:05}", context.file_stem, row.line))
}

fn keep(row: &Row, extra: &mut BTreeMap<String, String>, fields: &[&str]) {
    for field in fields {
        if let Some(value) = row.text(field) {
            extra.insert((*field).to_string(), value);
        }
    }
}

fn unknown(field: &str, value: &str) -> RowProblem {
    RowProblem::UnknownLabel { field: field.to_string(), value: value.to_string() }
}

fn closed_label(row: &Row, field: &str, labels: &[&str]) -> Result<String, RowProblem> {
    let value = row.str(field)?;
    match labels.iter().find(|label| **label == value) {
        Some(label) => Ok((*label).to_string()),
        None => Err(unknown(field, value)),
    }
}

/// FinGPT / FinLoRA's score bins: < -0.1 negative, [-0.1, 0.1) neutral, >= 0.1 positive.
pub fn fiqa_label(score: f64) -> &'static str {
    if score < -0.1 {
        "negative"
    } else if score < 0.1 {
        "neutral"
    } else {
        "positive"
    }
}

/// TFNS label under the chosen mapping, from `label` / `label_finlora` or from the integer id
/// (`label_id`, or `label` itself in the original CSV).
fn tfns_label(row: &Row, labels: TfnsLabels) -> Result<String, RowProblem> {
    let named_field = match labels {
        TfnsLabels::Correct => "label",
        TfnsLabels::FinLora => "label_finlora",
    };
    if let Ok(name) = row.str(named_field) {
        if name.parse::<u8>().is_err() {
            return closed_label(row, named_field, SENTIMENT_LABELS);
        }
    }
    let id_field = if row.has("label_id") { "label_id" } else { "label" };
    let id = row.number(id_field)?;
    if id.fract() != 0.0 {
        return Err(unknown(id_field, &id.to_string()));
    }
    let mapped = match (labels, id as i64) {
        (_, 0) => "negative",
        (TfnsLabels::Correct, 1) | (TfnsLabels::FinLora, 2) => "positive",
        (TfnsLabels::Correct, 2) | (TfnsLabels::FinLora, 1) => "neutral",
        _ => return Err(unknown(id_field, &id.to_string())),
    };
    Ok(mapped.to_string())
}
