//! Label scoring for classification tasks: the log-likelihood of each label's tokens right after
//! the prompt (tokenized as training appends the target), summed, averaged per token, or
//! calibrated against the same prompt without its input, and the argmax label as the answer; no
//! free text is generated, so nothing is unparseable.

use std::collections::HashMap;

use datasets::Example;

use crate::error::{Error, Result};
use crate::eval::{Answer, Evaluator, TaskBatch};
use crate::generate::PromptCache;
use crate::score::score_continuations;

/// How a label's token log-probabilities make its score.
#[derive(Debug)]
pub(crate) enum LabelScore<'a> {
    Sum,
    /// The sum divided by the label's token count.
    Mean,
    /// The sum minus the label's sum after the example's prompt with its input left out
    /// (domain-conditional PMI, Holtzman et al. 2021, "Surface Form Competition"): what the input
    /// adds to a label, not how likely the label is anyway. `null_prompts` holds each prompt's
    /// input-less form (token ids, one per prompt); their scores are kept in `null_scores`.
    Calibrated {
        null_prompts: &'a [Vec<u32>],
        null_scores: &'a mut NullScores,
    },
}

/// The summed label log-likelihoods after each distinct input-less prompt, kept for a task's whole
/// run: rows whose prompts differ only in their input share one entry.
#[derive(Debug, Default)]
pub(crate) struct NullScores {
    sums: HashMap<Vec<u32>, Vec<f64>>,
}

/// `example`'s prompt with its input left out (the last occurrence of the input text removed), the
/// condition [`LabelScore::Calibrated`] divides out.
pub(crate) fn input_less_prompt(example: &Example) -> Result<String> {
    let at = (!example.input.is_empty()).then(|| example.prompt.rfind(&example.input)).flatten().ok_or_else(
        || Error::InvalidInput {
            reason: format!(
                "example {} of {}: its input does not appear in its prompt, so the prompt cannot be \
                 calibrated without it",
                example.id, example.task
            ),
        },
    )?;
    Ok(format!("{}{}", &example.prompt[..at], &example.prompt[at + example.input.len()..]))
}

/// Scores every label of `work.labels` after each prompt of `prompts` and returns the best label
/// per prompt (the first on ties), with all labels' scores. The prompts run once, their common
/// prefix through `prefix` ([`score_continuations`]).
pub(crate) fn score_labels(
    evaluator: &Evaluator<'_>,
    prompts: &[Vec<u32>],
    work: &TaskBatch<'_>,
    prefix: &mut PromptCache,
    score: LabelScore<'_>,
) -> Result<Vec<Answer>> {
    let label_ids: Vec<Vec<u32>> =
        work.labels.iter().map(|label| evaluator.tokenizer.encode(label, false)).collect::<Result<_>>()?;
    if let Some(empty) = label_ids.iter().position(Vec::is_empty) {
        return Err(Error::InvalidInput {
            reason: format!("label {:?} encodes to no tokens", work.labels[empty]),
        });
    }
    let sums = label_sums(evaluator, prompts, &label_ids, work, prefix)?;
    let per_token = matches!(score, LabelScore::Mean);
    let baselines = match score {
        LabelScore::Calibrated { null_prompts, null_scores } => {
            if null_prompts.len() != prompts.len() {
                return Err(Error::InvalidInput {
                    reason: format!(
                        "{} input-less prompts for {} prompts to calibrate",
                        null_prompts.len(),
                        prompts.len()
                    ),
                });
            }
            Some(null_scores.sums_after(evaluator, null_prompts, &label_ids, work, prefix)?)
        }
        LabelScore::Sum | LabelScore::Mean => None,
    };
    Ok(sums
        .into_iter()
        .enumerate()
        .map(|(row, sums)| {
            let scored: Vec<(String, f64)> = work
                .labels
                .iter()
                .cloned()
                .zip(sums.into_iter().zip(&label_ids))
                .enumerate()
                .map(|(idx, (label, (sum, ids)))| match &baselines {
                    Some(nulls) => (label, sum - nulls[row][idx]),
                    None if per_token => (label, sum / ids.len() as f64),
                    None => (label, sum),
                })
                .collect();
            let best = scored
                .iter()
                .fold(None::<&(String, f64)>, |best, candidate| match best {
                    Some(best) if best.1 >= candidate.1 => Some(best),
                    _ => Some(candidate),
                })
                .map(|(label, _)| label.clone())
                .unwrap_or_default();
            Answer { output: best, label_log_likelihoods: Some(scored) }
        })
        .collect())
}

impl NullScores {
    /// The label sums after each of `null_prompts`, scoring only the prompts not seen before.
    fn sums_after(
        &mut self,
        evaluator: &Evaluator<'_>,
        null_prompts: &[Vec<u32>],
        label_ids: &[Vec<u32>],
        work: &TaskBatch<'_>,
        prefix: &mut PromptCache,
    ) -> Result<Vec<Vec<f64>>> {
        let mut missing: Vec<Vec<u32>> = Vec::new();
        for null in null_prompts {
            if !self.sums.contains_key(null) && !missing.contains(null) {
                missing.push(null.clone());
            }
        }
        if !missing.is_empty() {
            let scored = label_sums(evaluator, &missing, label_ids, work, prefix)?;
            self.sums.extend(missing.into_iter().zip(scored));
        }
        Ok(null_prompts.iter().map(|null| self.sums[null].clone()).collect())
    }
}

/// Summed log-likelihood of each of `label_ids` after each of `prompts`, through `work`'s adapter.
fn label_sums(
    evaluator: &Evaluator<'_>,
    prompts: &[Vec<u32>],
    label_ids: &[Vec<u32>],
    work: &TaskBatch<'_>,
    prefix: &mut PromptCache,
) -> Result<Vec<Vec<f64>>> {
    let mut on_rows = |rows: &[usize]| {
        evaluator.route(rows.len(), work.adapter);
        Ok(())
    };
    score_continuations(evaluator.model, prompts, label_ids, &mut on_rows, Some(prefix))
}
