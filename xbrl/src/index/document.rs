//! Converting facts and filing metadata to tantivy documents and stored documents back to hits.

use tantivy::schema::{Facet, Field, Value};
use tantivy::{DateTime, TantivyDocument};

use super::fields::{camel_case_words, Fields, KIND_FACT, KIND_FILING};
use super::{FactHit, FilingMeta};
use crate::date::Date;
use crate::model::{Document, Fact, Period};

const SECONDS_PER_DAY: i64 = 86_400;
const DAYS_PER_YEAR: f64 = 365.2425;

/// The document of one fact, or `None` when its context is missing (the reader already reported
/// that as an issue; a fact without a period cannot answer a question).
pub(crate) fn fact_document(
    fields: &Fields,
    meta: &FilingMeta,
    doc: &Document,
    fact: &Fact,
    label: Option<String>,
) -> Option<TantivyDocument> {
    let context = doc.context_of(fact)?;
    let mut out = filing_fields(fields, meta, KIND_FACT);
    out.add_text(fields.concept, fact.concept.prefixed());
    out.add_text(fields.concept_words, camel_case_words(&fact.concept.local));
    if let Some(label) = label {
        out.add_text(fields.label, label);
    }
    if let Some(value) = &fact.value {
        out.add_text(fields.value, value);
    }
    out.add_bool(fields.numeric, fact.is_numeric());
    if let Some(number) = fact.number() {
        out.add_f64(fields.number, number);
    }
    if let (Some(start), Some(end)) = (context.period.start(), context.period.end()) {
        out.add_date(fields.period_start, to_datetime(start));
        out.add_date(fields.period_end, to_datetime(end));
    }
    out.add_bool(fields.instant, matches!(context.period, Period::Instant(_)));
    if let Some(year) = period_fiscal_year(meta, &context.period) {
        out.add_i64(fields.period_fiscal_year, i64::from(year));
    }
    for dimension in &context.dimensions {
        out.add_text(fields.dimensions, dimension.to_string());
    }
    out.add_bool(fields.has_dimensions, !context.dimensions.is_empty());
    let unit = doc.unit_of(fact).map(|unit| unit.display_name()).or_else(|| fact.unit_ref.clone());
    if let Some(unit) = unit {
        out.add_text(fields.unit, unit);
    }
    if let Some(decimals) = &fact.decimals {
        out.add_text(fields.decimals, decimals);
    }
    out.add_text(fields.context_id, &fact.context_ref);
    if let Some(id) = &fact.id {
        out.add_text(fields.fact_id, id);
    }
    Some(out)
}

/// The one document per filing from which [`super::FactIndex::filings`] reads what is indexed.
pub(crate) fn filing_document(fields: &Fields, meta: &FilingMeta) -> TantivyDocument {
    let mut out = filing_fields(fields, meta, KIND_FILING);
    if let Some(end) = meta.fiscal_year_end {
        out.add_text(fields.fiscal_year_end, end.to_string());
    }
    out
}

/// Fields every document of a filing carries: ids, facets and provenance.
fn filing_fields(fields: &Fields, meta: &FilingMeta, kind: &str) -> TantivyDocument {
    let mut out = TantivyDocument::new();
    out.add_text(fields.doc_kind, kind);
    out.add_text(fields.filing_id, &meta.filing_id);
    out.add_text(fields.source, &meta.source);
    if let Some(ticker) = &meta.ticker {
        let ticker = normalize_ticker(ticker);
        out.add_facet(fields.facets, Facet::from_path(["ticker", ticker.as_str()]));
        out.add_text(fields.ticker, ticker);
    }
    if let Some(year) = meta.fiscal_year {
        out.add_facet(fields.facets, Facet::from_path(["fy".to_string(), year.to_string()]));
        out.add_i64(fields.fiscal_year, i64::from(year));
    }
    if let Some(form) = &meta.form {
        out.add_facet(fields.facets, Facet::from_path(["form", form.as_str()]));
        out.add_text(fields.form, form);
    }
    if let Some(accession) = &meta.accession {
        out.add_text(fields.accession, accession);
    }
    if let Some(name) = &meta.entity_name {
        out.add_text(fields.entity_name, name);
    }
    if let Some(cik) = &meta.cik {
        out.add_text(fields.cik, cik);
    }
    out
}

pub(crate) fn normalize_ticker(ticker: &str) -> String {
    ticker.trim().to_ascii_uppercase()
}

