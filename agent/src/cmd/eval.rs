//! `finagent eval`: the base model, or the base with adapters routed per task, on task test sets
//! (batched greedy generation or label scoring), with FinLoRA's and strict metrics, resumable.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use datasets::{DataDir, Example, LoadConfig, NwgiMapping, Split, Task, TfnsLabels};

use agent::config::Paths;
use agent::model_fetch::ensure_default_model;
use trainer::eval::{
    prompt_hash, task_metrics, AdapterEntry, EvalMode, EvalRun, Evaluator, PredictionLog, TaskBatch,
    TaskMetrics,
};
use trainer::multi_lora::attach_adapters;
use trainer::quantize::{quantize_for_inference, BaseBits, Int8Matmul};

/// What a resumed run must share with the run it continues.
const SETTINGS_FILE: &str = "settings.json";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Comma-separated tasks with a test split, e.g. `fpb,tfns,ner`.
    #[arg(long, value_name = "LIST", value_delimiter = ',', required = true)]
    tasks: Vec<String>,
    /// A PEFT adapter folder for every task (`DIR`) or for one task (`fpb=DIR`); repeatable.
    #[arg(long = "adapter", value_name = "[TASK=]DIR")]
    adapters: Vec<String>,
    /// Precision of the frozen base: 4 (NF4), 8 (int8, the paper's evaluation setting) or 32.
    #[arg(long, default_value_t = 8)]
    bits: u32,
    /// How the 8-bit base multiplies: `dequantized` (f32 activations times the int8 weight) or
    /// `llm-int8` (bitsandbytes' int8 activations with outliers in f32).
    #[arg(long, value_enum, default_value = "dequantized")]
    int8_matmul: super::Int8MatmulArg,
    /// Evaluate only the first N test examples of each task.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Read the xbrl_* tasks' test sets from `finagent datasets generate` output
    /// (`DIR/<task>/test.jsonl`) instead of FinLoRA's files.
    #[arg(long, value_name = "DIR")]
    generated: Option<PathBuf>,
    /// Examples per forward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// `generate` (free text, parsed), `score` (the label with the highest summed log-likelihood:
    /// classification tasks and FiNER's 139 tags), `score-mean` (the highest mean log-likelihood
    /// per token, for labels of different lengths), `score-calibrated` (the label whose summed
    /// log-likelihood gains most from the input: minus its sum after the prompt with the input
    /// left out), or several.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "generate")]
    mode: Vec<String>,
    /// Output folder: predictions (`<task>.<mode>.jsonl`) and `run.json`; must not exist unless --resume.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Continue an interrupted evaluation in --out, skipping the examples already answered.
    #[arg(long)]
    resume: bool,
    /// The configuration's name in reports (default: the --out folder's name).
    #[arg(long)]
    name: Option<String>,
    /// Base model: GGUF file or Hugging Face folder (default: the downloaded default model).
    #[arg(long, env = "FINAGENT_MODEL", value_name = "PATH")]
    model: Option<PathBuf>,
    /// Print `run.json` on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// NWGI labels: `finlora-polarity` (the 7-label prompt scored by polarity, what FinLoRA
    /// effectively measures), `fin-gpt3` (FinGPT's 7 -> 3 mapping) or `seven` (all 7 labels).
    #[arg(long, value_enum, default_value = "finlora-polarity")]
    nwgi: NwgiArg,
    /// TFNS test labels: `correct` (the dataset card's meaning) or `finlora` (FinLoRA's swapped
    /// mapping, to reproduce its published numbers).
    #[arg(long, value_enum, default_value = "correct")]
    tfns: TfnsArg,
    /// Generation budget in new tokens for every task (`N`) or one task (`xbrl_formula_calculation=64`);
    /// repeatable. Default: FinLoRA's per-task budget (`finagent datasets list`), counted in Llama 3
    /// tokens, which write a 12-digit number in 4 tokens where SmolLM2's tokenizer needs 12.
    #[arg(long = "max-new-tokens", value_name = "[TASK=]N")]
    max_new_tokens: Vec<String>,
}

/// `--max-new-tokens` overrides: one budget for every task and per-task ones.
#[derive(Debug, Default)]
struct Budgets {
    all: Option<usize>,
    by_task: BTreeMap<Task, usize>,
}

