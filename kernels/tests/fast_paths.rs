//! The fast f32 paths of `QuantLinear` (fused kernels, tiled GEMM, every SIMD level this CPU has)
//! against the scalar reference `product_reference`, on aligned, odd and tail shapes.
//!
//! The fast paths sum in another order than the reference, so results are compared per element
//! with a tolerance relative to the magnitude of the terms: `|fast - ref| <= 1e-5 * sum_k |x_k w_k|`
//! (f32 rounding of a k-term dot product is at most about `k * 6e-8` of that sum and, with random
//! signs, far less). A wrong index, a dropped tail or a misplaced nibble is off by a whole term.

mod common;

use candle_core::{Device, Module, Tensor, Var};
use common::{assert_close, magnitudes, pseudo_random};
use kernels::fast::{decode_panel, product, Compute, ProductConfig, ProductPath};
use kernels::{
    product_reference, Direction, FourBitConfig, FourBitFormat, FourBitTensor, Int8Weight, Isa, Q8_0Weight,
    QuantInput, QuantLinear, QuantWeight,
};

const ROW_COUNTS: [usize; 6] = [1, 3, 5, 15, 17, 256];

/// Named weights `[out, in]`: 4-bit rows aligned to blocks (fused kernels) and not (element-wise
/// decoding, rows starting mid-byte), FP4 with blocks of 32, int8 with widths that leave SIMD tails,
/// Q8_0 with one block, an odd number of blocks per row, and rows wider than a panel.
fn weights() -> Vec<(String, QuantWeight)> {
    let nf4 = FourBitConfig::default();
    let nf4_plain_128 = FourBitConfig { blocksize: 128, double_quant: false, ..nf4 };
    let fp4_32 = FourBitConfig { format: FourBitFormat::Fp4, blocksize: 32, double_quant: false };
    let four_bit = [
        (192, 576, nf4),
        (48, 128, nf4_plain_128),
        (37, 96, fp4_32),
        (33, 70, nf4),    // in not a multiple of 64: blocks straddle rows
        (17, 33, fp4_32), // odd in: rows start on a low nibble
        (20, 4160, nf4),  // wider than one panel
        (3, 8256, nf4),   // 129 blocks a row: row scales decoded into a heap buffer
        (300, 128, nf4),  // backward sums over 300 outputs: more than one inner block
    ];
    let mut named = Vec::new();
    for (seed, (out_features, in_features, config)) in four_bit.into_iter().enumerate() {
        let dense = pseudo_random(out_features * in_features, seed as u64 + 10, 0.2);
        let tensor = FourBitTensor::quantize(&dense, &[out_features, in_features], &config).expect("4-bit");
        let name = format!(
            "{:?}/{}{} {out_features}x{in_features}",
            config.format,
            config.blocksize,
            if config.double_quant { "dq" } else { "" }
        );
        named.push((name, QuantWeight::FourBit(tensor)));
    }
    for (seed, (out_features, in_features)) in
        [(192, 576), (20, 70), (9, 7), (20, 4170)].into_iter().enumerate()
    {
        let dense = pseudo_random(out_features * in_features, seed as u64 + 30, 0.2);
        let weight = Int8Weight::quantize(&dense, out_features, in_features, QuantInput::AsIs).expect("int8");
        named.push((format!("int8 {out_features}x{in_features}"), QuantWeight::Int8(weight)));
    }
    for (seed, (out_features, in_features)) in [(192, 576), (7, 32), (20, 4160)].into_iter().enumerate() {
        let codes: Vec<i8> = pseudo_random(out_features * in_features, seed as u64 + 50, 127.9)
            .into_iter()
            .map(|value| value as i8)
            .collect();
        let scales: Vec<f32> = pseudo_random(codes.len() / 32, seed as u64 + 60, 1.0)
            .into_iter()
            .map(|value| kernels::int8::round_to_f16(1e-3 + value.abs() * 2e-3))
            .collect();
        let weight = Q8_0Weight::from_parts(codes, scales, out_features, in_features).expect("q8_0");
        named.push((format!("q8_0 {out_features}x{in_features}"), QuantWeight::Q8_0(weight)));
    }
    named
}

/// Every path and SIMD level, plus a tiny panel budget that forces many tiles.
fn configs() -> Vec<ProductConfig> {
    let mut configs = Vec::new();
    for isa in Isa::available() {
        for path in [ProductPath::Auto, ProductPath::Fused, ProductPath::Tiled] {
            configs.push(ProductConfig { path, isa, ..ProductConfig::default() });
        }
        configs.push(ProductConfig {
            path: ProductPath::Tiled,
            isa,
            panel_bytes: 4096,
            ..ProductConfig::default()
        });
    }
    configs
}

