//! Our Llama decoder on candle tensors: embedding, decoder layers, final norm and LM head, with a
//! per-layer key/value cache for incremental decoding.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::Embedding;

use crate::attention::{causal_mask, padded_causal_mask, Attention, LayerKvCache, Positions};
pub use crate::config::LlamaConfig;
use crate::error::{Error, Result};
use crate::linear::{DenseLinear, LinearLayer, ProductTape};
use crate::rope::RotaryEmbedding;
use crate::weights::{load_checked, LayerWeight, TensorSource, WeightId};

/// Which positions of the input get logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsPositions {
    /// Only the last position (generation).
    Last,
    /// Every position (scoring, training).
    All,
}

/// Cached keys and values of every layer for one sequence batch.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<LayerKvCache>,
}

impl KvCache {
    /// An empty cache for `config`'s layers.
    pub fn new(config: &LlamaConfig) -> Self {
        Self { layers: vec![LayerKvCache::default(); config.num_hidden_layers] }
    }

    /// Number of positions already cached.
    pub fn seq_len(&self) -> usize {
        self.layers.first().map_or(0, LayerKvCache::seq_len)
    }

    /// Keeps only the first `len` positions, so a prompt sharing that prefix can continue from it.
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        self.layers.iter_mut().try_for_each(|layer| layer.truncate(len))?;
        Ok(())
    }

    /// The same cache cut from the autograd graph: with LoRA variables in the model every cached
    /// key records the forward pass that made it, so a cache kept across prompts must be detached
    /// or it keeps every earlier prompt's activations alive.
    pub fn detach(&self) -> Self {
        Self { layers: self.layers.iter().map(LayerKvCache::detach).collect() }
    }

    /// Forgets every cached position.
    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|layer| *layer = LayerKvCache::default());
    }

    /// The cache of a one-row batch repeated into `rows` identical rows: a prompt prefix common to
    /// a batch is prefilled once and then shared.
    pub fn repeat_row(&mut self, rows: usize, device: &Device) -> Result<()> {
        if let Some(batch) = self.layers.first().map(LayerKvCache::batch).filter(|&batch| batch > 1) {
            return Err(Error::InvalidInput {
                reason: format!("only a one-row cache can be repeated, this one holds {batch} rows"),
            });
        }
        self.retain_rows(&vec![0; rows], device)
    }

    /// Keeps only the batch rows `rows` (indices into the current batch), in that order: batched
    /// generation drops the rows that have finished.
    pub fn retain_rows(&mut self, rows: &[usize], device: &Device) -> Result<()> {
        let index: Vec<u32> = rows.iter().map(|&row| row as u32).collect();
        let index = Tensor::new(index.as_slice(), device)?;
        for layer in &mut self.layers {
            layer.select_rows(&index)?;
        }
        Ok(())
    }
}

/// SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))`.
#[derive(Debug)]
pub struct Mlp {
    pub gate_proj: Box<dyn LinearLayer>,
    pub up_proj: Box<dyn LinearLayer>,
    pub down_proj: Box<dyn LinearLayer>,
}

impl Mlp {
    fn forward(&self, xs: &Tensor, mut tape: Option<&mut ProductTape>) -> candle_core::Result<Tensor> {
        let gate = project(self.gate_proj.as_ref(), xs, tape.as_deref_mut())?;
        let up = project(self.up_proj.as_ref(), xs, tape.as_deref_mut())?;
        project(self.down_proj.as_ref(), &crate::ops::swiglu(&gate, &up)?, tape)
    }
}

/// `layer.forward(xs)`, through `tape` when there is one.
pub(crate) fn project(
    layer: &dyn LinearLayer,
    xs: &Tensor,
    tape: Option<&mut ProductTape>,
) -> candle_core::Result<Tensor> {
    match tape {
        Some(tape) => layer.forward_taped(xs, tape),
        None => layer.forward(xs),
    }
}

/// The frozen products of one decoder layer's forward pass over a given input (the base
/// products of q/k/v under LoRA, o, gate, up and down), kept by checkpointed training so the
/// recomputation in its backward pass replays them ([`Llama::layer_forward_recorded`]).
#[derive(Debug)]
pub struct LayerRecord {
    tape: ProductTape,
}

impl LayerRecord {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.tape.bytes()
    }
}

