//! XBRL training data made from real filings: FinLoRA's full-mode or the agent's retrieval-mode
//! context, tag, value and formula (construction, calculation) questions, FiNER questions from the
//! filings' running text, splits by filing, and atomic JSONL output.
//!
//! [`generate`] walks a folder of filings, asks [`questions::filing_questions`] and
//! [`finer::finer_rows`] about each, splits by (ticker, fiscal year) and [`Generated::write`]s
//! `<task>/<split>.jsonl`.

pub mod context_block;
mod dataset;
pub mod finer;
pub mod formulas;
pub mod narrative;
pub mod questions;
mod retrieval_questions;
pub mod source;
mod written_text;

pub use context_block::{context_line, context_lines, finlora_block, render_block};
pub use dataset::{generate, write_jsonl_atomic, GenerateConfig, Generated, GENERATED_TASKS};
pub use finer::{filing_entities, finer_rows, FinerEntity, FinerTagSet};
pub use formulas::{read_formulas, Formula};
pub use narrative::{parse_narrative_facts, read_narrative_facts, NarrativeFact};
pub use questions::{filing_questions, ContextMode, FilingQuestions, GeneratedRow, QuestionConfig};
pub use source::{discover_filings, load_source_filing, SkippedFiling, SourceFiling};
pub use written_text::WrittenText;