/// The fiscal year a period belongs to: the filing's fiscal year shifted by the whole years between
/// the period's end and the filing's fiscal year end (AAPL's 2021-09-25 balance -> 2021 in the
/// FY2022 10-K). Without both, the calendar year of the period's end.
pub(crate) fn period_fiscal_year(meta: &FilingMeta, period: &Period) -> Option<i32> {
    let end = period.end()?;
    match (meta.fiscal_year, meta.fiscal_year_end) {
        (Some(year), Some(year_end)) => {
            let offset_days = end.days_since_epoch() - year_end.days_since_epoch();
            Some(year + (offset_days as f64 / DAYS_PER_YEAR).round() as i32)
        }
        _ => Some(end.year),
    }
}

pub(crate) fn read_hit(fields: &Fields, doc: &TantivyDocument, score: f32) -> FactHit {
    let start = date(doc, fields.period_start);
    let end = date(doc, fields.period_end);
    let period = match (start, end) {
        (_, Some(end)) if bool_of(doc, fields.instant) => Period::Instant(end),
        (Some(start), Some(end)) => Period::Duration { start, end },
        _ => Period::Forever,
    };
    FactHit {
        score,
        concept: text(doc, fields.concept).unwrap_or_default(),
        label: text(doc, fields.label),
        value: text(doc, fields.value),
        number: doc.get_first(fields.number).and_then(|value| value.as_f64()),
        unit: text(doc, fields.unit),
        decimals: text(doc, fields.decimals),
        period,
        period_fiscal_year: year(doc, fields.period_fiscal_year),
        context_id: text(doc, fields.context_id).unwrap_or_default(),
        fact_id: text(doc, fields.fact_id),
        dimensions: doc.get_all(fields.dimensions).filter_map(|v| v.as_str().map(str::to_string)).collect(),
        ticker: text(doc, fields.ticker),
        entity_name: text(doc, fields.entity_name),
        fiscal_year: year(doc, fields.fiscal_year),
        form: text(doc, fields.form),
        accession: text(doc, fields.accession),
        source: text(doc, fields.source).unwrap_or_default(),
        filing_id: text(doc, fields.filing_id).unwrap_or_default(),
    }
}

pub(crate) fn read_filing(fields: &Fields, doc: &TantivyDocument) -> FilingMeta {
    FilingMeta {
        filing_id: text(doc, fields.filing_id).unwrap_or_default(),
        ticker: text(doc, fields.ticker),
        entity_name: text(doc, fields.entity_name),
        cik: text(doc, fields.cik),
        fiscal_year: year(doc, fields.fiscal_year),
        form: text(doc, fields.form),
        accession: text(doc, fields.accession),
        source: text(doc, fields.source).unwrap_or_default(),
        fiscal_year_end: text(doc, fields.fiscal_year_end).and_then(|end| end.parse().ok()),
    }
}

fn to_datetime(date: Date) -> DateTime {
    DateTime::from_timestamp_secs(date.days_since_epoch() * SECONDS_PER_DAY)
}

fn date(doc: &TantivyDocument, field: Field) -> Option<Date> {
    let seconds = doc.get_first(field)?.as_datetime()?.into_timestamp_secs();
    Some(Date::from_days_since_epoch(seconds.div_euclid(SECONDS_PER_DAY)))
}

fn text(doc: &TantivyDocument, field: Field) -> Option<String> {
    doc.get_first(field).and_then(|value| value.as_str().map(str::to_string))
}

fn year(doc: &TantivyDocument, field: Field) -> Option<i32> {
    doc.get_first(field).and_then(|value| value.as_i64()).and_then(|year| i32::try_from(year).ok())
}

fn bool_of(doc: &TantivyDocument, field: Field) -> bool {
    doc.get_first(field).and_then(|value| value.as_bool()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(fiscal_year: Option<i32>, fiscal_year_end: Option<&str>) -> FilingMeta {
        FilingMeta {
            filing_id: "f".into(),
            ticker: None,
            entity_name: None,
            cik: None,
            fiscal_year,
            form: None,
            accession: None,
            source: "f.xml".into(),
            fiscal_year_end: fiscal_year_end.and_then(|end| end.parse().ok()),
        }
    }

    fn instant(text: &str) -> Period {
        Period::Instant(text.parse().unwrap())
    }

    #[test]
    fn fiscal_year_of_periods() {
        let aapl = meta(Some(2022), Some("2022-09-24"));
        assert_eq!(period_fiscal_year(&aapl, &instant("2022-09-24")), Some(2022));
        assert_eq!(period_fiscal_year(&aapl, &instant("2021-09-25")), Some(2021));
        assert_eq!(period_fiscal_year(&aapl, &instant("2020-09-26")), Some(2020));
        let nvda = meta(Some(2024), Some("2024-01-28"));
        assert_eq!(period_fiscal_year(&nvda, &instant("2023-01-29")), Some(2023));
        assert_eq!(period_fiscal_year(&meta(None, None), &instant("2023-01-29")), Some(2023));
        assert_eq!(period_fiscal_year(&aapl, &Period::Forever), None);
    }
}
