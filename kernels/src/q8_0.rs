//! GGUF's Q8_0 blocks kept as they are: 32 signed codes per block with an f16 scale `d`, the
//! element being `q * d` (`gguf_dequant`'s and ggml's dequantization).
//!
//! A model file that ships a matrix in Q8_0 (SmolLM2's GGUF stores its tied embedding / LM head
//! so) is dequantized to f32 when loaded. [`Q8_0Weight::from_f32_exact`] finds those blocks again
//! from the f32 values and accepts them only when every element is reproduced bit for bit, so a
//! layer computed from it multiplies by exactly the weights of the f32 matrix, reading a quarter of
//! the bytes: a lossless compression, not a further quantization.

use crate::error::{Error, Result};
use crate::int8::round_to_f16;

/// Elements per Q8_0 block, along a row.
pub const Q8_0_BLOCK: usize = 32;

/// A row-major `[out_features, in_features]` matrix in Q8_0 blocks (`in_features` a multiple of
/// [`Q8_0_BLOCK`], so no block straddles two rows).
#[derive(Debug, Clone, PartialEq)]
pub struct Q8_0Weight {
    codes: Vec<i8>,
    /// One per block, each an f16 value held as f32.
    scales: Vec<f32>,
    out_features: usize,
    in_features: usize,
}

impl Q8_0Weight {
    /// The Q8_0 blocks whose dequantization is `values` bit for bit, or `None` when `values` are
    /// not such a dequantization (a matrix stored in another precision). The scale of a block is
    /// the f16 nearest `absmax / 127`, as ggml's quantizer computes it, which recovers the file's
    /// scale whenever the block's largest code is ±127 (always so for ggml's output).
    pub fn from_f32_exact(values: &[f32], out_features: usize, in_features: usize) -> Result<Option<Self>> {
        check_shape(values.len(), out_features, in_features)?;
        let n_blocks = values.len() / Q8_0_BLOCK;
        let mut codes = Vec::with_capacity(values.len());
        let mut scales = Vec::with_capacity(n_blocks);
        for block in values.chunks_exact(Q8_0_BLOCK) {
            let absmax = block.iter().fold(0.0f32, |max, value| max.max(value.abs()));
            let scale = round_to_f16(absmax / 127.0);
            if !scale.is_finite() {
                return Ok(None);
            }
            for &value in block {
                let code = if scale == 0.0 { 0.0 } else { (value / scale).round() };
                // `as` saturates (and maps NaN to 0): the bitwise check below catches both.
                let code = code as i8;
                if (f32::from(code) * scale).to_bits() != value.to_bits() {
                    return Ok(None);
                }
                codes.push(code);
            }
            scales.push(scale);
        }
        Ok(Some(Q8_0Weight { codes, scales, out_features, in_features }))
    }

    /// Blocks given directly: `codes` row-major, `scales` one per block of 32 along each row.
    pub fn from_parts(
        codes: Vec<i8>,
        scales: Vec<f32>,
        out_features: usize,
        in_features: usize,
    ) -> Result<Self> {
        check_shape(codes.len(), out_features, in_features)?;
        let expected = codes.len() / Q8_0_BLOCK;
        if scales.len() != expected {
            return Err(Error::LayoutMismatch { what: "q8_0 scales", expected, actual: scales.len() });
        }
        Ok(Q8_0Weight { codes, scales, out_features, in_features })
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// The codes, row-major.
    pub fn codes(&self) -> &[i8] {
        &self.codes
    }

    /// One scale per block of [`Q8_0_BLOCK`] codes.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The row-major f32 matrix, `q * d` per element.
    pub fn dequantize(&self) -> Vec<f32> {
        self.codes
            .chunks_exact(Q8_0_BLOCK)
            .zip(&self.scales)
            .flat_map(|(block, &scale)| block.iter().map(move |&code| f32::from(code) * scale))
            .collect()
    }
}

fn check_shape(len: usize, out_features: usize, in_features: usize) -> Result<()> {
    crate::int8::check_matrix(len, out_features, in_features, "q8_0 weight")?;
    if !in_features.is_multiple_of(Q8_0_BLOCK) {
        return Err(Error::DimensionMismatch {
            what: "q8_0 weight",
            left: format!("{in_features} input features"),
            right: format!("whole blocks of {Q8_0_BLOCK}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ggml_blocks(n_rows: usize, n_cols: usize) -> Vec<f32> {
        // Codes spanning -127..=127 with the extremes in every block, and f16 scales.
        (0..n_rows * n_cols)
            .map(|idx| {
                let block = idx / Q8_0_BLOCK;
                let scale = round_to_f16(1e-3 * (1.0 + (block % 7) as f32 * 0.37));
                let code = match idx % Q8_0_BLOCK {
                    0 => 127,
                    1 => -127,
                    k => ((k * 37 + block * 11) % 255) as i32 - 127,
                };
                code as f32 * scale
            })
            .collect()
    }

    #[test]
    fn q8_0_dequantized_values_are_found_again_bit_for_bit() {
        let values = ggml_blocks(3, 64);
        let weight = Q8_0Weight::from_f32_exact(&values, 3, 64).unwrap().expect("exact q8_0 data");
        let back = weight.dequantize();
        assert!(back.iter().zip(&values).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(weight.scales().len(), 6);
    }

    #[test]
    fn other_values_and_shapes_are_refused() {
        let mut values = ggml_blocks(2, 32);
        values[5] += 1e-7;
        assert_eq!(Q8_0Weight::from_f32_exact(&values, 2, 32).unwrap(), None);
        let err = Q8_0Weight::from_f32_exact(&[0.0; 40], 2, 20).unwrap_err();
        assert!(err.to_string().contains("20 input features"), "{err}");
        let err = Q8_0Weight::from_parts(vec![0; 64], vec![1.0], 2, 32).unwrap_err();
        assert!(err.to_string().contains("q8_0 scales"), "{err}");
        assert!(Q8_0Weight::from_f32_exact(&[f32::NAN; 32], 1, 32).unwrap().is_none());
    }

    #[test]
    fn zero_blocks_are_exact() {
        let weight = Q8_0Weight::from_f32_exact(&[0.0; 32], 1, 32).unwrap().unwrap();
        assert_eq!(weight.dequantize(), vec![0.0; 32]);
    }
}
