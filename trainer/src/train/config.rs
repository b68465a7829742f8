//! The training configuration: a TOML file, `--set section.key=value` overrides, defaults that
//! reproduce FinLoRA's setting, and validation that names the offending key and value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lora::LoraConfig;
use crate::optim::ZeroOneAdamConfig;
use crate::quantize::{BaseBits, ComputeDtype, Int8Matmul};

/// Everything that determines a training run. Unknown keys are errors (a typo must not silently
/// fall back to a default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Base model: a GGUF file or a Hugging Face folder; `None` means the default model.
    pub model: Option<PathBuf>,
    /// Precision of the frozen base: 4, 8, 16 or 32 (16 runs in f32).
    pub bits: u32,
    /// Optimizer steps to run.
    pub steps: usize,
    /// Examples per forward pass on one rank.
    pub micro_batch: usize,
    /// Micro-batches accumulated per optimizer step on one rank.
    pub grad_accum: usize,
    /// Seeds data order, LoRA initialisation and dropout.
    pub seed: u64,
    /// Validation loss every this many steps (0: only at the end).
    pub eval_every: usize,
    /// Checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
    /// Checkpoints kept on disk (the newest ones).
    pub keep_checkpoints: usize,
    /// Recompute each decoder layer in the backward pass instead of keeping every layer's
    /// activations: one extra forward pass for activation memory of one layer.
    pub gradient_checkpointing: bool,
    /// With gradient checkpointing: MiB per micro-batch for the outputs of frozen products (the
    /// base products of q/k/v under LoRA, o, gate, up, down) kept from the forward pass, so the
    /// backward pass replays them instead of recomputing them. Layers are kept from the first
    /// while the budget lasts (about 20 KB per token per layer on SmolLM2: 640 MiB keeps every
    /// layer of 8 rows of 128 tokens); the others are recomputed. 0 recomputes every layer.
    /// The same gradients up to float rounding (the first pass runs candle's inference kernels
    /// for norms and softmax). Batches computed over a shared prompt prefix recompute.
    pub keep_products_mib: usize,
    /// Compute a prompt prefix common to every example of a micro-batch (at least
    /// `run::MIN_SHARED_PREFIX` tokens, such as FiNER's list of tags) once instead of once per
    /// row. Same gradients up to float summation order; `false` reproduces runs made before it.
    pub share_prompt_prefix: bool,
    /// How an 8-bit base computes its forward pass: `dequantized` (f32 activations, the default)
    /// or `llm-int8` (bitsandbytes' int8 activations, as PEFT's 8-bit training runs). Written to
    /// a run's configuration only when not the default, so older runs resume unchanged.
    #[serde(skip_serializing_if = "is_default_int8_matmul")]
    pub int8_matmul: Int8Matmul,
    /// The arithmetic of a 4- or 8-bit base's products: `bf16` (operands rounded to bf16, sums
    /// in f32: QLoRA's and FinLoRA's compute dtype, 1.5-1.9x the speed of f32 products on a CPU
    /// with AVX-512 BF16, f32 on others) or `f32`. Unset means the base's default
    /// ([`TrainConfig::compute`]): bf16 over a 4- or 8-bit base, f32 over a full-precision one.
    /// The adapters, their gradients and the optimizer stay f32. A run's saved configuration
    /// records the value it ran with; one saved without it (runs from before bf16 was the
    /// default) resumes in f32.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute_dtype: Option<ComputeDtype>,
    /// Start from this adapter's matrices (a PEFT-format directory, e.g. an earlier run's
    /// `adapter/`) instead of PEFT's initialisation, to continue training it on a new schedule.
    /// Its rank, alpha and targets must equal `[lora]`'s. Written only when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_adapter: Option<PathBuf>,
    pub lora: LoraConfig,
    pub data: DataConfig,
    pub optim: OptimConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: None,
            bits: 8,
            steps: 100,
            micro_batch: 4,
            grad_accum: 1,
            seed: 42,
            eval_every: 50,
            checkpoint_every: 50,
            keep_checkpoints: 2,
            gradient_checkpointing: true,
            keep_products_mib: 1024,
            share_prompt_prefix: true,
            int8_matmul: Int8Matmul::Dequantized,
            compute_dtype: None,
            init_adapter: None,
            lora: LoraConfig::default(),
            data: DataConfig::default(),
            optim: OptimConfig::default(),
        }
    }
}

