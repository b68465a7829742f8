//! EDGAR client: ticker -> CIK, submissions, companyfacts, filing indexes, and downloads of a
//! filing's XBRL files, at most `max_requests_per_sec` requests per second with retries and an
//! on-disk cache.
//!
//! SEC asks every client to identify itself with a `User-Agent` of the form "Name email"; the
//! client refuses to start without one.

mod download;
mod http;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::companyfacts::{parse_companyfacts, CompanyFacts};
use crate::date::Date;
use crate::error::{Error, Result};
use crate::model::Issue;

pub use download::{
    estimate_fiscal_year, select_filing_files, DownloadReport, DownloadRequest, DownloadedFiling,
    FiscalYearSource,
};

/// Where and how politely to talk to EDGAR.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgarConfig {
    /// Base of the data API (submissions, companyfacts): `https://data.sec.gov`.
    pub data_base_url: String,
    /// Base of the archives and `files/company_tickers.json`: `https://www.sec.gov`.
    pub archives_base_url: String,
    /// "Name email", sent with every request; required by SEC.
    pub user_agent: String,
    /// Responses are kept here and served from here next time; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Cached responses older than this are fetched again; `None` keeps them forever.
    pub cache_max_age: Option<Duration>,
    /// SEC's fair-access limit is 10.
    pub max_requests_per_sec: u32,
    /// Extra attempts after a 429, a 5xx or a connection error.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl EdgarConfig {
    /// SEC's public endpoints, 10 requests per second, 4 retries from 1 s, no cache.
    pub fn new(user_agent: impl Into<String>) -> Self {
        Self {
            data_base_url: "https://data.sec.gov".to_string(),
            archives_base_url: "https://www.sec.gov".to_string(),
            user_agent: user_agent.into(),
            cache_dir: None,
            cache_max_age: None,
            max_requests_per_sec: 10,
            retries: 4,
            backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(60),
        }
    }
}

/// One row of `company_tickers.json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CompanyTicker {
    #[serde(rename = "cik_str")]
    pub cik: u64,
    pub ticker: String,
    pub title: String,
}

/// A company's filing history from `submissions/CIK##########.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submissions {
    pub cik: u64,
    pub name: String,
    pub tickers: Vec<String>,
    /// `MMDD` as EDGAR records it (`0930`), when given.
    pub fiscal_year_end: Option<String>,
    /// The most recent filings, newest first.
    pub recent: Vec<RecentFiling>,
    /// Names of the older pages (`CIK0000320193-submissions-001.json`), fetched on demand.
    pub older_pages: Vec<String>,
}

/// One filing in a submissions listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentFiling {
    /// `0000320193-22-000108`.
    pub accession: String,
    pub form: String,
    pub filing_date: Option<Date>,
    /// The period the filing reports on (the fiscal year or quarter end).
    pub report_date: Option<Date>,
    /// The main document (`aapl-20220924.htm`).
    pub primary_document: String,
}

/// The file names in a filing's archive folder (`index.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilingIndex {
    pub names: Vec<String>,
}

/// Talks to EDGAR; cheap to clone, and clones share one rate limit and cache.
#[derive(Clone)]
pub struct EdgarClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: EdgarConfig,
    http: reqwest::Client,
    limiter: http::RateLimiter,
    cache: Option<http::DiskCache>,
}

impl EdgarClient {
    pub fn new(config: EdgarConfig) -> Result<Self> {
        let user_agent = config.user_agent.trim();
        if user_agent.is_empty() || !user_agent.contains('@') {
            return Err(Error::Edgar(format!(
                "user agent {user_agent:?} is not accepted: SEC requires \"Name email\" (e.g. \"Jane Doe jane@example.com\")"
            )));
        }
        if config.max_requests_per_sec == 0 {
            return Err(Error::Edgar("max_requests_per_sec is 0: no request could ever be sent".to_string()));
        }
        let http = reqwest::Client::builder()
            .user_agent(user_agent)
            .timeout(config.timeout)
            .build()
            .map_err(|err| Error::Edgar(format!("cannot build the HTTP client: {err}")))?;
        let limiter = http::RateLimiter::new(config.max_requests_per_sec);
        let cache = config.cache_dir.clone().map(|dir| http::DiskCache::new(dir, config.cache_max_age));
        Ok(Self { inner: Arc::new(Inner { config, http, limiter, cache }) })
    }

    pub fn config(&self) -> &EdgarConfig {
        &self.inner.config
    }

    /// GETs `url` through the rate limit, retries and cache.
    pub async fn get(&self, url: &str) -> Result<Vec<u8>> {
        let inner = &self.inner;
        let policy = http::RetryPolicy { retries: inner.config.retries, backoff: inner.config.backoff };
        http::get_bytes(&inner.http, &inner.limiter, inner.cache.as_ref(), policy, url).await
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, url: &str) -> Result<T> {
        let body = self.get(url).await?;
        serde_json::from_slice(&body)
            .map_err(|err| Error::Json { source_name: url.to_string(), message: err.to_string() })
    }

