//! One module per subcommand, each with clap `Args` and `run(home, args) -> anyhow::Result<()>`.

pub mod ask;
pub mod bench;
pub mod bench_infer;
pub mod bench_train;
pub mod datasets;
pub mod estimate;
pub mod eval;
pub mod fetch;
pub mod fetch_model;
pub mod index;
pub mod quantize;
pub mod report;
pub mod train;
