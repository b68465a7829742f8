//! A tiny random Llama and a learnable toy task for training tests: fast enough to run dozens of
//! steps in a unit test.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use trainer::config::LlamaConfig;
use trainer::model::Llama;
use trainer::train::data::TokenizedExample;
use trainer::weights::{LayerWeight, TensorMap, WeightId};

pub fn tiny_config() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 48,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 8,
        rope_theta: 10000.0,
        rms_norm_eps: 1e-5,
        max_position_embeddings: 64,
        tie_word_embeddings: true,
    }
}

fn random(shape: &[usize], seed: u64, scale: f32) -> Tensor {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let values: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// The same random model for the same seed.
pub fn tiny_model(seed: u64) -> Llama {
    let config = tiny_config();
    let (hidden, ffn) = (config.hidden_size, config.intermediate_size);
    let mut tensors = HashMap::new();
    let mut next = seed;
    let mut add = |id: WeightId, shape: &[usize], scale: f32| {
        next += 1;
        let tensor = if scale == 0.0 {
            Tensor::ones(shape, candle_core::DType::F32, &Device::Cpu).unwrap()
        } else {
            random(shape, next, scale)
        };
        tensors.insert(id.hf_name(), tensor);
    };
    add(WeightId::Embedding, &[config.vocab_size, hidden], 1.0);
    add(WeightId::FinalNorm, &[hidden], 0.0);
    for layer in 0..config.num_hidden_layers {
        let id = |weight| WeightId::Layer(layer, weight);
        add(id(LayerWeight::AttnNorm), &[hidden], 0.0);
        add(id(LayerWeight::MlpNorm), &[hidden], 0.0);
        add(id(LayerWeight::Q), &[config.q_dim(), hidden], 0.3);
        add(id(LayerWeight::K), &[config.kv_dim(), hidden], 0.3);
        add(id(LayerWeight::V), &[config.kv_dim(), hidden], 0.3);
        add(id(LayerWeight::O), &[hidden, config.q_dim()], 0.3);
        add(id(LayerWeight::Gate), &[ffn, hidden], 0.3);
        add(id(LayerWeight::Up), &[ffn, hidden], 0.3);
        add(id(LayerWeight::Down), &[hidden, ffn], 0.3);
    }
    let mut source = TensorMap::new("tiny", tensors);
    Llama::from_source(config, &mut source, &Device::Cpu).unwrap()
}

/// A learnable toy task: the answer is a fixed function of the prompt's first token.
pub fn toy_examples(n: usize, seed: u64) -> Vec<TokenizedExample> {
    let mut state = seed | 1;
    let mut next = |bound: u32| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % u64::from(bound)) as u32
    };
    (0..n)
        .map(|_| {
            let prompt_len = 3 + next(6) as usize;
            let mut ids: Vec<u32> = (0..prompt_len).map(|_| 4 + next(40)).collect();
            let key = ids[0];
            ids.push(4 + (key * 7) % 40);
            ids.push(4 + (key * 3) % 40);
            ids.push(1); // EOS
            TokenizedExample { ids, prompt_len }
        })
        .collect()
}

/// Toy examples that all begin with the same `prefix_len` prompt tokens (an instruction common to
/// a task's prompts), followed by the toy task's prompt and answer.
pub fn prefixed_examples(n: usize, prefix_len: usize, seed: u64) -> Vec<TokenizedExample> {
    let prefix: Vec<u32> = (0..prefix_len as u32).map(|idx| 4 + (idx * 13 + 5) % 40).collect();
    toy_examples(n, seed)
        .into_iter()
        .map(|example| {
            let mut ids = prefix.clone();
            ids.extend(example.ids);
            TokenizedExample { ids, prompt_len: prefix_len + example.prompt_len }
        })
        .collect()
}
