//! One task's predictions scored every way the report needs: FinLoRA's accuracy (v2, the paper's
//! code, and v1), strict accuracy on normalised labels, sklearn's weighted F1 on those labels,
//! FinLoRA's raw-response F1 (labelled as such), per-class precision / recall / F1, the confusion
//! matrix and the share of outputs naming no label.

use std::collections::HashMap;

use datasets::metrics::{accuracy, weighted_f1};
use datasets::{judge, Example, Judgement, NormalizeMode, Task};
use serde::{Deserialize, Serialize};

use crate::eval::{EvalMode, Prediction};

/// Column of the confusion matrix for outputs that name no label.
pub const UNPARSED: &str = "(unparsed)";

/// Scores of one task in one mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMetrics {
    pub task: Task,
    pub mode: EvalMode,
    pub n_examples: usize,
    /// FinLoRA v2 (`test/test_dataset.py`), the accuracy the paper's tables report.
    pub accuracy_finlora: f64,
    /// FinLoRA v1 (`test/general_fin/*.py`, `test/xbrl.py`).
    pub accuracy_finlora_v1: f64,
    /// Strict: the earliest whole-word label (or the exact free-text answer) must equal the target.
    pub accuracy_strict: f64,
    /// sklearn `f1_score(average="weighted")` over strictly parsed labels.
    pub f1_weighted: f64,
    /// FinLoRA's F1 over its response list, where wrong answers stay raw strings and so never
    /// count against a class's precision: not comparable with `f1_weighted`, often above accuracy.
    pub f1_finlora_raw: f64,
    /// Share of outputs from which strict parsing reads no label / answer.
    pub unparseable_share: f64,
    /// Per-class figures on strict labels; empty for free-text tasks.
    pub per_class: Vec<ClassMetrics>,
    /// Confusion matrix on strict labels; `None` for free-text tasks.
    pub confusion: Option<Confusion>,
    /// Mean seconds of inference per example (model load excluded).
    pub seconds_per_example: f64,
}

/// Precision, recall and F1 of one class (zero division gives 0, as sklearn).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// `counts[reference][predicted]`: rows follow `labels`, columns follow `labels` then [`UNPARSED`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub labels: Vec<String>,
    pub counts: Vec<Vec<usize>>,
}

/// Scores `examples` with their predictions (every example must have one). `labels` is what
/// answers are parsed against (the task's labels, FiNER's tags, or empty for free-text tasks);
/// per-class figures and the confusion matrix are kept for the registry's closed label sets.
pub fn task_metrics(
    task: Task,
    mode: EvalMode,
    examples: &[&Example],
    predictions: &HashMap<String, Prediction>,
    labels: &[String],
) -> crate::Result<TaskMetrics> {
    let candidates: Vec<&str> = labels.iter().map(String::as_str).collect();
    let mut by_mode: HashMap<NormalizeMode, Vec<Judgement>> = HashMap::new();
    let mut seconds = 0.0;
    for example in examples {
        let prediction = predictions.get(&example.id).ok_or_else(|| crate::Error::InvalidInput {
            reason: format!("example {} of {task} has no prediction", example.id),
        })?;
        seconds += prediction.seconds;
        let reference = example.label.as_deref().unwrap_or(&example.target);
        for normalize in [NormalizeMode::FinLoraV2, NormalizeMode::FinLoraV1, NormalizeMode::Strict] {
            let judgement = judge(task, normalize, &candidates, &prediction.output, reference);
            by_mode.entry(normalize).or_default().push(judgement);
        }
    }
    let judged = |normalize| by_mode.get(&normalize).map(Vec::as_slice).unwrap_or_default();
    let strict = judged(NormalizeMode::Strict);
    let n_examples = examples.len();
    let unparsed = strict.iter().filter(|judgement| judgement.prediction.is_none()).count();
    let closed = task.labels(datasets::NwgiMapping::default()).is_some() && !labels.is_empty();
    Ok(TaskMetrics {
        task,
        mode,
        n_examples,
        accuracy_finlora: accuracy(judged(NormalizeMode::FinLoraV2)),
        accuracy_finlora_v1: accuracy(judged(NormalizeMode::FinLoraV1)),
        accuracy_strict: accuracy(strict),
        f1_weighted: weighted_f1(strict),
        f1_finlora_raw: weighted_f1(judged(NormalizeMode::FinLoraV2)),
        unparseable_share: ratio(unparsed, n_examples),
        per_class: if closed { per_class(strict, labels) } else { Vec::new() },
        confusion: closed.then(|| confusion(strict, labels)),
        seconds_per_example: if n_examples == 0 { 0.0 } else { seconds / n_examples as f64 },
    })
}

