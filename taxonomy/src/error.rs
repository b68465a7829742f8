//! The one error type of the `taxonomy` crate.

use std::path::PathBuf;

/// Why a taxonomy file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("malformed XML in {}: {message}", path.display())]
    Xml { path: PathBuf, message: String },

    /// A line of a tabular or list file that does not have the expected shape.
    #[error("{} line {line}: {message}", path.display())]
    Format { path: PathBuf, line: usize, message: String },

    /// A file with an extension the catalogue does not know how to read.
    #[error("cannot tell what kind of taxonomy file {} is (expected .tsv, .xml or .xsd)", path.display())]
    UnknownFileKind { path: PathBuf },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn read_to_string(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}
