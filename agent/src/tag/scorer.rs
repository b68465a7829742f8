//! The model's say on a few candidate tags: the log-likelihood of each tag as the continuation of
//! one FinLoRA-style FiNER prompt, the prompt run once and its key/value cache reused for every
//! candidate ([`score_continuations`], as `finagent eval --mode score` scores labels).

use anyhow::{Context as _, Result};
use trainer::model::Llama;
use trainer::score::score_continuations;
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
        let mut candidate_ids = Vec::with_capacity(continuations.len());
        for continuation in continuations {
            let ids = self.tokenizer.encode(continuation, false)?;
            if ids.is_empty() {
                anyhow::bail!("candidate tag {continuation:?} encodes to no tokens");
            }
            candidate_ids.push(ids);
        }
        let sums = score_continuations(self.model, &[prompt_ids], &candidate_ids, &mut |_| Ok(()), None)
            .context("cannot score the candidate tags after the tagging prompt")?;
        let sums = sums.into_iter().next().unwrap_or_default();
        Ok(sums.into_iter().zip(&candidate_ids).map(|(sum, ids)| sum / ids.len() as f64).collect())
    }
}
