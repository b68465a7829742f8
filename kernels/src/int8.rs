//! LLM.int8 quantization: row-wise int8 weights (CB, SCB) and vector-wise int8 activations with outliers.
//!
//! As bitsandbytes' `int8_vectorwise_quant` (default backend): per row `stat = max|x|` and
//! `q = round_half_even(x * ((1 / stat) * 127))`. With an outlier threshold, every element with
//! `|x| >= threshold` is set to 0 before the row statistics are taken, and when there is more than
//! one row the whole outlier columns of the codes are zeroed (for one row that changes nothing); the outliers are handled in f32 by
//! the mixed-precision decomposition ([`crate::int8_matmul`]). `Linear8bitLt` casts both the
//! weight and the activations to f16 before quantizing, which [`QuantInput::RoundToF16`] reproduces.

use crate::error::{Error, Result};

/// What happens to f32 inputs before int8 quantization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantInput {
    /// Quantize the f32 values as given (`int8_vectorwise_quant` on an f32 tensor).
    AsIs,
    /// Round to f16 first, as `Linear8bitLt` / `bnb.matmul` do for weights and activations.
    RoundToF16,
}

impl QuantInput {
    #[inline(always)]
    pub(crate) fn apply(self, value: f32) -> f32 {
        match self {
            QuantInput::AsIs => value,
            QuantInput::RoundToF16 => round_to_f16(value),
        }
    }
}

/// A weight `[out_features, in_features]` quantized row-wise: `cb` int8 codes, `scb` the f32
/// absmax of each output row.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Weight {
    out_features: usize,
    in_features: usize,
    cb: Vec<i8>,
    scb: Vec<f32>,
    /// Whether some code is -128, which `quantize` never writes (its codes lie in [-127, 127]) but
    /// stored parts may hold; the fast sign-folding kernels need it absent.
    has_min_code: bool,
    /// `Σ_k cb[o, k]` of each output row: the one-row VNNI product multiplies the activation codes
    /// offset to `u8` (`code + 128`) and takes `128 · Σ cb` off again.
    row_sums: Vec<i32>,
}

/// The sum of each row of `cb`.
fn code_row_sums(cb: &[i8], in_features: usize) -> Vec<i32> {
    cb.chunks(in_features.max(1)).map(|row| row.iter().map(|&code| i32::from(code)).sum()).collect()
}

impl Int8Weight {
    /// Quantizes a row-major weight `[out_features, in_features]`.
    pub fn quantize(
        weight: &[f32],
        out_features: usize,
        in_features: usize,
        input: QuantInput,
    ) -> Result<Self> {
        check_matrix(weight.len(), out_features, in_features, "int8 weight")?;
        let mut cb = vec![0i8; weight.len()];
        let mut scb = Vec::with_capacity(out_features);
        quantize_rows_fastest(weight, in_features, input, &mut cb, &mut scb);
        let row_sums = code_row_sums(&cb, in_features);
        Ok(Int8Weight { out_features, in_features, cb, scb, has_min_code: false, row_sums })
    }

    /// Assembles stored parts (for example `weight` and `SCB` of a bitsandbytes checkpoint).
    pub fn from_parts(cb: Vec<i8>, scb: Vec<f32>, out_features: usize, in_features: usize) -> Result<Self> {
        check_matrix(cb.len(), out_features, in_features, "int8 weight codes")?;
        if scb.len() != out_features {
            return Err(Error::LayoutMismatch {
                what: "int8 weight SCB",
                expected: out_features,
                actual: scb.len(),
            });
        }
        let has_min_code = cb.contains(&i8::MIN);
        let row_sums = code_row_sums(&cb, in_features);
        Ok(Int8Weight { out_features, in_features, cb, scb, has_min_code, row_sums })
    }

    /// `Σ_k cb[o, k]` of each output row `o`.
    pub(crate) fn row_sums(&self) -> &[i32] {
        &self.row_sums
    }

