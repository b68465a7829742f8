//! Fused NF4/FP4 kernels over whole weight rows: dot products, axpy updates and f32 panel decoding.
//!
//! They need rows that start on a block (and so on a byte): `in_features % blocksize == 0`, which
//! also makes every row a whole number of 32-element chunks (the smallest block is 32). A chunk is
//! 16 bytes; byte `j` holds element `2j` (high nibble) and `2j + 1` (low nibble). The SIMD code
//! decodes the high and the low nibbles into two separate vectors, so the dot and axpy kernels take
//! their activations in *split* order: per chunk the 16 even elements, then the 16 odd ones
//! ([`split_chunks`], [`join_chunks`]). Panels come out in natural order.

use std::ops::Range;
use std::sync::OnceLock;

use super::isa::{CheckedIsa, Isa};
use crate::double_quant::{DoubleQuantAbsmax, NESTED_BLOCKSIZE};
use crate::dynamic_map::signed_dynamic_map;
use crate::four_bit::BlockScales;

/// Elements per chunk: 16 packed bytes.
pub(crate) const CHUNK: usize = 32;

/// The block absmax of a 4-bit weight as stored. Double-quantized ones are decoded a row at a time
/// where a kernel needs them, inside its thread: decoding all of them on every call (1/64 of the
/// weight, one thread, a fresh buffer) cost NF4 decoding as much as its products.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scales<'a> {
    Plain(&'a [f32]),
    Double { codes: &'a [u8], nested_absmax: &'a [f32], offset: f32, map: &'a [f32; 256] },
}

impl<'a> Scales<'a> {
    pub(crate) fn new(scales: &'a BlockScales) -> Self {
        static MAP: OnceLock<[f32; 256]> = OnceLock::new();
        match scales {
            BlockScales::Plain(absmax) => Scales::Plain(absmax),
            BlockScales::Double(double) => Scales::double(double, MAP.get_or_init(signed_dynamic_map)),
        }
    }

    fn double(double: &'a DoubleQuantAbsmax, map: &'a [f32; 256]) -> Self {
        Scales::Double {
            codes: double.codes(),
            nested_absmax: double.nested_absmax(),
            offset: double.offset(),
            map,
        }
    }

    fn len(&self) -> usize {
        match self {
            Scales::Plain(absmax) => absmax.len(),
            Scales::Double { codes, .. } => codes.len(),
        }
    }

    /// Calls `f` with the f32 absmax of `blocks`, computed as [`DoubleQuantAbsmax::decompress`]
    /// does (`code[q] * nested_absmax + offset`, two roundings) when double-quantized.
    fn with_blocks<R>(&self, blocks: Range<usize>, f: impl FnOnce(&[f32]) -> R) -> R {
        match *self {
            Scales::Plain(absmax) => f(&absmax[blocks]),
            Scales::Double { codes, nested_absmax, offset, map } => {
                let mut stack = [0.0f32; 128];
                let mut heap = Vec::new();
                let out = if blocks.len() <= stack.len() {
                    &mut stack[..blocks.len()]
                } else {
                    heap.resize(blocks.len(), 0.0);
                    &mut heap[..]
                };
                for (out, block) in out.iter_mut().zip(blocks) {
                    *out = map[usize::from(codes[block])] * nested_absmax[block / NESTED_BLOCKSIZE] + offset;
                }
                f(out)
            }
        }
    }
}

/// Row-aligned packed 4-bit codes with their block scales.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FourBitRows<'a> {
    codes: &'a [u8],
    scales: Scales<'a>,
    lut: &'a [f32; 16],
    blocksize: usize,
    in_features: usize,
}