fn is_default_int8_matmul(mode: &Int8Matmul) -> bool {
    *mode == Int8Matmul::default()
}

/// Which examples to train on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// The task data directory; `None` uses `$FINAGENT_DATA` / the shared data.
    pub dir: Option<PathBuf>,
    /// Directory written by `finagent datasets generate` (`<task>/train.jsonl`), used for the
    /// generated tasks (XBRL, `finer_tagging`, `finer_batched`) instead of `dir`.
    pub generated: Option<PathBuf>,
    /// Task names, e.g. `["fpb", "tfns"]`.
    pub tasks: Vec<String>,
    /// Mixture temperature (1: proportional to size).
    pub temperature: f64,
    /// Per-task weights (default 1).
    pub weights: BTreeMap<String, f64>,
    /// Per-task caps on distinct examples.
    pub caps: BTreeMap<String, usize>,
    /// Examples longer than this many tokens (prompt, answer and EOS) are left out and counted.
    pub max_seq_len: usize,
    /// Validation examples (from the tasks' validation splits) for the validation loss.
    pub validation_examples: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dir: None,
            generated: None,
            tasks: vec!["fpb".into()],
            temperature: 1.0,
            weights: BTreeMap::new(),
            caps: BTreeMap::new(),
            max_seq_len: 512,
            validation_examples: 64,
        }
    }
}

/// The optimizer and its schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// `adamw` or `zero_one_adam`.
    pub optimizer: String,
    /// Peak learning rate.
    pub lr: f32,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Linear warmup from 0 over this many steps.
    pub warmup_steps: usize,
    /// Decay after warmup: `linear` (to 0), `cosine` (to 0) or `constant`.
    pub schedule: String,
    /// Gradient clipping by global norm (0: off).
    pub clip: f32,
    /// 0/1 Adam's own hyper-parameters (FinLoRA's preset by default).
    pub zero_one: ZeroOneAdamConfig,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            optimizer: "adamw".into(),
            lr: 1e-4,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            warmup_steps: 10,
            schedule: "linear".into(),
            clip: 1.0,
            zero_one: ZeroOneAdamConfig::finlora(),
        }
    }
}

