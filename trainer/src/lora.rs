//! LoRA adapters over any [`LinearLayer`]: `y = base(x) + scaling · B(A(dropout(x)))`, with PEFT's
//! initialisation (A Kaiming-uniform with `a = √5`, B zero), scaling (`alpha / r`, or
//! `alpha / √r` for rsLoRA) and module names, so adapters move between finagent and PEFT.

use std::sync::{Arc, Mutex};

use candle_core::{Device, Tensor, Var};
use datasets::SplitMix64;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::linear::{LinearLayer, ProductTape};
use crate::model::Llama;

/// The projections LoRA can target, by their Hugging Face module names.
pub const ALL_LINEAR: [&str; 7] =
    ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

/// FinLoRA's default targets.
pub const DEFAULT_TARGETS: [&str; 3] = ["q_proj", "k_proj", "v_proj"];

/// Shape and placement of a LoRA adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank `r` of the update `B·A`.
    pub rank: usize,
    /// `lora_alpha`.
    pub alpha: f64,
    /// Dropout on the adapter's input during training.
    pub dropout: f32,
    /// Module names (`q_proj`, ...) the adapter wraps in every layer.
    pub targets: Vec<String>,
    /// rsLoRA scaling `alpha / √r` instead of `alpha / r`.
    pub rslora: bool,
}

impl Default for LoraConfig {
    /// FinLoRA's setting: rank 8, alpha 16, dropout 0.05 on q, k, v.
    fn default() -> Self {
        LoraConfig {
            rank: 8,
            alpha: 16.0,
            dropout: 0.05,
            targets: DEFAULT_TARGETS.iter().map(|name| name.to_string()).collect(),
            rslora: false,
        }
    }
}

impl LoraConfig {
    /// The factor applied to `B·A·x`.
    pub fn scaling(&self) -> f64 {
        if self.rslora {
            self.alpha / (self.rank as f64).sqrt()
        } else {
            self.alpha / self.rank as f64
        }
    }

    /// Checks the rank, dropout and target names.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Err(Error::InvalidInput { reason });
        if self.rank == 0 {
            return invalid("lora rank must be at least 1, got 0".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return invalid(format!("lora dropout must be in [0, 1), got {}", self.dropout));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return invalid(format!("lora alpha must be a positive number, got {}", self.alpha));
        }
        if self.targets.is_empty() {
            return invalid("lora needs at least one target module".into());
        }
        if let Some(unknown) = self.targets.iter().find(|target| !ALL_LINEAR.contains(&target.as_str())) {
            return invalid(format!(
                "unknown lora target module {unknown:?} (known: {})",
                ALL_LINEAR.join(", ")
            ));
        }
        Ok(())
    }

    fn targets_module(&self, module: &str) -> bool {
        let leaf = module.rsplit('.').next().unwrap_or(module);
        module != "lm_head" && self.targets.iter().any(|target| target == leaf)
    }
}

/// Elements of a dropout mask drawn by one task.
const MASK_CHUNK: usize = 1 << 15;

/// The dropout switch shared by every layer of one adapter: off for evaluation; during training a
/// seeded generator the loop re-seeds per micro-batch, so runs are repeatable and resumable.
#[derive(Debug, Default)]
pub struct DropoutControl {
    rng: Mutex<Option<SplitMix64>>,
}

impl DropoutControl {
    /// Turns dropout on with a fresh generator.
    pub fn start(&self, seed: u64) {
        *self.lock() = Some(SplitMix64::new(seed));
    }

