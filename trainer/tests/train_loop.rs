//! The training loop on a tiny random Llama: LoRA gradients against finite differences, learning,
//! bitwise resume, data-parallel equality, quantized bases and 0/1 Adam.

mod common;

use std::ops::ControlFlow;
use std::path::Path;

use common::training::{prefixed_examples, tiny_model, toy_examples};
use trainer::dist::single::SingleProcess;
use trainer::dist::threads::ThreadGroup;
use trainer::dist::Collective;
use trainer::lora::{attach, LoraConfig, LoraInit, ALL_LINEAR};
use trainer::quantize::{
    quantize_base, quantize_base_computing, quantize_base_with, BaseBits, ComputeDtype, Int8Matmul,
};
use trainer::train::data::TokenizedExample;
use trainer::train::run::{
    checkpointed_gradients, shared_prefix_len, token_loss, token_loss_value, MIN_SHARED_PREFIX,
};
use trainer::train::{train, TrainConfig, TrainJob, TrainSummary};

fn config(steps: usize) -> TrainConfig {
    let defaults = TrainConfig::default();
    TrainConfig {
        steps,
        micro_batch: 4,
        grad_accum: 2,
        eval_every: 0,
        checkpoint_every: 0,
        lora: LoraConfig { rank: 4, alpha: 8.0, dropout: 0.1, ..LoraConfig::default() },
        optim: trainer::train::config::OptimConfig { lr: 5e-3, warmup_steps: 2, ..defaults.optim.clone() },
        ..defaults
    }
}

/// The largest elementwise difference between two sets of adapter values.
fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max)
}

