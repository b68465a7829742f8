//! The log-likelihood of given continuations after prompts, the prompts run once: label scoring
//! for classification tasks (`finagent eval --mode score`) and the model's say on candidate tags
//! (`finagent tag`).
//!
//! A batch of prompts is prefilled as generation prefills it (left-padded, a common prefix once).
//! The logits at each prompt's last token score every continuation's first token; the cache is
//! then repeated once per (prompt, continuation) pair still needing tokens, and the continuations'
//! remaining tokens run through it together, right-padded. Each score equals that of a plain
//! forward pass over `prompt ++ continuation` up to float rounding.

use candle_core::{DType, Tensor, D};

use crate::error::{Error, Result};
use crate::generate::{prefill_batch, PrefilledBatch, PromptCache};
use crate::model::{Llama, LogitsPositions};

/// Most bytes the repeated key/value caches and logits of one continuation pass may take: the
/// pairs of a batch are split into passes that fit (FiNER's 139 tags after a 1,800-token prompt
/// would need ~11 GB at once).
const PASS_BUDGET_BYTES: usize = 512 << 20;

/// Most (prompt, continuation) rows in one continuation pass.
const MAX_ROWS_PER_PASS: usize = 64;

/// The summed log-probability of each of `continuations` right after each of `prompts`:
/// `scores[p][c]` is `log P(continuations[c] | prompts[p])`. Before every forward pass `on_rows`
/// receives the prompt index of each row of that pass (so each row's adapter can follow); with
/// `prefix`, the prompts' common prefix is prefilled once and kept there for the next call, as in
/// [`crate::generate::generate_greedy_batch_shared`].
pub fn score_continuations(
    model: &Llama,
    prompts: &[Vec<u32>],
    continuations: &[Vec<u32>],
    on_rows: &mut dyn FnMut(&[usize]) -> Result<()>,
    prefix: Option<&mut PromptCache>,
) -> Result<Vec<Vec<f64>>> {
    if prompts.is_empty() || continuations.is_empty() {
        return Ok(vec![Vec::new(); prompts.len()]);
    }
    let config = model.config();
    for (idx, continuation) in continuations.iter().enumerate() {
        if continuation.is_empty() {
            return Err(Error::InvalidInput { reason: format!("continuation {idx} to score is empty") });
        }
        if let Some(&bad) = continuation.iter().find(|&&id| id as usize >= config.vocab_size) {
            return Err(Error::InvalidInput {
                reason: format!(
                    "token id {bad} of continuation {idx} is outside the vocabulary of {}",
                    config.vocab_size
                ),
            });
        }
    }
    let longest = continuations.iter().map(Vec::len).max().unwrap_or(0);
    if let Some((row, prompt)) =
        prompts.iter().enumerate().find(|(_, prompt)| prompt.len() + longest > config.max_position_embeddings)
    {
        return Err(Error::InvalidInput {
            reason: format!(
                "prompt {row} of {} tokens plus a continuation of {longest} does not fit the model's {} positions",
                prompt.len(),
                config.max_position_embeddings
            ),
        });
    }

    let batch = prefill_batch(model, prompts, on_rows, prefix)?;
    let first = log_softmax_rows(&batch.last_logits.squeeze(1)?)?;
    let mut scores: Vec<Vec<f64>> = first
        .iter()
        .map(|row| continuations.iter().map(|ids| f64::from(row[ids[0] as usize])).collect())
        .collect();

    let pairs: Vec<(usize, usize)> = (0..prompts.len())
        .flat_map(|prompt| {
            continuations
                .iter()
                .enumerate()
                .filter(|(_, ids)| ids.len() > 1)
                .map(move |(idx, _)| (prompt, idx))
        })
        .collect();
    if pairs.is_empty() {
        return Ok(scores);
    }
    let width = longest - 1;
    let cache_bytes = config.num_hidden_layers * 2 * config.kv_dim() * std::mem::size_of::<f32>();
    let logits_bytes = 2 * width * config.vocab_size * std::mem::size_of::<f32>();
    let row_bytes = cache_bytes * (batch.cache.seq_len() + width) + logits_bytes;
    let rows_per_pass = (PASS_BUDGET_BYTES / row_bytes.max(1)).clamp(1, MAX_ROWS_PER_PASS);
    for pass in pairs.chunks(rows_per_pass) {
        for ((prompt, continuation), sum) in
            pass.iter().zip(continue_pass(model, &batch, continuations, pass, on_rows)?)
        {
            scores[*prompt][*continuation] += sum;
        }
    }
    Ok(scores)
}

/// The summed log-probabilities of tokens `1..` of each pair's continuation, its prompt's cache
/// repeated for the pair.
fn continue_pass(
    model: &Llama,
    batch: &PrefilledBatch,
    continuations: &[Vec<u32>],
    pass: &[(usize, usize)],
    on_rows: &mut dyn FnMut(&[usize]) -> Result<()>,
) -> Result<Vec<f64>> {
    let device = model.device();
    let rows: Vec<usize> = pass.iter().map(|&(prompt, _)| prompt).collect();
    let width = pass.iter().map(|&(_, idx)| continuations[idx].len() - 1).max().unwrap_or(0);
    let mut inputs = Vec::with_capacity(pass.len() * width);
    let mut targets = Vec::with_capacity(pass.len() * width);
    for &(_, idx) in pass {
        let ids = &continuations[idx];
        // Right padding: it comes after every scored position, so the causal mask keeps it out.
        inputs.extend(ids[..ids.len() - 1].iter().copied().chain(std::iter::repeat(0)).take(width));
        targets.extend(ids[1..].iter().copied().chain(std::iter::repeat(0)).take(width));
    }
    let mut cache = batch.cache.clone();
    cache.retain_rows(&rows, device)?;
    let pad: Vec<usize> = rows.iter().map(|&prompt| batch.pad[prompt]).collect();
    on_rows(&rows)?;
    let input = Tensor::from_vec(inputs, (pass.len(), width), device)?;
    let logits = model.forward_padded_after(&input, batch.shared, &pad, &mut cache, LogitsPositions::All)?;
    let log_probs = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let targets = Tensor::from_vec(targets, (pass.len(), width, 1), device)?;
    let picked: Vec<Vec<f32>> = log_probs.gather(&targets, 2)?.squeeze(2)?.to_vec2()?;
    Ok(pass
        .iter()
        .zip(picked)
        .map(|(&(_, idx), row)| row[..continuations[idx].len() - 1].iter().copied().map(f64::from).sum())
        .collect())
}

/// Log-softmax of each row of `[n, vocab]` logits.
fn log_softmax_rows(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?.to_vec2()?)
}