    /// Whether a code is -128 (never after [`Int8Weight::quantize`]).
    pub fn has_min_code(&self) -> bool {
        self.has_min_code
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Row-major int8 codes `[out_features, in_features]`.
    pub fn cb(&self) -> &[i8] {
        &self.cb
    }

    /// f32 absmax per output row.
    pub fn scb(&self) -> &[f32] {
        &self.scb
    }

    /// Row-major f32 weight as `int8_vectorwise_dequant` gives it: `(cb * scb) * 7.874015718698502e-3`.
    pub fn dequantize(&self) -> Vec<f32> {
        self.map_rows(|code, row_absmax| (f32::from(code) * row_absmax) * INT8_DEQUANT_SCALE)
    }

    /// Row-major f32 weight as `MatMul8bitLt.backward` builds it: `cb * (scb * (1 / 127))`.
    pub fn dequantize_for_backward(&self) -> Vec<f32> {
        self.map_rows(|code, row_absmax| f32::from(code) * (row_absmax * INV_127))
    }

    fn map_rows(&self, value: impl Fn(i8, f32) -> f32) -> Vec<f32> {
        self.cb
            .chunks(self.in_features)
            .zip(&self.scb)
            .flat_map(|(codes, &row_absmax)| codes.iter().map(move |&code| (code, row_absmax)))
            .map(|(code, row_absmax)| value(code, row_absmax))
            .collect()
    }
}

/// Activations `[rows, cols]` quantized row-wise, with the columns that held outliers.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Activation {
    rows: usize,
    cols: usize,
    ca: Vec<i8>,
    sca: Vec<f32>,
    outlier_cols: Vec<usize>,
}

impl Int8Activation {
    /// Quantizes row-major activations. `threshold <= 0` disables outlier detection. The threshold
    /// is compared with the values after `input` rounding, as bitsandbytes compares in f16.
    pub fn quantize(x: &[f32], rows: usize, cols: usize, threshold: f32, input: QuantInput) -> Result<Self> {
        check_matrix(x.len(), rows, cols, "int8 activations")?;
        let mut values: Vec<f32> = x.iter().map(|&value| input.apply(value)).collect();
        let mut outlier_cols = Vec::new();
        if threshold > 0.0 {
            let threshold = input.apply(threshold);
            let mut is_outlier_col = vec![false; cols];
            for row in values.chunks_mut(cols) {
                for (value, is_outlier) in row.iter_mut().zip(is_outlier_col.iter_mut()) {
                    if value.abs() >= threshold {
                        *is_outlier = true;
                        *value = 0.0;
                    }
                }
            }
            outlier_cols = (0..cols).filter(|&col| is_outlier_col[col]).collect();
        }
        let mut ca = vec![0i8; values.len()];
        let mut sca = Vec::with_capacity(rows);
        for (row, codes) in values.chunks(cols).zip(ca.chunks_mut(cols)) {
            sca.push(quantize_row(row, codes));
        }
        // bitsandbytes zeroes whole outlier columns only when there are several rows; a single
        // row's outlier columns hold nothing but the (already zeroed) outliers, so this is the same.
        for codes in ca.chunks_mut(cols) {
            for &col in &outlier_cols {
                codes[col] = 0;
            }
        }
        Ok(Int8Activation { rows, cols, ca, sca, outlier_cols })
    }

