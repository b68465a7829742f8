//! Fused int8 (LLM.int8 `CB`, `SCB`) kernels over weight rows: dot products, axpy updates, f32 decoding.
//!
//! Row `o` dequantizes to `cb[o, k] * scb[o] / 127` (`int8_vectorwise_dequant`). The dot and
//! axpy kernels fold the row scale into one factor (`scb * 7.874e-3`) applied once per row;
//! [`Int8Rows::decode_row`] keeps the reference's two roundings so panels equal it bit for bit.

use std::ops::Range;

use super::isa::{CheckedIsa, Isa};
use crate::int8::INT8_DEQUANT_SCALE;

/// Row-major int8 codes `[out_features, in_features]` with their per-row absmax.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Int8Rows<'a> {
    cb: &'a [i8],
    scb: &'a [f32],
    in_features: usize,
}

impl<'a> Int8Rows<'a> {
    pub(crate) fn new(cb: &'a [i8], scb: &'a [f32], in_features: usize) -> Self {
        Int8Rows { cb, scb, in_features }
    }

    fn row(&self, row: usize) -> (&'a [i8], f32) {
        (&self.cb[row * self.in_features..(row + 1) * self.in_features], self.scb[row])
    }

    /// `sum_k deq(W)[row, k] * x_t[k]` for each of `T` activation rows (natural order).
    pub(crate) fn dot_row<const T: usize>(&self, isa: CheckedIsa, row: usize, x: [&[f32]; T]) -> [f32; T] {
        let (codes, row_absmax) = self.row(row);
        assert!(x.iter().all(|x| x.len() == self.in_features), "int8 dot: activation length");
        let sums = match isa.isa() {
            // SAFETY: `CheckedIsa` guarantees AVX-512F; `codes` and every `x` hold `in_features`
            // values and the kernel reads no further.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::dot_row_avx512(codes, x) },
            // SAFETY: as above, with AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { x86::dot_row_avx2(codes, x) },
            _ => dot_row_scalar(codes, x),
        };
        sums.map(|sum| sum * (row_absmax * INT8_DEQUANT_SCALE))
    }

    /// `sum_k deq(W)[first + r, k] * x[k]` for the four rows `first..first + 4` and one activation
    /// row: with a single token the per-row kernel is bound by the latency of its two accumulator
    /// chains, so decoding uses a kernel with four.
    pub(crate) fn dot_rows4(&self, isa: CheckedIsa, first: usize, x: &[f32]) -> [f32; 4] {
        #[cfg(target_arch = "x86_64")]
        if isa.isa() == Isa::Avx512 {
            let rows: [(&[i8], f32); 4] = std::array::from_fn(|r| self.row(first + r));
            assert_eq!(x.len(), self.in_features, "int8 dot: activation length");
            // SAFETY: `CheckedIsa` guarantees AVX-512F; the four rows and `x` hold `in_features`
            // values each and the kernel reads no further.
            let sums = unsafe { x86::dot_rows4_avx512(rows.map(|(codes, _)| codes), x) };
            return std::array::from_fn(|r| sums[r] * (rows[r].1 * INT8_DEQUANT_SCALE));
        }
        std::array::from_fn(|r| self.dot_row(isa, first + r, [x])[0])
    }

    /// `out_t[c] += coefs[t] * deq(W)[row, cols.start + c]`; `out` holds the rows `out_stride` apart.
    pub(crate) fn axpy_row(
        &self,
        isa: CheckedIsa,
        row: usize,
        cols: Range<usize>,
        coefs: &[f32],
        out: &mut [f32],
        out_stride: usize,
    ) {
        let (codes, row_absmax) = self.row(row);
        let codes = &codes[cols];
        let factor = row_absmax * INT8_DEQUANT_SCALE;
        for (token, &coef) in coefs.iter().enumerate() {
            let target = &mut out[token * out_stride..token * out_stride + codes.len()];
            match isa.isa() {
                // SAFETY: `CheckedIsa` guarantees AVX-512F; the body only indexes checked slices.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { x86::axpy_avx512(codes, coef * factor, target) },
                // SAFETY: as above, with AVX2 and FMA.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { x86::axpy_avx2(codes, coef * factor, target) },
                _ => axpy(codes, coef * factor, target),
            }
        }
    }

