//! Where a tagger's inputs come from: the FiNER-139 tag list, the us-gaap concept table for labels
//! and `full_taxonomy`, and tagged examples to learn from. `finagent tag` and `finagent serve`
//! build their tag sets here, so both read the same defaults from the data folder.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use datasets::DataDir;
use taxonomy::Catalogue;

use super::candidates::{TagSet, TaggedExample};
use super::document::{is_inline_xbrl, read_mentions, InputKind};
use super::taggable::{Taggability, TaggedOrNot};
use super::{finer_examples, read_finer_rows};

/// The us-gaap concept table beside the data folder (`<data>/../xbrl/taxonomy/...`): its standard
/// labels give each tag more words to match, and it lists every concept for `full_taxonomy`.
pub fn default_catalogue_path(data: &DataDir) -> PathBuf {
    data.root().join("../xbrl/taxonomy/us-gaap_concepts_partial.tsv")
}

/// FiNER's train split (`<data>/finer/train.jsonl`), when the data folder has it: the tagged
/// examples that lift the ranking from names and labels alone (33% on FiNER test) to 70.7%.
pub fn default_examples_path(data: &DataDir) -> Option<PathBuf> {
    let path = data.root().join("finer/train.jsonl");
    path.is_file().then_some(path)
}

/// The concept table at `explicit`, else the default one when it exists, else `None`.
pub fn load_catalogue(explicit: Option<&Path>, data: &DataDir) -> Result<Option<Catalogue>> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => {
            let default = default_catalogue_path(data);
            if !default.is_file() {
                return Ok(None);
            }
            default
        }
    };
    let catalogue =
        Catalogue::load(&path).with_context(|| format!("cannot load taxonomy {}", path.display()))?;
    Ok(Some(catalogue))
}

/// Tag names, one a line; blank lines are skipped.
pub fn read_tag_list(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read tag list {}", path.display()))?;
    Ok(text.lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_string).collect())
}

/// FiNER-139's tags (from `tag_list`, else the data folder's `finer/tag_set.txt`), labelled from
/// `catalogue` where it has the concept: what `finagent tag` proposes from by default.
pub fn default_tag_set(
    tag_list: Option<&Path>,
    data: &DataDir,
    catalogue: Option<&Catalogue>,
) -> Result<TagSet> {
    let names = match tag_list {
        Some(path) => read_tag_list(path)?,
        None => data.finer_tags().with_context(|| {
            format!("cannot read the FiNER-139 tag list of the data folder {}", data.root().display())
        })?,
    };
    let tags = TagSet::new(&names, catalogue);
    if tags.is_empty() {
        bail!("the FiNER-139 tag list is empty");
    }
    Ok(tags)
}

/// Every numeric us-gaap concept of `catalogue`, for `full_taxonomy`.
pub fn full_taxonomy_tag_set(catalogue: &Catalogue) -> Result<TagSet> {
    let tags = TagSet::full_taxonomy(catalogue);
    if tags.is_empty() {
        bail!("the us-gaap concept table has no numeric concepts to tag with");
    }
    Ok(tags)
}

/// Tagged examples by where they came from: a FiNER rows file and inline XBRL filings.
#[derive(Debug, Clone, Default)]
pub struct Examples {
    pub sources: Vec<(PathBuf, Vec<TaggedExample>)>,
    /// Every running-text number of the filings, tagged or not, for [`Taggability`].
    pub filing_numbers: Vec<TaggedOrNot>,
}

