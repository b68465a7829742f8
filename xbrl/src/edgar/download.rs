//! Downloads the XBRL files of chosen filings into `<out>/<TICKER>/<FY>/` with their EDGAR names
//! (10-Qs into `<out>/<TICKER>/<FY>/10-Q_<FY>Q<n>/`), the layout of `shared/xbrl/filings`.
//!
//! Fiscal year rule: before download it is estimated from the submissions' `reportDate` (see
//! [`estimate_fiscal_year`]); after download the filing's own `dei:DocumentFiscalYearFocus` (and
//! `DocumentFiscalPeriodFocus` for 10-Qs) decides, and the folder is moved when they disagree.

use std::path::{Path, PathBuf};

use super::{EdgarClient, RecentFiling, Submissions};
use crate::date::Date;
use crate::error::{Error, Result};
use crate::filing::{load_filing, FilingFiles};

/// Fiscal years ending this many days into January belong to the previous year (52/53-week years
/// of December filers: JNJ's FY2022 ended 2023-01-01). Later January ends (NVDA) keep their year.
const NEW_YEAR_SLACK_DAYS: u8 = 7;

/// Which tickers, fiscal years and forms to fetch, and where to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadRequest {
    pub tickers: Vec<String>,
    pub fiscal_years: Vec<i32>,
    /// `10-K`, `10-Q`; matched exactly (amendments are separate forms).
    pub forms: Vec<String>,
    pub out_dir: PathBuf,
}

impl DownloadRequest {
    /// The 10-Ks of `tickers` for `fiscal_years`.
    pub fn annual(tickers: &[&str], fiscal_years: &[i32], out_dir: impl Into<PathBuf>) -> Self {
        Self {
            tickers: tickers.iter().map(|t| t.to_string()).collect(),
            fiscal_years: fiscal_years.to_vec(),
            forms: vec!["10-K".to_string()],
            out_dir: out_dir.into(),
        }
    }
}

/// Where a downloaded filing's fiscal year came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FiscalYearSource {
    /// The filing's `dei:DocumentFiscalYearFocus`.
    Dei,
    /// Estimated from `reportDate`; the filing could not be read or had no fiscal year focus.
    ReportDate,
}

/// One filing on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadedFiling {
    pub ticker: String,
    pub cik: u64,
    pub accession: String,
    pub form: String,
    pub report_date: Option<Date>,
    pub fiscal_year: i32,
    pub fiscal_year_source: FiscalYearSource,
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
}

/// What a batch download did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadReport {
    pub filings: Vec<DownloadedFiling>,
    /// (ticker, form, fiscal year) with no matching filing in the submissions.
    pub not_found: Vec<(String, String, i32)>,
}

/// The fiscal year a filing with this `reportDate` most likely reports. Annual forms: the year of
/// the end date, or the year before for ends in the first days of January. Other forms (10-Q):
/// that of the first fiscal year end (EDGAR's `fiscalYearEnd`, `MMDD`) on or after the report date,
/// or the calendar year when the fiscal year end is unknown.
pub fn estimate_fiscal_year(report_date: Date, form: &str, fiscal_year_end: Option<&str>) -> i32 {
    let year_of_end =
        |end: Date| if end.month == 1 && end.day <= NEW_YEAR_SLACK_DAYS { end.year - 1 } else { end.year };
    if is_annual(form) {
        return year_of_end(report_date);
    }
    let Some((month, day)) = fiscal_year_end.and_then(parse_month_day) else { return report_date.year };
    let end_in =
        |year: i32| Date::new(year, month, day).or_else(|| Date::new(year, month, day.saturating_sub(1)));
    let slack = i64::from(NEW_YEAR_SLACK_DAYS);
    let next_end = [report_date.year, report_date.year + 1]
        .into_iter()
        .filter_map(end_in)
        .find(|end| end.days_since_epoch() + slack >= report_date.days_since_epoch());
    next_end.map_or(report_date.year, year_of_end)
}

/// The files of a filing folder worth downloading: the primary (inline) document, the instance,
/// the schema and the calculation/label/definition/presentation linkbases.
pub fn select_filing_files(names: &[String], primary_document: &str) -> Vec<String> {
    names
        .iter()
        .filter(|name| {
            let lower = name.to_ascii_lowercase();
            let is_primary =
                name.as_str() == primary_document && (lower.ends_with(".htm") || lower.ends_with(".html"));
            let is_linkbase =
                ["_cal.xml", "_lab.xml", "_def.xml", "_pre.xml"].iter().any(|s| lower.ends_with(s));
            is_primary
                || is_linkbase
                || lower.ends_with("_htm.xml")
                || lower.ends_with(".xsd")
                || is_dated_instance(&lower)
        })
        .cloned()
        .collect()
}

