//! The signed 8-bit dynamic map and blockwise 8-bit quantization with it (bitsandbytes' CPU kernels).
//!
//! Double quantization stores the absmax values of a 4-bit tensor as 8-bit codes of this map.
//! [`quantize_blockwise`] is bitsandbytes 0.50's native CPU kernel (`csrc/cpu_ops.cpp`:
//! `build_quantize_lut`, `norm_to_lut_index`, `quantize_cpu_impl`): a 65536-cell lookup table where
//! cell `i` stands for `-1 + 2i / 65535` and holds the first code whose upper midpoint is not below
//! it; a value `x` of a block with absmax `a` goes to cell
//! `trunc(fma((clamp(x * (1 / a)) + 1) * 0.5, 65535, 0.5))` (GCC contracts the multiply-add under
//! its `avx2,fma` target). Near a midpoint this can pick the farther code: about 0.2% of codes
//! differ from [`quantize_blockwise_nearest`], the exact search of older releases' `csrc/common.cpp`
//! (`normed = x / absmax`, the largest code `<= normed`, a step up only if strictly nearer). An
//! all-zero block maps to code 0 (stored absmax 0, dequantized `-0.0`) in both.

use crate::error::{Error, Result};

/// `create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)` as f32 bit patterns, dumped
/// from bitsandbytes 0.50.2 (`kernels/tests/fixtures/dynamic_map.safetensors` holds the same
/// table; a test compares them). The f32 rounding of its `linspace` construction matters, so the
/// table is copied, not recomputed. Sorted ascending: 127 negative values, 0, 127 positive, 1.0.
const SIGNED_DYNAMIC_MAP_BITS: [u32; 256] = [
    0xbf7e3333, 0xbf7a999a, 0xbf770000, 0xbf736666, 0xbf6fcccd, 0xbf6c3333, 0xbf68999a, 0xbf650000,
    0xbf616666, 0xbf5dcccd, 0xbf5a3333, 0xbf56999a, 0xbf530000, 0xbf4f6666, 0xbf4bcccd, 0xbf483333,
    0xbf44999a, 0xbf410000, 0xbf3d6666, 0xbf39cccd, 0xbf363334, 0xbf32999a, 0xbf2f0000, 0xbf2b6666,
    0xbf27cccd, 0xbf243334, 0xbf20999a, 0xbf1d0000, 0xbf196666, 0xbf15cccd, 0xbf123334, 0xbf0e999a,
    0xbf0b0000, 0xbf076666, 0xbf03cccc, 0xbf003333, 0xbef93332, 0xbef20000, 0xbeeacccc, 0xbee3999a,
    0xbedc6666, 0xbed53333, 0xbece0000, 0xbec6cccc, 0xbebf999a, 0xbeb86666, 0xbeb13333, 0xbeaa0000,
    0xbea2cccc, 0xbe9b999a, 0xbe946666, 0xbe8d3334, 0xbe860000, 0xbe7d9999, 0xbe6f3333, 0xbe60cccd,
    0xbe526666, 0xbe440000, 0xbe35999a, 0xbe273333, 0xbe18cccd, 0xbe0a6666, 0xbdf80000, 0xbddb3334,
    0xbdc9eb85, 0xbdc428f7, 0xbdbe6667, 0xbdb8a3d7, 0xbdb2e148, 0xbdad1eb8, 0xbda75c2a, 0xbda1999a,
    0xbd9bd70a, 0xbd96147b, 0xbd9051eb, 0xbd8a8f5d, 0xbd84cccd, 0xbd7e147b, 0xbd728f5d, 0xbd670a3d,
    0xbd5b851f, 0xbd500000, 0xbd447ae1, 0xbd38f5c3, 0xbd2d70a3, 0xbd21eb85, 0xbd166667, 0xbd0ae148,
    0xbcfeb852, 0xbce7ae15, 0xbcd0a3d7, 0xbcb9999a, 0xbca28f5d, 0xbc8b851f, 0xbc68f5c3, 0xbc3ae148,
    0xbc1f3b64, 0xbc160418, 0xbc0ccccd, 0xbc039581, 0xbbf4bc6a, 0xbbe24dd3, 0xbbcfdf3b, 0xbbbd70a4,
    0xbbab020d, 0xbb989374, 0xbb8624dd, 0xbb676c8a, 0xbb428f5c, 0xbb1db22d, 0xbaf1a9fc, 0xbaa7ef9d,
    0xba7765ff, 0xba59e83e, 0xba3c6a80, 0xba1eecc1, 0xba016f01, 0xb9c7e283, 0xb98ce705, 0xb923d70b,
    0xb8ba1f4b, 0xb88aefb3, 0xb8378034, 0xb7b24206, 0xb70205ff, 0xb65a1a94, 0xb513a3b7, 0x00000000,
    0x3513a3b7, 0x365a1a94, 0x370205ff, 0x37b24206, 0x38378034, 0x388aefb3, 0x38ba1f4b, 0x3923d70b,
    0x398ce705, 0x39c7e283, 0x3a016f01, 0x3a1eecc1, 0x3a3c6a80, 0x3a59e83e, 0x3a7765ff, 0x3aa7ef9d,
    0x3af1a9fc, 0x3b1db22d, 0x3b428f5c, 0x3b676c8a, 0x3b8624dd, 0x3b989374, 0x3bab020d, 0x3bbd70a4,
    0x3bcfdf3b, 0x3be24dd3, 0x3bf4bc6a, 0x3c039581, 0x3c0ccccd, 0x3c160418, 0x3c1f3b64, 0x3c3ae148,
    0x3c68f5c3, 0x3c8b851f, 0x3ca28f5d, 0x3cb9999a, 0x3cd0a3d7, 0x3ce7ae15, 0x3cfeb852, 0x3d0ae148,
    0x3d166667, 0x3d21eb85, 0x3d2d70a3, 0x3d38f5c3, 0x3d447ae1, 0x3d500000, 0x3d5b851f, 0x3d670a3d,
    0x3d728f5d, 0x3d7e147b, 0x3d84cccd, 0x3d8a8f5d, 0x3d9051eb, 0x3d96147b, 0x3d9bd70a, 0x3da1999a,
    0x3da75c2a, 0x3dad1eb8, 0x3db2e148, 0x3db8a3d7, 0x3dbe6667, 0x3dc428f7, 0x3dc9eb85, 0x3ddb3334,
    0x3df80000, 0x3e0a6666, 0x3e18cccd, 0x3e273333, 0x3e35999a, 0x3e440000, 0x3e526666, 0x3e60cccd,
    0x3e6f3333, 0x3e7d9999, 0x3e860000, 0x3e8d3334, 0x3e946666, 0x3e9b999a, 0x3ea2cccc, 0x3eaa0000,
    0x3eb13333, 0x3eb86666, 0x3ebf999a, 0x3ec6cccc, 0x3ece0000, 0x3ed53333, 0x3edc6666, 0x3ee3999a,
    0x3eeacccc, 0x3ef20000, 0x3ef93332, 0x3f003333, 0x3f03cccc, 0x3f076666, 0x3f0b0000, 0x3f0e999a,
    0x3f123334, 0x3f15cccd, 0x3f196666, 0x3f1d0000, 0x3f20999a, 0x3f243334, 0x3f27cccd, 0x3f2b6666,
    0x3f2f0000, 0x3f32999a, 0x3f363334, 0x3f39cccd, 0x3f3d6666, 0x3f410000, 0x3f44999a, 0x3f483333,
    0x3f4bcccd, 0x3f4f6666, 0x3f530000, 0x3f56999a, 0x3f5a3333, 0x3f5dcccd, 0x3f616666, 0x3f650000,
    0x3f68999a, 0x3f6c3333, 0x3f6fcccd, 0x3f736666, 0x3f770000, 0x3f7a999a, 0x3f7e3333, 0x3f800000,
];

