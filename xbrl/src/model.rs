//! The fact model every reader produces: facts, contexts, periods, units, footnotes.
//!
//! Instance documents, inline XBRL 10-Ks and SEC companyfacts JSON all land in a [`Document`], so
//! the index and the agent never care where a fact came from.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::date::Date;

/// A qualified name resolved through the document's namespace declarations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QName {
    /// The prefix as written in the document (`us-gaap`), or the conventional one for the namespace.
    pub prefix: String,
    /// The namespace URI the prefix resolved to (empty when the prefix was undeclared).
    pub namespace: String,
    /// The local name (`RevenueFromContractWithCustomerExcludingAssessedTax`).
    pub local: String,
}

impl QName {
    pub fn new(prefix: impl Into<String>, namespace: impl Into<String>, local: impl Into<String>) -> Self {
        Self { prefix: prefix.into(), namespace: namespace.into(), local: local.into() }
    }

    /// `prefix:local`, the form analysts and FinLoRA write (`us-gaap:Revenues`).
    pub fn prefixed(&self) -> String {
        if self.prefix.is_empty() {
            self.local.clone()
        } else {
            format!("{}:{}", self.prefix, self.local)
        }
    }

    /// True for concepts of the us-gaap taxonomy, whatever year's namespace declares it.
    pub fn is_us_gaap(&self) -> bool {
        self.namespace.contains("fasb.org/us-gaap") || (self.namespace.is_empty() && self.prefix == "us-gaap")
    }
}

impl fmt::Display for QName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.prefixed())
    }
}

/// The reporting entity of a context.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entity {
    /// Identifier scheme, `http://www.sec.gov/CIK` for SEC filers.
    pub scheme: String,
    /// The identifier itself (a zero-padded CIK for SEC filers).
    pub identifier: String,
}

/// When a fact holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Period {
    Instant(Date),
    /// `start` and `end` as written in the document (XBRL end dates are inclusive days).
    Duration {
        start: Date,
        end: Date,
    },
    Forever,
}

impl Period {
    /// The last day the period covers (the instant itself for instants).
    pub fn end(&self) -> Option<Date> {
        match self {
            Period::Instant(date) => Some(*date),
            Period::Duration { end, .. } => Some(*end),
            Period::Forever => None,
        }
    }

    pub fn start(&self) -> Option<Date> {
        match self {
            Period::Instant(date) => Some(*date),
            Period::Duration { start, .. } => Some(*start),
            Period::Forever => None,
        }
    }

    /// Length of a duration in days; `None` for instants and forever.
    pub fn days(&self) -> Option<i64> {
        match self {
            Period::Duration { start, end } => Some(end.days_since_epoch() - start.days_since_epoch()),
            _ => None,
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::Instant(date) => write!(f, "{date}"),
            Period::Duration { start, end } => write!(f, "{start}..{end}"),
            Period::Forever => f.write_str("forever"),
        }
    }
}

/// Where a dimension was declared inside the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DimensionContainer {
    Segment,
    Scenario,
}

/// The member of an explicit dimension (a QName) or the XML content of a typed one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DimensionValue {
    Explicit(String),
    Typed(String),
}

/// One `xbrldi:explicitMember` or `xbrldi:typedMember` of a context.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dimension {
    /// The axis as a prefixed QName (`us-gaap:StatementBusinessSegmentsAxis`).
    pub axis: String,
    pub value: DimensionValue,
    pub container: DimensionContainer,
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            DimensionValue::Explicit(member) => write!(f, "{}={}", self.axis, member),
            DimensionValue::Typed(content) => write!(f, "{}=\"{}\"", self.axis, content),
        }
    }
}

/// An `xbrli:context`: entity, period and dimensions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    pub id: String,
    pub entity: Entity,
    pub period: Period,
    /// Sorted by axis so two contexts with the same dimensions compare equal.
    pub dimensions: Vec<Dimension>,
}

impl Context {
    /// Consolidated totals are the facts without dimensions.
    pub fn is_dimensionless(&self) -> bool {
        self.dimensions.is_empty()
    }
}

/// An `xbrli:unit`: a product of measures, optionally divided by another (`USD/shares`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Unit {
    pub id: String,
    /// Measures as prefixed QNames (`iso4217:USD`, `xbrli:shares`).
    pub numerator: Vec<String>,
    /// Empty unless the unit is a `divide`.
    pub denominator: Vec<String>,
}

