//! Reading a llama.cpp GGUF file: header and metadata, an up-front truncation check, and a
//! `TensorSource` that dequantizes to f32 and undoes llama.cpp's q/k row permutation.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};

use crate::config::LlamaConfig;
use crate::error::{without_backtrace, Error, Result};
use crate::weights::{LayerWeight, TensorSource, WeightId};

/// An opened GGUF file whose header has been read and whose tensors all lie inside the file.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    content: Content,
    reader: BufReader<File>,
}

impl GgufFile {
    /// Opens `path`, reads its header and checks every tensor's bytes are present.
    pub fn open(path: &Path) -> Result<Self> {
        let io_error = |source| Error::Io { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(io_error)?;
        let file_bytes = file.metadata().map_err(io_error)?.len();
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader)
            .map_err(|e| Error::GgufHeader { path: path.to_path_buf(), source: without_backtrace(e) })?;
        check_tensor_extents(path, &content, file_bytes)?;
        Ok(Self { path: path.to_path_buf(), content, reader })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed header: metadata and tensor table.
    pub fn content(&self) -> &Content {
        &self.content
    }

    /// The file's metadata value for `key`, if any.
    pub fn metadata(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    /// The model hyper-parameters from the `llama.*` keys; the embeddings count as tied unless the
    /// file carries `output.weight`.
    pub fn config(&self) -> Result<LlamaConfig> {
        let mut config = LlamaConfig::from_gguf_metadata(&self.content.metadata, &self.origin())?;
        config.tie_word_embeddings = !self.contains(WeightId::LmHead);
        Ok(config)
    }

    fn read_f32(&mut self, name: &str) -> Result<Tensor> {
        let origin = self.origin();
        let qtensor = self.content.tensor(&mut self.reader, name, &Device::Cpu).map_err(|e| {
            Error::TensorRead { origin: origin.clone(), name: name.into(), source: without_backtrace(e) }
        })?;
        qtensor.dequantize(&Device::Cpu).map_err(|e| Error::TensorRead {
            origin,
            name: name.into(),
            source: without_backtrace(e),
        })
    }
}

impl TensorSource for GgufFile {
    fn origin(&self) -> String {
        self.path.display().to_string()
    }

    fn tensor_name(&self, id: WeightId) -> String {
        id.gguf_name()
    }

    fn contains(&self, id: WeightId) -> bool {
        self.content.tensor_infos.contains_key(&id.gguf_name())
    }

    fn tensor(&mut self, id: WeightId) -> Result<Tensor> {
        let name = id.gguf_name();
        if !self.content.tensor_infos.contains_key(&name) {
            return Err(Error::MissingTensor { origin: self.origin(), name });
        }
        let tensor = self.read_f32(&name)?;
        let heads_key = match id {
            WeightId::Layer(_, LayerWeight::Q) => "llama.attention.head_count",
            WeightId::Layer(_, LayerWeight::K) => "llama.attention.head_count_kv",
            _ => return Ok(tensor),
        };
        let n_heads = match crate::config::metadata_usize(&self.content.metadata, heads_key, &self.origin()) {
            Ok(n_heads) => n_heads,
            // Files without `head_count_kv` use as many KV heads as query heads.
            Err(_) => crate::config::metadata_usize(
                &self.content.metadata,
                "llama.attention.head_count",
                &self.origin(),
            )?,
        };
        unpermute_rope_rows(&tensor, n_heads).map_err(|e| Error::TensorRead {
            origin: self.origin(),
            name,
            source: without_backtrace(e),
        })
    }
}

/// Undoes llama.cpp's `permute` of q/k projection rows (`convert_hf_to_gguf.py`), as transformers
/// does when loading a GGUF: within each head, rows stored as (half, pair) go back to (pair, half),
/// so the Hugging Face "rotate half" RoPE applies.
pub fn unpermute_rope_rows(weight: &Tensor, n_heads: usize) -> candle_core::Result<Tensor> {
    let (rows, cols) = weight.dims2()?;
    if n_heads == 0 || rows % (2 * n_heads) != 0 {
        candle_core::bail!("cannot split {rows} projection rows into {n_heads} rotary heads")
    }
    weight.reshape((n_heads, rows / n_heads / 2, 2, cols))?.transpose(1, 2)?.reshape((rows, cols))
}

/// llama.cpp's `permute` of q/k projection rows (the inverse of [`unpermute_rope_rows`]), used to
/// write GGUF files whose attention matches a Hugging Face checkpoint.
pub fn permute_rope_rows(weight: &Tensor, n_heads: usize) -> candle_core::Result<Tensor> {
    let (rows, cols) = weight.dims2()?;
    if n_heads == 0 || rows % (2 * n_heads) != 0 {
        candle_core::bail!("cannot split {rows} projection rows into {n_heads} rotary heads")
    }
    weight.reshape((n_heads, 2, rows / n_heads / 2, cols))?.transpose(1, 2)?.reshape((rows, cols))
}

/// Fails with [`Error::Truncated`] when any tensor's bytes extend past the end of the file, naming
/// the first such tensor, so a cut download is reported before anything is dequantized.
fn check_tensor_extents(path: &Path, content: &Content, file_bytes: u64) -> Result<()> {
    let mut past_end: Vec<(u64, &str)> = Vec::new();
    for (name, info) in &content.tensor_infos {
        let block_size = info.ggml_dtype.block_size() as u64;
        let n_blocks = (info.shape.elem_count() as u64).div_ceil(block_size);
        let n_bytes = n_blocks.saturating_mul(info.ggml_dtype.type_size() as u64);
        let end = content.tensor_data_offset.saturating_add(info.offset).saturating_add(n_bytes);
        if end > file_bytes {
            past_end.push((end, name));
        }
    }
    past_end.sort_unstable();
    match past_end.first() {
        None => Ok(()),
        Some(&(needed_bytes, tensor)) => Err(Error::Truncated {
            path: path.to_path_buf(),
            tensor: tensor.to_string(),
            n_missing: past_end.len(),
            n_tensors: content.tensor_infos.len(),
            needed_bytes,
            file_bytes,
        }),
    }
}
