//! `finagent tag`: propose a us-gaap tag for each number in a filing's running text, as JSON
//! lines; with `--score`, against the inline filing's own tags; with `--finer`, on FiNER rows.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use agent::config::Paths;

use super::ask::parse_bits;
use agent::model_fetch::ensure_default_model;
use agent::tag::calibration::Calibration;
use agent::tag::candidates::{TagSet, TaggedExample};
use agent::tag::document::read_mentions;
use agent::tag::mentions::{mention_of, Mention};
use agent::tag::scorer::ModelScorer;
use agent::tag::setup::{default_tag_set, full_taxonomy_tag_set, inline_filings, load_catalogue, Examples};
use agent::tag::taggable::{Taggability, TaggedCounts};
use agent::tag::{read_finer_rows, Accuracy, Proposal, TaggedMention, Tagger, TaggerConfig};
use datasets::DataDir;
use trainer::model::Llama;
use trainer::quantize::{quantize_for_inference, BaseBits, Int8Matmul};
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
    /// With --finer: K-fold cross-validation within the rows. Rows are split into K folds by
    /// sentence, and each row is proposed by a ranking learned from the other folds only.
    #[arg(long, value_name = "K", requires = "finer", conflicts_with_all = ["examples", "no_examples"],
          value_parser = clap::value_parser!(u32).range(2..))]
    folds: Option<u32>,
    /// With --finer: also write a training row `{context, target}` for each row whose gold tag is
    /// among the --candidates. The context is the prompt the model weighs the candidates with,
    /// and the target is the gold tag. Written atomically; the rows train a tag adapter.
    #[arg(long, value_name = "FILE", requires = "finer")]
    rerank_rows: Option<PathBuf>,
    /// Tagged examples ({text, entity, label} JSON lines) whose words teach the candidate ranking;
    /// never the rows being scored (default: finer/train.jsonl of the data folder, when present).
    #[arg(long, value_name = "FILE")]
    examples: Option<PathBuf>,
    /// Rank from tag names and labels only, without tagged examples.
    #[arg(long, conflicts_with = "examples")]
    no_examples: bool,
    /// An inline XBRL filing, or a folder of them, whose own us-gaap tags also teach the ranking
    /// on top of the examples: a company's earlier 10-Ks teach it the company's phrasing (AAPL
    /// FY2023 from FY2019-2022: 38/38, docs/tag.md). Repeatable; the FILE being tagged is left out.
    #[arg(long, value_name = "FILING", action = clap::ArgAction::Append)]
    learn_from: Vec<PathBuf>,
    /// FiNER-139 tag list, one a line (default: finer/tag_set.txt of $FINAGENT_DATA or
    /// $FINAGENT_SHARED/data).
    #[arg(long, value_name = "FILE")]
    tags: Option<PathBuf>,
    /// us-gaap concept table (TSV) for labels (default: xbrl/taxonomy/us-gaap_concepts_partial.tsv
    /// beside the data folder, when present; required by --full-taxonomy).
    #[arg(long, value_name = "FILE")]
    taxonomy: Option<PathBuf>,
    /// Candidates from the ranking the model chooses among (with --rescore), and the ones a
    /// --rerank-rows prompt lists.
    #[arg(long, default_value_t = TaggerConfig::default().n_candidates)]
    candidates: usize,
    /// Let the model re-weigh the ranking's first --candidates tags, each scored as the
    /// continuation of FinLoRA's FiNER prompt. Off by default: on FiNER test neither the base
    /// model nor a FiNER-finetuned adapter beat the ranking alone, and it costs about 1.5 s a
    /// mention on 2 cores (docs/tag.md).
    #[arg(long)]
    rescore: bool,
    /// Divides the shortlist's scores before the softmax that gives each confidence (never
    /// changes the proposed tag). The default fits the ranking's cross-validated proposals on
    /// FiNER train; with --score or --finer the run prints the one that fits its own rows.
    #[arg(long, default_value_t = TaggerConfig::default().temperature, value_parser = parse_temperature)]
    temperature: f64,
    /// With --rescore: weight of the model's score against the ranking's.
    #[arg(long, default_value_t = TaggerConfig::default().model_weight, requires = "rescore")]
    model_weight: f64,
    /// GGUF file or Hugging Face folder (default: <home>/models/SmolLM2-135M-Instruct.Q4_1.gguf,
    /// downloaded on first use).
    #[arg(long, env = "FINAGENT_MODEL", value_name = "PATH")]
    model: Option<PathBuf>,
    /// With --rescore: a LoRA adapter (PEFT format, e.g. `<run>/adapter` from `finagent train`).
    #[arg(long, value_name = "DIR", requires = "rescore")]
    adapter: Option<PathBuf>,
    /// With --rescore: precision of the base weights, 32, 8 (int8) or 4 (NF4); the adapter's
    /// training setting.
    #[arg(long, default_value = "32", value_parser = parse_bits, requires = "rescore")]
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
    let (jobs, source) = match (&args.finer, &args.file) {
        (Some(path), _) => (finer_jobs(path)?, path.clone()),
        (None, Some(path)) => (filing_jobs(path, args.score)?, path.clone()),
        (None, None) => bail!("give a FILE to tag, or --finer FILE"),
    };
    // One tag set for every job, or under --folds one per fold, each learned from the others
    // (and from the --learn-from filings, which are never the rows being proposed for).
    let (tag_sets, fold_of, taggability) = match args.folds {
        Some(k) => {
            let taggability = learn_examples(&mut tags, &args, None)?;
            let (sets, fold_of) = fold_tag_sets(&tags, &jobs, k as usize);
            (sets, fold_of, taggability)
        }
        None => {
            let taggability = learn_examples(&mut tags, &args, Some(&data))?;
            let n_jobs = jobs.len();
            (vec![tags], vec![0; n_jobs], taggability)
        }
    };
    let jobs: Vec<Job> = jobs.into_iter().take(args.limit.unwrap_or(usize::MAX)).collect();
    let with_gold = args.score || args.finer.is_some();

    let language_model = if args.rescore && !jobs.is_empty() { Some(load_model(home, &args)?) } else { None };
    let config = TaggerConfig {
        n_candidates: args.candidates,
        model_weight: args.model_weight,
        temperature: args.temperature,
    };
    let taggers: Vec<Tagger> = tag_sets
        .iter()
        .map(|tags| Tagger {
            tags,
            model: language_model.as_ref().map(|(model, tokenizer)| ModelScorer::new(model, tokenizer)),
            config,
        })
        .collect();

    let mut output = Output::open(args.out.as_deref())?;
    let mut rerank_rows = args.rerank_rows.as_deref().map(|path| Output::open(Some(path))).transpose()?;
    let (mut accuracy, mut calibration, mut n_rerank_rows) = (Accuracy::default(), Calibration::default(), 0);
    let mut tagged_counts = TaggedCounts::default();
    for (job, &fold) in jobs.iter().zip(&fold_of) {
        let tagger = &taggers[fold];
        let proposal: Proposal = tagger.propose(&job.sentence, &job.mention)?;
        let gold = if with_gold { job.gold.as_deref() } else { None };
        if let Some(gold) = gold {
            match gold.strip_prefix("us-gaap:").or(args.finer.as_ref().map(|_| gold)) {
                Some(local) => {
                    accuracy.add(tagger.tags, local, &proposal);
                    if tagger.tags.contains(local) {
                        calibration.add(&proposal.scores, proposal.best.tag == local);
                    }
                }
                None => accuracy.n_outside_tag_set += 1,
            }
        }
        if let (Some(rows), Some(gold)) = (rerank_rows.as_mut(), gold) {
            let (names, _) = tagger.shortlist(&job.sentence, &job.mention);
            if names.len() > 1 && names.iter().any(|name| name == gold) {
                let prompt = Tagger::prompt(&names, &job.sentence, &job.mention);
                rows.write_line(&serde_json::json!({ "context": prompt, "target": gold }).to_string())?;
                n_rerank_rows += 1;
            }
        }
        let mut line = TaggedMention::new(&job.sentence, &job.mention, &proposal, gold);
        line.taggable = taggability.as_ref().map(|model| model.probability(&job.sentence, &job.mention));
        if let (Some(probability), true) = (line.taggable, args.score) {
            tagged_counts.add(probability, job.gold.is_some());
        }
        output.write_line(&serde_json::to_string(&line)?)?;
    }
    if let (Some(rows), Some(path)) = (rerank_rows, &args.rerank_rows) {
        rows.finish()?;
        eprintln!(
            "wrote {n_rerank_rows} training rows to {} (rows whose gold tag is among the {} candidates)",
            path.display(),
            args.candidates
        );
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
            taggers[0].tags.len(),
            accuracy.n_outside_tag_set,
            jobs.len()
        );
        if tagged_counts.total() > 0 {
            eprintln!(
                "taggable >= 0.5 against the filing's tagged numbers: accuracy {:.1}%, precision {:.1}%, recall {:.1}% \
                 over {} numbers, {} of them tagged",
                100.0 * tagged_counts.accuracy(),
                100.0 * tagged_counts.precision(),
                100.0 * tagged_counts.recall(),
                tagged_counts.total(),
                tagged_counts.true_positive + tagged_counts.false_negative
            );
        }
        if let Some(best) = calibration.best_temperature() {
            eprintln!(
                "confidence: expected calibration error {:.3} at temperature {} (Brier {:.4}); \
                 temperature {best} fits these {} mentions best ({:.3}, Brier {:.4})",
                calibration.expected_error(args.temperature),
                args.temperature,
                calibration.brier(args.temperature),
                calibration.len(),
                calibration.expected_error(best),
                calibration.brier(best)
            );
        }
    }
    Ok(())
}

