//! Checkpoints that survive a kill at any moment: each is written into a hidden temporary
//! directory and renamed into place, and only then does the `latest` pointer (itself written to a
//! temporary file and renamed) move to it. A kill mid-write leaves the previous checkpoint intact.
//!
//! A checkpoint holds the adapter (PEFT's files), the optimizer's buffers
//! (`optimizer.safetensors`) and `trainer_state.json` (step, optimizer scalars, the run's shape).
//! Data order and dropout are pure functions of the seed and the step, so the step is the data
//! position and the random state.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::optim::OptimizerState;

/// File names inside a checkpoint directory.
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const STATE_FILE: &str = "trainer_state.json";
const LATEST: &str = "latest";

/// What a checkpoint records besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps completed.
    pub step: usize,
    /// Examples per optimizer step over all ranks; a resume must use the same.
    pub global_batch: usize,
    pub world_size: usize,
    pub seed: u64,
    pub optimizer: String,
    pub optimizer_scalars: serde_json::Value,
    /// Trainable parameter sizes, in order.
    pub param_lens: Vec<usize>,
    /// Last validation loss, if one was computed.
    pub val_loss: Option<f64>,
}

/// The checkpoints of one run, under `<run>/checkpoints`.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    root: PathBuf,
}

/// A checkpoint read back.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub state: TrainerState,
    pub params: Vec<Vec<f32>>,
    pub optimizer: OptimizerState,
}

impl CheckpointDir {
    pub fn new(run_dir: &Path) -> Self {
        CheckpointDir { root: run_dir.join("checkpoints") }
    }

    fn step_dir(&self, step: usize) -> PathBuf {
        self.root.join(format!("step-{step:07}"))
    }

    /// Writes a checkpoint for `state.step`. `write_adapter` puts the adapter files into the
    /// directory it is given. Keeps the newest `keep` checkpoints.
    pub fn save(
        &self,
        state: &TrainerState,
        optimizer: &OptimizerState,
        write_adapter: impl FnOnce(&Path) -> Result<()>,
        keep: usize,
    ) -> Result<PathBuf> {
        let final_dir = self.step_dir(state.step);
        let tmp_dir = self.root.join(format!(".tmp-step-{:07}", state.step));
        remove_dir_if_present(&tmp_dir)?;
        std::fs::create_dir_all(&tmp_dir).map_err(|source| io(&tmp_dir, source))?;
        write_adapter(&tmp_dir)?;
        let tensors: HashMap<String, Tensor> = optimizer
            .tensors
            .iter()
            .map(|(name, values)| Ok((name.clone(), Tensor::from_slice(values, values.len(), &Device::Cpu)?)))
            .collect::<Result<_>>()?;
        let optimizer_path = tmp_dir.join(OPTIMIZER_FILE);
        candle_core::safetensors::save(&tensors, &optimizer_path).map_err(|source| Error::Safetensors {
            path: optimizer_path.clone(),
            source: crate::error::without_backtrace(source),
        })?;
        let mut state = state.clone();
        state.optimizer = optimizer.kind.clone();
        state.optimizer_scalars = optimizer.scalars.clone();
        let json = serde_json::to_string_pretty(&state)
            .map_err(|source| Error::Json { path: tmp_dir.join(STATE_FILE), source })?;
        let state_path = tmp_dir.join(STATE_FILE);
        std::fs::write(&state_path, json).map_err(|source| io(&state_path, source))?;
        remove_dir_if_present(&final_dir)?;
        std::fs::rename(&tmp_dir, &final_dir).map_err(|source| io(&final_dir, source))?;
        self.point_latest_to(&final_dir)?;
        self.prune(keep)?;
        Ok(final_dir)
    }

    fn point_latest_to(&self, dir: &Path) -> Result<()> {
        let name = dir.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        let tmp = self.root.join(".latest.tmp");
        std::fs::write(&tmp, name).map_err(|source| io(&tmp, source))?;
        let latest = self.root.join(LATEST);
        std::fs::rename(&tmp, &latest).map_err(|source| io(&latest, source))
    }

    /// Deletes all but the newest `keep` checkpoints (never the one `latest` names).
    fn prune(&self, keep: usize) -> Result<()> {
        let latest = self.latest_dir()?;
        let mut steps = self.list()?;
        steps.sort();
        let excess = steps.len().saturating_sub(keep);
        for dir in steps.into_iter().take(excess) {
            if Some(&dir) != latest.as_ref() {
                std::fs::remove_dir_all(&dir).map_err(|source| io(&dir, source))?;
            }
        }
        Ok(())
    }

    fn list(&self) -> Result<Vec<PathBuf>> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Ok(Vec::new());
        };
        let mut dirs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| io(&self.root, source))?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|name| name.starts_with("step-")) {
                dirs.push(entry.path());
            }
        }
        Ok(dirs)
    }

    /// The directory `latest` points to, if any.
    pub fn latest_dir(&self) -> Result<Option<PathBuf>> {
        let latest = self.root.join(LATEST);
        match std::fs::read_to_string(&latest) {
            Ok(name) => Ok(Some(self.root.join(name.trim()))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(io(&latest, source)),
        }
    }

    /// Reads the newest complete checkpoint; `None` when the run has none yet. The adapter's
    /// tensors come back in `names` order.
    pub fn load_latest(&self, names: &[String]) -> Result<Option<Checkpoint>> {
        let Some(dir) = self.latest_dir()? else {
            return Ok(None);
        };
        let state_path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&state_path).map_err(|source| io(&state_path, source))?;
        let state: TrainerState =
            serde_json::from_str(&text).map_err(|source| Error::Json { path: state_path.clone(), source })?;
        let adapter_path = dir.join(crate::peft::ADAPTER_WEIGHTS);
        let mut adapter = read_tensors(&adapter_path)?;
        let params = names
            .iter()
            .map(|name| {
                adapter.remove(name).ok_or_else(|| Error::MissingTensor {
                    origin: adapter_path.display().to_string(),
                    name: name.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let optimizer_path = dir.join(OPTIMIZER_FILE);
        let mut tensors: Vec<(String, Vec<f32>)> = read_tensors(&optimizer_path)?.into_iter().collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let optimizer = OptimizerState {
            kind: state.optimizer.clone(),
            scalars: state.optimizer_scalars.clone(),
            tensors,
        };
        Ok(Some(Checkpoint { dir, state, params, optimizer }))
    }
}

fn read_tensors(path: &Path) -> Result<HashMap<String, Vec<f32>>> {
    let tensors = candle_core::safetensors::load(path, &Device::Cpu).map_err(|source| {
        Error::Safetensors { path: path.to_path_buf(), source: crate::error::without_backtrace(source) }
    })?;
    tensors.into_iter().map(|(name, tensor)| Ok((name, tensor.flatten_all()?.to_vec1::<f32>()?))).collect()
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io(dir, source)),
    }
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io { path: path.to_path_buf(), source }
}