impl<'a> FourBitRows<'a> {
    /// `None` when rows do not start on a block or the buffers do not hold `out_features` rows.
    pub(crate) fn new(
        codes: &'a [u8],
        scales: Scales<'a>,
        lut: &'a [f32; 16],
        blocksize: usize,
        (out_features, in_features): (usize, usize),
    ) -> Option<Self> {
        let aligned = blocksize >= CHUNK && blocksize.is_multiple_of(CHUNK) && in_features % blocksize == 0;
        let fits = codes.len() >= out_features * in_features / 2
            && scales.len() >= out_features * in_features / blocksize.max(1);
        (aligned && fits).then_some(FourBitRows { codes, scales, lut, blocksize, in_features })
    }

    /// Calls `f` with row `row`'s packed codes and its blocks' f32 absmax.
    fn with_row<R>(&self, row: usize, f: impl FnOnce(&'a [u8], &[f32]) -> R) -> R {
        let bytes_per_row = self.in_features / 2;
        let blocks_per_row = self.in_features / self.blocksize;
        let codes = &self.codes[row * bytes_per_row..(row + 1) * bytes_per_row];
        self.scales.with_blocks(row * blocks_per_row..(row + 1) * blocks_per_row, |absmax| f(codes, absmax))
    }

    fn check_cols(&self, cols: &Range<usize>) {
        assert!(
            cols.start.is_multiple_of(CHUNK)
                && cols.end.is_multiple_of(CHUNK)
                && cols.end <= self.in_features,
            "4-bit column range {cols:?} is not chunk-aligned within {} features",
            self.in_features
        );
    }

    /// `sum_k deq(W)[row, k] * x_t[k]` for each of `T` activation rows given in split order.
    pub(crate) fn dot_row<const T: usize>(&self, isa: CheckedIsa, row: usize, x: [&[f32]; T]) -> [f32; T] {
        assert!(x.iter().all(|x| x.len() == self.in_features), "4-bit dot: activation length");
        self.with_row(row, |codes, absmax| match isa.isa() {
            // SAFETY: `CheckedIsa` guarantees the CPU has AVX-512F; `row` gave `in_features / 2`
            // bytes and `in_features / blocksize` scales and every `x` holds `in_features` values,
            // which are exactly the extents the kernel reads.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::dot_row_avx512(codes, absmax, self.lut, self.blocksize, x) },
            // SAFETY: as above, with AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { x86::dot_row_avx2(codes, absmax, self.lut, self.blocksize, x) },
            _ => dot_row_scalar(codes, absmax, self.lut, self.blocksize, x),
        })
    }

    /// [`FourBitRows::dot_row`] for the four rows `first..first + 4` and one activation row (in
    /// split order), bitwise equal to it: one token of decoding pays the per-row work (the block
    /// scales, the loop set-up, the final reduction) once per four rows and interleaves their
    /// independent accumulators. Other instruction sets run `dot_row` four times.
    pub(crate) fn dot_rows4(&self, isa: CheckedIsa, first: usize, x: &[f32]) -> [f32; 4] {
        #[cfg(target_arch = "x86_64")]
        if isa.isa() == Isa::Avx512 {
            assert_eq!(x.len(), self.in_features, "4-bit dot: activation length");
            let (bytes_per_row, blocks_per_row) = (self.in_features / 2, self.in_features / self.blocksize);
            // Consecutive rows are consecutive codes and consecutive blocks.
            let codes = &self.codes[first * bytes_per_row..(first + 4) * bytes_per_row];
            return self.scales.with_blocks(first * blocks_per_row..(first + 4) * blocks_per_row, |absmax| {
                // SAFETY: `CheckedIsa` guarantees AVX-512F; `codes` holds four rows of
                // `in_features / 2` bytes, `absmax` their `in_features / blocksize` scales each
                // and `x` `in_features` values, which is what the kernel reads.
                unsafe { x86::dot_rows4_avx512(codes, absmax, self.lut, self.blocksize, x) }
            });
        }
        std::array::from_fn(|r| self.dot_row(isa, first + r, [x])[0])
    }

    /// `out_t[c] += coefs[t] * deq(W)[row, cols.start + c]` for every activation row `t`; `out`
    /// holds the rows `out_stride` apart, each in split order.
    pub(crate) fn axpy_row(
        &self,
        isa: CheckedIsa,
        row: usize,
        cols: Range<usize>,
        coefs: &[f32],
        out: &mut [f32],
        out_stride: usize,
    ) {
        self.check_cols(&cols);
        let needed = coefs.len().saturating_sub(1) * out_stride + cols.len();
        assert!(out_stride >= cols.len() && out.len() >= needed, "4-bit axpy: output extent");
        self.with_row(row, |codes, absmax| match isa.isa() {
            // SAFETY: AVX-512F checked by `CheckedIsa`; `cols` is chunk-aligned inside the row (so
            // bytes `cols / 2` and blocks `cols / blocksize` exist) and `out` holds `coefs.len()`
            // rows of `cols.len()` values `out_stride` apart, as asserted above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe {
                x86::axpy_row_avx512(codes, absmax, self.lut, self.blocksize, cols, coefs, out, out_stride)
            },
            // SAFETY: as above, with AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe {
                x86::axpy_row_avx2(codes, absmax, self.lut, self.blocksize, cols, coefs, out, out_stride)
            },
            _ => axpy_row_scalar(codes, absmax, self.lut, self.blocksize, cols, coefs, out, out_stride),
        })
    }

    /// `out[c] = deq(W)[row, cols.start + c]` in natural order, bitwise equal to
    /// [`crate::FourBitTensor::dequantize`] (one rounding: `code * absmax`).
    pub(crate) fn decode_row(&self, isa: CheckedIsa, row: usize, cols: Range<usize>, out: &mut [f32]) {
        self.check_cols(&cols);
        assert!(out.len() >= cols.len(), "4-bit decode: output extent");
        self.with_row(row, |codes, absmax| match isa.isa() {
            // SAFETY: AVX-512F checked by `CheckedIsa`; chunk-aligned `cols` inside the row and an
            // `out` of at least `cols.len()` values, as asserted above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe {
                x86::decode_row_avx512(codes, absmax, self.lut, self.blocksize, cols, out)
            },
            // SAFETY: as above, with AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { x86::decode_row_avx2(codes, absmax, self.lut, self.blocksize, cols, out) },
            _ => decode_row_scalar(codes, absmax, self.lut, self.blocksize, cols, out),
        })
    }
}

