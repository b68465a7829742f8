//! The fact ranking behind retrieval-mode prompts, shared by the agent's retriever (`agent ask`)
//! and retrieval-mode dataset generation, so training and inference see the same top-k facts in
//! the same prompt shape.
//!
//! Pure functions over [`FactHit`]s: the agent gets them from its tantivy index, generation builds
//! them from one filing with [`filing_hits`]. Ranking keeps the facts of the wanted concepts, of a
//! full fiscal year (or an instant) and of the right kind of unit, and sorts the preferred concept,
//! the year's own filing, annual reports and filings over companyfacts first.

use taxonomy::{Metric, PeriodType, UnitKind};
use xbrl::{Date, Document, FactHit, FilingInfo, Period};

use crate::xbrl_prompt::ContextLine;

/// Durations that count as a fiscal year (52/53 weeks or a calendar year), in days (end - start).
pub const YEAR_DAYS: std::ops::RangeInclusive<i64> = 350..=380;

/// What a question asks for: concepts in order of preference, period type and kind of unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactSpec<'a> {
    pub concepts: &'a [&'a str],
    pub period_type: PeriodType,
    pub unit_kind: UnitKind,
}

impl FactSpec<'static> {
    /// The concepts, period type and unit of an analyst metric.
    pub fn of_metric(metric: Metric) -> Self {
        FactSpec {
            concepts: metric.concepts(),
            period_type: metric.period_type(),
            unit_kind: metric.unit_kind(),
        }
    }
}

/// The facts of `hits` that answer `spec`, best first, without duplicates of the same concept,
/// period and value. With `calendar_year`, only the facts whose period overlaps that calendar year
/// the most are kept (a fiscal year ending in January covers most of the year before).
pub fn rank(mut hits: Vec<FactHit>, spec: &FactSpec, calendar_year: Option<i32>) -> Vec<FactHit> {
    hits.retain(|hit| {
        spec.concepts.contains(&hit.concept.as_str())
            && hit.number.is_some()
            && period_fits(&hit.period, spec.period_type)
            && unit_fits(hit.unit.as_deref(), spec.unit_kind)
    });
    if let Some(year) = calendar_year {
        let best_overlap = hits.iter().map(|hit| calendar_overlap_days(&hit.period, year)).max();
        hits.retain(|hit| Some(calendar_overlap_days(&hit.period, year)) == best_overlap);
    }
    sort_and_dedup(hits, spec)
}

/// Durations that count as a fiscal quarter (13 weeks, 12 to 14 in 52/53-week calendars), in days.
pub const QUARTER_DAYS: std::ops::RangeInclusive<i64> = 80..=100;

/// Like [`rank`] for one fiscal quarter ending on `quarter_end`: the quarter's own three months
/// for duration metrics (not the year-to-date column), the balance at `quarter_end` for instants.
pub fn rank_quarter(mut hits: Vec<FactHit>, spec: &FactSpec, quarter_end: Date) -> Vec<FactHit> {
    hits.retain(|hit| {
        let period_fits = match (spec.period_type, &hit.period) {
            (PeriodType::Duration, Period::Duration { end, .. }) => {
                *end == quarter_end && hit.period.days().is_some_and(|d| QUARTER_DAYS.contains(&d))
            }
            (PeriodType::Instant, Period::Instant(date)) => *date == quarter_end,
            _ => false,
        };
        spec.concepts.contains(&hit.concept.as_str())
            && hit.number.is_some()
            && period_fits
            && unit_fits(hit.unit.as_deref(), spec.unit_kind)
    });
    sort_and_dedup(hits, spec)
}

fn sort_and_dedup(mut hits: Vec<FactHit>, spec: &FactSpec) -> Vec<FactHit> {
    hits.sort_by_key(|hit| rank_key(hit, spec.concepts));
    let mut seen = Vec::new();
    hits.retain(|hit| {
        let key = (hit.concept.clone(), hit.period, hit.value.clone());
        let new = !seen.contains(&key);
        if new {
            seen.push(key);
        }
        new
    });
    hits
}

