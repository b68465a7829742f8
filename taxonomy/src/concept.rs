//! One taxonomy element: its name, standard label, documentation and schema attributes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Whether a concept's facts hold at an instant (balances) or over a duration (flows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PeriodType {
    Instant,
    Duration,
}

impl PeriodType {
    /// Reads the `xbrli:periodType` attribute value.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "instant" => Some(PeriodType::Instant),
            "duration" => Some(PeriodType::Duration),
            _ => None,
        }
    }
}

/// The `xbrli:balance` of a monetary concept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Balance {
    Debit,
    Credit,
}

impl Balance {
    /// Reads the `xbrli:balance` attribute value.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "debit" => Some(Balance::Debit),
            "credit" => Some(Balance::Credit),
            _ => None,
        }
    }
}

/// A taxonomy concept. Every field but the name is optional because no single source carries
/// all of them: the compiled TSV has labels and documentation, element schemas have the types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Concept {
    /// The namespace prefix by convention (`us-gaap`, `dei`, `srt`, `aapl`).
    pub prefix: String,
    /// The local name (`Revenues`).
    pub name: String,
    /// The label of role `http://www.xbrl.org/2003/role/label`.
    pub standard_label: Option<String>,
    /// The label of role `http://www.xbrl.org/2003/role/documentation`.
    pub documentation: Option<String>,
    pub period_type: Option<PeriodType>,
    pub balance: Option<Balance>,
    /// The schema type as written (`xbrli:monetaryItemType`, `dtr-types:perShareItemType`).
    pub data_type: Option<String>,
    pub is_abstract: Option<bool>,
    /// Taxonomy versions the concept was seen in (from the compiled TSV), ascending.
    pub taxonomy_years: Vec<u16>,
}

impl Concept {
    /// A concept known only by name.
    pub fn new(prefix: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            name: name.into(),
            standard_label: None,
            documentation: None,
            period_type: None,
            balance: None,
            data_type: None,
            is_abstract: None,
            taxonomy_years: Vec::new(),
        }
    }

    /// `prefix:name`, as facts and FinLoRA answers write it.
    pub fn prefixed(&self) -> String {
        format!("{}:{}", self.prefix, self.name)
    }

    /// The standard label, or the name when no label is known.
    pub fn label(&self) -> &str {
        self.standard_label.as_deref().unwrap_or(&self.name)
    }

    /// Fills every field this concept lacks from `other` (same concept, another source).
    pub fn fill_from(&mut self, other: Concept) {
        fn fill<T>(slot: &mut Option<T>, value: Option<T>) {
            if slot.is_none() {
                *slot = value;
            }
        }
        fill(&mut self.standard_label, other.standard_label);
        fill(&mut self.documentation, other.documentation);
        fill(&mut self.period_type, other.period_type);
        fill(&mut self.balance, other.balance);
        fill(&mut self.data_type, other.data_type);
        fill(&mut self.is_abstract, other.is_abstract);
        for year in other.taxonomy_years {
            if let Err(pos) = self.taxonomy_years.binary_search(&year) {
                self.taxonomy_years.insert(pos, year);
            }
        }
    }
}

impl fmt::Display for Concept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.prefix, self.name)
    }
}

/// Lowercase alphanumeric words of a label or question: `Revenue from Contract with Customer,
/// Excluding Assessed Tax` -> `revenue from contract with customer excluding assessed tax`.
/// `&` stays inside a word so `R&D` is one word.
pub fn label_words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '&'))
        .filter(|word| !word.is_empty() && *word != "&")
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_of_labels() {
        assert_eq!(
            label_words("Revenue from Contract with Customer, Excluding Assessed Tax"),
            ["revenue", "from", "contract", "with", "customer", "excluding", "assessed", "tax"]
        );
        assert_eq!(label_words("R&D expense & other"), ["r&d", "expense", "other"]);
        assert!(label_words(" , ").is_empty());
    }

    #[test]
    fn fill_keeps_own_values() {
        let mut concept = Concept::new("us-gaap", "Assets");
        concept.standard_label = Some("Assets".into());
        concept.taxonomy_years = vec![2022];
        let mut other = Concept::new("us-gaap", "Assets");
        other.standard_label = Some("Total assets".into());
        other.period_type = Some(PeriodType::Instant);
        other.taxonomy_years = vec![2020, 2022, 2023];
        concept.fill_from(other);
        assert_eq!(concept.standard_label.as_deref(), Some("Assets"));
        assert_eq!(concept.period_type, Some(PeriodType::Instant));
        assert_eq!(concept.taxonomy_years, [2020, 2022, 2023]);
    }

    #[test]
    fn parses_schema_attributes() {
        assert_eq!(PeriodType::parse("duration"), Some(PeriodType::Duration));
        assert_eq!(Balance::parse("credit"), Some(Balance::Credit));
        assert_eq!(PeriodType::parse("sometimes"), None);
    }
}