impl Examples {
    /// The FiNER rows at `rows` (`{text, entity, label}` JSON lines; rows whose entity is not a
    /// token of their text are left out) and the us-gaap tagged numbers of each filing.
    pub fn read(rows: Option<&Path>, filings: &[PathBuf]) -> Result<Self> {
        let mut sources = Vec::with_capacity(filings.len() + 1);
        if let Some(path) = rows {
            sources.push((path.to_path_buf(), finer_examples(&read_finer_rows(path)?)));
        }
        let mut filing_numbers = Vec::new();
        for path in filings {
            let (examples, numbers) = filing_examples_and_numbers(path)?;
            sources.push((path.clone(), examples));
            filing_numbers.extend(numbers);
        }
        Ok(Examples { sources, filing_numbers })
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Whether a number would be tagged at all, learned from the filings' numbers; `None`
    /// without filings (or when their numbers are all tagged, or none is).
    pub fn taggability(&self) -> Option<Taggability> {
        Taggability::learn(&self.filing_numbers)
    }

    /// Teaches `tags` every example in one training; returns, per source, how many examples
    /// had a tag of the set and so were used.
    pub fn teach(&self, tags: &mut TagSet) -> Vec<usize> {
        if self.sources.is_empty() {
            return Vec::new();
        }
        let all: Vec<TaggedExample> =
            self.sources.iter().flat_map(|(_, examples)| examples.iter().cloned()).collect();
        tags.learn(&all);
        self.sources
            .iter()
            .map(|(_, examples)| examples.iter().filter(|example| tags.contains(&example.tag)).count())
            .collect()
    }

    /// "N tagged examples in PATH" for each source, joined, for start-up messages.
    pub fn describe(&self, used: &[usize]) -> String {
        self.sources
            .iter()
            .zip(used)
            .map(|((path, _), n_used)| format!("{n_used} tagged examples in {}", path.display()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The inline XBRL filings `paths` name: a file as itself, a folder as every inline XBRL
/// `.htm`/`.html`/`.xhtml` under it (sorted, so the examples come in the same order on every
/// machine). A folder with none is an error naming it.
pub fn inline_filings(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut filings = Vec::new();
    for path in paths {
        if !path.is_dir() {
            filings.push(path.clone());
            continue;
        }
        let mut found = Vec::new();
        collect_inline_filings(path, &mut found)?;
        if found.is_empty() {
            bail!("{} holds no inline XBRL filing (.htm) to learn from", path.display());
        }
        found.sort();
        filings.extend(found);
    }
    Ok(filings)
}

fn collect_inline_filings(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read folder {}", dir.display()))?;
    for entry in entries {
        let path = entry.with_context(|| format!("cannot read folder {}", dir.display()))?.path();
        if path.is_dir() {
            collect_inline_filings(&path, found)?;
            continue;
        }
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if ["htm", "html", "xhtml"].contains(&extension.as_str()) && is_inline_xbrl(&path)? {
            found.push(path);
        }
    }
    Ok(())
}

/// The running-text numbers of the inline XBRL filing at `path` that carry a us-gaap tag, as
/// tagged examples (the tag's local name): a company's earlier filings teach the ranking its own
/// phrasing. Tags outside us-gaap (the company's extensions, `dei:`) are left out; so is a tag the
/// tag set does not have, when the examples are learned.
pub fn filing_examples(path: &Path) -> Result<Vec<TaggedExample>> {
    Ok(filing_examples_and_numbers(path)?.0)
}

/// [`filing_examples`], and every running-text number of the filing with whether it carries
/// a tag at all (us-gaap, the company's own, `dei:`).
fn filing_examples_and_numbers(path: &Path) -> Result<(Vec<TaggedExample>, Vec<TaggedOrNot>)> {
    let (kind, mentions) = read_mentions(path)?;
    if kind != InputKind::InlineXbrl {
        bail!(
            "{} reads as {}, not inline XBRL: it has no tags of its own to learn from",
            path.display(),
            kind.name()
        );
    }
    let numbers: Vec<TaggedOrNot> = mentions
        .iter()
        .map(|found| TaggedOrNot {
            sentence: found.sentence.clone(),
            mention: found.mention.clone(),
            tagged: found.gold.is_some(),
        })
        .collect();
    let examples: Vec<TaggedExample> = mentions
        .into_iter()
        .filter_map(|found| {
            let tag = found.gold?.strip_prefix("us-gaap:")?.to_string();
            Some(TaggedExample { sentence: found.sentence, mention: found.mention, tag })
        })
        .collect();
    if examples.is_empty() {
        bail!("{} has no us-gaap tags on the numbers of its running text to learn from", path.display());
    }
    Ok((examples, numbers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_tag_set_reads_the_data_folder_and_learns_from_examples() {
        let dir = tempfile::tempdir().expect("temp dir");
        let finer = dir.path().join("finer");
        std::fs::create_dir_all(&finer).expect("mkdir");
        std::fs::write(finer.join("tag_set.txt"), "DebtInstrumentFaceAmount\n\nRevenues\n").expect("write");
        let data = DataDir::new(dir.path());
        assert_eq!(default_examples_path(&data), None);
        let mut tags = default_tag_set(None, &data, None).expect("tag set");
        assert_eq!(tags.len(), 2);

        let rows = concat!(
            r#"{"text": "Notes of $ 500 million were issued .", "entity": "500", "label": "DebtInstrumentFaceAmount"}"#,
            "\n",
            r#"{"text": "Sales were $ 7 million .", "entity": "7", "label": "SomethingElse"}"#,
            "\n"
        );
        std::fs::write(finer.join("train.jsonl"), rows).expect("write");
        let examples = default_examples_path(&data).expect("train split found");
        let examples = Examples::read(Some(&examples), &[]).expect("reads");
        assert_eq!(examples.teach(&mut tags), vec![1]);
    }

    #[test]
    fn a_missing_or_empty_tag_list_names_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = DataDir::new(dir.path());
        let error = default_tag_set(None, &data, None).expect_err("no tag list");
        assert!(format!("{error:#}").contains(&dir.path().display().to_string()), "{error:#}");
        let empty = dir.path().join("tags.txt");
        std::fs::write(&empty, "\n").expect("write");
        let error = default_tag_set(Some(&empty), &data, None).expect_err("empty");
        assert!(error.to_string().contains("empty"), "{error:#}");
    }

    const TAGGED: &str = r#"<html xmlns="http://www.w3.org/1999/xhtml" xmlns:ix="http://www.xbrl.org/2013/inlineXBRL"><body>
<div><span>The notes bear interest at <ix:nonFraction name="us-gaap:DebtInstrumentInterestRateStatedPercentage" contextRef="c-2" scale="-2">2.5</ix:nonFraction>% per year. The company has <ix:nonFraction name="aapl:RetailStores" contextRef="c-2">520</ix:nonFraction> stores and $7 million of cash.</span></div>
</body></html>"#;

    #[test]
    fn filings_teach_their_us_gaap_tags_and_folders_yield_their_inline_filings() {
        let dir = tempfile::tempdir().expect("temp dir");
        let nested = dir.path().join("AAPL/2023");
        std::fs::create_dir_all(&nested).expect("mkdir");
        let filing = nested.join("aapl-20230930.htm");
        std::fs::write(&filing, TAGGED).expect("write");
        let plain = dir.path().join("AAPL/notes.htm");
        std::fs::write(&plain, "<html><body><p>Sales were $ 5 million .</p></body></html>").expect("write");
        std::fs::write(dir.path().join("AAPL/readme.txt"), "Sales were $ 5 million .").expect("write");

        let found = inline_filings(&[dir.path().to_path_buf()]).expect("folder read");
        assert_eq!(found, std::slice::from_ref(&filing));
        // Only the us-gaap tag is an example: the extension and the untagged $7 million are not.
        let examples = filing_examples(&filing).expect("examples");
        let tags: Vec<(&str, &str)> =
            examples.iter().map(|example| (example.tag.as_str(), example.mention.span.as_str())).collect();
        assert_eq!(tags, [("DebtInstrumentInterestRateStatedPercentage", "2.5")]);

        let names = ["DebtInstrumentInterestRateStatedPercentage".to_string(), "Revenues".to_string()];
        let mut tag_set = TagSet::new(&names, None);
        let sources = Examples::read(None, &found).expect("reads");
        assert_eq!(sources.teach(&mut tag_set), vec![1]);
        assert!(sources.describe(&[1]).contains("aapl-20230930.htm"));

        // A filing without tags of its own, and a folder without inline filings, are refused by name.
        let error = filing_examples(&plain).expect_err("not inline XBRL");
        assert!(error.to_string().contains("notes.htm") && error.to_string().contains("HTML"), "{error:#}");
        let empty = dir.path().join("JPM");
        std::fs::create_dir_all(&empty).expect("mkdir");
        let error = inline_filings(&[empty]).expect_err("no filings");
        assert!(error.to_string().contains("JPM"), "{error:#}");
    }
}
