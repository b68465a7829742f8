//! Adapters move between finagent and Python PEFT: an adapter PEFT wrote (the fixture from
//! `scripts/peft_parity.py write-fixture`) changes finagent's logits as it changes PEFT's, and a
//! finagent adapter round-trips through PEFT's file format. Bad adapters are clear errors.

mod common;

use std::path::{Path, PathBuf};

use common::model_path;

use trainer::lora::{attach, LoraConfig, LoraInit};
use trainer::model::LogitsPositions;
use trainer::peft::{init_from_adapter, load_adapter, save_adapter};

fn fixture() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/peft_adapter")).to_path_buf()
}

#[test]
fn an_adapter_written_by_peft_changes_the_logits_as_in_peft() {
    let Some(model_path) = model_path() else { return };
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("peft_effect.json")).unwrap()).unwrap();
    let ids: Vec<u32> = serde_json::from_value(meta["ids"].clone()).unwrap();
    let positions: Vec<usize> = serde_json::from_value(meta["positions"].clone()).unwrap();
    let stride: usize = serde_json::from_value(meta["vocab_stride"].clone()).unwrap();
    let effect =
        candle_core::safetensors::load(fixture().join("peft_effect.safetensors"), &candle_core::Device::Cpu)
            .unwrap()
            .remove("effect")
            .unwrap();
    let peft_effect: Vec<Vec<f32>> = effect.to_vec2().unwrap();

    let (mut model, _) = trainer::loader::load(&model_path).unwrap();
    let base = model.forward_ids(&ids, 0, None, LogitsPositions::All).unwrap();
    let adapter = load_adapter(&mut model, &fixture()).unwrap();
    assert_eq!(adapter.config.rank, 2);
    assert_eq!(adapter.pairs.len(), 60, "q_proj and v_proj of 30 layers");
    let adapted = model.forward_ids(&ids, 0, None, LogitsPositions::All).unwrap();

    let (mut max_diff, mut max_effect) = (0f32, 0f32);
    for (row, &position) in positions.iter().enumerate() {
        let ours_base: Vec<f32> = base.get(position).unwrap().to_vec1().unwrap();
        let ours_adapted: Vec<f32> = adapted.get(position).unwrap().to_vec1().unwrap();
        for (slot, col) in (0..ours_base.len()).step_by(stride).enumerate() {
            let ours = ours_adapted[col] - ours_base[col];
            let peft = peft_effect[row][slot];
            max_diff = max_diff.max((ours - peft).abs());
            max_effect = max_effect.max(peft.abs());
        }
    }
    assert!(max_effect > 0.1, "the fixture adapter barely changes the logits ({max_effect})");
    // The effect is the difference of two f32 forward passes through 30 layers, each summed in
    // another order than torch's (and in another again by each SIMD width the GEMM picks), so the
    // bound scales with the effect's size: 1e-4, or 5e-6 of the largest effect when that is
    // larger (2e-4 for this fixture's 41 logits). A wrong scaling, key or transpose is off by a
    // sizeable fraction of the effect and still fails.
    let bound = 1e-4f32.max(5e-6 * max_effect);
    assert!(
        max_diff <= bound,
        "adapter effect differs from PEFT's by {max_diff} (bound {bound}, effect up to {max_effect})"
    );
}