/// Lower sorts first: the preferred concept, then the filing of that very fiscal year (not a later
/// filing's comparative column), annual reports, filings over companyfacts.
fn rank_key(hit: &FactHit, concepts: &[&str]) -> (usize, bool, bool, bool, String) {
    let concept_rank = concepts.iter().position(|c| *c == hit.concept).unwrap_or(usize::MAX);
    let comparative = hit.fiscal_year != hit.period_fiscal_year;
    let not_annual = !matches!(hit.form.as_deref(), Some("10-K" | "10-K/A" | "20-F" | "40-F"));
    let from_companyfacts = hit.source.ends_with(".json");
    (concept_rank, comparative, not_annual, from_companyfacts, hit.filing_id.clone())
}

/// A full-year duration for duration metrics, any instant for instant metrics.
pub fn period_fits(period: &Period, period_type: PeriodType) -> bool {
    match (period_type, period) {
        (PeriodType::Duration, Period::Duration { .. }) => {
            period.days().is_some_and(|d| YEAR_DAYS.contains(&d))
        }
        (PeriodType::Instant, Period::Instant(_)) => true,
        _ => false,
    }
}

/// Whether a unit's display name (`USD`, `USD/shares`, `shares`) is of the wanted kind.
pub fn unit_fits(unit: Option<&str>, kind: UnitKind) -> bool {
    let Some(unit) = unit else { return false };
    match kind {
        UnitKind::Monetary => !unit.contains('/') && unit != "shares" && unit != "pure",
        UnitKind::PerShare => unit.ends_with("/shares"),
        UnitKind::Shares => unit == "shares",
    }
}

/// Days of `period` that fall in calendar `year` (instants count 1 when inside it).
pub fn calendar_overlap_days(period: &Period, year: i32) -> i64 {
    let (Some(first), Some(last)) = (Date::new(year, 1, 1), Date::new(year, 12, 31)) else { return 0 };
    let (Some(start), Some(end)) = (period.start(), period.end()) else { return 0 };
    let from = start.max(first).days_since_epoch();
    let to = end.min(last).days_since_epoch();
    (to - from + 1).max(0)
}

/// The prompt lines of retrieved facts: concept and value as the fact model holds it, no residue.
pub fn retrieved_lines(hits: &[FactHit]) -> Vec<ContextLine> {
    hits.iter()
        .map(|hit| ContextLine {
            concept: hit.concept.clone(),
            value: hit.value.clone(),
            residue: String::new(),
        })
        .collect()
}

/// The question in FinLoRA's value-question shape, as the agent asks it about a metric.
pub fn metric_value_question(entity: &str, metric: Metric, year: i32) -> String {
    format!(
        "What is the value of {entity}'s {} for the Fiscal Year ending in FY {year}?",
        metric.label().to_lowercase()
    )
}

/// [`metric_value_question`] about one fiscal quarter (`Q3` of the fiscal year ending in `year`).
pub fn metric_quarter_question(entity: &str, metric: Metric, year: i32, quarter: u8) -> String {
    format!(
        "What is the value of {entity}'s {} for Q{quarter} of the Fiscal Year ending in FY {year}?",
        metric.label().to_lowercase()
    )
}

