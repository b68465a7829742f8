//! The fact index against hand-made documents (facets, re-indexing, long concept names,
//! dimensions, values, crash safety) and against the real AAPL FY2022 instance.

mod common;
use common::shared_dir;

use std::collections::BTreeMap;
use std::path::Path;

use xbrl::index::{FactIndex, FactQuery, FilingMeta};
use xbrl::{
    Context, Dimension, DimensionContainer, DimensionValue, Document, Entity, Fact, Location, Period,
};
use xbrl::{QName, SourceKind, Unit};

const US_GAAP: &str = "http://fasb.org/us-gaap/2022";
const LONG_CONCEPT: &str =
    "IncomeLossFromContinuingOperationsBeforeIncomeTaxesExtraordinaryItemsNoncontrollingInterest";

fn meta(filing_id: &str, ticker: &str, fiscal_year: i32, form: &str) -> FilingMeta {
    FilingMeta {
        filing_id: filing_id.to_string(),
        ticker: Some(ticker.to_string()),
        entity_name: Some(format!("{ticker} Inc.")),
        cik: None,
        fiscal_year: Some(fiscal_year),
        form: Some(form.to_string()),
        accession: Some(format!("0000-{fiscal_year}-{ticker}")),
        source: format!("{filing_id}.xml"),
        fiscal_year_end: format!("{fiscal_year}-12-31").parse().ok(),
    }
}

fn date(text: &str) -> xbrl::Date {
    text.parse().unwrap()
}

/// A document of `(concept local name, value, context id)` facts over three contexts: the fiscal
/// year `year`, its year-end instant, and the year split by a segment dimension.
fn document(year: i32, facts: &[(&str, &str, &str)]) -> Document {
    let mut doc = Document::new(format!("fixture-{year}.xml"), SourceKind::Instance);
    let entity = Entity { scheme: "http://www.sec.gov/CIK".into(), identifier: "0000000001".into() };
    let year_period =
        Period::Duration { start: date(&format!("{year}-01-01")), end: date(&format!("{year}-12-31")) };
    let segment = Dimension {
        axis: "us-gaap:StatementBusinessSegmentsAxis".into(),
        value: DimensionValue::Explicit("acme:AmericasSegmentMember".into()),
        container: DimensionContainer::Segment,
    };
    let contexts = [
        ("FY", year_period, vec![]),
        ("END", Period::Instant(date(&format!("{year}-12-31"))), vec![]),
        ("FY_AMERICAS", year_period, vec![segment]),
    ];
    for (id, period, dimensions) in contexts {
        let context = Context { id: id.into(), entity: entity.clone(), period, dimensions };
        doc.contexts.insert(id.into(), context);
    }
    doc.units.insert(
        "usd".into(),
        Unit { id: "usd".into(), numerator: vec!["iso4217:USD".into()], denominator: vec![] },
    );
    for (local, value, context_ref) in facts {
        doc.facts.push(Fact {
            concept: QName::new("us-gaap", US_GAAP, *local),
            value: Some(value.to_string()),
            context_ref: context_ref.to_string(),
            unit_ref: value.parse::<f64>().is_ok().then(|| "usd".to_string()),
            decimals: Some("-6".into()),
            id: None,
            nil: false,
            location: Location::default(),
            sec: None,
        });
    }
    doc
}

fn labels(concept: &QName) -> Option<String> {
    let label = match concept.local.as_str() {
        "Revenues" => "Revenues",
        "NetIncomeLoss" => "Net Income (Loss)",
        "Assets" => "Assets",
        _ => return None,
    };
    Some(label.to_string())
}

fn new_index() -> (tempfile::TempDir, FactIndex) {
    let tmp = tempfile::tempdir().unwrap();
    let index = FactIndex::create_or_open(&tmp.path().join("facts")).unwrap();
    (tmp, index)
}

fn standard_facts(revenue: &str) -> Vec<(&str, &str, &'static str)> {
    vec![
        ("Revenues", revenue, "FY"),
        ("Revenues", "600", "FY_AMERICAS"),
        ("NetIncomeLoss", "90", "FY"),
        ("Assets", "5000", "END"),
        ("DocumentType", "10-K", "FY"),
    ]
}