fn check_direction(name: &str, weight: &QuantWeight, direction: Direction, rows: usize) {
    let (out_features, in_features) = weight.matrix_dims().expect("dims");
    let input_features = if direction == Direction::Forward { in_features } else { out_features };
    let input = pseudo_random(rows * input_features, rows as u64, 1.0);
    let reference = product_reference(weight, direction, &input, rows).expect("reference");
    let magnitudes = magnitudes(weight, direction, &input, rows);
    for config in configs() {
        let fast = product(weight, direction, &input, rows, &config).expect("fast product");
        let what = format!("{name} {direction:?} rows {rows} {:?} {}", config.path, config.isa.name());
        assert_close(&fast, &reference, &magnitudes, &what);
    }
}

#[test]
fn forward_equals_reference_on_every_path() {
    for (name, weight) in weights() {
        for rows in ROW_COUNTS {
            check_direction(&name, &weight, Direction::Forward, rows);
        }
    }
}

#[test]
fn backward_equals_reference_on_every_path() {
    for (name, weight) in weights() {
        for rows in ROW_COUNTS {
            check_direction(&name, &weight, Direction::Backward, rows);
        }
    }
}

/// `x` rounded to bfloat16, to nearest with ties to even (finite values).
fn round_bf16(x: f32) -> f32 {
    let bits = x.to_bits();
    f32::from_bits(bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) & 0xffff_0000)
}

/// The product with the input and the dequantized weight both rounded to bf16, summed in f64.
fn bf16_reference(weight: &QuantWeight, direction: Direction, input: &[f32], rows: usize) -> Vec<f32> {
    let (out_features, in_features) = weight.matrix_dims().expect("dims");
    let dense: Vec<f64> = weight.dequantize().into_iter().map(|w| f64::from(round_bf16(w))).collect();
    let (input_features, output_features) = match direction {
        Direction::Forward => (in_features, out_features),
        Direction::Backward => (out_features, in_features),
    };
    let mut out = vec![0.0f32; rows * output_features];
    for row in 0..rows {
        let x = &input[row * input_features..(row + 1) * input_features];
        for (out_idx, value) in out[row * output_features..(row + 1) * output_features].iter_mut().enumerate()
        {
            let sum: f64 = x
                .iter()
                .enumerate()
                .map(|(in_idx, &x)| {
                    let w = match direction {
                        Direction::Forward => dense[out_idx * in_features + in_idx],
                        Direction::Backward => dense[in_idx * in_features + out_idx],
                    };
                    f64::from(round_bf16(x)) * w
                })
                .sum();
            *value = sum as f32;
        }
    }
    out
}

/// The tiled path in bf16 equals the product of the bf16-rounded operands up to f32 summation
/// (odd inner sizes leave a half-empty last pair), and is measurably not the f32 product, so the
/// rounding really happens. Where the CPU lacks AVX-512 BF16 it is the f32 product exactly.
#[test]
fn bf16_tiled_products_equal_the_rounded_reference() {
    let runs_bf16 = Compute::Bf16.runs_as(Isa::detect()) == Compute::Bf16;
    for (name, weight) in weights() {
        for direction in [Direction::Forward, Direction::Backward] {
            for rows in [1, 17, 256] {
                let (out_features, in_features) = weight.matrix_dims().expect("dims");
                let input_features = if direction == Direction::Forward { in_features } else { out_features };
                let input = pseudo_random(rows * input_features, rows as u64 + 7, 1.0);
                let magnitudes = magnitudes(&weight, direction, &input, rows);
                for panel_bytes in [4096, ProductConfig::default().panel_bytes] {
                    let f32_config =
                        ProductConfig { path: ProductPath::Tiled, panel_bytes, ..ProductConfig::default() };
                    let bf16_config = ProductConfig { compute: Compute::Bf16, ..f32_config };
                    let fast = product(&weight, direction, &input, rows, &bf16_config).expect("bf16 product");
                    let exact = product(&weight, direction, &input, rows, &f32_config).expect("f32 product");
                    let what = format!("{name} {direction:?} rows {rows} panel {panel_bytes}");
                    if !runs_bf16 {
                        assert_eq!(fast, exact, "{what}: bf16 falls back to f32");
                        continue;
                    }
                    let reference = bf16_reference(&weight, direction, &input, rows);
                    assert_close(&fast, &reference, &magnitudes, &format!("{what} bf16"));
                    // bf16 keeps 8 significant bits: each term is off by up to 2^-8 of its size,
                    // so even over 4,000 terms of random sign the sums differ from f32's by more
                    // than 5e-6 of their magnitude somewhere, where f32's own rounding stays
                    // below 1e-6.
                    let largest = fast
                        .iter()
                        .zip(&exact)
                        .zip(&magnitudes)
                        .map(|((a, b), m)| (a - b).abs() / m.max(f32::MIN_POSITIVE))
                        .fold(0.0f32, f32::max);
                    assert!(largest > 5e-6, "{what}: bf16 equals f32 (largest relative gap {largest})");
                }
            }
        }
    }
}

