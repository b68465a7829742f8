//! `finagent ask`: answer a question about a company's filings, with provenance.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};

use agent::acquire::{acquire, source_companies, FilingSource};
use agent::adapter::BUNDLED_BITS;
use agent::ask::{
    latest_fiscal_year, resolve_each, respond, respond_each, AdapterChoice, Answer, LanguageModel, Outcome,
    Response,
};
use agent::companies::{reads_as_comparison, Company, CompanyDirectory};
use agent::compute::Computed;
use agent::config::{Paths, MIRROR_ENV, USER_AGENT_ENV};
use agent::indexing::{discover, index_sources};
use agent::model_fetch::ensure_default_model;
use agent::question::Question;
use trainer::quantize::BaseBits;
use xbrl::FactIndex;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the answer as one JSON object.
    #[arg(long)]
    json: bool,
    /// Index directory (default: <home>/index); filings are fetched and indexed into it as needed.
    #[arg(long, env = "FINAGENT_INDEX", value_name = "DIR")]
    index: Option<PathBuf>,
    /// GGUF file or Hugging Face folder (default: <home>/models/SmolLM2-135M-Instruct.Q4_1.gguf,
    /// downloaded on first use).
    #[arg(long, env = "FINAGENT_MODEL", value_name = "PATH")]
    model: Option<PathBuf>,
    /// LoRA adapter to answer with: `bundled` (finagent's own XBRL adapter, trained over the
    /// 8-bit base; see docs/agent.md), a PEFT adapter directory (e.g. `<run>/adapter` from
    /// `finagent train`), or `none` for the base model alone.
    #[arg(long, default_value = "bundled", value_name = "bundled|DIR|none", value_parser = parse_adapter)]
    adapter: AdapterChoice,
    /// Precision of the base weights: 32 (as stored, dequantized to f32), 8 (int8) or 4 (NF4);
    /// default: 8 with the bundled adapter, else 32. Use the setting the adapter was trained with.
    #[arg(long, value_parser = parse_bits)]
    bits: Option<BaseBits>,
    /// How an 8-bit base multiplies: `dequantized` (f32 activations times the int8 weight) or
    /// `llm-int8` (bitsandbytes' int8 activations with outliers in f32; about twice the prompt
    /// speed with AVX-512 VNNI). The bundled adapter was trained over `dequantized` and answers
    /// less accurately with `llm-int8` (docs/agent.md, "Latency").
    #[arg(long, value_enum, default_value = "dequantized")]
    int8_matmul: super::Int8MatmulArg,
    /// Answer every question of a JSONL file (`{"question": ..., "expected": "394328000000"}`)
    /// with one loaded model, and report accuracy, "not found" answers and latency.
    #[arg(long, value_name = "FILE", conflicts_with = "question")]
    questions: Option<PathBuf>,
    /// With --questions: write one JSON line per question here (default: stdout).
    #[arg(long, value_name = "FILE", requires = "questions")]
    out: Option<PathBuf>,
    /// The question, e.g. "What was AAPL's 2022 revenue?", "What was Apple's gross margin in
    /// 2022?", "How much did NVDA's revenue grow from 2021 to 2022?".
    #[arg(required_unless_present = "questions")]
    question: Option<String>,
}

/// `--bits` of the commands that run the model.
pub(crate) fn parse_bits(text: &str) -> std::result::Result<BaseBits, String> {
    text.parse::<BaseBits>().map_err(|error| error.to_string())
}

/// `--adapter bundled|DIR|none` of the commands that answer questions.
pub(crate) fn parse_adapter(text: &str) -> std::result::Result<AdapterChoice, String> {
    Ok(match text {
        "bundled" => AdapterChoice::Bundled,
        "none" => AdapterChoice::None,
        dir => AdapterChoice::Dir(PathBuf::from(dir)),
    })
}

/// The base precision for `adapter` unless given: the bundled adapter's own, else f32.
pub fn default_bits(adapter: &AdapterChoice, bits: Option<BaseBits>) -> BaseBits {
    bits.unwrap_or(match adapter {
        AdapterChoice::Bundled => BUNDLED_BITS,
        _ => BaseBits::F32,
    })
}

pub fn run(home: Option<&Path>, args: Args) -> Result<()> {
    let paths = Paths::resolve(home, args.index.as_deref(), args.model.as_deref());
    let bits = default_bits(&args.adapter, args.bits);
    let loaded: OnceCell<Arc<LanguageModel>> = OnceCell::new();
    let mut model = || -> Result<Arc<LanguageModel>> {
        if let Some(model) = loaded.get() {
            return Ok(model.clone());
        }
        let path = ensure_default_model(&paths.model)?;
        let model = Arc::new(LanguageModel::load_with(&path, bits, args.int8_matmul.into(), &args.adapter)?);
        let _ = loaded.set(model.clone());
        Ok(model)
    };
    if let Some(file) = &args.questions {
        return crate::cmd::ask_batch::run(
            &paths,
            file,
            args.out.as_deref(),
            &args.adapter,
            (bits, args.int8_matmul.into()),
            &mut model,
        );
    }
    let question = args.question.as_deref().unwrap_or_default();
    let (index, companies) = ensure_company_indexed(&paths, question)?;
    let latest = |company: &Company| latest_fiscal_year(&index, &company.ticker);
    let mut resolved = resolve_each(question, &companies, &latest)?;
    if resolved.len() == 1 {
        let response = respond(&index, &resolved.remove(0), &mut model)?;
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&response)?);
        } else {
            print_response(&response);
        }
        return Ok(());
    }
    // A comparison: each company answered on its own, in the order the question names them.
    // Every failure is shown as that company's: the others are still answered.
    let outcomes = respond_each(&index, &resolved, &mut model, |_| true)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else {
        for (idx, outcome) in outcomes.iter().enumerate() {
            if idx > 0 {
                outln!();
            }
            match outcome {
                Outcome::Answered(response) => print_response(response),
                Outcome::Refused { ticker, error } => outln!("{ticker}: no answer: {error}"),
            }
        }
    }
    let refused: Vec<&str> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Outcome::Refused { ticker, .. } => Some(ticker.as_str()),
            Outcome::Answered(_) => None,
        })
        .collect();
    if !refused.is_empty() {
        bail!(
            "no answer for {} of the {} companies named ({})",
            refused.len(),
            outcomes.len(),
            refused.join(", ")
        );
    }
    Ok(())
}

