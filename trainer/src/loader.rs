//! Loading a model and its tokenizer from a GGUF file or a Hugging Face folder (config.json,
//! safetensors weights, tokenizer.json), chosen by what the path is.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::Deserialize;

use crate::config::LlamaConfig;
use crate::error::{without_backtrace, Error, Result};
use crate::gguf::GgufFile;
use crate::gguf_tokenizer::tokenizer_from_gguf;
use crate::model::Llama;
use crate::tokenizer::Tokenizer;
use crate::weights::TensorMap;

/// How a model is stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// A Hugging Face folder with `config.json`, safetensors and `tokenizer.json`.
    HfDir,
    /// A `.gguf` file.
    Gguf,
}

impl ModelFormat {
    /// Which format `path` is; a missing path or anything else is an error naming it.
    pub fn detect(path: &Path) -> Result<Self> {
        if path.is_dir() && path.join("config.json").is_file() {
            Ok(ModelFormat::HfDir)
        } else if path.is_file() && path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("gguf")) {
            Ok(ModelFormat::Gguf)
        } else if !path.exists() {
            Err(Error::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
            })
        } else {
            Err(Error::UnknownModelFormat { path: path.to_path_buf() })
        }
    }
}

/// Loads a GGUF file or a Hugging Face folder onto the CPU, whichever `path` is.
pub fn load(path: &Path) -> Result<(Llama, Tokenizer)> {
    match ModelFormat::detect(path)? {
        ModelFormat::HfDir => load_hf_dir(path),
        ModelFormat::Gguf => load_gguf(path),
    }
}

/// Loads a llama GGUF file: weights dequantized to f32, tokenizer built from its metadata.
pub fn load_gguf(path: &Path) -> Result<(Llama, Tokenizer)> {
    let mut file = GgufFile::open(path)?;
    let config = file.config()?;
    let tokenizer = tokenizer_from_gguf(&file.content().metadata, &path.display().to_string())?;
    let model = Llama::from_source(config, &mut file, &Device::Cpu)?;
    Ok((model, tokenizer))
}

/// Builds only the tokenizer of a GGUF file from its metadata (no tensors are read).
pub fn load_gguf_tokenizer(path: &Path) -> Result<Tokenizer> {
    let file = GgufFile::open(path)?;
    tokenizer_from_gguf(&file.content().metadata, &path.display().to_string())
}

/// Loads a Hugging Face folder: `config.json`, `model.safetensors` (or the shards named by
/// `model.safetensors.index.json`, or every `*.safetensors`), and `tokenizer.json`.
pub fn load_hf_dir(dir: &Path) -> Result<(Llama, Tokenizer)> {
    let model = load_hf_model(dir)?;
    let ids: SpecialIds = read_json(&dir.join("config.json"))?;
    let generation_path = dir.join("generation_config.json");
    let generation_ids: SpecialIds =
        if generation_path.is_file() { read_json(&generation_path)? } else { SpecialIds::default() };
    let mut eos_ids = ids.eos_token_id.map(TokenIds::into_vec).unwrap_or_default();
    eos_ids.extend(generation_ids.eos_token_id.map(TokenIds::into_vec).unwrap_or_default());
    let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json"), ids.bos_token_id, &eos_ids)?;
    Ok((model, tokenizer))
}

/// Loads only the model of a Hugging Face folder (`config.json` and safetensors weights).
pub fn load_hf_model(dir: &Path) -> Result<Llama> {
    let config_path = dir.join("config.json");
    let config_json = std::fs::read_to_string(&config_path)
        .map_err(|source| Error::Io { path: config_path.clone(), source })?;
    let config = LlamaConfig::from_hf_json(&config_json, &config_path.display().to_string())?;
    let mut tensors = HashMap::new();
    for shard in safetensors_files(dir)? {
        let shard_tensors = candle_core::safetensors::load(&shard, &Device::Cpu)
            .map_err(|e| Error::Safetensors { path: shard.clone(), source: without_backtrace(e) })?;
        tensors.extend(shard_tensors);
    }
    let mut source = TensorMap::new(dir.display().to_string(), tensors);
    Llama::from_source(config, &mut source, &Device::Cpu)
}

/// The weight files of `dir`, in a stable order.
pub(crate) fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index_path = dir.join("model.safetensors.index.json");
    if index_path.is_file() {
        let index: SafetensorsIndex = read_json(&index_path)?;
        let shards: BTreeSet<&String> = index.weight_map.values().collect();
        return Ok(shards.into_iter().map(|shard| dir.join(shard)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|source| Error::Io { path: dir.to_path_buf(), source })?.path();
        if path.extension().is_some_and(|ext| ext == "safetensors") {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::Io {
            path: single,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no *.safetensors weights in folder"),
        });
    }
    Ok(files)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map_err(|source| Error::Json { path: path.to_path_buf(), source })
}

#[derive(Deserialize)]
struct SafetensorsIndex {
    weight_map: HashMap<String, String>,
}

/// BOS/EOS ids as `config.json` and `generation_config.json` give them.
#[derive(Deserialize, Default)]
struct SpecialIds {
    bos_token_id: Option<u32>,
    eos_token_id: Option<TokenIds>,
}

/// `eos_token_id` is a single id or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    fn into_vec(self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![id],
            TokenIds::Many(ids) => ids,
        }
    }
}