fn parse_temperature(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!("{text:?} is not a temperature above 0")),
    }
}

/// Teaches `tags` from `--examples` (with `data`, default: FiNER's train split of the data
/// folder) unless `--no-examples`, and from each `--learn-from` filing, in one training. The rows
/// or the filing being tagged are refused as examples.
fn learn_examples(tags: &mut TagSet, args: &Args, data: Option<&DataDir>) -> Result<Option<Taggability>> {
    let examples_file = match (&args.examples, args.no_examples, data) {
        (_, true, _) | (None, false, None) => None,
        (Some(path), false, _) => Some(path.clone()),
        (None, false, Some(data)) => agent::tag::setup::default_examples_path(data),
    };
    if let Some(path) = &examples_file {
        if args.finer.as_deref().is_some_and(|finer| same_file(finer, path)) {
            bail!("--finer {} is the examples file the ranking learns from; pass --no-examples, other --examples or --folds K", path.display());
        }
    }
    // A filing named outright must not be the one tagged; one found in a folder is skipped.
    if let Some(path) = args.learn_from.iter().find(|path| is_tagged_file(args, path)) {
        bail!("--learn-from {} is the filing being tagged; learn from other filings", path.display());
    }
    let mut filings = inline_filings(&args.learn_from)?;
    filings.retain(|path| {
        let tagged = is_tagged_file(args, path);
        if tagged {
            eprintln!("not learning from {}: it is the filing being tagged", path.display());
        }
        !tagged
    });
    let examples = Examples::read(examples_file.as_deref(), &filings)?;
    let used = examples.teach(tags);
    if !examples.is_empty() {
        eprintln!("learned from {}", examples.describe(&used));
    }
    Ok(examples.taggability())
}

