//! Finds the facts that answer a question: the metric's concepts for that company and fiscal year,
//! ranked so the consolidated, full-year, originally filed value comes first.

use taxonomy::{Metric, PeriodType, UnitKind};
use xbrl::{Date, FactHit, FactIndex, FactQuery, Period};

use crate::question::YearBasis;

/// Durations that count as a fiscal year (52/53 weeks or a calendar year), in days (end - start).
const YEAR_DAYS: std::ops::RangeInclusive<i64> = 350..=380;
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
    let fiscal_years = match request.year_basis {
        YearBasis::Fiscal => vec![request.year],
        // A fiscal year ending early in year+1 may cover most of calendar `year` (NVDA, WMT).
        YearBasis::Calendar => vec![request.year, request.year + 1],
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
    let concepts = request.metric.concepts();
    hits.retain(|hit| {
        concepts.contains(&hit.concept.as_str())
            && hit.number.is_some()
            && period_fits(&hit.period, request.metric.period_type())
            && unit_fits(hit.unit.as_deref(), request.metric.unit_kind())
    });
    if request.year_basis == YearBasis::Calendar {
        let best_overlap = hits.iter().map(|hit| calendar_overlap_days(&hit.period, request.year)).max();
        hits.retain(|hit| Some(calendar_overlap_days(&hit.period, request.year)) == best_overlap);
    }
    hits.sort_by_key(|hit| rank_key(hit, concepts));
    let mut seen = Vec::new();
    hits.retain(|hit| {
        let key = (hit.concept.clone(), hit.period, hit.value.clone());
        let new = !seen.contains(&key);
        if new {
            seen.push(key);
        }
        new
    });
    Ok(hits)
}

/// Lower sorts first: the metric's preferred concept, then the filing of that very fiscal year
/// (not a later filing's comparative column), annual reports, filings over companyfacts.
fn rank_key(hit: &FactHit, concepts: &[&str]) -> (usize, bool, bool, bool, String) {
    let concept_rank = concepts.iter().position(|c| *c == hit.concept).unwrap_or(usize::MAX);
    let comparative = hit.fiscal_year != hit.period_fiscal_year;
    let not_annual = !matches!(hit.form.as_deref(), Some("10-K" | "10-K/A" | "20-F" | "40-F"));
    let from_companyfacts = hit.source.ends_with(".json");
    (concept_rank, comparative, not_annual, from_companyfacts, hit.filing_id.clone())
}

fn period_fits(period: &Period, period_type: PeriodType) -> bool {
    match (period_type, period) {
        (PeriodType::Duration, Period::Duration { .. }) => {
            period.days().is_some_and(|d| YEAR_DAYS.contains(&d))
        }
        (PeriodType::Instant, Period::Instant(_)) => true,
        _ => false,
    }
}

fn unit_fits(unit: Option<&str>, kind: UnitKind) -> bool {
    let Some(unit) = unit else { return false };
    match kind {
        UnitKind::Monetary => !unit.contains('/') && unit != "shares" && unit != "pure",
        UnitKind::PerShare => unit.ends_with("/shares"),
        UnitKind::Shares => unit == "shares",
    }
}

/// Days of `period` that fall in calendar `year` (instants count 1 when inside it).
fn calendar_overlap_days(period: &Period, year: i32) -> i64 {
    let (Some(first), Some(last)) = (Date::new(year, 1, 1), Date::new(year, 12, 31)) else { return 0 };
    let (Some(start), Some(end)) = (period.start(), period.end()) else { return 0 };
    let from = start.max(first).days_since_epoch();
    let to = end.min(last).days_since_epoch();
    (to - from + 1).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duration(start: &str, end: &str) -> Period {
        Period::Duration { start: start.parse().unwrap(), end: end.parse().unwrap() }
    }

    #[test]
    fn calendar_overlap_picks_the_year_mostly_inside() {
        // NVDA FY2023 ended 2023-01-29: almost all of calendar 2022.
        assert_eq!(calendar_overlap_days(&duration("2022-01-31", "2023-01-29"), 2022), 335);
        assert_eq!(calendar_overlap_days(&duration("2021-02-01", "2022-01-30"), 2022), 30);
    }

    #[test]
    fn periods_and_units_fit_the_metric() {
        assert!(period_fits(&duration("2021-09-26", "2022-09-24"), PeriodType::Duration));
        assert!(!period_fits(&duration("2022-06-26", "2022-09-24"), PeriodType::Duration));
        assert!(period_fits(&Period::Instant("2022-09-24".parse().unwrap()), PeriodType::Instant));
        assert!(unit_fits(Some("USD"), UnitKind::Monetary));
        assert!(!unit_fits(Some("USD/shares"), UnitKind::Monetary));
        assert!(unit_fits(Some("USD/shares"), UnitKind::PerShare));
        assert!(unit_fits(Some("shares"), UnitKind::Shares));
    }
}