#[test]
fn facets_filter_by_ticker_year_and_form() {
    let (_tmp, mut index) = new_index();
    index
        .add_document(
            &meta("A/2022", "AAPL", 2022, "10-K"),
            &document(2022, &standard_facts("1000")),
            &labels,
        )
        .unwrap();
    index
        .add_document(
            &meta("A/2023", "AAPL", 2023, "10-K"),
            &document(2023, &standard_facts("1100")),
            &labels,
        )
        .unwrap();
    index
        .add_document(
            &meta("M/2022", "MSFT", 2022, "10-Q"),
            &document(2022, &standard_facts("2000")),
            &labels,
        )
        .unwrap();
    index.commit().unwrap();
    assert_eq!(index.num_facts().unwrap(), 15);

    let query = |ticker: &str, fiscal_year: Option<i32>, form: Option<&str>| FactQuery {
        ticker: Some(ticker.to_string()),
        fiscal_year,
        form: form.map(str::to_string),
        dimensionless_only: true,
        ..FactQuery::text("revenues")
    };
    let hits = index.search(&query("aapl", Some(2023), None)).unwrap();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0].value.as_deref(), Some("1100"));
    assert_eq!((hits[0].ticker.as_deref(), hits[0].fiscal_year), (Some("AAPL"), Some(2023)));
    assert_eq!(hits[0].label.as_deref(), Some("Revenues"));
    assert_eq!(hits[0].entity_name.as_deref(), Some("AAPL Inc."));
    assert_eq!(hits[0].source, "A/2023.xml");

    let aapl: Vec<_> =
        index.search(&query("AAPL", None, None)).unwrap().into_iter().map(|h| h.number).collect();
    assert_eq!(aapl, [Some(1100.0), Some(1000.0)], "later period first on equal scores");
    assert!(index.search(&query("MSFT", None, Some("10-K"))).unwrap().is_empty());
    assert_eq!(index.search(&query("MSFT", None, Some("10-Q"))).unwrap().len(), 1);
    assert!(index.search(&query("IBM", None, None)).unwrap().is_empty());

    let filings = index.filings().unwrap();
    let ids: Vec<&str> = filings.iter().map(|f| f.filing_id.as_str()).collect();
    assert_eq!(ids, ["A/2022", "A/2023", "M/2022"]);
    assert_eq!(filings[2], meta("M/2022", "MSFT", 2022, "10-Q"));
}

#[test]
fn reindexing_a_filing_replaces_it() {
    let (_tmp, mut index) = new_index();
    let filing = meta("A/2022", "AAPL", 2022, "10-K");
    index.add_document(&filing, &document(2022, &standard_facts("1000")), &labels).unwrap();
    index.commit().unwrap();
    // Twice more, once in the same batch as a second copy.
    index.add_document(&filing, &document(2022, &standard_facts("1001")), &labels).unwrap();
    let n_staged = index.add_document(&filing, &document(2022, &standard_facts("1002")), &labels).unwrap();
    assert_eq!(n_staged, 5);
    assert_eq!(index.num_facts().unwrap(), 5, "nothing visible before commit");
    index.commit().unwrap();
    assert_eq!(index.num_facts().unwrap(), 5);
    assert_eq!(index.filings().unwrap().len(), 1);
    let hits = index.search(&FactQuery { dimensionless_only: true, ..FactQuery::text("revenues") }).unwrap();
    assert_eq!(hits.iter().map(|h| h.value.as_deref()).collect::<Vec<_>>(), [Some("1002")]);
}

#[test]
fn long_concept_names_are_found() {
    assert!(LONG_CONCEPT.len() > 40, "tantivy's default tokenizer would drop it whole");
    let (_tmp, mut index) = new_index();
    let doc = document(2022, &[(LONG_CONCEPT, "123", "FY"), ("Revenues", "1000", "FY")]);
    index.add_document(&meta("A/2022", "AAPL", 2022, "10-K"), &doc, &labels).unwrap();
    index.commit().unwrap();

    let exact = FactQuery { concepts: vec![format!("us-gaap:{LONG_CONCEPT}")], ..FactQuery::default() };
    let hits = index.search(&exact).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].concept, format!("us-gaap:{LONG_CONCEPT}"));
    let by_words = index.search(&FactQuery::text("income before income taxes noncontrolling")).unwrap();
    assert_eq!(by_words.first().map(|h| h.number), Some(Some(123.0)));
}

