//! AdamW with the arithmetic of `torch.optim.AdamW` (single-tensor path, `foreach=False`).
//!
//! Per step `t` (counted from 1) and element, in f32 as torch's CPU kernels do it:
//!
//! ```text
//! p ← p · (1 − lr·wd)
//! m ← m + (1−β1)·(g − m)            torch's lerp_, one fused multiply-add
//! v ← v·β2;  v ← v + (1−β2)·g·g     mul_ then addcmul_
//! denom ← √v / √(1−β2ᵗ) + eps
//! p ← p + (−lr/(1−β1ᵗ))·m / denom   addcdiv_
//! ```
//!
//! Hyper-parameters are f64 like PyTorch's Python floats: every scalar coefficient (`1 − lr·wd`,
//! `1−β1`, the bias corrections, the step size) is computed in f64 and rounded to f32 once, where
//! torch hands it to the kernel. The fixture test (`tests/optim_adamw.rs`) checks the result
//! against torch itself.

use serde_json::json;

use crate::dist::Collective;
use crate::error::{Error, Result};
use crate::optim::{Optimizer, OptimizerState};

/// AdamW hyper-parameters; the learning rate comes with each step. Defaults are torch's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay, applied as `p ← p·(1 − lr·wd)` before the moment update.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

/// AdamW over flat parameters. Gradients must be averaged over ranks before every step.
#[derive(Debug, Clone)]
pub struct AdamW {
    config: AdamWConfig,
    step: u64,
    exp_avg: Vec<Vec<f32>>,
    exp_avg_sq: Vec<Vec<f32>>,
}

impl AdamW {
    /// An optimizer with zero moments; they are sized on the first step.
    pub fn new(config: AdamWConfig) -> Self {
        Self { config, step: 0, exp_avg: Vec::new(), exp_avg_sq: Vec::new() }
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    fn error(&self, reason: String) -> Error {
        Error::Optimizer { optimizer: self.name().to_string(), reason }
    }
}

impl Optimizer for AdamW {
    fn name(&self) -> &'static str {
        "adamw"
    }

    fn gradients_need_allreduce(&self) -> bool {
        true
    }

    fn step(
        &mut self,
        params: &mut [Vec<f32>],
        grads: &[Vec<f32>],
        lr: f32,
        _comm: &mut dyn Collective,
    ) -> Result<()> {
        let param_lens: Vec<usize> = params.iter().map(Vec::len).collect();
        check_grads(self.name(), &param_lens, grads)?;
        if self.exp_avg.is_empty() && !params.is_empty() {
            self.exp_avg = param_lens.iter().map(|&len| vec![0.0; len]).collect();
            self.exp_avg_sq = self.exp_avg.clone();
        }
        let state_lens: Vec<usize> = self.exp_avg.iter().map(Vec::len).collect();
        if state_lens != param_lens {
            return Err(self.error(format!(
                "parameter lengths {param_lens:?} differ from the moments' lengths {state_lens:?}"
            )));
        }

        self.step += 1;
        let AdamWConfig { beta1, beta2, eps, weight_decay } = self.config;
        let lr = f64::from(lr);
        let step = self.step as f64;
        let decay = (1.0 - lr * weight_decay) as f32;
        let m_weight = (1.0 - beta1) as f32;
        let beta2_f32 = beta2 as f32;
        let v_weight = (1.0 - beta2) as f32;
        let bias_correction1 = 1.0 - beta1.powf(step);
        let bias_correction2_sqrt = ((1.0 - beta2.powf(step)).sqrt()) as f32;
        let neg_step_size = (-(lr / bias_correction1)) as f32;
        let eps = eps as f32;

        for (param_idx, (param, grad)) in params.iter_mut().zip(grads).enumerate() {
            let exp_avg = &mut self.exp_avg[param_idx];
            let exp_avg_sq = &mut self.exp_avg_sq[param_idx];
            for (j, p) in param.iter_mut().enumerate() {
                let g = grad[j];
                if weight_decay != 0.0 {
                    *p *= decay;
                }
                exp_avg[j] = m_weight.mul_add(g - exp_avg[j], exp_avg[j]);
                exp_avg_sq[j] = (v_weight * g).mul_add(g, exp_avg_sq[j] * beta2_f32);
                let denom = exp_avg_sq[j].sqrt() / bias_correction2_sqrt + eps;
                *p += neg_step_size * exp_avg[j] / denom;
            }
        }
        Ok(())
    }

