//! 0/1 Adam (Lu et al., ICLR'23) as DeepSpeed implements it in `runtime/fp16/onebit/zoadam.py`.
//!
//! Per step `t` (the first call counts as `t = 1`):
//!
//! - **First call**: sizes the state; with more than one rank, runs the 1-bit all-reduce once on
//!   the (zero) momentum accumulator `u`, as DeepSpeed warms its buffers. Nothing else: the first
//!   gradient is discarded.
//! - **Phase A** (variance not frozen): when `t % var_interval == 0` the loop has averaged the
//!   gradient over ranks (see [`Optimizer::gradients_need_allreduce`]) and both moments are
//!   updated; otherwise, with more than one rank, `m` is updated with the 1-bit average `C(g)` and
//!   `v` is left alone. Then `p ← p − lr·(m/(√v + eps) + wd·p)` (no bias correction, eps outside
//!   the square root). Every `var_update_scaler` variance updates `var_interval` doubles.
//! - **Freeze**: after the step where `t > var_freeze_step`, the variance is frozen for good and
//!   the error-feedback buffers are zeroed once (they will track `u`, not `g`).
//! - **Phase B** (local steps): `m` takes the local gradient, `lrs += lr`, `p` and `u` move by
//!   `−lr·update`. Every `local_step_interval` steps the ranks synchronise: `p ← p − u`,
//!   `u ← C(u ⊙ (√v + eps))`, `m ← −u/lrs`, `p ← p + u/(√v + eps)`, `u ← 0`, `lrs ← 0`. Every
//!   `local_step_scaler` steps `local_step_interval` doubles, up to `local_step_clipper`.
//!
//! Where this follows DeepSpeed's code rather than its docs or REFERENCE.md:
//! - With one rank DeepSpeed calls no compressed all-reduce at all (`if self.size > 1`). Phase A
//!   steps off the variance interval therefore leave `m` unchanged (the gradient is dropped, the
//!   parameters still move with the old `m`), and phase B sync rounds skip `C` (so `u` comes back
//!   unchanged). This module does the same.
//! - `bias_correction` is read by DeepSpeed and never used; it changes nothing here either.
//! - DeepSpeed keeps the schedule counters per parameter; they are equal for every parameter
//!   (all advance with the step), so they are kept once.
//! - On checkpoint load DeepSpeed drops `u` and the error buffers (and, through a typo, never
//!   restores its freeze flag); finagent saves and restores all of it, so a resumed run equals an
//!   uninterrupted one bit for bit.
//! - The exp_avg mask and the pipeline-engine flag are not supported.
//!
//! Arithmetic is f32 element-wise in DeepSpeed's order, with scalar coefficients computed in f64
//! (Python floats) and rounded once; `scripts/zero_one_adam_reference.py` is the NumPy
//! transcription the tests compare against.

use serde_json::json;

use crate::dist::onebit::{compressed_allreduce, padded_len, server_chunk_len};
use crate::dist::Collective;
use crate::error::{Error, Result};
use crate::optim::adamw::{check_all_taken, check_grads, take_buffers};
use crate::optim::{Optimizer, OptimizerState};

/// 0/1 Adam hyper-parameters; the learning rate comes with each step. Defaults are DeepSpeed's.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZeroOneAdamConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled: `wd·p` is added to the update, which is then scaled by `lr`.
    pub weight_decay: f64,
    /// The last step that may update the variance; phase B starts after it.
    pub var_freeze_step: u64,
    /// κ: variance updates between doublings of the variance interval.
    pub var_update_scaler: u64,
    /// Phase B steps between doublings of the local step interval.
    pub local_step_scaler: u64,
    /// H: the largest local step interval.
    pub local_step_clipper: u64,
    /// Accepted for configuration parity; DeepSpeed's 0/1 Adam ignores it, and so does this one.
    pub bias_correction: bool,
}

impl Default for ZeroOneAdamConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            var_freeze_step: 100_000,
            var_update_scaler: 16,
            // DeepSpeed's default, 32678 (sic).
            local_step_scaler: 32_678,
            local_step_clipper: 16,
            bias_correction: true,
        }
    }
}

impl ZeroOneAdamConfig {
    /// FinLoRA's DeepSpeed configuration. Its learning rate, 1e-4, is the training loop's to pass.
    pub fn finlora() -> Self {
        Self {
            var_freeze_step: 1000,
            var_update_scaler: 16,
            local_step_scaler: 1000,
            local_step_clipper: 16,
            bias_correction: false,
            ..Self::default()
        }
    }
}