#[test]
fn a_finagent_adapter_round_trips_and_mismatches_are_named() {
    let Some(model_path) = model_path() else { return };
    let (mut model, _) = trainer::loader::load(&model_path).unwrap();
    let config = LoraConfig { rank: 3, dropout: 0.0, ..LoraConfig::default() };
    let adapter = attach(&mut model, &config, LoraInit::Peft { seed: 1 }).unwrap();
    for pair in &adapter.pairs {
        let b = pair.b.as_tensor();
        let values: Vec<f32> = (0..b.elem_count()).map(|i| (i % 7) as f32 * 0.01).collect();
        pair.b.set(&candle_core::Tensor::from_vec(values, b.shape(), b.device()).unwrap()).unwrap();
    }
    let ids = [1u32, 504, 2444, 282, 4299];
    let expected = model.forward_ids(&ids, 0, None, LogitsPositions::Last).unwrap();
    let dir = tempfile::tempdir().unwrap();
    save_adapter(&adapter, dir.path(), "default").unwrap();
    let config_json = std::fs::read_to_string(dir.path().join("adapter_config.json")).unwrap();
    assert!(
        config_json.contains("\"peft_type\": \"LORA\"") && config_json.contains("\"r\": 3"),
        "{config_json}"
    );

    let (mut fresh, _) = trainer::loader::load(&model_path).unwrap();
    load_adapter(&mut fresh, dir.path()).unwrap();
    let actual = fresh.forward_ids(&ids, 0, None, LogitsPositions::Last).unwrap();
    let diff = (expected - actual).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(diff, 0.0);

    // The fixture adapter's tensors do not fit a rank-3 config: the error names tensor and shapes.
    let broken = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture().join("adapter_model.safetensors"),
        broken.path().join("adapter_model.safetensors"),
    )
    .unwrap();
    std::fs::write(broken.path().join("adapter_config.json"), config_json.replace("\"r\": 3", "\"r\": 4"))
        .unwrap();
    let (mut fresh, _) = trainer::loader::load(&model_path).unwrap();
    let error = load_adapter(&mut fresh, broken.path()).unwrap_err().to_string();
    assert!(error.contains("lora_A.weight") && error.contains("shape"), "{error}");

    std::fs::write(broken.path().join("adapter_config.json"), "{\"peft_type\": \"LORA\", \"r\": ").unwrap();
    let error = load_adapter(&mut fresh, broken.path()).unwrap_err().to_string();
    assert!(error.contains("adapter_config.json"), "{error}");
}

#[test]
fn training_can_start_from_a_saved_adapter_of_the_same_shape_only() {
    let config = LoraConfig { rank: 4, dropout: 0.0, ..LoraConfig::default() };
    let mut model = common::training::tiny_model(3);
    let saved = attach(&mut model, &config, LoraInit::Peft { seed: 7 }).unwrap();
    for pair in &saved.pairs {
        let b = pair.b.as_tensor();
        let values: Vec<f32> = (0..b.elem_count()).map(|i| (i % 5) as f32 * 0.02 - 0.04).collect();
        pair.b.set(&candle_core::Tensor::from_vec(values, b.shape(), b.device()).unwrap()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    save_adapter(&saved, dir.path(), "tiny").unwrap();
    let values = |adapter: &trainer::lora::LoraAdapter| -> Vec<Vec<f32>> {
        adapter.vars().iter().map(|var| var.as_tensor().flatten_all().unwrap().to_vec1().unwrap()).collect()
    };

    // A run's freshly initialised adapter (another seed, another dropout) takes the saved matrices.
    let mut fresh_model = common::training::tiny_model(3);
    let run_config = LoraConfig { dropout: 0.1, ..config.clone() };
    let fresh = attach(&mut fresh_model, &run_config, LoraInit::Peft { seed: 8 }).unwrap();
    assert_ne!(values(&fresh), values(&saved));
    init_from_adapter(&fresh, dir.path()).unwrap();
    assert_eq!(values(&fresh), values(&saved));

    // Another rank or alpha is refused, naming both settings.
    for other in [LoraConfig { rank: 8, ..config.clone() }, LoraConfig { alpha: 32.0, ..config.clone() }] {
        let mut other_model = common::training::tiny_model(3);
        let adapter = attach(&mut other_model, &other, LoraInit::Peft { seed: 8 }).unwrap();
        let error = init_from_adapter(&adapter, dir.path()).unwrap_err().to_string();
        assert!(error.contains("adapter_config.json") && error.contains("the run's [lora]"), "{error}");
        assert!(error.contains(&format!("rank {}", other.rank)), "{error}");
    }
    let error = init_from_adapter(&fresh, Path::new("/nonexistent-adapter")).unwrap_err().to_string();
    assert!(error.contains("/nonexistent-adapter"), "{error}");
}
