//! Financial tasks and their prompts, and the XBRL prompt builder shared with the agent.
//!
//! Knows filings and tasks, never tensors. [`Task`] is the registry; [`DataDir::load`] reads a
//! task's split into [`Example`]s; [`normalize`] scores model output the way FinLoRA does or
//! strictly; [`Mixture`] samples a multi-task training set. [`generate`] makes XBRL and FiNER
//! questions from filings; [`retrieval`] is the fact ranking the agent and retrieval-mode
//! generation share.

pub mod csv;
mod data_dir;
mod error;
mod example;
pub mod finer_prompt;
pub mod generate;
mod loaders;
pub mod metrics;
mod mixture;
pub mod normalize;
mod prng;
pub mod retrieval;
mod rows;
mod split;
mod task;
pub mod xbrl_prompt;

pub use data_dir::{load_context_file, load_file, load_finer_file, DataDir, LoadConfig, Loaded};
pub use error::{Error, Result, RowProblem};
pub use example::{finlora_prompt, parse_finlora_prompt, xbrl_extraction_prompt, Example};
pub use loaders::{finer_instruction, fiqa_label};
pub use mixture::{Mixture, MixtureComponent, MixtureDraw, MIXTURE_FILE};
pub use normalize::{judge, Judgement, NormalizeMode};
pub use prng::SplitMix64;
pub use rows::{LoadOptions, LoadReport, SkippedLine};
pub use split::{split_by_group, Split, ValidationSplit};
pub use task::{
    fiqa_instruction, NwgiMapping, Task, TaskKind, TfnsLabels, HEADLINE_LABELS, NER_LABELS,
    NEWS_SENTIMENT_INSTRUCTION, NWGI_INSTRUCTION, NWGI_LABELS, SENTIMENT_LABELS, TWEET_SENTIMENT_INSTRUCTION,
};
