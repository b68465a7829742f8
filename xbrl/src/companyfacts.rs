//! Reads SEC companyfacts JSON (`data.sec.gov/api/xbrl/companyfacts/CIK##########.json`) into a
//! [`Document`] whose contexts and units are synthesised from the facts' periods and unit keys.
//!
//! Companyfacts only carries dimensionless facts, so every synthesised context has no dimensions.
//! Context ids depend only on the period (`cf-D2021-09-26-2022-09-24`, `cf-I2022-09-24`) and unit
//! ids are the companyfacts unit keys (`USD`, `USD/shares`), so the same file always gives the same
//! document. Numbers are taken from the JSON text itself, never through `f64`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::date::Date;
use crate::error::{Error, Result};
use crate::model::{
    Context, Document, Entity, Fact, Issue, Location, Period, QName, SecFiling, SourceKind, Unit,
};

/// The SEC scheme of companyfacts entity identifiers.
pub const CIK_SCHEME: &str = "http://www.sec.gov/CIK";

/// Largest decimal exponent accepted in a JSON number; beyond it the value is reported as an issue.
const MAX_EXPONENT: i64 = 400;

/// One company's facts as served by the SEC companyfacts API.
#[derive(Debug, Clone, PartialEq)]
pub struct CompanyFacts {
    pub cik: u64,
    pub entity_name: String,
    /// `kind` is [`SourceKind::CompanyFacts`]; every fact carries its [`SecFiling`].
    pub document: Document,
}

/// Reads a companyfacts JSON file.
pub fn read_companyfacts(path: &Path) -> Result<(CompanyFacts, Vec<Issue>)> {
    let bytes = std::fs::read(path).map_err(|source| Error::io(path, source))?;
    parse_companyfacts(&path.display().to_string(), &bytes)
}

/// Parses companyfacts JSON; `source_name` names it in errors and becomes `Document::source`.
pub fn parse_companyfacts(source_name: &str, json: &[u8]) -> Result<(CompanyFacts, Vec<Issue>)> {
    let raw: RawCompanyFacts<'_> = serde_json::from_slice(json)
        .map_err(|err| Error::Json { source_name: source_name.to_string(), message: err.to_string() })?;
    let mut issues = Vec::new();
    let cik = raw.cik.as_u64().unwrap_or_else(|| {
        issues.push(issue(format!("cik {:?} is not a number", raw.cik)));
        0
    });
    let mut builder = Builder::new(source_name, cik);
    for (taxonomy, concepts) in &raw.facts {
        for (concept_name, concept) in concepts {
            let concept_qname =
                QName::new(taxonomy.as_str(), taxonomy_namespace(taxonomy), concept_name.as_str());
            for (unit_key, facts) in &concept.units {
                for raw_fact in facts {
                    if let Err(message) = builder.add_fact(&concept_qname, unit_key, raw_fact) {
                        issues.push(issue(format!("fact {concept_qname} ({unit_key}): {message}")));
                    }
                }
            }
        }
    }
    let company = CompanyFacts { cik, entity_name: raw.entity_name, document: builder.document };
    Ok((company, issues))
}

/// The namespace of a companyfacts taxonomy key. Companyfacts mixes facts from many taxonomy
/// years, so the version-less stem of the namespace is used (`QName::is_us_gaap` still holds).
pub fn taxonomy_namespace(taxonomy: &str) -> &'static str {
    match taxonomy {
        "us-gaap" => "http://fasb.org/us-gaap",
        "srt" => "http://fasb.org/srt",
        "dei" => "http://xbrl.sec.gov/dei",
        "invest" => "http://xbrl.sec.gov/invest",
        "ecd" => "http://xbrl.sec.gov/ecd",
        "ffd" => "http://xbrl.sec.gov/ffd",
        "ifrs-full" => "https://xbrl.ifrs.org/taxonomy/ifrs-full",
        _ => "",
    }
}

/// The context id companyfacts facts of `period` get.
pub fn context_id_for(period: &Period) -> String {
    match period {
        Period::Instant(date) => format!("cf-I{date}"),
        Period::Duration { start, end } => format!("cf-D{start}-{end}"),
        Period::Forever => "cf-forever".to_string(),
    }
}

