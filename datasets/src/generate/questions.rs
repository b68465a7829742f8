//! Tag, value and formula (construction and calculation) questions about one filing, each with
//! FinLoRA's one-shot prompt: the context facts, its one-shot example, the question.
//!
//! In full mode ([`ContextMode::Full`]) the context is every us-gaap fact of the question's
//! context, as FinLoRA builds it. Questions are asked about the filing's main contexts (the
//! fiscal-year duration and the instant at its end, both without dimensions), one per concept, and
//! only about concepts that appear once with one value there and whose label names no other
//! concept, so every answer is unique. Retrieval mode is in [`super::retrieval_questions`].

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use taxonomy::Catalogue;
use xbrl::{Context, Period};

use super::context_block::{context_line, context_lines};
use super::formulas::Formula;
use super::retrieval_questions::retrieval_questions;
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

impl FilingQuestions {
    /// Keeps the row unless its prompt is over FinLoRA's length limit.
    pub(crate) fn push(&mut self, filing: &SourceFiling, task: Task, context: String, target: String) {
        if context.chars().count() > MAX_PROMPT_CHARS {
            self.n_dropped_long += 1;
            return;
        }
        self.rows.push(GeneratedRow {
            context,
            target,
            doc_path: filing.doc_path.clone(),
            task,
            ticker: filing.ticker.clone(),
            fiscal_year: filing.fiscal_year,
        });
    }
}

/// Where a prompt's context facts come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ContextMode {
    /// FinLoRA's: every us-gaap fact of the question's context.
    #[default]
    Full,
    /// The agent's: the top `top_k` facts its ranking ([`crate::retrieval`]) returns for the question.
    Retrieval { top_k: usize },
}

/// What to ask about a filing.
#[derive(Debug, Clone, Copy)]
pub struct QuestionConfig<'a> {
    pub tasks: &'a [Task],
    pub formulas: &'a [Formula],
    pub catalogue: Option<&'a Catalogue>,
    pub context: ContextMode,
}

/// FinLoRA's tag question.
pub fn tag_question(label: &str, company: &str, year: i32) -> String {
    format!("What is the US GAAP XBRL tag for {label} as reported by {company} for the Fiscal Year ending in FY {year}?")
}

/// FinLoRA's formula-construction question (wangd12/XBRL_extraction's first template).
pub fn formula_construction_question(formula: &str, company: &str, year: i32) -> String {
    format!(
        "What is the formula for the {formula} of {company}, formatted with the relevant US GAAP XBRL tags, for the fiscal year ending in FY {year}?"
    )
}

/// FinLoRA's formula-calculation question, its suffix included.
pub fn formula_calculation_question(formula: &str, company: &str, year: i32) -> String {
    format!(
        "What is the value of {company}'s {formula} for the Fiscal Year ending in FY {year}?{FORMULA_SUFFIX}"
    )
}

/// A main context's prompt lines and its askable facts: prefixed concept -> value as written.
struct AskableContext {
    lines: Vec<ContextLine>,
    values: BTreeMap<String, String>,
}

/// The questions of `config.tasks` about `filing` (tasks other than the xbrl ones yield nothing here).
pub fn filing_questions(filing: &SourceFiling, config: &QuestionConfig) -> FilingQuestions {
    match config.context {
        ContextMode::Full => full_questions(filing, config),
        ContextMode::Retrieval { top_k } => retrieval_questions(filing, config, top_k),
    }
}

fn full_questions(filing: &SourceFiling, config: &QuestionConfig) -> FilingQuestions {
    let tasks = config.tasks;
    let contexts: Vec<AskableContext> =
        main_contexts(filing).into_iter().map(|c| askable(filing, c)).collect();
    let labels = unique_labels(filing, &contexts, config.catalogue);
    let mut out = FilingQuestions::default();
    let (company, year) = (&filing.company, filing.fiscal_year);
    for context in &contexts {
        let mut push = |task: Task, kind: XbrlQuestionKind, question: String, target: String| {
            out.push(filing, task, build_prompt(kind, &context.lines, &question), target);
        };
        for (concept, value) in &context.values {
            let Some(label) = labels.get(concept.as_str()) else { continue };
            if tasks.contains(&Task::XbrlTags) {
                let question = tag_question(label, company, year);
                push(Task::XbrlTags, XbrlQuestionKind::Tag, question, concept.clone());
            }
            if tasks.contains(&Task::XbrlValues) {
                let question = format!(
                    "What is the value of {company}'s {label} for the Fiscal Year ending in FY {year}?"
                );
                push(Task::XbrlValues, XbrlQuestionKind::Value, question, value.clone());
            }
        }
        for formula in config.formulas {
            let Some(operands) = operand_values(formula, &context.values) else { continue };
            if tasks.contains(&Task::XbrlFormulaConstruction) {
                let concepts: Vec<&str> = operands.iter().map(|(concept, _)| *concept).collect();
                let question = formula_construction_question(&formula.name, company, year);
                let target = formula.substitute(&concepts);
                push(Task::XbrlFormulaConstruction, XbrlQuestionKind::FormulaConstruction, question, target);
            }
            if tasks.contains(&Task::XbrlFormulaCalculation) {
                let values: Vec<&str> = operands.iter().map(|(_, value)| *value).collect();
                let question = formula_calculation_question(&formula.name, company, year);
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

/// One `(concept, value)` per operand (the first candidate concept present), or `None` if any is
/// missing.
fn operand_values<'v>(
    formula: &Formula,
    values: &'v BTreeMap<String, String>,
) -> Option<Vec<(&'static str, &'v str)>> {
    formula
        .operands
        .iter()
        .map(|candidates| {
            candidates.iter().find_map(|concept| values.get(*concept).map(|value| (*concept, value.as_str())))
        })
        .collect()
}
