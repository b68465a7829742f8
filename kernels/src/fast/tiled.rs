//! The batched path. On AVX-512 the weight is decoded block by block straight into the packed
//! layout of finagent's own GEMM ([`super::sgemm`]); elsewhere it is decoded one panel at a time
//! into f32 and each panel is multiplied by the `gemm` crate (runtime-dispatched SIMD, rayon
//! threads), accumulating into the output. Either way only one block (at most twice
//! `panel_bytes`) or panel (at most `panel_bytes`) of the decoded weight exists at a time; what
//! outlives the call is per-thread scratch of one decoded sliver.

use std::ops::Range;

use rayon::prelude::*;

use super::isa::CheckedIsa;
#[cfg(target_arch = "x86_64")]
use super::isa::Isa;
#[cfg(target_arch = "x86_64")]
use super::sgemm;
use super::{Compute, WeightView};

/// Panels are at most this many input features wide; more rows fill the rest of the budget.
const MAX_PANEL_COLS: usize = 4096;
/// Panel rows come in multiples of this (the GEMM's register tile is 16 or 8 wide).
const ROW_STEP: usize = 16;

/// `[rows, in] -> [rows, out]`: for every panel `W[o0..o1, k0..k1]`, `y[:, o0..o1] += x[:, k0..k1] · panelᵀ`.
pub(super) fn forward(
    view: &WeightView<'_>,
    isa: CheckedIsa,
    compute: Compute,
    x: &[f32],
    n_rows: usize,
    panel_bytes: usize,
) -> Vec<f32> {
    let (out_features, in_features) = view.dims();
    #[cfg(target_arch = "x86_64")]
    if isa.isa() == Isa::Avx512 {
        let dims = sgemm::Dims { m: n_rows, k: in_features, n: out_features };
        return own_gemm(view, isa, compute, x, dims, sgemm::WeightSide::Transposed, panel_bytes);
    }
    // `compute` is `F32` here: bf16 runs only on the AVX-512 GEMM (`Compute::runs_as`).
    debug_assert_eq!(compute, Compute::F32);
    let mut y = vec![0.0f32; n_rows * out_features];
    let tiles = Tiles::new(view, panel_bytes);
    let mut panel = vec![0.0f32; tiles.max_panel_len()];
    for rows in tiles.row_bands() {
        for cols in tiles.col_bands() {
            let panel = decode(view, isa, rows.clone(), cols.clone(), &mut panel);
            // SAFETY: `y` is `[n_rows, out_features]`, so columns `rows` of it are in bounds with
            // row stride `out_features`; `x` is `[n_rows, in_features]` and columns `cols` are in
            // bounds with row stride `in_features`; the panel holds `rows.len() * cols.len()`
            // values read as a `[cols, rows]` matrix (column stride `cols.len()`). The three
            // buffers do not overlap.
            unsafe {
                gemm::gemm(
                    n_rows,
                    rows.len(),
                    cols.len(),
                    y.as_mut_ptr().add(rows.start),
                    1,
                    out_features as isize,
                    cols.start > 0,
                    x.as_ptr().add(cols.start),
                    1,
                    in_features as isize,
                    panel.as_ptr(),
                    cols.len() as isize,
                    1,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism(),
                );
            }
        }
    }
    y
}

/// `[rows, out] -> [rows, in]`: for every panel `W[o0..o1, k0..k1]`, `gx[:, k0..k1] += g[:, o0..o1] · panel`.
pub(super) fn backward(
    view: &WeightView<'_>,
    isa: CheckedIsa,
    compute: Compute,
    grad: &[f32],
    n_rows: usize,
    panel_bytes: usize,
) -> Vec<f32> {
    let (out_features, in_features) = view.dims();
    #[cfg(target_arch = "x86_64")]
    if isa.isa() == Isa::Avx512 {
        let dims = sgemm::Dims { m: n_rows, k: out_features, n: in_features };
        return own_gemm(view, isa, compute, grad, dims, sgemm::WeightSide::Plain, panel_bytes);
    }
    debug_assert_eq!(compute, Compute::F32);
    let mut grad_x = vec![0.0f32; n_rows * in_features];
    let tiles = Tiles::new(view, panel_bytes);
    let mut panel = vec![0.0f32; tiles.max_panel_len()];
    for cols in tiles.col_bands() {
        for rows in tiles.row_bands() {
            let panel = decode(view, isa, rows.clone(), cols.clone(), &mut panel);
            // SAFETY: `grad_x` is `[n_rows, in_features]` and its columns `cols` are in bounds
            // with row stride `in_features`; `grad` is `[n_rows, out_features]` and its columns
            // `rows` are in bounds with row stride `out_features`; the panel is a row-major
            // `[rows, cols]` matrix. The three buffers do not overlap.
            unsafe {
                gemm::gemm(
                    n_rows,
                    cols.len(),
                    rows.len(),
                    grad_x.as_mut_ptr().add(cols.start),
                    1,
                    in_features as isize,
                    rows.start > 0,
                    grad.as_ptr().add(rows.start),
                    1,
                    out_features as isize,
                    panel.as_ptr(),
                    1,
                    cols.len() as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism(),
                );
            }
        }
    }
    grad_x
}

