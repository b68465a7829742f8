//! What a filing is (company, form, fiscal year and period, from its `dei` facts), which of its
//! contexts is the main period, which fiscal year a comparative period belongs to, and which files
//! of a folder make up a filing.
//!
//! Fiscal year = `dei:DocumentFiscalYearFocus`, falling back to the year of
//! `dei:DocumentPeriodEndDate` (AAPL FY2022 ended 2022-09-24; JNJ FY2022 ended 2023-01-01).

use std::path::{Path, PathBuf};

use crate::date::Date;
use crate::error::{Error, Result};
use crate::model::{Context, Document, Issue, Period};

/// Days a fiscal-year end may drift from its anniversary (52/53-week years move up to 6 days).
const FISCAL_END_SLACK_DAYS: i64 = 7;
/// Length in days (end - start) of a duration that counts as a fiscal year: 52 or 53 weeks, or a
/// calendar year.
const YEAR_DAYS: std::ops::RangeInclusive<i64> = 350..=380;
/// Length of a duration that counts as a fiscal quarter (13 or 14 weeks, or three months).
const QUARTER_DAYS: std::ops::RangeInclusive<i64> = 80..=100;

/// A filing's identity, read from its `dei` cover-page facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilingInfo {
    pub ticker: Option<String>,
    pub entity_name: Option<String>,
    /// As written in `dei:EntityCentralIndexKey` (zero-padded).
    pub cik: Option<String>,
    pub fiscal_year: Option<i32>,
    /// `FY`, `Q1`, `Q2`, `Q3`.
    pub fiscal_period: Option<String>,
    pub period_end: Option<Date>,
    /// `dei:DocumentType`: `10-K`, `10-Q`...
    pub form: Option<String>,
    /// Not a `dei` fact; filled in by whoever knows it (the EDGAR client).
    pub accession: Option<String>,
}

impl FilingInfo {
    /// Reads the `dei` facts of `doc`; a dimensionless fact wins over one with dimensions (AAPL
    /// reports one `TradingSymbol` per listed note, each under a class-of-stock member).
    pub fn from_document(doc: &Document) -> FilingInfo {
        let text =
            |local: &str| dei_value(doc, local).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let period_end = text("DocumentPeriodEndDate")
            .and_then(|v| v.parse::<Date>().ok())
            .or_else(|| document_type_context(doc).and_then(|c| c.period.end()));
        let fiscal_year = text("DocumentFiscalYearFocus")
            .and_then(|v| v.trim_start_matches('-').get(..4).and_then(|y| y.parse().ok()))
            .or(period_end.map(|d| d.year));
        FilingInfo {
            ticker: text("TradingSymbol"),
            entity_name: text("EntityRegistrantName"),
            cik: text("EntityCentralIndexKey"),
            fiscal_year,
            fiscal_period: text("DocumentFiscalPeriodFocus"),
            period_end,
            form: text("DocumentType"),
            accession: None,
        }
    }

    /// The filing's own fiscal year and its end, when both are known.
    pub fn fiscal_calendar(&self) -> Option<FiscalCalendar> {
        Some(FiscalCalendar { fiscal_year: self.fiscal_year?, fiscal_year_end: self.period_end? })
    }

    /// The filing's main duration context: dimensionless, ending at `DocumentPeriodEndDate` (within
    /// a few days), about a year long for `FY` (a quarter for `Q1`-`Q3`). Among several, the one
    /// with the most facts; failing all that, the context of `dei:DocumentType`.
    pub fn main_context<'d>(&self, doc: &'d Document) -> Option<&'d Context> {
        let quarterly = matches!(self.fiscal_period.as_deref(), Some("Q1" | "Q2" | "Q3"));
        let wanted_days = if quarterly { QUARTER_DAYS } else { YEAR_DAYS };
        let candidates = doc.contexts.values().filter(|c| {
            let ends_right = match (self.period_end, c.period.end()) {
                (Some(want), Some(end)) => days_between(want, end) <= FISCAL_END_SLACK_DAYS,
                _ => false,
            };
            c.is_dimensionless()
                && ends_right
                && c.period.days().is_some_and(|days| wanted_days.contains(&days))
        });
        let n_facts = |context: &Context| doc.facts.iter().filter(|f| f.context_ref == context.id).count();
        let best = candidates.max_by(|a, b| {
            let exact = |c: &Context| c.period.end() == self.period_end;
            (exact(a), n_facts(a)).cmp(&(exact(b), n_facts(b))).then_with(|| b.id.cmp(&a.id))
        });
        best.or_else(|| document_type_context(doc).filter(|c| matches!(c.period, Period::Duration { .. })))
    }

    /// The main period of [`FilingInfo::main_context`].
    pub fn main_period(&self, doc: &Document) -> Option<Period> {
        self.main_context(doc).map(|c| c.period)
    }
}

