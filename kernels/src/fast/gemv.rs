//! The fused path for a few activation rows: every weight row is decoded once per group of up to
//! four activation rows and consumed straight from registers; threads split the weight rows
//! (forward) or the input features (backward).

use std::borrow::Cow;

use rayon::prelude::*;

use super::four_bit_rows::{join_chunks, split_chunks};
use super::isa::CheckedIsa;
use super::FusedRows;

/// Activation rows sharing one decode of a weight row.
const TOKEN_GROUP: usize = 4;

/// `[rows, in] -> [rows, out]`.
pub(super) fn forward(
    kernel: FusedRows<'_>,
    isa: CheckedIsa,
    x: &[f32],
    n_rows: usize,
    (out_features, in_features): (usize, usize),
) -> Vec<f32> {
    let x: Cow<[f32]> = if kernel.split_order() {
        let mut split = vec![0.0; x.len()];
        split_chunks(x, &mut split);
        Cow::Owned(split)
    } else {
        Cow::Borrowed(x)
    };
    let x_row = |token: usize| &x[token * in_features..(token + 1) * in_features];
    // Several tasks per thread so that uneven progress evens out.
    let rows_per_task = out_features.div_ceil(rayon::current_num_threads() * 4).max(16);
    // Weight-row-major `[out, rows]`: each task writes a contiguous range.
    let mut transposed = vec![0.0f32; out_features * n_rows];
    transposed.par_chunks_mut(rows_per_task * n_rows).enumerate().for_each(|(task, task_out)| {
        let mut done = 0;
        if n_rows == 1 {
            // `transposed` is the output itself: four rows per pass where the kernel allows.
            while done + 4 <= task_out.len() {
                let Some(sums) = kernel.dot_rows4(isa, task * rows_per_task + done, x_row(0)) else { break };
                task_out[done..done + 4].copy_from_slice(&sums);
                done += 4;
            }
        }
        for (local_row, sums) in task_out.chunks_mut(n_rows).enumerate().skip(done / n_rows) {
            let row = task * rows_per_task + local_row;
            let mut token = 0;
            while token + TOKEN_GROUP <= n_rows {
                let group: [&[f32]; TOKEN_GROUP] = std::array::from_fn(|offset| x_row(token + offset));
                sums[token..token + TOKEN_GROUP].copy_from_slice(&kernel.dot_row(isa, row, group));
                token += TOKEN_GROUP;
            }
            for (token, sum) in sums.iter_mut().enumerate().skip(token) {
                [*sum] = kernel.dot_row(isa, row, [x_row(token)]);
            }
        }
    });
    transpose(&transposed, out_features, n_rows)
}

/// `[rows, out] -> [rows, in]`.
pub(super) fn backward(
    kernel: FusedRows<'_>,
    isa: CheckedIsa,
    grad: &[f32],
    n_rows: usize,
    (out_features, in_features): (usize, usize),
) -> Vec<f32> {
    // `coefs[o]` are the gradients of weight row `o` for every activation row.
    let coefs = transpose(grad, n_rows, out_features);
    // Segments of whole 32-element chunks, a few per thread.
    let segment_width = in_features.div_ceil(rayon::current_num_threads() * 4).next_multiple_of(32).max(64);
    let segments: Vec<_> = (0..in_features)
        .step_by(segment_width)
        .map(|start| start..(start + segment_width).min(in_features))
        .collect();
    let partials: Vec<Vec<f32>> = segments
        .par_iter()
        .map(|cols| {
            let mut partial = vec![0.0f32; n_rows * cols.len()];
            for (row, row_coefs) in coefs.chunks_exact(n_rows).enumerate() {
                kernel.axpy_row(isa, row, cols.clone(), row_coefs, &mut partial, cols.len());
            }
            partial
        })
        .collect();
    let mut out = vec![0.0f32; n_rows * in_features];
    for (cols, partial) in segments.iter().zip(&partials) {
        for (token, values) in partial.chunks_exact(cols.len()).enumerate() {
            let target = &mut out[token * in_features + cols.start..token * in_features + cols.end];
            if kernel.split_order() {
                join_chunks(values, target);
            } else {
                target.copy_from_slice(values);
            }
        }
    }
    out
}

/// Row-major `[n_rows, n_cols]` -> row-major `[n_cols, n_rows]`.
fn transpose(values: &[f32], n_rows: usize, n_cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; values.len()];
    for (row, row_values) in values.chunks_exact(n_cols).enumerate() {
        for (col, &value) in row_values.iter().enumerate() {
            out[col * n_rows + row] = value;
        }
    }
    out
}