/// The signed 8-bit dynamic map, by code index.
pub fn signed_dynamic_map() -> [f32; 256] {
    SIGNED_DYNAMIC_MAP_BITS.map(f32::from_bits)
}

/// Cells of the lookup table of bitsandbytes' native CPU kernel.
const LUT_SIZE: usize = 65536;
const LUT_MAX_INDEX: f32 = (LUT_SIZE - 1) as f32;

/// Cell -> code index for a sorted 256-entry code.
struct CodeLut {
    cells: Vec<u8>,
}

impl CodeLut {
    fn build(code: &[f32; 256]) -> Self {
        let midpoints: Vec<f32> = code.windows(2).map(|pair| 0.5 * (pair[0] + pair[1])).collect();
        let mut cells = Vec::with_capacity(LUT_SIZE);
        let mut code_idx = 0usize;
        for cell_idx in 0..LUT_SIZE {
            let cell_value = -1.0f32 + (2.0 * cell_idx as f32) / LUT_MAX_INDEX;
            while code_idx < midpoints.len() && midpoints[code_idx] < cell_value {
                code_idx += 1;
            }
            // At most 255: the loop stops at the last midpoint.
            cells.push(u8::try_from(code_idx).unwrap_or(u8::MAX));
        }
        CodeLut { cells }
    }