fn is_tagged_file(args: &Args, path: &Path) -> bool {
    args.file.as_deref().is_some_and(|file| same_file(file, path))
}

/// `k` copies of `tags`, copy `f` taught by the jobs outside fold `f`, and each job's fold. A
/// job's fold is a hash of its sentence, so the mentions of one sentence share a fold and no
/// ranking has seen the sentence it proposes for.
fn fold_tag_sets(tags: &TagSet, jobs: &[Job], k: usize) -> (Vec<TagSet>, Vec<usize>) {
    let fold_of: Vec<usize> =
        jobs.iter().map(|job| (fnv1a(job.sentence.as_bytes()) % k as u64) as usize).collect();
    let sets = (0..k)
        .map(|fold| {
            let examples: Vec<TaggedExample> = jobs
                .iter()
                .zip(&fold_of)
                .filter(|&(_, &job_fold)| job_fold != fold)
                .filter_map(|(job, _)| {
                    let tag = job.gold.clone()?;
                    Some(TaggedExample { sentence: job.sentence.clone(), mention: job.mention.clone(), tag })
                })
                .collect();
            let mut set = tags.clone();
            let n_used = set.learn(&examples);
            let n_held_out = fold_of.iter().filter(|&&job_fold| job_fold == fold).count();
            eprintln!("fold {}/{k}: learned from {n_used} rows, proposes for {n_held_out}", fold + 1);
            set
        })
        .collect();
    (sets, fold_of)
}

/// 64-bit FNV-1a: a fixed hash, so folds are the same on every run and machine.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
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
    quantize_for_inference(&mut model, args.bits, Int8Matmul::Dequantized)?;
    if let Some(dir) = &args.adapter {
        trainer::peft::load_adapter(&mut model, dir)
            .with_context(|| format!("cannot load adapter {} onto {}", dir.display(), path.display()))?;
    }
    model.freeze();
    Ok((model, tokenizer))
}

/// Stdout, or a temporary file beside `--out` renamed over it only once every line is written,
/// so a failed run never leaves a half-written output. An existing `--out` that is not a regular
/// file (`/dev/null`, a pipe) is written in place: renaming over it would replace the device.
enum Output {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File { temp: std::io::BufWriter<tempfile::NamedTempFile>, path: PathBuf },
    Special { out: std::io::BufWriter<std::fs::File>, path: PathBuf },
}

impl Output {
    fn open(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else { return Ok(Output::Stdout(std::io::BufWriter::new(std::io::stdout()))) };
        if trainer::train::metrics::writes_in_place(path) {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("cannot open {} for writing", path.display()))?;
            return Ok(Output::Special { out: std::io::BufWriter::new(file), path: path.to_path_buf() });
        }
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
            Output::Special { out, path } => {
                writeln!(out, "{line}").with_context(|| format!("cannot write {}", path.display()))
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
            Output::Special { mut out, path } => {
                out.flush().with_context(|| format!("cannot write {}", path.display()))
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
