//! `finagent index`: index filing folders and companyfacts files, with a progress bar.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};

use agent::config::Paths;
use agent::indexing::{discover, index_sources};
use taxonomy::Catalogue;
use xbrl::FactIndex;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Index directory (default: <home>/index).
    #[arg(long, env = "FINAGENT_INDEX", value_name = "DIR")]
    out: Option<PathBuf>,
    /// us-gaap concept table (TSV) or label linkbase, for labels of filings without their own.
    #[arg(long, value_name = "FILE")]
    taxonomy: Option<PathBuf>,
    /// Filing folders (searched recursively) and companyfacts JSON files.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

pub fn run(home: Option<&Path>, args: Args) -> Result<()> {
    let paths = Paths::resolve(home, args.out.as_deref(), None);
    let catalogue = match &args.taxonomy {
        Some(path) => {
            Some(Catalogue::load(path).with_context(|| format!("cannot load taxonomy {}", path.display()))?)
        }
        None => None,
    };
    let sources = discover(&args.paths)?;
    if sources.is_empty() {
        anyhow::bail!("no filings or companyfacts files found under {}", display_paths(&args.paths));
    }
    let mut index = FactIndex::create_or_open(&paths.index)?;
    let bar = ProgressBar::new(sources.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let summary = index_sources(&mut index, &sources, catalogue.as_ref(), &mut |source, n_facts| {
        bar.set_message(format!("{} ({n_facts} facts)", source.path().display()));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    outln!(
        "indexed {} facts from {} filings into {} ({} issues while reading); the index holds {} facts",
        summary.facts,
        summary.filings,
        paths.index.display(),
        summary.issues,
        index.num_facts()?
    );
    Ok(())
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}
