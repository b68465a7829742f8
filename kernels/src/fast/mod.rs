//! Fast f32 paths of `QuantLinear`: fused dequantize-and-dot for a few rows, tiled dequantization
//! into a SIMD GEMM (finagent's own on AVX-512, the `gemm` crate elsewhere) for many; all checked
//! against the scalar reference.
//!
//! Neither keeps a dequantized copy of the weight beyond one call: the fused kernels read the
//! packed codes directly, the tiled path decodes one L2-sized panel at a time, and double-quantized
//! 4-bit block absmax are decoded a row at a time inside the kernels. Results differ from [`crate::quant_linear::product_reference`] only by
//! summation order.

mod bernoulli;
mod exp;
mod four_bit_rows;
mod gemv;
mod int8_gemm;
mod int8_quant;
mod int8_rows;
pub mod isa;
mod q8_rows;
#[cfg(target_arch = "x86_64")]
mod sgemm;
mod tiled;

use std::ops::Range;

pub use bernoulli::dropout_mask;
pub use exp::exp_in_place;

use crate::error::{Error, Result};
use crate::four_bit::FourBitTensor;
use crate::int8::{Int8Activation, Int8Weight};
use crate::int8_matmul::{check_inner, forward_with, Int8LinearConfig};
use crate::quant_linear::{Direction, QuantWeight};
use four_bit_rows::{FourBitRows, Scales};
use int8_rows::Int8Rows;
use isa::CheckedIsa;
pub use isa::Isa;
use q8_rows::Q8Rows;

/// Below this many activation rows the fused forward kernel beats panels + GEMM (measured with
/// `finagent bench matmul --path fused|tiled` at SmolLM2's shapes: even at 8 rows, tiled at 16).
pub const FUSED_FORWARD_MAX_ROWS: usize = 16;
/// The same for the backward (axpy) kernel, which stores to memory and so gives way sooner.
pub const FUSED_BACKWARD_MAX_ROWS: usize = 4;

/// Which algorithm computes the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductPath {
    /// Fused kernels below [`FUSED_FORWARD_MAX_ROWS`] / [`FUSED_BACKWARD_MAX_ROWS`] rows (when
    /// the layout allows), tiles above.
    Auto,
    /// Fused dequantize-and-dot; weights whose rows do not start on a 4-bit block fall back to tiles.
    Fused,
    /// Blocks decoded to f32 and multiplied by a tiled GEMM.
    Tiled,
}

/// The arithmetic of the tiled path's products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compute {
    /// f32 products and sums.
    #[default]
    F32,
    /// The activations and the decoded weight rounded to bfloat16 (to nearest, ties to even),
    /// their products summed in f32 (`vdpbf16ps`): QLoRA's `bnb_4bit_compute_dtype=bfloat16`, at
    /// twice the multiplications per instruction. Needs AVX-512 BF16 ([`Compute::runs_as`]); the
    /// fused few-row kernels, which are bound by reading the weight, stay f32.
    Bf16,
}

impl Compute {
    pub fn name(self) -> &'static str {
        match self {
            Compute::F32 => "f32",
            Compute::Bf16 => "bf16",
        }
    }

    /// What the tiled path computes in on this CPU with `isa`: `Bf16` only where the AVX-512 GEMM
    /// runs and the CPU has AVX-512 BF16, else `F32`.
    pub fn runs_as(self, isa: Isa) -> Compute {
        #[cfg(target_arch = "x86_64")]
        if self == Compute::Bf16
            && isa.checked().isa() == Isa::Avx512
            && <sgemm::Bf16 as sgemm::Arithmetic>::supported()
        {
            return Compute::Bf16;
        }
        let _ = isa;
        Compute::F32
    }
}

/// How [`product`] runs; the default picks the path by row count and the widest SIMD the CPU has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductConfig {
    pub path: ProductPath,
    /// Downgraded to `Scalar` if the CPU lacks it.
    pub isa: Isa,
    /// Upper bound on one decoded f32 panel of the tiled path (per call, not kept); the AVX-512
    /// GEMM packs column blocks of up to twice this.
    pub panel_bytes: usize,
    /// The tiled path's arithmetic; downgraded to `F32` where the CPU lacks it
    /// ([`Compute::runs_as`]).
    pub compute: Compute,
}

