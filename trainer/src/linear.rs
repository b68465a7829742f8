//! The linear-layer seam: the model holds `Box<dyn LinearLayer>`, so a quantized or LoRA-wrapped
//! layer can replace a dense one without touching the model code.

use candle_core::{Module, Result, Tensor};

/// `y = x W^T` over the last dimension of `x`, for any leading shape.
pub trait LinearLayer: std::fmt::Debug + Send + Sync {
    /// Applies the layer to `xs` of shape `[.., in_features]`, giving `[.., out_features]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor>;

    /// Width of the input.
    fn in_features(&self) -> usize;

    /// Width of the output.
    fn out_features(&self) -> usize;

    /// The f32 weight `[out_features, in_features]` when the layer is a plain dense one, so it
    /// can be quantized or wrapped; `None` for layers that are already something else.
    fn dense_weight(&self) -> Option<&Tensor> {
        None
    }

    /// Cuts any trainable matrices this layer holds loose from autograd, for inference: the
    /// forward pass then builds no graph and takes the plain (non-differentiable) ops. A layer
    /// with nothing trainable ignores it.
    fn freeze(&mut self) {}
}

/// A bias-free dense layer with an f32 weight in Hugging Face layout `[out_features, in_features]`.
#[derive(Debug, Clone)]
pub struct DenseLinear {
    weight: Tensor,
}

impl DenseLinear {
    /// Wraps a `[out_features, in_features]` weight.
    pub fn new(weight: Tensor) -> Result<Self> {
        weight.dims2()?;
        Ok(Self { weight })
    }

    /// The `[out_features, in_features]` weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl LinearLayer for DenseLinear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        // Fold leading dims into rows so one 2-D matmul runs against the transposed weight view
        // (gemm reads the transpose through strides; no copy of the weight).
        let dims = xs.dims();
        let in_features = self.in_features();
        match dims.last() {
            Some(&last) if last == in_features => {}
            _ => candle_core::bail!("linear layer expects [.., {in_features}], got {:?}", xs.shape()),
        }
        if xs.track_op() {
            // Training: no gradient for the frozen weight.
            return crate::ops::frozen_linear(xs, &self.weight);
        }
        let n_rows = xs.elem_count() / in_features;
        let rows = xs.reshape((n_rows, in_features))?;
        let out = rows.matmul(&self.weight.t()?)?;
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = self.out_features();
        }
        out.reshape(out_dims)
    }

    fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }

    fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }

    fn dense_weight(&self) -> Option<&Tensor> {
        Some(&self.weight)
    }
}

impl Module for DenseLinear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        LinearLayer::forward(self, xs)
    }
}
