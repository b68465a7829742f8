//! Several LoRA adapters on one frozen base at once, chosen per batch row: each wrapped layer
//! computes `base(x) + s_i · B_i A_i x` for row adapter `i` (or `base(x)` alone), without merging
//! any adapter into the base, so one batch can mix tasks and each row gets what its adapter alone
//! would give.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::linear::LinearLayer;
use crate::lora::LoraConfig;
use crate::model::Llama;
use crate::peft::{read_adapter_config, ADAPTER_WEIGHTS};

/// Which adapter each row of the next forward passes uses (`None`: the base alone). Every
/// wrapped layer of one model shares it.
#[derive(Debug, Default)]
pub struct AdapterRouter {
    rows: Mutex<Vec<Option<usize>>>,
}

impl AdapterRouter {
    /// Sets the adapter of every batch row, in batch order.
    pub fn set_rows(&self, rows: Vec<Option<usize>>) {
        *self.lock() = rows;
    }

    /// The current per-row choice.
    pub fn rows(&self) -> Vec<Option<usize>> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<usize>>> {
        // A poisoned lock only means another thread panicked while setting rows; the list is whole.
        self.rows.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One adapter's matrices for one module.
#[derive(Debug, Clone)]
struct LowRank {
    /// `lora_A`, `[rank, in_features]`.
    a: Tensor,
    /// `lora_B`, `[out_features, rank]`.
    b: Tensor,
    scaling: f64,
}

impl LowRank {
    /// `s · x Aᵀ Bᵀ` for `rows` = `[n, in_features]`, in the order [`crate::lora::LoraLinear`]
    /// computes it, so a row's result is the single adapter's.
    fn update(&self, rows: &Tensor) -> candle_core::Result<Tensor> {
        rows.matmul(&self.a.t()?)?.matmul(&self.b.t()?)?.affine(self.scaling, 0.0)
    }
}

/// A frozen layer plus any number of adapters, one chosen per batch row by the router.
#[derive(Debug)]
pub struct MultiLoraLinear {
    base: Box<dyn LinearLayer>,
    /// Indexed like the router's adapter ids; `None` where that adapter does not wrap this module.
    adapters: Vec<Option<LowRank>>,
    router: Arc<AdapterRouter>,
}

impl LinearLayer for MultiLoraLinear {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let base = self.base.forward(xs)?;
        let rows = self.router.rows();
        let batch = xs.dim(0)?;
        if rows.len() != batch {
            candle_core::bail!("the adapter router names {} rows, the batch has {batch}", rows.len())
        }
        let in_features = self.in_features();
        let out_features = self.out_features();
        let per_row = xs.elem_count() / batch.max(1) / in_features.max(1);
        let mut out = base;
        for (adapter_idx, low_rank) in self.adapters.iter().enumerate() {
            let Some(low_rank) = low_rank else { continue };
            let members: Vec<u32> =
                (0..batch).filter(|&row| rows[row] == Some(adapter_idx)).map(|row| row as u32).collect();
            if members.is_empty() {
                continue;
            }
            let update = if members.len() == batch {
                low_rank.update(&xs.reshape((batch * per_row, in_features))?)?.reshape(out.shape())?
            } else {
                let index = Tensor::new(members.as_slice(), xs.device())?;
                let selected = xs.index_select(&index, 0)?;
                let update = low_rank.update(&selected.reshape((members.len() * per_row, in_features))?)?;
                let mut dims = out.dims().to_vec();
                dims[0] = members.len();
                let update = update.reshape(dims)?;
                // Scatter the rows' updates back; other rows receive exact zeros.
                out.zeros_like()?.index_add(&index, &update, 0)?
            };
            out = (out + update)?;
        }
        debug_assert_eq!(out.dims().last(), Some(&out_features));
        Ok(out)
    }

    fn in_features(&self) -> usize {
        self.base.in_features()
    }

    fn out_features(&self) -> usize {
        self.base.out_features()
    }
}

/// One adapter loaded by [`attach_adapters`].
#[derive(Debug, Clone)]
pub struct LoadedAdapter {
    /// The adapter folder.
    pub dir: PathBuf,
    pub config: LoraConfig,
    /// Size of `adapter_model.safetensors` in bytes.
    pub size_bytes: u64,
}

/// Adapters attached to a model, addressed by their index in load order.
#[derive(Debug, Clone)]
pub struct MultiLora {
    pub adapters: Vec<LoadedAdapter>,
    pub router: Arc<AdapterRouter>,
}

/// Attaches every PEFT adapter in `dirs` to `model` side by side; adapter `i` is chosen for a row
/// with `router.set_rows`. Every tensor must match the base's shapes: a missing, extra or
/// misshapen tensor is an error naming it and its file.
pub fn attach_adapters(model: &mut Llama, dirs: &[PathBuf]) -> Result<MultiLora> {
    let mut stored = Vec::with_capacity(dirs.len());
    let mut adapters = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let config = read_adapter_config(dir)?;
        let path = dir.join(ADAPTER_WEIGHTS);
        let size_bytes =
            std::fs::metadata(&path).map_err(|source| Error::Io { path: path.clone(), source })?.len();
        let tensors = candle_core::safetensors::load(&path, model.device()).map_err(|source| {
            Error::Safetensors { path: path.clone(), source: crate::error::without_backtrace(source) }
        })?;
        stored.push((path, tensors));
        adapters.push(LoadedAdapter { dir: dir.clone(), config, size_bytes });
    }
    let router = Arc::new(AdapterRouter::default());
    let mut wrapped = Vec::new();
    for (module, slot) in model.linear_layers_mut() {
        let mut low_ranks = Vec::with_capacity(adapters.len());
        for (adapter, (path, tensors)) in adapters.iter().zip(stored.iter_mut()) {
            low_ranks.push(if targets(&adapter.config, &module) {
                let shape = (slot.in_features(), slot.out_features());
                Some(take_low_rank(tensors, path, &module, &adapter.config, shape)?)
            } else {
                None
            });
        }
        if low_ranks.iter().any(Option::is_some) {
            wrapped.push((slot, low_ranks));
        }
    }
    for ((path, tensors), adapter) in stored.iter().zip(&adapters) {
        if let Some(extra) = tensors.keys().min() {
            return Err(Error::InvalidInput {
                reason: format!(
                    "{}: tensor {extra} does not belong to any {:?} module of this base model",
                    path.display(),
                    adapter.config.targets
                ),
            });
        }
    }
    // Only now, with every adapter checked, is the model changed.
    for (slot, low_ranks) in wrapped {
        let base = std::mem::replace(slot, Box::new(Placeholder));
        *slot = Box::new(MultiLoraLinear { base, adapters: low_ranks, router: Arc::clone(&router) });
    }
    Ok(MultiLora { adapters, router })
}

