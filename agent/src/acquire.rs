//! Gets a company's filings onto this machine when the index lacks them: from EDGAR when a
//! User-Agent is configured, else from the local mirror (`FINAGENT_XBRL_MIRROR`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use xbrl::filing::{load_filing, FilingFiles};
use xbrl::{DownloadRequest, EdgarClient, EdgarConfig};

use crate::companies::{Company, CompanyDirectory};
use crate::config::{Paths, USER_AGENT_ENV};

/// Where filings come from.
#[derive(Debug, Clone)]
pub enum FilingSource {
    Edgar { user_agent: String },
    Mirror(PathBuf),
}

impl FilingSource {
    /// EDGAR when a User-Agent is configured, else the mirror; `None` when neither is.
    pub fn from_environment(paths: &Paths) -> Option<FilingSource> {
        match std::env::var(USER_AGENT_ENV) {
            Ok(user_agent) if !user_agent.trim().is_empty() => Some(FilingSource::Edgar { user_agent }),
            _ => paths.mirror.clone().map(FilingSource::Mirror),
        }
    }
}

/// Companies in a mirror: one per `filings/<TICKER>` folder, named by the `dei` facts of its most
/// recent readable filing.
pub fn mirror_companies(mirror: &Path) -> Result<CompanyDirectory> {
    let filings = mirror.join("filings");
    let mut directory = CompanyDirectory::default();
    let entries = std::fs::read_dir(&filings).with_context(|| {
        format!("cannot read the filings mirror {} ({})", filings.display(), crate::config::MIRROR_ENV)
    })?;
    let mut tickers: Vec<(String, PathBuf)> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| entry.file_name().to_str().map(|name| (name.to_string(), entry.path())))
        .collect();
    tickers.sort();
    for (ticker, dir) in tickers {
        let (cik, name) = latest_identity(&dir).unwrap_or((None, None));
        directory.add(Company { ticker, cik, name });
    }
    Ok(directory)
}

/// CIK and registrant name from the newest filing under a ticker folder (years sort newest last).
fn latest_identity(ticker_dir: &Path) -> Option<(Option<u64>, Option<String>)> {
    let mut years: Vec<PathBuf> =
        std::fs::read_dir(ticker_dir).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    years.sort();
    for year_dir in years.iter().rev() {
        let Ok(found) = FilingFiles::discover(year_dir) else { continue };
        for files in found.iter().filter(|f| f.primary_document().is_some()) {
            if let Ok((_, info, _)) = load_filing(files) {
                let cik = info.cik.as_deref().and_then(|c| c.trim().parse().ok());
                return Some((cik, info.entity_name));
            }
        }
    }
    None
}

/// Paths to index for `company` (all years the source has, so comparatives are available).
pub fn acquire(
    source: &FilingSource,
    paths: &Paths,
    company: &Company,
    years: &[i32],
) -> Result<Vec<PathBuf>> {
    match source {
        FilingSource::Mirror(mirror) => {
            let mut found = Vec::new();
            let dir = mirror.join("filings").join(&company.ticker);
            if dir.is_dir() {
                found.push(dir);
            }
            if let Some(cik) = company.cik {
                let facts = mirror.join("companyfacts").join(format!("CIK{cik:010}.json"));
                if facts.is_file() {
                    found.push(facts);
                }
            }
            if found.is_empty() {
                bail!("the mirror {} has no filings for {}", mirror.display(), company.ticker);
            }
            Ok(found)
        }
        FilingSource::Edgar { user_agent } => download(user_agent, paths, company, years),
    }
}

fn download(user_agent: &str, paths: &Paths, company: &Company, years: &[i32]) -> Result<Vec<PathBuf>> {
    let mut config = EdgarConfig::new(user_agent);
    config.cache_dir = Some(paths.cache.clone());
    let client = EdgarClient::new(config)?;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start tokio")?;
    // Comparative columns make the next year's 10-K a second source for each year asked.
    let mut fiscal_years: Vec<i32> = years.iter().flat_map(|y| [*y, *y + 1]).collect();
    fiscal_years.sort_unstable();
    fiscal_years.dedup();
    let request = DownloadRequest::annual(&[company.ticker.as_str()], &fiscal_years, &paths.filings);
    runtime.block_on(async {
        let report = client.download(&request).await?;
        let mut found: Vec<PathBuf> = report.filings.iter().map(|f| f.dir.clone()).collect();
        let cik = match company.cik {
            Some(cik) => cik,
            None => client.cik_for_ticker(&company.ticker).await?,
        };
        let url = format!("{}/api/xbrl/companyfacts/CIK{cik:010}.json", client.config().data_base_url);
        let bytes = client.get(&url).await?;
        let dir = paths.filings.join("companyfacts");
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let file = dir.join(format!("CIK{cik:010}.json"));
        let partial = file.with_extension("json.partial");
        std::fs::write(&partial, bytes).with_context(|| format!("cannot write {}", partial.display()))?;
        std::fs::rename(&partial, &file).with_context(|| format!("cannot write {}", file.display()))?;
        found.push(file);
        Ok(found)
    })
}

/// The companies a source can provide, to resolve a question before anything is indexed.
pub fn source_companies(source: &FilingSource, paths: &Paths) -> Result<CompanyDirectory> {
    match source {
        FilingSource::Mirror(mirror) => mirror_companies(mirror),
        FilingSource::Edgar { user_agent } => {
            let mut config = EdgarConfig::new(user_agent.as_str());
            config.cache_dir = Some(paths.cache.clone());
            let client = EdgarClient::new(config)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start tokio")?;
            let tickers = runtime.block_on(client.company_tickers())?;
            let mut directory = CompanyDirectory::default();
            for row in tickers {
                directory.add(Company { ticker: row.ticker, cik: Some(row.cik), name: Some(row.title) });
            }
            Ok(directory)
        }
    }
}