fn print_response(response: &Response) {
    match response {
        Response::Value(answer) => print_answer(answer),
        Response::Computed(computed) => print_computed(computed),
    }
}

/// Opens the index, and when the question names a company the index lacks, fetches that
/// company's filings (EDGAR or the mirror) and indexes them first; a comparison ("Apple and
/// NVIDIA") gets every company it names indexed.
pub fn ensure_company_indexed(paths: &Paths, question: &str) -> Result<(FactIndex, CompanyDirectory)> {
    let source = FilingSource::from_environment(paths);
    let indexed = if paths.index.join("meta.json").is_file() {
        let index = FactIndex::open(&paths.index)?;
        let companies = indexed_companies(&index)?;
        // A comparison may name a company the index lacks, which only the source's list knows.
        if Question::parse(question, &companies).company.is_some()
            && (source.is_none() || !reads_as_comparison(question))
        {
            return Ok((index, companies));
        }
        Some(companies)
    } else {
        None
    };
    let source = source.ok_or_else(|| {
        anyhow!(
            "the question names no indexed company, and there is nowhere to get filings from: set {USER_AGENT_ENV} \
             to use EDGAR, or {MIRROR_ENV} to a local mirror, or run `finagent index` first"
        )
    })?;
    let available = source_companies(&source, paths)?;
    let named = available.resolve_all(question);
    if named.is_empty() {
        bail!("no company named in {question:?} is indexed or available from {}", describe(&source));
    }
    let years = Question::parse(question, &available).years;
    let mut index = FactIndex::create_or_open(&paths.index)?;
    for company in &named {
        if indexed.as_ref().is_some_and(|companies| companies.by_ticker(&company.ticker).is_some()) {
            continue;
        }
        let to_index = acquire(&source, paths, company, &years)?;
        eprintln!("indexing {} filings for {} ...", describe(&source), company.ticker);
        index_sources(&mut index, &discover(&to_index)?, None, &mut |_, _| {})?;
    }
    let companies = indexed_companies(&index)?;
    Ok((index, companies))
}

fn describe(source: &FilingSource) -> String {
    match source {
        FilingSource::Edgar { .. } => "EDGAR".to_string(),
        FilingSource::Mirror(dir) => format!("the mirror {}", dir.display()),
    }
}

/// Companies with indexed filings, by ticker, CIK and registrant name.
pub fn indexed_companies(index: &FactIndex) -> Result<CompanyDirectory> {
    let mut companies = CompanyDirectory::default();
    for filing in index.filings()? {
        if let Some(ticker) = filing.ticker {
            let cik = filing.cik.as_deref().and_then(|c| c.trim().parse().ok());
            companies.add(Company { ticker, cik, name: filing.entity_name });
        }
    }
    Ok(companies)
}

fn print_answer(answer: &Answer) {
    outln!("{}", answer.answer);
    if let Some(fact) = &answer.source {
        match &fact.label {
            Some(label) => outln!("  concept   {} ({label})", fact.concept),
            None => outln!("  concept   {}", fact.concept),
        }
        if let Some(period) = &answer.period {
            let text = match (&period.start, &period.end) {
                (Some(start), Some(end)) => format!("{start} to {end}"),
                (None, Some(end)) => format!("at {end}"),
                _ => "forever".to_string(),
            };
            outln!("  period    {text} (fiscal year {})", answer.fiscal_year);
        }
        outln!(
            "  value     {} {} as filed{}",
            fact.value.as_deref().unwrap_or("nil"),
            fact.unit.as_deref().unwrap_or(""),
            fact.decimals.as_deref().map(|d| format!(" (decimals {d})")).unwrap_or_default()
        );
        outln!(
            "  filing    {} {}{}",
            answer.entity.as_deref().unwrap_or(&answer.ticker),
            fact.form.as_deref().unwrap_or("filing"),
            fact.accession.as_deref().map(|a| format!(", accession {a}")).unwrap_or_default()
        );
        outln!("  source    {}, context {}", fact.source, fact.context_id);
        outln!("  model     {:?} agrees with the filing", answer.model_answer);
    } else {
        outln!("  retrieved facts (not confirmed by the model):");
        for fact in &answer.retrieved {
            let period = fact.period.end.clone().unwrap_or_default();
            outln!(
                "    {} = {} {} (period ending {period}, {})",
                fact.concept,
                fact.value.as_deref().unwrap_or("nil"),
                fact.unit.as_deref().unwrap_or(""),
                fact.source
            );
        }
    }
}

fn print_computed(computed: &Computed) {
    outln!("{}", computed.answer);
    outln!("  formula   {}", computed.formula);
    if let Some(substituted) = &computed.substituted {
        outln!("  values    {substituted}");
    }
    for operand in &computed.operands {
        outln!();
        print_answer(operand);
    }
}
