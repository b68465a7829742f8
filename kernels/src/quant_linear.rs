//! `QuantLinear`: a linear layer over a frozen quantized weight that candle's autograd can train through.
//!
//! Forward is `y = x · deq(W)^T (+ b)`, backward `grad_x = grad_y · deq(W)`; the weight gets no
//! gradient (it is not a candle tensor at all), so LoRA adapters placed before or after the layer
//! receive exact gradients. Both directions are candle `CustomOp1`s over the activation. f32 runs
//! the fast paths of [`crate::fast`] (fused kernels for a few rows, tiled GEMM for many); f64, used
//! by gradient checks, runs [`product_reference`], a plain scalar loop over the whole dequantized
//! weight that is the specification the fast paths are tested against.

use std::cell::RefCell;
use std::ops::{Add, Mul};
use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Module, Shape, Tensor, TensorId};

use crate::error::{Error, Result};
use crate::fast::{self, Compute, Isa, ProductConfig, SharedActivation};
use crate::four_bit::FourBitTensor;
use crate::int8::Int8Weight;
use crate::int8_matmul::Int8LinearConfig;
use crate::q8_0::Q8_0Weight;

/// A frozen weight `[out_features, in_features]` in one of the crate's quantized formats.
#[derive(Debug, Clone, PartialEq)]
pub enum QuantWeight {
    /// NF4 or FP4, any block size, plain or double-quantized absmax.
    FourBit(FourBitTensor),
    /// LLM.int8 row-wise codes; dequantized as `int8_vectorwise_dequant` does.
    Int8(Int8Weight),
    /// GGUF Q8_0 blocks, found again in a matrix a model file stored so ([`Q8_0Weight`]).
    Q8_0(Q8_0Weight),
}

impl QuantWeight {
    /// `(out_features, in_features)`, or an error when a 4-bit tensor is not a matrix.
    pub fn dims(&self) -> candle_core::Result<(usize, usize)> {
        self.shape_2d().or_else(|shape| {
            candle_core::bail!("quant linear weight must be 2-d [out, in], got shape {shape:?}")
        })
    }

    /// [`QuantWeight::dims`] with the crate's own error.
    pub fn matrix_dims(&self) -> Result<(usize, usize)> {
        self.shape_2d().map_err(|shape| Error::DimensionMismatch {
            what: "quant linear weight",
            left: format!("shape {shape:?}"),
            right: "a 2-d [out, in] matrix".to_string(),
        })
    }

    /// `(out_features, in_features)`, or the shape that is not a matrix.
    fn shape_2d(&self) -> std::result::Result<(usize, usize), &[usize]> {
        match self {
            QuantWeight::FourBit(tensor) => match tensor.shape() {
                &[out_features, in_features] => Ok((out_features, in_features)),
                shape => Err(shape),
            },
            QuantWeight::Int8(weight) => Ok((weight.out_features(), weight.in_features())),
            QuantWeight::Q8_0(weight) => Ok((weight.out_features(), weight.in_features())),
        }
    }

    /// The row-major f32 weight `[out_features, in_features]`.
    pub fn dequantize(&self) -> Vec<f32> {
        match self {
            QuantWeight::FourBit(tensor) => tensor.dequantize(),
            QuantWeight::Int8(weight) => weight.dequantize(),
            QuantWeight::Q8_0(weight) => weight.dequantize(),
        }
    }
}

/// A linear layer `y = x · deq(W)^T (+ b)` whose weight stays quantized.
#[derive(Debug, Clone)]
pub struct QuantLinear {
    weight: Arc<QuantWeight>,
    bias: Option<Tensor>,
    out_features: usize,
    in_features: usize,
    /// For an int8 weight: compute the f32 forward as LLM.int8 does (int8 activations, int32
    /// products, outliers in f32) instead of with the dequantized weight.
    llm_int8: Option<Int8LinearConfig>,
    /// The arithmetic of the many-row f32 products (both directions; not LLM.int8's forward).
    compute: Compute,
}

impl QuantLinear {
    /// A layer over `weight`; `bias`, if any, must have shape `[out_features]` (it may be a `Var`).
    pub fn new(weight: QuantWeight, bias: Option<Tensor>) -> candle_core::Result<Self> {
        let (out_features, in_features) = weight.dims()?;
        if let Some(bias) = &bias {
            if bias.dims() != [out_features] {
                candle_core::bail!(
                    "quant linear bias shape {:?} does not match out_features {out_features}",
                    bias.dims()
                );
            }
        }
        Ok(QuantLinear {
            weight: Arc::new(weight),
            bias,
            out_features,
            in_features,
            llm_int8: None,
            compute: Compute::F32,
        })
    }

