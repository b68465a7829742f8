//! Instance and inline XBRL readers on small hand-written fixtures, plus sanity values from the
//! real Apple filings in the shared data folder.

mod common;
use common::shared_dir;

use xbrl::inline::parse_inline;
use xbrl::instance::{parse_instance, read_instance};
use xbrl::{Date, DimensionContainer, DimensionValue, Document, Error, Fact, Period};

fn instance(body: &str) -> String {
    format!(
        r##"<?xml version="1.0" encoding="utf-8"?>
<xbrl xmlns="http://www.xbrl.org/2003/instance" xmlns:gaap="http://fasb.org/us-gaap/2022"
      xmlns:iso="http://www.xbrl.org/2003/iso4217" xmlns:xbrldi="http://xbrl.org/2006/xbrldi"
      xmlns:link="http://www.xbrl.org/2003/linkbase" xmlns:xlink="http://www.w3.org/1999/xlink"
      xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:abc="http://abc.example/2022">
  <link:schemaRef xlink:type="simple" xlink:href="abc-2022.xsd"/>
  <context id="FY22">
    <entity><identifier scheme="http://www.sec.gov/CIK">0000000001</identifier></entity>
    <period><startDate>2021-09-26</startDate><endDate>2022-09-24</endDate></period>
  </context>
  <unit id="usd"><measure>iso:USD</measure></unit>
{body}
</xbrl>
"##
    )
}

fn parse_ok(xml: &str) -> (Document, Vec<xbrl::Issue>) {
    parse_instance("fixture.xml", xml.as_bytes()).unwrap_or_else(|err| panic!("fixture failed: {err}"))
}

fn facts_named<'a>(doc: &'a Document, local: &str) -> Vec<&'a Fact> {
    doc.facts.iter().filter(|fact| fact.concept.local == local).collect()
}

fn date(text: &str) -> Date {
    text.parse().unwrap()
}

#[test]
fn prefixes_resolve_through_namespaces() {
    let (doc, issues) = parse_ok(&instance(
        r##"<gaap:Revenues contextRef="FY22" unitRef="usd" decimals="-6" id="f1">394328000000.00</gaap:Revenues>
  <abc:Widgets contextRef="FY22">many</abc:Widgets>"##,
    ));
    assert!(issues.is_empty(), "{issues:?}");
    let revenue = facts_named(&doc, "Revenues")[0];
    assert_eq!(
        revenue.concept.prefixed(),
        "us-gaap:Revenues",
        "well-known namespaces get their usual prefix"
    );
    assert_eq!(revenue.concept.namespace, "http://fasb.org/us-gaap/2022");
    assert_eq!(revenue.value.as_deref(), Some("394328000000"));
    assert_eq!(revenue.decimals.as_deref(), Some("-6"));
    assert_eq!(revenue.location.line, 12);
    assert_eq!(facts_named(&doc, "Widgets")[0].concept.prefixed(), "abc:Widgets");
    assert_eq!(doc.units["usd"].numerator, ["iso4217:USD"]);
    assert_eq!(doc.namespaces.get("gaap").map(String::as_str), Some("http://fasb.org/us-gaap/2022"));
    assert_eq!(doc.namespaces.get("").map(String::as_str), Some("http://www.xbrl.org/2003/instance"));
    assert_eq!(doc.schema_refs, ["abc-2022.xsd"]);
}

#[test]
fn dimensions_in_segment_and_scenario_are_sorted_by_axis() {
    let (doc, issues) = parse_ok(&instance(
        r##"<context id="dims">
    <entity><identifier scheme="http://www.sec.gov/CIK">0000000001</identifier>
      <segment>
        <xbrldi:typedMember dimension="abc:ZoneAxis"><abc:Zone>North</abc:Zone></xbrldi:typedMember>
        <xbrldi:explicitMember dimension="gaap:StatementBusinessSegmentsAxis">abc:PhoneMember</xbrldi:explicitMember>
      </segment>
    </entity>
    <period><instant>2022-09-24</instant></period>
    <scenario><xbrldi:explicitMember dimension="abc:AAxis">gaap:ScenarioForecastMember</xbrldi:explicitMember></scenario>
  </context>"##,
    ));
    assert!(issues.is_empty(), "{issues:?}");
    let context = &doc.contexts["dims"];
    assert_eq!(context.period, Period::Instant(date("2022-09-24")));
    let axes: Vec<&str> = context.dimensions.iter().map(|d| d.axis.as_str()).collect();
    assert_eq!(axes, ["abc:AAxis", "abc:ZoneAxis", "us-gaap:StatementBusinessSegmentsAxis"]);
    assert_eq!(context.dimensions[0].container, DimensionContainer::Scenario);
    assert_eq!(
        context.dimensions[0].value,
        DimensionValue::Explicit("us-gaap:ScenarioForecastMember".into())
    );
    assert_eq!(context.dimensions[1].value, DimensionValue::Typed("<abc:Zone>North</abc:Zone>".into()));
    assert_eq!(context.dimensions[2].container, DimensionContainer::Segment);
    assert_eq!(context.dimensions[2].value, DimensionValue::Explicit("abc:PhoneMember".into()));
}