/// 0/1 Adam over flat parameters.
#[derive(Debug, Clone)]
pub struct ZeroOneAdam {
    config: ZeroOneAdamConfig,
    step: u64,
    initialized: bool,
    /// DeepSpeed's `freeze_key`: phase B.
    frozen: bool,
    /// DeepSpeed's `reinitial_error_buffer`: the error buffers were zeroed at the freeze.
    errors_reset: bool,
    /// DeepSpeed's `enable_backward_allreduce` for the coming step.
    allreduce_next: bool,
    var_interval: u64,
    var_counter: u64,
    local_step_interval: u64,
    local_step_counter: u64,
    /// Sum of the learning rates since the last sync, in f64 like DeepSpeed's Python float.
    lrs: f64,
    /// The world size the error buffers were sized for.
    world_size: usize,
    exp_avg: Vec<Vec<f32>>,
    exp_avg_sq: Vec<Vec<f32>>,
    /// `u`, DeepSpeed's `momentum_accumulator`.
    momentum: Vec<Vec<f32>>,
    worker_error: Vec<Vec<f32>>,
    server_error: Vec<Vec<f32>>,
}

impl ZeroOneAdam {
    /// A fresh optimizer; the state is sized on the first step. Fails when a schedule value is 0.
    pub fn new(config: ZeroOneAdamConfig) -> Result<Self> {
        let zero_field = [
            ("var_update_scaler", config.var_update_scaler),
            ("local_step_scaler", config.local_step_scaler),
            ("local_step_clipper", config.local_step_clipper),
        ]
        .into_iter()
        .find(|(_, value)| *value == 0);
        if let Some((field, _)) = zero_field {
            return Err(Error::Optimizer {
                optimizer: "zero_one_adam".to_string(),
                reason: format!("{field} must be at least 1, got 0"),
            });
        }
        Ok(Self {
            config,
            step: 0,
            initialized: false,
            frozen: false,
            errors_reset: false,
            allreduce_next: true,
            var_interval: 1,
            var_counter: 0,
            local_step_interval: 1,
            local_step_counter: 0,
            lrs: 0.0,
            world_size: 0,
            exp_avg: Vec::new(),
            exp_avg_sq: Vec::new(),
            momentum: Vec::new(),
            worker_error: Vec::new(),
            server_error: Vec::new(),
        })
    }

    /// Calls to `step` so far, the discarded first one included.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// Whether the variance is frozen (phase B, local steps).
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Steps between variance updates in phase A.
    pub fn var_interval(&self) -> u64 {
        self.var_interval
    }

    /// Steps between synchronisations in phase B.
    pub fn local_step_interval(&self) -> u64 {
        self.local_step_interval
    }

    fn error(&self, reason: String) -> Error {
        Error::Optimizer { optimizer: self.name().to_string(), reason }
    }

    fn initialize(&mut self, params: &[Vec<f32>], comm: &mut dyn Collective) -> Result<()> {
        let world_size = comm.world_size();
        let zeros = |len: usize| vec![0.0f32; len];
        self.exp_avg = params.iter().map(|param| zeros(param.len())).collect();
        self.exp_avg_sq = self.exp_avg.clone();
        self.momentum = self.exp_avg.clone();
        self.worker_error = params.iter().map(|param| zeros(padded_len(param.len(), world_size))).collect();
        self.server_error =
            params.iter().map(|param| zeros(server_chunk_len(param.len(), world_size))).collect();
        self.world_size = world_size;
        self.step += 1;
        if world_size > 1 {
            for idx in 0..params.len() {
                compressed_allreduce(
                    comm,
                    &mut self.momentum[idx],
                    &mut self.worker_error[idx],
                    &mut self.server_error[idx],
                )?;
            }
        }
        self.initialized = true;
        Ok(())
    }

    fn check_shapes(&self, param_lens: &[usize], world_size: usize) -> Result<()> {
        let state_lens: Vec<usize> = self.exp_avg.iter().map(Vec::len).collect();
        if state_lens != param_lens {
            return Err(self.error(format!(
                "parameter lengths {param_lens:?} differ from the state's lengths {state_lens:?}"
            )));
        }
        if world_size != self.world_size {
            return Err(self.error(format!(
                "world size {world_size} differs from the {} ranks the error buffers were made for",
                self.world_size
            )));
        }
        Ok(())
    }

