//! LLM.int8's integer product `CA · CBᵀ` (int8 activations times int8 weights, int32 sums): AVX-512
//! VNNI where the CPU has it, a blocked portable loop elsewhere. Integer sums are exact, so every
//! path equals [`crate::int8_matmul::int8_matmul_i32`] bit for bit.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes, four adjacent pairs into each int32 lane.
//! - Many rows ([`matmul_i32`], [`matmul_dequantized_vnni`]): the activations are offset by 128
//!   into `u8` (`a + 128`), and `128 · Σ_k CB[o, k]` is subtracted from each output column
//!   afterwards. The weight is packed per call into panels of 64 columns: for every 4 inputs, 64
//!   columns × 4 bytes (one column's 4 bytes per int32 lane), so one step of the micro-kernel
//!   loads four vectors of 16 columns and broadcasts 4 activation bytes per row; a micro-kernel
//!   keeps 6 rows × 64 columns of int32 sums in 24 registers, and the dequantization
//!   `f32(acc) * (sca * scb) * 6.200124e-05 (+ bias)` can be fused into its store.
//! - Fewer than [`FEW_ROWS`] rows ([`matmul_dequantized_few_rows`], decoding): no packing; the
//!   weight is read row by row with the activation's signs folded into it.
//! - [`add_outlier_term_avx512`]: the f32 outlier columns, 16 outputs per vector.

use rayon::prelude::*;

/// Beyond this many inputs `(255 · 127) · in_features` could leave int32, and the portable loop
/// (with i64 sums, as the reference) takes over.
pub(crate) const MAX_VNNI_IN_FEATURES: usize = 65_536;
/// Rows per micro-kernel call.
const MR: usize = 6;
/// Columns per packed panel (four vectors of 16 int32 lanes).
const PANEL_COLS: usize = 64;
/// Rows per parallel task; the packed weight is read once per task.
const ROWS_PER_TASK: usize = 16 * MR;

/// Whether this CPU runs the VNNI kernel.
pub(crate) fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `ca [rows, in] · cbᵀ` with `cb [out, in]`, row-major `[rows, out]` int32. `use_vnni` is only
/// honoured when [`vnni_available`] and `in_features <= MAX_VNNI_IN_FEATURES`.
pub(crate) fn matmul_i32(
    ca: &[i8],
    rows: usize,
    cb: &[i8],
    out_features: usize,
    in_features: usize,
    use_vnni: bool,
) -> Vec<i32> {
    debug_assert_eq!(ca.len(), rows * in_features);
    debug_assert_eq!(cb.len(), out_features * in_features);
    let mut out = vec![0i32; rows * out_features];
    if rows == 0 || out_features == 0 {
        return out;
    }
    #[cfg(target_arch = "x86_64")]
    if use_vnni && vnni_fits(in_features) {
        let packed = PackedWeight::pack(cb, out_features, in_features);
        let activations = offset_activations(ca, rows, in_features, packed.k_groups);
        let stride = packed.k_groups * 4;
        out.par_chunks_mut(ROWS_PER_TASK * out_features).enumerate().for_each(|(task, out_rows)| {
            let first_row = task * ROWS_PER_TASK;
            let task_rows = out_rows.len() / out_features;
            let a = &activations[first_row * stride..(first_row + task_rows) * stride];
            // SAFETY: `vnni_fits` checked AVX-512F/BW/VNNI; `a` holds `task_rows` rows of
            // `stride` bytes and `out_rows` `task_rows` rows of `out_features`, as `gemm_rows` needs.
            unsafe {
                vnni::gemm_rows(a, task_rows, stride, &packed, vnni::Output::Int32(out_rows), out_features)
            };
        });
        return out;
    }
    let _ = use_vnni;
    out.par_chunks_mut(ROWS_PER_TASK * out_features).enumerate().for_each(|(task, out_rows)| {
        let first_row = task * ROWS_PER_TASK;
        for (local, out_row) in out_rows.chunks_mut(out_features).enumerate() {
            let act_row = &ca[(first_row + local) * in_features..(first_row + local + 1) * in_features];
            for (out_value, weight_row) in out_row.iter_mut().zip(cb.chunks(in_features)) {
                *out_value = dot_saturating(act_row, weight_row);
            }
        }
    });
    out
}