    fn state(&self) -> OptimizerState {
        let mut tensors = Vec::with_capacity(2 * self.exp_avg.len());
        for (idx, buf) in self.exp_avg.iter().enumerate() {
            tensors.push((format!("exp_avg.{idx}"), buf.clone()));
        }
        for (idx, buf) in self.exp_avg_sq.iter().enumerate() {
            tensors.push((format!("exp_avg_sq.{idx}"), buf.clone()));
        }
        OptimizerState { kind: self.name().to_string(), scalars: json!({ "step": self.step }), tensors }
    }

    fn load_state(&mut self, mut state: OptimizerState, param_lens: &[usize]) -> Result<()> {
        if state.kind != self.name() {
            return Err(self.error(format!("cannot load the state of optimizer {}", state.kind)));
        }
        let step = state
            .scalars
            .get("step")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| self.error(format!("state scalars {} lack an integer step", state.scalars)))?;
        if step == 0 {
            *self = Self::new(self.config);
            return Ok(());
        }
        let exp_avg = take_buffers(self.name(), &mut state, "exp_avg", param_lens)?;
        let exp_avg_sq = take_buffers(self.name(), &mut state, "exp_avg_sq", param_lens)?;
        check_all_taken(self.name(), &state)?;
        self.step = step;
        self.exp_avg = exp_avg;
        self.exp_avg_sq = exp_avg_sq;
        Ok(())
    }
}

/// Checks that there is one gradient per parameter, of the parameter's length.
pub(crate) fn check_grads(optimizer: &str, param_lens: &[usize], grads: &[Vec<f32>]) -> Result<()> {
    let grad_lens: Vec<usize> = grads.iter().map(Vec::len).collect();
    if grad_lens != param_lens {
        return Err(Error::Optimizer {
            optimizer: optimizer.to_string(),
            reason: format!("gradient lengths {grad_lens:?} differ from parameter lengths {param_lens:?}"),
        });
    }
    Ok(())
}

/// Removes `{prefix}.0`, `{prefix}.1`, ... from `state`, checking their lengths against
/// `expected_lens`.
pub(crate) fn take_buffers(
    optimizer: &str,
    state: &mut OptimizerState,
    prefix: &str,
    expected_lens: &[usize],
) -> Result<Vec<Vec<f32>>> {
    let mut buffers = Vec::with_capacity(expected_lens.len());
    for (idx, &expected) in expected_lens.iter().enumerate() {
        let name = format!("{prefix}.{idx}");
        let position = state.tensors.iter().position(|(tensor_name, _)| *tensor_name == name);
        let Some(position) = position else {
            return Err(Error::Optimizer {
                optimizer: optimizer.to_string(),
                reason: format!("state lacks buffer {name}"),
            });
        };
        let (_, buffer) = state.tensors.swap_remove(position);
        if buffer.len() != expected {
            return Err(Error::Optimizer {
                optimizer: optimizer.to_string(),
                reason: format!("state buffer {name} has {} values, expected {expected}", buffer.len()),
            });
        }
        buffers.push(buffer);
    }
    Ok(buffers)
}

/// Fails when `state` still holds buffers after every expected one was taken: the checkpoint was
/// written for more parameters than this run has.
pub(crate) fn check_all_taken(optimizer: &str, state: &OptimizerState) -> Result<()> {
    match state.tensors.first() {
        None => Ok(()),
        Some((name, _)) => Err(Error::Optimizer {
            optimizer: optimizer.to_string(),
            reason: format!(
                "state holds {} buffers for parameters this run lacks, e.g. {name}",
                state.tensors.len()
            ),
        }),
    }
}
