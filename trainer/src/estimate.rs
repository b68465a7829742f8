//! Memory estimate for LoRA training and for inference of a Llama-family model over a 16-bit,
//! LLM.int8 or NF4 base: a list of components, each a closed formula in the model's sizes, the
//! run's batch, sequence length and rank, and a framework [`Profile`]'s dtype widths.
//!
//! Training = base weights + quantization constants + unquantized frozen parameters (embedding,
//! lm_head, norms) + LoRA adapters + their gradients + optimizer state + saved activations +
//! logits + overhead. Inference = the same weights at inference widths + adapters + KV cache +
//! last-position logits + overhead. Sizes are bytes; the paper's "GB" are GiB (2^30 bytes, as
//! PyTorch reports them: its bf16 8B model shows as 15.0).
//!
//! Calibrated against FinLoRA's table (docs/estimate.md): Llama 3.1 8B, NER task, batch 8,
//! LoRA on q/k/v; the table gives no sequence length, and its batch 4 → 8 increment (0.40 GiB
//! per 4 sequences) matches about 64 padded tokens per sequence with these formulas, so 64 is
//! the default.

pub mod profile;
pub mod shape;

pub use profile::{Profile, SavedActivations, CPU_FINAGENT, GPU_FINLORA, PROFILES};
pub use shape::{read_model_config, ModelShape, Projection, PRESETS};

use crate::error::{Error, Result};

/// How the base model's projection weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WeightBits {
    /// NF4 with double quantization (QLoRA): 4-bit codes, a u8 absmax per 64 weights, an f32
    /// absmax per 256 of those.
    Four,
    /// LLM.int8: one byte per weight and an f32 scale (SCB) per output row.
    Eight,
    /// bf16 / fp16.
    Sixteen,
}

impl WeightBits {
    /// The width for `bits` = 4, 8 or 16.
    pub fn from_bits(bits: u32) -> Result<WeightBits> {
        match bits {
            4 => Ok(WeightBits::Four),
            8 => Ok(WeightBits::Eight),
            16 => Ok(WeightBits::Sixteen),
            other => Err(Error::InvalidInput {
                reason: format!("unsupported base weight width {other} bits (supported: 4, 8, 16)"),
            }),
        }
    }

    pub fn bits(self) -> u32 {
        match self {
            WeightBits::Four => 4,
            WeightBits::Eight => 8,
            WeightBits::Sixteen => 16,
        }
    }
}

/// Which projections carry a LoRA adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Targets {
    /// q_proj, k_proj, v_proj (FinLoRA's choice).
    Qkv,
    /// All seven projections (QLoRA's choice).
    AllLinear,
}

impl Targets {
    fn includes(self, projection: &Projection) -> bool {
        match self {
            Targets::Qkv => matches!(projection.name, "q_proj" | "k_proj" | "v_proj"),
            Targets::AllLinear => true,
        }
    }
}

/// One run to estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EstimateConfig {
    pub bits: WeightBits,
    pub rank: u64,
    pub batch: u64,
    /// Padded tokens per sequence (prompt and answer together).
    pub seq: u64,
    /// Tokens per sequence the loss reads (the answer and EOS); only profiles that compute logits
    /// at those positions alone use it. `seq` is the conservative choice.
    pub answer_tokens: u64,
    pub targets: Targets,
    pub profile: Profile,
}

/// One named share of the memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub name: &'static str,
    pub bytes: u64,
}

/// The components of one phase and their sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breakdown {
    pub items: Vec<Component>,
    pub total: u64,
}

impl Breakdown {
    fn new(items: Vec<Component>) -> Breakdown {
        let total = items.iter().map(|item| item.bytes).sum();
        Breakdown { items, total }
    }

    /// The bytes of the component called `name`, if present.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.items.iter().find(|item| item.name == name).map(|item| item.bytes)
    }
}

/// Peak memory of LoRA training and of inference for one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryEstimate {
    pub training: Breakdown,
    pub inference: Breakdown,
}

/// Bytes in a GiB, the paper's "GB".
pub const GIB: f64 = (1u64 << 30) as f64;

/// Estimates training and inference memory of `shape` under `config`.
pub fn estimate(shape: &ModelShape, config: &EstimateConfig) -> Result<MemoryEstimate> {
    for (name, value) in [("rank", config.rank), ("batch", config.batch), ("seq", config.seq)] {
        if value == 0 {
            return Err(Error::InvalidInput { reason: format!("{name} must be at least 1, got 0") });
        }
    }
    let profile = &config.profile;
    let (training_weights, constants) = base_weights(shape, config.bits, profile, Phase::Training);
    let (inference_weights, _) = base_weights(shape, config.bits, profile, Phase::Inference);
    let n_adapter = adapter_params(shape, config.targets, config.rank);
    let tokens = config.batch * config.seq;
    let logit_rows = if profile.logits_at_loss_positions_only {
        config.batch * config.answer_tokens.clamp(1, config.seq)
    } else {
        tokens
    };
    let unquantized = shape.n_unquantized_params();

    let training = Breakdown::new(vec![
        component("base weights", training_weights),
        component("quantization constants", constants),
        component("embeddings, lm_head, norms", unquantized * profile.frozen_bytes_training),
        component("lora adapters", n_adapter * profile.adapter_bytes),
        component("adapter gradients", n_adapter * profile.adapter_bytes),
        component("optimizer state", n_adapter * profile.optimizer_bytes_per_param),
        component("activations", tokens * saved_bytes_per_token(shape, config)),
        component("logits", logit_rows * shape.vocab_size * profile.logit_bytes_training),
        component("overhead", profile.overhead_bytes),
    ]);
    let training = with_load_peak(training, shape, profile);
    let kv_cache = tokens * shape.num_layers * 2 * shape.kv_dim() * profile.activation_bytes;
    let inference = Breakdown::new(vec![
        component("base weights", inference_weights),
        component("quantization constants", constants),
        component("embeddings, lm_head, norms", unquantized * profile.frozen_bytes_inference),
        component("lora adapters", n_adapter * profile.adapter_bytes),
        component("kv cache", kv_cache),
        component("logits", config.batch * shape.vocab_size * 4),
        component("overhead", profile.overhead_bytes),
    ]);
    Ok(MemoryEstimate { training, inference })
}

