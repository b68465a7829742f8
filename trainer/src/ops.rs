//! Differentiable versions of the model's fused operations, used when a forward pass feeds a
//! backward one (LoRA training).
//!
//! candle's fast `rms_norm`, `softmax_last_dim` and `rope` have no backward, and its matmul
//! backward also computes the gradient of the right-hand side even when that is a frozen weight
//! (a `[vocab, hidden]` product per step for the LM head alone). These custom ops have explicit
//! backward passes and never produce a gradient for frozen weights; the model switches to them
//! when its input is tracked by autograd (`Tensor::track_op`). Inference keeps candle's ops.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Storage, Tensor};

/// `x · W^T` for a frozen `W` `[out, in]`: the backward pass yields the input gradient only.
pub fn frozen_linear(xs: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let (out_features, in_features) = weight.dims2()?;
    let dims = xs.dims().to_vec();
    if dims.last() != Some(&in_features) {
        candle_core::bail!("frozen linear expects [.., {in_features}], got {:?}", xs.shape())
    }
    let rows = xs.elem_count() / in_features.max(1);
    let op = FrozenLinear { weight: weight.contiguous()? };
    let product = xs.reshape((rows, in_features))?.contiguous()?.apply_op1_arc(Arc::new(Box::new(op)))?;
    let mut out_dims = dims;
    if let Some(last) = out_dims.last_mut() {
        *last = out_features;
    }
    product.reshape(out_dims)
}

/// The product with a weight captured by the op (so the autograd node has the activation as its
/// only input), computed by candle's gemm on the storages.
struct FrozenLinear {
    weight: Tensor,
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, input: &CpuStorage, input_layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (rows, in_features) = input_layout.shape().dims2()?;
        let (weight_storage, weight_layout) = self.weight.storage_and_layout();
        let Storage::Cpu(weight) = &*weight_storage else {
            candle_core::bail!("frozen linear runs on the cpu only")
        };
        let (out_features, _) = weight_layout.shape().dims2()?;
        let weight_t = weight_layout.transpose(0, 1)?;
        let product = input.matmul(weight, (1, rows, out_features, in_features), input_layout, &weight_t)?;
        Ok((product, Shape::from((rows, out_features))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad_res.contiguous()?.matmul(&self.weight)?))
    }
}

/// A frozen linear layer's output recorded in an earlier forward pass over the same input, put
/// back into the graph as a function of `xs`: the forward copies `recorded` (no product), the
/// backward is `input_gradient(grad)`. Checkpointed training uses it for the layers outside the
/// adapter, whose recomputation would only reproduce the recorded values.
pub fn replay(
    xs: &Tensor,
    recorded: &Tensor,
    input_gradient: crate::linear::InputGradient,
) -> Result<Tensor> {
    let (input_dims, output_dims) = (xs.dims(), recorded.dims());
    if input_dims.len() != output_dims.len()
        || input_dims[..input_dims.len() - 1] != output_dims[..output_dims.len() - 1]
    {
        candle_core::bail!(
            "replay of a recorded {output_dims:?} output over an input of shape {input_dims:?}"
        )
    }
    let op = Replay { recorded: recorded.contiguous()?, input_gradient };
    xs.apply_op1_arc(Arc::new(Box::new(op)))
}

struct Replay {
    recorded: Tensor,
    input_gradient: crate::linear::InputGradient,
}

impl CustomOp1 for Replay {
    fn name(&self) -> &'static str {
        "replay-linear"
    }

    fn cpu_fwd(&self, _input: &CpuStorage, _layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (storage, layout) = self.recorded.storage_and_layout();
        let Storage::Cpu(storage) = &*storage else { candle_core::bail!("replay runs on the cpu only") };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("replay needs a contiguous recorded output")
        };
        let copy = match storage {
            CpuStorage::F32(values) => CpuStorage::F32(values[start..end].to_vec()),
            CpuStorage::F64(values) => CpuStorage::F64(values[start..end].to_vec()),
            other => candle_core::bail!("replay of a {:?} output", other.dtype()),
        };
        Ok((copy, layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some((self.input_gradient)(grad_res)?))
    }
}

