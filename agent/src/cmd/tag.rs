//! `finagent tag`: propose a us-gaap tag for each number in a filing's running text, as JSON
//! lines; with `--score`, against the inline filing's own tags; with `--finer`, on FiNER rows.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use agent::config::Paths;

use super::ask::parse_bits;
use agent::model_fetch::ensure_default_model;
use agent::tag::document::read_mentions;
use agent::tag::mentions::{mention_of, Mention};
use agent::tag::scorer::ModelScorer;
use agent::tag::setup::{default_tag_set, full_taxonomy_tag_set, learn_from_file, load_catalogue};
use agent::tag::{read_finer_rows, Accuracy, Proposal, TaggedMention, Tagger, TaggerConfig};
use datasets::DataDir;
use trainer::model::Llama;
use trainer::quantize::{quantize_base, BaseBits};
use trainer::tokenizer::Tokenizer;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Filing to tag: inline XBRL (.htm), an XBRL instance (.xml, its text blocks), HTML or text.
    #[arg(value_name = "FILE", required_unless_present = "finer")]
    file: Option<PathBuf>,
    /// Write the JSON lines here (atomically) instead of to stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Compare the proposals with the inline filing's own tags (never shown to the model) and
    /// report the accuracy; each line gets the filing's tag as `gold`.
    #[arg(long)]
    score: bool,
    /// Propose from every numeric us-gaap concept of the taxonomy, not FiNER-139's tags.
    #[arg(long)]
    full_taxonomy: bool,
    /// Tag FiNER rows ({text, entity, label} JSON lines) instead of a filing and report accuracy.
    #[arg(long, value_name = "FILE", conflicts_with = "file")]
    finer: Option<PathBuf>,
    /// Tag at most this many mentions (or FiNER rows).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Tagged examples ({text, entity, label} JSON lines) whose words teach the candidate ranking;
    /// never the rows being scored (default: finer/train.jsonl of the data folder, when present).
    #[arg(long, value_name = "FILE")]
    examples: Option<PathBuf>,
    /// Rank from tag names and labels only, without tagged examples.
    #[arg(long, conflicts_with = "examples")]
    no_examples: bool,
    /// FiNER-139 tag list, one a line (default: finer/tag_set.txt of $FINAGENT_DATA or
    /// $FINAGENT_SHARED/data).
    #[arg(long, value_name = "FILE")]
    tags: Option<PathBuf>,
    /// us-gaap concept table (TSV) for labels (default: xbrl/taxonomy/us-gaap_concepts_partial.tsv
    /// beside the data folder, when present; required by --full-taxonomy).
    #[arg(long, value_name = "FILE")]
    taxonomy: Option<PathBuf>,
    /// Candidates from the ranking the model chooses among.
    #[arg(long, default_value_t = TaggerConfig::default().n_candidates)]
    candidates: usize,
    /// Weight of the model's score against the ranking's.
    #[arg(long, default_value_t = TaggerConfig::default().model_weight)]
    model_weight: f64,
    /// Rank without the model (fast; the ranking alone).
    #[arg(long)]
    no_model: bool,
    /// GGUF file or Hugging Face folder (default: <home>/models/SmolLM2-135M-Instruct.Q4_1.gguf,
    /// downloaded on first use).
    #[arg(long, env = "FINAGENT_MODEL", value_name = "PATH")]
    model: Option<PathBuf>,
    /// LoRA adapter (PEFT format, e.g. `<run>/adapter` from `finagent train`).
    #[arg(long, value_name = "DIR")]
    adapter: Option<PathBuf>,
    /// Precision of the base weights: 32, 8 (int8) or 4 (NF4); the adapter's training setting.
    #[arg(long, default_value = "32", value_parser = parse_bits)]
    bits: BaseBits,
}

/// A mention to tag and, when known, its gold tag (us-gaap local name or prefixed concept).
struct Job {
    sentence: String,
    mention: Mention,
    gold: Option<String>,
}