/// Adds the part of loading that exceeds the training step when the base is loaded in f32 and
/// quantized afterwards (the peak is the larger of the two).
fn with_load_peak(training: Breakdown, shape: &ModelShape, profile: &Profile) -> Breakdown {
    if !profile.loads_f32_first {
        return training;
    }
    let f32_model = shape.n_params() * 4 + profile.overhead_bytes;
    let excess = f32_model.saturating_sub(training.total);
    let mut items = training.items;
    items.push(component("loading (f32 before quantizing)", excess));
    Breakdown::new(items)
}

fn component(name: &'static str, bytes: u64) -> Component {
    Component { name, bytes }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Training,
    Inference,
}

/// Bytes of the projection weights and of their quantization constants. bitsandbytes quantizes
/// each weight tensor on its own, so blocks and rows are counted per projection.
fn base_weights(shape: &ModelShape, bits: WeightBits, profile: &Profile, phase: Phase) -> (u64, u64) {
    let mut weights = 0;
    let mut constants = 0;
    for projection in shape.projections() {
        let n = projection.n_params();
        let (tensor_weights, tensor_constants) = match bits {
            WeightBits::Four => (n.div_ceil(2), nf4_constants(n)),
            WeightBits::Eight => (n, projection.out_features * 4),
            WeightBits::Sixteen if phase == Phase::Training && profile.upcast_16bit_base => {
                (n * profile.frozen_bytes_training, 0)
            }
            WeightBits::Sixteen => (n * 2, 0),
        };
        weights += tensor_weights;
        constants += tensor_constants;
    }
    (weights * shape.num_layers, constants * shape.num_layers)
}

/// NF4 double-quantization state of one `n`-element tensor: u8 absmax codes per 64-block, an f32
/// absmax per 256 codes, the f32 offset, and the two code tables (16 and 256 f32).
fn nf4_constants(n: u64) -> u64 {
    let n_blocks = n.div_ceil(64);
    n_blocks + n_blocks.div_ceil(256) * 4 + 4 + (16 + 256) * 4
}

/// LoRA parameters: A (rank × in) and B (out × rank) for every targeted projection of every layer.
pub fn adapter_params(shape: &ModelShape, targets: Targets, rank: u64) -> u64 {
    let per_layer: u64 = shape
        .projections()
        .iter()
        .filter(|projection| targets.includes(projection))
        .map(|projection| rank * (projection.in_features + projection.out_features))
        .sum();
    per_layer * shape.num_layers
}

/// Activation bytes per token still alive when the backward pass starts (the logits aside).
fn saved_bytes_per_token(shape: &ModelShape, config: &EstimateConfig) -> u64 {
    let profile = &config.profile;
    let layer = layer_bytes_per_token(shape, config);
    let final_norm = shape.hidden_size * (profile.residual_bytes + profile.activation_bytes);
    match profile.saved {
        // Each layer's input, plus one layer rebuilt during its backward.
        SavedActivations::LayerInputs => {
            shape.num_layers * shape.hidden_size * profile.residual_bytes
                + profile.rebuilt_layer_copies * layer
                + final_norm
        }
        SavedActivations::LayerInputsAndProducts => {
            // Every projection's output (an adapted one's base product too).
            let products: u64 = shape.projections().iter().map(|projection| projection.out_features).sum();
            shape.num_layers
                * (shape.hidden_size * profile.residual_bytes + products * profile.activation_bytes)
                + profile.rebuilt_layer_copies * layer
                + final_norm
        }
        SavedActivations::Everything => shape.num_layers * layer + final_norm,
    }
}

/// Everything one decoder layer's backward needs, per token:
/// - residual stream in and after attention (2·hidden, residual width);
/// - two RMSNorm outputs, q/k/v outputs, rotated q/k, attention output, o_proj and down_proj
///   outputs, and the MLP's gate, up, SiLU(gate) and product (compute width);
/// - per adapter: the (dropout) copy of its input and the rank-wide A output;
/// - with eager attention: scores and probabilities, 2·heads·seq per token;
/// - the profile's extra hidden-sized elementwise intermediates.
fn layer_bytes_per_token(shape: &ModelShape, config: &EstimateConfig) -> u64 {
    let profile = &config.profile;
    let hidden = shape.hidden_size;
    let (q, kv) = (shape.q_dim(), shape.kv_dim());
    let attention = hidden + (q + 2 * kv) + (q + kv) + q + hidden;
    let mlp = hidden + 4 * shape.intermediate_size + hidden;
    let adapters: u64 = shape
        .projections()
        .iter()
        .filter(|projection| config.targets.includes(projection))
        .map(|projection| projection.in_features + config.rank)
        .sum();
    let scores = if profile.attention_scores { 2 * shape.num_heads * config.seq } else { 0 };
    let compute_elements = attention + mlp + adapters + scores + profile.extra_hidden_per_layer * hidden;
    2 * hidden * profile.residual_bytes + compute_elements * profile.activation_bytes
}
