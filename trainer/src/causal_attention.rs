//! Causal self-attention of a training forward pass as one differentiable op: rotary embedding,
//! scaled scores, the causal softmax and the weighted values, with one backward pass for the
//! query, key and value gradients.
//!
//! The composed version (split heads, two rotations, a scale, two batched matmuls, the softmax,
//! merge heads) is eleven autograd nodes per layer, five of them full-size copies, and candle's
//! backward adds each input gradient into a zeroed tensor; its matmuls also compute the masked
//! half of the scores. Here the inputs are the projections as they come (`[batch, seq, heads *
//! head_dim]`), each (row, key/value head) pair is one task on rayon's threads, and the products
//! run in blocks of [`BLOCK`] query rows that stop at the last key those rows can see. The
//! backward pass recomputes the probabilities from the queries and keys instead of keeping them.
//! [`causal_attention`] is tested against the composed ops (forward and gradients).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::ops::{f32_slice, with_cpu_f32};
use crate::rope::RotaryEmbedding;
use crate::small_gemm::gemm;

/// Query rows per product block: each block's products stop at its last row's key.
const BLOCK: usize = 32;

/// The sizes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionDims {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl AttentionDims {
    fn group(&self) -> usize {
        self.heads / self.kv_heads
    }

    fn q_width(&self) -> usize {
        self.heads * self.head_dim
    }

    fn kv_width(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

/// `softmax(rope(q) · rope(k)^T · scale + causal mask) · v` for projections `q` `[batch, seq,
/// heads * head_dim]` and `k`, `v` `[batch, seq, kv_heads * head_dim]` at positions `0..seq`;
/// query head `h` reads key/value head `h / (heads / kv_heads)`. Returns `[batch, seq, heads *
/// head_dim]`, heads merged as `o_proj` reads them.
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    rope: &RotaryEmbedding,
    heads: usize,
    kv_heads: usize,
    scale: f32,
) -> Result<Tensor> {
    let (batch, seq, q_width) = q.dims3()?;
    let head_dim = q_width.checked_div(heads).unwrap_or(0);
    let dims = AttentionDims { batch, seq, heads, kv_heads, head_dim };
    let kv_shape = [batch, seq, kv_heads * head_dim];
    if heads == 0
        || kv_heads == 0
        || head_dim == 0
        || batch == 0
        || seq == 0
        || !heads.is_multiple_of(kv_heads)
        || !head_dim.is_multiple_of(2)
        || head_dim * heads != q_width
        || k.dims() != kv_shape
        || v.dims() != kv_shape
    {
        candle_core::bail!(
            "causal attention: queries {:?}, keys {:?} and values {:?} do not fit {heads} query heads \
             over {kv_heads} key/value heads",
            q.dims(),
            k.dims(),
            v.dims(),
        )
    }
    let (cos, sin) = rope.cos_sin(0, seq)?;
    if cos.dims() != [seq, head_dim / 2] {
        candle_core::bail!("causal attention: rope tables {:?} do not fit head_dim {head_dim}", cos.dims())
    }
    let op = CausalAttention {
        dims,
        scale,
        cos: Arc::new(cos.flatten_all()?.to_vec1()?),
        sin: Arc::new(sin.flatten_all()?.to_vec1()?),
    };
    q.contiguous()?.apply_op3_arc(&k.contiguous()?, &v.contiguous()?, Arc::new(Box::new(op)))
}

struct CausalAttention {
    dims: AttentionDims,
    scale: f32,
    cos: Arc<Vec<f32>>,
    sin: Arc<Vec<f32>>,
}

impl CausalAttention {
    fn rope(&self) -> Rotary<'_> {
        Rotary { cos: &self.cos, sin: &self.sin, half: self.dims.head_dim / 2 }
    }
}

