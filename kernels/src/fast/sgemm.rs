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
//!
//! The arithmetic is a type parameter ([`Arithmetic`]): [`F32`] as above, or [`Bf16`], where both
//! operands are rounded to bfloat16 (to nearest, ties to even) as they are packed, two inner
//! indices share a 32-bit slot, and `vdpbf16ps` adds both products of a slot into the f32
//! accumulators: twice the multiplications per instruction, the products of the rounded operands
//! exact, the sums in f32. That is QLoRA's compute dtype (`bnb_4bit_compute_dtype=bfloat16`).

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
    /// Per-thread buffer for a packed f32 sliver before it is rounded to bf16 pairs.
    static STAGED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The number type the micro-kernel multiplies in.
pub(super) trait Arithmetic: Sync {
    /// One packed value of `A` or `B`: an f32, or a pair of bf16 along the inner index.
    type Slot: Copy + Default + Send + Sync;
    /// Inner indices per slot.
    const DEPTH: usize;

    /// Whether the running CPU can execute this arithmetic's kernels (AVX-512F is checked by
    /// the caller through [`CheckedIsa`]).
    fn supported() -> bool;

    /// One row block of `A` (`source`, `rows <= MR` rows of `k`) as `[k / DEPTH][MR]` slots,
    /// the lanes of rows past `rows` (and a last odd inner index's partner) zero.
    ///
    /// # Safety
    /// AVX-512F and [`Arithmetic::supported`]; `source.len() == rows * k`, `1 <= rows <= MR`,
    /// `out.len() == k.div_ceil(DEPTH) * MR`.
    unsafe fn pack_a(source: &[f32], rows: usize, k: usize, out: &mut [Self::Slot]);

    /// Packs `depth` inner indices of one sliver: `fill` writes them as f32 `[depth][NR]`, which
    /// end up in `out` as `[depth.div_ceil(DEPTH)][NR]` slots.
    fn pack_b(depth: usize, fill: impl FnOnce(&mut [f32]), out: &mut [Self::Slot]);

    /// `C[rows, cols] (+)= Apack · Bpack` for one `MR x NR` tile over `slots` packed inner slots.
    ///
    /// # Safety
    /// AVX-512F and [`Arithmetic::supported`]; `a` holds `slots * MR` and `b` `slots * NR` slots
    /// (`b` 64-byte aligned); `c` row `r < rows` has `cols` writable values at `c + r * ldc`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn micro_kernel(
        slots: usize,
        a: *const Self::Slot,
        b: *const Self::Slot,
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        accumulate: bool,
    );
}

/// Products and sums in f32 (`vfmadd231ps`).
pub(super) struct F32;

/// Operands rounded to bf16, products summed in f32 (`vdpbf16ps`).
pub(super) struct Bf16;