    /// Turns dropout off.
    pub fn stop(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<SplitMix64>> {
        // A poisoned lock only means another thread panicked mid-draw; the generator is still valid.
        self.rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `xs` with each element zeroed with probability `p` and the rest scaled by `1 / (1 - p)`,
    /// or `xs` itself when dropout is off.
    fn apply(&self, xs: &Tensor, p: f32) -> candle_core::Result<Tensor> {
        match self.mask(xs.elem_count(), p) {
            Some(mask) => xs * Tensor::from_vec(mask, xs.shape(), xs.device())?,
            None => Ok(xs.clone()),
        }
    }

    /// The next dropout mask of `n` elements (0 with probability `p`, else `1 / (1 - p)`), or
    /// `None` when dropout is off.
    fn mask(&self, n: usize, p: f32) -> Option<Vec<f32>> {
        if p == 0.0 {
            return None;
        }
        let mut guard = self.lock();
        let rng = guard.as_mut()?;
        let keep = 1.0 / (1.0 - p);
        let threshold = f64::from(p);
        let start = rng.clone();
        *rng = start.jumped(n as u64);
        drop(guard);
        // The same mask as drawing every element in order, drawn in chunks on rayon's threads.
        let mut mask = vec![0f32; n];
        mask.par_chunks_mut(MASK_CHUNK).enumerate().for_each(|(chunk_idx, chunk)| {
            let chunk_start = start.jumped((chunk_idx * MASK_CHUNK) as u64);
            kernels::fast::dropout_mask(chunk_start.state(), threshold, keep, chunk);
        });
        Some(mask)
    }
}

/// One wrapped module's trainable matrices.
#[derive(Debug, Clone)]
pub struct LoraPair {
    /// Hugging Face module path, e.g. `model.layers.0.self_attn.q_proj`.
    pub module: String,
    /// `lora_A`, `[rank, in_features]`.
    pub a: Var,
    /// `lora_B`, `[out_features, rank]`.
    pub b: Var,
}

impl LoraPair {
    /// PEFT's state-dict key of A (`base_model.model.{module}.lora_A.weight`).
    pub fn key_a(&self) -> String {
        format!("base_model.model.{}.lora_A.weight", self.module)
    }

    /// PEFT's state-dict key of B.
    pub fn key_b(&self) -> String {
        format!("base_model.model.{}.lora_B.weight", self.module)
    }
}

/// An adapter attached to a model: its configuration, its matrices in module order, and the
/// dropout switch its layers share.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    pub config: LoraConfig,
    pub pairs: Vec<LoraPair>,
    pub dropout: Arc<DropoutControl>,
}

impl LoraAdapter {
    /// Every trainable tensor in a fixed order: A then B of each module, modules in model order.
    pub fn vars(&self) -> Vec<&Var> {
        self.pairs.iter().flat_map(|pair| [&pair.a, &pair.b]).collect()
    }

    /// `(key, var)` pairs with PEFT's names, in [`LoraAdapter::vars`] order.
    pub fn named_vars(&self) -> Vec<(String, &Var)> {
        self.pairs.iter().flat_map(|pair| [(pair.key_a(), &pair.a), (pair.key_b(), &pair.b)]).collect()
    }

    /// Number of trainable parameters.
    pub fn num_parameters(&self) -> usize {
        self.vars().iter().map(|var| var.elem_count()).sum()
    }
}

/// A layer plus its low-rank update.
#[derive(Debug)]
pub struct LoraLinear {
    base: Box<dyn LinearLayer>,
    a: Tensor,
    b: Tensor,
    scaling: f64,
    dropout_p: f32,
    dropout: Arc<DropoutControl>,
}

impl LoraLinear {
    /// `base + s·B(A(dropout(xs)))` for the base layer's output `base`.
    fn add_update(&self, xs: &Tensor, base: Tensor) -> candle_core::Result<Tensor> {
        let dims = xs.dims();
        let rows = xs.elem_count() / self.in_features().max(1);
        let trained = self.a.track_op() || self.b.track_op();
        let update = if trained && xs.device().is_cpu() && xs.dtype() == candle_core::DType::F32 {
            // Training: the dropout, both products and the scale as one op.
            let mask = self.dropout.mask(xs.elem_count(), self.dropout_p);
            let input = xs.reshape((rows, self.in_features()))?;
            crate::lora_update::lora_update(&input, &self.a, &self.b, mask, self.scaling as f32)?
        } else {
            let input = self.dropout.apply(xs, self.dropout_p)?.reshape((rows, self.in_features()))?;
            input.matmul(&self.a.t()?)?.matmul(&self.b.t()?)?.affine(self.scaling, 0.0)?
        };
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = self.out_features();
        }
        base + update.reshape(out_dims)?
    }
}

