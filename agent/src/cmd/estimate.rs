//! `finagent estimate`: training and inference memory of LoRA over a quantized base, component
//! by component (see docs/estimate.md for the formulas and the comparison with FinLoRA).

use std::path::Path;

use anyhow::{bail, Result};
use serde_json::json;

use trainer::estimate::{
    adapter_params, estimate, Breakdown, EstimateConfig, ModelShape, Profile, Targets, WeightBits,
    CPU_FINAGENT, GIB, GPU_FINLORA, PRESETS,
};

#[derive(Debug, clap::Args)]
#[command(after_help = "Assumptions: the defaults besides --model are FinLoRA's settings (Llama 3.1 8B \
NER runs: batch 8, LoRA r8 on q/k/v, fp16 autocast, gradient checkpointing, SDPA attention) with 64 \
padded tokens per sequence, the length its batch 4 -> 8 increment implies. The gpu profile upcasts \
embedding, lm_head, norms (and a 16-bit base) to f32 while training, as PEFT's \
prepare_model_for_kbit_training does. Sizes are GiB (2^30 bytes, what the paper's \"GB\" are), or MiB \
when training takes under 1 GiB.")]
pub struct Args {
    /// A preset (smollm2-135m, llama-3.1-8b, llama-3.1-70b), a GGUF file, or a Hugging Face
    /// folder with config.json.
    #[arg(long, default_value = "smollm2-135m", value_name = "PRESET|PATH")]
    model: String,
    /// Width of the base weights: 4 (NF4, double quantization), 8 (LLM.int8) or 16 (bf16).
    #[arg(long, default_value = "4", value_parser = parse_bits)]
    bits: WeightBits,
    /// LoRA rank.
    #[arg(long, default_value_t = 8)]
    rank: u64,
    /// Sequences per step (training) or per generation batch (inference).
    #[arg(long, default_value_t = 8)]
    batch: u64,
    /// Padded tokens per sequence.
    #[arg(long, default_value_t = 64)]
    seq: u64,
    /// Tokens per sequence the loss reads (answer and EOS); the cpu profile computes logits only
    /// there. Default: the whole sequence.
    #[arg(long)]
    answer_tokens: Option<u64>,
    /// Projections that carry an adapter.
    #[arg(long, value_enum, default_value = "qkv")]
    targets: TargetsArg,
    /// Framework: gpu (FinLoRA's transformers + PEFT + bitsandbytes) or cpu (finagent on candle,
    /// calibrated against `finagent bench train`; its 16 bits means finagent's f32 base).
    #[arg(long, value_enum, default_value = "gpu")]
    profile: ProfileArg,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum TargetsArg {
    /// q_proj, k_proj, v_proj.
    Qkv,
    /// All seven projections of each layer.
    All,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ProfileArg {
    Gpu,
    Cpu,
}

fn parse_bits(text: &str) -> std::result::Result<WeightBits, String> {
    let bits: u32 = text.parse().map_err(|_| format!("{text} is not a number of bits (4, 8 or 16)"))?;
    WeightBits::from_bits(bits).map_err(|e| e.to_string())
}

pub fn run(_home: Option<&Path>, args: Args) -> Result<()> {
    let shape = resolve_model(&args.model)?;
    let targets = match args.targets {
        TargetsArg::Qkv => Targets::Qkv,
        TargetsArg::All => Targets::AllLinear,
    };
    let profile: Profile = match args.profile {
        ProfileArg::Gpu => GPU_FINLORA,
        ProfileArg::Cpu => CPU_FINAGENT,
    };
    let config = EstimateConfig {
        bits: args.bits,
        rank: args.rank,
        batch: args.batch,
        seq: args.seq,
        answer_tokens: args.answer_tokens.unwrap_or(args.seq),
        targets,
        profile,
    };
    let memory = estimate(&shape, &config)?;
    let n_adapter = adapter_params(&shape, targets, args.rank);
    if args.json {
        let report = json!({
            "model": args.model,
            "params": shape.n_params(),
            "adapter_params": n_adapter,
            "bits": args.bits.bits(),
            "rank": args.rank,
            "batch": args.batch,
            "seq": args.seq,
            "targets": targets_label(targets),
            "profile": profile.name,
            "training": breakdown_json(&memory.training),
            "inference": breakdown_json(&memory.inference),
        });
        outln!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    outln!(
        "{}: {}-bit base, LoRA rank {} on {}, batch {}, seq {}, profile {}",
        args.model,
        args.bits.bits(),
        args.rank,
        targets_label(targets),
        args.batch,
        args.seq,
        profile.name
    );
    outln!(
        "parameters {:.2} B, adapter parameters {:.2} M",
        shape.n_params() as f64 / 1e9,
        n_adapter as f64 / 1e6
    );
    outln!();
    print_table(&memory.training, &memory.inference);
    Ok(())
}

/// A preset by name, else a local model's header.
fn resolve_model(model: &str) -> Result<ModelShape> {
    if let Some(shape) = ModelShape::preset(model) {
        return Ok(shape);
    }
    let path = Path::new(model);
    if !path.exists() {
        let presets: Vec<&str> = PRESETS.iter().map(|(name, _)| *name).collect();
        bail!(
            "unknown model {model}: neither a preset ({}) nor an existing file or folder",
            presets.join(", ")
        );
    }
    Ok(ModelShape::read(path)?)
}

fn targets_label(targets: Targets) -> &'static str {
    match targets {
        Targets::Qkv => "q/k/v",
        Targets::AllLinear => "all linear layers",
    }
}

const MIB: f64 = (1u64 << 20) as f64;

fn gib(bytes: u64) -> f64 {
    bytes as f64 / GIB
}

fn breakdown_json(breakdown: &Breakdown) -> serde_json::Value {
    let components: Vec<_> = breakdown
        .items
        .iter()
        .map(|item| json!({"name": item.name, "bytes": item.bytes, "gib": gib(item.bytes)}))
        .collect();
    json!({"total_bytes": breakdown.total, "total_gib": gib(breakdown.total), "components": components})
}

/// One row per component of either phase, in training order with inference-only rows after.
/// Sizes are GiB with one decimal, or MiB when the whole training run is under 1 GiB.
fn print_table(training: &Breakdown, inference: &Breakdown) {
    let mut names: Vec<&str> = training.items.iter().map(|item| item.name).collect();
    for item in &inference.items {
        if !names.contains(&item.name) {
            let before_logits = names.iter().position(|name| *name == "logits").unwrap_or(names.len());
            names.insert(before_logits, item.name);
        }
    }
    let (unit, unit_bytes) = if gib(training.total) >= 1.0 { ("GiB", GIB) } else { ("MiB", MIB) };
    let size = |bytes: u64| format!("{:.1}", bytes as f64 / unit_bytes);
    let cell =
        |breakdown: &Breakdown, name: &str| breakdown.get(name).map(size).unwrap_or_else(|| "-".into());
    let training_header = format!("training {unit}");
    let inference_header = format!("inference {unit}");
    outln!("{:<28} {training_header:>14} {inference_header:>14}", "component");
    for name in names {
        outln!("{:<28} {:>14} {:>14}", name, cell(training, name), cell(inference, name));
    }
    outln!("{:<28} {:>14} {:>14}", "total", size(training.total), size(inference.total));
}