/// Pre-inline instances are named `<prefix>-<yyyymmdd>.xml` (`aapl-20180929.xml`).
fn is_dated_instance(lower: &str) -> bool {
    let Some(stem) = lower.strip_suffix(".xml") else { return false };
    let Some((prefix, date)) = stem.rsplit_once('-') else { return false };
    !prefix.is_empty() && date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit())
}

fn is_annual(form: &str) -> bool {
    matches!(form, "10-K" | "10-K/A" | "10-KT" | "20-F" | "40-F")
}

fn parse_month_day(text: &str) -> Option<(u8, u8)> {
    let text = text.trim();
    if text.len() != 4 {
        return None;
    }
    Some((text.get(..2)?.parse().ok()?, text.get(2..)?.parse().ok()?))
}

/// Fiscal quarter of a 10-Q from how far its report date lies past the previous fiscal year end.
fn estimate_quarter(report_date: Date, fiscal_year: i32, fiscal_year_end: Option<&str>) -> u8 {
    let Some((month, day)) = fiscal_year_end.and_then(parse_month_day) else {
        return report_date.month.div_ceil(3).clamp(1, 3);
    };
    let previous_end_year =
        if month == 1 && day <= NEW_YEAR_SLACK_DAYS { fiscal_year } else { fiscal_year - 1 };
    let Some(previous_end) = Date::new(previous_end_year, month, day)
        .or_else(|| Date::new(previous_end_year, month, day.saturating_sub(1)))
    else {
        return 1;
    };
    let days = report_date.days_since_epoch() - previous_end.days_since_epoch();
    ((days as f64 / 91.3).round() as i64).clamp(1, 3) as u8
}

fn filing_dir(out_dir: &Path, ticker: &str, form: &str, fiscal_year: i32, quarter: Option<u8>) -> PathBuf {
    let year_dir = out_dir.join(ticker.to_ascii_uppercase()).join(fiscal_year.to_string());
    match quarter {
        Some(quarter) if !is_annual(form) => year_dir.join(format!("{form}_{fiscal_year}Q{quarter}")),
        _ => year_dir,
    }
}

impl EdgarClient {
    /// Downloads the requested filings; a ticker EDGAR does not know is an error.
    pub async fn download(&self, request: &DownloadRequest) -> Result<DownloadReport> {
        let mut report = DownloadReport::default();
        for ticker in &request.tickers {
            let cik = self.cik_for_ticker(ticker).await?;
            let submissions = self.submissions(cik).await?;
            let mut listing = submissions.recent.clone();
            let mut older_pages = submissions.older_pages.iter();
            for form in &request.forms {
                for &fiscal_year in &request.fiscal_years {
                    let mut matches = matching_filings(&listing, &submissions, form, fiscal_year);
                    while matches.is_empty() {
                        let Some(page) = older_pages.next() else { break };
                        listing.extend(self.submissions_page(page).await?);
                        matches = matching_filings(&listing, &submissions, form, fiscal_year);
                    }
                    if matches.is_empty() {
                        report.not_found.push((ticker.clone(), form.clone(), fiscal_year));
                    }
                    for filing in matches {
                        let fye = submissions.fiscal_year_end.as_deref();
                        report
                            .filings
                            .push(self.download_filing(ticker, cik, &filing, fye, &request.out_dir).await?);
                    }
                }
            }
        }
        Ok(report)
    }

    /// Downloads one filing's XBRL files, then settles its fiscal year from its `dei` facts.
    pub async fn download_filing(
        &self,
        ticker: &str,
        cik: u64,
        filing: &RecentFiling,
        fiscal_year_end: Option<&str>,
        out_dir: &Path,
    ) -> Result<DownloadedFiling> {
        let report_date = filing.report_date.ok_or_else(|| {
            Error::Edgar(format!("filing {} of {ticker} has no reportDate", filing.accession))
        })?;
        let estimated_year = estimate_fiscal_year(report_date, &filing.form, fiscal_year_end);
        let quarter = estimate_quarter(report_date, estimated_year, fiscal_year_end);
        let dir = filing_dir(out_dir, ticker, &filing.form, estimated_year, Some(quarter));
        let index = self.filing_index(cik, &filing.accession).await?;
        let names = select_filing_files(&index.names, &filing.primary_document);
        if names.is_empty() {
            return Err(Error::Edgar(format!(
                "filing {} of {ticker} has no XBRL files in its index",
                filing.accession
            )));
        }
        let folder_url = self.archive_folder_url(cik, &filing.accession);
        for name in &names {
            let body = self.get(&format!("{folder_url}/{name}")).await?;
            super::http::write_atomically(&dir.join(name), &body).await?;
        }

        let (fiscal_year, source, final_dir) = match dei_fiscal_year(&dir) {
            Some((dei_year, dei_period)) => {
                let dei_quarter =
                    dei_period.as_deref().and_then(|p| p.strip_prefix('Q')).and_then(|q| q.parse().ok());
                let final_dir =
                    filing_dir(out_dir, ticker, &filing.form, dei_year, dei_quarter.or(Some(quarter)));
                (dei_year, FiscalYearSource::Dei, final_dir)
            }
            None => (estimated_year, FiscalYearSource::ReportDate, dir.clone()),
        };
        if final_dir != dir {
            move_files(&dir, &final_dir, &names).await?;
        }
        Ok(DownloadedFiling {
            ticker: ticker.to_ascii_uppercase(),
            cik,
            accession: filing.accession.clone(),
            form: filing.form.clone(),
            report_date: Some(report_date),
            fiscal_year,
            fiscal_year_source: source,
            files: names.iter().map(|name| final_dir.join(name)).collect(),
            dir: final_dir,
        })
    }
}

