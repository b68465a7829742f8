//! Names of the Llama weights and the `TensorSource` seam the model is built from (GGUF file,
//! safetensors folder or in-memory map), with the shape check shared by all of them.

use std::collections::HashMap;
use std::fmt;

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};

/// A weight inside one decoder layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerWeight {
    AttnNorm,
    Q,
    K,
    V,
    O,
    MlpNorm,
    Gate,
    Up,
    Down,
}

impl LayerWeight {
    /// Every weight of a layer, in loading order.
    pub const ALL: [LayerWeight; 9] = [
        LayerWeight::AttnNorm,
        LayerWeight::Q,
        LayerWeight::K,
        LayerWeight::V,
        LayerWeight::O,
        LayerWeight::MlpNorm,
        LayerWeight::Gate,
        LayerWeight::Up,
        LayerWeight::Down,
    ];

    fn hf_suffix(self) -> &'static str {
        match self {
            LayerWeight::AttnNorm => "input_layernorm",
            LayerWeight::Q => "self_attn.q_proj",
            LayerWeight::K => "self_attn.k_proj",
            LayerWeight::V => "self_attn.v_proj",
            LayerWeight::O => "self_attn.o_proj",
            LayerWeight::MlpNorm => "post_attention_layernorm",
            LayerWeight::Gate => "mlp.gate_proj",
            LayerWeight::Up => "mlp.up_proj",
            LayerWeight::Down => "mlp.down_proj",
        }
    }

    fn gguf_suffix(self) -> &'static str {
        match self {
            LayerWeight::AttnNorm => "attn_norm",
            LayerWeight::Q => "attn_q",
            LayerWeight::K => "attn_k",
            LayerWeight::V => "attn_v",
            LayerWeight::O => "attn_output",
            LayerWeight::MlpNorm => "ffn_norm",
            LayerWeight::Gate => "ffn_gate",
            LayerWeight::Up => "ffn_up",
            LayerWeight::Down => "ffn_down",
        }
    }
}

/// One weight of the model, independent of the file format's naming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightId {
    Embedding,
    FinalNorm,
    LmHead,
    Layer(usize, LayerWeight),
}

impl WeightId {
    /// The Hugging Face transformers name, e.g. `model.layers.3.self_attn.q_proj.weight`.
    pub fn hf_name(self) -> String {
        match self {
            WeightId::Embedding => "model.embed_tokens.weight".into(),
            WeightId::FinalNorm => "model.norm.weight".into(),
            WeightId::LmHead => "lm_head.weight".into(),
            WeightId::Layer(idx, weight) => format!("model.layers.{idx}.{}.weight", weight.hf_suffix()),
        }
    }

    /// The llama.cpp GGUF name, e.g. `blk.3.attn_q.weight`.
    pub fn gguf_name(self) -> String {
        match self {
            WeightId::Embedding => "token_embd.weight".into(),
            WeightId::FinalNorm => "output_norm.weight".into(),
            WeightId::LmHead => "output.weight".into(),
            WeightId::Layer(idx, weight) => format!("blk.{idx}.{}.weight", weight.gguf_suffix()),
        }
    }
}

impl fmt::Display for WeightId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hf_name())
    }
}

/// Where model weights come from. Tensors are returned as f32 in Hugging Face layout.
pub trait TensorSource {
    /// Names the source in error messages (usually a path).
    fn origin(&self) -> String;

    /// The name `id` has in this source (for error messages).
    fn tensor_name(&self, id: WeightId) -> String;

    /// Whether the source holds `id`.
    fn contains(&self, id: WeightId) -> bool;

    /// Reads `id` as f32; a missing weight is [`Error::MissingTensor`] in the source's own naming.
    fn tensor(&mut self, id: WeightId) -> Result<Tensor>;
}

/// Reads `id` and checks it has `shape`.
pub fn load_checked(source: &mut dyn TensorSource, id: WeightId, shape: &[usize]) -> Result<Tensor> {
    let tensor = source.tensor(id)?;
    if tensor.dims() != shape {
        return Err(Error::ShapeMismatch {
            origin: source.origin(),
            name: source.tensor_name(id),
            expected: shape.to_vec(),
            actual: tensor.dims().to_vec(),
        });
    }
    Ok(tensor)
}

/// Tensors held in memory under their Hugging Face names (a loaded safetensors folder, or a test's
/// hand-made model); f16/bf16 are widened to f32 on read.
#[derive(Debug, Clone)]
pub struct TensorMap {
    origin: String,
    tensors: HashMap<String, Tensor>,
}

impl TensorMap {
    /// Wraps `tensors` keyed by Hugging Face names; `origin` names them in errors.
    pub fn new(origin: impl Into<String>, tensors: HashMap<String, Tensor>) -> Self {
        Self { origin: origin.into(), tensors }
    }
}

impl TensorSource for TensorMap {
    fn origin(&self) -> String {
        self.origin.clone()
    }

    fn tensor_name(&self, id: WeightId) -> String {
        id.hf_name()
    }

    fn contains(&self, id: WeightId) -> bool {
        self.tensors.contains_key(&id.hf_name())
    }

    fn tensor(&mut self, id: WeightId) -> Result<Tensor> {
        let name = id.hf_name();
        let tensor = self
            .tensors
            .get(&name)
            .ok_or_else(|| Error::MissingTensor { origin: self.origin.clone(), name: name.clone() })?;
        match tensor.dtype() {
            DType::F32 => Ok(tensor.clone()),
            DType::F16 | DType::BF16 => Ok(tensor.to_dtype(DType::F32)?),
            other => Err(Error::UnsupportedDtype {
                origin: self.origin.clone(),
                name,
                dtype: format!("{other:?}"),
            }),
        }
    }
}