    /// Makes the f32 forward of an int8 layer run as bitsandbytes' `Linear8bitLt` runs it: the
    /// activations quantized row-wise to int8 with `config`'s outlier threshold, int32 products
    /// on the fast path ([`crate::fast::int8_vectorwise_forward`]), outlier columns in f32. The
    /// backward stays `grad · deq(W)`, as bitsandbytes' is; f64 (gradient checks) stays on the
    /// dequantized reference. `None` restores the dequantized forward. A 4-bit weight is an error.
    pub fn with_llm_int8(mut self, config: Option<Int8LinearConfig>) -> Result<Self> {
        if config.is_some() && !matches!(*self.weight, QuantWeight::Int8(_)) {
            return Err(Error::DimensionMismatch {
                what: "LLM.int8 forward",
                left: "a 4-bit weight".to_string(),
                right: "an int8 weight".to_string(),
            });
        }
        self.llm_int8 = config;
        Ok(self)
    }

    /// Runs the layer's many-row products (the forward, unless LLM.int8 computes it, and the
    /// input gradient) in `compute`'s arithmetic: [`Compute::Bf16`] rounds the activations and
    /// the decoded weight to bf16 and sums in f32, as bitsandbytes with a bf16 compute dtype
    /// does, where the CPU has AVX-512 BF16 ([`Compute::runs_as`]). f64 stays exact.
    pub fn with_compute(mut self, compute: Compute) -> Self {
        self.compute = compute;
        self
    }

    /// The arithmetic asked for with [`QuantLinear::with_compute`].
    pub fn compute(&self) -> Compute {
        self.compute
    }

    /// The LLM.int8 forward settings, if the layer computes that way.
    pub fn llm_int8(&self) -> Option<&Int8LinearConfig> {
        self.llm_int8.as_ref()
    }

    pub fn weight(&self) -> &QuantWeight {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }
}

impl QuantLinear {
    /// The gradient of the layer's input for the output gradient `grad` (`[..., out_features]`):
    /// `grad · deq(W)`, the backward of [`Module::forward`] without running the forward
    /// (a checkpointed backward that replays a recorded output). Differentiable, as the backward is.
    pub fn input_gradient(&self, grad: &Tensor) -> candle_core::Result<Tensor> {
        match grad.dims().last() {
            Some(&last) if last == self.out_features => {}
            _ => candle_core::bail!(
                "quant linear output gradient shape {:?} does not end in out_features {}",
                grad.dims(),
                self.out_features
            ),
        }
        grad.contiguous()?.apply_op1_arc(Arc::new(Box::new(ProductOp {
            weight: Arc::clone(&self.weight),
            direction: Direction::Backward,
            llm_int8: None,
            compute: self.compute,
            input: None,
        })))
    }
}

impl Module for QuantLinear {
    /// `x` is `[..., in_features]` (f32, or f64 for gradient checks), on the CPU.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match x.dims().last() {
            Some(&last) if last == self.in_features => {}
            _ => candle_core::bail!(
                "quant linear input shape {:?} does not end in in_features {}",
                x.dims(),
                self.in_features
            ),
        }
        let x = x.contiguous()?;
        let product = x.apply_op1_arc(Arc::new(Box::new(ProductOp {
            weight: Arc::clone(&self.weight),
            direction: Direction::Forward,
            llm_int8: self.llm_int8,
            compute: self.compute,
            input: Some(x.id()),
        })))?;
        match &self.bias {
            Some(bias) => product.broadcast_add(bias),
            None => Ok(product),
        }
    }
}

/// Which product with the dequantized weight `W [out, in]` an op computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `[rows, in] -> [rows, out]`: `x · W^T`.
    Forward,
    /// `[rows, out] -> [rows, in]`: `g · W`, the adjoint of `Forward`.
    Backward,
}

impl Direction {
    fn adjoint(self) -> Self {
        match self {
            Direction::Forward => Direction::Backward,
            Direction::Backward => Direction::Forward,
        }
    }
}

/// The linear map `x -> x · W^T` or its adjoint, applied to the last dimension of its input.
struct ProductOp {
    weight: Arc<QuantWeight>,
    direction: Direction,
    /// LLM.int8 settings for the f32 forward of an int8 weight (see [`QuantLinear::with_llm_int8`]).
    llm_int8: Option<Int8LinearConfig>,
    /// The arithmetic of the f32 product (see [`QuantLinear::with_compute`]).
    compute: Compute,
    /// The candle tensor the op is applied to, when known: LLM.int8 quantizes it once for every
    /// layer that reads it ([`LAST_ACTIVATION`]).
    input: Option<TensorId>,
}

thread_local! {
    /// The last activation LLM.int8 quantized on this thread and the tensor it came from. q, k and
    /// v apply to one tensor, as do gate and up; candle never reuses a tensor id, and an
    /// activation's storage is never written in place, so the same id means the same values.
    static LAST_ACTIVATION: RefCell<(Option<TensorId>, SharedActivation)> =
        RefCell::new((None, SharedActivation::default()));
}

impl ProductOp {
    /// `(input_features, output_features)` of this direction.
    fn features(&self) -> candle_core::Result<(usize, usize)> {
        let (out_features, in_features) = self.weight.dims()?;
        Ok(match self.direction {
            Direction::Forward => (in_features, out_features),
            Direction::Backward => (out_features, in_features),
        })
    }
}

