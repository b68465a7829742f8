//! Turns filing folders and companyfacts files into fact-index entries.
//!
//! Filings are identified by company, form and period end, so indexing the same filing again,
//! from any folder, replaces it. Companyfacts files are split by accession number, one index entry
//! per SEC filing, so each fact's fiscal year comes from the filing that reported it. Nothing is
//! committed unless every source was read: a bad file leaves the index as it was.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use taxonomy::Catalogue;
use xbrl::companyfacts::{read_companyfacts, CompanyFacts};
use xbrl::filing::{load_filing, FilingFiles, FilingInfo};
use xbrl::index::{FactIndex, FilingMeta};
use xbrl::linkbase::read_label_linkbase;
use xbrl::{Date, Document, QName};

/// Something to index: one filing, or one company's companyfacts JSON.
#[derive(Debug, Clone)]
pub enum Source {
    Filing(FilingFiles),
    CompanyFacts(PathBuf),
}

impl Source {
    pub fn path(&self) -> PathBuf {
        match self {
            Source::Filing(files) => files.primary_document().unwrap_or(&files.dir).to_path_buf(),
            Source::CompanyFacts(path) => path.clone(),
        }
    }
}

/// What one run indexed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexSummary {
    /// Index entries written (filings, plus one per accession of each companyfacts file).
    pub filings: usize,
    pub facts: usize,
    /// Quirks found while reading (facts with unknown contexts, unreadable values...).
    pub issues: usize,
}

/// Every filing and companyfacts file under `paths` (folders are walked recursively); filings
/// first, so companyfacts can take their tickers. Folders with only linkbases are skipped.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<Source>> {
    let mut filings = Vec::new();
    let mut companyfacts = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if metadata.is_dir() {
            walk(path, &mut filings, &mut companyfacts)?;
        } else if is_json(path) {
            companyfacts.push(path.clone());
        } else {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let found = FilingFiles::discover(dir)?;
            let filing = found
                .into_iter()
                .find(|f| f.instance.as_deref() == Some(path) || f.inline.as_deref() == Some(path));
            match filing {
                Some(filing) => filings.push(filing),
                None => anyhow::bail!(
                    "{} is neither an XBRL instance, an inline XBRL document nor a companyfacts JSON file",
                    path.display()
                ),
            }
        }
    }
    let mut sources: Vec<Source> = filings.into_iter().map(Source::Filing).collect();
    sources.extend(companyfacts.into_iter().map(Source::CompanyFacts));
    Ok(sources)
}

fn walk(dir: &Path, filings: &mut Vec<FilingFiles>, companyfacts: &mut Vec<PathBuf>) -> Result<()> {
    filings.extend(FilingFiles::discover(dir)?.into_iter().filter(|f| f.primary_document().is_some()));
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            walk(&entry, filings, companyfacts)?;
        } else if is_json(&entry) && is_companyfacts_name(&entry) {
            companyfacts.push(entry);
        }
    }
    Ok(())
}

fn is_json(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("json"))
}

/// SEC names companyfacts files `CIK##########.json`.
fn is_companyfacts_name(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|name| name.starts_with("CIK"))
}

/// Indexes `sources` into `index` and commits once, at the end. `progress` is called after each
/// source with the number of facts it contributed.
pub fn index_sources(
    index: &mut FactIndex,
    sources: &[Source],
    catalogue: Option<&Catalogue>,
    progress: &mut dyn FnMut(&Source, usize),
) -> Result<IndexSummary> {
    let mut summary = IndexSummary::default();
    let mut tickers_by_cik: HashMap<u64, String> = HashMap::new();
    for known in index.filings()? {
        if let (Some(ticker), Some(cik)) = (&known.ticker, known.cik.as_deref().and_then(parse_cik)) {
            tickers_by_cik.insert(cik, ticker.clone());
        }
    }
    for source in sources {
        let n_facts = match source {
            Source::Filing(files) => {
                let (document, info, issues) =
                    load_filing(files).with_context(|| format!("cannot index {}", files.dir.display()))?;
                summary.issues += issues.len();
                if let (Some(ticker), Some(cik)) = (&info.ticker, info.cik.as_deref().and_then(parse_cik)) {
                    tickers_by_cik.insert(cik, ticker.clone());
                }
                let labels = filing_labels(files, catalogue)?;
                let meta = filing_meta(&document, &info);
                summary.filings += 1;
                index.add_document(&meta, &document, &|concept| labels(concept))?
            }
            Source::CompanyFacts(path) => {
                let (company, issues) =
                    read_companyfacts(path).with_context(|| format!("cannot index {}", path.display()))?;
                summary.issues += issues.len();
                let ticker = tickers_by_cik.get(&company.cik).cloned();
                let labels = |concept: &QName| catalogue_label(catalogue, concept);
                let mut n_facts = 0;
                for (meta, document) in split_by_accession(&company, ticker, path) {
                    n_facts += index.add_document(&meta, &document, &labels)?;
                    summary.filings += 1;
                }
                n_facts
            }
        };
        summary.facts += n_facts;
        progress(source, n_facts);
    }
    index.commit()?;
    Ok(summary)
}