pub fn run(home: Option<&Path>, args: Args) -> Result<()> {
    let data = DataDir::from_env();
    let catalogue = load_catalogue(args.taxonomy.as_deref(), &data)?;
    let mut tags = if args.full_taxonomy {
        let catalogue = catalogue
            .as_ref()
            .context("--full-taxonomy needs the us-gaap concept table (--taxonomy FILE)")?;
        full_taxonomy_tag_set(catalogue)?
    } else {
        default_tag_set(args.tags.as_deref(), &data, catalogue.as_ref())
            .context("no FiNER-139 tag set to propose from (give --tags FILE)")?
    };
    let examples = match (&args.examples, args.no_examples) {
        (_, true) => None,
        (Some(path), false) => Some(path.clone()),
        (None, false) => agent::tag::setup::default_examples_path(&data),
    };
    if let Some(path) = &examples {
        if args.finer.as_deref().is_some_and(|finer| same_file(finer, path)) {
            bail!("--finer {} is the examples file the ranking learns from; pass --no-examples or other --examples", path.display());
        }
        let n_used = learn_from_file(&mut tags, path)?;
        eprintln!("learned from {n_used} tagged examples in {}", path.display());
    }

    let (jobs, source) = match (&args.finer, &args.file) {
        (Some(path), _) => (finer_jobs(path)?, path.clone()),
        (None, Some(path)) => (filing_jobs(path, args.score)?, path.clone()),
        (None, None) => bail!("give a FILE to tag, or --finer FILE"),
    };
    let jobs: Vec<Job> = jobs.into_iter().take(args.limit.unwrap_or(usize::MAX)).collect();
    let with_gold = args.score || args.finer.is_some();

    let language_model = if args.no_model || jobs.is_empty() { None } else { Some(load_model(home, &args)?) };
    let tagger = Tagger {
        tags: &tags,
        model: language_model.as_ref().map(|(model, tokenizer)| ModelScorer::new(model, tokenizer)),
        config: TaggerConfig { n_candidates: args.candidates, model_weight: args.model_weight },
    };

    let mut output = Output::open(args.out.as_deref())?;
    let mut accuracy = Accuracy::default();
    for job in &jobs {
        let proposal: Proposal = tagger.propose(&job.sentence, &job.mention)?;
        let gold = if with_gold { job.gold.as_deref() } else { None };
        if let Some(gold) = gold {
            match gold.strip_prefix("us-gaap:").or(args.finer.as_ref().map(|_| gold)) {
                Some(local) => accuracy.add(&tags, local, &proposal),
                None => accuracy.n_outside_tag_set += 1,
            }
        }
        let line = TaggedMention::new(&job.sentence, &job.mention, &proposal, gold);
        output.write_line(&serde_json::to_string(&line)?)?;
    }
    output.finish()?;

    if jobs.is_empty() {
        eprintln!("no numeric mentions in the running text of {}; nothing to tag", source.display());
    }
    if with_gold {
        eprintln!(
            "accuracy {}/{} = {:.1}% (top-3 {:.1}%) over mentions whose gold tag is in the tag set of {}; \
             {} more had a tag outside it; {} mentions in all",
            accuracy.n_correct,
            accuracy.n_scored,
            100.0 * accuracy.fraction(),
            100.0 * accuracy.top3_fraction(),
            tags.len(),
            accuracy.n_outside_tag_set,
            jobs.len()
        );
    }
    Ok(())
}

fn filing_jobs(path: &Path, score: bool) -> Result<Vec<Job>> {
    let (kind, mentions) = read_mentions(path)?;
    if score && mentions.iter().all(|found| found.gold.is_none()) {
        eprintln!(
            "{} ({}) carries no tags on its running-text numbers; nothing to score against",
            path.display(),
            kind.name()
        );
    }
    Ok(mentions
        .into_iter()
        .map(|found| Job { sentence: found.sentence, mention: found.mention, gold: found.gold })
        .collect())
}

fn finer_jobs(path: &Path) -> Result<Vec<Job>> {
    let rows = read_finer_rows(path)?;
    let mut jobs = Vec::with_capacity(rows.len());
    for (row_idx, row) in rows.into_iter().enumerate() {
        let mention = mention_of(&row.text, &row.entity).with_context(|| {
            format!(
                "{} row {}: entity {:?} is not a token of its text",
                path.display(),
                row_idx + 1,
                row.entity
            )
        })?;
        jobs.push(Job { sentence: row.text, mention, gold: Some(row.label) });
    }
    Ok(jobs)
}

/// The model and tokenizer at `--model`, re-quantized to `--bits`, with `--adapter` attached.
/// Loaded here rather than through `agent::ask::LanguageModel` so that `tag` does not follow
/// the adapter defaults `ask` picks for its own prompts.
fn load_model(home: Option<&Path>, args: &Args) -> Result<(Llama, Tokenizer)> {
    let paths = Paths::resolve(home, None, args.model.as_deref());
    let path = if paths.model.is_dir() { paths.model.clone() } else { ensure_default_model(&paths.model)? };
    let (mut model, tokenizer) =
        trainer::loader::load(&path).with_context(|| format!("cannot load model {}", path.display()))?;
    quantize_base(&mut model, args.bits)?;
    if let Some(dir) = &args.adapter {
        trainer::peft::load_adapter(&mut model, dir)
            .with_context(|| format!("cannot load adapter {} onto {}", dir.display(), path.display()))?;
    }
    Ok((model, tokenizer))
}

/// Stdout, or a temporary file beside `--out` renamed over it only once every line is written,
/// so a failed run never leaves a half-written output.
enum Output {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File { temp: std::io::BufWriter<tempfile::NamedTempFile>, path: PathBuf },
}

impl Output {
    fn open(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else { return Ok(Output::Stdout(std::io::BufWriter::new(std::io::stdout()))) };
        let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let temp = tempfile::NamedTempFile::new_in(dir).with_context(|| {
            format!("cannot create a temporary file in {} for {}", dir.display(), path.display())
        })?;
        Ok(Output::File { temp: std::io::BufWriter::new(temp), path: path.to_path_buf() })
    }

    fn write_line(&mut self, line: &str) -> Result<()> {
        match self {
            Output::Stdout(out) => writeln!(out, "{line}").context("cannot write to stdout"),
            Output::File { temp, path } => {
                writeln!(temp, "{line}").with_context(|| format!("cannot write {}", path.display()))
            }
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            Output::Stdout(mut out) => out.flush().context("cannot write to stdout"),
            Output::File { temp, path } => {
                let temp = temp
                    .into_inner()
                    .map_err(|error| error.into_error())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                temp.persist(&path)
                    .map_err(|error| error.error)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(())
            }
        }
    }
}

/// Whether two paths name the same file (canonical paths, or the paths as given).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