/// One pre-norm decoder layer.
#[derive(Debug)]
pub struct DecoderLayer {
    pub attn_norm: Tensor,
    pub attention: Attention,
    pub mlp_norm: Tensor,
    pub mlp: Mlp,
}

/// A Llama-family decoder-only model with f32 activations.
#[derive(Debug)]
pub struct Llama {
    config: LlamaConfig,
    embedding: Embedding,
    layers: Vec<DecoderLayer>,
    final_norm: Tensor,
    lm_head: Box<dyn LinearLayer>,
    rope: RotaryEmbedding,
    device: Device,
}

impl Llama {
    /// Builds the model from `source`, checking every tensor's shape against `config`. The LM head
    /// is the embedding when `config.tie_word_embeddings` is set or the source has no LM head.
    pub fn from_source(config: LlamaConfig, source: &mut dyn TensorSource, device: &Device) -> Result<Self> {
        config.validate(&source.origin())?;
        let hidden = config.hidden_size;
        let layers = (0..config.num_hidden_layers)
            .map(|idx| load_layer(&config, source, idx, device))
            .collect::<Result<Vec<_>>>()?;
        let embedding_weight =
            load_tensor(source, WeightId::Embedding, &[config.vocab_size, hidden], device)?;
        let lm_head: Box<dyn LinearLayer> =
            if config.tie_word_embeddings || !source.contains(WeightId::LmHead) {
                Box::new(DenseLinear::new(embedding_weight.clone())?)
            } else {
                load_dense(source, WeightId::LmHead, &[config.vocab_size, hidden], device)?
            };
        let final_norm = load_tensor(source, WeightId::FinalNorm, &[hidden], device)?;
        let rope =
            RotaryEmbedding::new(config.head_dim, config.rope_theta, config.max_position_embeddings, device)?;
        Ok(Self {
            embedding: Embedding::new(embedding_weight, hidden),
            layers,
            final_norm,
            lm_head,
            rope,
            device: device.clone(),
            config,
        })
    }

