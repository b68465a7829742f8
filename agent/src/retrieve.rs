//! Finds the facts that answer a question: the metric's concepts for that company and fiscal year,
//! ranked so the consolidated, full-year, originally filed value comes first.
//!
//! The index narrows the search; the ranking itself is `datasets::retrieval`, the same code that
//! builds retrieval-mode training prompts, so a tuned model sees at inference what it trained on.

use datasets::retrieval::{rank, FactSpec};
use taxonomy::Metric;
use xbrl::{FactHit, FactIndex, FactQuery};

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
}

/// Facts answering `request`, best first, without duplicates of the same concept, period and
/// value. Empty when the index has no such fact.
pub fn retrieve(index: &FactIndex, request: &FactRequest) -> xbrl::Result<Vec<FactHit>> {
    let (fiscal_years, calendar_year) = match request.year_basis {
        YearBasis::Fiscal => (vec![request.year], None),
        // A fiscal year ending early in year+1 may cover most of calendar `year` (NVDA, WMT).
        YearBasis::Calendar => (vec![request.year, request.year + 1], Some(request.year)),
    };
    let mut hits = Vec::new();
    for fiscal_year in fiscal_years {
        let query = FactQuery {
            text: request.metric.label().to_string(),
            concepts: request.metric.concepts().iter().map(|c| c.to_string()).collect(),
            ticker: Some(request.ticker.clone()),
            period_fiscal_year: Some(fiscal_year),
            dimensionless_only: true,
            limit: SEARCH_LIMIT,
            ..FactQuery::default()
        };
        hits.extend(index.search(&query)?);
    }
    Ok(rank(hits, &FactSpec::of_metric(request.metric), calendar_year))
}
