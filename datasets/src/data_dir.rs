//! Where task data lives and how a task's split is loaded from it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result, RowProblem};
use crate::example::Example;
use crate::loaders::{convert_context_row, convert_row, RowContext};
use crate::rows::{read_rows, LoadOptions, LoadReport, Row};
use crate::split::{split_by_group, Split, ValidationSplit};
use crate::task::{NwgiMapping, Task, TfnsLabels};

/// The `data` folder of the shared files (`fpb/`, `tfns/`, `xbrl_extraction/` ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

/// Choices that change what a task's examples look like.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadConfig {
    pub nwgi: NwgiMapping,
    pub tfns: TfnsLabels,
    pub validation: ValidationSplit,
    pub options: LoadOptions,
}

/// A loaded split and what loading it skipped.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub examples: Vec<Example>,
    pub report: LoadReport,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// `$FINAGENT_DATA`, else `$FINAGENT_SHARED/data`, else `<workspace root>/../shared/data`.
    pub fn from_env() -> Self {
        if let Some(data) = std::env::var_os("FINAGENT_DATA") {
            return DataDir::new(data);
        }
        let shared = std::env::var_os("FINAGENT_SHARED")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")).to_path_buf());
        DataDir::new(shared.join("data"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// FiNER-139's tag list (`finer/tag_set.txt`, one tag a line).
    pub fn finer_tags(&self) -> Result<Vec<String>> {
        let path = self.root.join("finer/tag_set.txt");
        let text = std::fs::read_to_string(&path).map_err(|source| Error::io(&path, source))?;
        Ok(text.lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_string).collect())
    }

    /// The file a task's split is read from (for validation, the train file).
    pub fn file(&self, task: Task, split: Split) -> Result<PathBuf> {
        let missing = || Error::NoSplit { task: task.name(), split: split.name() };
        let relative = match (task, split) {
            (Task::Nwgi, Split::Test) => "nwgi/test.jsonl",
            (Task::Nwgi, _) => return Err(missing()),
            // Made by `generate` from filings; the shared data has no such files.
            (Task::FinerTagging | Task::FinerBatched, _) => return Err(missing()),
            (Task::XbrlTags | Task::XbrlValues, Split::Train | Split::Validation) => return Err(missing()),
            (Task::XbrlFormulaConstruction, Split::TestWithContext) => return Err(missing()),
            (Task::XbrlTags, Split::TestWithContext) => {
                "xbrl_extraction/with_xml_context/xbrl_xbrl_tags_test.jsonl"
            }
            (Task::XbrlValues, Split::TestWithContext) => {
                "xbrl_extraction/with_xml_context/xbrl_value_test.jsonl"
            }
            (Task::XbrlFormulaCalculation, Split::TestWithContext) => {
                "xbrl_extraction/with_xml_context/xbrl_formula_test.jsonl"
            }
            (_, Split::TestWithContext) => return Err(missing()),
            (
                Task::XbrlFormulaConstruction | Task::XbrlFormulaCalculation,
                Split::Train | Split::Validation,
            ) => "xbrl_extraction/train.jsonl",
            (Task::XbrlTags | Task::XbrlValues, Split::Test) => "xbrl_extraction/test.jsonl",
            (Task::XbrlFormulaConstruction | Task::XbrlFormulaCalculation, Split::Test) => {
                "xbrl_extraction/test.jsonl"
            }
            (_, Split::Train | Split::Validation) => {
                return Ok(self.root.join(task.name()).join("train.jsonl"))
            }
            (_, Split::Test) => return Ok(self.root.join(task.name()).join("test.jsonl")),
        };
        Ok(self.root.join(relative))
    }

    /// Loads one split of a task. Train and validation partition the train file with
    /// `config.validation`; test splits are returned whole, in file order.
    pub fn load(&self, task: Task, split: Split, config: &LoadConfig) -> Result<Loaded> {
        let path = self.file(task, split)?;
        let finer_tags = if task == Task::Finer { self.finer_tags()? } else { Vec::new() };
        let loaded = if split == Split::TestWithContext {
            load_context_file(&path, task, config)?
        } else {
            load_rows(&path, task, config, &finer_tags, convert_row)?
        };
        match split {
            Split::Test | Split::TestWithContext => Ok(loaded),
            Split::Train | Split::Validation => {
                let (train, validation) = split_by_group(loaded.examples, config.validation)?;
                let examples = if split == Split::Train { train } else { validation };
                Ok(Loaded { examples, report: loaded.report })
            }
        }
    }
}

/// Loads any file in a task's row format: JSONL, or the original CSV / TSV by extension.
/// FiNER needs its tag list, so it is loaded through [`DataDir::load`] or with [`load_finer_file`].
pub fn load_file(path: &Path, task: Task, config: &LoadConfig) -> Result<Loaded> {
    load_rows(path, task, config, &[], convert_row)
}

/// Loads a FiNER file against the given tag list.
pub fn load_finer_file(path: &Path, tags: &[String], config: &LoadConfig) -> Result<Loaded> {
    load_rows(path, Task::Finer, config, tags, convert_row)
}

/// Loads FinLoRA's `{context, target}` JSONL (its `data/test/*.jsonl`): the prompt is `context`
/// as it stands, the answer `target`.
pub fn load_context_file(path: &Path, task: Task, config: &LoadConfig) -> Result<Loaded> {
    load_rows(path, task, config, &[], convert_context_row)
}

fn load_rows(
    path: &Path,
    task: Task,
    config: &LoadConfig,
    finer_tags: &[String],
    convert: fn(&Row, &RowContext) -> std::result::Result<Option<Example>, RowProblem>,
) -> Result<Loaded> {
    let file_stem = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or("row");
    let context = RowContext { task, file_stem, nwgi: config.nwgi, tfns: config.tfns, finer_tags };
    let (examples, report) = read_rows(path, config.options, |row| convert(row, &context))?;
    Ok(Loaded { examples, report })
}

impl Loaded {
    /// Appends another load (e.g. two files of one task).
    pub fn extend(&mut self, other: Loaded) {
        self.examples.extend(other.examples);
        self.report.merge(other.report);
    }
}