/// Filings of `form` whose estimated fiscal year is `fiscal_year`; for annual forms only the
/// earliest filed (the original, not a re-filing).
fn matching_filings(
    listing: &[RecentFiling],
    submissions: &Submissions,
    form: &str,
    fiscal_year: i32,
) -> Vec<RecentFiling> {
    let fye = submissions.fiscal_year_end.as_deref();
    let mut matches: Vec<RecentFiling> = listing
        .iter()
        .filter(|f| f.form == form)
        .filter(|f| f.report_date.is_some_and(|date| estimate_fiscal_year(date, form, fye) == fiscal_year))
        .cloned()
        .collect();
    matches.sort_by_key(|f| (f.report_date, f.filing_date));
    matches.dedup_by(|a, b| a.accession == b.accession);
    if is_annual(form) {
        matches.truncate(1);
    }
    matches
}

/// `DocumentFiscalYearFocus` and `DocumentFiscalPeriodFocus` of the filing in `dir`, when readable.
fn dei_fiscal_year(dir: &Path) -> Option<(i32, Option<String>)> {
    let files = FilingFiles::discover(dir).ok()?;
    let files = files.iter().find(|f| f.primary_document().is_some())?;
    let (_, info, _) = load_filing(files).ok()?;
    Some((info.fiscal_year?, info.fiscal_period))
}

async fn move_files(from: &Path, to: &Path, names: &[String]) -> Result<()> {
    tokio::fs::create_dir_all(to).await.map_err(|source| Error::io(to, source))?;
    for name in names {
        let (source_path, target) = (from.join(name), to.join(name));
        tokio::fs::rename(&source_path, &target).await.map_err(|source| Error::io(&source_path, source))?;
    }
    // Leaves the old folder if anything else lives there.
    let _ = tokio::fs::remove_dir(from).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> Date {
        text.parse().unwrap()
    }

    #[test]
    fn fiscal_year_estimates() {
        assert_eq!(estimate_fiscal_year(date("2022-09-24"), "10-K", Some("0924")), 2022);
        assert_eq!(estimate_fiscal_year(date("2023-01-01"), "10-K", Some("0101")), 2022, "JNJ");
        assert_eq!(estimate_fiscal_year(date("2024-01-28"), "10-K", Some("0128")), 2024, "NVDA");
        assert_eq!(estimate_fiscal_year(date("2023-07-01"), "10-Q", Some("0930")), 2023);
        assert_eq!(estimate_fiscal_year(date("2023-04-30"), "10-Q", Some("0128")), 2024);
        assert_eq!(estimate_fiscal_year(date("2022-10-02"), "10-Q", Some("1231")), 2022);
        assert_eq!(estimate_fiscal_year(date("2022-10-02"), "10-Q", None), 2022);
        assert_eq!(estimate_quarter(date("2023-07-01"), 2023, Some("0930")), 3);
        assert_eq!(estimate_quarter(date("2023-04-30"), 2024, Some("0128")), 1);
    }

    #[test]
    fn selects_xbrl_files_only() {
        let names: Vec<String> = [
            "aapl-20220924.htm",
            "aapl-20220924.xsd",
            "aapl-20220924_cal.xml",
            "aapl-20220924_htm.xml",
            "aapl-20180929.xml",
            "FilingSummary.xml",
            "R1.htm",
            "0000320193-22-000108.txt",
            "exhibit21.htm",
        ]
        .map(String::from)
        .to_vec();
        let chosen = select_filing_files(&names, "aapl-20220924.htm");
        assert_eq!(
            chosen,
            [
                "aapl-20220924.htm",
                "aapl-20220924.xsd",
                "aapl-20220924_cal.xml",
                "aapl-20220924_htm.xml",
                "aapl-20180929.xml"
            ]
        );
    }
}
