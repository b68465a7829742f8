//! The linear-layer seam: the model holds `Box<dyn LinearLayer>`, so a quantized or LoRA-wrapped
//! layer can replace a dense one without touching the model code.

use std::sync::Arc;

use candle_core::{Module, Result, Tensor};

/// The input gradient of a frozen linear layer as a function of its output gradient
/// (`grad · W`), detached from the layer so an autograd node can own it.
pub type InputGradient = Arc<dyn Fn(&Tensor) -> Result<Tensor> + Send + Sync>;

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

    /// For a layer with nothing trainable, `grad · W` as a standalone function: checkpointed
    /// training then replays a recorded output of the layer instead of recomputing it
    /// ([`crate::ops::replay`]). `None` (the default) for layers that hold trainable matrices
    /// (LoRA) or do not know their adjoint; those are recomputed.
    fn frozen_input_gradient(&self) -> Option<InputGradient> {
        None
    }

    /// [`LinearLayer::forward`] through a [`ProductTape`]: a frozen layer's output is recorded,
    /// or replayed from the record instead of computed. A layer with trainable matrices tapes
    /// only its frozen part (LoRA: the base product) and computes the rest.
    fn forward_taped(&self, xs: &Tensor, tape: &mut ProductTape) -> Result<Tensor> {
        match self.frozen_input_gradient() {
            Some(input_gradient) => tape.product(xs, input_gradient, || self.forward(xs)),
            None => self.forward(xs),
        }
    }
}

/// The outputs of a forward pass's frozen products, in the order they were computed, kept for a
/// later pass over the same inputs (gradient checkpointing's recomputation) to replay instead of
/// recompute. Replaying gives the recorded values forward and `grad · W` backward
/// ([`crate::ops::replay`]), so gradients reach the inputs exactly as through the product.
#[derive(Debug)]
pub enum ProductTape {
    /// Computing, and keeping each frozen product's output (detached).
    Record(Vec<Tensor>),
    /// Replaying recorded outputs in order.
    Replay(std::vec::IntoIter<Tensor>),
}

impl ProductTape {
    /// An empty tape that records.
    pub fn record() -> Self {
        ProductTape::Record(Vec::new())
    }

    /// A tape that replays what `self` recorded.
    pub fn into_replay(self) -> Self {
        match self {
            ProductTape::Record(products) => ProductTape::Replay(products.into_iter()),
            replay => replay,
        }
    }

    /// Bytes of the recorded outputs.
    pub fn bytes(&self) -> usize {
        let products = match self {
            ProductTape::Record(products) => products.as_slice(),
            ProductTape::Replay(products) => products.as_slice(),
        };
        products.iter().map(|t| t.elem_count() * t.dtype().size_in_bytes()).sum()
    }

    fn product(
        &mut self,
        xs: &Tensor,
        input_gradient: InputGradient,
        compute: impl FnOnce() -> Result<Tensor>,
    ) -> Result<Tensor> {
        match self {
            ProductTape::Record(products) => {
                let out = compute()?;
                products.push(out.detach());
                Ok(out)
            }
            ProductTape::Replay(products) => match products.next() {
                Some(recorded) => crate::ops::replay(xs, &recorded, input_gradient),
                None => candle_core::bail!(
                    "the product tape ran out: the replayed pass computes more products than were recorded"
                ),
            },
        }
    }
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

    fn frozen_input_gradient(&self) -> Option<InputGradient> {
        let weight = self.weight.clone();
        Some(Arc::new(move |grad: &Tensor| {
            let out_features = weight.dims()[0];
            let dims = grad.dims();
            if dims.last() != Some(&out_features) {
                candle_core::bail!("linear layer output gradient expects [.., {out_features}], got {dims:?}");
            }
            let rows = grad.elem_count() / out_features.max(1);
            let product = grad.reshape((rows, out_features))?.contiguous()?.matmul(&weight)?;
            let mut in_dims = dims.to_vec();
            if let Some(last) = in_dims.last_mut() {
                *last = weight.dims()[1];
            }
            product.reshape(in_dims)
        }))
    }
}

impl Module for DenseLinear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        LinearLayer::forward(self, xs)
    }
}
