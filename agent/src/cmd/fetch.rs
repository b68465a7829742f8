//! `finagent fetch`: download filings and companyfacts from EDGAR (or take them from the mirror)
//! and index them.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};

use agent::acquire::{acquire, source_companies, FilingSource};
use agent::config::{Paths, MIRROR_ENV, USER_AGENT_ENV};
use agent::indexing::{discover, index_sources};
use xbrl::FactIndex;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Tickers, comma-separated (`AAPL,NVDA`).
    #[arg(long, required = true, value_delimiter = ',')]
    tickers: Vec<String>,
    /// Fiscal years, comma-separated (`2022,2023`).
    #[arg(long, required = true, value_delimiter = ',')]
    years: Vec<i32>,
    /// Index directory to add them to (default: <home>/index).
    #[arg(long, env = "FINAGENT_INDEX", value_name = "DIR")]
    index: Option<PathBuf>,
}

pub fn run(home: Option<&Path>, args: Args) -> Result<()> {
    let paths = Paths::resolve(home, args.index.as_deref(), None);
    let source = FilingSource::from_environment(&paths).ok_or_else(|| {
        anyhow!("set {USER_AGENT_ENV} (\"Name email\") to use EDGAR, or {MIRROR_ENV} to a local mirror")
    })?;
    let companies = source_companies(&source, &paths)?;
    let mut to_index = Vec::new();
    for ticker in &args.tickers {
        let company = companies.by_ticker(ticker).ok_or_else(|| anyhow!("unknown ticker {ticker:?}"))?;
        to_index.extend(acquire(&source, &paths, company, &args.years)?);
    }
    let mut index = FactIndex::create_or_open(&paths.index)?;
    let summary = index_sources(&mut index, &discover(&to_index)?, None, &mut |_, _| {})?;
    outln!("indexed {} facts from {} filings into {}", summary.facts, summary.filings, paths.index.display());
    Ok(())
}