impl TrainConfig {
    /// Reads a TOML file (if any) and applies `key=value` overrides (`lora.rank=4`,
    /// `data.tasks=["fpb","tfns"]`, `optim.lr=2e-4`); values are TOML, bare words are strings.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Self> {
        let origin = path.map_or_else(|| "the command line".to_string(), |path| path.display().to_string());
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
                text.parse::<toml::Table>().map_err(|error| Error::InvalidInput {
                    reason: format!("{}: not valid TOML: {}", path.display(), error.message()),
                })?
            }
            None => toml::Table::new(),
        };
        for assignment in overrides {
            apply_override(&mut table, assignment)?;
        }
        let config: TrainConfig =
            toml::Value::Table(table).try_into().map_err(|error: toml::de::Error| Error::InvalidInput {
                reason: format!("{origin}: {}", error.message()),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration as TOML, as saved next to the adapter.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|error| Error::InvalidInput {
            reason: format!("cannot write the config as TOML: {error}"),
        })
    }

    /// The precision of the base.
    pub fn base_bits(&self) -> Result<BaseBits> {
        BaseBits::from_bits(self.bits)
    }

    /// The arithmetic of the base's products: `compute_dtype` when set, else bf16 over a 4- or
    /// 8-bit base (QLoRA's compute dtype) and f32 over a full-precision one.
    pub fn compute(&self) -> Result<ComputeDtype> {
        Ok(match (self.compute_dtype, self.base_bits()?) {
            (Some(dtype), _) => dtype,
            (None, BaseBits::F32) => ComputeDtype::F32,
            (None, BaseBits::Nf4 | BaseBits::Int8) => ComputeDtype::Bf16,
        })
    }

    /// Fixes `compute_dtype` for a run: a fresh run (`saved` is `None`) records the default it
    /// gets; a resumed one keeps the arithmetic of its saved configuration (f32 when that
    /// configuration does not name one: it was saved before bf16 became the default) and refuses
    /// an explicit different one.
    pub fn settle_compute(&mut self, saved: Option<&TrainConfig>) -> Result<()> {
        let dtype = match saved {
            None => self.compute()?,
            Some(saved) => {
                let started = saved.compute_dtype.unwrap_or(ComputeDtype::F32);
                if let Some(asked) = self.compute_dtype.filter(|asked| *asked != started) {
                    return Err(Error::InvalidInput {
                        reason: format!(
                            "config compute_dtype = {:?}: the run being resumed computes in {:?} (its saved \
                             configuration); a resumed run keeps the arithmetic it started with",
                            asked.name(),
                            started.name()
                        ),
                    });
                }
                started
            }
        };
        self.compute_dtype = Some(dtype);
        self.validate()
    }

    /// Checks every value that could make the run meaningless or crash later.
    pub fn validate(&self) -> Result<()> {
        let invalid = |key: &str, value: String, why: &str| {
            Err(Error::InvalidInput { reason: format!("config {key} = {value}: {why}") })
        };
        if self.base_bits()? == BaseBits::F32 && self.compute_dtype == Some(ComputeDtype::Bf16) {
            return invalid(
                "compute_dtype",
                format!("{:?}", ComputeDtype::Bf16.name()),
                &format!("needs a 4- or 8-bit base (bits = {})", self.bits),
            );
        }
        self.lora.validate()?;
        if self.steps == 0 {
            return invalid("steps", "0".into(), "must be at least 1");
        }
        if self.micro_batch == 0 {
            return invalid("micro_batch", "0".into(), "must be at least 1");
        }
        if self.grad_accum == 0 {
            return invalid("grad_accum", "0".into(), "must be at least 1");
        }
        if self.keep_checkpoints == 0 {
            return invalid("keep_checkpoints", "0".into(), "must be at least 1");
        }
        if self.data.tasks.is_empty() {
            return invalid("data.tasks", "[]".into(), "name at least one task");
        }
        for task in &self.data.tasks {
            if let Err(error) = task.parse::<datasets::Task>() {
                return invalid("data.tasks", format!("{task:?}"), &error.to_string());
            }
        }
        if self.data.max_seq_len < 2 {
            return invalid("data.max_seq_len", self.data.max_seq_len.to_string(), "must be at least 2");
        }
        let optim = &self.optim;
        if !(optim.lr.is_finite() && optim.lr > 0.0) {
            return invalid("optim.lr", optim.lr.to_string(), "must be a positive number");
        }
        if !matches!(optim.optimizer.as_str(), "adamw" | "zero_one_adam") {
            return invalid(
                "optim.optimizer",
                format!("{:?}", optim.optimizer),
                "expected adamw or zero_one_adam",
            );
        }
        if !matches!(optim.schedule.as_str(), "linear" | "cosine" | "constant") {
            return invalid(
                "optim.schedule",
                format!("{:?}", optim.schedule),
                "expected linear, cosine or constant",
            );
        }
        if !(optim.clip >= 0.0 && optim.clip.is_finite()) {
            return invalid("optim.clip", optim.clip.to_string(), "must be 0 (off) or positive");
        }
        Ok(())
    }
}

/// Sets `dotted.key` in `table` to `value` parsed as TOML (a bare word is taken as a string).
fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let Some((key, raw)) = assignment.split_once('=') else {
        return Err(Error::InvalidInput {
            reason: format!("override {assignment:?} is not of the form key=value"),
        });
    };
    let key = key.trim();
    let value = parse_value(raw.trim());
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(leaf) = parts.pop().filter(|leaf| !leaf.is_empty()) else {
        return Err(Error::InvalidInput { reason: format!("override {assignment:?} has an empty key") });
    };
    let mut node = table;
    for part in parts {
        let entry = node.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(inner) => inner,
            _ => {
                return Err(Error::InvalidInput {
                    reason: format!("override {assignment:?}: {part} is a value, not a section"),
                })
            }
        };
    }
    node.insert(leaf.to_string(), value);
    Ok(())
}

