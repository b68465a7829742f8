//! The concept catalogue: concepts by prefixed or local name, loaded from the compiled TSV, label
//! linkbases and element schemas, merged across sources.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::concept::{label_words, Concept};
use crate::error::{read_to_string, Error, Result};
use crate::xml;

/// Prefixes tried in this order when a concept is looked up by local name alone.
const PREFIX_PREFERENCE: [&str; 3] = ["us-gaap", "dei", "srt"];

/// Columns of `us-gaap_concepts_partial.tsv`, in file order.
const TSV_COLUMNS: [&str; 7] = [
    "prefix",
    "concept",
    "standard_label",
    "documentation",
    "documentation_source",
    "taxonomy_years_in_lab_linkbases",
    "n_sources",
];

/// Concepts keyed by prefixed name (`us-gaap:Revenues`).
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    concepts: BTreeMap<String, Concept>,
    /// Local name -> prefixed names, for lookups without a prefix.
    by_local: HashMap<String, Vec<String>>,
}

impl Catalogue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a catalogue from one file, chosen by extension: the compiled concept table (`.tsv`),
    /// a label linkbase (`.xml`, standard labels and documentation) or an element schema (`.xsd`,
    /// period type, balance, type, abstract).
    pub fn load(path: &Path) -> Result<Self> {
        match path.extension().and_then(|ext| ext.to_str()) {
            Some("tsv") => Self::from_tsv(path, &read_to_string(path)?),
            Some("xml") => Ok(Self::from_concepts(xml::read_label_linkbase(path, &read_to_string(path)?)?)),
            Some("xsd") => Ok(Self::from_concepts(xml::read_schema(path, &read_to_string(path)?)?)),
            _ => Err(Error::UnknownFileKind { path: path.to_path_buf() }),
        }
    }

    /// Reads a full taxonomy: its label linkbase (which may hold documentation too) and its
    /// element schema. Concepts of either file are kept.
    pub fn load_taxonomy(label_linkbase: &Path, schema: &Path) -> Result<Self> {
        let mut catalogue = Self::load(label_linkbase)?;
        catalogue.merge(Self::load(schema)?);
        Ok(catalogue)
    }

    pub fn from_concepts(concepts: impl IntoIterator<Item = Concept>) -> Self {
        let mut catalogue = Self::new();
        for concept in concepts {
            catalogue.insert(concept);
        }
        catalogue
    }

    /// Adds a concept; when it is already known, fills only the fields the known one lacks.
    pub fn insert(&mut self, concept: Concept) {
        let key = concept.prefixed();
        match self.concepts.get_mut(&key) {
            Some(known) => known.fill_from(concept),
            None => {
                let prefixed = self.by_local.entry(concept.name.clone()).or_default();
                prefixed.push(key.clone());
                prefixed.sort_by_key(|name| prefix_rank(name));
                self.concepts.insert(key, concept);
            }
        }
    }

    /// Combines two sources: concepts of `other` are added, and for concepts both know, `self`'s
    /// values win and `other` fills the gaps (a TSV label plus a schema's period type).
    pub fn merge(&mut self, other: Catalogue) {
        for concept in other.concepts.into_values() {
            self.insert(concept);
        }
    }

    /// A concept by prefixed name (`us-gaap:Revenues`) or by local name (`Revenues`); a local name
    /// found under several prefixes resolves to us-gaap, then dei, then srt.
    pub fn get(&self, name: &str) -> Option<&Concept> {
        if name.contains(':') {
            return self.concepts.get(name);
        }
        let prefixed = self.by_local.get(name)?.first()?;
        self.concepts.get(prefixed)
    }

    pub fn get_prefixed(&self, prefix: &str, name: &str) -> Option<&Concept> {
        self.concepts.get(&format!("{prefix}:{name}"))
    }

    /// Every concept with this local name, whatever its prefix.
    pub fn with_local_name(&self, name: &str) -> Vec<&Concept> {
        let names = self.by_local.get(name).map(Vec::as_slice).unwrap_or_default();
        names.iter().filter_map(|prefixed| self.concepts.get(prefixed)).collect()
    }

    /// Concepts whose standard label holds every word of `query` (case-insensitive, whole words),
    /// shortest label first: `search_label("net income")` puts `Net Income (Loss)` ahead of longer
    /// labels that also mention it.
    pub fn search_label(&self, query: &str) -> Vec<&Concept> {
        let wanted = label_words(query);
        if wanted.is_empty() {
            return Vec::new();
        }
        let mut found: Vec<(usize, &Concept)> = self
            .concepts
            .values()
            .filter_map(|concept| {
                let words = label_words(concept.standard_label.as_deref()?);
                wanted.iter().all(|word| words.contains(word)).then_some((words.len(), concept))
            })
            .collect();
        found.sort_by(|(len_a, a), (len_b, b)| {
            len_a.cmp(len_b).then_with(|| prefix_rank(&a.prefixed()).cmp(&prefix_rank(&b.prefixed())))
        });
        found.into_iter().map(|(_, concept)| concept).collect()
    }

    /// Concepts in prefixed-name order.
    pub fn iter(&self) -> impl Iterator<Item = &Concept> {
        self.concepts.values()
    }

    pub fn len(&self) -> usize {
        self.concepts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.concepts.is_empty()
    }

    fn from_tsv(path: &Path, text: &str) -> Result<Self> {
        let format_error =
            |line: usize, message: String| Error::Format { path: path.to_path_buf(), line, message };
        let mut lines = text.lines().enumerate();
        let header: Vec<&str> = lines.next().map(|(_, line)| line.split('\t').collect()).unwrap_or_default();
        if header != TSV_COLUMNS {
            return Err(format_error(1, format!("header {header:?} is not {TSV_COLUMNS:?}")));
        }
        let mut catalogue = Self::new();
        for (line_idx, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            let [prefix, name, label, documentation, _source, years, _n_sources] = fields[..] else {
                let message = format!("{} columns, expected {}", fields.len(), TSV_COLUMNS.len());
                return Err(format_error(line_idx + 1, message));
            };
            if prefix.is_empty() || name.is_empty() {
                return Err(format_error(line_idx + 1, "empty prefix or concept name".into()));
            }
            let mut concept = Concept::new(prefix, name);
            concept.standard_label = non_empty(label);
            concept.documentation = non_empty(documentation);
            let mut taxonomy_years = Vec::new();
            for year in years.split(',').filter(|year| !year.is_empty()) {
                let year = year.parse().map_err(|_| {
                    format_error(line_idx + 1, format!("taxonomy year {year:?} is not a year"))
                })?;
                taxonomy_years.push(year);
            }
            taxonomy_years.sort_unstable();
            taxonomy_years.dedup();
            concept.taxonomy_years = taxonomy_years;
            catalogue.insert(concept);
        }
        Ok(catalogue)
    }
}

