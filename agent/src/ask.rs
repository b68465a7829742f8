//! `ask` end to end: resolve the question, retrieve facts, prompt the model in FinLoRA's one-shot
//! XBRL format, and check its answer against the facts before showing it with provenance.

use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use datasets::retrieval::{metric_value_question, retrieved_lines};
use datasets::xbrl_prompt::{build_prompt, XbrlQuestionKind};
use serde::Serialize;
use taxonomy::Metric;
use trainer::generate::{generate_greedy, GreedyConfig};
use trainer::model::Llama;
use trainer::quantize::{quantize_base, BaseBits};
use trainer::tokenizer::Tokenizer;
use xbrl::{FactHit, FactIndex, Period};

use crate::check::read_numbers;
use crate::companies::{Company, CompanyDirectory};
use crate::question::{Question, YearBasis};
use crate::retrieve::{retrieve, FactRequest};

/// Facts shown to the model: enough to choose from, few enough for a small model to copy from.
pub const FACTS_IN_PROMPT: usize = 4;
/// FinLoRA's evaluation budget for XBRL value answers.
pub const MAX_NEW_TOKENS: usize = 20;

/// A loaded model and its tokenizer.
pub struct LanguageModel {
    pub model: Llama,
    pub tokenizer: Tokenizer,
}

impl LanguageModel {
    /// Loads the model as stored (f32 after dequantizing GGUF blocks).
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, BaseBits::F32, None)
    }

    /// Loads the model, re-quantizes its decoder projections to `bits` and attaches the PEFT
    /// adapter in `adapter`, if given (the setting the adapter was trained in).
    pub fn load_with(path: &Path, bits: BaseBits, adapter: Option<&Path>) -> Result<Self> {
        let (mut model, tokenizer) =
            trainer::loader::load(path).with_context(|| format!("cannot load model {}", path.display()))?;
        quantize_base(&mut model, bits)?;
        if let Some(dir) = adapter {
            trainer::peft::load_adapter(&mut model, dir)
                .with_context(|| format!("cannot load adapter {} onto {}", dir.display(), path.display()))?;
        }
        Ok(Self { model, tokenizer })
    }

    /// Greedy completion of `prompt`, cut at the first line break.
    pub fn complete(&self, prompt: &str) -> Result<String> {
        let ids = self.tokenizer.encode(prompt, false)?;
        let mut stop_ids = self.tokenizer.eos_ids().to_vec();
        stop_ids.extend(self.tokenizer.token_id("Ċ"));
        let config = GreedyConfig { max_new_tokens: MAX_NEW_TOKENS, stop_ids };
        let generated = generate_greedy(&self.model, &ids, &config)?;
        let text = self.tokenizer.decode(&generated)?;
        let text = text.trim_start();
        Ok(text.lines().next().unwrap_or("").trim().to_string())
    }
}

/// A period as shown to people and in JSON.
#[derive(Debug, Clone, Serialize)]
pub struct PeriodView {
    pub start: Option<String>,
    pub end: Option<String>,
    pub instant: bool,
}

impl From<&Period> for PeriodView {
    fn from(period: &Period) -> Self {
        PeriodView {
            start: match period {
                Period::Duration { start, .. } => Some(start.to_string()),
                _ => None,
            },
            end: period.end().map(|d| d.to_string()),
            instant: matches!(period, Period::Instant(_)),
        }
    }
}

/// One retrieved fact with where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct FactView {
    pub concept: String,
    pub label: Option<String>,
    /// As filed (after inline scale and sign), a canonical decimal.
    pub value: Option<String>,
    pub unit: Option<String>,
    pub decimals: Option<String>,
    pub period: PeriodView,
    pub fiscal_year: Option<i32>,
    pub form: Option<String>,
    pub accession: Option<String>,
    pub context_id: String,
    pub source: String,
}

impl From<&FactHit> for FactView {
    fn from(hit: &FactHit) -> Self {
        FactView {
            concept: hit.concept.clone(),
            label: hit.label.clone(),
            value: hit.value.clone(),
            unit: hit.unit.clone(),
            decimals: hit.decimals.clone(),
            period: PeriodView::from(&hit.period),
            fiscal_year: hit.period_fiscal_year,
            form: hit.form.clone(),
            accession: hit.accession.clone(),
            context_id: hit.context_id.clone(),
            source: hit.source.clone(),
        }
    }
}

/// The answer to a question, with provenance.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub question: String,
    /// One sentence for people.
    pub answer: String,
    /// The fact the model's answer matched, as filed; `None` when it matched none.
    pub value: Option<String>,
    pub unit: Option<String>,
    pub concept: Option<String>,
    pub period: Option<PeriodView>,
    pub fiscal_year: i32,
    pub year_basis: YearBasis,
    pub entity: Option<String>,
    pub ticker: String,
    pub metric: String,
    /// The matched fact's provenance.
    pub source: Option<FactView>,
    /// True when a number in the model's answer equals a retrieved fact.
    pub agrees_with_facts: bool,
    /// What the model wrote, verbatim (first line).
    pub model_answer: String,
    /// The facts the model was shown, best first.
    pub retrieved: Vec<FactView>,
}

/// What a question needs before the model runs: company, year and metric, resolved.
pub struct ResolvedQuestion {
    pub question: Question,
    pub company: Company,
    pub year: i32,
    pub metric: Metric,
}

