//! Seeded pseudo-random test inputs, and the comparisons, for the unit tests of the fused ops.

use candle_core::{Device, Tensor, Var};

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

/// Backpropagates `sum(fused · weight)` and `sum(reference · weight)` and asserts that each named
/// variable's two gradients agree within 1e-5 of the reference's largest value (at least 1).
pub(crate) fn assert_same_gradients(
    fused: &Tensor,
    reference: &Tensor,
    weight: &Tensor,
    vars: &[(&str, &Var)],
    context: &str,
) {
    let fused_grads = (fused * weight).unwrap().sum_all().unwrap().backward().unwrap();
    let reference_grads = (reference * weight).unwrap().sum_all().unwrap().backward().unwrap();
    for (name, var) in vars {
        let got = fused_grads.get(var).unwrap();
        let want = reference_grads.get(var).unwrap();
        assert!(
            max_diff(got, want) < 1e-5 * max_abs(want).max(1.0),
            "gradient of {name} ({context}) differs"
        );
    }
}