impl CustomOp3 for CausalAttention {
    fn name(&self) -> &'static str {
        "causal-attention"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        q_layout: &Layout,
        k: &CpuStorage,
        k_layout: &Layout,
        v: &CpuStorage,
        v_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let q = f32_slice(q, q_layout, self.name())?;
        let k = f32_slice(k, k_layout, self.name())?;
        let v = f32_slice(v, v_layout, self.name())?;
        let out = forward(self.dims, self.rope(), self.scale, q, k, v);
        Ok((CpuStorage::F32(out), q_layout.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad_res = grad_res.contiguous()?;
        let grads = with_cpu_f32(&[q, k, v, res, &grad_res], self.name(), |slices| {
            backward(
                self.dims,
                self.rope(),
                self.scale,
                slices[0],
                slices[1],
                slices[2],
                slices[3],
                slices[4],
            )
        })?;
        let device = q.device();
        Ok((
            Some(Tensor::from_vec(grads.q, q.shape(), device)?),
            Some(Tensor::from_vec(grads.k, k.shape(), device)?),
            Some(Tensor::from_vec(grads.v, v.shape(), device)?),
        ))
    }
}

/// Rotary tables for positions `0..seq`, `[seq, half]` each.
#[derive(Clone, Copy)]
struct Rotary<'a> {
    cos: &'a [f32],
    sin: &'a [f32],
    half: usize,
}

impl Rotary<'_> {
    /// `out = rotate(x, position) * scale`; `inverse` rotates back (the gradient's direction).
    fn apply(&self, x: &[f32], position: usize, scale: f32, inverse: bool, out: &mut [f32]) {
        let half = self.half;
        let cos = &self.cos[position * half..][..half];
        let sin = &self.sin[position * half..][..half];
        let sign = if inverse { -1f32 } else { 1f32 };
        let (x1, x2) = x.split_at(half);
        let (out1, out2) = out.split_at_mut(half);
        for i in 0..half {
            let s = sign * sin[i];
            out1[i] = (x1[i] * cos[i] - x2[i] * s) * scale;
            out2[i] = (x2[i] * cos[i] + x1[i] * s) * scale;
        }
    }
}

/// Row blocks `[start, end)` of `0..seq`.
fn blocks(seq: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..seq).step_by(BLOCK).map(move |start| (start, (start + BLOCK).min(seq)))
}

/// One (batch row, key/value head) task's rotated keys and scaled, rotated queries, and the
/// causal probabilities of each query head in the group.
struct Scores {
    /// `[seq, head_dim]`, rotated.
    keys: Vec<f32>,
    /// `[group, seq, head_dim]`, rotated and multiplied by the scale.
    queries: Vec<f32>,
    /// `[group, seq, seq]`; row `i` holds probabilities in columns `0..=i`, zeros after it up to
    /// its block's end (columns past the block's end are never read).
    probs: Vec<f32>,
}

fn scores(
    dims: AttentionDims,
    rope: Rotary<'_>,
    scale: f32,
    q: &[f32],
    k: &[f32],
    b: usize,
    g: usize,
) -> Scores {
    let AttentionDims { seq, head_dim: d, .. } = dims;
    let group = dims.group();
    let mut keys = vec![0f32; seq * d];
    for (j, row) in keys.chunks_exact_mut(d).enumerate() {
        let src = &k[(b * seq + j) * dims.kv_width() + g * d..][..d];
        rope.apply(src, j, 1.0, false, row);
    }
    let mut queries = vec![0f32; group * seq * d];
    for (r, head) in queries.chunks_exact_mut(seq * d).enumerate() {
        let h = g * group + r;
        for (i, row) in head.chunks_exact_mut(d).enumerate() {
            let src = &q[(b * seq + i) * dims.q_width() + h * d..][..d];
            rope.apply(src, i, scale, false, row);
        }
    }
    let mut probs = vec![0f32; group * seq * seq];
    for (head_q, head_p) in queries.chunks_exact(seq * d).zip(probs.chunks_exact_mut(seq * seq)) {
        for (start, end) in blocks(seq) {
            // scores[start..end, 0..end] = queries[start..end] · keys[0..end]^T
            gemm(
                (end - start, end, d),
                &mut head_p[start * seq..],
                seq,
                false,
                &head_q[start * d..],
                (d, 1),
                &keys,
                (1, d),
            );
        }
        for (i, row) in head_p.chunks_exact_mut(seq).enumerate() {
            let visible = &mut row[..=i];
            let max = visible.iter().fold(f32::NEG_INFINITY, |max, &x| max.max(x));
            visible.iter_mut().for_each(|x| *x -= max);
            kernels::fast::exp_in_place(visible);
            let sum: f32 = visible.iter().sum();
            visible.iter_mut().for_each(|x| *x /= sum);
            let block_end = (i / BLOCK * BLOCK + BLOCK).min(seq);
            row[i + 1..block_end].fill(0.0);
        }
    }
    Scores { keys, queries, probs }
}