/// Natural order -> split order (per chunk: even elements, then odd); `x.len()` a multiple of 32.
pub(crate) fn split_chunks(x: &[f32], out: &mut [f32]) {
    for (chunk, split) in x.chunks_exact(CHUNK).zip(out.chunks_exact_mut(CHUNK)) {
        for pair in 0..CHUNK / 2 {
            split[pair] = chunk[2 * pair];
            split[CHUNK / 2 + pair] = chunk[2 * pair + 1];
        }
    }
}

/// Split order -> natural order, the inverse of [`split_chunks`].
pub(crate) fn join_chunks(split: &[f32], out: &mut [f32]) {
    for (split, chunk) in split.chunks_exact(CHUNK).zip(out.chunks_exact_mut(CHUNK)) {
        for pair in 0..CHUNK / 2 {
            chunk[2 * pair] = split[pair];
            chunk[2 * pair + 1] = split[CHUNK / 2 + pair];
        }
    }
}

fn dot_row_scalar<const T: usize>(
    codes: &[u8],
    absmax: &[f32],
    lut: &[f32; 16],
    blocksize: usize,
    x: [&[f32]; T],
) -> [f32; T] {
    let mut total = [0.0f32; T];
    let bytes_per_block = blocksize / 2;
    for (block_idx, (block_codes, &scale)) in codes.chunks_exact(bytes_per_block).zip(absmax).enumerate() {
        let mut block_sum = [0.0f32; T];
        for (chunk_in_block, chunk_codes) in block_codes.chunks_exact(CHUNK / 2).enumerate() {
            let base = block_idx * blocksize + chunk_in_block * CHUNK;
            for (pair, &byte) in chunk_codes.iter().enumerate() {
                let (high, low) = (lut[usize::from(byte >> 4)], lut[usize::from(byte & 0x0f)]);
                for (sum, x) in block_sum.iter_mut().zip(&x) {
                    *sum += high * x[base + pair] + low * x[base + CHUNK / 2 + pair];
                }
            }
        }
        for (total, sum) in total.iter_mut().zip(block_sum) {
            *total += sum * scale;
        }
    }
    total
}