fn targets(config: &LoraConfig, module: &str) -> bool {
    let leaf = module.rsplit('.').next().unwrap_or(module);
    module != "lm_head" && config.targets.iter().any(|target| target == leaf)
}

fn take_low_rank(
    tensors: &mut HashMap<String, Tensor>,
    path: &Path,
    module: &str,
    config: &LoraConfig,
    (in_features, out_features): (usize, usize),
) -> Result<LowRank> {
    let origin = path.display().to_string();
    let mut take = |which: &str, expected: [usize; 2]| -> Result<Tensor> {
        let name = format!("base_model.model.{module}.{which}.weight");
        let tensor = tensors
            .remove(&name)
            .ok_or_else(|| Error::MissingTensor { origin: origin.clone(), name: name.clone() })?;
        if tensor.dims() != expected {
            return Err(Error::ShapeMismatch {
                origin: origin.clone(),
                name,
                expected: expected.to_vec(),
                actual: tensor.dims().to_vec(),
            });
        }
        Ok(tensor.to_dtype(DType::F32)?)
    };
    let a = take("lora_A", [config.rank, in_features])?;
    let b = take("lora_B", [out_features, config.rank])?;
    Ok(LowRank { a, b, scaling: config.scaling() })
}

/// Stands in for a layer while it is moved into its wrapper.
#[derive(Debug)]
struct Placeholder;

impl LinearLayer for Placeholder {
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
