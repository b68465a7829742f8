//! Vector-wise int8 quantization of activations on the fast path: equal, code for code and
//! statistic for statistic, to [`Int8Activation::quantize`] (the specification), with f16
//! rounding by the conversion instructions and the row loops compiled for AVX-512.

use rayon::prelude::*;

use crate::error::Result;
use crate::fast::isa::CheckedIsa;
use crate::int8::{check_matrix, quantize_row, Int8Activation, QuantInput};

/// Activation codes laid out for the VNNI kernel, with the statistics of
/// [`Int8Activation::quantize`].
pub(crate) struct OffsetActivation {
    /// `code ^ 0x80` (the code + 128 as `u8`), rows of `stride` bytes padded with 128.
    pub(crate) codes: Vec<u8>,
    pub(crate) stride: usize,
    pub(crate) sca: Vec<f32>,
    pub(crate) outlier_cols: Vec<usize>,
}

/// [`Int8Activation::quantize`] in parallel over rows, writing the codes offset to `u8` for the
/// VNNI kernel (rows padded to `4 · ceil(cols / 4)` bytes). The codes equal the reference's.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn quantize_offset_avx512(
    x: &[f32],
    rows: usize,
    cols: usize,
    threshold: f32,
    input: QuantInput,
) -> Result<OffsetActivation> {
    check_matrix(x.len(), rows, cols, "int8 activations")?;
    let stride = cols.div_ceil(4) * 4;
    let chunk_rows = rows.div_ceil(rayon::current_num_threads() * 4).max(1);
    // Rounding and the outliers themselves are per element, so row chunks go in parallel; only
    // the set of outlier columns needs every row.
    let mut values = x.to_vec();
    let is_outlier_col = values
        .par_chunks_mut(chunk_rows * cols)
        .map(|chunk| {
            // SAFETY: the caller guarantees AVX-512F.
            unsafe { prepare_avx512(chunk, cols, threshold, input) }
        })
        .reduce(
            || vec![false; cols],
            |mut left, right| {
                left.iter_mut().zip(right).for_each(|(left, right)| *left |= right);
                left
            },
        );
    let outlier_cols: Vec<usize> = (0..cols).filter(|&col| is_outlier_col[col]).collect();
    let mut codes = vec![0x80u8; rows * stride];
    let mut sca = vec![0f32; rows];
    codes
        .par_chunks_mut(chunk_rows * stride)
        .zip(sca.par_chunks_mut(chunk_rows))
        .zip(values.par_chunks(chunk_rows * cols))
        .for_each(|((codes, sca), values)| {
            // SAFETY: the caller guarantees AVX-512F.
            unsafe { codes_avx512(values, cols, stride, &outlier_cols, codes, sca) }
        });
    Ok(OffsetActivation { codes, stride, sca, outlier_cols })
}

/// Rounds a chunk of rows to f16 if asked and zeroes its outliers (the outliers themselves, before
/// the row statistics; the rest of their columns still count there and are zeroed in the codes
/// only); returns which columns held one.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn prepare_avx512(values: &mut [f32], cols: usize, threshold: f32, input: QuantInput) -> Vec<bool> {
    if input == QuantInput::RoundToF16 {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { round_to_f16_avx512(values) };
    }
    let mut is_outlier_col = vec![false; cols];
    if threshold > 0.0 {
        let threshold = input.apply(threshold);
        for row in values.chunks_mut(cols) {
            for (is_outlier_col, value) in is_outlier_col.iter_mut().zip(row) {
                let is_outlier = value.abs() >= threshold;
                *is_outlier_col |= is_outlier;
                if is_outlier {
                    *value = 0.0;
                }
            }
        }
    }
    is_outlier_col
}

/// Quantizes prepared rows into offset codes (outlier columns 0, that is 128) and statistics.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn codes_avx512(
    values: &[f32],
    cols: usize,
    stride: usize,
    outlier_cols: &[usize],
    codes: &mut [u8],
    sca: &mut [f32],
) {
    for ((row, out), stat) in values.chunks(cols).zip(codes.chunks_mut(stride)).zip(sca.iter_mut()) {
        // SAFETY: the caller guarantees AVX-512F; `out` holds at least `cols` bytes.
        *stat = unsafe { offset_row_codes_avx512(row, &mut out[..cols]) };
        for &col in outlier_cols {
            out[col] = 0x80;
        }
    }
}