/// A company's fiscal year numbering, anchored on one known fiscal year and the day it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FiscalCalendar {
    pub fiscal_year: i32,
    pub fiscal_year_end: Date,
}

impl FiscalCalendar {
    /// The fiscal year `period` covers: a ~1-year duration or an instant ending within a few days of
    /// the anniversary of the fiscal year end k years before or after is fiscal year N ± k. Other
    /// periods (quarters, forever) have no fiscal year here.
    pub fn fiscal_year_of(&self, period: &Period) -> Option<i32> {
        fiscal_year_of(period, self.fiscal_year_end, self.fiscal_year)
    }
}

/// See [`FiscalCalendar::fiscal_year_of`]: `fiscal_year_end` ended fiscal year `fiscal_year`.
pub fn fiscal_year_of(period: &Period, fiscal_year_end: Date, fiscal_year: i32) -> Option<i32> {
    let end = match period {
        Period::Instant(date) => *date,
        Period::Duration { end, .. } if period.days().is_some_and(|d| YEAR_DAYS.contains(&d)) => *end,
        _ => return None,
    };
    let years_back =
        ((fiscal_year_end.days_since_epoch() - end.days_since_epoch()) as f64 / 365.2425).round();
    let years_back = years_back as i32;
    let anniversary = same_day_years_later(fiscal_year_end, -years_back)?;
    (days_between(anniversary, end) <= FISCAL_END_SLACK_DAYS).then_some(fiscal_year - years_back)
}

fn same_day_years_later(date: Date, years: i32) -> Option<Date> {
    let year = date.year.checked_add(years)?;
    Date::new(year, date.month, date.day).or_else(|| Date::new(year, date.month, date.day - 1))
}

fn days_between(a: Date, b: Date) -> i64 {
    (a.days_since_epoch() - b.days_since_epoch()).abs()
}

/// The first value of a `dei` concept, preferring dimensionless facts.
fn dei_value<'d>(doc: &'d Document, local: &str) -> Option<&'d str> {
    let facts = || doc.facts.iter().filter(|f| f.concept.local == local && f.value.is_some());
    let dimensionless = facts().find(|f| doc.context_of(f).is_some_and(Context::is_dimensionless));
    dimensionless.or_else(|| facts().next()).and_then(|f| f.value.as_deref())
}

fn document_type_context(doc: &Document) -> Option<&Context> {
    let fact = doc.facts.iter().find(|f| f.concept.local == "DocumentType")?;
    doc.context_of(fact)
}

/// The files of one filing found in a folder, grouped by their common base name
/// (`aapl-20220924` for `aapl-20220924_htm.xml`, `aapl-20220924.htm`, `aapl-20220924_cal.xml`...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilingFiles {
    pub dir: PathBuf,
    pub base_name: String,
    /// XBRL instance (`*_htm.xml`, or another `.xml` whose root is `xbrl`).
    pub instance: Option<PathBuf>,
    /// Inline XBRL document (`.htm`/`.html` declaring the inline XBRL namespace).
    pub inline: Option<PathBuf>,
    pub schema: Option<PathBuf>,
    pub calculation: Option<PathBuf>,
    pub label: Option<PathBuf>,
    pub definition: Option<PathBuf>,
    pub presentation: Option<PathBuf>,
}

