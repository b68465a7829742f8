//! LLM.int8 matmul: int32 products of int8 codes, their dequantization, the outlier decomposition, backward.
//!
//! Forward of `Linear8bitLt` with frozen int8 weights (`has_fp16_weights=False`), as bitsandbytes'
//! default backend computes it:
//! 1. activations quantized row-wise with outlier columns ([`Int8Activation`]);
//! 2. `acc = CA · CBᵀ` in int32 (exact);
//! 3. `out = f32(acc) * (SCA[row] * SCB[col]) * 6.200124e-05 (+ bias)`, each step rounded in f32;
//! 4. if there are outlier columns: `out += X[:, outliers] · W_deq[:, outliers]ᵀ` with the f32
//!    inputs (not f16-rounded) and the int8-dequantized weight `(CB * SCB) * (1/127)`.
//!
//! Backward for the input: `grad_x = grad_out · (CB * (SCB * (1/127)))`.
//!
//! Step 4 and the backward are f32 dot products that bitsandbytes hands to torch's BLAS. Here they
//! are one fused multiply-add chain in index order starting from 0 (the outlier sum is then added
//! to the int8 result), which is what that BLAS computes for small multi-row products, so the
//! fixtures match bit for bit; a single-row product (BLAS GEMV) or a long inner dimension (BLAS
//! blocking) is summed in another order there, and then agreement is to rounding only.

use crate::error::{Error, Result};
use crate::int8::{Int8Activation, Int8Weight, QuantInput, INT8_DEQUANT_SCALE};

/// bitsandbytes' `int8_mm_dequant` factor (≈ 1/127²), as torch turns the Python float into f32.
pub(crate) const MM_DEQUANT_SCALE: f32 = 6.200124e-05_f64 as f32;

/// Settings of an int8 linear layer. The default matches transformers' `load_in_8bit`:
/// threshold 6.0 and f16 rounding of the inputs before quantization.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Int8LinearConfig {
    /// Activations with `|x| >= threshold` take the f32 path; `0.0` disables the decomposition.
    pub threshold: f32,
    pub input: QuantInput,
}

impl Default for Int8LinearConfig {
    fn default() -> Self {
        Int8LinearConfig { threshold: 6.0, input: QuantInput::RoundToF16 }
    }
}

/// `CA · CBᵀ` in int32, row-major `[rows, out_features]`.
pub fn int8_matmul_i32(activation: &Int8Activation, weight: &Int8Weight) -> Result<Vec<i32>> {
    check_inner(activation.cols(), weight.in_features(), "int8 matmul")?;
    let in_features = weight.in_features();
    let mut acc = Vec::with_capacity(activation.rows() * weight.out_features());
    for act_row in activation.ca().chunks(in_features) {
        for weight_row in weight.cb().chunks(in_features) {
            // |sum| <= 127² * in_features, which overflows i32 only beyond 133k features; widen
            // to i64 so a huge layer cannot wrap, then saturate like a checked cast would refuse.
            let dot: i64 = act_row.iter().zip(weight_row).map(|(&a, &b)| i64::from(a) * i64::from(b)).sum();
            acc.push(i32::try_from(dot).unwrap_or(if dot < 0 { i32::MIN } else { i32::MAX }));
        }
    }
    Ok(acc)
}

/// `f32(acc) * (row_stats[row] * col_stats[col]) * 6.200124e-05`, then `+ bias[col]`.
pub fn dequantize_matmul(
    acc: &[i32],
    row_stats: &[f32],
    col_stats: &[f32],
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    if acc.len() != row_stats.len() * col_stats.len() {
        return Err(Error::LayoutMismatch {
            what: "int32 matmul output",
            expected: row_stats.len() * col_stats.len(),
            actual: acc.len(),
        });
    }
    if let Some(bias) = bias {
        check_inner(bias.len(), col_stats.len(), "int8 matmul bias")?;
    }
    let mut out = Vec::with_capacity(acc.len());
    for (acc_row, &row_stat) in acc.chunks(col_stats.len().max(1)).zip(row_stats) {
        for (col, (&value, &col_stat)) in acc_row.iter().zip(col_stats).enumerate() {
            let scaled = value as f32 * (row_stat * col_stat) * MM_DEQUANT_SCALE;
            out.push(match bias {
                Some(bias) => scaled + bias[col],
                None => scaled,
            });
        }
    }
    Ok(out)
}

/// Forward of an int8 linear layer on row-major `x` `[rows, in_features]`: `[rows, out_features]`.
pub fn int8_linear_forward(
    x: &[f32],
    rows: usize,
    weight: &Int8Weight,
    bias: Option<&[f32]>,
    config: &Int8LinearConfig,
) -> Result<Vec<f32>> {
    forward_with(
        x,
        rows,
        weight,
        bias,
        |x, rows, cols| Int8Activation::quantize(x, rows, cols, config.threshold, config.input),
        int8_matmul_i32,
    )
}

/// [`int8_linear_forward`] with another (equal) quantizer and int32 product, such as the fast
/// path's.
pub(crate) fn forward_with(
    x: &[f32],
    rows: usize,
    weight: &Int8Weight,
    bias: Option<&[f32]>,
    quantize: impl FnOnce(&[f32], usize, usize) -> Result<Int8Activation>,
    matmul: impl FnOnce(&Int8Activation, &Int8Weight) -> Result<Vec<i32>>,
) -> Result<Vec<f32>> {
    let in_features = weight.in_features();
    let activation = quantize(x, rows, in_features)?;
    let acc = matmul(&activation, weight)?;
    let mut out = dequantize_matmul(&acc, activation.sca(), weight.scb(), bias)?;
    add_outlier_term(x, weight, activation.outlier_cols(), &mut out);
    Ok(out)
}