fn parse_cik(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// A filing is the same filing wherever its files lie: company, form and period end identify it.
fn filing_meta(document: &Document, info: &FilingInfo) -> FilingMeta {
    let company = info.cik.clone().or_else(|| info.ticker.clone()).unwrap_or_else(|| document.source.clone());
    let filing_id = match (&info.form, info.period_end) {
        (Some(form), Some(end)) => format!("{company}/{form}/{end}"),
        _ => document.source.clone(),
    };
    FilingMeta {
        filing_id,
        ticker: info.ticker.clone(),
        entity_name: info.entity_name.clone(),
        cik: info.cik.clone(),
        fiscal_year: info.fiscal_year,
        form: info.form.clone(),
        accession: info.accession.clone(),
        source: document.source.clone(),
        fiscal_year_end: info.period_end,
    }
}

/// Annual reports end on a fiscal year end; other forms end wherever their period does.
fn is_annual_form(form: Option<&str>) -> bool {
    matches!(form, Some("10-K" | "10-K/A" | "10-KT" | "20-F" | "40-F"))
}

/// Standard labels from the filing's own label linkbase, then from the catalogue.
fn filing_labels<'a>(
    files: &FilingFiles,
    catalogue: Option<&'a Catalogue>,
) -> Result<impl Fn(&QName) -> Option<String> + 'a> {
    let linkbase = match &files.label {
        Some(path) => Some(read_label_linkbase(path)?.0),
        None => None,
    };
    Ok(move |concept: &QName| {
        let prefixed = concept.prefixed();
        linkbase
            .as_ref()
            .and_then(|l| l.standard_label(&prefixed).map(str::to_string))
            .or_else(|| catalogue_label(catalogue, concept))
    })
}

fn catalogue_label(catalogue: Option<&Catalogue>, concept: &QName) -> Option<String> {
    catalogue?.get_prefixed(&concept.prefix, &concept.local).and_then(|c| c.standard_label.clone())
}

/// One index entry per accession number: the facts that filing reported, its fiscal year, and
/// its fiscal year end (the latest end of its year-long facts, for annual forms).
fn split_by_accession(
    company: &CompanyFacts,
    ticker: Option<String>,
    path: &Path,
) -> Vec<(FilingMeta, Document)> {
    let source = &company.document;
    let mut by_accession: BTreeMap<&str, Document> = BTreeMap::new();
    for fact in &source.facts {
        let Some(sec) = &fact.sec else { continue };
        let document = by_accession.entry(sec.accn.as_str()).or_insert_with(|| empty_like(source));
        document.facts.push(fact.clone());
    }
    by_accession
        .into_iter()
        .map(|(accession, document)| {
            let first_sec = document.facts.iter().find_map(|f| f.sec.as_ref());
            let form = first_sec.map(|s| s.form.clone());
            let fiscal_year = first_sec.and_then(|s| s.fy);
            let fiscal_year_end = latest_end(&document, is_annual_form(form.as_deref()));
            let meta = FilingMeta {
                filing_id: format!("companyfacts/{}/{}", company.cik, accession),
                ticker: ticker.clone(),
                entity_name: Some(company.entity_name.clone()),
                cik: Some(format!("{:010}", company.cik)),
                fiscal_year,
                form,
                accession: Some(accession.to_string()),
                source: path.display().to_string(),
                fiscal_year_end,
            };
            (meta, document)
        })
        .collect()
}

/// A document with `source`'s contexts, units and namespaces but no facts.
fn empty_like(source: &Document) -> Document {
    let mut document = Document::new(source.source.clone(), source.kind);
    document.contexts = source.contexts.clone();
    document.units = source.units.clone();
    document.namespaces = source.namespaces.clone();
    document
}

/// The latest duration end among a document's facts (among year-long periods only, for annual
/// reports, whose comparative balances may be dated later than the year end in rare restatements).
fn latest_end(document: &Document, year_long_only: bool) -> Option<Date> {
    document
        .facts
        .iter()
        .filter_map(|fact| document.context_of(fact))
        // Durations only: a 10-Q's cover-page instants (shares outstanding on the filing date)
        // fall after its period.
        .filter(|context| {
            context.period.days().is_some_and(|days| !year_long_only || (350..=380).contains(&days))
        })
        .filter_map(|context| context.period.end())
        .max()
}
