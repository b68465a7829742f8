//! The examples a run trains and validates on: each task's train split (from the task data
//! directory, or from `finagent datasets generate` output for the generated XBRL tasks) drawn into
//! the configured mixture, and a slice of the validation splits.

use std::collections::BTreeMap;
use std::path::Path;

use datasets::{load_context_file, DataDir, Example, LoadConfig, Mixture, MixtureComponent, Split, Task};

use crate::error::{Error, Result};
use crate::train::config::TrainConfig;

/// The drawn training examples, the validation examples and the mixture that drew them.
#[derive(Debug, Clone)]
pub struct PreparedData {
    pub train: Vec<Example>,
    pub validation: Vec<Example>,
    pub mixture: Mixture,
    /// Examples drawn per task.
    pub counts: BTreeMap<Task, usize>,
}

/// Loads every configured task and draws the mixture.
pub fn prepare_data(config: &TrainConfig) -> Result<PreparedData> {
    let data = &config.data;
    let data_dir = data.dir.clone().map_or_else(DataDir::from_env, DataDir::new);
    let load_config = LoadConfig::default();
    let mut pools = BTreeMap::new();
    let mut validation_pools = Vec::new();
    let mut components = Vec::new();
    for name in &data.tasks {
        let task: Task = name.parse().map_err(data_error)?;
        // Tasks made by generation (the XBRL tasks, the FiNER questions of filings or of a tag
        // ranking's shortlists) come from the generated folder when one is given.
        let generated_task =
            task.xbrl_file_task().is_some() || matches!(task, Task::FinerTagging | Task::FinerBatched);
        let (train, validation) = match (&data.generated, generated_task) {
            (Some(generated), true) => (
                load_generated(generated, task, "train")?,
                load_generated(generated, task, "validation").unwrap_or_default(),
            ),
            _ => (
                data_dir.load(task, Split::Train, &load_config).map_err(data_error)?.examples,
                data_dir.load(task, Split::Validation, &load_config).map_err(data_error)?.examples,
            ),
        };
        if train.is_empty() {
            return Err(Error::InvalidInput { reason: format!("task {name} has no training examples") });
        }
        pools.insert(task, train);
        validation_pools.push(validation);
        components.push(MixtureComponent {
            task,
            weight: data.weights.get(name).copied().unwrap_or(1.0),
            cap: data.caps.get(name).copied(),
        });
    }
    for key in data.weights.keys().chain(data.caps.keys()) {
        if !data.tasks.contains(key) {
            return Err(Error::InvalidInput {
                reason: format!(
                    "data.weights / data.caps name {key}, which is not in data.tasks {:?}",
                    data.tasks
                ),
            });
        }
    }
    let mixture = Mixture { components, temperature: data.temperature, seed: config.seed, n_examples: None };
    let draw = mixture.sample(&pools).map_err(data_error)?;
    // Validation: round-robin over tasks so each is represented.
    let mut validation = Vec::new();
    let longest = validation_pools.iter().map(Vec::len).max().unwrap_or(0);
    'fill: for idx in 0..longest {
        for pool in &validation_pools {
            if validation.len() >= data.validation_examples {
                break 'fill;
            }
            if let Some(example) = pool.get(idx) {
                validation.push(example.clone());
            }
        }
    }
    Ok(PreparedData { train: draw.examples, validation, mixture, counts: draw.counts })
}

fn load_generated(dir: &Path, task: Task, split: &str) -> Result<Vec<Example>> {
    let path = dir.join(task.name()).join(format!("{split}.jsonl"));
    Ok(load_context_file(&path, task, &LoadConfig::default()).map_err(data_error)?.examples)
}

fn data_error(error: datasets::Error) -> Error {
    Error::InvalidInput { reason: error.to_string() }
}
