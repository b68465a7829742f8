//! The log-likelihood of given continuations after prompts, the prompts run once: label scoring
//! for classification tasks (`finagent eval --mode score`) and the model's say on candidate tags
//! (`finagent tag`).
//!
//! A batch of prompts is prefilled as generation prefills it (left-padded, a common prefix once).
//! The logits at each prompt's last token score every continuation's first token. The
//! continuations' remaining tokens run as one prefix tree after each prompt's cache: every
//! distinct proper prefix of a continuation is one node, a token that attends to the prompt and
//! to its ancestors only, at the position it would have in `prompt ++ continuation`. Labels that
//! share their first tokens (FiNER's 139 tags, `DebtInstrument...`) share those nodes, and the
//! prompt's keys and values are neither repeated nor copied per label. Each score equals that of a
//! plain forward pass over `prompt ++ continuation` up to float rounding.

use std::collections::HashMap;

use candle_core::{DType, Tensor, D};

use crate::error::{Error, Result};
use crate::generate::{prefill_batch, PrefilledBatch, PromptCache};
use crate::model::{Llama, LogitsPositions};

/// Most bytes the appended key/value caches and the logits of one tree pass may take: the rows
/// of a batch are split into passes that fit (FiNER's 139 tags make a tree of ~600 nodes, whose
/// logits alone take ~120 MB per prompt).
const PASS_BUDGET_BYTES: usize = 512 << 20;

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
    score_continuations_within(model, prompts, continuations, on_rows, prefix, PASS_BUDGET_BYTES)
}

/// [`score_continuations`] with the prompts' tree passes split so that each pass's appended
/// caches and logits take at most about `pass_budget_bytes` (at least one prompt per pass).
pub fn score_continuations_within(
    model: &Llama,
    prompts: &[Vec<u32>],
    continuations: &[Vec<u32>],
    on_rows: &mut dyn FnMut(&[usize]) -> Result<()>,
    prefix: Option<&mut PromptCache>,
    pass_budget_bytes: usize,
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

    let tree = PrefixTree::new(continuations);
    if tree.is_empty() {
        return Ok(scores);
    }
    if tree.len() * config.vocab_size > u32::MAX as usize {
        return Err(Error::InvalidInput {
            reason: format!(
                "{} continuations make a tree of {} tokens, too many to score in one pass",
                continuations.len(),
                tree.len()
            ),
        });
    }
    let cache_bytes = config.num_hidden_layers * 2 * config.kv_dim() * std::mem::size_of::<f32>();
    let logits_bytes = 2 * tree.len() * config.vocab_size * std::mem::size_of::<f32>();
    let row_bytes = cache_bytes * (batch.cache.seq_len() + tree.len()) + logits_bytes;
    let rows_per_pass = (pass_budget_bytes / row_bytes.max(1)).max(1);
    let rows: Vec<usize> = (0..prompts.len()).collect();
    for pass in rows.chunks(rows_per_pass) {
        let node_log_probs = tree_pass(model, &batch, &tree, pass, on_rows)?;
        for (&prompt, log_probs) in pass.iter().zip(node_log_probs) {
            for (continuation, steps) in tree.steps.iter().enumerate() {
                scores[prompt][continuation] +=
                    steps.iter().map(|&step| f64::from(log_probs[step])).sum::<f64>();
            }
        }
    }
    Ok(scores)
}

/// The continuations' tokens `0..len - 1` as a prefix tree. Node `k` stands for one distinct
/// proper prefix of a continuation and runs its last token; a parent comes before its children.
struct PrefixTree {
    /// The token each node runs.
    tokens: Vec<u32>,
    /// How many tokens precede the node's own in its continuation.
    depths: Vec<usize>,
    parents: Vec<Option<usize>>,
    /// The distinct (node, next token) pairs whose log-probabilities the scores need.
    targets: Vec<(usize, u32)>,
    /// Per continuation, the indices into `targets` of its tokens `1..`.
    steps: Vec<Vec<usize>>,
}

