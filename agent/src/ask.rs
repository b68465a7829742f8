//! `ask` end to end: resolve the question, retrieve facts, prompt the model in FinLoRA's one-shot
//! XBRL format, and check its answer against the facts before showing it with provenance.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _, Result};
use datasets::retrieval::{metric_quarter_question, metric_value_question, retrieved_lines};
use datasets::xbrl_prompt::{build_prompt, XbrlQuestionKind};
use serde::Serialize;
use taxonomy::{Asked, DerivedMetric, Metric};
use trainer::generate::{generate_greedy_reusing, GreedyConfig, PromptCache};
use trainer::model::Llama;
use trainer::quantize::{quantize_for_inference, BaseBits, Int8Matmul};
use trainer::tokenizer::Tokenizer;
use xbrl::{FactHit, FactIndex, Period};

use crate::adapter;
use crate::check::read_numbers;
use crate::companies::{Company, CompanyDirectory};
use crate::question::{Question, YearBasis};
use crate::retrieve::{quarter_end, retrieve, FactRequest, QuarterGap};

/// Facts shown to the model: enough to choose from, few enough for a small model to copy from.
pub const FACTS_IN_PROMPT: usize = 4;
/// FinLoRA's evaluation budget for XBRL value answers.
pub const MAX_NEW_TOKENS: usize = 20;

/// A loaded model and its tokenizer.
pub struct LanguageModel {
    pub model: Llama,
    pub tokenizer: Tokenizer,
    /// The last prompt's keys and values: every XBRL prompt opens with the same instruction, which
    /// is then prefilled once, not per question.
    prompt_cache: std::sync::Mutex<PromptCache>,
}

/// Which LoRA adapter answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterChoice {
    /// The adapter compiled into finagent ([`crate::adapter`]), over the base precision it was
    /// trained with.
    Bundled,
    /// A PEFT adapter directory (e.g. `<run>/adapter` from `finagent train`).
    Dir(PathBuf),
    /// The base model alone.
    None,
}

impl AdapterChoice {
    /// A short name for reports: `bundled:xbrl-agent-r8-8bit`, the directory, or `none`.
    pub fn describe(&self) -> String {
        match self {
            AdapterChoice::Bundled => format!("bundled:{}", adapter::BUNDLED_NAME),
            AdapterChoice::Dir(dir) => dir.display().to_string(),
            AdapterChoice::None => "none".to_string(),
        }
    }
}

impl LanguageModel {
    /// Loads the model as stored (f32 after dequantizing GGUF blocks).
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, BaseBits::F32, Int8Matmul::Dequantized, &AdapterChoice::None)
    }

    /// Loads the model, re-quantizes its decoder projections to `bits` (an 8-bit base multiplying
    /// as `int8_matmul` says) and attaches `adapter` (use the base precision the adapter was
    /// trained with).
    pub fn load_with(
        path: &Path,
        bits: BaseBits,
        int8_matmul: Int8Matmul,
        adapter: &AdapterChoice,
    ) -> Result<Self> {
        let (mut model, tokenizer) =
            trainer::loader::load(path).with_context(|| format!("cannot load model {}", path.display()))?;
        quantize_for_inference(&mut model, bits, int8_matmul)?;
        match adapter {
            AdapterChoice::Bundled => adapter::attach_bundled(&mut model)
                .with_context(|| format!("cannot attach the bundled adapter to {}", path.display()))?,
            AdapterChoice::Dir(dir) => {
                trainer::peft::load_adapter(&mut model, dir).with_context(|| {
                    format!("cannot load adapter {} onto {}", dir.display(), path.display())
                })?;
            }
            AdapterChoice::None => {}
        }
        // Answering only: no autograd graph behind every forward pass.
        model.freeze();
        Ok(Self { model, tokenizer, prompt_cache: Default::default() })
    }

    /// Greedy completion of `prompt`, cut at the first line break.
    pub fn complete(&self, prompt: &str) -> Result<String> {
        let ids = self.tokenizer.encode(prompt, false)?;
        let mut stop_ids = self.tokenizer.eos_ids().to_vec();
        stop_ids.extend(self.tokenizer.token_id("Ċ"));
        let config = GreedyConfig { max_new_tokens: MAX_NEW_TOKENS, stop_ids };
        let generated = generate_greedy_reusing(&self.model, &ids, &config, &self.prompt_cache)?;
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

/// The answer to a question about one filed metric, with provenance.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// `value`: one filed fact.
    pub kind: &'static str,
    pub question: String,
    /// One sentence for people.
    pub answer: String,
    /// The fact the model's answer matched, as filed; `None` when it matched none.
    pub value: Option<String>,
    pub unit: Option<String>,
    pub concept: Option<String>,
    pub period: Option<PeriodView>,
    pub fiscal_year: i32,
    /// The fiscal quarter asked about, when one was.
    pub quarter: Option<u8>,
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

/// What a question needs before the model runs: company, year and what is asked, resolved.
pub struct ResolvedQuestion {
    pub question: Question,
    pub company: Company,
    pub year: i32,
    pub asked: Resolved,
}

/// What a resolved question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// A filed metric in one year.
    Value(Metric),
    /// A metric computed from two filed ones in one year.
    Derived(DerivedMetric),
    /// How a filed metric changed from the first year to the second.
    Change(Metric, i32, i32),
}

