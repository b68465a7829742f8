//! `finagent datasets`: list the tasks, show or count a task's examples (per task, label, filing
//! and prompt length), generate XBRL and FiNER questions from filings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};

use agent::ask::FACTS_IN_PROMPT;
use agent::config::Paths;
use datasets::generate::{
    generate, read_formulas, ContextMode, FinerTagSet, GenerateConfig, GENERATED_TASKS,
};
use datasets::{load_context_file, DataDir, Example, LoadConfig, LoadOptions, Split, Task};
use taxonomy::{Catalogue, FinerTags};
use trainer::tokenizer::Tokenizer;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The data folder tasks are read from (default: $FINAGENT_DATA, else $FINAGENT_SHARED/data).
    #[arg(long, global = true, value_name = "DIR")]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: DatasetsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DatasetsCommand {
    /// Every task with its kind, labels and evaluation budget.
    List,
    /// Print a task's examples.
    Show(ShowArgs),
    /// Rows per task, label and filing, and prompt lengths.
    Stats(StatsArgs),
    /// Generate XBRL and FiNER questions from the filings under a folder.
    Generate(GenerateArgs),
}

#[derive(Debug, clap::Args)]
struct ShowArgs {
    task: Task,
    #[arg(long, value_enum, default_value = "test")]
    split: SplitArg,
    /// How many examples to print.
    #[arg(long, default_value_t = 3)]
    limit: usize,
    /// Count and report broken lines instead of failing on the first.
    #[arg(long)]
    skip_invalid: bool,
}

