//! `finagent bench train`: LoRA training speed and peak memory on the default model, in the shape
//! of `peft_train_bench.py`'s output so the two can run side by side: random token rows, the loss
//! on the last 8 tokens of each row, rank-R LoRA (alpha 32, dropout 0.1) on q, k, v, AdamW at 1e-4.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use agent::config::Paths;
use agent::model_fetch::ensure_default_model;
use datasets::SplitMix64;
use trainer::dist::single::SingleProcess;
use trainer::lora::{attach, LoraConfig, LoraInit};
use trainer::quantize::{quantize_base_computing, BaseBits, ComputeDtype};
use trainer::train::data::TokenizedExample;
use trainer::train::{train, TrainConfig, TrainJob};

/// Tokens of each row the loss covers, as in the peer script.
const LOSS_TOKENS: usize = 8;

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Base precision: 32 (f32), 8 (int8) or 4 (NF4).
    #[arg(long, default_value_t = 32)]
    bits: u32,
    /// How an 8-bit base multiplies in the forward pass: `dequantized` or `llm-int8`.
    #[arg(long, value_enum, default_value = "dequantized")]
    int8_matmul: super::Int8MatmulArg,
    /// Arithmetic of a 4- or 8-bit base's products (`compute_dtype` in a training config;
    /// default bf16 over a 4- or 8-bit base, as `train`).
    #[arg(long, value_enum)]
    compute_dtype: Option<super::ComputeArg>,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    #[arg(long, default_value_t = 128)]
    seq: usize,
    #[arg(long, default_value_t = 8)]
    rank: usize,
    /// Optimizer steps; the median speed over all but the first is reported.
    #[arg(long, default_value_t = 6)]
    steps: usize,
    /// Recompute each layer in the backward pass (finagent's default) instead of keeping all
    /// activations (what the peer script does).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    gradient_checkpointing: bool,
    /// With gradient checkpointing: MiB for frozen products kept from the forward pass for the
    /// backward pass to replay instead of recompute (`keep_products_mib` in a training config;
    /// 0 recomputes every layer).
    #[arg(long, default_value_t = TrainConfig::default().keep_products_mib, value_name = "MIB")]
    keep_products_mib: usize,
    /// GGUF file or Hugging Face folder (default: the downloaded default model).
    #[arg(long, env = "FINAGENT_MODEL", value_name = "PATH")]
    model: Option<PathBuf>,
}

pub fn run(home: Option<&Path>, args: TrainArgs) -> Result<()> {
    let bits = BaseBits::from_bits(args.bits)?;
    if args.seq <= LOSS_TOKENS || args.batch == 0 || args.steps == 0 {
        bail!(
            "bench train needs --seq above {LOSS_TOKENS}, --batch and --steps of at least 1 (got seq {}, batch {}, steps {})",
            args.seq,
            args.batch,
            args.steps
        );
    }
    let model_path = match args.model {
        Some(path) => path,
        None => ensure_default_model(&Paths::resolve(home, None, None).model)?,
    };
    let (mut model, _) = trainer::loader::load(&model_path)
        .with_context(|| format!("cannot load model {}", model_path.display()))?;
    let defaults = TrainConfig::default();
    let config = TrainConfig {
        bits: args.bits,
        steps: args.steps,
        micro_batch: args.batch,
        grad_accum: 1,
        eval_every: 0,
        checkpoint_every: 0,
        gradient_checkpointing: args.gradient_checkpointing,
        keep_products_mib: args.keep_products_mib,
        int8_matmul: args.int8_matmul.into(),
        compute_dtype: args.compute_dtype.map(ComputeDtype::from),
        lora: LoraConfig { rank: args.rank, alpha: 32.0, dropout: 0.1, ..LoraConfig::default() },
        optim: trainer::train::config::OptimConfig {
            lr: 1e-4,
            warmup_steps: 0,
            schedule: "constant".into(),
            weight_decay: 0.01,
            ..defaults.optim.clone()
        },
        ..defaults
    };
    config.validate()?;
    let compute_dtype = config.compute()?;
    quantize_base_computing(&mut model, bits, args.int8_matmul.into(), compute_dtype)?;
    let adapter = attach(&mut model, &config.lora, LoraInit::Peft { seed: 0 })?;

    // Rows of seq + 1 random tokens: the model reads seq of them, the loss covers the last 8.
    let mut rng = SplitMix64::new(0);
    let vocab = model.config().vocab_size.min(40_000);
    let examples: Vec<TokenizedExample> = (0..args.batch)
        .map(|_| TokenizedExample {
            ids: (0..=args.seq).map(|_| (100 + rng.below(vocab - 100)) as u32).collect(),
            prompt_len: args.seq + 1 - LOSS_TOKENS,
        })
        .collect();
    let run_dir = tempfile::tempdir()?;
    let base_model = model_path.display().to_string();
    let job = TrainJob {
        config: &config,
        model: &model,
        adapter: &adapter,
        train: &examples,
        validation: &[],
        run_dir: run_dir.path(),
        resume: false,
        base_model: &base_model,
    };
    let mut rates = Vec::new();
    train(&job, &mut SingleProcess::new(), &mut |metrics| {
        rates.push(metrics.tokens_per_sec);
        ControlFlow::Continue(())
    })?;
    let mut measured: Vec<f64> = if rates.len() > 1 { rates[1..].to_vec() } else { rates };
    measured.sort_by(f64::total_cmp);
    let median = measured.get(measured.len() / 2).copied().unwrap_or(0.0);
    let report = serde_json::json!({
        "peer": "finagent",
        "bits": args.bits,
        "int8_matmul": (bits == BaseBits::Int8).then(|| trainer::quantize::Int8Matmul::from(args.int8_matmul).name()),
        "compute_dtype": (bits != BaseBits::F32).then(|| compute_dtype.runs_here().name()),
        "batch": args.batch,
        "seq": args.seq,
        "rank": args.rank,
        "gradient_checkpointing": args.gradient_checkpointing,
        "keep_products_mib": if args.gradient_checkpointing { args.keep_products_mib } else { 0 },
        "tokens_per_sec": (median * 10.0).round() / 10.0,
        "peak_rss_mb": super::peak_rss_mb()?,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    });
    outln!("{report}");
    Ok(())
}