#[test]
fn panels_decode_bitwise_equal_to_dequantize() {
    for (name, weight) in weights() {
        let (out_features, in_features) = weight.matrix_dims().expect("dims");
        let dense = weight.dequantize();
        // A window off the origin whose columns start and end on 32-element chunks when possible.
        let cols = if in_features >= 96 { 32..in_features - in_features % 32 } else { 1..in_features };
        let rows = 1..out_features;
        for isa in Isa::available() {
            let mut panel = vec![f32::NAN; rows.len() * cols.len()];
            decode_panel(&weight, rows.clone(), cols.clone(), isa, &mut panel).expect("decode");
            for (panel_row, row) in panel.chunks_exact(cols.len()).zip(rows.clone()) {
                let expected = &dense[row * in_features + cols.start..row * in_features + cols.end];
                let same = panel_row.iter().zip(expected).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{name} {}: row {row} differs", isa.name());
            }
        }
    }
}

#[test]
fn bad_input_lengths_are_errors_and_zero_rows_are_empty() {
    let (name, weight) = weights().swap_remove(0);
    let err = product(&weight, Direction::Forward, &[0.0; 575], 1, &ProductConfig::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "quant linear input: shape [1, 576] holds 576 elements but 575 were given",
        "{name}"
    );
    let empty = product(&weight, Direction::Backward, &[], 0, &ProductConfig::default()).expect("no rows");
    assert!(empty.is_empty());
    assert!(decode_panel(&weight, 0..193, 0..32, Isa::Scalar, &mut [0.0; 193 * 32]).is_err());
}

/// The candle op (f32, so the fast paths) and its gradient at a training-sized batch.
#[test]
fn quant_linear_f32_forward_and_backward_use_the_fast_paths_correctly() {
    let (name, weight) = weights().swap_remove(0);
    let (out_features, in_features) = weight.matrix_dims().expect("dims");
    let rows = 2 * 64;
    let x_values = pseudo_random(rows * in_features, 5, 1.0);
    let x =
        Var::from_tensor(&Tensor::from_vec(x_values.clone(), (2, 64, in_features), &Device::Cpu).expect("x"))
            .expect("var");
    let layer = QuantLinear::new(weight.clone(), None).expect("layer");
    let y = layer.forward(x.as_tensor()).expect("forward");
    let y_values = y.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("y");
    let reference = product_reference(&weight, Direction::Forward, &x_values, rows).expect("reference");
    let max_diff = y_values.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(max_diff <= 1e-4, "{name}: forward differs by {max_diff}");

    // d sum(probe * y) / dx = probe · W.
    let probe_values = pseudo_random(rows * out_features, 6, 1.0);
    let probe = Tensor::from_vec(probe_values.clone(), (2, 64, out_features), &Device::Cpu).expect("probe");
    let grads = (y * probe).and_then(|p| p.sum_all()).and_then(|l| l.backward()).expect("backward");
    let grad_x = grads.get(x.as_tensor()).expect("grad x");
    let grad_values = grad_x.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("grad");
    let reference = product_reference(&weight, Direction::Backward, &probe_values, rows).expect("reference");
    let max_diff = grad_values.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(max_diff <= 1e-4, "{name}: gradient differs by {max_diff}");
}

