//! Dropout masks drawn from a SplitMix64 stream, many draws at a time.
//!
//! SplitMix64's state is a counter (`state_i = state_0 + i·γ`) and each draw mixes its own state
//! only, so the draws have no dependency on each other and vectorise: with AVX-512DQ eight 64-bit
//! mixes run per instruction. The comparison `next_f64() < p` is done on the integer the float is
//! made from (`(z >> 11) < ⌈p·2⁵³⌉`, exact because `(z >> 11) · 2⁻⁵³` is), so the mask is the one
//! drawing `next_f64` element by element gives, bit for bit.

/// SplitMix64's increment.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// `out[i] = 0` if draw `i` of the stream whose state is `state` before its first draw is below
/// `p` (as `next_f64() < p`), else `keep`. `p` must be in `[0, 1]`.
pub fn dropout_mask(state: u64, p: f64, keep: f32, out: &mut [f32]) {
    assert!((0.0..=1.0).contains(&p), "dropout probability {p} is outside [0, 1]");
    let threshold = threshold(p);
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq") {
        // SAFETY: the CPU has AVX-512F and AVX-512DQ, checked just above.
        unsafe { fill_avx512(state, threshold, keep, out) };
        return;
    }
    fill(state, threshold, keep, out);
}

/// The least 53-bit integer `t` with `t · 2⁻⁵³ >= p`: `(z >> 11) as f64 * 2⁻⁵³ < p` exactly when
/// `(z >> 11) < t`, since the left side is an integer below 2⁵³ scaled exactly by a power of two.
fn threshold(p: f64) -> u64 {
    (p * (1u64 << 53) as f64).ceil() as u64
}

/// [`fill`] compiled for AVX-512 (64-bit multiplies in vectors).
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512DQ.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn fill_avx512(state: u64, threshold: u64, keep: f32, out: &mut [f32]) {
    fill(state, threshold, keep, out);
}

#[inline(always)]
fn fill(state: u64, threshold: u64, keep: f32, out: &mut [f32]) {
    for (i, slot) in out.iter_mut().enumerate() {
        let mut z = state.wrapping_add((i as u64).wrapping_add(1).wrapping_mul(GAMMA));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        *slot = if (z >> 11) < threshold { 0.0 } else { keep };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64's `next_f64` drawn one element after another: the specification.
    fn drawn_in_order(mut state: u64, p: f64, keep: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                state = state.wrapping_add(GAMMA);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                let uniform = (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
                if uniform < p {
                    0.0
                } else {
                    keep
                }
            })
            .collect()
    }

    #[test]
    fn the_threshold_splits_the_draws_where_the_float_comparison_does() {
        // Random draws almost never land on the boundary, so check it directly.
        let scale = 1.0 / (1u64 << 53) as f64;
        for p in [0.0, 1e-300, 0.1, 1.0 / 3.0, 0.25, 0.999_999_999, 1.0] {
            let t = threshold(p);
            assert!(t as f64 * scale >= p, "p {p}: {t} is below p");
            if t > 0 {
                assert!(((t - 1) as f64 * scale) < p, "p {p}: {} is not below p", t - 1);
            }
        }
    }

    #[test]
    fn masks_equal_drawing_in_order_on_every_path() {
        // 0.1 (f64) is not a multiple of 2^-53, so the threshold's rounding up matters.
        for p in [0.0, 0.1, 0.25, 0.5, 1.0 - 1e-12, 1.0] {
            for (state, n) in [(0u64, 0usize), (1, 1), (u64::MAX - 3, 7), (42, 1000), (0x5eed, 4099)] {
                let keep = if p < 1.0 { (1.0 / (1.0 - p)) as f32 } else { 0.0 };
                let expected = drawn_in_order(state, p, keep, n);
                let mut dispatched = vec![f32::NAN; n];
                dropout_mask(state, p, keep, &mut dispatched);
                let mut portable = vec![f32::NAN; n];
                fill(state, threshold(p), keep, &mut portable);
                assert_eq!(dispatched, expected, "p {p}, state {state}, n {n}");
                assert_eq!(portable, expected, "portable, p {p}, state {state}, n {n}");
            }
        }
    }
}