    /// Phase A and B moment updates, the parameter update, and a phase B sync round when due.
    fn update_param(
        &mut self,
        idx: usize,
        param: &mut [f32],
        grad: &[f32],
        lr: f32,
        comm: &mut dyn Collective,
    ) -> Result<()> {
        let config = self.config;
        let beta1 = config.beta1 as f32;
        let m_weight = (1.0 - config.beta1) as f32;
        let beta2 = config.beta2 as f32;
        let v_weight = (1.0 - config.beta2) as f32;
        let eps = config.eps as f32;
        let weight_decay = config.weight_decay as f32;
        let t = self.step;
        let update_moment = |exp_avg: &mut [f32], grad: &[f32]| {
            for (m, g) in exp_avg.iter_mut().zip(grad) {
                *m = *m * beta1 + m_weight * g;
            }
        };

        let exp_avg = &mut self.exp_avg[idx];
        let exp_avg_sq = &mut self.exp_avg_sq[idx];
        if self.frozen {
            update_moment(exp_avg, grad);
        } else if t.is_multiple_of(self.var_interval) {
            for (v, g) in exp_avg_sq.iter_mut().zip(grad) {
                *v = *v * beta2 + v_weight * g * g;
            }
            update_moment(exp_avg, grad);
        } else if self.world_size > 1 {
            let mut grad_onebit = grad.to_vec();
            compressed_allreduce(
                comm,
                &mut grad_onebit,
                &mut self.worker_error[idx],
                &mut self.server_error[idx],
            )?;
            update_moment(exp_avg, &grad_onebit);
        }

        let neg_lr = -lr;
        let momentum = &mut self.momentum[idx];
        for (j, p) in param.iter_mut().enumerate() {
            let mut update = exp_avg[j] / (exp_avg_sq[j].sqrt() + eps);
            if config.weight_decay > 0.0 {
                update += weight_decay * *p;
            }
            let delta = neg_lr * update;
            *p += delta;
            if self.frozen {
                momentum[j] += delta;
            }
        }

        if self.frozen && t.is_multiple_of(self.local_step_interval) {
            for (p, u) in param.iter_mut().zip(momentum.iter()) {
                *p += -u;
            }
            for (u, v) in momentum.iter_mut().zip(exp_avg_sq.iter()) {
                *u *= v.sqrt() + eps;
            }
            if self.world_size > 1 {
                compressed_allreduce(
                    comm,
                    momentum,
                    &mut self.worker_error[idx],
                    &mut self.server_error[idx],
                )?;
            }
            let lrs = self.lrs as f32;
            for j in 0..param.len() {
                exp_avg[j] = 0.0 - momentum[j] / lrs;
                param[j] += momentum[j] / (exp_avg_sq[j].sqrt() + eps);
            }
            momentum.fill(0.0);
        }
        Ok(())
    }

    /// The per-step schedule DeepSpeed runs after each parameter, then the freeze check it runs
    /// after all of them.
    fn advance_schedule(&mut self) {
        let t = self.step;
        if self.frozen {
            if t.is_multiple_of(self.local_step_interval) {
                self.lrs = 0.0;
            }
            self.local_step_counter += 1;
            if self.local_step_counter == self.config.local_step_scaler {
                self.local_step_counter = 0;
                self.local_step_interval =
                    self.config.local_step_clipper.min(self.local_step_interval.saturating_mul(2));
            }
        } else {
            if t.is_multiple_of(self.var_interval) {
                self.var_counter += 1;
                if self.var_counter == self.config.var_update_scaler {
                    self.var_counter = 0;
                    self.var_interval = self.var_interval.saturating_mul(2);
                }
            }
            self.allreduce_next = (t + 1).is_multiple_of(self.var_interval);
        }
        if t > self.config.var_freeze_step {
            self.frozen = true;
            self.allreduce_next = false;
        }
        if self.frozen && !self.errors_reset {
            self.worker_error.iter_mut().chain(self.server_error.iter_mut()).for_each(|buf| buf.fill(0.0));
            self.errors_reset = true;
        }
    }
}

