//! Finds the facts that answer a question: the metric's concepts for that company and fiscal year,
//! ranked so the consolidated, full-year, originally filed value comes first.
//!
//! The index narrows the search; the ranking itself is `datasets::retrieval`, the same code that
//! builds retrieval-mode training prompts, so a tuned model sees at inference what it trained on.

use datasets::retrieval::{rank, rank_quarter, FactSpec};
use taxonomy::Metric;
use xbrl::{Date, FactHit, FactIndex, FactQuery, FilingMeta};

use crate::question::YearBasis;

/// How many hits to pull from the index before ranking.
const SEARCH_LIMIT: usize = 200;

/// What to look for.
#[derive(Debug, Clone)]
pub struct FactRequest {
    pub ticker: String,
    pub year: i32,
    pub year_basis: YearBasis,
    pub metric: Metric,
    /// A fiscal quarter (1 to 3; the fourth is the 10-K's year) of `year`, answered from 10-Qs.
    pub quarter: Option<u8>,
}

/// Why a quarter cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuarterGap {
    /// The fourth quarter is not filed on its own: the 10-K covers the year.
    FourthQuarter,
    /// No 10-Q of that quarter is indexed; the quarters that are, as `Q3 FY2023`.
    NotIndexed { indexed: Vec<String> },
}

/// Facts answering `request`, best first, without duplicates of the same concept, period and
/// value. Empty when the index has no such fact.
pub fn retrieve(index: &FactIndex, request: &FactRequest) -> xbrl::Result<Vec<FactHit>> {
    if let Some(quarter) = request.quarter {
        return match quarter_end(index, &request.ticker, request.year, quarter)? {
            Ok(end) => {
                // Quarter periods have no fiscal year of their own in the index: take the 10-Qs
                // of that fiscal year and keep the facts of the quarter ending on `end`.
                let query = FactQuery {
                    period_fiscal_year: None,
                    fiscal_year: Some(request.year),
                    form: Some("10-Q".to_string()),
                    ..metric_query(request, request.year)
                };
                Ok(rank_quarter(index.search(&query)?, &FactSpec::of_metric(request.metric), end))
            }
            Err(_) => Ok(Vec::new()),
        };
    }
    let (fiscal_years, calendar_year) = match request.year_basis {
        YearBasis::Fiscal => (vec![request.year], None),
        // A fiscal year ending early in year+1 may cover most of calendar `year` (NVDA, WMT).
        YearBasis::Calendar => (vec![request.year, request.year + 1], Some(request.year)),
    };
    let mut hits = Vec::new();
    for fiscal_year in fiscal_years {
        hits.extend(index.search(&metric_query(request, fiscal_year))?);
    }
    Ok(rank(hits, &FactSpec::of_metric(request.metric), calendar_year))
}

fn metric_query(request: &FactRequest, fiscal_year: i32) -> FactQuery {
    FactQuery {
        text: request.metric.label().to_string(),
        concepts: request.metric.concepts().iter().map(|c| c.to_string()).collect(),
        ticker: Some(request.ticker.clone()),
        period_fiscal_year: Some(fiscal_year),
        dimensionless_only: true,
        limit: SEARCH_LIMIT,
        ..FactQuery::default()
    }
}

/// Days in an average fiscal quarter, for numbering a 10-Q's quarter from the year's start.
const AVERAGE_QUARTER_DAYS: f64 = 91.3;

/// The last day of fiscal quarter `quarter` of `ticker`'s fiscal `year`, from the indexed 10-Qs:
/// a 10-Q's quarter is the number of quarters between the previous fiscal year's end (a 10-K's
/// period end, moved to the right year) and its own period end.
pub fn quarter_end(
    index: &FactIndex,
    ticker: &str,
    year: i32,
    quarter: u8,
) -> xbrl::Result<Result<Date, QuarterGap>> {
    if quarter >= 4 {
        return Ok(Err(QuarterGap::FourthQuarter));
    }
    let filings: Vec<FilingMeta> =
        index.filings()?.into_iter().filter(|f| f.ticker.as_deref() == Some(ticker)).collect();
    let year_ends: Vec<(i32, Date)> = filings
        .iter()
        .filter(|f| f.form.as_deref().is_some_and(|form| form.starts_with("10-K")))
        .filter_map(|f| Some((f.fiscal_year?, f.fiscal_year_end?)))
        .collect();
    let previous_year_end = |fiscal_year: i32| -> Option<Date> {
        if let Some((_, end)) = year_ends.iter().find(|(y, _)| *y == fiscal_year - 1) {
            return Some(*end);
        }
        // Any year's end, moved by whole years (52/53-week calendars drift a few days: fine for
        // numbering quarters).
        let (known_year, end) = year_ends.first()?;
        let shift = fiscal_year - 1 - known_year;
        Date::new(end.year + shift, end.month, end.day.min(28))
    };
    let mut indexed = Vec::new();
    for filing in filings.iter().filter(|f| f.form.as_deref().is_some_and(|form| form.starts_with("10-Q"))) {
        let (Some(fiscal_year), Some(end)) = (filing.fiscal_year, filing.fiscal_year_end) else { continue };
        let Some(start) = previous_year_end(fiscal_year) else { continue };
        let days = (end.days_since_epoch() - start.days_since_epoch()) as f64;
        let number = (days / AVERAGE_QUARTER_DAYS).round() as i64;
        if !(1..=3).contains(&number) {
            continue;
        }
        if fiscal_year == year && number == i64::from(quarter) {
            return Ok(Ok(end));
        }
        indexed.push(format!("Q{number} FY{fiscal_year}"));
    }
    indexed.sort();
    indexed.dedup();
    Ok(Err(QuarterGap::NotIndexed { indexed }))
}
