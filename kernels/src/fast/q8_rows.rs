//! Fused Q8_0 kernels over weight rows: dot products, axpy updates, f32 decoding.
//!
//! Every kernel forms the weight as `q * d`, the product the dequantization rounds once, so it
//! multiplies the activations by exactly the values of [`crate::Q8_0Weight::dequantize`].

use std::ops::Range;

use super::isa::{CheckedIsa, Isa};
use crate::q8_0::Q8_0_BLOCK;

/// Row-major Q8_0 codes `[out_features, in_features]` with one scale per block of 32.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Q8Rows<'a> {
    codes: &'a [i8],
    scales: &'a [f32],
    in_features: usize,
}

impl<'a> Q8Rows<'a> {
    pub(crate) fn new(codes: &'a [i8], scales: &'a [f32], in_features: usize) -> Self {
        Q8Rows { codes, scales, in_features }
    }

    fn row(&self, row: usize) -> (&'a [i8], &'a [f32]) {
        let blocks = self.in_features / Q8_0_BLOCK;
        (
            &self.codes[row * self.in_features..(row + 1) * self.in_features],
            &self.scales[row * blocks..(row + 1) * blocks],
        )
    }

    /// `sum_k deq(W)[row, k] * x_t[k]` for each of `T` activation rows.
    pub(crate) fn dot_row<const T: usize>(&self, isa: CheckedIsa, row: usize, x: [&[f32]; T]) -> [f32; T] {
        let (codes, scales) = self.row(row);
        assert!(x.iter().all(|x| x.len() == self.in_features), "q8_0 dot: activation length");
        match isa.isa() {
            // SAFETY: `CheckedIsa` guarantees AVX-512F; `codes` and every `x` hold `in_features`
            // values (whole blocks), `scales` one per block, and the kernel reads no further.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::dot_row_avx512(codes, scales, x) },
            _ => dot_row_scalar(codes, scales, x),
        }
    }

    /// `out_t[c] += coefs[t] * deq(W)[row, cols.start + c]`; `out` holds the rows `out_stride` apart.
    pub(crate) fn axpy_row(
        &self,
        row: usize,
        cols: Range<usize>,
        coefs: &[f32],
        out: &mut [f32],
        out_stride: usize,
    ) {
        let (codes, scales) = self.row(row);
        for (token, &coef) in coefs.iter().enumerate() {
            let target = &mut out[token * out_stride..token * out_stride + cols.len()];
            for (out, col) in target.iter_mut().zip(cols.clone()) {
                *out += coef * (f32::from(codes[col]) * scales[col / Q8_0_BLOCK]);
            }
        }
    }

    /// `out[c] = q * d`, bitwise equal to [`crate::Q8_0Weight::dequantize`].
    pub(crate) fn decode_row(&self, row: usize, cols: Range<usize>, out: &mut [f32]) {
        let (codes, scales) = self.row(row);
        for (out, col) in out.iter_mut().zip(cols) {
            *out = f32::from(codes[col]) * scales[col / Q8_0_BLOCK];
        }
    }
}

fn dot_row_scalar<const T: usize>(codes: &[i8], scales: &[f32], x: [&[f32]; T]) -> [f32; T] {
    std::array::from_fn(|token| {
        codes
            .iter()
            .enumerate()
            .map(|(col, &code)| (f32::from(code) * scales[col / Q8_0_BLOCK]) * x[token][col])
            .sum()
    })
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX-512 version; callers check the CPU features and the slice extents.

    use std::arch::x86_64::*;

    use crate::q8_0::Q8_0_BLOCK;

    /// The 16 weights `q * d` of half `half` (0 or 1) of block `block`.
    #[inline(always)]
    unsafe fn weights(codes: &[i8], scales: &[f32], block: usize, half: usize) -> __m512 {
        let codes = _mm_loadu_si128(codes.as_ptr().add(block * Q8_0_BLOCK + half * 16).cast());
        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(codes)), _mm512_set1_ps(scales[block]))
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot_row_avx512<const T: usize>(
        codes: &[i8],
        scales: &[f32],
        x: [&[f32]; T],
    ) -> [f32; T] {
        let n_blocks = scales.len();
        // Four accumulator chains per activation row (two blocks per pass), so neither one
        // token's FMA latency nor its horizontal sum bounds the loop.
        let mut acc = [[_mm512_setzero_ps(); 4]; T];
        let mut block = 0;
        // Rows are read one after another from memory (a vocabulary's head outgrows the cache):
        // the row four ahead, one cache line per pass, keeps the loads ahead of the FMAs.
        let ahead = codes.as_ptr().wrapping_add(4 * codes.len());
        while block + 2 <= n_blocks {
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(block * Q8_0_BLOCK).cast());
            let w = [
                weights(codes, scales, block, 0),
                weights(codes, scales, block, 1),
                weights(codes, scales, block + 1, 0),
                weights(codes, scales, block + 1, 1),
            ];
            for token in 0..T {
                let x_block = x[token].as_ptr().add(block * Q8_0_BLOCK);
                for (chain, &w) in w.iter().enumerate() {
                    let x_vector = _mm512_loadu_ps(x_block.add(chain * 16));
                    acc[token][chain] = _mm512_fmadd_ps(w, x_vector, acc[token][chain]);
                }
            }
            block += 2;
        }
        if block < n_blocks {
            let w = [weights(codes, scales, block, 0), weights(codes, scales, block, 1)];
            for token in 0..T {
                let x_block = x[token].as_ptr().add(block * Q8_0_BLOCK);
                for (chain, &w) in w.iter().enumerate() {
                    let x_vector = _mm512_loadu_ps(x_block.add(chain * 16));
                    acc[token][chain] = _mm512_fmadd_ps(w, x_vector, acc[token][chain]);
                }
            }
        }
        std::array::from_fn(|token| {
            let [a, b, c, d] = acc[token];
            _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)))
        })
    }
}
