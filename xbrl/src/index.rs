//! The fact index: one tantivy document per fact, filtered by ticker, fiscal year and form, ranked
//! by BM25 over concept words and standard labels with exact concepts boosted.
//!
//! Writes are atomic: documents become visible only at [`FactIndex::commit`], and a new index
//! directory appears only once it holds a valid empty index.

mod document;
mod fields;
mod query;

use std::path::{Path, PathBuf};

use tantivy::collector::{Count, TopDocs};
use tantivy::query::TermQuery;
use tantivy::schema::IndexRecordOption;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::date::Date;
use crate::error::{Error, Result};
use crate::model::{Document, Period, QName};
use fields::{build_schema, Fields, KIND_FACT, KIND_FILING};
pub use query::FactQuery;

/// Memory the single indexing thread may use before it flushes a segment.
const WRITER_MEMORY_BYTES: usize = 50_000_000;
/// Hits fetched per requested hit, so ties in score can be broken by recency before truncating.
const CANDIDATES_PER_HIT: usize = 4;
const MIN_CANDIDATES: usize = 100;

/// Where a document came from; set by the caller (from `dei` facts or the file layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilingMeta {
    /// Unique per source filing (`AAPL/2022/aapl-20220924_htm.xml` or the accession number);
    /// indexing a document again under the same id replaces it.
    pub filing_id: String,
    pub ticker: Option<String>,
    pub entity_name: Option<String>,
    /// `dei:EntityCentralIndexKey` as written (zero-padded).
    pub cik: Option<String>,
    /// `dei:DocumentFiscalYearFocus`.
    pub fiscal_year: Option<i32>,
    /// `10-K`, `10-Q`...
    pub form: Option<String>,
    pub accession: Option<String>,
    /// The source file.
    pub source: String,
    /// `dei:DocumentPeriodEndDate`; with `fiscal_year` it places each fact's period in a fiscal year.
    pub fiscal_year_end: Option<Date>,
}

/// One fact found by [`FactIndex::search`].
#[derive(Debug, Clone, PartialEq)]
pub struct FactHit {
    pub score: f32,
    /// Prefixed concept (`us-gaap:Revenues`).
    pub concept: String,
    /// The standard label supplied when the fact was indexed.
    pub label: Option<String>,
    /// The value as the fact model holds it; `None` when nil.
    pub value: Option<String>,
    pub number: Option<f64>,
    /// Unit display name (`USD`, `USD/shares`).
    pub unit: Option<String>,
    pub decimals: Option<String>,
    pub period: Period,
    /// Fiscal year of the fact's period (see [`FilingMeta::fiscal_year_end`]).
    pub period_fiscal_year: Option<i32>,
    pub context_id: String,
    pub fact_id: Option<String>,
    /// `axis=member`, as [`crate::Dimension`] displays.
    pub dimensions: Vec<String>,
    pub ticker: Option<String>,
    pub entity_name: Option<String>,
    /// Fiscal year of the filing.
    pub fiscal_year: Option<i32>,
    pub form: Option<String>,
    pub accession: Option<String>,
    pub source: String,
    pub filing_id: String,
}

/// A fact index in a directory. Readers may share the directory; one writer at a time.
pub struct FactIndex {
    dir: PathBuf,
    index: Index,
    fields: Fields,
    reader: IndexReader,
    /// Opened on the first write; dropping it uncommitted discards the pending documents.
    writer: Option<IndexWriter<TantivyDocument>>,
}