impl Budgets {
    fn parse(values: &[String]) -> Result<Self> {
        let mut budgets = Budgets::default();
        for value in values {
            let (task, number) = match value.split_once('=') {
                Some((task, number)) => (Some(task), number),
                None => (None, value.as_str()),
            };
            let tokens: usize = match number.trim().parse() {
                Ok(tokens) if tokens > 0 => tokens,
                _ => bail!("--max-new-tokens {value:?}: {number:?} is not a positive number of tokens"),
            };
            match task {
                Some(name) => {
                    let task: Task =
                        name.trim().parse().with_context(|| format!("--max-new-tokens {value:?}"))?;
                    budgets.by_task.insert(task, tokens);
                }
                None => budgets.all = Some(tokens),
            }
        }
        Ok(budgets)
    }

    fn for_task(&self, task: Task) -> usize {
        self.by_task.get(&task).copied().or(self.all).unwrap_or_else(|| task.max_new_tokens())
    }

    /// The overrides as recorded in `settings.json`; `None` without any.
    fn record(&self) -> Option<serde_json::Value> {
        if self.all.is_none() && self.by_task.is_empty() {
            return None;
        }
        let by_task: BTreeMap<&str, usize> = self.by_task.iter().map(|(task, &n)| (task.name(), n)).collect();
        Some(serde_json::json!({ "all": self.all, "by_task": by_task }))
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum NwgiArg {
    FinloraPolarity,
    FinGpt3,
    Seven,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum TfnsArg {
    Correct,
    Finlora,
}

impl Args {
    /// How the test files are read: the label mappings chosen on the command line.
    fn load_config(&self) -> LoadConfig {
        let nwgi = match self.nwgi {
            NwgiArg::FinloraPolarity => NwgiMapping::FinLoraPolarity,
            NwgiArg::FinGpt3 => NwgiMapping::FinGpt3,
            NwgiArg::Seven => NwgiMapping::Seven,
        };
        let tfns = match self.tfns {
            TfnsArg::Correct => TfnsLabels::Correct,
            TfnsArg::Finlora => TfnsLabels::FinLora,
        };
        LoadConfig { nwgi, tfns, ..LoadConfig::default() }
    }
}

/// Adapter folders and which task each serves (`None`: every task without its own).
struct AdapterPlan {
    dirs: Vec<PathBuf>,
    by_task: HashMap<Task, usize>,
    default: Option<usize>,
    entries: Vec<AdapterEntry>,
}

pub fn run(home: Option<&Path>, args: Args) -> Result<()> {
    let tasks = parse_tasks(&args.tasks)?;
    let modes: Vec<EvalMode> = args.mode.iter().map(|mode| mode.parse()).collect::<Result<_, _>>()?;
    let bits = BaseBits::from_bits(args.bits)?;
    let mut plan = plan_adapters(&args.adapters, &tasks)?;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if args.out.exists() && !args.resume {
        bail!(
            "{} already exists; pass --resume to continue that evaluation or choose another --out",
            args.out.display()
        );
    }

    let data_dir = DataDir::from_env();
    let load_config = args.load_config();
    let budgets = Budgets::parse(&args.max_new_tokens)?;
    let mut test_sets = Vec::with_capacity(tasks.len());
    for &task in &tasks {
        let loaded = match (&args.generated, task.xbrl_file_task()) {
            (Some(dir), Some(_)) => {
                let path = dir.join(task.name()).join("test.jsonl");
                datasets::load_context_file(&path, task, &load_config)
            }
            _ => data_dir.load(task, Split::Test, &load_config),
        }
        .with_context(|| format!("cannot evaluate {task}"))?;
        let mut examples = loaded.examples;
        if let Some(limit) = args.limit {
            examples.truncate(limit);
        }
        let labels: Vec<String> = match task.labels(load_config.nwgi) {
            Some(labels) => labels.iter().map(|label| label.to_string()).collect(),
            None if task == Task::Finer => data_dir.finer_tags()?,
            None => Vec::new(),
        };
        if let (Some(mode), true) = (modes.iter().find(|mode| mode.scores_labels()), labels.is_empty()) {
            bail!("--mode {mode} needs a task with a closed label set (a classification task or FiNER's tags); {task} has none");
        }
        test_sets.push((task, examples, labels));
    }

    let model_path = match args.model.clone() {
        Some(path) => path,
        None => ensure_default_model(&Paths::resolve(home, None, None).model)?,
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    check_settings(&args, &model_path, bits, &plan, &load_config, &budgets)?;

    let load_started = Instant::now();
    let (mut model, tokenizer) = trainer::loader::load(&model_path)
        .with_context(|| format!("cannot load model {}", model_path.display()))?;
    quantize_for_inference(&mut model, bits, args.int8_matmul.into())?;
    let multi = if plan.dirs.is_empty() { None } else { Some(attach_adapters(&mut model, &plan.dirs)?) };
    if let Some(multi) = &multi {
        for (entry, loaded) in plan.entries.iter_mut().zip(&multi.adapters) {
            entry.size_bytes = loaded.size_bytes;
            entry.rank = loaded.config.rank;
        }
    }
    let load_seconds = load_started.elapsed().as_secs_f64();
    let evaluator = Evaluator {
        model: &model,
        tokenizer: &tokenizer,
        router: multi.as_ref().map(|multi| multi.router.as_ref()),
        batch_size: args.batch_size,
    };

    let name = args.name.clone().unwrap_or_else(|| {
        args.out.file_name().map_or_else(|| "run".to_string(), |name| name.to_string_lossy().into_owned())
    });
    let mut run = EvalRun {
        name,
        model: model_path.display().to_string(),
        bits: bits.bits(),
        batch_size: args.batch_size,
        limit: args.limit,
        adapters: plan.entries,
        results: Vec::new(),
        peak_rss_bytes: 0,
        load_seconds,
    };
    for (task, examples, labels) in &test_sets {
        let adapter = plan.by_task.get(task).copied().or(plan.default);
        for &mode in &modes {
            let work =
                TaskWork { task: *task, examples, labels, adapter, max_new_tokens: budgets.for_task(*task) };
            let metrics = evaluate(&evaluator, &args.out, mode, &work)?;
            run.results.push(metrics);
            // `run.json` holds every task finished so far, so a long evaluation that is stopped
            // can be reported on before `--resume` finishes it.
            run.peak_rss_bytes = super::peak_rss_bytes()?;
            run.write(&args.out)?;
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        print_table(&run);
    }
    Ok(())
}

/// One task's test set and how to answer it.
struct TaskWork<'a> {
    task: Task,
    examples: &'a [Example],
    labels: &'a [String],
    adapter: Option<usize>,
    max_new_tokens: usize,
}

/// Answers the examples of one task not yet in its predictions log, then scores the whole log.
fn evaluate(
    evaluator: &Evaluator<'_>,
    out: &Path,
    mode: EvalMode,
    work: &TaskWork<'_>,
) -> Result<TaskMetrics> {
    let TaskWork { task, examples, labels, adapter, max_new_tokens } = *work;
    let log_path = out.join(format!("{task}.{mode}.jsonl"));
    let mut log = PredictionLog::open(&log_path)?;
    let mut pending = Vec::new();
    for example in examples {
        if !log.is_done(&example.id, &prompt_hash(&example.prompt))? {
            pending.push(example);
        }
    }
    eprintln!(
        "{task} ({mode}): {} examples to answer, {} already done",
        pending.len(),
        examples.len() - pending.len()
    );
    let work = TaskBatch { task, examples: &pending, adapter, labels, max_new_tokens };
    evaluator.answer(&work, mode, &mut |prediction| log.append(prediction))?;
    let all: Vec<&Example> = examples.iter().collect();
    Ok(task_metrics(task, mode, &all, log.done(), labels)?)
}

fn parse_tasks(names: &[String]) -> Result<Vec<Task>> {
    let mut tasks = Vec::new();
    for name in names.iter().map(|name| name.trim()).filter(|name| !name.is_empty()) {
        let task: Task = name.parse()?;
        if !tasks.contains(&task) {
            tasks.push(task);
        }
    }
    if tasks.is_empty() {
        bail!("--tasks names no task");
    }
    Ok(tasks)
}

fn plan_adapters(specs: &[String], tasks: &[Task]) -> Result<AdapterPlan> {
    let mut plan =
        AdapterPlan { dirs: Vec::new(), by_task: HashMap::new(), default: None, entries: Vec::new() };
    for spec in specs {
        let (task, dir) = match spec.split_once('=') {
            Some((name, dir)) if name.parse::<Task>().is_ok() => {
                (name.parse::<Task>().ok(), PathBuf::from(dir))
            }
            _ => (None, PathBuf::from(spec)),
        };
        if !dir.join(trainer::peft::ADAPTER_CONFIG).is_file() {
            bail!("adapter {} has no {}", dir.display(), trainer::peft::ADAPTER_CONFIG);
        }
        let idx = match plan.dirs.iter().position(|known| *known == dir) {
            Some(idx) => idx,
            None => {
                plan.dirs.push(dir.clone());
                plan.entries.push(AdapterEntry {
                    task: None,
                    dir: dir.display().to_string(),
                    rank: 0,
                    size_bytes: 0,
                });
                plan.dirs.len() - 1
            }
        };
        match task {
            Some(task) => {
                if !tasks.contains(&task) {
                    bail!("--adapter {spec} routes {task}, which is not in --tasks");
                }
                if plan.by_task.insert(task, idx).is_some() {
                    bail!("task {task} is given two adapters");
                }
                plan.entries[idx].task = Some(task.name().to_string());
            }
            None if plan.default.is_some() => {
                bail!("only one --adapter may serve every task (got a second: {spec})")
            }
            None => plan.default = Some(idx),
        }
    }
    Ok(plan)
}

/// Writes the run's model, bits and adapters on a fresh run; on --resume, refuses different ones.
fn check_settings(
    args: &Args,
    model: &Path,
    bits: BaseBits,
    plan: &AdapterPlan,
    load_config: &LoadConfig,
    budgets: &Budgets,
) -> Result<()> {
    let (out, generated, resume) = (&args.out, args.generated.as_deref(), args.resume);
    let routes: BTreeMap<String, String> = plan
        .by_task
        .iter()
        .map(|(task, &idx)| (task.name().to_string(), plan.dirs[idx].display().to_string()))
        .collect();
    let mut settings = serde_json::json!({
        "model": model.display().to_string(),
        "bits": bits.bits(),
        "adapters": routes,
        "default_adapter": plan.default.map(|idx| plan.dirs[idx].display().to_string()),
        "nwgi": load_config.nwgi,
        "tfns": load_config.tfns,
    });
    // Only when given, so runs recorded before the option existed still resume.
    if let (Some(dir), Some(map)) = (generated, settings.as_object_mut()) {
        map.insert("generated".into(), dir.display().to_string().into());
    }
    if let (Some(budgets), Some(map)) = (budgets.record(), settings.as_object_mut()) {
        map.insert("max_new_tokens".into(), budgets);
    }
    if let (super::Int8MatmulArg::LlmInt8, BaseBits::Int8, Some(map)) =
        (args.int8_matmul, bits, settings.as_object_mut())
    {
        map.insert("int8_matmul".into(), Int8Matmul::LlmInt8.name().into());
    }
    let path = out.join(SETTINGS_FILE);
    if resume && path.is_file() {
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let before: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))?;
        if before != settings {
            bail!("{} was evaluated with other settings ({before}); resume with the same model, --bits, --int8-matmul, --adapter, --generated, --max-new-tokens, --nwgi and --tfns", out.display());
        }
        return Ok(());
    }
    trainer::train::metrics::write_atomically(&path, serde_json::to_string_pretty(&settings)?.as_bytes())?;
    Ok(())
}

fn print_table(run: &EvalRun) {
    outln!(
        "{:<14} {:<9} {:>5} {:>9} {:>9} {:>7} {:>8} {:>9} {:>8}",
        "task",
        "mode",
        "n",
        "acc(FL)",
        "acc(str)",
        "F1",
        "F1(raw)",
        "unparsed",
        "s/ex"
    );
    for m in &run.results {
        outln!(
            "{:<14} {:<9} {:>5} {:>8.2}% {:>8.2}% {:>7.3} {:>8.3} {:>8.1}% {:>8.4}",
            m.task.name(),
            m.mode.name(),
            m.n_examples,
            m.accuracy_finlora * 100.0,
            m.accuracy_strict * 100.0,
            m.f1_weighted,
            m.f1_finlora_raw,
            m.unparseable_share * 100.0,
            m.seconds_per_example
        );
    }
    outln!(
        "peak memory {:.0} MiB, load {:.1} s, adapters {} bytes",
        run.peak_rss_bytes as f64 / (1024.0 * 1024.0),
        run.load_seconds,
        run.adapter_bytes()
    );
}