    /// Code index of a normalized value; NaN goes to cell 0, as the saturating cast does.
    fn lookup(&self, normed: f32) -> u8 {
        let clamped = normed.clamp(-1.0, 1.0);
        let position = ((clamped + 1.0) * 0.5).mul_add(LUT_MAX_INDEX, 0.5);
        self.cells[(position as usize).min(LUT_SIZE - 1)]
    }
}

/// Codes and per-block absmax of `data` quantized blockwise with `code` (256 sorted values), as
/// bitsandbytes 0.50's native CPU kernel computes them (lookup table, see the module docs).
pub fn quantize_blockwise(data: &[f32], code: &[f32; 256], blocksize: usize) -> Result<(Vec<u8>, Vec<f32>)> {
    if blocksize == 0 {
        return Err(Error::Blocksize { blocksize, allowed: "any positive size" });
    }
    let lut = CodeLut::build(code);
    let mut codes = Vec::with_capacity(data.len());
    let mut absmax = Vec::with_capacity(data.len().div_ceil(blocksize));
    for block in data.chunks(blocksize) {
        let block_absmax = block.iter().fold(0.0f32, |max, &x| max.max(x.abs()));
        absmax.push(block_absmax);
        if block_absmax == 0.0 {
            codes.extend(std::iter::repeat_n(0u8, block.len()));
            continue;
        }
        let reciprocal = 1.0 / block_absmax;
        codes.extend(block.iter().map(|&x| lut.lookup(x * reciprocal)));
    }
    Ok((codes, absmax))
}

/// [`quantize_blockwise`] with an exact nearest-code search (ties to the lower code), as older
/// bitsandbytes releases and its pure-PyTorch backend compute it.
pub fn quantize_blockwise_nearest(
    data: &[f32],
    code: &[f32; 256],
    blocksize: usize,
) -> Result<(Vec<u8>, Vec<f32>)> {
    if blocksize == 0 {
        return Err(Error::Blocksize { blocksize, allowed: "any positive size" });
    }
    let mut codes = Vec::with_capacity(data.len());
    let mut absmax = Vec::with_capacity(data.len().div_ceil(blocksize));
    for block in data.chunks(blocksize) {
        let block_absmax = block.iter().fold(0.0f32, |max, &x| max.max(x.abs()));
        absmax.push(block_absmax);
        codes.extend(block.iter().map(|&x| nearest_code(code, x / block_absmax)));
    }
    Ok((codes, absmax))
}

/// `code[codes[i]] * absmax[i / blocksize]` in f32.
pub fn dequantize_blockwise(
    codes: &[u8],
    absmax: &[f32],
    code: &[f32; 256],
    blocksize: usize,
) -> Result<Vec<f32>> {
    if blocksize == 0 {
        return Err(Error::Blocksize { blocksize, allowed: "any positive size" });
    }
    if absmax.len() != codes.len().div_ceil(blocksize) {
        return Err(Error::LayoutMismatch {
            what: "8-bit block absmax",
            expected: codes.len().div_ceil(blocksize),
            actual: absmax.len(),
        });
    }
    Ok(codes
        .iter()
        .enumerate()
        .map(|(idx, &code_idx)| code[usize::from(code_idx)] * absmax[idx / blocksize])
        .collect())
}