    /// `out[c] = (cb * scb) * 7.874e-3`, bitwise equal to [`crate::Int8Weight::dequantize`].
    pub(crate) fn decode_row(&self, isa: CheckedIsa, row: usize, cols: Range<usize>, out: &mut [f32]) {
        let (codes, row_absmax) = self.row(row);
        let codes = &codes[cols];
        let target = &mut out[..codes.len()];
        match isa.isa() {
            // SAFETY: `CheckedIsa` guarantees AVX-512F; the body only indexes checked slices.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::decode_avx512(codes, row_absmax, target) },
            // SAFETY: as above, with AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { x86::decode_avx2(codes, row_absmax, target) },
            _ => decode(codes, row_absmax, target),
        }
    }
}

fn dot_row_scalar<const T: usize>(codes: &[i8], x: [&[f32]; T]) -> [f32; T] {
    std::array::from_fn(|token| codes.iter().zip(x[token]).map(|(&code, &x)| f32::from(code) * x).sum())
}

/// Plain loops that the compiler vectorises for whichever target features the caller enables.
#[inline(always)]
fn axpy(codes: &[i8], factor: f32, out: &mut [f32]) {
    for (out, &code) in out.iter_mut().zip(codes) {
        *out += factor * f32::from(code);
    }
}

#[inline(always)]
fn decode(codes: &[i8], row_absmax: f32, out: &mut [f32]) {
    for (out, &code) in out.iter_mut().zip(codes) {
        *out = (f32::from(code) * row_absmax) * INT8_DEQUANT_SCALE;
    }
}