impl CustomOp1 for ProductOp {
    fn name(&self) -> &'static str {
        match self.direction {
            Direction::Forward => "quant-linear",
            Direction::Backward => "quant-linear-backward",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (input_features, output_features) = self.features()?;
        let dims = layout.dims();
        if dims.last() != Some(&input_features) {
            candle_core::bail!(
                "{} input shape {dims:?} does not end in {input_features} features",
                self.name()
            );
        }
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("{} needs a contiguous input, got strides {:?}", self.name(), layout.stride());
        };
        let rows = dims[..dims.len() - 1].iter().product();
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = output_features;
        }
        let output = match storage {
            CpuStorage::F32(input) if self.direction == Direction::Forward && self.llm_int8.is_some() => {
                let (QuantWeight::Int8(weight), Some(config)) = (&*self.weight, &self.llm_int8) else {
                    candle_core::bail!("{}: LLM.int8 needs an int8 weight", self.name());
                };
                if rows == 0 {
                    // No rows to quantize: an empty product, as the dequantized path gives.
                    return Ok((CpuStorage::F32(Vec::new()), Shape::from(out_dims)));
                }
                let output = LAST_ACTIVATION.with_borrow_mut(|(last, shared)| {
                    if self.input.is_none() || *last != self.input {
                        *last = self.input;
                        *shared = SharedActivation::default();
                    }
                    fast::int8_vectorwise_forward_shared(
                        &input[start..end],
                        rows,
                        weight,
                        None,
                        config,
                        Isa::detect(),
                        shared,
                    )
                });
                CpuStorage::F32(
                    output.map_err(|err| candle_core::Error::Msg(format!("{}: {err}", self.name())))?,
                )
            }
            CpuStorage::F32(input) => CpuStorage::F32(
                fast::product(
                    &self.weight,
                    self.direction,
                    &input[start..end],
                    rows,
                    &ProductConfig { compute: self.compute, ..ProductConfig::default() },
                )
                .map_err(|err| candle_core::Error::Msg(format!("{}: {err}", self.name())))?,
            ),
            CpuStorage::F64(input) => {
                let weight: Vec<f64> = self.weight.dequantize().iter().map(|&w| f64::from(w)).collect();
                let features = (input_features, output_features);
                CpuStorage::F64(scalar_product(self.direction, &input[start..end], &weight, rows, features))
            }
            other => return Err(candle_core::Error::UnsupportedDTypeForOp(other.dtype(), self.name())),
        };
        Ok((output, Shape::from(out_dims)))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        // The op is linear in its input, so the gradient is the adjoint map applied to grad_res;
        // the adjoint is itself differentiable, which keeps second-order gradients correct.
        // LLM.int8's backward is the dequantized one too, so the adjoint never quantizes.
        let adjoint = ProductOp {
            weight: Arc::clone(&self.weight),
            direction: self.direction.adjoint(),
            llm_int8: None,
            compute: self.compute,
            input: None,
        };
        let grad_arg = grad_res.contiguous()?.apply_op1_arc(Arc::new(Box::new(adjoint)))?;
        Ok(Some(grad_arg))
    }
}

/// The specification of both directions: the whole weight dequantized, then a plain scalar loop.
/// `input` is row-major `[rows, in]` (forward) or `[rows, out]` (backward).
pub fn product_reference(
    weight: &QuantWeight,
    direction: Direction,
    input: &[f32],
    rows: usize,
) -> Result<Vec<f32>> {
    let (out_features, in_features) = weight.matrix_dims()?;
    let features = match direction {
        Direction::Forward => (in_features, out_features),
        Direction::Backward => (out_features, in_features),
    };
    if rows.checked_mul(features.0) != Some(input.len()) {
        return Err(Error::ShapeMismatch {
            what: "quant linear input",
            shape: vec![rows, features.0],
            expected: rows.saturating_mul(features.0),
            actual: input.len(),
        });
    }
    Ok(scalar_product(direction, input, &weight.dequantize(), rows, features))
}

/// Row-major `[rows, output_features]` from row-major `[rows, input_features]` and the dense `W`.
fn scalar_product<T>(
    direction: Direction,
    input: &[T],
    weight: &[T],
    rows: usize,
    (input_features, output_features): (usize, usize),
) -> Vec<T>
where
    T: Copy + Default + Add<Output = T> + Mul<Output = T>,
{
    let mut output = vec![T::default(); rows * output_features];
    if input_features == 0 || output_features == 0 {
        // An empty sum is zero; `chunks(0)` would panic.
        return output;
    }
    for (input_row, output_row) in input.chunks(input_features).zip(output.chunks_mut(output_features)) {
        match direction {
            Direction::Forward => {
                // W is [out, in]: output element o is the dot product with weight row o.
                for (out_value, weight_row) in output_row.iter_mut().zip(weight.chunks(input_features)) {
                    *out_value =
                        input_row.iter().zip(weight_row).fold(T::default(), |acc, (&x, &w)| acc + x * w);
                }
            }
            Direction::Backward => {
                // Accumulate g[o] * W[o, :] over the output features o.
                for (&grad, weight_row) in input_row.iter().zip(weight.chunks(output_features)) {
                    for (out_value, &w) in output_row.iter_mut().zip(weight_row) {
                        *out_value = *out_value + grad * w;
                    }
                }
            }
        }
    }
    output
}
