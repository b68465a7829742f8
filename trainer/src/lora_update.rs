//! A LoRA update of a training pass as one differentiable op: `scaling · ((mask ∘ x) · Aᵀ) · Bᵀ`.
//!
//! Composed from candle ops (dropout's multiply, two matmuls, a scale) the update is four autograd
//! nodes, three of them full-size (`[rows, in]` or `[rows, out]`), and candle's backward adds each
//! of their input gradients into a zeroed tensor. Here the rows run in chunks on rayon's threads:
//! the masked input exists only one chunk at a time, the thin `[rows, rank]` product is kept
//! from the forward pass for the backward one, and the backward pass writes the three gradients
//! directly (A's and B's summed over the chunks in a fixed order, so runs stay bit-for-bit
//! repeatable). [`lora_update`] is tested against the composed ops (forward and gradients).

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::ops::{f32_slice, with_cpu_f32};
use crate::small_gemm::gemm;

/// Rows per parallel task.
const CHUNK_ROWS: usize = 64;

/// `scaling · ((mask ∘ xs) · aᵀ) · bᵀ` for `xs` `[rows, in]`, `a` `[rank, in]`, `b` `[out,
/// rank]` and an optional dropout `mask` of `xs`'s size (already holding the kept elements'
/// `1 / (1 - p)`). Returns `[rows, out]`. f32 tensors on the CPU.
pub fn lora_update(
    xs: &Tensor,
    a: &Tensor,
    b: &Tensor,
    mask: Option<Vec<f32>>,
    scaling: f32,
) -> Result<Tensor> {
    let (rows, in_features) = xs.dims2()?;
    let (rank, a_in) = a.dims2()?;
    let (out_features, b_rank) = b.dims2()?;
    if a_in != in_features || b_rank != rank || rank == 0 || in_features == 0 || out_features == 0 {
        candle_core::bail!(
            "lora update: input {:?}, A {:?} and B {:?} do not chain",
            xs.dims(),
            a.dims(),
            b.dims()
        )
    }
    if let Some(mask) = &mask {
        if mask.len() != rows * in_features {
            candle_core::bail!(
                "lora update: a dropout mask of {} elements for an input of {rows} x {in_features}",
                mask.len()
            )
        }
    }
    let op = LoraUpdate {
        dims: Dims { rows, in_features, rank, out_features },
        scaling,
        mask: mask.map(Arc::new),
        hidden: Mutex::new(None),
    };
    xs.contiguous()?.apply_op3_arc(&a.contiguous()?, &b.contiguous()?, Arc::new(Box::new(op)))
}

#[derive(Debug, Clone, Copy)]
struct Dims {
    rows: usize,
    in_features: usize,
    rank: usize,
    out_features: usize,
}

struct LoraUpdate {
    dims: Dims,
    scaling: f32,
    mask: Option<Arc<Vec<f32>>>,
    /// `scaling · (mask ∘ x) · Aᵀ` (`[rows, rank]`) from the forward pass, for the backward one.
    hidden: Mutex<Option<Vec<f32>>>,
}

impl LoraUpdate {
    /// The chunk of rows `[start, start + len)` of `mask ∘ x`, in `scratch` or borrowed from `x`.
    fn masked<'a>(&self, x: &'a [f32], start: usize, len: usize, scratch: &'a mut Vec<f32>) -> &'a [f32] {
        let width = self.dims.in_features;
        let x = &x[start * width..][..len * width];
        match &self.mask {
            None => x,
            Some(mask) => {
                let mask = &mask[start * width..][..len * width];
                scratch.clear();
                scratch.extend(x.iter().zip(mask).map(|(x, m)| x * m));
                scratch
            }
        }
    }

    /// `scaling · (mask ∘ x) · Aᵀ`, `[rows, rank]`.
    fn hidden(&self, x: &[f32], a: &[f32]) -> Vec<f32> {
        let Dims { rows, in_features, rank, .. } = self.dims;
        let mut hidden = vec![0f32; rows * rank];
        hidden.par_chunks_mut(CHUNK_ROWS * rank).enumerate().for_each(|(chunk, out)| {
            let start = chunk * CHUNK_ROWS;
            let len = out.len() / rank;
            let mut scratch = Vec::new();
            let xm = self.masked(x, start, len, &mut scratch);
            // out[len, rank] = xm[len, in] · Aᵀ
            gemm((len, rank, in_features), out, rank, false, xm, (in_features, 1), a, (1, in_features));
            out.iter_mut().for_each(|h| *h *= self.scaling);
        });
        hidden
    }

