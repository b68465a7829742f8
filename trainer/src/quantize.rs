//! Puts a model's frozen base into 4 or 8 bits: every decoder projection becomes a
//! `kernels::QuantLinear` (NF4 with double quantization, or LLM.int8 row-wise codes), as
//! bitsandbytes' `Linear4bit` / `Linear8bitLt` replace them under transformers. The embedding,
//! norms and LM head stay f32, as bitsandbytes leaves them; for inference
//! ([`quantize_for_inference`]) an LM head whose f32 values are exactly the dequantization of
//! GGUF Q8_0 blocks is kept as those blocks instead, the same weights in a quarter of the bytes.

use std::fmt;
use std::str::FromStr;

use candle_core::{Module, Tensor};
use kernels::{
    Compute, FourBitConfig, FourBitTensor, Int8LinearConfig, Int8Weight, Q8_0Weight, QuantInput, QuantLinear,
    QuantWeight,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::linear::LinearLayer;
use crate::model::Llama;

/// Precision of the frozen base weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseBits {
    /// f32, as loaded.
    #[default]
    F32,
    /// LLM.int8 row-wise int8 codes (`load_in_8bit`).
    Int8,
    /// NF4, blocks of 64, double-quantized absmax (`load_in_4bit`, QLoRA's setting).
    Nf4,
}

impl BaseBits {
    /// 32, 8 or 4.
    pub fn bits(self) -> u32 {
        match self {
            BaseBits::F32 => 32,
            BaseBits::Int8 => 8,
            BaseBits::Nf4 => 4,
        }
    }

    /// From 32 (or 16, which finagent runs in f32), 8 or 4.
    pub fn from_bits(bits: u32) -> Result<Self> {
        match bits {
            32 | 16 => Ok(BaseBits::F32),
            8 => Ok(BaseBits::Int8),
            4 => Ok(BaseBits::Nf4),
            other => Err(Error::InvalidInput {
                reason: format!("base precision must be 4, 8, 16 or 32 bits, got {other}"),
            }),
        }
    }
}

impl fmt::Display for BaseBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.bits())
    }
}

impl FromStr for BaseBits {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let bits = text.trim().parse::<u32>().map_err(|_| Error::InvalidInput {
            reason: format!("base precision must be 4, 8, 16 or 32 bits, got {text:?}"),
        })?;
        BaseBits::from_bits(bits)
    }
}

/// How an 8-bit base computes its forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Int8Matmul {
    /// f32 activations times the int8 weight dequantized (row scale applied) in panels: the
    /// weight is the only thing quantized.
    #[default]
    Dequantized,
    /// As bitsandbytes' `Linear8bitLt` under transformers' `load_in_8bit`: activations rounded to
    /// f16 and quantized row-wise to int8, columns holding a value of magnitude 6.0 or more
    /// computed in f32 instead, int32 products (AVX-512 VNNI where the CPU has it). Backward is
    /// the dequantized one in both modes.
    LlmInt8,
}

impl Int8Matmul {
    pub fn name(self) -> &'static str {
        match self {
            Int8Matmul::Dequantized => "dequantized",
            Int8Matmul::LlmInt8 => "llm-int8",
        }
    }

    fn config(self) -> Option<Int8LinearConfig> {
        match self {
            Int8Matmul::Dequantized => None,
            Int8Matmul::LlmInt8 => Some(Int8LinearConfig::default()),
        }
    }
}

/// The arithmetic of a quantized base's many-row products (training's forward and backward,
/// prompt prefill); one-token decoding always reads the weight in f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDtype {
    /// f32 products and sums, as the peer's `bnb_4bit_compute_dtype=torch.float32`.
    #[default]
    F32,
    /// Activations and decoded weights rounded to bf16, products summed in f32 (AVX-512 BF16's
    /// `vdpbf16ps`): QLoRA's and FinLoRA's `bnb_4bit_compute_dtype=torch.bfloat16`. Runs in f32
    /// on a CPU without AVX-512 BF16 ([`ComputeDtype::runs_here`]).
    Bf16,
}

impl ComputeDtype {
    pub fn name(self) -> &'static str {
        self.kernel().name()
    }

    /// What the products compute in on this CPU.
    pub fn runs_here(self) -> ComputeDtype {
        match self.kernel().runs_as(kernels::Isa::detect()) {
            Compute::F32 => ComputeDtype::F32,
            Compute::Bf16 => ComputeDtype::Bf16,
        }
    }

    fn kernel(self) -> Compute {
        match self {
            ComputeDtype::F32 => Compute::F32,
            ComputeDtype::Bf16 => Compute::Bf16,
        }
    }
}

impl FromStr for ComputeDtype {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "f32" => Ok(ComputeDtype::F32),
            "bf16" => Ok(ComputeDtype::Bf16),
            other => Err(Error::InvalidInput {
                reason: format!("compute dtype must be f32 or bf16, got {other:?}"),
            }),
        }
    }
}

/// A frozen quantized projection behind the model's linear-layer seam.
#[derive(Debug)]
pub struct QuantizedLinear {
    inner: QuantLinear,
}