/// The unit a companyfacts unit key stands for: `USD` -> `iso4217:USD`, `USD/shares` -> a divide,
/// `shares` and `pure` -> `xbrli:`; other keys (`Year`, `segment`) are kept as bare measures.
pub fn unit_for_key(key: &str) -> Unit {
    let measures = |part: &str| part.split('*').filter(|m| !m.is_empty()).map(measure_for).collect();
    let (numerator, denominator) = match key.split_once('/') {
        Some((num, den)) => (measures(num), measures(den)),
        None => (measures(key), Vec::new()),
    };
    Unit { id: key.to_string(), numerator, denominator }
}

fn measure_for(name: &str) -> String {
    let is_currency = name.len() == 3 && name.bytes().all(|b| b.is_ascii_uppercase());
    match name {
        "shares" | "pure" => format!("xbrli:{name}"),
        _ if is_currency => format!("iso4217:{name}"),
        _ => name.to_string(),
    }
}

/// The exact canonical decimal of a JSON number literal: no exponent, no trailing fractional zeros,
/// no `-0` (`3875393000000.0` -> `3875393000000`, `1.5e9` -> `1500000000`, `-0.50` -> `-0.5`).
pub fn canonical_decimal(literal: &str) -> Option<String> {
    let text = literal.trim();
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(pos) => (&text[..pos], text[pos + 1..].parse::<i64>().ok()?),
        None => (text, 0),
    };
    if exponent.abs() > MAX_EXPONENT {
        return None;
    }
    let mantissa = crate::transform::canonical_decimal(mantissa)?;
    Some(crate::transform::scale_decimal(&mantissa, i32::try_from(exponent).ok()?, false))
}

/// Accumulates facts and the contexts and units they need.
struct Builder {
    document: Document,
    entity: Entity,
}

impl Builder {
    fn new(source_name: &str, cik: u64) -> Self {
        let mut document = Document::new(source_name, SourceKind::CompanyFacts);
        for prefix in ["us-gaap", "srt", "dei", "invest", "ecd", "ffd", "ifrs-full"] {
            document.namespaces.insert(prefix.to_string(), taxonomy_namespace(prefix).to_string());
        }
        document.namespaces.insert("iso4217".to_string(), "http://www.xbrl.org/2003/iso4217".to_string());
        document.namespaces.insert("xbrli".to_string(), "http://www.xbrl.org/2003/instance".to_string());
        let entity = Entity { scheme: CIK_SCHEME.to_string(), identifier: format!("{cik:010}") };
        Self { document, entity }
    }

    fn add_fact(
        &mut self,
        concept: &QName,
        unit_key: &str,
        raw: &RawFact<'_>,
    ) -> std::result::Result<(), String> {
        let end = parse_date("end", raw.end.as_deref())?.ok_or("has no end date")?;
        let period = match parse_date("start", raw.start.as_deref())? {
            Some(start) => Period::Duration { start, end },
            None => Period::Instant(end),
        };
        let literal = raw.val.ok_or("has no val")?.get();
        let value =
            canonical_decimal(literal).ok_or_else(|| format!("val {literal} is not a decimal number"))?;
        let filed = parse_date("filed", raw.filed.as_deref())?;
        let accn = raw.accn.clone().ok_or("has no accn")?;

        let context_id = context_id_for(&period);
        if !self.document.contexts.contains_key(&context_id) {
            let context = Context {
                id: context_id.clone(),
                entity: self.entity.clone(),
                period,
                dimensions: Vec::new(),
            };
            self.document.contexts.insert(context_id.clone(), context);
        }
        if !self.document.units.contains_key(unit_key) {
            self.document.units.insert(unit_key.to_string(), unit_for_key(unit_key));
        }
        self.document.facts.push(Fact {
            concept: concept.clone(),
            value: Some(value),
            context_ref: context_id,
            unit_ref: Some(unit_key.to_string()),
            decimals: None,
            id: None,
            nil: false,
            location: Location::default(),
            sec: Some(SecFiling {
                accn,
                fy: raw.fy,
                fp: raw.fp.clone(),
                form: raw.form.clone().unwrap_or_default(),
                filed,
                frame: raw.frame.clone(),
            }),
        });
        Ok(())
    }
}

fn parse_date(field: &str, text: Option<&str>) -> std::result::Result<Option<Date>, String> {
    match text {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| format!("{field} {text:?} is not a date")),
    }
}

fn issue(message: String) -> Issue {
    Issue { line: 0, message }
}

