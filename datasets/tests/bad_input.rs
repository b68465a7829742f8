//! Bad lines: errors name the file and line; `skip_invalid` counts and reports them.

use std::path::{Path, PathBuf};

use datasets::{load_context_file, load_file, Error, LoadConfig, LoadOptions, RowProblem, Task};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Err(error) = std::fs::write(&path, text) {
        panic!("cannot write {}: {error}", path.display());
    }
    path
}

fn row_error(result: datasets::Result<datasets::Loaded>) -> (usize, RowProblem, String) {
    match result {
        Err(error) => {
            let message = error.to_string();
            match error {
                Error::Row { line, problem, .. } => (line, problem, message),
                other => panic!("expected a row error, got {other}"),
            }
        }
        Ok(loaded) => panic!("expected a row error, loaded {} examples", loaded.examples.len()),
    }
}

const GOOD: &str = r#"{"id": "a", "text": "Profit rose .", "label": "positive"}"#;

#[test]
fn broken_json_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let path = write(dir.path(), "fpb.jsonl", &format!("{GOOD}\n{GOOD}\n{{\"text\": \"cut\n"));
    let (line, problem, message) = row_error(load_file(&path, Task::Fpb, &LoadConfig::default()));
    assert_eq!(line, 3);
    assert!(matches!(problem, RowProblem::BrokenJson(_)));
    assert!(message.contains("fpb.jsonl line 3: broken JSON"), "{message}");
}

#[test]
fn missing_field_and_unknown_label_are_named() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let path =
        write(dir.path(), "missing.jsonl", &format!("{GOOD}\n{{\"id\": \"b\", \"label\": \"neutral\"}}\n"));
    let (line, problem, message) = row_error(load_file(&path, Task::Fpb, &LoadConfig::default()));
    assert_eq!((line, problem), (2, RowProblem::MissingField("text".into())));
    assert!(message.ends_with("missing.jsonl line 2: missing field text"), "{message}");

    let path =
        write(dir.path(), "label.jsonl", &format!("\n{GOOD}\n{}\n", GOOD.replace("positive", "bullish")));
    let (line, problem, message) = row_error(load_file(&path, Task::Fpb, &LoadConfig::default()));
    assert_eq!(line, 3, "blank lines still count");
    assert_eq!(problem, RowProblem::UnknownLabel { field: "label".into(), value: "bullish".into() });
    assert!(message.ends_with("label.jsonl line 3: unknown label \"bullish\""), "{message}");

    let path = write(dir.path(), "ctx.jsonl", "{\"context\": \"Q\"}\n");
    let (line, problem, _) = row_error(load_context_file(&path, Task::XbrlValues, &LoadConfig::default()));
    assert_eq!((line, problem), (1, RowProblem::MissingField("target".into())));
}

#[test]
fn skip_invalid_counts_and_reports_lines() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let text = format!("{GOOD}\nnot json\n{GOOD}\n{}\n", GOOD.replace("positive", "great"));
    let path = write(dir.path(), "mixed.jsonl", &text);
    let config = LoadConfig { options: LoadOptions { skip_invalid: true }, ..LoadConfig::default() };
    let loaded = match load_file(&path, Task::Fpb, &config) {
        Ok(loaded) => loaded,
        Err(error) => panic!("{error}"),
    };
    assert_eq!(loaded.examples.len(), 2);
    assert_eq!(loaded.report.rows_read, 4);
    let lines: Vec<usize> = loaded.report.skipped.iter().map(|skipped| skipped.line).collect();
    assert_eq!(lines, vec![2, 4]);
    assert!(loaded.report.skipped[1].problem.contains("\"great\""));
}

#[test]
fn csv_originals_load_and_report_their_lines() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    // TFNS sent_valid.csv layout: integer labels 0 bearish, 1 bullish, 2 neutral.
    let csv = "text,label\n\"$X - upgraded, \"\"buy\"\"\",1\nplain tweet,2\n\"multi\nline\",0\nbad,7\n";
    let path = write(dir.path(), "sent_valid.csv", csv);
    let config = LoadConfig { options: LoadOptions { skip_invalid: true }, ..LoadConfig::default() };
    let loaded = load_file(&path, Task::Tfns, &config).unwrap_or_else(|error| panic!("{error}"));
    let labels: Vec<&str> = loaded.examples.iter().filter_map(|e| e.label.as_deref()).collect();
    assert_eq!(labels, vec!["positive", "neutral", "negative"]);
    assert_eq!(loaded.examples[0].input, "$X - upgraded, \"buy\"");
    assert_eq!(loaded.report.skipped.iter().map(|s| s.line).collect::<Vec<_>>(), vec![6]);
    let finlora = LoadConfig { tfns: datasets::TfnsLabels::FinLora, ..config };
    let swapped = load_file(&path, Task::Tfns, &finlora).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(swapped.examples[0].label.as_deref(), Some("neutral"));

    let broken = write(dir.path(), "broken.csv", "text,label\nok,1\n\"never closed,2\n");
    let (line, problem, _) = row_error(load_file(&broken, Task::Tfns, &LoadConfig::default()));
    assert_eq!(line, 3);
    assert!(matches!(problem, RowProblem::BrokenCsv(_)));
}

#[test]
fn xbrl_csv_without_task_column_belongs_to_the_requested_task() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let csv = "instruction,input,output,year,company,doc_path,context_id\nI,\"Question: Q? \nAnswer:\",(1 / 2) * 100,2022,HD,hd/x.xml,c1\n";
    let path = write(dir.path(), "formula_calculation_train.csv", csv);
    let loaded = load_file(&path, Task::XbrlFormulaCalculation, &LoadConfig::default())
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(loaded.examples.len(), 1);
    assert_eq!(loaded.examples[0].prompt, "I\nQuestion: Q? \nAnswer:");
    assert_eq!(loaded.examples[0].target, "(1 / 2) * 100");
    assert_eq!(loaded.examples[0].id, "formula_calculation_train-00002");

    let path = write(
        dir.path(),
        "odd.jsonl",
        "{\"instruction\": \"I\", \"input\": \"Q\", \"output\": \"o\", \"task\": \"tag_guessing\"}\n",
    );
    let (_, problem, _) = row_error(load_file(&path, Task::XbrlTags, &LoadConfig::default()));
    assert_eq!(problem, RowProblem::UnknownLabel { field: "task".into(), value: "tag_guessing".into() });
}
