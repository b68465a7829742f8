//! End-to-end tests of `finagent datasets generate` options (retrieval contexts, formula
//! construction, FiNER questions) and of `datasets stats` over generated output.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{binary, shared};
use serde_json::Value;

/// Runs `finagent datasets <args>` with a private home and no model.
fn datasets(home: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(binary());
    command.arg("datasets").args(args).env("FINAGENT_HOME", home).env_remove("FINAGENT_MODEL");
    command.output().expect("finagent runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every row of `<out>/<task>/*.jsonl`.
fn rows(out: &Path, task: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    for split in ["train", "validation", "test"] {
        let path = out.join(task).join(format!("{split}.jsonl"));
        for line in std::fs::read_to_string(&path).unwrap_or_default().lines() {
            rows.push(serde_json::from_str(line).unwrap());
        }
    }
    rows
}

#[test]
fn retrieval_contexts_show_top_k_facts_holding_the_answer() {
    let Some(shared) = shared() else { return };
    let home = tempfile::tempdir().unwrap();
    let (filings, out) = (shared.join("xbrl/filings"), home.path().join("generated"));
    let formulas = shared.join("xbrl/xbrl_agent/formulas_with_explanations_with_questions_with_gt.jsonl");
    let args = [
        "generate",
        "--filings",
        filings.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--tasks",
        "xbrl_values,xbrl_formula_construction",
        "--formulas",
        formulas.to_str().unwrap(),
        "--context",
        "retrieval",
        "--top-k",
        "2",
    ];
    let output = datasets(home.path(), &args);
    assert!(output.status.success(), "generate failed: {}", text(&output.stderr));
    let values = rows(&out, "xbrl_values");
    assert!(!values.is_empty(), "no value rows");
    for row in &values {
        let context = row["context"].as_str().unwrap();
        let target = row["target"].as_str().unwrap();
        assert!(context.contains(&format!(">{target}</>")), "answer {target} is not in its prompt's facts");
        assert!(context.matches("</> \n").count() <= 2, "more than 2 facts shown: {context}");
    }
    let constructions = rows(&out, "xbrl_formula_construction");
    assert!(!constructions.is_empty(), "no formula construction rows");
    for row in &constructions {
        assert!(row["target"].as_str().unwrap().starts_with(['u', '(']), "{}", row["target"]);
    }
}

#[test]
fn finer_questions_are_generated_and_counted_per_filing() {
    let Some(shared) = shared() else { return };
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("generated");
    let filings = shared.join("xbrl/filings");
    let args = [
        "generate",
        "--filings",
        filings.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--tasks",
        "finer_tagging,finer_batched",
        "--finer-set",
        "finer139",
    ];
    let output = datasets(home.path(), &args);
    assert!(output.status.success(), "generate failed: {}", text(&output.stderr));
    let batched = rows(&out, "finer_batched");
    assert!(!batched.is_empty(), "no batched rows");
    for row in &batched {
        let n_questions = row["context"].as_str().unwrap().matches("What is best tag for entity").count();
        let n_answers = row["target"].as_str().unwrap().split(',').count();
        assert!((1..=4).contains(&n_questions) && n_questions == n_answers, "{row}");
    }
    let output = datasets(home.path(), &["stats", "--generated", out.to_str().unwrap(), "--split", "train"]);
    assert!(output.status.success(), "stats failed: {}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("finer_tagging train: "), "{stdout}");
    assert!(stdout.contains("rows per filing (") && stdout.contains("AAPL 20"), "{stdout}");
}

#[test]
fn retrieval_without_facts_to_show_is_refused() {
    let Some(shared) = shared() else { return };
    let home = tempfile::tempdir().unwrap();
    let (filings, out) = (shared.join("xbrl/filings"), home.path().join("out"));
    let args = [
        "generate",
        "--filings",
        filings.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--tasks",
        "xbrl_values",
        "--context",
        "retrieval",
        "--top-k",
        "0",
    ];
    let output = datasets(home.path(), &args);
    assert!(!output.status.success(), "a top-k of 0 was accepted");
    assert!(text(&output.stderr).contains("--top-k must be at least 1"), "{}", text(&output.stderr));
}

#[test]
fn a_reader_that_closes_the_pipe_ends_the_process_without_a_panic() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let Some(shared) = common::shared() else { return };
    let home = tempfile::tempdir().unwrap();
    // Every FPB test prompt: far more than a pipe holds, so writing fails once the reader is gone.
    let mut child = Command::new(common::binary())
        .args(["datasets", "show", "fpb", "--limit", "100000"])
        .env("FINAGENT_HOME", home.path())
        .env("FINAGENT_DATA", shared.join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(141), "{:?}: {stderr}", output.status);
}
