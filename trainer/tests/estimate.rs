//! The memory estimator against FinLoRA's published GPU figures, on a real model's header, and
//! its monotonicity in bits, rank, batch and sequence length.

use std::path::PathBuf;

use trainer::estimate::{
    adapter_params, estimate, EstimateConfig, ModelShape, Targets, WeightBits, CPU_FINAGENT, GIB, GPU_FINLORA,
};

/// FinLoRA's settings (`lora/lora/train_lora.py`, docs/source/benchmark_results/resources.rst):
/// batch 8, LoRA on q/k/v, 64 padded tokens (see `trainer::estimate`).
fn finlora(bits: u32, rank: u64, batch: u64) -> EstimateConfig {
    EstimateConfig {
        bits: WeightBits::from_bits(bits).expect("4, 8 or 16"),
        rank,
        batch,
        seq: 64,
        answer_tokens: 64,
        targets: Targets::Qkv,
        profile: GPU_FINLORA,
    }
}

fn preset(name: &str) -> ModelShape {
    ModelShape::preset(name).expect("built-in preset")
}

/// (figure, model, bits, rank, batch, training?, published GiB).
const PUBLISHED: [(&str, &str, u32, u64, u64, bool, f64); 10] = [
    ("8B 16-bit training", "llama-3.1-8b", 16, 8, 8, true, 30.9),
    ("8B 8-bit training", "llama-3.1-8b", 8, 8, 8, true, 11.8),
    ("8B 4-bit training", "llama-3.1-8b", 4, 8, 8, true, 8.7),
    ("8B 16-bit inference", "llama-3.1-8b", 16, 8, 8, false, 15.0),
    ("8B 8-bit inference", "llama-3.1-8b", 8, 8, 8, false, 8.6),
    ("8B 4-bit inference", "llama-3.1-8b", 4, 8, 8, false, 5.6),
    // FinLoRA's published 70B adapter (lora_adapters/misc/headline_llama_3_1_70b_4bits_r4) is rank 4.
    ("70B 4-bit training", "llama-3.1-70b", 4, 4, 8, true, 42.8),
    // The same table's batch-4 column.
    ("8B 16-bit training, batch 4", "llama-3.1-8b", 16, 8, 4, true, 30.91),
    ("8B 8-bit training, batch 4", "llama-3.1-8b", 8, 8, 4, true, 11.41),
    ("8B 4-bit training, batch 4", "llama-3.1-8b", 4, 8, 4, true, 8.26),
];

#[test]
fn finlora_figures_are_reproduced_within_15_percent() {
    let mut failures = Vec::new();
    for (figure, model, bits, rank, batch, training, published) in PUBLISHED {
        let memory = estimate(&preset(model), &finlora(bits, rank, batch)).expect("valid config");
        let phase = if training { &memory.training } else { &memory.inference };
        let ours = phase.total as f64 / GIB;
        let ratio = ours / published;
        println!("{figure:<30} paper {published:>6.2} GiB  ours {ours:>6.2} GiB  ratio {ratio:.3}");
        if (ratio - 1.0).abs() > 0.15 {
            failures.push(format!("{figure}: ratio {ratio:.3}"));
        }
    }
    assert!(failures.is_empty(), "outside 15%: {failures:?}");
}

#[test]
fn adapter_counts_match_finlora_table() {
    // resources.rst: 4.72M trainable parameters at rank 8, 2.36M at rank 4, q/k/v only.
    let shape = preset("llama-3.1-8b");
    assert_eq!(adapter_params(&shape, Targets::Qkv, 8), 4_718_592);
    assert_eq!(adapter_params(&shape, Targets::Qkv, 4), 2_359_296);
    assert_eq!(shape.n_params(), 8_030_261_248);
}

#[test]
fn nf4_weights_and_constants_follow_the_qlora_bit_budget() {
    // 4 bits per weight plus 8/64 + 32/(64*256) ≈ 0.127 bits of constants (QLoRA paper).
    let shape = preset("llama-3.1-8b");
    let memory = estimate(&shape, &finlora(4, 8, 8)).expect("valid config");
    let n_linear = shape.n_linear_params() as f64;
    let weight_bits = memory.training.get("base weights").expect("component") as f64 * 8.0 / n_linear;
    let constant_bits =
        memory.training.get("quantization constants").expect("component") as f64 * 8.0 / n_linear;
    assert_eq!(weight_bits, 4.0);
    assert!((constant_bits - 0.127).abs() < 0.001, "constants take {constant_bits} bits per weight");
}

fn default_model() -> Option<PathBuf> {
    let path = std::env::var_os("FINAGENT_MODEL").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    });
    if path.is_file() {
        return Some(path);
    }
    assert!(std::env::var_os("CI").is_none(), "model missing at {} under CI", path.display());
    eprintln!("skipping: model not found at {}", path.display());
    None
}

#[test]
fn gguf_header_gives_the_smollm2_preset_shape() {
    let Some(path) = default_model() else { return };
    let shape = ModelShape::read(&path).expect("readable gguf header");
    assert_eq!(shape, preset("smollm2-135m"));
    assert_eq!(shape.n_params(), 134_515_008);
}

#[test]
fn missing_model_path_is_an_error_naming_it() {
    let path = PathBuf::from("/nonexistent/finagent-estimate-model.gguf");
    let error = ModelShape::read(&path).expect_err("no such file");
    assert!(error.to_string().contains("finagent-estimate-model.gguf"), "{error}");
}

