//! Dataset generation from the shared filings: FinLoRA context-block parity and answer correctness.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use datasets::generate::{
    context_lines, discover_filings, finlora_block, generate, load_source_filing, read_formulas,
    render_block, GenerateConfig, Generated, WrittenText, GENERATED_TASKS,
};
use datasets::xbrl_prompt::MAX_PROMPT_CHARS;
use datasets::Task;
use xbrl::{load_filing, Document, FilingFiles};

/// `$FINAGENT_SHARED`, default `<workspace>/../shared`, or `None` (after printing why) outside CI.
fn shared_root() -> Option<PathBuf> {
    let shared = std::env::var_os("FINAGENT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")));
    if shared.join("xbrl/filings").is_dir() && shared.join("data/xbrl_extraction").is_dir() {
        return Some(shared);
    }
    assert!(std::env::var_os("CI").is_none(), "shared data missing at {} (CI is set)", shared.display());
    eprintln!("skipping: shared data not found at {} (set FINAGENT_SHARED)", shared.display());
    None
}

/// Every filing under `filings/` with an XBRL instance, by instance file name.
fn instances(shared: &Path) -> BTreeMap<String, FilingFiles> {
    let filings = discover_filings(&shared.join("xbrl/filings"));
    assert!(filings.is_ok(), "{:?}", filings.err());
    let mut found = BTreeMap::new();
    for files in filings.unwrap_or_default() {
        let name =
            files.instance.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
        if let Some(name) = name {
            found.insert(name, files);
        }
    }
    found
}

/// Rendered block -> context id, for every context of `doc`.
fn blocks_by_context(doc: &Document, written: &WrittenText) -> HashMap<String, String> {
    doc.contexts.keys().map(|id| (render_block(&context_lines(doc, id, written)), id.clone())).collect()
}

#[test]
fn full_mode_context_reproduces_finlora_blocks() {
    let Some(shared) = shared_root() else { return };
    let filings = instances(&shared);
    let mut documents: HashMap<String, HashMap<String, String>> = HashMap::new();
    let (mut n_rows, mut n_matched) = (0, 0);
    let mut mismatches = Vec::new();
    for file in ["xbrl_formula_test.jsonl", "xbrl_value_test.jsonl", "xbrl_xbrl_tags_test.jsonl"] {
        let path = shared.join("data/xbrl_extraction/with_xml_context").join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for (line_idx, line) in text.lines().enumerate() {
            let row: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            let doc_path = row["doc_path"].as_str().unwrap_or("");
            let instance_name = doc_path.rsplit('/').next().unwrap_or("");
            let Some(files) = filings.get(instance_name) else { continue };
            n_rows += 1;
            let blocks = documents.entry(instance_name.to_string()).or_insert_with(|| {
                let loaded = load_filing(files);
                assert!(loaded.is_ok(), "cannot load {instance_name}: {:?}", loaded.err());
                let written = files.instance.as_deref().map(WrittenText::read);
                assert!(matches!(written, Some(Ok(_))), "cannot read {instance_name}");
                let written = written.and_then(Result::ok).unwrap_or_default();
                loaded.map(|(doc, _, _)| blocks_by_context(&doc, &written)).unwrap_or_default()
            });
            let prompt = row["context"].as_str().unwrap_or("");
            let block = finlora_block(prompt);
            assert!(block.is_some(), "{file} line {}: no context block", line_idx + 1);
            match block.and_then(|block| blocks.get(block)) {
                Some(_) => n_matched += 1,
                None => mismatches.push(format!("{file} line {} ({doc_path})", line_idx + 1)),
            }
        }
    }
    eprintln!("{n_matched} of {n_rows} FinLoRA rows on shared filings reproduced byte for byte");
    assert!(n_rows > 0, "no FinLoRA row refers to a shared filing");
    assert!(mismatches.is_empty(), "blocks not reproduced: {mismatches:#?}");
}

fn generated(shared: &Path) -> Generated {
    let formulas = read_formulas(
        &shared.join("xbrl/xbrl_agent/formulas_with_explanations_with_questions_with_gt.jsonl"),
    );
    assert!(formulas.is_ok(), "{:?}", formulas.err());
    let formulas = formulas.unwrap_or_default();
    let started = std::time::Instant::now();
    let generated = generate(&shared.join("xbrl/filings"), &formulas, None, &GenerateConfig::default());
    assert!(generated.is_ok(), "{:?}", generated.err());
    eprintln!("generated in {:.2} s", started.elapsed().as_secs_f64());
    generated.unwrap_or_default()
}

