//! A generated dataset: questions from every filing under a folder, split by filing (company and
//! fiscal year, so no filing is in two splits), written as JSONL without ever leaving a partial file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use taxonomy::Catalogue;

use super::finer::{filing_entities, finer_rows, tag_options, FilingEntities, FilingKey, FinerTagSet};
use super::formulas::Formula;
use super::narrative::read_narrative_facts;
use super::questions::{filing_questions, ContextMode, GeneratedRow, QuestionConfig};
use super::source::{discover_filings, load_source_filing, SkippedFiling};
use crate::error::{Error, Result};
use crate::prng::SplitMix64;
use crate::split::Split;
use crate::task::Task;

/// The tasks [`generate`] can make from filings.
pub const GENERATED_TASKS: [Task; 6] = [
    Task::XbrlTags,
    Task::XbrlValues,
    Task::XbrlFormulaConstruction,
    Task::XbrlFormulaCalculation,
    Task::FinerTagging,
    Task::FinerBatched,
];

/// What to generate and how to split it.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    pub tasks: Vec<Task>,
    /// Share of filings (not rows) in the test split, then in validation; the rest is train.
    pub test_fraction: f64,
    pub validation_fraction: f64,
    /// Seeds the shuffle of filings.
    pub seed: u64,
    /// Context of the xbrl tasks' prompts.
    pub context: ContextMode,
    /// Which narrative facts make FiNER questions (default: any us-gaap tag, the one set that
    /// needs no file).
    pub finer: FinerTagSet,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            tasks: GENERATED_TASKS.to_vec(),
            test_fraction: 0.2,
            validation_fraction: 0.1,
            seed: 42,
            context: ContextMode::Full,
            finer: FinerTagSet::UsGaap,
        }
    }
}

/// Generated rows by split, and what was left out.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    pub train: Vec<GeneratedRow>,
    pub validation: Vec<GeneratedRow>,
    pub test: Vec<GeneratedRow>,
    pub skipped_filings: Vec<SkippedFiling>,
    /// Prompts over [`crate::xbrl_prompt::MAX_PROMPT_CHARS`] characters, dropped as FinLoRA drops them.
    pub n_dropped_long: usize,
}

impl Generated {
    pub fn splits(&self) -> [(Split, &[GeneratedRow]); 3] {
        [(Split::Train, &self.train), (Split::Validation, &self.validation), (Split::Test, &self.test)]
    }

    pub fn rows(&self) -> impl Iterator<Item = &GeneratedRow> {
        self.train.iter().chain(&self.validation).chain(&self.test)
    }

    /// Rows per task, over all splits.
    pub fn rows_per_task(&self) -> BTreeMap<Task, usize> {
        let mut counts = BTreeMap::new();
        for row in self.rows() {
            *counts.entry(row.task).or_default() += 1;
        }
        counts
    }

    /// Rows per filing (`doc_path`) with the split it went to.
    pub fn rows_per_filing(&self) -> BTreeMap<String, (Split, usize)> {
        let mut counts = BTreeMap::new();
        for (split, rows) in self.splits() {
            for row in rows {
                counts.entry(row.doc_path.clone()).or_insert((split, 0)).1 += 1;
            }
        }
        counts
    }

    /// Writes `<out_dir>/<task>/<split>.jsonl` for every task and split with rows; returns the paths.
    pub fn write(&self, out_dir: &Path) -> Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for (split, rows) in self.splits() {
            let mut by_task: BTreeMap<Task, Vec<&GeneratedRow>> = BTreeMap::new();
            for row in rows {
                by_task.entry(row.task).or_default().push(row);
            }
            for (task, task_rows) in by_task {
                let path = out_dir.join(task.name()).join(format!("{}.jsonl", split.name()));
                write_jsonl_atomic(&path, &task_rows)?;
                written.push(path);
            }
        }
        Ok(written)
    }
}

