//! Parity with bitsandbytes: the scalar formats against fixtures written by `scripts/gen_bnb_fixtures.py`.
//!
//! Codes, absmax, nested statistics, CB/SCB, int32 products, dequantized values, the int8 forward
//! and its backward must match bit for bit. Two stated exceptions: FP4 zeros may differ in sign
//! (see `assert_bits_eq_any_zero_sign`) and a single-row backward, which torch's BLAS sums in
//! another order, is compared with a rounding bound.

use kernels::double_quant::NESTED_BLOCKSIZE;
use kernels::dynamic_map::{dequantize_blockwise, quantize_blockwise, signed_dynamic_map};
use kernels::fast::int8_vectorwise_forward;
use kernels::int8_matmul::int8_matmul_i32;
use kernels::{
    int8_linear_backward_input, int8_linear_forward, BlockScales, FourBitConfig, FourBitFormat,
    FourBitTensor, Int8Activation, Int8LinearConfig, Int8Weight, Isa, QuantInput,
};
use safetensors::{Dtype, SafeTensors};

/// `real_*` cases are slices of weights of the default model (SmolLM2-135M, dequantized from Q4_1);
/// `zeros` holds an all-zero full block and an all-zero tail; `scaling` values whose NF4 bin tells
/// reciprocal-multiply (full blocks) from division (tail); `ties_*` sit exactly on the midpoints.
const FOUR_BIT_CASES: [&str; 10] = [
    "r1x65",
    "r3x100",
    "r7x333",
    "r64x64",
    "r257x129",
    "real_attn_q",
    "zeros",
    "scaling",
    "ties_nf4",
    "ties_fp4",
];
const INT8_CASES: [&str; 5] = ["m5x96x48", "m7x70x33", "m1x64x16", "m4x40x24", "real_attn_k"];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|err| panic!("cannot read fixture {path}: {err}"))
}

struct Fixture<'a>(SafeTensors<'a>);

impl Fixture<'_> {
    fn raw(&self, name: &str, dtype: Dtype) -> &[u8] {
        let view = self.0.tensor(name).unwrap_or_else(|err| panic!("fixture tensor {name}: {err}"));
        assert_eq!(view.dtype(), dtype, "dtype of fixture tensor {name}");
        view.data()
    }

    fn f32s(&self, name: &str) -> Vec<f32> {
        let data = self.raw(name, Dtype::F32);
        data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    }

    fn shape(&self, name: &str) -> Vec<usize> {
        self.0.tensor(name).unwrap_or_else(|err| panic!("fixture tensor {name}: {err}")).shape().to_vec()
    }

    fn u8s(&self, name: &str) -> Vec<u8> {
        self.raw(name, Dtype::U8).to_vec()
    }

    fn i8s(&self, name: &str) -> Vec<i8> {
        self.raw(name, Dtype::I8).iter().map(|&b| b as i8).collect()
    }

    fn i32s(&self, name: &str) -> Vec<i32> {
        let data = self.raw(name, Dtype::I32);
        data.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    }

    fn indices(&self, name: &str) -> Vec<usize> {
        let data = self.raw(name, Dtype::I64);
        data.chunks_exact(8)
            .map(|b| {
                let value = i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                usize::try_from(value).unwrap_or_else(|_| panic!("negative index {value} in {name}"))
            })
            .collect()
    }
}

/// Bitwise equality of f32 slices, reporting the first differences.
fn assert_bits_eq(what: &str, ours: &[f32], expected: &[f32]) {
    assert_equal_where(what, ours, expected, |a, b| a.to_bits() == b.to_bits());
}

/// Bitwise equality except that `+0.0` and `-0.0` count as equal.
///
/// Only for FP4 dequantization: bitsandbytes' CPU kernel returns `-0.0` for the sign-bit zero code
/// when the element count is not a multiple of the block size, `+0.0` otherwise, and its PyTorch
/// path (odd last dimension) always `+0.0`. The Rust reference always gives `+0.0`.
fn assert_bits_eq_any_zero_sign(what: &str, ours: &[f32], expected: &[f32]) {
    assert_equal_where(what, ours, expected, |a, b| a.to_bits() == b.to_bits() || (a == 0.0 && b == 0.0));
}

