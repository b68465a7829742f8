//! The FP4 data type of bitsandbytes: 1 sign, 2 exponent and 1 mantissa bit, scaled to [-1, 1].

/// FP4 code values, index 0..15, as bitsandbytes builds them: the raw values
/// `[0, 0.0625, 8, 12, 4, 6, 2, 3]` and their negations, divided by 12 in f32.
///
/// Index 8, the "negative zero" of the FP4 bit layout, is `+0.0`: bitsandbytes writes it as the
/// Python integer `-0`, which is plain 0, so it dequantizes to `+0.0` on every path.
pub const FP4_CODE: [f32; 16] = [
    0.0,
    0.0625 / 12.0,
    8.0 / 12.0,
    1.0, // 12 / 12
    4.0 / 12.0,
    6.0 / 12.0,
    2.0 / 12.0,
    3.0 / 12.0,
    0.0,
    -0.0625 / 12.0,
    -8.0 / 12.0,
    -1.0, // -12 / 12
    -4.0 / 12.0,
    -6.0 / 12.0,
    -2.0 / 12.0,
    -3.0 / 12.0,
];

/// Code indices of [`FP4_CODE`] in ascending value order: the order bitsandbytes' CPU path bins
/// against (`torch.argsort(code)`).
///
/// The two zeros sort index 0 first, index 8 second, so an exact zero maps to index 0 while a tiny
/// *positive* value up to the next midpoint (0.0026) maps to index 8, the sign-bit zero. That is
/// what the CPU backend produces; CUDA's sign-first decision tree disagrees for such values.
pub const FP4_SORTED_ORDER: [u8; 16] = [11, 10, 13, 12, 15, 14, 9, 0, 8, 1, 6, 7, 4, 5, 2, 3];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_order_sorts_the_code_and_is_a_permutation() {
        let sorted: Vec<f32> = FP4_SORTED_ORDER.iter().map(|&idx| FP4_CODE[usize::from(idx)]).collect();
        assert!(sorted.windows(2).all(|pair| pair[0] <= pair[1]), "{sorted:?}");
        let mut seen = [false; 16];
        for &idx in &FP4_SORTED_ORDER {
            seen[usize::from(idx)] = true;
        }
        assert!(seen.iter().all(|&hit| hit));
    }

    #[test]
    fn extremes_are_unit_and_both_zeros_positive() {
        assert_eq!(FP4_CODE[3], 1.0);
        assert_eq!(FP4_CODE[11], -1.0);
        assert_eq!(FP4_CODE[8].to_bits(), 0.0f32.to_bits());
    }
}