pub(crate) fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &'static str) -> Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op} needs a contiguous input, got strides {:?}", layout.stride())
    };
    match storage {
        CpuStorage::F32(values) => Ok(&values[start..end]),
        other => Err(candle_core::Error::UnsupportedDTypeForOp(other.dtype(), op)),
    }
}

/// Runs `f` on the f32 values of `tensors` (CPU, contiguous), for a custom op's backward pass,
/// which receives tensors rather than storages.
pub(crate) fn with_cpu_f32<R>(
    tensors: &[&Tensor],
    op: &'static str,
    f: impl FnOnce(&[&[f32]]) -> R,
) -> Result<R> {
    let guards: Vec<_> = tensors.iter().map(|tensor| tensor.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(guards.len());
    for (storage, layout) in &guards {
        let Storage::Cpu(storage) = &**storage else { candle_core::bail!("{op} runs on the CPU only") };
        slices.push(f32_slice(storage, layout, op)?);
    }
    Ok(f(&slices))
}

/// Root-mean-square normalisation over the last dimension, `x / sqrt(mean(x²) + eps) * w`, as
/// transformers' `LlamaRMSNorm` computes it in f32. The weight is frozen (no gradient).
pub fn rms_norm(xs: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    xs.contiguous()?.apply_op2_arc(weight, Arc::new(Box::new(RmsNorm { eps })))
}

struct RmsNorm {
    eps: f32,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "train-rms-norm"
    }

    fn cpu_fwd(
        &self,
        input: &CpuStorage,
        input_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let xs = f32_slice(input, input_layout, self.name())?;
        let weight = f32_slice(weight, weight_layout, self.name())?;
        let width = weight.len();
        if input_layout.dims().last() != Some(&width) {
            candle_core::bail!("rms norm weight of {width} does not fit input {:?}", input_layout.dims())
        }
        let mut out = vec![0f32; xs.len()];
        for (row, out_row) in xs.chunks(width).zip(out.chunks_mut(width)) {
            let mean_square = row.iter().map(|&x| x * x).sum::<f32>() / width as f32;
            let inv_rms = 1.0 / (mean_square + self.eps).sqrt();
            for ((out_value, &x), &w) in out_row.iter_mut().zip(row).zip(weight) {
                *out_value = x * inv_rms * w;
            }
        }
        Ok((CpuStorage::F32(out), input_layout.shape().clone()))
    }

    fn bwd(
        &self,
        xs: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // y = x·r·w with r = (mean(x²) + eps)^-1/2, so
        // dx = r·(g∘w) − x·r³·mean(x∘g∘w), one pass over each row (as fourteen candle ops it
        // built six full-size temporaries).
        let op = RmsNormGrad { eps: self.eps };
        let grad_xs =
            xs.contiguous()?.apply_op3_no_bwd(&grad_res.contiguous()?, &weight.contiguous()?, &op)?;
        Ok((Some(grad_xs), None))
    }
}

/// The input gradient of [`RmsNorm`] from its input `x`, the output's gradient `g` and the weight.
struct RmsNormGrad {
    eps: f32,
}

impl CustomOp3 for RmsNormGrad {
    fn name(&self) -> &'static str {
        "train-rms-norm-grad"
    }

    fn cpu_fwd(
        &self,
        input: &CpuStorage,
        input_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let xs = f32_slice(input, input_layout, self.name())?;
        let grad = f32_slice(grad, grad_layout, self.name())?;
        let weight = f32_slice(weight, weight_layout, self.name())?;
        let width = weight.len();
        if input_layout.dims() != grad_layout.dims() || input_layout.dims().last() != Some(&width) {
            candle_core::bail!(
                "rms norm gradient: input {:?}, output gradient {:?} and weight of {width} do not fit",
                input_layout.dims(),
                grad_layout.dims()
            )
        }
        let mut out = vec![0f32; xs.len()];
        for_row_chunks(&mut out, width, |first_row, out_rows| {
            for (offset, out_row) in out_rows.chunks_mut(width).enumerate() {
                let start = (first_row + offset) * width;
                let (x, g) = (&xs[start..start + width], &grad[start..start + width]);
                let mean_square = dot8(x, x) / width as f32;
                let inv_rms = 1.0 / (mean_square + self.eps).sqrt();
                let dot: f32 = x.iter().zip(g).zip(weight).map(|((&x, &g), &w)| x * g * w).sum();
                let correction = dot * inv_rms * inv_rms * inv_rms / width as f32;
                for (((out_value, &x), &g), &w) in out_row.iter_mut().zip(x).zip(g).zip(weight) {
                    *out_value = g * w * inv_rms - x * correction;
                }
            }
        });
        Ok((CpuStorage::F32(out), input_layout.shape().clone()))
    }
}

