//! 0/1 Adam: against the NumPy transcription of DeepSpeed (scripts/zero_one_adam_reference.py),
//! its communication schedule, bitwise resume, agreement between ranks, and convergence on a
//! least-squares problem next to AdamW.

use serde_json::Value;
use trainer::dist::single::SingleProcess;
use trainer::dist::threads::{ThreadGroup, ThreadRank};
use trainer::dist::Collective;
use trainer::optim::{AdamW, AdamWConfig, Optimizer, ZeroOneAdam, ZeroOneAdamConfig};
use trainer::Result;

/// A collective that counts the 1-bit all-reduces (one `all_to_all` each) passing through it.
struct Counting<'a> {
    inner: &'a mut dyn Collective,
    compressed_calls: usize,
}

impl Collective for Counting<'_> {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn world_size(&self) -> usize {
        self.inner.world_size()
    }
    fn all_reduce_sum(&mut self, buf: &mut [f32]) -> Result<()> {
        self.inner.all_reduce_sum(buf)
    }
    fn all_to_all(&mut self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        self.compressed_calls += 1;
        self.inner.all_to_all(send, recv)
    }
    fn all_gather(&mut self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        self.inner.all_gather(send, recv)
    }
    fn all_gather_f32(&mut self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        self.inner.all_gather_f32(send, recv)
    }
    fn broadcast(&mut self, buf: &mut [u8], root: usize) -> Result<()> {
        self.inner.broadcast(buf, root)
    }
    fn barrier(&mut self) -> Result<()> {
        self.inner.barrier()
    }
    fn abort(&mut self, reason: &str) {
        self.inner.abort(reason)
    }
}

/// The tiny schedule of the NumPy fixture: every phase within 18 steps.
fn tiny_config() -> ZeroOneAdamConfig {
    ZeroOneAdamConfig {
        weight_decay: 0.01,
        var_freeze_step: 6,
        var_update_scaler: 2,
        local_step_scaler: 2,
        local_step_clipper: 4,
        ..ZeroOneAdamConfig::default()
    }
}

/// What one rank saw at one step.
#[derive(Debug, Clone, PartialEq)]
struct StepRecord {
    allreduce: bool,
    compressed_calls: usize,
    params: Vec<Vec<f32>>,
}

/// The training loop's part: average the gradients when the optimizer asks for it, then step.
fn train_step(
    optimizer: &mut dyn Optimizer,
    params: &mut [Vec<f32>],
    mut grads: Vec<Vec<f32>>,
    lr: f32,
    comm: &mut dyn Collective,
) -> Result<StepRecord> {
    let allreduce = optimizer.gradients_need_allreduce();
    if allreduce {
        for grad in &mut grads {
            comm.all_reduce_mean(grad)?;
        }
    }
    let mut counting = Counting { inner: comm, compressed_calls: 0 };
    optimizer.step(params, &grads, lr, &mut counting)?;
    Ok(StepRecord { allreduce, compressed_calls: counting.compressed_calls, params: params.to_vec() })
}

fn f32s(value: &Value) -> Vec<f32> {
    let bits = value.as_array().expect("array of f32 bit patterns");
    bits.iter().map(|bits| f32::from_bits(bits.as_u64().expect("u32 bit pattern") as u32)).collect()
}

fn buffers(value: &Value) -> Vec<Vec<f32>> {
    value.as_array().expect("array of buffers").iter().map(f32s).collect()
}

#[test]
fn matches_the_numpy_transcription_of_deepspeed() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/zero_one_adam_numpy.json");
    let text = std::fs::read_to_string(path).expect("fixture zero_one_adam_numpy.json is readable");
    let fixture: Value = serde_json::from_str(&text).expect("fixture is json");
    let schedule = &fixture["config"];
    assert_eq!(schedule["var_freeze_step"].as_u64(), Some(tiny_config().var_freeze_step));

    for case in fixture["cases"].as_array().unwrap() {
        let world_size = case["world_size"].as_u64().unwrap() as usize;
        let lrs = f32s(&case["lrs_f32_bits"]);
        let initial = buffers(&case["initial_params_bits"]);
        let steps = case["steps"].as_array().unwrap();
        let records = ThreadGroup::run(world_size, |comm: &mut ThreadRank| {
            let mut optimizer = ZeroOneAdam::new(tiny_config())?;
            let mut params = initial.clone();
            let mut records = Vec::new();
            for (step, lr) in lrs.iter().enumerate() {
                let grads = buffers(&case["local_grads_bits"][step][comm.rank()]);
                records.push(train_step(&mut optimizer, &mut params, grads, *lr, comm)?);
            }
            Ok(records)
        })
        .unwrap();

        let mut max_abs_diff = 0.0f32;
        for (rank, rank_records) in records.iter().enumerate() {
            for (step, (ours, theirs)) in rank_records.iter().zip(steps).enumerate() {
                let context = format!("world {world_size} rank {rank} step {}", step + 1);
                assert_eq!(Some(ours.allreduce), theirs["allreduce"].as_bool(), "{context}");
                assert_eq!(
                    Some(ours.compressed_calls as u64),
                    theirs["compressed_calls"].as_u64(),
                    "{context}"
                );
                let expected = buffers(&theirs["params_bits"][rank]);
                for (a, b) in ours.params.iter().flatten().zip(expected.iter().flatten()) {
                    max_abs_diff = max_abs_diff.max((a - b).abs());
                }
            }
        }
        println!("world {world_size}: max abs diff to numpy {max_abs_diff:e}");
        assert!(max_abs_diff <= 1e-6, "world {world_size}: max abs diff {max_abs_diff:e}");
    }
}

