//! Writing a model as the Hugging Face bitsandbytes checkpoint transformers saves after loading it
//! with `load_in_4bit` (NF4, double quant) or `load_in_8bit`: `model.safetensors` byte for byte.
//!
//! The target is `AutoModelForCausalLM.from_pretrained(src, quantization_config=..., dtype=torch.float32)`
//! then `save_pretrained(out)` with transformers 5.24 and bitsandbytes 0.50.2 on the CPU
//! (`scripts/bnb_save_reference.py`). Every decoder projection is quantized; the embedding, the
//! norms and an untied LM head stay F32 (a tied LM head is not written). Per 4-bit projection
//! `P` the file holds `P.weight` (packed codes, U8 `[n/2, 1]`), `P.weight.absmax` (U8 nested codes),
//! `P.weight.nested_absmax`, `P.weight.quant_map`, `P.weight.nested_quant_map` (F32) and
//! `P.weight.quant_state.bitsandbytes__nf4` (the `json.dumps` of the non-tensor state as U8); per
//! 8-bit projection `P.weight` (I8 `[out, in]`), `P.SCB` (F32) and `P.weight_format` (U8 scalar 0).
//! The NF4 codes, nested absmax codes (bitsandbytes' native CPU lookup table) and int8 codes all
//! come from `kernels`.
//! The `safetensors` crate lays the file out as the Python library does (both are the same Rust
//! code): header `{"__metadata__":{"format":"pt"}, ...}` padded with spaces to 8 bytes, tensors
//! sorted by descending dtype then name.

mod config;
mod py_json;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use candle_core::Device;
use kernels::dynamic_map::signed_dynamic_map;
use kernels::nf4::NF4_CODE;
use kernels::{FourBitConfig, FourBitTensor, Int8Weight, QuantInput};
use safetensors::tensor::{Dtype, View};

use crate::config::LlamaConfig;
use crate::error::{without_backtrace, Error, Result};
use crate::gguf::GgufFile;
use crate::gguf_tokenizer::tokenizer_from_gguf;
use crate::loader::ModelFormat;
use crate::weights::{load_checked, LayerWeight, TensorMap, TensorSource, WeightId};

pub use config::TRANSFORMERS_VERSION;

/// The bitsandbytes format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantizedFormat {
    /// `load_in_4bit`: NF4, blocks of 64, double-quantized absmax (QLoRA's setting).
    Nf4,
    /// `load_in_8bit`: LLM.int8 row-wise codes of the f16-rounded weight.
    Int8,
}

impl QuantizedFormat {
    /// 4 or 8.
    pub fn from_bits(bits: u32) -> Result<Self> {
        match bits {
            4 => Ok(QuantizedFormat::Nf4),
            8 => Ok(QuantizedFormat::Int8),
            other => Err(Error::InvalidInput {
                reason: format!("quantized checkpoints have 4 or 8 bits, got {other}"),
            }),
        }
    }

    pub fn bits(self) -> u32 {
        match self {
            QuantizedFormat::Nf4 => 4,
            QuantizedFormat::Int8 => 8,
        }
    }
}

impl fmt::Display for QuantizedFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QuantizedFormat::Nf4 => "nf4",
            QuantizedFormat::Int8 => "int8",
        })
    }
}

/// What [`write_quantized`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Tensors in `model.safetensors`.
    pub n_tensors: usize,
    /// Size of `model.safetensors`.
    pub safetensors_bytes: u64,
    /// Elements of the quantized projection weights.
    pub n_quantized_params: u64,
    /// Bytes those weights take in the file, statistics included.
    pub quantized_bytes: u64,
    /// Elements of the weights kept in F32 (embedding, norms, untied LM head).
    pub n_f32_params: u64,
    /// Every file written, in writing order.
    pub files: Vec<PathBuf>,
}

impl Report {
    /// Bytes per quantized parameter (about 0.53 for NF4 with double quant, 1.0 for int8).
    pub fn bytes_per_quantized_param(&self) -> f64 {
        self.quantized_bytes as f64 / self.n_quantized_params.max(1) as f64
    }
}

