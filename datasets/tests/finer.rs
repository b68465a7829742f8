//! FiNER questions from the running text of the shared inline XBRL filings: spans read back to
//! their facts, gold tags come from the filing, batches hold four questions with answers in order.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use datasets::finer_prompt::{batched_questions, FINER_BATCH_SIZE};
use datasets::generate::{
    discover_filings, filing_entities, generate, load_source_filing, read_narrative_facts, FinerEntity,
    FinerTagSet, GenerateConfig, Generated,
};
use datasets::Task;
use taxonomy::FinerTags;

/// `$FINAGENT_SHARED`, default `<workspace>/../shared`, or `None` (after printing why) outside CI.
fn shared_root() -> Option<PathBuf> {
    let shared = std::env::var_os("FINAGENT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")));
    if shared.join("xbrl/filings").is_dir() && shared.join("xbrl/finer139_tags.txt").is_file() {
        return Some(shared);
    }
    assert!(std::env::var_os("CI").is_none(), "shared data missing at {} (CI is set)", shared.display());
    eprintln!("skipping: shared data not found at {} (set FINAGENT_SHARED)", shared.display());
    None
}

fn finer139(shared: &Path) -> FinerTagSet {
    let tags = FinerTags::load_dir(&shared.join("xbrl"));
    assert!(tags.is_ok(), "{:?}", tags.err());
    FinerTagSet::Finer139(tags.map(|tags| tags.iter().map(str::to_string).collect()).unwrap_or_default())
}

fn generate_finer(shared: &Path, finer: FinerTagSet) -> Generated {
    let config = GenerateConfig {
        tasks: vec![Task::FinerTagging, Task::FinerBatched],
        finer,
        ..GenerateConfig::default()
    };
    let generated = generate(&shared.join("xbrl/filings"), &[], None, &config);
    assert!(generated.is_ok(), "{:?}", generated.err());
    generated.unwrap_or_default()
}

/// Every inline filing's questions by doc_path, in document order.
fn entities_by_filing(shared: &Path, finer: &FinerTagSet) -> BTreeMap<String, Vec<FinerEntity>> {
    let mut by_filing = BTreeMap::new();
    for files in discover_filings(&shared.join("xbrl/filings")).unwrap_or_default() {
        let Ok(filing) = load_source_filing(&files) else { continue };
        let Some(inline) = &filing.inline else { continue };
        let facts = read_narrative_facts(inline);
        assert!(facts.is_ok(), "{:?}", facts.err());
        by_filing
            .insert(filing.doc_path.clone(), filing_entities(&filing, &facts.unwrap_or_default(), finer));
    }
    by_filing
}

#[test]
fn narrative_spans_read_back_to_their_facts() {
    let Some(shared) = shared_root() else { return };
    let (mut n_checked, mut mismatches) = (0, Vec::new());
    for files in discover_filings(&shared.join("xbrl/filings")).unwrap_or_default() {
        let Some(inline) = &files.inline else { continue };
        let read = xbrl::inline::read_inline(inline);
        assert!(read.is_ok(), "{}: {:?}", inline.display(), read.err());
        let Ok((doc, _)) = read else { continue };
        let by_id: HashMap<&str, Option<&str>> =
            doc.facts.iter().filter_map(|f| Some((f.id.as_deref()?, f.value.as_deref()))).collect();
        let facts = read_narrative_facts(inline).unwrap_or_default();
        assert!(!facts.is_empty(), "no narrative facts in {}", inline.display());
        for fact in &facts {
            let Some(expected) = fact.id.as_deref().and_then(|id| by_id.get(id)) else { continue };
            n_checked += 1;
            if fact.value().as_deref() != *expected {
                mismatches.push(format!(
                    "{} {:?} -> {:?}, fact {expected:?}",
                    fact.concept,
                    fact.span,
                    fact.value()
                ));
            }
            assert!(fact.sentence.contains(&fact.span), "span {:?} not in {:?}", fact.span, fact.sentence);
        }
    }
    eprintln!("{n_checked} narrative spans checked, {} differ", mismatches.len());
    assert!(n_checked > 100, "only {n_checked} narrative spans");
    assert!(mismatches.is_empty(), "spans that do not read back: {mismatches:#?}");
}

#[test]
fn single_and_batched_rows_ask_the_filings_questions_in_order() {
    let Some(shared) = shared_root() else { return };
    let finer = finer139(&shared);
    let generated = generate_finer(&shared, finer.clone());
    let expected = entities_by_filing(&shared, &finer);
    let FinerTagSet::Finer139(tags) = &finer else { return };
    let (mut single, mut batched): (HashMap<&str, Vec<_>>, HashMap<&str, Vec<_>>) = Default::default();
    for row in generated.rows() {
        match row.task {
            Task::FinerTagging => {
                assert!(tags.contains(&row.target), "{} is no FiNER-139 tag", row.target);
                single.entry(row.doc_path.as_str()).or_default().push(row);
            }
            Task::FinerBatched => batched.entry(row.doc_path.as_str()).or_default().push(row),
            other => panic!("unexpected task {other}"),
        }
    }
    assert!(!single.is_empty(), "no finer_tagging rows");
    for (doc_path, entities) in &expected {
        let rows = batched.get(doc_path.as_str()).cloned().unwrap_or_default();
        assert_eq!(rows.len(), entities.len().div_ceil(FINER_BATCH_SIZE), "{doc_path} batches");
        let mut asked = Vec::new();
        for (row_idx, row) in rows.iter().enumerate() {
            let questions = batched_questions(&row.context);
            let answers: Vec<&str> = row.target.split(',').collect();
            let is_last = row_idx + 1 == rows.len();
            assert!(questions.len() == FINER_BATCH_SIZE || (is_last && !questions.is_empty()), "{doc_path}");
            assert_eq!(questions.len(), answers.len(), "{doc_path}: {}", row.target);
            asked.extend(
                questions.into_iter().zip(answers).map(|((span, sentence), tag)| (span, sentence, tag)),
            );
        }
        let wanted: Vec<(String, String, &str)> =
            entities.iter().map(|e| (e.span.clone(), e.sentence.clone(), e.tag.as_str())).collect();
        assert_eq!(asked, wanted, "{doc_path}: batched questions differ from the filing's");
        let n_single = single.get(doc_path.as_str()).map_or(0, Vec::len);
        assert_eq!(n_single, entities.len(), "{doc_path} single questions");
    }
    eprintln!("finer rows per task: {:?}", generated.rows_per_task());
}

#[test]
fn full_us_gaap_set_asks_more_and_lists_its_tags() {
    let Some(shared) = shared_root() else { return };
    let narrow = generate_finer(&shared, finer139(&shared)).rows_per_task();
    let full = generate_finer(&shared, FinerTagSet::UsGaap);
    let n_full = full.rows_per_task().get(&Task::FinerTagging).copied().unwrap_or(0);
    assert!(n_full > narrow.get(&Task::FinerTagging).copied().unwrap_or(0), "{n_full} vs {narrow:?}");
    for row in full.rows().filter(|row| row.task == Task::FinerTagging) {
        assert!(
            row.context.contains(&format!(" {},", row.target))
                || row.context.contains(&format!(", {}.", row.target)),
            "{} not among the options",
            row.target
        );
    }
}
