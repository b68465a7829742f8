//! GGUF dequantization against candle's on the default model's real tensors, and re-quantization to NF4 / int8.
//!
//! The model file comes from env `FINAGENT_MODEL` (default `<workspace>/models/SmolLM2-135M-Instruct.Q4_1.gguf`);
//! when it is absent the model tests fail under `CI` and are skipped with a printed reason otherwise.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use kernels::gguf_dequant::{dequantize, f16_to_f32};
use kernels::{FourBitConfig, FourBitFormat, FourBitTensor, GgufType, Int8Weight, QuantInput};

/// Tensors of SmolLM2-135M covering every type the file holds: Q4_1 of each matrix shape, the
/// one Q8_0 tensor (the token embedding) and F32 norms.
const MODEL_TENSORS: [(&str, GgufType); 7] = [
    ("blk.0.attn_q.weight", GgufType::Q4_1),
    ("blk.0.attn_k.weight", GgufType::Q4_1),
    ("blk.0.ffn_down.weight", GgufType::Q4_1),
    ("blk.29.ffn_up.weight", GgufType::Q4_1),
    ("token_embd.weight", GgufType::Q8_0),
    ("blk.0.attn_norm.weight", GgufType::F32),
    ("output_norm.weight", GgufType::F32),
];

struct Model {
    content: gguf_file::Content,
    reader: BufReader<File>,
}

impl Model {
    /// The default model, or `None` (after printing why) when it is absent outside CI.
    fn open() -> Option<Model> {
        let path = std::env::var_os("FINAGENT_MODEL").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/SmolLM2-135M-Instruct.Q4_1.gguf"))
        });
        if !path.exists() {
            assert!(std::env::var_os("CI").is_none(), "model {} is missing under CI", path.display());
            eprintln!("skipping: model {} is absent (set FINAGENT_MODEL)", path.display());
            return None;
        }
        let file = File::open(&path).unwrap_or_else(|err| panic!("open {}: {err}", path.display()));
        let mut reader = BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader)
            .unwrap_or_else(|err| panic!("read gguf {}: {err}", path.display()));
        Some(Model { content, reader })
    }

    fn tensor(&mut self, name: &str) -> QTensor {
        self.content
            .tensor(&mut self.reader, name, &Device::Cpu)
            .unwrap_or_else(|err| panic!("gguf tensor {name}: {err}"))
    }
}

fn gguf_type(dtype: GgmlDType) -> GgufType {
    match dtype {
        GgmlDType::F32 => GgufType::F32,
        GgmlDType::F16 => GgufType::F16,
        GgmlDType::Q4_1 => GgufType::Q4_1,
        GgmlDType::Q8_0 => GgufType::Q8_0,
        other => panic!("test tensor has type {other:?}, which kernels does not dequantize"),
    }
}

fn candle_f32s(tensor: &Tensor) -> Vec<f32> {
    tensor.flatten_all().and_then(|flat| flat.to_vec1::<f32>()).expect("candle tensor to f32 vec")
}

/// Our dequantization of a candle `QTensor`'s raw bytes, and candle's own, as bit patterns.
fn both_dequantizations(qtensor: &QTensor) -> (Vec<u32>, Vec<u32>) {
    let bytes = qtensor.data().expect("raw bytes of qtensor");
    let ours = dequantize(gguf_type(qtensor.dtype()), &bytes, qtensor.shape().elem_count())
        .unwrap_or_else(|err| panic!("dequantize {:?}: {err}", qtensor.dtype()));
    let theirs = candle_f32s(&qtensor.dequantize(&Device::Cpu).expect("candle dequantize"));
    (ours.iter().map(|v| v.to_bits()).collect(), theirs.iter().map(|v| v.to_bits()).collect())
}

#[test]
fn model_tensors_dequantize_bitwise_equal_to_candle() {
    let Some(mut model) = Model::open() else { return };
    for (name, expected_type) in MODEL_TENSORS {
        let qtensor = model.tensor(name);
        assert_eq!(gguf_type(qtensor.dtype()), expected_type, "type of {name}");
        let (ours, theirs) = both_dequantizations(&qtensor);
        assert_eq!(ours.len(), theirs.len(), "element count of {name}");
        let mismatch = ours.iter().zip(&theirs).position(|(a, b)| a != b);
        assert_eq!(mismatch, None, "{name}: first differing element");
    }
}

#[test]
fn f16_tensor_dequantizes_bitwise_equal_to_candle() {
    let values: Vec<f32> = (0..96).map(|i| (i as f32 - 40.0) * 0.37).chain([1e-7, -7e4, 65504.0]).collect();
    let source = Tensor::from_vec(values.clone(), values.len(), &Device::Cpu).expect("f32 tensor");
    let qtensor = QTensor::quantize(&source, GgmlDType::F16).expect("candle f16 qtensor");
    let (ours, theirs) = both_dequantizations(&qtensor);
    assert_eq!(ours, theirs);
}

