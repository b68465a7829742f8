//! Scalar dequantization of the GGUF tensor types the default model ships (F32, F16, Q4_1, Q8_0).
//!
//! Input is a tensor's raw little-endian bytes as they sit in a `.gguf` file; output is row-major
//! f32, equal bit for bit to candle's (and ggml's) scalar `to_float`. This is what lets a GGUF
//! model be re-quantized to NF4 or int8. Layouts, per block:
//! - Q4_1, 32 elements in 20 bytes: f16 scale `d`, f16 minimum `m`, 16 bytes of nibbles; byte `j`
//!   holds element `j` in its low nibble and element `j + 16` in its high nibble; `x = q * d + m`.
//! - Q8_0, 32 elements in 34 bytes: f16 scale `d`, 32 signed bytes; `x = q * d`.

use crate::error::{Error, Result};

/// Elements per block of the quantized GGUF types (ggml's `QK4_1` and `QK8_0`).
pub const GGUF_QUANT_BLOCK: usize = 32;

/// A GGUF tensor type this crate can dequantize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufType {
    F32,
    F16,
    Q4_1,
    Q8_0,
}

impl GgufType {
    /// The type for a ggml type id as stored in a GGUF tensor header (`None` for types not handled here).
    pub fn from_ggml_id(id: u32) -> Option<Self> {
        match id {
            0 => Some(GgufType::F32),
            1 => Some(GgufType::F16),
            3 => Some(GgufType::Q4_1),
            8 => Some(GgufType::Q8_0),
            _ => None,
        }
    }

    /// ggml's name for the type, for messages.
    pub fn name(self) -> &'static str {
        match self {
            GgufType::F32 => "f32",
            GgufType::F16 => "f16",
            GgufType::Q4_1 => "q4_1",
            GgufType::Q8_0 => "q8_0",
        }
    }

    /// Elements stored per block (1 for the plain float types).
    pub fn block_elements(self) -> usize {
        match self {
            GgufType::F32 | GgufType::F16 => 1,
            GgufType::Q4_1 | GgufType::Q8_0 => GGUF_QUANT_BLOCK,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            GgufType::F32 => 4,
            GgufType::F16 => 2,
            GgufType::Q4_1 => 4 + GGUF_QUANT_BLOCK / 2,
            GgufType::Q8_0 => 2 + GGUF_QUANT_BLOCK,
        }
    }

    /// Bytes a tensor of `n_elements` occupies, or an error when the count does not fill whole blocks.
    pub fn byte_len(self, n_elements: usize) -> Result<usize> {
        let block_elements = self.block_elements();
        if !n_elements.is_multiple_of(block_elements) {
            return Err(Error::DimensionMismatch {
                what: "gguf tensor size",
                left: format!("{n_elements} elements"),
                right: format!("whole {} blocks of {block_elements}", self.name()),
            });
        }
        (n_elements / block_elements)
            .checked_mul(self.block_bytes())
            .ok_or(Error::ShapeOverflow { what: "gguf tensor", shape: vec![n_elements] })
    }
}

/// Dequantizes the raw bytes of a GGUF tensor of `n_elements` elements into row-major f32.
///
/// `bytes` must hold exactly the tensor's data (no padding); a length or element count that does
/// not fit the block layout is an error, never a partial read.
pub fn dequantize(kind: GgufType, bytes: &[u8], n_elements: usize) -> Result<Vec<f32>> {
    let expected = kind.byte_len(n_elements)?;
    if bytes.len() != expected {
        return Err(Error::LayoutMismatch { what: gguf_bytes_label(kind), expected, actual: bytes.len() });
    }
    let block_bytes = bytes.chunks_exact(kind.block_bytes());
    let mut values = Vec::with_capacity(n_elements);
    match kind {
        GgufType::F32 => {
            values.extend(block_bytes.map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        }
        GgufType::F16 => values.extend(block_bytes.map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))),
        GgufType::Q4_1 => block_bytes.for_each(|block| dequantize_q4_1_block(block, &mut values)),
        GgufType::Q8_0 => block_bytes.for_each(|block| dequantize_q8_0_block(block, &mut values)),
    }
    Ok(values)
}