/// Whether the VNNI kernel can run on this CPU for this many inputs.
pub(crate) fn vnni_fits(in_features: usize) -> bool {
    in_features > 0 && in_features <= MAX_VNNI_IN_FEATURES && vnni_available()
}

/// LLM.int8's dequantized product on the VNNI kernel: `f32(CA · CBᵀ) * (sca[r] * scb[c]) *
/// 6.200124e-05 (+ bias[c])`, each step rounded as [`crate::int8_matmul::dequantize_matmul`]
/// rounds it. `a` holds the activation codes offset to `u8` (`code ^ 0x80`), rows of `stride =
/// 4 · ceil(in / 4)` bytes padded with 128. The caller has checked [`vnni_fits`] and the shapes.
#[cfg(target_arch = "x86_64")]
pub(crate) fn matmul_dequantized_vnni(
    a: &[u8],
    rows: usize,
    stride: usize,
    sca: &[f32],
    weight: &crate::int8::Int8Weight,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let (out_features, in_features) = (weight.out_features(), weight.in_features());
    assert!(
        vnni_fits(in_features),
        "the VNNI kernel was asked for {in_features} inputs on a CPU or size it cannot take"
    );
    assert!(a.len() == rows * stride && stride == 4 * in_features.div_ceil(4) && sca.len() == rows);
    let packed = PackedWeight::pack(weight.cb(), out_features, in_features);
    let padded = |values: &[f32]| {
        let mut out = values.to_vec();
        out.resize(packed.panels() * PANEL_COLS, 0.0);
        out
    };
    let scb = padded(weight.scb());
    let bias = bias.map(padded);
    let mut out = vec![0f32; rows * out_features];
    out.par_chunks_mut(ROWS_PER_TASK * out_features).enumerate().for_each(|(task, out_rows)| {
        let first_row = task * ROWS_PER_TASK;
        let task_rows = out_rows.len() / out_features;
        let output = vnni::Output::Dequantized {
            out: out_rows,
            sca: &sca[first_row..first_row + task_rows],
            scb: &scb,
            bias: bias.as_deref(),
        };
        // SAFETY: `vnni_fits` checked the CPU; the slices have the extents `gemm_rows` needs.
        unsafe {
            vnni::gemm_rows(
                &a[first_row * stride..(first_row + task_rows) * stride],
                task_rows,
                stride,
                &packed,
                output,
                out_features,
            )
        };
    });
    out
}

/// Below this many rows the weight is read in place, row by row ([`matmul_dequantized_few_rows`]),
/// instead of being packed for the micro-kernel: packing costs a pass over the weight per call.
pub(crate) const FEW_ROWS: usize = 16;

