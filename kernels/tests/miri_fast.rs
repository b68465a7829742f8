//! Small shapes for running the `unsafe` SIMD kernels under Miri, which checks every pointer
//! access against its allocation (the full `fast_paths.rs` sweep is too slow to interpret):
//!
//! ```sh
//! MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-ignore-leaks" RUSTFLAGS="-C target-feature=+avx2,+fma" \
//!     cargo +nightly miri test -p kernels --test miri_fast
//! ```
//!
//! Tree borrows, because rayon's crossbeam-epoch breaks the stricter stacked-borrows model on its
//! own; ignoring leaks, because rayon's pool threads outlive `main`.
//!
//! Under Miri, CPU features come from `-C target-feature`, so the AVX2 kernels run when it names
//! them; AVX-512 intrinsics are largely not implemented by Miri and are covered by the native
//! tests only. Natively this file is an ordinary (fast) test of the same paths.

use kernels::fast::{product, ProductConfig, ProductPath};
use kernels::{
    product_reference, Direction, FourBitConfig, FourBitTensor, Int8Weight, Isa, QuantInput, QuantWeight,
};

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * 0.25
        })
        .collect()
}

fn isas() -> Vec<Isa> {
    // Miri implements AVX2 and FMA intrinsics, not AVX-512.
    Isa::available().into_iter().filter(|isa| !cfg!(miri) || *isa != Isa::Avx512).collect()
}

#[test]
fn fused_kernels_stay_in_bounds_and_match_the_reference() {
    // 4-bit rows aligned to blocks (SIMD kernels), int8 with SIMD tails, rows straddling blocks.
    let nf4 = FourBitConfig::default();
    let mut weights = vec![
        QuantWeight::FourBit(FourBitTensor::quantize(&values(3 * 128, 1), &[3, 128], &nf4).expect("nf4")),
        QuantWeight::Int8(Int8Weight::quantize(&values(5 * 37, 3), 5, 37, QuantInput::AsIs).expect("int8")),
    ];
    if !cfg!(miri) {
        // Rows that straddle blocks take the tiled path, whose `gemm` crate Miri cannot run.
        weights.push(QuantWeight::FourBit(
            FourBitTensor::quantize(&values(3 * 70, 2), &[3, 70], &nf4).expect("nf4"),
        ));
    }
    for weight in &weights {
        let (out_features, in_features) = weight.matrix_dims().expect("matrix");
        for direction in [Direction::Forward, Direction::Backward] {
            let width = if direction == Direction::Forward { in_features } else { out_features };
            for rows in [1, 2, 4] {
                let input = values(rows * width, 7 + rows as u64);
                let reference = product_reference(weight, direction, &input, rows).expect("reference");
                for isa in isas() {
                    let config = ProductConfig { path: ProductPath::Fused, isa, ..ProductConfig::default() };
                    let fast = product(weight, direction, &input, rows, &config).expect("fast path");
                    assert_eq!(fast.len(), reference.len());
                    for (fast, reference) in fast.iter().zip(&reference) {
                        assert!(
                            (fast - reference).abs() <= 1e-4,
                            "{isa:?} {direction:?} rows {rows}: {fast} vs {reference}"
                        );
                    }
                }
            }
        }
    }
}
