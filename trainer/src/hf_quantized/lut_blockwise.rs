//! bitsandbytes 0.50's native CPU `quantize_blockwise` (the double quantization of 4-bit absmax
//! when transformers loads a model on the CPU): a 65536-cell lookup table instead of an exact
//! nearest-code search.
//!
//! `csrc/cpu_ops.cpp` (`build_quantize_lut`, `norm_to_lut_index`, `quantize_cpu_impl`): the cell
//! `i` stands for `-1 + 2i / 65535` and holds the first code whose upper midpoint is not below it;
//! a value `x` of a block with absmax `a` goes to cell `trunc(fma((clamp(x * (1 / a)) + 1) * 0.5,
//! 65535, 0.5))` (GCC contracts the multiply-add under its `avx2,fma` target). Near a midpoint this
//! can pick the farther code, so its codes differ from [`kernels::dynamic_map::quantize_blockwise`]
//! (the exact search of older releases and of the pure-PyTorch backend) for about 0.2% of values.

use kernels::double_quant::NESTED_BLOCKSIZE;
use kernels::dynamic_map::signed_dynamic_map;
use kernels::torch_sum::torch_mean;
use kernels::DoubleQuantAbsmax;

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

/// `quantize_blockwise(absmax - mean(absmax), blocksize=256)` with the signed dynamic map, as the
/// native CPU kernel computes it; the result restores as `code[q] * nested_absmax + offset`.
pub fn double_quantize_absmax(absmax: &[f32]) -> kernels::Result<DoubleQuantAbsmax> {
    let offset = torch_mean(absmax);
    let centred: Vec<f32> = absmax.iter().map(|&value| value - offset).collect();
    let lut = CodeLut::build(&signed_dynamic_map());
    let mut codes = Vec::with_capacity(centred.len());
    let mut nested_absmax = Vec::with_capacity(centred.len().div_ceil(NESTED_BLOCKSIZE));
    for block in centred.chunks(NESTED_BLOCKSIZE) {
        let block_absmax = block.iter().fold(0.0f32, |max, &value| max.max(value.abs()));
        nested_absmax.push(block_absmax);
        if block_absmax == 0.0 {
            codes.extend(std::iter::repeat_n(0u8, block.len()));
            continue;
        }
        let reciprocal = 1.0 / block_absmax;
        codes.extend(block.iter().map(|&value| lut.lookup(value * reciprocal)));
    }
    DoubleQuantAbsmax::from_parts(offset, codes, nested_absmax)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ends_and_nan_map_to_the_outer_codes() {
        let map = signed_dynamic_map();
        let lut = CodeLut::build(&map);
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
            assert_eq!(lut.lookup(value), bnb_code, "{value}");
        }
    }

    #[test]
    fn an_all_equal_input_centres_to_a_zero_block() {
        let double = double_quantize_absmax(&[0.5; 300]).unwrap();
        assert_eq!(double.nested_absmax(), &[0.0, 0.0]);
        assert!(double.codes().iter().all(|&code| code == 0));
        assert!(double.decompress().iter().all(|&value| value == 0.5));
    }
}
