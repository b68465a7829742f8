//! A bounds-checked, single-threaded view of the `gemm` crate for the fused training ops, which
//! run many small products on rayon's threads themselves.

/// `dst[m, n] (+)= Σ_k lhs[m, k] · rhs[k, n]` with explicit (row, column) strides, one thread.
/// Panics (a bug, not bad input) if a stride reaches outside its slice.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(last(m, n, dst_rs, 1) < dst.len(), "gemm: destination out of bounds");
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_rs).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    assert!(last(m, k, lhs_rs, lhs_cs) < lhs.len(), "gemm: left operand out of bounds");
    assert!(last(k, n, rhs_rs, rhs_cs) < rhs.len(), "gemm: right operand out of bounds");
    // SAFETY: the asserts above keep every element the strides reach inside its slice, and `dst`
    // is borrowed mutably, so it overlaps neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