/// The latest fiscal year the company's annual reports in the index cover, for a question
/// that asks for the latest ("latest", "most recent"); `None` when none is indexed.
pub type LatestYear<'a> = dyn Fn(&Company) -> Result<Option<i32>> + 'a;

/// The latest `dei:DocumentFiscalYearFocus` of `ticker`'s indexed 10-Ks (and companyfacts'
/// annual accessions).
pub fn latest_fiscal_year(index: &FactIndex, ticker: &str) -> Result<Option<i32>> {
    let filings = index.filings()?;
    Ok(filings
        .iter()
        .filter(|filing| filing.ticker.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(ticker)))
        .filter(|filing| filing.form.as_deref().is_some_and(|form| form.starts_with("10-K")))
        .filter_map(|filing| filing.fiscal_year)
        .max())
}

/// Resolves the parts of a question, or says plainly which part is missing; a question that
/// asks for the latest year and names none is about `latest_year`'s.
pub fn resolve(
    text: &str,
    companies: &CompanyDirectory,
    latest_year: &LatestYear,
) -> Result<ResolvedQuestion> {
    resolve_parsed(Question::parse(text, companies), companies, latest_year)
}

/// Resolves a question once for each company it names ("Compare Apple and NVIDIA revenue in
/// 2023": AAPL's, then NVDA's), each with its own fiscal year; one company gives one.
pub fn resolve_each(
    text: &str,
    companies: &CompanyDirectory,
    latest_year: &LatestYear,
) -> Result<Vec<ResolvedQuestion>> {
    let named = companies.resolve_all(text);
    if named.len() <= 1 {
        return Ok(vec![resolve(text, companies, latest_year)?]);
    }
    let question = Question::parse(text, companies);
    named
        .into_iter()
        .map(|company| {
            resolve_parsed(Question { company: Some(company), ..question.clone() }, companies, latest_year)
        })
        .collect()
}