    /// The gradients of the input (empty unless `want_x`), A and B for the output gradient `grad`.
    fn gradients(
        &self,
        x_data: &[f32],
        a_data: &[f32],
        b_data: &[f32],
        grad: &[f32],
        want_x: bool,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let Dims { rows, in_features, rank, out_features } = self.dims;
        let kept = self.hidden.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        let hidden = kept.unwrap_or_else(|| self.hidden(x_data, a_data));
        struct Part {
            grad_a: Vec<f32>,
            grad_b: Vec<f32>,
        }
        let mut grad_x = vec![0f32; if want_x { rows * in_features } else { 0 }];
        let mut grad_x_chunks: Vec<&mut [f32]> = if want_x {
            grad_x.chunks_mut(CHUNK_ROWS * in_features).collect()
        } else {
            (0..rows.div_ceil(CHUNK_ROWS)).map(|_| &mut [][..]).collect()
        };
        let parts: Vec<Part> = grad_x_chunks
            .par_iter_mut()
            .enumerate()
            .map(|(chunk, grad_x)| {
                let start = chunk * CHUNK_ROWS;
                let len = CHUNK_ROWS.min(rows - start);
                let grad = &grad[start * out_features..][..len * out_features];
                let hidden = &hidden[start * rank..][..len * rank];
                // grad_hidden[len, rank] = scaling · grad[len, out] · B
                let mut grad_hidden = vec![0f32; len * rank];
                gemm(
                    (len, rank, out_features),
                    &mut grad_hidden,
                    rank,
                    false,
                    grad,
                    (out_features, 1),
                    b_data,
                    (rank, 1),
                );
                grad_hidden.iter_mut().for_each(|g| *g *= self.scaling);
                // grad_B[out, rank] = gradᵀ · hidden (hidden already holds the scaling)
                let mut grad_b = vec![0f32; out_features * rank];
                gemm(
                    (out_features, rank, len),
                    &mut grad_b,
                    rank,
                    false,
                    grad,
                    (1, out_features),
                    hidden,
                    (rank, 1),
                );
                // grad_A[rank, in] = grad_hiddenᵀ · (mask ∘ x)
                let mut scratch = Vec::new();
                let xm = self.masked(x_data, start, len, &mut scratch);
                let mut grad_a = vec![0f32; rank * in_features];
                gemm(
                    (rank, in_features, len),
                    &mut grad_a,
                    in_features,
                    false,
                    &grad_hidden,
                    (1, rank),
                    xm,
                    (in_features, 1),
                );
                if !grad_x.is_empty() {
                    // grad_x[len, in] = mask ∘ (grad_hidden · A)
                    gemm(
                        (len, in_features, rank),
                        grad_x,
                        in_features,
                        false,
                        &grad_hidden,
                        (rank, 1),
                        a_data,
                        (in_features, 1),
                    );
                    if let Some(mask) = &self.mask {
                        let mask = &mask[start * in_features..][..len * in_features];
                        grad_x.iter_mut().zip(mask).for_each(|(g, m)| *g *= m);
                    }
                }
                Part { grad_a, grad_b }
            })
            .collect();
        let mut grad_a = vec![0f32; rank * in_features];
        let mut grad_b = vec![0f32; out_features * rank];
        for part in &parts {
            grad_a.iter_mut().zip(&part.grad_a).for_each(|(sum, g)| *sum += g);
            grad_b.iter_mut().zip(&part.grad_b).for_each(|(sum, g)| *sum += g);
        }
        (grad_x, grad_a, grad_b)
    }
}