/// Reads the model at `source` (a GGUF file or a Hugging Face folder) and writes `out_dir`:
/// `model.safetensors`, `config.json`, `generation_config.json` and the tokenizer files.
/// `out_dir` is created if needed; files already there are overwritten.
pub fn write_quantized(source: &Path, format: QuantizedFormat, out_dir: &Path) -> Result<Report> {
    let mut model = ModelSource::open(source)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::Io { path: out_dir.to_path_buf(), source: e })?;
    let mut tensors: Vec<(String, StoredTensor)> = Vec::new();
    let mut report = Report {
        n_tensors: 0,
        safetensors_bytes: 0,
        n_quantized_params: 0,
        quantized_bytes: 0,
        n_f32_params: 0,
        files: Vec::new(),
    };
    for (id, shape) in weight_shapes(&model.config) {
        let values = load_checked(model.tensors.as_mut(), id, &shape)?.flatten_all()?.to_vec1::<f32>()?;
        if !is_projection(id) {
            report.n_f32_params += values.len() as u64;
            tensors.push((id.hf_name(), StoredTensor::f32(&values, shape)));
            continue;
        }
        let prefix = id.hf_name().trim_end_matches(".weight").to_string();
        let parts = match format {
            QuantizedFormat::Nf4 => nf4_parts(&values, &shape, &prefix)?,
            QuantizedFormat::Int8 => int8_parts(&values, &shape, &prefix)?,
        };
        report.n_quantized_params += values.len() as u64;
        report.quantized_bytes += parts.iter().map(|(_, tensor)| tensor.bytes.len() as u64).sum::<u64>();
        tensors.extend(parts);
    }
    report.n_tensors = tensors.len();
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let weights_path = out_dir.join("model.safetensors");
    safetensors::tensor::serialize_to_file(tensors, Some(metadata), &weights_path).map_err(|e| {
        Error::Io { path: weights_path.clone(), source: std::io::Error::other(e.to_string()) }
    })?;
    report.safetensors_bytes = file_len(&weights_path)?;
    report.files.push(weights_path);
    let model_config = config::model_config(&model.settings, format);
    report.files.push(write_text(out_dir, "config.json", &py_json::to_pretty_sorted(&model_config))?);
    let generation = config::generation_config(&model.settings);
    report.files.push(write_text(
        out_dir,
        "generation_config.json",
        &py_json::to_pretty_sorted(&generation),
    )?);
    report.files.extend(model.write_tokenizer(out_dir)?);
    Ok(report)
}

/// The four tensors of a 4-bit projection plus its packed quant state, as `Params4bit` saves them.
fn nf4_parts(values: &[f32], shape: &[usize], prefix: &str) -> Result<Vec<(String, StoredTensor)>> {
    let plain = FourBitConfig { double_quant: false, ..FourBitConfig::default() };
    let tensor = FourBitTensor::quantize(values, shape, &plain).map_err(quant_error)?;
    let double = kernels::DoubleQuantAbsmax::compress(&tensor.scales().absmax()).map_err(quant_error)?;
    let shape_text: Vec<String> = shape.iter().map(usize::to_string).collect();
    let quant_state = format!(
        "{{\"quant_type\": \"nf4\", \"blocksize\": {}, \"dtype\": \"float32\", \"shape\": [{}], \
         \"nested_blocksize\": {}, \"nested_dtype\": \"float32\", \"nested_offset\": {}}}",
        tensor.blocksize(),
        shape_text.join(", "),
        kernels::double_quant::NESTED_BLOCKSIZE,
        py_json::float_repr(f64::from(double.offset())),
    );
    let codes = tensor.codes().to_vec();
    let n_codes = codes.len();
    Ok(vec![
        (format!("{prefix}.weight"), StoredTensor::u8(codes, vec![n_codes, 1])),
        (format!("{prefix}.weight.absmax"), StoredTensor::u8(double.codes().to_vec(), vec![double.len()])),
        (format!("{prefix}.weight.nested_absmax"), StoredTensor::f32_1d(double.nested_absmax())),
        (format!("{prefix}.weight.quant_map"), StoredTensor::f32_1d(&NF4_CODE)),
        (format!("{prefix}.weight.nested_quant_map"), StoredTensor::f32_1d(&signed_dynamic_map())),
        (
            format!("{prefix}.weight.quant_state.bitsandbytes__nf4"),
            StoredTensor::u8(quant_state.clone().into_bytes(), vec![quant_state.len()]),
        ),
    ])
}

/// The codes, row scales and format flag of an 8-bit projection, as `Linear8bitLt` saves them.
/// `Int8Params` casts the weight to f16 before quantizing.
fn int8_parts(values: &[f32], shape: &[usize], prefix: &str) -> Result<Vec<(String, StoredTensor)>> {
    let &[out_features, in_features] = shape else {
        return Err(Error::InvalidInput {
            reason: format!("{prefix}: int8 weight shape {shape:?} is not 2-d"),
        });
    };
    let weight = Int8Weight::quantize(values, out_features, in_features, QuantInput::RoundToF16)
        .map_err(quant_error)?;
    let codes: Vec<u8> = weight.cb().iter().map(|&code| code.to_le_bytes()[0]).collect();
    Ok(vec![
        (format!("{prefix}.weight"), StoredTensor { dtype: Dtype::I8, shape: shape.to_vec(), bytes: codes }),
        (format!("{prefix}.SCB"), StoredTensor::f32_1d(weight.scb())),
        (format!("{prefix}.weight_format"), StoredTensor::u8(vec![0], Vec::new())),
    ])
}

fn quant_error(error: kernels::Error) -> Error {
    Error::InvalidInput { reason: error.to_string() }
}

/// A tensor's bytes ready for the safetensors writer.
struct StoredTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl StoredTensor {
    fn f32(values: &[f32], shape: Vec<usize>) -> Self {
        let bytes = values.iter().flat_map(|value| value.to_le_bytes()).collect();
        StoredTensor { dtype: Dtype::F32, shape, bytes }
    }

    fn f32_1d(values: &[f32]) -> Self {
        Self::f32(values, vec![values.len()])
    }