/// Index of the code nearest to `normed`: the largest code `<= normed` (index 0 below the
/// table or for NaN), moved up by one only when the next code is strictly nearer.
fn nearest_code(code: &[f32; 256], normed: f32) -> u8 {
    let below = code.partition_point(|&value| value <= normed).saturating_sub(1);
    let mut idx = below;
    if below < 255 {
        let dist_below = (normed - code[below]).abs();
        let dist_above = (normed - code[below + 1]).abs();
        if dist_above < dist_below {
            idx = below + 1;
        }
    }
    // The index is below 256 by construction of the 256-entry table.
    u8::try_from(idx).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_is_sorted_with_zero_and_one() {
        let map = signed_dynamic_map();
        assert!(map.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(map[127], 0.0);
        assert_eq!(map[255], 1.0);
        assert_eq!(map.iter().filter(|&&value| value < 0.0).count(), 127);
    }

    #[test]
    fn exact_codes_round_trip() {
        let map = signed_dynamic_map();
        for (idx, &value) in map.iter().enumerate() {
            assert_eq!(usize::from(nearest_code(&map, value)), idx);
        }
    }

    #[test]
    fn tie_goes_to_the_lower_code_and_out_of_range_clamps() {
        // Codes k/128 for k = -128..=127: binary fractions, so distances are exact.
        let grid: [f32; 256] = std::array::from_fn(|idx| (idx as f32 - 128.0) / 128.0);
        let halfway = 0.5 / 128.0;
        assert_eq!(nearest_code(&grid, halfway), 128);
        assert_eq!(nearest_code(&grid, f32::from_bits(halfway.to_bits() + 1)), 129);
        assert_eq!(nearest_code(&grid, -halfway), 127);
        assert_eq!(nearest_code(&grid, -1.5), 0);
        assert_eq!(nearest_code(&grid, 2.0), 255);
        assert_eq!(nearest_code(&grid, f32::NAN), 0);
    }

    #[test]
    fn all_zero_block_maps_to_code_zero() {
        let map = signed_dynamic_map();
        let (codes, absmax) = quantize_blockwise(&[0.0; 4], &map, 4).unwrap();
        assert_eq!(codes, vec![0; 4]);
        assert_eq!(absmax, vec![0.0]);
        let restored = dequantize_blockwise(&codes, &absmax, &map, 4).unwrap();
        assert!(restored.iter().all(|&x| x == 0.0 && x.is_sign_negative()));
    }

    #[test]
    fn the_lookup_table_ends_and_nan_map_to_the_outer_codes() {
        let lut = CodeLut::build(&signed_dynamic_map());
        assert_eq!(lut.lookup(-1.0), 0);
        assert_eq!(lut.lookup(1.0), 255);
        assert_eq!(lut.lookup(f32::NAN), 0);
    }

    #[test]
    fn values_near_midpoints_take_the_codes_bitsandbytes_gives() {
        // (value, code from `torch.ops.bitsandbytes.quantize_blockwise` in a block with absmax 1,
        // nearest code): bitsandbytes 0.50.2 on x86-64; -0.0971875 came up in SmolLM2's layer 0.
        let cases = [
            (-0.097_193_f32, 65, 64),
            (0.240_63, 200, 201),
            (0.007_195, 153, 154),
            (0.803_119, 241, 240),
            (-3e-8, 123, 127),
            (0.0, 131, 127),
            (2.9e-5, 131, 131),
            (-2.9e-5, 123, 123),
        ];
        let map = signed_dynamic_map();
        let lut = CodeLut::build(&map);
        for (value, bnb_code, nearest) in cases {
            let distance = |idx: usize| (value - map[idx]).abs();
            assert!(distance(nearest) <= distance(usize::from(bnb_code)), "{value}");
            assert_eq!(usize::from(nearest_code(&map, value)), nearest, "{value}");
            assert_eq!(lut.lookup(value), bnb_code, "{value}");
        }
    }

    #[test]
    fn layout_errors() {
        let map = signed_dynamic_map();
        assert!(matches!(quantize_blockwise(&[1.0], &map, 0), Err(Error::Blocksize { blocksize: 0, .. })));
        assert!(matches!(
            dequantize_blockwise(&[0; 300], &[1.0], &map, 256),
            Err(Error::LayoutMismatch { expected: 2, actual: 1, .. })
        ));
    }
}