#[test]
fn exact_concepts_outrank_word_matches() {
    let (_tmp, mut index) = new_index();
    let doc = document(
        2022,
        &[("Revenues", "1000", "FY"), ("RevenueFromContractWithCustomerExcludingAssessedTax", "900", "FY")],
    );
    index.add_document(&meta("A/2022", "AAPL", 2022, "10-K"), &doc, &labels).unwrap();
    index.commit().unwrap();
    let concepts = vec!["us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax".to_string()];
    let hits = index.search(&FactQuery { concepts, ..FactQuery::text("revenues") }).unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].number, Some(900.0));
}

#[test]
fn dimensions_are_kept_and_filtered() {
    let (_tmp, mut index) = new_index();
    index
        .add_document(
            &meta("A/2022", "AAPL", 2022, "10-K"),
            &document(2022, &standard_facts("1000")),
            &labels,
        )
        .unwrap();
    index.commit().unwrap();
    let all = index.search(&FactQuery::text("revenues")).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].number, Some(1000.0), "dimensionless totals rank first");
    let segment = &all[1];
    assert_eq!(segment.dimensions, ["us-gaap:StatementBusinessSegmentsAxis=acme:AmericasSegmentMember"]);
    assert_eq!(segment.context_id, "FY_AMERICAS");
    let totals =
        index.search(&FactQuery { dimensionless_only: true, ..FactQuery::text("revenues") }).unwrap();
    assert_eq!(totals.len(), 1);
    assert!(totals[0].dimensions.is_empty());
}

#[test]
fn values_periods_and_units_round_trip() {
    let (_tmp, mut index) = new_index();
    index
        .add_document(
            &meta("A/2022", "AAPL", 2022, "10-K"),
            &document(2022, &standard_facts("-2722000000")),
            &labels,
        )
        .unwrap();
    index.commit().unwrap();
    let revenue =
        &index.search(&FactQuery { dimensionless_only: true, ..FactQuery::text("revenue") }).unwrap()[0];
    assert_eq!(revenue.number, Some(-2_722_000_000.0));
    assert_eq!(revenue.value.as_deref(), Some("-2722000000"));
    assert_eq!(revenue.unit.as_deref(), Some("USD"));
    assert_eq!(revenue.decimals.as_deref(), Some("-6"));
    assert_eq!(revenue.period, Period::Duration { start: date("2022-01-01"), end: date("2022-12-31") });
    assert_eq!(revenue.period_fiscal_year, Some(2022));
    let assets = &index.search(&FactQuery::text("assets")).unwrap()[0];
    assert_eq!(assets.period, Period::Instant(date("2022-12-31")));
    let text_fact = &index.search(&FactQuery::text("document type")).unwrap()[0];
    assert_eq!(
        (text_fact.value.as_deref(), text_fact.number, text_fact.unit.as_deref()),
        (Some("10-K"), None, None)
    );
}

#[test]
fn period_fiscal_year_finds_comparatives() {
    let (_tmp, mut index) = new_index();
    let mut doc = document(2022, &standard_facts("1000"));
    let prior = Period::Duration { start: date("2021-01-01"), end: date("2021-12-31") };
    let entity = doc.contexts["FY"].entity.clone();
    doc.contexts.insert("PY".into(), Context { id: "PY".into(), entity, period: prior, dimensions: vec![] });
    let mut prior_revenue = doc.facts[0].clone();
    prior_revenue.context_ref = "PY".into();
    prior_revenue.value = Some("800".into());
    doc.facts.push(prior_revenue);
    index.add_document(&meta("A/2022", "AAPL", 2022, "10-K"), &doc, &labels).unwrap();
    index.commit().unwrap();
    let query = FactQuery { period_fiscal_year: Some(2021), ..FactQuery::text("revenues") };
    let hits = index.search(&query).unwrap();
    assert_eq!(hits.iter().map(|h| h.number).collect::<Vec<_>>(), [Some(800.0)]);
    assert_eq!(hits[0].fiscal_year, Some(2022), "the filing's year stays the filing's");
}

#[test]
fn uncommitted_documents_never_become_visible() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("facts");
    {
        let mut index = FactIndex::create_or_open(&dir).unwrap();
        index
            .add_document(
                &meta("A/2022", "AAPL", 2022, "10-K"),
                &document(2022, &standard_facts("1")),
                &labels,
            )
            .unwrap();
        assert_eq!(FactIndex::open(&dir).unwrap().num_facts().unwrap(), 0);
    }
    let reopened = FactIndex::open(&dir).unwrap();
    assert_eq!(reopened.num_facts().unwrap(), 0);
    assert!(reopened.filings().unwrap().is_empty());
}