fn resolve_parsed(
    question: Question,
    companies: &CompanyDirectory,
    latest_year: &LatestYear,
) -> Result<ResolvedQuestion> {
    // Owned: `question` itself moves into the result.
    let text = question.text.clone();
    let company = question.company.clone().ok_or_else(|| {
        let known: Vec<&str> = companies.iter().map(|c| c.ticker.as_str()).collect();
        anyhow!("no known company is named in {text:?} (indexed tickers: {})", list_or_none(&known))
    })?;
    // An unknown metric is said before a missing year: a year would not make it answerable.
    let unknown_metric = || {
        let filed = Metric::all().iter().map(|m| m.name());
        let derived = DerivedMetric::all().iter().map(|m| m.name());
        let no_year = if question.year().is_none() { "; it names no year either" } else { "" };
        anyhow!(
            "finagent does not know which reported metric {text:?} asks about (known: {}){no_year}",
            filed.chain(derived).collect::<Vec<_>>().join(", ")
        )
    };
    let year = || match question.year() {
        Some(year) => Ok(year),
        None if question.latest => latest_year(&company)?.ok_or_else(|| {
            anyhow!(
                "no annual report of {} is indexed, so {text:?} has no latest year to answer",
                company.ticker
            )
        }),
        None => Err(anyhow!("no year in {text:?}; ask about a fiscal year, e.g. 2022, or the latest")),
    };
    let asked = match question.asked.ok_or_else(unknown_metric)? {
        Asked::Filed(metric) if question.change => {
            let year = year()?;
            let (from, to) = question.change_years().unwrap_or((year - 1, year));
            Resolved::Change(metric, from, to)
        }
        Asked::Filed(metric) => Resolved::Value(metric),
        Asked::Derived(metric) => Resolved::Derived(metric),
        Asked::Unsupported(phrase) => bail!(
            "finagent does not compute {phrase:?} from filings (it computes: {})",
            DerivedMetric::all().iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
        ),
    };
    let year = year()?;
    Ok(ResolvedQuestion { question, company, year, asked })
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Loads the model on first use and hands out the loaded one afterwards.
pub type ModelSource<'a> = dyn FnMut() -> Result<Arc<LanguageModel>> + 'a;

/// One filed metric for one company and year.
#[derive(Debug, Clone)]
pub struct ValueRequest<'a> {
    pub question: &'a str,
    pub company: &'a Company,
    pub year: i32,
    pub year_basis: YearBasis,
    pub metric: Metric,
    /// A fiscal quarter of `year`, answered from its 10-Q.
    pub quarter: Option<u8>,
}

/// Answers a filed-metric question: retrieves, prompts and checks. `model` is only loaded once
/// facts were found. No fact at all is an error saying what was looked for.
pub fn answer_value(index: &FactIndex, request: &ValueRequest, model: &mut ModelSource) -> Result<Answer> {
    let prepared = prepare_value(index, request)?;
    let model_answer = model()?.complete(&prepared.prompt)?;
    Ok(check_value(request, prepared, model_answer))
}

/// Answers two filed-metric questions (a ratio's or a change's operands): both are retrieved
/// first, then the model completes both prompts at once, each in its own one-thread pool. A
/// single completion of a short prompt keeps barely more than one core busy (splitting its small
/// matrix products costs about what it gains), so on a 2-core machine two side by side take
/// little longer than one (docs/agent.md, Latency).
pub fn answer_value_pair(
    index: &FactIndex,
    requests: [&ValueRequest; 2],
    model: &mut ModelSource,
) -> Result<[Answer; 2]> {
    let prepared = [prepare_value(index, requests[0])?, prepare_value(index, requests[1])?];
    let language_model = model()?;
    let [first_pool, second_pool] = operand_pools()?;
    let complete = |pool: &rayon::ThreadPool, prompt: &str| pool.install(|| language_model.complete(prompt));
    let (first, second) = std::thread::scope(|scope| {
        let second = scope.spawn(|| complete(second_pool, &prepared[1].prompt));
        let first = complete(first_pool, &prepared[0].prompt);
        (first, second.join())
    });
    let second = second.map_err(|_| anyhow::anyhow!("the model thread for the second operand panicked"))?;
    let (first, second) = (first?, second?);
    let [prepared_first, prepared_second] = prepared;
    Ok([check_value(requests[0], prepared_first, first), check_value(requests[1], prepared_second, second)])
}

/// The two one-thread pools [`answer_value_pair`] runs its completions in, made once.
fn operand_pools() -> Result<&'static [rayon::ThreadPool; 2]> {
    static POOLS: std::sync::OnceLock<[rayon::ThreadPool; 2]> = std::sync::OnceLock::new();
    if let Some(pools) = POOLS.get() {
        return Ok(pools);
    }
    let pool = |idx: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(move |_| format!("finagent-operand-{idx}"))
            .build()
            .context("cannot start a thread for the model")
    };
    let pools = [pool(0)?, pool(1)?];
    Ok(POOLS.get_or_init(|| pools))
}

/// A value question made ready for the model: the facts shown and the prompt built from them.
struct PreparedValue {
    shown: Vec<FactHit>,
    entity: Option<String>,
    fiscal_year: i32,
    prompt: String,
}

