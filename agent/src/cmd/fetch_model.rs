//! `finagent fetch-model`: put the default model where `ask` looks for it.

use std::path::{Path, PathBuf};

use anyhow::Result;

use agent::config::Paths;
use agent::model_fetch::ensure_default_model;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the GGUF file (default: <home>/models/SmolLM2-135M-Instruct.Q4_1.gguf).
    #[arg(long, env = "FINAGENT_MODEL", value_name = "FILE")]
    to: Option<PathBuf>,
}

pub fn run(home: Option<&Path>, args: Args) -> Result<()> {
    let paths = Paths::resolve(home, None, args.to.as_deref());
    let path = ensure_default_model(&paths.model)?;
    outln!("{}", path.display());
    Ok(())
}
