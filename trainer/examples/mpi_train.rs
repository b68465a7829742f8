//! Data-parallel training and the 1-bit compressed all-reduce over Open MPI, on the tiny test
//! model, for `tests/mpi_train.rs` to compare with in-process runs.
//!
//! ```text
//! cargo build -p trainer --features mpi --example mpi_train
//! mpirun --allow-run-as-root --oversubscribe -np 2 target/debug/examples/mpi_train --out DIR
//! ```
//!
//! Every rank trains the tiny model with AdamW (once straight through, once stopped after step 3
//! and resumed from the run directory's checkpoint) and with 0/1 Adam (through all of its phases),
//! then runs `compressed_allreduce` on deterministic per-rank inputs of odd lengths, keeping the
//! error buffers across calls. Each rank writes `DIR/rank-<rank>.json`: the configuration and its
//! adapter values per run, and every all-reduce's inputs, outputs and error buffers, all f32
//! values as their bit patterns so that comparisons can be exact. The runs' directories are
//! `DIR/<run name>`, written by rank 0 and read by every rank on resume.
//!
//! `--fail-rank R` makes rank `R`'s first collective of step 2 of the AdamW run fail, to check that
//! the job stops with a message naming the rank.

// The helpers are shared with the tests; this example uses only some of them.
#[allow(dead_code)]
#[path = "../tests/common/training.rs"]
mod training;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use trainer::dist::mpi::MpiWorld;
use trainer::dist::onebit::{compressed_allreduce, padded_len, server_chunk_len};
use trainer::dist::Collective;
use trainer::lora::{attach, LoraConfig, LoraInit};
use trainer::train::metrics::StepMetrics;
use trainer::train::{train, TrainConfig, TrainJob};
use trainer::{Error, Result};

const USAGE: &str = "usage: mpi_train --out DIR [--fail-rank RANK]";

/// Seed of `training::tiny_model`.
const MODEL_SEED: u64 = 1;
/// `training::toy_examples(N_EXAMPLES, DATA_SEED)` is the training set; its first
/// `N_VALIDATION` examples are also the validation set.
const N_EXAMPLES: usize = 48;
const DATA_SEED: u64 = 3;
const N_VALIDATION: usize = 8;
/// Compressed all-reduce series: (values per call, calls sharing the error buffers).
const COMPRESSED_SERIES: [(usize, usize); 4] = [(37, 4), (5, 2), (1, 2), (1001, 3)];

struct Options {
    out_dir: PathBuf,
    fail_rank: Option<usize>,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> std::result::Result<Options, String> {
        let (mut out_dir, mut fail_rank) = (None, None);
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--out" => out_dir = Some(PathBuf::from(value()?)),
                "--fail-rank" => {
                    let text = value()?;
                    fail_rank =
                        Some(text.parse().map_err(|_| format!("--fail-rank needs a rank, got {text}"))?);
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        let out_dir = out_dir.ok_or("--out is required")?;
        Ok(Options { out_dir, fail_rank })
    }
}

/// What one rank writes to `rank-<rank>.json`.
#[derive(Serialize)]
struct RankReport {
    rank: usize,
    world_size: usize,
    model_seed: u64,
    n_examples: usize,
    data_seed: u64,
    n_validation: usize,
    runs: Vec<RunReport>,
    compressed: Vec<CompressedSeries>,
}

/// One training run on this rank.
#[derive(Serialize)]
struct RunReport {
    name: String,
    config: TrainConfig,
    steps: usize,
    resumed_from: Option<usize>,
    /// The final adapter, one entry per tensor, as `f32::to_bits`.
    adapter_bits: Vec<Vec<u32>>,
}

/// Calls of `compressed_allreduce` that share this rank's error buffers.
#[derive(Serialize)]
struct CompressedSeries {
    len: usize,
    calls: Vec<CompressedCall>,
}

/// One call, every buffer as `f32::to_bits`; the error buffers are as the call left them.
#[derive(Serialize)]
struct CompressedCall {
    input: Vec<u32>,
    output: Vec<u32>,
    worker_error: Vec<u32>,
    server_error: Vec<u32>,
}

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(reason) => {
            eprintln!("mpi_train: {reason}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut world = match MpiWorld::init() {
        Ok(world) => world,
        Err(error) => {
            eprintln!("mpi_train: {error}");
            return ExitCode::FAILURE;
        }
    };
    match run(&mut world, &options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `train` has aborted the job already on its errors; this covers the others.
            world.abort(&error.to_string());
            ExitCode::FAILURE
        }
    }
}

