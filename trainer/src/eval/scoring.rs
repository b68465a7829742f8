//! Label scoring for classification tasks: the summed log-likelihood of each label's tokens right
//! after the prompt (tokenized as training appends the target), and the argmax label as the
//! answer; no free text is generated, so nothing is unparseable.

use candle_core::{DType, Tensor, D};

use crate::error::{Error, Result};
use crate::eval::{Answer, Evaluator, TaskBatch};

/// Scores every label of `work.labels` after each prompt of `prompts` and returns the best label
/// per prompt (the first on ties), with all labels' log-likelihoods. All prompt-label sequences of
/// the batch share one right-padded forward pass; logits are computed only where a label token
/// is predicted.
pub(crate) fn score_labels(
    evaluator: &Evaluator<'_>,
    prompts: &[Vec<u32>],
    work: &TaskBatch<'_>,
) -> Result<Vec<Answer>> {
    let model = evaluator.model;
    let label_ids: Vec<Vec<u32>> =
        work.labels.iter().map(|label| evaluator.tokenizer.encode(label, false)).collect::<Result<_>>()?;
    if let Some(empty) = label_ids.iter().position(Vec::is_empty) {
        return Err(Error::InvalidInput {
            reason: format!("label {:?} encodes to no tokens", work.labels[empty]),
        });
    }
    let sequences: Vec<Vec<u32>> = prompts
        .iter()
        .flat_map(|prompt| label_ids.iter().map(move |label| [prompt.as_slice(), label.as_slice()].concat()))
        .collect();
    let width = sequences.iter().map(Vec::len).max().unwrap_or(0);
    let mut padded = Vec::with_capacity(sequences.len() * width);
    // Rows of the flattened `[rows * width]` positions whose logits predict a label token, and
    // the token each predicts.
    let mut predicting_rows = Vec::new();
    let mut predicted_ids = Vec::new();
    for (row, sequence) in sequences.iter().enumerate() {
        padded.extend_from_slice(sequence);
        // Padding after the sequence: the causal mask keeps it out of every real position.
        padded.extend(std::iter::repeat_n(0, width - sequence.len()));
        let label = &label_ids[row % label_ids.len()];
        let first = sequence.len() - label.len();
        for (offset, &token) in label.iter().enumerate() {
            predicting_rows.push((row * width + first + offset - 1) as u32);
            predicted_ids.push(token);
        }
    }
    evaluator.route(sequences.len(), work.adapter);
    let device = model.device();
    let input = Tensor::from_vec(padded, (sequences.len(), width), device)?;
    let hidden = model.hidden_states(&input)?;
    let logits = model.logits_at(&hidden, &Tensor::new(predicting_rows.as_slice(), device)?)?;
    let log_probs = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let picked: Vec<f32> = log_probs
        .gather(&Tensor::new(predicted_ids.as_slice(), device)?.unsqueeze(1)?, 1)?
        .squeeze(1)?
        .to_vec1()?;

    let mut token_scores = picked.into_iter();
    let mut answers = Vec::with_capacity(prompts.len());
    for _ in prompts {
        let mut scored = Vec::with_capacity(label_ids.len());
        for (label, ids) in work.labels.iter().zip(&label_ids) {
            let log_likelihood: f64 = token_scores.by_ref().take(ids.len()).map(f64::from).sum();
            scored.push((label.clone(), log_likelihood));
        }
        let best = scored
            .iter()
            .fold(None::<&(String, f64)>, |best, candidate| match best {
                Some(best) if best.1 >= candidate.1 => Some(best),
                _ => Some(candidate),
            })
            .map(|(label, _)| label.clone())
            .unwrap_or_default();
        answers.push(Answer { output: best, label_log_likelihoods: Some(scored) });
    }
    Ok(answers)
}
