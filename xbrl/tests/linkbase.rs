//! Label and calculation linkbase readers and the calculation consistency check, on hand-made
//! fixtures and on the real AAPL FY2022 filing.

mod common;
use common::shared_dir;

use xbrl::calc::{check_calculations, check_calculations_report};
use xbrl::linkbase::{
    concept_from_href, label_role, parse_calculation_linkbase, parse_label_linkbase,
    read_calculation_linkbase, read_label_linkbase, CalculationEdge, CalculationLinkbase,
};
use xbrl::{Context, Document, Entity, Fact, Location, Period, QName, SourceKind, Unit};

const LINKBASE_OPEN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<link:linkbase xmlns:link="http://www.xbrl.org/2003/linkbase" xmlns:xlink="http://www.w3.org/1999/xlink">"#;

#[test]
fn label_linkbase_keeps_roles_and_languages() {
    let xml = format!(
        r#"{LINKBASE_OPEN}
  <link:labelLink xlink:type="extended" xlink:role="http://www.xbrl.org/2003/role/link">
    <link:loc xlink:type="locator" xlink:label="loc_rev" xlink:href="https://xbrl.fasb.org/us-gaap/2022/elts/us-gaap-2022.xsd#us-gaap_Revenues"/>
    <link:label xlink:type="resource" xlink:label="lab_rev" xlink:role="http://www.xbrl.org/2003/role/label" xml:lang="en-US">Revenues</link:label>
    <link:label xlink:type="resource" xlink:label="lab_rev" xlink:role="http://www.xbrl.org/2003/role/terseLabel" xml:lang="en-US">Net sales</link:label>
    <link:label xlink:type="resource" xlink:label="lab_rev" xlink:role="http://www.xbrl.org/2003/role/totalLabel" xml:lang="de">Umsatz gesamt</link:label>
    <link:labelArc xlink:type="arc" xlink:arcrole="http://www.xbrl.org/2003/arcrole/concept-label" xlink:from="loc_rev" xlink:to="lab_rev"/>
    <link:loc xlink:type="locator" xlink:label="loc_own" xlink:href="aapl-20220924.xsd#aapl_OtherIncome"/>
    <link:label xlink:type="resource" xlink:label="lab_own" xml:lang="en">Other income</link:label>
    <link:labelArc xlink:type="arc" xlink:from="loc_own" xlink:to="lab_own"/>
    <link:labelArc xlink:type="arc" xlink:from="loc_missing" xlink:to="lab_own"/>
  </link:labelLink>
</link:linkbase>"#
    );
    let (labels, issues) = parse_label_linkbase("fixture_lab.xml", &xml).unwrap();
    assert_eq!(labels.len(), 2);
    assert_eq!(labels.standard_label("us-gaap:Revenues"), Some("Revenues"));
    assert_eq!(labels.label("us-gaap:Revenues", label_role::TERSE, "en"), Some("Net sales"));
    assert_eq!(
        labels.label("us-gaap:Revenues", label_role::TOTAL, "en"),
        Some("Umsatz gesamt"),
        "any language"
    );
    assert_eq!(labels.label("us-gaap:Revenues", label_role::VERBOSE, "en"), None);
    assert_eq!(labels.standard_label("aapl:OtherIncome"), Some("Other income"), "role defaults to label");
    assert_eq!(issues.len(), 1, "the arc from an unknown locator: {issues:?}");
}