#[allow(clippy::too_many_arguments)] // the row, its format and the output layout: all needed
fn axpy_row_scalar(
    codes: &[u8],
    absmax: &[f32],
    lut: &[f32; 16],
    blocksize: usize,
    cols: Range<usize>,
    coefs: &[f32],
    out: &mut [f32],
    out_stride: usize,
) {
    for (chunk_idx, col) in cols.step_by(CHUNK).enumerate() {
        let scale = absmax[col / blocksize];
        let chunk_codes = &codes[col / 2..col / 2 + CHUNK / 2];
        for (token, &coef) in coefs.iter().enumerate() {
            let factor = coef * scale;
            let base = token * out_stride + chunk_idx * CHUNK;
            let out_chunk = &mut out[base..base + CHUNK];
            for (pair, &byte) in chunk_codes.iter().enumerate() {
                out_chunk[pair] += factor * lut[usize::from(byte >> 4)];
                out_chunk[CHUNK / 2 + pair] += factor * lut[usize::from(byte & 0x0f)];
            }
        }
    }
}

fn decode_row_scalar(
    codes: &[u8],
    absmax: &[f32],
    lut: &[f32; 16],
    blocksize: usize,
    cols: Range<usize>,
    out: &mut [f32],
) {
    for (pair_out, pair_idx) in out.chunks_exact_mut(2).zip(cols.start / 2..cols.end / 2) {
        let scale = absmax[(pair_idx * 2) / blocksize];
        let byte = codes[pair_idx];
        pair_out[0] = lut[usize::from(byte >> 4)] * scale;
        pair_out[1] = lut[usize::from(byte & 0x0f)] * scale;
    }
}

