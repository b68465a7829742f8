//! Reading data files line by line into JSON-object rows, with file and line numbers kept for
//! error messages and an opt-in mode that skips bad lines and counts them.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::csv::parse_csv;
use crate::error::{Error, Result, RowProblem};

/// One row of a data file: a JSON object (CSV records become objects of strings keyed by the
/// header) and the 1-based line it came from.
#[derive(Debug, Clone)]
pub struct Row {
    pub line: usize,
    pub fields: Map<String, Value>,
}

impl Row {
    pub fn has(&self, field: &str) -> bool {
        self.fields.get(field).is_some_and(|value| !value.is_null())
    }

    /// A string field; missing or non-string values are a [`RowProblem`].
    pub fn str(&self, field: &str) -> Result<&str, RowProblem> {
        match self.fields.get(field) {
            None | Some(Value::Null) => Err(RowProblem::MissingField(field.to_string())),
            Some(Value::String(text)) => Ok(text),
            Some(_) => Err(RowProblem::WrongType { field: field.to_string(), expected: "a string" }),
        }
    }

    /// A number, also accepted as a numeric string (CSV rows hold only strings).
    pub fn number(&self, field: &str) -> Result<f64, RowProblem> {
        let wrong = || RowProblem::WrongType { field: field.to_string(), expected: "a number" };
        match self.fields.get(field) {
            None | Some(Value::Null) => Err(RowProblem::MissingField(field.to_string())),
            Some(Value::Number(number)) => number.as_f64().ok_or_else(wrong),
            Some(Value::String(text)) => text.trim().parse().map_err(|_| wrong()),
            Some(_) => Err(wrong()),
        }
    }

    /// Any scalar rendered as text (`year: 2023` -> `"2023"`); `None` when absent.
    pub fn text(&self, field: &str) -> Option<String> {
        match self.fields.get(field)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }
}

/// How loaders treat bad lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Skip lines that cannot be turned into an example and report them, instead of failing on
    /// the first one.
    pub skip_invalid: bool,
}

/// A line left out under [`LoadOptions::skip_invalid`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedLine {
    pub path: PathBuf,
    pub line: usize,
    pub problem: String,
}

/// What loading read and what it skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoadReport {
    pub rows_read: usize,
    pub skipped: Vec<SkippedLine>,
}

impl LoadReport {
    pub fn n_skipped(&self) -> usize {
        self.skipped.len()
    }

    pub(crate) fn merge(&mut self, other: LoadReport) {
        self.rows_read += other.rows_read;
        self.skipped.extend(other.skipped);
    }
}

/// Reads `path` (JSONL, or CSV/TSV by extension) and turns every row into zero or one item
/// with `convert`; `Ok(None)` leaves a row out on purpose (another task's row of a shared file).
pub fn read_rows<T>(
    path: &Path,
    options: LoadOptions,
    mut convert: impl FnMut(&Row) -> Result<Option<T>, RowProblem>,
) -> Result<(Vec<T>, LoadReport)> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::io(path, source))?;
    let mut report = LoadReport::default();
    let mut items = Vec::new();
    let mut handle = |line: usize, row: Result<Row, RowProblem>| -> Result<()> {
        report.rows_read += 1;
        match row.and_then(|row| convert(&row)) {
            Ok(Some(item)) => items.push(item),
            Ok(None) => {}
            Err(problem) if options.skip_invalid => report.skipped.push(SkippedLine {
                path: path.to_path_buf(),
                line,
                problem: problem.to_string(),
            }),
            Err(problem) => return Err(Error::Row { path: path.to_path_buf(), line, problem }),
        }
        Ok(())
    };
    match delimiter_for(path) {
        Some(delimiter) => {
            let records = parse_csv(&text, delimiter).map_err(|error| Error::Row {
                path: path.to_path_buf(),
                line: error.line,
                problem: RowProblem::BrokenCsv(error.message),
            })?;
            let mut records = records.into_iter();
            let header = match records.next() {
                Some(header) => header.fields,
                None => return Ok((items, report)),
            };
            for record in records {
                handle(record.line, csv_row(&header, record.fields, record.line))?;
            }
        }
        None => {
            for (line_idx, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                handle(line_idx + 1, json_row(line, line_idx + 1))?;
            }
        }
    }
    Ok((items, report))
}

fn delimiter_for(path: &Path) -> Option<char> {
    match path.extension().and_then(|ext| ext.to_str()) {
        Some("csv") => Some(','),
        Some("tsv") => Some('\t'),
        _ => None,
    }
}

fn json_row(line: &str, line_number: usize) -> Result<Row, RowProblem> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(fields)) => Ok(Row { line: line_number, fields }),
        Ok(_) => Err(RowProblem::BrokenJson("not a JSON object".into())),
        Err(error) => Err(RowProblem::BrokenJson(error.to_string())),
    }
}

fn csv_row(header: &[String], values: Vec<String>, line: usize) -> Result<Row, RowProblem> {
    if values.len() != header.len() {
        return Err(RowProblem::BrokenCsv(format!(
            "{} fields where the header has {}",
            values.len(),
            header.len()
        )));
    }
    let fields = header.iter().cloned().zip(values.into_iter().map(Value::String)).collect();
    Ok(Row { line, fields })
}
