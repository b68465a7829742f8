//! Framework profiles: the handful of dtype widths and habits of a training stack that decide
//! how many bytes each component of the memory estimate takes.

/// Which forward activations are still alive when the backward pass starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavedActivations {
    /// Gradient checkpointing: each layer keeps only its input; one layer's intermediates are
    /// rebuilt at a time during the backward pass.
    LayerInputs,
    /// As `LayerInputs`, and each layer also keeps the outputs of its frozen products (the base
    /// products of adapted projections included), which the backward pass replays instead of
    /// recomputing (finagent's `keep_products_mib`, with a budget large enough for every layer).
    LayerInputsAndProducts,
    /// Every layer keeps every intermediate of its forward pass.
    Everything,
}

/// The numbers that describe a framework. Widths are bytes per element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    pub name: &'static str,
    /// Width of the frozen parameters that stay unquantized (embedding, output projection, norms)
    /// while training.
    pub frozen_bytes_training: u64,
    /// The same at inference.
    pub frozen_bytes_inference: u64,
    /// A 16-bit base is held at `frozen_bytes_training` while training, like the other frozen
    /// parameters, instead of at 2 bytes.
    pub upcast_16bit_base: bool,
    /// Width of LoRA weights and of their gradients.
    pub adapter_bytes: u64,
    /// Optimizer state per trainable parameter (AdamW: two f32 moments = 8).
    pub optimizer_bytes_per_param: u64,
    /// Width of activations produced by matrix products (the compute dtype).
    pub activation_bytes: u64,
    /// Width of the residual stream (the embedding's dtype: f32 once the embedding is upcast).
    pub residual_bytes: u64,
    pub saved: SavedActivations,
    /// The batch×heads×seq×seq attention scores and probabilities are materialized (eager
    /// attention) rather than streamed (flash / memory-efficient SDPA).
    pub attention_scores: bool,
    /// Further hidden-sized tensors kept per token per layer by a tape that records every
    /// elementwise op (RMSNorm squares and reciprocals, rotary halves, casts).
    pub extra_hidden_per_layer: u64,
    /// Bytes per logit element alive at the loss while training (all copies together).
    pub logit_bytes_training: u64,
    /// Logits are computed only at the positions the loss reads (finagent), not at every position
    /// of the sequence (transformers).
    pub logits_at_loss_positions_only: bool,
    /// The base is loaded in f32 and quantized afterwards, so loading briefly holds the whole f32
    /// model: the peak is the larger of that and the training step.
    pub loads_f32_first: bool,
    /// With checkpointing, copies of the rebuilt layer's intermediates alive at once during its
    /// backward (1: the intermediates; 2: their gradients as well, as candle's tape holds them).
    pub rebuilt_layer_copies: u64,
    /// Fixed cost not tied to the model: CUDA context, cuBLAS workspace, allocator slack.
    pub overhead_bytes: u64,
}

const GIB: u64 = 1 << 30;

/// FinLoRA's GPU stack (transformers + PEFT + bitsandbytes on an A5000, `lora/lora/train_lora.py`).
///
/// - `prepare_model_for_kbit_training` is called for every width, 16-bit included, and casts
///   every fp16/bf16 parameter that is not a `Params4bit` to f32: the embedding, lm_head and
///   norms of the 8/4-bit models, and the whole 16-bit model. Inference loads plain bf16.
/// - fp16 autocast (`fp16=True`), so products are 2 bytes, but the residual stream is f32 since
///   the embedding is; gradient checkpointing is on; SDPA attention keeps no seq×seq scores.
/// - LoRA weights are f32 (PEFT upcasts adapters), their gradients f32, AdamW two f32 moments.
/// - At the loss: the f32 logits the model returns and the f32 gradient flowing back into them
///   (8 bytes per element); the fp16 product and the log-softmax come and go around them.
/// - `overhead_bytes` is calibrated: the one free constant fitted to the paper's table (0.25 GiB).
pub const GPU_FINLORA: Profile = Profile {
    name: "gpu",
    frozen_bytes_training: 4,
    frozen_bytes_inference: 2,
    upcast_16bit_base: true,
    adapter_bytes: 4,
    optimizer_bytes_per_param: 8,
    activation_bytes: 2,
    residual_bytes: 4,
    saved: SavedActivations::LayerInputs,
    attention_scores: false,
    extra_hidden_per_layer: 0,
    logit_bytes_training: 8,
    logits_at_loss_positions_only: false,
    loads_f32_first: false,
    rebuilt_layer_copies: 1,
    overhead_bytes: GIB / 4,
};

/// finagent itself on the CPU (candle), as `finagent train` runs by default: f32 everywhere,
/// layer-wise gradient checkpointing (each layer's input and frozen products kept; one layer's
/// intermediates rebuilt at a time, the attention's scores recomputed rather than kept), logits
/// only at the answer positions, the base
/// resident in its quantized form with f32 embedding and norms, loaded in f32 first.
///
/// Calibrated against `finagent bench train` peak RSS on SmolLM2-135M (batch 8, seq 128, rank 8,
/// 8 answer tokens per row; docs/estimate.md): `extra_hidden_per_layer` counts the elementwise
/// temporaries of our RMSNorm and rotary backward and the LoRA dropout masks, the logits keep the
/// f32 logits, their log-softmax and its gradient (12 bytes), and `overhead_bytes` is the
/// process's resident size before the model (binary, tokenizer, allocator).
pub const CPU_FINAGENT: Profile = Profile {
    name: "cpu",
    frozen_bytes_training: 4,
    frozen_bytes_inference: 4,
    upcast_16bit_base: true,
    adapter_bytes: 4,
    optimizer_bytes_per_param: 8,
    activation_bytes: 4,
    residual_bytes: 4,
    saved: SavedActivations::LayerInputsAndProducts,
    // The fused training attention keeps no scores: its backward pass recomputes them.
    attention_scores: false,
    extra_hidden_per_layer: 8,
    logit_bytes_training: 12,
    logits_at_loss_positions_only: true,
    loads_f32_first: true,
    rebuilt_layer_copies: 2,
    overhead_bytes: 64 << 20,
};

/// The built-in profiles, by name.
pub const PROFILES: [Profile; 2] = [GPU_FINLORA, CPU_FINAGENT];

impl Profile {
    /// The built-in profile called `name`, if any.
    pub fn named(name: &str) -> Option<Profile> {
        PROFILES.iter().find(|profile| profile.name.eq_ignore_ascii_case(name)).copied()
    }
}
