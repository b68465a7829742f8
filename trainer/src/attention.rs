//! Grouped-query self-attention with rotary embeddings and an append-only key/value cache.

use candle_core::{Result, Tensor};

use crate::config::LlamaConfig;
use crate::linear::{LinearLayer, ProductTape};
use crate::model::project;
use crate::rope::RotaryEmbedding;

/// Keys and values of one layer for the positions seen so far, each `[batch, kv_heads, seq, head_dim]`.
#[derive(Debug, Clone, Default)]
pub struct LayerKvCache {
    keys_values: Option<(Tensor, Tensor)>,
}

impl LayerKvCache {
    /// Number of cached positions.
    pub fn seq_len(&self) -> usize {
        self.keys_values.as_ref().map_or(0, |(keys, _)| keys.dims()[2])
    }

    /// Rows of the cached batch (0 when nothing is cached).
    pub fn batch(&self) -> usize {
        self.keys_values.as_ref().map_or(0, |(keys, _)| keys.dims()[0])
    }

    /// Keeps the batch rows listed in `rows` (u32 indices), in that order.
    pub(crate) fn select_rows(&mut self, rows: &Tensor) -> Result<()> {
        if let Some((keys, values)) = self.keys_values.take() {
            // A truncated cache is a strided view; index_select needs contiguous storage.
            self.keys_values = Some((
                keys.contiguous()?.index_select(rows, 0)?,
                values.contiguous()?.index_select(rows, 0)?,
            ));
        }
        Ok(())
    }

    /// The cache of a one-row batch seen by `rows` rows: a prompt prefix computed once for a
    /// training batch. The copies stay in the autograd graph, so the rows' gradients with respect
    /// to the prefix's keys and values add up in the one row that made them.
    pub(crate) fn broadcast_rows(&mut self, rows: usize) -> Result<()> {
        if let Some((keys, values)) = self.keys_values.take() {
            let (batch, heads, seq, head_dim) = keys.dims4()?;
            if batch != 1 {
                candle_core::bail!(
                    "only a one-row cache can be shared by {rows} rows, this one holds {batch}"
                )
            }
            let shape = (rows, heads, seq, head_dim);
            self.keys_values =
                Some((keys.broadcast_as(shape)?.contiguous()?, values.broadcast_as(shape)?.contiguous()?));
        }
        Ok(())
    }

    /// Keeps the first `len` positions (all of them when fewer are cached).
    pub(crate) fn truncate(&mut self, len: usize) -> Result<()> {
        if let Some((keys, values)) = self.keys_values.take() {
            let keep = len.min(keys.dims()[2]);
            if keep > 0 {
                self.keys_values = Some((keys.narrow(2, 0, keep)?, values.narrow(2, 0, keep)?));
            }
        }
        Ok(())
    }

    /// The same positions without the autograd history that LoRA variables attach to them.
    pub(crate) fn detach(&self) -> Self {
        Self { keys_values: self.keys_values.as_ref().map(|(keys, values)| (keys.detach(), values.detach())) }
    }

    /// Appends this step's keys and values and returns all cached ones.
    fn append(&mut self, keys: Tensor, values: Tensor) -> Result<(Tensor, Tensor)> {
        let all = match self.keys_values.take() {
            None => (keys, values),
            Some((past_keys, past_values)) => {
                (Tensor::cat(&[&past_keys, &keys], 2)?, Tensor::cat(&[&past_values, &values], 2)?)
            }
        };
        self.keys_values = Some(all.clone());
        Ok(all)
    }
}

/// Where the tokens of a forward pass sit.
#[derive(Debug, Clone, Copy)]
pub enum Positions<'a> {
    /// Every row's first new token sits at this position.
    Start(usize),
    /// Per-row positions `[batch, seq]` (u32), for left-padded batches whose rows start at
    /// different columns; the key/value cache still counts columns.
    Rows(&'a Tensor),
}

/// The attention block of one decoder layer.
#[derive(Debug)]
pub struct Attention {
    pub q_proj: Box<dyn LinearLayer>,
    pub k_proj: Box<dyn LinearLayer>,
    pub v_proj: Box<dyn LinearLayer>,
    pub o_proj: Box<dyn LinearLayer>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    /// Assembles the block from its four projections (Hugging Face layout, no bias).
    pub fn new(
        config: &LlamaConfig,
        q_proj: Box<dyn LinearLayer>,
        k_proj: Box<dyn LinearLayer>,
        v_proj: Box<dyn LinearLayer>,
        o_proj: Box<dyn LinearLayer>,
    ) -> Self {
        Self {
            q_proj,
            k_proj,
            v_proj,
            o_proj,
            num_heads: config.num_attention_heads,
            num_kv_heads: config.num_key_value_heads,
            head_dim: config.head_dim,
        }
    }

