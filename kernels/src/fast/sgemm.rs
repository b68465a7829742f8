//! The tiled path's GEMM on AVX-512: `C = A · B` with `A` the f32 activations and `B` the weight,
//! decoded block by block straight into the micro-kernel's layout.
//!
//! The layout follows BLIS. `A` is packed once, [`MR`] rows at a time as `[k][MR]` (one gather
//! per inner index). `B` is taken a column block at a time (as many columns as fit `block_bytes`
//! over every inner index), decoded and packed by all threads as slivers of [`NR`] columns and
//! about [`KC`] inner indices (`[k][NR]`, zero-padded), and stays in L2 while the threads take row
//! blocks of `C` as they come free, each running the micro-kernel over every inner block and
//! sliver: it keeps an `MR x NR` tile of `C` in 28 zmm registers and per inner index does two
//! loads of `B` and 28 FMAs with `A` broadcast from memory. Every tile of `C` is written by one
//! task only; two synchronisations per column block.
//!
//! Per output element the sum runs over the inner index in order within a block, blocks in order,
//! so results differ from the scalar reference only by float rounding of the same terms.

use std::cell::RefCell;
use std::ops::Range;

use rayon::prelude::*;

use super::isa::{CheckedIsa, Isa};

/// Rows of `A` (activation rows) in one micro-tile.
pub(super) const MR: usize = 14;
/// The lanes of a packed `A` column: one per tile row (MR fits a 16-lane mask).
#[cfg(target_arch = "x86_64")]
const TILE_ROWS: u16 = ((1u32 << MR) - 1) as u16;
/// Columns of `B` (output features) in one micro-tile: two zmm registers.
pub(super) const NR: usize = 32;
/// Inner indices per packed block: an `MR x KC` sliver of `A` (14 KiB) stays in L1.
pub(super) const KC: usize = 256;

/// How the decoded weight relates to `B [k, n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WeightSide {
    /// The weight is `Bᵀ` (`[n, k]`, the forward pass's `W [out, in]`).
    Transposed,
    /// The weight is `B` itself (`[k, n]`, the backward pass's `W [out, in]`).
    Plain,
}

/// The product's sizes: `A [m, k]` row-major with row stride `k`, `C [m, n]` with row stride `n`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dims {
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

