//! Grouped-query self-attention with rotary embeddings and an append-only key/value cache.

use candle_core::{Result, Tensor};

use crate::config::LlamaConfig;
use crate::linear::{LinearLayer, ProductTape};
use crate::model::project;
use crate::rope::RotaryEmbedding;

/// Keys and values of one layer for the positions seen so far, each `[batch, kv_heads, seq, head_dim]`.
///
/// Clones are cheap and behave as values: an inference cache keeps its positions in buffers with
/// room to grow, written in place while one cache owns them and copied before the first write
/// when clones share them (so a prompt cache kept for reuse is never changed by the decoding that
/// continues from it).
#[derive(Debug, Clone, Default)]
pub struct LayerKvCache {
    stored: Option<Stored>,
}

#[derive(Debug, Clone)]
enum Stored {
    /// Exactly the cached positions. Used when the keys or values are part of an autograd graph
    /// (training, or a model with LoRA variables), where an append concatenates, recording the
    /// op, and after a prefill, whose positions are kept as computed until decoding begins.
    Exact(Tensor, Tensor),
    /// Inference: buffers with room to grow (dim 2) whose first `len` columns hold the positions. An
    /// append writes its columns in place when `owner` is not shared with a clone.
    Buffered { keys: Tensor, values: Tensor, len: usize, owner: std::sync::Arc<()> },
}

/// Appends of at most this many positions (decoding steps, prompt-lookup drafts) write into a
/// buffer; a prefill is concatenated as it is.
const DECODE_COLUMNS: usize = 16;

/// Columns a new inference buffer is rounded up to.
const BUFFER_COLUMNS: usize = 64;

impl Stored {
    /// The cached positions: the tensors themselves, or views of a buffer's first `len` columns.
    fn valid(&self) -> Result<(Tensor, Tensor)> {
        match self {
            Stored::Exact(keys, values) => Ok((keys.clone(), values.clone())),
            Stored::Buffered { keys, values, len, .. } => {
                Ok((keys.narrow(2, 0, *len)?, values.narrow(2, 0, *len)?))
            }
        }
    }
}

/// A zeroed buffer shaped as `like` with `columns` positions.
fn buffer_like(like: &Tensor, columns: usize) -> Result<Tensor> {
    let (batch, heads, _, head_dim) = like.dims4()?;
    Tensor::zeros((batch, heads, columns, head_dim), like.dtype(), like.device())
}

impl LayerKvCache {
    /// Number of cached positions.
    pub fn seq_len(&self) -> usize {
        match &self.stored {
            None => 0,
            Some(Stored::Exact(keys, _)) => keys.dims()[2],
            Some(Stored::Buffered { len, .. }) => *len,
        }
    }

    /// Rows of the cached batch (0 when nothing is cached).
    pub fn batch(&self) -> usize {
        match &self.stored {
            None => 0,
            Some(Stored::Exact(keys, _) | Stored::Buffered { keys, .. }) => keys.dims()[0],
        }
    }

    /// Keeps the batch rows listed in `rows` (u32 indices), in that order.
    pub(crate) fn select_rows(&mut self, rows: &Tensor) -> Result<()> {
        self.stored = match self.stored.take() {
            None => None,
            // A truncated cache is a strided view; index_select needs contiguous storage.
            Some(Stored::Exact(keys, values)) => Some(Stored::Exact(
                keys.contiguous()?.index_select(rows, 0)?,
                values.contiguous()?.index_select(rows, 0)?,
            )),
            // Whole buffers are contiguous; the selection is a new buffer that this cache owns.
            Some(Stored::Buffered { keys, values, len, .. }) => Some(Stored::Buffered {
                keys: keys.index_select(rows, 0)?,
                values: values.index_select(rows, 0)?,
                len,
                owner: Default::default(),
            }),
        };
        Ok(())
    }

    /// The cache of a one-row batch seen by `rows` rows: a prompt prefix computed once for a
    /// training batch. The copies stay in the autograd graph, so the rows' gradients with respect
    /// to the prefix's keys and values add up in the one row that made them.
    pub(crate) fn broadcast_rows(&mut self, rows: usize) -> Result<()> {
        if let Some(stored) = self.stored.take() {
            let (keys, values) = stored.valid()?;
            let (batch, heads, seq, head_dim) = keys.dims4()?;
            if batch != 1 {
                candle_core::bail!(
                    "only a one-row cache can be shared by {rows} rows, this one holds {batch}"
                )
            }
            let shape = (rows, heads, seq, head_dim);
            self.stored = Some(Stored::Exact(
                keys.broadcast_as(shape)?.contiguous()?,
                values.broadcast_as(shape)?.contiguous()?,
            ));
        }
        Ok(())
    }

