//! The filings questions are generated from: found under a folder tree, loaded with their labels,
//! identified by company and fiscal year. A filing that cannot be used comes back as a
//! [`SkippedFiling`] with the reason, never as an error.

use std::path::{Path, PathBuf};

use taxonomy::Catalogue;
use xbrl::linkbase::{read_label_linkbase, LabelLinkbase};
use xbrl::{load_filing, Document, FilingFiles, FilingInfo};

use super::written_text::WrittenText;
use crate::error::{Error, Result};

/// One loaded filing with what a question about it needs.
#[derive(Debug, Clone)]
pub struct SourceFiling {
    pub doc: Document,
    pub info: FilingInfo,
    /// The filing's own label linkbase (empty when it has none).
    pub labels: LabelLinkbase,
    pub written: WrittenText,
    /// The inline XBRL document, when the filing has one (its prose makes FiNER questions).
    pub inline: Option<PathBuf>,
    /// FinLoRA's form: `aapl-20230930/aapl-20230930_htm.xml`.
    pub doc_path: String,
    pub ticker: String,
    pub fiscal_year: i32,
    /// The registrant's name without a trailing period (`Apple Inc`), as FinLoRA's questions write it.
    pub company: String,
}

/// A filing left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFiling {
    pub path: PathBuf,
    pub reason: String,
}

impl SourceFiling {
    /// The label of a prefixed concept: the filing's standard label, else the catalogue's.
    pub fn label<'a>(&'a self, concept: &str, catalogue: Option<&'a Catalogue>) -> Option<&'a str> {
        self.labels.standard_label(concept).or_else(|| {
            let (prefix, local) = concept.split_once(':')?;
            catalogue?.get_prefixed(prefix, local)?.standard_label.as_deref()
        })
    }

    /// `(ticker, fiscal year)`: the unit splits are made of.
    pub fn key(&self) -> (String, i32) {
        (self.ticker.clone(), self.fiscal_year)
    }
}

/// Every filing with an instance or inline document in `root` or any folder below it, in path order.
pub fn discover_filings(root: &Path) -> Result<Vec<FilingFiles>> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| Error::io(&dir, source))?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::io(&dir, source))?;
            if entry.file_type().map_err(|source| Error::io(entry.path(), source))?.is_dir() {
                dirs.push(entry.path());
            }
        }
        let filings = FilingFiles::discover(&dir)?;
        found.extend(filings.into_iter().filter(|files| files.primary_document().is_some()));
    }
    found.sort_by(|a, b| a.primary_document().cmp(&b.primary_document()));
    Ok(found)
}

/// Loads one annual filing, or says why it cannot be used (quarterly reports cannot: every
/// question asks about a fiscal year).
pub fn load_source_filing(files: &FilingFiles) -> std::result::Result<SourceFiling, SkippedFiling> {
    let primary = files.primary_document().unwrap_or(&files.dir).to_path_buf();
    let skip = |reason: String| SkippedFiling { path: primary.clone(), reason };
    let (doc, info, _issues) = load_filing(files).map_err(|error| skip(error.to_string()))?;
    let labels = match &files.label {
        Some(path) => read_label_linkbase(path).map_err(|error| skip(error.to_string()))?.0,
        None => LabelLinkbase::default(),
    };
    let written = match &files.instance {
        Some(path) => WrittenText::read(path).map_err(|error| skip(error.to_string()))?,
        None => WrittenText::none(),
    };
    if let Some(period) = info.fiscal_period.as_deref().filter(|period| *period != "FY") {
        return Err(skip(format!("fiscal period {period}: questions ask about a fiscal year")));
    }
    let fiscal_year = info.fiscal_year.ok_or_else(|| skip("no fiscal year in its dei facts".to_string()))?;
    let company = info
        .entity_name
        .as_deref()
        .map(|name| name.trim().trim_end_matches('.').to_string())
        .ok_or_else(|| skip("no dei:EntityRegistrantName".to_string()))?;
    let ticker = info
        .ticker
        .clone()
        .or_else(|| files.base_name.split('-').next().map(str::to_uppercase))
        .unwrap_or_default();
    let file_name = primary.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let doc_path = format!("{}/{file_name}", files.base_name);
    let inline = files.inline.clone();
    Ok(SourceFiling { doc, info, labels, written, inline, doc_path, ticker, fiscal_year, company })
}
