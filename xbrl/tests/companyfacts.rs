//! Companyfacts parity with the filings themselves, plus filing discovery and `dei` metadata on the
//! shared AAPL and NVDA filings.

mod common;
use common::shared_dir;

use std::collections::HashMap;
use std::path::Path;

use xbrl::companyfacts::read_companyfacts;
use xbrl::filing::{load_filing, FilingFiles, FilingInfo};
use xbrl::{Document, Fact, Period};

/// Accession numbers from shared/xbrl/filings/SOURCE.md; NVDA/2023's was not recorded.
const ACCESSIONS: [(&str, &str); 7] = [
    ("AAPL/2019", "0000320193-19-000119"),
    ("AAPL/2020", "0000320193-20-000096"),
    ("AAPL/2021", "0000320193-21-000105"),
    ("AAPL/2022", "0000320193-22-000108"),
    ("AAPL/2023", "0000320193-23-000106"),
    ("AAPL/2023/10-Q_2023Q3", "0000320193-23-000077"),
    ("NVDA/2024", "0001045810-24-000029"),
];

/// Fact identity across sources: concept, period, unit measures (numerator/denominator, sorted).
type ParityKey = (String, Period, String);

fn unit_measures(doc: &Document, unit_ref: &str) -> Option<String> {
    let unit = doc.units.get(unit_ref)?;
    let (mut numerator, mut denominator) = (unit.numerator.clone(), unit.denominator.clone());
    numerator.sort();
    denominator.sort();
    Some(format!("{}/{}", numerator.join("*"), denominator.join("*")))
}

/// Numeric, non-nil, dimensionless facts of `doc` with their parity keys.
fn dimensionless_numbers(doc: &Document) -> Vec<(ParityKey, &str, &Fact)> {
    doc.facts
        .iter()
        .filter(|fact| !fact.nil)
        .filter_map(|fact| {
            let context = doc.context_of(fact).filter(|c| c.is_dimensionless())?;
            let unit = unit_measures(doc, fact.unit_ref.as_deref()?)?;
            Some(((fact.concept.prefixed(), context.period, unit), fact.value.as_deref()?, fact))
        })
        .collect()
}

struct Parity {
    n_compared: usize,
    /// Facts equal to companyfacts only at their own precision (see [`agrees`]).
    n_rounded: usize,
    mismatches: Vec<String>,
}

/// A filing fact states its value to `decimals`: "$16.8 billion" (`decimals="-8"`) is the same
/// fact as companyfacts' 16758000000, which SEC took from the table at `decimals="-6"`. So the
/// values agree when equal, or when within half a unit of the filing fact's last stated digit.
fn agrees(filing_value: &str, decimals: Option<&str>, companyfacts_value: &str) -> Agreement {
    if filing_value == companyfacts_value {
        return Agreement::Exact;
    }
    let parsed =
        (filing_value.parse::<f64>(), companyfacts_value.parse::<f64>(), decimals.map(str::parse::<i32>));
    let (Ok(filing), Ok(companyfacts), Some(Ok(decimals))) = parsed else { return Agreement::No };
    let half_unit = 0.5 * 10f64.powi(-decimals);
    if (filing - companyfacts).abs() <= half_unit * (1.0 + 1e-9) {
        Agreement::AtPrecision
    } else {
        Agreement::No
    }
}

#[derive(PartialEq)]
enum Agreement {
    Exact,
    AtPrecision,
    No,
}