/// [`matmul_dequantized_vnni`] for fewer than [`FEW_ROWS`] rows, reading `CB` row-major: each
/// 64-input chunk of an activation row becomes `|a|` (`u8`) and the weight chunk is negated where
/// `a < 0`, so `vpdpbusd(|a|, ±w)` sums `a · w` exactly. That needs `CB` free of -128 (whose
/// negation wraps), which the caller checks with [`crate::Int8Weight::has_min_code`].
#[cfg(target_arch = "x86_64")]
pub(crate) fn matmul_dequantized_few_rows(
    a: &[u8],
    rows: usize,
    stride: usize,
    sca: &[f32],
    weight: &crate::int8::Int8Weight,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let (out_features, in_features) = (weight.out_features(), weight.in_features());
    assert!(vnni_fits(in_features) && !weight.has_min_code());
    assert!(a.len() == rows * stride && stride >= in_features && sca.len() == rows);
    let mut out = vec![0f32; rows * out_features];
    let cb = weight.cb();
    let scb = weight.scb();
    // Outputs split across threads; every thread reads all (few) activation rows.
    let per_task = out_features.div_ceil(rayon::current_num_threads() * 4).max(16);
    // One buffer, a contiguous `[rows, width]` block per task (no allocation inside the threads,
    // which share one malloc arena and contended for its lock on every decoding step).
    let mut sums = vec![0i32; rows * out_features];
    sums.par_chunks_mut(rows * per_task).enumerate().for_each(|(task, sums)| {
        let cols = task * per_task..task * per_task + sums.len() / rows;
        for first_row in (0..rows).step_by(4) {
            let group = (rows - first_row).min(4);
            // SAFETY: `vnni_fits` checked the CPU; the rows `first_row..first_row + group` of
            // `a` (stride `stride >= in_features`) and the weight rows `cols` exist.
            unsafe {
                vnni::dot_rows(
                    &a[first_row * stride..(first_row + group) * stride],
                    group,
                    stride,
                    cb,
                    weight.row_sums(),
                    in_features,
                    cols.clone(),
                    &mut sums[first_row * cols.len()..(first_row + group) * cols.len()],
                )
            };
        }
    });
    for (task, sums) in sums.chunks(rows * per_task).enumerate() {
        let (first_col, width) = (task * per_task, sums.len() / rows);
        for (row, row_sums) in sums.chunks(width).enumerate() {
            for (offset, &value) in row_sums.iter().enumerate() {
                let col = first_col + offset;
                // `dequantize_matmul`'s epilogue, rounded the same way.
                let scaled = value as f32 * (sca[row] * scb[col]) * crate::int8_matmul::MM_DEQUANT_SCALE;
                out[row * out_features + col] = match bias {
                    Some(bias) => scaled + bias[col],
                    None => scaled,
                };
            }
        }
    }
    out
}

/// [`crate::int8_matmul::add_outlier_term`] with AVX-512 FMA across 16 outputs at a time and
/// rows in parallel: each output's chain over the outlier columns runs in the same order, with
/// the same fused multiply-adds, so the sums are equal bit for bit.
#[cfg(target_arch = "x86_64")]
pub(crate) fn add_outlier_term_avx512(
    x: &[f32],
    weight: &crate::int8::Int8Weight,
    outlier_cols: &[usize],
    out: &mut [f32],
) {
    if outlier_cols.is_empty() {
        return;
    }
    let (out_features, in_features) = (weight.out_features(), weight.in_features());
    assert!(is_x86_feature_detected!("avx512f"), "the AVX-512 outlier term was called on a CPU without it");
    assert_eq!(x.len() / in_features, out.len() / out_features);
    // `[n_outliers, out_features]`, so that 16 consecutive outputs of one outlier column load
    // as one vector.
    let sub_weight = crate::int8_matmul::outlier_weight(weight, outlier_cols);
    let n = outlier_cols.len();
    let mut by_column = vec![0f32; n * out_features];
    for (o, row) in sub_weight.chunks(n).enumerate() {
        for (j, &w) in row.iter().enumerate() {
            by_column[j * out_features + o] = w;
        }
    }
    out.par_chunks_mut(out_features).zip(x.par_chunks(in_features)).for_each(|(out_row, x_row)| {
        let picked: Vec<f32> = outlier_cols.iter().map(|&col| x_row[col]).collect();
        // SAFETY: AVX-512F was checked above; the slices have the extents the function reads.
        unsafe { vnni::outlier_row(&picked, &by_column, out_row) };
    });
}

/// The reference's sum: i64, saturated to i32.
fn dot_saturating(a: &[i8], b: &[i8]) -> i32 {
    if a.len() <= MAX_VNNI_IN_FEATURES {
        // |sum| <= 127² · 65,536 < 2³¹: no overflow in i32, and the loop vectorises.
        a.iter().zip(b).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum()
    } else {
        let dot: i64 = a.iter().zip(b).map(|(&x, &y)| i64::from(x) * i64::from(y)).sum();
        i32::try_from(dot).unwrap_or(if dot < 0 { i32::MIN } else { i32::MAX })
    }
}

