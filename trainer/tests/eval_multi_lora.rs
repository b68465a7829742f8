//! Several adapters on one base, chosen per batch row: a mixed batch gives every row what its
//! adapter alone (loaded the single-adapter way) gives, the base rows what the base gives, and
//! an adapter for another base is an error naming the misshapen tensor. A frozen adapter
//! ([`Llama::freeze`]) gives the same logits with no autograd graph.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use trainer::generate::{generate_greedy, generate_greedy_batch, GreedyConfig};
use trainer::lora::{attach, LoraConfig, LoraInit};
use trainer::model::{Llama, LogitsPositions};
use trainer::multi_lora::attach_adapters;
use trainer::peft::{load_adapter, save_adapter};

const SEED: u64 = 11;

/// Writes an adapter with random A and B (B is zero at init, which would hide any mix-up).
fn write_adapter(dir: &Path, targets: &[&str], seed: u64) {
    let mut model = common::training::tiny_model(SEED);
    let config = LoraConfig {
        rank: 4,
        alpha: 8.0,
        targets: targets.iter().map(|target| target.to_string()).collect(),
        ..LoraConfig::default()
    };
    let adapter = attach(&mut model, &config, LoraInit::Peft { seed }).unwrap();
    for (idx, pair) in adapter.pairs.iter().enumerate() {
        let shape = pair.b.dims().to_vec();
        let values: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|i| (((i * 31 + idx * 7) as u64 + seed) % 17) as f32 / 17.0 - 0.5)
            .collect();
        pair.b.set(&Tensor::from_vec(values, shape, &Device::Cpu).unwrap()).unwrap();
    }
    save_adapter(&adapter, dir, "tiny").unwrap();
}

fn alone(dir: Option<&Path>) -> Llama {
    let mut model = common::training::tiny_model(SEED);
    if let Some(dir) = dir {
        load_adapter(&mut model, dir).unwrap();
    }
    model
}

fn last_logits(model: &Llama, prompt: &[u32]) -> Vec<f32> {
    model.forward_ids(prompt, 0, None, LogitsPositions::Last).unwrap().get(0).unwrap().to_vec1().unwrap()
}

#[test]
fn a_mixed_batch_equals_each_adapter_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    write_adapter(&first, &["q_proj", "v_proj"], 1);
    write_adapter(&second, &["k_proj", "up_proj", "down_proj"], 2);

    let mut multi_model = common::training::tiny_model(SEED);
    let multi = attach_adapters(&mut multi_model, &[first.clone(), second.clone()]).unwrap();
    assert_eq!(multi.adapters.len(), 2);
    assert!(multi.adapters.iter().all(|adapter| adapter.size_bytes > 0));

    let prompts: Vec<Vec<u32>> =
        vec![vec![4, 9, 20, 31], vec![4, 9, 20, 31], vec![7, 7, 12], vec![40, 3, 3, 5, 6]];
    let choice = [Some(0), Some(1), None, Some(0)];
    let models = [alone(Some(&first)), alone(Some(&second)), alone(None)];
    let reference = |adapter: Option<usize>| &models[adapter.unwrap_or(2)];

    // Logits of one padded forward pass, row by row.
    let config = GreedyConfig { max_new_tokens: 8, stop_ids: vec![] };
    let batched = generate_greedy_batch(&multi_model, &prompts, &config, &mut |rows| {
        multi.router.set_rows(rows.iter().map(|&row| choice[row]).collect());
        Ok(())
    })
    .unwrap();
    for (row, prompt) in prompts.iter().enumerate() {
        let expected = generate_greedy(reference(choice[row]), prompt, &config).unwrap();
        assert_eq!(batched[row], expected, "row {row} (adapter {:?})", choice[row]);
    }
    // The two adapters really differ on the same prompt, so the comparison above can fail.
    assert_ne!(last_logits(&models[0], &prompts[0]), last_logits(&models[1], &prompts[0]));

    for (row, prompt) in prompts.iter().enumerate() {
        multi.router.set_rows(vec![choice[row]]);
        let mixed = last_logits(&multi_model, prompt);
        let expected = last_logits(reference(choice[row]), prompt);
        let worst = mixed.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-5, "row {row}: logits differ by {worst}");
    }
}

#[test]
fn an_adapter_for_another_base_names_the_misshapen_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    write_adapter(&good, &["q_proj"], 3);
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::copy(good.join("adapter_config.json"), bad.join("adapter_config.json")).unwrap();
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(good.join("adapter_model.safetensors"), &Device::Cpu).unwrap();
    let key = "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight";
    tensors.insert(key.to_string(), Tensor::zeros((4, 48), candle_core::DType::F32, &Device::Cpu).unwrap());
    candle_core::safetensors::save(&tensors, bad.join("adapter_model.safetensors")).unwrap();

    let mut model = common::training::tiny_model(SEED);
    let error = attach_adapters(&mut model, &[good.clone(), bad]).unwrap_err().to_string();
    assert!(error.contains(key) && error.contains("[4, 48]") && error.contains("[4, 32]"), "{error}");
    // Nothing was attached: the model still runs as the base.
    let base = alone(None);
    assert_eq!(last_logits(&model, &[4, 5, 6]), last_logits(&base, &[4, 5, 6]));
}

#[test]
fn a_router_for_the_wrong_batch_size_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    write_adapter(&first, &["q_proj"], 5);
    let mut model = common::training::tiny_model(SEED);
    let multi = attach_adapters(&mut model, &[first]).unwrap();
    multi.router.set_rows(vec![Some(0), Some(0)]);
    let error = model.forward_ids(&[4, 5], 0, None, LogitsPositions::Last).unwrap_err().to_string();
    assert!(error.contains("router names 2 rows"), "{error}");
}

#[test]
fn a_frozen_adapter_gives_the_same_logits_without_an_autograd_graph() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    write_adapter(&first, &["q_proj", "v_proj", "down_proj"], 6);
    let tracked = alone(Some(&first));
    let mut frozen = alone(Some(&first));
    frozen.freeze();
    let prompt = [4, 9, 20, 31, 2];
    let ids = Tensor::new(&prompt[..], &Device::Cpu).unwrap().unsqueeze(0).unwrap();

    let with_graph = tracked.forward(&ids, 0, None, LogitsPositions::All).unwrap();
    let without = frozen.forward(&ids, 0, None, LogitsPositions::All).unwrap();
    assert!(with_graph.track_op(), "a loaded adapter is trainable until frozen");
    assert!(!without.track_op(), "a frozen adapter still records a graph");
    let worst =
        (with_graph - &without).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(worst < 1e-4, "freezing changed the logits by {worst}");
    // The adapter is really in use: the base alone answers differently.
    assert_ne!(last_logits(&frozen, &prompt), last_logits(&alone(None), &prompt));

    // Padded batches are for inference only: a trainable adapter is refused, a frozen one runs.
    let pad_ids = Tensor::new(&[[0u32, 4, 9, 20, 31, 2]], &Device::Cpu).unwrap();
    let mut cache = tracked.new_cache();
    let error = tracked.forward_padded(&pad_ids, &[1], &mut cache, LogitsPositions::Last).unwrap_err();
    assert!(error.to_string().contains("inference only"), "{error}");
    let mut cache = frozen.new_cache();
    let padded = frozen.forward_padded(&pad_ids, &[1], &mut cache, LogitsPositions::Last).unwrap();
    let padded: Vec<f32> = padded.flatten_all().unwrap().to_vec1().unwrap();
    let expected = last_logits(&frozen, &prompt);
    let worst = padded.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-4, "padded frozen forward differs by {worst}");
}
