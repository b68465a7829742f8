//! bitsandbytes' quantization formats (NF4, FP4, double quantization, LLM.int8) as plain scalar Rust.
//!
//! These routines are the specification: they reproduce bitsandbytes' CPU numerics bit for bit
//! (see `tests/bnb_parity.rs` and `scripts/gen_bnb_fixtures.py`), and faster SIMD or CUDA
//! versions are to be tested against them. `gguf_dequant` reads the GGUF types a model ships so
//! it can be re-quantized, and `quant_linear` puts a quantized weight into candle's autograd.

/// CUDA versions of dequantization and the quantized matmul, tested against the scalar reference.
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod double_quant;
pub mod dynamic_map;
mod error;
pub mod fast;
pub mod four_bit;
pub mod fp4;
pub mod gguf_dequant;
pub mod int8;
pub mod int8_matmul;
pub mod nf4;
pub mod q8_0;
pub mod quant_linear;
pub mod torch_sum;

pub use double_quant::DoubleQuantAbsmax;
pub use error::{Error, Result};
pub use fast::{Compute, Isa, ProductConfig, ProductPath};
pub use four_bit::{BlockScales, FourBitConfig, FourBitFormat, FourBitTensor};
pub use gguf_dequant::GgufType;
pub use int8::{Int8Activation, Int8Weight, QuantInput};
pub use int8_matmul::{int8_linear_backward_input, int8_linear_forward, Int8LinearConfig};
pub use q8_0::Q8_0Weight;
pub use quant_linear::{product_reference, Direction, QuantLinear, QuantWeight};
