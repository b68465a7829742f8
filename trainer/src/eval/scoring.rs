//! Label scoring for classification tasks: the log-likelihood of each label's tokens right after
//! the prompt (tokenized as training appends the target), summed or averaged per token, and the
//! argmax label as the answer; no free text is generated, so nothing is unparseable.

use crate::error::{Error, Result};
use crate::eval::{Answer, Evaluator, TaskBatch};
use crate::generate::PromptCache;
use crate::score::score_continuations;

/// How a label's token log-probabilities make its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LabelScore {
    Sum,
    /// The sum divided by the label's token count.
    Mean,
}

/// Scores every label of `work.labels` after each prompt of `prompts` and returns the best label
/// per prompt (the first on ties), with all labels' scores. The prompts run once, their common
/// prefix through `prefix` ([`score_continuations`]).
pub(crate) fn score_labels(
    evaluator: &Evaluator<'_>,
    prompts: &[Vec<u32>],
    work: &TaskBatch<'_>,
    prefix: &mut PromptCache,
    score: LabelScore,
) -> Result<Vec<Answer>> {
    let label_ids: Vec<Vec<u32>> =
        work.labels.iter().map(|label| evaluator.tokenizer.encode(label, false)).collect::<Result<_>>()?;
    if let Some(empty) = label_ids.iter().position(Vec::is_empty) {
        return Err(Error::InvalidInput {
            reason: format!("label {:?} encodes to no tokens", work.labels[empty]),
        });
    }
    let mut on_rows = |rows: &[usize]| {
        evaluator.route(rows.len(), work.adapter);
        Ok(())
    };
    let scores = score_continuations(evaluator.model, prompts, &label_ids, &mut on_rows, Some(prefix))?;
    Ok(scores
        .into_iter()
        .map(|row| {
            let scored: Vec<(String, f64)> = work
                .labels
                .iter()
                .cloned()
                .zip(row.into_iter().zip(&label_ids))
                .map(|(label, (sum, ids))| match score {
                    LabelScore::Sum => (label, sum),
                    LabelScore::Mean => (label, sum / ids.len() as f64),
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