impl FilingFiles {
    /// The filings in `dir` (not its subfolders), sorted by base name. Groups with neither an
    /// instance nor an inline document are kept (linkbase-only folders are useful too).
    pub fn discover(dir: &Path) -> Result<Vec<FilingFiles>> {
        let entries = std::fs::read_dir(dir).map_err(|source| Error::io(dir, source))?;
        let mut paths: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| Error::io(dir, source))?;
            if entry.file_type().map_err(|source| Error::io(entry.path(), source))?.is_file() {
                paths.push(entry.path());
            }
        }
        paths.sort();
        let mut filings: Vec<FilingFiles> = Vec::new();
        for path in paths {
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
            let Some((base_name, kind)) = classify(&path, &name)? else { continue };
            let position = match filings.iter().position(|f| f.base_name == base_name) {
                Some(position) => position,
                None => {
                    filings.push(FilingFiles { dir: dir.to_path_buf(), base_name, ..FilingFiles::default() });
                    filings.len() - 1
                }
            };
            let filing = &mut filings[position];
            let slot = match kind {
                FileKind::Instance => &mut filing.instance,
                FileKind::Inline => &mut filing.inline,
                FileKind::Schema => &mut filing.schema,
                FileKind::Calculation => &mut filing.calculation,
                FileKind::Label => &mut filing.label,
                FileKind::Definition => &mut filing.definition,
                FileKind::Presentation => &mut filing.presentation,
            };
            slot.get_or_insert(path);
        }
        filings.sort_by(|a, b| a.base_name.cmp(&b.base_name));
        Ok(filings)
    }

    /// The document to read facts from: the instance when there is one, else the inline document.
    pub fn primary_document(&self) -> Option<&Path> {
        self.instance.as_deref().or(self.inline.as_deref())
    }
}

/// Reads a filing's facts (from the instance when present, else the inline document) and its `dei`
/// identity.
pub fn load_filing(files: &FilingFiles) -> Result<(Document, FilingInfo, Vec<Issue>)> {
    let (document, issues) = match (&files.instance, &files.inline) {
        (Some(instance), _) => crate::instance::read_instance(instance)?,
        (None, Some(inline)) => crate::inline::read_inline(inline)?,
        (None, None) => {
            return Err(Error::WrongDocument {
                source_name: files.dir.join(&files.base_name).display().to_string(),
                expected: "a filing with an XBRL instance or inline XBRL document",
                message: format!("no instance or inline document in {}", files.dir.display()),
            })
        }
    };
    let info = FilingInfo::from_document(&document);
    Ok((document, info, issues))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Instance,
    Inline,
    Schema,
    Calculation,
    Label,
    Definition,
    Presentation,
}

const LINKBASE_SUFFIXES: [(&str, FileKind); 4] = [
    ("_cal.xml", FileKind::Calculation),
    ("_lab.xml", FileKind::Label),
    ("_def.xml", FileKind::Definition),
    ("_pre.xml", FileKind::Presentation),
];

/// Bytes read from the start of a file to tell what it is.
const SNIFF_BYTES: u64 = 64 * 1024;

/// (base name, kind) of a filing file; `None` for files that are not part of a filing.
fn classify(path: &Path, name: &str) -> Result<Option<(String, FileKind)>> {
    let lower = name.to_ascii_lowercase();
    for (suffix, kind) in LINKBASE_SUFFIXES {
        if lower.ends_with(suffix) {
            return Ok(Some((name[..name.len() - suffix.len()].to_string(), kind)));
        }
    }
    if lower.ends_with("_ref.xml") {
        return Ok(None);
    }
    if let Some(base) = strip_suffix_ignore_case(name, ".xsd") {
        return Ok(Some((base.to_string(), FileKind::Schema)));
    }
    if let Some(base) = strip_suffix_ignore_case(name, ".xml") {
        let is_instance = root_element_local_name(&sniff(path)?).as_deref() == Some("xbrl");
        let base = strip_suffix_ignore_case(base, "_htm").unwrap_or(base);
        return Ok(is_instance.then(|| (base.to_string(), FileKind::Instance)));
    }
    let html_base =
        strip_suffix_ignore_case(name, ".htm").or_else(|| strip_suffix_ignore_case(name, ".html"));
    if let Some(base) = html_base {
        let is_inline = sniff(path)?.contains("http://www.xbrl.org/2013/inlineXBRL");
        return Ok(is_inline.then(|| (base.to_string(), FileKind::Inline)));
    }
    Ok(None)
}

