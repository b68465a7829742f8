//! Blockwise 4-bit quantization (NF4 and FP4) with bitsandbytes' CPU numerics, packed two codes per byte.
//!
//! The numerics follow `quantize_4bit` of bitsandbytes' default (PyTorch) backend, which the CPU
//! uses: per block `absmax = max|x|`; a full block is scaled by the f32 reciprocal
//! `x * (1 / absmax)`, the tail block by a true division `x / absmax`; both are clamped to [-1, 1]
//! and binned against the f32 midpoints of the sorted code, a value on a midpoint going to the
//! lower bin. Element `2j` goes to the high nibble of byte `j`, `2j + 1` to the low nibble; an odd
//! count is padded with a quantized `0.0`. Dequantization is `code[idx] * absmax` in f32.

use crate::double_quant::DoubleQuantAbsmax;
use crate::error::{Error, Result};
use crate::fp4::{FP4_CODE, FP4_SORTED_ORDER};
use crate::nf4::{NF4_CODE, NF4_SORTED_ORDER};

/// Block sizes bitsandbytes accepts for 4-bit quantization.
pub const FOUR_BIT_BLOCKSIZES: [usize; 8] = [32, 64, 128, 256, 512, 1024, 2048, 4096];

/// bitsandbytes clamps the divisor to this before scaling, so an all-zero block quantizes to the
/// zero code instead of NaN. A *tail* block also stores the clamped value as its absmax; a full
/// block stores the raw `0.0`.
const MIN_DIVISOR: f32 = 1e-38;

/// Which 16-value code a 4-bit tensor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FourBitFormat {
    Nf4,
    Fp4,
}

impl FourBitFormat {
    /// The 16 code values, by code index.
    pub fn code(self) -> &'static [f32; 16] {
        match self {
            FourBitFormat::Nf4 => &NF4_CODE,
            FourBitFormat::Fp4 => &FP4_CODE,
        }
    }

    /// Code indices in ascending value order.
    fn sorted_order(self) -> &'static [u8; 16] {
        match self {
            FourBitFormat::Nf4 => &NF4_SORTED_ORDER,
            FourBitFormat::Fp4 => &FP4_SORTED_ORDER,
        }
    }

    /// The 15 bin boundaries `(sorted[i] + sorted[i + 1]) / 2`, computed in f32 as bitsandbytes does.
    fn midpoints(self) -> [f32; 15] {
        let code = self.code();
        let order = self.sorted_order();
        std::array::from_fn(|i| (code[usize::from(order[i])] + code[usize::from(order[i + 1])]) / 2.0)
    }

    /// Code index of an already scaled value. A value equal to a midpoint takes the lower bin,
    /// like `torch.bucketize(right=False)` and CUDA's strict `x > midpoint` tree; NaN takes bin 0.
    fn encode(self, midpoints: &[f32; 15], scaled: f32) -> u8 {
        let bin = midpoints.partition_point(|&midpoint| midpoint < scaled);
        self.sorted_order()[bin]
    }
}

/// How to quantize a tensor to 4 bits. The default is what QLoRA uses: NF4, blocks of 64,
/// double-quantized absmax (`Linear4bit`'s `compress_statistics=True`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FourBitConfig {
    pub format: FourBitFormat,
    pub blocksize: usize,
    pub double_quant: bool,
}

impl Default for FourBitConfig {
    fn default() -> Self {
        FourBitConfig { format: FourBitFormat::Nf4, blocksize: 64, double_quant: true }
    }
}

/// The per-block scales of a 4-bit tensor: plain f32, or themselves quantized to 8 bits.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockScales {
    Plain(Vec<f32>),
    Double(DoubleQuantAbsmax),
}

impl BlockScales {
    /// Number of blocks the scales cover.
    pub fn len(&self) -> usize {
        match self {
            BlockScales::Plain(absmax) => absmax.len(),
            BlockScales::Double(double) => double.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The f32 absmax per block (dequantizing the nested statistics if double-quantized).
    pub fn absmax(&self) -> Vec<f32> {
        match self {
            BlockScales::Plain(absmax) => absmax.clone(),
            BlockScales::Double(double) => double.decompress(),
        }
    }
}

/// A tensor quantized blockwise to 4 bits, laid out as bitsandbytes stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct FourBitTensor {
    format: FourBitFormat,
    shape: Vec<usize>,
    blocksize: usize,
    codes: Vec<u8>,
    scales: BlockScales,
}

impl FourBitTensor {
    /// Quantizes row-major `data` of the given `shape`.
    pub fn quantize(data: &[f32], shape: &[usize], config: &FourBitConfig) -> Result<Self> {
        check_blocksize(config.blocksize)?;
        let n_elements = element_count(shape, "4-bit input")?;
        if n_elements != data.len() {
            return Err(Error::ShapeMismatch {
                what: "4-bit input",
                shape: shape.to_vec(),
                expected: n_elements,
                actual: data.len(),
            });
        }
        let (codes, absmax) = quantize_blocks(data, config.format, config.blocksize);
        let scales = if config.double_quant {
            BlockScales::Double(DoubleQuantAbsmax::compress(&absmax)?)
        } else {
            BlockScales::Plain(absmax)
        };
        Ok(FourBitTensor {
            format: config.format,
            shape: shape.to_vec(),
            blocksize: config.blocksize,
            codes,
            scales,
        })
    }

