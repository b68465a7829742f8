//! The one error type of the `xbrl` crate.

use std::path::PathBuf;

/// Why a file could not be read at all. Quirks inside a readable file come back as
/// [`crate::Issue`]s instead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// XML that is not well formed. `line` is 1-based; `position` the byte offset.
    #[error("malformed XML in {source_name} at line {line} (byte {position}): {message}")]
    Xml { source_name: String, line: u32, position: u64, message: String },

    /// Well-formed XML of the wrong kind (no `xbrli:xbrl` root, no inline XBRL header...).
    #[error("{source_name} is not {expected}: {message}")]
    WrongDocument { source_name: String, expected: &'static str, message: String },

    #[error("malformed JSON in {source_name}: {message}")]
    Json { source_name: String, message: String },

    #[error("fact index at {}: {message}", path.display())]
    Index { path: PathBuf, message: String },

    #[error("EDGAR: {0}")]
    Edgar(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