fn non_empty(text: &str) -> Option<String> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

fn prefix_rank(prefixed: &str) -> (usize, String) {
    let prefix = prefixed.split(':').next().unwrap_or_default();
    let rank = PREFIX_PREFERENCE.iter().position(|p| *p == prefix).unwrap_or(PREFIX_PREFERENCE.len());
    (rank, prefixed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "prefix\tconcept\tstandard_label\tdocumentation\tdocumentation_source\ttaxonomy_years_in_lab_linkbases\tn_sources";

    fn tsv(rows: &[&str]) -> Result<Catalogue> {
        let text = std::iter::once(HEADER).chain(rows.iter().copied()).collect::<Vec<_>>().join("\n");
        Catalogue::from_tsv(Path::new("fixture.tsv"), &text)
    }

    #[test]
    fn reads_rows_and_looks_up() {
        let catalogue = tsv(&[
            "us-gaap\tRevenues\tRevenues\tAmount of revenue.\tcompanyfacts\t2022,2020\t3",
            "srt\tRevenues\tRevenues (srt)\t\t\t2023\t1",
            "us-gaap\tNetIncomeLoss\tNet Income (Loss)\t\t\t\t1",
        ])
        .unwrap();
        assert_eq!(catalogue.len(), 3);
        let revenues = catalogue.get("Revenues").unwrap();
        assert_eq!(revenues.prefix, "us-gaap");
        assert_eq!(revenues.taxonomy_years, [2020, 2022]);
        assert_eq!(revenues.documentation.as_deref(), Some("Amount of revenue."));
        assert_eq!(catalogue.get("srt:Revenues").unwrap().label(), "Revenues (srt)");
        assert_eq!(catalogue.get_prefixed("us-gaap", "NetIncomeLoss").unwrap().documentation, None);
        assert_eq!(catalogue.with_local_name("Revenues").len(), 2);
        assert!(catalogue.get("Assets").is_none());
    }

    #[test]
    fn rejects_bad_rows_naming_the_line() {
        let err = tsv(&["us-gaap\tRevenues\tRevenues"]).unwrap_err().to_string();
        assert!(err.contains("fixture.tsv line 2") && err.contains("3 columns"), "{err}");
        let err = tsv(&["us-gaap\tRevenues\tRevenues\t\t\t20x2\t1"]).unwrap_err().to_string();
        assert!(err.contains("\"20x2\""), "{err}");
        let err = Catalogue::from_tsv(Path::new("f.tsv"), "a\tb\n").unwrap_err().to_string();
        assert!(err.contains("f.tsv line 1"), "{err}");
    }

    #[test]
    fn label_search_prefers_short_labels() {
        let catalogue = tsv(&[
            "us-gaap\tNetIncomeLoss\tNet Income (Loss)\t\t\t\t1",
            "us-gaap\tNetIncomeLossAvailableToCommonStockholdersBasic\tNet Income (Loss) Available to Common Stockholders, Basic\t\t\t\t1",
            "us-gaap\tRevenues\tRevenues\t\t\t\t1",
        ])
        .unwrap();
        let names: Vec<&str> = catalogue.search_label("NET income").iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["NetIncomeLoss", "NetIncomeLossAvailableToCommonStockholdersBasic"]);
        assert!(catalogue.search_label("revenue").is_empty(), "whole words only");
        assert!(catalogue.search_label("").is_empty());
    }

    #[test]
    fn merge_fills_gaps_and_adds_concepts() {
        let mut labels = tsv(&["us-gaap\tAssets\tAssets\t\t\t\t1"]).unwrap();
        let mut typed = Concept::new("us-gaap", "Assets");
        typed.standard_label = Some("Other label".into());
        typed.period_type = Some(crate::PeriodType::Instant);
        labels.merge(Catalogue::from_concepts([typed, Concept::new("aapl", "Extra")]));
        let assets = labels.get("us-gaap:Assets").unwrap();
        assert_eq!(assets.standard_label.as_deref(), Some("Assets"));
        assert_eq!(assets.period_type, Some(crate::PeriodType::Instant));
        assert_eq!(labels.get("Extra").unwrap().prefix, "aapl");
        assert_eq!(labels.len(), 2);
    }

    #[test]
    fn unknown_extension_is_an_error() {
        let err = Catalogue::load(Path::new("concepts.csv")).unwrap_err().to_string();
        assert!(err.contains("concepts.csv"), "{err}");
    }
}
