//! The one error type of the `datasets` crate.

use std::fmt;
use std::path::PathBuf;

/// Why a task could not be loaded, split or mixed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// One bad line of a data file; `line` is 1-based (for CSV, the line the record starts on).
    #[error("{} line {line}: {problem}", path.display())]
    Row { path: PathBuf, line: usize, problem: RowProblem },

    #[error("unknown task {0:?} (known: {known})", known = crate::task::known_names())]
    UnknownTask(String),

    #[error("task {task} has no {split} data")]
    NoSplit { task: &'static str, split: &'static str },

    #[error("invalid configuration: {0}")]
    Config(String),

    /// An inline XBRL document whose running text cannot be walked (not UTF-8, malformed XML).
    #[error("cannot read the text of {}: {message}", path.display())]
    Html { path: PathBuf, message: String },

    /// A filing that the xbrl crate could not read.
    #[error(transparent)]
    Xbrl(#[from] xbrl::Error),
}

/// What is wrong with one line of a data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowProblem {
    /// The line is not a JSON object.
    BrokenJson(String),
    /// A CSV record that cannot be parsed or does not match the header.
    BrokenCsv(String),
    MissingField(String),
    /// The field exists but holds the wrong kind of value.
    WrongType {
        field: String,
        expected: &'static str,
    },
    /// A label (or task name, or format) outside the declared set.
    UnknownLabel {
        field: String,
        value: String,
    },
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowProblem::BrokenJson(message) => write!(f, "broken JSON: {message}"),
            RowProblem::BrokenCsv(message) => write!(f, "broken CSV: {message}"),
            RowProblem::MissingField(field) => write!(f, "missing field {field}"),
            RowProblem::WrongType { field, expected } => write!(f, "field {field} is not {expected}"),
            RowProblem::UnknownLabel { field, value } => write!(f, "unknown {field} {value:?}"),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