    /// The model's hyper-parameters.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A fresh, empty cache for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(&self.config)
    }

    /// Every linear layer under its Hugging Face module name (`model.layers.0.self_attn.q_proj`,
    /// ..., `lm_head`), for swapping in quantized or adapter-wrapped layers.
    pub fn linear_layers_mut(&mut self) -> Vec<(String, &mut Box<dyn LinearLayer>)> {
        let mut named = Vec::with_capacity(self.layers.len() * 7 + 1);
        for (idx, layer) in self.layers.iter_mut().enumerate() {
            let prefix = format!("model.layers.{idx}");
            let attention = &mut layer.attention;
            let mlp = &mut layer.mlp;
            named.push((format!("{prefix}.self_attn.q_proj"), &mut attention.q_proj));
            named.push((format!("{prefix}.self_attn.k_proj"), &mut attention.k_proj));
            named.push((format!("{prefix}.self_attn.v_proj"), &mut attention.v_proj));
            named.push((format!("{prefix}.self_attn.o_proj"), &mut attention.o_proj));
            named.push((format!("{prefix}.mlp.gate_proj"), &mut mlp.gate_proj));
            named.push((format!("{prefix}.mlp.up_proj"), &mut mlp.up_proj));
            named.push((format!("{prefix}.mlp.down_proj"), &mut mlp.down_proj));
        }
        named.push(("lm_head".to_string(), &mut self.lm_head));
        named
    }

    /// Freezes every attached adapter for inference ([`LinearLayer::freeze`]): the outputs stay
    /// the same, but no autograd graph is recorded, the faster inference ops run, and padded
    /// batches ([`Llama::forward_padded`]) accept the model. Training such a model afterwards
    /// updates nothing, so only models loaded to answer call this.
    pub fn freeze(&mut self) {
        for (_, layer) in self.linear_layers_mut() {
            layer.freeze();
        }
    }

    /// Runs `input_ids` (`[batch, seq]`, u32) whose first token sits at `start_pos` and returns
    /// logits `[batch, n, vocab]` with `n` = 1 for [`LogitsPositions::Last`], `seq` for `All`.
    /// With a cache, `start_pos` must equal the number of cached positions, and the new keys and
    /// values are appended to it.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        start_pos: usize,
        cache: Option<&mut KvCache>,
        positions: LogitsPositions,
    ) -> Result<Tensor> {
        let (_, seq_len) = input_ids.dims2()?;
        if seq_len == 0 {
            return Err(Error::InvalidInput { reason: "forward called with no tokens".into() });
        }
        if let Some(cache) = cache.as_deref() {
            if cache.seq_len() != start_pos || cache.layers.len() != self.layers.len() {
                return Err(Error::InvalidInput {
                    reason: format!(
                        "start_pos {start_pos} does not match the cache's {} positions over {} layers",
                        cache.seq_len(),
                        cache.layers.len()
                    ),
                });
            }
        }
        let xs = self.run_layers(input_ids, start_pos, cache)?;
        let xs = match positions {
            LogitsPositions::Last => xs.narrow(1, seq_len - 1, 1)?.contiguous()?,
            LogitsPositions::All => xs,
        };
        let normed = self.norm(&xs, &self.final_norm)?;
        Ok(self.lm_head.forward(&normed)?)
    }

    /// The hidden states after the last decoder layer (before the final norm), `[batch, seq,
    /// hidden]`, for a batch starting at position 0 without a cache. Rows shorter than `seq` are
    /// padded at the end: the causal mask keeps padding out of every real position.
    pub fn hidden_states(&self, input_ids: &Tensor) -> Result<Tensor> {
        let (_, seq_len) = input_ids.dims2()?;
        if seq_len == 0 {
            return Err(Error::InvalidInput { reason: "forward called with no tokens".into() });
        }
        self.run_layers(input_ids, 0, None)
    }

    /// Logits `[n, vocab]` of the rows `rows` (u32 indices into the flattened `[batch * seq]`
    /// positions) of `hidden` from [`Llama::hidden_states`]: the LM head runs only where a loss
    /// needs it.
    pub fn logits_at(&self, hidden: &Tensor, rows: &Tensor) -> Result<Tensor> {
        let (batch, seq_len, width) = hidden.dims3()?;
        let selected = hidden.reshape((batch * seq_len, width))?.index_select(rows, 0)?;
        let normed = self.norm(&selected, &self.final_norm)?;
        Ok(self.lm_head.forward(&normed)?)
    }

    /// RMS norm; the differentiable op when `xs` is part of an autograd graph.
    fn norm(&self, xs: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
        let eps = self.config.rms_norm_eps as f32;
        if xs.track_op() {
            crate::ops::rms_norm(xs, weight, eps)
        } else {
            candle_nn::ops::rms_norm(xs, weight, eps)
        }
    }

    fn run_layers(
        &self,
        input_ids: &Tensor,
        start_pos: usize,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (_, seq_len) = input_ids.dims2()?;
        let mask = if seq_len > 1 { Some(causal_mask(seq_len, start_pos, &self.device)?) } else { None };
        let mut xs = self.embedding.forward(input_ids)?;
        for idx in 0..self.layers.len() {
            let layer_cache = cache.as_deref_mut().map(|cache| &mut cache.layers[idx]);
            xs = self.decoder_layer(idx, &xs, Positions::Start(start_pos), mask.as_ref(), layer_cache)?;
        }
        Ok(xs)
    }

    /// [`Llama::forward`] for a left-padded batch: row `b` starts with `pad[b]` padding columns
    /// that no position attends to, and its first real token sits at position 0, so every row
    /// computes what it would alone. `cache` columns include the padding; the new tokens occupy
    /// columns `cache.seq_len()..`. Logits are `[batch, n, vocab]` as for `forward`.
    pub fn forward_padded(
        &self,
        input_ids: &Tensor,
        pad: &[usize],
        cache: &mut KvCache,
        positions: LogitsPositions,
    ) -> Result<Tensor> {
        self.forward_padded_after(input_ids, 0, pad, cache, positions)
    }

    /// [`Llama::forward_padded`] over a cache whose first `shared` columns are a prefix common to
    /// every row (prefilled once, then repeated over the batch, see [`KvCache::repeat_row`]): row
    /// `b`'s padding sits after that prefix, in columns `shared..shared + pad[b]`, and its own
    /// tokens continue at position `shared`.
    pub fn forward_padded_after(
        &self,
        input_ids: &Tensor,
        shared: usize,
        pad: &[usize],
        cache: &mut KvCache,
        positions: LogitsPositions,
    ) -> Result<Tensor> {
        let (batch, seq_len) = input_ids.dims2()?;
        if seq_len == 0 || batch != pad.len() {
            return Err(Error::InvalidInput {
                reason: format!(
                    "padded forward needs tokens and one padding count per row, got {seq_len} tokens, \
                     {batch} rows and {} padding counts",
                    pad.len()
                ),
            });
        }
        if cache.layers.len() != self.layers.len() {
            return Err(Error::InvalidInput {
                reason: format!(
                    "the cache has {} layers, the model {}",
                    cache.layers.len(),
                    self.layers.len()
                ),
            });
        }
        let start_col = cache.seq_len();
        if start_col < shared {
            return Err(Error::InvalidInput {
                reason: format!("the cache holds {start_col} columns, fewer than the {shared} shared ones"),
            });
        }
        let row_positions: Vec<u32> = pad
            .iter()
            .flat_map(|&row_pad| {
                (start_col..start_col + seq_len).map(move |col| {
                    let position =
                        if col < shared { col } else { (col - shared).saturating_sub(row_pad) + shared };
                    position as u32
                })
            })
            .collect();
        let row_positions = Tensor::from_vec(row_positions, (batch, seq_len), &self.device)?;
        let mask = padded_causal_mask(pad, shared, seq_len, start_col, &self.device)?;
        self.forward_masked(input_ids, &row_positions, &mask, cache, positions)
    }

    /// The forward pass under an explicit attention pattern: `input_ids` (`[batch, seq]`) sit at
    /// per-row `row_positions` (`[batch, seq]`, u32) and attend to the cached and new columns that
    /// `mask` (additive, `[batch, 1, 1, seq, cached + seq]`) leaves visible. The new tokens need
    /// not form one sequence: a tree of continuations can run in one pass, each token seeing only
    /// its ancestors ([`crate::score::score_continuations`]). Their keys and values are appended
    /// to `cache`. Inference only.
    pub fn forward_masked(
        &self,
        input_ids: &Tensor,
        row_positions: &Tensor,
        mask: &Tensor,
        cache: &mut KvCache,
        positions: LogitsPositions,
    ) -> Result<Tensor> {
        let (batch, seq_len) = input_ids.dims2()?;
        let total_len = cache.seq_len() + seq_len;
        if row_positions.dims() != [batch, seq_len] || mask.dims() != [batch, 1, 1, seq_len, total_len] {
            return Err(Error::InvalidInput {
                reason: format!(
                    "a masked forward of {batch} rows of {seq_len} tokens over {} cached columns needs \
                     positions [{batch}, {seq_len}] and a mask [{batch}, 1, 1, {seq_len}, {total_len}], \
                     got {:?} and {:?}",
                    cache.seq_len(),
                    row_positions.dims(),
                    mask.dims()
                ),
            });
        }
        if cache.layers.len() != self.layers.len() {
            return Err(Error::InvalidInput {
                reason: format!(
                    "the cache has {} layers, the model {}",
                    cache.layers.len(),
                    self.layers.len()
                ),
            });
        }
        let mut xs = self.embedding.forward(input_ids)?;
        for idx in 0..self.layers.len() {
            let positions = Positions::Rows(row_positions);
            xs = self.decoder_layer(idx, &xs, positions, Some(mask), Some(&mut cache.layers[idx]))?;
        }
        let xs = match positions {
            LogitsPositions::Last => xs.narrow(1, seq_len - 1, 1)?.contiguous()?,
            LogitsPositions::All => xs,
        };
        let normed = self.norm(&xs, &self.final_norm)?;
        Ok(self.lm_head.forward(&normed)?)
    }

    fn decoder_layer(
        &self,
        idx: usize,
        xs: &Tensor,
        positions: Positions<'_>,
        mask: Option<&Tensor>,
        cache: Option<&mut LayerKvCache>,
    ) -> Result<Tensor> {
        self.decoder_layer_taped(idx, xs, positions, mask, cache, None)
    }

    fn decoder_layer_taped(
        &self,
        idx: usize,
        xs: &Tensor,
        positions: Positions<'_>,
        mask: Option<&Tensor>,
        cache: Option<&mut LayerKvCache>,
        mut tape: Option<&mut ProductTape>,
    ) -> Result<Tensor> {
        let layer = &self.layers[idx];
        let normed = self.norm(xs, &layer.attn_norm)?;
        let attended =
            layer.attention.forward(&normed, &self.rope, positions, mask, cache, tape.as_deref_mut())?;
        let xs = (xs + attended)?;
        let normed = self.norm(&xs, &layer.mlp_norm)?;
        Ok((&xs + layer.mlp.forward(&normed, tape)?)?)
    }

    /// Number of decoder layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// The token embeddings of `input_ids` (`[batch, seq]`), the input of layer 0.
    pub fn embed(&self, input_ids: &Tensor) -> Result<Tensor> {
        Ok(self.embedding.forward(input_ids)?)
    }

    /// Decoder layer `idx` alone over `[batch, seq, hidden]` starting at position 0 without a cache
    /// (what layer-wise gradient checkpointing recomputes).
    pub fn layer_forward(&self, idx: usize, xs: &Tensor) -> Result<Tensor> {
        self.layer_forward_taped(idx, xs, None)
    }

    /// [`Llama::layer_forward`], also recording the layer's frozen products for
    /// [`Llama::layer_forward_replayed`].
    pub fn layer_forward_recorded(&self, idx: usize, xs: &Tensor) -> Result<(Tensor, LayerRecord)> {
        let mut tape = ProductTape::record();
        let out = self.layer_forward_taped(idx, xs, Some(&mut tape))?;
        Ok((out, LayerRecord { tape: tape.into_replay() }))
    }

    /// [`Llama::layer_forward`] over the input `record` was made from
    /// ([`Llama::layer_forward_recorded`]), with the frozen products replayed instead of
    /// recomputed: the same output up to float rounding and the same gradients, for only the
    /// adapters', the attention's and the elementwise work.
    pub fn layer_forward_replayed(&self, idx: usize, xs: &Tensor, record: LayerRecord) -> Result<Tensor> {
        let mut tape = record.tape;
        let out = self.layer_forward_taped(idx, xs, Some(&mut tape))?;
        if tape.bytes() > 0 {
            return Err(Error::InvalidInput {
                reason: format!("layer {idx} replayed fewer products than its record holds"),
            });
        }
        Ok(out)
    }

    fn layer_forward_taped(&self, idx: usize, xs: &Tensor, tape: Option<&mut ProductTape>) -> Result<Tensor> {
        if idx >= self.layers.len() {
            return Err(Error::InvalidInput {
                reason: format!("layer {idx} does not exist (the model has {})", self.layers.len()),
            });
        }
        let (_, seq_len, _) = xs.dims3()?;
        let mask = if seq_len > 1 { Some(causal_mask(seq_len, 0, &self.device)?) } else { None };
        self.decoder_layer_taped(idx, xs, Positions::Start(0), mask.as_ref(), None, tape)
    }

    /// Decoder layer `idx` over a batch whose rows share a prompt prefix: `prefix` (`[1, p, hidden]`,
    /// positions `0..p`) is computed once and its keys and values are seen by every row of `rows`
    /// (`[batch, s, hidden]`, each row's own tokens at positions `p..p + s`, right-padded), which
    /// attend to them and to their own earlier tokens. Returns the prefix's and the rows' outputs;
    /// each row's output equals that of the unshared row `prefix ++ row`, and gradients reach the
    /// prefix through the rows' attention to it. Training uses this for prompts that share a long
    /// instruction (FiNER's list of 139 tags).
    pub fn layer_forward_shared(
        &self,
        idx: usize,
        prefix: &Tensor,
        rows: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        if idx >= self.layers.len() {
            return Err(Error::InvalidInput {
                reason: format!("layer {idx} does not exist (the model has {})", self.layers.len()),
            });
        }
        let (prefix_batch, prefix_len, _) = prefix.dims3()?;
        let (batch, seq_len, _) = rows.dims3()?;
        if prefix_batch != 1 || prefix_len == 0 || seq_len == 0 {
            return Err(Error::InvalidInput {
                reason: format!(
                    "a shared prefix is one row of at least one token followed by the rows' own tokens, \
                     got {prefix_batch} prefix rows of {prefix_len} tokens and rows of {seq_len} tokens"
                ),
            });
        }
        let mut cache = LayerKvCache::default();
        let prefix_mask = if prefix_len > 1 { Some(causal_mask(prefix_len, 0, &self.device)?) } else { None };
        let prefix_out =
            self.decoder_layer(idx, prefix, Positions::Start(0), prefix_mask.as_ref(), Some(&mut cache))?;
        cache.broadcast_rows(batch)?;
        let mask = if seq_len > 1 { Some(causal_mask(seq_len, prefix_len, &self.device)?) } else { None };
        let rows_out =
            self.decoder_layer(idx, rows, Positions::Start(prefix_len), mask.as_ref(), Some(&mut cache))?;
        Ok((prefix_out, rows_out))
    }

    /// [`Llama::hidden_states`] of a batch whose rows all begin with `prefix_ids` (`[1, p]`) and
    /// continue with `rows_ids` (`[batch, s]`, right-padded): the rows' hidden states, `[batch, s,
    /// hidden]`, computed with the prefix run once ([`Llama::layer_forward_shared`]).
    pub fn hidden_states_shared(&self, prefix_ids: &Tensor, rows_ids: &Tensor) -> Result<Tensor> {
        let mut prefix = self.embed(prefix_ids)?;
        let mut rows = self.embed(rows_ids)?;
        for idx in 0..self.layers.len() {
            (prefix, rows) = self.layer_forward_shared(idx, &prefix, &rows)?;
        }
        Ok(rows)
    }

    /// [`Llama::forward`] for one sequence given as token ids; returns logits `[n, vocab]`.
    pub fn forward_ids(
        &self,
        input_ids: &[u32],
        start_pos: usize,
        cache: Option<&mut KvCache>,
        positions: LogitsPositions,
    ) -> Result<Tensor> {
        if let Some(&bad) = input_ids.iter().find(|&&id| id as usize >= self.config.vocab_size) {
            return Err(Error::InvalidInput {
                reason: format!("token id {bad} is outside the vocabulary of {}", self.config.vocab_size),
            });
        }
        let ids = Tensor::new(input_ids, &self.device)?.unsqueeze(0)?;
        let logits = self.forward(&ids, start_pos, cache, positions)?;
        Ok(logits.squeeze(0)?.to_dtype(DType::F32)?)
    }
}

