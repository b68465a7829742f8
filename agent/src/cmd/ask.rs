//! `finagent ask`: answer a question about a company's filings, with provenance.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Result};

use agent::acquire::{acquire, source_companies, FilingSource};
use agent::adapter::BUNDLED_BITS;
use agent::ask::{latest_fiscal_year, resolve, respond, AdapterChoice, Answer, LanguageModel, Response};
use agent::companies::{Company, CompanyDirectory};
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
    let resolved = resolve(question, &companies, &|company| latest_fiscal_year(&index, &company.ticker))?;
    let response = respond(&index, &resolved, &mut model)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&response)?);
    } else {
        match &response {
            Response::Value(answer) => print_answer(answer),
            Response::Computed(computed) => print_computed(computed),
        }
    }
    Ok(())
}

/// Opens the index, and when the question names a company the index lacks, fetches that
/// company's filings (EDGAR or the mirror) and indexes them first.
pub fn ensure_company_indexed(paths: &Paths, question: &str) -> Result<(FactIndex, CompanyDirectory)> {
    if paths.index.join("meta.json").is_file() {
        let index = FactIndex::open(&paths.index)?;
        let companies = indexed_companies(&index)?;
        if Question::parse(question, &companies).company.is_some() {
            return Ok((index, companies));
        }
    }
    let source = FilingSource::from_environment(paths).ok_or_else(|| {
        anyhow!(
            "the question names no indexed company, and there is nowhere to get filings from: set {USER_AGENT_ENV} \
             to use EDGAR, or {MIRROR_ENV} to a local mirror, or run `finagent index` first"
        )
    })?;
    let available = source_companies(&source, paths)?;
    let parsed = Question::parse(question, &available);
    let company: Company = parsed.company.ok_or_else(|| {
        anyhow!("no company named in {question:?} is indexed or available from {}", describe(&source))
    })?;
    let to_index = acquire(&source, paths, &company, &parsed.years)?;
    eprintln!("indexing {} filings for {} ...", describe(&source), company.ticker);
    let mut index = FactIndex::create_or_open(&paths.index)?;
    index_sources(&mut index, &discover(&to_index)?, None, &mut |_, _| {})?;
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