    /// Attends `xs` (`[batch, seq, hidden]`, tokens at `positions`) over the cached and new
    /// columns. `mask` is additive, `[seq, cached + seq]` (the causal mask) or `[batch, 1, 1, seq,
    /// cached + seq]` (causal plus padding); absent for one token of an unpadded batch.
    pub fn forward(
        &self,
        xs: &Tensor,
        rope: &RotaryEmbedding,
        positions: Positions<'_>,
        mask: Option<&Tensor>,
        cache: Option<&mut LayerKvCache>,
        mut tape: Option<&mut ProductTape>,
    ) -> Result<Tensor> {
        let (batch, seq_len, _) = xs.dims3()?;
        let (n_heads, n_kv_heads, head_dim) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let split_heads = |projected: Tensor, heads: usize| {
            projected.reshape((batch, seq_len, heads, head_dim))?.transpose(1, 2)?.contiguous()
        };
        let queries = split_heads(project(self.q_proj.as_ref(), xs, tape.as_deref_mut())?, n_heads)?;
        let keys = split_heads(project(self.k_proj.as_ref(), xs, tape.as_deref_mut())?, n_kv_heads)?;
        let values = split_heads(project(self.v_proj.as_ref(), xs, tape.as_deref_mut())?, n_kv_heads)?;

        let scale = 1.0 / (head_dim as f64).sqrt();
        let (queries, keys, start_pos) = match positions {
            Positions::Start(start_pos) => {
                (rope.apply(&queries, start_pos)?, rope.apply(&keys, start_pos)?, start_pos)
            }
            Positions::Rows(rows) => {
                if xs.track_op() {
                    candle_core::bail!("per-row positions are for inference only, not training")
                }
                (rope.apply_rows(&queries, rows)?, rope.apply_rows(&keys, rows)?, 0)
            }
        };
        let queries = (queries * scale)?;
        let (keys, values) = match cache {
            Some(cache) => cache.append(keys, values)?,
            None => (keys, values),
        };
        let total_len = keys.dim(2)?;

        // Query heads sharing a KV head are stacked along the row axis, so keys and values are
        // used as they are instead of being repeated per query head.
        let group = n_heads / n_kv_heads;
        let queries = queries.reshape((batch, n_kv_heads, group * seq_len, head_dim))?;
        let mut scores = queries.matmul(&keys.t()?)?;
        if scores.track_op() {
            // Training: the causal mask is applied inside the differentiable softmax.
            let probs = crate::ops::causal_softmax(&scores, seq_len, start_pos)?;
            return self.merge_heads(probs.matmul(&values)?, batch, seq_len, tape);
        }
        if let Some(mask) = mask {
            scores = scores
                .reshape((batch, n_kv_heads, group, seq_len, total_len))?
                .broadcast_add(mask)?
                .reshape((batch, n_kv_heads, group * seq_len, total_len))?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        self.merge_heads(probs.matmul(&values)?, batch, seq_len, tape)
    }

    /// `[batch, kv_heads, group * seq, head_dim]` back to `[batch, seq, hidden]`, then `o_proj`.
    fn merge_heads(
        &self,
        attended: Tensor,
        batch: usize,
        seq_len: usize,
        tape: Option<&mut ProductTape>,
    ) -> Result<Tensor> {
        let (n_heads, head_dim) = (self.num_heads, self.head_dim);
        let merged = attended.reshape((batch, n_heads, seq_len, head_dim))?.transpose(1, 2)?.reshape((
            batch,
            seq_len,
            n_heads * head_dim,
        ))?;
        project(self.o_proj.as_ref(), &merged, tape)
    }
}

/// The additive causal mask for `seq_len` new tokens after `start_pos` cached ones:
/// row `i` may see columns `0..=start_pos + i`.
pub fn causal_mask(seq_len: usize, start_pos: usize, device: &candle_core::Device) -> Result<Tensor> {
    let total_len = start_pos + seq_len;
    let mask: Vec<f32> = (0..seq_len)
        .flat_map(|row| {
            (0..total_len).map(move |col| if col > start_pos + row { f32::NEG_INFINITY } else { 0.0 })
        })
        .collect();
    Tensor::from_vec(mask, (seq_len, total_len), device)
}

/// The additive mask of a padded batch whose rows share their first `shared` columns (a common
/// prompt prefix, cached once) and then hold `pad[b]` padding columns before row `b`'s own tokens:
/// row `b` sees cached-or-new column `col` when it is not padding (`col < shared` or
/// `col >= shared + pad[b]`) and not in its future. With `shared == 0` this is a left-padded batch.
/// A padding query sees itself only, so its (discarded) output stays finite.
/// Shape `[batch, 1, 1, seq_len, start_col + seq_len]`, broadcast over heads.
pub fn padded_causal_mask(
    pad: &[usize],
    shared: usize,
    seq_len: usize,
    start_col: usize,
    device: &candle_core::Device,
) -> Result<Tensor> {
    let total_len = start_col + seq_len;
    let mut mask = Vec::with_capacity(pad.len() * seq_len * total_len);
    for &row_pad in pad {
        let is_padding = |col: usize| col >= shared && col < shared + row_pad;
        for row in 0..seq_len {
            let query_col = start_col + row;
            for col in 0..total_len {
                let visible = if is_padding(query_col) {
                    col == query_col
                } else {
                    !is_padding(col) && col <= query_col
                };
                mask.push(if visible { 0.0 } else { f32::NEG_INFINITY });
            }
        }
    }
    Tensor::from_vec(mask, (pad.len(), 1, 1, seq_len, total_len), device)
}
