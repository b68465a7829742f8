//! `config.json` and `generation_config.json` as transformers' `save_pretrained` writes them for a
//! bitsandbytes-quantized Llama: the source config reduced to `LlamaConfig.to_diff_dict()` plus the
//! `quantization_config` block of `BitsAndBytesConfig`.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value as GgufValue;
use serde_json::{json, Map, Value};

use super::QuantizedFormat;
use crate::config::LlamaConfig;

/// The transformers release whose files these reproduce; written as `transformers_version`.
pub const TRANSFORMERS_VERSION: &str = "5.24.0";

/// The model settings `config.json` is built from, as a transformers config dictionary.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    config: Map<String, Value>,
    generation: Option<Map<String, Value>>,
}

impl SourceSettings {
    /// From a folder's `config.json` and, when present, its `generation_config.json`.
    pub fn from_hf_json(config_json: &str, generation_json: Option<&str>) -> serde_json::Result<Self> {
        let config = serde_json::from_str(config_json)?;
        let generation = generation_json.map(serde_json::from_str).transpose()?;
        Ok(SourceSettings { config, generation })
    }

    /// From a GGUF file: the shape config, the special token ids of its tokenizer metadata and its name.
    pub fn from_gguf(config: &LlamaConfig, metadata: &HashMap<String, GgufValue>) -> Self {
        let mut map = Map::new();
        let sizes = [
            ("vocab_size", config.vocab_size),
            ("hidden_size", config.hidden_size),
            ("intermediate_size", config.intermediate_size),
            ("num_hidden_layers", config.num_hidden_layers),
            ("num_attention_heads", config.num_attention_heads),
            ("num_key_value_heads", config.num_key_value_heads),
            ("head_dim", config.head_dim),
            ("max_position_embeddings", config.max_position_embeddings),
        ];
        for (key, size) in sizes {
            map.insert(key.into(), json!(size));
        }
        map.insert("model_type".into(), json!("llama"));
        map.insert("rms_norm_eps".into(), json!(config.rms_norm_eps));
        map.insert(
            "rope_parameters".into(),
            json!({"rope_theta": f64::from(config.rope_theta), "rope_type": "default"}),
        );
        map.insert("tie_word_embeddings".into(), json!(config.tie_word_embeddings));
        let token_keys = [
            ("bos_token_id", "tokenizer.ggml.bos_token_id"),
            ("eos_token_id", "tokenizer.ggml.eos_token_id"),
            ("pad_token_id", "tokenizer.ggml.padding_token_id"),
            ("unk_token_id", "tokenizer.ggml.unknown_token_id"),
        ];
        for (key, gguf_key) in token_keys {
            if let Some(id) = metadata.get(gguf_key).and_then(|value| value.to_u32().ok()) {
                map.insert(key.into(), json!(id));
            }
        }
        // transformers' GGUF loader writes these flags and keeps the file's name under the last key.
        map.insert("output_attentions".into(), json!(false));
        map.insert("output_hidden_states".into(), json!(false));
        map.insert("use_cache".into(), json!(true));
        if let Some(GgufValue::String(name)) = metadata.get("general.name") {
            map.insert("_model_name_or_path".into(), json!(name));
        }
        SourceSettings { config: map, generation: None }
    }
}

/// `config.json`: `LlamaConfig` defaults, overlaid with the source keys that `to_diff_dict` keeps,
/// then the architecture, dtype, quantization block and version save_pretrained sets.
pub fn model_config(settings: &SourceSettings, format: QuantizedFormat) -> Value {
    let source = &settings.config;
    let mut config = llama_defaults(source);
    let base_defaults = pretrained_config_defaults();
    for (key, value) in source {
        let is_base_default = base_defaults.get(key) == Some(value);
        let replaced = matches!(
            key.as_str(),
            "_name_or_path" | "architectures" | "dtype" | "torch_dtype" | "rope_theta" | "rope_scaling"
        );
        if !is_base_default && !replaced {
            config.insert(key.clone(), value.clone());
        }
    }
    config.insert("architectures".into(), json!(["LlamaForCausalLM"]));
    config.insert("dtype".into(), json!("float32"));
    config.insert("quantization_config".into(), quantization_config(format));
    config.insert("transformers_version".into(), json!(TRANSFORMERS_VERSION));
    Value::Object(config)
}