/// `silu(gate) ∘ up`, the SwiGLU feed-forward's inner product, with a backward pass that computes
/// both input gradients in one pass (candle's `silu` and `mul` backward passes built ten
/// full-size temporaries between them, and each input gradient was then added into a zeroed one
/// in the gradient store). Other dtypes and untracked
/// inputs use candle's ops, whose forward values these equal within a few ulp (the exponentials
/// are [`kernels::fast::exp_in_place`]'s).
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.dtype() != candle_core::DType::F32 || !(gate.track_op() || up.track_op()) {
        return gate.silu()? * up;
    }
    if gate.dims() != up.dims() {
        candle_core::bail!("swiglu: gate {:?} and up {:?} differ", gate.dims(), up.dims())
    }
    gate.contiguous()?.apply_op2_arc(&up.contiguous()?, Arc::new(Box::new(SwiGlu)))
}

struct SwiGlu;

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "train-swiglu"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gate_layout: &Layout,
        up: &CpuStorage,
        up_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let gate = f32_slice(gate, gate_layout, self.name())?;
        let up = f32_slice(up, up_layout, self.name())?;
        if gate.len() != up.len() {
            candle_core::bail!("swiglu: gate {:?} and up {:?} differ", gate_layout.dims(), up_layout.dims())
        }
        let mut out = vec![0f32; gate.len()];
        // Rows of one value: chunks of `CHUNK` values.
        for_row_chunks(&mut out, 1, |start, out| {
            // e^-g first, many values per instruction, then g / (1 + e^-g) · u.
            out.iter_mut().zip(&gate[start..]).for_each(|(out_value, &g)| *out_value = -g);
            kernels::fast::exp_in_place(out);
            for ((out_value, &g), &u) in out.iter_mut().zip(&gate[start..]).zip(&up[start..]) {
                *out_value = g / (1.0 + *out_value) * u;
            }
        });
        Ok((CpuStorage::F32(out), gate_layout.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // d up = g ∘ silu(gate); d gate = g ∘ up ∘ s·(1 + gate·(1 − s)) with s = sigmoid(gate),
        // written side by side as [2, ..] and split.
        let both =
            gate.contiguous()?.apply_op3_no_bwd(&up.contiguous()?, &grad_res.contiguous()?, &SwiGluGrad)?;
        let grad_gate = both.get(0)?;
        let grad_up = both.get(1)?;
        Ok((Some(grad_gate), Some(grad_up)))
    }
}

/// Both input gradients of [`SwiGlu`] as `[2, ..]`: the gate's, then up's.
struct SwiGluGrad;