#[test]
fn divide_units_forever_periods_and_nil_facts() {
    let (doc, issues) = parse_ok(&instance(
        r##"<unit id="usdPerShare"><divide>
    <unitNumerator><measure>iso:USD</measure></unitNumerator>
    <unitDenominator><measure>shares</measure></unitDenominator>
  </divide></unit>
  <context id="always">
    <entity><identifier scheme="http://www.sec.gov/CIK">0000000001</identifier></entity>
    <period><forever/></period>
  </context>
  <gaap:EarningsPerShareBasic contextRef="always" unitRef="usdPerShare" decimals="2">6.110</gaap:EarningsPerShareBasic>
  <gaap:Revenues contextRef="FY22" unitRef="usd" xsi:nil="true"/>"##,
    ));
    assert!(issues.is_empty(), "{issues:?}");
    let unit = &doc.units["usdPerShare"];
    assert_eq!(
        (unit.numerator.as_slice(), unit.denominator.as_slice()),
        (&["iso4217:USD".to_string()][..], &["xbrli:shares".to_string()][..])
    );
    assert_eq!(unit.display_name(), "USD/shares");
    assert_eq!(doc.contexts["always"].period, Period::Forever);
    assert_eq!(facts_named(&doc, "EarningsPerShareBasic")[0].value.as_deref(), Some("6.11"));
    let nil = facts_named(&doc, "Revenues")[0];
    assert!(nil.nil);
    assert_eq!(nil.value, None);
}

#[test]
fn duplicates_are_kept_and_unknown_references_reported() {
    let (doc, issues) = parse_ok(&instance(
        r##"<gaap:Revenues contextRef="FY22" unitRef="usd" decimals="-6">100</gaap:Revenues>
  <gaap:Revenues contextRef="FY22" unitRef="usd" decimals="-3">100.0</gaap:Revenues>
  <gaap:Revenues contextRef="FY99" unitRef="eur">7</gaap:Revenues>"##,
    ));
    assert_eq!(facts_named(&doc, "Revenues").len(), 3);
    let messages: Vec<&str> = issues.iter().map(|issue| issue.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "fact us-gaap:Revenues refers to unknown context FY99",
            "fact us-gaap:Revenues refers to unknown unit eur"
        ]
    );
    assert_eq!(issues[0].line, 14);
}

#[test]
fn footnotes_link_to_fact_ids() {
    let (doc, issues) = parse_ok(&instance(
        r##"<gaap:Revenues contextRef="FY22" unitRef="usd" id="rev">5</gaap:Revenues>
  <gaap:Costs contextRef="FY22" unitRef="usd" id="cost">3</gaap:Costs>
  <link:footnoteLink xlink:type="extended" xlink:role="http://www.xbrl.org/2003/role/link">
    <link:loc xlink:type="locator" xlink:href="#rev" xlink:label="fact"/>
    <link:loc xlink:type="locator" xlink:href="#cost" xlink:label="fact"/>
    <link:footnote xlink:type="resource" xlink:label="fn1" id="fn-1" xml:lang="en-US">Includes <b>one-off</b> items.</link:footnote>
    <link:footnoteArc xlink:type="arc" xlink:from="fact" xlink:to="fn1"
      xlink:arcrole="http://www.xbrl.org/2003/arcrole/fact-footnote"/>
  </link:footnoteLink>"##,
    ));
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(doc.footnotes.len(), 1);
    let footnote = &doc.footnotes[0];
    assert_eq!((footnote.id.as_str(), footnote.lang.as_deref()), ("fn-1", Some("en-US")));
    assert_eq!(footnote.text, "Includes one-off items.");
    assert_eq!(footnote.fact_ids, ["rev", "cost"]);
}

#[test]
fn malformed_xml_names_the_line() {
    let xml = instance("<gaap:Revenues contextRef=\"FY22\" unitRef=\"usd\">5</gaap:Costs>");
    match parse_instance("broken.xml", xml.as_bytes()) {
        Err(Error::Xml { source_name, line, .. }) => {
            assert_eq!((source_name.as_str(), line), ("broken.xml", 12))
        }
        other => panic!("expected an XML error, got {other:?}"),
    }
    let err = parse_instance("bad-utf8.xml", b"<xbrl>\n\xff</xbrl>").unwrap_err();
    assert!(matches!(err, Error::Xml { line: 2, position: 7, .. }), "{err}");
}