fn assert_equal_where(what: &str, ours: &[f32], expected: &[f32], same: impl Fn(f32, f32) -> bool) {
    assert_eq!(ours.len(), expected.len(), "{what}: length");
    let diffs: Vec<String> = ours
        .iter()
        .zip(expected)
        .enumerate()
        .filter(|(_, (&a, &b))| !same(a, b))
        .map(|(idx, (a, b))| format!("[{idx}] {a:e} vs {b:e}"))
        .collect();
    assert!(
        diffs.is_empty(),
        "{what}: {} of {} differ, first: {:?}",
        diffs.len(),
        ours.len(),
        &diffs[..diffs.len().min(5)]
    );
}

fn assert_bytes_eq<T: PartialEq + std::fmt::Debug>(what: &str, ours: &[T], expected: &[T]) {
    assert_eq!(ours.len(), expected.len(), "{what}: length");
    let first = ours.iter().zip(expected).position(|(a, b)| a != b);
    if let Some(idx) = first {
        panic!("{what}: first difference at [{idx}]: {:?} vs {:?}", ours[idx], expected[idx]);
    }
}

#[test]
fn dynamic_map_matches_bitsandbytes_table() {
    let bytes = fixture("dynamic_map.safetensors");
    let tensors = Fixture(SafeTensors::deserialize(&bytes).expect("dynamic map fixture"));
    assert_bits_eq("signed dynamic map", &signed_dynamic_map(), &tensors.f32s("dynamic_map"));
}

#[test]
fn four_bit_codes_absmax_and_dequant_match_bitsandbytes() {
    let bytes = fixture("four_bit.safetensors");
    let tensors = Fixture(SafeTensors::deserialize(&bytes).expect("four-bit fixture"));
    for case in FOUR_BIT_CASES {
        let input = tensors.f32s(&format!("{case}.input"));
        let shape = tensors.shape(&format!("{case}.input"));
        for (format, tag) in [(FourBitFormat::Nf4, "nf4"), (FourBitFormat::Fp4, "fp4")] {
            let assert_dequant_eq = match format {
                FourBitFormat::Nf4 => assert_bits_eq,
                FourBitFormat::Fp4 => assert_bits_eq_any_zero_sign,
            };
            let prefix = format!("{case}.{tag}");
            let config = FourBitConfig { format, blocksize: 64, double_quant: false };
            let plain = FourBitTensor::quantize(&input, &shape, &config).expect("plain quantize");
            assert_bytes_eq(
                &format!("{prefix} packed"),
                plain.codes(),
                &tensors.u8s(&format!("{prefix}.packed")),
            );
            assert_bits_eq(
                &format!("{prefix} absmax"),
                &plain.scales().absmax(),
                &tensors.f32s(&format!("{prefix}.absmax")),
            );
            assert_dequant_eq(
                &format!("{prefix} dequant"),
                &plain.dequantize(),
                &tensors.f32s(&format!("{prefix}.dequant")),
            );

            let double =
                FourBitTensor::quantize(&input, &shape, &FourBitConfig { double_quant: true, ..config })
                    .expect("double quantize");
            assert_bytes_eq(&format!("{prefix} dq packed"), double.codes(), plain.codes());
            let BlockScales::Double(stats) = double.scales() else {
                panic!("{prefix}: double quantization produced plain scales");
            };
            assert_bits_eq(
                &format!("{prefix} offset"),
                &[stats.offset()],
                &tensors.f32s(&format!("{prefix}.dq.offset")),
            );
            assert_bytes_eq(
                &format!("{prefix} nested codes"),
                stats.codes(),
                &tensors.u8s(&format!("{prefix}.dq.absmax_codes")),
            );
            assert_bits_eq(
                &format!("{prefix} nested absmax"),
                stats.nested_absmax(),
                &tensors.f32s(&format!("{prefix}.dq.nested_absmax")),
            );
            assert_bits_eq(
                &format!("{prefix} nested quant map"),
                &signed_dynamic_map(),
                &tensors.f32s(&format!("{prefix}.dq.nested_code")),
            );
            assert_dequant_eq(
                &format!("{prefix} dq dequant"),
                &double.dequantize(),
                &tensors.f32s(&format!("{prefix}.dq.dequant")),
            );
        }
    }
}