// The AVX-512 intrinsics are stable since Rust 1.89, which this module (and so the crate) needs.
#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX-512 and AVX2 versions; callers check the CPU features and the slice extents.

    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::CHUNK;
    use crate::fast::isa::horizontal_sum_avx2;

    /// The high and the low nibbles of 16 bytes at `bytes` as code values (even, odd elements).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn decode_chunk_avx512(bytes: *const u8, lut: __m512) -> (__m512, __m512) {
        let bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128(bytes.cast()));
        let high = _mm512_srli_epi32::<4>(bytes);
        let low = _mm512_and_si512(bytes, _mm512_set1_epi32(0x0f));
        (_mm512_permutexvar_ps(high, lut), _mm512_permutexvar_ps(low, lut))
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot_row_avx512<const T: usize>(
        codes: &[u8],
        absmax: &[f32],
        lut: &[f32; 16],
        blocksize: usize,
        x: [&[f32]; T],
    ) -> [f32; T] {
        let lut = _mm512_loadu_ps(lut.as_ptr());
        let chunks_per_block = blocksize / CHUNK;
        let mut total = [_mm512_setzero_ps(); T];
        for (block_idx, &scale) in absmax.iter().enumerate() {
            let mut even = [_mm512_setzero_ps(); T];
            let mut odd = [_mm512_setzero_ps(); T];
            for chunk in block_idx * chunks_per_block..(block_idx + 1) * chunks_per_block {
                let (even_codes, odd_codes) = decode_chunk_avx512(codes.as_ptr().add(chunk * CHUNK / 2), lut);
                for token in 0..T {
                    let x_chunk = x[token].as_ptr().add(chunk * CHUNK);
                    even[token] = _mm512_fmadd_ps(even_codes, _mm512_loadu_ps(x_chunk), even[token]);
                    odd[token] = _mm512_fmadd_ps(odd_codes, _mm512_loadu_ps(x_chunk.add(16)), odd[token]);
                }
            }
            let scale = _mm512_set1_ps(scale);
            for token in 0..T {
                total[token] = _mm512_fmadd_ps(_mm512_add_ps(even[token], odd[token]), scale, total[token]);
            }
        }
        std::array::from_fn(|token| _mm512_reduce_add_ps(total[token]))
    }

    /// [`dot_row_avx512`] with `T = 1` for four consecutive rows (`codes` and `absmax` hold the
    /// four rows one after another), the same operations in the same order per row.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot_rows4_avx512(
        codes: &[u8],
        absmax: &[f32],
        lut: &[f32; 16],
        blocksize: usize,
        x: &[f32],
    ) -> [f32; 4] {
        let lut = _mm512_loadu_ps(lut.as_ptr());
        let chunks_per_block = blocksize / CHUNK;
        let blocks_per_row = absmax.len() / 4;
        let row_bytes = codes.len() / 4;
        // The codes of the four rows after the next four (a decoding step streams its weights
        // from memory; the hardware prefetcher alone left it well short of the bandwidth).
        let ahead = codes.as_ptr().wrapping_add(2 * codes.len());
        for line in (0..codes.len()).step_by(64) {
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line).cast::<i8>());
        }
        let mut total = [_mm512_setzero_ps(); 4];
        for block_idx in 0..blocks_per_row {
            let mut even = [_mm512_setzero_ps(); 4];
            let mut odd = [_mm512_setzero_ps(); 4];
            for chunk in block_idx * chunks_per_block..(block_idx + 1) * chunks_per_block {
                let x_chunk = x.as_ptr().add(chunk * CHUNK);
                let (x_even, x_odd) = (_mm512_loadu_ps(x_chunk), _mm512_loadu_ps(x_chunk.add(16)));
                for row in 0..4 {
                    let (even_codes, odd_codes) =
                        decode_chunk_avx512(codes.as_ptr().add(row * row_bytes + chunk * CHUNK / 2), lut);
                    even[row] = _mm512_fmadd_ps(even_codes, x_even, even[row]);
                    odd[row] = _mm512_fmadd_ps(odd_codes, x_odd, odd[row]);
                }
            }
            for row in 0..4 {
                let scale = _mm512_set1_ps(absmax[row * blocks_per_row + block_idx]);
                total[row] = _mm512_fmadd_ps(_mm512_add_ps(even[row], odd[row]), scale, total[row]);
            }
        }
        total.map(|row_total| _mm512_reduce_add_ps(row_total))
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn axpy_row_avx512(
        codes: &[u8],
        absmax: &[f32],
        lut: &[f32; 16],
        blocksize: usize,
        cols: Range<usize>,
        coefs: &[f32],
        out: &mut [f32],
        out_stride: usize,
    ) {
        let lut = _mm512_loadu_ps(lut.as_ptr());
        for (chunk_idx, col) in cols.step_by(CHUNK).enumerate() {
            let (even_codes, odd_codes) = decode_chunk_avx512(codes.as_ptr().add(col / 2), lut);
            let scale = absmax[col / blocksize];
            for (token, &coef) in coefs.iter().enumerate() {
                let factor = _mm512_set1_ps(coef * scale);
                let target = out.as_mut_ptr().add(token * out_stride + chunk_idx * CHUNK);
                _mm512_storeu_ps(target, _mm512_fmadd_ps(even_codes, factor, _mm512_loadu_ps(target)));
                let target = target.add(16);
                _mm512_storeu_ps(target, _mm512_fmadd_ps(odd_codes, factor, _mm512_loadu_ps(target)));
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn decode_row_avx512(
        codes: &[u8],
        absmax: &[f32],
        lut: &[f32; 16],
        blocksize: usize,
        cols: Range<usize>,
        out: &mut [f32],
    ) {
        let lut = _mm512_loadu_ps(lut.as_ptr());
        // Interleave even and odd lanes back: element 2j from `even[j]`, 2j + 1 from `odd[j]`.
        let first_half = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let second_half = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        for (chunk_idx, col) in cols.step_by(CHUNK).enumerate() {
            let (even_codes, odd_codes) = decode_chunk_avx512(codes.as_ptr().add(col / 2), lut);
            let scale = _mm512_set1_ps(absmax[col / blocksize]);
            let (even, odd) = (_mm512_mul_ps(even_codes, scale), _mm512_mul_ps(odd_codes, scale));
            let target = out.as_mut_ptr().add(chunk_idx * CHUNK);
            _mm512_storeu_ps(target, _mm512_permutex2var_ps(even, first_half, odd));
            _mm512_storeu_ps(target.add(16), _mm512_permutex2var_ps(even, second_half, odd));
        }
    }

    /// Code values of 8 indices (0..15) with two 8-entry table halves and a blend on bit 3.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn lookup_avx2(idx: __m256i, lut_low: __m256, lut_high: __m256) -> __m256 {
        let from_high_half = _mm256_castsi256_ps(_mm256_slli_epi32::<28>(idx));
        _mm256_blendv_ps(
            _mm256_permutevar8x32_ps(lut_low, idx),
            _mm256_permutevar8x32_ps(lut_high, idx),
            from_high_half,
        )
    }

    /// The high and low nibbles of 8 bytes at `bytes` as code values (even, odd elements).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn decode_half_avx2(bytes: *const u8, lut_low: __m256, lut_high: __m256) -> (__m256, __m256) {
        let bytes = _mm256_cvtepu8_epi32(_mm_loadl_epi64(bytes.cast()));
        let high = _mm256_srli_epi32::<4>(bytes);
        let low = _mm256_and_si256(bytes, _mm256_set1_epi32(0x0f));
        (lookup_avx2(high, lut_low, lut_high), lookup_avx2(low, lut_low, lut_high))
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_row_avx2<const T: usize>(
        codes: &[u8],
        absmax: &[f32],
        lut: &[f32; 16],
        blocksize: usize,
        x: [&[f32]; T],
    ) -> [f32; T] {
        let (lut_low, lut_high) = (_mm256_loadu_ps(lut.as_ptr()), _mm256_loadu_ps(lut.as_ptr().add(8)));
        let chunks_per_block = blocksize / CHUNK;
        let mut total = [_mm256_setzero_ps(); T];
        for (block_idx, &scale) in absmax.iter().enumerate() {
            let mut even = [_mm256_setzero_ps(); T];
            let mut odd = [_mm256_setzero_ps(); T];
            for chunk in block_idx * chunks_per_block..(block_idx + 1) * chunks_per_block {
                for half in 0..2 {
                    let bytes = codes.as_ptr().add(chunk * CHUNK / 2 + half * 8);
                    let (even_codes, odd_codes) = decode_half_avx2(bytes, lut_low, lut_high);
                    for token in 0..T {
                        let x_chunk = x[token].as_ptr().add(chunk * CHUNK + half * 8);
                        even[token] = _mm256_fmadd_ps(even_codes, _mm256_loadu_ps(x_chunk), even[token]);
                        odd[token] = _mm256_fmadd_ps(odd_codes, _mm256_loadu_ps(x_chunk.add(16)), odd[token]);
                    }
                }
            }
            let scale = _mm256_set1_ps(scale);
            for token in 0..T {
                total[token] = _mm256_fmadd_ps(_mm256_add_ps(even[token], odd[token]), scale, total[token]);
            }
        }
        std::array::from_fn(|token| horizontal_sum_avx2(total[token]))
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn axpy_row_avx2(
        codes: &[u8],
        absmax: &[f32],
        lut: &[f32; 16],
        blocksize: usize,
        cols: Range<usize>,
        coefs: &[f32],
        out: &mut [f32],
        out_stride: usize,
    ) {
        let (lut_low, lut_high) = (_mm256_loadu_ps(lut.as_ptr()), _mm256_loadu_ps(lut.as_ptr().add(8)));
        for (chunk_idx, col) in cols.step_by(CHUNK).enumerate() {
            let scale = absmax[col / blocksize];
            for half in 0..2 {
                let bytes = codes.as_ptr().add(col / 2 + half * 8);
                let (even_codes, odd_codes) = decode_half_avx2(bytes, lut_low, lut_high);
                for (token, &coef) in coefs.iter().enumerate() {
                    let factor = _mm256_set1_ps(coef * scale);
                    let target = out.as_mut_ptr().add(token * out_stride + chunk_idx * CHUNK + half * 8);
                    _mm256_storeu_ps(target, _mm256_fmadd_ps(even_codes, factor, _mm256_loadu_ps(target)));
                    let target = target.add(16);
                    _mm256_storeu_ps(target, _mm256_fmadd_ps(odd_codes, factor, _mm256_loadu_ps(target)));
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn decode_row_avx2(
        codes: &[u8],
        absmax: &[f32],
        lut: &[f32; 16],
        blocksize: usize,
        cols: Range<usize>,
        out: &mut [f32],
    ) {
        let (lut_low, lut_high) = (_mm256_loadu_ps(lut.as_ptr()), _mm256_loadu_ps(lut.as_ptr().add(8)));
        for (chunk_idx, col) in cols.step_by(CHUNK).enumerate() {
            let scale = _mm256_set1_ps(absmax[col / blocksize]);
            for half in 0..2 {
                let bytes = codes.as_ptr().add(col / 2 + half * 8);
                let (even_codes, odd_codes) = decode_half_avx2(bytes, lut_low, lut_high);
                let (even, odd) = (_mm256_mul_ps(even_codes, scale), _mm256_mul_ps(odd_codes, scale));
                // unpack interleaves within 128-bit lanes; permute2f128 puts the lanes in order.
                let (low, high) = (_mm256_unpacklo_ps(even, odd), _mm256_unpackhi_ps(even, odd));
                let target = out.as_mut_ptr().add(chunk_idx * CHUNK + half * 16);
                _mm256_storeu_ps(target, _mm256_permute2f128_ps::<0x20>(low, high));
                _mm256_storeu_ps(target.add(8), _mm256_permute2f128_ps::<0x31>(low, high));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::four_bit::{FourBitConfig, FourBitTensor};

    #[test]
    fn four_rows_at_once_equal_one_row_at_a_time_bitwise() {
        let (out_features, in_features) = (12, 576);
        let dense: Vec<f32> =
            (0..out_features * in_features).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.2).collect();
        for config in
            [FourBitConfig::default(), FourBitConfig { double_quant: false, ..FourBitConfig::default() }]
        {
            let tensor =
                FourBitTensor::quantize(&dense, &[out_features, in_features], &config).expect("quantize");
            let rows = FourBitRows::new(
                tensor.codes(),
                Scales::new(tensor.scales()),
                tensor.format().code(),
                tensor.blocksize(),
                (out_features, in_features),
            )
            .expect("aligned rows");
            let x: Vec<f32> = (0..in_features).map(|i| ((i * 31 % 97) as f32 - 48.0) / 50.0).collect();
            for isa in crate::fast::Isa::available() {
                let isa = isa.checked();
                for first in [0, 4, 8] {
                    let four = rows.dot_rows4(isa, first, &x);
                    let one: [f32; 4] = std::array::from_fn(|r| rows.dot_row(isa, first + r, [&x])[0]);
                    assert_eq!(
                        four.map(f32::to_bits),
                        one.map(f32::to_bits),
                        "rows {first}.., {:?}",
                        isa.isa()
                    );
                }
            }
        }
    }
}
