//! `finagent train`: multi-task LoRA finetuning of the default (or any Llama-family) model over a
//! 4-bit, 8-bit or full-precision base, resumable from its checkpoints.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use agent::config::Paths;
use agent::model_fetch::ensure_default_model;
use trainer::dist::Collective;
use trainer::lora::{attach, LoraInit};
use trainer::peft::init_from_adapter;
use trainer::quantize::quantize_base_computing;
use trainer::train::data::tokenize;
use trainer::train::metrics::{write_atomically, StepMetrics};
use trainer::train::prepare::prepare_data;
use trainer::train::{train, TrainConfig, TrainJob};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directory: checkpoints, metrics.jsonl, loss.svg, config.toml, mixture.json and the final
    /// adapter (`<out>/adapter`, PEFT format).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// TOML configuration (see `docs/training.md`); flags and --set override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override any configuration key, e.g. `--set lora.rank=4 --set optim.lr=2e-4`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Base model: GGUF file or Hugging Face folder (default: the downloaded default model).
    #[arg(long, env = "FINAGENT_MODEL", value_name = "PATH")]
    model: Option<PathBuf>,
    /// Precision of the frozen base: 4 (NF4), 8 (int8) or 16/32 (f32).
    #[arg(long, value_name = "BITS")]
    bits: Option<u32>,
    /// Arithmetic of a 4- or 8-bit base's products (`compute_dtype`): bf16 by default there,
    /// f32 over a 32-bit base; a resumed run keeps the one it started with.
    #[arg(long, value_enum)]
    compute_dtype: Option<super::ComputeArg>,
    /// Comma-separated tasks, e.g. `fpb,tfns,xbrl_values`.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    tasks: Vec<String>,
    /// Optimizer steps.
    #[arg(long)]
    steps: Option<usize>,
    /// Continue from the newest checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// No progress bar (metrics still go to metrics.jsonl).
    #[arg(long)]
    quiet: bool,
}

pub fn run(home: Option<&Path>, args: Args) -> Result<()> {
    let mut overrides = Vec::new();
    if let Some(bits) = args.bits {
        overrides.push(format!("bits={bits}"));
    }
    if let Some(dtype) = args.compute_dtype {
        overrides.push(format!("compute_dtype={:?}", trainer::quantize::ComputeDtype::from(dtype).name()));
    }
    if !args.tasks.is_empty() {
        let quoted: Vec<String> = args.tasks.iter().map(|task| format!("{task:?}")).collect();
        overrides.push(format!("data.tasks=[{}]", quoted.join(",")));
    }
    if let Some(steps) = args.steps {
        overrides.push(format!("steps={steps}"));
    }
    overrides.extend(args.overrides.iter().cloned());
    let mut config = TrainConfig::load(args.config.as_deref(), &overrides)?;

    let run_dir = &args.out;
    if !args.resume && run_dir.join("checkpoints").exists() {
        bail!(
            "{} already holds a training run; pass --resume to continue it or choose another --out",
            run_dir.display()
        );
    }
    let saved_path = run_dir.join("config.toml");
    // A resumed run keeps the arithmetic its saved configuration records.
    let saved = if args.resume && saved_path.exists() {
        let saved = TrainConfig::load(Some(&saved_path), &[])
            .with_context(|| format!("cannot read the run's saved configuration {}", saved_path.display()))?;
        Some(saved)
    } else {
        None
    };
    config.settle_compute(saved.as_ref())?;
    let compute = config.compute()?;
    std::fs::create_dir_all(run_dir).with_context(|| format!("cannot create {}", run_dir.display()))?;

    let model_path = match config.model.clone().or(args.model.clone()) {
        Some(path) => path,
        None => ensure_default_model(&Paths::resolve(home, None, None).model)?,
    };
    let (mut model, tokenizer) = trainer::loader::load(&model_path)
        .with_context(|| format!("cannot load model {}", model_path.display()))?;
    let runs_as = compute.runs_here();
    if runs_as != compute {
        eprintln!(
            "compute_dtype = \"{}\": this CPU lacks AVX-512 BF16, so the base's products run in {}",
            compute.name(),
            runs_as.name()
        );
    }
    quantize_base_computing(&mut model, config.base_bits()?, config.int8_matmul, compute)?;
    let adapter = attach(&mut model, &config.lora, LoraInit::Peft { seed: config.seed })?;
    if let Some(dir) = &config.init_adapter {
        init_from_adapter(&adapter, dir)
            .with_context(|| format!("cannot start from the adapter in {} (init_adapter)", dir.display()))?;
    }

    let data = prepare_data(&config)?;
    let train_set = tokenize(&data.train, &tokenizer, config.data.max_seq_len)?;
    let validation_set = tokenize(&data.validation, &tokenizer, config.data.max_seq_len)?;
    if train_set.too_long + train_set.empty_answer > 0 {
        eprintln!(
            "left out {} training examples over data.max_seq_len = {} tokens and {} with an empty answer",
            train_set.too_long, config.data.max_seq_len, train_set.empty_answer
        );
    }
    let mut comm = collective()?;
    let is_main = comm.rank() == 0;
    if is_main {
        write_atomically(&run_dir.join("config.toml"), config.to_toml()?.as_bytes())?;
        data.mixture.write_json(run_dir)?;
    }
    let counts: Vec<String> = data.counts.iter().map(|(task, count)| format!("{task} {count}")).collect();
    if is_main {
        eprintln!(
            "training {} LoRA parameters (rank {}, {:?}) over a {}-bit base on {} examples ({}), {} rank(s)",
            adapter.num_parameters(),
            config.lora.rank,
            config.lora.targets,
            config.base_bits()?,
            train_set.examples.len(),
            counts.join(", "),
            comm.world_size()
        );
    }
    let bar = progress_bar(config.steps, args.quiet || !is_main);
    let mut on_step = |metrics: &StepMetrics| {
        bar.set_position(metrics.step as u64);
        let val = metrics.val_loss.map_or_else(String::new, |val| format!(" val {val:.4}"));
        bar.set_message(format!("loss {:.4}{val} {:.0} tok/s", metrics.loss, metrics.tokens_per_sec));
        ControlFlow::Continue(())
    };
    let base_model = model_path.display().to_string();
    let job = TrainJob {
        config: &config,
        model: &model,
        adapter: &adapter,
        train: &train_set.examples,
        validation: &validation_set.examples,
        run_dir,
        resume: args.resume,
        base_model: &base_model,
    };
    let summary = train(&job, comm.as_mut(), &mut on_step)?;
    bar.finish_and_clear();
    if is_main {
        let report = serde_json::json!({
            "steps": summary.steps,
            "resumed_from": summary.resumed_from,
            "final_loss": summary.final_loss,
            "final_val_loss": summary.final_val_loss,
            "tokens_per_sec": summary.tokens_per_sec,
            "adapter": summary.adapter_dir,
        });
        outln!("{report}");
    }
    Ok(())
}

fn progress_bar(steps: usize, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} steps, {msg}, ETA {eta}") {
        bar.set_style(style);
    }
    bar
}

/// One process, or every process of an `mpirun` job when built with the `mpi` feature.
fn collective() -> Result<Box<dyn Collective>> {
    #[cfg(feature = "mpi")]
    if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some() {
        return Ok(Box::new(trainer::dist::mpi::MpiWorld::init()?));
    }
    Ok(Box::new(trainer::dist::single::SingleProcess::new()))
}