/// `C = A · B` where `decode(rows, cols, out)` writes the weight's `[rows, cols]` block row-major
/// into `out` (`side` says whether the weight is `B` or `Bᵀ`). Column blocks of the weight passed
/// to `decode` start and end on multiples of `col_step` or at the weight's last column.
/// `block_bytes` bounds the packed column block of `B` (at least one sliver is packed).
///
/// `isa` must be [`Isa::Avx512`] and the CPU must support `A` (the callers dispatch on both).
pub(super) fn gemm<A: Arithmetic, D>(
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
    assert!(A::supported(), "sgemm: the CPU lacks this arithmetic's instructions");
    let Dims { m, k, n } = dims;
    assert_eq!(a.len(), m * k, "sgemm: A holds {} values, not {m} x {k}", a.len());
    // `pack_a` gathers with 32-bit offsets up to `MR * k` values.
    assert!(MR * k * std::mem::size_of::<f32>() <= i32::MAX as usize, "sgemm: inner size {k} too large");
    if m == 0 || n == 0 || k == 0 {
        return vec![0.0; m * n];
    }
    // Inner blocks of about `KC`, as even as `col_step` allows (a short last block would pay the
    // tile's load and store for little work); forward blocks cut the weight's columns, so they
    // start on multiples of `col_step`; every block but the last fills whole slots.
    let step = match side {
        WeightSide::Transposed => col_step.max(1),
        WeightSide::Plain => 1,
    };
    let step = if step % A::DEPTH == 0 { step } else { step * A::DEPTH };
    let kc = k.div_ceil(k.div_ceil(KC)).div_ceil(step) * step;
    let inner_blocks = k.div_ceil(kc);
    let (kc_slots, k_slots) = (kc / A::DEPTH, k.div_ceil(A::DEPTH));
    // Columns per block: all of `B`'s inner blocks for them fit `block_bytes`.
    let nc = (block_bytes / (k * std::mem::size_of::<f32>()) / NR).max(1) * NR;
    let mut packed_b = Vec::new();
    let packed_b = aligned(&mut packed_b, inner_blocks * kc_slots * nc.min(n.div_ceil(NR) * NR));
    let row_blocks = m.div_ceil(MR);
    // Every column block reads all of `A`: it is packed once, row blocks in parallel.
    let mut packed_a = vec![A::Slot::default(); row_blocks * MR * k_slots];
    packed_a.par_chunks_mut(MR * k_slots).enumerate().for_each(|(row_block, out)| {
        let (row, rows) = (row_block * MR, MR.min(m - row_block * MR));
        // SAFETY: AVX-512F and `A` checked on entry; `a` holds rows `row..row + rows` of `k`
        // values and `out` `k_slots * MR`.
        unsafe { A::pack_a(&a[row * k..(row + rows) * k], rows, k, out) };
    });
    let mut c: Vec<f32> = Vec::with_capacity(m * n);
    let c_addr = c.as_mut_ptr() as usize;
    for columns in (0..n).step_by(nc).map(|start| start..(start + nc).min(n)) {
        let slivers = columns.len().div_ceil(NR);
        // Inner block `b` of sliver `s` starts at `(b * slivers + s) * kc_slots * NR` (a shorter
        // last inner block leaves its place partly unused).
        let block = &mut packed_b[..inner_blocks * slivers * kc_slots * NR];
        // Slivers are whole multiples of NR columns from a multiple of `nc`, so they start on
        // every `col_step` the decoders use.
        block.par_chunks_mut(kc_slots * NR).enumerate().for_each(|(place, out)| {
            let (inner_block, sliver) = (place / slivers, place % slivers);
            let inner = inner_block * kc..((inner_block + 1) * kc).min(k);
            let first = columns.start + sliver * NR;
            let cols = first..(first + NR).min(columns.end);
            let out = &mut out[..inner.len().div_ceil(A::DEPTH) * NR];
            DECODED.with_borrow_mut(|decoded| {
                A::pack_b(inner.len(), |staged| pack_sliver(&decode, side, cols, inner, decoded, staged), out)
            });
        });
        let block = &*block;
        // Row blocks go to whichever thread is free: the cores of a shared machine do not run
        // at the same speed.
        (0..row_blocks).into_par_iter().with_max_len(1).for_each(|row_block| {
            let row = row_block * MR;
            let rows = MR.min(m - row);
            let packed_a = &packed_a[row_block * MR * k_slots..(row_block + 1) * MR * k_slots];
            for inner_block in 0..inner_blocks {
                let slots = (inner_block * kc_slots)..(inner_block * kc_slots + kc_slots).min(k_slots);
                let a_sliver = &packed_a[slots.start * MR..slots.end * MR];
                for sliver in 0..slivers {
                    let col = columns.start + sliver * NR;
                    let b_sliver =
                        &block[(inner_block * slivers + sliver) * kc_slots * NR..][..slots.len() * NR];
                    // SAFETY: AVX-512F and `A` checked on entry; the slivers hold `slots * MR`
                    // and `slots * NR` values, `b_sliver` 64-byte aligned (`aligned`, places of
                    // whole cache lines); the tile `rows x min(NR, n - col)` at (row, col)
                    // lies inside C (capacity `m * n`), and no other task writes it (tasks
                    // own row blocks). The first inner block stores without reading, so
                    // every element is written before `set_len` below.
                    unsafe {
                        A::micro_kernel(
                            slots.len(),
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
fn aligned<T: Copy + Default>(buffer: &mut Vec<T>, len: usize) -> &mut [T] {
    let pad = 64 / std::mem::size_of::<T>();
    if buffer.len() < len + pad {
        buffer.resize(len + pad, T::default());
    }
    let offset = buffer.as_ptr().align_offset(64).min(pad);
    &mut buffer[offset..offset + len]
}

impl Arithmetic for F32 {
    type Slot = f32;
    const DEPTH: usize = 1;

    fn supported() -> bool {
        true
    }

    /// `out[p * MR + i] = source[i * k + p]`: one gather per inner index.
    unsafe fn pack_a(source: &[f32], rows: usize, k: usize, out: &mut [f32]) {
        // SAFETY: as this function's own contract.
        unsafe { pack_a_f32(source, rows, k, out) }
    }

    fn pack_b(depth: usize, fill: impl FnOnce(&mut [f32]), out: &mut [f32]) {
        fill(&mut out[..depth * NR]);
    }

    unsafe fn micro_kernel(
        slots: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        accumulate: bool,
    ) {
        // SAFETY: as this function's own contract.
        unsafe { micro_kernel_f32(slots, a, b, c, ldc, rows, cols, accumulate) }
    }
}

impl Arithmetic for Bf16 {
    /// bf16 of inner index `2p` in the low half, `2p + 1` in the high half.
    type Slot = u32;
    const DEPTH: usize = 2;

    fn supported() -> bool {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
    }

    unsafe fn pack_a(source: &[f32], rows: usize, k: usize, out: &mut [u32]) {
        // SAFETY: as this function's own contract.
        unsafe { pack_a_bf16(source, rows, k, out) }
    }

    fn pack_b(depth: usize, fill: impl FnOnce(&mut [f32]), out: &mut [u32]) {
        STAGED.with_borrow_mut(|staged| {
            staged.resize(depth * NR, 0.0);
            fill(staged);
            assert!(
                out.len() >= depth.div_ceil(2) * NR,
                "bf16 sliver: {} slots for depth {depth}",
                out.len()
            );
            assert!(Bf16::supported(), "bf16 packing needs AVX-512 BF16");
            // SAFETY: AVX-512F and BF16 checked just above; `staged` holds `depth * NR` values
            // and `out` at least `depth.div_ceil(2) * NR`.
            unsafe { pairs_bf16(staged, depth, out) };
        });
    }

    unsafe fn micro_kernel(
        slots: usize,
        a: *const u32,
        b: *const u32,
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        accumulate: bool,
    ) {
        // SAFETY: as this function's own contract.
        unsafe { micro_kernel_bf16(slots, a, b, c, ldc, rows, cols, accumulate) }
    }
}

/// One row block of `A` (`source`, `rows <= MR` rows of `k`) as `[k][MR]`:
/// `out[p * MR + i] = source[i * k + p]`, the lanes of rows past `rows` zero.
///
/// # Safety
/// AVX-512F; `source.len() == rows * k`, `1 <= rows <= MR`, `out.len() == k * MR`.
#[target_feature(enable = "avx512f")]
unsafe fn pack_a_f32(source: &[f32], rows: usize, k: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    debug_assert!(source.len() == rows * k && rows <= MR && out.len() == k * MR);
    let lanes: __mmask16 = ((1u32 << rows) - 1) as __mmask16;
    let offsets = row_offsets(k);
    let base = source.as_ptr();
    let target = out.as_mut_ptr();
    for p in 0..k {
        // One gather takes column `p` of the row block: lane `i` reads `source[i * k + p]`.
        let column = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), lanes, offsets, base.add(p));
        _mm512_mask_storeu_ps(target.add(p * MR), TILE_ROWS, column);
    }
}

/// The lane offsets `i * k` of a column gather.
#[target_feature(enable = "avx512f")]
fn row_offsets(k: usize) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi32(k as i32),
    )
}

/// [`pack_a_f32`] in bf16 pairs: `out[p * MR + i]` holds `source[i * k + 2p]` (low half) and
/// `source[i * k + 2p + 1]` (high half, zero past `k`), each rounded to bf16.
///
/// # Safety
/// AVX-512F and BF16; `source.len() == rows * k`, `1 <= rows <= MR`,
/// `out.len() == k.div_ceil(2) * MR`.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pack_a_bf16(source: &[f32], rows: usize, k: usize, out: &mut [u32]) {
    use std::arch::x86_64::*;
    debug_assert!(source.len() == rows * k && rows <= MR && out.len() == k.div_ceil(2) * MR);
    let lanes: __mmask16 = ((1u32 << rows) - 1) as __mmask16;
    let offsets = row_offsets(k);
    let base = source.as_ptr();
    let target = out.as_mut_ptr();
    for p in 0..k.div_ceil(2) {
        let even = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), lanes, offsets, base.add(2 * p));
        let odd = if 2 * p + 1 < k {
            _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), lanes, offsets, base.add(2 * p + 1))
        } else {
            _mm512_setzero_ps()
        };
        _mm512_mask_storeu_epi32(target.add(p * MR) as *mut i32, TILE_ROWS, pair_bf16(even, odd));
    }
}