    /// The parts of a quantization computed elsewhere (the fast path), as `quantize` makes them.
    pub(crate) fn from_parts(
        rows: usize,
        cols: usize,
        ca: Vec<i8>,
        sca: Vec<f32>,
        outlier_cols: Vec<usize>,
    ) -> Self {
        Int8Activation { rows, cols, ca, sca, outlier_cols }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row-major int8 codes `[rows, cols]`.
    pub fn ca(&self) -> &[i8] {
        &self.ca
    }

    /// f32 absmax per row, taken after the outliers were zeroed.
    pub fn sca(&self) -> &[f32] {
        &self.sca
    }

    /// Ascending indices of the columns holding at least one outlier.
    pub fn outlier_cols(&self) -> &[usize] {
        &self.outlier_cols
    }
}

/// `int8_vectorwise_dequant`'s factor, the f32 nearest to bitsandbytes' decimal for 1/127.
pub(crate) const INT8_DEQUANT_SCALE: f32 = 7.874015718698502e-3_f64 as f32;
/// `1.0 / 127.0` as torch turns the Python float into f32.
pub(crate) const INV_127: f32 = (1.0_f64 / 127.0) as f32;

/// [`quantize_rows`] with the widest rounding instructions this CPU has.
fn quantize_rows_fastest(
    weight: &[f32],
    in_features: usize,
    input: QuantInput,
    cb: &mut [i8],
    scb: &mut Vec<f32>,
) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("sse4.1") {
        // SAFETY: the CPU has SSE4.1, the only thing the function's target feature asks for.
        return unsafe { quantize_rows_sse41(weight, in_features, input, cb, scb) };
    }
    quantize_rows(weight, in_features, input, cb, scb);
}

/// Row-wise quantization of a `[rows, in_features]` weight into `cb` and `scb`.
#[inline(always)]
fn quantize_rows(weight: &[f32], in_features: usize, input: QuantInput, cb: &mut [i8], scb: &mut Vec<f32>) {
    let mut rounded = vec![0.0f32; in_features];
    for (row, codes) in weight.chunks(in_features).zip(cb.chunks_mut(in_features)) {
        for (out, &value) in rounded.iter_mut().zip(row) {
            *out = input.apply(value);
        }
        scb.push(quantize_row(&rounded[..row.len()], codes));
    }
}

/// [`quantize_rows`] compiled with SSE4.1, whose `roundps` rounds half to even in one
/// instruction; without it every `round_ties_even` is a call to libm's `rintf` (the same result),
/// which made re-quantizing the default model most of `finagent ask`'s start-up.
///
/// # Safety
/// The CPU must support SSE4.1.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.1")]
unsafe fn quantize_rows_sse41(
    weight: &[f32],
    in_features: usize,
    input: QuantInput,
    cb: &mut [i8],
    scb: &mut Vec<f32>,
) {
    quantize_rows(weight, in_features, input, cb, scb);
}

/// Quantizes one row into `codes`, returning its absmax. An all-zero row gives NaN products,
/// which convert to code 0, as torch's cast does on x86-64.
#[inline(always)]
pub(crate) fn quantize_row(row: &[f32], codes: &mut [i8]) -> f32 {
    // Sixteen running maxima, so that the loop vectorises; `f32::max` ignores NaN either way, so
    // the result equals a left-to-right fold.
    let mut lanes = [0.0f32; 16];
    let mut chunks = row.chunks_exact(16);
    for chunk in &mut chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(value.abs());
        }
    }
    let row_absmax = chunks.remainder().iter().chain(&lanes).fold(0.0f32, |max, &value| max.max(value.abs()));
    // torch evaluates `127.0 / stats` as `reciprocal(stats) * 127.0`: two roundings, and the
    // last bit of the scale decides some half-way codes.
    let scale = (1.0 / row_absmax) * 127.0;
    for (code, &value) in codes.iter_mut().zip(row) {
        // `as` saturates and maps NaN to 0; the product never exceeds 127 in magnitude otherwise.
        *code = (value * scale).round_ties_even() as i8;
    }
    row_absmax
}

/// Rounds an f32 to the nearest f16 value (ties to even) and returns it as f32, like
/// `tensor.to(torch.float16).float()`: overflow goes to infinity, tiny values to f16 subnormals.
#[inline]
pub fn round_to_f16(value: f32) -> f32 {
    const F16_MAX: f32 = 65504.0;
    const F16_MIN_NORMAL: f32 = 6.103_515_6e-5; // 2^-14
    const F16_SUBNORMAL_STEP: f32 = 5.960_464_5e-8; // 2^-24
    if !value.is_finite() {
        return value;
    }
    let magnitude = value.abs();
    let rounded = if magnitude < F16_MIN_NORMAL {
        // Multiples of 2^-24; scaling by a power of two is exact.
        (magnitude / F16_SUBNORMAL_STEP).round_ties_even() * F16_SUBNORMAL_STEP
    } else {
        // Keep 10 of the 23 mantissa bits, rounding the dropped 13 half to even.
        let bits = magnitude.to_bits();
        let lowest_kept = (bits >> 13) & 1;
        f32::from_bits((bits + 0x0fff + lowest_kept) & !0x1fff)
    };
    let rounded = if rounded > F16_MAX { f32::INFINITY } else { rounded };
    rounded.copysign(value)
}