/// Every value each filing reports, as written and as canonical, by doc_path.
fn filing_values(shared: &Path) -> HashMap<String, BTreeSet<String>> {
    let mut values = HashMap::new();
    for files in discover_filings(&shared.join("xbrl/filings")).unwrap_or_default() {
        let Ok(filing) = load_source_filing(&files) else { continue };
        let known: &mut BTreeSet<String> = values.entry(filing.doc_path.clone()).or_default();
        for fact in &filing.doc.facts {
            known.extend(fact.value.clone());
            known.extend(filing.written.text_of(fact).map(str::to_string));
        }
    }
    values
}

#[test]
fn generated_answers_are_facts_of_their_filing() {
    let Some(shared) = shared_root() else { return };
    let generated = generated(&shared);
    let values = filing_values(&shared);
    eprintln!("rows per task: {:?}", generated.rows_per_task());
    eprintln!(
        "skipped filings: {}, dropped long prompts: {}",
        generated.skipped_filings.len(),
        generated.n_dropped_long
    );
    for task in GENERATED_TASKS {
        assert!(generated.rows_per_task().get(&task).is_some_and(|&n| n > 0), "no {task} rows");
    }
    for row in generated.rows() {
        let known = values.get(&row.doc_path);
        let block = finlora_block(&row.context).unwrap_or("");
        match row.task {
            Task::XbrlValues => assert!(
                known.is_some_and(|known| known.contains(&row.target)),
                "value {} is no fact of {}",
                row.target,
                row.doc_path
            ),
            Task::XbrlTags => {
                assert!(row.target.starts_with("us-gaap:"), "tag {}", row.target);
                assert!(block.contains(&format!("<{} ", row.target)), "{} not in its context", row.target);
            }
            Task::XbrlFormulaConstruction => {
                let operands = formula_operands(&row.target);
                assert!(operands.len() >= 2, "formula {}", row.target);
                for operand in operands {
                    assert!(operand.starts_with("us-gaap:"), "formula {} operand {operand}", row.target);
                    assert!(block.contains(&format!("<{operand} ")), "{operand} not in its context");
                }
            }
            Task::XbrlFormulaCalculation => {
                for operand in formula_operands(&row.target) {
                    assert!(
                        known.is_some_and(|known| known.contains(operand)),
                        "formula {} operand {operand} is no fact of {}",
                        row.target,
                        row.doc_path
                    );
                }
            }
            // Checked against the filings' text in tests/finer.rs.
            _ => {}
        }
        if row.task.xbrl_file_task().is_some() {
            assert!(row.context.chars().count() <= MAX_PROMPT_CHARS, "{} prompt too long", row.doc_path);
        }
    }
}

/// `(a / b) * 100`, `(a - b) / c`, `a - b`: operands are the space-separated words that are not
/// operators, stripped of parentheses.
fn formula_operands(formula: &str) -> Vec<&str> {
    formula
        .split(' ')
        .map(|word| word.trim_matches(|c| c == '(' || c == ')'))
        .filter(|word| !matches!(*word, "" | "/" | "*" | "-" | "+" | "100"))
        .collect()
}

#[test]
fn splits_keep_each_filing_whole_and_are_seeded() {
    let Some(shared) = shared_root() else { return };
    let (first, second) = (generated(&shared), generated(&shared));
    let mut split_of: HashMap<&str, &str> = HashMap::new();
    for (split, rows) in first.splits() {
        for row in rows {
            let previous = split_of.insert(&row.doc_path, split.name());
            assert!(previous.is_none_or(|p| p == split.name()), "{} in two splits", row.doc_path);
        }
    }
    assert!(!first.test.is_empty() && !first.train.is_empty(), "empty train or test split");
    assert_eq!(first.rows().collect::<Vec<_>>(), second.rows().collect::<Vec<_>>());
    eprintln!("rows per filing: {:#?}", first.rows_per_filing());
}

#[test]
fn written_output_reads_back_and_leaves_no_temporary_file() {
    let Some(shared) = shared_root() else { return };
    let generated = generated(&shared);
    let out = tempfile::tempdir();
    assert!(out.is_ok());
    let Ok(out) = out else { return };
    let paths = generated.write(out.path());
    assert!(paths.is_ok(), "{:?}", paths.err());
    let mut n_lines = 0;
    for path in paths.unwrap_or_default() {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for line in text.lines() {
            let row: Result<datasets::generate::GeneratedRow, _> = serde_json::from_str(line);
            assert!(row.is_ok(), "{}: {:?}", path.display(), row.err());
            n_lines += 1;
        }
        let siblings = std::fs::read_dir(path.parent().unwrap_or(out.path())).into_iter().flatten().flatten();
        for sibling in siblings {
            assert!(!sibling.file_name().to_string_lossy().ends_with(".tmp"), "left {:?}", sibling.path());
        }
    }
    assert_eq!(n_lines, generated.rows().count());
}
