//! Llama hyper-parameters, read from GGUF metadata (`llama.*` keys) or a Hugging Face `config.json`.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use serde::Deserialize;

use crate::error::{Error, Result};

/// Shape and numeric constants of a Llama-family decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rope_theta: f32,
    pub rms_norm_eps: f64,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
}

impl LlamaConfig {
    /// Reads the `llama.*` keys of a GGUF file; `origin` names the file in errors.
    pub fn from_gguf_metadata(metadata: &HashMap<String, Value>, origin: &str) -> Result<Self> {
        let architecture = metadata_string(metadata, "general.architecture", origin)?;
        if architecture != "llama" {
            return Err(Error::UnsupportedArchitecture { origin: origin.into(), architecture });
        }
        let get = |key: &str| metadata_usize(metadata, key, origin);
        let hidden_size = get("llama.embedding_length")?;
        let num_attention_heads = get("llama.attention.head_count")?;
        let num_key_value_heads = match metadata.get("llama.attention.head_count_kv") {
            Some(_) => get("llama.attention.head_count_kv")?,
            None => num_attention_heads,
        };
        let head_dim = match metadata.get("llama.attention.key_length") {
            Some(_) => get("llama.attention.key_length")?,
            None => hidden_size / num_attention_heads.max(1),
        };
        let vocab_size = match metadata.get("llama.vocab_size") {
            Some(_) => get("llama.vocab_size")?,
            None => match metadata.get("tokenizer.ggml.tokens") {
                Some(Value::Array(tokens)) => tokens.len(),
                _ => return Err(missing(origin, "llama.vocab_size")),
            },
        };
        let rope_theta = match metadata.get("llama.rope.freq_base") {
            Some(value) => value.to_f32().map_err(|e| invalid(origin, "llama.rope.freq_base", e))?,
            None => 10_000.0,
        };
        let rms_norm_eps = metadata
            .get("llama.attention.layer_norm_rms_epsilon")
            .ok_or_else(|| missing(origin, "llama.attention.layer_norm_rms_epsilon"))?
            .to_f32()
            .map_err(|e| invalid(origin, "llama.attention.layer_norm_rms_epsilon", e))?;
        let config = Self {
            vocab_size,
            hidden_size,
            intermediate_size: get("llama.feed_forward_length")?,
            num_hidden_layers: get("llama.block_count")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rope_theta,
            rms_norm_eps: rms_norm_eps as f64,
            max_position_embeddings: get("llama.context_length")?,
            // Tied unless the file carries `output.weight`; the loader decides from the tensors.
            tie_word_embeddings: true,
        };
        config.validate(origin)?;
        Ok(config)
    }

    /// Parses a Hugging Face `config.json` of `model_type` llama; `origin` names the file in errors.
    pub fn from_hf_json(json: &str, origin: &str) -> Result<Self> {
        let raw: HfConfig = serde_json::from_str(json)
            .map_err(|e| Error::InvalidConfig { origin: origin.into(), reason: e.to_string() })?;
        if raw.model_type != "llama" {
            return Err(Error::UnsupportedArchitecture {
                origin: origin.into(),
                architecture: raw.model_type,
            });
        }
        let rope = raw.rope_parameters.or(raw.rope_scaling);
        if let Some(rope_type) = rope.as_ref().and_then(|r| r.rope_type.as_deref()) {
            if rope_type != "default" {
                return Err(Error::InvalidConfig {
                    origin: origin.into(),
                    reason: format!("unsupported rope_type {rope_type} (supported: default)"),
                });
            }
        }
        let rope_theta = rope.and_then(|r| r.rope_theta).or(raw.rope_theta).unwrap_or(10_000.0);
        let num_key_value_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        let head_dim = raw.head_dim.unwrap_or(raw.hidden_size / raw.num_attention_heads.max(1));
        let config = Self {
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: raw.num_attention_heads,
            num_key_value_heads,
            head_dim,
            rope_theta: rope_theta as f32,
            rms_norm_eps: raw.rms_norm_eps,
            max_position_embeddings: raw.max_position_embeddings,
            tie_word_embeddings: raw.tie_word_embeddings,
        };
        config.validate(origin)?;
        Ok(config)
    }

    /// Checks the relations the model code relies on (non-zero sizes, whole KV groups, even head dim).
    pub fn validate(&self, origin: &str) -> Result<()> {
        let fail = |reason: String| Err(Error::InvalidConfig { origin: origin.into(), reason });
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, value)| *value == 0) {
            return fail(format!("{name} is 0"));
        }
        if !self.num_attention_heads.is_multiple_of(self.num_key_value_heads) {
            return fail(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return fail(format!("head_dim {} is odd; rotary embeddings need it even", self.head_dim));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return fail(format!("rope_theta {} is not a positive number", self.rope_theta));
        }
        Ok(())
    }

    /// Output width of the query projection (`num_attention_heads * head_dim`).
    pub fn q_dim(&self) -> usize {
        self.num_attention_heads * self.head_dim
    }

    /// Output width of the key and value projections (`num_key_value_heads * head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }
}

/// The subset of a transformers `LlamaConfig` JSON that shapes the model.
#[derive(Deserialize)]
struct HfConfig {
    model_type: String,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rope_theta: Option<f64>,
    /// transformers >= 5 moves `rope_theta` here.
    rope_parameters: Option<HfRope>,
    rope_scaling: Option<HfRope>,
    #[serde(default = "default_rms_norm_eps")]
    rms_norm_eps: f64,
    #[serde(default = "default_max_position_embeddings")]
    max_position_embeddings: usize,
    #[serde(default)]
    tie_word_embeddings: bool,
}

#[derive(Deserialize)]
struct HfRope {
    rope_theta: Option<f64>,
    #[serde(alias = "type")]
    rope_type: Option<String>,
}

fn default_rms_norm_eps() -> f64 {
    1e-6
}

fn default_max_position_embeddings() -> usize {
    2048
}

fn missing(origin: &str, key: &str) -> Error {
    Error::MissingMetadata { origin: origin.into(), key: key.into() }
}

fn invalid(origin: &str, key: &str, reason: impl ToString) -> Error {
    Error::InvalidMetadata { origin: origin.into(), key: key.into(), reason: reason.to_string() }
}

/// A string metadata value, or a clear error when absent or of another type.
pub(crate) fn metadata_string(metadata: &HashMap<String, Value>, key: &str, origin: &str) -> Result<String> {
    let value = metadata.get(key).ok_or_else(|| missing(origin, key))?;
    value.to_string().cloned().map_err(|e| invalid(origin, key, e))
}

/// An integer metadata value of any GGUF integer width, as `usize`.
pub(crate) fn metadata_usize(metadata: &HashMap<String, Value>, key: &str, origin: &str) -> Result<usize> {
    let value = metadata.get(key).ok_or_else(|| missing(origin, key))?;
    let number: i128 = match value {
        Value::U8(v) => (*v).into(),
        Value::I8(v) => (*v).into(),
        Value::U16(v) => (*v).into(),
        Value::I16(v) => (*v).into(),
        Value::U32(v) => (*v).into(),
        Value::I32(v) => (*v).into(),
        Value::U64(v) => (*v).into(),
        Value::I64(v) => (*v).into(),
        other => return Err(invalid(origin, key, format!("expected an integer, found {other:?}"))),
    };
    usize::try_from(number).map_err(|_| invalid(origin, key, format!("{number} is out of range")))
}
