//! Adapters on disk exactly as PEFT writes them: `adapter_model.safetensors` with PEFT's key names
//! (`base_model.model.{module}.lora_A.weight`) and `adapter_config.json`, so a finagent adapter
//! loads in Python PEFT and a PEFT adapter loads here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lora::{attach, LoraAdapter, LoraConfig, LoraInit};
use crate::model::Llama;

/// File holding the adapter's matrices.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// File holding the adapter's configuration.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";

/// The fields of PEFT's `LoraConfig` finagent writes and understands.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PeftConfig {
    peft_type: String,
    task_type: Option<String>,
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    lora_dropout: f32,
    target_modules: TargetModules,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
    #[serde(default = "no_bias")]
    bias: String,
    #[serde(default)]
    fan_in_fan_out: bool,
    #[serde(default)]
    rank_pattern: HashMap<String, serde_json::Value>,
    #[serde(default)]
    alpha_pattern: HashMap<String, serde_json::Value>,
    #[serde(default)]
    base_model_name_or_path: Option<String>,
    #[serde(default)]
    inference_mode: bool,
    #[serde(default)]
    init_lora_weights: serde_json::Value,
    #[serde(default)]
    layers_to_transform: Option<serde_json::Value>,
    #[serde(default)]
    modules_to_save: Option<serde_json::Value>,
}

fn no_bias() -> String {
    "none".into()
}

/// PEFT stores `target_modules` as a list of names or as one regular expression.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum TargetModules {
    List(Vec<String>),
    Pattern(String),
}

/// Writes `adapter` into `dir` (created if needed) the way PEFT's `save_pretrained` does. Both
/// files are written to temporary names and renamed, so a reader never sees half an adapter.
pub fn save_adapter(adapter: &LoraAdapter, dir: &Path, base_model: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    let tensors: HashMap<String, Tensor> =
        adapter.named_vars().into_iter().map(|(key, var)| (key, var.as_tensor().clone())).collect();
    let weights_tmp = dir.join(format!(".{ADAPTER_WEIGHTS}.tmp"));
    candle_core::safetensors::save(&tensors, &weights_tmp).map_err(|source| Error::Safetensors {
        path: weights_tmp.clone(),
        source: crate::error::without_backtrace(source),
    })?;
    let config = &adapter.config;
    let peft = PeftConfig {
        peft_type: "LORA".into(),
        task_type: Some("CAUSAL_LM".into()),
        r: config.rank,
        lora_alpha: config.alpha,
        lora_dropout: config.dropout,
        target_modules: TargetModules::List(config.targets.clone()),
        use_rslora: config.rslora,
        use_dora: false,
        bias: no_bias(),
        fan_in_fan_out: false,
        rank_pattern: HashMap::new(),
        alpha_pattern: HashMap::new(),
        base_model_name_or_path: Some(base_model.to_string()),
        inference_mode: true,
        init_lora_weights: serde_json::Value::Bool(true),
        layers_to_transform: None,
        modules_to_save: None,
    };
    let json = serde_json::to_string_pretty(&peft)
        .map_err(|source| Error::Json { path: dir.join(ADAPTER_CONFIG), source })?;
    let config_tmp = dir.join(format!(".{ADAPTER_CONFIG}.tmp"));
    write_file(&config_tmp, json.as_bytes())?;
    rename(&weights_tmp, &dir.join(ADAPTER_WEIGHTS))?;
    rename(&config_tmp, &dir.join(ADAPTER_CONFIG))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|source| Error::Io { path: to.to_path_buf(), source })
}