/// Step 4: `out += X[:, outliers] · W_deq[:, outliers]ᵀ`, one FMA chain per output in index order.
pub(crate) fn add_outlier_term(x: &[f32], weight: &Int8Weight, outlier_cols: &[usize], out: &mut [f32]) {
    if outlier_cols.is_empty() {
        return;
    }
    let in_features = weight.in_features();
    let out_features = weight.out_features();
    let sub_weight = outlier_weight(weight, outlier_cols);
    for (x_row, out_row) in x.chunks(in_features).zip(out.chunks_mut(out_features)) {
        for (out_value, sub_row) in out_row.iter_mut().zip(sub_weight.chunks(outlier_cols.len())) {
            let outlier_dot =
                outlier_cols.iter().zip(sub_row).fold(0.0f32, |acc, (&col, &w)| x_row[col].mul_add(w, acc));
            *out_value += outlier_dot;
        }
    }
}

/// The int8-dequantized weight restricted to the outlier columns, `[out_features, n_outliers]`.
pub(crate) fn outlier_weight(weight: &Int8Weight, outlier_cols: &[usize]) -> Vec<f32> {
    weight
        .cb()
        .chunks(weight.in_features())
        .zip(weight.scb())
        .flat_map(|(codes, &row_absmax)| {
            outlier_cols.iter().map(move |&col| (f32::from(codes[col]) * row_absmax) * INT8_DEQUANT_SCALE)
        })
        .collect()
}

/// Gradient of the input of an int8 linear layer: `grad_out [rows, out_features]` times the
/// dequantized weight, `[rows, in_features]`. The frozen weight gets no gradient.
pub fn int8_linear_backward_input(grad_out: &[f32], rows: usize, weight: &Int8Weight) -> Result<Vec<f32>> {
    let out_features = weight.out_features();
    let in_features = weight.in_features();
    if rows.checked_mul(out_features) != Some(grad_out.len()) {
        return Err(Error::ShapeMismatch {
            what: "int8 linear output gradient",
            shape: vec![rows, out_features],
            expected: rows.saturating_mul(out_features),
            actual: grad_out.len(),
        });
    }
    let dequantized = weight.dequantize_for_backward();
    let mut grad_x = vec![0.0f32; rows * in_features];
    for (grad_row, grad_x_row) in grad_out.chunks(out_features).zip(grad_x.chunks_mut(in_features)) {
        for (&grad, weight_row) in grad_row.iter().zip(dequantized.chunks(in_features)) {
            for (acc, &w) in grad_x_row.iter_mut().zip(weight_row) {
                *acc = grad.mul_add(w, *acc);
            }
        }
    }
    Ok(grad_x)
}

pub(crate) fn check_inner(left: usize, right: usize, what: &'static str) -> Result<()> {
    if left == right {
        Ok(())
    } else {
        Err(Error::DimensionMismatch {
            what,
            left: format!("{left} columns"),
            right: format!("{right} features"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weight_2x3() -> Int8Weight {
        Int8Weight::quantize(&[1.0, -0.5, 0.25, 0.0, 2.0, -2.0], 2, 3, QuantInput::AsIs).unwrap()
    }

    #[test]
    fn int32_products_are_exact() {
        let weight = weight_2x3();
        let act = Int8Activation::quantize(&[1.0, 1.0, 1.0], 1, 3, 0.0, QuantInput::AsIs).unwrap();
        assert_eq!(weight.cb(), &[127, -64, 32, 0, 127, -127]);
        assert_eq!(int8_matmul_i32(&act, &weight).unwrap(), vec![127 * (127 - 64 + 32), 0]);
    }

    #[test]
    fn outlier_column_goes_through_f32() {
        let weight = weight_2x3();
        let config = Int8LinearConfig { threshold: 6.0, input: QuantInput::AsIs };
        let with_outlier = int8_linear_forward(&[0.0, 0.0, 10.0], 1, &weight, None, &config).unwrap();
        // Column 2 is an outlier: the whole result is 10 * dequantized weight column 2.
        let dequantized = weight.dequantize();
        assert_eq!(with_outlier, vec![10.0 * dequantized[2], 10.0 * dequantized[5]]);
        let bias = [0.5, -0.5];
        let biased = int8_linear_forward(&[0.0, 0.0, 10.0], 1, &weight, Some(&bias), &config).unwrap();
        assert_eq!(biased, vec![0.5 + 10.0 * dequantized[2], -0.5 + 10.0 * dequantized[5]]);
    }

    #[test]
    fn backward_is_grad_times_dequantized_weight() {
        let weight = weight_2x3();
        let grad_x = int8_linear_backward_input(&[1.0, 0.0], 1, &weight).unwrap();
        assert_eq!(grad_x, weight.dequantize_for_backward()[..3].to_vec());
    }

    #[test]
    fn shape_errors() {
        let weight = weight_2x3();
        let act = Int8Activation::quantize(&[1.0; 4], 1, 4, 0.0, QuantInput::AsIs).unwrap();
        let err = int8_matmul_i32(&act, &weight).unwrap_err();
        assert_eq!(err.to_string(), "int8 matmul: 4 columns does not match 3 features");
        assert!(int8_linear_forward(&[1.0; 5], 2, &weight, None, &Int8LinearConfig::default()).is_err());
        assert!(int8_linear_forward(&[1.0; 3], 1, &weight, Some(&[0.0; 3]), &Int8LinearConfig::default())
            .is_err());
        assert!(matches!(
            int8_linear_backward_input(&[1.0; 3], 1, &weight),
            Err(Error::ShapeMismatch { expected: 2, actual: 3, .. })
        ));
        assert!(dequantize_matmul(&[1; 3], &[1.0], &[1.0, 2.0], None).is_err());
    }
}