impl CustomOp3 for LoraUpdate {
    fn name(&self) -> &'static str {
        "lora-update"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        a: &CpuStorage,
        a_layout: &Layout,
        b: &CpuStorage,
        b_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let Dims { rows, rank, out_features, .. } = self.dims;
        let x = f32_slice(x, x_layout, self.name())?;
        let a = f32_slice(a, a_layout, self.name())?;
        let b = f32_slice(b, b_layout, self.name())?;
        let hidden = self.hidden(x, a);
        let mut out = vec![0f32; rows * out_features];
        out.par_chunks_mut(CHUNK_ROWS * out_features).zip(hidden.par_chunks(CHUNK_ROWS * rank)).for_each(
            |(out, hidden)| {
                let len = hidden.len() / rank;
                // out[len, out] = hidden[len, rank] · Bᵀ
                gemm((len, out_features, rank), out, out_features, false, hidden, (rank, 1), b, (1, rank));
            },
        );
        *self.hidden.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(hidden);
        Ok((CpuStorage::F32(out), Shape::from((rows, out_features))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad_res = grad_res.contiguous()?;
        let want_x = x.track_op();
        let (grad_x, grad_a, grad_b) = with_cpu_f32(&[x, a, b, &grad_res], self.name(), |slices| {
            self.gradients(slices[0], slices[1], slices[2], slices[3], want_x)
        })?;
        let device = x.device();
        let grad_x = if want_x { Some(Tensor::from_vec(grad_x, x.shape(), device)?) } else { None };
        Ok((
            grad_x,
            Some(Tensor::from_vec(grad_a, a.shape(), device)?),
            Some(Tensor::from_vec(grad_b, b.shape(), device)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::test_data::{assert_same_gradients, max_abs, max_diff, random, random_values};

    #[test]
    fn equals_the_composed_ops_forward_and_backward() {
        // Fewer rows than a chunk, several chunks with a partial last one; with and without dropout.
        for (rows, in_features, rank, out_features, dropout) in
            [(5, 12, 2, 7, false), (150, 40, 8, 24, true), (130, 33, 4, 50, false), (64, 16, 1, 16, true)]
        {
            let x = Var::from_tensor(&random(&[rows, in_features], 1)).unwrap();
            let a = Var::from_tensor(&random(&[rank, in_features], 2)).unwrap();
            let b = Var::from_tensor(&random(&[out_features, rank], 3)).unwrap();
            let mask = dropout.then(|| {
                random_values(&[rows, in_features], 4)
                    .iter()
                    .map(|&r| if r < -0.6 { 0.0 } else { 1.25 })
                    .collect::<Vec<_>>()
            });
            let weight = random(&[rows, out_features], 5);
            let scaling = 2.5f32;
            let fused = lora_update(&x, &a, &b, mask.clone(), scaling).unwrap();
            let input = match &mask {
                Some(mask) => (x.as_tensor()
                    * Tensor::from_vec(mask.clone(), (rows, in_features), &Device::Cpu).unwrap())
                .unwrap(),
                None => x.as_tensor().clone(),
            };
            let reference = input
                .matmul(&a.t().unwrap())
                .unwrap()
                .matmul(&b.t().unwrap())
                .unwrap()
                .affine(f64::from(scaling), 0.0)
                .unwrap();
            assert!(
                max_diff(&fused, &reference) < 1e-5 * max_abs(&reference).max(1.0),
                "forward of {rows} rows"
            );
            let vars = [("x", &x), ("a", &a), ("b", &b)];
            let context = format!("{rows} rows, dropout {dropout}");
            assert_same_gradients(&fused, &reference, &weight, &vars, &context);
        }
    }

    #[test]
    fn a_dropped_input_gets_no_gradient() {
        let x = Var::from_tensor(&random(&[3, 4], 1)).unwrap();
        let a = Var::from_tensor(&random(&[2, 4], 2)).unwrap();
        let b = Var::from_tensor(&random(&[5, 2], 3)).unwrap();
        let mut mask = vec![2.0f32; 12];
        mask[5] = 0.0;
        let grads = lora_update(&x, &a, &b, Some(mask), 1.0).unwrap().sum_all().unwrap().backward().unwrap();
        let grad_x: Vec<f32> = grads.get(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(grad_x[5], 0.0);
        assert!(grad_x.iter().enumerate().all(|(i, g)| i == 5 || *g != 0.0));
    }

    #[test]
    fn refuses_shapes_that_do_not_chain() {
        let x = random(&[3, 4], 1);
        let err = lora_update(&x, &random(&[2, 5], 2), &random(&[5, 2], 3), None, 1.0).unwrap_err();
        assert!(err.to_string().contains("do not chain"), "{err}");
        assert!(lora_update(&x, &random(&[2, 4], 2), &random(&[5, 3], 3), None, 1.0).is_err());
        let err =
            lora_update(&x, &random(&[2, 4], 2), &random(&[5, 2], 3), Some(vec![1.0; 11]), 1.0).unwrap_err();
        assert!(err.to_string().contains("11 elements"), "{err}");
        // Empty matrices are refused rather than chunked by zero.
        let empty = Tensor::zeros((3, 0), candle_core::DType::F32, &Device::Cpu).unwrap();
        let none = Tensor::zeros((2, 0), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(lora_update(&empty, &none, &random(&[5, 2], 3), None, 1.0).is_err());
        assert!(lora_update(
            &x,
            &random(&[2, 4], 2),
            &Tensor::zeros((0, 2), candle_core::DType::F32, &Device::Cpu).unwrap(),
            None,
            1.0
        )
        .is_err());
    }
}