impl FactIndex {
    /// Opens the index in `dir`, creating it when `dir` does not exist or is empty. A new index
    /// is built in a sibling `<dir>.tmp-<pid>` and renamed into place, so `dir` never holds half
    /// an index.
    pub fn create_or_open(dir: &Path) -> Result<Self> {
        if dir.join("meta.json").is_file() {
            return Self::open(dir);
        }
        let err = |message: String| Error::Index { path: dir.to_path_buf(), message };
        if dir.exists() {
            let mut entries = std::fs::read_dir(dir).map_err(|source| Error::io(dir, source))?;
            if entries.next().is_some() {
                return Err(err("directory is not empty and holds no fact index (no meta.json)".into()));
            }
            Index::create_in_dir(dir, build_schema()).map_err(|e| err(e.to_string()))?;
            return Self::open(dir);
        }
        let file_name = dir.file_name().ok_or_else(|| err("path has no directory name".into()))?;
        let tmp = dir.with_file_name(format!("{}.tmp-{}", file_name.to_string_lossy(), std::process::id()));
        if let Some(parent) = tmp.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::io(parent, source))?;
        }
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir(&tmp).map_err(|source| Error::io(&tmp, source))?;
        let created = Index::create_in_dir(&tmp, build_schema()).map_err(|e| err(e.to_string()));
        let renamed = created.and_then(|index| {
            drop(index);
            std::fs::rename(&tmp, dir).map_err(|source| Error::io(dir, source))
        });
        if let Err(rename_err) = renamed {
            let _ = std::fs::remove_dir_all(&tmp);
            // Another process may have created the index meanwhile; use it if so.
            if !dir.join("meta.json").is_file() {
                return Err(rename_err);
            }
        }
        Self::open(dir)
    }

    /// Opens an existing index; a missing, corrupt or foreign directory is an error naming it.
    pub fn open(dir: &Path) -> Result<Self> {
        let err = |message: String| Error::Index { path: dir.to_path_buf(), message };
        if !dir.join("meta.json").is_file() {
            return Err(err("no fact index here (meta.json missing)".into()));
        }
        let index = Index::open_in_dir(dir).map_err(|e| err(format!("cannot open: {e}")))?;
        let fields = Fields::resolve(&index.schema(), dir)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| err(format!("cannot read: {e}")))?;
        Ok(Self { dir: dir.to_path_buf(), index, fields, reader, writer: None })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stages every fact of `doc` (plus one filing record), replacing whatever was indexed under
    /// `meta.filing_id` before; nothing is visible until [`FactIndex::commit`]. Facts whose
    /// context is missing are skipped. Returns the number of facts staged.
    pub fn add_document(
        &mut self,
        meta: &FilingMeta,
        doc: &Document,
        labels: &dyn Fn(&QName) -> Option<String>,
    ) -> Result<usize> {
        let fields = self.fields;
        let dir = self.dir.clone();
        let writer = self.writer()?;
        let err = |e: tantivy::TantivyError| Error::Index { path: dir.clone(), message: e.to_string() };
        writer.delete_term(Term::from_field_text(fields.filing_id, &meta.filing_id));
        writer.add_document(document::filing_document(&fields, meta)).map_err(err)?;
        let mut n_facts = 0;
        for fact in &doc.facts {
            if let Some(fact_doc) = document::fact_document(&fields, meta, doc, fact, labels(&fact.concept)) {
                writer.add_document(fact_doc).map_err(err)?;
                n_facts += 1;
            }
        }
        Ok(n_facts)
    }

    /// Makes every staged document visible at once.
    pub fn commit(&mut self) -> Result<()> {
        let Some(writer) = self.writer.as_mut() else { return Ok(()) };
        writer.commit().map_err(|e| self.error(format!("commit failed: {e}")))?;
        self.reader.reload().map_err(|e| self.error(format!("cannot reload after commit: {e}")))
    }

    /// Committed facts matching `query`, best first; equal scores put the later period first.
    pub fn search(&self, query: &FactQuery) -> Result<Vec<FactHit>> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let tantivy_query =
            query::build(&self.index, &self.fields, query).map_err(|e| self.error(e.to_string()))?;
        let searcher = self.reader.searcher();
        let n_candidates = (query.limit * CANDIDATES_PER_HIT).max(MIN_CANDIDATES);
        let top = searcher
            .search(&tantivy_query, &TopDocs::with_limit(n_candidates))
            .map_err(|e| self.error(format!("search failed: {e}")))?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument =
                searcher.doc(address).map_err(|e| self.error(format!("cannot read a stored fact: {e}")))?;
            hits.push(document::read_hit(&self.fields, &doc, score));
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| b.period.end().cmp(&a.period.end())));
        hits.truncate(query.limit);
        Ok(hits)
    }

    /// The committed filings, ordered by ticker, fiscal year and filing id.
    pub fn filings(&self) -> Result<Vec<FilingMeta>> {
        let searcher = self.reader.searcher();
        let query = kind_query(&self.fields, KIND_FILING);
        let n_filings = searcher.search(&query, &Count).map_err(|e| self.error(e.to_string()))?;
        let top = searcher
            .search(&query, &TopDocs::with_limit(n_filings.max(1)))
            .map_err(|e| self.error(e.to_string()))?;
        let mut filings = Vec::with_capacity(top.len());
        for (_, address) in top {
            let doc: TantivyDocument = searcher.doc(address).map_err(|e| self.error(e.to_string()))?;
            filings.push(document::read_filing(&self.fields, &doc));
        }
        filings.sort_by(|a, b| {
            (&a.ticker, a.fiscal_year, &a.filing_id).cmp(&(&b.ticker, b.fiscal_year, &b.filing_id))
        });
        Ok(filings)
    }

    /// The number of committed facts.
    pub fn num_facts(&self) -> Result<usize> {
        let query = kind_query(&self.fields, KIND_FACT);
        self.reader.searcher().search(&query, &Count).map_err(|e| self.error(e.to_string()))
    }

    fn writer(&mut self) -> Result<&mut IndexWriter<TantivyDocument>> {
        let writer = match self.writer.take() {
            Some(writer) => writer,
            None => self
                .index
                .writer_with_num_threads(1, WRITER_MEMORY_BYTES)
                .map_err(|e| self.error(format!("cannot open a writer: {e}")))?,
        };
        Ok(self.writer.insert(writer))
    }

    fn error(&self, message: String) -> Error {
        Error::Index { path: self.dir.clone(), message }
    }
}

