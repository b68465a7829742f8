//! Bad model files fail with errors that name the file and what is wrong, never a panic:
//! truncated or corrupt GGUF, unknown architecture, missing tensors, shape mismatches, bad folders.

mod common;

use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use candle_core::{DType, Device, Tensor};
use common::tiny;
use trainer::Error;

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

/// The error message of loading `path`, which must fail.
fn load_error(path: &Path) -> (Error, String) {
    match trainer::loader::load(path) {
        Ok(_) => panic!("loading {} succeeded", path.display()),
        Err(e) => {
            let message = e.to_string();
            eprintln!("{message}");
            (e, message)
        }
    }
}

fn write_truncated_copy(source: &Path, target: &Path, n_bytes: usize) {
    let bytes = std::fs::read(source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    std::fs::write(target, &bytes[..n_bytes.min(bytes.len())]).unwrap_or_else(|e| panic!("{e}"));
}

fn tiny_gguf_parts() -> (tiny::Metadata, tiny::NamedTensors) {
    let config = tiny::config();
    let weights = tiny::weights(&config);
    (tiny::gguf_metadata(&config), tiny::gguf_tensors(&config, &weights))
}

#[test]
fn truncated_tiny_gguf_names_file_and_first_missing_tensor() {
    let dir = temp_dir();
    let (metadata, tensors) = tiny_gguf_parts();
    let whole = dir.path().join("whole.gguf");
    tiny::write_gguf(&whole, &metadata, &tensors);
    let size = std::fs::metadata(&whole).map(|m| m.len() as usize).unwrap_or_else(|e| panic!("{e}"));
    let cut = dir.path().join("cut-in-half.gguf");
    write_truncated_copy(&whole, &cut, size / 2);
    let (error, message) = load_error(&cut);
    assert!(matches!(error, Error::Truncated { .. }), "{message}");
    assert!(message.contains("cut-in-half.gguf") && message.contains("truncated"), "{message}");
    assert!(message.contains("tensors lie past its end, first blk."), "{message}");
}

#[test]
fn truncated_real_model_fails_with_clear_errors() {
    let Some(model_path) = common::model_path() else {
        return;
    };
    let size = std::fs::metadata(&model_path).map(|m| m.len() as usize).unwrap_or_else(|e| panic!("{e}"));
    let dir = temp_dir();
    let half = dir.path().join("half.gguf");
    write_truncated_copy(&model_path, &half, size / 2);
    let (error, message) = load_error(&half);
    assert!(matches!(error, Error::Truncated { .. }), "{message}");
    assert!(message.contains("half.gguf is truncated") && message.contains("blk."), "{message}");
    assert!(message.contains(&format!("file has {}", size / 2)), "{message}");

    // Cut inside the metadata (the 49,152-token vocabulary): the header itself is unreadable.
    let header_only = dir.path().join("header.gguf");
    write_truncated_copy(&model_path, &header_only, 4096);
    let (error, message) = load_error(&header_only);
    assert!(matches!(error, Error::GgufHeader { .. }), "{message}");
    assert!(message.contains("header.gguf is not a readable gguf file"), "{message}");
}

#[test]
fn non_gguf_and_empty_files_are_rejected() {
    let dir = temp_dir();
    for (name, bytes) in [("text.gguf", &b"this is not a gguf file at all"[..]), ("empty.gguf", &b""[..])] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
        let (error, message) = load_error(&path);
        assert!(matches!(error, Error::GgufHeader { .. }), "{message}");
        assert!(message.contains(name), "{message}");
    }
}

#[test]
fn unknown_architecture_and_missing_metadata_are_named() {
    let dir = temp_dir();
    let (metadata, tensors) = tiny_gguf_parts();
    let mut other_arch = metadata.clone();
    other_arch[0].1 = Value::String("gpt2".into());
    let path = dir.path().join("gpt2.gguf");
    tiny::write_gguf(&path, &other_arch, &tensors);
    let (error, message) = load_error(&path);
    assert!(matches!(error, Error::UnsupportedArchitecture { .. }), "{message}");
    assert!(message.contains("gpt2.gguf") && message.contains("unsupported architecture gpt2"), "{message}");

    let without_layers: Vec<_> = metadata.into_iter().filter(|(key, _)| key != "llama.block_count").collect();
    let path = dir.path().join("no-blocks.gguf");
    tiny::write_gguf(&path, &without_layers, &tensors);
    let (_, message) = load_error(&path);
    assert!(message.contains("no-blocks.gguf: missing metadata key llama.block_count"), "{message}");
}

