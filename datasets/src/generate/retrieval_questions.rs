//! Retrieval-mode questions: the prompt's context is the top-k facts the agent's ranking
//! ([`crate::retrieval`]) returns for the question, built by the same functions `agent ask` uses,
//! so a model tuned on these rows sees at inference the prompt shape it trained on.
//!
//! Value and tag questions are asked per analyst metric ([`taxonomy::Metric`]), in the agent's
//! question shape; formula questions rank each operand's candidate concepts and show the top
//! facts of every operand. Values are the fact model's canonical values, as the agent shows them.

use taxonomy::{Metric, PeriodType, UnitKind};
use xbrl::FactHit;

use super::formulas::Formula;
use super::questions::{
    formula_calculation_question, formula_construction_question, tag_question, FilingQuestions,
    QuestionConfig,
};
use super::source::SourceFiling;
use crate::retrieval::{filing_hits, metric_value_question, rank, retrieved_lines, FactSpec};
use crate::task::Task;
use crate::xbrl_prompt::{build_prompt, XbrlQuestionKind};

/// The questions of `config.tasks` about `filing`, each shown its `top_k` best facts.
pub fn retrieval_questions(filing: &SourceFiling, config: &QuestionConfig, top_k: usize) -> FilingQuestions {
    let hits = filing_hits(&filing.doc, &filing.info, &filing.doc_path, filing.fiscal_year);
    let (company, year) = (&filing.company, filing.fiscal_year);
    let mut out = FilingQuestions::default();
    let wants = |task: Task| config.tasks.contains(&task);
    if wants(Task::XbrlValues) || wants(Task::XbrlTags) {
        for &metric in Metric::all() {
            let shown = top(&hits, &FactSpec::of_metric(metric), top_k);
            let (Some(answer), lines) = (shown.first(), retrieved_lines(&shown)) else { continue };
            if let (true, Some(value)) = (wants(Task::XbrlValues), &answer.value) {
                let question = metric_value_question(company, metric, year);
                let prompt = build_prompt(XbrlQuestionKind::Value, &lines, &question);
                out.push(filing, Task::XbrlValues, prompt, value.clone());
            }
            if wants(Task::XbrlTags) {
                let question = tag_question(metric.label(), company, year);
                let prompt = build_prompt(XbrlQuestionKind::Tag, &lines, &question);
                out.push(filing, Task::XbrlTags, prompt, answer.concept.clone());
            }
        }
    }
    if wants(Task::XbrlFormulaConstruction) || wants(Task::XbrlFormulaCalculation) {
        for formula in config.formulas {
            let Some(per_operand) = formula_facts(&hits, formula, top_k) else { continue };
            let answers: Vec<&FactHit> = per_operand.iter().filter_map(|shown| shown.first()).collect();
            let shown: Vec<FactHit> = dedup(per_operand.iter().flatten().cloned().collect());
            let lines = retrieved_lines(&shown);
            if wants(Task::XbrlFormulaConstruction) {
                let concepts: Vec<&str> = answers.iter().map(|hit| hit.concept.as_str()).collect();
                let question = formula_construction_question(&formula.name, company, year);
                let prompt = build_prompt(XbrlQuestionKind::FormulaConstruction, &lines, &question);
                out.push(filing, Task::XbrlFormulaConstruction, prompt, formula.substitute(&concepts));
            }
            if wants(Task::XbrlFormulaCalculation) {
                let values: Vec<&str> = answers.iter().filter_map(|hit| hit.value.as_deref()).collect();
                let question = formula_calculation_question(&formula.name, company, year);
                let prompt = build_prompt(XbrlQuestionKind::FormulaCalculation, &lines, &question);
                out.push(filing, Task::XbrlFormulaCalculation, prompt, formula.substitute(&values));
            }
        }
    }
    out
}

/// The `top_k` best facts for `spec` (only the wanted concepts are cloned before ranking).
fn top(hits: &[FactHit], spec: &FactSpec, top_k: usize) -> Vec<FactHit> {
    let candidates =
        hits.iter().filter(|hit| spec.concepts.contains(&hit.concept.as_str())).cloned().collect();
    let mut ranked = rank(candidates, spec, None);
    ranked.truncate(top_k);
    ranked
}

/// Each operand's top facts for one period type (durations first, then instants: a formula's
/// operands are all flows or all balances), or `None` when some operand has none.
fn formula_facts(hits: &[FactHit], formula: &Formula, top_k: usize) -> Option<Vec<Vec<FactHit>>> {
    [PeriodType::Duration, PeriodType::Instant].into_iter().find_map(|period_type| {
        formula
            .operands
            .iter()
            .map(|concepts| {
                let spec = FactSpec { concepts, period_type, unit_kind: UnitKind::Monetary };
                let shown = top(hits, &spec, top_k);
                (!shown.is_empty() && shown[0].value.is_some()).then_some(shown)
            })
            .collect()
    })
}

/// Drops repeated (concept, value) facts, keeping the first: an operand shared by two formula
/// terms is shown once.
fn dedup(mut hits: Vec<FactHit>) -> Vec<FactHit> {
    let mut seen = Vec::new();
    hits.retain(|hit| {
        let key = (hit.concept.clone(), hit.value.clone());
        let new = !seen.contains(&key);
        if new {
            seen.push(key);
        }
        new
    });
    hits
}