/// Panels of this size stay in L2 and keep the GEMM calls large (measured in `benches/matmul.rs`).
pub const DEFAULT_PANEL_BYTES: usize = 512 * 1024;

impl Default for ProductConfig {
    fn default() -> Self {
        ProductConfig {
            path: ProductPath::Auto,
            isa: Isa::detect(),
            panel_bytes: DEFAULT_PANEL_BYTES,
            compute: Compute::F32,
        }
    }
}

/// `Forward`: `[rows, in] -> [rows, out]` (`x · W^T`); `Backward`: `[rows, out] -> [rows, in]`
/// (`g · W`), row-major, with `W` the dequantized weight (in bf16 arithmetic on the tiled path
/// when `config.compute` says so and the CPU has it).
pub fn product(
    weight: &QuantWeight,
    direction: Direction,
    input: &[f32],
    rows: usize,
    config: &ProductConfig,
) -> Result<Vec<f32>> {
    let (out_features, in_features) = weight.matrix_dims()?;
    let input_features = match direction {
        Direction::Forward => in_features,
        Direction::Backward => out_features,
    };
    if rows.checked_mul(input_features) != Some(input.len()) {
        return Err(Error::ShapeMismatch {
            what: "quant linear input",
            shape: vec![rows, input_features],
            expected: rows.saturating_mul(input_features),
            actual: input.len(),
        });
    }
    if rows == 0 {
        return Ok(Vec::new());
    }
    let view = WeightView::new(weight, (out_features, in_features));
    let isa = config.isa.checked();
    let fused_max_rows = match direction {
        Direction::Forward => FUSED_FORWARD_MAX_ROWS,
        Direction::Backward => FUSED_BACKWARD_MAX_ROWS,
    };
    let fused = match config.path {
        ProductPath::Auto if rows < fused_max_rows => view.fused(),
        ProductPath::Fused => view.fused(),
        ProductPath::Auto | ProductPath::Tiled => None,
    };
    Ok(match (fused, direction) {
        (Some(kernel), Direction::Forward) => gemv::forward(kernel, isa, input, rows, view.dims()),
        (Some(kernel), Direction::Backward) => gemv::backward(kernel, isa, input, rows, view.dims()),
        (None, Direction::Forward) => {
            tiled::forward(&view, isa, config.compute.runs_as(isa.isa()), input, rows, config.panel_bytes)
        }
        (None, Direction::Backward) => {
            tiled::backward(&view, isa, config.compute.runs_as(isa.isa()), input, rows, config.panel_bytes)
        }
    })
}

/// LLM.int8's forward as bitsandbytes computes it (activations quantized row-wise with outlier
/// columns, int32 products, dequantized, outliers added in f32): equal bit for bit to
/// [`crate::int8_linear_forward`], with the int32 product on AVX-512 VNNI when `isa` is
/// [`Isa::Avx512`] and the CPU has VNNI, and a blocked multithreaded loop otherwise.
pub fn int8_vectorwise_forward(
    x: &[f32],
    rows: usize,
    weight: &Int8Weight,
    bias: Option<&[f32]>,
    config: &Int8LinearConfig,
    isa: Isa,
) -> Result<Vec<f32>> {
    int8_vectorwise_forward_shared(x, rows, weight, bias, config, isa, &mut SharedActivation::default())
}

/// The quantized activation of one LLM.int8 forward, kept for the next layer that reads the same
/// input: q, k and v read the same normed hidden states, as do gate and up, and bitsandbytes'
/// quantization of an input does not depend on the weight it multiplies. Only the AVX-512 VNNI
/// path fills it.
#[derive(Default)]
pub struct SharedActivation {
    #[cfg(target_arch = "x86_64")]
    kept: Option<(ActivationSettings, int8_quant::OffsetActivation)>,
}

/// What a kept activation was quantized from and how.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, PartialEq, Eq)]
struct ActivationSettings {
    /// The address of `x`.
    data: usize,
    len: usize,
    rows: usize,
    cols: usize,
    threshold_bits: u32,
    input: crate::int8::QuantInput,
}

