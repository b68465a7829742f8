//! The CUDA backend (feature `cuda`) against the scalar reference: dequantization bit for bit,
//! forward and input-gradient products within a summation-order tolerance, shape errors as `Err`.
//!
//! Without a CUDA driver or device every GPU test prints why it was skipped and passes, so
//! `cargo test -p kernels --features cuda` runs on CPU-only CI; `FINAGENT_REQUIRE_CUDA=1` (set by
//! `scripts/gpu_check.sh`) turns a skip into a failure. A device that is present but fails (the
//! kernels do not compile, a launch fails) always fails the tests.
//!
//! The products sum in another order than `product_reference`, so they are compared per element
//! with `|cuda - ref| <= 1e-5 * sum_k |x_k w_k|`, the tolerance of `tests/fast_paths.rs`: a wrong
//! index, a dropped tail tile or a misplaced nibble is off by a whole term.
#![cfg(feature = "cuda")]

mod common;

use common::{assert_close, magnitudes, pseudo_random};
use kernels::cuda::{self, CudaBackend};
use kernels::{
    product_reference, BlockScales, Direction, DoubleQuantAbsmax, Error, FourBitConfig, FourBitFormat,
    FourBitTensor, Int8Weight, QuantInput, QuantWeight,
};

/// Set to 1 to make a missing GPU a failure instead of a skip.
const REQUIRE_ENV: &str = "FINAGENT_REQUIRE_CUDA";

/// Row counts of the products: one row, odd counts below, at and across the 16-row tile.
const ROW_COUNTS: [usize; 5] = [1, 5, 16, 17, 33];

/// Device 0, or `None` after printing why the test is skipped (a panic under `FINAGENT_REQUIRE_CUDA=1`).
fn backend(test: &str) -> Option<CudaBackend> {
    match CudaBackend::new(0) {
        Ok(backend) => Some(backend),
        Err(err @ Error::CudaUnavailable { .. }) => {
            let required = std::env::var(REQUIRE_ENV).is_ok_and(|value| value == "1");
            assert!(!required, "{test}: {REQUIRE_ENV}=1 but {err}");
            println!("{test}: skipped, {err}");
            None
        }
        Err(err) => panic!("{test}: the cuda backend failed on a present device: {err}"),
    }
}