fn per_class(judgements: &[Judgement], labels: &[String]) -> Vec<ClassMetrics> {
    labels
        .iter()
        .map(|label| {
            let is = |value: Option<&str>| value == Some(label.as_str());
            let support = judgements.iter().filter(|j| is(Some(&j.reference))).count();
            let predicted = judgements.iter().filter(|j| is(j.prediction.as_deref())).count();
            let true_positive =
                judgements.iter().filter(|j| is(Some(&j.reference)) && is(j.prediction.as_deref())).count();
            let precision = ratio(true_positive, predicted);
            let recall = ratio(true_positive, support);
            let f1 =
                if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
            ClassMetrics { label: label.clone(), precision, recall, f1, support }
        })
        .collect()
}

fn confusion(judgements: &[Judgement], labels: &[String]) -> Confusion {
    let column = |prediction: Option<&str>| {
        prediction.and_then(|label| labels.iter().position(|known| known == label)).unwrap_or(labels.len())
    };
    let mut counts = vec![vec![0; labels.len() + 1]; labels.len()];
    for judgement in judgements {
        if let Some(row) = labels.iter().position(|label| *label == judgement.reference) {
            counts[row][column(judgement.prediction.as_deref())] += 1;
        }
    }
    Confusion { labels: labels.to_vec(), counts }
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(id: &str, label: &str) -> Example {
        Example {
            id: id.into(),
            task: Task::Fpb,
            instruction: String::new(),
            input: String::new(),
            prompt: format!("prompt {id}"),
            target: label.into(),
            label: Some(label.into()),
            group: id.into(),
            line: 1,
            extra: Default::default(),
        }
    }

    fn prediction(id: &str, output: &str) -> Prediction {
        Prediction {
            id: id.into(),
            prompt_hash: String::new(),
            output: output.into(),
            parsed: None,
            label_log_likelihoods: None,
            seconds: 0.25,
        }
    }

    /// REFERENCE.md C4's hand-worked case: targets [neg, neg, pos, pos], answers [neg, "The answer
    /// is pos", pos, "neg."]: strict accuracy 1/2; FinLoRA's raw-response F1 0.667 in free text.
    #[test]
    fn scores_the_hand_worked_case() {
        let examples = [
            example("0", "negative"),
            example("1", "negative"),
            example("2", "positive"),
            example("3", "positive"),
        ];
        let outputs = ["negative", "The answer is positive", "positive", "negative."];
        let predictions: HashMap<String, Prediction> = outputs
            .iter()
            .enumerate()
            .map(|(idx, output)| (idx.to_string(), prediction(&idx.to_string(), output)))
            .collect();
        let refs: Vec<&Example> = examples.iter().collect();
        let labels: Vec<String> = ["negative", "neutral", "positive"].map(String::from).to_vec();
        let metrics = task_metrics(Task::Fpb, EvalMode::Generate, &refs, &predictions, &labels).unwrap();
        assert_eq!(metrics.accuracy_strict, 0.5);
        assert_eq!(metrics.unparseable_share, 0.0);
        // Every class predicted twice with one hit: precision = recall = F1 = 1/2 each.
        assert!((metrics.f1_weighted - 0.5).abs() < 1e-12);
        let confusion = metrics.confusion.unwrap();
        assert_eq!(confusion.counts, vec![vec![1, 0, 1, 0], vec![0, 0, 0, 0], vec![1, 0, 1, 0]]);
        let negative = &metrics.per_class[0];
        assert_eq!((negative.precision, negative.recall, negative.support), (0.5, 0.5, 2));
        assert!((metrics.seconds_per_example - 0.25).abs() < 1e-12);
    }

    #[test]
    fn an_unparseable_output_counts_as_wrong_and_unparsed() {
        let examples = [example("0", "neutral")];
        let predictions = HashMap::from([("0".to_string(), prediction("0", "I cannot say"))]);
        let refs: Vec<&Example> = examples.iter().collect();
        let labels: Vec<String> = ["negative", "neutral", "positive"].map(String::from).to_vec();
        let metrics = task_metrics(Task::Fpb, EvalMode::Generate, &refs, &predictions, &labels).unwrap();
        assert_eq!(metrics.accuracy_strict, 0.0);
        assert_eq!(metrics.unparseable_share, 1.0);
        // FinLoRA v1's change_target calls anything without positive/negative "neutral".
        assert_eq!(metrics.accuracy_finlora_v1, 1.0);
        assert_eq!(metrics.confusion.unwrap().counts[1], vec![0, 0, 0, 1]);
    }
}