impl Unit {
    /// A short human form: `USD`, `shares`, `USD/shares`, `pure`.
    pub fn display_name(&self) -> String {
        let local = |measures: &[String]| {
            measures
                .iter()
                .map(|m| m.rsplit(':').next().unwrap_or(m).to_string())
                .collect::<Vec<_>>()
                .join("*")
        };
        if self.denominator.is_empty() {
            local(&self.numerator)
        } else {
            format!("{}/{}", local(&self.numerator), local(&self.denominator))
        }
    }
}

/// Where a fact sits in its source file, for error messages and provenance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// 1-based line of the element's start tag; 0 when unknown (companyfacts JSON).
    pub line: u32,
}

/// SEC filing metadata carried by companyfacts facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecFiling {
    /// Accession number, `0000320193-22-000108`.
    pub accn: String,
    /// Fiscal year of the filing that reported the fact (not necessarily of the fact's period).
    pub fy: Option<i32>,
    /// Fiscal period of that filing: `FY`, `Q1`..`Q4`.
    pub fp: Option<String>,
    /// Form type, `10-K`, `10-Q`, `8-K`...
    pub form: String,
    /// Date the filing was filed.
    pub filed: Option<Date>,
    /// SEC calendar frame the fact was assigned to (`CY2022`, `CY2022Q4I`), if any.
    pub frame: Option<String>,
}

/// One reported fact. Duplicates are kept as separate facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    pub concept: QName,
    /// The value as a string: for numeric facts the canonical decimal after inline XBRL scale and
    /// sign (`394328000000`, `-2722000000`, `6.11`); for text facts the text. `None` when nil.
    pub value: Option<String>,
    pub context_ref: String,
    /// Present for numeric facts.
    pub unit_ref: Option<String>,
    /// `decimals` as written (`-6`, `2`, `INF`); precision only, never applied to the value.
    pub decimals: Option<String>,
    pub id: Option<String>,
    pub nil: bool,
    pub location: Location,
    /// Set for facts read from SEC companyfacts JSON.
    pub sec: Option<SecFiling>,
}

impl Fact {
    pub fn is_numeric(&self) -> bool {
        self.unit_ref.is_some()
    }

    /// The numeric value, when the fact is numeric, not nil, and parses.
    pub fn number(&self) -> Option<f64> {
        if !self.is_numeric() {
            return None;
        }
        self.value.as_deref()?.parse().ok()
    }
}

/// A footnote attached to facts through a footnote link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Footnote {
    /// The footnote resource's label or id.
    pub id: String,
    pub lang: Option<String>,
    pub text: String,
    /// Ids of the facts the footnote is attached to.
    pub fact_ids: Vec<String>,
}

/// What kind of source a document was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SourceKind {
    Instance,
    Inline,
    CompanyFacts,
}

/// Everything read from one source file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// The file the document was read from, as given.
    pub source: String,
    pub kind: SourceKind,
    pub contexts: BTreeMap<String, Context>,
    pub units: BTreeMap<String, Unit>,
    /// In document order.
    pub facts: Vec<Fact>,
    pub footnotes: Vec<Footnote>,
    /// Prefix -> namespace URI declarations seen on the root element.
    pub namespaces: BTreeMap<String, String>,
    /// `link:schemaRef` hrefs.
    pub schema_refs: Vec<String>,
}

impl Document {
    pub fn new(source: impl Into<String>, kind: SourceKind) -> Self {
        Self {
            source: source.into(),
            kind,
            contexts: BTreeMap::new(),
            units: BTreeMap::new(),
            facts: Vec::new(),
            footnotes: Vec::new(),
            namespaces: BTreeMap::new(),
            schema_refs: Vec::new(),
        }
    }

    pub fn context_of(&self, fact: &Fact) -> Option<&Context> {
        self.contexts.get(&fact.context_ref)
    }

    pub fn unit_of(&self, fact: &Fact) -> Option<&Unit> {
        fact.unit_ref.as_ref().and_then(|id| self.units.get(id))
    }

    /// The first non-nil value of a concept given by local name in any namespace (`dei` facts).
    pub fn first_value(&self, local_name: &str) -> Option<&str> {
        self.facts
            .iter()
            .filter(|fact| fact.concept.local == local_name)
            .find_map(|fact| fact.value.as_deref())
    }
}

/// Something odd in a file that did not stop it from being read: a fact whose context is missing,
/// a value a transform could not read, an unknown element. Quirks come back as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    pub line: u32,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}