#[test]
fn calculation_linkbase_edges_and_prohibition() {
    let xml = format!(
        r#"{LINKBASE_OPEN}
  <link:calculationLink xlink:type="extended" xlink:role="http://example.com/role/IncomeStatement">
    <link:loc xlink:type="locator" xlink:label="gp" xlink:href="x.xsd#us-gaap_GrossProfit"/>
    <link:loc xlink:type="locator" xlink:label="rev" xlink:href="x.xsd#us-gaap_Revenues"/>
    <link:loc xlink:type="locator" xlink:label="cost" xlink:href="x.xsd#us-gaap_CostOfRevenue"/>
    <link:loc xlink:type="locator" xlink:label="other" xlink:href="x.xsd#ex_Other"/>
    <link:calculationArc xlink:type="arc" xlink:arcrole="http://www.xbrl.org/2003/arcrole/summation-item" xlink:from="gp" xlink:to="rev" weight="1.0" order="1"/>
    <link:calculationArc xlink:type="arc" xlink:arcrole="http://www.xbrl.org/2003/arcrole/summation-item" xlink:from="gp" xlink:to="cost" weight="-1.0" order="2"/>
    <link:calculationArc xlink:type="arc" xlink:arcrole="http://www.xbrl.org/2003/arcrole/summation-item" xlink:from="gp" xlink:to="cost" weight="-1.0" order="2"/>
    <link:calculationArc xlink:type="arc" xlink:arcrole="https://xbrl.org/2023/arcrole/summation-item" xlink:from="gp" xlink:to="other" weight="1" order="3"/>
    <link:calculationArc xlink:type="arc" xlink:arcrole="http://www.xbrl.org/2003/arcrole/summation-item" xlink:from="gp" xlink:to="other" weight="1" order="3" use="prohibited" priority="1"/>
    <link:calculationArc xlink:type="arc" xlink:arcrole="http://www.xbrl.org/2003/arcrole/summation-item" xlink:from="gp" xlink:to="rev" weight="1.0" order="1" use="prohibited" priority="-1"/>
    <link:calculationArc xlink:type="arc" xlink:arcrole="http://www.xbrl.org/2003/arcrole/summation-item" xlink:from="gp" xlink:to="rev" weight="bad"/>
  </link:calculationLink>
</link:linkbase>"#
    );
    let (calc, issues) = parse_calculation_linkbase("fixture_cal.xml", &xml).unwrap();
    let edges: Vec<(&str, &str, f64)> =
        calc.edges.iter().map(|e| (e.parent.as_str(), e.child.as_str(), e.weight)).collect();
    assert_eq!(
        edges,
        [("us-gaap:GrossProfit", "us-gaap:Revenues", 1.0), ("us-gaap:GrossProfit", "us-gaap:CostOfRevenue", -1.0)],
        "duplicate arc counted once; prohibited arc of higher priority removed its edge; lower priority did not"
    );
    assert_eq!(calc.roles(), ["http://example.com/role/IncomeStatement"]);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(issues[0].message.contains("weight"), "{}", issues[0]);
}

#[test]
fn hrefs_resolve_to_prefixed_names() {
    assert_eq!(concept_from_href("aapl-20220924.xsd#us-gaap_Revenues").as_deref(), Some("us-gaap:Revenues"));
    assert_eq!(
        concept_from_href("http://xbrl.sec.gov/dei/2022/dei-2022.xsd#dei_EntityRegistrantName").as_deref(),
        Some("dei:EntityRegistrantName")
    );
    assert_eq!(concept_from_href("x.xsd#ifrs-full_Revenue").as_deref(), Some("ifrs-full:Revenue"));
    assert_eq!(concept_from_href("x.xsd").as_deref(), None);
}