impl QuantizedLinear {
    /// Quantizes a dense `[out, in]` f32 weight; an int8 one computes its forward as
    /// `int8_matmul` says, and the many-row products run in `compute`.
    pub fn quantize(
        weight: &Tensor,
        bits: BaseBits,
        int8_matmul: Int8Matmul,
        compute: ComputeDtype,
    ) -> Result<Self> {
        let (out_features, in_features) = weight.dims2()?;
        let values: Vec<f32> = weight.flatten_all()?.to_vec1()?;
        let quantized = match bits {
            BaseBits::Nf4 => QuantWeight::FourBit(
                FourBitTensor::quantize(&values, &[out_features, in_features], &FourBitConfig::default())
                    .map_err(quant_error)?,
            ),
            BaseBits::Int8 => QuantWeight::Int8(
                Int8Weight::quantize(&values, out_features, in_features, QuantInput::AsIs)
                    .map_err(quant_error)?,
            ),
            BaseBits::F32 => {
                return Err(Error::InvalidInput { reason: "an f32 base is not quantized".into() })
            }
        };
        let llm_int8 = if bits == BaseBits::Int8 { int8_matmul.config() } else { None };
        let inner = QuantLinear::new(quantized, None)?
            .with_llm_int8(llm_int8)
            .map_err(quant_error)?
            .with_compute(compute.kernel());
        Ok(QuantizedLinear { inner })
    }

    /// The quantized weight.
    pub fn weight(&self) -> &QuantWeight {
        self.inner.weight()
    }
}

fn quant_error(error: kernels::Error) -> Error {
    Error::InvalidInput { reason: format!("cannot quantize weight: {error}") }
}

impl LinearLayer for QuantizedLinear {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.inner.forward(xs)
    }

    fn frozen_input_gradient(&self) -> Option<crate::linear::InputGradient> {
        let inner = self.inner.clone();
        Some(std::sync::Arc::new(move |grad: &Tensor| inner.input_gradient(grad)))
    }

    fn in_features(&self) -> usize {
        self.inner.in_features()
    }

    fn out_features(&self) -> usize {
        self.inner.out_features()
    }
}

/// How [`quantize_for_inference`] left the LM head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LmHead {
    /// The f32 matrix as loaded.
    F32,
    /// The GGUF Q8_0 blocks the f32 matrix was dequantized from, multiplied as they are.
    Q8_0,
}

impl LmHead {
    pub fn name(self) -> &'static str {
        match self {
            LmHead::F32 => "f32",
            LmHead::Q8_0 => "q8_0",
        }
    }
}

/// [`quantize_base_with`] for a model that will only answer: with a quantized base, the LM head
/// also goes to its Q8_0 blocks when its f32 values are exactly their dequantization
/// ([`Q8_0Weight::from_f32_exact`]). The logits are then computed from the same weights (only the
/// order of the sums changes) reading 31 MB instead of 113 MB per token on SmolLM2, most of a
/// decoding step's memory traffic. An f32 base keeps everything f32; training keeps the f32 head,
/// whose many-row products the f32 GEMM runs faster.
pub fn quantize_for_inference(model: &mut Llama, bits: BaseBits, int8_matmul: Int8Matmul) -> Result<LmHead> {
    quantize_base_with(model, bits, int8_matmul)?;
    if bits == BaseBits::F32 {
        return Ok(LmHead::F32);
    }
    for (module, slot) in model.linear_layers_mut() {
        if module != "lm_head" {
            continue;
        }
        let Some(weight) = slot.dense_weight() else { return Ok(LmHead::F32) };
        let (out_features, in_features) = weight.dims2()?;
        let values: Vec<f32> = weight.flatten_all()?.to_vec1()?;
        let blocks = Q8_0Weight::from_f32_exact(&values, out_features, in_features);
        // A width that is not whole blocks just means the head is not Q8_0 data.
        let Ok(Some(blocks)) = blocks else { return Ok(LmHead::F32) };
        let inner = QuantLinear::new(QuantWeight::Q8_0(blocks), None)?;
        *slot = Box::new(QuantizedLinear { inner });
        return Ok(LmHead::Q8_0);
    }
    Ok(LmHead::F32)
}

/// Quantizes every dense decoder projection of `model` (not the LM head) to `bits`; a no-op for
/// [`BaseBits::F32`]. Returns the number of layers quantized.
pub fn quantize_base(model: &mut Llama, bits: BaseBits) -> Result<usize> {
    quantize_base_with(model, bits, Int8Matmul::Dequantized)
}

/// [`quantize_base`] with the 8-bit forward chosen by `int8_matmul` (ignored at 4 and 32 bits).
pub fn quantize_base_with(model: &mut Llama, bits: BaseBits, int8_matmul: Int8Matmul) -> Result<usize> {
    quantize_base_computing(model, bits, int8_matmul, ComputeDtype::F32)
}

/// [`quantize_base_with`] whose many-row products run in `compute`. An f32 base is left as it is
/// and must be asked for f32.
pub fn quantize_base_computing(
    model: &mut Llama,
    bits: BaseBits,
    int8_matmul: Int8Matmul,
    compute: ComputeDtype,
) -> Result<usize> {
    if bits == BaseBits::F32 {
        if compute != ComputeDtype::F32 {
            return Err(Error::InvalidInput {
                reason: format!(
                    "compute dtype {} needs a 4- or 8-bit base; a 32-bit base computes in f32",
                    compute.name()
                ),
            });
        }
        return Ok(0);
    }
    let mut count = 0;
    for (module, slot) in model.linear_layers_mut() {
        if module == "lm_head" {
            continue;
        }
        let Some(weight) = slot.dense_weight() else {
            return Err(Error::InvalidInput {
                reason: format!("{module} is not a dense layer and cannot be quantized (quantize before attaching adapters)"),
            });
        };
        let quantized = QuantizedLinear::quantize(weight, bits, int8_matmul, compute)?;
        *slot = Box::new(quantized);
        count += 1;
    }
    Ok(count)
}