/// Trains a fresh tiny model (same seed every time) and returns the summary and the adapter values.
fn run(
    config: &TrainConfig,
    bits: BaseBits,
    data: &[TokenizedExample],
    dir: &Path,
    resume: bool,
    comm: &mut dyn Collective,
    stop_after: Option<usize>,
) -> (TrainSummary, Vec<Vec<f32>>) {
    let mut model = tiny_model(1);
    let compute = TrainConfig { bits: bits.bits(), ..config.clone() }.compute().unwrap();
    quantize_base_computing(&mut model, bits, config.int8_matmul, compute).unwrap();
    let adapter = attach(&mut model, &config.lora, LoraInit::Peft { seed: config.seed }).unwrap();
    let validation = &data[..8];
    let job = TrainJob {
        config,
        model: &model,
        adapter: &adapter,
        train: data,
        validation,
        run_dir: dir,
        resume,
        base_model: "tiny",
    };
    let mut on_step = |metrics: &trainer::train::metrics::StepMetrics| {
        if Some(metrics.step) == stop_after {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let summary = train(&job, comm, &mut on_step).unwrap();
    let values =
        adapter.vars().iter().map(|var| var.as_tensor().flatten_all().unwrap().to_vec1().unwrap()).collect();
    (summary, values)
}

/// A tiny model (`model_seed`) over a `bits` base with a rank-2 LoRA on every linear layer
/// (`lora_seed`, no dropout) whose B matrices hold `b_value(i)` instead of PEFT's zeros, so A's
/// gradient is not trivially zero.
fn adapted_tiny_model(
    model_seed: u64,
    bits: BaseBits,
    lora_seed: u64,
    b_value: impl Fn(usize) -> f32,
) -> (trainer::model::Llama, trainer::lora::LoraAdapter) {
    let mut model = tiny_model(model_seed);
    quantize_base(&mut model, bits).unwrap();
    let lora = LoraConfig {
        rank: 2,
        alpha: 4.0,
        dropout: 0.0,
        targets: ALL_LINEAR.iter().map(|name| name.to_string()).collect(),
        rslora: false,
    };
    let adapter = attach(&mut model, &lora, LoraInit::Peft { seed: lora_seed }).unwrap();
    for pair in &adapter.pairs {
        let b = pair.b.as_tensor();
        let values: Vec<f32> = (0..b.elem_count()).map(&b_value).collect();
        pair.b.set(&candle_core::Tensor::from_vec(values, b.shape(), b.device()).unwrap()).unwrap();
    }
    (model, adapter)
}

#[test]
fn lora_gradients_match_finite_differences_through_a_quantized_base() {
    for bits in [BaseBits::F32, BaseBits::Nf4] {
        let (model, adapter) = adapted_tiny_model(3, bits, 5, |i| ((i * 37 % 11) as f32 - 5.0) * 0.02);
        let data = toy_examples(3, 9);
        let batch: Vec<&TokenizedExample> = data.iter().collect();
        let (loss, _) = token_loss(&model, &batch, false).unwrap();
        let grads = loss.backward().unwrap();
        let h = 1e-2f32;
        let mut checked = 0;
        for var in adapter.vars().into_iter().step_by(5) {
            let analytic: Vec<f32> =
                grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let original: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            for idx in [0, original.len() / 2, original.len() - 1] {
                let eval = |delta: f32| {
                    let mut shifted = original.clone();
                    shifted[idx] += delta;
                    var.set(&candle_core::Tensor::from_vec(shifted, var.shape(), var.device()).unwrap())
                        .unwrap();
                    let (loss, _) = token_loss(&model, &batch, false).unwrap();
                    f64::from(loss.to_scalar::<f32>().unwrap())
                };
                let numeric = (eval(h) - eval(-h)) / (2.0 * f64::from(h));
                var.set(&candle_core::Tensor::from_vec(original.clone(), var.shape(), var.device()).unwrap())
                    .unwrap();
                let analytic = f64::from(analytic[idx]);
                assert!(
                    (numeric - analytic).abs() < 2e-2 * (1.0 + numeric.abs()),
                    "{bits:?} base: element {idx}: numeric {numeric}, autograd {analytic}"
                );
                checked += 1;
            }
        }
        assert!(checked >= 9);
    }
}

/// Trains 60 steps of the toy task over a `bits` base computing as `int8_matmul` says and checks
/// that the loss fell below 0.6 of its first value; returns the run directory.
fn learn_toy_task(bits: BaseBits, int8_matmul: Int8Matmul) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let data = toy_examples(64, 1);
    let mut config = config(60);
    config.lora.targets = ALL_LINEAR.iter().map(|name| name.to_string()).collect();
    config.optim.lr = 1e-2;
    config.int8_matmul = int8_matmul;
    let (summary, _) = run(&config, bits, &data, dir.path(), false, &mut SingleProcess::new(), None);
    let metrics = trainer::train::metrics::MetricsLog::new(dir.path()).read().unwrap();
    let first = metrics.first().unwrap().loss;
    assert!(summary.final_loss < 0.6 * first, "loss went from {first} to {}", summary.final_loss);
    dir
}

#[test]
fn training_learns_the_toy_task() {
    let dir = learn_toy_task(BaseBits::F32, Int8Matmul::Dequantized);
    assert!(dir.path().join("adapter/adapter_model.safetensors").exists());
    assert!(dir.path().join("loss.svg").exists());
}

/// Through an 8-bit base computing as LLM.int8 (int8 activations forward, dequantized backward)
/// the adapter learns the toy task as well.
#[test]
fn training_learns_through_an_llm_int8_base() {
    learn_toy_task(BaseBits::Int8, Int8Matmul::LlmInt8);
}

/// With the base's products in bf16 a 4-bit run learns the toy task, repeats bit for bit, and ends
/// near the f32 run: bf16 rounding moves the adapter a little, not the training. Where the CPU
/// has AVX-512 BF16 the two runs must differ (the setting reaches the products); elsewhere they
/// are the same run.
#[test]
fn bf16_products_train_like_f32_ones() {
    let data = toy_examples(64, 1);
    let mut config = config(60);
    config.bits = 4;
    config.lora.targets = ALL_LINEAR.iter().map(|name| name.to_string()).collect();
    config.optim.lr = 1e-2;
    let train_with = |compute_dtype: ComputeDtype| {
        let dir = tempfile::tempdir().unwrap();
        let config = TrainConfig { compute_dtype: Some(compute_dtype), ..config.clone() };
        let (summary, values) =
            run(&config, BaseBits::Nf4, &data, dir.path(), false, &mut SingleProcess::new(), None);
        let first = trainer::train::metrics::MetricsLog::new(dir.path()).read().unwrap()[0].loss;
        (summary, values, first)
    };
    let (f32_summary, f32_values, _) = train_with(ComputeDtype::F32);
    let (bf16_summary, bf16_values, first) = train_with(ComputeDtype::Bf16);
    let (_, again, _) = train_with(ComputeDtype::Bf16);
    assert!(bf16_summary.final_loss < 0.6 * first, "loss went from {first} to {}", bf16_summary.final_loss);
    assert_eq!(bf16_values, again, "a bf16 run repeats bit for bit");
    let largest = f32_values.iter().flatten().map(|v| v.abs()).fold(0f32, f32::max);
    let diff = max_abs_diff(&bf16_values, &f32_values);
    // 60 steps at a high rate carry the rounding differences along: about 7% of the largest
    // value here, where a broken product would move it by as much as the value itself.
    assert!(diff < 0.15 * largest, "bf16 moved the adapter by {diff} (largest value {largest})");
    let loss_gap = (bf16_summary.final_loss - f32_summary.final_loss).abs();
    assert!(
        loss_gap < 0.1 * f32_summary.final_loss.max(0.1),
        "final losses {} (bf16) and {} (f32)",
        bf16_summary.final_loss,
        f32_summary.final_loss
    );
    if ComputeDtype::Bf16.runs_here() == ComputeDtype::Bf16 {
        assert!(diff > 0.0, "bf16 products trained exactly as f32 ones");
    } else {
        assert_eq!(diff, 0.0);
    }
}

#[test]
fn a_resumed_run_ends_bitwise_equal_to_an_uninterrupted_one() {
    let data = toy_examples(40, 2);
    let mut config = config(8);
    config.checkpoint_every = 3;
    config.eval_every = 4;
    for optimizer in ["adamw", "zero_one_adam"] {
        config.optim.optimizer = optimizer.into();
        config.optim.zero_one.var_freeze_step = 4;
        config.optim.zero_one.var_update_scaler = 1;
        config.optim.zero_one.local_step_scaler = 2;
        for bits in [BaseBits::F32, BaseBits::Int8] {
            let whole = tempfile::tempdir().unwrap();
            let (_, expected) =
                run(&config, bits, &data, whole.path(), false, &mut SingleProcess::new(), None);
            let parts = tempfile::tempdir().unwrap();
            // "Killed" after step 4: the newest checkpoint is step 3, so step 4 is redone.
            let (stopped, _) =
                run(&config, bits, &data, parts.path(), false, &mut SingleProcess::new(), Some(4));
            assert_eq!(stopped.steps, 4);
            let (resumed, actual) =
                run(&config, bits, &data, parts.path(), true, &mut SingleProcess::new(), None);
            assert_eq!(resumed.resumed_from, Some(3), "{optimizer} {bits:?}");
            assert_eq!(actual, expected, "{optimizer} {bits:?}: the resumed adapter differs");
            let metrics = trainer::train::metrics::MetricsLog::new(parts.path()).read().unwrap();
            let steps: Vec<usize> = metrics.iter().map(|line| line.step).collect();
            assert_eq!(steps, (1..=8).collect::<Vec<_>>(), "the metrics log repeats or skips steps");
        }
    }
}

#[test]
fn two_ranks_equal_one_process_with_the_same_global_batch() {
    let data = toy_examples(48, 3);
    let mut single = config(5);
    single.micro_batch = 4;
    single.grad_accum = 2;
    single.lora.dropout = 0.0;
    let dir = tempfile::tempdir().unwrap();
    let (_, expected) =
        run(&single, BaseBits::F32, &data, dir.path(), false, &mut SingleProcess::new(), None);

    let mut ddp = single.clone();
    ddp.micro_batch = 2;
    ddp.grad_accum = 2;
    let ddp_dir = tempfile::tempdir().unwrap();
    let ranks =
        ThreadGroup::run(2, |comm| Ok(run(&ddp, BaseBits::F32, &data, ddp_dir.path(), false, comm, None).1))
            .unwrap();
    assert_eq!(ranks[0], ranks[1], "ranks ended with different adapters");
    let max_diff = max_abs_diff(&ranks[0], &expected);
    assert!(max_diff < 1e-5, "2-rank adapter differs from the single-process one by {max_diff}");
}

#[test]
fn zero_one_adam_reaches_a_loss_comparable_to_adamw() {
    let data = toy_examples(64, 4);
    let mut config = config(60);
    config.lora.targets = ALL_LINEAR.iter().map(|name| name.to_string()).collect();
    config.optim.lr = 1e-2;
    let adamw_dir = tempfile::tempdir().unwrap();
    let (adamw, _) =
        run(&config, BaseBits::F32, &data, adamw_dir.path(), false, &mut SingleProcess::new(), None);
    config.optim.optimizer = "zero_one_adam".into();
    // Without bias correction (DeepSpeed's 0/1 Adam has none) the first updates are several times
    // larger than Adam's, so it runs at a lower peak learning rate.
    config.optim.lr = 3e-3;
    config.optim.zero_one.var_freeze_step = 20;
    config.optim.zero_one.local_step_scaler = 10;
    let zero_one_dir = tempfile::tempdir().unwrap();
    let ranks = ThreadGroup::run(2, |comm| {
        let mut config = config.clone();
        config.grad_accum = 1;
        Ok(run(&config, BaseBits::F32, &data, zero_one_dir.path(), false, comm, None).0.final_loss)
    })
    .unwrap();
    assert!(
        ranks[0] < 1.5 * adamw.final_loss + 0.1,
        "0/1 Adam ended at loss {}, AdamW at {}",
        ranks[0],
        adamw.final_loss
    );
}

#[test]
fn gradient_checkpointing_gives_the_same_training_as_keeping_activations() {
    let data = toy_examples(32, 5);
    let mut config = config(4);
    config.lora.dropout = 0.0;
    config.lora.targets = ALL_LINEAR.iter().map(|name| name.to_string()).collect();
    config.gradient_checkpointing = true;
    let dir = tempfile::tempdir().unwrap();
    let (_, checkpointed) =
        run(&config, BaseBits::Nf4, &data, dir.path(), false, &mut SingleProcess::new(), None);
    config.gradient_checkpointing = false;
    let dir = tempfile::tempdir().unwrap();
    let (_, kept) = run(&config, BaseBits::Nf4, &data, dir.path(), false, &mut SingleProcess::new(), None);
    let max_diff = max_abs_diff(&checkpointed, &kept);
    assert!(max_diff < 1e-5, "checkpointed training differs by {max_diff}");
    assert!(checkpointed.iter().flatten().any(|&v| v != 0.0));
}

#[test]
fn replaying_the_kept_frozen_products_trains_as_recomputing_them() {
    let data = toy_examples(32, 5);
    let cases = [
        (BaseBits::Int8, Int8Matmul::Dequantized),
        (BaseBits::Int8, Int8Matmul::LlmInt8),
        (BaseBits::Nf4, Int8Matmul::Dequantized),
        (BaseBits::F32, Int8Matmul::Dequantized),
    ];
    for (bits, int8_matmul) in cases {
        // LoRA on q/k/v (their base products, o and the MLP are replayed), with dropout.
        let mut config = config(3);
        config.int8_matmul = int8_matmul;
        config.gradient_checkpointing = true;
        config.keep_products_mib = 1024;
        let dir = tempfile::tempdir().unwrap();
        let (replayed_summary, replayed) =
            run(&config, bits, &data, dir.path(), false, &mut SingleProcess::new(), None);
        config.keep_products_mib = 0;
        let dir = tempfile::tempdir().unwrap();
        let (recomputed_summary, recomputed) =
            run(&config, bits, &data, dir.path(), false, &mut SingleProcess::new(), None);
        // The kept products come from the first forward pass, whose norms and softmax run on
        // candle's inference kernels, the recomputation's on the differentiable ops: equal up to
        // float rounding, not bit for bit.
        let max_diff = max_abs_diff(&replayed, &recomputed);
        assert!(
            max_diff < 1e-6,
            "{bits:?} {int8_matmul:?}: replayed products train differently by {max_diff}"
        );
        let loss_diff = (replayed_summary.final_loss - recomputed_summary.final_loss).abs();
        let loss_bound = 1e-6 * recomputed_summary.final_loss.abs().max(1.0);
        assert!(loss_diff < loss_bound, "{bits:?} {int8_matmul:?}: final losses differ by {loss_diff}");
        assert!(replayed.iter().flatten().any(|&v| v != 0.0));
    }
}

#[test]
fn a_products_budget_keeps_the_layers_that_fit_and_recomputes_the_rest() {
    let data = toy_examples(8, 9);
    let batch: Vec<&TokenizedExample> = data.iter().collect();
    let mut model = tiny_model(1);
    quantize_base_with(&mut model, BaseBits::Int8, Int8Matmul::Dequantized).unwrap();
    let lora = LoraConfig { rank: 4, alpha: 8.0, dropout: 0.1, ..LoraConfig::default() };
    let adapter = attach(&mut model, &lora, LoraInit::Peft { seed: 3 }).unwrap();
    for pair in &adapter.pairs {
        let b = pair.b.as_tensor();
        let values: Vec<f32> = (0..b.elem_count()).map(|i| (i % 7) as f32 * 0.01 - 0.03).collect();
        pair.b.set(&candle_core::Tensor::from_vec(values, b.shape(), b.device()).unwrap()).unwrap();
    }
    let gradients = |keep_bytes: usize| {
        let result = checkpointed_gradients(&model, &adapter, &batch, 0.1, 5, false, keep_bytes).unwrap();
        adapter.dropout.stop();
        result
    };
    let (_, record) = model
        .layer_forward_recorded(
            0,
            &model
                .embed(&candle_core::Tensor::new(&[[1u32, 2, 3]], &candle_core::Device::Cpu).unwrap())
                .unwrap(),
        )
        .unwrap();
    assert!(record.bytes() > 0);
    let (loss, recomputed) = gradients(0);
    let layers = model.num_layers();
    // Nothing, the first layer only (a budget just under two layers), and every layer kept.
    let rows: usize = batch.iter().map(|example| example.ids.len() - 1).max().unwrap() * batch.len();
    let per_layer = record.bytes() / 3 * rows;
    for keep_bytes in [1, 2 * per_layer - 1, layers * per_layer * 2] {
        let (kept_loss, kept) = gradients(keep_bytes);
        assert!(
            (kept_loss - loss).abs() <= 1e-6 * loss.abs().max(1.0),
            "{keep_bytes}: {kept_loss} vs {loss}"
        );
        let max_diff = max_abs_diff(&kept, &recomputed);
        let largest = recomputed.iter().flatten().fold(0f32, |max, v| max.max(v.abs()));
        assert!(largest > 0.0);
        assert!(
            max_diff <= 1e-5 * largest,
            "{keep_bytes} bytes kept: gradients differ by {max_diff} (largest {largest})"
        );
    }
}

#[test]
fn the_shared_prefix_is_every_rows_common_prompt_start_and_only_when_long_enough() {
    let data = prefixed_examples(4, 20, 3);
    let batch: Vec<&TokenizedExample> = data.iter().collect();
    let common =
        (0..).take_while(|&idx| batch.iter().all(|example| example.ids[idx] == batch[0].ids[idx])).count();
    assert!(common >= 20);
    let expected = common.min(batch.iter().map(|example| example.prompt_len - 1).min().unwrap());
    assert_eq!(shared_prefix_len(&batch), expected);
    // One row has nothing to share with; a short common start is not worth a second stream.
    assert_eq!(shared_prefix_len(&batch[..1]), 0);
    let short = prefixed_examples(4, MIN_SHARED_PREFIX - 2, 3);
    let short: Vec<&TokenizedExample> = short.iter().collect();
    assert_eq!(shared_prefix_len(&short), 0);
    // The prefix never swallows a row's last prompt token, whose logit predicts its answer.
    let mut whole = data[0].clone();
    whole.prompt_len = MIN_SHARED_PREFIX + 2;
    let capped = [&whole, batch[1], batch[2]];
    assert_eq!(shared_prefix_len(&capped), MIN_SHARED_PREFIX + 1);
}

#[test]
fn a_shared_prompt_prefix_gives_the_loss_and_gradients_of_the_unshared_batch() {
    for bits in [BaseBits::F32, BaseBits::Int8, BaseBits::Nf4] {
        let (model, adapter) = adapted_tiny_model(4, bits, 6, |i| ((i * 29 % 13) as f32 - 6.0) * 0.02);
        let data = prefixed_examples(5, 24, 11);
        let batch: Vec<&TokenizedExample> = data.iter().collect();
        assert!(shared_prefix_len(&batch) >= 24);
        let gradients = |share: bool| {
            let (loss, count) = token_loss(&model, &batch, share).unwrap();
            let grads = loss.backward().unwrap();
            let values: Vec<Vec<f32>> = adapter
                .vars()
                .iter()
                .map(|var| grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap())
                .collect();
            (loss.to_scalar::<f32>().unwrap(), count, values)
        };
        let (shared_loss, shared_count, shared) = gradients(true);
        let (loss, count, unshared) = gradients(false);
        assert_eq!(shared_count, count);
        // Validation's layer-at-a-time value equals the graph's, shared or not.
        for share in [true, false] {
            let (value, value_count) = token_loss_value(&model, &batch, share).unwrap();
            assert_eq!(value_count, count);
            let reference = if share { shared_loss } else { loss };
            assert!(
                (value as f32 - reference).abs() <= 1e-5 * loss.abs(),
                "{bits:?}: {value} vs {reference}"
            );
        }
        assert!((shared_loss - loss).abs() <= 1e-5 * loss.abs(), "{bits:?}: loss {shared_loss} vs {loss}");
        let largest = unshared.iter().flatten().fold(0f32, |max, value| max.max(value.abs()));
        let max_diff = max_abs_diff(&shared, &unshared);
        assert!(largest > 1e-3, "{bits:?}: the gradients are all but zero");
        assert!(max_diff <= 1e-5 * largest, "{bits:?}: gradients differ by {max_diff} (largest {largest})");
    }
}

#[test]
fn checkpointed_training_over_a_shared_prefix_equals_unshared_training_with_activations_kept() {
    let data = prefixed_examples(32, 20, 8);
    let mut config = config(4);
    config.lora.dropout = 0.0;
    config.lora.targets = ALL_LINEAR.iter().map(|name| name.to_string()).collect();
    // f32 products: the two paths sum in different orders, and bf16 rounding of the activations
    // turns those last-bit differences into whole bf16 steps (6e-3 here), hiding what is tested.
    config.compute_dtype = Some(ComputeDtype::F32);
    config.gradient_checkpointing = true;
    config.share_prompt_prefix = true;
    let dir = tempfile::tempdir().unwrap();
    let (_, shared) = run(&config, BaseBits::Nf4, &data, dir.path(), false, &mut SingleProcess::new(), None);
    config.gradient_checkpointing = false;
    config.share_prompt_prefix = false;
    let dir = tempfile::tempdir().unwrap();
    let (_, unshared) =
        run(&config, BaseBits::Nf4, &data, dir.path(), false, &mut SingleProcess::new(), None);
    let max_diff = max_abs_diff(&shared, &unshared);
    assert!(max_diff < 1e-5, "training over a shared prefix differs by {max_diff}");
    assert!(shared.iter().flatten().any(|&v| v != 0.0));
}

#[test]
fn a_nan_loss_stops_naming_the_step_and_keeps_the_last_checkpoint() {
    let data = toy_examples(40, 6);
    let mut config = config(8);
    config.checkpoint_every = 2;
    config.optim.lr = 1e30;
    config.optim.clip = 0.0;
    config.optim.warmup_steps = 0;
    let dir = tempfile::tempdir().unwrap();
    let mut model = tiny_model(1);
    let adapter = attach(&mut model, &config.lora, LoraInit::Peft { seed: config.seed }).unwrap();
    let job = TrainJob {
        config: &config,
        model: &model,
        adapter: &adapter,
        train: &data,
        validation: &data[..4],
        run_dir: dir.path(),
        resume: false,
        base_model: "tiny",
    };
    let error =
        train(&job, &mut SingleProcess::new(), &mut |_| ControlFlow::Continue(())).unwrap_err().to_string();
    assert!(error.contains("at step"), "{error}");
    let checkpoints = trainer::train::checkpoint::CheckpointDir::new(dir.path());
    let latest = checkpoints.latest_dir().unwrap();
    if let Some(latest) = latest {
        // Whatever was saved before the loss went bad is complete and readable.
        let names: Vec<String> = adapter.named_vars().into_iter().map(|(name, _)| name).collect();
        let checkpoint = checkpoints.load_latest(&names).unwrap().unwrap();
        assert!(error.contains(&format!("step {}", checkpoint.state.step)), "{error}");
        assert_eq!(checkpoint.dir, latest);
    } else {
        assert!(error.contains("none"), "{error}");
    }
}

#[test]
fn a_checkpoint_write_killed_midway_leaves_the_previous_one_in_force() {
    let data = toy_examples(40, 7);
    let mut config = config(4);
    config.checkpoint_every = 2;
    let dir = tempfile::tempdir().unwrap();
    let (_, _) = run(&config, BaseBits::F32, &data, dir.path(), false, &mut SingleProcess::new(), Some(2));
    // A later save that died after creating its temporary directory and half a file.
    let tmp = dir.path().join("checkpoints/.tmp-step-0000004");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("adapter_model.safetensors"), b"\x10\x00\x00").unwrap();
    let (resumed, actual) =
        run(&config, BaseBits::F32, &data, dir.path(), true, &mut SingleProcess::new(), None);
    assert_eq!(resumed.resumed_from, Some(2));
    let whole = tempfile::tempdir().unwrap();
    let (_, expected) =
        run(&config, BaseBits::F32, &data, whole.path(), false, &mut SingleProcess::new(), None);
    assert_eq!(actual, expected);
}