#[test]
fn non_xbrl_root_is_the_wrong_document() {
    for xml in ["<html xmlns='http://www.w3.org/1999/xhtml'><body/></html>", "<xbrl/>", ""] {
        match parse_instance("page.xml", xml.as_bytes()) {
            Err(Error::WrongDocument { .. }) => {}
            other => panic!("{xml:?}: expected WrongDocument, got {other:?}"),
        }
    }
}

fn inline(body: &str) -> String {
    format!(
        r##"<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:ix="http://www.xbrl.org/2013/inlineXBRL"
      xmlns:xbrli="http://www.xbrl.org/2003/instance" xmlns:us-gaap="http://fasb.org/us-gaap/2022"
      xmlns:dei="http://xbrl.sec.gov/dei/2022" xmlns:iso4217="http://www.xbrl.org/2003/iso4217"
      xmlns:link="http://www.xbrl.org/2003/linkbase" xmlns:xlink="http://www.w3.org/1999/xlink"
      xmlns:ixt="http://www.xbrl.org/inlineXBRL/transformation/2020-02-12"
      xmlns:ixt-sec="http://www.sec.gov/inlineXBRL/transformation/2015-08-31"
      xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<body><div style="display:none"><ix:header>
  <ix:hidden><ix:nonNumeric name="dei:DocumentType" contextRef="FY22">10-K</ix:nonNumeric></ix:hidden>
  <ix:references><link:schemaRef xlink:type="simple" xlink:href="abc-2022.xsd"/></ix:references>
  <ix:resources>
    <xbrli:context id="FY22"><xbrli:entity><xbrli:identifier scheme="http://www.sec.gov/CIK">0000000001</xbrli:identifier></xbrli:entity>
      <xbrli:period><xbrli:startDate>2021-09-26</xbrli:startDate><xbrli:endDate>2022-09-24</xbrli:endDate></xbrli:period></xbrli:context>
    <xbrli:unit id="usd"><xbrli:measure>iso4217:USD</xbrli:measure></xbrli:unit>
  </ix:resources>
</ix:header></div>
{body}
</body></html>
"##
    )
}

fn parse_inline_ok(html: &str) -> (Document, Vec<xbrl::Issue>) {
    parse_inline("fixture.htm", html.as_bytes()).unwrap_or_else(|err| panic!("fixture failed: {err}"))
}

#[test]
fn inline_numbers_scale_sign_and_transforms() {
    let (doc, issues) = parse_inline_ok(&inline(
        r##"<table><tr>
  <td><ix:nonFraction name="us-gaap:NetIncomeLoss" contextRef="FY22" unitRef="usd" decimals="-3" scale="3" sign="-" format="ixt:num-dot-decimal">(1,234)</ix:nonFraction></td>
  <td><ix:nonFraction name="us-gaap:Goodwill" contextRef="FY22" unitRef="usd" decimals="INF" scale="6" format="ixt:fixed-zero">&#8212;</ix:nonFraction></td>
  <td>$&nbsp;<ix:nonFraction name="us-gaap:Revenues" contextRef="FY22" unitRef="usd" decimals="-6" scale="6" format="ixt:num-dot-decimal">394,328</ix:nonFraction></td>
  <td><ix:nonFraction name="us-gaap:Assets" contextRef="FY22" unitRef="usd" xsi:nil="true"/></td>
</tr></table>"##,
    ));
    assert!(issues.is_empty(), "{issues:?}");
    let value = |local: &str| facts_named(&doc, local)[0].value.clone();
    assert_eq!(value("NetIncomeLoss").as_deref(), Some("-1234000"), "the xbrlkit example");
    assert_eq!(value("Goodwill").as_deref(), Some("0"));
    assert_eq!(value("Revenues").as_deref(), Some("394328000000"));
    assert!(facts_named(&doc, "Assets")[0].nil);
    assert_eq!(value("Assets"), None);
    assert_eq!(doc.schema_refs, ["abc-2022.xsd"]);
    assert_eq!(doc.units["usd"].numerator, ["iso4217:USD"]);
}