pub(crate) fn check_matrix(len: usize, rows: usize, cols: usize, what: &'static str) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Err(Error::Empty { what });
    }
    match rows.checked_mul(cols) {
        None => Err(Error::ShapeOverflow { what, shape: vec![rows, cols] }),
        Some(expected) if expected == len => Ok(()),
        Some(expected) => Err(Error::ShapeMismatch { what, shape: vec![rows, cols], expected, actual: len }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_half_to_even() {
        // 127 / 127 = 1 exactly, so x * 1 keeps the .5 ties: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -2.5 -> -2.
        let weight =
            Int8Weight::quantize(&[127.0, 0.5, 1.5, 2.5, -2.5, -127.0], 1, 6, QuantInput::AsIs).unwrap();
        assert_eq!(weight.cb(), &[127, 0, 2, 2, -2, -127]);
        assert_eq!(weight.scb(), &[127.0]);
    }

    #[test]
    fn outliers_are_zeroed_before_the_statistics() {
        let x = [1.0, 8.0, -2.0, 0.5, -6.0, 1.0];
        let act = Int8Activation::quantize(&x, 2, 3, 6.0, QuantInput::AsIs).unwrap();
        assert_eq!(act.outlier_cols(), &[1]);
        assert_eq!(act.sca(), &[2.0, 1.0]);
        assert_eq!(act.ca(), &[64, 0, -127, 64, 0, 127]);
        let single = Int8Activation::quantize(&[7.0, 1.0], 1, 2, 6.0, QuantInput::AsIs).unwrap();
        assert_eq!(single.ca(), &[0, 127]);
        assert_eq!(single.outlier_cols(), &[0]);
    }

    #[test]
    fn zero_row_quantizes_to_zero_codes() {
        let act = Int8Activation::quantize(&[0.0; 4], 1, 4, 0.0, QuantInput::AsIs).unwrap();
        assert_eq!(act.ca(), &[0; 4]);
        assert_eq!(act.sca(), &[0.0]);
    }

    #[test]
    fn f16_rounding_matches_ieee_half() {
        assert_eq!(round_to_f16(1.0), 1.0);
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1.0).
        assert_eq!(round_to_f16(1.0 + 2f32.powi(-11)), 1.0);
        assert_eq!(round_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 1.0 + 2.0 * 2f32.powi(-10));
        assert_eq!(round_to_f16(5.9999), 6.0);
        assert_eq!(round_to_f16(-0.1), -0.099_975_586);
        assert_eq!(round_to_f16(65519.0), 65504.0);
        assert_eq!(round_to_f16(65520.0), f32::INFINITY);
        assert_eq!(round_to_f16(-1e-8), -0.0);
        assert_eq!(round_to_f16(4e-8), 5.960_464_5e-8);
        assert!(round_to_f16(f32::NAN).is_nan());
    }

    #[test]
    fn shape_errors() {
        let err = Int8Weight::quantize(&[1.0; 5], 2, 3, QuantInput::AsIs).unwrap_err();
        assert_eq!(err.to_string(), "int8 weight: shape [2, 3] holds 6 elements but 5 were given");
        assert!(matches!(
            Int8Activation::quantize(&[], 0, 3, 6.0, QuantInput::AsIs),
            Err(Error::Empty { .. })
        ));
        assert!(matches!(
            Int8Weight::from_parts(vec![0; 6], vec![1.0], 2, 3),
            Err(Error::LayoutMismatch { expected: 2, actual: 1, .. })
        ));
    }
}
