//! A tiny deterministic Llama (2 layers, small dims) and writers for it as a Hugging Face folder
//! and as a GGUF file laid out the way llama.cpp's converter writes one.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use trainer::gguf::permute_rope_rows;
use trainer::model::{Llama, LlamaConfig};
use trainer::weights::{LayerWeight, TensorMap, WeightId};

/// GGUF metadata entries in writing order.
pub type Metadata = Vec<(String, Value)>;

/// Tensors under their file names, in writing order.
pub type NamedTensors = Vec<(String, Tensor)>;

pub fn config() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 64,
        hidden_size: 32,
        intermediate_size: 48,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 8,
        rope_theta: 10_000.0,
        // GGUF stores the epsilon as f32.
        rms_norm_eps: f64::from(1e-5_f32),
        max_position_embeddings: 64,
        tie_word_embeddings: false,
    }
}

/// `n` deterministic values in `center ± spread` (xorshift, seeded per tensor).
fn pseudo_random(n: usize, seed: u64, center: f32, spread: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
            center + spread * (2.0 * unit - 1.0)
        })
        .collect()
}

/// Every weight of `config` under its Hugging Face name, shapes as transformers stores them.
pub fn weights(config: &LlamaConfig) -> HashMap<String, Tensor> {
    let (hidden, ffn, vocab) = (config.hidden_size, config.intermediate_size, config.vocab_size);
    let mut ids = vec![
        (WeightId::Embedding, vec![vocab, hidden]),
        (WeightId::FinalNorm, vec![hidden]),
        (WeightId::LmHead, vec![vocab, hidden]),
    ];
    for idx in 0..config.num_hidden_layers {
        for weight in LayerWeight::ALL {
            let shape = match weight {
                LayerWeight::AttnNorm | LayerWeight::MlpNorm => vec![hidden],
                LayerWeight::Q => vec![config.q_dim(), hidden],
                LayerWeight::K | LayerWeight::V => vec![config.kv_dim(), hidden],
                LayerWeight::O => vec![hidden, config.q_dim()],
                LayerWeight::Gate | LayerWeight::Up => vec![ffn, hidden],
                LayerWeight::Down => vec![hidden, ffn],
            };
            ids.push((WeightId::Layer(idx, weight), shape));
        }
    }
    ids.into_iter()
        .enumerate()
        .map(|(seed, (id, shape))| {
            let n: usize = shape.iter().product();
            let (center, spread) = if shape.len() == 1 { (1.0, 0.2) } else { (0.0, 0.3) };
            let values = pseudo_random(n, seed as u64 + 1, center, spread);
            let tensor = Tensor::from_vec(values, shape, &Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
            (id.hf_name(), tensor)
        })
        .collect()
}

pub fn in_memory_model(config: &LlamaConfig, weights: &HashMap<String, Tensor>) -> Llama {
    let mut source = TensorMap::new("memory", weights.clone());
    Llama::from_source(config.clone(), &mut source, &Device::Cpu).unwrap_or_else(|e| panic!("{e}"))
}

pub fn config_json(config: &LlamaConfig) -> String {
    serde_json::json!({
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "head_dim": config.head_dim,
        "rope_theta": config.rope_theta,
        "rms_norm_eps": config.rms_norm_eps,
        "max_position_embeddings": config.max_position_embeddings,
        "tie_word_embeddings": config.tie_word_embeddings,
        "bos_token_id": null,
        "eos_token_id": [0],
    })
    .to_string()
}

/// Writes `config.json` and the weights in `dtype`, as one `model.safetensors` or as two shards
/// with an index.
pub fn write_hf_dir(
    dir: &Path,
    config: &LlamaConfig,
    weights: &HashMap<String, Tensor>,
    dtype: DType,
    sharded: bool,
) {
    std::fs::write(dir.join("config.json"), config_json(config)).unwrap_or_else(|e| panic!("{e}"));
    let converted: HashMap<String, Tensor> = weights
        .iter()
        .map(|(name, tensor)| (name.clone(), tensor.to_dtype(dtype).unwrap_or_else(|e| panic!("{e}"))))
        .collect();
    if !sharded {
        candle_core::safetensors::save(&converted, dir.join("model.safetensors"))
            .unwrap_or_else(|e| panic!("{e}"));
        return;
    }
    let mut shards: [HashMap<String, Tensor>; 2] = Default::default();
    let mut weight_map = serde_json::Map::new();
    for (name, tensor) in converted {
        let shard_idx = usize::from(name.contains("layers.1.") || name == "lm_head.weight");
        let file = format!("model-0000{}-of-00002.safetensors", shard_idx + 1);
        weight_map.insert(name.clone(), serde_json::Value::String(file));
        shards[shard_idx].insert(name, tensor);
    }
    for (shard_idx, shard) in shards.iter().enumerate() {
        let file = dir.join(format!("model-0000{}-of-00002.safetensors", shard_idx + 1));
        candle_core::safetensors::save(shard, file).unwrap_or_else(|e| panic!("{e}"));
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A small byte-level vocabulary: `<|im_end|>` (control), single letters, `Ġ`, and two merges.
pub fn tokenizer_metadata(vocab_size: usize) -> Metadata {
    let mut tokens = vec!["<|im_end|>".to_string(), "Ġ".to_string(), "ab".to_string(), "Ġa".to_string()];
    tokens.extend(('a'..='z').map(String::from));
    tokens.extend((tokens.len()..vocab_size).map(|idx| format!("x{idx}")));
    let token_types: Vec<Value> =
        (0..tokens.len()).map(|idx| Value::I32(if idx == 0 { 3 } else { 1 })).collect();
    vec![
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("smollm".into())),
        ("tokenizer.ggml.tokens".into(), Value::Array(tokens.into_iter().map(Value::String).collect())),
        ("tokenizer.ggml.token_type".into(), Value::Array(token_types)),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(vec![Value::String("a b".into()), Value::String("Ġ a".into())]),
        ),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(0)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
    ]
}

/// The `general.*`, `llama.*` and tokenizer keys llama.cpp writes for `config`.
pub fn gguf_metadata(config: &LlamaConfig) -> Metadata {
    let as_u32 = |n: usize| Value::U32(n as u32);
    let mut metadata = vec![
        ("general.architecture".to_string(), Value::String("llama".into())),
        ("llama.block_count".into(), as_u32(config.num_hidden_layers)),
        ("llama.context_length".into(), as_u32(config.max_position_embeddings)),
        ("llama.embedding_length".into(), as_u32(config.hidden_size)),
        ("llama.feed_forward_length".into(), as_u32(config.intermediate_size)),
        ("llama.attention.head_count".into(), as_u32(config.num_attention_heads)),
        ("llama.attention.head_count_kv".into(), as_u32(config.num_key_value_heads)),
        ("llama.rope.freq_base".into(), Value::F32(config.rope_theta)),
        ("llama.attention.layer_norm_rms_epsilon".into(), Value::F32(config.rms_norm_eps as f32)),
        ("llama.vocab_size".into(), as_u32(config.vocab_size)),
    ];
    metadata.extend(tokenizer_metadata(config.vocab_size));
    metadata
}

/// The weights under GGUF names with q/k rows permuted as llama.cpp's converter does.
pub fn gguf_tensors(config: &LlamaConfig, weights: &HashMap<String, Tensor>) -> NamedTensors {
    let mut ids = vec![WeightId::Embedding, WeightId::FinalNorm, WeightId::LmHead];
    for idx in 0..config.num_hidden_layers {
        ids.extend(LayerWeight::ALL.map(|weight| WeightId::Layer(idx, weight)));
    }
    ids.into_iter()
        .map(|id| {
            let tensor = &weights[&id.hf_name()];
            let stored = match id {
                WeightId::Layer(_, LayerWeight::Q) => permute_rope_rows(tensor, config.num_attention_heads),
                WeightId::Layer(_, LayerWeight::K) => permute_rope_rows(tensor, config.num_key_value_heads),
                _ => Ok(tensor.clone()),
            };
            (id.gguf_name(), stored.unwrap_or_else(|e| panic!("{e}")))
        })
        .collect()
}

/// Writes a GGUF file with f32 tensors.
pub fn write_gguf(path: &Path, metadata: &[(String, Value)], tensors: &[(String, Tensor)]) {
    let qtensors: Vec<(&str, QTensor)> = tensors
        .iter()
        .map(|(name, tensor)| {
            (name.as_str(), QTensor::quantize(tensor, GgmlDType::F32).unwrap_or_else(|e| panic!("{e}")))
        })
        .collect();
    let metadata_refs: Vec<(&str, &Value)> =
        metadata.iter().map(|(key, value)| (key.as_str(), value)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = qtensors.iter().map(|(name, tensor)| (*name, tensor)).collect();
    let mut file = std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    gguf_file::write(&mut file, &metadata_refs, &tensor_refs).unwrap_or_else(|e| panic!("{e}"));
}
