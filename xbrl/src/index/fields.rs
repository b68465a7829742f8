//! The fact index schema: one tantivy document per fact plus one per indexed filing.

use tantivy::schema::{
    FacetOptions, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STORED,
    STRING,
};

use crate::error::{Error, Result};

/// `doc_kind` of fact documents.
pub(crate) const KIND_FACT: &str = "fact";
/// `doc_kind` of the one document per filing that carries its [`super::FilingMeta`].
pub(crate) const KIND_FILING: &str = "filing";

/// Tokenizer of the word fields: lowercase, English stemming, so `revenues` finds `Revenue`.
const WORDS_TOKENIZER: &str = "en_stem";

/// Every field, resolved once against the schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub doc_kind: Field,
    pub filing_id: Field,
    /// Prefixed concept, exact (`us-gaap:Revenues`), never tokenized so long names survive.
    pub concept: Field,
    /// The concept's camelCase parts as words.
    pub concept_words: Field,
    /// The standard label the caller supplied.
    pub label: Field,
    pub value: Field,
    /// Whether the fact has a unit; text facts (policies, text blocks) do not.
    pub numeric: Field,
    pub number: Field,
    pub period_start: Field,
    pub period_end: Field,
    pub instant: Field,
    pub period_fiscal_year: Field,
    /// `/ticker/AAPL`, `/fy/2022`, `/form/10-K`.
    pub facets: Field,
    pub ticker: Field,
    pub fiscal_year: Field,
    pub fiscal_year_end: Field,
    pub form: Field,
    /// `axis=member`, one value per dimension.
    pub dimensions: Field,
    pub has_dimensions: Field,
    pub unit: Field,
    pub decimals: Field,
    pub context_id: Field,
    pub fact_id: Field,
    pub accession: Field,
    pub entity_name: Field,
    pub cik: Field,
    pub source: Field,
}

pub(crate) fn build_schema() -> Schema {
    let words = |stored: bool| {
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(WORDS_TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        let options = TextOptions::default().set_indexing_options(indexing);
        if stored {
            options.set_stored()
        } else {
            options
        }
    };
    let mut builder = Schema::builder();
    builder.add_text_field("doc_kind", STRING);
    builder.add_text_field("filing_id", STRING | STORED);
    builder.add_text_field("concept", STRING | STORED);
    builder.add_text_field("concept_words", words(false));
    builder.add_text_field("label", words(true));
    builder.add_text_field("value", STORED);
    builder.add_bool_field("numeric", INDEXED | STORED);
    builder.add_f64_field("number", FAST | STORED);
    builder.add_date_field("period_start", INDEXED | FAST | STORED);
    builder.add_date_field("period_end", INDEXED | FAST | STORED);
    builder.add_bool_field("instant", INDEXED | STORED);
    builder.add_i64_field("period_fiscal_year", INDEXED | FAST | STORED);
    builder.add_facet_field("facets", FacetOptions::default());
    builder.add_text_field("ticker", STRING | STORED);
    builder.add_i64_field("fiscal_year", INDEXED | STORED);
    builder.add_text_field("fiscal_year_end", STORED);
    builder.add_text_field("form", STRING | STORED);
    builder.add_text_field("dimensions", STRING | STORED);
    builder.add_bool_field("has_dimensions", INDEXED | STORED);
    builder.add_text_field("unit", STRING | STORED);
    builder.add_text_field("decimals", STORED);
    builder.add_text_field("context_id", STRING | STORED);
    builder.add_text_field("fact_id", STRING | STORED);
    builder.add_text_field("accession", STRING | STORED);
    builder.add_text_field("entity_name", STORED);
    builder.add_text_field("cik", STORED);
    builder.add_text_field("source", STORED);
    builder.build()
}

impl Fields {
    /// Resolves every field, failing on the first missing one (an index from another schema).
    pub(crate) fn resolve(schema: &Schema, dir: &std::path::Path) -> Result<Self> {
        let get = |name: &str| {
            schema.get_field(name).map_err(|_| Error::Index {
                path: dir.to_path_buf(),
                message: format!("index has no field {name}; it was built by another version, re-index it"),
            })
        };
        Ok(Self {
            doc_kind: get("doc_kind")?,
            filing_id: get("filing_id")?,
            concept: get("concept")?,
            concept_words: get("concept_words")?,
            label: get("label")?,
            value: get("value")?,
            numeric: get("numeric")?,
            number: get("number")?,
            period_start: get("period_start")?,
            period_end: get("period_end")?,
            instant: get("instant")?,
            period_fiscal_year: get("period_fiscal_year")?,
            facets: get("facets")?,
            ticker: get("ticker")?,
            fiscal_year: get("fiscal_year")?,
            fiscal_year_end: get("fiscal_year_end")?,
            form: get("form")?,
            dimensions: get("dimensions")?,
            has_dimensions: get("has_dimensions")?,
            unit: get("unit")?,
            decimals: get("decimals")?,
            context_id: get("context_id")?,
            fact_id: get("fact_id")?,
            accession: get("accession")?,
            entity_name: get("entity_name")?,
            cik: get("cik")?,
            source: get("source")?,
        })
    }
}

/// `RevenueFromContractWithCustomer` -> `Revenue From Contract With Customer`; acronyms and digits
/// stay whole (`EBITDAMargin2022` -> `EBITDA Margin 2022`).
pub(crate) fn camel_case_words(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut words = String::with_capacity(name.len() + 8);
    for (idx, &c) in chars.iter().enumerate() {
        if idx > 0 && c.is_alphanumeric() {
            let prev = chars[idx - 1];
            let next_is_lower = chars.get(idx + 1).is_some_and(|n| n.is_lowercase());
            let boundary = (c.is_uppercase() && (prev.is_lowercase() || prev.is_ascii_digit()))
                || (c.is_uppercase() && prev.is_uppercase() && next_is_lower)
                || (c.is_ascii_digit() && prev.is_alphabetic())
                || (c.is_alphabetic() && prev.is_ascii_digit());
            if boundary {
                words.push(' ');
            }
        }
        words.push(if c.is_alphanumeric() { c } else { ' ' });
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_camel_case() {
        assert_eq!(
            camel_case_words("RevenueFromContractWithCustomer"),
            "Revenue From Contract With Customer"
        );
        assert_eq!(camel_case_words("EBITDAMargin2022"), "EBITDA Margin 2022");
        assert_eq!(camel_case_words("A1.000NotesDue2022Member"), "A 1 000 Notes Due 2022 Member");
        assert_eq!(camel_case_words("Assets"), "Assets");
        assert_eq!(camel_case_words(""), "");
    }

    #[test]
    fn schema_resolves() {
        let schema = build_schema();
        assert!(Fields::resolve(&schema, std::path::Path::new("x")).is_ok());
        let missing = Fields::resolve(&Schema::builder().build(), std::path::Path::new("old-index"));
        let err = missing.unwrap_err().to_string();
        assert!(err.contains("old-index") && err.contains("doc_kind"), "{err}");
    }
}