/// The dimensionless facts of one filing as the index would return them for `fiscal_year`
/// (the filing's own fiscal year of each period), so [`rank`] sees what `agent ask` sees.
pub fn filing_hits(doc: &Document, info: &FilingInfo, filing_id: &str, fiscal_year: i32) -> Vec<FactHit> {
    let calendar = info.fiscal_calendar();
    doc.facts
        .iter()
        .filter_map(|fact| {
            let context = doc.context_of(fact).filter(|context| context.is_dimensionless())?;
            let period_fiscal_year = calendar.as_ref().and_then(|c| c.fiscal_year_of(&context.period));
            if period_fiscal_year != Some(fiscal_year) {
                return None;
            }
            let unit = doc.unit_of(fact).map(|unit| unit.display_name());
            Some(FactHit {
                score: 0.0,
                concept: fact.concept.prefixed(),
                label: None,
                value: fact.value.clone(),
                number: fact.value.as_deref().and_then(|value| value.parse().ok()),
                unit,
                decimals: fact.decimals.clone(),
                period: context.period,
                period_fiscal_year,
                context_id: context.id.clone(),
                fact_id: fact.id.clone(),
                dimensions: Vec::new(),
                ticker: info.ticker.clone(),
                entity_name: info.entity_name.clone(),
                fiscal_year: info.fiscal_year,
                form: info.form.clone(),
                accession: info.accession.clone(),
                source: doc.source.clone(),
                filing_id: filing_id.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duration(start: &str, end: &str) -> Period {
        match (start.parse(), end.parse()) {
            (Ok(start), Ok(end)) => Period::Duration { start, end },
            _ => Period::Forever,
        }
    }

    fn hit(concept: &str, value: &str, period: Period, fiscal_year: i32, form: &str) -> FactHit {
        FactHit {
            score: 0.0,
            concept: concept.into(),
            label: None,
            value: Some(value.into()),
            number: value.parse().ok(),
            unit: Some("USD".into()),
            decimals: None,
            period,
            period_fiscal_year: Some(2022),
            context_id: "c".into(),
            fact_id: None,
            dimensions: Vec::new(),
            ticker: Some("AAPL".into()),
            entity_name: None,
            fiscal_year: Some(fiscal_year),
            form: Some(form.into()),
            accession: None,
            source: "aapl.xml".into(),
            filing_id: format!("{fiscal_year}"),
        }
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
        assert!(unit_fits(Some("USD"), UnitKind::Monetary));
        assert!(!unit_fits(Some("USD/shares"), UnitKind::Monetary));
        assert!(unit_fits(Some("USD/shares"), UnitKind::PerShare));
        assert!(unit_fits(Some("shares"), UnitKind::Shares));
    }

    #[test]
    fn ranks_preferred_concept_and_own_filing_first_without_duplicates() {
        let year = duration("2021-09-26", "2022-09-24");
        let quarter = duration("2022-06-26", "2022-09-24");
        let hits = vec![
            hit("us-gaap:Revenues", "2", year, 2022, "10-K"),
            hit("us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax", "1", year, 2023, "10-K"),
            hit("us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax", "1", year, 2022, "10-K"),
            hit("us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax", "1", year, 2022, "10-K"),
            hit("us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax", "9", quarter, 2022, "10-K"),
        ];
        let ranked = rank(hits, &FactSpec::of_metric(Metric::Revenue), None);
        let order: Vec<(&str, Option<i32>)> =
            ranked.iter().map(|hit| (hit.value.as_deref().unwrap_or(""), hit.fiscal_year)).collect();
        assert_eq!(order, [("1", Some(2022)), ("2", Some(2022))]);
    }

    #[test]
    fn quarter_ranking_keeps_the_quarter_not_the_year_to_date() {
        let end: Date = "2023-07-01".parse().unwrap();
        let hits = vec![
            hit("us-gaap:Revenues", "3", duration("2022-09-25", "2023-07-01"), 2023, "10-Q"),
            hit("us-gaap:Revenues", "1", duration("2023-04-02", "2023-07-01"), 2023, "10-Q"),
            hit("us-gaap:Revenues", "2", duration("2022-03-27", "2022-06-25"), 2023, "10-Q"),
        ];
        let ranked = rank_quarter(hits, &FactSpec::of_metric(Metric::Revenue), end);
        let values: Vec<&str> = ranked.iter().filter_map(|hit| hit.value.as_deref()).collect();
        assert_eq!(values, ["1"]);
    }
}