#[test]
fn creation_leaves_no_temporary_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested/facts");
    FactIndex::create_or_open(&dir).unwrap();
    FactIndex::create_or_open(&dir).unwrap();
    let names: Vec<String> = std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    assert_eq!(names, ["facts"]);
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_eq!(FactIndex::create_or_open(&empty).unwrap().num_facts().unwrap(), 0);
}

#[test]
fn missing_corrupt_or_foreign_directories_are_errors_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-index");
    let err = FactIndex::open(&missing).err().unwrap().to_string();
    assert!(err.contains("no-such-index") && err.contains("meta.json"), "{err}");

    let corrupt = tmp.path().join("corrupt-index");
    std::fs::create_dir(&corrupt).unwrap();
    std::fs::write(corrupt.join("meta.json"), "{ not json").unwrap();
    let err = FactIndex::open(&corrupt).err().unwrap().to_string();
    assert!(err.contains("corrupt-index"), "{err}");

    let foreign = tmp.path().join("photos");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("cat.jpg"), "meow").unwrap();
    let err = FactIndex::create_or_open(&foreign).err().unwrap().to_string();
    assert!(err.contains("photos") && err.contains("not empty"), "{err}");
}

#[test]
fn aapl_2022_revenue_is_found_in_the_instance() {
    let Some(xbrl) = shared_dir().map(|dir| dir.join("xbrl")) else { return };
    let path = xbrl.join("filings/AAPL/2022/aapl-20220924_htm.xml");
    let (doc, _issues) = xbrl::instance::read_instance(&path).unwrap();
    assert_revenue_found(&path, &doc);
}

#[test]
fn aapl_2022_revenue_is_found_in_the_inline_10k() {
    let Some(xbrl) = shared_dir().map(|dir| dir.join("xbrl")) else { return };
    let path = xbrl.join("filings/AAPL/2022/aapl-20220924.htm");
    let (doc, _issues) = xbrl::inline::read_inline(&path).unwrap();
    assert_revenue_found(&path, &doc);
}

/// Indexes AAPL's FY2022 filing read from `path` and asks for "revenue" in FY2022.
fn assert_revenue_found(path: &Path, doc: &Document) {
    let (_tmp, mut index) = new_index();
    let meta = FilingMeta {
        filing_id: path.file_name().unwrap().to_string_lossy().into(),
        ticker: Some("AAPL".into()),
        entity_name: Some("Apple Inc.".into()),
        cik: Some("0000320193".into()),
        fiscal_year: Some(2022),
        form: Some("10-K".into()),
        accession: None,
        source: path.display().to_string(),
        fiscal_year_end: Some(date("2022-09-24")),
    };
    let label_map: BTreeMap<&str, &str> = [
        (
            "RevenueFromContractWithCustomerExcludingAssessedTax",
            "Revenue from Contract with Customer, Excluding Assessed Tax",
        ),
        ("NetIncomeLoss", "Net Income (Loss)"),
    ]
    .into();
    let labels = |concept: &QName| label_map.get(concept.local.as_str()).map(|label| label.to_string());
    let n_facts = index.add_document(&meta, doc, &labels).unwrap();
    index.commit().unwrap();
    assert!(n_facts > 1000, "{n_facts} facts");
    assert_eq!(index.num_facts().unwrap(), n_facts);

    let query = FactQuery {
        ticker: Some("AAPL".into()),
        fiscal_year: Some(2022),
        period_fiscal_year: Some(2022),
        dimensionless_only: true,
        limit: 5,
        ..FactQuery::text("revenue")
    };
    let hits = index.search(&query).unwrap();
    let top = hits.first().unwrap();
    assert_eq!(top.concept, "us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax", "{hits:#?}");
    assert_eq!(top.number, Some(394_328_000_000.0));
    assert_eq!(top.period, Period::Duration { start: date("2021-09-26"), end: date("2022-09-24") });
    assert_eq!(top.unit.as_deref(), Some("USD"));

    // Re-indexing the real filing does not duplicate it.
    index.add_document(&meta, doc, &labels).unwrap();
    index.commit().unwrap();
    assert_eq!(index.num_facts().unwrap(), n_facts);
}