/// Questions of `config.tasks` from every filing under `filings_root`, split by filing.
pub fn generate(
    filings_root: &Path,
    formulas: &[Formula],
    catalogue: Option<&Catalogue>,
    config: &GenerateConfig,
) -> Result<Generated> {
    if let Some(task) = config.tasks.iter().find(|task| !GENERATED_TASKS.contains(task)) {
        let supported: Vec<&str> = GENERATED_TASKS.iter().map(|task| task.name()).collect();
        return Err(Error::Config(format!(
            "task {task} cannot be generated from filings (supported: {})",
            supported.join(", ")
        )));
    }
    let fractions = config.test_fraction + config.validation_fraction;
    if config.test_fraction < 0.0 || config.validation_fraction < 0.0 || fractions > 1.0 {
        return Err(Error::Config(format!(
            "test fraction {} and validation fraction {} must be non-negative and sum to at most 1",
            config.test_fraction, config.validation_fraction
        )));
    }
    if config.context == (ContextMode::Retrieval { top_k: 0 }) {
        return Err(Error::Config("retrieval mode needs a top-k of at least 1".into()));
    }
    if matches!(&config.finer, FinerTagSet::Finer139(tags) if tags.is_empty()) {
        return Err(Error::Config("the FiNER-139 tag set is empty".into()));
    }
    let mut generated = Generated::default();
    let mut by_filing: BTreeMap<(String, i32), Vec<GeneratedRow>> = BTreeMap::new();
    let mut entities: Vec<((String, i32), FilingEntities)> = Vec::new();
    let wants_finer = config.tasks.iter().any(|task| matches!(task, Task::FinerTagging | Task::FinerBatched));
    let question_config =
        QuestionConfig { tasks: &config.tasks, formulas, catalogue, context: config.context };
    for files in discover_filings(filings_root)? {
        let filing = match load_source_filing(&files) {
            Ok(filing) => filing,
            Err(skipped) => {
                generated.skipped_filings.push(skipped);
                continue;
            }
        };
        let questions = filing_questions(&filing, &question_config);
        generated.n_dropped_long += questions.n_dropped_long;
        by_filing.entry(filing.key()).or_default().extend(questions.rows);
        if let (true, Some(inline)) = (wants_finer, &filing.inline) {
            match read_narrative_facts(inline) {
                Ok(facts) => {
                    let found = filing_entities(&filing, &facts, &config.finer);
                    entities.push((filing.key(), (FilingKey::from(&filing), found)));
                }
                Err(error) => generated.skipped_filings.push(SkippedFiling {
                    path: inline.clone(),
                    reason: format!("no FiNER questions: {error}"),
                }),
            }
        }
    }
    // The options of a full us-gaap prompt are the tags of every filing's questions.
    let options = tag_options(&config.finer, entities.iter().flat_map(|(_, (_, found))| found));
    for (key, (filing, found)) in &entities {
        by_filing.entry(key.clone()).or_default().extend(finer_rows(filing, found, &options, &config.tasks));
    }
    let mut keys: Vec<(String, i32)> = by_filing.keys().cloned().collect();
    SplitMix64::new(config.seed).shuffle(&mut keys);
    let n_test = (config.test_fraction * keys.len() as f64).round() as usize;
    let n_validation = (config.validation_fraction * keys.len() as f64).round() as usize;
    for (key_idx, key) in keys.iter().enumerate() {
        let rows = by_filing.remove(key).unwrap_or_default();
        let split = if key_idx < n_test {
            &mut generated.test
        } else if key_idx < n_test + n_validation {
            &mut generated.validation
        } else {
            &mut generated.train
        };
        split.extend(rows);
    }
    Ok(generated)
}

/// Writes `rows` as JSONL to a temporary file beside `path`, then renames it into place.
pub fn write_jsonl_atomic<T: serde::Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| Error::io(parent, source))?;
    }
    let file_name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let temp_path = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = write_rows(&temp_path, rows)
        .and_then(|()| std::fs::rename(&temp_path, path).map_err(|source| Error::io(path, source)));
    if result.is_err() {
        // Best effort: the temporary file is ours and useless once writing failed.
        let _ = std::fs::remove_file(&temp_path);
    }
    result
}

fn write_rows<T: serde::Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|source| Error::io(path, source))?;
    let mut writer = std::io::BufWriter::new(file);
    for row in rows {
        let line = serde_json::to_string(row)
            .map_err(|error| Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidData, error)))?;
        writeln!(writer, "{line}").map_err(|source| Error::io(path, source))?;
    }
    writer.flush().map_err(|source| Error::io(path, source))?;
    writer
        .into_inner()
        .map_err(|error| Error::io(path, error.into_error()))?
        .sync_all()
        .map_err(|source| Error::io(path, source))
}
