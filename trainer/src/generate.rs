//! Greedy decoding: one batched prefill of the prompt, then one token at a time through the cache.

use crate::error::{Error, Result};
use crate::model::{Llama, LogitsPositions};

/// When greedy decoding stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreedyConfig {
    /// Upper bound on generated tokens.
    pub max_new_tokens: usize,
    /// Generation ends after emitting any of these ids (the id is kept in the output).
    pub stop_ids: Vec<u32>,
}

/// Greedily continues `prompt_ids` and returns the new tokens only, ending with the stop id when
/// one was emitted. The prompt plus the new tokens must fit the model's positions.
pub fn generate_greedy(model: &Llama, prompt_ids: &[u32], config: &GreedyConfig) -> Result<Vec<u32>> {
    if prompt_ids.is_empty() {
        return Err(Error::InvalidInput { reason: "greedy generation needs a non-empty prompt".into() });
    }
    let mut generated = Vec::with_capacity(config.max_new_tokens);
    if config.max_new_tokens == 0 {
        return Ok(generated);
    }
    let mut cache = model.new_cache();
    let logits = model.forward_ids(prompt_ids, 0, Some(&mut cache), LogitsPositions::Last)?;
    let mut next = argmax_last(&logits)?;
    loop {
        generated.push(next);
        if config.stop_ids.contains(&next) || generated.len() == config.max_new_tokens {
            return Ok(generated);
        }
        let start_pos = cache.seq_len();
        let logits = model.forward_ids(&[next], start_pos, Some(&mut cache), LogitsPositions::Last)?;
        next = argmax_last(&logits)?;
    }
}

/// The highest-scoring id of the last row of `[n, vocab]` logits (first one on ties, as torch).
fn argmax_last(logits: &candle_core::Tensor) -> Result<u32> {
    let n_rows = logits.dim(0)?;
    let last = logits.get(n_rows.saturating_sub(1))?;
    let scores: Vec<f32> = last.to_vec1()?;
    let mut best = (0usize, f32::NEG_INFINITY);
    for (id, &score) in scores.iter().enumerate() {
        if score > best.1 {
            best = (id, score);
        }
    }
    Ok(best.0 as u32)
}
