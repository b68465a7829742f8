//! Seeded pseudo-random test inputs, and the comparisons, for the unit tests of the fused ops.

use candle_core::{Device, Tensor};

/// `shape.iter().product()` values in `[-1, 1)` from a seeded LCG.
pub(crate) fn random_values(shape: &[usize], seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..shape.iter().product::<usize>())
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// [`random_values`] as a CPU tensor of `shape`.
pub(crate) fn random(shape: &[usize], seed: u64) -> Tensor {
    Tensor::from_vec(random_values(shape, seed), shape, &Device::Cpu).unwrap()
}

/// The largest absolute value of `a`.
pub(crate) fn max_abs(a: &Tensor) -> f32 {
    a.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
}

/// The largest absolute difference of `a` and `b`.
pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}