fn run(world: &mut MpiWorld, options: &Options) -> Result<()> {
    let rank = world.rank();
    let mut runs = Vec::new();
    let adamw = adamw_config();
    runs.push(train_run(world, "adamw", &adamw, &options.out_dir, options.fail_rank)?);
    runs.push(stop_and_resume(world, "adamw_resumed", &adamw, &options.out_dir)?);
    runs.push(train_run(world, "zero_one_adam", &zero_one_adam_config(), &options.out_dir, None)?);
    let compressed = COMPRESSED_SERIES
        .iter()
        .map(|&(len, n_calls)| compressed_series(world, len, n_calls))
        .collect::<Result<Vec<_>>>()?;
    let report = RankReport {
        rank,
        world_size: world.world_size(),
        model_seed: MODEL_SEED,
        n_examples: N_EXAMPLES,
        data_seed: DATA_SEED,
        n_validation: N_VALIDATION,
        runs,
        compressed,
    };
    let path = options.out_dir.join(format!("rank-{rank}.json"));
    let json = serde_json::to_string(&report).map_err(|error| Error::InvalidInput {
        reason: format!("cannot encode the rank {rank} report: {error}"),
    })?;
    std::fs::write(&path, json).map_err(|source| Error::Io { path, source })?;
    world.barrier()
}

/// AdamW with checkpoints and validation along the way; no dropout, whose masks depend on how
/// the global batch is split into micro-batches.
fn adamw_config() -> TrainConfig {
    let mut config = TrainConfig {
        steps: 6,
        micro_batch: 2,
        grad_accum: 2,
        eval_every: 3,
        checkpoint_every: 2,
        lora: LoraConfig { rank: 4, alpha: 8.0, dropout: 0.0, ..LoraConfig::default() },
        ..TrainConfig::default()
    };
    config.optim.lr = 5e-3;
    config.optim.warmup_steps = 2;
    config
}

/// 0/1 Adam with a schedule short enough that 10 steps cover the variance updates, the freeze and
/// local steps with growing intervals; dropout on, since both sides split batches alike.
fn zero_one_adam_config() -> TrainConfig {
    let mut config = adamw_config();
    config.steps = 10;
    config.grad_accum = 1;
    config.lora.dropout = 0.1;
    config.optim.optimizer = "zero_one_adam".into();
    config.optim.lr = 3e-3;
    let zero_one = &mut config.optim.zero_one;
    zero_one.var_freeze_step = 4;
    zero_one.var_update_scaler = 1;
    zero_one.local_step_scaler = 2;
    zero_one.local_step_clipper = 4;
    config
}

/// Trains a fresh tiny model in `out_dir/name`; from step 2 on, `fail_rank`'s collectives fail.
fn train_run(
    world: &mut MpiWorld,
    name: &str,
    config: &TrainConfig,
    out_dir: &Path,
    fail_rank: Option<usize>,
) -> Result<RunReport> {
    let armed = AtomicBool::new(false);
    let fail_here = fail_rank == Some(world.rank());
    let mut comm = FailingRank { inner: world, armed: &armed };
    let mut on_step = |metrics: &StepMetrics| {
        if fail_here && metrics.step == 1 {
            armed.store(true, Ordering::SeqCst);
        }
        ControlFlow::Continue(())
    };
    train_tiny(&mut comm, name, config, out_dir, false, &mut on_step)
}