/// Compares the filing in `dir` with companyfacts: a companyfacts fact is the same fact when
/// concept, period and unit agree and it was reported by this filing (same accession when known,
/// else same form, fiscal year and fiscal period).
fn compare_filing(companyfacts: &Document, dir: &Path, accession: Option<&str>) -> Parity {
    let files = FilingFiles::discover(dir).unwrap();
    let files = files.iter().find(|f| f.primary_document().is_some()).unwrap();
    let (doc, info, _) = load_filing(files).unwrap_or_else(|err| panic!("{}: {err}", dir.display()));
    let reported_by_filing = |sec: &xbrl::SecFiling| match accession {
        Some(accession) => sec.accn == accession,
        None => {
            Some(sec.form.as_str()) == info.form.as_deref()
                && sec.fy == info.fiscal_year
                && sec.fp.as_deref() == info.fiscal_period.as_deref()
        }
    };
    let mut expected: HashMap<ParityKey, Vec<&str>> = HashMap::new();
    for (key, value, fact) in dimensionless_numbers(companyfacts) {
        if fact.sec.as_ref().is_some_and(reported_by_filing) {
            expected.entry(key).or_default().push(value);
        }
    }
    let mut parity = Parity { n_compared: 0, n_rounded: 0, mismatches: Vec::new() };
    for (key, value, fact) in dimensionless_numbers(&doc) {
        let Some(companyfacts_values) = expected.get(&key) else { continue };
        parity.n_compared += 1;
        let agreements: Vec<Agreement> =
            companyfacts_values.iter().map(|cf| agrees(value, fact.decimals.as_deref(), cf)).collect();
        if agreements.contains(&Agreement::Exact) {
            continue;
        }
        if agreements.contains(&Agreement::AtPrecision) {
            parity.n_rounded += 1;
        } else {
            parity.mismatches.push(format!(
                "{} {} {}: filing {value}, companyfacts {companyfacts_values:?}",
                key.0, key.1, key.2
            ));
        }
    }
    parity
}

#[test]
fn companyfacts_values_match_the_filings() {
    let Some(shared) = shared_dir() else { return };
    let filings = shared.join("xbrl/filings");
    let accession_of = |rel: &str| ACCESSIONS.iter().find(|(dir, _)| *dir == rel).map(|(_, accn)| *accn);
    let cases: [(&str, &str, &[&str]); 2] = [
        ("CIK0000320193.json", "AAPL", &["2019", "2020", "2021", "2022", "2023", "2023/10-Q_2023Q3"]),
        ("CIK0001045810.json", "NVDA", &["2023", "2024"]),
    ];
    let mut all_mismatches = Vec::new();
    for (file, ticker, years) in cases {
        let (companyfacts, issues) = read_companyfacts(&shared.join("xbrl/companyfacts").join(file)).unwrap();
        assert!(issues.is_empty(), "{file}: {issues:?}");
        // Only facts reported by one of our filings matter; pre-filter for speed.
        let mut relevant = companyfacts.document.clone();
        relevant.facts.retain(|f| f.sec.as_ref().is_some_and(|sec| sec.fy.is_some_and(|fy| fy >= 2019)));
        for year in years {
            let rel = format!("{ticker}/{year}");
            let parity = compare_filing(&relevant, &filings.join(&rel), accession_of(&rel));
            println!(
                "{rel}: {} facts compared, {} equal only at the filing's precision, {} mismatches",
                parity.n_compared,
                parity.n_rounded,
                parity.mismatches.len()
            );
            if rel == "AAPL/2022" {
                assert!(parity.n_compared > 100, "AAPL 2022: only {} facts compared", parity.n_compared);
            }
            assert!(parity.n_compared > 0, "{rel}: nothing compared");
            all_mismatches.extend(parity.mismatches.into_iter().map(|m| format!("{rel}: {m}")));
        }
    }
    assert!(all_mismatches.is_empty(), "{} mismatches:\n{}", all_mismatches.len(), all_mismatches.join("\n"));
}

#[test]
fn companyfacts_sanity_values() {
    let Some(shared) = shared_dir() else { return };
    let (aapl, _) = read_companyfacts(&shared.join("xbrl/companyfacts/CIK0000320193.json")).unwrap();
    assert_eq!((aapl.cik, aapl.entity_name.as_str()), (320193, "Apple Inc."));
    let revenue = aapl
        .document
        .facts
        .iter()
        .find(|f| {
            f.concept.prefixed() == "us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax"
                && f.context_ref == "cf-D2021-09-26-2022-09-24"
                && f.sec.as_ref().is_some_and(|sec| sec.frame.as_deref() == Some("CY2022"))
        })
        .unwrap();
    assert_eq!(revenue.value.as_deref(), Some("394328000000"));
    let eps = aapl.document.facts.iter().find(|f| f.unit_ref.as_deref() == Some("USD/shares")).unwrap();
    assert!(eps.value.as_deref().is_some_and(|v| v.parse::<f64>().is_ok()));
    let (nvda, issues) = read_companyfacts(&shared.join("xbrl/companyfacts/CIK0001045810.json")).unwrap();
    assert!(issues.is_empty(), "{issues:?}");
    let prefixes: std::collections::BTreeSet<&str> =
        nvda.document.facts.iter().map(|f| f.concept.prefix.as_str()).collect();
    assert!(prefixes.contains("srt") && prefixes.contains("invest"), "{prefixes:?}");
}