impl CustomOp3 for SwiGluGrad {
    fn name(&self) -> &'static str {
        "train-swiglu-grad"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gate_layout: &Layout,
        up: &CpuStorage,
        up_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let gate = f32_slice(gate, gate_layout, self.name())?;
        let up = f32_slice(up, up_layout, self.name())?;
        let grad = f32_slice(grad, grad_layout, self.name())?;
        if gate.len() != up.len() || gate.len() != grad.len() {
            candle_core::bail!(
                "swiglu gradient: gate {:?}, up {:?} and output gradient {:?} differ",
                gate_layout.dims(),
                up_layout.dims(),
                grad_layout.dims()
            )
        }
        let n = gate.len();
        let mut out = vec![0f32; 2 * n];
        let (grad_gate, grad_up) = out.split_at_mut(n);
        {
            use rayon::prelude::*;
            grad_gate.par_chunks_mut(CHUNK).zip(grad_up.par_chunks_mut(CHUNK)).enumerate().for_each(
                |(chunk, (grad_gate, grad_up))| {
                    let start = chunk * CHUNK;
                    // e^-x into grad_up first, many values per instruction.
                    grad_up.iter_mut().zip(&gate[start..]).for_each(|(out_up, &x)| *out_up = -x);
                    kernels::fast::exp_in_place(grad_up);
                    let values = gate[start..].iter().zip(&up[start..]).zip(&grad[start..]);
                    for ((out_gate, out_up), ((&x, &u), &g)) in grad_gate.iter_mut().zip(grad_up).zip(values)
                    {
                        let sigmoid = 1.0 / (1.0 + *out_up);
                        *out_up = g * x * sigmoid;
                        *out_gate = g * u * sigmoid * (1.0 + x * (1.0 - sigmoid));
                    }
                },
            );
        }
        let mut dims = vec![2];
        dims.extend_from_slice(gate_layout.dims());
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

/// Values per parallel chunk of a row-wise or elementwise op.
const CHUNK: usize = 65_536;

/// Softmax over the last dimension of attention scores `[.., rows, total]` with the causal mask
/// applied inline: row `r` stands for query position `start_pos + r % seq_len` and sees columns
/// `0..=start_pos + r % seq_len` (rows of several query heads may be stacked, each `seq_len` long).
pub fn causal_softmax(scores: &Tensor, seq_len: usize, start_pos: usize) -> Result<Tensor> {
    scores.contiguous()?.apply_op1_arc(Arc::new(Box::new(CausalSoftmax { seq_len, start_pos })))
}

struct CausalSoftmax {
    seq_len: usize,
    start_pos: usize,
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let scores = f32_slice(storage, layout, self.name())?;
        let Some(&total) = layout.dims().last() else {
            candle_core::bail!("causal softmax needs at least one dimension")
        };
        if self.seq_len == 0 || self.start_pos + self.seq_len > total {
            candle_core::bail!(
                "causal softmax: {} queries after {} cached positions do not fit {total} columns",
                self.seq_len,
                self.start_pos
            )
        }
        let mut out = vec![0f32; scores.len()];
        for_row_chunks(&mut out, total, |first_row, out_rows| {
            for (offset, out_row) in out_rows.chunks_mut(total).enumerate() {
                let row_idx = first_row + offset;
                let visible = self.start_pos + row_idx % self.seq_len + 1;
                let row = &scores[row_idx * total..][..visible];
                let max = row.iter().fold(f32::NEG_INFINITY, |max, &x| max.max(x));
                let mut sum = 0f32;
                for (out_value, &x) in out_row[..visible].iter_mut().zip(row) {
                    *out_value = (x - max).exp();
                    sum += *out_value;
                }
                out_row[..visible].iter_mut().for_each(|value| *value /= sum);
            }
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        // dx = y ∘ (g − Σ g∘y); masked entries have y = 0 and get no gradient. One pass over each
        // row instead of three full-size temporaries.
        let op = CausalSoftmaxGrad { seq_len: self.seq_len, start_pos: self.start_pos };
        Ok(Some(res.contiguous()?.apply_op2_no_bwd(&grad_res.contiguous()?, &op)?))
    }
}

/// The input gradient of [`CausalSoftmax`] from its output `y` and the output's gradient `g`.
struct CausalSoftmaxGrad {
    seq_len: usize,
    start_pos: usize,
}

impl CustomOp2 for CausalSoftmaxGrad {
    fn name(&self) -> &'static str {
        "causal-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        res: &CpuStorage,
        res_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let probs = f32_slice(res, res_layout, self.name())?;
        let grad = f32_slice(grad, grad_layout, self.name())?;
        let total = res_layout.dims().last().copied().unwrap_or(0);
        if res_layout.dims() != grad_layout.dims() || total == 0 {
            candle_core::bail!(
                "causal softmax gradient: output {:?} and its gradient {:?} differ",
                res_layout.dims(),
                grad_layout.dims()
            )
        }
        let mut out = vec![0f32; probs.len()];
        for_row_chunks(&mut out, total, |first_row, out_rows| {
            for (offset, out_row) in out_rows.chunks_mut(total).enumerate() {
                let row_idx = first_row + offset;
                let visible = (self.start_pos + row_idx % self.seq_len + 1).min(total);
                let y = &probs[row_idx * total..][..visible];
                let g = &grad[row_idx * total..][..visible];
                let dot = dot8(y, g);
                for ((out_value, &y), &g) in out_row[..visible].iter_mut().zip(y).zip(g) {
                    *out_value = y * (g - dot);
                }
            }
        });
        Ok((CpuStorage::F32(out), res_layout.shape().clone()))
    }
}

/// `Σ a∘b` in eight interleaved partial sums (which the compiler keeps in one vector register).
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Runs `work(first_row, rows)` over `out` cut into whole rows of `width`, on rayon's threads in
/// chunks of about 64 K values (attention scores of a long prompt are 100 MB and more per layer;
/// one thread would leave the other cores idle).
fn for_row_chunks(out: &mut [f32], width: usize, work: impl Fn(usize, &mut [f32]) + Sync) {
    use rayon::prelude::*;
    let rows_per_chunk = (CHUNK / width.max(1)).max(1);
    out.par_chunks_mut(rows_per_chunk * width)
        .enumerate()
        .for_each(|(chunk_idx, rows)| work(chunk_idx * rows_per_chunk, rows));
}

/// Rotary embedding in the "rotate half" layout over `[batch, heads, seq, head_dim]`, with the
/// `[seq, head_dim / 2]` cos and sin rows of the positions. The backward pass is the inverse
/// rotation (the same op with `-sin`).
pub fn rope(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (_, _, seq_len, head_dim) = xs.dims4()?;
    if cos.dims() != [seq_len, head_dim / 2] || sin.dims() != cos.dims() {
        candle_core::bail!(
            "rope tables {:?}/{:?} do not fit {seq_len} positions of head_dim {head_dim}",
            cos.dims(),
            sin.dims()
        )
    }
    let cos: Arc<Vec<f32>> = Arc::new(cos.flatten_all()?.to_vec1()?);
    let sin: Arc<Vec<f32>> = Arc::new(sin.flatten_all()?.to_vec1()?);
    xs.contiguous()?.apply_op1_arc(Arc::new(Box::new(Rope { cos, sin, inverse: false })))
}

struct Rope {
    cos: Arc<Vec<f32>>,
    sin: Arc<Vec<f32>>,
    inverse: bool,
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "train-rope"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = f32_slice(storage, layout, self.name())?;
        let &[_, _, seq_len, head_dim] = layout.dims() else {
            candle_core::bail!("rope expects [batch, heads, seq, head_dim], got {:?}", layout.dims())
        };
        let half = head_dim / 2;
        if self.cos.len() != seq_len * half {
            candle_core::bail!("rope tables cover {} values, need {}", self.cos.len(), seq_len * half)
        }
        let sign = if self.inverse { -1f32 } else { 1f32 };
        let mut out = vec![0f32; xs.len()];
        for (row_idx, (row, out_row)) in xs.chunks(head_dim).zip(out.chunks_mut(head_dim)).enumerate() {
            let position = row_idx % seq_len;
            let cos = &self.cos[position * half..(position + 1) * half];
            let sin = &self.sin[position * half..(position + 1) * half];
            let (x1, x2) = row.split_at(half);
            let (out1, out2) = out_row.split_at_mut(half);
            for i in 0..half {
                let s = sign * sin[i];
                out1[i] = x1[i] * cos[i] - x2[i] * s;
                out2[i] = x2[i] * cos[i] + x1[i] * s;
            }
        }
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let inverse = Rope { cos: Arc::clone(&self.cos), sin: Arc::clone(&self.sin), inverse: !self.inverse };
        Ok(Some(grad_res.contiguous()?.apply_op1_arc(Arc::new(Box::new(inverse)))?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Var, D};

    use super::*;
    use crate::test_data::random;

    /// Gradient of `sum(f(x) * probe)` by autograd against central differences in f32.
    fn check_gradient(x: &Tensor, f: impl Fn(&Tensor) -> Result<Tensor>) {
        let var = Var::from_tensor(x).unwrap();
        let out = f(var.as_tensor()).unwrap();
        let probe = random(out.dims(), 99);
        let loss = (&out * &probe).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let analytic: Vec<f32> =
            grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let base: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let h = 1e-2f32;
        for idx in (0..base.len()).step_by(7) {
            let eval = |delta: f32| {
                let mut shifted = base.clone();
                shifted[idx] += delta;
                let shifted = Tensor::from_vec(shifted, x.dims(), &Device::Cpu).unwrap();
                let out = f(&shifted).unwrap();
                (&out * &probe).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap()
            };
            let numeric = (eval(h) - eval(-h)) / (2.0 * h);
            assert!(
                (numeric - analytic[idx]).abs() < 2e-2 * (1.0 + numeric.abs()),
                "element {idx}: numeric {numeric}, autograd {}",
                analytic[idx]
            );
        }
    }

    #[test]
    fn rms_norm_matches_candle_and_finite_differences() {
        let xs = random(&[2, 3, 16], 1);
        let weight = random(&[16], 2);
        let ours = rms_norm(&xs, &weight, 1e-5).unwrap();
        let candle = candle_nn::ops::rms_norm(&xs, &weight, 1e-5).unwrap();
        let diff = (ours - candle).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "rms norm differs from candle's by {diff}");
        check_gradient(&xs, |x| rms_norm(x, &weight, 1e-5));
    }

