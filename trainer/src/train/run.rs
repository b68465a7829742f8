//! The training loop: micro-batches with gradient accumulation, the loss on answer tokens only,
//! gradient averaging across ranks, clipping, the optimizer step, validation, checkpoints and
//! resume.
//!
//! The LoRA parameters live as flat `Vec<f32>`s owned by the loop (the optimizer's view) and are
//! copied into the model's `Var`s after every step. The loss of a step is the mean over every
//! answer token of the global batch, so a run over `W` ranks computes the same gradient as one
//! process with the same global batch.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Tensor, D};

use crate::dist::Collective;
use crate::error::{Error, Result};
use crate::lora::LoraAdapter;
use crate::model::Llama;
use crate::optim::{AdamW, AdamWConfig, Optimizer, ZeroOneAdam};
use crate::train::checkpoint::{CheckpointDir, TrainerState};
use crate::train::config::TrainConfig;
use crate::train::data::{mix, BatchPlan, TokenizedExample};
use crate::train::metrics::{learning_rate, loss_curve_svg, write_atomically, MetricsLog, StepMetrics};

/// What a rank trains: the model with the adapter attached, and tokenized data.
pub struct TrainJob<'a> {
    pub config: &'a TrainConfig,
    pub model: &'a Llama,
    pub adapter: &'a LoraAdapter,
    pub train: &'a [TokenizedExample],
    pub validation: &'a [TokenizedExample],
    /// Where checkpoints, metrics and the final adapter go.
    pub run_dir: &'a Path,
    /// Continue from the newest checkpoint in `run_dir`, if there is one.
    pub resume: bool,
    /// Recorded in the adapter's config (`base_model_name_or_path`).
    pub base_model: &'a str,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Optimizer steps completed (including those before a resume).
    pub steps: usize,
    /// The step the run resumed from, if it did.
    pub resumed_from: Option<usize>,
    pub final_loss: f64,
    pub final_val_loss: Option<f64>,
    /// The final adapter (rank 0 writes it).
    pub adapter_dir: PathBuf,
    /// Median tokens/s over the steps run in this process.
    pub tokens_per_sec: f64,
}

/// Builds the configured optimizer.
pub fn build_optimizer(config: &TrainConfig) -> Result<Box<dyn Optimizer>> {
    let optim = &config.optim;
    Ok(match optim.optimizer.as_str() {
        "zero_one_adam" => Box::new(ZeroOneAdam::new(optim.zero_one)?),
        _ => Box::new(AdamW::new(AdamWConfig {
            beta1: optim.beta1,
            beta2: optim.beta2,
            eps: optim.eps,
            weight_decay: optim.weight_decay,
        })),
    })
}

/// Trains `job` on this rank; every rank of `comm` calls it with the same configuration and data.
/// `on_step` sees each step's metrics (on every rank; print from rank 0) after the step's
/// checkpoint, if any, is written; `ControlFlow::Break` stops the run there, as a kill would
/// (nothing more is written).
pub fn train(
    job: &TrainJob<'_>,
    comm: &mut dyn Collective,
    on_step: &mut dyn FnMut(&StepMetrics) -> ControlFlow<()>,
) -> Result<TrainSummary> {
    let result = train_inner(job, comm, on_step);
    if let Err(error) = &result {
        comm.abort(&error.to_string());
    }
    result
}