/// Trains to step 3 (the newest checkpoint is then step 2), stops as a kill would, and resumes.
fn stop_and_resume(
    world: &mut MpiWorld,
    name: &str,
    config: &TrainConfig,
    out_dir: &Path,
) -> Result<RunReport> {
    let mut stop_after_3 = |metrics: &StepMetrics| {
        if metrics.step == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    train_tiny(world, name, config, out_dir, false, &mut stop_after_3)?;
    train_tiny(world, name, config, out_dir, true, &mut |_| ControlFlow::Continue(()))
}

fn train_tiny(
    comm: &mut dyn Collective,
    name: &str,
    config: &TrainConfig,
    out_dir: &Path,
    resume: bool,
    on_step: &mut dyn FnMut(&StepMetrics) -> ControlFlow<()>,
) -> Result<RunReport> {
    let mut model = training::tiny_model(MODEL_SEED);
    let adapter = attach(&mut model, &config.lora, LoraInit::Peft { seed: config.seed })?;
    let data = training::toy_examples(N_EXAMPLES, DATA_SEED);
    let run_dir = out_dir.join(name);
    std::fs::create_dir_all(&run_dir).map_err(|source| Error::Io { path: run_dir.clone(), source })?;
    let job = TrainJob {
        config,
        model: &model,
        adapter: &adapter,
        train: &data,
        validation: &data[..N_VALIDATION],
        run_dir: &run_dir,
        resume,
        base_model: "tiny",
    };
    let summary = train(&job, comm, on_step)?;
    let adapter_bits = adapter
        .vars()
        .iter()
        .map(|var| {
            let values = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            Ok(values.into_iter().map(f32::to_bits).collect())
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RunReport {
        name: name.to_string(),
        config: config.clone(),
        steps: summary.steps,
        resumed_from: summary.resumed_from,
        adapter_bits,
    })
}

/// `n_calls` compressed all-reduces of `len` values, the error buffers carried from call to call.
fn compressed_series(comm: &mut dyn Collective, len: usize, n_calls: usize) -> Result<CompressedSeries> {
    let world_size = comm.world_size();
    let mut worker_error = vec![0f32; padded_len(len, world_size)];
    let mut server_error = vec![0f32; server_chunk_len(len, world_size)];
    let mut calls = Vec::with_capacity(n_calls);
    for call_idx in 0..n_calls {
        let input = compressed_input(comm.rank(), call_idx, len);
        let mut values = input.clone();
        compressed_allreduce(comm, &mut values, &mut worker_error, &mut server_error)?;
        let bits = |values: &[f32]| values.iter().copied().map(f32::to_bits).collect();
        calls.push(CompressedCall {
            input: bits(&input),
            output: bits(&values),
            worker_error: bits(&worker_error),
            server_error: bits(&server_error),
        });
    }
    Ok(CompressedSeries { len, calls })
}

/// Deterministic values in [-1, 1) that differ by rank and call, with exact zeros (and `-0.0` on
/// odd ranks) at every 11th value from the 6th, where the sign convention matters.
fn compressed_input(rank: usize, call_idx: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|idx| {
            if idx % 11 == 5 {
                return if rank % 2 == 1 { -0.0 } else { 0.0 };
            }
            let mixed = (rank * 7919 + call_idx * 104_729 + idx * 31 + idx * idx * 17) % 2001;
            mixed as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// Forwards to the MPI world until `armed` is set; then every collective fails, as a rank whose
/// computation broke would.
struct FailingRank<'a> {
    inner: &'a mut MpiWorld,
    armed: &'a AtomicBool,
}

impl FailingRank<'_> {
    fn check(&self) -> Result<()> {
        if self.armed.load(Ordering::SeqCst) {
            let rank = self.inner.rank();
            return Err(Error::InvalidInput { reason: format!("injected failure on rank {rank} at step 2") });
        }
        Ok(())
    }
}

impl Collective for FailingRank<'_> {
    fn rank(&self) -> usize {
        self.inner.rank()
    }

    fn world_size(&self) -> usize {
        self.inner.world_size()
    }

    fn all_reduce_sum(&mut self, buf: &mut [f32]) -> Result<()> {
        self.check()?;
        self.inner.all_reduce_sum(buf)
    }

    fn all_to_all(&mut self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        self.check()?;
        self.inner.all_to_all(send, recv)
    }

    fn all_gather(&mut self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        self.check()?;
        self.inner.all_gather(send, recv)
    }

    fn all_gather_f32(&mut self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        self.check()?;
        self.inner.all_gather_f32(send, recv)
    }

    fn broadcast(&mut self, buf: &mut [u8], root: usize) -> Result<()> {
        self.check()?;
        self.inner.broadcast(buf, root)
    }

    fn barrier(&mut self) -> Result<()> {
        self.check()?;
        self.inner.barrier()
    }

    fn abort(&mut self, reason: &str) {
        self.inner.abort(reason);
    }
}