/// Every (batch row, key/value head) pair, the unit of parallel work.
fn tasks(dims: AttentionDims) -> Vec<(usize, usize)> {
    (0..dims.batch).flat_map(|b| (0..dims.kv_heads).map(move |g| (b, g))).collect()
}

fn forward(dims: AttentionDims, rope: Rotary<'_>, scale: f32, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f32> {
    let AttentionDims { seq, head_dim: d, .. } = dims;
    let group = dims.group();
    let parts: Vec<Vec<f32>> = tasks(dims)
        .into_par_iter()
        .map(|(b, g)| {
            let Scores { probs, .. } = scores(dims, rope, scale, q, k, b, g);
            let values = &v[(b * seq) * dims.kv_width() + g * d..];
            let mut out = vec![0f32; group * seq * d];
            for (head_p, head_out) in probs.chunks_exact(seq * seq).zip(out.chunks_exact_mut(seq * d)) {
                for (start, end) in blocks(seq) {
                    // out[start..end] = probs[start..end, 0..end] · values[0..end]
                    let dst = &mut head_out[start * d..];
                    gemm(
                        (end - start, d, end),
                        dst,
                        d,
                        false,
                        &head_p[start * seq..],
                        (seq, 1),
                        values,
                        (dims.kv_width(), 1),
                    );
                }
            }
            out
        })
        .collect();
    let mut out = vec![0f32; q.len()];
    for ((b, g), part) in tasks(dims).into_iter().zip(&parts) {
        place_heads(dims, part, b, g * group, dims.q_width(), &mut out);
    }
    out
}

/// Copies `part` (`[n, seq, head_dim]`: heads `first_head..first_head + n` of batch row `b`) into
/// `out`, `[batch, seq, width]` with the heads side by side in each row.
fn place_heads(
    dims: AttentionDims,
    part: &[f32],
    b: usize,
    first_head: usize,
    width: usize,
    out: &mut [f32],
) {
    let AttentionDims { seq, head_dim: d, .. } = dims;
    for (r, head) in part.chunks_exact(seq * d).enumerate() {
        let h = first_head + r;
        for (i, row) in head.chunks_exact(d).enumerate() {
            out[(b * seq + i) * width + h * d..][..d].copy_from_slice(row);
        }
    }
}

struct Gradients {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
}