/// The AVX-512 GEMM over `view` decoded block by block (each block row-major, on the thread that
/// packs it), with column blocks of up to twice `panel_bytes`, in `compute`'s arithmetic (which
/// [`Compute::runs_as`] has checked the CPU runs).
#[cfg(target_arch = "x86_64")]
fn own_gemm(
    view: &WeightView<'_>,
    isa: CheckedIsa,
    compute: Compute,
    input: &[f32],
    dims: sgemm::Dims,
    side: sgemm::WeightSide,
    panel_bytes: usize,
) -> Vec<f32> {
    let decode = |rows: Range<usize>, cols: Range<usize>, out: &mut [f32]| {
        let width = cols.len();
        for (row, out_row) in rows.zip(out.chunks_exact_mut(width)) {
            view.decode_row(isa, row, cols.clone(), out_row);
        }
    };
    let (step, block_bytes) = (view.column_step(), 2 * panel_bytes);
    match compute {
        Compute::F32 => sgemm::gemm::<sgemm::F32, _>(isa, input, dims, side, step, block_bytes, decode),
        Compute::Bf16 => sgemm::gemm::<sgemm::Bf16, _>(isa, input, dims, side, step, block_bytes, decode),
    }
}

fn parallelism() -> gemm::Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => gemm::Parallelism::None,
        threads => gemm::Parallelism::Rayon(threads),
    }
}

/// Decodes `W[rows, cols]` into the front of `panel`, rows split across threads.
fn decode<'p>(
    view: &WeightView<'_>,
    isa: CheckedIsa,
    rows: Range<usize>,
    cols: Range<usize>,
    panel: &'p mut [f32],
) -> &'p [f32] {
    let width = cols.len();
    let panel = &mut panel[..rows.len() * width];
    let rows_per_task = rows.len().div_ceil(rayon::current_num_threads() * 2).max(1);
    panel.par_chunks_mut(rows_per_task * width).enumerate().for_each(|(task, task_panel)| {
        let first_row = rows.start + task * rows_per_task;
        for (local_row, out) in task_panel.chunks_exact_mut(width).enumerate() {
            view.decode_row(isa, first_row + local_row, cols.clone(), out);
        }
    });
    panel
}

/// How the weight is cut into panels: column bands of at most [`MAX_PANEL_COLS`] (on chunk
/// boundaries for 4-bit), row bands filling the byte budget.
struct Tiles {
    out_features: usize,
    in_features: usize,
    panel_rows: usize,
    panel_cols: usize,
}

impl Tiles {
    fn new(view: &WeightView<'_>, panel_bytes: usize) -> Self {
        let (out_features, in_features) = view.dims();
        let step = view.column_step();
        let panel_cols =
            if in_features <= MAX_PANEL_COLS { in_features } else { MAX_PANEL_COLS / step * step };
        let budget_rows = panel_bytes / (panel_cols * std::mem::size_of::<f32>());
        let panel_rows = (budget_rows / ROW_STEP * ROW_STEP).clamp(ROW_STEP, out_features.max(ROW_STEP));
        Tiles { out_features, in_features, panel_rows, panel_cols }
    }

    fn max_panel_len(&self) -> usize {
        self.panel_rows.min(self.out_features) * self.panel_cols
    }

    fn row_bands(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        (0..self.out_features)
            .step_by(self.panel_rows)
            .map(|start| start..(start + self.panel_rows).min(self.out_features))
    }

    fn col_bands(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        (0..self.in_features)
            .step_by(self.panel_cols)
            .map(|start| start..(start + self.panel_cols).min(self.in_features))
    }
}