/// Retrieves the facts for `request` and builds its prompt (no model involved).
fn prepare_value(index: &FactIndex, request: &ValueRequest) -> Result<PreparedValue> {
    let ValueRequest { company, year, year_basis, metric, quarter, .. } = *request;
    if let Some(quarter) = quarter {
        if let Err(gap) = quarter_end(index, &company.ticker, year, quarter)? {
            bail!("{}", quarter_gap_message(&company.ticker, year, quarter, &gap));
        }
    }
    let fact_request = FactRequest { ticker: company.ticker.clone(), year, year_basis, metric, quarter };
    let facts = retrieve(index, &fact_request)?;
    if facts.is_empty() {
        let basis = match year_basis {
            YearBasis::Fiscal => "fiscal",
            YearBasis::Calendar => "calendar",
        };
        let when = match quarter {
            Some(quarter) => format!("fiscal Q{quarter} {year}"),
            None => format!("{basis} {year}"),
        };
        bail!(
            "no {} fact for {} in {when} in the index (concepts looked for: {})",
            metric.label().to_lowercase(),
            company.ticker,
            metric.concepts().join(", ")
        );
    }
    let shown: Vec<FactHit> = facts.into_iter().take(FACTS_IN_PROMPT).collect();
    let entity = shown[0].entity_name.clone().or_else(|| company.name.clone());
    let entity_text = entity.as_deref().unwrap_or(&company.ticker).to_string();
    let fiscal_year = shown[0].period_fiscal_year.unwrap_or(year);
    // FinLoRA's own one-shot example, so the prompt has the shape the XBRL adapters are tuned on.
    let question = match quarter {
        Some(quarter) => metric_quarter_question(&entity_text, metric, fiscal_year, quarter),
        None => metric_value_question(&entity_text, metric, fiscal_year),
    };
    let prompt = build_prompt(XbrlQuestionKind::Value, &retrieved_lines(&shown), &question);
    Ok(PreparedValue { shown, entity, fiscal_year, prompt })
}

/// The first retrieved fact whose value is a number the model wrote, among the facts for the
/// period the answer is about: that of the best-ranked fact (the fiscal year's end for a balance,
/// the whole fiscal year for a flow, the quarter for a quarter). The prompt also shows other
/// periods (last year's balance, the year's quarter-end balances from its 10-Qs); a model that
/// copies one of those wrote a filed number, but not the one asked for, so it does not count.
///
/// A value filed twice at two precisions (Amazon's 2021 income taxes: 4,791 million in the
/// statements, "4.8 billion" in the notes) answers with the more precise of the two, whichever
/// the model copied.
fn matching_fact<'a>(model_answer: &str, shown: &'a [FactHit]) -> Option<&'a FactHit> {
    let period = &shown.first()?.period;
    let matched = read_numbers(model_answer).iter().find_map(|number| {
        shown
            .iter()
            .filter(|fact| fact.period == *period)
            .find(|fact| fact.number.is_some_and(|value| number.matches(value)))
    })?;
    let more_precise = shown
        .iter()
        .filter(|fact| {
            fact.concept == matched.concept
                && fact.period == matched.period
                && fact.unit == matched.unit
                && fact.dimensions == matched.dimensions
                && precision(fact) > precision(matched)
        })
        .filter(|fact| match (fact.number, matched.number) {
            (Some(precise), Some(rounded)) => round_to(precise, precision(matched)) == rounded,
            _ => false,
        })
        .max_by_key(|fact| precision(fact));
    Some(more_precise.unwrap_or(matched))
}

/// A fact's `decimals` (`INF` exact, absent as the least precise).
fn precision(fact: &FactHit) -> i32 {
    match fact.decimals.as_deref().map(str::trim) {
        Some("INF") => i32::MAX,
        Some(decimals) => decimals.parse().unwrap_or(i32::MIN),
        None => i32::MIN,
    }
}

