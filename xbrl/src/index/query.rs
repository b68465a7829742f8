//! What a caller asks the fact index, and how that becomes a tantivy query.

use tantivy::query::{BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, TermQuery};
use tantivy::schema::{Facet, IndexRecordOption};
use tantivy::tokenizer::TokenStream;
use tantivy::{Index, Term};

use super::document::normalize_ticker;
use super::fields::{Fields, KIND_FACT};

/// How much an exact concept match outweighs one matching word.
const CONCEPT_BOOST: f32 = 4.0;
/// Score added to dimensionless facts, so consolidated totals rank ahead of their breakdowns.
const DIMENSIONLESS_BONUS: f32 = 0.5;
/// Score added to numeric facts: questions ask for values far more often than for policy text,
/// and a text block's short concept name (`RevenueRecognitionPolicyTextBlock`) would otherwise
/// outrank the value's longer one under BM25 length normalisation.
const NUMERIC_BONUS: f32 = 1.0;

/// A search over indexed facts. Filters (`ticker`, years, `form`, `dimensionless_only`) must all
/// hold; `text` and `concepts` rank the facts, and a fact must match at least one of them when
/// either is given.
#[derive(Debug, Clone, PartialEq)]
pub struct FactQuery {
    /// Free words: a metric phrase or label words (`revenue`, `net income`), matched (stemmed)
    /// against the concept's camelCase words and its standard label.
    pub text: String,
    /// Prefixed concepts (`us-gaap:Revenues`) to match exactly, boosted above word matches.
    pub concepts: Vec<String>,
    /// Ticker of the filing, case-insensitive.
    pub ticker: Option<String>,
    /// Fiscal year of the filing (`dei:DocumentFiscalYearFocus`).
    pub fiscal_year: Option<i32>,
    /// Fiscal year of the fact's period, which may be a comparative year of a later filing.
    pub period_fiscal_year: Option<i32>,
    /// Form of the filing, exact (`10-K`).
    pub form: Option<String>,
    pub dimensionless_only: bool,
    pub limit: usize,
}

impl Default for FactQuery {
    fn default() -> Self {
        Self {
            text: String::new(),
            concepts: Vec::new(),
            ticker: None,
            fiscal_year: None,
            period_fiscal_year: None,
            form: None,
            dimensionless_only: false,
            limit: 20,
        }
    }
}

impl FactQuery {
    /// A query for these words with no filters.
    pub fn text(text: impl Into<String>) -> Self {
        Self { text: text.into(), ..Self::default() }
    }
}

/// Filters as `Must` clauses, plus one `Must` clause of `Should` alternatives (words and exact
/// concepts) when the query has any, plus bonuses for numeric and for dimensionless facts.
pub(crate) fn build(index: &Index, fields: &Fields, query: &FactQuery) -> tantivy::Result<Box<dyn Query>> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> =
        vec![(Occur::Must, term_query(Term::from_field_text(fields.doc_kind, KIND_FACT)))];
    let facet = |path: [String; 2]| term_query(Term::from_facet(fields.facets, &Facet::from_path(path)));
    if let Some(ticker) = &query.ticker {
        clauses.push((Occur::Must, facet(["ticker".into(), normalize_ticker(ticker)])));
    }
    if let Some(year) = query.fiscal_year {
        clauses.push((Occur::Must, facet(["fy".into(), year.to_string()])));
    }
    if let Some(form) = &query.form {
        clauses.push((Occur::Must, facet(["form".into(), form.trim().to_string()])));
    }
    if let Some(year) = query.period_fiscal_year {
        clauses.push((
            Occur::Must,
            term_query(Term::from_field_i64(fields.period_fiscal_year, i64::from(year))),
        ));
    }
    let dimensionless = Term::from_field_bool(fields.has_dimensions, false);
    if query.dimensionless_only {
        clauses.push((Occur::Must, term_query(dimensionless)));
    } else {
        clauses.push((
            Occur::Should,
            Box::new(ConstScoreQuery::new(term_query(dimensionless), DIMENSIONLESS_BONUS)),
        ));
    }

    let numeric = term_query(Term::from_field_bool(fields.numeric, true));
    clauses.push((Occur::Should, Box::new(ConstScoreQuery::new(numeric, NUMERIC_BONUS))));

    let mut ranking: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for word in words(index, fields, &query.text)? {
        for field in [fields.concept_words, fields.label] {
            let term = Term::from_field_text(field, &word);
            ranking.push((Occur::Should, Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs))));
        }
    }
    for concept in &query.concepts {
        let exact = term_query(Term::from_field_text(fields.concept, concept.trim()));
        ranking.push((Occur::Should, Box::new(BoostQuery::new(exact, CONCEPT_BOOST))));
    }
    if !ranking.is_empty() {
        clauses.push((Occur::Must, Box::new(BooleanQuery::new(ranking))));
    }
    Ok(Box::new(BooleanQuery::new(clauses)))
}

/// The distinct terms the word fields' analyzer makes of `text`.
fn words(index: &Index, fields: &Fields, text: &str) -> tantivy::Result<Vec<String>> {
    let mut analyzer = index.tokenizer_for_field(fields.label)?;
    let mut stream = analyzer.token_stream(text);
    let mut words: Vec<String> = Vec::new();
    stream.process(&mut |token| {
        if !words.contains(&token.text) {
            words.push(token.text.clone());
        }
    });
    Ok(words)
}

fn term_query(term: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
}
