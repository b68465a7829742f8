//! The sizes of a Llama-family decoder that memory depends on: built-in presets, or read from a
//! local model's config (GGUF header or Hugging Face `config.json`) without loading any weights.

use std::path::Path;

use crate::config::LlamaConfig;
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::loader::ModelFormat;

/// Layer sizes of a Llama-family decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelShape {
    pub vocab_size: u64,
    pub hidden_size: u64,
    pub intermediate_size: u64,
    pub num_layers: u64,
    pub num_heads: u64,
    pub num_kv_heads: u64,
    pub head_dim: u64,
    /// The output projection reuses the embedding matrix.
    pub tied_embeddings: bool,
}

/// Built-in shapes by name: the Hugging Face `config.json` values of each model.
pub const PRESETS: [(&str, ModelShape); 3] = [
    (
        "smollm2-135m",
        ModelShape {
            vocab_size: 49_152,
            hidden_size: 576,
            intermediate_size: 1_536,
            num_layers: 30,
            num_heads: 9,
            num_kv_heads: 3,
            head_dim: 64,
            tied_embeddings: true,
        },
    ),
    (
        "llama-3.1-8b",
        ModelShape {
            vocab_size: 128_256,
            hidden_size: 4_096,
            intermediate_size: 14_336,
            num_layers: 32,
            num_heads: 32,
            num_kv_heads: 8,
            head_dim: 128,
            tied_embeddings: false,
        },
    ),
    (
        "llama-3.1-70b",
        ModelShape {
            vocab_size: 128_256,
            hidden_size: 8_192,
            intermediate_size: 28_672,
            num_layers: 80,
            num_heads: 64,
            num_kv_heads: 8,
            head_dim: 128,
            tied_embeddings: false,
        },
    ),
];

/// One linear projection of a decoder layer: its name and `[out, in]` extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Projection {
    pub name: &'static str,
    pub in_features: u64,
    pub out_features: u64,
}

impl Projection {
    pub fn n_params(&self) -> u64 {
        self.in_features * self.out_features
    }
}

impl ModelShape {
    /// The preset called `name` (see [`PRESETS`]), if any.
    pub fn preset(name: &str) -> Option<ModelShape> {
        PRESETS.iter().find(|(preset, _)| preset.eq_ignore_ascii_case(name)).map(|(_, shape)| *shape)
    }

    /// The shape of a parsed model config.
    pub fn from_config(config: &LlamaConfig) -> ModelShape {
        ModelShape {
            vocab_size: config.vocab_size as u64,
            hidden_size: config.hidden_size as u64,
            intermediate_size: config.intermediate_size as u64,
            num_layers: config.num_hidden_layers as u64,
            num_heads: config.num_attention_heads as u64,
            num_kv_heads: config.num_key_value_heads as u64,
            head_dim: config.head_dim as u64,
            tied_embeddings: config.tie_word_embeddings,
        }
    }

    /// Reads the shape of a GGUF file or a Hugging Face folder; no tensor data is read.
    pub fn read(path: &Path) -> Result<ModelShape> {
        read_model_config(path).map(|config| ModelShape::from_config(&config))
    }

    /// Width of the query projection output.
    pub fn q_dim(&self) -> u64 {
        self.num_heads * self.head_dim
    }

    /// Width of the key and value projection outputs.
    pub fn kv_dim(&self) -> u64 {
        self.num_kv_heads * self.head_dim
    }

    /// The seven projections of one decoder layer, attention first.
    pub fn projections(&self) -> [Projection; 7] {
        let (hidden, inter) = (self.hidden_size, self.intermediate_size);
        let projection = |name, in_features, out_features| Projection { name, in_features, out_features };
        [
            projection("q_proj", hidden, self.q_dim()),
            projection("k_proj", hidden, self.kv_dim()),
            projection("v_proj", hidden, self.kv_dim()),
            projection("o_proj", self.q_dim(), hidden),
            projection("gate_proj", hidden, inter),
            projection("up_proj", hidden, inter),
            projection("down_proj", inter, hidden),
        ]
    }

    /// Parameters of all layers' projections (the part bitsandbytes quantizes).
    pub fn n_linear_params(&self) -> u64 {
        self.num_layers * self.projections().iter().map(Projection::n_params).sum::<u64>()
    }

    /// Parameters left unquantized: embedding, untied output projection, and RMSNorm weights.
    pub fn n_unquantized_params(&self) -> u64 {
        let embedding = self.vocab_size * self.hidden_size;
        let lm_head = if self.tied_embeddings { 0 } else { embedding };
        let norms = (2 * self.num_layers + 1) * self.hidden_size;
        embedding + lm_head + norms
    }

    /// Every parameter of the model.
    pub fn n_params(&self) -> u64 {
        self.n_linear_params() + self.n_unquantized_params()
    }
}

/// The hyper-parameters of a local model: a `.gguf` file (header only) or a folder with
/// `config.json`. A Hugging Face rope-scaling block is ignored, since it does not change any size.
pub fn read_model_config(path: &Path) -> Result<LlamaConfig> {
    match ModelFormat::detect(path)? {
        ModelFormat::HfDir => {
            let config_path = path.join("config.json");
            let text = std::fs::read_to_string(&config_path)
                .map_err(|source| Error::Io { path: config_path.clone(), source })?;
            let mut json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|source| Error::Json { path: config_path.clone(), source })?;
            if let Some(object) = json.as_object_mut() {
                object.remove("rope_scaling");
                object.remove("rope_parameters");
            }
            LlamaConfig::from_hf_json(&json.to_string(), &config_path.display().to_string())
        }
        ModelFormat::Gguf => GgufFile::open(path)?.config(),
    }
}
