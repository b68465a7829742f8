//! Evaluation the way the FinLoRA paper reports it: the base model, or the base with adapters
//! routed per task, answers a task's test examples by batched greedy generation (or, for
//! classification, by scoring each label's log-likelihood), every answer is appended to a
//! predictions log as it is made (so an interrupted run resumes where it stopped), and the log is
//! scored into accuracy, F1, per-class figures and a confusion matrix.

pub mod log;
pub mod metrics;
pub mod report;
pub mod scoring;

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use datasets::{judge, Example, NormalizeMode, Task};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::generate::{generate_greedy_batch_shared, GreedyConfig, PromptCache};
use crate::model::Llama;
use crate::multi_lora::AdapterRouter;
use crate::tokenizer::Tokenizer;
use scoring::{LabelScore, NullScores};

pub use log::{prompt_hash, Prediction, PredictionLog};
pub use metrics::{task_metrics, ClassMetrics, Confusion, TaskMetrics};

/// How answers are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalMode {
    /// Greedy free-text generation up to the task's max new tokens, then answer parsing.
    Generate,
    /// The label whose tokens are most likely after the prompt, by their summed log-probability
    /// (tasks with a closed label set).
    Score,
    /// The label with the highest mean log-probability per token: a sum favours labels of few
    /// tokens, which matters where labels differ in length (FiNER's tags, 3 to 20 tokens).
    #[serde(rename = "score-mean")]
    ScoreMean,
    /// The label whose summed log-probability gains most from the example's input: the sum after
    /// the prompt minus the sum after the same prompt with its input left out (domain-conditional
    /// PMI). This divides out what the model says regardless of the input: a label's prior, its
    /// length, a finetuned adapter's favourite class.
    #[serde(rename = "score-calibrated")]
    ScoreCalibrated,
}

impl EvalMode {
    pub const ALL: [EvalMode; 4] =
        [EvalMode::Generate, EvalMode::Score, EvalMode::ScoreMean, EvalMode::ScoreCalibrated];

    pub fn name(self) -> &'static str {
        match self {
            EvalMode::Generate => "generate",
            EvalMode::Score => "score",
            EvalMode::ScoreMean => "score-mean",
            EvalMode::ScoreCalibrated => "score-calibrated",
        }
    }

    /// Whether answers are labels picked by their log-likelihood (no free text).
    pub fn scores_labels(self) -> bool {
        matches!(self, EvalMode::Score | EvalMode::ScoreMean | EvalMode::ScoreCalibrated)
    }
}

impl fmt::Display for EvalMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EvalMode {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "generate" => Ok(EvalMode::Generate),
            "score" => Ok(EvalMode::Score),
            "score-mean" => Ok(EvalMode::ScoreMean),
            "score-calibrated" => Ok(EvalMode::ScoreCalibrated),
            other => Err(Error::InvalidInput {
                reason: format!(
                    "unknown evaluation mode {other:?} (known: generate, score, score-mean, score-calibrated)"
                ),
            }),
        }
    }
}

/// A model ready to answer: its tokenizer, the adapter router when adapters are attached, and
/// how many examples share a forward pass.
#[derive(Debug, Clone, Copy)]
pub struct Evaluator<'a> {
    pub model: &'a Llama,
    pub tokenizer: &'a Tokenizer,
    pub router: Option<&'a AdapterRouter>,
    pub batch_size: usize,
}

/// One task's examples to answer, all through the same adapter (`None`: the base alone).
#[derive(Debug, Clone, Copy)]
pub struct TaskBatch<'a> {
    pub task: Task,
    pub examples: &'a [&'a Example],
    pub adapter: Option<usize>,
    /// The closed label set answers are parsed against (empty for free-text tasks).
    pub labels: &'a [String],
    /// Generation budget per answer: the task's [`Task::max_new_tokens`] unless overridden.
    pub max_new_tokens: usize,
}