#[allow(clippy::too_many_arguments)]
fn backward(
    dims: AttentionDims,
    rope: Rotary<'_>,
    scale: f32,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &[f32],
    grad_out: &[f32],
) -> Gradients {
    let AttentionDims { seq, head_dim: d, .. } = dims;
    let group = dims.group();
    let (q_width, kv_width) = (dims.q_width(), dims.kv_width());
    let parts: Vec<Gradients> = tasks(dims)
        .into_par_iter()
        .map(|(b, g)| {
            let Scores { keys, queries, probs } = scores(dims, rope, scale, q, k, b, g);
            let values = &v[(b * seq) * kv_width + g * d..];
            let mut grad_q = vec![0f32; group * seq * d];
            let mut grad_k = vec![0f32; seq * d];
            let mut grad_v = vec![0f32; seq * d];
            let mut grad_s = vec![0f32; seq * seq];
            for r in 0..group {
                let h = g * group + r;
                let head_go = &grad_out[(b * seq) * q_width + h * d..];
                let head_out = &out[(b * seq) * q_width + h * d..];
                let head_p = &probs[r * seq * seq..][..seq * seq];
                let head_q = &queries[r * seq * d..][..seq * d];
                for (start, end) in blocks(seq) {
                    // grad_probs[start..end, 0..end] = grad_out[start..end] · values[0..end]^T
                    let dst = &mut grad_s[start * seq..];
                    gemm(
                        (end - start, end, d),
                        dst,
                        seq,
                        false,
                        &head_go[start * q_width..],
                        (q_width, 1),
                        values,
                        (1, kv_width),
                    );
                }
                // grad_scores = probs ∘ (grad_probs − Σ_j grad_out · out), zero where masked.
                for (i, (gs_row, p_row)) in
                    grad_s.chunks_exact_mut(seq).zip(head_p.chunks_exact(seq)).enumerate()
                {
                    let go = &head_go[i * q_width..][..d];
                    let o = &head_out[i * q_width..][..d];
                    let delta: f32 = go.iter().zip(o).map(|(a, b)| a * b).sum();
                    for (gs, &p) in gs_row[..=i].iter_mut().zip(&p_row[..=i]) {
                        *gs = p * (*gs - delta);
                    }
                    let block_end = (i / BLOCK * BLOCK + BLOCK).min(seq);
                    gs_row[i + 1..block_end].fill(0.0);
                }
                let head_gq = &mut grad_q[r * seq * d..][..seq * d];
                for (start, end) in blocks(seq) {
                    // grad_queries[start..end] = grad_scores[start..end, 0..end] · keys[0..end]
                    gemm(
                        (end - start, d, end),
                        &mut head_gq[start * d..],
                        d,
                        false,
                        &grad_s[start * seq..],
                        (seq, 1),
                        &keys,
                        (d, 1),
                    );
                    // Column block start..end of the scores is nonzero in rows start..seq only.
                    // grad_keys[start..end] += grad_scores[start..seq, start..end]^T · queries[start..seq]
                    let (lhs, rows) = (&grad_s[start * seq + start..], seq - start);
                    gemm(
                        (end - start, d, rows),
                        &mut grad_k[start * d..],
                        d,
                        true,
                        lhs,
                        (1, seq),
                        &head_q[start * d..],
                        (d, 1),
                    );
                    // grad_values[start..end] += probs[start..seq, start..end]^T · grad_out[start..seq]
                    let lhs = &head_p[start * seq + start..];
                    gemm(
                        (end - start, d, rows),
                        &mut grad_v[start * d..],
                        d,
                        true,
                        lhs,
                        (1, seq),
                        &head_go[start * q_width..],
                        (q_width, 1),
                    );
                }
            }
            // Back through the scale and the rotations.
            let mut unrotated = vec![0f32; d];
            for row in grad_q.chunks_exact_mut(seq * d).flat_map(|head| head.chunks_exact_mut(d).enumerate())
            {
                let (i, row) = row;
                rope.apply(row, i, scale, true, &mut unrotated);
                row.copy_from_slice(&unrotated);
            }
            for (j, row) in grad_k.chunks_exact_mut(d).enumerate() {
                rope.apply(row, j, 1.0, true, &mut unrotated);
                row.copy_from_slice(&unrotated);
            }
            Gradients { q: grad_q, k: grad_k, v: grad_v }
        })
        .collect();
    let mut grads = Gradients { q: vec![0f32; q.len()], k: vec![0f32; k.len()], v: vec![0f32; v.len()] };
    for ((b, g), part) in tasks(dims).into_iter().zip(&parts) {
        place_heads(dims, &part.q, b, g * group, q_width, &mut grads.q);
        place_heads(dims, &part.k, b, g, kv_width, &mut grads.k);
        place_heads(dims, &part.v, b, g, kv_width, &mut grads.v);
    }
    grads
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::test_data::{assert_same_gradients, max_diff, random};

    /// The composed ops the model used before (and still uses with a cache): split heads, rotate,
    /// scale, scores, causal softmax, weighted values, merge heads.
    fn composed(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        rope: &RotaryEmbedding,
        heads: usize,
        kv_heads: usize,
        scale: f64,
    ) -> Tensor {
        let (batch, seq, q_width) = q.dims3().unwrap();
        let d = q_width / heads;
        let split = |x: &Tensor, n: usize| {
            x.reshape((batch, seq, n, d)).unwrap().transpose(1, 2).unwrap().contiguous().unwrap()
        };
        let queries = (rope.apply(&split(q, heads), 0).unwrap() * scale).unwrap();
        let keys = rope.apply(&split(k, kv_heads), 0).unwrap();
        let values = split(v, kv_heads);
        let group = heads / kv_heads;
        let queries = queries.reshape((batch, kv_heads, group * seq, d)).unwrap();
        let scores = queries.matmul(&keys.t().unwrap()).unwrap();
        let probs = crate::ops::causal_softmax(&scores, seq, 0).unwrap();
        let attended = probs.matmul(&values).unwrap();
        attended
            .reshape((batch, heads, seq, d))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((batch, seq, heads * d))
            .unwrap()
    }

    #[test]
    fn equals_the_composed_ops_forward_and_backward() {
        // Sequences shorter than, equal to and past several blocks, with and without grouping.
        for (batch, seq, heads, kv_heads, d) in
            [(2, 5, 2, 1, 8), (2, 32, 4, 2, 8), (3, 77, 6, 2, 16), (1, 70, 3, 3, 4)]
        {
            let rope = RotaryEmbedding::new(d, 10_000.0, 128, &Device::Cpu).unwrap();
            let q = Var::from_tensor(&random(&[batch, seq, heads * d], 1)).unwrap();
            let k = Var::from_tensor(&random(&[batch, seq, kv_heads * d], 2)).unwrap();
            let v = Var::from_tensor(&random(&[batch, seq, kv_heads * d], 3)).unwrap();
            let weight = random(&[batch, seq, heads * d], 4);
            let scale = 1.0 / (d as f64).sqrt();
            let fused = causal_attention(&q, &k, &v, &rope, heads, kv_heads, scale as f32).unwrap();
            let reference = composed(&q, &k, &v, &rope, heads, kv_heads, scale);
            assert!(max_diff(&fused, &reference) < 1e-5, "forward of {seq} positions differs");
            let vars = [("q", &q), ("k", &k), ("v", &v)];
            assert_same_gradients(&fused, &reference, &weight, &vars, &format!("{seq} positions"));
        }
    }

    #[test]
    fn refuses_shapes_that_do_not_fit() {
        let rope = RotaryEmbedding::new(8, 10_000.0, 16, &Device::Cpu).unwrap();
        let q = random(&[1, 4, 24], 1);
        let kv = random(&[1, 4, 16], 2);
        // 3 query heads over 2 key/value heads do not group.
        let err = causal_attention(&q, &kv, &kv, &rope, 3, 2, 1.0).unwrap_err();
        assert!(err.to_string().contains("3 query heads over 2 key/value heads"), "{err}");
        // Values of another width than the keys.
        assert!(causal_attention(&q, &kv, &random(&[1, 4, 8], 3), &rope, 3, 1, 1.0).is_err());
        // Rope tables for another head size (4 where the heads are 8 wide).
        let narrow = RotaryEmbedding::new(4, 10_000.0, 16, &Device::Cpu).unwrap();
        let err = causal_attention(&q, &random(&[1, 4, 8], 2), &random(&[1, 4, 8], 3), &narrow, 3, 1, 1.0);
        assert!(err.unwrap_err().to_string().contains("rope tables"));
        // No positions, or heads of width 0.
        let attend = |shape: &[usize]| {
            causal_attention(&random(shape, 5), &random(shape, 6), &random(shape, 7), &rope, 1, 1, 1.0)
        };
        assert!(attend(&[1, 0, 8]).is_err());
        assert!(attend(&[1, 4, 0]).is_err());
        // More positions than the tables hold.
        let long = random(&[1, 20, 8], 4);
        assert!(causal_attention(&long, &long, &long, &rope, 1, 1, 1.0).is_err());
    }
}