fn train_inner(
    job: &TrainJob<'_>,
    comm: &mut dyn Collective,
    on_step: &mut dyn FnMut(&StepMetrics) -> ControlFlow<()>,
) -> Result<TrainSummary> {
    let config = job.config;
    let (rank, world_size) = (comm.rank(), comm.world_size());
    let global_batch = config.micro_batch * config.grad_accum * world_size;
    let lengths = job.train.iter().map(|example| example.ids.len()).collect();
    let plan = BatchPlan::new(lengths, global_batch, config.micro_batch, world_size, config.seed)?;
    let vars = job.adapter.vars();
    let names: Vec<String> = job.adapter.named_vars().into_iter().map(|(name, _)| name).collect();
    let mut params: Vec<Vec<f32>> = vars
        .iter()
        .map(|var| var.as_tensor().flatten_all()?.to_vec1::<f32>())
        .collect::<candle_core::Result<_>>()?;
    let param_lens: Vec<usize> = params.iter().map(Vec::len).collect();
    let mut optimizer = build_optimizer(config)?;
    let checkpoints = CheckpointDir::new(job.run_dir);
    let metrics_log = MetricsLog::new(job.run_dir);

    let mut start_step = 0;
    let mut resumed_from = None;
    let mut val_loss = None;
    if job.resume {
        if let Some(checkpoint) = checkpoints.load_latest(&names)? {
            let state = &checkpoint.state;
            if state.global_batch != global_batch
                || state.seed != config.seed
                || state.param_lens != param_lens
            {
                return Err(Error::InvalidInput {
                    reason: format!(
                        "{} was written by a run with global batch {}, seed {} and {} parameters; this run has {global_batch}, {} and {}",
                        checkpoint.dir.display(),
                        state.global_batch,
                        state.seed,
                        state.param_lens.len(),
                        config.seed,
                        param_lens.len()
                    ),
                });
            }
            optimizer.load_state(checkpoint.optimizer, &param_lens)?;
            params = checkpoint.params;
            start_step = state.step;
            resumed_from = Some(state.step);
            val_loss = state.val_loss;
            if rank == 0 {
                metrics_log.truncate_after(start_step)?;
            }
        }
    } else if rank == 0 && metrics_log.path().exists() {
        std::fs::remove_file(metrics_log.path())
            .map_err(|source| Error::Io { path: metrics_log.path().to_path_buf(), source })?;
    }
    write_params(&vars, &params)?;

    let started = Instant::now();
    let mut rates = Vec::new();
    let mut last_loss = f64::NAN;
    let mut last_saved = resumed_from;
    for step in start_step..config.steps {
        let step_started = Instant::now();
        let lr = learning_rate(
            &config.optim.schedule,
            config.optim.lr,
            config.optim.warmup_steps,
            config.steps,
            step,
        );
        let batch = plan.global_batch(step);
        let answer_tokens: usize = batch.iter().map(|&idx| job.train[idx].answer_len()).sum();
        let input_tokens: usize = batch.iter().map(|&idx| job.train[idx].input_len()).sum();
        // Each rank's gradient is scaled so that the mean over ranks is the global token mean.
        let scale = world_size as f64 / answer_tokens as f64;
        let mut grads: Vec<Vec<f32>> = param_lens.iter().map(|&len| vec![0f32; len]).collect();
        let mut loss_sum = 0f64;
        for (micro_idx, micro) in plan.micro_batches(step, rank).iter().enumerate() {
            let examples: Vec<&TokenizedExample> = micro.iter().map(|&idx| &job.train[idx]).collect();
            job.adapter.dropout.start(mix(
                config.seed,
                step as u64 + 1,
                (micro_idx * world_size + rank) as u64,
            ));
            let dropout_seed = mix(config.seed, step as u64 + 1, (micro_idx * world_size + rank) as u64);
            let share = config.share_prompt_prefix;
            let (sum, micro_grads) = if config.gradient_checkpointing {
                let keep = config.keep_products_mib << 20;
                checkpointed_gradients(job.model, job.adapter, &examples, scale, dropout_seed, share, keep)?
            } else {
                job.adapter.dropout.start(dropout_seed);
                micro_batch_gradients(job.model, job.adapter, &examples, scale, share)?
            };
            loss_sum += sum;
            for (total, grad) in grads.iter_mut().zip(micro_grads) {
                total.iter_mut().zip(grad).for_each(|(total, value)| *total += value);
            }
        }
        job.adapter.dropout.stop();

        let mut loss_buf = [loss_sum as f32];
        comm.all_reduce_sum(&mut loss_buf)?;
        let loss = f64::from(loss_buf[0]) / answer_tokens as f64;
        if !loss.is_finite() {
            return Err(Error::InvalidInput {
                reason: format!(
                    "training loss is {loss} at step {}; stopped (last good checkpoint: {})",
                    step + 1,
                    last_saved.map_or_else(|| "none".to_string(), |step| format!("step {step}"))
                ),
            });
        }
        if optimizer.gradients_need_allreduce() {
            let mut flat: Vec<f32> = grads.concat();
            comm.all_reduce_mean(&mut flat)?;
            let mut offset = 0;
            for grad in &mut grads {
                let len = grad.len();
                grad.copy_from_slice(&flat[offset..offset + len]);
                offset += len;
            }
        }
        let grad_norm = clip_gradients(&mut grads, config.optim.clip);
        optimizer.step(&mut params, &grads, lr, comm)?;
        write_params(&vars, &params)?;

        let done = step + 1;
        last_loss = loss;
        let tokens_per_sec = input_tokens as f64 / step_started.elapsed().as_secs_f64();
        rates.push(tokens_per_sec);
        let is_last = done == config.steps;
        let mut step_val_loss = None;
        if (config.eval_every > 0 && done % config.eval_every == 0) || is_last {
            let value = validation_loss(job, comm)?;
            step_val_loss = value;
            val_loss = value.or(val_loss);
        }
        let metrics = StepMetrics {
            step: done,
            loss,
            lr,
            grad_norm,
            tokens_per_sec,
            answer_tokens,
            val_loss: step_val_loss,
            elapsed_sec: started.elapsed().as_secs_f64(),
        };
        if rank == 0 {
            metrics_log.append(&metrics)?;
        }
        if (config.checkpoint_every > 0 && done % config.checkpoint_every == 0) || is_last {
            if rank == 0 {
                let state = TrainerState {
                    step: done,
                    global_batch,
                    world_size,
                    seed: config.seed,
                    optimizer: optimizer.name().to_string(),
                    optimizer_scalars: serde_json::Value::Null,
                    param_lens: param_lens.clone(),
                    val_loss,
                };
                checkpoints.save(
                    &state,
                    &optimizer.state(),
                    |dir| crate::peft::save_adapter(job.adapter, dir, job.base_model),
                    config.keep_checkpoints,
                )?;
            }
            comm.barrier()?;
            last_saved = Some(done);
        }
        if on_step(&metrics).is_break() {
            return Ok(TrainSummary {
                steps: done,
                resumed_from,
                final_loss: loss,
                final_val_loss: val_loss,
                adapter_dir: job.run_dir.join("adapter"),
                tokens_per_sec,
            });
        }
    }

    let adapter_dir = job.run_dir.join("adapter");
    if rank == 0 {
        crate::peft::save_adapter(job.adapter, &adapter_dir, job.base_model)?;
        let all_metrics = metrics_log.read()?;
        write_atomically(&job.run_dir.join("loss.svg"), loss_curve_svg(&all_metrics).as_bytes())?;
    }
    rates.sort_by(f64::total_cmp);
    Ok(TrainSummary {
        steps: config.steps,
        resumed_from,
        final_loss: last_loss,
        final_val_loss: val_loss,
        adapter_dir,
        tokens_per_sec: rates.get(rates.len() / 2).copied().unwrap_or(0.0),
    })
}

