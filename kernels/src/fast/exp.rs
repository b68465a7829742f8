//! `exp` over a slice of f32, many values per instruction.
//!
//! libm's `expf` is one call per value; the training ops (SwiGLU's sigmoid, the attention softmax)
//! take millions of them per step. This is Cephes' `expf` written without branches so it
//! vectorises: `x = n·ln 2 + r` with `n` rounded to nearest and `|r| <= ln 2 / 2` (Cody–Waite
//! split of ln 2), a degree-7 polynomial for `e^r`, and `2^n` put into the exponent bits. Within 2
//! ulp of `f32::exp` on `[-87.3, 88]` (tested below); larger inputs give `e^88`, smaller ones 0,
//! NaN stays NaN.

/// Inputs above this are clamped: `e^88` is finite in f32 and `n` stays at most 127.
const MAX_INPUT: f32 = 88.0;
/// Below this `e^x` is under f32's smallest normal number; the result is 0.
const MIN_INPUT: f32 = -87.33;

/// `values[i] = e^values[i]`.
pub fn exp_in_place(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        unsafe { exp_avx512(values) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        unsafe { exp_avx2(values) };
        return;
    }
    exp_portable(values);
}

/// [`exp_portable`] compiled for AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn exp_avx512(values: &mut [f32]) {
    exp_portable(values);
}

/// [`exp_portable`] compiled for AVX2 with FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_avx2(values: &mut [f32]) {
    exp_portable(values);
}

#[inline(always)]
fn exp_portable(values: &mut [f32]) {
    for value in values.iter_mut() {
        *value = exp(*value);
    }
}

/// One value; branch-free so that loops over it vectorise.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 = LN2_HI + LN2_LO, LN2_HI with few enough bits that n · LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    // Comparisons with NaN are false, so NaN passes both clamps and stays NaN.
    let clamped = if x > MAX_INPUT { MAX_INPUT } else { x };
    let clamped = if clamped < MIN_INPUT { MIN_INPUT } else { clamped };
    let shifted = clamped * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let r2 = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e_r = p * r2 + r + 1.0;
    // 2^n for n in -126..=127, built in the exponent field. n is read from the bits of `shifted`
    // (whose low mantissa bits hold it) rather than cast, which would not vectorise; for NaN it
    // is garbage, and the product below NaN anyway.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let two_n = f32::from_bits(n_bits.wrapping_add(127) << 23);
    let result = e_r * two_n;
    if x < MIN_INPUT {
        0.0
    } else {
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn within_two_ulp_of_libm() {
        // A dense sweep of the whole finite range plus the edges; every dispatch path runs the
        // same code, checked through both the public entry and the portable one.
        let mut inputs: Vec<f32> = (0..200_001).map(|i| -87.3 + 175.3 * i as f32 / 200_000.0).collect();
        inputs.extend([0.0, -0.0, 1.0, -1.0, 1e-8, -1e-8, 0.5, 87.9, -87.0, 10.0, -10.0]);
        inputs.retain(|&x| x <= MAX_INPUT);
        for entry in [exp_in_place as fn(&mut [f32]), exp_portable] {
            let mut got = inputs.clone();
            entry(&mut got);
            for (&x, &y) in inputs.iter().zip(&got) {
                let want = x.exp();
                assert!(ulps(y, want) <= 2, "exp({x}) = {y}, libm {want}");
            }
        }
    }

    #[test]
    fn edges_clamp_and_nan_stays_nan() {
        let mut values = [f32::NEG_INFINITY, -1000.0, -87.5, 1000.0, f32::INFINITY, f32::NAN];
        exp_in_place(&mut values);
        assert_eq!(&values[..3], &[0.0, 0.0, 0.0]);
        assert!(ulps(values[3], MAX_INPUT.exp()) <= 2, "{}", values[3]);
        assert_eq!(values[3], values[4]);
        assert!(values[5].is_nan());
    }
}