/// Resolves the parts of a question, or says plainly which part is missing.
pub fn resolve(text: &str, companies: &CompanyDirectory) -> Result<ResolvedQuestion> {
    let question = Question::parse(text, companies);
    let company = question.company.clone().ok_or_else(|| {
        let known: Vec<&str> = companies.iter().map(|c| c.ticker.as_str()).collect();
        anyhow!("no known company is named in {text:?} (indexed tickers: {})", list_or_none(&known))
    })?;
    let year =
        question.year().ok_or_else(|| anyhow!("no year in {text:?}; ask about a fiscal year, e.g. 2022"))?;
    let metric = question.metric.ok_or_else(|| {
        anyhow!(
            "finagent does not know which reported metric {text:?} asks about (known: {})",
            Metric::all().iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
        )
    })?;
    Ok(ResolvedQuestion { question, company, year, metric })
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Retrieves, prompts and checks. `model` is only loaded once facts were found.
pub fn answer(
    index: &FactIndex,
    resolved: &ResolvedQuestion,
    model: &mut dyn FnMut() -> Result<std::rc::Rc<LanguageModel>>,
) -> Result<Answer> {
    let ResolvedQuestion { question, company, year, metric } = resolved;
    let request = FactRequest {
        ticker: company.ticker.clone(),
        year: *year,
        year_basis: question.year_basis,
        metric: *metric,
    };
    let facts = retrieve(index, &request)?;
    if facts.is_empty() {
        let basis = match question.year_basis {
            YearBasis::Fiscal => "fiscal",
            YearBasis::Calendar => "calendar",
        };
        bail!(
            "no {} fact for {} in {basis} {year} in the index (concepts looked for: {})",
            metric.label().to_lowercase(),
            company.ticker,
            metric.concepts().join(", ")
        );
    }
    let shown: Vec<FactHit> = facts.into_iter().take(FACTS_IN_PROMPT).collect();
    let entity = shown[0].entity_name.clone().or_else(|| company.name.clone());
    let entity_text = entity.as_deref().unwrap_or(&company.ticker).to_string();
    let fiscal_year = shown[0].period_fiscal_year.unwrap_or(*year);
    // FinLoRA's own one-shot example, so the prompt has the shape the XBRL adapters are tuned on.
    let prompt = build_prompt(
        XbrlQuestionKind::Value,
        &retrieved_lines(&shown),
        &metric_value_question(&entity_text, *metric, fiscal_year),
    );
    let model_answer = model()?.complete(&prompt)?;
    let matched = read_numbers(&model_answer)
        .iter()
        .find_map(|number| shown.iter().find(|fact| fact.number.is_some_and(|value| number.matches(value))))
        .cloned();
    let sentence = match &matched {
        Some(fact) => format!(
            "{} {} for fiscal {fiscal_year} was {} {} ({}, {}).",
            entity.as_deref().unwrap_or(&company.ticker),
            metric.label().to_lowercase(),
            group_thousands(fact.value.as_deref().unwrap_or("")),
            fact.unit.as_deref().unwrap_or(""),
            fact.concept,
            PeriodText(&fact.period),
        ),
        None => format!(
            "The model answered {model_answer:?}, which matches none of the {} retrieved facts; no answer is given.",
            shown.len()
        ),
    };
    Ok(Answer {
        question: question.text.clone(),
        answer: sentence,
        value: matched.as_ref().and_then(|f| f.value.clone()),
        unit: matched.as_ref().and_then(|f| f.unit.clone()),
        concept: matched.as_ref().map(|f| f.concept.clone()),
        period: matched.as_ref().map(|f| PeriodView::from(&f.period)),
        fiscal_year,
        year_basis: question.year_basis,
        entity,
        ticker: company.ticker.clone(),
        metric: metric.name().to_string(),
        source: matched.as_ref().map(FactView::from),
        agrees_with_facts: matched.is_some(),
        model_answer,
        retrieved: shown.iter().map(FactView::from).collect(),
    })
}

/// `2021-09-26 to 2022-09-24`, or `at 2022-09-24`.
pub struct PeriodText<'a>(pub &'a Period);

impl std::fmt::Display for PeriodText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Period::Duration { start, end } => write!(f, "{start} to {end}"),
            Period::Instant(date) => write!(f, "at {date}"),
            Period::Forever => f.write_str("forever"),
        }
    }
}

/// `394328000000` -> `394,328,000,000` (a leading minus and decimals kept).
pub fn group_thousands(value: &str) -> String {
    let (sign, digits) = value.strip_prefix('-').map_or(("", value), |rest| ("-", rest));
    let (whole, fraction) = digits.split_once('.').map_or((digits, None), |(w, f)| (w, Some(f)));
    let mut grouped = String::new();
    for (idx, c) in whole.chars().enumerate() {
        if idx > 0 && (whole.len() - idx) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(group_thousands("394328000000"), "394,328,000,000");
        assert_eq!(group_thousands("-2722000000"), "-2,722,000,000");
        assert_eq!(group_thousands("6.11"), "6.11");
        assert_eq!(group_thousands("100"), "100");
    }

    #[test]
    fn finlora_shaped_value_question() {
        assert_eq!(
            metric_value_question("Apple Inc.", Metric::Revenue, 2022),
            "What is the value of Apple Inc.'s revenue for the Fiscal Year ending in FY 2022?"
        );
    }
}