#[test]
fn stored_four_bit_parts_dequantize_like_bitsandbytes() {
    let bytes = fixture("four_bit.safetensors");
    let tensors = Fixture(SafeTensors::deserialize(&bytes).expect("four-bit fixture"));
    let shape = tensors.shape("r257x129.input");
    let prefix = "r257x129.nf4";
    let stats = kernels::DoubleQuantAbsmax::from_parts(
        tensors.f32s(&format!("{prefix}.dq.offset"))[0],
        tensors.u8s(&format!("{prefix}.dq.absmax_codes")),
        tensors.f32s(&format!("{prefix}.dq.nested_absmax")),
    )
    .expect("nested statistics fit");
    let tensor = FourBitTensor::from_parts(
        FourBitFormat::Nf4,
        &shape,
        64,
        tensors.u8s(&format!("{prefix}.packed")),
        BlockScales::Double(stats),
    )
    .expect("packed codes fit");
    assert_bits_eq(
        "r257x129 stored dequant",
        &tensor.dequantize(),
        &tensors.f32s(&format!("{prefix}.dq.dequant")),
    );
}

#[test]
fn blockwise_8bit_all_zero_block_matches_bitsandbytes() {
    let bytes = fixture("four_bit.safetensors");
    let tensors = Fixture(SafeTensors::deserialize(&bytes).expect("four-bit fixture"));
    let map = signed_dynamic_map();
    let input = tensors.f32s("blockwise_zero.input");
    let (codes, absmax) = quantize_blockwise(&input, &map, NESTED_BLOCKSIZE).expect("blockwise quantize");
    assert_bytes_eq("blockwise codes", &codes, &tensors.u8s("blockwise_zero.codes"));
    assert_bits_eq("blockwise absmax", &absmax, &tensors.f32s("blockwise_zero.absmax"));
    let restored =
        dequantize_blockwise(&codes, &absmax, &map, NESTED_BLOCKSIZE).expect("blockwise dequantize");
    assert_bits_eq("blockwise dequant", &restored, &tensors.f32s("blockwise_zero.dequant"));
}

#[test]
fn int8_quantization_and_int32_matmul_match_bitsandbytes() {
    let bytes = fixture("int8.safetensors");
    let tensors = Fixture(SafeTensors::deserialize(&bytes).expect("int8 fixture"));
    for case in INT8_CASES {
        let prefix = format!("int8.{case}");
        let [out_features, in_features] = dims(&tensors.shape(&format!("{prefix}.weight")));
        let [rows, _] = dims(&tensors.shape(&format!("{prefix}.x")));
        let weight = tensors.f32s(&format!("{prefix}.weight"));

        let direct =
            Int8Weight::quantize(&weight, out_features, in_features, QuantInput::AsIs).expect("weight");
        assert_bytes_eq(
            &format!("{prefix} CB (f32)"),
            direct.cb(),
            &tensors.i8s(&format!("{prefix}.cb_f32")),
        );
        assert_bits_eq(
            &format!("{prefix} SCB (f32)"),
            direct.scb(),
            &tensors.f32s(&format!("{prefix}.scb_f32")),
        );

        let layer =
            Int8Weight::quantize(&weight, out_features, in_features, QuantInput::RoundToF16).expect("weight");
        for tag in ["t6", "t0"] {
            assert_bytes_eq(
                &format!("{prefix} {tag} CB"),
                layer.cb(),
                &tensors.i8s(&format!("{prefix}.{tag}.cb")),
            );
            assert_bits_eq(
                &format!("{prefix} {tag} SCB"),
                layer.scb(),
                &tensors.f32s(&format!("{prefix}.{tag}.scb")),
            );
        }

        let x = tensors.f32s(&format!("{prefix}.x"));
        let act = Int8Activation::quantize(&x, rows, in_features, 6.0, QuantInput::RoundToF16)
            .expect("activations");
        assert_bytes_eq(&format!("{prefix} CA"), act.ca(), &tensors.i8s(&format!("{prefix}.ca")));
        assert_bits_eq(&format!("{prefix} SCA"), act.sca(), &tensors.f32s(&format!("{prefix}.sca")));
        assert_eq!(
            act.outlier_cols(),
            tensors.indices(&format!("{prefix}.outlier_cols")),
            "{prefix} outlier columns"
        );
        let acc = int8_matmul_i32(&act, &layer).expect("int32 matmul");
        assert_bytes_eq(
            &format!("{prefix} int32 matmul"),
            &acc,
            &tensors.i32s(&format!("{prefix}.int32_mm")),
        );
    }
}

