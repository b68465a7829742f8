//! `finagent bench infer`: prefill and greedy decode speed on the default model, in the shape of
//! `llamacpp_infer_bench.py`'s and `peft_infer_bench.py`'s output so they can run side by side:
//! a prompt of random token ids read in one forward pass, then one token at a time through the
//! KV cache, each fed the previous step's argmax.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;

use agent::config::Paths;
use agent::model_fetch::ensure_default_model;
use datasets::SplitMix64;
use trainer::model::{Llama, LogitsPositions};
use trainer::quantize::{quantize_for_inference, BaseBits, Int8Matmul};

/// Prompt ids are drawn from `[FIRST_ID, LAST_ID]`, as the peer scripts draw them.
const FIRST_ID: usize = 100;
const LAST_ID: usize = 40_000;
/// Tokens of the warm-up pass that precedes the timed ones, as in the peer scripts.
const WARM_UP_TOKENS: usize = 16;

#[derive(Debug, clap::Args)]
pub struct InferArgs {
    /// Length of the random prompt read in one prefill pass.
    #[arg(long, default_value_t = 256)]
    prompt_tokens: usize,
    /// Tokens decoded one at a time after the prefill.
    #[arg(long, default_value_t = 32)]
    new_tokens: usize,
    /// Base precision: 32 (f32), 8 (int8) or 4 (NF4).
    #[arg(long, default_value_t = 32)]
    bits: u32,
    /// How an 8-bit base multiplies: `dequantized` (f32 activations) or `llm-int8` (int8 activations).
    #[arg(long, value_enum, default_value = "dequantized")]
    int8_matmul: super::Int8MatmulArg,
    /// GGUF file or Hugging Face folder (default: the downloaded default model).
    #[arg(long, env = "FINAGENT_MODEL", value_name = "PATH")]
    model: Option<PathBuf>,
}

pub fn run(home: Option<&Path>, args: InferArgs) -> Result<()> {
    let bits = BaseBits::from_bits(args.bits)?;
    if args.prompt_tokens == 0 || args.new_tokens == 0 {
        bail!(
            "bench infer needs --prompt-tokens and --new-tokens of at least 1 (got prompt-tokens {}, new-tokens {})",
            args.prompt_tokens,
            args.new_tokens
        );
    }
    let model_path = match args.model {
        Some(path) => path,
        None => ensure_default_model(&Paths::resolve(home, None, None).model)?,
    };
    // Loading includes re-quantizing the projections: both happen before the model can answer.
    let load_start = Instant::now();
    let (mut model, _) = trainer::loader::load(&model_path)
        .with_context(|| format!("cannot load model {}", model_path.display()))?;
    let lm_head = quantize_for_inference(&mut model, bits, args.int8_matmul.into())?;
    let load_sec = load_start.elapsed().as_secs_f64();

    let max_positions = model.config().max_position_embeddings;
    if args.prompt_tokens + args.new_tokens > max_positions {
        bail!(
            "prompt-tokens {} plus new-tokens {} exceed the model's {max_positions} positions",
            args.prompt_tokens,
            args.new_tokens
        );
    }
    let prompt_ids = random_prompt(args.prompt_tokens, model.config().vocab_size);
    let timing = time_generation(&model, &prompt_ids, args.new_tokens)?;

    let report = serde_json::json!({
        "peer": "finagent",
        "bits": args.bits,
        "int8_matmul": (bits == BaseBits::Int8).then(|| Int8Matmul::from(args.int8_matmul).name()),
        "lm_head": lm_head.name(),
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "prefill_tokens_per_sec": round1(args.prompt_tokens as f64 / timing.prefill_sec),
        "decode_tokens_per_sec": round1(args.new_tokens as f64 / timing.decode_sec),
        "load_sec": (load_sec * 1000.0).round() / 1000.0,
        "peak_rss_mb": super::peak_rss_mb()?,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    });
    outln!("{report}");
    Ok(())
}

/// Wall time of the prefill pass and of the decode steps after it.
struct GenerationTiming {
    prefill_sec: f64,
    decode_sec: f64,
}

/// A warm-up pass on a fresh cache, then the timed prefill of `prompt_ids` (which yields the first
/// greedy token) and `new_tokens` timed single-token steps, each feeding the previous argmax.
fn time_generation(model: &Llama, prompt_ids: &[u32], new_tokens: usize) -> Result<GenerationTiming> {
    let warm_up = &prompt_ids[..prompt_ids.len().min(WARM_UP_TOKENS)];
    let mut warm_cache = model.new_cache();
    model.forward_ids(warm_up, 0, Some(&mut warm_cache), LogitsPositions::Last)?;

    let mut cache = model.new_cache();
    let prefill_start = Instant::now();
    let logits = model.forward_ids(prompt_ids, 0, Some(&mut cache), LogitsPositions::Last)?;
    let mut next = argmax_last(&logits)?;
    let prefill_sec = prefill_start.elapsed().as_secs_f64();

    let decode_start = Instant::now();
    for _ in 0..new_tokens {
        let start_pos = cache.seq_len();
        let logits = model.forward_ids(&[next], start_pos, Some(&mut cache), LogitsPositions::Last)?;
        next = argmax_last(&logits)?;
    }
    let decode_sec = decode_start.elapsed().as_secs_f64();
    Ok(GenerationTiming { prefill_sec: prefill_sec.max(1e-9), decode_sec: decode_sec.max(1e-9) })
}

/// `n_tokens` deterministic ids in `[FIRST_ID, LAST_ID]`, kept inside the vocabulary.
fn random_prompt(n_tokens: usize, vocab_size: usize) -> Vec<u32> {
    let mut rng = SplitMix64::new(0);
    let end = (LAST_ID + 1).min(vocab_size).max(1);
    let first = FIRST_ID.min(end - 1);
    (0..n_tokens).map(|_| (first + rng.below(end - first)) as u32).collect()
}

/// The highest-scoring id of the last row of `[n, vocab]` logits (first one on ties, as torch).
fn argmax_last(logits: &Tensor) -> Result<u32> {
    let n_rows = logits.dim(0)?;
    let scores: Vec<f32> = logits.get(n_rows.saturating_sub(1))?.to_vec1()?;
    let mut best = (0usize, f32::NEG_INFINITY);
    for (id, &score) in scores.iter().enumerate() {
        if score > best.1 {
            best = (id, score);
        }
    }
    Ok(best.0 as u32)
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}
