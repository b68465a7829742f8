//! `hf_quantized::write_quantized` against what transformers 5.24 + bitsandbytes 0.50.2 save for the
//! tiny model: `model.safetensors` byte for byte (from its Hugging Face folder and from a GGUF of
//! the same weights), `config.json` and `generation_config.json` text for text.
//!
//! The fixtures come from `scripts/bnb_save_reference.py trainer/tests/fixtures/bnb_save/source
//! trainer/tests/fixtures/bnb_save`; `source/` is the tiny model of `common::tiny`, written by
//! running this test once with `FINAGENT_WRITE_BNB_SAVE_SOURCE=1`.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use common::tiny;
use trainer::hf_quantized::{write_quantized, QuantizedFormat};
use trainer::Error;

fn fixture_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bnb_save"))
}

/// The committed tiny source folder, rewritten first when asked to.
fn source_dir() -> PathBuf {
    let dir = fixture_dir().join("source");
    if std::env::var_os("FINAGENT_WRITE_BNB_SAVE_SOURCE").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        let config = tiny::config();
        tiny::write_hf_dir(&dir, &config, &tiny::weights(&config), DType::F32, false);
    }
    dir
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Fails with the first differing byte offset rather than dumping two files.
fn assert_same_bytes(ours: &Path, reference: &Path) {
    let (ours_bytes, reference_bytes) = (read(ours), read(reference));
    let first_diff = ours_bytes.iter().zip(&reference_bytes).position(|(a, b)| a != b);
    assert!(
        ours_bytes.len() == reference_bytes.len() && first_diff.is_none(),
        "{} differs from {}: {} vs {} bytes, first difference at byte {first_diff:?}",
        ours.display(),
        reference.display(),
        ours_bytes.len(),
        reference_bytes.len(),
    );
}

fn check_against_reference(format: QuantizedFormat, reference_name: &str) {
    let reference = fixture_dir().join(reference_name);
    let out = tempfile::tempdir().unwrap();
    let report = write_quantized(&source_dir(), format, out.path()).unwrap();
    for file in ["model.safetensors", "config.json", "generation_config.json"] {
        assert_same_bytes(&out.path().join(file), &reference.join(file));
    }
    assert_eq!(report.safetensors_bytes, read(&reference.join("model.safetensors")).len() as u64);
    let config = tiny::config();
    let n_projection_params = config.num_hidden_layers
        * (2 * config.q_dim() * config.hidden_size
            + 2 * config.kv_dim() * config.hidden_size
            + 3 * config.intermediate_size * config.hidden_size);
    assert_eq!(report.n_quantized_params, n_projection_params as u64);

    // The same weights in a GGUF file (q/k rows permuted as llama.cpp stores them) give the same bytes.
    let gguf_path = out.path().join("tiny.gguf");
    let weights = tiny::weights(&config);
    tiny::write_gguf(&gguf_path, &tiny::gguf_metadata(&config), &tiny::gguf_tensors(&config, &weights));
    let from_gguf = out.path().join("from-gguf");
    write_quantized(&gguf_path, format, &from_gguf).unwrap();
    assert_same_bytes(&from_gguf.join("model.safetensors"), &reference.join("model.safetensors"));
    assert!(from_gguf.join("tokenizer.json").is_file(), "a GGUF source gets a tokenizer.json");
}

#[test]
fn committed_source_holds_the_tiny_model() {
    let tensors =
        candle_core::safetensors::load(source_dir().join("model.safetensors"), &Device::Cpu).unwrap();
    let expected = tiny::weights(&tiny::config());
    assert_eq!(tensors.len(), expected.len());
    for (name, tensor) in expected {
        let stored = tensors.get(&name).unwrap_or_else(|| panic!("source lacks {name}"));
        let (stored, tensor) = (
            stored.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            tensor.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(stored, tensor, "{name}");
    }
}

#[test]
fn nf4_checkpoint_is_byte_identical_to_bitsandbytes() {
    check_against_reference(QuantizedFormat::Nf4, "nf4");
}

#[test]
fn int8_checkpoint_is_byte_identical_to_bitsandbytes() {
    check_against_reference(QuantizedFormat::Int8, "int8");
}

/// On the default model the fixed per-tensor state is negligible: NF4 with double quant costs
/// 0.5 B of codes plus 1/64 B of nested codes per parameter, int8 one byte plus a row scale.
#[test]
fn default_model_takes_half_a_byte_per_param_in_nf4_and_one_in_int8() {
    let Some(model) = common::model_path() else { return };
    let out = tempfile::tempdir().unwrap();
    let nf4 = write_quantized(&model, QuantizedFormat::Nf4, &out.path().join("nf4")).unwrap();
    let bytes_per_param = nf4.bytes_per_quantized_param();
    assert!((0.515..0.52).contains(&bytes_per_param), "nf4: {bytes_per_param} bytes per param");
    let int8 = write_quantized(&model, QuantizedFormat::Int8, &out.path().join("int8")).unwrap();
    let bytes_per_param = int8.bytes_per_quantized_param();
    assert!((1.0..1.01).contains(&bytes_per_param), "int8: {bytes_per_param} bytes per param");
    assert_eq!(nf4.n_quantized_params, int8.n_quantized_params);
}

#[test]
fn bad_bits_and_bad_models_are_errors() {
    let err = QuantizedFormat::from_bits(3).unwrap_err();
    assert_eq!(err.to_string(), "invalid input: quantized checkpoints have 4 or 8 bits, got 3");
    assert_eq!(QuantizedFormat::from_bits(8).unwrap(), QuantizedFormat::Int8);

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-model.gguf");
    let err = write_quantized(&missing, QuantizedFormat::Nf4, &dir.path().join("out")).unwrap_err();
    assert!(matches!(&err, Error::Io { path, .. } if path == &missing), "{err}");
    assert!(!dir.path().join("out").exists(), "nothing is written for a missing model");

    let text_file = dir.path().join("model.txt");
    std::fs::write(&text_file, "not a model").unwrap();
    let err = write_quantized(&text_file, QuantizedFormat::Int8, &dir.path().join("out")).unwrap_err();
    assert!(matches!(err, Error::UnknownModelFormat { .. }), "{err}");

    // A folder whose weights lack a projection names the tensor.
    let partial = dir.path().join("partial");
    std::fs::create_dir(&partial).unwrap();
    let config = tiny::config();
    let mut weights = tiny::weights(&config);
    weights.remove("model.layers.1.mlp.up_proj.weight");
    tiny::write_hf_dir(&partial, &config, &weights, DType::F32, false);
    let err = write_quantized(&partial, QuantizedFormat::Nf4, &dir.path().join("out")).unwrap_err();
    assert!(err.to_string().contains("missing tensor model.layers.1.mlp.up_proj.weight"), "{err}");
}