/// `value` rounded to `decimals` places (negative: to tens, hundreds...), as XBRL rounds.
fn round_to(value: f64, decimals: i32) -> f64 {
    if !(-15..=15).contains(&decimals) {
        return value;
    }
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// The answer to `request` from the model's completion: the value shown only when a number the
/// model wrote equals one of the facts in its prompt for the period asked about.
fn check_value(request: &ValueRequest, prepared: PreparedValue, model_answer: String) -> Answer {
    let ValueRequest { company, year_basis, metric, quarter, .. } = *request;
    let PreparedValue { shown, entity, fiscal_year, .. } = prepared;
    let matched = matching_fact(&model_answer, &shown).cloned();
    let sentence = match &matched {
        Some(fact) => format!(
            "{} {} for fiscal {}{fiscal_year} was {} {} ({}, {}).",
            entity.as_deref().unwrap_or(&company.ticker),
            metric.label().to_lowercase(),
            quarter.map(|q| format!("Q{q} ")).unwrap_or_default(),
            group_thousands(fact.value.as_deref().unwrap_or("")),
            fact.unit.as_deref().unwrap_or(""),
            fact.concept,
            PeriodText(&fact.period),
        ),
        // The model's own text is not repeated: an answer never shows a number no filing holds.
        None => format!(
            "The model's answer matches none of the {} retrieved facts; no answer is given.",
            shown.len()
        ),
    };
    Answer {
        kind: "value",
        question: request.question.to_string(),
        answer: sentence,
        value: matched.as_ref().and_then(|f| f.value.clone()),
        unit: matched.as_ref().and_then(|f| f.unit.clone()),
        concept: matched.as_ref().map(|f| f.concept.clone()),
        period: matched.as_ref().map(|f| PeriodView::from(&f.period)),
        fiscal_year,
        quarter,
        year_basis,
        entity,
        ticker: company.ticker.clone(),
        metric: metric.name().to_string(),
        source: matched.as_ref().map(FactView::from),
        agrees_with_facts: matched.is_some(),
        model_answer,
        retrieved: shown.iter().map(FactView::from).collect(),
    }
}

/// An answer of any kind: one filed value, or a value computed from filed ones.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Response {
    Value(Box<Answer>),
    Computed(Box<crate::compute::Computed>),
}

impl Response {
    /// The sentence for people.
    pub fn sentence(&self) -> &str {
        match self {
            Response::Value(answer) => &answer.answer,
            Response::Computed(computed) => &computed.answer,
        }
    }

    /// The answer's number as a canonical decimal (the filed value, or the computed result).
    pub fn value(&self) -> Option<&str> {
        match self {
            Response::Value(answer) => answer.value.as_deref(),
            Response::Computed(computed) => computed.value.as_deref(),
        }
    }
}

/// One company's part of a comparison: its answer, or why it has none.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    Answered(Response),
    Refused { ticker: String, error: String },
}

/// Answers each resolved question in turn (a comparison's companies). A failure `is_refusal`
/// accepts becomes a `Refused` naming the company and the reason, and the others are still
/// answered; any other failure ends the whole answer.
pub fn respond_each(
    index: &FactIndex,
    resolved: &[ResolvedQuestion],
    model: &mut ModelSource,
    is_refusal: impl Fn(&anyhow::Error) -> bool,
) -> Result<Vec<Outcome>> {
    resolved
        .iter()
        .map(|question| match respond(index, question, model) {
            Ok(response) => Ok(Outcome::Answered(response)),
            Err(error) if is_refusal(&error) => {
                Ok(Outcome::Refused { ticker: question.company.ticker.clone(), error: format!("{error:#}") })
            }
            Err(error) => Err(error),
        })
        .collect()
}