thread_local! {
    /// Per-thread buffer for a decoded sliver before it is transposed or padded.
    static DECODED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `C = A · B` where `decode(rows, cols, out)` writes the weight's `[rows, cols]` block row-major
/// into `out` (`side` says whether the weight is `B` or `Bᵀ`). Column blocks of the weight passed
/// to `decode` start and end on multiples of `col_step` or at the weight's last column.
/// `block_bytes` bounds the packed column block of `B` (at least one sliver is packed).
///
/// `isa` must be [`Isa::Avx512`] (the callers dispatch on it).
pub(super) fn gemm<D>(
    isa: CheckedIsa,
    a: &[f32],
    dims: Dims,
    side: WeightSide,
    col_step: usize,
    block_bytes: usize,
    decode: D,
) -> Vec<f32>
where
    D: Fn(Range<usize>, Range<usize>, &mut [f32]) + Sync,
{
    assert_eq!(isa.isa(), Isa::Avx512, "sgemm runs on AVX-512 only");
    let Dims { m, k, n } = dims;
    assert_eq!(a.len(), m * k, "sgemm: A holds {} values, not {m} x {k}", a.len());
    // `pack_a` gathers with 32-bit offsets up to `MR * k` values.
    assert!(MR * k * std::mem::size_of::<f32>() <= i32::MAX as usize, "sgemm: inner size {k} too large");
    if m == 0 || n == 0 || k == 0 {
        return vec![0.0; m * n];
    }
    // Inner blocks of about `KC`, as even as `col_step` allows (a short last block would pay the
    // tile's load and store for little work); forward blocks cut the weight's columns, so they
    // start on multiples of `col_step`.
    let step = match side {
        WeightSide::Transposed => col_step.max(1),
        WeightSide::Plain => 1,
    };
    let kc = k.div_ceil(k.div_ceil(KC)).div_ceil(step) * step;
    let inner_blocks = k.div_ceil(kc);
    // Columns per block: all of `B`'s inner blocks for them fit `block_bytes`.
    let nc = (block_bytes / (k * std::mem::size_of::<f32>()) / NR).max(1) * NR;
    let mut packed_b = Vec::new();
    let packed_b = aligned(&mut packed_b, inner_blocks * kc * nc.min(n.div_ceil(NR) * NR));
    let row_blocks = m.div_ceil(MR);
    // Every column block reads all of `A`: it is packed once, row blocks in parallel.
    let mut packed_a = vec![0.0f32; row_blocks * MR * k];
    packed_a.par_chunks_mut(MR * k).enumerate().for_each(|(row_block, out)| {
        let (row, rows) = (row_block * MR, MR.min(m - row_block * MR));
        // SAFETY: AVX-512F checked on entry; `a` holds rows `row..row + rows` of `k` values and
        // `out` `k * MR`.
        unsafe { pack_a(&a[row * k..(row + rows) * k], rows, k, out) };
    });
    let mut c: Vec<f32> = Vec::with_capacity(m * n);
    let c_addr = c.as_mut_ptr() as usize;
    for columns in (0..n).step_by(nc).map(|start| start..(start + nc).min(n)) {
        let slivers = columns.len().div_ceil(NR);
        // Inner block `b` of sliver `s` starts at `(b * slivers + s) * kc * NR` (a shorter last
        // inner block leaves its slot partly unused).
        let block = &mut packed_b[..inner_blocks * slivers * kc * NR];
        // Slivers are whole multiples of NR columns from a multiple of `nc`, so they start on
        // every `col_step` the decoders use.
        block.par_chunks_mut(kc * NR).enumerate().for_each(|(slot, out)| {
            let (inner_block, sliver) = (slot / slivers, slot % slivers);
            let inner = inner_block * kc..((inner_block + 1) * kc).min(k);
            let first = columns.start + sliver * NR;
            let cols = first..(first + NR).min(columns.end);
            let out = &mut out[..inner.len() * NR];
            DECODED.with_borrow_mut(|decoded| pack_sliver(&decode, side, cols, inner, decoded, out));
        });
        let block = &*block;
        // Row blocks go to whichever thread is free: the cores of a shared machine do not run
        // at the same speed.
        (0..row_blocks).into_par_iter().with_max_len(1).for_each(|row_block| {
            let row = row_block * MR;
            let rows = MR.min(m - row);
            let packed_a = &packed_a[row * k..(row + MR) * k];
            for inner_block in 0..inner_blocks {
                let inner = inner_block * kc..((inner_block + 1) * kc).min(k);
                let a_sliver = &packed_a[inner.start * MR..inner.end * MR];
                for sliver in 0..slivers {
                    let col = columns.start + sliver * NR;
                    let b_sliver = &block[(inner_block * slivers + sliver) * kc * NR..][..inner.len() * NR];
                    // SAFETY: AVX-512F checked on entry; the slivers hold `depth * MR` and
                    // `depth * NR` values; the tile `rows x min(NR, n - col)` at (row, col)
                    // lies inside C (capacity `m * n`), and no other task writes it (tasks
                    // own row blocks). The first inner block stores without reading, so
                    // every element is written before `set_len` below.
                    unsafe {
                        micro_kernel(
                            inner.len(),
                            a_sliver.as_ptr(),
                            b_sliver.as_ptr(),
                            (c_addr as *mut f32).add(row * n + col),
                            n,
                            rows,
                            NR.min(n - col),
                            inner_block > 0,
                        );
                    }
                }
            }
        });
    }
    // SAFETY: the loops above wrote every tile of every row and column block, i.e. all `m * n`
    // elements (k > 0).
    unsafe { c.set_len(m * n) };
    c
}

/// Decodes and packs one sliver of `B` (`cols` of `B`, inner indices `inner`) as `[depth][NR]`,
/// zero-padded past `cols`.
fn pack_sliver<D>(
    decode: &D,
    side: WeightSide,
    cols: Range<usize>,
    inner: Range<usize>,
    decoded: &mut Vec<f32>,
    out: &mut [f32],
) where
    D: Fn(Range<usize>, Range<usize>, &mut [f32]),
{
    let (width, depth) = (cols.len(), inner.len());
    match side {
        WeightSide::Transposed => {
            // Weight rows are columns of B: decode `[width, depth]`, then transpose.
            decoded.resize(width * depth, 0.0);
            decode(cols, inner, decoded);
            for (p, out_row) in out.chunks_exact_mut(NR).enumerate() {
                for (j, value) in out_row.iter_mut().enumerate() {
                    *value = if j < width { decoded[j * depth + p] } else { 0.0 };
                }
            }
        }
        WeightSide::Plain if width == NR => decode(inner, cols, out),
        WeightSide::Plain => {
            decoded.resize(width * depth, 0.0);
            decode(inner, cols, decoded);
            for (out_row, row) in out.chunks_exact_mut(NR).zip(decoded.chunks_exact(width)) {
                out_row[..width].copy_from_slice(row);
                out_row[width..].fill(0.0);
            }
        }
    }
}

/// The first `len` values of `buffer` starting at a 64-byte boundary (cache-line aligned loads).
fn aligned(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    let pad = 64 / std::mem::size_of::<f32>();
    if buffer.len() < len + pad {
        buffer.resize(len + pad, 0.0);
    }
    let offset = buffer.as_ptr().align_offset(64).min(pad);
    &mut buffer[offset..offset + len]
}

/// One row block of `A` (`source`, `rows <= MR` rows of `k`) as `[k][MR]`:
/// `out[p * MR + i] = source[i * k + p]`, the lanes of rows past `rows` zero.
///
/// # Safety
/// AVX-512F; `source.len() == rows * k`, `1 <= rows <= MR`, `out.len() == k * MR`.
#[target_feature(enable = "avx512f")]
unsafe fn pack_a(source: &[f32], rows: usize, k: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    debug_assert!(source.len() == rows * k && rows <= MR && out.len() == k * MR);
    let lanes: __mmask16 = ((1u32 << rows) - 1) as __mmask16;
    let offsets = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi32(k as i32),
    );
    let base = source.as_ptr();
    let target = out.as_mut_ptr();
    for p in 0..k {
        // One gather takes column `p` of the row block: lane `i` reads `source[i * k + p]`.
        let column = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), lanes, offsets, base.add(p));
        _mm512_mask_storeu_ps(target.add(p * MR), TILE_ROWS, column);
    }
}