fn parse_value(raw: &str) -> toml::Value {
    format!("value = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut table| table.remove("value"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_reach_nested_keys_and_typos_are_rejected() {
        let config = TrainConfig::load(
            None,
            &["lora.rank=4".into(), "data.tasks=[\"fpb\",\"tfns\"]".into(), "optim.schedule=cosine".into()],
        )
        .unwrap();
        assert_eq!(config.lora.rank, 4);
        assert_eq!(config.data.tasks, ["fpb", "tfns"]);
        assert_eq!(config.optim.schedule, "cosine");

        let typo = TrainConfig::load(None, &["lora.rnak=4".into()]).unwrap_err().to_string();
        assert!(typo.contains("rnak"), "{typo}");
        let bad = TrainConfig::load(None, &["bits=3".into()]).unwrap_err().to_string();
        assert!(bad.contains('3'), "{bad}");
        let bad = TrainConfig::load(None, &["optim.schedule=cosin".into()]).unwrap_err().to_string();
        assert!(bad.contains("cosin"), "{bad}");
    }

    #[test]
    fn the_saved_toml_reads_back_equal() {
        let config = TrainConfig::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.toml");
        std::fs::write(&path, config.to_toml().unwrap()).unwrap();
        assert_eq!(TrainConfig::load(Some(&path), &[]).unwrap(), config);
    }

    #[test]
    fn the_int8_forward_is_written_only_when_not_the_default() {
        let default = TrainConfig::default();
        assert!(
            !default.to_toml().unwrap().contains("int8_matmul"),
            "older runs' saved configurations stay equal"
        );
        let config = TrainConfig::load(None, &["int8_matmul=\"llm-int8\"".into()]).unwrap();
        assert_eq!(config.int8_matmul, Int8Matmul::LlmInt8);
        let text = config.to_toml().unwrap();
        assert!(text.contains("int8_matmul = \"llm-int8\""), "{text}");
        let bad = TrainConfig::load(None, &["int8_matmul=\"int4\"".into()]).unwrap_err().to_string();
        assert!(bad.contains("int4"), "{bad}");
    }

    #[test]
    fn the_compute_dtype_defaults_to_bf16_over_a_quantized_base_and_needs_one() {
        let default = TrainConfig::default();
        assert!(!default.to_toml().unwrap().contains("compute_dtype"), "unset stays unset");
        assert_eq!(default.compute().unwrap(), ComputeDtype::Bf16, "bits = 8");
        let full = TrainConfig::load(None, &["bits=32".into()]).unwrap();
        assert_eq!(full.compute().unwrap(), ComputeDtype::F32);
        let config = TrainConfig::load(None, &["compute_dtype=\"f32\"".into(), "bits=4".into()]).unwrap();
        assert_eq!(config.compute().unwrap(), ComputeDtype::F32);
        assert!(config.to_toml().unwrap().contains("compute_dtype = \"f32\""));
        let bad = TrainConfig::load(None, &["compute_dtype=\"f16\"".into()]).unwrap_err().to_string();
        assert!(bad.contains("f16"), "{bad}");
        let bad = TrainConfig::load(None, &["compute_dtype=\"bf16\"".into(), "bits=32".into()])
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("config compute_dtype = \"bf16\": needs a 4- or 8-bit base (bits = 32)"),
            "{bad}"
        );
    }

    #[test]
    fn a_run_records_its_compute_dtype_and_a_resumed_one_keeps_it() {
        let mut fresh = TrainConfig::default();
        fresh.settle_compute(None).unwrap();
        assert_eq!(fresh.compute_dtype, Some(ComputeDtype::Bf16));
        assert!(fresh.to_toml().unwrap().contains("compute_dtype = \"bf16\""));

        // Saved before bf16 became the default: no key, so the run started in f32.
        let older = TrainConfig::default();
        let mut resumed = TrainConfig::default();
        resumed.settle_compute(Some(&older)).unwrap();
        assert_eq!(resumed.compute_dtype, Some(ComputeDtype::F32));

        let mut resumed = TrainConfig::default();
        resumed.settle_compute(Some(&fresh)).unwrap();
        assert_eq!(resumed.compute_dtype, Some(ComputeDtype::Bf16));

        let mut changed = TrainConfig { compute_dtype: Some(ComputeDtype::Bf16), ..TrainConfig::default() };
        let error = changed.settle_compute(Some(&older)).unwrap_err().to_string();
        assert!(
            error.contains("compute_dtype = \"bf16\": the run being resumed computes in \"f32\""),
            "{error}"
        );
    }
}