/// LLM.int8's forward on the fast path (VNNI where the CPU has it) equals the scalar reference
/// bit for bit: int32 sums are exact and the epilogue rounds in the same order. Shapes cross the
/// micro-kernel's 6 rows, the 96-row tasks, the 64-column panels and 4-input groups; some inputs
/// exceed the outlier threshold.
#[test]
fn llm_int8_fast_forward_equals_the_reference() {
    use kernels::fast::int8_vectorwise_forward;
    use kernels::{int8_linear_forward, Int8LinearConfig};
    for (seed, &(rows, out_features, in_features)) in
        [(1, 33, 70), (1, 45, 70), (7, 130, 64), (100, 200, 577), (300, 64, 96), (13, 1, 5)]
            .iter()
            .enumerate()
    {
        let dense = pseudo_random(out_features * in_features, seed as u64 + 50, 0.2);
        let weight = Int8Weight::quantize(&dense, out_features, in_features, QuantInput::AsIs).expect("int8");
        let mut x = pseudo_random(rows * in_features, seed as u64 + 60, 3.0);
        // A few outliers in two columns.
        for row in (0..rows).step_by(5) {
            x[row * in_features] = 7.5;
            x[row * in_features + in_features / 2] = -9.0;
        }
        let bias = pseudo_random(out_features, seed as u64 + 70, 0.5);
        for config in
            [Int8LinearConfig::default(), Int8LinearConfig { threshold: 0.0, input: QuantInput::AsIs }]
        {
            for bias in [None, Some(bias.as_slice())] {
                let expected = int8_linear_forward(&x, rows, &weight, bias, &config).expect("reference");
                for isa in Isa::available() {
                    let got = int8_vectorwise_forward(&x, rows, &weight, bias, &config, isa).expect("fast");
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&got),
                        bits(&expected),
                        "{rows}x{in_features} -> {out_features}, {config:?}, bias {}, {isa:?}",
                        bias.is_some()
                    );
                }
            }
        }
        let wrong_bias = vec![0.0; out_features + 1];
        for isa in Isa::available() {
            assert!(int8_vectorwise_forward(
                &x,
                rows,
                &weight,
                Some(&wrong_bias),
                &Int8LinearConfig::default(),
                isa
            )
            .is_err());
            assert!(int8_vectorwise_forward(&x[1..], rows, &weight, None, &Int8LinearConfig::default(), isa)
                .is_err());
        }
    }

    // Stored codes may hold -128, which the few-row kernel cannot negate: those go to the
    // packed kernel, and the result still equals the reference.
    let (out_features, in_features) = (20, 70);
    let mut codes: Vec<i8> = (0..out_features * in_features).map(|i| (i % 255) as u8 as i8).collect();
    codes[3] = i8::MIN;
    let weight =
        Int8Weight::from_parts(codes, vec![0.5; out_features], out_features, in_features).expect("parts");
    assert!(weight.has_min_code());
    let x = pseudo_random(3 * in_features, 80, 2.0);
    let expected =
        int8_linear_forward(&x, 3, &weight, None, &Int8LinearConfig::default()).expect("reference");
    for isa in Isa::available() {
        let got =
            int8_vectorwise_forward(&x, 3, &weight, None, &Int8LinearConfig::default(), isa).expect("fast");
        assert_eq!(got, expected, "{isa:?} with a -128 code");
    }
}

/// A quantized activation kept for the next layer is reused only for the same input, shape and
/// settings: every call below equals the reference computed alone, while one slot is carried
/// through inputs of the same length at other addresses, other thresholds and other weights. And
/// `QuantLinear`, which keys the slot by candle tensor, gives q/k/v-style layers applied to one
/// tensor the outputs they give on fresh copies of it.
#[test]
fn llm_int8_shared_activation_is_reused_only_for_the_same_input() {
    use kernels::fast::{int8_vectorwise_forward_shared, SharedActivation};
    use kernels::{int8_linear_forward, Int8LinearConfig};
    let (rows, in_features) = (9, 96);
    let weights: Vec<Int8Weight> = [(40, 91), (17, 92), (64, 93)]
        .iter()
        .map(|&(out_features, seed)| {
            let dense = pseudo_random(out_features * in_features, seed, 0.2);
            Int8Weight::quantize(&dense, out_features, in_features, QuantInput::AsIs).expect("int8")
        })
        .collect();
    let mut first = pseudo_random(rows * in_features, 94, 3.0);
    first[5] = 8.0; // an outlier column under the default threshold
    let second = pseudo_random(rows * in_features, 95, 3.0);
    let no_outliers = Int8LinearConfig { threshold: 0.0, input: QuantInput::AsIs };
    let calls: [(&[f32], usize, Int8LinearConfig); 6] = [
        (&first, 0, Int8LinearConfig::default()),
        (&first, 1, Int8LinearConfig::default()),
        (&second, 1, Int8LinearConfig::default()),
        (&second, 2, no_outliers),
        (&first, 2, no_outliers),
        (&first[..(rows - 1) * in_features], 0, no_outliers),
    ];
    for isa in Isa::available() {
        let mut shared = SharedActivation::default();
        for (call, &(x, layer, config)) in calls.iter().enumerate() {
            let rows = x.len() / in_features;
            let expected = int8_linear_forward(x, rows, &weights[layer], None, &config).expect("reference");
            let got =
                int8_vectorwise_forward_shared(x, rows, &weights[layer], None, &config, isa, &mut shared)
                    .expect("fast");
            assert_eq!(got, expected, "call {call}, {isa:?}");
        }
    }

    let x = Tensor::from_vec(first.clone(), (rows, in_features), &Device::Cpu).expect("x");
    let layers: Vec<QuantLinear> = weights
        .iter()
        .map(|weight| {
            let layer = QuantLinear::new(QuantWeight::Int8(weight.clone()), None).expect("layer");
            layer.with_llm_int8(Some(Int8LinearConfig::default())).expect("LLM.int8")
        })
        .collect();
    for layer in &layers {
        let shared = layer.forward(&x).expect("shared").flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let fresh = layer.forward(&x.copy().unwrap()).expect("fresh").flatten_all().unwrap().to_vec1::<f32>();
        assert_eq!(shared, fresh.unwrap());
    }
}
