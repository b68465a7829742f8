//! Shared test helpers: where the shared data and the default model live, and skipping when absent.
#![allow(dead_code)]

pub mod tiny;
pub mod training;

use std::path::PathBuf;
use std::sync::OnceLock;

use trainer::model::Llama;
use trainer::tokenizer::Tokenizer;

fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Returns `path` when it exists; otherwise fails under CI and prints a skip reason elsewhere.
fn required(path: PathBuf, what: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!("{what} not found at {} (CI requires it)", path.display());
    }
    eprintln!("skipping: {what} not found at {}", path.display());
    None
}

/// The shared data folder (env FINAGENT_SHARED, default `<workspace>/../shared`).
pub fn shared_dir() -> Option<PathBuf> {
    let path = std::env::var_os("FINAGENT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"));
    required(path, "shared data folder")
}

/// The SmolLM2 reference files (tokenizer.json, reference cases and logits).
pub fn reference_dir() -> Option<PathBuf> {
    required(shared_dir()?.join("models/smollm2"), "SmolLM2 reference folder")
}

/// The default GGUF model (env FINAGENT_MODEL).
pub fn model_path() -> Option<PathBuf> {
    let path = std::env::var_os("FINAGENT_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    required(path, "model file")
}

/// The default model and its GGUF-built tokenizer, loaded once per test binary.
pub fn gguf_model() -> Option<&'static (Llama, Tokenizer)> {
    static MODEL: OnceLock<(Llama, Tokenizer)> = OnceLock::new();
    let path = model_path()?;
    Some(MODEL.get_or_init(|| match trainer::loader::load_gguf(&path) {
        Ok(loaded) => loaded,
        Err(e) => panic!("loading {}: {e}", path.display()),
    }))
}

/// One case of `reference_cases.json`.
#[derive(Debug, serde::Deserialize)]
pub struct ReferenceCase {
    pub prompt: String,
    pub ids: Vec<u32>,
    pub greedy_next_12: Vec<u32>,
    pub greedy_text: String,
}

#[derive(serde::Deserialize)]
struct ReferenceFile {
    cases: Vec<ReferenceCase>,
}

/// The reference prompts with transformers' ids and greedy continuations.
pub fn reference_cases() -> Option<Vec<ReferenceCase>> {
    let path = reference_dir()?.join("reference_cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: ReferenceFile =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Some(file.cases)
}
