//! Tag, value and formula-calculation questions about one filing, each with FinLoRA's full-mode
//! prompt: the facts of the question's context, its one-shot example, the question.
//!
//! Questions are asked about the filing's main contexts (the fiscal-year duration and the instant
//! at its end, both without dimensions), one per concept, and only about concepts that appear
//! once with one value there and whose label names no other concept, so every answer is unique.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use taxonomy::Catalogue;
use xbrl::{Context, Period};

use super::context_block::{context_line, context_lines};
use super::formulas::Formula;
use super::source::SourceFiling;
use crate::task::Task;
use crate::xbrl_prompt::{build_prompt, ContextLine, XbrlQuestionKind, FORMULA_SUFFIX, MAX_PROMPT_CHARS};

/// One generated example, as written to the output JSONL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratedRow {
    pub context: String,
    pub target: String,
    pub doc_path: String,
    pub task: Task,
    pub ticker: String,
    pub fiscal_year: i32,
}

/// What one filing yields, and how many prompts were too long to keep.
#[derive(Debug, Clone, Default)]
pub struct FilingQuestions {
    pub rows: Vec<GeneratedRow>,
    pub n_dropped_long: usize,
}

/// A main context's prompt lines and its askable facts: prefixed concept -> value as written.
struct AskableContext {
    lines: Vec<ContextLine>,
    values: BTreeMap<String, String>,
}

/// The questions of `tasks` about `filing` (tasks other than tags, values and formula
/// calculation yield nothing here).
pub fn filing_questions(
    filing: &SourceFiling,
    tasks: &[Task],
    formulas: &[Formula],
    catalogue: Option<&Catalogue>,
) -> FilingQuestions {
    let contexts: Vec<AskableContext> =
        main_contexts(filing).into_iter().map(|c| askable(filing, c)).collect();
    let labels = unique_labels(filing, &contexts, catalogue);
    let mut out = FilingQuestions::default();
    let (company, year) = (&filing.company, filing.fiscal_year);
    for context in &contexts {
        let mut push = |task: Task, kind: XbrlQuestionKind, question: String, target: String| {
            let context_text = build_prompt(kind, &context.lines, &question);
            if context_text.chars().count() > MAX_PROMPT_CHARS {
                out.n_dropped_long += 1;
                return;
            }
            out.rows.push(GeneratedRow {
                context: context_text,
                target,
                doc_path: filing.doc_path.clone(),
                task,
                ticker: filing.ticker.clone(),
                fiscal_year: year,
            });
        };
        for (concept, value) in &context.values {
            let Some(label) = labels.get(concept.as_str()) else { continue };
            if tasks.contains(&Task::XbrlTags) {
                let question = format!(
                    "What is the US GAAP XBRL tag for {label} as reported by {company} for the Fiscal Year ending in FY {year}?"
                );
                push(Task::XbrlTags, XbrlQuestionKind::Tag, question, concept.clone());
            }
            if tasks.contains(&Task::XbrlValues) {
                let question = format!(
                    "What is the value of {company}'s {label} for the Fiscal Year ending in FY {year}?"
                );
                push(Task::XbrlValues, XbrlQuestionKind::Value, question, value.clone());
            }
        }
        if tasks.contains(&Task::XbrlFormulaCalculation) {
            for formula in formulas {
                let Some(values) = operand_values(formula, &context.values) else { continue };
                let question = format!(
                    "What is the value of {company}'s {} for the Fiscal Year ending in FY {year}?{FORMULA_SUFFIX}",
                    formula.name
                );
                let target = formula.substitute(&values);
                push(Task::XbrlFormulaCalculation, XbrlQuestionKind::FormulaCalculation, question, target);
            }
        }
    }
    out
}

/// The fiscal-year duration context and the dimensionless instant at its end.
fn main_contexts(filing: &SourceFiling) -> Vec<&Context> {
    let Some(duration) = filing.info.main_context(&filing.doc) else { return Vec::new() };
    let instant = duration.period.end().and_then(|end| {
        filing.doc.contexts.values().find(|c| c.is_dimensionless() && c.period == Period::Instant(end))
    });
    std::iter::once(duration).chain(instant).collect()
}

/// The context's lines, and its numeric us-gaap facts that appear once (or always with the same
/// value) and are shown in the context block.
fn askable(filing: &SourceFiling, context: &Context) -> AskableContext {
    let lines = context_lines(&filing.doc, &context.id, &filing.written);
    let mut seen: HashMap<String, Option<String>> = HashMap::new();
    let facts = filing.doc.facts.iter().filter(|f| f.context_ref == context.id && f.concept.is_us_gaap());
    for fact in facts.filter(|f| f.is_numeric() && !f.nil) {
        let shown = context_line(fact, &filing.written).and_then(|line| line.value);
        let value = shown.and(filing.written.text_of(fact)).map(str::to_string);
        seen.entry(fact.concept.prefixed())
            .and_modify(|known| {
                if *known != value {
                    *known = None;
                }
            })
            .or_insert(value);
    }
    let values = seen.into_iter().filter_map(|(concept, value)| Some((concept, value?))).collect();
    AskableContext { lines, values }
}

/// Prefixed concept -> label, for the askable concepts whose label names only them.
fn unique_labels<'a>(
    filing: &'a SourceFiling,
    contexts: &[AskableContext],
    catalogue: Option<&'a Catalogue>,
) -> HashMap<String, &'a str> {
    let mut by_label: HashMap<&str, Vec<&str>> = HashMap::new();
    for concept in contexts.iter().flat_map(|c| c.values.keys()) {
        if let Some(label) = filing.label(concept, catalogue) {
            let concepts = by_label.entry(label).or_default();
            if !concepts.contains(&concept.as_str()) {
                concepts.push(concept);
            }
        }
    }
    by_label
        .into_iter()
        .filter_map(|(label, concepts)| match concepts.as_slice() {
            [concept] => Some((concept.to_string(), label)),
            _ => None,
        })
        .collect()
}

/// One value per operand (the first candidate concept present), or `None` if any is missing.
fn operand_values<'v>(formula: &Formula, values: &'v BTreeMap<String, String>) -> Option<Vec<&'v str>> {
    formula
        .operands
        .iter()
        .map(|candidates| candidates.iter().find_map(|concept| values.get(*concept).map(String::as_str)))
        .collect()
}