#[test]
fn int8_forward_without_decomposition_matches_bitsandbytes() {
    let bytes = fixture("int8.safetensors");
    let tensors = Fixture(SafeTensors::deserialize(&bytes).expect("int8 fixture"));
    for case in INT8_CASES {
        let prefix = format!("int8.{case}");
        let (layer, x, rows, bias) = layer_inputs(&tensors, &prefix);
        let config = Int8LinearConfig { threshold: 0.0, input: QuantInput::RoundToF16 };
        let out = int8_linear_forward(&x, rows, &layer, Some(&bias), &config).expect("forward");
        let expected = tensors.f32s(&format!("{prefix}.t0.out"));
        assert_bits_eq(&format!("{prefix} forward, threshold 0"), &out, &expected);
        // The fast path (VNNI where the CPU has it) at every SIMD level.
        for isa in Isa::available() {
            let fast =
                int8_vectorwise_forward(&x, rows, &layer, Some(&bias), &config, isa).expect("fast forward");
            assert_bits_eq(&format!("{prefix} fast forward ({isa:?}), threshold 0"), &fast, &expected);
        }
    }
}

/// The outlier term and the backward are f32 dot products that bitsandbytes hands to torch's BLAS.
/// For these multi-row products that BLAS runs one FMA chain in index order, as the reference does,
/// so they match bit for bit. A single row goes through the BLAS GEMV kernel, which sums in another
/// order; there a reordered sum of `n` terms may differ by about `n * eps * sum|terms|`.
#[test]
fn int8_outlier_forward_and_backward_match_bitsandbytes() {
    let bytes = fixture("int8.safetensors");
    let tensors = Fixture(SafeTensors::deserialize(&bytes).expect("int8 fixture"));
    for case in INT8_CASES {
        let prefix = format!("int8.{case}");
        let (layer, x, rows, bias) = layer_inputs(&tensors, &prefix);
        let in_features = layer.in_features();
        let out_features = layer.out_features();

        let out = int8_linear_forward(&x, rows, &layer, Some(&bias), &Int8LinearConfig::default())
            .expect("forward");
        let expected = tensors.f32s(&format!("{prefix}.t6.out"));
        assert_bits_eq(&format!("{prefix} forward, threshold 6"), &out, &expected);
        for isa in Isa::available() {
            let fast =
                int8_vectorwise_forward(&x, rows, &layer, Some(&bias), &Int8LinearConfig::default(), isa)
                    .expect("fast forward");
            assert_bits_eq(&format!("{prefix} fast forward ({isa:?}), threshold 6"), &fast, &expected);
        }

        let grad_out = tensors.f32s(&format!("{prefix}.grad_out"));
        let grad_x = int8_linear_backward_input(&grad_out, rows, &layer).expect("backward");
        let backward_weight = layer.dequantize_for_backward();
        for tag in ["t6", "t0"] {
            let expected = tensors.f32s(&format!("{prefix}.{tag}.grad_x"));
            if rows > 1 {
                assert_bits_eq(&format!("{prefix} {tag} grad_x"), &grad_x, &expected);
                continue;
            }
            for (col, (&ours, &theirs)) in grad_x.iter().zip(&expected).enumerate() {
                let terms: f32 = (0..out_features)
                    .map(|o| (grad_out[o] * backward_weight[o * in_features + col]).abs())
                    .sum();
                let bound = 2.0 * out_features as f32 * f32::EPSILON * terms;
                assert!(
                    (ours - theirs).abs() <= bound,
                    "{prefix} {tag} grad_x [0,{col}]: {ours} vs {theirs}"
                );
            }
        }
    }
}

fn layer_inputs(tensors: &Fixture, prefix: &str) -> (Int8Weight, Vec<f32>, usize, Vec<f32>) {
    let [out_features, in_features] = dims(&tensors.shape(&format!("{prefix}.weight")));
    let [rows, _] = dims(&tensors.shape(&format!("{prefix}.x")));
    let layer = Int8Weight::from_parts(
        tensors.i8s(&format!("{prefix}.t6.cb")),
        tensors.f32s(&format!("{prefix}.t6.scb")),
        out_features,
        in_features,
    )
    .expect("stored CB/SCB fit");
    (layer, tensors.f32s(&format!("{prefix}.x")), rows, tensors.f32s(&format!("{prefix}.bias")))
}

fn dims(shape: &[usize]) -> [usize; 2] {
    match shape {
        &[rows, cols] => [rows, cols],
        other => panic!("expected a matrix, got shape {other:?}"),
    }
}