fn strip_suffix_ignore_case<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    let split = name.len().checked_sub(suffix.len())?;
    (name.is_char_boundary(split) && name[split..].eq_ignore_ascii_case(suffix)).then(|| &name[..split])
}

/// The local name of the first element in an XML prefix (`xbrl` for `<xbrli:xbrl ...`).
fn root_element_local_name(head: &str) -> Option<String> {
    let mut rest = head;
    loop {
        let start = rest.find('<')?;
        rest = &rest[start + 1..];
        if rest.starts_with('?') || rest.starts_with('!') {
            continue;
        }
        let name: String =
            rest.chars().take_while(|c| !c.is_whitespace() && !matches!(c, '>' | '/')).collect();
        return Some(name.rsplit(':').next().unwrap_or(&name).to_string());
    }
}

fn sniff(path: &Path) -> Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|source| Error::io(path, source))?;
    let mut head = Vec::new();
    file.take(SNIFF_BYTES).read_to_end(&mut head).map_err(|source| Error::io(path, source))?;
    Ok(String::from_utf8_lossy(&head).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> Date {
        text.parse().unwrap()
    }

    fn year(start: &str, end: &str) -> Period {
        Period::Duration { start: date(start), end: date(end) }
    }

    #[test]
    fn comparative_periods_map_to_fiscal_years() {
        let aapl = FiscalCalendar { fiscal_year: 2022, fiscal_year_end: date("2022-09-24") };
        assert_eq!(aapl.fiscal_year_of(&year("2021-09-26", "2022-09-24")), Some(2022));
        assert_eq!(aapl.fiscal_year_of(&year("2020-09-27", "2021-09-25")), Some(2021));
        assert_eq!(aapl.fiscal_year_of(&year("2019-09-29", "2020-09-26")), Some(2020));
        assert_eq!(aapl.fiscal_year_of(&Period::Instant(date("2021-09-25"))), Some(2021));
        assert_eq!(aapl.fiscal_year_of(&year("2022-06-26", "2022-09-24")), None, "a quarter");
        assert_eq!(aapl.fiscal_year_of(&Period::Instant(date("2022-03-26"))), None, "mid-year instant");
        // JNJ's 52/53-week year ends on the Sunday nearest Dec 31: FY2022 ended 2023-01-01.
        let jnj = FiscalCalendar { fiscal_year: 2022, fiscal_year_end: date("2023-01-01") };
        assert_eq!(jnj.fiscal_year_of(&year("2022-01-03", "2023-01-01")), Some(2022));
        assert_eq!(jnj.fiscal_year_of(&year("2021-01-04", "2022-01-02")), Some(2021));
        assert_eq!(jnj.fiscal_year_of(&year("2019-12-30", "2021-01-03")), Some(2020), "53 weeks");
        let nvda = FiscalCalendar { fiscal_year: 2024, fiscal_year_end: date("2024-01-28") };
        assert_eq!(nvda.fiscal_year_of(&year("2022-01-31", "2023-01-29")), Some(2023));
    }

    #[test]
    fn root_element_names() {
        let head = "<?xml version=\"1.0\"?>\n<!-- Workiva -->\n<xbrl\n  xmlns=\"http://www.xbrl.org/2003/instance\">";
        assert_eq!(root_element_local_name(head).as_deref(), Some("xbrl"));
        assert_eq!(root_element_local_name("<xbrli:xbrl>").as_deref(), Some("xbrl"));
        assert_eq!(root_element_local_name("<link:linkbase>").as_deref(), Some("linkbase"));
        assert_eq!(root_element_local_name("no xml"), None);
    }

    #[test]
    fn suffixes_ignore_case() {
        assert_eq!(strip_suffix_ignore_case("a_HTM.xml", ".XML"), Some("a_HTM"));
        assert_eq!(strip_suffix_ignore_case("x", ".xml"), None);
    }
}