/// The summed token loss of `examples` and `d(scale · loss_sum)/dθ` for every adapter tensor.
fn micro_batch_gradients(
    model: &Llama,
    adapter: &LoraAdapter,
    examples: &[&TokenizedExample],
    scale: f64,
    share_prefix: bool,
) -> Result<(f64, Vec<Vec<f32>>)> {
    let (loss_sum, _) = token_loss(model, examples, share_prefix)?;
    let grads = (&loss_sum * scale)?.backward()?;
    let loss_value = f64::from(loss_sum.to_scalar::<f32>()?);
    let values = adapter
        .vars()
        .iter()
        .map(|var| match grads.get(var.as_tensor()) {
            Some(grad) => grad.flatten_all()?.to_vec1::<f32>(),
            None => Ok(vec![0f32; var.elem_count()]),
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok((loss_value, values))
}

/// A right-padded micro-batch: input ids `[rows, width]`, the flat positions whose logits the
/// loss reads, and the tokens they must predict. With a shared prefix (`[1, p]`), `input` holds
/// each row's tokens after it and the positions count from there.
struct LossBatch {
    prefix: Option<Tensor>,
    input: Tensor,
    positions: Tensor,
    targets: Tensor,
    count: usize,
}

/// The shortest prompt prefix common to a micro-batch that training computes once instead of
/// once per row (FinLoRA's instructions run to ~30 tokens, FiNER's list of tags to ~1,600).
pub const MIN_SHARED_PREFIX: usize = 16;

/// Tokens at the start of every example of `examples` (at least two), when there are at least
/// [`MIN_SHARED_PREFIX`]; 0 otherwise. The prefix stops before every row's last prompt token,
/// whose logit predicts the first answer token.
pub fn shared_prefix_len(examples: &[&TokenizedExample]) -> usize {
    let [first, rest @ ..] = examples else { return 0 };
    if rest.is_empty() {
        return 0;
    }
    let limit = examples.iter().map(|example| example.prompt_len.saturating_sub(1)).min().unwrap_or(0);
    let len =
        (0..limit).take_while(|&idx| rest.iter().all(|example| example.ids[idx] == first.ids[idx])).count();
    if len >= MIN_SHARED_PREFIX {
        len
    } else {
        0
    }
}

fn loss_batch(model: &Llama, examples: &[&TokenizedExample], share_prefix: bool) -> Result<LossBatch> {
    let shared = if share_prefix { shared_prefix_len(examples) } else { 0 };
    let width = examples.iter().map(|example| example.input_len() - shared).max().unwrap_or(0);
    if width == 0 {
        return Err(Error::InvalidInput { reason: "a micro-batch has no tokens".into() });
    }
    let pad = examples.first().and_then(|example| example.ids.last().copied()).unwrap_or(0);
    let mut ids = Vec::with_capacity(examples.len() * width);
    let mut positions = Vec::new();
    let mut targets = Vec::new();
    for (row, example) in examples.iter().enumerate() {
        let inputs = &example.ids[shared..example.input_len()];
        ids.extend_from_slice(inputs);
        ids.extend(std::iter::repeat_n(pad, width - inputs.len()));
        // Position p predicts token p + 1; the answer starts at prompt_len.
        for position in example.prompt_len - 1..example.input_len() {
            positions.push((row * width + position - shared) as u32);
            targets.push(example.ids[position + 1]);
        }
    }
    let device = model.device();
    let count = positions.len();
    let prefix = match examples.first() {
        Some(first) if shared > 0 => Some(Tensor::new(&first.ids[..shared], device)?.unsqueeze(0)?),
        _ => None,
    };
    Ok(LossBatch {
        prefix,
        input: Tensor::from_vec(ids, (examples.len(), width), device)?,
        positions: Tensor::from_vec(positions, count, device)?,
        targets: Tensor::from_vec(targets, (count, 1), device)?,
        count,
    })
}

/// Summed negative log-likelihood of `targets` under the logits of the final hidden states.
fn head_loss(model: &Llama, hidden: &Tensor, batch: &LossBatch) -> Result<Tensor> {
    let logits = model.logits_at(hidden, &batch.positions)?;
    let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    Ok(log_probs.gather(&batch.targets, 1)?.sum_all()?.neg()?)
}

/// The summed cross-entropy of the answer tokens of `examples` (a scalar tensor) and their count.
/// Rows are right-padded; the causal mask keeps padding out of every position the loss reads.
/// With `share_prefix`, a prompt prefix common to the rows ([`shared_prefix_len`]) is computed
/// once: the same loss up to float summation order, for less work.
pub fn token_loss(
    model: &Llama,
    examples: &[&TokenizedExample],
    share_prefix: bool,
) -> Result<(Tensor, usize)> {
    let batch = loss_batch(model, examples, share_prefix)?;
    let hidden = match &batch.prefix {
        Some(prefix) => model.hidden_states_shared(prefix, &batch.input)?,
        None => model.hidden_states(&batch.input)?,
    };
    Ok((head_loss(model, &hidden, &batch)?, batch.count))
}

/// [`token_loss`]'s value without a graph: each decoder layer's output is detached before the next
/// layer runs, so only one layer's activations are alive at a time (LoRA variables would otherwise
/// keep every layer's, which for 16 FiNER rows sharing a 1,700-token prefix is many gigabytes).
/// Validation uses it; the value equals [`token_loss`]'s.
pub fn token_loss_value(
    model: &Llama,
    examples: &[&TokenizedExample],
    share_prefix: bool,
) -> Result<(f64, usize)> {
    let batch = loss_batch(model, examples, share_prefix)?;
    let mut xs = model.embed(&batch.input)?;
    let mut prefix = batch.prefix.as_ref().map(|ids| model.embed(ids)).transpose()?;
    for idx in 0..model.num_layers() {
        xs = match prefix.take() {
            Some(prefix_in) => {
                let (prefix_out, out) = model.layer_forward_shared(idx, &prefix_in, &xs)?;
                prefix = Some(prefix_out.detach());
                out.detach()
            }
            None => model.layer_forward(idx, &xs)?.detach(),
        };
    }
    let loss = head_loss(model, &xs, &batch)?.detach();
    Ok((f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?), batch.count))
}

/// [`micro_batch_gradients`] with layer-wise gradient checkpointing: the forward pass keeps only
/// each decoder layer's input; the backward pass recomputes one layer at a time and pulls the
/// incoming gradient through it (`d/dx Σ layer(x) ∘ g`). Activation memory is one layer's instead
/// of every layer's, for one extra forward pass. Dropout is re-seeded per layer so the recomputed
/// masks equal the first pass's. A shared prompt prefix is a second stream through the layers
/// ([`Llama::layer_forward_shared`]) with its own incoming gradient, which comes from the rows'
/// attention to it. With `keep_bytes` above 0, the forward pass also keeps the frozen products of
/// the first layers that fit in it ([`Llama::layer_forward_recorded`]) and the backward pass
/// replays them instead of recomputing. Returns the loss sum and each adapter matrix's gradient
/// (times `scale`), in [`LoraAdapter::vars`] order.
pub fn checkpointed_gradients(
    model: &Llama,
    adapter: &LoraAdapter,
    examples: &[&TokenizedExample],
    scale: f64,
    dropout_seed: u64,
    share_prefix: bool,
    keep_bytes: usize,
) -> Result<(f64, Vec<Vec<f32>>)> {
    let batch = loss_batch(model, examples, share_prefix)?;
    let vars = adapter.vars();
    let layer_of: Vec<Option<usize>> = adapter
        .pairs
        .iter()
        .flat_map(|pair| {
            let layer = pair
                .module
                .strip_prefix("model.layers.")
                .and_then(|rest| rest.split('.').next())
                .and_then(|idx| idx.parse::<usize>().ok());
            [layer, layer]
        })
        .collect();
    let seed_layer = |idx: usize| adapter.dropout.start(mix(dropout_seed, idx as u64, 0x5eed));

    let mut inputs = Vec::with_capacity(model.num_layers());
    let mut records = Vec::with_capacity(model.num_layers());
    let mut kept_bytes = 0;
    let mut prefix_inputs = Vec::new();
    let mut xs = model.embed(&batch.input)?;
    let mut prefix = batch.prefix.as_ref().map(|ids| model.embed(ids)).transpose()?;
    for idx in 0..model.num_layers() {
        seed_layer(idx);
        let out = match prefix.take() {
            Some(prefix_in) => {
                let (prefix_out, out) = model.layer_forward_shared(idx, &prefix_in, &xs)?;
                prefix_inputs.push(prefix_in);
                prefix = Some(prefix_out.detach());
                out.detach()
            }
            None if kept_bytes < keep_bytes => {
                let (out, record) = model.layer_forward_recorded(idx, &xs)?;
                kept_bytes += record.bytes();
                // A record over the budget is dropped, and no later layer records.
                records.push((kept_bytes <= keep_bytes).then_some(record));
                out.detach()
            }
            None => model.layer_forward(idx, &xs)?.detach(),
        };
        inputs.push(xs);
        xs = out;
    }
    let top = candle_core::Var::from_tensor(&xs)?;
    let loss_sum = head_loss(model, top.as_tensor(), &batch)?;
    let loss_value = f64::from(loss_sum.to_scalar::<f32>()?);
    let grads = (&loss_sum * scale)?.backward()?;
    let mut upstream = match grads.get(top.as_tensor()) {
        Some(grad) => grad.clone(),
        None => {
            return Err(Error::InvalidInput {
                reason: "the loss does not depend on the hidden states".into(),
            })
        }
    };
    drop(grads);
    // The loss reads no prefix position, so the prefix's gradient starts below the top layer.
    let mut prefix_upstream: Option<Tensor> = None;
    let mut values: Vec<Vec<f32>> = vars.iter().map(|var| vec![0f32; var.elem_count()]).collect();
    for idx in (0..model.num_layers()).rev() {
        seed_layer(idx);
        let input = candle_core::Var::from_tensor(&inputs[idx])?;
        let prefix_input = prefix_inputs.get(idx).map(candle_core::Var::from_tensor).transpose()?;
        let objective = match &prefix_input {
            Some(prefix_input) => {
                let (prefix_out, out) =
                    model.layer_forward_shared(idx, prefix_input.as_tensor(), input.as_tensor())?;
                let rows = (out * &upstream)?.sum_all()?;
                match &prefix_upstream {
                    Some(prefix_grad) => (rows + (prefix_out * prefix_grad)?.sum_all()?)?,
                    None => rows,
                }
            }
            None => {
                let out = match records.get_mut(idx).and_then(Option::take) {
                    Some(record) => model.layer_forward_replayed(idx, input.as_tensor(), record)?,
                    None => model.layer_forward(idx, input.as_tensor())?,
                };
                (out * &upstream)?.sum_all()?
            }
        };
        let grads = objective.backward()?;
        for (slot, var) in vars.iter().enumerate() {
            if layer_of[slot] == Some(idx) {
                if let Some(grad) = grads.get(var.as_tensor()) {
                    values[slot] = grad.flatten_all()?.to_vec1::<f32>()?;
                }
            }
        }
        if idx > 0 {
            prefix_upstream =
                prefix_input.as_ref().and_then(|prefix_input| grads.get(prefix_input.as_tensor()).cloned());
            upstream = match grads.get(input.as_tensor()) {
                Some(grad) => grad.clone(),
                None => break,
            };
        }
    }
    Ok((loss_value, values))
}

/// Mean answer-token loss over the validation examples (dropout off), over all ranks.
fn validation_loss(job: &TrainJob<'_>, comm: &mut dyn Collective) -> Result<Option<f64>> {
    let (rank, world_size) = (comm.rank(), comm.world_size());
    let mut sums = [0f32, 0f32];
    let shard: Vec<&TokenizedExample> = job.validation.iter().skip(rank).step_by(world_size).collect();
    for micro in shard.chunks(job.config.micro_batch) {
        let (loss, count) = token_loss_value(job.model, micro, job.config.share_prompt_prefix)?;
        sums[0] += loss as f32;
        sums[1] += count as f32;
    }
    comm.all_reduce_sum(&mut sums)?;
    Ok((sums[1] > 0.0).then(|| f64::from(sums[0]) / f64::from(sums[1])))
}

/// Scales the gradients so their global L2 norm is at most `max_norm` (as
/// `torch.nn.utils.clip_grad_norm_`: factor `max_norm / (norm + 1e-6)`, only when below 1).
/// Returns the norm before clipping.
pub fn clip_gradients(grads: &mut [Vec<f32>], max_norm: f32) -> f64 {
    let norm = grads.iter().flatten().map(|&g| f64::from(g) * f64::from(g)).sum::<f64>().sqrt();
    if max_norm > 0.0 {
        let factor = (f64::from(max_norm) / (norm + 1e-6)) as f32;
        if factor < 1.0 {
            grads.iter_mut().flatten().for_each(|g| *g *= factor);
        }
    }
    norm
}

fn write_params(vars: &[&candle_core::Var], params: &[Vec<f32>]) -> Result<()> {
    for (var, values) in vars.iter().zip(params) {
        let tensor = Tensor::from_slice(values, var.shape(), var.device())?;
        var.set(&tensor)?;
    }
    Ok(())
}
