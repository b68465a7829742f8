//! Optimizers over flat f32 parameter buffers.
//!
//! The training loop keeps every trainable tensor (the LoRA A and B matrices) as a flat `Vec<f32>`
//! in a fixed order, hands the optimizer the local gradients, and writes the updated values back
//! into the model. Keeping the optimizer off candle's tensors makes its arithmetic explicit, its
//! state trivially serialisable, and a resumed run bitwise equal to an uninterrupted one.
//!
//! Gradient averaging across ranks is driven by the optimizer, as DeepSpeed's engine does it:
//! before each step the loop asks [`Optimizer::gradients_need_allreduce`]; when true it averages
//! the gradients with [`Collective::all_reduce_mean`] and then clips them. 0/1 Adam says false on
//! the steps where it communicates through its own 1-bit compressed all-reduce instead.

pub mod adamw;
pub mod zero_one_adam;

pub use adamw::{AdamW, AdamWConfig};
pub use zero_one_adam::{ZeroOneAdam, ZeroOneAdamConfig};

use serde::{Deserialize, Serialize};

use crate::dist::Collective;
use crate::error::Result;

/// What an optimizer needs to continue bitwise where it stopped: named flat buffers (moments,
/// error-feedback buffers, ...) and scalars (step counters, schedules) as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// The optimizer's name, checked on load.
    pub kind: String,
    /// Counters and flags.
    pub scalars: serde_json::Value,
    /// Buffers, e.g. `exp_avg.3` for parameter 3's first moment.
    #[serde(skip)]
    pub tensors: Vec<(String, Vec<f32>)>,
}

/// An optimizer over a fixed, ordered list of flat parameters.
pub trait Optimizer: Send {
    /// `adamw`, `zero_one_adam`.
    fn name(&self) -> &'static str;

    /// Whether the loop must average this step's gradients over ranks before calling `step`.
    fn gradients_need_allreduce(&self) -> bool;

    /// One update. `params[i]` and `grads[i]` have equal lengths, the same for every call; `lr`
    /// is this step's learning rate from the schedule. `comm` is used by optimizers that
    /// communicate themselves (0/1 Adam); others ignore it.
    fn step(
        &mut self,
        params: &mut [Vec<f32>],
        grads: &[Vec<f32>],
        lr: f32,
        comm: &mut dyn Collective,
    ) -> Result<()>;

    /// A snapshot of the state, for checkpoints.
    fn state(&self) -> OptimizerState;

    /// Restores a snapshot taken by `state` on parameters of lengths `param_lens`; an error names
    /// the mismatch (other optimizer, other parameter count or sizes).
    fn load_state(&mut self, state: OptimizerState, param_lens: &[usize]) -> Result<()>;
}