#[derive(Deserialize)]
struct RawCompanyFacts<'a> {
    cik: RawCik,
    #[serde(rename = "entityName", default)]
    entity_name: String,
    #[serde(borrow, default)]
    facts: BTreeMap<String, BTreeMap<String, RawConcept<'a>>>,
}

/// Companyfacts writes the CIK as a number; tolerate the zero-padded string form too.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum RawCik {
    Number(u64),
    Text(String),
}

impl RawCik {
    fn as_u64(&self) -> Option<u64> {
        match self {
            RawCik::Number(n) => Some(*n),
            RawCik::Text(text) => text.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct RawConcept<'a> {
    #[serde(borrow, default)]
    units: BTreeMap<String, Vec<RawFact<'a>>>,
}

#[derive(Deserialize)]
struct RawFact<'a> {
    start: Option<String>,
    end: Option<String>,
    #[serde(borrow)]
    val: Option<&'a RawValue>,
    accn: Option<String>,
    fy: Option<i32>,
    fp: Option<String>,
    form: Option<String>,
    filed: Option<String>,
    frame: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_decimals() {
        let cases = [
            ("394328000000", "394328000000"),
            ("3875393000000.0", "3875393000000"),
            ("1.5e9", "1500000000"),
            ("1.5E+9", "1500000000"),
            ("-2722000000", "-2722000000"),
            ("6.11", "6.11"),
            ("0.00001", "0.00001"),
            ("1e-5", "0.00001"),
            ("12.5e-3", "0.0125"),
            ("-0.0", "0"),
            ("0", "0"),
            ("-0.50", "-0.5"),
            ("49.5958", "49.5958"),
            ("123456789012345678901234567890.10", "123456789012345678901234567890.1"),
        ];
        for (literal, expected) in cases {
            assert_eq!(canonical_decimal(literal).as_deref(), Some(expected), "{literal}");
        }
        for bad in ["", "-", "1.2.3", "abc", "\"5\"", "1e999999", "null"] {
            assert_eq!(canonical_decimal(bad), None, "{bad}");
        }
    }

    #[test]
    fn units_from_keys() {
        let per_share = unit_for_key("USD/shares");
        assert_eq!(per_share.numerator, ["iso4217:USD"]);
        assert_eq!(per_share.denominator, ["xbrli:shares"]);
        assert_eq!(per_share.display_name(), "USD/shares");
        assert_eq!(unit_for_key("pure").numerator, ["xbrli:pure"]);
        assert_eq!(unit_for_key("Year").numerator, ["Year"]);
    }

    #[test]
    fn parses_a_small_file() {
        let json = br#"{"cik": 320193, "entityName": "Apple Inc.", "facts": {"us-gaap": {
            "Revenues": {"label": "x", "units": {"USD": [
                {"start": "2021-09-26", "end": "2022-09-24", "val": 3.94328e11, "accn": "0000320193-22-000108",
                 "fy": 2022, "fp": "FY", "form": "10-K", "filed": "2022-10-28", "frame": "CY2022"},
                {"end": "2022-09-24", "val": 1, "accn": "a", "fy": null, "fp": null, "form": "10-K", "filed": "2022-10-28"},
                {"end": "not a date", "val": 1, "accn": "a", "form": "10-K"}
            ]}}}}}"#;
        let (facts, issues) = parse_companyfacts("test.json", json).unwrap();
        assert_eq!(facts.cik, 320193);
        assert_eq!(facts.document.kind, SourceKind::CompanyFacts);
        assert_eq!(facts.document.facts.len(), 2);
        assert_eq!(issues.len(), 1, "{issues:?}");
        let first = &facts.document.facts[0];
        assert_eq!(first.value.as_deref(), Some("394328000000"));
        assert_eq!(first.context_ref, "cf-D2021-09-26-2022-09-24");
        assert_eq!(first.concept.prefixed(), "us-gaap:Revenues");
        assert!(first.concept.is_us_gaap());
        assert_eq!(first.sec.as_ref().and_then(|sec| sec.frame.as_deref()), Some("CY2022"));
        assert_eq!(facts.document.facts[1].context_ref, "cf-I2022-09-24");
        let context = &facts.document.contexts["cf-I2022-09-24"];
        assert_eq!(context.entity.identifier, "0000320193");
    }

    #[test]
    fn malformed_json_names_the_source() {
        let err = parse_companyfacts("broken.json", b"{\"cik\": ").unwrap_err();
        assert!(err.to_string().contains("broken.json"), "{err}");
    }
}