/// Activations as `u8` (`code + 128`), rows padded to `4 · k_groups` bytes with 128 (code 0;
/// the packed weight is zero there anyway).
fn offset_activations(ca: &[i8], rows: usize, in_features: usize, k_groups: usize) -> Vec<u8> {
    let stride = k_groups * 4;
    let mut out = vec![128u8; rows * stride];
    for (src, dst) in ca.chunks(in_features).zip(out.chunks_mut(stride)) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = (s as u8) ^ 0x80;
        }
    }
    out
}

/// `cb` rearranged for the micro-kernel, with each column's `128 · Σ_k cb` correction.
struct PackedWeight {
    /// Panels of [`PANEL_COLS`] columns; within a panel, group `g` of 4 inputs is 256 bytes:
    /// column `j`'s inputs `4g..4g+4` at `4j..4j+4`. Missing columns and inputs are 0.
    data: Vec<i8>,
    /// `128 · Σ_k cb[o, k]` per output column, padded to whole panels.
    correction: Vec<i32>,
    k_groups: usize,
    out_features: usize,
}

impl PackedWeight {
    fn pack(cb: &[i8], out_features: usize, in_features: usize) -> Self {
        let k_groups = in_features.div_ceil(4);
        let panels = out_features.div_ceil(PANEL_COLS);
        let panel_bytes = k_groups * 4 * PANEL_COLS;
        let mut data = vec![0i8; panels * panel_bytes];
        let mut correction = vec![0i32; panels * PANEL_COLS];
        let full_groups = in_features / 4;
        data.par_chunks_mut(panel_bytes).zip(correction.par_chunks_mut(PANEL_COLS)).enumerate().for_each(
            |(panel, (panel_data, panel_correction))| {
                let first_col = panel * PANEL_COLS;
                let cols = (out_features - first_col).min(PANEL_COLS);
                let rows: Vec<&[i8]> = (first_col..first_col + cols)
                    .map(|col| &cb[col * in_features..(col + 1) * in_features])
                    .collect();
                for (correction, row) in panel_correction.iter_mut().zip(&rows) {
                    *correction = 128 * row.iter().map(|&w| i32::from(w)).sum::<i32>();
                }
                // Group by group, so the packed panel is written in order: 4 bytes of each column.
                for (group, out) in panel_data.chunks_exact_mut(4 * PANEL_COLS).enumerate() {
                    let k = group * 4;
                    if group < full_groups {
                        for (dst, row) in out.chunks_exact_mut(4).zip(&rows) {
                            dst.copy_from_slice(&row[k..k + 4]);
                        }
                    } else {
                        // The last, partial group: the missing inputs stay 0.
                        for (dst, row) in out.chunks_exact_mut(4).zip(&rows) {
                            dst[..in_features - k].copy_from_slice(&row[k..]);
                        }
                    }
                }
            },
        );
        PackedWeight { data, correction, k_groups, out_features }
    }

