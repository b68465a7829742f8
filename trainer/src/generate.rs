//! Greedy decoding: one batched prefill of the prompt, then one token at a time through the cache;
//! for a batch of prompts, left-padded so every row computes what it would alone.

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::model::{KvCache, Llama, LogitsPositions};

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
    let generated = Vec::with_capacity(config.max_new_tokens);
    if config.max_new_tokens == 0 {
        return Ok(generated);
    }
    let mut cache = model.new_cache();
    let logits = model.forward_ids(prompt_ids, 0, Some(&mut cache), LogitsPositions::Last)?;
    decode_greedy(model, cache, argmax_last(&logits)?, generated, config)
}

/// The keys and values of the last prompt [`generate_greedy_reusing`] prefilled, for the next.
#[derive(Debug, Clone, Default)]
pub struct PromptCache {
    ids: Vec<u32>,
    cache: Option<KvCache>,
}

impl PromptCache {
    /// Positions a new prompt `ids` can take from this cache (at most all but its last token).
    pub fn reusable(&self, ids: &[u32]) -> usize {
        self.common_len(ids).min(ids.len().saturating_sub(1))
    }

    /// Leading tokens of `ids` this cache holds.
    fn common_len(&self, ids: &[u32]) -> usize {
        self.ids.iter().zip(ids).take_while(|(a, b)| a == b).count()
    }
}

/// [`generate_greedy`] that prefills only what `prompt_ids` does not share with the prompt held
/// in `reuse` (a shared instruction header, say), then leaves its own prompt there, and decodes
/// with prompt-lookup drafts ([`lookup_draft`]). The result equals [`generate_greedy`]'s up to
/// float rounding of the split prefill and of multi-token passes.
pub fn generate_greedy_reusing(
    model: &Llama,
    prompt_ids: &[u32],
    config: &GreedyConfig,
    reuse: &std::sync::Mutex<PromptCache>,
) -> Result<Vec<u32>> {
    if prompt_ids.is_empty() {
        return Err(Error::InvalidInput { reason: "greedy generation needs a non-empty prompt".into() });
    }
    let generated = Vec::with_capacity(config.max_new_tokens);
    if config.max_new_tokens == 0 {
        return Ok(generated);
    }
    // A poisoned lock only means another request panicked mid-update: start afresh.
    let held = reuse.lock().map(|held| held.clone()).unwrap_or_default();
    let shared = held.reusable(prompt_ids);
    let mut cache = match held.cache {
        Some(mut cache) if shared > 0 => {
            cache.truncate(shared)?;
            cache
        }
        _ => model.new_cache(),
    };
    let start = cache.seq_len();
    let logits = model.forward_ids(&prompt_ids[start..], start, Some(&mut cache), LogitsPositions::Last)?;
    if let Ok(mut held) = reuse.lock() {
        *held = PromptCache { ids: prompt_ids.to_vec(), cache: Some(cache.detach()) };
    }
    decode_greedy_lookup(model, cache, argmax_last(&logits)?, prompt_ids, generated, config)
}