/// [`quantize_row`] with its codes offset to `u8` (`code ^ 0x80`), sixteen values at a time: the
/// same absmax (a maximum is exact in any order, NaN ignored as `f32::max` ignores it), the same
/// scale, and each code rounded half to even and saturated as `as i8` does (NaN to 0).
///
/// # Safety
/// The CPU must support AVX-512F; `out.len() == row.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn offset_row_codes_avx512(row: &[f32], out: &mut [u8]) -> f32 {
    use std::arch::x86_64::*;
    debug_assert_eq!(row.len(), out.len());
    let chunks = row.chunks_exact(16);
    let tail = chunks.remainder();
    let mut lanes = _mm512_setzero_ps();
    for chunk in chunks.clone() {
        // SAFETY: `chunk` holds exactly 16 f32s.
        let v = unsafe { _mm512_loadu_ps(chunk.as_ptr()) };
        // `max_ps` returns its second operand when either is NaN: the running maximum.
        lanes = _mm512_max_ps(_mm512_abs_ps(v), lanes);
    }
    let absmax = tail.iter().fold(_mm512_reduce_max_ps(lanes), |max, &value| max.max(value.abs()));
    let scale = (1.0 / absmax) * 127.0;
    let scale_v = _mm512_set1_ps(scale);
    let offset = _mm_set1_epi8(0x80u8 as i8);
    let (low, high) = (_mm512_set1_ps(-128.0), _mm512_set1_ps(127.0));
    for (chunk, target) in chunks.zip(out.chunks_exact_mut(16)) {
        // SAFETY: `chunk` holds 16 f32s and `target` 16 bytes.
        unsafe {
            let product = _mm512_mul_ps(_mm512_loadu_ps(chunk.as_ptr()), scale_v);
            let ordered = _mm512_cmp_ps_mask::<_CMP_ORD_Q>(product, product);
            // Infinite products (a subnormal absmax makes the scale infinite) saturate as `as i8`
            // saturates; the conversion alone would turn +inf into -128.
            let clamped = _mm512_min_ps(_mm512_max_ps(product, low), high);
            let rounded =
                _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(clamped);
            let codes = _mm512_cvtsepi32_epi8(_mm512_maskz_mov_epi32(ordered, rounded));
            _mm_storeu_si128(target.as_mut_ptr().cast(), _mm_xor_si128(codes, offset));
        }
    }
    let done = row.len() - tail.len();
    for (target, &value) in out[done..].iter_mut().zip(tail) {
        *target = (((value * scale).round_ties_even() as i8) as u8) ^ 0x80;
    }
    absmax
}

/// One prepared row's codes, its outlier columns zeroed (as the reference zeroes whole outlier
/// columns of CA); returns the row's absmax.
#[inline(always)]
fn row_codes(row: &[f32], outlier_cols: &[usize], codes: &mut [i8]) -> f32 {
    let absmax = quantize_row(row, codes);
    for &col in outlier_cols {
        codes[col] = 0;
    }
    absmax
}

/// [`Int8Activation::quantize`], faster where the CPU has AVX-512.
pub(crate) fn quantize(
    x: &[f32],
    rows: usize,
    cols: usize,
    threshold: f32,
    input: QuantInput,
    isa: CheckedIsa,
) -> Result<Int8Activation> {
    #[cfg(target_arch = "x86_64")]
    if isa.isa() == crate::fast::Isa::Avx512 && !x.is_empty() && rows.checked_mul(cols) == Some(x.len()) {
        // SAFETY: `CheckedIsa` guarantees AVX-512F, all `quantize_avx512` asks for.
        let (ca, sca, outlier_cols) = unsafe { quantize_avx512(x, rows, cols, threshold, input) };
        return Ok(Int8Activation::from_parts(rows, cols, ca, sca, outlier_cols));
    }
    let _ = isa;
    Int8Activation::quantize(x, rows, cols, threshold, input)
}

/// The steps of [`Int8Activation::quantize`] in the same order, vectorised.
///
/// # Safety
/// The CPU must support AVX-512F; `x` is a non-empty `[rows, cols]` matrix.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn quantize_avx512(
    x: &[f32],
    rows: usize,
    cols: usize,
    threshold: f32,
    input: QuantInput,
) -> (Vec<i8>, Vec<f32>, Vec<usize>) {
    let mut values = x.to_vec();
    let is_outlier_col = prepare_avx512(&mut values, cols, threshold, input);
    let outlier_cols: Vec<usize> = (0..cols).filter(|&col| is_outlier_col[col]).collect();
    let mut ca = vec![0i8; values.len()];
    let mut sca = Vec::with_capacity(rows);
    for (row, codes) in values.chunks(cols).zip(ca.chunks_mut(cols)) {
        sca.push(row_codes(row, &outlier_cols, codes));
    }
    (ca, sca, outlier_cols)
}

