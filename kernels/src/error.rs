//! The one error type of the `kernels` crate.

/// Why a quantization routine refused its input. Every message names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A block size outside what bitsandbytes accepts (a power of two in 32..=4096 for 4-bit).
    #[error("blocksize {blocksize} is not supported (expected one of {allowed})")]
    Blocksize { blocksize: usize, allowed: &'static str },

    /// The element count implied by a shape differs from the data supplied.
    #[error("{what}: shape {shape:?} holds {expected} elements but {actual} were given")]
    ShapeMismatch { what: &'static str, shape: Vec<usize>, expected: usize, actual: usize },

    /// A shape whose element count overflows `usize`.
    #[error("{what}: shape {shape:?} has too many elements to address")]
    ShapeOverflow { what: &'static str, shape: Vec<usize> },

    /// A buffer whose length does not fit the block layout of the tensor it belongs to.
    #[error("{what} has {actual} entries but the layout needs {expected}")]
    LayoutMismatch { what: &'static str, expected: usize, actual: usize },

    /// Two operands whose inner dimensions disagree.
    #[error("{what}: {left} does not match {right}")]
    DimensionMismatch { what: &'static str, left: String, right: String },

    /// An empty tensor where the format needs at least one element.
    #[error("{what} is empty")]
    Empty { what: &'static str },

    /// An index outside the valid range of a table or dimension.
    #[error("{what} index {index} is out of range (limit {limit})")]
    IndexOutOfRange { what: &'static str, index: usize, limit: usize },

    /// The CUDA backend cannot run here: no driver or NVRTC library, no such device (feature `cuda`).
    #[error("cuda device {ordinal} is unavailable: {reason}")]
    CudaUnavailable { ordinal: usize, reason: String },

    /// A CUDA step failed on a present device: compiling, loading, allocating, launching or copying.
    #[error("cuda device {ordinal}: {operation} failed: {message}")]
    Cuda { ordinal: usize, operation: &'static str, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