/// `C[rows, cols] (+)= Apack · Bpack` for one `MR x NR` tile (`rows <= MR`, `cols <= NR`).
///
/// # Safety
/// AVX-512F; `a` holds `depth * MR` and `b` `depth * NR` values; `c` row `r < rows` has `cols`
/// writable values at `c + r * ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_kernel(
    depth: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    let low: __mmask16 = if cols >= 16 { 0xffff } else { ((1u32 << cols) - 1) as __mmask16 };
    let high: __mmask16 = if cols >= NR {
        0xffff
    } else if cols > 16 {
        ((1u32 << (cols - 16)) - 1) as __mmask16
    } else {
        0
    };
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    // Plain index loops: iterator adapters are not inlined into a `target_feature` function,
    // and a call per step would spill the tile to the stack.
    let mut b_row = b;
    let mut a_row = a;
    for _ in 0..depth {
        let b0 = _mm512_load_ps(b_row);
        let b1 = _mm512_load_ps(b_row.add(16));
        let mut i = 0;
        while i < MR {
            let value = _mm512_set1_ps(*a_row.add(i));
            acc[i][0] = _mm512_fmadd_ps(value, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(value, b1, acc[i][1]);
            i += 1;
        }
        b_row = b_row.add(NR);
        a_row = a_row.add(MR);
    }
    let mut i = 0;
    while i < rows {
        let out = c.add(i * ldc);
        let (mut lo, mut hi) = (acc[i][0], acc[i][1]);
        if accumulate {
            lo = _mm512_add_ps(lo, _mm512_maskz_loadu_ps(low, out));
            hi = _mm512_add_ps(hi, _mm512_maskz_loadu_ps(high, out.add(16)));
        }
        _mm512_mask_storeu_ps(out, low, lo);
        _mm512_mask_storeu_ps(out.add(16), high, hi);
        i += 1;
    }
}
