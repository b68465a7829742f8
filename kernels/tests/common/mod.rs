//! Helpers shared by the tests that compare a fast path (SIMD, CUDA) with the scalar reference.
#![allow(dead_code)]

use kernels::{Direction, QuantWeight};

/// Deterministic values in [-amplitude, amplitude).
pub fn pseudo_random(n_values: usize, seed: u64, amplitude: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    (0..n_values)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amplitude
        })
        .collect()
}

/// Asserts `fast` equals the reference within the magnitude-relative tolerance.
pub fn assert_close(fast: &[f32], reference: &[f32], magnitudes: &[f32], what: &str) {
    assert_eq!(fast.len(), reference.len(), "{what}: length");
    for (idx, ((&fast, &reference), &magnitude)) in fast.iter().zip(reference).zip(magnitudes).enumerate() {
        let tolerance = 1e-5 * magnitude;
        assert!(
            (fast - reference).abs() <= tolerance,
            "{what}: element {idx}: {fast} vs reference {reference} (tolerance {tolerance})"
        );
    }
}

/// `sum_k |x_k| |w_k|` for every output element: the scale of its rounding error.
pub fn magnitudes(weight: &QuantWeight, direction: Direction, input: &[f32], rows: usize) -> Vec<f32> {
    let (out_features, in_features) = weight.matrix_dims().expect("dims");
    let dense = weight.dequantize();
    let (input_features, output_features) = match direction {
        Direction::Forward => (in_features, out_features),
        Direction::Backward => (out_features, in_features),
    };
    let mut sums = vec![0.0f32; rows * output_features];
    for row in 0..rows {
        for out_idx in 0..output_features {
            sums[row * output_features + out_idx] = (0..input_features)
                .map(|in_idx| {
                    let w = match direction {
                        Direction::Forward => dense[out_idx * in_features + in_idx],
                        Direction::Backward => dense[in_idx * in_features + out_idx],
                    };
                    (input[row * input_features + in_idx] * w).abs()
                })
                .sum();
        }
    }
    sums
}