fn kind_query(fields: &Fields, kind: &str) -> TermQuery {
    TermQuery::new(Term::from_field_text(fields.doc_kind, kind), IndexRecordOption::Basic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Context, Entity, Fact, Location, SourceKind, Unit};

    #[test]
    fn numbers_and_period_ends_are_fast_columns() {
        let mut doc = Document::new("fixture.xml", SourceKind::Instance);
        let end: Date = "2022-09-24".parse().unwrap();
        let entity = Entity { scheme: "cik".into(), identifier: "1".into() };
        let context = Context { id: "c".into(), entity, period: Period::Instant(end), dimensions: vec![] };
        doc.contexts.insert("c".into(), context);
        let unit = Unit { id: "u".into(), numerator: vec!["iso4217:USD".into()], denominator: vec![] };
        doc.units.insert("u".into(), unit);
        for value in ["1.5", "not a number"] {
            doc.facts.push(Fact {
                concept: QName::new("us-gaap", "", "Assets"),
                value: Some(value.into()),
                context_ref: "c".into(),
                unit_ref: Some("u".into()),
                decimals: None,
                id: None,
                nil: false,
                location: Location::default(),
                sec: None,
            });
        }
        let tmp = tempfile::tempdir().unwrap();
        let mut index = FactIndex::create_or_open(&tmp.path().join("facts")).unwrap();
        let meta = FilingMeta {
            filing_id: "f".into(),
            ticker: None,
            entity_name: None,
            cik: None,
            fiscal_year: None,
            form: None,
            accession: None,
            source: "fixture.xml".into(),
            fiscal_year_end: None,
        };
        assert_eq!(index.add_document(&meta, &doc, &|_| None).unwrap(), 2);
        index.commit().unwrap();

        let searcher = index.reader.searcher();
        let segment = searcher.segment_reader(0);
        let numbers = segment.fast_fields().f64("number").unwrap();
        let values: Vec<f64> = (0..segment.max_doc()).flat_map(|doc| numbers.values_for_doc(doc)).collect();
        assert_eq!(values, [1.5], "one number; the unparsable value and the filing record have none");
        let ends = segment.fast_fields().date("period_end").unwrap();
        let days: Vec<i64> = (0..segment.max_doc())
            .flat_map(|doc| ends.values_for_doc(doc))
            .map(|d| d.into_timestamp_secs() / 86_400)
            .collect();
        assert_eq!(days, [end.days_since_epoch(), end.days_since_epoch()]);
    }
}