#[test]
fn unsupported_widths_and_zero_sizes_are_rejected() {
    let error = WeightBits::from_bits(3).expect_err("3 bits");
    assert!(error.to_string().contains("3 bits"), "{error}");
    let config = EstimateConfig { batch: 0, ..finlora(4, 8, 8) };
    let error = estimate(&preset("smollm2-135m"), &config).expect_err("batch 0");
    assert!(error.to_string().contains("batch"), "{error}");
}

/// Totals of both phases for every model, profile and target set.
fn totals(config: &EstimateConfig) -> Vec<(u64, u64)> {
    ["smollm2-135m", "llama-3.1-8b", "llama-3.1-70b"]
        .iter()
        .flat_map(|model| {
            [GPU_FINLORA, CPU_FINAGENT].into_iter().flat_map(move |profile| {
                [Targets::Qkv, Targets::AllLinear].into_iter().map(move |targets| {
                    let config = EstimateConfig { profile, targets, ..*config };
                    let memory = estimate(&preset(model), &config).expect("valid config");
                    (memory.training.total, memory.inference.total)
                })
            })
        })
        .collect()
}

fn assert_never_smaller(smaller: &EstimateConfig, larger: &EstimateConfig) {
    for ((train_a, infer_a), (train_b, infer_b)) in totals(smaller).into_iter().zip(totals(larger)) {
        assert!(train_a <= train_b, "training {train_a} > {train_b}: {smaller:?} vs {larger:?}");
        assert!(infer_a <= infer_b, "inference {infer_a} > {infer_b}: {smaller:?} vs {larger:?}");
    }
}

#[test]
fn more_bits_rank_batch_or_seq_never_reduce_memory() {
    let base = finlora(4, 8, 8);
    assert_never_smaller(&base, &finlora(8, 8, 8));
    assert_never_smaller(&finlora(8, 8, 8), &finlora(16, 8, 8));
    for (small, large) in [(1, 2), (2, 8), (8, 64)] {
        assert_never_smaller(
            &EstimateConfig { rank: small, ..base },
            &EstimateConfig { rank: large, ..base },
        );
        assert_never_smaller(
            &EstimateConfig { batch: small, ..base },
            &EstimateConfig { batch: large, ..base },
        );
        assert_never_smaller(&EstimateConfig { seq: small, ..base }, &EstimateConfig { seq: large, ..base });
    }
    // And all linear layers never cost less than q/k/v.
    for model in ["smollm2-135m", "llama-3.1-8b"] {
        let qkv = estimate(&preset(model), &base).expect("valid config");
        let all = estimate(&preset(model), &EstimateConfig { targets: Targets::AllLinear, ..base })
            .expect("valid config");
        assert!(qkv.training.total < all.training.total);
    }
}

#[test]
fn cpu_profile_has_no_device_overhead_and_logits_only_where_the_loss_reads() {
    let shape = preset("smollm2-135m");
    let gpu = estimate(&shape, &finlora(4, 8, 8)).expect("valid config");
    let cpu =
        estimate(&shape, &EstimateConfig { profile: CPU_FINAGENT, answer_tokens: 8, ..finlora(4, 8, 8) })
            .expect("valid config");
    // The process's own resident size only, far below a CUDA context.
    assert!(cpu.training.get("overhead") < gpu.training.get("overhead"));
    // Logits at 8 of 64 positions.
    let logits = |memory: &trainer::estimate::MemoryEstimate| memory.training.get("logits").unwrap_or(0);
    assert!(logits(&cpu) * 4 < logits(&gpu), "cpu {} gpu {}", logits(&cpu), logits(&gpu));
    for breakdown in [&cpu.training, &cpu.inference, &gpu.training, &gpu.inference] {
        assert_eq!(breakdown.total, breakdown.items.iter().map(|item| item.bytes).sum::<u64>());
    }
}

/// Peak RSS of `finagent bench train --batch 8 --seq 128 --rank 8` (8 answer tokens per row,
/// gradient checkpointing on with every layer's frozen products kept, the default) measured on
/// SmolLM2-135M, MiB; docs/estimate.md has the runs.
const MEASURED_FINAGENT_PEAK_MIB: [(u32, f64); 3] = [(4, 1056.0), (8, 1103.0), (16, 1412.0)];

#[test]
fn cpu_profile_predicts_finagents_measured_peak_within_15_percent() {
    for (bits, measured) in MEASURED_FINAGENT_PEAK_MIB {
        let config = EstimateConfig {
            bits: WeightBits::from_bits(bits).expect("4, 8 or 16"),
            rank: 8,
            batch: 8,
            seq: 128,
            answer_tokens: 8,
            targets: Targets::Qkv,
            profile: CPU_FINAGENT,
        };
        let predicted =
            estimate(&preset("smollm2-135m"), &config).expect("valid").training.total as f64 / 1048576.0;
        let ratio = predicted / measured;
        eprintln!("{bits}-bit: predicted {predicted:.0} MiB, measured {measured:.0} MiB, ratio {ratio:.3}");
        assert!(
            (0.85..=1.15).contains(&ratio),
            "{bits}-bit: predicted {predicted:.0} MiB vs measured {measured:.0}"
        );
    }
}
