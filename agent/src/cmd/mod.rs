//! One module per subcommand, each with clap `Args` and `run(home, args) -> anyhow::Result<()>`.

pub mod ask;
pub mod datasets;
pub mod fetch;
pub mod fetch_model;
pub mod index;
