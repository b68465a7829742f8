//! Double quantization: the absmax values of a 4-bit tensor stored as 8-bit dynamic-map codes.
//!
//! As bitsandbytes' `quantize_4bit(compress_statistics=True)`: `offset = mean(absmax)` (torch's
//! summation order, see [`crate::torch_sum`]), then `absmax - offset` is quantized blockwise
//! (blocks of 256) with the signed dynamic map. Restoring is `code[q] * nested_absmax + offset`.

use crate::dynamic_map::{quantize_blockwise, signed_dynamic_map};
use crate::error::{Error, Result};
use crate::torch_sum::torch_mean;

/// Block size of the nested quantization (bitsandbytes' `nested_blocksize`).
pub const NESTED_BLOCKSIZE: usize = 256;

/// Double-quantized absmax values: one 8-bit code per 4-bit block, one f32 absmax per 256 codes.
#[derive(Debug, Clone, PartialEq)]
pub struct DoubleQuantAbsmax {
    offset: f32,
    codes: Vec<u8>,
    nested_absmax: Vec<f32>,
}

impl DoubleQuantAbsmax {
    /// Compresses per-block absmax values.
    pub fn compress(absmax: &[f32]) -> Result<Self> {
        let offset = torch_mean(absmax);
        Self::compress_with_offset(absmax, offset)
    }

    /// Compresses with a given offset instead of the mean; useful to reproduce statistics from a
    /// run whose mean was summed in another order (torch splits sums of 32768+ values by thread).
    pub fn compress_with_offset(absmax: &[f32], offset: f32) -> Result<Self> {
        if absmax.is_empty() {
            return Err(Error::Empty { what: "absmax to double-quantize" });
        }
        let centred: Vec<f32> = absmax.iter().map(|&value| value - offset).collect();
        let (codes, nested_absmax) = quantize_blockwise(&centred, &signed_dynamic_map(), NESTED_BLOCKSIZE)?;
        Ok(DoubleQuantAbsmax { offset, codes, nested_absmax })
    }

    /// Assembles stored statistics, checking that `nested_absmax` covers `codes` in blocks of 256.
    pub fn from_parts(offset: f32, codes: Vec<u8>, nested_absmax: Vec<f32>) -> Result<Self> {
        if nested_absmax.len() != codes.len().div_ceil(NESTED_BLOCKSIZE) {
            return Err(Error::LayoutMismatch {
                what: "nested absmax",
                expected: codes.len().div_ceil(NESTED_BLOCKSIZE),
                actual: nested_absmax.len(),
            });
        }
        Ok(DoubleQuantAbsmax { offset, codes, nested_absmax })
    }

    /// The absmax values: `code[q] * nested_absmax[block] + offset`, in f32.
    pub fn decompress(&self) -> Vec<f32> {
        let map = signed_dynamic_map();
        let offset = self.offset;
        self.codes
            .chunks(NESTED_BLOCKSIZE)
            .zip(&self.nested_absmax)
            .flat_map(|(block, &block_absmax)| {
                block.iter().map(move |&code_idx| map[usize::from(code_idx)] * block_absmax + offset)
            })
            .collect()
    }

    /// Number of 4-bit blocks covered.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    pub fn offset(&self) -> f32 {
        self.offset
    }

    /// One 8-bit code per 4-bit block.
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }

    /// One f32 absmax per [`NESTED_BLOCKSIZE`] codes.
    pub fn nested_absmax(&self) -> &[f32] {
        &self.nested_absmax
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_stays_within_one_code_step() {
        let absmax: Vec<f32> = (0..600).map(|idx| 1.0 + (idx % 37) as f32 * 0.05).collect();
        let double = DoubleQuantAbsmax::compress(&absmax).unwrap();
        assert_eq!(double.codes().len(), 600);
        assert_eq!(double.nested_absmax().len(), 3);
        for (restored, original) in double.decompress().iter().zip(&absmax) {
            assert!((restored - original).abs() < 0.02, "{restored} vs {original}");
        }
    }

    #[test]
    fn empty_and_misfit_statistics_are_errors() {
        assert!(matches!(DoubleQuantAbsmax::compress(&[]), Err(Error::Empty { .. })));
        let err = DoubleQuantAbsmax::from_parts(0.5, vec![0; 257], vec![1.0]).unwrap_err();
        assert_eq!(err.to_string(), "nested absmax has 1 entries but the layout needs 2");
    }
}
