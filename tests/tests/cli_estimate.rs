//! End-to-end tests of `finagent estimate`: the Llama 3.1 8B table, JSON output, and bad
//! `--model` / `--bits` values.

mod common;

use std::process::{Command, Output};

use common::{binary, model, stderr, stdout};
use serde_json::Value;

fn estimate(args: &[&str]) -> Output {
    let home = tempfile::tempdir().expect("temp home");
    Command::new(binary())
        .arg("estimate")
        .args(args)
        .env("FINAGENT_HOME", home.path())
        .output()
        .expect("finagent runs")
}

/// The training and inference cells of the table row starting with `name`.
fn row(table: &str, name: &str) -> (String, String) {
    let line = table
        .lines()
        .find(|line| line.starts_with(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{table}"));
    let cells: Vec<&str> = line[name.len()..].split_whitespace().collect();
    assert_eq!(cells.len(), 2, "row {line:?}");
    (cells[0].to_string(), cells[1].to_string())
}

#[test]
fn llama_8b_4bit_table_matches_finlora() {
    let output = estimate(&["--model", "llama-3.1-8b", "--bits", "4", "--rank", "8", "--batch", "8"]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let table = stdout(&output);
    println!("{table}");
    assert!(table.contains("llama-3.1-8b: 4-bit base, LoRA rank 8 on q/k/v, batch 8, seq 64"), "{table}");
    assert!(table.contains("adapter parameters 4.72 M"), "{table}");
    // Paper: 8.7 training, 5.6 inference.
    assert_eq!(row(&table, "total"), ("8.5".to_string(), "5.6".to_string()));
    assert_eq!(row(&table, "base weights"), ("3.2".to_string(), "3.2".to_string()));
    assert_eq!(row(&table, "embeddings, lm_head, norms"), ("3.9".to_string(), "2.0".to_string()));
    assert_eq!(row(&table, "kv cache").0, "-");
    assert_eq!(row(&table, "optimizer state").1, "-");
}

#[test]
fn sixteen_and_eight_bit_totals_match_finlora() {
    for (bits, training, inference) in [("16", "31.1", "15.3"), ("8", "11.6", "8.8")] {
        let output = estimate(&["--model", "llama-3.1-8b", "--bits", bits]);
        assert!(output.status.success(), "stderr: {}", stderr(&output));
        assert_eq!(row(&stdout(&output), "total"), (training.to_string(), inference.to_string()));
    }
}

#[test]
fn json_totals_equal_the_sum_of_components() {
    let output = estimate(&["--model", "llama-3.1-70b", "--rank", "4", "--json"]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).expect("one JSON object");
    assert_eq!(report["bits"], 4);
    assert_eq!(report["targets"], "q/k/v");
    for phase in ["training", "inference"] {
        let components = report[phase]["components"].as_array().expect("components");
        let sum: u64 = components.iter().map(|c| c["bytes"].as_u64().expect("bytes")).sum();
        assert_eq!(report[phase]["total_bytes"].as_u64(), Some(sum));
    }
    // Paper: 42.8 GiB for the 70B 4-bit run.
    let training_gib = report["training"]["total_gib"].as_f64().expect("total_gib");
    assert!((training_gib / 42.8 - 1.0).abs() < 0.15, "70B training {training_gib} GiB");
}

#[test]
fn unknown_preset_fails_naming_it() {
    let output = estimate(&["--model", "llama-9b"]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("unknown model llama-9b"), "{message}");
    assert!(message.contains("llama-3.1-8b"), "presets are listed: {message}");
}

#[test]
fn unreadable_model_path_fails_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("weights.bin");
    std::fs::write(&path, b"not a model").expect("write");
    let path_text = path.display().to_string();
    let output = estimate(&["--model", &path_text]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains(&path_text), "{message}");
}

#[test]
fn three_bits_is_rejected() {
    let output = estimate(&["--bits", "3"]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("'3'") && message.contains("--bits"), "{message}");
    assert!(message.contains("supported: 4, 8, 16"), "{message}");
}

#[test]
fn default_model_file_gives_the_smollm2_estimate() {
    let Some(path) = model() else { return };
    let from_file = estimate(&["--model", &path.display().to_string(), "--json"]);
    let from_preset = estimate(&["--json"]);
    assert!(from_file.status.success(), "stderr: {}", stderr(&from_file));
    let file: Value = serde_json::from_str(&stdout(&from_file)).expect("JSON");
    let preset: Value = serde_json::from_str(&stdout(&from_preset)).expect("JSON");
    assert_eq!(file["training"], preset["training"]);
    assert_eq!(file["params"], 134_515_008);
}
