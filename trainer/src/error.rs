//! The crate's error type: every failure names the file, tensor or key it is about.

use std::path::PathBuf;

/// Errors from loading models and tokenizers and from running them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{} is not a readable gguf file: {source}", .path.display())]
    GgufHeader { path: PathBuf, source: Box<candle_core::Error> },

    #[error(
        "{} is truncated: {n_missing} of {n_tensors} tensors lie past its end, first {tensor} \
         (needs bytes up to {needed_bytes}, file has {file_bytes})",
        .path.display()
    )]
    Truncated {
        path: PathBuf,
        tensor: String,
        n_missing: usize,
        n_tensors: usize,
        needed_bytes: u64,
        file_bytes: u64,
    },

    #[error("cannot read safetensors file {}: {source}", .path.display())]
    Safetensors { path: PathBuf, source: Box<candle_core::Error> },

    #[error("{origin}: unsupported architecture {architecture} (supported: llama)")]
    UnsupportedArchitecture { origin: String, architecture: String },

    #[error("{origin}: missing metadata key {key}")]
    MissingMetadata { origin: String, key: String },

    #[error("{origin}: metadata key {key} is invalid: {reason}")]
    InvalidMetadata { origin: String, key: String, reason: String },

    #[error("{origin}: invalid model config: {reason}")]
    InvalidConfig { origin: String, reason: String },

    #[error("{origin}: missing tensor {name}")]
    MissingTensor { origin: String, name: String },

    #[error("{origin}: tensor {name} has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch { origin: String, name: String, expected: Vec<usize>, actual: Vec<usize> },

    #[error("{origin}: tensor {name} has unsupported dtype {dtype}")]
    UnsupportedDtype { origin: String, name: String, dtype: String },

    #[error("{origin}: cannot read tensor {name}: {source}")]
    TensorRead { origin: String, name: String, source: Box<candle_core::Error> },

    #[error("{origin}: tokenizer error: {source}")]
    Tokenizer { origin: String, source: tokenizers::Error },

    #[error("{origin}: {reason}")]
    UnsupportedTokenizer { origin: String, reason: String },

    #[error("{}: not a model: expected a .gguf file or a directory with config.json", .path.display())]
    UnknownModelFormat { path: PathBuf },

    #[error("cannot parse {}: {source}", .path.display())]
    Json { path: PathBuf, source: serde_json::Error },

    #[error("rank {rank} of {world_size}: {reason}")]
    Collective { rank: usize, world_size: usize, reason: String },

    #[error("optimizer {optimizer}: {reason}")]
    Optimizer { optimizer: String, reason: String },

    #[error("invalid input: {reason}")]
    InvalidInput { reason: String },

    #[error(transparent)]
    Candle(Box<candle_core::Error>),
}

impl From<candle_core::Error> for Error {
    fn from(error: candle_core::Error) -> Self {
        Error::Candle(Box::new(error))
    }
}

/// `Result` with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Drops the backtrace candle attaches under `RUST_BACKTRACE`, so the one-line message we wrap it
/// in stays one line.
pub(crate) fn without_backtrace(error: candle_core::Error) -> Box<candle_core::Error> {
    match error {
        candle_core::Error::WithBacktrace { inner, .. } => without_backtrace(*inner),
        other => Box::new(other),
    }
}