/// Greedy decoding from a prefilled `cache` whose first new token is `next`.
fn decode_greedy(
    model: &Llama,
    mut cache: KvCache,
    mut next: u32,
    mut generated: Vec<u32>,
    config: &GreedyConfig,
) -> Result<Vec<u32>> {
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

/// Longest n-gram the prompt lookup matches on, and most tokens it drafts at once.
const LOOKUP_NGRAM: usize = 3;
const LOOKUP_DRAFT: usize = 12;

/// Prompt-lookup drafting: the tokens that followed the latest earlier occurrence of the
/// context's last `n`-gram (longest `n` first), at most `max` of them; empty when none recurs.
/// Answers copied from the prompt (a filed value) are then verified many tokens per forward pass.
pub fn lookup_draft(context: &[u32], max: usize) -> Vec<u32> {
    for n in (1..=LOOKUP_NGRAM.min(context.len().saturating_sub(1))).rev() {
        let tail = &context[context.len() - n..];
        let earlier = (0..context.len() - n).rev().find(|&i| &context[i..i + n] == tail);
        if let Some(i) = earlier {
            let from = i + n;
            return context[from..(from + max).min(context.len())].to_vec();
        }
    }
    Vec::new()
}

/// [`decode_greedy`] with prompt-lookup drafts: the draft and `next` go through the model in one
/// pass, the longest prefix of the draft that greedy decoding would itself have produced is kept
/// (plus the model's own token after it), the rest of the cache is cut. The output is greedy
/// decoding's, up to float rounding of multi-token passes.
fn decode_greedy_lookup(
    model: &Llama,
    mut cache: KvCache,
    mut next: u32,
    prompt_ids: &[u32],
    mut generated: Vec<u32>,
    config: &GreedyConfig,
) -> Result<Vec<u32>> {
    let mut context = prompt_ids.to_vec();
    loop {
        generated.push(next);
        context.push(next);
        if config.stop_ids.contains(&next) || generated.len() == config.max_new_tokens {
            return Ok(generated);
        }
        let room = config.max_new_tokens - generated.len();
        let draft = lookup_draft(&context, LOOKUP_DRAFT.min(room));
        let start_pos = cache.seq_len();
        let mut input = Vec::with_capacity(draft.len() + 1);
        input.push(next);
        input.extend_from_slice(&draft);
        let logits = model.forward_ids(&input, start_pos, Some(&mut cache), LogitsPositions::All)?;
        let predicted: Vec<u32> =
            (0..input.len()).map(|row| argmax_row(&logits, row)).collect::<Result<_>>()?;
        let accepted =
            draft.iter().zip(&predicted).take_while(|(draft, predicted)| draft == predicted).count();
        for &token in &draft[..accepted] {
            generated.push(token);
            context.push(token);
            if config.stop_ids.contains(&token) || generated.len() == config.max_new_tokens {
                return Ok(generated);
            }
        }
        cache.truncate(start_pos + 1 + accepted)?;
        next = predicted[accepted];
    }
}

/// Greedily continues every prompt of `prompts` in one batch and returns each row's new tokens,
/// equal to [`generate_greedy`] on that prompt alone. Prompts are left-padded; the padding is
/// never attended and each row's positions start at its first real token. Finished rows leave
/// the batch. Before every forward pass `on_rows` receives the indices (into `prompts`) of the
/// rows in the batch, in batch order, so per-row state such as each row's adapter can follow.
pub fn generate_greedy_batch(
    model: &Llama,
    prompts: &[Vec<u32>],
    config: &GreedyConfig,
    on_rows: &mut dyn FnMut(&[usize]) -> Result<()>,
) -> Result<Vec<Vec<u32>>> {
    generate_batch(model, prompts, config, on_rows, None)
}

/// Fewest tokens a batch's common prefix must have to be prefilled once for the whole batch.
const MIN_SHARED_PREFIX: usize = 4;

/// [`generate_greedy_batch`] for a batch whose rows all run through the same weights (one
/// adapter, or none): the prompts' common prefix (FinLoRA's instruction, FiNER's list of 139
/// tags) is prefilled once, as one row, and its keys and values repeated over the batch; each row
/// then prefills only its own tokens. `prefix` keeps the last prefix between calls, so batches of
/// one task continue from it instead of prefilling it again; give each adapter its own. The
/// result equals [`generate_greedy_batch`]'s up to float rounding of the split prefill.
pub fn generate_greedy_batch_shared(
    model: &Llama,
    prompts: &[Vec<u32>],
    config: &GreedyConfig,
    on_rows: &mut dyn FnMut(&[usize]) -> Result<()>,
    prefix: &mut PromptCache,
) -> Result<Vec<Vec<u32>>> {
    generate_batch(model, prompts, config, on_rows, Some(prefix))
}

/// Length of the prefix common to every prompt, leaving each prompt at least one token of its own.
fn common_prefix(prompts: &[Vec<u32>]) -> usize {
    let Some((first, rest)) = prompts.split_first() else { return 0 };
    let mut common = first.len().saturating_sub(1);
    for prompt in rest {
        let same = first.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        common = common.min(same).min(prompt.len().saturating_sub(1));
    }
    common
}

fn generate_batch(
    model: &Llama,
    prompts: &[Vec<u32>],
    config: &GreedyConfig,
    on_rows: &mut dyn FnMut(&[usize]) -> Result<()>,
    prefix: Option<&mut PromptCache>,
) -> Result<Vec<Vec<u32>>> {
    let mut generated = vec![Vec::with_capacity(config.max_new_tokens); prompts.len()];
    if prompts.is_empty() || config.max_new_tokens == 0 {
        return Ok(generated);
    }
    let device = model.device();
    let PrefilledBatch { mut cache, shared, mut pad, last_logits: mut logits } =
        prefill_batch(model, prompts, on_rows, prefix)?;
    let mut active: Vec<usize> = (0..prompts.len()).collect();
    loop {
        let next_ids = argmax_rows(&logits)?;
        let mut keep = Vec::with_capacity(active.len());
        for (batch_row, (&row, &next)) in active.iter().zip(&next_ids).enumerate() {
            generated[row].push(next);
            let done = config.stop_ids.contains(&next) || generated[row].len() == config.max_new_tokens;
            if !done {
                keep.push(batch_row);
            }
        }
        if keep.is_empty() {
            return Ok(generated);
        }
        if keep.len() < active.len() {
            cache.retain_rows(&keep, device)?;
            active = keep.iter().map(|&batch_row| active[batch_row]).collect();
            pad = keep.iter().map(|&batch_row| pad[batch_row]).collect();
        }
        let last: Vec<u32> = active.iter().filter_map(|&row| generated[row].last().copied()).collect();
        on_rows(&active)?;
        let input = Tensor::from_vec(last, (active.len(), 1), device)?;
        logits = model.forward_padded_after(&input, shared, &pad, &mut cache, LogitsPositions::Last)?;
    }
}

/// A batch of prompts prefilled together: the cache of every row, the columns all rows share at
/// its start, each row's padding (after the shared columns), and each row's logits at its last
/// prompt token, `[batch, 1, vocab]`.
pub(crate) struct PrefilledBatch {
    pub cache: KvCache,
    pub shared: usize,
    pub pad: Vec<usize>,
    pub last_logits: Tensor,
}

/// Runs `prompts` (non-empty, in the vocabulary) through the model as one left-padded batch.
/// With `prefix`, their common prefix is prefilled once as one row, continuing from and then
/// held in `prefix`, and its keys and values repeated over the batch. `on_rows` receives the rows
/// of each forward pass, as in [`generate_greedy_batch`].
pub(crate) fn prefill_batch(
    model: &Llama,
    prompts: &[Vec<u32>],
    on_rows: &mut dyn FnMut(&[usize]) -> Result<()>,
    prefix: Option<&mut PromptCache>,
) -> Result<PrefilledBatch> {
    if prompts.is_empty() {
        return Err(Error::InvalidInput { reason: "a batch to prefill needs at least one prompt".into() });
    }
    let vocab_size = model.config().vocab_size;
    for (row, prompt) in prompts.iter().enumerate() {
        if prompt.is_empty() {
            return Err(Error::InvalidInput { reason: format!("prompt {row} of the batch is empty") });
        }
        if let Some(&bad) = prompt.iter().find(|&&id| id as usize >= vocab_size) {
            return Err(Error::InvalidInput {
                reason: format!("token id {bad} of prompt {row} is outside the vocabulary of {vocab_size}"),
            });
        }
    }
    let device = model.device();
    let all_rows: Vec<usize> = (0..prompts.len()).collect();
    let common = if prefix.is_some() { common_prefix(prompts) } else { 0 };
    let (mut cache, shared) = match prefix {
        Some(held) if common >= MIN_SHARED_PREFIX => {
            on_rows(&all_rows[..1])?;
            let mut cache = prefill_prefix(model, &prompts[0][..common], held)?;
            cache.repeat_row(prompts.len(), device)?;
            (cache, common)
        }
        _ => (model.new_cache(), 0),
    };
    let width = prompts.iter().map(|prompt| prompt.len() - shared).max().unwrap_or(0);
    let pad: Vec<usize> = prompts.iter().map(|prompt| width - (prompt.len() - shared)).collect();
    // The padding id is arbitrary: padded columns are masked out of every real position.
    let padded: Vec<u32> = prompts
        .iter()
        .zip(&pad)
        .flat_map(|(prompt, &row_pad)| {
            std::iter::repeat_n(0, row_pad).chain(prompt[shared..].iter().copied())
        })
        .collect();
    on_rows(&all_rows)?;
    let input = Tensor::from_vec(padded, (prompts.len(), width), device)?;
    let last_logits = model.forward_padded_after(&input, shared, &pad, &mut cache, LogitsPositions::Last)?;
    Ok(PrefilledBatch { cache, shared, pad, last_logits })
}

/// A one-row cache of `ids`, continuing from what `held` already holds of them, which then
/// keeps `ids` for the next batch.
fn prefill_prefix(model: &Llama, ids: &[u32], held: &mut PromptCache) -> Result<KvCache> {
    let reusable = held.common_len(ids);
    let mut cache = match held.cache.take() {
        Some(mut cache) if reusable > 0 => {
            cache.truncate(reusable)?;
            cache
        }
        _ => model.new_cache(),
    };
    if reusable < ids.len() {
        model.forward_ids(&ids[reusable..], reusable, Some(&mut cache), LogitsPositions::Last)?;
    }
    *held = PromptCache { ids: ids.to_vec(), cache: Some(cache.detach()) };
    Ok(cache)
}

/// The highest-scoring id of each row of `[batch, 1, vocab]` logits (first one on ties).
fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
    let rows: Vec<Vec<f32>> = logits.squeeze(1)?.to_dtype(candle_core::DType::F32)?.to_vec2()?;
    Ok(rows.iter().map(|scores| first_max(scores)).collect())
}

fn first_max(scores: &[f32]) -> u32 {
    let mut best = (0usize, f32::NEG_INFINITY);
    for (id, &score) in scores.iter().enumerate() {
        if score > best.1 {
            best = (id, score);
        }
    }
    best.0 as u32
}

/// The highest-scoring id of row `row` of `[n, vocab]` logits (first one on ties, as torch).
fn argmax_row(logits: &candle_core::Tensor, row: usize) -> Result<u32> {
    let scores: Vec<f32> = logits.get(row)?.to_vec1()?;
    Ok(first_max(&scores))
}

/// The highest-scoring id of the last row of `[n, vocab]` logits (first one on ties, as torch).
fn argmax_last(logits: &candle_core::Tensor) -> Result<u32> {
    let n_rows = logits.dim(0)?;
    let last = logits.get(n_rows.saturating_sub(1))?;
    let scores: Vec<f32> = last.to_vec1()?;
    Ok(first_max(&scores))
}
