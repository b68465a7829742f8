//! Multi-task LoRA training over a frozen (optionally quantized) base, on one process or many.
//!
//! `config` is the TOML configuration, `data` turns examples into token ids and a deterministic
//! batch plan, `prepare` draws the task mixture from the data directory, `run` is the loop,
//! `checkpoint` writes and reads atomic checkpoints, `metrics` the schedule, log and plot.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod metrics;
pub mod prepare;
pub mod run;

pub use config::TrainConfig;
pub use run::{train, TrainJob, TrainSummary};