#[test]
fn filing_discovery_and_dei_metadata() {
    let Some(shared) = shared_dir() else { return };
    let dir = shared.join("xbrl/filings/AAPL/2022");
    let files = FilingFiles::discover(&dir).unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    let aapl = &files[0];
    assert_eq!(aapl.base_name, "aapl-20220924");
    assert_eq!(aapl.instance.as_deref(), Some(dir.join("aapl-20220924_htm.xml").as_path()));
    assert_eq!(aapl.inline.as_deref(), Some(dir.join("aapl-20220924.htm").as_path()));
    assert_eq!(aapl.primary_document(), aapl.instance.as_deref(), "the instance is preferred");
    for linkbase in [&aapl.schema, &aapl.calculation, &aapl.label, &aapl.definition, &aapl.presentation] {
        assert!(linkbase.is_some(), "{aapl:?}");
    }

    let (doc, info, _) = load_filing(aapl).unwrap();
    assert_eq!(info.ticker.as_deref(), Some("AAPL"));
    assert_eq!(info.entity_name.as_deref(), Some("Apple Inc."));
    assert_eq!(info.cik.as_deref(), Some("0000320193"));
    assert_eq!(info.fiscal_year, Some(2022));
    assert_eq!(info.fiscal_period.as_deref(), Some("FY"));
    assert_eq!(info.form.as_deref(), Some("10-K"));
    assert_eq!(info.period_end, "2022-09-24".parse().ok());
    let main = info.main_period(&doc).unwrap();
    assert_eq!(main.to_string(), "2021-09-26..2022-09-24");
    let calendar = info.fiscal_calendar().unwrap();
    let prior = doc.contexts.values().find(|c| c.period.to_string() == "2020-09-27..2021-09-25").unwrap();
    assert_eq!(calendar.fiscal_year_of(&prior.period), Some(2021));

    let quarter_dir = shared.join("xbrl/filings/AAPL/2023/10-Q_2023Q3");
    let quarter_files = FilingFiles::discover(&quarter_dir).unwrap();
    assert_eq!(quarter_files.len(), 1);
    assert!(quarter_files[0].inline.is_none() && quarter_files[0].instance.is_some());
    let (doc, info, _) = load_filing(&quarter_files[0]).unwrap();
    assert_eq!((info.form.as_deref(), info.fiscal_period.as_deref()), (Some("10-Q"), Some("Q3")));
    assert_eq!(info.fiscal_year, Some(2023));
    assert_eq!(info.main_period(&doc).unwrap().to_string(), "2023-04-02..2023-07-01");

    let linkbase_only = FilingFiles::discover(&shared.join("xbrl/filings/JNJ/2022")).unwrap();
    assert_eq!(linkbase_only.len(), 1);
    assert!(linkbase_only[0].primary_document().is_none() && linkbase_only[0].calculation.is_some());
    let err = load_filing(&linkbase_only[0]).unwrap_err();
    assert!(err.to_string().contains("JNJ/2022"), "{err}");
}

#[test]
fn inline_only_folders_load_from_the_htm() {
    let Some(shared) = shared_dir() else { return };
    for (rel, year, end) in [("AAPL/2019", 2019, "2019-09-28"), ("NVDA/2023", 2023, "2023-01-29")] {
        let files = FilingFiles::discover(&shared.join("xbrl/filings").join(rel)).unwrap();
        assert_eq!(files.len(), 1, "{rel}: {files:?}");
        assert!(files[0].instance.is_none() && files[0].inline.is_some(), "{rel}");
        let (doc, info, _) = load_filing(&files[0]).unwrap();
        assert_eq!(info.fiscal_year, Some(year), "{rel}");
        assert_eq!(info.period_end, end.parse().ok(), "{rel}");
        let main = info.main_period(&doc).unwrap();
        assert_eq!(main.end(), end.parse().ok(), "{rel}");
        let FilingInfo { form, .. } = info;
        assert_eq!(form.as_deref(), Some("10-K"), "{rel}");
    }
}