// The AVX-512 intrinsics are stable since Rust 1.89, which this module (and so the crate) needs.
#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX-512 and AVX2 versions; callers check the CPU features and the slice extents.

    use std::arch::x86_64::*;

    use crate::fast::isa::horizontal_sum_avx2;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot_row_avx512<const T: usize>(codes: &[i8], x: [&[f32]; T]) -> [f32; T] {
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn weights(codes: &[i8], vector: usize) -> __m512 {
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                codes.as_ptr().add(vector * LANES).cast(),
            )))
        }
        let n_vectors = codes.len() / LANES;
        // Two accumulators per row hide the FMA latency. They are separate arrays indexed by the
        // unrolled token loop only, so they stay in registers (an index that varies with the
        // vector spills them to the stack and chains every FMA through a store).
        let mut even = [_mm512_setzero_ps(); T];
        let mut odd = [_mm512_setzero_ps(); T];
        let mut vector = 0;
        while vector + 2 <= n_vectors {
            let (w_even, w_odd) = (weights(codes, vector), weights(codes, vector + 1));
            for token in 0..T {
                let x_token = x[token].as_ptr().add(vector * LANES);
                even[token] = _mm512_fmadd_ps(w_even, _mm512_loadu_ps(x_token), even[token]);
                odd[token] = _mm512_fmadd_ps(w_odd, _mm512_loadu_ps(x_token.add(LANES)), odd[token]);
            }
            vector += 2;
        }
        if vector < n_vectors {
            let w_even = weights(codes, vector);
            for token in 0..T {
                let x_vector = _mm512_loadu_ps(x[token].as_ptr().add(vector * LANES));
                even[token] = _mm512_fmadd_ps(w_even, x_vector, even[token]);
            }
        }
        let tail = n_vectors * LANES;
        std::array::from_fn(|token| {
            let vector_sum = _mm512_reduce_add_ps(_mm512_add_ps(even[token], odd[token]));
            vector_sum + super::dot_row_scalar(&codes[tail..], [&x[token][tail..]])[0]
        })
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot_rows4_avx512(codes: [&[i8]; 4], x: &[f32]) -> [f32; 4] {
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn weights(codes: &[i8], vector: usize) -> __m512 {
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                codes.as_ptr().add(vector * LANES).cast(),
            )))
        }
        let n_vectors = x.len() / LANES;
        let tail = n_vectors * LANES;
        // Rows one after another, so the weights stream from one address range the prefetcher
        // follows (four rows read side by side stall on memory), each with four accumulator
        // chains so the FMA latency does not bound a single token's dot product.
        // The row eight ahead is fetched a cache line per pass (a pass reads one line): the
        // prefetcher alone left a decoding step short of the memory bandwidth.
        codes.map(|codes| {
            let mut acc = [_mm512_setzero_ps(); 4];
            let mut vector = 0;
            let ahead = codes.as_ptr().wrapping_add(8 * codes.len());
            while vector + 4 <= n_vectors {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(vector * LANES));
                for (lane, acc) in acc.iter_mut().enumerate() {
                    let x_vector = _mm512_loadu_ps(x.as_ptr().add((vector + lane) * LANES));
                    *acc = _mm512_fmadd_ps(weights(codes, vector + lane), x_vector, *acc);
                }
                vector += 4;
            }
            while vector < n_vectors {
                let x_vector = _mm512_loadu_ps(x.as_ptr().add(vector * LANES));
                acc[0] = _mm512_fmadd_ps(weights(codes, vector), x_vector, acc[0]);
                vector += 1;
            }
            let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
            _mm512_reduce_add_ps(sum) + super::dot_row_scalar(&codes[tail..], [&x[tail..]])[0]
        })
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_row_avx2<const T: usize>(codes: &[i8], x: [&[f32]; T]) -> [f32; T] {
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn weights(codes: &[i8], vector: usize) -> __m256 {
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
                codes.as_ptr().add(vector * LANES).cast(),
            )))
        }
        let n_vectors = codes.len() / LANES;
        // As in `dot_row_avx512`: two register-resident accumulators per row.
        let mut even = [_mm256_setzero_ps(); T];
        let mut odd = [_mm256_setzero_ps(); T];
        let mut vector = 0;
        while vector + 2 <= n_vectors {
            let (w_even, w_odd) = (weights(codes, vector), weights(codes, vector + 1));
            for token in 0..T {
                let x_token = x[token].as_ptr().add(vector * LANES);
                even[token] = _mm256_fmadd_ps(w_even, _mm256_loadu_ps(x_token), even[token]);
                odd[token] = _mm256_fmadd_ps(w_odd, _mm256_loadu_ps(x_token.add(LANES)), odd[token]);
            }
            vector += 2;
        }
        if vector < n_vectors {
            let w_even = weights(codes, vector);
            for token in 0..T {
                let x_vector = _mm256_loadu_ps(x[token].as_ptr().add(vector * LANES));
                even[token] = _mm256_fmadd_ps(w_even, x_vector, even[token]);
            }
        }
        let tail = n_vectors * LANES;
        std::array::from_fn(|token| {
            let vector_sum = horizontal_sum_avx2(_mm256_add_ps(even[token], odd[token]));
            vector_sum + super::dot_row_scalar(&codes[tail..], [&x[token][tail..]])[0]
        })
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn axpy_avx512(codes: &[i8], factor: f32, out: &mut [f32]) {
        super::axpy(codes, factor, out);
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn axpy_avx2(codes: &[i8], factor: f32, out: &mut [f32]) {
        super::axpy(codes, factor, out);
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn decode_avx512(codes: &[i8], row_absmax: f32, out: &mut [f32]) {
        super::decode(codes, row_absmax, out);
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn decode_avx2(codes: &[i8], row_absmax: f32, out: &mut [f32]) {
        super::decode(codes, row_absmax, out);
    }
}