/// The `what` of a byte-length error, naming the type.
fn gguf_bytes_label(kind: GgufType) -> &'static str {
    match kind {
        GgufType::F32 => "gguf f32 tensor data (bytes)",
        GgufType::F16 => "gguf f16 tensor data (bytes)",
        GgufType::Q4_1 => "gguf q4_1 tensor data (bytes)",
        GgufType::Q8_0 => "gguf q8_0 tensor data (bytes)",
    }
}

/// One Q4_1 block (exactly 20 bytes, guaranteed by `chunks_exact`).
fn dequantize_q4_1_block(block: &[u8], values: &mut Vec<f32>) {
    let scale = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
    let minimum = f16_to_f32(u16::from_le_bytes([block[2], block[3]]));
    let nibbles = &block[4..];
    // Unfused multiply then add, as ggml's scalar `dequantize_row_q4_1` computes it.
    values.extend(nibbles.iter().map(|&byte| f32::from(byte & 0x0f) * scale + minimum));
    values.extend(nibbles.iter().map(|&byte| f32::from(byte >> 4) * scale + minimum));
}

/// One Q8_0 block (exactly 34 bytes, guaranteed by `chunks_exact`).
fn dequantize_q8_0_block(block: &[u8], values: &mut Vec<f32>) {
    let scale = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
    values.extend(block[2..].iter().map(|&byte| f32::from(i8::from_le_bytes([byte])) * scale));
}

/// Converts IEEE 754 half-precision bits to f32 exactly (every f16 is representable in f32).
/// NaNs keep their payload with the quiet bit set, as the `half` crate and x86's `vcvtph2ps` do.
pub fn f16_to_f32(bits: u16) -> f32 {
    const F16_SUBNORMAL_STEP: f32 = 5.960_464_5e-8; // 2^-24
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x03ff);
    let magnitude_bits = match (exponent, mantissa) {
        // Zero and subnormals: mantissa * 2^-24, exact in f32 (an integer below 2^10 times a power of two).
        (0, _) => (mantissa as f32 * F16_SUBNORMAL_STEP).to_bits(),
        (0x1f, 0) => 0x7f80_0000,
        (0x1f, _) => 0x7fc0_0000 | (mantissa << 13),
        // Rebias the exponent from 15 to 127; the 10 mantissa bits become the top of the 23.
        _ => ((exponent + 127 - 15) << 23) | (mantissa << 13),
    };
    f32::from_bits(sign | magnitude_bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_landmarks_convert_exactly() {
        let cases: [(u16, f32); 8] = [
            (0x0000, 0.0),
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x7bff, 65504.0),
            (0x0001, 5.960_464_5e-8),
            (0x0400, 6.103_515_6e-5),
            (0x3555, 0.333_251_95),
            (0xfc00, f32::NEG_INFINITY),
        ];
        for (bits, expected) in cases {
            assert_eq!(f16_to_f32(bits).to_bits(), expected.to_bits(), "f16 bits {bits:#06x}");
        }
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn q4_1_block_puts_low_nibbles_first() {
        // d = 0.5, m = -1.0; byte j = (high = 15 - (j % 16), low = j % 16).
        let mut block = vec![0x00, 0x38, 0x00, 0xbc];
        block.extend((0u8..16).map(|j| ((15 - j) << 4) | j));
        let values = dequantize(GgufType::Q4_1, &block, 32).unwrap();
        let expected: Vec<f32> = (0..16)
            .map(|j| j as f32 * 0.5 - 1.0)
            .chain((0..16).map(|j| (15 - j) as f32 * 0.5 - 1.0))
            .collect();
        assert_eq!(values, expected);
    }

    #[test]
    fn q8_0_block_reads_signed_bytes() {
        let mut block = vec![0x00, 0x40]; // d = 2.0
        block.extend((0..32).map(|j: i8| (j - 16).to_le_bytes()[0]));
        let values = dequantize(GgufType::Q8_0, &block, 32).unwrap();
        let expected: Vec<f32> = (0..32).map(|j| (j - 16) as f32 * 2.0).collect();
        assert_eq!(values, expected);
    }
}