impl Evaluator<'_> {
    /// Answers every example of `work` in `mode`, in batches of prompts of similar length, and
    /// hands each [`Prediction`] to `on_prediction` as soon as its batch is done. A prediction's
    /// `seconds` is its batch's wall time divided by the batch size.
    pub fn answer(
        &self,
        work: &TaskBatch<'_>,
        mode: EvalMode,
        on_prediction: &mut dyn FnMut(Prediction) -> Result<()>,
    ) -> Result<()> {
        if mode.scores_labels() && work.labels.is_empty() {
            return Err(Error::InvalidInput {
                reason: format!(
                    "task {} has no closed label set, so it cannot be scored by label",
                    work.task
                ),
            });
        }
        let batch_size = self.batch_size.max(1);
        let mut prompts = Vec::with_capacity(work.examples.len());
        for example in work.examples {
            let ids = self.tokenizer.encode(&example.prompt, false)?;
            self.check_fits(example, ids.len(), work.max_new_tokens)?;
            prompts.push(ids);
        }
        // Calibrated scoring also scores each prompt with its input left out.
        let null_prompts: Vec<Vec<u32>> = if mode == EvalMode::ScoreCalibrated {
            work.examples
                .iter()
                .map(|example| self.tokenizer.encode(&scoring::input_less_prompt(example)?, false))
                .collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        let mut null_scores = NullScores::default();
        // Longest first: similar lengths share a batch (little padding) and the peak comes early.
        let mut order: Vec<usize> = (0..work.examples.len()).collect();
        order.sort_by_key(|&idx| std::cmp::Reverse(prompts[idx].len()));
        // Every row of `work` runs through one adapter, so the task's common prompt prefix is
        // prefilled once and carried from batch to batch.
        let mut prefix = PromptCache::default();
        for chunk in order.chunks(batch_size) {
            let started = Instant::now();
            let batch_prompts: Vec<Vec<u32>> = chunk.iter().map(|&idx| prompts[idx].clone()).collect();
            let answers = match mode {
                EvalMode::Generate => self.generate(&batch_prompts, work, &mut prefix)?,
                EvalMode::Score => {
                    scoring::score_labels(self, &batch_prompts, work, &mut prefix, LabelScore::Sum)?
                }
                EvalMode::ScoreMean => {
                    scoring::score_labels(self, &batch_prompts, work, &mut prefix, LabelScore::Mean)?
                }
                EvalMode::ScoreCalibrated => {
                    let batch_nulls: Vec<Vec<u32>> =
                        chunk.iter().map(|&idx| null_prompts[idx].clone()).collect();
                    scoring::score_labels(
                        self,
                        &batch_prompts,
                        work,
                        &mut prefix,
                        LabelScore::Calibrated { null_prompts: &batch_nulls, null_scores: &mut null_scores },
                    )?
                }
            };
            let seconds = started.elapsed().as_secs_f64() / chunk.len() as f64;
            for (&idx, answer) in chunk.iter().zip(answers) {
                let example = work.examples[idx];
                let reference = example.label.as_deref().unwrap_or(&example.target);
                let candidates: Vec<&str> = work.labels.iter().map(String::as_str).collect();
                let parsed = judge(work.task, NormalizeMode::Strict, &candidates, &answer.output, reference)
                    .prediction;
                on_prediction(Prediction {
                    id: example.id.clone(),
                    prompt_hash: prompt_hash(&example.prompt),
                    output: answer.output,
                    parsed,
                    label_log_likelihoods: answer.label_log_likelihoods,
                    seconds,
                })?;
            }
        }
        Ok(())
    }

    fn check_fits(&self, example: &Example, prompt_len: usize, new_tokens: usize) -> Result<()> {
        let max_positions = self.model.config().max_position_embeddings;
        if prompt_len == 0 || prompt_len + new_tokens > max_positions {
            return Err(Error::InvalidInput {
                reason: format!(
                    "example {} of {}: a prompt of {prompt_len} tokens plus {new_tokens} new tokens does not fit \
                     the model's {max_positions} positions",
                    example.id, example.task
                ),
            });
        }
        Ok(())
    }

    /// Sets every row of the next forward passes to `adapter`.
    pub(crate) fn route(&self, rows: usize, adapter: Option<usize>) {
        if let Some(router) = self.router {
            router.set_rows(vec![adapter; rows]);
        }
    }

    fn generate(
        &self,
        prompts: &[Vec<u32>],
        work: &TaskBatch<'_>,
        prefix: &mut PromptCache,
    ) -> Result<Vec<Answer>> {
        let config =
            GreedyConfig { max_new_tokens: work.max_new_tokens, stop_ids: self.tokenizer.eos_ids().to_vec() };
        let mut on_rows = |rows: &[usize]| {
            self.route(rows.len(), work.adapter);
            Ok(())
        };
        let generated = generate_greedy_batch_shared(self.model, prompts, &config, &mut on_rows, prefix)?;
        generated
            .into_iter()
            .map(|mut ids| {
                if ids.last().is_some_and(|id| config.stop_ids.contains(id)) {
                    ids.pop();
                }
                Ok(Answer { output: self.tokenizer.decode(&ids)?, label_log_likelihoods: None })
            })
            .collect()
    }
}

/// What the model answered for one example.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub output: String,
    pub label_log_likelihoods: Option<Vec<(String, f64)>>,
}

/// The record of one `finagent eval` run (`run.json`), what `finagent report` tabulates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRun {
    /// The configuration's name in reports (default: the output folder's name).
    pub name: String,
    pub model: String,
    /// Precision of the base: 4, 8 or 32.
    pub bits: u32,
    pub batch_size: usize,
    pub limit: Option<usize>,
    pub adapters: Vec<AdapterEntry>,
    pub results: Vec<TaskMetrics>,
    /// Peak resident memory of the evaluating process (`VmHWM`).
    pub peak_rss_bytes: u64,
    /// Seconds to load, quantize and attach (not part of any per-example time).
    pub load_seconds: f64,
}

/// An adapter of a run and the task it serves (`None`: every task).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterEntry {
    pub task: Option<String>,
    pub dir: String,
    pub rank: usize,
    pub size_bytes: u64,
}

/// The file name of a run's record inside its output folder.
pub const RUN_FILE: &str = "run.json";

impl EvalRun {
    /// Reads `run.json` from a run folder.
    pub fn read(dir: &std::path::Path) -> Result<Self> {
        let path = dir.join(RUN_FILE);
        let text =
            std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        serde_json::from_str(&text).map_err(|source| Error::Json { path, source })
    }

    /// Writes `run.json` into `dir` atomically.
    pub fn write(&self, dir: &std::path::Path) -> Result<()> {
        let path = dir.join(RUN_FILE);
        let json = serde_json::to_string_pretty(self)
            .map_err(|source| Error::Json { path: path.clone(), source })?;
        crate::train::metrics::write_atomically(&path, json.as_bytes())
    }

    /// Total bytes of the run's adapters.
    pub fn adapter_bytes(&self) -> u64 {
        self.adapters.iter().map(|adapter| adapter.size_bytes).sum()
    }
}