fn local_grads(rank: usize, step: usize, lens: &[usize]) -> Vec<Vec<f32>> {
    lens.iter()
        .enumerate()
        .map(|(idx, &len)| {
            (0..len)
                .map(|j| {
                    let phase = (rank * 7919 + step * 104_729 + idx * 1299 + j * 31) as f32;
                    (phase * 0.618).sin() * (1.0 + idx as f32)
                })
                .collect()
        })
        .collect()
}

fn initial_params(lens: &[usize]) -> Vec<Vec<f32>> {
    lens.iter().map(|&len| (0..len).map(|j| (j as f32 * 0.37).cos()).collect()).collect()
}

#[test]
fn schedule_doubles_intervals_freezes_and_clips() {
    let lens = [5usize, 19];
    let records = ThreadGroup::run(2, |comm: &mut ThreadRank| {
        let mut optimizer = ZeroOneAdam::new(tiny_config())?;
        let mut params = initial_params(&lens);
        let mut seen = Vec::new();
        for step in 0..18 {
            let grads = local_grads(comm.rank(), step, &lens);
            let record = train_step(&mut optimizer, &mut params, grads, 0.01, comm)?;
            seen.push((
                record.allreduce,
                record.compressed_calls,
                optimizer.var_interval(),
                optimizer.local_step_interval(),
                optimizer.is_frozen(),
            ));
        }
        Ok(seen)
    })
    .unwrap();
    assert_eq!(records[0], records[1]);

    // Step t = index + 1. t=1 warms the buffers (one 1-bit all-reduce per parameter); phase A
    // full all-reduces at t=2,3 (interval 1), t=4,6 (interval 2, after κ=2 updates); 1-bit
    // gradients at t=5,7; interval 4 after t=6; frozen after t=7 > var_freeze_step; sync rounds
    // at t=8,9 (interval 1), t=10 (interval 2), t=12,16 (interval 4 = H, clipped).
    let allreduce: Vec<bool> = records[0].iter().map(|r| r.0).collect();
    let mut expected_allreduce = vec![true, true, true, true, false, true];
    expected_allreduce.resize(18, false);
    assert_eq!(allreduce, expected_allreduce);
    let calls: Vec<usize> = records[0].iter().map(|r| r.1).collect();
    assert_eq!(calls, vec![2, 0, 0, 0, 2, 0, 2, 2, 2, 2, 0, 2, 0, 0, 0, 2, 0, 0]);
    let var_intervals: Vec<u64> = records[0].iter().map(|r| r.2).collect();
    assert_eq!(&var_intervals[..7], &[1, 1, 2, 2, 2, 4, 4]);
    let local_intervals: Vec<u64> = records[0].iter().map(|r| r.3).collect();
    assert_eq!(&local_intervals[6..], &[1, 1, 2, 2, 4, 4, 4, 4, 4, 4, 4, 4]);
    let frozen_from = records[0].iter().position(|r| r.4);
    assert_eq!(frozen_from, Some(6));
}

#[test]
fn first_step_discards_the_gradient() {
    let lens = [3usize, 4];
    let mut comm = SingleProcess::new();
    let run = |first_grads: Vec<Vec<f32>>, comm: &mut SingleProcess| {
        let mut optimizer = ZeroOneAdam::new(tiny_config()).unwrap();
        let mut params = initial_params(&lens);
        optimizer.step(&mut params, &first_grads, 0.01, comm).unwrap();
        assert_eq!(params, initial_params(&lens), "the first call moves nothing");
        for step in 1..4 {
            optimizer.step(&mut params, &local_grads(0, step, &lens), 0.01, comm).unwrap();
        }
        params
    };
    let a = run(local_grads(0, 0, &lens), &mut comm);
    let b = run(local_grads(5, 9, &lens), &mut comm);
    assert_eq!(a, b);
    assert_ne!(a, initial_params(&lens));
}