    fn u8(bytes: Vec<u8>, shape: Vec<usize>) -> Self {
        StoredTensor { dtype: Dtype::U8, shape, bytes }
    }
}

impl View for StoredTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }

    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// The decoder projections bitsandbytes replaces; everything else is kept in F32.
fn is_projection(id: WeightId) -> bool {
    matches!(
        id,
        WeightId::Layer(
            _,
            LayerWeight::Q
                | LayerWeight::K
                | LayerWeight::V
                | LayerWeight::O
                | LayerWeight::Gate
                | LayerWeight::Up
                | LayerWeight::Down
        )
    )
}

/// Every weight transformers saves for `config` with its Hugging Face shape; a tied LM head is
/// left out, as `save_pretrained` drops it.
fn weight_shapes(config: &LlamaConfig) -> Vec<(WeightId, Vec<usize>)> {
    let (hidden, ffn, vocab) = (config.hidden_size, config.intermediate_size, config.vocab_size);
    let mut shapes = vec![(WeightId::Embedding, vec![vocab, hidden]), (WeightId::FinalNorm, vec![hidden])];
    if !config.tie_word_embeddings {
        shapes.push((WeightId::LmHead, vec![vocab, hidden]));
    }
    for layer_idx in 0..config.num_hidden_layers {
        for weight in LayerWeight::ALL {
            let shape = match weight {
                LayerWeight::AttnNorm | LayerWeight::MlpNorm => vec![hidden],
                LayerWeight::Q => vec![config.q_dim(), hidden],
                LayerWeight::K | LayerWeight::V => vec![config.kv_dim(), hidden],
                LayerWeight::O => vec![hidden, config.q_dim()],
                LayerWeight::Gate | LayerWeight::Up => vec![ffn, hidden],
                LayerWeight::Down => vec![hidden, ffn],
            };
            shapes.push((WeightId::Layer(layer_idx, weight), shape));
        }
    }
    shapes
}

/// An opened model: its tensors, shape config, and what `config.json` is built from.
struct ModelSource {
    path: PathBuf,
    config: LlamaConfig,
    settings: config::SourceSettings,
    tensors: Box<dyn TensorSource>,
    gguf_tokenizer: Option<tokenizers::Tokenizer>,
}

/// Tokenizer files transformers' `tokenizer.save_pretrained` may leave in a folder; copied as is.
const TOKENIZER_FILES: [&str; 7] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
];

impl ModelSource {
    fn open(path: &Path) -> Result<Self> {
        match ModelFormat::detect(path)? {
            ModelFormat::HfDir => Self::open_hf_dir(path),
            ModelFormat::Gguf => Self::open_gguf(path),
        }
    }

    fn open_gguf(path: &Path) -> Result<Self> {
        let file = GgufFile::open(path)?;
        let config = file.config()?;
        let settings = config::SourceSettings::from_gguf(&config, &file.content().metadata);
        let tokenizer = tokenizer_from_gguf(&file.content().metadata, &path.display().to_string())?;
        Ok(ModelSource {
            path: path.to_path_buf(),
            config,
            settings,
            tensors: Box::new(file),
            gguf_tokenizer: Some(tokenizer.inner().clone()),
        })
    }

    fn open_hf_dir(dir: &Path) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config_text = read_text(&config_path)?;
        let config = LlamaConfig::from_hf_json(&config_text, &config_path.display().to_string())?;
        let generation_path = dir.join("generation_config.json");
        let generation_text =
            if generation_path.is_file() { Some(read_text(&generation_path)?) } else { None };
        let settings = config::SourceSettings::from_hf_json(&config_text, generation_text.as_deref())
            .map_err(|source| Error::Json { path: config_path.clone(), source })?;
        let mut tensors = HashMap::new();
        for shard in crate::loader::safetensors_files(dir)? {
            let shard_tensors = candle_core::safetensors::load(&shard, &Device::Cpu)
                .map_err(|e| Error::Safetensors { path: shard.clone(), source: without_backtrace(e) })?;
            tensors.extend(shard_tensors);
        }
        Ok(ModelSource {
            path: dir.to_path_buf(),
            config,
            settings,
            tensors: Box::new(TensorMap::new(dir.display().to_string(), tensors)),
            gguf_tokenizer: None,
        })
    }

    /// Copies a folder's tokenizer files, or writes `tokenizer.json` built from GGUF metadata.
    fn write_tokenizer(&self, out_dir: &Path) -> Result<Vec<PathBuf>> {
        if let Some(tokenizer) = &self.gguf_tokenizer {
            let path = out_dir.join("tokenizer.json");
            tokenizer
                .save(&path, false)
                .map_err(|e| Error::Tokenizer { origin: path.display().to_string(), source: e })?;
            return Ok(vec![path]);
        }
        let mut written = Vec::new();
        for name in TOKENIZER_FILES {
            let from = self.path.join(name);
            if from.is_file() {
                let to = out_dir.join(name);
                std::fs::copy(&from, &to).map_err(|source| Error::Io { path: from.clone(), source })?;
                written.push(to);
            }
        }
        Ok(written)
    }
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

fn write_text(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|source| Error::Io { path: path.clone(), source })?;
    Ok(path)
}

fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?.len())
}