    #[test]
    fn rms_norm_gradient_equals_the_composed_formula_over_many_rows() {
        // Enough rows for several parallel chunks, at SmolLM2's width.
        let xs = Var::from_tensor(&random(&[3, 130, 576], 11)).unwrap();
        let weight = random(&[576], 12);
        let probe = random(&[3, 130, 576], 13);
        let out = rms_norm(xs.as_tensor(), &weight, 1e-5).unwrap();
        let fused = (&out * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let fused = fused.get(xs.as_tensor()).unwrap();
        let x = xs.as_tensor().detach();
        let inv_rms = (x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap() + 1e-5)
            .unwrap()
            .sqrt()
            .unwrap()
            .recip()
            .unwrap();
        let weighted = probe.broadcast_mul(&weight).unwrap();
        let dot = (&weighted * &x).unwrap().sum_keepdim(D::Minus1).unwrap();
        let correction = (dot * inv_rms.powf(3.0).unwrap()).unwrap().affine(1.0 / 576.0, 0.0).unwrap();
        let composed =
            (weighted.broadcast_mul(&inv_rms).unwrap() - x.broadcast_mul(&correction).unwrap()).unwrap();
        let scale = composed.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let diff = (fused - composed).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(
            diff < 1e-5 * scale,
            "the fused rms norm gradient differs from the composed one by {diff} (scale {scale})"
        );
    }

    #[test]
    fn swiglu_equals_candles_silu_times_up_forward_and_backward() {
        // Enough values for several parallel chunks, and gates far out on both sides.
        let shape = [2, 50, 1536];
        let gate = Var::from_tensor(&(random(&shape, 14) * 8.0).unwrap()).unwrap();
        let up = Var::from_tensor(&random(&shape, 15)).unwrap();
        let probe = random(&shape, 16);
        let ours = swiglu(gate.as_tensor(), up.as_tensor()).unwrap();
        let candle = (gate.as_tensor().silu().unwrap() * up.as_tensor()).unwrap();
        let ours_values: Vec<f32> = ours.flatten_all().unwrap().to_vec1().unwrap();
        let candle_values: Vec<f32> = candle.flatten_all().unwrap().to_vec1().unwrap();
        // The vectorised exp is within 2 ulp of libm's, so the forward is within a few ulp.
        for (ours, candle) in ours_values.iter().zip(&candle_values) {
            assert!((ours - candle).abs() <= 1e-6 * candle.abs().max(1e-30), "{ours} vs candle's {candle}");
        }
        let fused = (&ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let composed = (&candle * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, var) in [("gate", &gate), ("up", &up)] {
            let fused = fused.get(var.as_tensor()).unwrap();
            let composed = composed.get(var.as_tensor()).unwrap();
            let scale = composed.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            let diff =
                (fused - composed).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(
                diff < 1e-6 * scale.max(1.0),
                "{name}: the fused gradient differs from candle's by {diff}"
            );
        }
        check_gradient(&random(&[2, 3, 8], 17), |x| swiglu(x, &random(&[2, 3, 8], 18)));
        // Untracked inputs take candle's ops.
        let plain = swiglu(&gate.as_tensor().detach(), &up.as_tensor().detach()).unwrap();
        assert!(!plain.track_op());
    }

    #[test]
    fn causal_softmax_matches_masked_softmax_and_finite_differences() {
        let (seq, start, total) = (3, 2, 5);
        // Two heads stacked along rows, as the attention stacks a KV group's query heads.
        let scores = random(&[1, 2 * seq, total], 3);
        let ours = causal_softmax(&scores, seq, start).unwrap();
        let mask = crate::attention::causal_mask(seq, start, &Device::Cpu).unwrap();
        let masked = scores.reshape((2, seq, total)).unwrap().broadcast_add(&mask).unwrap();
        let reference =
            candle_nn::ops::softmax_last_dim(&masked).unwrap().reshape((1, 2 * seq, total)).unwrap();
        let diff = (ours - reference).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-6, "causal softmax differs from the masked softmax by {diff}");
        check_gradient(&scores, |x| causal_softmax(x, seq, start));
    }

    #[test]
    fn causal_softmax_over_many_rows_matches_masked_softmax_and_its_composed_gradient() {
        // Enough rows for several parallel chunks; a long cached prefix as a shared prompt has.
        let (seq, start, heads) = (40, 300, 3);
        let total = start + seq;
        let scores = Var::from_tensor(&random(&[2, heads * seq, total], 9)).unwrap();
        let ours = causal_softmax(scores.as_tensor(), seq, start).unwrap();
        let mask = crate::attention::causal_mask(seq, start, &Device::Cpu).unwrap();
        let masked =
            scores.as_tensor().reshape((2 * heads, seq, total)).unwrap().broadcast_add(&mask).unwrap();
        let reference =
            candle_nn::ops::softmax_last_dim(&masked).unwrap().reshape((2, heads * seq, total)).unwrap();
        let diff =
            (&ours - &reference).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-6, "causal softmax differs from the masked softmax by {diff}");
        // The fused backward against the same formula in candle's ops: dx = y∘(g − Σ g∘y).
        let weights = random(&[2, heads * seq, total], 10);
        let grads = (&ours * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let fused = grads.get(scores.as_tensor()).unwrap();
        let probs = ours.detach();
        let dot = (&weights * &probs).unwrap().sum_keepdim(D::Minus1).unwrap();
        let composed = (&probs * weights.broadcast_sub(&dot).unwrap()).unwrap();
        let diff = (fused - composed).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-6, "the fused softmax gradient differs from the composed one by {diff}");
    }