fn load_tensor(
    source: &mut dyn TensorSource,
    id: WeightId,
    shape: &[usize],
    device: &Device,
) -> Result<Tensor> {
    Ok(load_checked(source, id, shape)?.to_device(device)?)
}

fn load_dense(
    source: &mut dyn TensorSource,
    id: WeightId,
    shape: &[usize],
    device: &Device,
) -> Result<Box<dyn LinearLayer>> {
    Ok(Box::new(DenseLinear::new(load_tensor(source, id, shape, device)?)?))
}

fn load_layer(
    config: &LlamaConfig,
    source: &mut dyn TensorSource,
    idx: usize,
    device: &Device,
) -> Result<DecoderLayer> {
    let (hidden, ffn) = (config.hidden_size, config.intermediate_size);
    let id = |weight| WeightId::Layer(idx, weight);
    let attn_norm = load_tensor(source, id(LayerWeight::AttnNorm), &[hidden], device)?;
    let attention = Attention::new(
        config,
        load_dense(source, id(LayerWeight::Q), &[config.q_dim(), hidden], device)?,
        load_dense(source, id(LayerWeight::K), &[config.kv_dim(), hidden], device)?,
        load_dense(source, id(LayerWeight::V), &[config.kv_dim(), hidden], device)?,
        load_dense(source, id(LayerWeight::O), &[hidden, config.q_dim()], device)?,
    );
    let mlp_norm = load_tensor(source, id(LayerWeight::MlpNorm), &[hidden], device)?;
    let mlp = Mlp {
        gate_proj: load_dense(source, id(LayerWeight::Gate), &[ffn, hidden], device)?,
        up_proj: load_dense(source, id(LayerWeight::Up), &[ffn, hidden], device)?,
        down_proj: load_dense(source, id(LayerWeight::Down), &[hidden, ffn], device)?,
    };
    Ok(DecoderLayer { attn_norm, attention, mlp_norm, mlp })
}
