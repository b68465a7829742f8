//! XBRL training data made from real filings: FinLoRA's full-mode context block, tag, value and
//! formula-calculation questions, splits by filing, and atomic JSONL output.
//!
//! [`generate`] walks a folder of filings, asks [`questions::filing_questions`] about each, splits
//! by (ticker, fiscal year) and [`Generated::write`]s `<task>/<split>.jsonl`.

pub mod context_block;
mod dataset;
pub mod formulas;
pub mod questions;
pub mod source;
mod written_text;

pub use context_block::{context_line, context_lines, finlora_block, render_block};
pub use dataset::{generate, write_jsonl_atomic, GenerateConfig, Generated, GENERATED_TASKS};
pub use formulas::{read_formulas, Formula};
pub use questions::{filing_questions, FilingQuestions, GeneratedRow};
pub use source::{discover_filings, load_source_filing, SkippedFiling, SourceFiling};
pub use written_text::WrittenText;