    #[test]
    fn rope_matches_candle_and_its_backward_is_the_inverse_rotation() {
        let xs = random(&[2, 3, 4, 8], 4);
        let cos = random(&[4, 4], 5);
        let sin = random(&[4, 4], 6);
        let ours = rope(&xs, &cos, &sin).unwrap();
        let candle = candle_nn::rotary_emb::rope(&xs, &cos, &sin).unwrap();
        let diff = (ours - candle).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-6, "rope differs from candle's by {diff}");
        check_gradient(&xs, |x| rope(x, &cos, &sin));
    }

    #[test]
    fn frozen_linear_matches_matmul_and_gives_no_weight_gradient() {
        let xs = Var::from_tensor(&random(&[2, 3, 8], 7)).unwrap();
        let weight = Var::from_tensor(&random(&[5, 8], 8)).unwrap();
        let ours = frozen_linear(xs.as_tensor(), weight.as_tensor()).unwrap();
        let reference = xs.as_tensor().broadcast_matmul(&weight.as_tensor().t().unwrap()).unwrap();
        let diff = (&ours - reference).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "frozen linear differs from matmul by {diff}");
        let grads = ours.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(weight.as_tensor()).is_none(), "a frozen weight got a gradient");
        let plain_weight = weight.as_tensor().detach();
        check_gradient(&random(&[2, 3, 8], 9), |x| frozen_linear(x, &plain_weight));
        assert_eq!(ours.dtype(), DType::F32);
    }
}