/// 16 lanes of bf16 pairs: `low` rounded to bf16 in each lane's low half, `high` in its high half.
#[target_feature(enable = "avx512f,avx512bf16")]
fn pair_bf16(low: std::arch::x86_64::__m512, high: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    // `vcvtneps2bf16` rounds to nearest, ties to even, as torch's f32 -> bf16 conversion does.
    // SAFETY: `__m256bh` and `__m256i` are both 256 bits of plain data.
    let low =
        _mm512_cvtepu16_epi32(unsafe { std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(low)) });
    let high =
        _mm512_cvtepu16_epi32(unsafe { std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(high)) });
    _mm512_or_si512(low, _mm512_slli_epi32::<16>(high))
}

/// An f32 sliver `[depth][NR]` as `[depth.div_ceil(2)][NR]` bf16 pairs (rows `2p` and `2p + 1`).
///
/// # Safety
/// AVX-512F and BF16; `staged.len() == depth * NR`, `out.len() >= depth.div_ceil(2) * NR`.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pairs_bf16(staged: &[f32], depth: usize, out: &mut [u32]) {
    use std::arch::x86_64::*;
    debug_assert!(staged.len() == depth * NR && out.len() >= depth.div_ceil(2) * NR);
    let (source, target) = (staged.as_ptr(), out.as_mut_ptr());
    for p in 0..depth.div_ceil(2) {
        for half in [0, 16] {
            let even = _mm512_loadu_ps(source.add(2 * p * NR + half));
            let odd = if 2 * p + 1 < depth {
                _mm512_loadu_ps(source.add((2 * p + 1) * NR + half))
            } else {
                _mm512_setzero_ps()
            };
            _mm512_storeu_si512(target.add(p * NR + half) as *mut __m512i, pair_bf16(even, odd));
        }
    }
}