/// `generation_config.json`: the source's own, or what `GenerationConfig.from_model_config` takes
/// from the model config (token ids; output flags and cache use when the source config sets them).
pub fn generation_config(settings: &SourceSettings) -> Value {
    let mut generation = match &settings.generation {
        Some(source) => source.clone(),
        None => {
            let model = model_config(settings, QuantizedFormat::Nf4);
            let mut generation = Map::new();
            generation.insert("_from_model_config".into(), json!(true));
            // Token ids as the model config resolves them, the flags only when the source sets them.
            let token_ids = ["bos_token_id", "eos_token_id", "pad_token_id"].map(|key| (key, model.get(key)));
            let flags = ["output_attentions", "output_hidden_states", "use_cache"]
                .map(|key| (key, settings.config.get(key)));
            for (key, value) in token_ids.into_iter().chain(flags) {
                if let Some(value) = value.filter(|value| !value.is_null()) {
                    generation.insert(key.into(), value.clone());
                }
            }
            generation
        }
    };
    generation.insert("transformers_version".into(), json!(TRANSFORMERS_VERSION));
    Value::Object(generation)
}

/// `BitsAndBytesConfig(...).to_dict()` for the settings finagent writes (compute dtype float32).
fn quantization_config(format: QuantizedFormat) -> Value {
    let is_4bit = format == QuantizedFormat::Nf4;
    json!({
        "_load_in_4bit": is_4bit,
        "_load_in_8bit": !is_4bit,
        "bnb_4bit_compute_dtype": "float32",
        "bnb_4bit_quant_storage": "uint8",
        "bnb_4bit_quant_type": if is_4bit { "nf4" } else { "fp4" },
        "bnb_4bit_use_double_quant": is_4bit,
        "llm_int8_enable_fp32_cpu_offload": false,
        "llm_int8_has_fp16_weight": false,
        "llm_int8_skip_modules": null,
        "llm_int8_threshold": 6.0,
        "load_in_4bit": is_4bit,
        "load_in_8bit": !is_4bit,
        "quant_method": "bitsandbytes",
    })
}

/// `LlamaConfig()` attributes that `to_diff_dict` always writes, with the derived defaults
/// (`head_dim`, `num_key_value_heads`, `rope_parameters`) taken from `source`.
fn llama_defaults(source: &Map<String, Value>) -> Map<String, Value> {
    let get = |key: &str| source.get(key).filter(|value| !value.is_null());
    let n_heads = get("num_attention_heads").and_then(Value::as_u64).unwrap_or(32);
    let hidden_size = get("hidden_size").and_then(Value::as_u64).unwrap_or(4096);
    let rope_parameters = get("rope_parameters").cloned().unwrap_or_else(|| {
        let mut rope = get("rope_scaling").and_then(Value::as_object).cloned().unwrap_or_default();
        rope.insert("rope_theta".into(), get("rope_theta").cloned().unwrap_or(json!(10000.0)));
        rope.entry("rope_type").or_insert(json!("default"));
        rope.remove("type");
        Value::Object(rope)
    });
    let defaults = json!({
        "attention_bias": false,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": hidden_size / n_heads.max(1),
        "hidden_act": "silu",
        "hidden_size": 4096,
        "initializer_range": 0.02,
        "intermediate_size": 11008,
        "max_position_embeddings": 2048,
        "mlp_bias": false,
        "model_type": "llama",
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "num_key_value_heads": n_heads,
        "pad_token_id": null,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-06,
        "rope_parameters": rope_parameters,
        "tie_word_embeddings": false,
        "use_cache": true,
        "vocab_size": 32000,
    });
    match defaults {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// `PretrainedConfig().to_dict()`: a source key with exactly this value is left out.
fn pretrained_config_defaults() -> Map<String, Value> {
    let defaults = json!({
        "chunk_size_feed_forward": 0,
        "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
        "is_encoder_decoder": false,
        "label2id": {"LABEL_0": 0, "LABEL_1": 1},
        "model_type": "",
        "output_attentions": false,
        "output_hidden_states": false,
        "problem_type": null,
        "return_dict": true,
        "transformers_version": TRANSFORMERS_VERSION,
    });
    match defaults {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