#[test]
fn inline_hidden_facts_continuations_and_excludes() {
    let (doc, issues) = parse_inline_ok(&inline(
        r##"<p><ix:nonNumeric name="us-gaap:RiskTextBlock" contextRef="FY22" continuedAt="c1">Part one, <ix:exclude>page 7</ix:exclude>still one.</ix:nonNumeric></p>
<p>Not part of the fact.</p>
<ix:continuation id="c1" continuedAt="c2"> Part two</ix:continuation>
<ix:continuation id="c2">, part three with <ix:nonFraction name="us-gaap:Revenues" contextRef="FY22" unitRef="usd" decimals="0">5</ix:nonFraction> inside.</ix:continuation>"##,
    ));
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(facts_named(&doc, "DocumentType")[0].value.as_deref(), Some("10-K"), "hidden facts are read");
    assert_eq!(
        facts_named(&doc, "RiskTextBlock")[0].value.as_deref(),
        Some("Part one, still one. Part two, part three with 5 inside.")
    );
    assert_eq!(
        facts_named(&doc, "Revenues")[0].value.as_deref(),
        Some("5"),
        "facts nested in continuations count"
    );
}

#[test]
fn inline_nested_facts_broken_chains_and_footnotes() {
    let (doc, issues) = parse_inline_ok(&inline(
        r##"<ix:nonNumeric name="dei:DocumentPeriodEndDate" contextRef="FY22" format="ixt:date-monthname-day-year-en"><ix:nonNumeric name="dei:CurrentFiscalYearEndDate" contextRef="FY22" format="ixt:date-monthname-day-en">September&#160;24</ix:nonNumeric>, 2022</ix:nonNumeric>
<ix:nonNumeric name="us-gaap:PolicyTextBlock" contextRef="FY22" continuedAt="nowhere">Text</ix:nonNumeric>
<ix:nonFraction name="us-gaap:Revenues" contextRef="FY22" unitRef="usd" id="rev" format="ixt:num-dot-decimal">oops</ix:nonFraction>
<ix:footnote id="fn1" xml:lang="en-US">Restated.</ix:footnote>
<ix:relationship fromRefs="rev" toRefs="fn1" arcrole="http://www.xbrl.org/2003/arcrole/fact-footnote"/>"##,
    ));
    assert_eq!(facts_named(&doc, "DocumentPeriodEndDate")[0].value.as_deref(), Some("2022-09-24"));
    assert_eq!(facts_named(&doc, "CurrentFiscalYearEndDate")[0].value.as_deref(), Some("--09-24"));
    assert_eq!(facts_named(&doc, "PolicyTextBlock")[0].value.as_deref(), Some("Text"));
    assert_eq!(facts_named(&doc, "Revenues")[0].value.as_deref(), Some("oops"), "unreadable values are kept");
    let messages: Vec<&str> = issues.iter().map(|issue| issue.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].contains("continues at nowhere"), "{messages:?}");
    assert!(messages[1].contains("ixt:num-dot-decimal cannot read \"oops\""), "{messages:?}");
    assert_eq!(doc.footnotes[0].fact_ids, ["rev"]);
    assert_eq!(doc.footnotes[0].text, "Restated.");
}

#[test]
fn inline_rejects_plain_html() {
    let html = "<html xmlns='http://www.w3.org/1999/xhtml'><body><p>hi</p></body></html>";
    assert!(matches!(parse_inline("page.htm", html.as_bytes()), Err(Error::WrongDocument { .. })));
    let broken = inline("<p>unclosed");
    assert!(matches!(parse_inline("broken.htm", broken.as_bytes()), Err(Error::Xml { .. })));
}

fn revenue_values(doc: &Document, context_filter: impl Fn(&xbrl::Context) -> bool) -> Vec<String> {
    doc.facts
        .iter()
        .filter(|fact| {
            fact.concept.prefixed() == "us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax"
        })
        .filter(|fact| doc.context_of(fact).is_some_and(&context_filter))
        .filter_map(|fact| fact.value.clone())
        .collect()
}

#[test]
fn apple_revenue_from_real_instances() {
    let Some(shared) = shared_dir() else { return };
    let (doc_2022, _) = read_instance(&shared.join("xbrl/filings/AAPL/2022/aapl-20220924_htm.xml")).unwrap();
    let fy2022 = Period::Duration { start: date("2021-09-26"), end: date("2022-09-24") };
    let values = revenue_values(&doc_2022, |context| context.period == fy2022 && context.is_dimensionless());
    assert!(!values.is_empty());
    assert!(values.iter().all(|value| value == "394328000000"), "{values:?}");

    let (doc_2023, _) = read_instance(&shared.join("xbrl/filings/AAPL/2023/aapl-20230930_htm.xml")).unwrap();
    let values = revenue_values(&doc_2023, |context| context.id == "c-1");
    assert!(!values.is_empty());
    assert!(values.iter().all(|value| value == "383285000000"), "duplicates agree: {values:?}");
}