impl LinearLayer for LoraLinear {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.add_update(xs, self.base.forward(xs)?)
    }

    fn forward_taped(&self, xs: &Tensor, tape: &mut ProductTape) -> candle_core::Result<Tensor> {
        self.add_update(xs, self.base.forward_taped(xs, tape)?)
    }

    fn in_features(&self) -> usize {
        self.base.in_features()
    }

    fn out_features(&self) -> usize {
        self.base.out_features()
    }

    fn freeze(&mut self) {
        // Same storage, no variable flag: later `Var::set`s on the adapter no longer reach here.
        self.a = self.a.detach();
        self.b = self.b.detach();
        self.base.freeze();
    }
}

/// A zero-sized stand-in used while a layer is moved into its wrapper.
#[derive(Debug)]
struct Vacant;

impl LinearLayer for Vacant {
    fn forward(&self, _xs: &Tensor) -> candle_core::Result<Tensor> {
        candle_core::bail!("a linear layer was used while being wrapped")
    }

    fn in_features(&self) -> usize {
        0
    }

    fn out_features(&self) -> usize {
        0
    }
}

/// How [`attach`] fills the new matrices.
#[derive(Debug, Clone, Copy)]
pub enum LoraInit {
    /// PEFT's default: A Kaiming-uniform (`a = √5`, bound `1/√in_features`), B zero, so the
    /// adapter starts as the identity update. Drawn from a seeded SplitMix64.
    Peft { seed: u64 },
    /// Given matrices are installed afterwards (loading); both start at zero.
    Zeros,
}

/// Wraps every targeted linear layer of `model` in a [`LoraLinear`] and returns the adapter.
pub fn attach(model: &mut Llama, config: &LoraConfig, init: LoraInit) -> Result<LoraAdapter> {
    config.validate()?;
    let device: Device = model.device().clone();
    let dropout = Arc::new(DropoutControl::default());
    let mut rng = match init {
        LoraInit::Peft { seed } => Some(SplitMix64::new(seed)),
        LoraInit::Zeros => None,
    };
    let mut pairs = Vec::new();
    for (module, slot) in model.linear_layers_mut() {
        if !config.targets_module(&module) {
            continue;
        }
        let (in_features, out_features) = (slot.in_features(), slot.out_features());
        let a_values: Vec<f32> = match rng.as_mut() {
            Some(rng) => {
                let bound = 1.0 / (in_features as f64).sqrt();
                (0..config.rank * in_features)
                    .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
                    .collect()
            }
            None => vec![0.0; config.rank * in_features],
        };
        let a = Var::from_vec(a_values, (config.rank, in_features), &device)?;
        let b = Var::zeros((out_features, config.rank), candle_core::DType::F32, &device)?;
        let base = std::mem::replace(slot, Box::new(Vacant));
        *slot = Box::new(LoraLinear {
            base,
            a: a.as_tensor().clone(),
            b: b.as_tensor().clone(),
            scaling: config.scaling(),
            dropout_p: config.dropout,
            dropout: Arc::clone(&dropout),
        });
        pairs.push(LoraPair { module, a, b });
    }
    if pairs.is_empty() {
        return Err(Error::InvalidInput {
            reason: format!("no linear layer of the model matches lora targets {:?}", config.targets),
        });
    }
    Ok(LoraAdapter { config: config.clone(), pairs, dropout })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_masks_drawn_in_chunks_equal_drawing_in_order() {
        let n = 3 * MASK_CHUNK + 123;
        let control = DropoutControl::default();
        control.start(9);
        let ones = Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap();
        let first: Vec<f32> = control.apply(&ones, 0.25).unwrap().to_vec1().unwrap();
        let second: Vec<f32> = control.apply(&ones, 0.25).unwrap().to_vec1().unwrap();

        let mut rng = SplitMix64::new(9);
        let mut draw =
            || -> Vec<f32> { (0..n).map(|_| if rng.next_f64() < 0.25 { 0.0 } else { 1.0 / 0.75 }).collect() };
        assert_eq!(first, draw());
        assert_eq!(second, draw(), "the generator continues after the whole first mask");
        let dropped = first.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        assert!((dropped - 0.25).abs() < 0.01, "{dropped}");
    }
}