/// Answers a resolved question of any kind.
pub fn respond(index: &FactIndex, resolved: &ResolvedQuestion, model: &mut ModelSource) -> Result<Response> {
    let ResolvedQuestion { question, company, year, asked } = resolved;
    let value = |metric: Metric, year: i32| ValueRequest {
        question: &question.text,
        company,
        year,
        year_basis: question.year_basis,
        metric,
        quarter: question.quarter,
    };
    let derived_response = |derived: DerivedMetric, model: &mut ModelSource| -> Result<Response> {
        let [a, b] = derived.operands();
        let operands = answer_value_pair(index, [&value(a, *year), &value(b, *year)], model)?;
        Ok(Response::Computed(Box::new(crate::compute::derived(question, company, derived, operands))))
    };
    // A metric the company does not file for the year, computed from ones it does, says so.
    let unfiled_note = |metric: Metric, instead: DerivedMetric| {
        let when = match question.quarter {
            Some(quarter) => format!("fiscal Q{quarter} {year}"),
            None => format!("fiscal {year}"),
        };
        let [a, b] = instead.operands();
        format!(
            "{} files no {} for {when} ({}), so it is computed from {} and {}.",
            company.ticker,
            metric.label().to_lowercase(),
            metric.concepts().join(", "),
            a.label().to_lowercase(),
            b.label().to_lowercase()
        )
    };
    match *asked {
        Resolved::Value(metric) => {
            let request = value(metric, *year);
            if let Some(instead) = DerivedMetric::instead_of(metric) {
                if !is_filed(index, &request)? {
                    return Ok(with_note(derived_response(instead, model)?, unfiled_note(metric, instead)));
                }
            }
            Ok(Response::Value(Box::new(answer_value(index, &request, model)?)))
        }
        Resolved::Derived(derived) => {
            for operand in derived.operands() {
                if let Some(instead) = derived.instead_without(operand) {
                    if !is_filed(index, &value(operand, *year))? {
                        return Ok(with_note(
                            derived_response(instead, model)?,
                            unfiled_note(operand, instead),
                        ));
                    }
                }
            }
            derived_response(derived, model)
        }
        Resolved::Change(metric, from, to) => {
            let operands = answer_value_pair(index, [&value(metric, from), &value(metric, to)], model)?;
            Ok(Response::Computed(Box::new(crate::compute::change(question, company, metric, operands))))
        }
    }
}

fn with_note(response: Response, note: String) -> Response {
    match response {
        Response::Computed(computed) => Response::Computed(Box::new(computed.with_note(note))),
        other => other,
    }
}

/// Whether the index holds any fact for `request` (its company, year or quarter, and metric).
fn is_filed(index: &FactIndex, request: &ValueRequest) -> Result<bool> {
    let ValueRequest { company, year, year_basis, metric, quarter, .. } = *request;
    let fact_request = FactRequest { ticker: company.ticker.clone(), year, year_basis, metric, quarter };
    Ok(!retrieve(index, &fact_request)?.is_empty())
}