    fn panels(&self) -> usize {
        self.out_features.div_ceil(PANEL_COLS)
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::*;

    use super::{PackedWeight, MR, PANEL_COLS};
    use crate::int8_matmul::MM_DEQUANT_SCALE;

    /// Where a block of corrected int32 sums goes.
    pub(super) enum Output<'a> {
        /// As they are, `[rows, out_features]`.
        Int32(&'a mut [i32]),
        /// Dequantized to f32 with the row and column statistics (and the bias), `[rows,
        /// out_features]`; `scb` and `bias` are padded to whole panels.
        Dequantized { out: &'a mut [f32], sca: &'a [f32], scb: &'a [f32], bias: Option<&'a [f32]> },
    }

    /// `out[r, :] = Σ_k a[r, k] · cb[:, k] - correction` (then dequantized) for `rows` rows of
    /// `a` (u8, row stride `stride`), every panel.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, AVX-512BW and AVX-512 VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn gemm_rows(
        a: &[u8],
        rows: usize,
        stride: usize,
        packed: &PackedWeight,
        mut output: Output<'_>,
        out_features: usize,
    ) {
        assert!(a.len() >= rows * stride);
        assert_eq!(stride, 4 * packed.k_groups);
        let padded_cols = packed.panels() * PANEL_COLS;
        match &output {
            Output::Int32(out) => assert!(out.len() >= rows * out_features),
            Output::Dequantized { out, sca, scb, bias } => {
                assert!(out.len() >= rows * out_features && sca.len() >= rows && scb.len() == padded_cols);
                assert!(bias.is_none_or(|bias| bias.len() == padded_cols));
            }
        }
        let panel_bytes = packed.k_groups * 4 * PANEL_COLS;
        for panel in 0..packed.panels() {
            let weights = &packed.data[panel * panel_bytes..(panel + 1) * panel_bytes];
            let first_col = panel * PANEL_COLS;
            let cols = (out_features - first_col).min(PANEL_COLS);
            let mut row = 0;
            while row < rows {
                let block = (rows - row).min(MR);
                let a_block = &a[row * stride..(row + block) * stride];
                // SAFETY: `a_block` holds `block` rows of `stride` bytes, `weights` one panel.
                let acc = unsafe {
                    match block {
                        6 => sums::<6>(a_block, stride, weights),
                        5 => widen(sums::<5>(a_block, stride, weights)),
                        4 => widen(sums::<4>(a_block, stride, weights)),
                        3 => widen(sums::<3>(a_block, stride, weights)),
                        2 => widen(sums::<2>(a_block, stride, weights)),
                        _ => widen(sums::<1>(a_block, stride, weights)),
                    }
                };
                for (r, acc_row) in acc.iter().take(block).enumerate() {
                    for (v, &acc_vec) in acc_row.iter().enumerate() {
                        let col = v * 16;
                        if col >= cols {
                            break;
                        }
                        let lanes = (cols - col).min(16);
                        let mask: __mmask16 = if lanes == 16 { 0xffff } else { (1u16 << lanes) - 1 };
                        let at = (row + r) * out_features + first_col + col;
                        // SAFETY: the correction (and `scb`, `bias`) hold whole panels, so 16
                        // values at `first_col + col` are inside them; the masked store writes
                        // `lanes` values of row `row + r` at columns below `out_features`.
                        unsafe {
                            let fix =
                                _mm512_loadu_si512(packed.correction.as_ptr().add(first_col + col).cast());
                            let sums = _mm512_sub_epi32(acc_vec, fix);
                            match &mut output {
                                Output::Int32(out) => {
                                    _mm512_mask_storeu_epi32(out.as_mut_ptr().add(at), mask, sums)
                                }
                                Output::Dequantized { out, sca, scb, bias } => {
                                    // `f32(acc) * (sca * scb) * 6.200124e-05 + bias`, rounded
                                    // step by step as the scalar epilogue (no fused multiply-add).
                                    let stats = _mm512_mul_ps(
                                        _mm512_set1_ps(sca[row + r]),
                                        _mm512_loadu_ps(scb.as_ptr().add(first_col + col)),
                                    );
                                    let mut value = _mm512_mul_ps(
                                        _mm512_mul_ps(_mm512_cvtepi32_ps(sums), stats),
                                        _mm512_set1_ps(MM_DEQUANT_SCALE),
                                    );
                                    if let Some(bias) = bias {
                                        value = _mm512_add_ps(
                                            value,
                                            _mm512_loadu_ps(bias.as_ptr().add(first_col + col)),
                                        );
                                    }
                                    _mm512_mask_storeu_ps(out.as_mut_ptr().add(at), mask, value);
                                }
                            }
                        }
                    }
                }
                row += block;
            }
        }
    }