    /// Every company in `files/company_tickers.json`.
    pub async fn company_tickers(&self) -> Result<Vec<CompanyTicker>> {
        let url = format!("{}/files/company_tickers.json", self.inner.config.archives_base_url);
        let rows: std::collections::BTreeMap<String, CompanyTicker> = self.get_json(&url).await?;
        Ok(rows.into_values().collect())
    }

    /// The CIK of `ticker` (case-insensitive).
    pub async fn cik_for_ticker(&self, ticker: &str) -> Result<u64> {
        let wanted = ticker.trim();
        let tickers = self.company_tickers().await?;
        tickers.iter().find(|row| row.ticker.eq_ignore_ascii_case(wanted)).map(|row| row.cik).ok_or_else(
            || Error::Edgar(format!("unknown ticker {wanted:?}: not listed in company_tickers.json")),
        )
    }

    pub async fn submissions(&self, cik: u64) -> Result<Submissions> {
        let url = format!("{}/submissions/CIK{cik:010}.json", self.inner.config.data_base_url);
        let raw: RawSubmissions = self.get_json(&url).await?;
        Ok(Submissions {
            cik: raw.cik.as_deref().and_then(|c| c.trim().parse().ok()).unwrap_or(cik),
            name: raw.name,
            tickers: raw.tickers,
            fiscal_year_end: raw.fiscal_year_end.filter(|f| !f.trim().is_empty()),
            recent: raw.filings.recent.into_filings(),
            older_pages: raw.filings.files.into_iter().map(|page| page.name).collect(),
        })
    }

    /// One older submissions page (a name from [`Submissions::older_pages`]).
    pub async fn submissions_page(&self, page_name: &str) -> Result<Vec<RecentFiling>> {
        let url = format!("{}/submissions/{page_name}", self.inner.config.data_base_url);
        let columns: RawFilingColumns = self.get_json(&url).await?;
        Ok(columns.into_filings())
    }

    pub async fn companyfacts(&self, cik: u64) -> Result<(CompanyFacts, Vec<Issue>)> {
        let url = format!("{}/api/xbrl/companyfacts/CIK{cik:010}.json", self.inner.config.data_base_url);
        let body = self.get(&url).await?;
        parse_companyfacts(&url, &body)
    }

    pub async fn filing_index(&self, cik: u64, accession: &str) -> Result<FilingIndex> {
        let url = format!("{}/index.json", self.archive_folder_url(cik, accession));
        let raw: RawFilingIndex = self.get_json(&url).await?;
        Ok(FilingIndex { names: raw.directory.item.into_iter().map(|item| item.name).collect() })
    }

    /// `<archives>/Archives/edgar/data/<cik>/<accession without dashes>`.
    pub fn archive_folder_url(&self, cik: u64, accession: &str) -> String {
        let folder: String = accession.chars().filter(|c| *c != '-').collect();
        format!("{}/Archives/edgar/data/{cik}/{folder}", self.inner.config.archives_base_url)
    }
}

#[derive(Deserialize)]
struct RawSubmissions {
    cik: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    tickers: Vec<String>,
    #[serde(rename = "fiscalYearEnd")]
    fiscal_year_end: Option<String>,
    #[serde(default)]
    filings: RawFilings,
}

#[derive(Deserialize, Default)]
struct RawFilings {
    #[serde(default)]
    recent: RawFilingColumns,
    #[serde(default)]
    files: Vec<RawPage>,
}

#[derive(Deserialize)]
struct RawPage {
    name: String,
}

/// Submissions list filings column by column.
#[derive(Deserialize, Default)]
struct RawFilingColumns {
    #[serde(rename = "accessionNumber", default)]
    accession_number: Vec<String>,
    #[serde(default)]
    form: Vec<String>,
    #[serde(rename = "filingDate", default)]
    filing_date: Vec<String>,
    #[serde(rename = "reportDate", default)]
    report_date: Vec<String>,
    #[serde(rename = "primaryDocument", default)]
    primary_document: Vec<String>,
}

impl RawFilingColumns {
    fn into_filings(self) -> Vec<RecentFiling> {
        let column = |values: &Vec<String>, idx: usize| values.get(idx).cloned().unwrap_or_default();
        (0..self.accession_number.len())
            .map(|idx| RecentFiling {
                accession: column(&self.accession_number, idx),
                form: column(&self.form, idx),
                filing_date: column(&self.filing_date, idx).parse().ok(),
                report_date: column(&self.report_date, idx).parse().ok(),
                primary_document: column(&self.primary_document, idx),
            })
            .collect()
    }
}

#[derive(Deserialize)]
struct RawFilingIndex {
    directory: RawDirectory,
}

#[derive(Deserialize)]
struct RawDirectory {
    #[serde(default)]
    item: Vec<RawItem>,
}

#[derive(Deserialize)]
struct RawItem {
    name: String,
}