impl Optimizer for ZeroOneAdam {
    fn name(&self) -> &'static str {
        "zero_one_adam"
    }

    fn gradients_need_allreduce(&self) -> bool {
        self.allreduce_next
    }

    fn step(
        &mut self,
        params: &mut [Vec<f32>],
        grads: &[Vec<f32>],
        lr: f32,
        comm: &mut dyn Collective,
    ) -> Result<()> {
        let param_lens: Vec<usize> = params.iter().map(Vec::len).collect();
        check_grads(self.name(), &param_lens, grads)?;
        if !self.initialized {
            return self.initialize(params, comm);
        }
        self.check_shapes(&param_lens, comm.world_size())?;

        self.step += 1;
        if self.frozen {
            self.lrs += f64::from(lr);
        }
        for (idx, (param, grad)) in params.iter_mut().zip(grads).enumerate() {
            self.update_param(idx, param, grad, lr, comm)?;
        }
        self.advance_schedule();
        Ok(())
    }

    fn state(&self) -> OptimizerState {
        let scalars = json!({
            "step": self.step,
            "initialized": self.initialized,
            "frozen": self.frozen,
            "errors_reset": self.errors_reset,
            "allreduce_next": self.allreduce_next,
            "var_interval": self.var_interval,
            "var_counter": self.var_counter,
            "local_step_interval": self.local_step_interval,
            "local_step_counter": self.local_step_counter,
            // Bits, so that JSON text cannot round the sum.
            "lrs_f64_bits": self.lrs.to_bits(),
            "lrs": self.lrs,
            "world_size": self.world_size,
        });
        let buffers = [
            ("exp_avg", &self.exp_avg),
            ("exp_avg_sq", &self.exp_avg_sq),
            ("momentum", &self.momentum),
            ("worker_error", &self.worker_error),
            ("server_error", &self.server_error),
        ];
        let tensors = buffers
            .iter()
            .flat_map(|(prefix, bufs)| {
                bufs.iter().enumerate().map(move |(idx, buf)| (format!("{prefix}.{idx}"), buf.clone()))
            })
            .collect();
        OptimizerState { kind: self.name().to_string(), scalars, tensors }
    }

    fn load_state(&mut self, mut state: OptimizerState, param_lens: &[usize]) -> Result<()> {
        if state.kind != self.name() {
            return Err(self.error(format!("cannot load the state of optimizer {}", state.kind)));
        }
        let scalars = &state.scalars;
        let flag = |key: &str| scalars.get(key).and_then(serde_json::Value::as_bool);
        let count = |key: &str| scalars.get(key).and_then(serde_json::Value::as_u64);
        let missing = |key: &str| self.error(format!("state scalars {scalars} lack {key}"));

        let initialized = flag("initialized").ok_or_else(|| missing("initialized"))?;
        if !initialized {
            *self = Self::new(self.config)?;
            return Ok(());
        }
        let mut loaded = Self::new(self.config)?;
        loaded.initialized = true;
        loaded.step = count("step").ok_or_else(|| missing("step"))?;
        loaded.frozen = flag("frozen").ok_or_else(|| missing("frozen"))?;
        loaded.errors_reset = flag("errors_reset").ok_or_else(|| missing("errors_reset"))?;
        loaded.allreduce_next = flag("allreduce_next").ok_or_else(|| missing("allreduce_next"))?;
        loaded.var_interval = count("var_interval").ok_or_else(|| missing("var_interval"))?;
        loaded.var_counter = count("var_counter").ok_or_else(|| missing("var_counter"))?;
        loaded.local_step_interval =
            count("local_step_interval").ok_or_else(|| missing("local_step_interval"))?;
        loaded.local_step_counter =
            count("local_step_counter").ok_or_else(|| missing("local_step_counter"))?;
        loaded.lrs = f64::from_bits(count("lrs_f64_bits").ok_or_else(|| missing("lrs_f64_bits"))?);
        let world_size = count("world_size").ok_or_else(|| missing("world_size"))?;
        loaded.world_size = usize::try_from(world_size)
            .map_err(|_| self.error(format!("state world size {world_size} does not fit this machine")))?;
        if loaded.var_interval == 0 || loaded.local_step_interval == 0 {
            return Err(self.error(format!(
                "state has var_interval {} and local_step_interval {}; both must be at least 1",
                loaded.var_interval, loaded.local_step_interval
            )));
        }

        let worker_lens: Vec<usize> =
            param_lens.iter().map(|&len| padded_len(len, loaded.world_size)).collect();
        let server_lens: Vec<usize> =
            param_lens.iter().map(|&len| server_chunk_len(len, loaded.world_size)).collect();
        let name = self.name();
        loaded.exp_avg = take_buffers(name, &mut state, "exp_avg", param_lens)?;
        loaded.exp_avg_sq = take_buffers(name, &mut state, "exp_avg_sq", param_lens)?;
        loaded.momentum = take_buffers(name, &mut state, "momentum", param_lens)?;
        loaded.worker_error = take_buffers(name, &mut state, "worker_error", &worker_lens)?;
        loaded.server_error = take_buffers(name, &mut state, "server_error", &server_lens)?;
        check_all_taken(name, &state)?;
        *self = loaded;
        Ok(())
    }
}