#[test]
fn missing_and_misshapen_gguf_tensors_are_named() {
    let dir = temp_dir();
    let (metadata, tensors) = tiny_gguf_parts();
    let without_up: Vec<_> =
        tensors.iter().filter(|(name, _)| name != "blk.1.ffn_up.weight").cloned().collect();
    let path = dir.path().join("no-up.gguf");
    tiny::write_gguf(&path, &metadata, &without_up);
    let (error, message) = load_error(&path);
    assert!(matches!(error, Error::MissingTensor { .. }), "{message}");
    assert!(message.contains("no-up.gguf: missing tensor blk.1.ffn_up.weight"), "{message}");

    let wrong_k = Tensor::zeros((8, 32), DType::F32, &Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
    let misshapen: Vec<_> = tensors
        .iter()
        .map(|(name, t)| {
            (name.clone(), if name == "blk.0.attn_k.weight" { wrong_k.clone() } else { t.clone() })
        })
        .collect();
    let path = dir.path().join("bad-k.gguf");
    tiny::write_gguf(&path, &metadata, &misshapen);
    let (error, message) = load_error(&path);
    assert!(matches!(error, Error::ShapeMismatch { .. }), "{message}");
    assert!(message.contains("tensor blk.0.attn_k.weight has shape [8, 32], expected [16, 32]"), "{message}");
}

#[test]
fn bad_hf_folders_are_named() {
    let config = tiny::config();
    let mut weights = tiny::weights(&config);
    weights.remove("model.layers.1.mlp.up_proj.weight");
    let dir = temp_dir();
    tiny::write_hf_dir(dir.path(), &config, &weights, DType::F32, false);
    let (error, message) = load_error(dir.path());
    assert!(matches!(error, Error::MissingTensor { .. }), "{message}");
    assert!(message.contains("missing tensor model.layers.1.mlp.up_proj.weight"), "{message}");

    let json = tiny::config_json(&config).replace("\"llama\"", "\"mistral\"");
    std::fs::write(dir.path().join("config.json"), json).unwrap_or_else(|e| panic!("{e}"));
    let (_, message) = load_error(dir.path());
    assert!(message.contains("config.json: unsupported architecture mistral"), "{message}");

    let empty = temp_dir();
    let (error, message) = load_error(empty.path());
    assert!(matches!(error, Error::UnknownModelFormat { .. }), "{message}");
    let (error, message) = load_error(&empty.path().join("absent.gguf"));
    assert!(matches!(error, Error::Io { .. }) && message.contains("absent.gguf"), "{message}");
}

#[test]
fn unknown_gguf_tensor_type_is_named() {
    let dir = temp_dir();
    let (metadata, tensors) = tiny_gguf_parts();
    let whole = dir.path().join("whole.gguf");
    tiny::write_gguf(&whole, &metadata, &tensors);
    let mut bytes = std::fs::read(&whole).unwrap_or_else(|e| panic!("{e}"));
    // The first tensor's info: name (u64 length + bytes), n_dims (u32), dims (u64 each), type (u32).
    let (name, tensor) = &tensors[0];
    let at = bytes
        .windows(name.len())
        .position(|window| window == name.as_bytes())
        .unwrap_or_else(|| panic!("tensor name {name} not in the file"));
    let type_at = at + name.len() + 4 + 8 * tensor.dims().len();
    bytes[type_at..type_at + 4].copy_from_slice(&99u32.to_le_bytes());
    let patched = dir.path().join("unknown-type.gguf");
    std::fs::write(&patched, bytes).unwrap_or_else(|e| panic!("{e}"));
    let (_, message) = load_error(&patched);
    assert!(message.contains("unknown-type.gguf"), "{message}");
    assert!(message.contains("99"), "the message does not name the type id: {message}");
}
