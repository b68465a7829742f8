//! Retrieval-mode generation on the shared filings: every prompt shows the facts its answer is
//! made of, in the agent's prompt shape, and the whole generation stays quick.

use std::path::{Path, PathBuf};

use datasets::generate::{
    finlora_block, generate, read_formulas, ContextMode, GenerateConfig, GENERATED_TASKS,
};
use datasets::Task;

fn shared_root() -> Option<PathBuf> {
    let shared = std::env::var_os("FINAGENT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")));
    if shared.join("xbrl/filings").is_dir() && shared.join("xbrl/xbrl_agent").is_dir() {
        return Some(shared);
    }
    assert!(std::env::var_os("CI").is_none(), "shared data missing at {} (CI is set)", shared.display());
    eprintln!("skipping: shared data not found at {} (set FINAGENT_SHARED)", shared.display());
    None
}

fn formulas(shared: &Path) -> Vec<datasets::generate::Formula> {
    let path = shared.join("xbrl/xbrl_agent/formulas_with_explanations_with_questions_with_gt.jsonl");
    let formulas = read_formulas(&path);
    assert!(formulas.is_ok(), "{:?}", formulas.err());
    formulas.unwrap_or_default()
}

/// The `<concept >value</>` lines of a prompt's block, as (concept, value).
fn shown_facts(prompt: &str) -> Vec<(String, String)> {
    let block = finlora_block(prompt).unwrap_or("");
    block
        .lines()
        .filter_map(|line| {
            let (concept, rest) = line.strip_prefix('<')?.split_once(" >")?;
            Some((concept.to_string(), rest.split_once("</>")?.0.to_string()))
        })
        .collect()
}

#[test]
fn retrieval_contexts_hold_the_answer_facts_and_at_most_k_per_question() {
    let Some(shared) = shared_root() else { return };
    let top_k = 3;
    let config = GenerateConfig {
        tasks: GENERATED_TASKS.iter().copied().filter(|task| task.xbrl_file_task().is_some()).collect(),
        context: ContextMode::Retrieval { top_k },
        ..GenerateConfig::default()
    };
    let started = std::time::Instant::now();
    let generated = generate(&shared.join("xbrl/filings"), &formulas(&shared), None, &config);
    assert!(generated.is_ok(), "{:?}", generated.err());
    let generated = generated.unwrap_or_default();
    eprintln!("retrieval mode: {:?} in {:.2} s", generated.rows_per_task(), started.elapsed().as_secs_f64());
    for task in
        [Task::XbrlTags, Task::XbrlValues, Task::XbrlFormulaConstruction, Task::XbrlFormulaCalculation]
    {
        assert!(generated.rows_per_task().get(&task).is_some_and(|&n| n > 0), "no {task} rows");
    }
    for row in generated.rows() {
        let shown = shown_facts(&row.context);
        assert!(!shown.is_empty(), "{}: empty context", row.doc_path);
        let operands: Vec<&str> = row
            .target
            .split(' ')
            .map(|word| word.trim_matches(|c| c == '(' || c == ')'))
            .filter(|word| !matches!(*word, "" | "/" | "*" | "-" | "+" | "100"))
            .collect();
        match row.task {
            Task::XbrlValues => {
                assert!(shown.len() <= top_k);
                assert!(shown.iter().any(|(_, value)| *value == row.target), "{} not shown", row.target);
                assert!(row.context.contains("What is the value of "), "not the agent's question shape");
            }
            Task::XbrlTags => {
                assert!(shown.len() <= top_k);
                assert!(shown.iter().any(|(concept, _)| *concept == row.target), "{} not shown", row.target);
            }
            Task::XbrlFormulaConstruction => {
                for operand in operands {
                    assert!(shown.iter().any(|(concept, _)| concept == operand), "{operand} not shown");
                }
            }
            _ => {
                for operand in operands {
                    assert!(shown.iter().any(|(_, value)| value == operand), "{operand} not shown");
                }
            }
        }
    }
}

#[test]
fn retrieval_mode_needs_a_positive_top_k() {
    let Some(shared) = shared_root() else { return };
    let config = GenerateConfig { context: ContextMode::Retrieval { top_k: 0 }, ..GenerateConfig::default() };
    let error = generate(&shared.join("xbrl/filings"), &[], None, &config).err().map(|e| e.to_string());
    assert_eq!(error.as_deref(), Some("invalid configuration: retrieval mode needs a top-k of at least 1"));
}
