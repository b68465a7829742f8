//! The model's say on a few candidate tags: the log-likelihood of each tag as the continuation of
//! one FinLoRA-style FiNER prompt, the prompt run once and its key/value cache reused for every
//! candidate (the way `finagent eval --mode score` scores labels, without padding a batch).

use anyhow::{Context as _, Result};
use candle_core::{DType, Tensor};
use trainer::model::{Llama, LogitsPositions};
use trainer::tokenizer::Tokenizer;

/// Scores continuations of prompts with one loaded model.
pub struct ModelScorer<'m> {
    model: &'m Llama,
    tokenizer: &'m Tokenizer,
}

impl<'m> ModelScorer<'m> {
    pub fn new(model: &'m Llama, tokenizer: &'m Tokenizer) -> Self {
        Self { model, tokenizer }
    }

    /// The mean log-likelihood per token of each of `continuations` right after `prompt` (each
    /// tokenized on its own and appended, as training appends the target). The mean, not the
    /// sum, so that a long tag is not penalised for its length alone.
    pub fn score(&self, prompt: &str, continuations: &[String]) -> Result<Vec<f64>> {
        let prompt_ids = self.tokenizer.encode(prompt, false)?;
        if prompt_ids.is_empty() {
            anyhow::bail!("the tagging prompt encodes to no tokens");
        }
        let mut cache = self.model.new_cache();
        let last = self
            .model
            .forward_ids(&prompt_ids, 0, Some(&mut cache), LogitsPositions::Last)
            .context("cannot run the model over the tagging prompt")?;
        let first_log_probs = log_softmax_rows(&last)?;
        let mut scores = Vec::with_capacity(continuations.len());
        for continuation in continuations {
            let ids = self.tokenizer.encode(continuation, false)?;
            let Some(&first) = ids.first() else {
                anyhow::bail!("candidate tag {continuation:?} encodes to no tokens");
            };
            let mut total = first_log_probs[0][first as usize] as f64;
            if ids.len() > 1 {
                let mut branch = cache.clone();
                let logits = self.model.forward_ids(
                    &ids[..ids.len() - 1],
                    prompt_ids.len(),
                    Some(&mut branch),
                    LogitsPositions::All,
                )?;
                let rows = log_softmax_rows(&logits)?;
                total += ids[1..].iter().zip(&rows).map(|(&id, row)| row[id as usize] as f64).sum::<f64>();
            }
            scores.push(total / ids.len() as f64);
        }
        Ok(scores)
    }
}

/// Log-softmax of each row of a `[n, vocab]` logits tensor.
fn log_softmax_rows(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    let rows: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let log_sum = row.iter().map(|&x| (x - max).exp()).sum::<f32>().ln() + max;
            row.into_iter().map(|x| x - log_sum).collect()
        })
        .collect())
}