/// The largest difference between any rank's parameters and rank 0's.
fn spread(records: &[Vec<StepRecord>], step: usize) -> f32 {
    let reference = records[0][step].params.iter().flatten();
    records[1..]
        .iter()
        .flat_map(|rank| {
            rank[step].params.iter().flatten().zip(reference.clone()).map(|(a, b)| (a - b).abs())
        })
        .fold(0.0, f32::max)
}

#[test]
fn ranks_agree_in_phase_a_and_at_every_sync() {
    let lens = [5usize, 19];
    let records = ThreadGroup::run(3, |comm: &mut ThreadRank| {
        let mut optimizer = ZeroOneAdam::new(tiny_config())?;
        let mut params = initial_params(&lens);
        (0..18)
            .map(|step| {
                let grads = local_grads(comm.rank(), step, &lens);
                let mut record = train_step(&mut optimizer, &mut params, grads, 0.01, comm)?;
                // The momentum after a sync is the same on every rank: append it to compare.
                record.params.extend(
                    optimizer
                        .state()
                        .tensors
                        .into_iter()
                        .filter_map(|(name, buf)| name.starts_with("exp_avg.").then_some(buf)),
                );
                Ok(record)
            })
            .collect::<Result<Vec<StepRecord>>>()
    })
    .unwrap();
    let sync_steps = [7usize, 8, 9, 11, 15]; // t = 8, 9, 10, 12, 16
    for step in 0..18 {
        let spread = spread(&records, step);
        println!("t={:2} spread {spread:e}", step + 1);
        if step < 7 {
            assert_eq!(spread, 0.0, "phase A keeps ranks bitwise equal, t={}", step + 1);
        } else if sync_steps.contains(&step) {
            // `p − u` does not undo the local steps exactly in f32, so a sync leaves rounding.
            assert!(spread < 1e-6, "ranks differ by {spread:e} after the sync at t={}", step + 1);
        } else {
            assert!(spread > 1e-4, "local steps should let ranks drift apart at t={}", step + 1);
        }
    }
}

#[test]
fn resume_from_state_continues_bitwise() {
    let lens = [5usize, 19];
    for split in [1usize, 5, 8, 10, 13] {
        let outcomes = ThreadGroup::run(2, |comm: &mut ThreadRank| {
            let grads = |step: usize, rank: usize| local_grads(rank, step, &lens);
            let lr = |step: usize| 0.01 + 0.001 * step as f32;
            let mut straight = ZeroOneAdam::new(tiny_config())?;
            let mut straight_params = initial_params(&lens);
            for step in 0..18 {
                train_step(&mut straight, &mut straight_params, grads(step, comm.rank()), lr(step), comm)?;
            }

            let mut first = ZeroOneAdam::new(tiny_config())?;
            let mut params = initial_params(&lens);
            for step in 0..split {
                train_step(&mut first, &mut params, grads(step, comm.rank()), lr(step), comm)?;
            }
            let mut state = first.state();
            // A checkpoint goes through JSON text.
            state.scalars = serde_json::from_str(&state.scalars.to_string()).expect("scalars reparse");
            let mut second = ZeroOneAdam::new(tiny_config())?;
            second.load_state(state, &lens)?;
            for step in split..18 {
                train_step(&mut second, &mut params, grads(step, comm.rank()), lr(step), comm)?;
            }
            Ok((straight_params, params))
        })
        .unwrap();
        for (rank, (straight, resumed)) in outcomes.iter().enumerate() {
            assert_eq!(straight, resumed, "rank {rank}, resumed after {split} steps");
        }
    }
}

