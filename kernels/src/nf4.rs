//! The NF4 data type: the 16 code values bitsandbytes uses for 4-bit NormalFloat.

/// NF4 code values, index 0..15, exactly as bitsandbytes lists them (`get_4bit_type("nf4")`).
///
/// They come from `create_normal_map(offset=0.9677083, use_extra_value=True)`: asymmetric, with
/// 8 positive values, 7 negative ones and an exact zero at index 7. The table is already sorted,
/// so the bin of a value is its code index.
// The digits are bitsandbytes' own (f64 prints of f32 values); keeping them verbatim makes the
// table easy to check against the source.
#[allow(clippy::excessive_precision)]
pub const NF4_CODE: [f32; 16] = [
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
];

/// NF4 is sorted ascending, so binning order and code index coincide.
pub const NF4_SORTED_ORDER: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nf4_code_is_sorted_with_exact_zero_and_unit_ends() {
        assert!(NF4_CODE.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(NF4_CODE[0], -1.0);
        assert_eq!(NF4_CODE[7].to_bits(), 0.0f32.to_bits());
        assert_eq!(NF4_CODE[15], 1.0);
    }
}