/// Named weights `[out, in]`: NF4 and FP4 with plain and double-quantized absmax, rows that start
/// mid-byte and mid-block (37x131), more than 256 blocks so the nested absmax has several blocks
/// (576x192), a single block (1x64), a tail block, and int8 of the same shapes.
fn weights() -> Vec<(String, QuantWeight)> {
    let nf4_dq = FourBitConfig::default();
    let nf4_plain_128 = FourBitConfig { blocksize: 128, double_quant: false, ..nf4_dq };
    let fp4_32 = FourBitConfig { format: FourBitFormat::Fp4, blocksize: 32, double_quant: false };
    let fp4_dq_256 = FourBitConfig { format: FourBitFormat::Fp4, blocksize: 256, double_quant: true };
    let four_bit = [
        (37, 131, nf4_dq),
        (37, 131, fp4_32),
        (576, 192, nf4_dq),
        (576, 192, fp4_dq_256),
        (192, 576, nf4_plain_128),
        (1, 64, nf4_dq),
        (1, 64, fp4_32),
        (3, 33, nf4_plain_128), // one tail block shorter than the block size
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
        [(37, 131), (576, 192), (1, 64), (9, 7)].into_iter().enumerate()
    {
        let dense = pseudo_random(out_features * in_features, seed as u64 + 30, 0.2);
        let weight = Int8Weight::quantize(&dense, out_features, in_features, QuantInput::AsIs).expect("int8");
        named.push((format!("int8 {out_features}x{in_features}"), QuantWeight::Int8(weight)));
    }
    named.push(("nf4 from parts, subnormal and signed-zero absmax".to_string(), edge_case_four_bit()));
    named.push(("int8 from parts, -128 codes and a zero row".to_string(), edge_case_int8()));
    named
}

/// A 4-bit weight whose absmax holds subnormals (flushing them to zero would change the result),
/// negative zero and large values (not so large that a product row could overflow), with every code.
fn edge_case_four_bit() -> QuantWeight {
    let (out_features, in_features, blocksize) = (5, 77, 32);
    let n_elements: usize = out_features * in_features;
    let codes: Vec<u8> = (0..n_elements.div_ceil(2)).map(|idx| (idx * 37 % 256) as u8).collect();
    let absmax_values =
        [1e-39, -0.0, 3.5e30, 1e-38, 0.25, 7.0, f32::MIN_POSITIVE, 1.5e-45, 2.0, 0.1, 9.9, 0.5, 1.0];
    let n_blocks = n_elements.div_ceil(blocksize);
    let absmax = BlockScales::Plain(absmax_values.iter().copied().cycle().take(n_blocks).collect());
    let tensor =
        FourBitTensor::from_parts(FourBitFormat::Nf4, &[out_features, in_features], blocksize, codes, absmax)
            .expect("edge-case 4-bit");
    QuantWeight::FourBit(tensor)
}

/// An int8 weight with codes -128 (never written by `quantize`, allowed in stored parts) and a row of zeros.
fn edge_case_int8() -> QuantWeight {
    let (out_features, in_features) = (4, 19);
    let cb: Vec<i8> = (0..out_features * in_features)
        .map(|idx| if idx / in_features == 2 { 0 } else { ((idx * 53) % 256) as u8 as i8 })
        .collect();
    let scb = vec![0.37, 1e-3, 0.0, 12.5];
    QuantWeight::Int8(Int8Weight::from_parts(cb, scb, out_features, in_features).expect("edge-case int8"))
}

fn assert_bitwise_equal(cuda: &[f32], reference: &[f32], what: &str) {
    assert_eq!(cuda.len(), reference.len(), "{what}: length");
    if let Some(idx) = cuda.iter().zip(reference).position(|(a, b)| a.to_bits() != b.to_bits()) {
        panic!(
            "{what}: element {idx}: cuda {:e} ({:#010x}) vs reference {:e} ({:#010x})",
            cuda[idx],
            cuda[idx].to_bits(),
            reference[idx],
            reference[idx].to_bits()
        );
    }
}

#[test]
fn no_device_is_an_error_not_a_panic() {
    // Runs everywhere: without a driver every ordinal is unavailable; with one, an ordinal past
    // the last device is.
    let missing_ordinal = match cuda::device_count() {
        Ok(n_devices) => n_devices,
        Err(err) => {
            assert!(matches!(err, Error::CudaUnavailable { ordinal: 0, .. }), "{err}");
            println!("no cuda driver here: {err}");
            0
        }
    };
    let err = CudaBackend::new(missing_ordinal).expect_err("no such device");
    assert!(matches!(&err, Error::CudaUnavailable { ordinal, .. } if *ordinal == missing_ordinal), "{err}");
    assert!(err.to_string().starts_with(&format!("cuda device {missing_ordinal} is unavailable: ")), "{err}");
}

#[test]
fn handles_can_be_shared_across_threads() {
    // A candle op holding an uploaded weight must be Send + Sync.
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CudaBackend>();
    assert_send_sync::<cuda::CudaWeight>();
}

#[test]
fn kernels_compile_with_nvrtc() {
    // Needs NVRTC only, not a GPU: a machine with the library checks the CUDA C compiles.
    match cuda::compile_kernels() {
        Ok(()) => {}
        Err(err @ Error::CudaUnavailable { .. }) => {
            let required = std::env::var(REQUIRE_ENV).is_ok_and(|value| value == "1");
            assert!(!required, "{REQUIRE_ENV}=1 but {err}");
            println!("kernels_compile_with_nvrtc: skipped, {err}");
        }
        Err(err) => panic!("{err}"),
    }
}

#[test]
fn dequantize_is_bitwise_the_reference() {
    let Some(backend) = backend("dequantize_is_bitwise_the_reference") else { return };
    for (name, weight) in weights() {
        let on_device = backend.upload(&weight).expect("upload");
        assert_bitwise_equal(&on_device.dequantize().expect("dequantize"), &weight.dequantize(), &name);
        // Only int8 has a second rounding; a 4-bit weight dequantizes one way.
        let backward_reference = match &weight {
            QuantWeight::Int8(int8) => int8.dequantize_for_backward(),
            other => other.dequantize(),
        };
        let backward = on_device.dequantize_for_backward().expect("dequantize for backward");
        assert_bitwise_equal(&backward, &backward_reference, &format!("{name}, backward rounding"));
    }
}

#[test]
fn double_quant_absmax_with_a_given_offset_is_bitwise_the_reference() {
    let Some(backend) = backend("double_quant_absmax_with_a_given_offset_is_bitwise_the_reference") else {
        return;
    };
    // 600 blocks: three nested blocks, the last one partial; an offset that is not the mean.
    let (out_features, in_features, blocksize) = (75, 512, 64);
    let n_blocks = out_features * in_features / blocksize;
    let absmax: Vec<f32> = pseudo_random(n_blocks, 3, 0.5).iter().map(|v| v.abs() + 0.01).collect();
    let double = DoubleQuantAbsmax::compress_with_offset(&absmax, 0.123_456_79).expect("double quant");
    let codes: Vec<u8> = (0..out_features * in_features / 2).map(|idx| (idx * 97 % 256) as u8).collect();
    let shape = [out_features, in_features];
    let tensor =
        FourBitTensor::from_parts(FourBitFormat::Fp4, &shape, blocksize, codes, BlockScales::Double(double))
            .expect("4-bit from parts");
    let on_device = backend.upload_four_bit(&tensor).expect("upload");
    assert_bitwise_equal(&on_device.dequantize().expect("dequantize"), &tensor.dequantize(), "fp4 offset dq");
}

#[test]
fn forward_and_backward_match_the_reference() {
    let Some(backend) = backend("forward_and_backward_match_the_reference") else { return };
    for (name, weight) in weights() {
        let on_device = backend.upload(&weight).expect("upload");
        let (out_features, in_features) = weight.matrix_dims().expect("dims");
        for rows in ROW_COUNTS {
            for direction in [Direction::Forward, Direction::Backward] {
                let input_features = if direction == Direction::Forward { in_features } else { out_features };
                let input = pseudo_random(rows * input_features, rows as u64 + 100, 1.0);
                let reference = product_reference(&weight, direction, &input, rows).expect("reference");
                let cuda = match direction {
                    Direction::Forward => on_device.forward(&input, rows),
                    Direction::Backward => on_device.backward_input(&input, rows),
                }
                .expect("cuda product");
                let magnitudes = magnitudes(&weight, direction, &input, rows);
                assert_close(&cuda, &reference, &magnitudes, &format!("{name}, {direction:?}, {rows} rows"));
            }
        }
    }
}

#[test]
fn bad_shapes_are_errors() {
    let Some(backend) = backend("bad_shapes_are_errors") else { return };
    let dense = pseudo_random(37 * 131, 5, 0.2);
    let tensor = FourBitTensor::quantize(&dense, &[37, 131], &FourBitConfig::default()).expect("nf4");
    let on_device = backend.upload_four_bit(&tensor).expect("upload");
    let err = on_device.forward(&[0.0; 130], 1).expect_err("short input");
    assert_eq!(err.to_string(), "cuda forward input: shape [1, 131] holds 131 elements but 130 were given");
    let err = on_device.backward_input(&[0.0; 37 * 2], 3).expect_err("short gradient");
    assert_eq!(err.to_string(), "cuda backward gradient: shape [3, 37] holds 111 elements but 74 were given");
    assert_eq!(on_device.forward(&[], 0).expect("no rows"), Vec::<f32>::new());

    let flat = FourBitTensor::quantize(&dense, &[37 * 131], &FourBitConfig::default()).expect("1-d nf4");
    assert!(matches!(backend.upload_four_bit(&flat), Err(Error::DimensionMismatch { .. })));
}