#[test]
fn f16_conversion_equals_half_for_every_bit_pattern() {
    // candle converts f16 with the `half` crate; compare all 65536 patterns, NaN payloads included.
    let bytes: Vec<u8> = (0..=u16::MAX).flat_map(u16::to_le_bytes).collect();
    let halves = Tensor::from_raw_buffer(&bytes, DType::F16, &[1 << 16], &Device::Cpu).expect("f16 tensor");
    let reference = candle_f32s(&halves.to_dtype(DType::F32).expect("f16 to f32"));
    for (bits, expected) in (0..=u16::MAX).zip(reference) {
        assert_eq!(f16_to_f32(bits).to_bits(), expected.to_bits(), "f16 bits {bits:#06x}");
    }
}

#[test]
fn sizes_that_do_not_fit_the_block_layout_are_errors() {
    let q4_1_two_blocks = vec![0u8; 40];
    let cases: [(GgufType, &[u8], usize, &str); 6] = [
        (GgufType::Q4_1, &q4_1_two_blocks[..39], 64, "has 39 entries but the layout needs 40"),
        (GgufType::Q4_1, &q4_1_two_blocks, 65, "65 elements does not match whole q4_1 blocks of 32"),
        (GgufType::Q4_1, &q4_1_two_blocks, 32, "has 40 entries but the layout needs 20"),
        (GgufType::Q8_0, &q4_1_two_blocks, 33, "33 elements does not match whole q8_0 blocks of 32"),
        (GgufType::F32, &q4_1_two_blocks[..7], 2, "gguf f32 tensor data (bytes) has 7 entries"),
        (GgufType::Q8_0, &[], usize::MAX - 31, "has too many elements"),
    ];
    for (kind, bytes, n_elements, expected) in cases {
        let message = match dequantize(kind, bytes, n_elements) {
            Ok(values) => panic!("{kind:?} with {n_elements} elements gave {} values", values.len()),
            Err(err) => err.to_string(),
        };
        assert!(message.contains(expected), "{kind:?} {n_elements}: message {message:?}");
    }
    assert_eq!(dequantize(GgufType::Q4_1, &[], 0), Ok(Vec::new()));
}

/// Real weights re-quantized to NF4 (QLoRA's config, double-quantized absmax) stay within half the
/// widest gap of the NF4 code times the block's absmax, plus what double quantization moved the absmax.
#[test]
fn gguf_tensor_requantizes_to_nf4_within_its_step() {
    let Some(mut model) = Model::open() else { return };
    let qtensor = model.tensor("blk.0.attn_q.weight");
    let shape = qtensor.shape().dims().to_vec();
    let bytes = qtensor.data().expect("raw bytes");
    let weight = dequantize(GgufType::Q4_1, &bytes, qtensor.shape().elem_count()).expect("dequantize q4_1");

    let config = FourBitConfig::default();
    let nf4 = FourBitTensor::quantize(&weight, &shape, &config).expect("quantize nf4");
    let restored = nf4.dequantize();
    let stored_absmax = nf4.scales().absmax();

    let mut code = *FourBitFormat::Nf4.code();
    code.sort_by(f32::total_cmp);
    let half_widest_gap = code.windows(2).map(|pair| pair[1] - pair[0]).fold(0.0f32, f32::max) / 2.0;
    let mut worst_ratio = 0.0f32;
    for (block_idx, (block, restored_block)) in
        weight.chunks(config.blocksize).zip(restored.chunks(config.blocksize)).enumerate()
    {
        let absmax = block.iter().fold(0.0f32, |acc, v| acc.max(v.abs()));
        let absmax_drift = (absmax - stored_absmax[block_idx]).abs();
        let bound = absmax * half_widest_gap + absmax_drift + absmax * 1e-6;
        for (&value, &approx) in block.iter().zip(restored_block) {
            let error = (value - approx).abs();
            assert!(error <= bound, "block {block_idx}: |{value} - {approx}| = {error} > {bound}");
            worst_ratio = worst_ratio.max(error / bound.max(f32::MIN_POSITIVE));
        }
    }
    // A bound never approached would prove nothing: real weights use the widest bins.
    assert!(worst_ratio > 0.5, "worst error used only {worst_ratio} of the bound");
}

/// Real weights re-quantized to int8 rows are within half a step, `row_absmax / 127 / 2`, of the original.
#[test]
fn gguf_tensor_requantizes_to_int8_within_half_a_step() {
    let Some(mut model) = Model::open() else { return };
    let qtensor = model.tensor("blk.0.ffn_down.weight");
    let &[out_features, in_features] = qtensor.shape().dims() else {
        panic!("ffn_down has shape {:?}", qtensor.shape())
    };
    let bytes = qtensor.data().expect("raw bytes");
    let weight = dequantize(GgufType::Q4_1, &bytes, out_features * in_features).expect("dequantize q4_1");

    let int8 =
        Int8Weight::quantize(&weight, out_features, in_features, QuantInput::AsIs).expect("quantize int8");
    let restored = int8.dequantize();
    for (row_idx, ((row, restored_row), &row_absmax)) in
        weight.chunks(in_features).zip(restored.chunks(in_features)).zip(int8.scb()).enumerate()
    {
        assert_eq!(row_absmax, row.iter().fold(0.0f32, |acc, v| acc.max(v.abs())), "SCB of row {row_idx}");
        let bound = row_absmax / 127.0 * 0.5 + row_absmax * 1e-6;
        for (&value, &approx) in row.iter().zip(restored_row) {
            assert!((value - approx).abs() <= bound, "row {row_idx}: |{value} - {approx}| > {bound}");
        }
    }
}