impl PrefixTree {
    fn new(continuations: &[Vec<u32>]) -> Self {
        let mut tree = PrefixTree {
            tokens: Vec::new(),
            depths: Vec::new(),
            parents: Vec::new(),
            targets: Vec::new(),
            steps: Vec::new(),
        };
        let mut nodes: HashMap<(Option<usize>, u32), usize> = HashMap::new();
        let mut targets: HashMap<(usize, u32), usize> = HashMap::new();
        for ids in continuations {
            let mut parent = None;
            let mut steps = Vec::with_capacity(ids.len().saturating_sub(1));
            for (depth, pair) in ids.windows(2).enumerate() {
                let node = *nodes.entry((parent, pair[0])).or_insert_with(|| {
                    tree.tokens.push(pair[0]);
                    tree.depths.push(depth);
                    tree.parents.push(parent);
                    tree.tokens.len() - 1
                });
                let target = *targets.entry((node, pair[1])).or_insert_with(|| {
                    tree.targets.push((node, pair[1]));
                    tree.targets.len() - 1
                });
                steps.push(target);
                parent = Some(node);
            }
            tree.steps.push(steps);
        }
        tree
    }

    fn len(&self) -> usize {
        self.tokens.len()
    }

    fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// `visible[k * len + j]`: node `k` attends to node `j` (an ancestor or itself).
    fn visibility(&self) -> Vec<bool> {
        let n = self.len();
        let mut visible = vec![false; n * n];
        for node in 0..n {
            let mut current = Some(node);
            while let Some(ancestor) = current {
                visible[node * n + ancestor] = true;
                current = self.parents[ancestor];
            }
        }
        visible
    }
}

/// The log-probability of every target of `tree` after each prompt of `pass`: one forward pass
/// of the tree's nodes per prompt over that prompt's cached columns.
fn tree_pass(
    model: &Llama,
    batch: &PrefilledBatch,
    tree: &PrefixTree,
    pass: &[usize],
    on_rows: &mut dyn FnMut(&[usize]) -> Result<()>,
) -> Result<Vec<Vec<f32>>> {
    let device = model.device();
    let mut cache = batch.cache.clone();
    if pass.len() != batch.pad.len() {
        cache.retain_rows(pass, device)?;
    }
    let (n, start_col) = (tree.len(), cache.seq_len());
    let total = start_col + n;
    let visible = tree.visibility();
    let mut mask = Vec::with_capacity(pass.len() * n * total);
    let mut positions = Vec::with_capacity(pass.len() * n);
    for &prompt in pass {
        let pad = batch.pad[prompt];
        let is_padding = |col: usize| col >= batch.shared && col < batch.shared + pad;
        for node in 0..n {
            positions.push((start_col - pad + tree.depths[node]) as u32);
            mask.extend((0..start_col).map(|col| if is_padding(col) { f32::NEG_INFINITY } else { 0.0 }));
            mask.extend(visible[node * n..(node + 1) * n].iter().map(|&seen| {
                if seen {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            }));
        }
    }
    let rows = pass.len();
    let mask = Tensor::from_vec(mask, (rows, 1, 1, n, total), device)?;
    let positions = Tensor::from_vec(positions, (rows, n), device)?;
    let input = Tensor::new(tree.tokens.as_slice(), device)?.unsqueeze(0)?.repeat((rows, 1))?;
    on_rows(pass)?;
    let logits = model.forward_masked(&input, &positions, &mask, &mut cache, LogitsPositions::All)?;
    let log_probs = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let vocab = model.config().vocab_size;
    let index: Vec<u32> =
        tree.targets.iter().map(|&(node, token)| (node * vocab + token as usize) as u32).collect();
    let index = Tensor::new(index.as_slice(), device)?;
    (0..rows).map(|row| Ok(log_probs.get(row)?.flatten_all()?.index_select(&index, 0)?.to_vec1()?)).collect()
}

/// Log-softmax of each row of `[n, vocab]` logits.
fn log_softmax_rows(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?.to_vec2()?)
}