/// Reads a PEFT adapter's configuration from `dir`.
pub fn read_adapter_config(dir: &Path) -> Result<LoraConfig> {
    let path = dir.join(ADAPTER_CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
    parse_adapter_config(&text, &path)
}

/// Parses the text of an `adapter_config.json`; `path` names it in errors.
pub fn parse_adapter_config(text: &str, path: &Path) -> Result<LoraConfig> {
    let peft: PeftConfig =
        serde_json::from_str(text).map_err(|source| Error::Json { path: path.to_path_buf(), source })?;
    let unsupported = |what: String| {
        Err(Error::InvalidInput { reason: format!("{}: unsupported adapter: {what}", path.display()) })
    };
    if peft.peft_type != "LORA" {
        return unsupported(format!("peft_type {:?} (only LORA)", peft.peft_type));
    }
    if peft.use_dora {
        return unsupported("use_dora is true".into());
    }
    if peft.bias != "none" {
        return unsupported(format!("bias {:?} (only \"none\")", peft.bias));
    }
    if peft.fan_in_fan_out {
        return unsupported("fan_in_fan_out is true".into());
    }
    if !peft.rank_pattern.is_empty() || !peft.alpha_pattern.is_empty() {
        return unsupported("per-module rank_pattern / alpha_pattern".into());
    }
    if peft.layers_to_transform.as_ref().is_some_and(|value| !value.is_null()) {
        return unsupported("layers_to_transform".into());
    }
    let targets = match peft.target_modules {
        TargetModules::List(list) => list,
        TargetModules::Pattern(pattern) => {
            return unsupported(format!("target_modules given as the pattern {pattern:?}"))
        }
    };
    let config = LoraConfig {
        rank: peft.r,
        alpha: peft.lora_alpha,
        dropout: peft.lora_dropout,
        targets,
        rslora: peft.use_rslora,
    };
    config
        .validate()
        .map_err(|error| Error::InvalidInput { reason: format!("{}: {error}", path.display()) })?;
    Ok(config)
}

/// Attaches the adapter stored in `dir` to `model`. Every tensor must exist with the shape the
/// base needs; a missing, extra or misshapen tensor is an error naming it.
pub fn load_adapter(model: &mut Llama, dir: &Path) -> Result<LoraAdapter> {
    let config = read_adapter_config(dir)?;
    let path: PathBuf = dir.join(ADAPTER_WEIGHTS);
    let stored = candle_core::safetensors::load(&path, model.device()).map_err(|source| {
        Error::Safetensors { path: path.clone(), source: crate::error::without_backtrace(source) }
    })?;
    attach_stored(model, &config, stored, &path)
}

/// Attaches an adapter held in memory (the two files' contents), e.g. one compiled into a binary.
/// `origin` names it in errors, as a directory would.
pub fn load_adapter_bytes(
    model: &mut Llama,
    config_json: &str,
    weights: &[u8],
    origin: &Path,
) -> Result<LoraAdapter> {
    let config = parse_adapter_config(config_json, &origin.join(ADAPTER_CONFIG))?;
    let path = origin.join(ADAPTER_WEIGHTS);
    let stored = candle_core::safetensors::load_buffer(weights, model.device()).map_err(|source| {
        Error::Safetensors { path: path.clone(), source: crate::error::without_backtrace(source) }
    })?;
    attach_stored(model, &config, stored, &path)
}

/// Attaches `config`'s modules and fills them from `stored`, which must hold exactly their tensors.
fn attach_stored(
    model: &mut Llama,
    config: &LoraConfig,
    stored: HashMap<String, Tensor>,
    path: &Path,
) -> Result<LoraAdapter> {
    let adapter = attach(model, config, LoraInit::Zeros)?;
    fill_from_stored(&adapter, stored, path)?;
    Ok(adapter)
}

/// Overwrites the matrices of an attached `adapter` with those of the adapter stored in `dir`, to
/// continue training from it (`init_adapter` in a training configuration). The stored adapter must
/// have the same rank, alpha, scaling and target modules; its dropout does not matter.
pub fn init_from_adapter(adapter: &LoraAdapter, dir: &Path) -> Result<()> {
    let stored_config = read_adapter_config(dir)?;
    let ours = &adapter.config;
    let differs = stored_config.rank != ours.rank
        || stored_config.alpha != ours.alpha
        || stored_config.rslora != ours.rslora
        || stored_config.targets != ours.targets;
    if differs {
        return Err(Error::InvalidInput {
            reason: format!(
                "{}: adapter has rank {}, alpha {}, rslora {} on {:?}; the run's [lora] has rank {}, alpha {}, rslora {} on {:?}",
                dir.join(ADAPTER_CONFIG).display(),
                stored_config.rank,
                stored_config.alpha,
                stored_config.rslora,
                stored_config.targets,
                ours.rank,
                ours.alpha,
                ours.rslora,
                ours.targets
            ),
        });
    }
    let path = dir.join(ADAPTER_WEIGHTS);
    let device = adapter.vars().first().map(|var| var.device().clone()).unwrap_or(candle_core::Device::Cpu);
    let stored = candle_core::safetensors::load(&path, &device).map_err(|source| Error::Safetensors {
        path: path.clone(),
        source: crate::error::without_backtrace(source),
    })?;
    fill_from_stored(adapter, stored, &path)
}

/// Sets every matrix of `adapter` from `stored`, which must hold exactly its tensors with its shapes.
fn fill_from_stored(adapter: &LoraAdapter, mut stored: HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let config = &adapter.config;
    let origin = path.display().to_string();
    for (key, var) in adapter.named_vars() {
        let tensor = stored
            .remove(&key)
            .ok_or_else(|| Error::MissingTensor { origin: origin.clone(), name: key.clone() })?;
        if tensor.dims() != var.dims() {
            return Err(Error::ShapeMismatch {
                origin: origin.clone(),
                name: key,
                expected: var.dims().to_vec(),
                actual: tensor.dims().to_vec(),
            });
        }
        var.set(&tensor.to_dtype(DType::F32)?)?;
    }
    if let Some(extra) = stored.keys().min() {
        return Err(Error::InvalidInput {
            reason: format!(
                "{origin}: tensor {extra} does not belong to any {:?} module of this base model",
                config.targets
            ),
        });
    }
    Ok(())
}
