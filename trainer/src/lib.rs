//! Llama-family language models on candle: loading (GGUF or Hugging Face folder), tokenizer,
//! forward pass with a key/value cache, and greedy generation. Later: LoRA over quantized bases.
//!
//! ```no_run
//! # fn main() -> trainer::Result<()> {
//! let (model, tokenizer) = trainer::loader::load(std::path::Path::new("model.gguf"))?;
//! let prompt = tokenizer.encode("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", false)?;
//! let config = trainer::generate::GreedyConfig { max_new_tokens: 32, stop_ids: tokenizer.eos_ids().to_vec() };
//! let answer = trainer::generate::generate_greedy(&model, &prompt, &config)?;
//! println!("{}", tokenizer.decode(&answer)?);
//! # Ok(())
//! # }
//! ```

pub mod attention;
pub mod causal_attention;
pub mod config;
pub mod dist;
pub mod error;
pub mod estimate;
pub mod eval;
pub mod generate;
pub mod gguf;
pub mod gguf_tokenizer;
pub mod hf_quantized;
pub mod linear;
pub mod loader;
pub mod lora;
pub mod lora_update;
pub mod model;
pub mod multi_lora;
pub mod ops;
pub mod optim;
pub mod peft;
pub mod quantize;
pub mod rope;
pub mod score;
mod small_gemm;
#[cfg(test)]
mod test_data;
pub mod tokenizer;
pub mod train;
pub mod weights;

pub use error::{Error, Result};