    /// Keeps the first `len` positions (all of them when fewer are cached).
    pub(crate) fn truncate(&mut self, len: usize) -> Result<()> {
        let keep = len.min(self.seq_len());
        if keep == 0 {
            self.stored = None;
            return Ok(());
        }
        match &mut self.stored {
            None => {}
            Some(Stored::Exact(keys, values)) => {
                *keys = keys.narrow(2, 0, keep)?;
                *values = values.narrow(2, 0, keep)?;
            }
            // Later appends overwrite the dropped columns (or copy first, when shared).
            Some(Stored::Buffered { len, .. }) => *len = keep,
        }
        Ok(())
    }

    /// The same positions without the autograd history that LoRA variables attach to them.
    pub(crate) fn detach(&self) -> Self {
        let stored = self.stored.as_ref().map(|stored| match stored {
            Stored::Exact(keys, values) => Stored::Exact(keys.detach(), values.detach()),
            buffered @ Stored::Buffered { .. } => buffered.clone(),
        });
        Self { stored }
    }

    /// Appends this step's keys and values and returns all cached ones.
    fn append(&mut self, keys: Tensor, values: Tensor) -> Result<(Tensor, Tensor)> {
        if keys.dim(2)? > DECODE_COLUMNS
            || keys.track_op()
            || values.track_op()
            || matches!(self.stored, Some(Stored::Exact(ref k, ref v)) if k.track_op() || v.track_op())
        {
            let all = match self.stored.take() {
                None => (keys, values),
                Some(stored) => {
                    let (past_keys, past_values) = stored.valid()?;
                    (Tensor::cat(&[&past_keys, &keys], 2)?, Tensor::cat(&[&past_values, &values], 2)?)
                }
            };
            return self.keep(Stored::Exact(all.0, all.1));
        }
        let (keys, values) = (keys.contiguous()?, values.contiguous()?);
        let (len, new) = (self.seq_len(), keys.dim(2)?);
        let past = match self.stored.take() {
            None => None,
            Some(Stored::Buffered { keys: buf_keys, values: buf_values, len, owner })
                if std::sync::Arc::strong_count(&owner) == 1
                    && buf_keys.dims()[0] == keys.dims()[0]
                    && buf_keys.dim(2)? >= len + new =>
            {
                buf_keys.slice_set(&keys, 2, len)?;
                buf_values.slice_set(&values, 2, len)?;
                return self.keep(Stored::Buffered {
                    keys: buf_keys,
                    values: buf_values,
                    len: len + new,
                    owner,
                });
            }
            Some(stored) => Some(stored.valid()?),
        };
        // A new buffer (first append, outgrown, or shared with a clone): the past positions are
        // copied into it, with an eighth more room (doubling cost a batch of 8 FiNER prompts of
        // 1,700 tokens 200 MiB more peak memory than concatenating; this costs none, measured).
        let needed = len + new;
        let columns = (needed + needed / 8).next_multiple_of(BUFFER_COLUMNS);
        let (buf_keys, buf_values) = (buffer_like(&keys, columns)?, buffer_like(&values, columns)?);
        if let Some((past_keys, past_values)) = past {
            buf_keys.slice_set(&past_keys.contiguous()?, 2, 0)?;
            buf_values.slice_set(&past_values.contiguous()?, 2, 0)?;
        }
        buf_keys.slice_set(&keys, 2, len)?;
        buf_values.slice_set(&values, 2, len)?;
        self.keep(Stored::Buffered {
            keys: buf_keys,
            values: buf_values,
            len: needed,
            owner: Default::default(),
        })
    }

    /// Holds `stored` and returns its positions.
    fn keep(&mut self, stored: Stored) -> Result<(Tensor, Tensor)> {
        let all = stored.valid()?;
        self.stored = Some(stored);
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
        let queries = project(self.q_proj.as_ref(), xs, tape.as_deref_mut())?;
        let keys = project(self.k_proj.as_ref(), xs, tape.as_deref_mut())?;
        let values = project(self.v_proj.as_ref(), xs, tape.as_deref_mut())?;
        let scale = 1.0 / (head_dim as f64).sqrt();

        // Training over whole sequences: one differentiable op from the projections to the heads
        // `o_proj` reads (the causal mask is built in; `mask` says the same).
        let tracked = queries.track_op() || keys.track_op() || values.track_op();
        if tracked
            && cache.is_none()
            && matches!(positions, Positions::Start(0))
            && xs.device().is_cpu()
            && xs.dtype() == candle_core::DType::F32
        {
            let attended = crate::causal_attention::causal_attention(
                &queries,
                &keys,
                &values,
                rope,
                n_heads,
                n_kv_heads,
                scale as f32,
            )?;
            return project(self.o_proj.as_ref(), &attended, tape);
        }
        let queries = split_heads(queries, n_heads)?;
        let keys = split_heads(keys, n_kv_heads)?;
        let values = split_heads(values, n_kv_heads)?;
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
            // Training with a cache (a shared prompt prefix): the causal mask is applied inside
            // the differentiable softmax.
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