#[derive(Debug, clap::Args)]
struct StatsArgs {
    /// Tasks to count (default: all).
    #[arg(long, value_delimiter = ',')]
    tasks: Vec<Task>,
    #[arg(long, value_enum, default_value = "test")]
    split: SplitArg,
    #[arg(long)]
    skip_invalid: bool,
    /// Model (GGUF) or tokenizer.json whose tokenizer measures prompt lengths (default: the default
    /// model, when it has been fetched).
    #[arg(long, env = "FINAGENT_MODEL", value_name = "PATH")]
    tokenizer: Option<PathBuf>,
    /// Count the output of `datasets generate` (`<DIR>/<task>/<split>.jsonl`) instead of the data folder.
    #[arg(long, value_name = "DIR")]
    generated: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct GenerateArgs {
    /// Folder searched recursively for filings (instance or inline XBRL documents).
    #[arg(long, value_name = "DIR")]
    filings: PathBuf,
    /// Output folder; `<task>/<split>.jsonl` are written there.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Tasks to generate (default: all of xbrl_tags, xbrl_values, xbrl_formula_construction,
    /// xbrl_formula_calculation, finer_tagging, finer_batched).
    #[arg(long, value_delimiter = ',')]
    tasks: Vec<Task>,
    /// XBRL-Agent's formula list (JSONL), needed for the formula tasks.
    #[arg(long, value_name = "FILE")]
    formulas: Option<PathBuf>,
    /// Context of the xbrl prompts: every us-gaap fact of the question's context (FinLoRA's), or
    /// the top-k facts `finagent ask` retrieves.
    #[arg(long, value_enum, default_value = "full")]
    context: ContextArg,
    /// Facts shown in retrieval mode (default: as many as `finagent ask` shows).
    #[arg(long, default_value_t = FACTS_IN_PROMPT)]
    top_k: usize,
    /// Gold tags of FiNER questions: FiNER-139's tags, or any us-gaap concept.
    #[arg(long, value_enum, default_value = "finer139")]
    finer_set: FinerSetArg,
    /// FiNER-139 tag list, beside its BIO label table (default: finer139_tags.txt next to the
    /// filings folder).
    #[arg(long, value_name = "FILE")]
    finer_tags: Option<PathBuf>,
    /// us-gaap concept table (TSV) or label linkbase, for labels of filings without their own.
    #[arg(long, value_name = "FILE")]
    taxonomy: Option<PathBuf>,
    /// Seed of the shuffle that assigns filings to splits.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ContextArg {
    Full,
    Retrieval,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FinerSetArg {
    Finer139,
    Full,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SplitArg {
    Train,
    Validation,
    Test,
    TestWithContext,
}

impl From<SplitArg> for Split {
    fn from(split: SplitArg) -> Split {
        match split {
            SplitArg::Train => Split::Train,
            SplitArg::Validation => Split::Validation,
            SplitArg::Test => Split::Test,
            SplitArg::TestWithContext => Split::TestWithContext,
        }
    }
}

pub fn run(home: Option<&Path>, args: Args) -> Result<()> {
    let data = args.data.map(DataDir::new).unwrap_or_else(DataDir::from_env);
    match args.command {
        DatasetsCommand::List => list(),
        DatasetsCommand::Show(show_args) => show(&data, show_args),
        DatasetsCommand::Stats(stats_args) => stats(home, &data, stats_args),
        DatasetsCommand::Generate(generate_args) => run_generate(generate_args),
    }
}

fn list() -> Result<()> {
    let config = LoadConfig::default();
    outln!("{:<26} {:<12} {:>10}  labels", "task", "kind", "max_tokens");
    for task in Task::ALL {
        let labels =
            task.labels(config.nwgi).map_or_else(|| "free text".to_string(), |labels| labels.join("/"));
        let kind = format!("{:?}", task.kind()).to_lowercase();
        outln!("{:<26} {:<12} {:>10}  {labels}", task.name(), kind, task.max_new_tokens());
    }
    Ok(())
}

fn load(data: &DataDir, task: Task, split: Split, skip_invalid: bool) -> Result<Vec<Example>> {
    let config = LoadConfig { options: LoadOptions { skip_invalid }, ..LoadConfig::default() };
    let loaded = data
        .load(task, split, &config)
        .with_context(|| format!("cannot load {task} {} from {}", split.name(), data.root().display()))?;
    if loaded.report.n_skipped() > 0 {
        eprintln!("{task} {}: skipped {} invalid lines", split.name(), loaded.report.n_skipped());
        for skipped in loaded.report.skipped.iter().take(5) {
            eprintln!("  {} line {}: {}", skipped.path.display(), skipped.line, skipped.problem);
        }
    }
    Ok(loaded.examples)
}

fn show(data: &DataDir, args: ShowArgs) -> Result<()> {
    let examples = load(data, args.task, args.split.into(), args.skip_invalid)?;
    for example in examples.iter().take(args.limit) {
        outln!("--- {} (line {})", example.id, example.line);
        outln!("{}", example.prompt);
        outln!(">>> {}", example.target);
    }
    outln!("({} of {} examples shown)", args.limit.min(examples.len()), examples.len());
    Ok(())
}

/// The tokenizer of a GGUF model or a tokenizer.json file.
fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    let tokenizer = if path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("json")) {
        Tokenizer::from_file(path, None, &[])?
    } else {
        trainer::loader::load_gguf_tokenizer(path)?
    };
    Ok(tokenizer)
}

/// `p50 / p90 / p99 / max` of prompt lengths in tokens.
fn token_percentiles(tokenizer: &Tokenizer, examples: &[Example]) -> Result<String> {
    let mut lengths = Vec::with_capacity(examples.len());
    for example in examples {
        lengths.push(tokenizer.encode(&example.prompt, false)?.len());
    }
    lengths.sort_unstable();
    let at = |q: f64| lengths[((lengths.len() - 1) as f64 * q).round() as usize];
    Ok(format!("prompt tokens p50 {} / p90 {} / p99 {} / max {}", at(0.5), at(0.9), at(0.99), at(1.0)))
}

fn stats(home: Option<&Path>, data: &DataDir, args: StatsArgs) -> Result<()> {
    let model = Paths::resolve(home, None, args.tokenizer.as_deref()).model;
    let tokenizer = if args.tokenizer.is_some() || model.is_file() {
        Some(
            load_tokenizer(&model)
                .with_context(|| format!("cannot load a tokenizer from {}", model.display()))?,
        )
    } else {
        eprintln!("no tokenizer at {}: prompt lengths in tokens are not reported", model.display());
        None
    };
    let split: Split = args.split.into();
    let tasks = if args.tasks.is_empty() { Task::ALL.to_vec() } else { args.tasks };
    for task in tasks {
        let examples = match &args.generated {
            Some(dir) => {
                let path = dir.join(task.name()).join(format!("{}.jsonl", split.name()));
                if !path.is_file() {
                    outln!("{task}: no {} split in {}", split.name(), dir.display());
                    continue;
                }
                let config = LoadConfig {
                    options: LoadOptions { skip_invalid: args.skip_invalid },
                    ..LoadConfig::default()
                };
                load_context_file(&path, task, &config)
                    .with_context(|| format!("cannot load {}", path.display()))?
                    .examples
            }
            None if data.file(task, split).is_err() => {
                outln!("{task}: no {} split", split.name());
                continue;
            }
            None => load(data, task, split, args.skip_invalid)?,
        };
        let mut by_label: BTreeMap<&str, usize> = BTreeMap::new();
        for example in &examples {
            *by_label.entry(example.label.as_deref().unwrap_or("(free text)")).or_default() += 1;
        }
        let distribution: Vec<String> = by_label.iter().map(|(label, n)| format!("{label}: {n}")).collect();
        outln!("{task} {}: {} rows; {}", split.name(), examples.len(), distribution.join(", "));
        let by_filing = rows_per_filing(&examples);
        if !by_filing.is_empty() {
            let counts: Vec<String> =
                by_filing.iter().map(|((company, year), n)| format!("{company} {year}: {n}")).collect();
            outln!("  rows per filing ({}): {}", by_filing.len(), counts.join(", "));
        }
        if let (Some(tokenizer), false) = (&tokenizer, examples.is_empty()) {
            outln!("  {}", token_percentiles(tokenizer, &examples)?);
        }
    }
    Ok(())
}

/// Rows per filing, `(company, fiscal year)`, for examples that name their filing: generated rows
/// (`ticker`, `fiscal_year`), xbrl_extraction rows (`company`, `year`) or FinLoRA rows (`doc_path`
/// `aapl-20230930/...`, company and period-end year).
fn rows_per_filing(examples: &[Example]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for example in examples {
        let field = |name: &str| example.extra.get(name).cloned();
        let filing = match (
            field("ticker").or_else(|| field("company")),
            field("fiscal_year").or_else(|| field("year")),
        ) {
            (Some(company), Some(year)) => Some((company, year)),
            _ => field("doc_path").and_then(|doc_path| {
                let folder = doc_path.split('/').next()?;
                let (company, date) = folder.rsplit_once('-')?;
                Some((company.to_uppercase(), date.get(..4)?.to_string()))
            }),
        };
        if let Some(filing) = filing {
            *counts.entry(filing).or_default() += 1;
        }
    }
    counts
}

fn run_generate(args: GenerateArgs) -> Result<()> {
    let started = Instant::now();
    let tasks = if args.tasks.is_empty() { GENERATED_TASKS.to_vec() } else { args.tasks };
    let formula_task = tasks
        .iter()
        .find(|task| matches!(task, Task::XbrlFormulaCalculation | Task::XbrlFormulaConstruction));
    let formulas = match (&args.formulas, formula_task) {
        (Some(path), _) => read_formulas(path)?,
        (None, Some(task)) => anyhow::bail!("task {task} needs --formulas FILE"),
        (None, None) => Vec::new(),
    };
    let wants_finer = tasks.iter().any(|task| matches!(task, Task::FinerTagging | Task::FinerBatched));
    let finer = match (args.finer_set, wants_finer) {
        (FinerSetArg::Full, _) | (FinerSetArg::Finer139, false) => FinerTagSet::UsGaap,
        (FinerSetArg::Finer139, true) => {
            let tags_path = args
                .finer_tags
                .clone()
                .unwrap_or_else(|| args.filings.join("..").join(taxonomy::finer::TAGS_FILE));
            let dir = tags_path.parent().unwrap_or(Path::new("."));
            let tags = FinerTags::load(&tags_path, &dir.join(taxonomy::finer::BIO_LABELS_FILE))
                .with_context(|| {
                    format!("cannot load the FiNER-139 tags {} (set --finer-tags FILE)", tags_path.display())
                })?;
            FinerTagSet::Finer139(tags.iter().map(str::to_string).collect())
        }
    };
    let context = match args.context {
        ContextArg::Full => ContextMode::Full,
        ContextArg::Retrieval if args.top_k == 0 => anyhow::bail!("--top-k must be at least 1"),
        ContextArg::Retrieval => ContextMode::Retrieval { top_k: args.top_k },
    };
    let catalogue = match &args.taxonomy {
        Some(path) => {
            Some(Catalogue::load(path).with_context(|| format!("cannot load taxonomy {}", path.display()))?)
        }
        None => None,
    };
    let config = GenerateConfig { tasks, seed: args.seed, context, finer, ..GenerateConfig::default() };
    let generated = generate(&args.filings, &formulas, catalogue.as_ref(), &config)
        .with_context(|| format!("cannot generate from {}", args.filings.display()))?;
    let paths = generated.write(&args.out)?;
    for skipped in &generated.skipped_filings {
        outln!("skipped {}: {}", skipped.path.display(), skipped.reason);
    }
    outln!("rows per task:");
    for (task, n_rows) in generated.rows_per_task() {
        outln!("  {:<26} {n_rows}", task.name());
    }
    outln!("rows per filing:");
    for (doc_path, (split, n_rows)) in generated.rows_per_filing() {
        outln!("  {doc_path:<45} {:<10} {n_rows}", split.name());
    }
    outln!(
        "wrote {} files to {} ({} prompts over the length limit dropped) in {:.2} s",
        paths.len(),
        args.out.display(),
        generated.n_dropped_long,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