/// [`int8_vectorwise_forward`], reusing the activation `shared` keeps when it was quantized from
/// the same slice (address and length), shape and settings, and keeping this call's otherwise.
/// The caller guarantees that the memory behind `x` has not changed since `shared` was filled
/// (`QuantLinear` keys it by the candle tensor, whose storage an activation never rewrites).
pub fn int8_vectorwise_forward_shared(
    x: &[f32],
    rows: usize,
    weight: &Int8Weight,
    bias: Option<&[f32]>,
    config: &Int8LinearConfig,
    isa: Isa,
    shared: &mut SharedActivation,
) -> Result<Vec<f32>> {
    let checked = isa.checked();
    #[cfg(target_arch = "x86_64")]
    if checked.isa() == Isa::Avx512 && int8_gemm::vnni_fits(weight.in_features()) {
        if let Some(bias) = bias {
            check_inner(bias.len(), weight.out_features(), "int8 matmul bias")?;
        }
        let settings = ActivationSettings {
            data: x.as_ptr() as usize,
            len: x.len(),
            rows,
            cols: weight.in_features(),
            threshold_bits: config.threshold.to_bits(),
            input: config.input,
        };
        let activation = match &mut shared.kept {
            Some((kept, activation)) if *kept == settings => activation,
            slot => {
                // SAFETY: `vnni_fits` checked AVX-512F (with BW and VNNI).
                let activation = unsafe {
                    int8_quant::quantize_offset_avx512(
                        x,
                        rows,
                        settings.cols,
                        config.threshold,
                        config.input,
                    )?
                };
                &slot.insert((settings, activation)).1
            }
        };
        let matmul = if rows < int8_gemm::FEW_ROWS && !weight.has_min_code() {
            int8_gemm::matmul_dequantized_few_rows
        } else {
            int8_gemm::matmul_dequantized_vnni
        };
        let mut out = matmul(&activation.codes, rows, activation.stride, &activation.sca, weight, bias);
        int8_gemm::add_outlier_term_avx512(x, weight, &activation.outlier_cols, &mut out);
        return Ok(out);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = shared;
    forward_with(
        x,
        rows,
        weight,
        bias,
        |x, rows, cols| int8_quant::quantize(x, rows, cols, config.threshold, config.input, checked),
        |activation, weight| int8_product(activation, weight, isa),
    )
}

/// `CA · CBᵀ` in int32 on the fast path, equal to [`crate::int8_matmul::int8_matmul_i32`].
pub fn int8_product(activation: &Int8Activation, weight: &Int8Weight, isa: Isa) -> Result<Vec<i32>> {
    check_inner(activation.cols(), weight.in_features(), "int8 matmul")?;
    let use_vnni = isa.checked().isa() == Isa::Avx512;
    Ok(int8_gemm::matmul_i32(
        activation.ca(),
        activation.rows(),
        weight.cb(),
        weight.out_features(),
        weight.in_features(),
        use_vnni,
    ))
}

/// Decodes rows `rows` and columns `cols` of the dequantized weight into a row-major panel
/// `[rows.len(), cols.len()]`, bitwise equal to [`QuantWeight::dequantize`] on that window.
/// Columns must be multiples of 32 (or end at `in_features`) for 4-bit weights with aligned rows.
pub fn decode_panel(
    weight: &QuantWeight,
    rows: Range<usize>,
    cols: Range<usize>,
    isa: Isa,
    panel: &mut [f32],
) -> Result<()> {
    let dims = weight.matrix_dims()?;
    if rows.end > dims.0 || cols.end > dims.1 || panel.len() < rows.len() * cols.len() {
        return Err(Error::DimensionMismatch {
            what: "decode panel",
            left: format!("rows {rows:?} cols {cols:?} into {} values", panel.len()),
            right: format!("weight {dims:?}"),
        });
    }
    let view = WeightView::new(weight, dims);
    let width = cols.len();
    for (row, out) in rows.zip(panel.chunks_exact_mut(width.max(1))) {
        view.decode_row(isa.checked(), row, cols.clone(), out);
    }
    Ok(())
}

/// A weight the fused kernels can read row by row.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FusedRows<'a> {
    FourBit(FourBitRows<'a>),
    Int8(Int8Rows<'a>),
    Q8(Q8Rows<'a>),
}

impl FusedRows<'_> {
    fn dot_row<const T: usize>(&self, isa: CheckedIsa, row: usize, x: [&[f32]; T]) -> [f32; T] {
        match self {
            FusedRows::FourBit(rows) => rows.dot_row(isa, row, x),
            FusedRows::Int8(rows) => rows.dot_row(isa, row, x),
            FusedRows::Q8(rows) => rows.dot_row(isa, row, x),
        }
    }

    /// Four weight rows against one activation row, where the format has such a kernel.
    fn dot_rows4(&self, isa: CheckedIsa, first: usize, x: &[f32]) -> Option<[f32; 4]> {
        match self {
            FusedRows::Q8(_) => None,
            FusedRows::FourBit(rows) => Some(rows.dot_rows4(isa, first, x)),
            FusedRows::Int8(rows) => Some(rows.dot_rows4(isa, first, x)),
        }
    }

    fn axpy_row(
        &self,
        isa: CheckedIsa,
        row: usize,
        cols: Range<usize>,
        coefs: &[f32],
        out: &mut [f32],
        out_stride: usize,
    ) {
        match self {
            FusedRows::FourBit(rows) => rows.axpy_row(isa, row, cols, coefs, out, out_stride),
            FusedRows::Int8(rows) => rows.axpy_row(isa, row, cols, coefs, out, out_stride),
            FusedRows::Q8(rows) => rows.axpy_row(row, cols, coefs, out, out_stride),
        }
    }

    /// Whether activations go in and results come out in 4-bit split order.
    fn split_order(&self) -> bool {
        matches!(self, FusedRows::FourBit(_))
    }
}

/// A quantized weight with its per-call decoded statistics.
pub(crate) struct WeightView<'a> {
    layout: Layout<'a>,
    out_features: usize,
    in_features: usize,
}

enum Layout<'a> {
    Fused(FusedRows<'a>),
    /// 4-bit rows that do not start on a block: decoded element by element.
    FourBitAnyShape {
        tensor: &'a FourBitTensor,
        absmax: Vec<f32>,
    },
}

impl<'a> WeightView<'a> {
    fn new(weight: &'a QuantWeight, (out_features, in_features): (usize, usize)) -> Self {
        let layout = match weight {
            QuantWeight::FourBit(tensor) => {
                match FourBitRows::new(
                    tensor.codes(),
                    Scales::new(tensor.scales()),
                    tensor.format().code(),
                    tensor.blocksize(),
                    (out_features, in_features),
                ) {
                    Some(rows) => Layout::Fused(FusedRows::FourBit(rows)),
                    None => Layout::FourBitAnyShape { tensor, absmax: tensor.scales().absmax() },
                }
            }
            QuantWeight::Int8(weight) => {
                Layout::Fused(FusedRows::Int8(Int8Rows::new(weight.cb(), weight.scb(), in_features)))
            }
            QuantWeight::Q8_0(weight) => {
                Layout::Fused(FusedRows::Q8(Q8Rows::new(weight.codes(), weight.scales(), in_features)))
            }
        };
        WeightView { layout, out_features, in_features }
    }

    fn fused(&self) -> Option<FusedRows<'a>> {
        match self.layout {
            Layout::Fused(rows) => Some(rows),
            Layout::FourBitAnyShape { .. } => None,
        }
    }

    fn dims(&self) -> (usize, usize) {
        (self.out_features, self.in_features)
    }

    /// Columns that a panel may start or end at: chunk boundaries for aligned 4-bit rows.
    fn column_step(&self) -> usize {
        match self.layout {
            Layout::Fused(FusedRows::FourBit(_)) => four_bit_rows::CHUNK,
            _ => 1,
        }
    }

    fn decode_row(&self, isa: CheckedIsa, row: usize, cols: Range<usize>, out: &mut [f32]) {
        match &self.layout {
            Layout::Fused(FusedRows::FourBit(rows)) => rows.decode_row(isa, row, cols, out),
            Layout::Fused(FusedRows::Int8(rows)) => rows.decode_row(isa, row, cols, out),
            Layout::Fused(FusedRows::Q8(rows)) => rows.decode_row(row, cols, out),
            Layout::FourBitAnyShape { tensor, absmax } => {
                let code = tensor.format().code();
                let (codes, blocksize) = (tensor.codes(), tensor.blocksize());
                let first = row * self.in_features;
                for (out, element_idx) in out.iter_mut().zip(first + cols.start..first + cols.end) {
                    let byte = codes[element_idx / 2];
                    let code_idx = if element_idx % 2 == 0 { byte >> 4 } else { byte & 0x0f };
                    *out = code[usize::from(code_idx)] * absmax[element_idx / blocksize];
                }
            }
        }
    }
}
