//! Multi-task training mixtures: per-task weights, temperature sampling, per-task caps and a
//! fixed seed, serialisable so the mixture can be written next to every training run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::example::Example;
use crate::prng::SplitMix64;
use crate::task::Task;

/// One task's share of a mixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixtureComponent {
    pub task: Task,
    /// Multiplies the task's temperature-scaled size; 1.0 for plain size-proportional mixing.
    pub weight: f64,
    /// At most this many distinct examples of the task enter the mixture (chosen by the seed);
    /// also the size used for its sampling rate, as in T5's examples-proportional mixing.
    pub cap: Option<usize>,
}

/// A multi-task mixture. The probability of drawing task `i` is
/// `p_i ∝ weight_i · n_i^(1/temperature)` with `n_i` the task's capped size: temperature 1 mixes
/// in proportion to size, large temperatures approach equal shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mixture {
    pub components: Vec<MixtureComponent>,
    pub temperature: f64,
    pub seed: u64,
    /// Examples to draw; `None` draws as many as the capped pools hold together.
    pub n_examples: Option<usize>,
}

/// A drawn mixture: the examples in draw order, how many came from each task and the
/// probabilities used.
#[derive(Debug, Clone)]
pub struct MixtureDraw {
    pub examples: Vec<Example>,
    pub counts: BTreeMap<Task, usize>,
    pub probabilities: BTreeMap<Task, f64>,
}

/// Name of the file [`Mixture::write_json`] writes into a run directory.
pub const MIXTURE_FILE: &str = "mixture.json";

impl Mixture {
    /// Equal weights, no caps.
    pub fn uniform(tasks: &[Task], temperature: f64, seed: u64) -> Self {
        let components =
            tasks.iter().map(|&task| MixtureComponent { task, weight: 1.0, cap: None }).collect();
        Mixture { components, temperature, seed, n_examples: None }
    }

    fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::Config(format!(
                "mixture temperature {} is not a positive number",
                self.temperature
            )));
        }
        if self.components.is_empty() {
            return Err(Error::Config("mixture has no tasks".into()));
        }
        for (idx, component) in self.components.iter().enumerate() {
            if !(component.weight.is_finite() && component.weight >= 0.0) {
                return Err(Error::Config(format!(
                    "mixture weight {} of {} is invalid",
                    component.weight, component.task
                )));
            }
            if self.components[..idx].iter().any(|earlier| earlier.task == component.task) {
                return Err(Error::Config(format!("task {} appears twice in the mixture", component.task)));
            }
        }
        Ok(())
    }

    /// Sampling probabilities for tasks of the given (uncapped) sizes.
    pub fn probabilities(&self, sizes: &BTreeMap<Task, usize>) -> Result<BTreeMap<Task, f64>> {
        self.validate()?;
        let mut scores = BTreeMap::new();
        for component in &self.components {
            let size = *sizes
                .get(&component.task)
                .ok_or_else(|| Error::Config(format!("mixture task {} has no examples", component.task)))?;
            let capped = component.cap.map_or(size, |cap| cap.min(size));
            let score = component.weight * (capped as f64).powf(1.0 / self.temperature);
            scores.insert(component.task, score);
        }
        let total: f64 = scores.values().sum();
        if !(total > 0.0 && total.is_finite()) {
            return Err(Error::Config("mixture weights and sizes leave nothing to draw".into()));
        }
        Ok(scores.into_iter().map(|(task, score)| (task, score / total)).collect())
    }

    /// Draws the mixture from per-task pools. Each task's capped pool is a seeded shuffle of its
    /// examples cut at the cap; a task drawn more often than its pool holds starts a new shuffled
    /// pass. The same mixture and pools always give the same draw.
    pub fn sample(&self, pools: &BTreeMap<Task, Vec<Example>>) -> Result<MixtureDraw> {
        let sizes = pools.iter().map(|(task, examples)| (*task, examples.len())).collect();
        let probabilities = self.probabilities(&sizes)?;
        let mut rng = SplitMix64::new(self.seed);
        let mut orders: Vec<(Task, Vec<usize>, usize)> = Vec::new();
        for component in &self.components {
            let pool_len = sizes[&component.task];
            let mut order: Vec<usize> = (0..pool_len).collect();
            rng.shuffle(&mut order);
            order.truncate(component.cap.unwrap_or(pool_len));
            orders.push((component.task, order, 0));
        }
        let n_examples =
            self.n_examples.unwrap_or_else(|| orders.iter().map(|(_, order, _)| order.len()).sum());
        let cumulative: Vec<f64> = orders
            .iter()
            .scan(0.0, |running, (task, _, _)| {
                *running += probabilities[task];
                Some(*running)
            })
            .collect();
        let mut examples = Vec::with_capacity(n_examples);
        let mut counts: BTreeMap<Task, usize> = BTreeMap::new();
        for _ in 0..n_examples {
            let draw = rng.next_f64() * cumulative.last().copied().unwrap_or(1.0);
            // A zero-probability task shares its edge with the task before it, so it is never first.
            let task_idx = cumulative.iter().position(|&edge| draw < edge).unwrap_or(orders.len() - 1);
            let (task, order, cursor) = &mut orders[task_idx];
            if order.is_empty() {
                return Err(Error::Config(format!("mixture task {task} has no examples to draw")));
            }
            if *cursor == order.len() {
                rng.shuffle(order);
                *cursor = 0;
            }
            examples.push(pools[task][order[*cursor]].clone());
            *cursor += 1;
            *counts.entry(*task).or_default() += 1;
        }
        Ok(MixtureDraw { examples, counts, probabilities })
    }

    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|error| Error::Config(format!("cannot serialise mixture: {error}")))
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let mixture: Mixture = serde_json::from_str(text)
            .map_err(|error| Error::Config(format!("malformed mixture JSON: {error}")))?;
        mixture.validate()?;
        Ok(mixture)
    }

    /// Writes `mixture.json` into `run_dir` through a temporary file, so a run directory never
    /// holds half a mixture.
    pub fn write_json(&self, run_dir: &Path) -> Result<PathBuf> {
        let path = run_dir.join(MIXTURE_FILE);
        let temporary = run_dir.join(format!(".{MIXTURE_FILE}.tmp"));
        std::fs::write(&temporary, self.to_json()?).map_err(|source| Error::io(&temporary, source))?;
        std::fs::rename(&temporary, &path).map_err(|source| Error::io(&path, source))?;
        Ok(path)
    }
}