    /// The lane sums of eight vectors, `[Σ acc[0], ..., Σ acc[7]]`: halved to 256 bits, then
    /// horizontal adds across the vectors, so the eight reductions share their shuffles.
    #[inline]
    #[target_feature(enable = "avx512f,avx2")]
    fn sum8(acc: &[__m512i; 8]) -> __m256i {
        let half =
            |v: __m512i| _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
        let h = acc.map(half);
        // Each 128-bit lane of `quad` holds the partial sums of four vectors over that lane.
        let quad = |a: usize| {
            _mm256_hadd_epi32(_mm256_hadd_epi32(h[a], h[a + 1]), _mm256_hadd_epi32(h[a + 2], h[a + 3]))
        };
        let (low, high) = (quad(0), quad(4));
        _mm256_add_epi32(
            _mm256_permute2x128_si256::<0x20>(low, high),
            _mm256_permute2x128_si256::<0x31>(low, high),
        )
    }

    /// The int32 sums of `rows` (at most 4) activation rows (offset codes, stride `stride`)
    /// with weight rows `cols` of row-major `cb`, into `sums` `[rows, cols.len()]`.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, BW and VNNI; `a.len() >= rows · stride`, `stride >=
    /// in_features`, `cb` is `[_, in_features]` with rows `cols`, free of -128, and `row_sums`
    /// holds the sum of each of its rows.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn dot_rows(
        a: &[u8],
        rows: usize,
        stride: usize,
        cb: &[i8],
        row_sums: &[i32],
        in_features: usize,
        cols: std::ops::Range<usize>,
        sums: &mut [i32],
    ) {
        assert!(rows <= 4 && a.len() >= rows * stride && stride >= in_features);
        assert!(cb.len() >= cols.end * in_features && sums.len() >= rows * cols.len());
        assert!(row_sums.len() >= cols.end);
        let chunks = in_features.div_ceil(64);
        let chunk_mask = |chunk: usize| -> __mmask64 {
            let lanes = (in_features - chunk * 64).min(64);
            if lanes == 64 {
                u64::MAX
            } else {
                (1u64 << lanes) - 1
            }
        };
        let zero = _mm512_setzero_si512();
        let width = cols.len();
        let mut cols = cols;
        let first = cols.start;
        if rows == 1 {
            // One row (a decoding step): a single accumulator chain per column would wait on each
            // `vpdpbusd` in turn, so eight columns run side by side (four gave 30% more tokens/s
            // than one, eight 7% more again), each weight row read in order. The offset codes
            // `a + 128` multiply the weight as it is (no sign folding per weight chunk), and
            // `128 · Σ_k w[k]` is taken off each sum; the masked loads zero the lanes past the row.
            while cols.len() >= 8 {
                let col = cols.start;
                let mut acc = [zero; 8];
                // The weight rows two groups ahead, a cache line per load here: the rows stream
                // from memory (a model's int8 weights outgrow the cache), and the hardware
                // prefetcher alone left a decoding step short of the bandwidth.
                let ahead = cb.as_ptr().wrapping_add((col + 16) * in_features);
                for (offset, acc) in acc.iter_mut().enumerate() {
                    // Each row read in order; the eight rows' chains are independent, so the
                    // core overlaps them.
                    let row = cb.as_ptr().wrapping_add((col + offset) * in_features);
                    for chunk in 0..chunks {
                        // The activation's offset codes, read again per row from L1 (a vector
                        // per chunk kept in a buffer cost an allocation per call).
                        // SAFETY: the masked load reads only inputs below `in_features <= stride`.
                        let codes = unsafe {
                            _mm512_maskz_loadu_epi8(chunk_mask(chunk), a.as_ptr().add(chunk * 64).cast())
                        };
                        _mm_prefetch::<_MM_HINT_T0>(
                            ahead.wrapping_add(offset * in_features + chunk * 64).cast(),
                        );
                        // SAFETY: weight row `col + offset < cols.end` has `in_features` codes;
                        // the mask stops there.
                        let w =
                            unsafe { _mm512_maskz_loadu_epi8(chunk_mask(chunk), row.add(chunk * 64).cast()) };
                        *acc = _mm512_dpbusd_epi32(*acc, codes, w);
                    }
                }
                // SAFETY: `row_sums` holds `cols.end > col + 7` values.
                let weight_sums = unsafe { _mm256_loadu_si256(row_sums.as_ptr().add(col).cast()) };
                let totals = _mm256_sub_epi32(sum8(&acc), _mm256_slli_epi32::<7>(weight_sums));
                // SAFETY: `sums` holds `cols.len() >= 8` values from `col - first`.
                unsafe { _mm256_storeu_si256(sums.as_mut_ptr().add(col - first).cast(), totals) };
                cols.start += 8;
            }
        }
        // The remaining columns (all of them for several rows), one at a time.
        if cols.is_empty() {
            return;
        }
        // |a| and the sign mask of every chunk of every row, once.
        let mut magnitudes = Vec::with_capacity(rows * chunks);
        let mut negative = Vec::with_capacity(rows * chunks);
        let flip = _mm512_set1_epi8(0x80u8 as i8);
        for row in 0..rows {
            for chunk in 0..chunks {
                // SAFETY: the masked load reads only inputs below `in_features <= stride`.
                let codes = unsafe {
                    _mm512_maskz_loadu_epi8(
                        chunk_mask(chunk),
                        a.as_ptr().add(row * stride + chunk * 64).cast(),
                    )
                };
                // Back from the offset, then zero the lanes past the row (their offset 0 is -128).
                let codes = _mm512_maskz_mov_epi8(chunk_mask(chunk), _mm512_xor_si512(codes, flip));
                magnitudes.push(_mm512_abs_epi8(codes));
                negative.push(_mm512_movepi8_mask(codes));
            }
        }
        let done = cols.start - first;
        for (local, col) in cols.enumerate() {
            let mut acc = [zero; 4];
            for chunk in 0..chunks {
                // SAFETY: weight row `col` has `in_features` codes; the mask stops there.
                let w = unsafe {
                    _mm512_maskz_loadu_epi8(
                        chunk_mask(chunk),
                        cb.as_ptr().add(col * in_features + chunk * 64).cast(),
                    )
                };
                for (row, acc) in acc.iter_mut().enumerate().take(rows) {
                    let signed = _mm512_mask_sub_epi8(w, negative[row * chunks + chunk], zero, w);
                    *acc = _mm512_dpbusd_epi32(*acc, magnitudes[row * chunks + chunk], signed);
                }
            }
            for (row, &acc) in acc.iter().enumerate().take(rows) {
                sums[row * width + done + local] = _mm512_reduce_add_epi32(acc);
            }
        }
    }

    /// `out[o] += Σ_j x[j] · w[j, o]`, the sum one FMA chain over `j` in order from 0.0 per
    /// output, 16 outputs per vector.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; `w.len() == x.len() * out.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn outlier_row(x: &[f32], w: &[f32], out: &mut [f32]) {
        let out_features = out.len();
        assert_eq!(w.len(), x.len() * out_features);
        let mut o = 0;
        while o < out_features {
            let lanes = (out_features - o).min(16);
            let mask: __mmask16 = if lanes == 16 { 0xffff } else { (1u16 << lanes) - 1 };
            let mut acc = _mm512_setzero_ps();
            for (j, &value) in x.iter().enumerate() {
                // SAFETY: `lanes` values at `j * out_features + o` are inside `w`.
                let column = unsafe { _mm512_maskz_loadu_ps(mask, w.as_ptr().add(j * out_features + o)) };
                acc = _mm512_fmadd_ps(_mm512_set1_ps(value), column, acc);
            }
            // SAFETY: `lanes` values at `o` are inside `out`.
            unsafe {
                let sum = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out.as_ptr().add(o)), acc);
                _mm512_mask_storeu_ps(out.as_mut_ptr().add(o), mask, sum);
            }
            o += lanes;
        }
    }

    /// `R` rows padded to the full micro-kernel height with zero sums (never stored).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn widen<const R: usize>(acc: [[__m512i; 4]; R]) -> [[__m512i; 4]; MR] {
        let mut wide = [[_mm512_setzero_si512(); 4]; MR];
        wide[..R].copy_from_slice(&acc);
        wide
    }

    /// The int32 sums `Σ_g dpbusd(a[r, 4g..4g+4], panel group g)` of `R` rows × one panel of 64
    /// columns over all `k_groups` groups, before the correction.
    ///
    /// # Safety
    /// As [`gemm_rows`]; `a.len() >= R · stride`, `weights.len() == stride · PANEL_COLS`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn sums<const R: usize>(a: &[u8], stride: usize, weights: &[i8]) -> [[__m512i; 4]; R] {
        debug_assert!(a.len() >= R * stride);
        debug_assert_eq!(weights.len(), stride * PANEL_COLS);
        let k_groups = stride / 4;
        let mut acc = [[_mm512_setzero_si512(); 4]; R];
        let a_ptr = a.as_ptr();
        let w_ptr = weights.as_ptr();
        for group in 0..k_groups {
            // SAFETY: group < k_groups, so the 256 bytes at `group * 256` are inside `weights`
            // and the 4 bytes at `r * stride + group * 4` inside row `r < R` of `a`.
            unsafe {
                let w = w_ptr.add(group * 4 * PANEL_COLS);
                let b = [
                    _mm512_loadu_si512(w.cast()),
                    _mm512_loadu_si512(w.add(64).cast()),
                    _mm512_loadu_si512(w.add(128).cast()),
                    _mm512_loadu_si512(w.add(192).cast()),
                ];
                for (r, acc_row) in acc.iter_mut().enumerate() {
                    let bytes = a_ptr.add(r * stride + group * 4).cast::<i32>().read_unaligned();
                    let x = _mm512_set1_epi32(bytes);
                    for (acc_vec, &b_vec) in acc_row.iter_mut().zip(&b) {
                        *acc_vec = _mm512_dpbusd_epi32(*acc_vec, x, b_vec);
                    }
                }
            }
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(n: usize, seed: u64) -> Vec<i8> {
        let mut state = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // The full range including -128 (activations never hold it, but the kernel
                // must not care) and the extremes.
                (state % 256) as u8 as i8
            })
            .collect()
    }

    fn reference(ca: &[i8], rows: usize, cb: &[i8], out_features: usize, in_features: usize) -> Vec<i32> {
        let mut out = Vec::with_capacity(rows * out_features);
        for act in ca.chunks(in_features) {
            for weight in cb.chunks(in_features) {
                out.push(
                    act.iter().zip(weight).map(|(&a, &b)| i64::from(a) * i64::from(b)).sum::<i64>() as i32
                );
            }
        }
        out
    }

    #[test]
    fn every_path_equals_the_plain_sum() {
        // Rows around the micro-kernel and task sizes, columns around panels and vectors,
        // inputs with and without a tail group.
        for &(rows, out_features, in_features) in
            &[(1, 1, 1), (5, 17, 3), (6, 64, 4), (7, 65, 7), (13, 130, 70), (97, 192, 576), (200, 33, 129)]
        {
            let ca = codes(rows * in_features, rows as u64);
            let cb = codes(out_features * in_features, out_features as u64 + 7);
            let expected = reference(&ca, rows, &cb, out_features, in_features);
            for use_vnni in [false, true] {
                let got = matmul_i32(&ca, rows, &cb, out_features, in_features, use_vnni);
                assert_eq!(
                    got, expected,
                    "{rows}x{in_features} · {out_features}x{in_features}ᵀ vnni={use_vnni}"
                );
            }
        }
    }

    #[test]
    fn extreme_codes_do_not_overflow() {
        let (rows, out_features, in_features) = (3, 20, 4096);
        let ca = vec![127i8; rows * in_features];
        let cb: Vec<i8> =
            (0..out_features * in_features).map(|i| if i % 3 == 0 { -128 } else { 127 }).collect();
        let expected = reference(&ca, rows, &cb, out_features, in_features);
        assert_eq!(matmul_i32(&ca, rows, &cb, out_features, in_features, true), expected);
    }
}