/// `C[rows, cols] (+)= Apack · Bpack` for one `MR x NR` tile (`rows <= MR`, `cols <= NR`).
///
/// # Safety
/// AVX-512F; `a` holds `depth * MR` and `b` `depth * NR` values (`b` 64-byte aligned); `c` row
/// `r < rows` has `cols` writable values at `c + r * ldc`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_kernel_f32(
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
    store_tile(&acc, c, ldc, rows, cols, accumulate);
}

/// [`micro_kernel_f32`] over bf16 pairs: per slot, one `vdpbf16ps` per register of the tile adds
/// both products of the pair.
///
/// # Safety
/// AVX-512F and BF16; `a` holds `slots * MR` and `b` `slots * NR` slots (`b` 64-byte aligned);
/// `c` row `r < rows` has `cols` writable values at `c + r * ldc`.
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_kernel_bf16(
    slots: usize,
    a: *const u32,
    b: *const u32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    let mut b_row = b;
    let mut a_row = a;
    for _ in 0..slots {
        // SAFETY (transmutes): `__m512i` and `__m512bh` are both 512 bits of plain data.
        let b0 = std::mem::transmute::<__m512i, __m512bh>(_mm512_load_si512(b_row as *const __m512i));
        let b1 = std::mem::transmute::<__m512i, __m512bh>(_mm512_load_si512(b_row.add(16) as *const __m512i));
        let mut i = 0;
        while i < MR {
            let pair = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*a_row.add(i) as i32));
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], pair, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], pair, b1);
            i += 1;
        }
        b_row = b_row.add(NR);
        a_row = a_row.add(MR);
    }
    store_tile(&acc, c, ldc, rows, cols, accumulate);
}

/// Stores (or adds, with `accumulate`) the first `rows x cols` of an accumulated tile into `C`.
///
/// # Safety
/// AVX-512F; `c` row `r < rows` has `cols` writable values at `c + r * ldc`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store_tile(
    acc: &[[std::arch::x86_64::__m512; 2]; MR],
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