fn quarter_gap_message(ticker: &str, year: i32, quarter: u8, gap: &QuarterGap) -> String {
    match gap {
        QuarterGap::FourthQuarter => format!(
            "the fourth quarter is not filed on its own (the 10-K covers the whole year): ask about {ticker}'s fiscal {year}"
        ),
        QuarterGap::NotIndexed { indexed } => format!(
            "no 10-Q for {ticker} fiscal Q{quarter} {year} is indexed (indexed quarters: {})",
            if indexed.is_empty() { "none".to_string() } else { indexed.join(", ") }
        ),
    }
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
    fn resolve_names_the_part_that_makes_a_question_unanswerable() {
        let mut companies = CompanyDirectory::default();
        companies.add(Company { ticker: "AAPL".into(), cik: Some(320193), name: Some("Apple Inc.".into()) });
        let latest = |company: &Company| Ok((company.ticker == "AAPL").then_some(2023));
        let error = |text: &str| {
            resolve(text, &companies, &latest).err().map(|error| error.to_string()).unwrap_or_default()
        };
        assert!(error("What was XYZW's revenue in 2022?").contains("no known company"));
        // Neither a metric nor a year: the metric is what is said, with the missing year.
        let colour = error("What is Apple's favourite colour?");
        assert!(
            colour.contains("does not know which reported metric") && colour.contains("no year"),
            "{colour}"
        );
        assert!(error("What was Apple's EBITDA?").contains("does not compute \"ebitda\""));
        assert!(error("What was Apple's revenue?").starts_with("no year in"));
        let resolved = resolve("How much did Apple lose in 2022?", &companies, &latest).expect("resolves");
        assert_eq!((resolved.year, resolved.asked), (2022, Resolved::Value(Metric::NetIncome)));
        // "Latest" without a year is the latest annual report indexed; a year named still wins.
        let resolved = resolve("What was Apple's latest revenue?", &companies, &latest).expect("resolves");
        assert_eq!((resolved.year, resolved.asked), (2023, Resolved::Value(Metric::Revenue)));
        let resolved =
            resolve("Apple's most recent revenue, in 2021", &companies, &latest).expect("resolves");
        assert_eq!(resolved.year, 2021);
        let none = |_: &Company| Ok(None);
        let error = resolve("What was Apple's latest revenue?", &companies, &none).err().expect("no filings");
        assert!(error.to_string().contains("no annual report of AAPL is indexed"), "{error:#}");
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(group_thousands("394328000000"), "394,328,000,000");
        assert_eq!(group_thousands("-2722000000"), "-2,722,000,000");
        assert_eq!(group_thousands("6.11"), "6.11");
        assert_eq!(group_thousands("100"), "100");
    }

    fn hit(value: f64, end: &str, period_fiscal_year: i32) -> FactHit {
        FactHit {
            score: 1.0,
            concept: "us-gaap:StockholdersEquity".into(),
            label: None,
            value: Some(value.to_string()),
            number: Some(value),
            unit: Some("USD".into()),
            decimals: Some("-6".into()),
            period: Period::Instant(end.parse().unwrap()),
            period_fiscal_year: Some(period_fiscal_year),
            context_id: format!("c-{end}"),
            fact_id: None,
            dimensions: Vec::new(),
            ticker: Some("NVDA".into()),
            entity_name: None,
            fiscal_year: Some(2022),
            form: Some("10-K".into()),
            accession: None,
            source: "nvda.htm".into(),
            filing_id: "nvda-2022".into(),
        }
    }

    #[test]
    fn only_a_fact_of_the_period_asked_about_confirms_the_models_number() {
        let shown = [
            hit(26_612_000_000.0, "2022-01-30", 2022),
            hit(16_893_000_000.0, "2021-01-31", 2021),
            hit(18_774_000_000.0, "2021-05-02", 2022),
        ];
        let year_end = matching_fact("26612000000", &shown).unwrap();
        assert_eq!(year_end.context_id, "c-2022-01-30");
        // Last year's balance and a quarter-end balance of the same fiscal year are filed too,
        // but neither answers a question about the end of fiscal 2022.
        assert!(matching_fact("16893000000", &shown).is_none());
        assert!(matching_fact("18,774,000,000", &shown).is_none());
        assert!(matching_fact("12345", &shown).is_none());
        assert!(matching_fact("26612000000", &[]).is_none());
    }

    #[test]
    fn a_value_filed_at_two_precisions_answers_with_the_precise_one() {
        let filed = |value: f64, decimals: &str| FactHit {
            concept: "us-gaap:IncomeTaxExpenseBenefit".into(),
            decimals: Some(decimals.into()),
            period: Period::Duration {
                start: "2021-01-01".parse().unwrap(),
                end: "2021-12-31".parse().unwrap(),
            },
            ..hit(value, "2021-12-31", 2021)
        };
        let shown = [filed(4_791_000_000.0, "-6"), filed(4_800_000_000.0, "-8")];
        // Amazon's 2021 income taxes: the model copied the note's "4.8 billion".
        assert_eq!(matching_fact("4800000000", &shown).unwrap().value.as_deref(), Some("4791000000"));
        assert_eq!(matching_fact("4791000000", &shown).unwrap().value.as_deref(), Some("4791000000"));
        // A rounded value the precise one does not round to is a different fact, kept as matched.
        let inconsistent = [filed(4_791_000_000.0, "-6"), filed(4_900_000_000.0, "-8")];
        assert_eq!(matching_fact("4900000000", &inconsistent).unwrap().value.as_deref(), Some("4900000000"));
        assert_eq!(round_to(4_791_000_000.0, -8), 4_800_000_000.0);
        assert_eq!(round_to(6.125, 2), 6.13);
    }

    #[test]
    fn finlora_shaped_value_question() {
        assert_eq!(
            metric_value_question("Apple Inc.", Metric::Revenue, 2022),
            "What is the value of Apple Inc.'s revenue for the Fiscal Year ending in FY 2022?"
        );
    }
}