    /// Assembles a tensor from stored parts (for example a bitsandbytes checkpoint), checking that
    /// the packed codes and the scales fit the shape and block size.
    pub fn from_parts(
        format: FourBitFormat,
        shape: &[usize],
        blocksize: usize,
        codes: Vec<u8>,
        scales: BlockScales,
    ) -> Result<Self> {
        check_blocksize(blocksize)?;
        let n_elements = element_count(shape, "4-bit tensor")?;
        if codes.len() != n_elements.div_ceil(2) {
            return Err(Error::LayoutMismatch {
                what: "packed 4-bit codes",
                expected: n_elements.div_ceil(2),
                actual: codes.len(),
            });
        }
        if scales.len() != n_elements.div_ceil(blocksize) {
            return Err(Error::LayoutMismatch {
                what: "4-bit block absmax",
                expected: n_elements.div_ceil(blocksize),
                actual: scales.len(),
            });
        }
        Ok(FourBitTensor { format, shape: shape.to_vec(), blocksize, codes, scales })
    }

    pub fn format(&self) -> FourBitFormat {
        self.format
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn blocksize(&self) -> usize {
        self.blocksize
    }

    /// Number of quantized elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Packed codes, two per byte, first element in the high nibble.
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }

    pub fn scales(&self) -> &BlockScales {
        &self.scales
    }

    /// Code index of element `element_idx`.
    pub fn code_index(&self, element_idx: usize) -> Result<u8> {
        if element_idx >= self.len() {
            return Err(Error::IndexOutOfRange {
                what: "4-bit element",
                index: element_idx,
                limit: self.len(),
            });
        }
        let byte = self.codes[element_idx / 2];
        Ok(if element_idx.is_multiple_of(2) { byte >> 4 } else { byte & 0x0f })
    }