/// `round_to_f16` on every value: f32 -> f16 (round to nearest even) -> f32 in hardware, which
/// is IEEE's conversion, as the software version is.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn round_to_f16_avx512(values: &mut [f32]) {
    use std::arch::x86_64::*;
    let mut chunks = values.chunks_exact_mut(16);
    for chunk in &mut chunks {
        // SAFETY: `chunk` holds exactly 16 f32s, one unaligned vector.
        unsafe {
            let v = _mm512_loadu_ps(chunk.as_ptr());
            let half = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
            _mm512_storeu_ps(chunk.as_mut_ptr(), _mm512_cvtph_ps(half));
        }
    }
    for value in chunks.into_remainder() {
        *value = crate::int8::round_to_f16(*value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::Isa;

    #[test]
    fn equals_the_reference_with_and_without_outliers() {
        let special = [
            0.0,
            -0.0,
            1e-8,
            -3e-8,
            6.0e-5,
            65504.0,
            65520.0,
            -70000.0,
            5.9604645e-8,
            2.9802322e-8,
            1.0009766,
            1.0014648,
            6.0,
            -6.0,
            5.9999,
            f32::INFINITY,
            f32::NAN,
            1e-40,
        ];
        let mut state = 7u32;
        let mut random = |scale: f32| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((state >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * scale
        };
        for &(rows, cols) in &[(1, 5), (3, 17), (8, 64), (5, 70), (2, 0), (2, 40)] {
            for case in 0..5 {
                let mut x: Vec<f32> =
                    (0..rows * cols).map(|_| random(if case == 1 { 8.0 } else { 2.0 })).collect();
                if case == 2 {
                    for (i, value) in x.iter_mut().enumerate() {
                        if i % 3 == 0 {
                            *value = special[i / 3 % special.len()];
                        }
                    }
                }
                if case == 3 && !x.is_empty() {
                    // A row of zeros.
                    x[..cols].iter_mut().for_each(|v| *v = 0.0);
                }
                if case == 4 && !x.is_empty() {
                    // A row of subnormals: 1 / absmax overflows, the scale is infinite.
                    let tiny = [1e-40, -3e-41, 2e-45, 0.0, -1e-40];
                    x[..cols].iter_mut().enumerate().for_each(|(i, v)| *v = tiny[i % tiny.len()]);
                }
                for threshold in [0.0, 6.0] {
                    for input in [QuantInput::AsIs, QuantInput::RoundToF16] {
                        let Ok(expected) = Int8Activation::quantize(&x, rows, cols, threshold, input) else {
                            for isa in Isa::available() {
                                assert!(quantize(&x, rows, cols, threshold, input, isa.checked()).is_err());
                            }
                            continue;
                        };
                        for isa in Isa::available() {
                            let got = quantize(&x, rows, cols, threshold, input, isa.checked()).unwrap();
                            assert_eq!(
                                got.ca(),
                                expected.ca(),
                                "{rows}x{cols} case {case} {threshold} {input:?} {isa:?}"
                            );
                            assert_eq!(got.outlier_cols(), expected.outlier_cols());
                            let bits = |v: &[f32]| v.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
                            assert_eq!(bits(got.sca()), bits(expected.sca()), "{rows}x{cols} case {case}");
                        }
                        #[cfg(target_arch = "x86_64")]
                        if Isa::available().contains(&Isa::Avx512) && rows * cols > 0 {
                            // SAFETY: the CPU has AVX-512F (checked above).
                            let got =
                                unsafe { quantize_offset_avx512(&x, rows, cols, threshold, input) }.unwrap();
                            let codes: Vec<i8> = got
                                .codes
                                .chunks(got.stride)
                                .flat_map(|row| row[..cols].iter().map(|&code| (code ^ 0x80) as i8))
                                .collect();
                            assert_eq!(
                                codes,
                                expected.ca(),
                                "offset codes, {rows}x{cols} case {case} {input:?}"
                            );
                            assert!(got
                                .codes
                                .chunks(got.stride)
                                .all(|row| row[cols..].iter().all(|&pad| pad == 0x80)));
                            assert_eq!(got.outlier_cols, expected.outlier_cols());
                            let bits = |v: &[f32]| v.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
                            assert_eq!(
                                bits(&got.sca),
                                bits(expected.sca()),
                                "offset sca, {rows}x{cols} case {case}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn hardware_f16_rounding_equals_the_software_one() {
        if !Isa::available().contains(&Isa::Avx512) {
            return;
        }
        // Every 16th f32 bit pattern below infinity, both signs.
        let mut values: Vec<f32> = (0..0x7f80_0000u32)
            .step_by(4093)
            .flat_map(|bits| [f32::from_bits(bits), -f32::from_bits(bits)])
            .collect();
        let expected: Vec<u32> = values.iter().map(|&v| crate::int8::round_to_f16(v).to_bits()).collect();
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512F (checked above).
        unsafe {
            round_to_f16_avx512(&mut values)
        };
        let got: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, expected);
    }
}