#[test]
fn load_state_rejects_other_shapes_and_world_sizes() {
    let lens = [5usize, 19];
    let states = ThreadGroup::run(2, |comm: &mut ThreadRank| {
        let mut optimizer = ZeroOneAdam::new(tiny_config())?;
        let mut params = initial_params(&lens);
        for step in 0..3 {
            train_step(&mut optimizer, &mut params, local_grads(comm.rank(), step, &lens), 0.01, comm)?;
        }
        Ok(optimizer.state())
    })
    .unwrap();
    let state = states[0].clone();

    let mut optimizer = ZeroOneAdam::new(tiny_config()).unwrap();
    let error = optimizer.load_state(state.clone(), &[5, 20]).unwrap_err();
    assert!(error.to_string().contains("exp_avg.1 has 19 values, expected 20"), "{error}");

    optimizer.load_state(state, &lens).unwrap();
    let mut params = initial_params(&lens);
    let error = optimizer.step(&mut params, &local_grads(0, 3, &lens), 0.01, &mut SingleProcess::new());
    let message = error.unwrap_err().to_string();
    assert!(message.contains("world size 1 differs from the 2 ranks"), "{message}");

    let zero_clipper = ZeroOneAdamConfig { local_step_clipper: 0, ..tiny_config() };
    let message = ZeroOneAdam::new(zero_clipper).unwrap_err().to_string();
    assert!(message.contains("local_step_clipper must be at least 1"), "{message}");
}

/// Least squares `½·mean((x·w − y)²)` on a fixed random-looking problem, data split over ranks.
struct LeastSquares {
    features: Vec<Vec<f32>>,
    targets: Vec<f32>,
}

impl LeastSquares {
    fn new(n_samples: usize, n_features: usize) -> Self {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut uniform = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        let truth: Vec<f32> = (0..n_features).map(|_| uniform() * 2.0).collect();
        let features: Vec<Vec<f32>> =
            (0..n_samples).map(|_| (0..n_features).map(|_| uniform()).collect()).collect();
        let targets = features.iter().map(|x| dot(x, &truth) + 0.05 * uniform()).collect();
        Self { features, targets }
    }

    fn loss(&self, weights: &[f32]) -> f64 {
        let total: f64 = self
            .features
            .iter()
            .zip(&self.targets)
            .map(|(x, y)| f64::from(dot(x, weights) - y).powi(2))
            .sum();
        0.5 * total / self.features.len() as f64
    }

    /// The gradient on rank `rank`'s shard, a mini-batch of `batch` samples chosen by `step`.
    fn gradient(
        &self,
        weights: &[f32],
        rank: usize,
        world_size: usize,
        step: usize,
        batch: usize,
    ) -> Vec<f32> {
        let shard = self.features.len() / world_size;
        let mut grad = vec![0.0f32; weights.len()];
        for k in 0..batch {
            let sample = rank * shard + (step * batch + k) % shard;
            let residual = dot(&self.features[sample], weights) - self.targets[sample];
            for (g, x) in grad.iter_mut().zip(&self.features[sample]) {
                *g += residual * x / batch as f32;
            }
        }
        grad
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn train_least_squares(problem: &LeastSquares, world_size: usize, n_steps: usize, zero_one: bool) -> f64 {
    let n_features = problem.features[0].len();
    let finals = ThreadGroup::run(world_size, |comm: &mut ThreadRank| {
        let mut optimizer: Box<dyn Optimizer> = if zero_one {
            let config = ZeroOneAdamConfig {
                var_freeze_step: 100,
                var_update_scaler: 8,
                local_step_scaler: 50,
                local_step_clipper: 8,
                bias_correction: false,
                ..ZeroOneAdamConfig::default()
            };
            Box::new(ZeroOneAdam::new(config)?)
        } else {
            Box::new(AdamW::new(AdamWConfig { weight_decay: 0.0, ..AdamWConfig::default() }))
        };
        let mut params = vec![vec![0.0f32; n_features]];
        for step in 0..n_steps {
            let lr = if step < n_steps / 2 { 0.02 } else { 0.005 };
            let grads = vec![problem.gradient(&params[0], comm.rank(), world_size, step, 16)];
            train_step(optimizer.as_mut(), &mut params, grads, lr, comm)?;
        }
        Ok(params.remove(0))
    })
    .unwrap();
    // Between sync rounds the ranks' models differ a little; the worst one counts.
    finals.iter().map(|weights| problem.loss(weights)).fold(0.0, f64::max)
}

#[test]
fn converges_like_adamw_on_least_squares() {
    let problem = LeastSquares::new(512, 24);
    let initial_loss = problem.loss(&[0.0; 24]);
    let adamw_loss = train_least_squares(&problem, 4, 600, false);
    let zero_one_loss = train_least_squares(&problem, 4, 600, true);
    println!("least squares: initial {initial_loss:.4}, adamw {adamw_loss:.6}, 0/1 adam {zero_one_loss:.6}");
    assert!(adamw_loss < initial_loss * 0.01, "adamw did not converge: {adamw_loss}");
    assert!(
        zero_one_loss < initial_loss * 0.01 && zero_one_loss < adamw_loss * 3.0,
        "0/1 adam loss {zero_one_loss} vs adamw {adamw_loss} (initial {initial_loss})"
    );
}