    /// Row-major f32 values `code[idx] * absmax[block]`.
    pub fn dequantize(&self) -> Vec<f32> {
        let code = self.format.code();
        let absmax = self.scales.absmax();
        let n_elements = self.len();
        let mut out = Vec::with_capacity(n_elements);
        for element_idx in 0..n_elements {
            let byte = self.codes[element_idx / 2];
            let code_idx = if element_idx % 2 == 0 { byte >> 4 } else { byte & 0x0f };
            out.push(code[usize::from(code_idx)] * absmax[element_idx / self.blocksize]);
        }
        out
    }
}

/// Packed codes and per-block absmax of `data`, which must be non-empty.
fn quantize_blocks(data: &[f32], format: FourBitFormat, blocksize: usize) -> (Vec<u8>, Vec<f32>) {
    let midpoints = format.midpoints();
    let mut codes = vec![0u8; data.len().div_ceil(2)];
    let mut absmax = Vec::with_capacity(data.len().div_ceil(blocksize));
    for (block_idx, block) in data.chunks(blocksize).enumerate() {
        let block_absmax = block.iter().fold(0.0f32, |max, &x| max.max(x.abs()));
        let divisor = block_absmax.max(MIN_DIVISOR);
        let is_tail = block.len() < blocksize;
        // Full blocks multiply by an f32 reciprocal, the tail divides: two roundings differ.
        let reciprocal = 1.0 / divisor;
        absmax.push(if is_tail { divisor } else { block_absmax });
        for (offset, &x) in block.iter().enumerate() {
            let scaled = if is_tail { x / divisor } else { x * reciprocal }.clamp(-1.0, 1.0);
            let element_idx = block_idx * blocksize + offset;
            set_nibble(&mut codes, element_idx, format.encode(&midpoints, scaled));
        }
    }
    if data.len() % 2 == 1 {
        set_nibble(&mut codes, data.len(), format.encode(&midpoints, 0.0));
    }
    (codes, absmax)
}

fn set_nibble(codes: &mut [u8], element_idx: usize, code_idx: u8) {
    let byte = &mut codes[element_idx / 2];
    if element_idx.is_multiple_of(2) {
        *byte = (*byte & 0x0f) | (code_idx << 4);
    } else {
        *byte = (*byte & 0xf0) | (code_idx & 0x0f);
    }
}

fn check_blocksize(blocksize: usize) -> Result<()> {
    if FOUR_BIT_BLOCKSIZES.contains(&blocksize) {
        Ok(())
    } else {
        Err(Error::Blocksize { blocksize, allowed: "32, 64, 128, 256, 512, 1024, 2048, 4096" })
    }
}

/// Element count of a shape (1 for a scalar `[]`), refusing overflow and zero-sized tensors.
fn element_count(shape: &[usize], what: &'static str) -> Result<usize> {
    match shape.iter().try_fold(1usize, |count, &dim| count.checked_mul(dim)) {
        None => Err(Error::ShapeOverflow { what, shape: shape.to_vec() }),
        Some(0) => Err(Error::Empty { what }),
        Some(count) => Ok(count),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(format: FourBitFormat) -> FourBitConfig {
        FourBitConfig { format, blocksize: 64, double_quant: false }
    }

    #[test]
    fn nf4_midpoint_ties_go_to_the_lower_index() {
        let midpoints = FourBitFormat::Nf4.midpoints();
        for (bin, &midpoint) in midpoints.iter().enumerate() {
            assert_eq!(usize::from(FourBitFormat::Nf4.encode(&midpoints, midpoint)), bin);
            let above =
                f32::from_bits(midpoint.to_bits().wrapping_add(if midpoint > 0.0 { 1 } else { u32::MAX }));
            assert_eq!(usize::from(FourBitFormat::Nf4.encode(&midpoints, above)), bin + 1, "{midpoint}");
        }
    }

    #[test]
    fn odd_length_pads_the_last_low_nibble_with_the_zero_code() {
        let tensor = FourBitTensor::quantize(&[1.0, -1.0, 0.5], &[3], &plain(FourBitFormat::Nf4)).unwrap();
        assert_eq!(tensor.codes(), &[0xf0, 0xc7]);
        let fp4 = FourBitTensor::quantize(&[1.0, -1.0, 0.5], &[3], &plain(FourBitFormat::Fp4)).unwrap();
        assert_eq!(fp4.codes(), &[0x3b, 0x50]);
    }

    #[test]
    fn all_zero_blocks_keep_zero_codes_and_tail_stores_the_clamped_divisor() {
        let data = vec![0.0f32; 64 + 10];
        let tensor = FourBitTensor::quantize(&data, &[74], &plain(FourBitFormat::Nf4)).unwrap();
        assert_eq!(tensor.scales().absmax(), vec![0.0, MIN_DIVISOR]);
        assert!(tensor.codes().iter().all(|&byte| byte == 0x77));
        assert!(tensor.dequantize().iter().all(|&x| x == 0.0));
    }

    #[test]
    fn bad_shapes_and_blocksizes_are_errors() {
        let config = plain(FourBitFormat::Nf4);
        let err = FourBitTensor::quantize(&[1.0; 5], &[2, 3], &config).unwrap_err();
        assert_eq!(err.to_string(), "4-bit input: shape [2, 3] holds 6 elements but 5 were given");
        let bad_blocksize = FourBitConfig { blocksize: 48, ..config };
        assert!(matches!(
            FourBitTensor::quantize(&[1.0; 48], &[48], &bad_blocksize),
            Err(Error::Blocksize { blocksize: 48, .. })
        ));
        assert!(matches!(FourBitTensor::quantize(&[], &[0, 4], &config), Err(Error::Empty { .. })));
        assert!(matches!(
            FourBitTensor::quantize(&[], &[], &config),
            Err(Error::ShapeMismatch { expected: 1, .. })
        ));
        let overflow = [usize::MAX, 2];
        assert!(matches!(
            FourBitTensor::quantize(&[1.0], &overflow, &config),
            Err(Error::ShapeOverflow { .. })
        ));
    }

    #[test]
    fn from_parts_checks_the_layout() {
        let scales = BlockScales::Plain(vec![1.0; 2]);
        let err = FourBitTensor::from_parts(FourBitFormat::Nf4, &[65], 64, vec![0; 32], scales.clone());
        assert_eq!(err.unwrap_err().to_string(), "packed 4-bit codes has 32 entries but the layout needs 33");
        let one_block = BlockScales::Plain(vec![1.0]);
        assert!(matches!(
            FourBitTensor::from_parts(FourBitFormat::Nf4, &[65], 64, vec![0; 33], one_block),
            Err(Error::LayoutMismatch { what: "4-bit block absmax", expected: 2, actual: 1 })
        ));
        let tensor =
            FourBitTensor::from_parts(FourBitFormat::Nf4, &[65], 64, vec![0xf0; 33], scales).unwrap();
        assert_eq!(tensor.code_index(0).unwrap(), 15);
        assert_eq!(tensor.code_index(1).unwrap(), 0);
        assert!(matches!(tensor.code_index(65), Err(Error::IndexOutOfRange { index: 65, limit: 65, .. })));
    }
}