#[test]
fn errors_name_the_file() {
    let err = parse_calculation_linkbase("broken_cal.xml", "<link:linkbase").unwrap_err();
    assert!(err.to_string().contains("broken_cal.xml"), "{err}");
    let err = parse_label_linkbase("other_lab.xml", "<html/>").unwrap_err();
    assert!(err.to_string().contains("other_lab.xml"), "{err}");
    let err = read_label_linkbase(std::path::Path::new("/nonexistent/x_lab.xml")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/x_lab.xml"), "{err}");
}

fn fixture_document() -> Document {
    let mut doc = Document::new("fixture", SourceKind::Instance);
    let entity = Entity { scheme: "http://www.sec.gov/CIK".into(), identifier: "0000000001".into() };
    let period = |start: &str, end: &str| Period::Duration {
        start: start.parse().unwrap(),
        end: end.parse().unwrap(),
    };
    for (id, p) in
        [("fy22", period("2022-01-01", "2022-12-31")), ("fy21", period("2021-01-01", "2021-12-31"))]
    {
        doc.contexts.insert(
            id.into(),
            Context { id: id.into(), entity: entity.clone(), period: p, dimensions: vec![] },
        );
    }
    // An s-equal copy of fy21 under another id: its facts belong with fy21's.
    let copy = Context { id: "fy21-copy".into(), ..doc.contexts["fy21"].clone() };
    doc.contexts.insert(copy.id.clone(), copy);
    doc.units.insert(
        "usd".into(),
        Unit { id: "usd".into(), numerator: vec!["iso4217:USD".into()], denominator: vec![] },
    );
    let mut fact = |concept: &str, context: &str, value: &str, decimals: &str| {
        doc.facts.push(Fact {
            concept: QName::new("us-gaap", "http://fasb.org/us-gaap/2022", concept),
            value: Some(value.into()),
            context_ref: context.into(),
            unit_ref: Some("usd".into()),
            decimals: Some(decimals.into()),
            id: None,
            nil: false,
            location: Location::default(),
            sec: None,
        });
    };
    // FY2022 adds up once rounded to millions: 1000.4M - 600.2M = 400.2M, reported 400M at -6.
    fact("Revenues", "fy22", "1000400000", "-5");
    fact("CostOfRevenue", "fy22", "600200000", "-5");
    fact("GrossProfit", "fy22", "400000000", "-6");
    fact("Revenues", "fy22", "1000000000", "-6"); // consistent duplicate at lower precision
                                                  // FY2021 does not: 900 - 500 = 400 but 410 is reported.
    fact("Revenues", "fy21", "900000000", "-6");
    fact("CostOfRevenue", "fy21-copy", "500000000", "-6");
    fact("GrossProfit", "fy21", "410000000", "-6");
    doc
}

fn gross_profit_linkbase() -> CalculationLinkbase {
    let edge = |child: &str, weight: f64, order: f64| CalculationEdge {
        role: "http://example.com/role/IncomeStatement".into(),
        parent: "us-gaap:GrossProfit".into(),
        child: child.into(),
        weight,
        order,
    };
    CalculationLinkbase {
        edges: vec![edge("us-gaap:Revenues", 1.0, 1.0), edge("us-gaap:CostOfRevenue", -1.0, 2.0)],
    }
}

#[test]
fn calculation_check_finds_the_inconsistent_rollup() {
    let doc = fixture_document();
    let report = check_calculations_report(&doc, &gross_profit_linkbase());
    assert_eq!(report.n_checked, 2);
    assert!(report.duplicate_conflicts.is_empty(), "{:?}", report.duplicate_conflicts);
    assert_eq!(report.inconsistencies.len(), 1, "{:?}", report.inconsistencies);
    let found = &report.inconsistencies[0];
    assert_eq!(found.parent, "us-gaap:GrossProfit");
    assert_eq!(found.context_id, "fy21");
    assert_eq!(found.expected, "400000000");
    assert_eq!(found.reported, "410000000");
    assert_eq!(found.tolerance, "1000000");
    assert_eq!(found.children.len(), 2);
}

#[test]
fn conflicting_duplicates_are_reported_apart() {
    let mut doc = fixture_document();
    let mut conflicting = doc.facts[0].clone();
    conflicting.value = Some("1200000000".into());
    doc.facts.push(conflicting);
    let report = check_calculations_report(&doc, &gross_profit_linkbase());
    assert_eq!(report.duplicate_conflicts.len(), 1, "{:?}", report.duplicate_conflicts);
    let conflict = &report.duplicate_conflicts[0];
    assert_eq!((conflict.concept.as_str(), conflict.context_id.as_str()), ("us-gaap:Revenues", "fy22"));
    assert_eq!(conflict.values, ["1000400000", "1000000000", "1200000000"]);
    assert_eq!(report.n_checked, 1, "the FY2022 roll-up cannot be checked");
    assert_eq!(check_calculations(&doc, &gross_profit_linkbase()).len(), 1);
}

#[test]
fn aapl_2022_linkbases_and_calculation_check() {
    let Some(shared) = shared_dir() else { return };
    let dir = shared.join("xbrl/filings/AAPL/2022");
    let (labels, label_issues) = read_label_linkbase(&dir.join("aapl-20220924_lab.xml")).unwrap();
    assert!(label_issues.is_empty(), "{label_issues:?}");
    let revenue = "us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax";
    assert_eq!(
        labels.standard_label(revenue),
        Some("Revenue from Contract with Customer, Excluding Assessed Tax")
    );
    assert_eq!(labels.label(revenue, label_role::TERSE, "en-US"), Some("Net sales"));

    let (calc, calc_issues) = read_calculation_linkbase(&dir.join("aapl-20220924_cal.xml")).unwrap();
    assert!(calc_issues.is_empty(), "{calc_issues:?}");
    assert!(calc.edges.len() > 150 && calc.edges.len() <= 209, "{} edges from 209 arcs", calc.edges.len());
    assert_eq!(calc.roles().len(), 21);
    let operations = "http://www.apple.com/role/CONSOLIDATEDSTATEMENTSOFOPERATIONS";
    let gross_margin: Vec<(&str, f64)> = calc
        .children(operations, "us-gaap:GrossProfit")
        .iter()
        .map(|e| (e.child.as_str(), e.weight))
        .collect();
    assert_eq!(gross_margin, [(revenue, 1.0), ("us-gaap:CostOfGoodsAndServicesSold", -1.0)]);

    let (doc, _) = xbrl::instance::read_instance(&dir.join("aapl-20220924_htm.xml")).unwrap();
    let report = check_calculations_report(&doc, &calc);
    println!(
        "AAPL FY2022: {} roll-ups checked, {} inconsistent, {} conflicting duplicates",
        report.n_checked,
        report.inconsistencies.len(),
        report.duplicate_conflicts.len()
    );
    for inconsistency in &report.inconsistencies {
        println!("  {inconsistency}");
    }
    assert!(report.n_checked > 100, "only {} roll-ups checked", report.n_checked);
    assert!(report.inconsistencies.len() <= report.n_checked / 10, "{:#?}", report.inconsistencies);
}
